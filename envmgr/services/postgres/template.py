"""The template database: migrated (`envmgr.migrate_strategies`: Alembic, Django, a command or a function) and
seeded once per content (see `envmgr.migrations.content_hash`) and server::

    result = ensure_template(endpoint, settings)          # app_tpl_<hash12>: migrated, seeded, IS_TEMPLATE
    with Janitor(endpoint) as janitor:
        janitor.clone(result.name, "app")                 # CREATE DATABASE app TEMPLATE app_tpl_<hash12>

It is built under another name (`<name>_building`), marked as a template and renamed only when complete, so a
half-built one never looks finished; a session-level advisory lock keeps two processes from building the same one.
Templates do not accept connections (`ALLOW_CONNECTIONS false`): `CREATE DATABASE ... TEMPLATE` fails while anyone is
connected to its template.
"""

from __future__ import annotations

import time
from contextlib import suppress
from dataclasses import dataclass

import psycopg

from envmgr.config import Settings
from envmgr.endpoints import ServiceEndpoint
from envmgr.errors import MigrationError, SeedError, first_line
from envmgr.migrate_strategies import migrate_strategy
from envmgr.migrations import content_hash
from envmgr.seeds import load_postgres_seeds
from envmgr.services.postgres.janitor import MAX_IDENTIFIER, Janitor

__all__ = ["TemplateResult", "building_name", "ensure_template", "template_name"]


@dataclass(frozen=True)
class TemplateResult:
    """What ensure_template did: the template's name, whether this call built it, and how long each step took."""

    name: str
    created: bool
    migrate_seconds: float
    seed_seconds: float


def template_name(settings: Settings, digest: str) -> str:
    """`<database>_tpl_<hash[:12]>`."""
    return f"{settings.postgres.database}_tpl_{digest[:12]}"


def building_name(name: str) -> str:
    """`<name>_building`, shortened at the front when it would pass Postgres's 63-byte limit (the hash is kept)."""
    suffix = "_building"
    if len(name) + len(suffix) <= MAX_IDENTIFIER:
        return name + suffix
    keep = MAX_IDENTIFIER - len(suffix)
    return name[len(name) - keep :] + suffix


def ensure_template(endpoint: ServiceEndpoint, settings: Settings) -> TemplateResult:
    """Make sure the server has the template database for the project's current migrations and seeds.

    `endpoint` is the server's superuser endpoint (its path does not matter). When `<database>_tpl_<hash>` exists,
    returns at once (`created=False`); otherwise builds it (see the module's documentation). On failure the
    half-built database is dropped and `MigrationError` or `SeedError` is raised.
    """
    digest = content_hash(settings)
    name = template_name(settings, digest)
    try:
        janitor = Janitor(endpoint)
        with janitor:
            if janitor.exists(name):
                return TemplateResult(name, created=False, migrate_seconds=0.0, seed_seconds=0.0)
            with janitor.lock(f"envmgr-template:{name}"):
                if janitor.exists(name):  # another process built it while this one waited
                    return TemplateResult(name, created=False, migrate_seconds=0.0, seed_seconds=0.0)
                return _build(janitor, name, settings)
    except (MigrationError, SeedError):
        raise
    except psycopg.Error as exc:
        raise MigrationError(
            f"building template database {name} failed: {type(exc).__name__}: {first_line(exc)}",
            "check that the Postgres server is running and the endpoint's user may create databases",
        ) from None


def _build(janitor: Janitor, name: str, settings: Settings) -> TemplateResult:
    building = building_name(name)
    janitor.drop(building)  # left by a build whose process died
    janitor.create(building)
    url = janitor.url(building)
    migrate_seconds = seed_seconds = 0.0
    try:
        strategy = migrate_strategy(settings)
        if strategy is not None:
            started = time.perf_counter()
            strategy.migrate(url)
            migrate_seconds = time.perf_counter() - started
        seeds = settings.seeds_path()
        if seeds is not None:
            started = time.perf_counter()
            load_postgres_seeds(url, seeds)
            seed_seconds = time.perf_counter() - started
        # Complete: make it a template that takes no connections, then give it its final name in one step.
        janitor.mark_template(building)
        janitor.rename(building, name)
    except BaseException:
        with suppress(psycopg.Error):
            janitor.drop(building)
        raise
    return TemplateResult(name, created=True, migrate_seconds=migrate_seconds, seed_seconds=seed_seconds)
