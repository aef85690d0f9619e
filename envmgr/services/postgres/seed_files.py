"""What Postgres reads under the seeds folder: the files directly in `seeds/postgres/`, applied in sorted name order
(`*.sql`, `*.dump`, `*.py`, `*.json`, `*.yaml`, `*.yml`; the loader is `template/seeds.py`). Names starting with `.`
or `_` are not applied (helpers, editor files); a sub-folder, or a file of another kind, would be ignored and is
refused."""

from __future__ import annotations

from pathlib import Path

from envmgr.seed_layout import Misplaced, SeedEntry, ignorable, shown_path

__all__ = ["POSTGRES_SEEDS", "SEED_ENTRY", "SEED_EXTENSIONS", "postgres_seed_files"]

POSTGRES_SEEDS = "postgres"
SEED_EXTENSIONS: tuple[str, ...] = (".sql", ".dump", ".py", ".json", ".yaml", ".yml")


def postgres_seed_files(seeds_dir: Path) -> list[Path]:
    """The Postgres seed files under `<seeds_dir>/postgres/`, in the order they are applied (sorted by name)."""
    folder = seeds_dir / POSTGRES_SEEDS
    if not folder.is_dir():
        return []
    files = [path for path in folder.iterdir() if path.is_file() and _applied(path)]
    return sorted(files, key=lambda path: path.name)


def _applied(path: Path) -> bool:
    return path.suffix.lower() in SEED_EXTENSIONS and not path.name.startswith((".", "_"))


def _check(folder: Path, seeds: Path) -> None:
    kinds = ", ".join(f"*{suffix}" for suffix in SEED_EXTENSIONS)
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_dir():
            raise Misplaced(
                entry,
                f"only the files directly in {seeds.name}/{POSTGRES_SEEDS}/ are applied (a helper folder: "
                f"_{entry.name})",
            )
        if not _applied(entry) and not ignorable(entry):
            raise Misplaced(
                entry,
                f"Postgres seed files are {kinds} ({shown_path(entry, seeds)} would not be applied; a helper: "
                f"_{entry.name})",
            )


def _claims(entry: Path) -> str | None:
    if entry.is_file() and entry.suffix.lower() in SEED_EXTENSIONS:
        seeds = entry.parent.name
        return f"Postgres seed files go in {seeds}/{POSTGRES_SEEDS}/ ({seeds}/{POSTGRES_SEEDS}/{entry.name})"
    return None


SEED_ENTRY = SeedEntry(names=(POSTGRES_SEEDS,), folder=True, shows=f"{POSTGRES_SEEDS}/", check=_check, claims=_claims)
