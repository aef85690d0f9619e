"""Environment against real containers: start, readiness, isolation, security defaults, teardown, failures."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
import redis

from envmgr import Environment, EnvmgrError, ReadinessTimeoutError, SeedError, ServiceStartError, Settings
from envmgr.engine.connection import Engine
from envmgr.engine.labels import LABEL_DETACHED, LABEL_ENV, LABEL_HOST, LABEL_PID, LABEL_SERVICE
from tests.conftest import labelled

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]


def test_postgres_and_redis_start_answer_and_leave_nothing(settings: Settings, engine: Engine) -> None:
    with Environment(["postgres", "redis"], settings=settings) as env:
        pg, rd = env.endpoints["postgres"], env.endpoints["redis"]
        with psycopg.connect(pg.url) as connection:
            assert connection.execute("SELECT current_database(), current_user").fetchone() == ("app", "envmgr")
            assert connection.execute("SHOW fsync").fetchone() == ("off",)
        client = redis.Redis.from_url(rd.url)
        assert client.ping()
        client.close()
        assert set(env.health()) == {"postgres", "redis"}
        assert all(h.healthy for h in env.health().values())
        env_id = env.id
        assert len(labelled(engine, env_id)) == 3  # two containers and the network
    assert labelled(engine, env_id) == []


def test_ports_are_published_on_loopback_only_with_labels(settings: Settings, engine: Engine) -> None:
    with Environment(["redis"], settings=settings) as env:
        container = engine.client.containers.get(env.endpoints["redis"].container)
        bindings = container.attrs["NetworkSettings"]["Ports"]["6379/tcp"]
        assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}
        labels = container.labels
        assert labels[LABEL_ENV] == env.id
        assert labels[LABEL_SERVICE] == "redis"
        assert labels[LABEL_PID].isdigit()
        assert labels[LABEL_HOST]
        assert labels[LABEL_DETACHED] == "false"
        assert container.attrs["HostConfig"]["Privileged"] is False
        mounts = [m.get("Source", "") for m in container.attrs["Mounts"]]
        assert not any("docker.sock" in source for source in mounts)
        network = engine.client.networks.get(env.network_name)
        assert network.attrs["Labels"][LABEL_ENV] == env.id


def test_every_environment_gets_fresh_credentials(settings: Settings) -> None:
    with Environment(["redis"], settings=settings) as first, Environment(["redis"], settings=settings) as second:
        a, b = first.endpoints["redis"], second.endpoints["redis"]
        assert a.password != b.password
        assert a.port != b.port
        stranger = redis.Redis(host="127.0.0.1", port=a.port, password=b.password, socket_timeout=2)
        with pytest.raises(redis.AuthenticationError):
            stranger.ping()
        stranger.close()


def test_data_does_not_cross_environments(settings: Settings) -> None:
    with Environment(["postgres"], settings=settings) as one, Environment(["postgres"], settings=settings) as two:
        with psycopg.connect(one.endpoints["postgres"].url, autocommit=True) as connection:
            connection.execute("CREATE TABLE only_here (id int)")
        with psycopg.connect(two.endpoints["postgres"].url) as connection:
            found = connection.execute("SELECT to_regclass('only_here')").fetchone()
            assert found == (None,)


def test_a_service_that_cannot_start_removes_the_others_and_shows_its_logs(settings: Settings, engine: Engine) -> None:
    broken = settings.model_copy(
        update={"postgres": settings.postgres.model_copy(update={"env": {"POSTGRES_PASSWORD": ""}})}
    )
    env = Environment(["postgres", "redis"], settings=broken)
    with pytest.raises(ServiceStartError) as caught:
        env.start()
    assert caught.value.service == "postgres"
    assert "postgres" in caught.value.cause
    assert "password" in caught.value.logs.lower()
    assert labelled(engine, env.id) == []


def test_a_service_that_never_answers_times_out_with_its_logs(
    settings: Settings, engine: Engine, silent_image: str
) -> None:
    silent = settings.model_copy(
        update={"redis": settings.redis.model_copy(update={"image": silent_image, "startup_timeout": 1.5})}
    )
    env = Environment(["redis"], settings=silent)  # alone: on a loaded machine Postgres may not be ready in 1.5 s
    with pytest.raises(ReadinessTimeoutError) as caught:
        env.start()
    assert caught.value.service == "redis"
    assert "did not answer PING within 1.5 s" in caught.value.cause
    assert "raise redis.startup_timeout (in [tool.envmgr] or ENVMGR_REDIS__STARTUP_TIMEOUT)" in str(caught.value.fix)
    assert "listening on nothing" in caught.value.logs
    assert labelled(engine, env.id) == []


@pytest.fixture(scope="module")
def silent_image(engine: Engine) -> str:
    """A container that runs, prints a line and never answers any protocol (built locally, cached)."""
    import io

    tag = "envmgr-test/silent:1"
    base = _any_local_image(engine)
    dockerfile = f'FROM {base}\nENTRYPOINT ["/bin/sh", "-c", "echo listening on nothing; exec sleep 600", "--"]\n'
    engine.client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    return tag


def _any_local_image(engine: Engine) -> str:
    settings = Settings()
    from envmgr.services.registry import create_service

    return create_service("redis", settings).image()


def test_closing_while_a_start_is_under_way_leaves_nothing(settings: Settings, engine: Engine) -> None:
    """A run that ends (an internal error, Ctrl-C) while a service starts in the background: the start in flight
    ends first, so that no container is created after the environment was removed."""
    env = Environment(["redis"], settings=settings)
    env.begin()
    outcome: list[BaseException | None] = []

    def start() -> None:
        try:
            env.ensure(["redis"])
        except BaseException as exc:  # the start is cancelled (or the container it made is gone): either is fine
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=start)
    thread.start()
    env.close()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert labelled(engine, env.id) == []


def test_a_start_asked_for_after_the_owner_removed_the_environment_is_refused(
    settings: Settings, engine: Engine
) -> None:
    """A background start that reaches `ensure` (or `begin`) only after its owner tore the environment down (the run
    ended meanwhile) made a new network, watchdog and containers after the teardown: they stayed until the owner's
    process exited. Now it is refused, and nothing is made."""
    env = Environment(["redis"], settings=settings)
    env.begin()
    env.close()
    assert labelled(engine, env.id) == []
    with pytest.raises(EnvmgrError) as caught:
        env.ensure(["redis"])
    assert caught.value.cause == f"environment {env.id} has been removed by its owner: nothing starts in it any more"
    with pytest.raises(EnvmgrError):
        env.begin()
    assert labelled(engine, env.id) == []


def test_the_first_failed_start_fails_every_wait_at_once(
    settings: Settings, engine: Engine, silent_image: str, tmp_path: Path
) -> None:
    """A start that fails (Postgres: its seed file) fails the calls waiting for other starts of the environment at
    once (here one waits for a server that never answers, with a deadline of minutes): they waited before, the
    xdist workers of a run among them, and the run could not end."""
    seeds = tmp_path / "seeds" / "postgres"
    seeds.mkdir(parents=True)
    (seeds / "001_broken.sql").write_text("INSERT INTO no_such_table VALUES (1);\n")
    configured = settings.model_copy(
        update={
            "seeds": tmp_path / "seeds",
            "redis": settings.redis.model_copy(update={"image": silent_image, "startup_timeout": 300}),
        }
    )
    env = Environment(["postgres", "redis"], settings=configured)
    env.begin()
    outcome: list[BaseException | None] = []

    def wait_for_redis() -> None:
        try:
            env.ensure(["redis"])
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    waiting = threading.Thread(target=wait_for_redis)
    try:
        waiting.start()
        with pytest.raises(SeedError) as caught:
            env.ensure(["postgres"])
        failed = time.monotonic()
        waiting.join(timeout=30)
        assert not waiting.is_alive(), "the wait for redis went on after postgres had failed"
        assert time.monotonic() - failed < 10
        assert outcome == [caught.value], "the waiting call raises the environment's first failure"
        with pytest.raises(SeedError):
            env.ensure(["redis"])  # a later call too: the environment has failed
    finally:
        env.close()
        waiting.join(timeout=60)
    assert labelled(engine, env.id) == []


def test_a_network_something_else_is_attached_to_is_named_not_blamed_on_the_engine(
    settings: Settings, engine: Engine, silent_image: str, namespace: str
) -> None:
    """A container envmgr did not make, attached to an environment's network, kept its removal from ending; the
    error was the engine's "has active endpoints" with the fix for a stopped engine ("start the engine again")."""
    env = Environment(["redis"], settings=settings)
    env.start()
    stranger = engine.client.containers.run(
        silent_image, name=f"{namespace}-stranger", network=env.network_name, detach=True
    )
    try:
        with pytest.raises(EnvmgrError) as caught:
            env.close()
        error = caught.value
        assert f"{namespace}-stranger" in error.cause, error.cause
        assert "attached" in error.cause
        assert "active endpoints" not in error.cause
        assert "engine again" not in (error.fix or "")
        assert stranger.short_id in (error.fix or ""), error.fix
    finally:
        stranger.remove(force=True)
        engine.remove_environment(env.id)
    assert labelled(engine, env.id) == []
