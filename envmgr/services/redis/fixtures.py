"""Redis fixtures: this worker's own logical database, and a client on it (sync or asyncio) emptied after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest

from envmgr.pytest.async_fixtures import AsyncFixture

if TYPE_CHECKING:
    import redis
    import redis.asyncio

    from envmgr.pytest.shares import WorkerShares

__all__ = ["async_redis_client", "redis_client", "redis_url"]

CLEAN_FIXTURES = ("redis_client", "async_redis_client")
"""fixtures that leave the service as they found it (reset after the test)"""


@pytest.fixture(scope="session")
def redis_url(envmgr_shares: WorkerShares) -> str:
    """The URL of this worker's own Redis logical database."""
    return envmgr_shares.view("redis").url


@pytest.fixture
def redis_client(redis_url: str, envmgr_shares: WorkerShares) -> Iterator[redis.Redis]:
    """A client on this worker's own Redis database, emptied after each test (with a baseline snapshot in use:
    brought back to it, docs/snapshots.md)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        if envmgr_shares.has_baseline("redis"):
            envmgr_shares.reset("redis")
        else:
            client.flushdb()
        client.close()


@asynccontextmanager
async def _open_async_redis_client(request: pytest.FixtureRequest) -> AsyncIterator[redis.asyncio.Redis]:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(request.getfixturevalue("redis_url"))
    shares: WorkerShares = request.getfixturevalue("envmgr_shares")
    try:
        yield client
    finally:
        if shares.has_baseline("redis"):
            shares.reset("redis")
        else:
            await client.flushdb()
        await client.aclose()


ASYNC_REDIS_CLIENT = AsyncFixture("async_redis_client", _open_async_redis_client)
# the async fixtures behind async_redis_client (envmgr.pytest.async_fixtures)
globals().update(ASYNC_REDIS_CLIENT.runners())


@pytest.fixture
def async_redis_client(request: pytest.FixtureRequest, redis_url: str) -> redis.asyncio.Redis:
    """A `redis.asyncio` client on this worker's own Redis database, in the test's event loop, emptied after the
    test. For async tests run by pytest-asyncio (`@pytest.mark.asyncio`, or auto mode) or anyio."""
    client: redis.asyncio.Redis = ASYNC_REDIS_CLIENT.value(request)
    return client
