"""What WireMock reads under the seeds folder: `seeds/wiremock/mappings/*.json` stubs, with bodies in
`seeds/wiremock/__files/` (copied into every WireMock replica)."""

from __future__ import annotations

from pathlib import Path

from envmgr.seed_layout import Misplaced, SeedEntry, ignorable

__all__ = ["SEED_ENTRY", "WIREMOCK_DIRS", "WIREMOCK_SEEDS", "wiremock_seed_dirs"]

WIREMOCK_SEEDS = "wiremock"
WIREMOCK_DIRS: tuple[str, ...] = ("mappings", "__files")


def wiremock_seed_dirs(seeds_dir: Path | None) -> list[Path]:
    """The seeds/wiremock/mappings and seeds/wiremock/__files folders that exist."""
    root = seeds_dir / WIREMOCK_SEEDS if seeds_dir is not None else None
    if root is None:
        return []
    return [root / name for name in WIREMOCK_DIRS if (root / name).is_dir()]


def _check(folder: Path, seeds: Path) -> None:
    for entry in sorted(folder.iterdir()):
        if (entry.name in WIREMOCK_DIRS and entry.is_dir()) or ignorable(entry):
            continue
        raise Misplaced(
            entry,
            f"WireMock stubs go in {seeds.name}/{WIREMOCK_SEEDS}/mappings/, response bodies in "
            f"{seeds.name}/{WIREMOCK_SEEDS}/__files/",
        )


SEED_ENTRY = SeedEntry(
    names=(WIREMOCK_SEEDS,), folder=True, shows=f"{WIREMOCK_SEEDS}/{{{','.join(WIREMOCK_DIRS)}}}/", check=_check
)
