"""Benchmark: the latency a FaultProxy adds to every round trip, against the direct connection, same servers, same run.

Run on demand (not part of the test suite):

    ENVMGR_IMAGE_SET=local python tests/benchmarks/bench_proxy.py --rounds 5

One Postgres and one Redis from `Environment`. Each round measures, direct and then through one proxy per server:
Redis PING on one open connection, Postgres `SELECT 1` on one open connection, a new Redis connection + PING, and
GET of a large value (bandwidth through the proxy's bounded buffers). Every call is timed on its own; the report
gives medians and 99th percentiles over all rounds and the ratio proxy/direct.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import redis

from envmgr import Environment, ServiceEndpoint, Settings
from envmgr.faults.proxy import FaultProxy

WARM_UP = 50


def samples(call: Callable[[], object], count: int) -> list[float]:
    for _ in range(min(WARM_UP, count)):
        call()
    timings = []
    for _ in range(count):
        started = time.perf_counter_ns()
        call()
        timings.append((time.perf_counter_ns() - started) / 1000)
    return timings


def measure(redis_at: ServiceEndpoint, pg_at: ServiceEndpoint, args: argparse.Namespace) -> dict[str, list[float]]:
    client = redis.Redis.from_url(redis_at.url)
    big = client.get("bench-big")
    assert big is not None
    assert len(big) == args.big_mib << 20
    results = {
        "redis PING": samples(client.ping, args.pings),
        f"redis GET {args.big_mib} MiB": samples(lambda: client.get("bench-big"), args.gets),
    }
    client.close()

    def connect_and_ping() -> None:
        fresh = redis.Redis.from_url(redis_at.url)
        fresh.ping()
        fresh.close()

    results["redis connect+PING"] = samples(connect_and_ping, args.connects)
    with psycopg.connect(pg_at.url, autocommit=True) as connection:
        results["postgres SELECT 1"] = samples(lambda: connection.execute("SELECT 1").fetchone(), args.queries)
    return results


def p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pings", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--connects", type=int, default=200)
    parser.add_argument("--gets", type=int, default=20)
    parser.add_argument("--big-mib", type=int, default=4)
    args = parser.parse_args()
    direct: dict[str, list[float]] = {}
    proxied: dict[str, list[float]] = {}
    with (
        tempfile.TemporaryDirectory() as root,
        Environment(["postgres", "redis"], settings=Settings(project_root=Path(root))) as env,
    ):
        rd, pg = env.endpoints["redis"], env.endpoints["postgres"]
        setup = redis.Redis.from_url(rd.url)
        setup.set("bench-big", b"x" * (args.big_mib << 20))
        setup.close()
        with (
            FaultProxy(rd.host, rd.port, name="bench-redis") as to_redis,
            FaultProxy(pg.host, pg.port, name="bench-postgres") as to_pg,
        ):
            for _ in range(args.rounds):
                redis_via = rd.model_copy(update={"port": to_redis.port})
                pg_via = pg.model_copy(update={"port": to_pg.port})
                for into, redis_at, pg_at in ((direct, rd, pg), (proxied, redis_via, pg_via)):
                    for name, values in measure(redis_at, pg_at, args).items():
                        into.setdefault(name, []).extend(values)
    print(f"{args.rounds} rounds, direct then proxied in each; times in microseconds")
    head = ("direct p50", "proxy p50", "added", "ratio", "direct p99", "proxy p99")
    print(f"{'':26} {head[0]:>11} {head[1]:>10} {head[2]:>8} {head[3]:>6} {head[4]:>11} {head[5]:>10}")
    for name, base in direct.items():
        d, p, via = statistics.median(base), statistics.median(proxied[name]), proxied[name]
        print(f"{name:26} {d:11.1f} {p:10.1f} {p - d:8.1f} {p / d:6.2f} {p99(base):11.1f} {p99(via):10.1f}")


if __name__ == "__main__":
    main()
