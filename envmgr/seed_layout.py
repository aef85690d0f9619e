"""The seeds folder, generic: each service says what it reads there (`SeedEntry`, declared by its settings class:
`ServiceSettings.seed_entries`), and `check_seeds_folder` refuses whatever no service reads, before anything reads
it (`Settings.seeds_path()` calls the check).

Whatever the seeds folder holds that no service reads would be silently ignored, so it is a `SeedError` naming the
file and where it should go (`seeds/001.sql` -> `seeds/postgres/001.sql`): in the seeds root, anything but the
services' entries; inside an entry, what its service's own check refuses. Allowed anywhere: hidden entries
(`.gitkeep`) and notes (`README`, `*.md`, `*.txt`, `*.rst`) unless a service reads every file of a folder.

A symbolic link in the seeds folder that resolves outside it (`seeds/s3/big -> /data/big`) is refused with a
`SeedError` naming the link, unless `follow_symlinks = true` in `[tool.envmgr]`: seeds are part of the project (their
bytes make the template's hash), and a link out of it makes a template depend on the machine. Links that stay inside
the folder are fine. A seeds path that is a file is a `ConfigError` naming the key `seeds`; a seeds folder that was
set and does not exist is a `SeedError` (a misspelt path would otherwise load nothing).

The check walks the folder with `os.scandir` (about 1 ms per 1000 entries). The helpers below are what the
services' checks and loaders share: how a seed path is shown (`shown_path`), reading a seed file (`read_seed_text`)
and the error of a seed file that fails (`seed_file_error`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from envmgr.errors import ConfigError, SeedError, first_line

__all__ = [
    "NOTE_NAMES",
    "NOTE_SUFFIXES",
    "Misplaced",
    "SeedEntry",
    "check_seeds_folder",
    "ignorable",
    "layout_text",
    "read_seed_text",
    "seed_file_error",
    "shown_path",
]

NOTE_NAMES: tuple[str, ...] = ("README", "NOTES", "LICENSE")
NOTE_SUFFIXES: tuple[str, ...] = (".md", ".txt", ".rst")


class Misplaced(Exception):
    """Raised by a service's check: `entry` is not where the service reads seeds; `where` says where it goes."""

    def __init__(self, entry: Path, where: str) -> None:
        super().__init__(where)
        self.entry = entry
        self.where = where


@dataclass(frozen=True)
class SeedEntry:
    """One entry of the seeds folder's top level that a service reads."""

    names: tuple[str, ...]
    """its name (`postgres`), or the names it may have (`sqs.yaml`, `sqs.yml`, `sqs.json`)"""
    folder: bool
    """a folder (else a file)"""
    shows: str
    """how the layout names it: `postgres/`, `s3/<bucket>/`, `sqs.yaml`"""
    check: Callable[[Path, Path], None] | None = None
    """(the entry, the seeds folder) -> None: raise `Misplaced` for what the service would not read inside it"""
    claims: Callable[[Path], str | None] | None = None
    """(a top-level entry no service reads) -> where it goes when it belongs in this entry, else None"""


def layout_text(entries: Sequence[SeedEntry]) -> str:
    """`postgres/, s3/<bucket>/, sqs.yaml and wiremock/{mappings,__files}/`."""
    shown = list(dict.fromkeys(entry.shows for entry in entries))
    if len(shown) <= 1:
        return "".join(shown)
    return f"{', '.join(shown[:-1])} and {shown[-1]}"


def shown_path(path: Path, seeds: Path) -> str:
    """`seeds/postgres/001.sql`: relative to the seeds folder's parent, as the seed errors show files."""
    try:
        return (Path(seeds.name) / path.relative_to(seeds)).as_posix()
    except ValueError:
        return path.as_posix()


def seed_file_error(shown: str, where: str, error: str) -> SeedError:
    """A seed file that failed: `seed file seeds/sqs.yaml failed at parsing: ...`."""
    return SeedError(f"seed file {shown} failed at {where}: {error}", f"fix the seed file {shown}")


def read_seed_text(path: Path, shown: str) -> str:
    """A seed file's text (UTF-8, a BOM skipped); a `SeedError` naming it when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise seed_file_error(shown, "reading", f"{type(exc).__name__}: {first_line(exc)}") from None


def ignorable(entry: Path) -> bool:
    """A hidden entry or a note: allowed anywhere a service does not read every file."""
    if entry.name.startswith("."):
        return True
    return entry.is_file() and (entry.name in NOTE_NAMES or entry.suffix.lower() in NOTE_SUFFIXES)


def check_seeds_folder(path: Path, entries: Sequence[SeedEntry], *, follow_symlinks: bool) -> Path:
    """`path` when it is a seeds folder laid out as the services (`entries`) read it.

    Raises `ConfigError` when it is a file, `SeedError` when it does not exist, for a link out of it (unless
    `follow_symlinks`) and for an entry no service would read.
    """
    if path.is_file():
        raise ConfigError(
            f"seeds: {path} is a file, not a folder",
            f"set seeds in [tool.envmgr] (or ENVMGR_SEEDS) to the folder that holds {layout_text(entries)}",
        )
    if not path.is_dir():
        raise SeedError(
            f"the seeds folder {path} does not exist",
            f"create it (it holds {layout_text(entries)}), or correct or remove the setting seeds in [tool.envmgr]",
        )
    if not follow_symlinks:
        _check_links(path)
    try:
        _check_layout(path, entries)
    except Misplaced as exc:
        shown = shown_path(exc.entry, path)
        raise SeedError(
            f"seed path {shown} is not where envmgr reads seeds: {exc.where}",
            f"move or remove {shown}; the seeds folder holds {layout_text(entries)} (and hidden files, README, *.md, "
            "*.txt notes)",
        ) from None
    return path


def _check_links(seeds: Path) -> None:
    root = seeds.resolve()
    pending = [seeds]
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as found:
            for entry in sorted(found, key=lambda e: e.name):
                if entry.is_symlink():
                    target = Path(entry.path).resolve()
                    if not target.is_relative_to(root):
                        shown = shown_path(Path(entry.path), seeds)
                        raise SeedError(
                            f"seed path {shown} is a symbolic link to {target}, outside the seeds folder {root}",
                            f"copy what {shown} points to into the seeds folder, or set follow_symlinks = true in "
                            "[tool.envmgr] to allow links out of it",
                        )
                elif entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))


def _check_layout(seeds: Path, entries: Sequence[SeedEntry]) -> None:
    by_name = {name: entry for entry in entries for name in entry.names}
    for found in sorted(seeds.iterdir()):
        if ignorable(found):
            continue
        entry = by_name.get(found.name)
        if entry is None:
            raise Misplaced(found, _where_it_goes(found, seeds, entries))
        if entry.folder and not found.is_dir():
            raise Misplaced(found, f"{shown_path(found, seeds)} must be a folder")
        if not entry.folder and not found.is_file():
            raise Misplaced(found, f"{shown_path(found, seeds)} must be a file")
    checked: set[str] = set()
    for entry in entries:
        for name in entry.names:
            if entry.check is not None and (seeds / name).exists() and name not in checked:
                checked.add(name)
                entry.check(seeds / name, seeds)


def _where_it_goes(found: Path, seeds: Path, entries: Sequence[SeedEntry]) -> str:
    for entry in entries:
        where = entry.claims(found) if entry.claims is not None else None
        if where is not None:
            return where
    what = "a folder" if found.is_dir() else "a file"
    return f"{what} there is not read; the seeds folder holds {layout_text(entries)}"
