"""`*.sql` seeds: checked without a database, then sent in batches, `COPY ... FROM stdin` data streamed.

A plain `pg_dump` of one database is a seed as it is: its `SET` and `SELECT pg_catalog.set_config(...)` lines are
SQL, its `COPY ... FROM stdin` blocks are sent with their data (the rows up to the line `\\.`), and its `\\restrict`
and `\\unrestrict` lines (psql's guard against meta-commands hidden in dumped data, written by pg_dump since 17.6,
16.10, 15.14 ...) are skipped: envmgr runs no meta-command at all. Any other psql meta-command is refused before
anything is sent, with a `SeedError` naming its line: `\\connect` (a dump of several databases, or made with
`--create`, would load into another database than the template), `\\copy` and `\\i` (files of the machine that
wrote the dump), `\\!` (a shell), `\\set` and the rest (psql state that envmgr does not keep). So is transaction
control (`BEGIN`, `COMMIT` ...): every seed file runs inside envmgr's transaction.

The session settings a file makes (`SET search_path ...`, pg_dump's `set_config('search_path', '', false)`) end
with it (`RESET ALL` after each file), so a dump does not change how the next seed file's names resolve.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any, cast

import psycopg
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from envmgr.errors import SeedError, first_line
from envmgr.seed_layout import seed_file_error
from envmgr.services.postgres.template.sql import SqlStatement, strip_leading_comments

__all__ = ["IGNORED_META_COMMANDS", "SQL_BATCH_BYTES", "apply_sql", "check_sql", "describe"]

SQL_BATCH_BYTES = 256 * 1024
"""SQL statements are sent together up to about this many characters: one round trip (and one savepoint) each."""
COPY_CHUNK = 1024 * 1024
"""characters of COPY data sent per write"""
IGNORED_META_COMMANDS = frozenset({"restrict", "unrestrict"})
"""psql meta-commands of a plain pg_dump that guard psql itself: skipped (envmgr runs no meta-command)"""
_BATCH_JOINER = "\n;\n"  # the newline ends a `--` comment that closes the previous statement
_TRANSACTION_CONTROL = re.compile(
    r"(BEGIN|COMMIT|END|ROLLBACK|ABORT|START\s+TRANSACTION|SAVEPOINT|RELEASE|PREPARE\s+TRANSACTION)\b", re.IGNORECASE
)
_COPY_LINE = re.compile(r"\bline (\d+)")
_MISSING_ROLE = re.compile(r'role ".*" does not exist')
_META_FIXES = {
    "connect": "dump one database, without --create (`pg_dump -d DB`, not pg_dumpall): the seeds load into the "
    "template, never into another database",
    "c": "dump one database, without --create (`pg_dump -d DB`, not pg_dumpall): the seeds load into the template, "
    "never into another database",
    "copy": "use COPY ... FROM stdin with the rows after it (as pg_dump writes them): a seed reads no other file",
    ".": "end a COPY ... FROM stdin block with it, nowhere else",
}


def describe(exc: BaseException) -> str:
    """`UndefinedColumn: column "artst" of relation "releases" does not exist`: the driver's error when there is one."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    return f"{type(exc).__name__}: {first_line(exc)}"


# checks without a database --------------------------------------------------------------------------------------


def check_sql(statements: Sequence[SqlStatement], shown: str) -> None:
    """Refuse what a seed file may not hold (see the module's documentation), before anything is sent."""
    for number, statement in enumerate(statements, start=1):
        if statement.meta:
            _check_meta(statement, number, shown)
        elif _TRANSACTION_CONTROL.match(strip_leading_comments(statement.text)):
            raise SeedError(
                f"seed file {shown} failed at {statement.describe(number)}: transaction control in a seed file",
                f"remove it from {shown}: all the seed files of a run are applied in one transaction by envmgr",
            )
        elif strip_leading_comments(statement.after_copy):
            raise SeedError(
                f"seed file {shown} failed at {statement.describe(number)}: text after `FROM stdin;` on its line",
                f"put the rows of the COPY on the lines after it in {shown}, as pg_dump writes them",
            )


def _check_meta(statement: SqlStatement, number: int, shown: str) -> None:
    name = statement.text[1:].split(maxsplit=1)[0] if len(statement.text) > 1 else ""
    if name in IGNORED_META_COMMANDS:
        return
    fix = _META_FIXES.get(name, f"remove it from {shown}: envmgr sends SQL to the server and runs no psql "
                                "meta-command (a plain pg_dump of one database has none but \\restrict)")  # fmt: skip
    raise SeedError(f"seed file {shown} failed at {statement.describe(number)}: psql meta-command \\{name}", fix)


# loading ----------------------------------------------------------------------------------------------------------


def apply_sql(connection: Connection, statements: Sequence[SqlStatement], shown: str) -> None:
    """Send the statements in batches of about `SQL_BATCH_BYTES`, one round trip each, each batch in a savepoint;
    a COPY on its own with its data; then end the file's session settings.

    When a batch fails, the savepoint undoes it and its statements are sent again one by one to name the one that
    fails (the load stops there and its transaction is rolled back, so nothing is applied twice).
    """
    raw = connection.execution_options(no_parameters=True)  # a literal % is not a placeholder
    for first, batch in _batches(statements):
        if batch[0].data is not None:
            _copy(connection, batch[0], first, shown)
            continue
        if len(batch) > 1:
            try:
                with connection.begin_nested():
                    raw.exec_driver_sql(_BATCH_JOINER.join(statement.text for statement in batch))
                continue
            except DBAPIError:
                pass
        for number, statement in enumerate(batch, start=first):
            try:
                raw.exec_driver_sql(statement.text)
            except DBAPIError as exc:
                raise _statement_error(shown, statement.describe(number), exc) from None
        if len(batch) > 1:
            raise seed_file_error(
                shown, f"statements {first}-{first + len(batch) - 1}", "they fail when sent together but not one by one"
            )
    raw.exec_driver_sql("RESET ALL")


def _batches(statements: Sequence[SqlStatement]) -> Iterator[tuple[int, list[SqlStatement]]]:
    """(number of the first statement, statements) of about SQL_BATCH_BYTES each, in order; a COPY alone; the
    meta-commands left out (`check_sql` let only those through that are skipped)."""
    batch: list[SqlStatement] = []
    size = 0
    first = 1
    for number, statement in enumerate(statements, start=1):
        if statement.meta:
            continue
        if batch and (statement.data is not None or size + len(statement.text) > SQL_BATCH_BYTES):
            yield first, batch
            batch, size = [], 0
        if not batch:
            first = number
        if statement.data is not None:
            yield number, [statement]
            continue
        batch.append(statement)
        size += len(statement.text)
    if batch:
        yield first, batch


def _copy(connection: Connection, statement: SqlStatement, number: int, shown: str) -> None:
    """COPY ... FROM stdin with its data lines; a bad row is named by its line in the file."""
    assert statement.data is not None
    dbapi = cast("psycopg.Connection[Any]", connection.connection.dbapi_connection)  # the psycopg dialect's
    data = statement.data
    try:
        with dbapi.cursor() as cursor, cursor.copy(strip_leading_comments(statement.text)) as copy:
            for offset in range(0, len(data), COPY_CHUNK):
                copy.write(data[offset : offset + COPY_CHUNK])
    except psycopg.Error as exc:
        where = statement.describe(number)
        found = _COPY_LINE.search(exc.diag.context or "")
        if found is not None:
            row = int(found.group(1))
            where += f", row {row} (line {statement.data_line + row - 1})"
        raise seed_file_error(shown, where, f"{type(exc).__name__}: {first_line(exc)}") from None


def _statement_error(shown: str, where: str, exc: DBAPIError) -> SeedError:
    error = seed_file_error(shown, where, describe(exc))
    if _MISSING_ROLE.search(str(exc.orig)):  # a dump's OWNER TO and GRANT name the roles of the server it came from
        return SeedError(
            error.cause,
            f"dump without owners and privileges (pg_dump --no-owner --no-privileges), or create the role first "
            f"(in the migrations, or a seed file before {shown})",
        )
    return error
