"""The layout of the seeds folder, checked before anything reads it (`Settings.seeds_path()` calls the check).

::

    <seeds>/
      postgres/*.sql|py|json|yaml|yml      Postgres seed files (envmgr.seeds); `_helpers.py` and `.hidden` skipped
      s3/<bucket>/<key...>                 S3 objects (each folder is a bucket)
      sqs.yaml (or sqs.yml, sqs.json)      SQS queues
      wiremock/mappings/*.json             WireMock stubs, with bodies in wiremock/__files/

Whatever else the seeds folder holds would be silently ignored, so it is a `SeedError` naming the file and where
it should go (`seeds/001.sql` -> `seeds/postgres/001.sql`): in the seeds root, anything but the entries above; in
`s3/`, a file outside a bucket folder; in `wiremock/`, anything but `mappings/` and `__files/`; in `postgres/`, a
sub-folder (only the files directly in it are applied). Allowed anywhere: hidden entries (`.gitkeep`) and notes
(`README`, `*.md`, `*.txt`, `*.rst`; in `s3/<bucket>/` every file is an object, notes included).

A symbolic link in the seeds folder that resolves outside it (`seeds/s3/big -> /data/big`) is refused with a
`SeedError` naming the link, unless `follow_symlinks = true` in `[tool.envmgr]`: seeds are part of the project (their
bytes make the template's hash), and a link out of it makes a template depend on the machine. Links that stay inside
the folder are fine. A seeds path that is a file is a `ConfigError` naming the key `seeds`.

The check walks the folder with `os.scandir` (about 1 ms per 1000 entries).
"""

from __future__ import annotations

import os
from pathlib import Path

from envmgr.errors import ConfigError, SeedError

__all__ = [
    "NOTE_NAMES",
    "NOTE_SUFFIXES",
    "POSTGRES_DIR",
    "S3_DIR",
    "SQS_FILES",
    "WIREMOCK_DIR",
    "WIREMOCK_DIRS",
    "check_seeds_folder",
    "s3_seed_buckets",
]

POSTGRES_DIR = "postgres"
S3_DIR = "s3"
WIREMOCK_DIR = "wiremock"
SQS_FILES: tuple[str, ...] = ("sqs.yaml", "sqs.yml", "sqs.json")
WIREMOCK_DIRS: tuple[str, ...] = ("mappings", "__files")
NOTE_NAMES: tuple[str, ...] = ("README", "NOTES", "LICENSE")
NOTE_SUFFIXES: tuple[str, ...] = (".md", ".txt", ".rst")
_POSTGRES_SUFFIXES = (".sql", ".py", ".json", ".yaml", ".yml")
_LAYOUT = "postgres/, s3/<bucket>/, sqs.yaml and wiremock/{mappings,__files}/"


def check_seeds_folder(path: Path, *, follow_symlinks: bool) -> Path:
    """`path` when it is a seeds folder laid out as envmgr reads it (or does not exist: then there are no seeds).

    Raises `ConfigError` when it is a file, `SeedError` for a link out of it (unless `follow_symlinks`) or an entry
    envmgr would not read.
    """
    if path.is_file():
        raise ConfigError(
            f"seeds: {path} is a file, not a folder",
            f"set seeds in [tool.envmgr] (or ENVMGR_SEEDS) to the folder that holds {_LAYOUT}",
        )
    if not path.is_dir():
        return path
    if not follow_symlinks:
        _check_links(path)
    _check_layout(path)
    return path


def _shown(path: Path, seeds: Path) -> str:
    """`seeds/postgres/001.sql`: relative to the seeds folder's parent, as the seed errors show files."""
    return (Path(seeds.name) / path.relative_to(seeds)).as_posix()


def _check_links(seeds: Path) -> None:
    root = seeds.resolve()
    pending = [seeds]
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.is_symlink():
                    target = Path(entry.path).resolve()
                    if not target.is_relative_to(root):
                        shown = _shown(Path(entry.path), seeds)
                        raise SeedError(
                            f"seed path {shown} is a symbolic link to {target}, outside the seeds folder {root}",
                            f"copy what {shown} points to into the seeds folder, or set follow_symlinks = true in "
                            "[tool.envmgr] to allow links out of it",
                        )
                elif entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))


def _is_note(entry: Path) -> bool:
    return entry.is_file() and (entry.name in NOTE_NAMES or entry.suffix.lower() in NOTE_SUFFIXES)


def _ignorable(entry: Path) -> bool:
    return entry.name.startswith(".") or _is_note(entry)


def _check_layout(seeds: Path) -> None:
    for entry in sorted(seeds.iterdir()):
        if _ignorable(entry):
            continue
        if entry.name in (POSTGRES_DIR, S3_DIR, WIREMOCK_DIR):
            if not entry.is_dir():
                raise _misplaced(entry, seeds, f"{_shown(entry, seeds)} must be a folder")
            continue
        if entry.name in SQS_FILES and entry.is_file():
            continue
        raise _misplaced(entry, seeds, _where_it_goes(entry, seeds))
    _check_postgres(seeds / POSTGRES_DIR, seeds)
    _check_s3(seeds / S3_DIR, seeds)
    _check_wiremock(seeds / WIREMOCK_DIR, seeds)


def _where_it_goes(entry: Path, seeds: Path) -> str:
    name = seeds.name
    if entry.is_dir():
        return (
            f"a folder there is not read; S3 objects go in {name}/s3/<bucket>/, WireMock stubs in "
            f"{name}/wiremock/mappings/"
        )
    if entry.suffix.lower() in _POSTGRES_SUFFIXES:
        return f"Postgres seed files go in {name}/{POSTGRES_DIR}/ ({name}/{POSTGRES_DIR}/{entry.name})"
    return f"a file there is not read; the seeds folder holds {_LAYOUT}"


def _check_postgres(folder: Path, seeds: Path) -> None:
    if not folder.is_dir():
        return
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and not entry.name.startswith((".", "_")):
            raise _misplaced(
                entry,
                seeds,
                f"only the files directly in {seeds.name}/{POSTGRES_DIR}/ are applied (a helper folder: _{entry.name})",
            )


def _check_s3(folder: Path, seeds: Path) -> None:
    if not folder.is_dir():
        return
    for entry in sorted(folder.iterdir()):
        if not entry.is_dir() and not _ignorable(entry):
            raise _misplaced(
                entry, seeds, f"S3 objects go in a bucket folder ({seeds.name}/{S3_DIR}/<bucket>/{entry.name})"
            )


def _check_wiremock(folder: Path, seeds: Path) -> None:
    if not folder.is_dir():
        return
    for entry in sorted(folder.iterdir()):
        if entry.name in WIREMOCK_DIRS and entry.is_dir():
            continue
        if not _ignorable(entry):
            raise _misplaced(
                entry,
                seeds,
                f"WireMock stubs go in {seeds.name}/{WIREMOCK_DIR}/mappings/, response bodies in "
                f"{seeds.name}/{WIREMOCK_DIR}/__files/",
            )


def _misplaced(entry: Path, seeds: Path, where: str) -> SeedError:
    shown = _shown(entry, seeds)
    return SeedError(
        f"seed path {shown} is not where envmgr reads seeds: {where}",
        f"move or remove {shown}; the seeds folder holds {_LAYOUT} (and hidden files, README, *.md, *.txt notes)",
    )


def s3_seed_buckets(seeds_dir: Path | None) -> dict[str, list[tuple[str, Path]]]:
    """Bucket name -> [(object key, file)] from seeds/s3/, in sorted order."""
    root = seeds_dir / S3_DIR if seeds_dir is not None else None
    if root is None or not root.is_dir():
        return {}
    buckets: dict[str, list[tuple[str, Path]]] = {}
    for bucket in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in bucket.rglob("*") if p.is_file() and not p.name.startswith("."))
        buckets[bucket.name] = [(f.relative_to(bucket).as_posix(), f) for f in files]
    return buckets
