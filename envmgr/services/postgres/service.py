"""PostgreSQL: the server, tuned for tests, reached with psycopg 3.

The server is prepared once (a template database, migrated and seeded: `template.py`); the environment's database
and each worker's (`<db>_gwN`) are clones of it, made and dropped by the janitor (`janitor.py`).
"""

from __future__ import annotations

from types import MappingProxyType

from envmgr.config import PostgresSettings
from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.services.base import ComposeContext, ContainerSpec, Published, Service

__all__ = ["PostgresService"]

PORT = 5432
DATA_DIR = "/var/lib/postgresql/data"
# Durability is worthless in a throw-away test server and costs most of the time of CREATE DATABASE ... TEMPLATE.
TEST_TUNING = (
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=200",
)


class PostgresService(Service):
    name = "postgres"
    official_image = "postgres:15.10-bookworm"
    local_image = "envmgr-local/postgres:15"
    build_context = "postgres"
    ports = MappingProxyType({"postgres": PORT})
    probe_description = "SELECT 1"
    data_in_ram = True  # the data directory is a tmpfs (see container_spec)
    fixtures = "envmgr.services.postgres.fixtures"

    @property
    def pg(self) -> PostgresSettings:
        config = self.config
        assert isinstance(config, PostgresSettings)
        return config

    def container_spec(self, requirements: dict[str, ServiceEndpoint], worker: Worker) -> ContainerSpec:
        command: list[str] | None = None
        if self.pg.tuned:
            command = ["postgres"] + [arg for setting in TEST_TUNING for arg in ("-c", setting)]
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
        endpoint = ServiceEndpoint(
            service=self.name,
            scheme="postgresql",
            host=published.host,
            port=published.ports["postgres"],
            internal_host=published.alias,
            internal_port=PORT,
            username=self.pg.user,
            password=self.password,
            path=self.pg.database,
            image=published.image,
            container=published.container,
        )
        return endpoint.model_copy(update={"variables": {"DATABASE_URL": endpoint.url}})

    def probe(self, endpoint: ServiceEndpoint) -> None:
        import psycopg

        with psycopg.connect(endpoint.url, connect_timeout=2, autocommit=True) as connection:
            connection.execute("SELECT 1")

    def prepare(self, endpoint: ServiceEndpoint) -> ServiceEndpoint:
        """Build (or find) the migrated, seeded template; make the environment's database a fresh clone of it."""
        from envmgr.services.postgres.janitor import Janitor
        from envmgr.services.postgres.template import ensure_template

        result = ensure_template(endpoint, self.settings)
        with Janitor(endpoint) as janitor:
            janitor.clone(result.name, self.pg.database)
        facts = {
            "template": result.name,
            "template_created": "true" if result.created else "false",
            "migrate_seconds": f"{result.migrate_seconds:.3f}",
            "seed_seconds": f"{result.seed_seconds:.3f}",
        }
        return endpoint.model_copy(update={"extra": {**endpoint.extra, **facts}})

    def recover(self, endpoint: ServiceEndpoint) -> ServiceEndpoint:
        """The template's name, from the hash of the migrations and seeds: no connection, nothing built."""
        from envmgr.migrations import content_hash
        from envmgr.services.postgres.template import template_name

        name = template_name(self.settings, content_hash(self.settings))
        return endpoint.model_copy(update={"extra": {**endpoint.extra, "template": name}})

    def reset(self, endpoint: ServiceEndpoint) -> None:
        """The environment's database cloned anew from the template (other connections to it are terminated) and
        the workers' databases (`<db>_gw0`, `<db>_main`, ...) dropped."""
        from envmgr.services.postgres.janitor import Janitor

        template = self._template(endpoint)
        with Janitor(endpoint) as janitor:
            for name in janitor.list(f"{self.pg.database}_"):
                if name != template and not janitor.is_template(name):
                    janitor.drop(name)
            janitor.clone(template, self.pg.database)

    # per worker: its own database, a clone of the template ---------------------------------------------------

    def worker_view(self, endpoint: ServiceEndpoint, worker: Worker) -> ServiceEndpoint:
        return endpoint.with_path(worker.database(endpoint.path))

    def worker_setup(self, endpoint: ServiceEndpoint, worker: Worker) -> None:
        if worker.isolated:  # the environment's own database was cloned by prepare
            self.worker_reset(endpoint, worker)

    def worker_reset(self, endpoint: ServiceEndpoint, worker: Worker) -> None:
        """The worker's database cloned anew from the template (its connections are terminated)."""
        from envmgr.services.postgres.janitor import Janitor

        with Janitor(endpoint) as janitor:
            janitor.clone(self._template(endpoint), worker.database(endpoint.path))

    def worker_teardown(self, endpoint: ServiceEndpoint, worker: Worker) -> None:
        if not worker.isolated:
            return  # the environment's own database outlives the worker
        from envmgr.services.postgres.janitor import Janitor

        with Janitor(endpoint) as janitor:
            janitor.drop(worker.database(endpoint.path))

    def _template(self, endpoint: ServiceEndpoint) -> str:
        from envmgr.services.postgres.template import ensure_template

        return endpoint.extra.get("template") or ensure_template(endpoint, self.settings).name

    # compose ---------------------------------------------------------------------------------------------------

    def compose_healthcheck(self, endpoint: ServiceEndpoint, context: ComposeContext) -> list[str] | None:
        # -h 127.0.0.1: TCP, so the image's initialisation phase (a server on the Unix socket only) does not count
        return ["CMD", "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(endpoint.internal_port),
                "-U", context.text(endpoint.username or ""), "-d", context.text(endpoint.path)]  # fmt: skip

    def compose_notes(self) -> list[str]:
        return [
            "postgres: an empty database; envmgr's migrations (migrate, alembic_ini) and seeds/postgres are not "
            "applied: run them against the published port"
        ]
