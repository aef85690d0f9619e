"""The seed loader: what goes into the template database after the migrations.

Layout (the whole project uses it): `<seeds>/postgres/` holds the Postgres seed files, applied in sorted file-name
order, all of one run in ONE transaction (a failing file leaves nothing behind):

* `*.sql`: split into statements (quotes, quoted identifiers, `E'...'` strings, dollar quoting and comments are
  respected) and sent in batches of ~256 KB, one round trip each; when a batch fails it is undone (savepoint) and
  replayed statement by statement, so an error names the statement; `%` is literal (no parameters). A plain
  `pg_dump` of one database is a seed as it is: `COPY ... FROM stdin` blocks are sent with their rows (a bad row is
  named by its line); psql meta-commands other than pg_dump's `\\restrict`/`\\unrestrict` (`\\connect`, `\\copy`,
  `\\i` ...) and transaction control (`BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT` ...) are refused before anything
  is sent (`sql_seeds.py`). A file's session settings (`SET`) end with it. A SQL file that inserts explicit ids moves
  the sequences itself (`SELECT setval(...)`).
* `*.dump`: a custom-format dump (`pg_dump -Fc`), restored by `pg_restore --no-owner --no-privileges
  --single-transaction` in the server's container or on this machine (`dump_seeds.py`); the files before it are
  committed first, as pg_restore has its own connection.
* `*.py`: a module with a `seed(connection)` function; it gets a SQLAlchemy `Connection` inside the transaction
  (do not commit it). The folder is on `sys.path` while the module is imported, so `_helpers.py` beside it works;
  the modules imported from the folder are forgotten afterwards. Python seeds of several threads run one at a time
  (`envmgr.process_state`).
* `*.json`, `*.yaml`, `*.yml`: a mapping `{table: [{column: value, ...}, ...], ...}`. Tables are filled in the order
  written, rows in file order, through SQLAlchemy Core reflection of the table (column types adapt: a date string
  goes into a `date` column, a mapping into a `jsonb` one). `schema.table` names a table outside `public`. Then the
  sequences of serial/identity columns given explicitly are moved past the largest value, so the application's own
  inserts do not collide with seeded ids.

Files whose name starts with `.` or `_` are not applied (helpers, editor files), nor files of other extensions.
Any failure raises `SeedError` naming the file and the statement (`statement 3 (line 12) "INSERT ..."`), the row
(`table releases row 2`, a COPY's `row 7 (line 130)`) or the dump's object (`TOC entry 215 "TABLE DATA a envmgr"`)
with the first line of the error.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, NoSuchTableError, SQLAlchemyError

from envmgr.errors import SeedError, first_line
from envmgr.process_state import process_state_guard
from envmgr.seed_layout import read_seed_text, seed_file_error, shown_path
from envmgr.services.postgres.seed_files import postgres_seed_files
from envmgr.services.postgres.template.dump_seeds import check_dump, restore_dump
from envmgr.services.postgres.template.sql import SqlStatement, split_sql
from envmgr.services.postgres.template.sql_seeds import SQL_BATCH_BYTES, apply_sql, check_sql
from envmgr.services.postgres.template.sql_seeds import describe as _describe
from envmgr.services.postgres.tools import PgTools
from envmgr.services.postgres.urls import sqlalchemy_url

__all__ = ["SQL_BATCH_BYTES", "SeedFile", "check_postgres_seeds", "load_postgres_seeds"]

# loading ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedFile:
    """One seed file, read and checked without a database: its statements, its module code or its rows."""

    path: Path
    shown: str
    """the path as errors show it: relative to the seeds folder's parent (`seeds/postgres/001_users.yaml`)"""
    statements: tuple[SqlStatement, ...] = ()
    code: CodeType | None = None
    tables: tuple[tuple[str, tuple[dict[str, Any], ...]], ...] = ()
    dump: bool = False
    """a custom-format dump, restored by pg_restore"""


def check_postgres_seeds(seeds_dir: Path) -> list[SeedFile]:
    """Read and check every Postgres seed file without a database, in the order they are applied.

    Catches what does not need the schema: YAML/JSON syntax and shape, Python syntax, unreadable files.
    Raises `SeedError` naming the file and the line (or table and row).
    """
    return [_read_seed(path, seeds_dir) for path in postgres_seed_files(seeds_dir)]


def load_postgres_seeds(
    url: str,
    seeds_dir: Path,
    on_file: Callable[[int, int, str], None] = lambda done, total, name: None,
    *,
    tools: PgTools | None = None,
) -> int:
    """Apply every Postgres seed file of `seeds_dir` to the database at `url`, in one transaction (one per run of
    files between custom-format dumps, which `tools` restore: by default with the pg_restore on PATH).

    Every file is read and checked first (nothing is sent when one is malformed). Returns how many files were
    applied; raises `SeedError` naming the file and the statement, row or object. `on_file` hears (done, total,
    file) after each file.
    """
    seeds = check_postgres_seeds(seeds_dir)
    if not seeds:
        return 0
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    try:
        done = 0
        for run in _runs(seeds):
            if run[0].dump:
                database = sa.make_url(url).database or ""
                restore_dump(tools or PgTools.for_url(url), run[0].path, run[0].shown, database)
                done += 1
                on_file(done, len(seeds), run[0].shown)
                continue
            with engine.begin() as connection:
                for seed in run:
                    _apply(connection, seed)
                    done += 1
                    on_file(done, len(seeds), seed.shown)
    except SeedError:
        raise
    except SQLAlchemyError as exc:  # connecting or committing: not the fault of one file
        raise SeedError(
            f"loading the seeds of {seeds_dir} failed: {_describe(exc)}",
            "check that the database is reachable and that no seed file ends the transaction",
        ) from exc
    finally:
        engine.dispose()
    return len(seeds)


def _runs(seeds: list[SeedFile]) -> list[list[SeedFile]]:
    """The seeds in order, in runs that share a transaction: consecutive files that are not dumps; a dump alone."""
    runs: list[list[SeedFile]] = []
    for seed in seeds:
        if seed.dump or not runs or runs[-1][0].dump:
            runs.append([seed])
        else:
            runs[-1].append(seed)
    return runs


def _read_seed(path: Path, seeds_dir: Path) -> SeedFile:
    shown = shown_path(path, seeds_dir)
    suffix = path.suffix.lower()
    if suffix == ".dump":
        check_dump(path, shown)
        return SeedFile(path, shown, dump=True)
    text = read_seed_text(path, shown)
    if suffix == ".sql":
        statements = tuple(split_sql(text))
        check_sql(statements, shown)
        return SeedFile(path, shown, statements=statements)
    if suffix == ".py":
        try:
            code = compile(text, str(path), "exec", dont_inherit=True)
        except SyntaxError as exc:
            raise seed_file_error(shown, f"line {exc.lineno}", f"SyntaxError: {exc.msg}") from None
        return SeedFile(path, shown, code=code)
    return SeedFile(path, shown, tables=_parse_data(path, text, shown))


def _apply(connection: Connection, seed: SeedFile) -> None:
    if seed.path.suffix.lower() == ".sql":
        apply_sql(connection, seed.statements, seed.shown)
    elif seed.code is not None:
        _apply_python(connection, seed)
    else:
        for table_name, rows in seed.tables:
            table = _reflect(connection, table_name, seed.shown)
            _insert_rows(connection, table, table_name, rows, seed.shown)


# *.py


def _apply_python(connection: Connection, seed: SeedFile) -> None:
    """Import the seed module and call its seed(connection), under the process-wide guard: its folder leads sys.path
    and the module is in sys.modules while it runs; afterwards both are gone, and so are the modules it imported from
    its folder (`_helpers`), so that another project's seeds of the same name are not mistaken for these."""
    path, shown = seed.path, seed.shown
    assert seed.code is not None
    module_name = "envmgr_seed_" + sha256(str(path.resolve()).encode()).hexdigest()[:12]
    module = ModuleType(module_name)
    module.__file__ = str(path)
    folder = str(path.parent)
    with process_state_guard():
        already = set(sys.modules)
        sys.modules[module_name] = module  # dataclasses and pickling look the module up
        sys.path.insert(0, folder)  # helpers beside the seed file can be imported
        try:
            try:
                exec(seed.code, module.__dict__)
            except Exception as exc:
                raise seed_file_error(shown, f"import{_line_in(exc, path)}", _describe(exc)) from None
            function = getattr(module, "seed", None)
            if not callable(function):
                raise seed_file_error(shown, "import", "the module has no seed(connection) function")
            try:
                function(connection)
            except Exception as exc:
                raise seed_file_error(shown, f"seed(){_line_in(exc, path)}", _describe(exc)) from None
        finally:
            sys.modules.pop(module_name, None)
            _forget_modules_from(path.parent, set(sys.modules) - already)
            if folder in sys.path:
                sys.path.remove(folder)


def _forget_modules_from(folder: Path, names: set[str]) -> None:
    """Remove from sys.modules those of `names` whose file is inside `folder`."""
    root = folder.resolve()
    for name in names:
        filename = getattr(sys.modules.get(name), "__file__", None)
        if isinstance(filename, str) and Path(filename).resolve().is_relative_to(root):
            sys.modules.pop(name, None)


def _line_in(exc: BaseException, path: Path) -> str:
    """` line 12`: the deepest line of `path` in the exception's traceback, else ""."""
    target = str(path)
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == target]
    return f" line {lines[-1]}" if lines and lines[-1] else ""


# *.json, *.yaml, *.yml


def _parse_data(path: Path, text: str, shown: str) -> tuple[tuple[str, tuple[dict[str, Any], ...]], ...]:
    """The tables of a data file in the order written, each with its rows; its shape checked."""
    try:
        is_json = path.suffix.lower() == ".json"
        data = (json.loads(text) if text.strip() else None) if is_json else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise seed_file_error(shown, f"line {exc.lineno}", f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "parsing"
        problem = getattr(exc, "problem", None) or first_line(exc)
        column = f" (column {mark.column + 1})" if mark is not None else ""
        raise seed_file_error(shown, where, f"invalid YAML: {problem}{column}") from None
    if data is None:
        return ()
    if not isinstance(data, Mapping):
        raise seed_file_error(
            shown, "the top level", f"expected a mapping of table name to a list of rows, got {type(data).__name__}"
        )
    tables: list[tuple[str, tuple[dict[str, Any], ...]]] = []
    for table_name, value in data.items():
        where = f"table {table_name}"
        if not isinstance(table_name, str) or not table_name.strip():
            raise seed_file_error(shown, where, "a table name must be a non-empty string")
        rows = [] if value is None else value
        if not isinstance(rows, list):
            raise seed_file_error(shown, where, f"expected a list of rows, got {type(rows).__name__}")
        checked: list[dict[str, Any]] = []
        for number, row in enumerate(rows, start=1):
            if not isinstance(row, Mapping):
                raise seed_file_error(
                    shown, f"{where} row {number}", f"expected a mapping of column to value, got {type(row).__name__}"
                )
            bad = [key for key in row if not isinstance(key, str)]
            if bad:
                raise seed_file_error(shown, f"{where} row {number}", f"column names must be strings, got {bad[0]!r}")
            checked.append(dict(row))
        tables.append((table_name, tuple(checked)))
    return tuple(tables)


def _reflect(connection: Connection, name: str, shown: str) -> sa.Table:
    schema, _, table = name.rpartition(".")
    try:
        return sa.Table(table, sa.MetaData(), autoload_with=connection, schema=schema or None)
    except NoSuchTableError:
        raise seed_file_error(shown, f"table {name}", "no such table (did the migrations create it?)") from None
    except DBAPIError as exc:
        raise seed_file_error(shown, f"table {name}", _describe(exc)) from None


def _insert_rows(
    connection: Connection, table: sa.Table, name: str, rows: Sequence[dict[str, Any]], shown: str
) -> None:
    columns = set(table.c.keys())
    explicit: set[str] = set()
    checked: list[tuple[int, dict[str, Any]]] = []
    for number, row in enumerate(rows, start=1):
        where = f"table {name} row {number}"
        unknown = [key for key in row if key not in columns]
        if unknown:
            raise seed_file_error(
                shown, where, f"unknown column {unknown[0]!r} (columns of {name}: {', '.join(sorted(columns))})"
            )
        explicit.update(row)
        checked.append((number, row))
    for group in _same_keys(checked):
        _insert_group(connection, table, name, group, shown)
    _bump_sequences(connection, table, name, explicit, shown)


def _same_keys(rows: Sequence[tuple[int, dict[str, Any]]]) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    """Consecutive rows with the same columns: one executemany each (order kept across groups)."""
    group: list[tuple[int, dict[str, Any]]] = []
    for item in rows:
        if group and set(group[0][1]) != set(item[1]):
            yield group
            group = []
        group.append(item)
    if group:
        yield group


def _insert_group(
    connection: Connection, table: sa.Table, name: str, group: list[tuple[int, dict[str, Any]]], shown: str
) -> None:
    statement = sa.insert(table)
    try:
        with connection.begin_nested():
            connection.execute(statement, [row for _, row in group])
        return
    except (DBAPIError, sa.exc.StatementError):
        pass
    # Replay row by row to name the failing one; each row in its own savepoint.
    for number, row in group:
        try:
            with connection.begin_nested():
                connection.execute(statement, row)
        except (DBAPIError, sa.exc.StatementError) as exc:
            raise seed_file_error(shown, f"table {name} row {number}", _describe(exc)) from None
    raise seed_file_error(
        shown, f"table {name} rows {group[0][0]}-{group[-1][0]}", "the rows fail together but not one by one"
    )


def _bump_sequences(connection: Connection, table: sa.Table, name: str, explicit: set[str], shown: str) -> None:
    """Move the sequence of each serial/identity column given explicitly past the largest value in the table."""
    qualified = connection.dialect.identifier_preparer.format_table(table)
    for column in table.c:
        if column.key not in explicit or not isinstance(column.type, sa.Integer):
            continue
        try:
            sequence = connection.execute(
                sa.text("SELECT pg_get_serial_sequence(:table, :column)"), {"table": qualified, "column": column.name}
            ).scalar()
            if sequence is None:
                continue
            largest = connection.execute(sa.select(sa.func.max(column))).scalar()
            if largest is None:
                continue
            connection.execute(
                sa.text(
                    "SELECT setval(CAST(:seq AS regclass), :largest) "
                    "WHERE :largest > COALESCE(pg_sequence_last_value(CAST(:seq AS regclass)), 0)"
                ),
                {"seq": sequence, "largest": int(largest)},
            )
        except DBAPIError as exc:
            raise seed_file_error(shown, f"table {name} sequence of {column.name}", _describe(exc)) from None
