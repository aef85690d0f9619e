"""A mixed environment (issue 21 part 1): Postgres on a server envmgr did not start (Debian's PostgreSQL 15 as a
plain process on 127.0.0.1) beside envmgr's Redis container. The test handle of an xdist worker (`envmgr_env`,
attached from the engine's labels) resets and probes the given server too; a handle attached from outside the run
(`envmgr reset`) refuses it in one line rather than skipping it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from envmgr import Environment, Settings, Worker
from envmgr.engine.connection import Engine
from envmgr.errors import EnvmgrError
from tests.conftest import labelled
from tests.integration.plain_servers import PlainPostgres, plain_postgres
from tests.integration.test_plugin import PROJECT_TABLE

pytestmark = pytest.mark.docker

MIXED_TABLE = PROJECT_TABLE + '\n[tool.envmgr.postgres]\nurl = "${DATABASE_URL}"\n'

# One test in an xdist worker: what it wrote on the given Postgres and in the Redis container is gone after
# envmgr_env.reset(), and health() probes both.
RESET_FROM_A_WORKER = """
import os

import psycopg


def test_reset_covers_the_given_server(postgres_url, redis_client, envmgr_env):
    assert os.environ.get("PYTEST_XDIST_WORKER", "").startswith("gw")
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("INSERT INTO users (email, name) VALUES ('w@example.com', 'written')")
    redis_client.set("written", "1")
    envmgr_env.reset()
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        left = connection.execute("SELECT count(*) FROM users WHERE name = 'written'").fetchone()[0]
        seeded = connection.execute("SELECT count(*) FROM users WHERE id <= 3").fetchone()[0]
    assert (left, seeded) == (0, 3)
    assert redis_client.get("written") is None
    health = envmgr_env.health()
    assert set(health) == {"postgres", "redis"}, health
    assert all(probe.healthy for probe in health.values()), health
"""


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PlainPostgres]:
    with plain_postgres() as server:
        yield server


def test_a_workers_test_handle_resets_and_probes_the_given_server_too(
    pytester: pytest.Pytester, postgres_server: PlainPostgres, monkeypatch: pytest.MonkeyPatch, namespace: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", postgres_server.url())
    pytester.makefile(".toml", pyproject=f"[project]\nname = 'mixed'\n{MIXED_TABLE}")
    pytester.makepyfile(test_mixed=RESET_FROM_A_WORKER)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-n", "2")
    result.assert_outcomes(passed=1)
    assert postgres_server.databases() == []


def test_a_handle_attached_outside_the_run_refuses_the_given_server_in_one_line(
    postgres_server: PlainPostgres, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, namespace: str, engine: Engine
) -> None:
    """`envmgr reset` attaches from the labels: it knows Postgres is given but not what the run holds there."""
    monkeypatch.setenv("DATABASE_URL", postgres_server.url())
    settings = Settings(project_root=tmp_path, postgres={"url": "${DATABASE_URL}"})
    with Environment(settings=settings, workers=2) as env:
        outside = Environment.attach(env.id, settings=settings)
        with pytest.raises(EnvmgrError) as refused:
            outside.reset()
        assert "postgres on a server envmgr did not start (postgres.url)" in str(refused.value)
        assert "\n" not in refused.value.cause
        with pytest.raises(EnvmgrError, match="postgres on a server envmgr did not start"):
            outside.health()
        outside.reset(["redis"])  # the container services still can be
        assert outside.health(["redis"])["redis"].healthy
        inside = Environment.attach(env.id, settings=settings, given=env.endpoints)  # as envmgr_env does
        inside.scope = Worker("gw1", isolated=True)
        postgres = env.service("postgres")
        postgres.worker_setup(env.endpoints["postgres"], inside.scope)
        endpoint = postgres.worker_view(env.endpoints["postgres"], inside.scope)
        with psycopg.connect(endpoint.url, autocommit=True) as connection:
            connection.execute("CREATE TABLE written (x int)")
        inside.reset(["postgres"])
        with psycopg.connect(endpoint.url, autocommit=True) as connection:
            assert connection.execute("SELECT to_regclass('written')").fetchone() == (None,)
        with pytest.raises(EnvmgrError, match="envmgr did not start"):
            inside.pause("postgres")  # the given server's own message, not "not part of environment"
        env_id = env.id
    assert postgres_server.databases() == []
    assert labelled(engine, env_id) == []
