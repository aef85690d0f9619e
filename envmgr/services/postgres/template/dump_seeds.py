"""`*.dump` seeds: custom-format dumps (`pg_dump -Fc`) restored into the template by `pg_restore`.

pg_restore runs where `PgTools` says (the server's container, else this machine), connected to the database being
built, as `pg_restore --no-owner --no-privileges --single-transaction`: the objects belong to the template's owner as
every seed's do (a production dump's owners and grants name roles the test server does not have; `postgres.app_role`
gets its rights from envmgr after the seeds), and a failing restore leaves nothing. pg_restore opens its own
connection, so the seed files before a dump are committed first and those after it run in a new transaction; the
template being built is dropped whole when any of them fails.

An error names the file, the object pg_restore was restoring (its TOC entry: `TOC entry 215 "TABLE DATA artists
envmgr"`: kind, name, owner) and pg_restore's own error line, with the row's line of a COPY that failed.
"""

from __future__ import annotations

import re
from pathlib import Path

from envmgr.errors import SeedError
from envmgr.seed_layout import seed_file_error
from envmgr.services.postgres.tools import PgTools, ToolMissing

__all__ = ["CUSTOM_DUMP_MAGIC", "RESTORE_OPTIONS", "check_dump", "restore_dump", "restore_error"]

CUSTOM_DUMP_MAGIC = b"PGDMP"
RESTORE_OPTIONS = ("--no-owner", "--no-privileges", "--single-transaction", "--verbose")
"""--verbose: pg_restore names the TOC entry that failed only then (its progress lines are read and dropped)"""
_TOC_ENTRY = re.compile(r"from TOC entry (\d+); \d+ \d+ (.+)$")
_ERROR = re.compile(r"^pg_restore: error: (.+)$")
_CONTEXT = re.compile(r"^CONTEXT:\s+(.+)$")
_VERSION = re.compile(r"unsupported version \(([\d.]+)\) in file header")


def check_dump(path: Path, shown: str) -> None:
    """A custom-format dump (its first bytes), else a `SeedError` saying what a `*.dump` seed is."""
    try:
        with path.open("rb") as file:
            head = file.read(len(CUSTOM_DUMP_MAGIC))
    except OSError as exc:
        raise seed_file_error(shown, "reading", f"{type(exc).__name__}: {exc.strerror}") from None
    if head != CUSTOM_DUMP_MAGIC:
        raise SeedError(
            f"seed file {shown} failed at reading: not a custom-format dump (it does not start with PGDMP)",
            f"make it with `pg_dump -Fc`, or name a plain SQL dump (`pg_dump`, `pg_dump -Fp`) {path.stem}.sql",
        )


def restore_dump(tools: PgTools, path: Path, shown: str, database: str) -> None:
    """pg_restore `path` into `database` (see the module's documentation); a `SeedError` naming the object."""
    try:
        result = tools.restore(path, database, RESTORE_OPTIONS)
    except ToolMissing as exc:
        raise SeedError(
            f"seed file {shown} is a custom-format dump and {exc.cause}",
            f"{exc.fix}; or turn it into a plain SQL seed once: `pg_restore -f {path.stem}.sql {path.name}`",
        ) from None
    if result.exit_code != 0:
        raise restore_error(shown, result.output, tools.where("pg_restore"))


def restore_error(shown: str, output: str, where: str) -> SeedError:
    """pg_restore's failure, from its output: the TOC entry it was restoring and its own error line."""
    lines = [line.rstrip() for line in output.splitlines()]
    entry = next((m for m in map(_TOC_ENTRY.search, lines) if m is not None), None)
    error = next((m.group(1) for m in map(_ERROR.match, lines) if m is not None), None)
    context = next((m.group(1) for m in map(_CONTEXT.match, lines) if m is not None), None)
    place = f'TOC entry {entry.group(1)} "{entry.group(2)}"' if entry is not None else "pg_restore"
    message = f"pg_restore: error: {error}" if error else next((line for line in lines if line), "no output")
    if context is not None:
        message += f" ({context})"
    version = _VERSION.search(output)
    if version is not None:
        return SeedError(
            f"seed file {shown} failed at {place}: {message} (pg_restore {where})",
            "the dump was made by a newer pg_dump than this pg_restore reads: dump with the server's major version "
            "(or older), or as plain SQL (`pg_dump -Fp`, a *.sql seed)",
        )
    return SeedError(f"seed file {shown} failed at {place}: {message}", f"fix the dump {shown} or what it needs")
