"""PostgreSQL: the server, tuned for tests, reached with psycopg 3."""

from __future__ import annotations

from types import MappingProxyType

import psycopg

from envmgr.config import PostgresSettings
from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.services.base import ContainerSpec, Published, Service

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
        with psycopg.connect(endpoint.url, connect_timeout=2, autocommit=True) as connection:
            connection.execute("SELECT 1")

    def prepare(self, endpoint: ServiceEndpoint) -> ServiceEndpoint:
        """Build (or find) the migrated, seeded template; make the environment's database a fresh clone of it."""
        from envmgr.database import Janitor, ensure_template

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
        from envmgr.database import template_name
        from envmgr.migrations import content_hash

        name = template_name(self.settings, content_hash(self.settings))
        return endpoint.model_copy(update={"extra": {**endpoint.extra, "template": name}})

    def restore_worker(self, endpoint: ServiceEndpoint, worker: Worker) -> None:
        """The worker's database cloned again from the template (other workers' clones are not restored)."""
        if worker.isolated:
            from envmgr.database import Janitor, ensure_template

            with Janitor(endpoint) as janitor:
                janitor.clone(ensure_template(endpoint, self.settings).name, worker.database(self.pg.database))

    def reset(self, endpoint: ServiceEndpoint) -> None:
        """The environment's database cloned anew from the template (other connections to it are terminated) and
        the workers' databases (`<db>_gw0`, `<db>_main`, ...) dropped."""
        from envmgr.database import Janitor, ensure_template

        template = endpoint.extra.get("template") or ensure_template(endpoint, self.settings).name
        with Janitor(endpoint) as janitor:
            for name in janitor.list(f"{self.pg.database}_"):
                if name != template and not janitor.is_template(name):
                    janitor.drop(name)
            janitor.clone(template, self.pg.database)
