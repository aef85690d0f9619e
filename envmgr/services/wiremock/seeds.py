"""What WireMock reads under the seeds folder: `seeds/wiremock/mappings/*.json` stubs, with bodies in
`seeds/wiremock/__files/` (copied into every WireMock replica).

WireMock refuses to start with a mapping it cannot read (its log says `MappingFileException` and the container's
path), so every mapping is checked before anything starts: JSON, a stub object or a list of them (`mappings`), a
`request` that is an object, and a `bodyFileName` that is in `__files/`. A problem is a SeedError naming the file
and the place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from envmgr.seed_layout import Misplaced, SeedEntry, ignorable, read_seed_text, seed_file_error, shown_path

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
    mappings = folder / "mappings"
    if mappings.is_dir():
        for path in sorted(mappings.rglob("*.json")):
            _check_mapping(path, folder / "__files", seeds)


def _check_mapping(path: Path, files: Path, seeds: Path) -> None:
    """One mapping file as WireMock reads it: JSON, one stub or `{"mappings": [...]}`, body files present."""
    shown = shown_path(path, seeds)
    try:
        document = json.loads(read_seed_text(path, shown))
    except json.JSONDecodeError as exc:
        raise seed_file_error(shown, f"line {exc.lineno}, column {exc.colno}", f"not valid JSON: {exc.msg}") from None
    stubs: Any = document.get("mappings", [document]) if isinstance(document, dict) else None
    if not isinstance(stubs, list):
        raise seed_file_error(shown, "the top level", 'expected a stub {"request": ..., "response": ...} or '
                              '{"mappings": [...]}')  # fmt: skip
    for index, stub in enumerate(stubs, start=1):
        where = f"stub {index}" if "mappings" in document else "the stub"
        if not isinstance(stub, dict) or not isinstance(stub.get("request", {}), dict):
            raise seed_file_error(shown, where, 'expected a stub object whose "request" is an object')
        response = stub.get("response", {})
        body = response.get("bodyFileName") if isinstance(response, dict) else None
        if isinstance(body, str) and "{{" not in body and not (files / body).is_file():
            raise seed_file_error(
                shown, where, f"its bodyFileName {body!r} is not in {seeds.name}/{WIREMOCK_SEEDS}/__files/"
            )


SEED_ENTRY = SeedEntry(
    names=(WIREMOCK_SEEDS,), folder=True, shows=f"{WIREMOCK_SEEDS}/{{{','.join(WIREMOCK_DIRS)}}}/", check=_check
)
