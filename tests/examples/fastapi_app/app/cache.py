"""Redis: a `redis.asyncio` client on REDIS_URL (made on first use)."""

import os
from functools import cache

from redis.asyncio import Redis


@cache
def _client() -> Redis:
    return Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/0"))


async def get_redis() -> Redis:
    return _client()
