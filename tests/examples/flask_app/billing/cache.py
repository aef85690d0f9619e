"""Redis: a client on the app's REDIS_URL (one per app), and the cached totals."""

import redis
from flask import current_app

TOTAL_TTL = 60


def client() -> redis.Redis:
    if "redis" not in current_app.extensions:
        current_app.extensions["redis"] = redis.Redis.from_url(current_app.config["REDIS_URL"])
    connection: redis.Redis = current_app.extensions["redis"]
    return connection


def total_key(slug: str) -> str:
    return f"billing:total:{slug}"
