"""Redis: a `redis.asyncio` client on the settings' REDIS_URL (made on first use)."""

from functools import cache

from redis.asyncio import Redis

from app.config import settings


@cache
def _client() -> Redis:
    return Redis.from_url(settings.REDIS_URL)


async def get_redis() -> Redis:
    return _client()
