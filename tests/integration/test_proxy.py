"""FaultProxy in front of real Redis and Postgres servers: clients work through it, and its faults reach only the
clients that go through it, with the errors redis-py and psycopg raise when a server is gone or hangs."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from envmgr import Endpoints, Environment, ServiceEndpoint, Settings
from envmgr.engine.connection import Engine
from envmgr.faults.proxy import FaultProxy
from tests.conftest import labelled

pytestmark = pytest.mark.docker

HANG = 0.5
"""the socket time-out of a client that meets a paused proxy"""
DEADLINE = 5.0
"""the longest any call through a proxy may take before the test fails (psycopg has no read time-out)"""

T = TypeVar("T")


@pytest.fixture(scope="module")
def servers(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    """One Postgres and one Redis for the module, shared by its tests as by the workers of a run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENVMGR_NAMESPACE", f"t{uuid.uuid4().hex[:10]}")
        settings = Settings(project_root=tmp_path_factory.mktemp("proxy"))
        with Environment(["postgres", "redis"], settings=settings) as env:
            env_id = env.id
            yield env.endpoints
    assert labelled(engine, env_id) == []


ProxyFactory = Callable[[ServiceEndpoint], FaultProxy]


@pytest.fixture
def proxy_to(servers: Endpoints) -> Iterator[ProxyFactory]:
    """Start a proxy to a server; every proxy is closed after the test."""
    made: list[FaultProxy] = []

    def make(endpoint: ServiceEndpoint) -> FaultProxy:
        proxy = FaultProxy(endpoint.host, endpoint.port, name=f"{endpoint.service}-{len(made)}")
        made.append(proxy)
        proxy.start()
        return proxy

    yield make
    for proxy in made:
        proxy.close()


def via(endpoint: ServiceEndpoint, proxy: FaultProxy | None) -> ServiceEndpoint:
    """The endpoint as reached through `proxy` (None: directly)."""
    return endpoint if proxy is None else endpoint.model_copy(update={"port": proxy.port})


def redis_client(endpoint: ServiceEndpoint, proxy: FaultProxy | None = None, timeout: float = 5.0) -> redis.Redis:
    """A redis-py client that does not retry: the first error is the one the test sees."""
    return redis.Redis.from_url(
        via(endpoint, proxy).url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def pg_connect(endpoint: ServiceEndpoint, proxy: FaultProxy | None = None) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(via(endpoint, proxy).url, connect_timeout=5, autocommit=True)


def bounded(action: Callable[[], T], seconds: float = DEADLINE) -> T:
    """Run `action` in a thread; return its result or raise its error, or fail if it takes longer than `seconds`."""
    results: list[T] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            results.append(action())
        except BaseException as exc:  # raised in the test thread below
            errors.append(exc)

    thread = threading.Thread(target=call, name="test-bounded-call", daemon=True)
    thread.start()
    thread.join(seconds)
    assert results or errors, f"still waiting after {seconds:g} s"
    if errors:
        raise errors[0]
    return results[0]


def query(connection: psycopg.Connection[tuple[object, ...]], sql: str = "SELECT 1") -> object:
    return bounded(lambda: connection.execute(sql).fetchone())


def test_redis_and_postgres_work_through_the_proxy(servers: Endpoints, proxy_to: ProxyFactory) -> None:
    to_redis, to_pg = proxy_to(servers["redis"]), proxy_to(servers["postgres"])
    client = redis_client(servers["redis"], to_redis)
    big = b"x" * (3 << 20)  # larger than the proxy's buffers: forwarded piece by piece
    key = f"proxy-{uuid.uuid4().hex}"
    assert client.set(key, big)
    assert client.get(key) == big
    client.delete(key)
    client.close()
    with pg_connect(servers["postgres"], to_pg) as connection:
        assert query(connection, "SELECT current_user, inet_server_port()") == ("envmgr", 5432)
        assert query(connection, "SELECT count(*) FROM generate_series(1, 50000)") == (50000,)


def test_stop_refuses_new_connections_and_breaks_open_ones_for_this_proxy_only(
    servers: Endpoints, proxy_to: ProxyFactory
) -> None:
    to_redis, to_pg = proxy_to(servers["redis"]), proxy_to(servers["postgres"])
    open_pg = pg_connect(servers["postgres"], to_pg)
    assert query(open_pg) == (1,)
    to_redis.stop()
    to_pg.stop()
    assert (to_redis.state, to_pg.state) == ("stopped", "stopped")

    refused = redis_client(servers["redis"], to_redis)
    with pytest.raises(redis.ConnectionError, match="refused"):
        refused.ping()
    refused.close()
    with pytest.raises(psycopg.OperationalError):
        query(open_pg)
    open_pg.close()
    with pytest.raises(psycopg.OperationalError, match="refused"):
        pg_connect(servers["postgres"], to_pg)

    direct = redis_client(servers["redis"])  # another worker, not behind this proxy
    assert direct.ping()
    direct.close()
    with pg_connect(servers["postgres"]) as other:
        assert query(other) == (1,)

    ports = (to_redis.port, to_pg.port)
    to_redis.restore()
    to_pg.restore()
    assert (to_redis.port, to_pg.port) == ports
    again = redis_client(servers["redis"], to_redis)
    assert again.ping()
    again.close()
    with pg_connect(servers["postgres"], to_pg) as connection:
        assert query(connection) == (1,)


def test_pause_makes_clients_time_out_and_restore_delivers_the_pending_reply(
    servers: Endpoints, proxy_to: ProxyFactory
) -> None:
    to_redis, to_pg = proxy_to(servers["redis"]), proxy_to(servers["postgres"])
    waiting = redis_client(servers["redis"], to_redis)
    pending = waiting.connection_pool.get_connection()  # connected and authenticated before the pause
    open_pg = pg_connect(servers["postgres"], to_pg)
    to_redis.pause()
    to_pg.pause()
    assert to_redis.state == "paused"

    hanging = redis_client(servers["redis"], to_redis, timeout=HANG)
    with pytest.raises(redis.TimeoutError):
        hanging.ping()
    hanging.close()
    pending.send_command("PING")
    assert not pending.can_read(timeout=HANG)
    pg_reply: list[object] = []
    waiting_query = threading.Thread(
        target=lambda: pg_reply.append(open_pg.execute("SELECT 2").fetchone()), name="test-pg-query", daemon=True
    )
    waiting_query.start()
    waiting_query.join(HANG)
    assert waiting_query.is_alive()  # the query waits for a server that does not answer

    direct = redis_client(servers["redis"])  # other workers are unaffected
    assert direct.ping()
    direct.close()
    with pg_connect(servers["postgres"]) as other:
        assert query(other) == (1,)

    to_redis.restore()
    to_pg.restore()
    assert pending.read_response() == b"PONG"
    waiting.connection_pool.release(pending)
    assert waiting.ping()
    waiting.close()
    waiting_query.join(DEADLINE)
    assert pg_reply == [(2,)]  # the reply arrives...
    assert query(open_pg) == (1,)  # ...and the connection goes on
    open_pg.close()
    with pg_connect(servers["postgres"], to_pg) as connection:
        assert query(connection) == (1,)


def test_two_proxies_to_one_server_fault_independently(servers: Endpoints, proxy_to: ProxyFactory) -> None:
    first, second = proxy_to(servers["redis"]), proxy_to(servers["redis"])
    first_client = redis_client(servers["redis"], first, timeout=HANG)
    second_client = redis_client(servers["redis"], second, timeout=HANG)
    first.stop()
    with pytest.raises(redis.ConnectionError):
        first_client.ping()
    assert second_client.ping()
    first.restore()
    second.pause()
    assert first_client.ping()
    with pytest.raises(redis.TimeoutError):
        second_client.ping()
    second.restore()
    first_client.close()
    second_client.close()


def test_close_ends_the_thread_and_frees_the_port(servers: Endpoints) -> None:
    before = set(threading.enumerate())
    proxy = FaultProxy(servers["redis"].host, servers["redis"].port, name="closing")
    port = proxy.start()
    client = redis_client(servers["redis"], proxy)
    assert client.ping()
    proxy.close()
    assert set(threading.enumerate()) == before
    with pytest.raises(redis.ConnectionError):
        client.ping()  # its connection was reset, and nothing listens any more
    client.close()
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))  # no SO_REUSEADDR: fails if anything still holds the port
