"""Benchmark: cold start of Postgres + Redis through envmgr against plain testcontainers, same images, same run.

Run on demand (not part of the test suite):

    ENVMGR_IMAGE_SET=local python tests/benchmarks/bench_core.py --runs 7

Baseline: testcontainers' own PostgresContainer and RedisContainer (its documented way), started one after the
other, each waiting with its own strategy; the time ends when both answer a query from the host. envmgr: one
`Environment(["postgres", "redis"])`, concurrent starts and protocol probes; same end condition. Teardown is timed
apart. Both reach the containers on 127.0.0.1 only (TC_HOST for the baseline).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import psycopg
import redis

os.environ.setdefault("TC_HOST", "127.0.0.1")  # never let the baseline dial the bridge gateway
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")  # the Ryuk image cannot be pulled here

from testcontainers.community.postgres import PostgresContainer
from testcontainers.community.redis import RedisContainer

from envmgr import Environment, Settings
from envmgr.services.registry import create_service


def timed(action: Callable[[], Callable[[], None]]) -> tuple[float, float]:
    """Run `action` (start + first query), then the teardown it returns; return both durations."""
    started = time.perf_counter()
    teardown = action()
    ready = time.perf_counter() - started
    started = time.perf_counter()
    teardown()
    return ready, time.perf_counter() - started


def envmgr_run(settings: Settings) -> Callable[[], None]:
    env = Environment(["postgres", "redis"], settings=settings)
    endpoints = env.start()
    with psycopg.connect(endpoints["postgres"].url) as connection:
        connection.execute("SELECT 1")
    client = redis.Redis.from_url(endpoints["redis"].url)
    client.ping()
    client.close()
    return env.close


def testcontainers_run(pg_image: str, redis_image: str) -> Callable[[], None]:
    postgres = PostgresContainer(pg_image, username="bench", password="bench", dbname="bench", driver=None)
    postgres.start()
    cache = RedisContainer(redis_image)
    cache.start()
    with psycopg.connect(postgres.get_connection_url()) as connection:
        connection.execute("SELECT 1")
    cache.get_client().ping()

    def stop() -> None:
        cache.stop()
        postgres.stop()

    return stop


def report(name: str, samples: list[tuple[float, float]]) -> float:
    ready = [s[0] for s in samples]
    down = [s[1] for s in samples]
    median = statistics.median(ready)
    print(
        f"{name:32} ready median {median * 1000:7.0f} ms  (min {min(ready) * 1000:.0f}, max {max(ready) * 1000:.0f})"
        f"   teardown median {statistics.median(down) * 1000:5.0f} ms"
    )
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    settings = Settings()
    pg_image = create_service("postgres", settings).image()
    redis_image = create_service("redis", settings).image()
    print(f"images: {pg_image}, {redis_image}; {args.runs} runs each, interleaved")
    timed(lambda: envmgr_run(settings))  # warm the page cache and Python imports for both sides
    ours, theirs = [], []
    for _ in range(args.runs):
        theirs.append(timed(lambda: testcontainers_run(pg_image, redis_image)))
        ours.append(timed(lambda: envmgr_run(settings)))
    baseline = report("testcontainers (serial)", theirs)
    mine = report("envmgr Environment", ours)
    print(f"ratio envmgr / testcontainers: {mine / baseline:.2f}  (speed-up x{baseline / mine:.1f})")


if __name__ == "__main__":
    main()
