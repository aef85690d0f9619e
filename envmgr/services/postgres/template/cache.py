"""The template cache: a migrated, seeded template kept beyond its server, so that a cold start on a fresh engine, or a
CI job with a cache, migrates nothing (`[tool.envmgr.postgres] template_cache = "DIR"`, `envmgr cache save/restore`).

An entry is a custom-format dump of the complete template (`pg_dump -Fc` of the database being built, just before it
is marked a template) and a manifest beside it, named by the entry's key::

    DIR/app_tpl_1a81a223a92b-pg15-0c1d2e3f4a5b6c7d.dump
    DIR/app_tpl_1a81a223a92b-pg15-0c1d2e3f4a5b6c7d.json   {"key": {...}, "sha256": ..., "size": ..., "saved": ...}

The key is everything a built template depends on besides the server: the template's digest (the migrations' and
seeds' content hash and the template options: extensions, locale, encoding, application role), the server's major
version, the owner (`postgres.user`: the objects' owner), the versions of the migration tool that ran (Django,
Alembic and SQLAlchemy), the server settings it ran under (`postgres.settings`) and the cache's own format. Another
key is another entry: entries of other branches and versions live side by side and are never read for this one.
Restoring an entry keeps its owners and privileges (`pg_restore --single-transaction --exit-on-error`), so the result
is the template the migrations made. The folder is trusted as the project's own files are: its dumps run as the
server's superuser, as migrations do.

An entry is checked before it is used: a manifest that does not parse or names another key, a dump whose size or
sha256 differs from the manifest's (a cache cut short, or edited), or a restore that fails (a role the dump names is
missing here) is ignored with one line saying why, and the template is built from the migrations as if there were no
entry, then saved over it. The cache only ever saves work: a damaged entry (or no pg_restore to run) costs one build,
it never fails the run and never yields a template other than the migrations'. A template whose migrations created
roles (which live in the server, not in a database dump) is not saved, with one line saying so.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from hashlib import sha256
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from envmgr.config import Settings
from envmgr.errors import EnvmgrError, first_line
from envmgr.services.postgres.template.django_strategy import DjangoMigrate
from envmgr.services.postgres.template.migrate import migrate_strategy
from envmgr.services.postgres.template.strategies import AlembicMigrate, MigrateStrategy
from envmgr.services.postgres.tools import PgTools

__all__ = ["CACHE_FORMAT", "CacheKey", "CacheOutcome", "entry_paths", "restore_entry", "save_entry"]

CACHE_FORMAT = 1
"""the entries' format: a change makes every older entry another key"""
RESTORE_OPTIONS = ("--single-transaction", "--exit-on-error")
DUMP_OPTIONS = ("--format=custom",)
MIGRATION_TOOLS: tuple[tuple[type[MigrateStrategy], tuple[str, ...]], ...] = (
    (AlembicMigrate, ("alembic", "sqlalchemy")),
    (DjangoMigrate, ("django",)),
)
"""the distributions whose version changes what a strategy's migrations make from the same files"""
READ_CHUNK = 1024 * 1024
Outcome = Literal["hit", "miss", "ignored", "saved", "not saved"]


@dataclass(frozen=True)
class CacheKey:
    """What names an entry (see the module's documentation)."""

    template: str
    digest: str
    major: int
    owner: str
    tools: dict[str, str] = field(default_factory=dict)
    server_settings: dict[str, str] = field(default_factory=dict)
    """`postgres.settings` the migrations ran under (a migration may read one: `current_setting('TimeZone')`)"""
    format: int = CACHE_FORMAT

    @property
    def id(self) -> str:
        return sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    @property
    def stem(self) -> str:
        """`app_tpl_1a81a223a92b-pg15-0c1d2e3f4a5b6c7d`: the entry's file names without their suffix."""
        return f"{self.template}-pg{self.major}-{self.id}"

    def describe(self) -> str:
        tools = ", ".join(f"{name} {version}" for name, version in self.tools.items())
        return f"{self.template} for PostgreSQL {self.major}, owner {self.owner}" + (f", {tools}" if tools else "")

    @classmethod
    def of(cls, template: str, digest: str, server_version: int, settings: Settings) -> CacheKey:
        """The key of the template `template` (`digest`) of these settings on a server of `server_version`."""
        pg = settings.postgres
        return cls(template, digest, server_version // 10000, pg.user, tool_versions(migrate_strategy(settings)),
                   {name: str(value) for name, value in sorted(pg.settings.items())})  # fmt: skip


def tool_versions(strategy: MigrateStrategy | None) -> dict[str, str]:
    """The installed versions of the migration tool's distributions (none known for a command or a function)."""
    names = next((names for kind, names in MIGRATION_TOOLS if isinstance(strategy, kind)), ())
    versions: dict[str, str] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


@dataclass(frozen=True)
class CacheOutcome:
    """What the cache did for one template, and the one line that says it (empty for a plain miss)."""

    state: Outcome
    line: str = ""
    seconds: float = 0.0


def entry_paths(folder: Path, key: CacheKey) -> tuple[Path, Path]:
    """(the dump, the manifest) of the entry of `key` in `folder`."""
    return folder / f"{key.stem}.dump", folder / f"{key.stem}.json"


def restore_entry(folder: Path, key: CacheKey, tools: PgTools, database: str) -> CacheOutcome:
    """Restore the entry of `key` into `database` (made empty by the caller, with the template's encoding and
    locale): `hit`, `miss` (no entry), or `ignored` with why (the caller drops the database and builds)."""
    dump, manifest = entry_paths(folder, key)
    if not manifest.exists():
        return CacheOutcome("miss")
    started = time.perf_counter()
    problem = _damage(dump, manifest, key)
    if problem is None:
        try:
            result = tools.restore(dump, database, RESTORE_OPTIONS)
            if result.exit_code != 0:
                problem = f"pg_restore failed: {_first_error(result.output)}"
        except EnvmgrError as exc:  # no pg_restore to run, the engine gone: the cache never fails a build
            problem = exc.cause
    if problem is not None:
        return CacheOutcome("ignored", f"template cache: ignored {manifest.name} ({problem}); building from the "
                                       "migrations and saving it again")  # fmt: skip
    seconds = time.perf_counter() - started
    return CacheOutcome("hit", f"template cache: {key.template} restored from {folder} in {seconds:.2f} s", seconds)


def save_entry(folder: Path, key: CacheKey, tools: PgTools, database: str) -> CacheOutcome:
    """Dump `database` (the complete template, before it is marked) into the entry of `key`: the dump, then the
    manifest naming its sha256, each written aside and renamed into place, so that no reader ever takes a half
    written entry for a whole one. A failure is `not saved` with why (the build goes on)."""
    dump, manifest = entry_paths(folder, key)
    token = secrets.token_hex(4)
    partial = folder / f".{dump.name}.{token}.partial"
    started = time.perf_counter()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            result = tools.dump(database, partial, DUMP_OPTIONS)
        except EnvmgrError as exc:
            return CacheOutcome("not saved", f"template cache: {key.template} not saved: {exc.cause}")
        if result.exit_code != 0:
            return CacheOutcome("not saved", f"template cache: {key.template} not saved: pg_dump failed: "
                                             f"{_first_error(result.output)}")  # fmt: skip
        digest, size = _sha256(partial)
        os.replace(partial, dump)
        facts = {"key": asdict(key), "sha256": digest, "size": size, "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                 time.gmtime())}  # fmt: skip
        written = folder / f".{manifest.name}.{token}.partial"
        written.write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(written, manifest)
    except OSError as exc:
        return CacheOutcome("not saved", f"template cache: {key.template} not saved in {folder}: {exc.strerror}")
    finally:
        with suppress(OSError):
            partial.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    return CacheOutcome("saved", f"template cache: {key.template} saved in {folder} ({size / 1e6:.1f} MB, "
                                 f"{seconds:.2f} s)", seconds)  # fmt: skip


def _damage(dump: Path, manifest: Path, key: CacheKey) -> str | None:
    """Why the entry cannot be used as it is, or None."""
    try:
        facts: Any = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"its manifest cannot be read: {first_line(exc)}"
    if not isinstance(facts, dict) or facts.get("key") != asdict(key):
        return "its manifest names another key"
    try:
        digest, size = _sha256(dump)
    except OSError as exc:
        return f"its dump cannot be read: {exc.strerror}"
    if size != facts.get("size") or digest != facts.get("sha256"):
        return f"its dump is not the one saved: {size} bytes, sha256 {digest[:12]}, not {facts.get('size')} bytes, "\
               f"sha256 {str(facts.get('sha256'))[:12]}"  # fmt: skip
    return None


def _sha256(path: Path) -> tuple[str, int]:
    digest = sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(READ_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _first_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return next((line for line in lines if "error:" in line), lines[0] if lines else "no output")
