"""`[tool.envmgr.store]`, and what the store reads under the seeds folder: `seeds/store/<bucket>/<key...>`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from envmgr.seed_layout import Misplaced, SeedEntry, ignorable
from envmgr.services.settings import ServiceSettings


def _check(folder: Path, seeds: Path) -> None:
    for entry in sorted(folder.iterdir()):
        if not entry.is_dir() and not ignorable(entry):
            raise Misplaced(entry, f"store objects go in a bucket folder ({seeds.name}/store/<bucket>/{entry.name})")


class StoreSettings(ServiceSettings):
    """The object store: one server; its buckets from the seeds folder."""

    image_variables = ("ENVMGR_STORE_CACHE",)
    seed_entries = (SeedEntry(names=("store",), folder=True, shows="store/<bucket>/", check=_check),)

    region: str = Field(default="local", description="the store's region")
