"""Fault injection on real containers: pause and stop a service, then get it back on the same endpoint."""

from __future__ import annotations

import psycopg
import pytest
import redis

from envmgr import Environment, Settings

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]


def test_paused_redis_times_out_and_answers_again_after_unpause(settings: Settings) -> None:
    with Environment(["redis"], settings=settings) as env:
        client = redis.Redis.from_url(env.endpoints["redis"].url, socket_timeout=0.5)
        client.set("k", "v")
        env.pause("redis")
        with pytest.raises(redis.TimeoutError):
            client.get("k")
        assert not env.health()["redis"].healthy
        env.unpause("redis")
        client = redis.Redis.from_url(env.endpoints["redis"].url, socket_timeout=2)
        assert client.get("k") == b"v"
        client.close()


def test_stopped_postgres_refuses_and_comes_back_on_the_same_port(settings: Settings) -> None:
    with Environment(["postgres"], settings=settings) as env:
        url = env.endpoints["postgres"].url
        env.stop("postgres")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=2)
        env.start("postgres")
        assert env.endpoints["postgres"].url == url
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)


def test_stopped_postgres_comes_back_migrated_and_seeded(settings: Settings) -> None:
    from envmgr.endpoints import Worker
    from tests.conftest import REPO

    seeded = settings.model_copy(
        update={"alembic_ini": REPO / "tests" / "example_app" / "alembic.ini", "seeds": REPO / "seeds"}
    )
    worker = Worker("gw0", isolated=True)
    with Environment(["postgres"], settings=seeded, workers=1) as env:
        server = env.endpoints["postgres"]
        from envmgr.services.postgres.janitor import Janitor

        with Janitor(server) as janitor:
            janitor.clone(server.extra["template"], worker.database("app"))
        env.stop("postgres", worker)
        env.start("postgres", worker)
        for database in ("app", "app_gw0"):
            with psycopg.connect(server.with_path(database).url) as connection:
                assert connection.execute("SELECT count(*) FROM users").fetchone() == (3,)


FAULTING_WORKER = """
import os, time
from pathlib import Path

import psycopg
import pytest
import redis

SIGNALS = Path({signals!r})


def wait_for(name):
    deadline = time.monotonic() + 120
    while not (SIGNALS / name).exists():
        assert time.monotonic() < deadline, f"no {{name}} signal"
        time.sleep(0.05)  # polling another process's signal file, within a deadline


def test_down_for_this_worker_only(envmgr_faults, redis_url, postgres_url):
    client = redis.Redis.from_url(redis_url, socket_timeout=0.5)
    assert client.ping()
    envmgr_faults.pause("redis")
    envmgr_faults.stop("postgres")
    with pytest.raises(redis.TimeoutError):
        redis.Redis.from_url(redis_url, socket_timeout=0.5).ping()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(postgres_url, connect_timeout=2)
    (SIGNALS / "faulted").write_text(os.environ["PYTEST_XDIST_WORKER"])
    wait_for("other-done")
    envmgr_faults.restore()
    assert redis.Redis.from_url(redis_url, socket_timeout=2).ping()
    with psycopg.connect(postgres_url, connect_timeout=5) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)
"""

OTHER_WORKER = """
import os, time
from pathlib import Path

import psycopg
import redis

SIGNALS = Path({signals!r})


def test_the_other_worker_is_not_affected(redis_url, postgres_url):
    deadline = time.monotonic() + 120
    while not (SIGNALS / "faulted").exists():
        assert time.monotonic() < deadline, "the faulting worker never faulted"
        time.sleep(0.05)  # polling another process's signal file, within a deadline
    assert (SIGNALS / "faulted").read_text() != os.environ["PYTEST_XDIST_WORKER"]
    for _ in range(20):
        assert redis.Redis.from_url(redis_url, socket_timeout=2).ping()
        with psycopg.connect(postgres_url, connect_timeout=5) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
    (SIGNALS / "other-done").write_text("done")
"""


def test_faults_of_one_worker_leave_the_other_alone(pytester: pytest.Pytester) -> None:
    """Two workers share Redis and Postgres: while one has them paused and stopped (through its own proxy, as a
    production app would see an outage), the other works normally; concurrent faults never touch the container."""
    signals = pytester.path / "signals"
    signals.mkdir()
    pytester.makefile(".toml", pyproject="[project]\nname = 'faults'\n[tool.envmgr]\n")
    pytester.makepyfile(
        test_a=FAULTING_WORKER.format(signals=str(signals)), test_b=OTHER_WORKER.format(signals=str(signals))
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile")
    result.assert_outcomes(passed=2)
