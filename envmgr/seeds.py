"""The seed loader: what goes into the template database after the migrations.

Layout (the whole project uses it): `<seeds>/postgres/` holds the Postgres seed files, applied in sorted file-name
order, all of one run in ONE transaction (a failing file leaves nothing behind):

* `*.sql`: split into statements (quotes, quoted identifiers, `E'...'` strings, dollar quoting and comments are
  respected) and sent in batches of ~256 KB, one round trip each; when a batch fails it is undone (savepoint) and
  replayed statement by statement, so an error names the statement; `%` is literal (no parameters). psql
  meta-commands (`\\copy`, `\\connect`) and `COPY ... FROM stdin` are not supported; transaction control
  (`BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT` ...) is refused before anything is sent. A SQL file that inserts
  explicit ids moves the sequences itself (`SELECT setval(...)`).
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
Any failure raises `SeedError` naming the file and the statement (`statement 3 (line 12) "INSERT ..."`) or the row
(`table releases row 2`) with the first line of the error.
"""

from __future__ import annotations

import json
import re
import sys
import traceback
from collections.abc import Iterator, Mapping, Sequence
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
from envmgr.seed_layout import POSTGRES_DIR, SQS_FILES, WIREMOCK_DIR, WIREMOCK_DIRS

__all__ = [
    "SEED_EXTENSIONS",
    "SeedFile",
    "SqlStatement",
    "check_postgres_seeds",
    "load_postgres_seeds",
    "postgres_seed_dir",
    "postgres_seed_files",
    "split_sql",
    "sqlalchemy_url",
]

SEED_EXTENSIONS: tuple[str, ...] = (".sql", ".py", ".json", ".yaml", ".yml")
SQL_BATCH_BYTES = 256 * 1024
"""SQL statements are sent together up to about this many characters: one round trip (and one savepoint) each."""
_BATCH_JOINER = "\n;\n"  # the newline ends a `--` comment that closes the previous statement
_SNIPPET = 60


def sqlalchemy_url(url: str) -> str:
    """A `postgresql://` URL for SQLAlchemy with the psycopg 3 driver (`envmgr.services.postgres.urls` has the
    other drivers)."""
    from envmgr.services.postgres.urls import sqlalchemy_url as with_driver  # the package imports this module

    return with_driver(url)


def postgres_seed_dir(seeds_dir: Path) -> Path:
    return seeds_dir / POSTGRES_DIR


def postgres_seed_files(seeds_dir: Path) -> list[Path]:
    """The Postgres seed files under `<seeds_dir>/postgres/`, in the order they are applied (sorted by name)."""
    folder = postgres_seed_dir(seeds_dir)
    if not folder.is_dir():
        return []
    files = [
        path
        for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() in SEED_EXTENSIONS and not path.name.startswith((".", "_"))
    ]
    return sorted(files, key=lambda path: path.name)


# SQL splitting -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SqlStatement:
    """One statement of a SQL file: its text (without the `;`) and the line where its first token is."""

    text: str
    line: int

    def describe(self, number: int) -> str:
        """`statement 3 (line 12) "INSERT INTO releases ..."`: how an error names it."""
        body = _strip_leading_comments(self.text)
        flat = " ".join(body.split())
        if len(flat) > _SNIPPET:
            flat = flat[: _SNIPPET - 3] + "..."
        return f'statement {number} (line {self.line}) "{flat}"'


_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$")
_NON_BLANK = re.compile(r"\S")
_SPECIAL = re.compile(r"""--|/\*|[;'"$]""")  # what can open a comment, a literal or a body, or end a statement
_BLOCK_EDGE = re.compile(r"/\*|\*/")
_ESCAPE_OR_QUOTE = re.compile(r"[\\']")


def _is_ident_char(char: str) -> bool:
    return char.isalnum() or char in "_$"


class _LineCounter:
    """Line numbers of increasing offsets of one text, counted from the previous offset: linear over the text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._offset = 0
        self._line = 1

    def line_of(self, offset: int) -> int:
        if offset < self._offset:
            raise ValueError(f"offsets must not decrease ({offset} after {self._offset})")
        self._line += self.text.count("\n", self._offset, offset)
        self._offset = offset
        return self._line


def split_sql(text: str) -> list[SqlStatement]:
    """Split SQL text into statements at the `;` that are outside quotes, dollar quotes and comments.

    Handles `'...'` (with `''`), `E'...'` (with backslash escapes), `"..."` identifiers, `$$...$$` and
    `$tag$...$tag$` bodies, `-- ...` and nested `/* ... */` comments. Statements made only of comments are dropped.
    Linear in the length of the text: it jumps from one special character to the next (regular expressions and
    `str.find`), and line numbers are counted on from the previous statement's.
    """
    statements: list[SqlStatement] = []
    lines = _LineCounter(text)
    length = len(text)
    i = 0
    start = 0
    first_token: int | None = None  # offset of the first character that is neither blank nor comment
    while i < length:
        if first_token is None:
            blank_end = _NON_BLANK.search(text, i)
            if blank_end is None:
                break
            i = blank_end.start()
            if text.startswith(("--", "/*"), i):
                i = _skip_comment(text, i)
                continue
            if text[i] == ";":  # an empty statement
                i += 1
                start = i
                continue
            first_token = i
        special = _SPECIAL.search(text, i)
        if special is None:
            break
        i = special.start()
        token = special.group()
        if token in ("--", "/*"):
            i = _skip_comment(text, i)
        elif token == ";":
            _add_statement(statements, lines, start, i, first_token)
            i += 1
            start = i
            first_token = None
        elif token == "'":
            escapes = i > 0 and text[i - 1] in "eE" and (i < 2 or not _is_ident_char(text[i - 2]))
            i = _skip_quoted(text, i, "'", backslash=escapes)
        elif token == '"':
            i = _skip_quoted(text, i, '"', backslash=False)
        elif i == 0 or not _is_ident_char(text[i - 1]):  # "$" that may open a dollar-quoted body
            match = _DOLLAR_TAG.match(text, i)
            if match:
                close = text.find(match.group(0), match.end())
                i = length if close < 0 else close + len(match.group(0))
            else:
                i += 1  # $1: a positional parameter
        else:
            i += 1  # "$" inside an identifier
    _add_statement(statements, lines, start, length, first_token)
    return statements


def _skip_comment(text: str, i: int) -> int:
    """The offset after the `--` or `/* */` comment that starts at `i`."""
    if text.startswith("--", i):
        end = text.find("\n", i)
        return len(text) if end < 0 else end + 1
    return _skip_block_comment(text, i)


def _skip_quoted(text: str, i: int, quote: str, *, backslash: bool) -> int:
    """The offset after the literal or identifier opened at `i` (or the end of the text when unterminated)."""
    i += 1
    length = len(text)
    while True:
        if backslash:
            found = _ESCAPE_OR_QUOTE.search(text, i)
            j = found.start() if found is not None else -1
        else:
            j = text.find(quote, i)
        if j < 0:
            return length
        if text[j] == "\\":  # only searched for in E'...' literals: the next character is escaped
            i = j + 2
            continue
        if j + 1 < length and text[j + 1] == quote:  # doubled quote
            i = j + 2
            continue
        return j + 1


def _skip_block_comment(text: str, i: int) -> int:
    """The offset after the (nested) block comment that opens at `i`, or the end of the text when unterminated."""
    depth = 0
    while True:
        edge = _BLOCK_EDGE.search(text, i)
        if edge is None:
            return len(text)
        depth += 1 if edge.group() == "/*" else -1
        i = edge.end()
        if depth == 0:
            return i


def _add_statement(
    statements: list[SqlStatement], lines: _LineCounter, start: int, end: int, first: int | None
) -> None:
    """Add text[start:end] (`lines.text`) when it holds more than blanks and comments; its line is `first`'s."""
    if first is None:
        return
    body = lines.text[start:end].strip()
    if body:
        statements.append(SqlStatement(body, lines.line_of(first)))


def _strip_leading_comments(text: str) -> str:
    rest = text.lstrip()
    while rest.startswith(("--", "/*")):
        if rest.startswith("--"):
            newline = rest.find("\n")
            rest = "" if newline < 0 else rest[newline + 1 :]
        else:
            rest = rest[_skip_block_comment(rest, 0) :]
        rest = rest.lstrip()
    return rest


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


def check_postgres_seeds(seeds_dir: Path) -> list[SeedFile]:
    """Read and check every Postgres seed file without a database, in the order they are applied.

    Catches what does not need the schema: YAML/JSON syntax and shape, Python syntax, unreadable files.
    Raises `SeedError` naming the file and the line (or table and row).
    """
    return [_read_seed(path, seeds_dir) for path in postgres_seed_files(seeds_dir)]


def load_postgres_seeds(url: str, seeds_dir: Path) -> int:
    """Apply every Postgres seed file of `seeds_dir` to the database at `url`, in one transaction.

    Every file is read and checked first (nothing is sent when one is malformed). Returns how many files were
    applied; raises `SeedError` naming the file and the statement or row.
    """
    seeds = check_postgres_seeds(seeds_dir)
    if not seeds:
        return 0
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            for seed in seeds:
                _apply(connection, seed)
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


def _read_seed(path: Path, seeds_dir: Path) -> SeedFile:
    shown = _relative(path, seeds_dir.parent)
    suffix = path.suffix.lower()
    text = _read_text(path, shown)
    if suffix == ".sql":
        statements = tuple(split_sql(text))
        _check_no_transaction_control(statements, shown)
        return SeedFile(path, shown, statements=statements)
    if suffix == ".py":
        try:
            code = compile(text, str(path), "exec", dont_inherit=True)
        except SyntaxError as exc:
            raise _fail(shown, f"line {exc.lineno}", f"SyntaxError: {exc.msg}") from None
        return SeedFile(path, shown, code=code)
    return SeedFile(path, shown, tables=_parse_data(path, text, shown))


def _apply(connection: Connection, seed: SeedFile) -> None:
    if seed.path.suffix.lower() == ".sql":
        _apply_sql(connection, seed)
    elif seed.code is not None:
        _apply_python(connection, seed)
    else:
        for table_name, rows in seed.tables:
            table = _reflect(connection, table_name, seed.shown)
            _insert_rows(connection, table, table_name, rows, seed.shown)


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def _fail(shown: str, where: str, error: str) -> SeedError:
    return SeedError(f"seed file {shown} failed at {where}: {error}", f"fix the seed file {shown}")


def _describe(exc: BaseException) -> str:
    """`UndefinedColumn: column "artst" of relation "releases" does not exist`: the driver's error when there is one."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    return f"{type(exc).__name__}: {first_line(exc)}"


def _read_text(path: Path, shown: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(shown, "reading", f"{type(exc).__name__}: {first_line(exc)}") from None


# *.sql


def _apply_sql(connection: Connection, seed: SeedFile) -> None:
    """Send the statements in batches of about `SQL_BATCH_BYTES`, one round trip each, each batch in a savepoint.

    When a batch fails, the savepoint undoes it and its statements are sent again one by one to name the one that
    fails (the load stops there and its transaction is rolled back, so nothing is applied twice).
    """
    raw = connection.execution_options(no_parameters=True)  # a literal % is not a placeholder
    for first, batch in _batches(seed.statements):
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
                raise _fail(seed.shown, statement.describe(number), _describe(exc)) from None
        if len(batch) > 1:
            raise _fail(
                seed.shown,
                f"statements {first}-{first + len(batch) - 1}",
                "they fail when sent together but not one by one",
            )


def _batches(statements: Sequence[SqlStatement]) -> Iterator[tuple[int, list[SqlStatement]]]:
    """(number of the first statement, statements) of about SQL_BATCH_BYTES each, in order."""
    batch: list[SqlStatement] = []
    size = 0
    first = 1
    for number, statement in enumerate(statements, start=1):
        if batch and size + len(statement.text) > SQL_BATCH_BYTES:
            yield first, batch
            batch, size, first = [], 0, number
        batch.append(statement)
        size += len(statement.text)
    if batch:
        yield first, batch


_TRANSACTION_CONTROL = re.compile(
    r"(BEGIN|COMMIT|END|ROLLBACK|ABORT|START\s+TRANSACTION|SAVEPOINT|RELEASE|PREPARE\s+TRANSACTION)\b", re.IGNORECASE
)


def _check_no_transaction_control(statements: Sequence[SqlStatement], shown: str) -> None:
    """A seed file runs inside envmgr's transaction: BEGIN, COMMIT, ROLLBACK ... in it would end or break that."""
    for number, statement in enumerate(statements, start=1):
        if _TRANSACTION_CONTROL.match(_strip_leading_comments(statement.text)):
            raise SeedError(
                f"seed file {shown} failed at {statement.describe(number)}: transaction control in a seed file",
                f"remove it from {shown}: all the seed files of a run are applied in one transaction by envmgr",
            )


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
                raise _fail(shown, f"import{_line_in(exc, path)}", _describe(exc)) from None
            function = getattr(module, "seed", None)
            if not callable(function):
                raise _fail(shown, "import", "the module has no seed(connection) function")
            try:
                function(connection)
            except Exception as exc:
                raise _fail(shown, f"seed(){_line_in(exc, path)}", _describe(exc)) from None
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
        raise _fail(shown, f"line {exc.lineno}", f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "parsing"
        problem = getattr(exc, "problem", None) or first_line(exc)
        column = f" (column {mark.column + 1})" if mark is not None else ""
        raise _fail(shown, where, f"invalid YAML: {problem}{column}") from None
    if data is None:
        return ()
    if not isinstance(data, Mapping):
        raise _fail(
            shown, "the top level", f"expected a mapping of table name to a list of rows, got {type(data).__name__}"
        )
    tables: list[tuple[str, tuple[dict[str, Any], ...]]] = []
    for table_name, value in data.items():
        where = f"table {table_name}"
        if not isinstance(table_name, str) or not table_name.strip():
            raise _fail(shown, where, "a table name must be a non-empty string")
        rows = [] if value is None else value
        if not isinstance(rows, list):
            raise _fail(shown, where, f"expected a list of rows, got {type(rows).__name__}")
        checked: list[dict[str, Any]] = []
        for number, row in enumerate(rows, start=1):
            if not isinstance(row, Mapping):
                raise _fail(
                    shown, f"{where} row {number}", f"expected a mapping of column to value, got {type(row).__name__}"
                )
            bad = [key for key in row if not isinstance(key, str)]
            if bad:
                raise _fail(shown, f"{where} row {number}", f"column names must be strings, got {bad[0]!r}")
            checked.append(dict(row))
        tables.append((table_name, tuple(checked)))
    return tuple(tables)


def _reflect(connection: Connection, name: str, shown: str) -> sa.Table:
    schema, _, table = name.rpartition(".")
    try:
        return sa.Table(table, sa.MetaData(), autoload_with=connection, schema=schema or None)
    except NoSuchTableError:
        raise _fail(shown, f"table {name}", "no such table (did the migrations create it?)") from None
    except DBAPIError as exc:
        raise _fail(shown, f"table {name}", _describe(exc)) from None


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
            raise _fail(
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
            raise _fail(shown, f"table {name} row {number}", _describe(exc)) from None
    raise _fail(shown, f"table {name} rows {group[0][0]}-{group[-1][0]}", "the rows fail together but not one by one")


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
            raise _fail(shown, f"table {name} sequence of {column.name}", _describe(exc)) from None


# seeds of the other services ----------------------------------------------------------------------------------
# seeds/s3/<bucket>/<key...>        objects (the folder names are the buckets; empty folders make empty buckets)
# seeds/sqs.yaml                    {"queues": ["name", ...]} (plus LocalStackSettings.queues)
# seeds/wiremock/mappings/*.json    WireMock stubs, with bodies in seeds/wiremock/__files/
# (the whole layout, and the rule for symbolic links: envmgr.seed_layout)


def sqs_seed_queues(seeds_dir: Path | None, configured: Sequence[str] = ()) -> list[str]:
    """Queue names from the settings and seeds/sqs.yaml (or .yml/.json), without duplicates, in order."""
    names = list(configured)
    for candidate in SQS_FILES:
        path = seeds_dir / candidate if seeds_dir is not None else None
        if path is None or not path.is_file():
            continue
        shown = _relative(path, seeds_dir.parent if seeds_dir is not None else path.parent)
        try:
            data = yaml.safe_load(_read_text(path, shown))
        except yaml.YAMLError as exc:
            raise _fail(shown, "parsing", _describe(exc)) from None
        queues = data.get("queues") if isinstance(data, dict) else None
        if not isinstance(queues, list) or not all(isinstance(q, str) for q in queues):
            raise _fail(shown, "the top level", 'expected {"queues": ["name", ...]}')
        names += queues
    return list(dict.fromkeys(names))


def wiremock_seed_dirs(seeds_dir: Path | None) -> list[Path]:
    """The seeds/wiremock/mappings and seeds/wiremock/__files folders that exist."""
    root = seeds_dir / WIREMOCK_DIR if seeds_dir is not None else None
    if root is None:
        return []
    return [root / name for name in WIREMOCK_DIRS if (root / name).is_dir()]
