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
        from envmgr.database import Janitor

        with Janitor(server) as janitor:
            janitor.clone(server.extra["template"], worker.database("app"))
        env.stop("postgres", worker)
        env.start("postgres", worker)
        for database in ("app", "app_gw0"):
            with psycopg.connect(server.with_path(database).url) as connection:
                assert connection.execute("SELECT count(*) FROM users").fetchone() == (3,)
