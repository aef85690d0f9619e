"""The template database: migrated (`migrate.py`: Alembic, Django, a command or a function) and seeded once per
content (see `content_hash.py`) and server::

    result = ensure_template(endpoint, settings)          # app_tpl_<hash12>: migrated, seeded, IS_TEMPLATE
    with Janitor(endpoint) as janitor:
        janitor.clone(result.name, "app")                 # CREATE DATABASE app TEMPLATE app_tpl_<hash12>

It is built under another name (`<name>_building`), marked as a template and renamed only when complete, so a
half-built one never looks finished; a session-level advisory lock keeps two processes from building the same one.
Templates do not accept connections (`ALLOW_CONNECTIONS false`): `CREATE DATABASE ... TEMPLATE` fails while anyone is
connected to its template.

Built as the owner (the endpoint's superuser): with `postgres.locale` / `postgres.encoding` (from template0), then
`postgres.extensions`, then migrations and seeds; with `postgres.app_role`, that role may use schema public and all
its tables and sequences (those made later by the owner too). These settings are part of the template's name.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from envmgr.config import Settings
from envmgr.endpoints import ServiceEndpoint
from envmgr.errors import ConfigError, EnvmgrError, MigrationError, first_line
from envmgr.progress.events import Advanced, Noted, Progress, silent, timed
from envmgr.services.base import ContainerCommands
from envmgr.services.postgres.janitor import MAX_IDENTIFIER, Janitor, app_password
from envmgr.services.postgres.settings import PostgresSettings
from envmgr.services.postgres.template.cache import CacheKey, CacheOutcome, restore_entry, save_entry
from envmgr.services.postgres.template.changes import BUILDING, check_reached, fingerprints
from envmgr.services.postgres.template.content_hash import template_digest, template_name
from envmgr.services.postgres.template.migrate import migrate_strategy
from envmgr.services.postgres.tools import PgTools

__all__ = [
    "TemplateResult",
    "app_password",
    "building_name",
    "create_building",
    "database_variables",
    "ensure_template",
    "template_digest",
    "template_name",
]

GRANTS_BEFORE_MIGRATIONS = (
    "GRANT USAGE ON SCHEMA public TO {role}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO {role}",  # for what the owner makes later
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO {role}",
)
"""the application role's rights, given before migrations"""
GRANTS_AFTER_MIGRATIONS = (
    "GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}",
    "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}",
)
"""and after them and the seeds: on what another role (SET ROLE in a migration) made too"""


@dataclass(frozen=True)
class TemplateResult:
    """What ensure_template did: the template's name, whether this call built it, and how long each step took."""

    name: str
    created: bool
    migrate_seconds: float
    seed_seconds: float
    cache: str = ""
    """what the template cache did, in one line (restored, saved, an entry ignored and why); empty without one"""
    restored: bool = False
    """restored from the template cache (neither migrated nor seeded)"""


def building_name(name: str) -> str:
    """`<name>_building`, shortened at the front when it would pass Postgres's 63-byte limit (the hash is kept)."""
    suffix = BUILDING
    if len(name) + len(suffix) <= MAX_IDENTIFIER:
        return name + suffix
    keep = MAX_IDENTIFIER - len(suffix)
    return name[len(name) - keep :] + suffix


def ensure_template(
    endpoint: ServiceEndpoint,
    settings: Settings,
    *,
    commands: ContainerCommands | None = None,
    progress: Progress = silent,
) -> TemplateResult:
    """Make sure the server has the template database for the project's current migrations and seeds.

    `endpoint` is the server's superuser endpoint (its path does not matter); `commands` run PostgreSQL's client
    programs in its container (custom-format dump seeds), when envmgr runs it. When `<database>_tpl_<hash>` exists,
    returns at once (`created=False`); otherwise builds it (see the module's documentation). On failure the
    half-built database is dropped and `MigrationError` or `SeedError` is raised. `progress` hears the migrations
    (phase `migrate`, counted when the strategy can count them) and the seeds (phase `seed`, a file at a time), with
    the seconds the result holds, or that the template was there already.
    """
    digest = template_digest(settings)
    plain = template_name(settings, digest)
    name = endpoint.extra.get("given_prefix", "") + plain  # on a server envmgr did not start: envmgr_<id>_...
    role = settings.postgres.app_role
    try:
        janitor = Janitor(endpoint)
        with janitor:
            if role is not None:  # a role belongs to the server: made (again) even when the template exists
                janitor.ensure_role(role, app_password(endpoint, role))
            if janitor.exists(name):
                return _reused(name, endpoint.service, progress)
            with janitor.lock(f"envmgr-template:{name}"):
                if janitor.exists(name):  # another process built it while this one waited
                    return _reused(name, endpoint.service, progress)
                told = _Told(endpoint.service, progress)
                tools = PgTools(endpoint, commands)
                return _build(janitor, name, settings, digest, tools=tools, told=told, cache_name=plain)
    except EnvmgrError:
        raise
    except psycopg.Error as exc:
        raise MigrationError(
            f"building template database {name} failed: {type(exc).__name__}: {first_line(exc)}",
            "check that the Postgres server is running and the endpoint's user may create databases",
        ) from None


def _reused(name: str, service: str, progress: Progress) -> TemplateResult:
    progress(Noted(service, f"template {name} reused (migrations and seeds skipped)"))
    return TemplateResult(name, created=False, migrate_seconds=0.0, seed_seconds=0.0)


@dataclass(frozen=True)
class _Told:
    """Where the build's steps are told: the service's progress sink."""

    service: str
    progress: Progress

    def migration(self, done: int, total: int, label: str) -> None:
        self.progress(Advanced(self.service, "migrate", done, total, detail=label))

    def seed(self, done: int, total: int, name: str) -> None:
        self.progress(Advanced(self.service, "seed", done, total, detail=name))


def _build(
    janitor: Janitor, name: str, settings: Settings, digest: str, *, tools: PgTools, told: _Told, cache_name: str
) -> TemplateResult:
    building = building_name(name)
    janitor.drop(building)  # left by a build whose process died
    cache = _cache(janitor, cache_name, settings, digest)
    lines: list[str] = []
    if cache is not None:  # restored instead of migrated when the cache has it
        create_building(janitor, building, settings.postgres)
        try:
            restored = restore_entry(*cache, tools, building)
            if restored.state == "hit":
                _complete(janitor, building, name)
                told.progress(Noted(told.service, restored.line))
                return TemplateResult(name, True, 0.0, 0.0, cache=restored.line, restored=True)
        except BaseException:
            with suppress(psycopg.Error):
                janitor.drop(building)
            raise
        janitor.drop(building)
        lines.append(_said(restored))
    create_building(janitor, building, settings.postgres)
    try:
        roles = janitor.roles() if cache is not None else frozenset()
        migrate_seconds, seed_seconds = _migrate_and_seed(janitor, building, settings, tools, told)
        if cache is not None:
            made = sorted(janitor.roles() - roles)
            lines.append(_said(save_entry(*cache, tools, building) if not made else CacheOutcome(
                "not saved", f"template cache: {name} not saved: its migrations or seeds created roles ("
                f"{', '.join(made)}), which live in the server, not in a dump of the database")))  # fmt: skip
        _complete(janitor, building, name)
    except BaseException:
        with suppress(psycopg.Error):
            janitor.drop(building)
        raise
    return TemplateResult(name, created=True, migrate_seconds=migrate_seconds, seed_seconds=seed_seconds,
                          cache="; ".join(line for line in lines if line))  # fmt: skip


def _migrate_and_seed(
    janitor: Janitor, building: str, settings: Settings, tools: PgTools, told: _Told
) -> tuple[float, float]:
    """Extensions and grants, migrations, seeds and grants again into `building`: the seconds of migrate and seed."""
    url = janitor.url(building)
    migrate_seconds = seed_seconds = 0.0
    _before_migrations(janitor, url, settings.postgres)
    strategy = migrate_strategy(settings)
    if strategy is not None:
        label = strategy.label
        with timed(told.progress, told.service, "migrate", detail=label) as lap:
            database = janitor.admin.with_path(building)
            before = fingerprints(janitor)
            strategy.migrate(  # the template's variables: in os.environ only for what runs in this process
                url,
                around=_migration_context(settings, database),
                steps=lambda done, total: told.migration(done, total, label),
                variables=database_variables(database, settings),
            )
            check_reached(strategy, building, before, fingerprints(janitor))  # never seed or keep an empty one
        migrate_seconds = lap.seconds
    seeds = settings.seeds_path()
    if seeds is not None:
        with timed(told.progress, told.service, "seed", detail=str(seeds)) as lap:
            from envmgr.services.postgres.template.seeds import load_postgres_seeds  # SQLAlchemy: when seeds load

            load_postgres_seeds(url, seeds, told.seed, tools=tools)
        seed_seconds = lap.seconds
    if settings.postgres.app_role is not None:  # what migrations and seeds made, whoever made it
        with psycopg.connect(url, autocommit=True) as connection:
            _grant(connection, settings.postgres.app_role, GRANTS_AFTER_MIGRATIONS)
    return migrate_seconds, seed_seconds


def _complete(janitor: Janitor, building: str, name: str) -> None:
    """Make it a template that takes no connections, then give it its final name in one step."""
    janitor.mark_template(building)
    janitor.rename(building, name)


def _cache(janitor: Janitor, name: str, settings: Settings, digest: str) -> tuple[Path, CacheKey] | None:
    """The template cache's folder and this template's key there, when `postgres.template_cache` is set."""
    folder = settings.postgres.template_cache
    if folder is None:
        return None
    key = CacheKey.of(name, digest, janitor.server_version, settings)
    return settings.project_root / folder, key  # an absolute folder stays itself


def _said(outcome: CacheOutcome) -> str:
    """The outcome's line, also on stderr when it is a problem (an entry ignored, a template not saved)."""
    if outcome.state in ("ignored", "not saved"):
        sys.stderr.write(f"envmgr: warning: {outcome.line}\n")
    return outcome.line


def _migration_context(settings: Settings, database: ServiceEndpoint) -> AbstractContextManager[object] | None:
    """What the in-process upgrade runs in: the Flask app's context when `flask.app` is set (Flask-Migrate's env.py
    needs it), the app made while the database's variables name the template being built."""
    if settings.flask.app is None:
        return None
    from envmgr.integrations.flask import migration_app

    variables = database_variables(database, settings)
    return migration_app(settings.flask.app, variables, database.path, settings.project_root)


def database_variables(database: ServiceEndpoint, settings: Settings) -> dict[str, str]:
    """The variables that name one database, for the process that migrates it: its own (DATABASE_URL, POSTGRES_*)
    and the export table's that name only it (`SQLALCHEMY_DATABASE_URI = "{postgres.url:psycopg}"`)."""
    return {**database.variables, **settings.export_table().render({database.service: database})}


def create_building(janitor: Janitor, name: str, pg: PostgresSettings) -> None:
    """The database to build the template in, with the configured encoding and locale."""
    try:
        janitor.create(name, encoding=pg.encoding, locale=pg.locale)
    except psycopg.Error as exc:
        if not (pg.locale or pg.encoding):
            raise
        keys = ", ".join(f"postgres.{key} = {value!r}" for key, value in (("locale", pg.locale), ("encoding",
                         pg.encoding)) if value)  # fmt: skip
        raise ConfigError(
            f"the server cannot make a database with {keys}: {first_line(exc)}",
            f"use a locale of the server's image ({', '.join(janitor.available_locales())}; C.UTF-8 and en_US.UTF-8 "
            "are in both image sets) with an encoding it supports (UTF8 for *.UTF-8), or an image that has it",
        ) from None


def _before_migrations(janitor: Janitor, url: str, pg: PostgresSettings) -> None:
    """The extensions, and the application role's rights on schema public (and on what the owner makes in it)."""
    with psycopg.connect(url, autocommit=True) as connection:
        for extension in pg.extensions:
            try:
                connection.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(extension)))
            except psycopg.Error as exc:
                raise ConfigError(
                    f"postgres.extensions: cannot create extension {extension!r}: {first_line(exc)}",
                    f"choose among the image's: {', '.join(janitor.available_extensions())}; or use an image that "
                    "has it",
                ) from None
        if pg.app_role is not None:
            _grant(connection, pg.app_role, GRANTS_BEFORE_MIGRATIONS)


def _grant(connection: psycopg.Connection[tuple[object, ...]], role: str, statements: tuple[str, ...]) -> None:
    for statement in statements:
        connection.execute(sql.SQL(statement).format(role=sql.Identifier(role)))
