"""The project's template between a running server and a cache folder, on demand: what `envmgr cache save DIR` and
`envmgr cache restore DIR` do (the build itself uses the cache through `postgres.template_cache`: `build.py`).

* `save_template`: the server's template into the folder. A template that exists on the server is cloned into a
  scratch database (a template takes no connections), dumped and the clone dropped; one that does not is built
  (restored from the folder when it holds it already, else migrated, seeded and saved).
* `restore_template`: the folder's entry into the server, as the template (under the build's lock, built under its
  `_building` name, marked and renamed when complete), so that the next run on that server migrates nothing. Unlike a
  build, which ignores a damaged entry with one line and migrates, an explicit restore that cannot be done is a
  `TemplateCacheError` saying why (no entry for this key, a damaged one, a failing pg_restore).
"""

from __future__ import annotations

import secrets
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg

from envmgr.config import Settings
from envmgr.endpoints import ServiceEndpoint
from envmgr.errors import TemplateCacheError
from envmgr.services.base import ContainerCommands
from envmgr.services.postgres.janitor import Janitor
from envmgr.services.postgres.template.build import (
    building_name,
    create_building,
    ensure_template,
    template_digest,
    template_name,
)
from envmgr.services.postgres.template.cache import CacheKey, entry_paths, restore_entry, save_entry
from envmgr.services.postgres.tools import PgTools

__all__ = ["Transferred", "restore_template", "save_template"]


@dataclass(frozen=True)
class Transferred:
    """What a save or restore did: the template, its entry, and the line that says it."""

    template: str
    entry: Path
    line: str


def save_template(
    endpoint: ServiceEndpoint, settings: Settings, folder: Path, commands: ContainerCommands | None = None
) -> Transferred:
    """The project's template on this server (built when it is not there) into `folder` (see the module's
    documentation); `TemplateCacheError` when it cannot be written."""
    settings = _with_cache(settings, folder)
    name = template_name(settings, template_digest(settings))
    tools = PgTools(endpoint, commands)
    with Janitor(endpoint) as janitor:
        key = _key(janitor, name, settings)
        if not janitor.exists(name):
            result = ensure_template(endpoint, settings, commands=commands)  # restored, or built and saved
            return Transferred(name, entry_paths(folder, key)[0], result.cache)
        scratch = f"{name[:40]}_save_{secrets.token_hex(4)}"
        janitor.clone(name, scratch)
        try:
            outcome = save_entry(folder, key, tools, scratch)
        finally:
            janitor.drop(scratch)
    if outcome.state != "saved":
        raise TemplateCacheError(outcome.line.removeprefix("template cache: "), "check the folder and the server")
    return Transferred(name, entry_paths(folder, key)[0], outcome.line)


def restore_template(
    endpoint: ServiceEndpoint, settings: Settings, folder: Path, commands: ContainerCommands | None = None
) -> Transferred:
    """The entry of `folder` for the project's template into this server, as the template; `TemplateCacheError` when
    there is none for its key or it cannot be restored."""
    settings = _with_cache(settings, folder)
    name = template_name(settings, template_digest(settings))
    tools = PgTools(endpoint, commands)
    with Janitor(endpoint) as janitor:
        key = _key(janitor, name, settings)
        entry = entry_paths(folder, key)[0]
        if janitor.exists(name):
            return Transferred(name, entry, f"template cache: {name} is on the server already (nothing restored)")
        with janitor.lock(f"envmgr-template:{name}"):
            if janitor.exists(name):
                return Transferred(name, entry, f"template cache: {name} was made meanwhile (nothing restored)")
            building = building_name(name)
            janitor.drop(building)
            create_building(janitor, building, settings.postgres)
            try:
                outcome = restore_entry(folder, key, tools, building)
                if outcome.state == "hit":
                    janitor.mark_template(building)
                    janitor.rename(building, name)
                    return Transferred(name, entry, outcome.line)
            finally:
                if not janitor.exists(name):
                    with suppress(psycopg.Error):
                        janitor.drop(building)
    if outcome.state == "miss":
        others = sorted(path.name for path in folder.glob(f"{name}-*.json")) if folder.is_dir() else []
        raise TemplateCacheError(
            f"{folder} holds no entry for {key.describe()} ({entry.name}"
            + (f"; entries of other keys for this template: {', '.join(others)})" if others else ")"),
            f"`envmgr cache save {folder}` makes one (with the same migrations, seeds, Postgres major version and "
            "migration tools)",
        )
    raise TemplateCacheError(outcome.line.removeprefix("template cache: ").split("; building")[0],
                             f"remove {entry.name} and its .json, then `envmgr cache save {folder}`")  # fmt: skip


def _with_cache(settings: Settings, folder: Path) -> Settings:
    postgres = settings.postgres.model_copy(update={"template_cache": folder.resolve()})
    return settings.model_copy(update={"postgres": postgres})


def _key(janitor: Janitor, name: str, settings: Settings) -> CacheKey:
    return CacheKey.of(name, template_digest(settings), janitor.server_version, settings)
