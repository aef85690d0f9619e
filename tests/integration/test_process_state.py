"""In-process Alembic and Python seeds from several threads at once (what the daemon does when it builds templates
for several configurations): every build succeeds and the process's sys.path, sys.modules and logging are as before.
"""

from __future__ import annotations

import logging
import logging.config
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from envmgr import Environment, ServiceEndpoint, load_settings
from envmgr.engine.connection import Engine
from envmgr.services.postgres.janitor import Janitor
from envmgr.services.postgres.template.alembic_upgrade import head_revisions, run_migrations
from envmgr.services.postgres.template.seeds import load_postgres_seeds
from tests.conftest import labelled

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_INI = REPO / "tests" / "example_app" / "alembic.ini"
THREADS = 3
ROUNDS = 3


@pytest.fixture(scope="module")
def server(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceEndpoint]:
    overrides: dict[str, object] = {"project_root": tmp_path_factory.mktemp("bare"), "alembic_ini": None, "seeds": None}
    if "ENVMGR_IMAGE_SET" not in os.environ:
        overrides["image_set"] = "local"
    with Environment(["postgres"], settings=load_settings(REPO / "pyproject.toml", **overrides)) as env:
        env_id = env.id
        yield env.endpoints["postgres"]
    assert labelled(engine, env_id) == []


def _process_state() -> dict[str, object]:
    """What an in-process migration or seed could leave changed behind it (loggers: those that exist now)."""
    root = logging.getLogger()
    state: dict[str, object] = {
        "sys.path": list(sys.path),
        "fileConfig": logging.config.fileConfig,
        "root": (root.level, list(root.handlers), root.disabled),
        "seed modules": sorted(name for name in sys.modules if name.startswith("envmgr_seed_") or name == "_rows"),
    }
    for name, logger in logging.Logger.manager.loggerDict.items():
        if isinstance(logger, logging.Logger):
            state[f"logger {name}"] = (logger.level, list(logger.handlers), logger.propagate, logger.disabled)
    return state


def _changed(before: dict[str, object]) -> list[str]:
    """The parts of the process state that differ from `before` (loggers created since: only if disabled)."""
    after = _process_state()
    changed = [key for key, value in before.items() if after.get(key) != value]
    changed += [key for key, value in after.items() if key not in before and value[-1] is True]  # type: ignore[index]
    return changed


def _in_threads(janitor: Janitor, action: Callable[[str], None]) -> list[str]:
    """Run `action(url)` on THREADS fresh databases at once, ROUNDS times; return the errors (empty when all ran)."""
    errors: list[str] = []
    for _ in range(ROUNDS):
        names = [f"ps_{uuid.uuid4().hex[:10]}" for _ in range(THREADS)]
        for name in names:
            janitor.create(name)
        barrier = threading.Barrier(THREADS)

        def work(url: str, barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait(timeout=30)
                action(url)
            except BaseException as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=work, args=(janitor.url(name),)) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads), "a thread is still running after 120 s"
        for name in names:
            janitor.drop(name)
    return errors


def test_concurrent_migrations_all_succeed_and_leave_the_process_as_it_was(server: ServiceEndpoint) -> None:
    sys.path.append(str(EXAMPLE_INI.parent))  # the models the example env.py imports, loaded once up front
    import musicapp.models  # noqa: F401

    before = _process_state()
    migrated: list[str] = []

    def migrate(url: str) -> None:
        run_migrations(EXAMPLE_INI, url)
        with psycopg.connect(url) as connection:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        assert row is not None
        migrated.append(str(row[0]))

    try:
        with Janitor(server) as janitor:
            errors = _in_threads(janitor, migrate)
        assert errors == []
        assert migrated == list(head_revisions(EXAMPLE_INI)) * (THREADS * ROUNDS)
        assert _changed(before) == []
    finally:
        sys.path.remove(str(EXAMPLE_INI.parent))


def test_concurrent_python_seeds_all_succeed_and_leave_the_process_as_it_was(
    server: ServiceEndpoint, tmp_path: Path
) -> None:
    folder = tmp_path / "seeds" / "postgres"
    folder.mkdir(parents=True)
    (folder / "_rows.py").write_text("ROWS = [(1, 'one'), (2, 'two')]\n")
    (folder / "001_rows.py").write_text(
        "import sys\n"
        "import time\n"
        "from sqlalchemy import text\n"
        "from _rows import ROWS\n\n"
        "def seed(connection):\n"
        "    connection.execute(text('CREATE TABLE items (id int PRIMARY KEY, name text)'))\n"
        "    for row in ROWS:\n"
        "        time.sleep(0.02)\n"
        "        connection.execute(text('INSERT INTO items VALUES (:id, :name)'), {'id': row[0], 'name': row[1]})\n"
        "    assert sys.modules.get(__name__) is not None, 'the seed module stays registered while it runs'\n"
        "    assert sys.path[0] == __file__.rsplit('/', 1)[0], 'its folder leads sys.path while it runs'\n"
    )
    before = _process_state()
    counts: list[int] = []

    def seed(url: str) -> None:
        load_postgres_seeds(url, tmp_path / "seeds")
        with psycopg.connect(url) as connection:
            row = connection.execute("SELECT count(*) FROM items").fetchone()
        assert row is not None
        counts.append(int(row[0]))

    with Janitor(server) as janitor:
        errors = _in_threads(janitor, seed)
    assert errors == []
    assert counts == [2] * (THREADS * ROUNDS)
    assert _changed(before) == []
