"""The template cache on real servers (`postgres.template_cache`): a template built and saved by one environment is
restored by the next one, on a fresh server, without migrations and equal to the built one (schema, rows, owners and
privileges); a damaged entry, or one whose restore fails, is ignored with one line and the template built and saved
again; a template whose seeds made a role is not saved."""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from envmgr import Environment, Settings, load_settings
from envmgr.engine.commands import EngineCommands
from envmgr.engine.connection import Engine
from envmgr.services.postgres.janitor import Janitor
from envmgr.services.postgres.template.build import template_digest
from envmgr.services.postgres.template.cache import CacheKey, entry_paths, save_entry
from envmgr.services.postgres.template.changes import fingerprints
from envmgr.services.postgres.tools import PgTools
from tests.conftest import in_namespace, labelled
from tests.integration.test_cli import envmgr
from tests.integration.test_examples import DJANGO_APP, DJANGO_TESTS, _passes

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
ROWS = """
SELECT c.relname, pg_get_userbyid(c.relowner), coalesce(c.relacl::text, '-'),
       (xpath('/row/c/text()', query_to_xml(format('SELECT md5(coalesce(string_agg(t::text, ''|'' ORDER BY t::text),
       '''')) AS c FROM public.%I t', c.relname), false, true, '')))[1]::text
FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' ORDER BY 1
"""
"""each table of the clone: its owner, its privileges and a digest of its rows"""


def _settings(root: Path, cache: Path, **overrides: object) -> Settings:
    """The repository's project (the example app's Alembic migrations, its seeds) with the template cache."""
    if "ENVMGR_IMAGE_SET" not in os.environ:
        overrides.setdefault("image_set", "local")
    defaults = {"project_root": root, "alembic_ini": REPO / "tests/example_app/alembic.ini", "seeds": REPO / "seeds"}
    return load_settings(REPO / "pyproject.toml", **{**defaults, **overrides}, postgres={"template_cache": cache})


@dataclass(frozen=True)
class Snapshot:
    """What a test sees of the environment's database, and what the template build said."""

    schema: str
    rows: list[tuple[object, ...]]
    migrate_seconds: float
    cache: str


def _start(settings: Settings, engine: Engine) -> Snapshot:
    with Environment(["postgres"], settings=settings) as env:
        env_id = env.id
        endpoint = env.endpoints["postgres"]
        with Janitor(endpoint) as janitor:
            schema = fingerprints(janitor)[settings.postgres.database]
        with psycopg.connect(endpoint.url) as connection:
            rows = connection.execute(ROWS).fetchall()  # type: ignore[arg-type]
        snapshot = Snapshot(schema, rows, float(endpoint.extra["migrate_seconds"]),
                            endpoint.extra.get("template_cache", ""))  # fmt: skip
    assert labelled(engine, env_id) == []
    return snapshot


@pytest.fixture(scope="module")
def built(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> tuple[Snapshot, Path, Path]:
    """A first environment: its template built from the migrations and saved in the cache."""
    root, cache = tmp_path_factory.mktemp("project"), tmp_path_factory.mktemp("cache")
    snapshot = _start(_settings(root, cache), engine)
    return snapshot, root, cache


@pytest.fixture
def cache(built: tuple[Snapshot, Path, Path], tmp_path: Path) -> Path:
    """A copy of the saved cache, for one test to use (and damage)."""
    copy = tmp_path / "cache"
    shutil.copytree(built[2], copy)
    return copy


def _entry(cache: Path) -> tuple[Path, Path]:
    dumps = sorted(cache.glob("*.dump"))
    assert len(dumps) == 1, sorted(path.name for path in cache.iterdir())
    return dumps[0], dumps[0].with_suffix(".json")


def test_a_built_template_is_saved_with_its_key(built: tuple[Snapshot, Path, Path]) -> None:
    snapshot, _, cache = built
    assert snapshot.migrate_seconds > 0
    assert snapshot.cache.startswith("template cache: app_tpl_")
    assert f" saved in {cache} (" in snapshot.cache
    dump, manifest = _entry(cache)
    facts = json.loads(manifest.read_text())
    assert facts["key"]["major"] == 15
    assert set(facts["key"]["tools"]) == {"alembic", "sqlalchemy"}
    assert facts["size"] == dump.stat().st_size


@pytest.mark.parametrize("image_set", ["local", "official"])
def test_a_fresh_server_restores_the_template_equal_to_the_built_one_without_migrating(
    built: tuple[Snapshot, Path, Path], cache: Path, engine: Engine, image_set: str
) -> None:
    """Built on the local image, restored on either (the official image's own pg_restore, in its container)."""
    first, root, _ = built
    again = _start(_settings(root, cache, image_set=image_set), engine)
    assert again.migrate_seconds == 0.0
    assert again.cache.startswith("template cache: app_tpl_")
    assert f" restored from {cache} in " in again.cache
    assert again.schema == first.schema
    assert again.rows == first.rows
    assert len(first.rows) >= 2


def test_a_damaged_entry_is_ignored_with_one_line_and_the_template_built_and_saved_again(
    built: tuple[Snapshot, Path, Path], cache: Path, engine: Engine, capfd: pytest.CaptureFixture[str]
) -> None:
    first, root, _ = built
    dump, manifest = _entry(cache)
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one bit flipped: same size
    dump.write_bytes(bytes(data))
    again = _start(_settings(root, cache), engine)
    assert again.migrate_seconds > 0, "built from the migrations"
    assert again.rows == first.rows
    warnings = [line for line in capfd.readouterr().err.splitlines() if "template cache" in line]
    assert len(warnings) == 1
    assert f"ignored {manifest.name} (its dump is not the one saved: {len(data)} bytes" in warnings[0]
    assert again.cache.startswith(warnings[0].removeprefix("envmgr: warning: "))
    assert " saved in " in again.cache
    assert _start(_settings(root, cache), engine).migrate_seconds == 0.0, "saved again: the next one restores it"


def test_an_entry_whose_restore_fails_is_ignored_and_nothing_of_it_is_kept(
    built: tuple[Snapshot, Path, Path], cache: Path, engine: Engine, capfd: pytest.CaptureFixture[str]
) -> None:
    """An entry whose checksum is right but whose dump names a role this server lacks (as a dump of a template whose
    migrations made roles would): pg_restore fails, the template is built from the migrations."""
    first, root, _ = built
    settings = _settings(root, cache)
    ghost = f"ghost_{uuid.uuid4().hex[:8]}"
    uncached = settings.postgres.model_copy(update={"template_cache": None})
    entry = _entry(cache)[0]
    with Environment(["postgres"], settings=settings.model_copy(update={"seeds": None, "postgres": uncached})) as env:
        endpoint = env.endpoints["postgres"]
        with Janitor(endpoint) as janitor:
            janitor.ensure_role(ghost, "pw")
            janitor.create("ghostly")
            with psycopg.connect(janitor.url("ghostly"), autocommit=True) as connection:
                connection.execute(f"CREATE TABLE haunted (id int); ALTER TABLE haunted OWNER TO {ghost}")  # type: ignore[arg-type]
            key = CacheKey.of(entry.name.split("-pg")[0], template_digest(settings), janitor.server_version, settings)
            saved = save_entry(cache, key, PgTools(endpoint, EngineCommands(engine.client)), "ghostly")
            assert saved.state == "saved", saved.line
    assert entry_paths(cache, key)[0] == entry == _entry(cache)[0], "the same entry, overwritten"
    again = _start(settings, engine)
    assert again.migrate_seconds > 0
    assert again.rows == first.rows
    warnings = [line for line in capfd.readouterr().err.splitlines() if "template cache: ignored" in line]
    assert len(warnings) == 1
    assert (
        f'(pg_restore failed: pg_restore: error: could not execute query: ERROR:  role "{ghost}" does not exist'
        in (warnings[0])
    )


def test_a_template_whose_seeds_made_a_role_is_not_saved(tmp_path: Path, engine: Engine,
                                                         capfd: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    role = f"made_{uuid.uuid4().hex[:8]}"
    seeds = tmp_path / "seeds" / "postgres"
    seeds.mkdir(parents=True)
    (seeds / "001_role.sql").write_text(
        f"CREATE ROLE {role};\nCREATE TABLE t (id int);\nGRANT SELECT ON t TO {role};\n"
    )
    settings = _settings(tmp_path, tmp_path / "cache", alembic_ini=None, seeds=tmp_path / "seeds")
    snapshot = _start(settings, engine)
    assert snapshot.cache.endswith(f"not saved: its migrations or seeds created roles ({role}), which live in the "
                                   "server, not in a dump of the database")  # fmt: skip
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []
    assert f"envmgr: warning: {snapshot.cache}" in capfd.readouterr().err


def _cli_project(root: Path) -> Path:
    """A project whose pyproject names the example app's migrations and the repository's seeds."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        f"[project]\nname = 'x'\n\n[tool.envmgr]\nalembic_ini = '{REPO / 'tests/example_app/alembic.ini'}'\n"
        f"seeds = '{REPO / 'seeds'}'\n"
    )
    return root


def test_envmgr_cache_save_then_restore_into_a_running_server_by_env_and_by_url(
    tmp_path: Path, engine: Engine, namespace: str
) -> None:
    project = _cli_project(tmp_path / "project")
    cache = tmp_path / "cache"
    local = {"ENVMGR_DAEMON": "off", "ENVMGR_IMAGE_SET": os.environ.get("ENVMGR_IMAGE_SET", "local")}
    saved = envmgr("cache", "save", str(cache), cwd=project, env=local, timeout=300)
    assert saved.returncode == 0, saved.stderr
    assert " saved in " in saved.stderr
    dump, _ = _entry(cache)
    again = envmgr("cache", "save", str(cache), cwd=project, env=local, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "restored from" in again.stderr
    assert "it is there already" in again.stderr
    assert _entry(cache)[0] == dump
    bare = load_settings(REPO / "pyproject.toml", project_root=tmp_path, alembic_ini=None, seeds=None,
                         image_set=local["ENVMGR_IMAGE_SET"], namespace=namespace)  # fmt: skip
    with Environment(["postgres"], settings=bare) as env:  # a server without the project's template
        endpoint = env.endpoints["postgres"]
        template = dump.name.split("-pg")[0]
        restored = envmgr("cache", "restore", str(cache), "--env", env.id, cwd=project, env=local)
        assert restored.returncode == 0, restored.stderr
        assert f"template cache: {template} restored from {cache}" in restored.stderr
        with Janitor(endpoint) as janitor:
            assert janitor.is_template(template)
            janitor.drop(template)
        by_url = envmgr("cache", "restore", str(cache), "--url", endpoint.url, cwd=project, env=local)
        assert by_url.returncode == 0, by_url.stderr
        with Janitor(endpoint) as janitor:
            assert janitor.is_template(template)
            janitor.clone(template, "restored_copy")
        with psycopg.connect(endpoint.with_path("restored_copy").url) as connection:
            assert connection.execute("SELECT count(*) > 0 FROM users").fetchone() == (True,)
        twice = envmgr("cache", "restore", str(cache), "--env", env.id, cwd=project, env=local)
        assert twice.returncode == 0, twice.stderr
        assert "is on the server already (nothing restored)" in twice.stderr
        (project / "pyproject.toml").write_text(
            (project / "pyproject.toml").read_text() + "\n[tool.envmgr.postgres]\nextensions = ['citext']\n"
        )
        missing = envmgr("cache", "restore", str(cache), "--env", env.id, cwd=project, env=local)
        assert missing.returncode == 10, missing.stderr
        first = missing.stderr.splitlines()[0]
        assert first.startswith(f"envmgr: error: {cache} holds no entry for app_tpl_"), first
        assert "for PostgreSQL 15, owner envmgr, alembic " in first
        assert f"envmgr cache save {cache}" in missing.stderr
    assert in_namespace(engine, namespace) == [], "the temporary environments of `cache save` are gone"


@pytest.mark.usefixtures("no_new_environments")
def test_a_django_run_on_a_fresh_server_with_a_warm_cache_migrates_nothing(
    namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Django example, cold (no daemon), twice with the cache in ENVMGR_POSTGRES__TEMPLATE_CACHE: the first run
    migrates and saves, the second restores on its new server and runs Django's migrate not at all."""
    monkeypatch.setenv("ENVMGR_POSTGRES__TEMPLATE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ENVMGR_DAEMON", "off")
    first = next(line for line in _passes(DJANGO_APP, DJANGO_TESTS, 2).splitlines() if line.startswith("envmgr: env"))
    assert re.search(r"\| template app_tpl_\w+ built \| template cache: app_tpl_\w+ saved in ", first), first
    assert " migrate " in first
    second = next(line for line in _passes(DJANGO_APP, DJANGO_TESTS, 2).splitlines() if line.startswith("envmgr: env"))
    assert re.search(r"\| template cache: app_tpl_\w+ restored from .+ \(migrations and seeds skipped\) \|", second)
    assert " migrate " not in second, second
