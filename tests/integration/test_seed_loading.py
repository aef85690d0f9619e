"""SQL seeds sent in batches against a real Postgres server, and the seeds folder's checks on a real start."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from envmgr import Environment, SeedError, ServiceEndpoint, Settings, load_settings
from envmgr.engine.connection import Engine
from envmgr.services.postgres.janitor import Janitor
from envmgr.services.postgres.template.seeds import SQL_BATCH_BYTES, load_postgres_seeds
from tests.conftest import in_namespace, labelled
from tests.integration.test_cli import envmgr

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
ROWS = 12_000  # ~1 MB of INSERTs: several batches


def _bare(root: Path, **overrides: object) -> Settings:
    """The repository's settings rooted at `root`, without its migrations and seeds (unless given)."""
    if "ENVMGR_IMAGE_SET" not in os.environ:
        overrides.setdefault("image_set", "local")
    return load_settings(
        REPO / "pyproject.toml", **{"project_root": root, "alembic_ini": None, "seeds": None, **overrides}
    )


@pytest.fixture(scope="module")
def server(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceEndpoint]:
    with Environment(["postgres"], settings=_bare(tmp_path_factory.mktemp("bare"))) as env:
        env_id = env.id
        yield env.endpoints["postgres"]
    assert labelled(engine, env_id) == []


@pytest.fixture
def database(server: ServiceEndpoint) -> Iterator[str]:
    name = f"seeds_{uuid.uuid4().hex[:10]}"
    with Janitor(server) as janitor:
        janitor.create(name)
        yield janitor.url(name)
        janitor.drop(name)


def _seed_file(root: Path, statements: list[str]) -> Path:
    folder = root / "seeds" / "postgres"
    folder.mkdir(parents=True)
    (folder / "001_items.sql").write_text(
        "CREATE TABLE items (id int PRIMARY KEY, note text);\n" + "".join(f"{s};\n" for s in statements)
    )
    return root / "seeds"


def _inserts(count: int) -> list[str]:
    return [
        f"INSERT INTO items VALUES ({i}, 'note {i}; -- not a comment ''{i}''') -- a comment\n" for i in range(count)
    ]


def test_a_seed_of_many_batches_loads_every_row(database: str, tmp_path: Path) -> None:
    statements = _inserts(ROWS)
    assert sum(len(s) for s in statements) > 3 * SQL_BATCH_BYTES
    seeds = _seed_file(tmp_path, statements)
    assert load_postgres_seeds(database, seeds) == 1
    with psycopg.connect(database) as connection:
        row = connection.execute("SELECT count(*), max(id), min(note) FROM items").fetchone()
    assert row == (ROWS, ROWS - 1, "note 0; -- not a comment '0'")


def test_a_failing_statement_deep_in_a_batch_is_named_and_nothing_is_left(database: str, tmp_path: Path) -> None:
    statements = _inserts(ROWS)
    failing = 9_000  # in the fourth batch or later, not at a batch's edge
    statements[failing] = f"INSERT INTO items VALUES ({failing - 1}, 'a duplicate id')"
    seeds = _seed_file(tmp_path, statements)
    with pytest.raises(SeedError) as caught:
        load_postgres_seeds(database, seeds)
    number = failing + 2  # after CREATE TABLE, counted from 1
    assert caught.value.cause.startswith(
        f'seed file seeds/postgres/001_items.sql failed at statement {number} (line {number + failing}) "INSERT INTO '
        f"items VALUES ({failing - 1}, 'a duplicate id')\": UniqueViolation: duplicate key value"
    )
    with psycopg.connect(database) as connection:
        row = connection.execute("SELECT to_regclass('items')").fetchone()
    assert row == (None,), "one transaction: the table created by the file is gone too"


def test_a_link_out_of_the_seeds_folder_fails_the_start_and_removes_the_environment(
    engine: Engine, namespace: str, tmp_path: Path
) -> None:
    seeds = _seed_file(tmp_path / "project", ["INSERT INTO items VALUES (1, 'one')"])
    (tmp_path / "elsewhere.sql").write_text("INSERT INTO items VALUES (2, 'two');\n")
    (seeds / "postgres" / "002_elsewhere.sql").symlink_to(tmp_path / "elsewhere.sql")
    settings = _bare(tmp_path / "project", namespace=namespace, seeds=seeds)
    with pytest.raises(SeedError) as caught:
        Environment(["postgres"], settings=settings).start()
    assert caught.value.cause.startswith(
        f"seed path seeds/postgres/002_elsewhere.sql is a symbolic link to {tmp_path / 'elsewhere.sql'}, outside"
    )
    assert in_namespace(engine, namespace) == []

    allowed = settings.model_copy(update={"follow_symlinks": True})
    with Environment(["postgres"], settings=allowed) as env, psycopg.connect(env.endpoints["postgres"].url) as conn:
        assert conn.execute("SELECT array_agg(id ORDER BY id) FROM items").fetchone() == ([1, 2],)


def test_a_malformed_wiremock_mapping_is_exit_7_naming_the_file_before_anything_starts(
    tmp_path: Path, engine: Engine, namespace: str
) -> None:
    """It was exit 5 "exited ... check the image", with `MappingFileException ... bad.json` (the container's path)
    in the log tail (issue 19, item 8)."""
    mappings = tmp_path / "seeds" / "wiremock" / "mappings"
    mappings.mkdir(parents=True)
    (mappings / "good.json").write_text('{"request": {"method": "GET", "url": "/ok"}, "response": {"status": 200}}')
    (mappings / "bad.json").write_text('{"request": {"method": "GET", "url": "/x"},\n "response": {"status": 200,}}')
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n\n[tool.envmgr]\nseeds = 'seeds'\n")
    result = envmgr("up", "wiremock", "--detach", cwd=tmp_path, env={"ENVMGR_DAEMON": "off"})
    assert result.returncode == 7, result.stderr
    first = result.stderr.splitlines()[0]
    assert "seeds/wiremock/mappings/bad.json" in first, first
    assert "line 2" in first, "where the JSON goes wrong"
    assert "last log lines of wiremock" not in result.stderr, "validated before the container starts"
    assert in_namespace(engine, namespace) == []
