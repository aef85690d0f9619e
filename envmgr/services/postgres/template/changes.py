"""Which databases of the server the migrations changed: the check that they reached the template.

Migrations that take their URL from somewhere else than envmgr gives it (a settings object made before the build,
a URL fixed in alembic.ini or a .env file) migrate another database and leave the template empty; its seeds would
then fail on a right seed file, or, with no seeds, every clone would have no tables. So the build takes a fingerprint
of each database of the server that takes connections before migrating and after (`fingerprints`: its schemas,
relations with their columns, types, functions, extensions and Alembic's version rows; one query per database, a
few ms), and `check_reached` stops it with a `MigrationError` naming the database the migrations changed instead
(or as well), or saying that none changed (they reached another server).

    before = fingerprints(janitor)
    strategy.migrate(url)
    check_reached(strategy, building, before, fingerprints(janitor))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import psycopg
from psycopg import sql

from envmgr.errors import MigrationError
from envmgr.services.postgres.janitor import Janitor

__all__ = ["BUILDING", "Fingerprints", "check_reached", "fingerprints"]

Fingerprints = Mapping[str, str]
"""database -> the fingerprint of its schema"""

USER_SCHEMA = "{n}.nspname NOT IN ('pg_catalog', 'information_schema') AND {n}.nspname NOT LIKE 'pg\\_%'"
CATALOG = f"""
SELECT item FROM (
    SELECT 'schema ' || n.nspname FROM pg_namespace n WHERE {USER_SCHEMA.format(n="n")}
    UNION ALL
    SELECT 'relation ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_SCHEMA.format(n="n")}
    UNION ALL
    SELECT 'column ' || n.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE a.attnum > 0 AND NOT a.attisdropped AND {USER_SCHEMA.format(n="n")}
    UNION ALL
    SELECT 'type ' || n.nspname || '.' || t.typname || ' ' || t.typtype::text
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typtype IN ('e', 'd', 'r', 'm')
    AND {USER_SCHEMA.format(n="n")}
    UNION ALL
    SELECT 'function ' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {USER_SCHEMA.format(n="n")}
    UNION ALL
    SELECT 'extension ' || extname FROM pg_extension
) AS catalog(item) ORDER BY item
"""
"""what a migration changes: every object of the database's own schemas (not the system's)"""
VERSION_TABLES = f"""
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = 'alembic_version' AND c.relkind = 'r' AND {USER_SCHEMA.format(n="n")}
"""
CONNECT_TIMEOUT = 5
BUILDING = "_building"
"""the suffix of a template being built (by another process, maybe at the same time: not a database migrations
reached by mistake)"""


class Migration(Protocol):
    """What the check says about the strategy that ran (`MigrateStrategy`)."""

    @property
    def label(self) -> str: ...

    @property
    def target_fix(self) -> str: ...


def fingerprints(janitor: Janitor) -> dict[str, str]:
    """The fingerprint of every database of the server that takes connections (templates do not); a database that
    goes while it is read (dropped by another process) is left out."""
    rows = janitor.connection.execute(
        "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname"
    ).fetchall()
    found: dict[str, str] = {}
    for (name,) in rows:
        try:
            found[str(name)] = _fingerprint(janitor.url(str(name)))
        except psycopg.OperationalError:  # dropped meanwhile, or no longer taking connections
            continue
    return found


def _fingerprint(url: str) -> str:
    with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                         application_name="envmgr-template-check") as connection:  # fmt: skip
        items = [str(row[0]) for row in connection.execute(CATALOG).fetchall()]
        for schema, table in connection.execute(VERSION_TABLES).fetchall():
            query = sql.SQL("SELECT version_num FROM {}.{} ORDER BY 1").format(
                sql.Identifier(str(schema)), sql.Identifier(str(table))
            )
            items += [f"alembic {schema} {row[0]}" for row in connection.execute(query).fetchall()]
    return "\n".join(items)


def check_reached(migration: Migration, building: str, before: Fingerprints, after: Fingerprints) -> None:
    """MigrationError when the migrations left the template `building` as it was, or changed another database of
    the server: it names the database they changed (they must change the template alone), and the fix."""
    others = sorted(
        name
        for name in before
        if name != building and name in after and after[name] != before[name] and not name.endswith(BUILDING)
    )
    unchanged = before.get(building) == after.get(building)
    if not unchanged and not others:
        return
    named = ", ".join(f'"{name}"' for name in others)
    if unchanged and others:
        cause = (
            f"the migrations ({migration.label}) did not change the template database {building}: they changed "
            f"database {named} of the same server"
        )
    elif unchanged:
        cause = (
            f"the migrations ({migration.label}) changed neither the template database {building} nor any other "
            "database of its server: they reached another server (or did nothing)"
        )
    else:
        cause = (
            f"the migrations ({migration.label}) changed database {named} of the same server as well as the "
            f"template database {building}"
        )
    raise MigrationError(
        cause, f'{migration.target_fix}; see "How migrations get the template\'s URL" in docs/variables.md'
    )
