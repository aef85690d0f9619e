"""Postgres on a server envmgr did not start (`postgres.url`): the environment's hold on it, its release, the sweep.

The URL's login is the owner of everything envmgr makes there (it must be able to CREATE DATABASE); the
environment's database is `envmgr_<id>_<database>`, the workers' clones `envmgr_<id>_<database>_gwN`, the template
`envmgr_<id>_<database>_tpl_<hash>`. While the environment runs, a session of its own holds a server-wide advisory
lock named by its id: the sweep drops the `envmgr_<id>_*` databases of an id whose lock it can take (its owner's
session is gone: a killed run), and never those of a live one.
"""

from __future__ import annotations

from collections.abc import Mapping
from hashlib import sha256

import psycopg

from envmgr.endpoints import Component, ServiceEndpoint
from envmgr.errors import ConfigError
from envmgr.services.given import GIVEN_PREFIX, GivenUrl, given_prefix
from envmgr.services.postgres.janitor import MAINTENANCE_DB, MAX_IDENTIFIER, Janitor

__all__ = ["PostgresHold", "hold", "sweep"]

SCHEMES = ("postgresql", "postgres")
PORT = 5432
CONNECT_TIMEOUT = 3
LONGEST_SUFFIX = len("_tpl_") + 12 + len("_building")
"""what the template's name (while it is built) adds to the environment's database name"""


def lock_key(env_id: str) -> int:
    """The advisory lock an environment's session holds on a given server while it runs."""
    return int.from_bytes(sha256(f"envmgr-given:{env_id}".encode()).digest()[:8], "big", signed=True)


def parse(url: str) -> GivenUrl:
    example = 'postgresql://user:password@host:5432/postgres (e.g. "${DATABASE_URL}")'
    return GivenUrl.of_setting(url, "postgres", SCHEMES, PORT, example)


def _connect(url: str, application: str) -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit session; ConnectionError (the server's first line) when the server does not answer."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT, application_name=application)
    except psycopg.OperationalError as exc:
        raise ConnectionError(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__) from None


def _admin(given: GivenUrl) -> ServiceEndpoint:
    return ServiceEndpoint(
        service="postgres", scheme="postgresql", host=given.host, port=given.port, internal_host=given.host,
        internal_port=given.port, username=given.username, password=given.password, path=MAINTENANCE_DB,
    )  # fmt: skip


class PostgresHold:
    """The environment's session on the server (holding its lock) and its endpoint; `release` drops every
    database whose name starts with the environment's prefix, then ends the session."""

    def __init__(self, connection: psycopg.Connection[tuple[object, ...]], endpoint: ServiceEndpoint, prefix: str):
        self._connection = connection
        self._endpoint = endpoint
        self.prefix = prefix

    @property
    def endpoint(self) -> ServiceEndpoint:
        return self._endpoint

    def release(self) -> list[str]:
        try:
            with Janitor(self._endpoint) as janitor:
                dropped = [name for name in janitor.list(self.prefix) if janitor.drop(name)]
        finally:
            self._connection.close()  # the lock goes with the session
        return [f"postgres database {name}" for name in dropped]


def hold(
    url: str, env_id: str, database: str, variables: Mapping[str, Component], extra: Mapping[str, str]
) -> PostgresHold:
    """Take hold of the server at `url` for environment `env_id` (see the module's documentation)."""
    given = parse(url)
    prefix = given_prefix(env_id)
    name = prefix + database
    if len(name) + LONGEST_SUFFIX > MAX_IDENTIFIER:
        raise ConfigError(
            f"postgres.database {database!r} is too long for a given server: {name}_tpl_<hash> would pass Postgres's "
            f"{MAX_IDENTIFIER}-byte limit on names",
            f"use a postgres.database of at most {MAX_IDENTIFIER - LONGEST_SUFFIX - len(prefix)} characters",
        )
    admin = _admin(given)
    connection = _connect(admin.url, f"envmgr-{env_id}")
    try:
        row = connection.execute(
            "SELECT current_user, rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        if row is None or not row[1]:
            role = row[0] if row else given.username
            raise ConfigError(
                f"postgres: the role {role} of postgres.url ({given.masked}) may not create databases, and envmgr "
                "makes the template and one database per worker there",
                f"give it the right (ALTER ROLE {role} CREATEDB) or point postgres.url at a role that has it",
            )
        connection.execute("SELECT pg_advisory_lock(%s)", (lock_key(env_id),))
    except BaseException:
        connection.close()
        raise
    facts = {**extra, "given": "true", "given_prefix": prefix}
    endpoint = admin.model_copy(update={"path": name, "extra": facts}).bind(**variables)
    return PostgresHold(connection, endpoint, prefix)


def sweep(url: str) -> list[str]:
    """Drop the `envmgr_<id>_*` databases of every environment whose session is gone; return what was dropped."""
    admin = _admin(parse(url))
    connection = _connect(admin.url, "envmgr-sweep")
    removed: list[str] = []
    try:
        rows = connection.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY datname", (GIVEN_PREFIX,)
        ).fetchall()
        by_env: dict[str, list[str]] = {}
        for (name,) in rows:
            env_id = str(name)[len(GIVEN_PREFIX) :].partition("_")[0]
            by_env.setdefault(env_id, []).append(str(name))
        with Janitor(admin) as janitor:
            for env_id, names in by_env.items():
                key = lock_key(env_id)
                row = connection.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                if not (row and row[0]):
                    continue  # its environment's session holds it: a live run
                try:
                    for name in names:
                        try:
                            if janitor.drop(name):
                                removed.append(f"postgres database {name} (environment {env_id})")
                        except psycopg.Error:  # another role's: not this login's to drop
                            continue
                finally:
                    connection.execute("SELECT pg_advisory_unlock(%s)", (key,))
    finally:
        connection.close()
    return removed
