"""Redis fixtures: this worker's own logical database, and a client on it emptied after each test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import redis

    from envmgr.fixtures import WorkerShares

__all__ = ["redis_client", "redis_url"]

CLEAN_FIXTURES = ("redis_client",)
"""fixtures that leave the service as they found it (reset after the test)"""


@pytest.fixture(scope="session")
def redis_url(envmgr_shares: WorkerShares) -> str:
    """The URL of this worker's own Redis logical database."""
    return envmgr_shares.view("redis").url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on this worker's own Redis database, emptied after each test."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.flushdb()
        client.close()
