"""PostgreSQL: the server, tuned for tests, reached with psycopg 3.

The server is prepared once (a template database, migrated and seeded: `template.py`); the environment's database
and each worker's (`<db>_gwN`) are clones of it, made by the janitor (`janitor.py`). A worker's database outlives
the run: the environment's reset (a warm environment's, when the daemon takes it back) makes it a fresh clone again
with a fresh mark, and the next run's worker takes it without cloning.

Configured like a real server: `postgres.settings` go on the server's command line (`-c name=value`, over the test
tuning), `postgres.database_settings` on every clone (`ALTER DATABASE ... SET`). With `postgres.app_role`, the
endpoint's login stays the owner's (envmgr's: migrations, seeds, the janitor) and the worker's view, which tests and
the application use, logs in as that role.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from hashlib import sha256
from types import MappingProxyType

from envmgr.endpoints import SESSION_WORKER_ID, Component, ServiceEndpoint, Worker
from envmgr.errors import ServerSettingError
from envmgr.services.base import ComposeContext, ContainerSpec, Published, Service, ServiceDocs
from envmgr.services.given import GivenHold
from envmgr.services.postgres.settings import PostgresSettings
from envmgr.services.settings import SettingValue

__all__ = ["TEST_TUNING", "PostgresService", "server_command", "snapshot_database"]

PORT = 5432
MAX_DATABASE_NAME = 63
DATA_DIR = "/var/lib/postgresql/data"
# Durability is worthless in a throw-away test server and costs most of the time of CREATE DATABASE ... TEMPLATE.
TEST_TUNING: Mapping[str, SettingValue] = MappingProxyType(
    {
        "fsync": False,
        "synchronous_commit": False,
        "full_page_writes": False,
        "max_connections": 200,
    }
)
VARIABLES: Mapping[str, Component] = MappingProxyType(
    {
        "DATABASE_URL": "url",
        "POSTGRES_HOST": "host",
        "POSTGRES_PORT": "port",
        "POSTGRES_USER": "username",
        "POSTGRES_PASSWORD": "password",
        "POSTGRES_DB": "path",
    }
)
"""the connection variables, each naming a part of the endpoint (they follow a worker's database and login)"""
STOPPED = re.compile(r"\b(?:FATAL|PANIC):\s+(?P<message>.+)$|^postgres: (?P<check>.+)$")
"""a line of the server's log saying why it stopped: `... FATAL:  unrecognized configuration parameter "x"`, or a
check of its settings before it logs anything (`postgres: superuser_reserved_connections (3) must be less than
max_connections (1)`)"""
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
WORKER_DATABASE = re.compile(r"gw\d+|" + re.escape(SESSION_WORKER_ID))
"""what follows `<db>_` in a worker's database name (`Worker.database`)"""


def server_command(pg: PostgresSettings) -> list[str] | None:
    """`postgres -c name=value ...`: the test tuning (when `tuned`) and the configured settings, which win; None
    (the image's own command) when there is neither. Settings go on the command line, not to initdb, so they apply
    to the official image (initdb at first start) and to the local one (a cluster baked at build time) alike."""
    settings = {**(TEST_TUNING if pg.tuned else {}), **pg.settings}
    if not settings:
        return None
    return ["postgres", *(arg for name, value in settings.items() for arg in ("-c", f"{name}={_text(value)}"))]


def snapshot_database(database: str, name: str) -> str:
    """The database that keeps snapshot `name` of `database` (a worker's: `app_gw0`): `app_gw0_snap_<name>`, under
    the environment's database's prefix, so that a reset of the environment (and so a sweep) drops it too; a name
    too long for Postgres is shortened with a hash."""
    slug = re.sub(r"[^a-z0-9_]", "_", name.lower())
    full = f"{database}_snap_{slug}"
    if len(full) <= MAX_DATABASE_NAME:
        return full
    digest = sha256(name.encode()).hexdigest()[:12]
    return f"{database}_snap_{slug}"[: MAX_DATABASE_NAME - len(digest) - 1] + "_" + digest


def _text(value: SettingValue) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def refused_setting(logs: str, settings: Iterable[str]) -> tuple[str, str] | None:
    """The first of `settings` that a line of the server's log names as why it stopped, with that line's words;
    None when no such line names one (parameter names are case-insensitive)."""
    keys = {name.lower(): name for name in settings}
    for line in logs.splitlines():
        found = STOPPED.search(line.strip())
        if found is None:
            continue
        message = (found["message"] or found["check"]).strip()
        for word in WORD.findall(message):
            if word.lower() in keys:
                return keys[word.lower()], message
    return None


class PostgresService(Service):
    name = "postgres"
    official_image = "postgres:15.10-bookworm"
    local_image = "envmgr-local/postgres:15"
    build_name = "postgres"
    ports = MappingProxyType({"postgres": PORT})
    probe_description = "SELECT 1"
    docs = ServiceDocs(
        local_image="cluster baked at build: ready in ~0.4 s",
        ready="`SELECT 1`",
        seeds="Alembic migrations, then `seeds/postgres/*.sql\\|dump\\|py\\|json\\|yaml` into a template",
        isolation="its own database cloned from the template",
        reset="savepoint rollback (~0.4 ms); fresh clone ~16 ms",
    )
    data_in_ram = True  # the data directory is a tmpfs (see container_spec)
    fixtures = "envmgr.services.postgres.fixtures"

    @property
    def pg(self) -> PostgresSettings:
        config = self.config
        assert isinstance(config, PostgresSettings)
        return config

    def container_spec(self, requirements: dict[str, ServiceEndpoint], worker: Worker) -> ContainerSpec:
        command = server_command(self.pg)
        env = {
            "POSTGRES_USER": self.pg.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_DB": self.pg.database,
            **self.pg.env,
        }
        # The data directory in RAM: a throw-away server, and CREATE DATABASE ... TEMPLATE several times faster.
        tmpfs = {env.get("PGDATA", DATA_DIR): ""}
        return ContainerSpec(image=self.image(), ports=dict(self.ports), env=env, command=command, tmpfs=tmpfs)

    def endpoint(self, published: Published) -> ServiceEndpoint:
        endpoint = self.published_endpoint(
            published, "postgresql", username=self.pg.user, password=self.password, path=self.pg.database,
            extra={"app_role": self.pg.app_role} if self.pg.app_role else {},
        )  # fmt: skip
        return endpoint.bind(**VARIABLES)

    def probe(self, endpoint: ServiceEndpoint) -> None:
        import psycopg

        if endpoint.extra.get("given"):  # the environment's database is made by prepare
            from envmgr.services.postgres.janitor import MAINTENANCE_DB

            endpoint = endpoint.with_path(MAINTENANCE_DB)
        with psycopg.connect(endpoint.url, connect_timeout=2, autocommit=True) as connection:
            connection.execute("SELECT 1")

    def diagnose(self, logs: str) -> ServerSettingError | None:
        """A setting of `postgres.settings` the server refused (`FATAL:  invalid value for parameter ...`)."""
        refused = refused_setting(logs, self.pg.settings)
        if refused is None:
            return None
        key, message = refused
        return ServerSettingError(
            self.name,
            f"postgres.settings.{key}: the server refused it: {message}",
            "correct or remove it in [tool.envmgr.postgres.settings] (or ENVMGR_POSTGRES__SETTINGS)",
            logs=logs,
        )

    def prepare(self, endpoint: ServiceEndpoint) -> ServiceEndpoint:
        """Build (or find) the migrated, seeded template; make the environment's database a fresh clone of it."""
        from envmgr.services.postgres.janitor import Janitor
        from envmgr.services.postgres.template.build import ensure_template

        result = ensure_template(endpoint, self.settings, commands=self.commands, progress=self.progress)
        with Janitor(endpoint) as janitor:
            janitor.clone(result.name, endpoint.path, self.pg.database_settings)
        facts = {
            "template": result.name,
            "template_created": "true" if result.created else "false",
            "migrate_seconds": f"{result.migrate_seconds:.3f}",
            "seed_seconds": f"{result.seed_seconds:.3f}",
            **({"template_cache": result.cache} if result.cache else {}),
            **({"template_restored": "true"} if result.restored else {}),
        }
        return endpoint.model_copy(update={"extra": {**endpoint.extra, **facts}})

    def recover(self, endpoint: ServiceEndpoint) -> ServiceEndpoint:
        """The template's name, from the hash of the migrations and seeds: no connection, nothing built."""
        from envmgr.services.postgres.template.content_hash import template_digest, template_name

        name = endpoint.extra.get("given_prefix", "") + template_name(self.settings, template_digest(self.settings))
        return endpoint.model_copy(update={"extra": {**endpoint.extra, "template": name}})

    def reset(self, endpoint: ServiceEndpoint) -> None:
        """The environment's database cloned anew from the template (other connections to it are terminated); each
        worker's database (`<db>_gw0`, `<db>_main`) a fresh clone again unless it still carries the fresh mark (no
        run took it since), for the next run's workers to take without cloning; anything else under `<db>_` (the
        snapshots) dropped."""
        from envmgr.services.postgres.janitor import Janitor

        template = self._template(endpoint)
        settings = self.pg.database_settings
        with Janitor(endpoint) as janitor:
            for name in janitor.list(f"{endpoint.path}_"):
                if name == template or janitor.is_template(name):
                    continue
                if WORKER_DATABASE.fullmatch(name.removeprefix(f"{endpoint.path}_")):
                    if not janitor.is_fresh(name, template, settings):
                        janitor.clone_fresh(template, name, settings)
                else:
                    janitor.drop(name)
            janitor.clone(template, endpoint.path, settings)

    # a server envmgr did not start ----------------------------------------------------------------------------

    def given_hold(self, url: str, env_id: str, workers: int) -> GivenHold:
        """Its login must create databases; the environment's database and its workers' are `envmgr_<id>_...`."""
        from envmgr.services.postgres.given import hold

        extra = {"app_role": self.pg.app_role} if self.pg.app_role else {}
        return hold(url, env_id, self.pg.database, VARIABLES, extra)

    def given_sweep(self, url: str) -> list[str]:
        from envmgr.services.postgres.given import sweep

        return sweep(url)

    # per worker: its own database, a clone of the template ---------------------------------------------------

    def worker_view(self, endpoint: ServiceEndpoint, worker: Worker) -> ServiceEndpoint:
        """The worker's database, logged in as the application role when one is configured (else the owner)."""
        view = endpoint.with_path(worker.database(endpoint.path))
        role = endpoint.extra.get("app_role")
        if not role:
            return view
        from envmgr.services.postgres.janitor import app_password

        return view.with_login(role, app_password(endpoint, role))

    def worker_setup(self, endpoint: ServiceEndpoint, worker: Worker) -> None:
        """The worker's database: taken as it is when it carries the fresh mark (an untouched clone the
        environment's reset left for the next run), else cloned from the template. It is kept after the run (no
        `worker_teardown`): the environment's reset marks it fresh again, or it goes with the environment."""
        if not worker.isolated:  # the environment's own database was cloned by prepare
            return
        from envmgr.services.postgres.janitor import Janitor

        template = self._template(endpoint)
        name = worker.database(endpoint.path)
        with Janitor(endpoint) as janitor:
            if not janitor.take_fresh(name, template, self.pg.database_settings):
                janitor.clone(template, name, self.pg.database_settings)

    def worker_reset(self, endpoint: ServiceEndpoint, worker: Worker) -> None:
        """The worker's database cloned anew from the template (its connections are terminated)."""
        from envmgr.services.postgres.janitor import Janitor

        with Janitor(endpoint) as janitor:
            janitor.clone(self._template(endpoint), worker.database(endpoint.path), self.pg.database_settings)

    # named snapshots: a copy of the worker's database on the same server ------------------------------------------

    def snapshot(self, endpoint: ServiceEndpoint, worker: Worker, name: str) -> object:
        """The worker's database copied into `<its name>_snap_<name>` (its sessions ended first)."""
        from envmgr.services.postgres.janitor import Janitor

        database = worker.database(endpoint.path)
        kept = snapshot_database(database, name)
        with Janitor(endpoint) as janitor:
            janitor.copy(database, kept)
        return kept

    def restore(self, endpoint: ServiceEndpoint, worker: Worker, name: str, kept: object) -> None:
        """The worker's database cloned anew from the snapshot's copy (its sessions are ended)."""
        from envmgr.services.postgres.janitor import Janitor

        with Janitor(endpoint) as janitor:
            janitor.clone(str(kept), worker.database(endpoint.path), self.pg.database_settings)

    def drop_snapshot(self, endpoint: ServiceEndpoint, worker: Worker, name: str, kept: object) -> None:
        from envmgr.services.postgres.janitor import Janitor

        with Janitor(endpoint) as janitor:
            janitor.drop(str(kept))

    def _template(self, endpoint: ServiceEndpoint) -> str:
        known = endpoint.extra.get("template")
        if known:
            return known  # the build machinery (Alembic, Django's strategy) is not imported for a reset
        from envmgr.services.postgres.template.build import ensure_template

        return ensure_template(endpoint, self.settings, commands=self.commands).name

    # compose ---------------------------------------------------------------------------------------------------

    def compose_healthcheck(self, endpoint: ServiceEndpoint, context: ComposeContext) -> list[str] | None:
        # -h 127.0.0.1: TCP, so the image's initialisation phase (a server on the Unix socket only) does not count
        return ["CMD", "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(endpoint.internal_port),
                "-U", context.text(endpoint.username or ""), "-d", context.text(endpoint.path)]  # fmt: skip

    def compose_notes(self) -> list[str]:
        notes = [
            "postgres: an empty database; envmgr's migrations (migrate, alembic_ini) and seeds/postgres are not "
            "applied: run them against the published port"
        ]
        applied_by_envmgr = [
            f"postgres.{key}"
            for key, value in (
                ("extensions", self.pg.extensions), ("locale", self.pg.locale), ("encoding", self.pg.encoding),
                ("database_settings", self.pg.database_settings), ("app_role", self.pg.app_role),
            )
            if value
        ]  # fmt: skip
        if applied_by_envmgr:
            notes.append(f"postgres: {', '.join(applied_by_envmgr)} are applied by envmgr's template only, not here")
        return notes
