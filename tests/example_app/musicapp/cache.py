"""A read-through Redis cache of release counts, invalidated when a user's releases change."""

from __future__ import annotations

import contextlib
from typing import Any

import redis
from sqlalchemy.orm import Session

from musicapp.repository import count_releases

TTL_SECONDS = 300


def _key(user_id: int) -> str:
    return f"musicapp:release-count:{user_id}"


def release_count(cache: Any, session: Session, user_id: int) -> int:
    """The number of releases of a user, from Redis when cached, else from the database (then cached).

    Redis is an optimisation: when it is down or slow the answer comes from the database.
    """
    try:
        cached = cache.get(_key(user_id))
    except redis.RedisError:
        return count_releases(session, user_id)
    if cached is not None:
        return int(cached)
    count = count_releases(session, user_id)
    with contextlib.suppress(redis.RedisError):  # nothing cached this time; the answer is still right
        cache.set(_key(user_id), count, ex=TTL_SECONDS)
    return count


def invalidate(cache: Any, user_id: int) -> None:
    cache.delete(_key(user_id))
