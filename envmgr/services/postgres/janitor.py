"""The janitor: creates, clones, marks and drops databases on a Postgres server.

A clone can carry a *fresh mark* (the database's comment, `envmgr fresh <template> <settings digest>`): it is an
untouched copy of that template with those settings. A worker takes a marked database instead of cloning one
(`take_fresh` clears the mark first: from then on it may change), and the environment's reset makes every worker's
database a marked clone again, so the next run's workers find theirs ready, as `--reuse-db` keeps its test database.

The server belongs to `Environment`; the janitor works on it through the superuser endpoint, connected to the
maintenance database `postgres` in autocommit mode; the template builder (`template.py`) and the loaders
(`envmgr.migrations`, `envmgr.seeds`) know what to put in a database. Identifiers always go through
`psycopg.sql.Identifier`.
"""

from __future__ import annotations

import builtins
import hmac
from base64 import urlsafe_b64encode
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from hashlib import sha256
from types import TracebackType

import psycopg
from psycopg import sql

from envmgr.endpoints import ServiceEndpoint
from envmgr.errors import EnvmgrError, SnapshotError
from envmgr.services.settings import DatabaseSettingValue

__all__ = ["MAINTENANCE_DB", "MAX_IDENTIFIER", "Janitor", "app_password", "fresh_mark", "setting_value"]

MAINTENANCE_DB = "postgres"
MAX_IDENTIFIER = 63  # NAMEDATALEN - 1: Postgres truncates longer names
BUILD_LOCK_TIMEOUT = "10min"


def app_password(endpoint: ServiceEndpoint, role: str) -> str:
    """The application role's password on this server: derived from the owner's random one (so a process that
    attaches to the environment knows it without another secret in the containers' labels)."""
    key = (endpoint.password or "").encode()
    return urlsafe_b64encode(hmac.digest(key, f"envmgr-app-role:{role}".encode(), "sha256")[:18]).decode()


def fresh_mark(template: str, settings: Mapping[str, DatabaseSettingValue] | None = None) -> str:
    """The comment of a database that is an untouched clone of `template` with the per-database `settings`."""
    digest = sha256(repr(sorted((settings or {}).items())).encode()).hexdigest()[:12]
    return f"envmgr fresh {template} {digest}"


class Janitor:
    """Database administration on one server, through its superuser endpoint (any path: the janitor uses `postgres`)."""

    def __init__(self, admin: ServiceEndpoint, *, maintenance_db: str = MAINTENANCE_DB, connect_timeout: int = 10):
        self.admin = admin
        self.maintenance_db = maintenance_db
        self.connect_timeout = connect_timeout
        self._connection: psycopg.Connection[tuple[object, ...]] | None = None

    # connection ---------------------------------------------------------------------------------------------

    @property
    def connection(self) -> psycopg.Connection[tuple[object, ...]]:
        """The autocommit connection to the maintenance database (opened on first use)."""
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(
                self.admin.with_path(self.maintenance_db).url,
                autocommit=True,
                connect_timeout=self.connect_timeout,
                application_name="envmgr-janitor",
            )
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> Janitor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def url(self, name: str) -> str:
        """The URL of database `name` on this server (with the superuser's credentials)."""
        return self.admin.with_path(name).url

    @property
    def server_version(self) -> int:
        """e.g. 150010 for 15.10."""
        return self.connection.info.server_version

    def _execute(self, query: sql.Composed | sql.SQL, params: tuple[object, ...] | None = None) -> None:
        self.connection.execute(query, params)

    # inspection ---------------------------------------------------------------------------------------------

    def exists(self, name: str) -> bool:
        row = self.connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return row is not None

    def is_template(self, name: str) -> bool:
        row = self.connection.execute("SELECT datistemplate FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return bool(row and row[0])

    def connections(self, name: str) -> int:
        """How many sessions other than the janitor's are connected to `name`."""
        row = self.connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,)
        ).fetchone()
        return int(str(row[0])) if row else 0

    # changes ------------------------------------------------------------------------------------------------

    def create(
        self, name: str, template: str | None = None, *, encoding: str | None = None, locale: str | None = None
    ) -> None:
        """CREATE DATABASE name [TEMPLATE template] [ENCODING encoding] [LC_COLLATE locale LC_CTYPE locale]; with an
        encoding or a locale and no template, the template is template0 (template1 may not match them)."""
        if template is None and (encoding or locale):
            template = "template0"
        parts = [sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))]
        if template is not None:
            parts.append(sql.SQL("TEMPLATE {}").format(sql.Identifier(template)))
        if encoding:
            parts.append(sql.SQL("ENCODING {}").format(sql.Literal(encoding)))
        if locale:
            parts.append(sql.SQL("LC_COLLATE {0} LC_CTYPE {0}").format(sql.Literal(locale)))
        self._execute(sql.SQL(" ").join(parts))

    def set_defaults(self, name: str, settings: Mapping[str, DatabaseSettingValue]) -> None:
        """ALTER DATABASE name SET setting = value, for each: the defaults of every new session on `name`."""
        for setting, value in settings.items():
            self._execute(
                sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                    sql.Identifier(name), sql.Identifier(*setting.split(".")), setting_value(value)
                )
            )

    def ensure_role(self, role: str, password: str) -> None:
        """A login role that is not a superuser, creates no databases or roles and is subject to row-level security,
        with this password (created, or its password and attributes set again)."""
        attributes = sql.SQL("LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD {}").format(
            sql.Literal(password)
        )
        try:
            self._execute(sql.SQL("CREATE ROLE {} ").format(sql.Identifier(role)) + attributes)
        except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):  # made before, or just now by another
            self._execute(sql.SQL("ALTER ROLE {} ").format(sql.Identifier(role)) + attributes)

    def roles(self) -> frozenset[str]:
        """The names of the server's roles."""
        return frozenset(str(row[0]) for row in self.connection.execute("SELECT rolname FROM pg_roles").fetchall())

    def available_locales(self) -> builtins.list[str]:
        """The operating system's locales the server knows (imported when its cluster was initialised)."""
        rows = self.connection.execute(
            "SELECT DISTINCT collcollate FROM pg_collation WHERE collprovider = 'c' ORDER BY 1"
        ).fetchall()
        return [str(row[0]) for row in rows]

    def available_extensions(self) -> builtins.list[str]:
        rows = self.connection.execute("SELECT name FROM pg_available_extensions ORDER BY name").fetchall()
        return [str(row[0]) for row in rows]

    def terminate(self, name: str) -> int:
        """End every other session connected to `name`; return how many were signalled."""
        row = self.connection.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s AND pid <> "
            "pg_backend_pid()",
            (name,),
        ).fetchone()
        return int(str(row[0])) if row else 0

    def drop(self, name: str) -> bool:
        """Drop `name` even while others are connected to it (they are disconnected); False when it did not exist."""
        if not self.exists(name):
            return False
        if self.is_template(name):  # Postgres refuses to drop a template database
            self._execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(name)))
        if self.server_version >= 130000:
            self._execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        else:  # pragma: no cover - servers before 13 have no FORCE
            self._execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
            self.terminate(name)
            self._execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        return True

    def clone(self, template: str, name: str, settings: Mapping[str, DatabaseSettingValue] | None = None) -> None:
        """Make `name` a fresh copy of `template`: drop it if it exists, then CREATE DATABASE name TEMPLATE template,
        then give it the per-database `settings` (Postgres copies no `ALTER DATABASE ... SET` from a template).

        The template must have no other sessions (a marked template accepts none). Postgres waits up to 5 s for
        sessions that are closing, then the clone fails with an `EnvmgrError` that says how many are connected.
        """
        self.drop(name)
        try:
            self.create(name, template=template)
        except psycopg.errors.ObjectInUse:
            raise EnvmgrError(
                f"cannot clone {template} into {name}: {self.connections(template)} other session(s) are connected "
                f"to {template}",
                "close the connections to the template database, or mark it with Janitor.mark_template",
            ) from None
        if settings:
            self.set_defaults(name, settings)

    def clone_fresh(self, template: str, name: str, settings: Mapping[str, DatabaseSettingValue] | None = None) -> None:
        """`clone`, then the fresh mark on the clone (nobody has used it yet)."""
        self.clone(template, name, settings)
        self.mark(name, fresh_mark(template, settings))

    def mark(self, name: str, comment: str | None) -> None:
        """COMMENT ON DATABASE name IS comment (None: no comment)."""
        value = sql.Literal(comment) if comment is not None else sql.SQL("NULL")
        self._execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), value))

    def is_fresh(self, name: str, template: str, settings: Mapping[str, DatabaseSettingValue] | None = None) -> bool:
        """Whether `name` exists and carries the fresh mark of `template` with `settings`."""
        row = self.connection.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        return row is not None and row[0] == fresh_mark(template, settings)

    def take_fresh(self, name: str, template: str, settings: Mapping[str, DatabaseSettingValue] | None = None) -> bool:
        """Take `name` for use when it carries the fresh mark of `template` with `settings` (the mark is cleared:
        from now on it may change); False when it does not exist or is not marked so (then clone it)."""
        if not self.is_fresh(name, template, settings):
            return False
        self.mark(name, None)
        return True

    def copy(self, source: str, name: str, attempts: int = 3) -> None:
        """Make `name` a copy of `source`, a database in use (a snapshot of it): `source`'s sessions are ended first
        (CREATE DATABASE ... TEMPLATE needs it alone), again when a pool connects anew meanwhile."""
        self.drop(name)
        for attempt in range(attempts):
            self.terminate(source)
            try:
                self.create(name, template=source)
                return
            except psycopg.errors.ObjectInUse:
                if attempt == attempts - 1:
                    raise SnapshotError(
                        f"cannot copy {source} into {name}: {self.connections(source)} session(s) connected to it "
                        f"again each time they were ended",
                        "stop what keeps connecting to it (a pool with a minimum size) while the snapshot is taken",
                    ) from None

    def rename(self, old: str, new: str) -> None:
        """ALTER DATABASE old RENAME TO new (nobody may be connected to `old`)."""
        self._execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(old), sql.Identifier(new)))

    def mark_template(self, name: str) -> None:
        """Make `name` a template that accepts no connections, and end the sessions still connected to it."""
        self._execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(sql.Identifier(name))
        )
        self.terminate(name)

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Names of the databases that start with `prefix`, sorted."""
        rows = self.connection.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY datname", (prefix,)
        ).fetchall()
        return [str(row[0]) for row in rows]

    @contextmanager
    def lock(self, key: str, timeout: str = BUILD_LOCK_TIMEOUT) -> Iterator[None]:
        """A server-wide advisory lock named by `key`, held by the janitor's session (released if it dies)."""
        number = int.from_bytes(sha256(key.encode()).digest()[:8], "big", signed=True)
        self.connection.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(timeout)))
        try:
            self.connection.execute("SELECT pg_advisory_lock(%s)", (number,))
        finally:
            self.connection.execute("SET lock_timeout = 0")
        try:
            yield
        finally:
            if not self.connection.closed:
                self.connection.execute("SELECT pg_advisory_unlock(%s)", (number,))


def setting_value(value: DatabaseSettingValue) -> sql.Composable:
    """A setting's value as SQL: a bool as on/off, a list as a list (search_path = 'app', 'public')."""
    if isinstance(value, bool):
        return sql.Literal("on" if value else "off")
    if isinstance(value, list):
        return sql.SQL(", ").join(sql.Literal(part) for part in value)
    return sql.Literal(value)
