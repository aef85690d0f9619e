"""Benchmark: named snapshots per service (issue 21 part 3), against the same service's per-test reset, in one run.

    ENVMGR_IMAGE_SET=local python tests/benchmarks/bench_snapshots.py [--rounds 10] [--rows 10000] [--keys 1000] \\
        [--objects 20] [--messages 10] [--stubs 50] [--aws moto|localstack]

One environment (Postgres with the example app's migrations and seeds, Redis, moto or LocalStack, WireMock), its
session share (`Environment.snapshot` / `restore` with no scope: what a test process does for its worker). The state
a snapshot keeps is built once: `--rows` rows in a table of their own (~100 bytes each), `--keys` Redis strings (a
tenth with a TTL), `--objects` S3 objects of 1 KiB and `--messages` messages on a queue, `--stubs` WireMock stubs.

Each round, per service, in rotating order, after a change to the service's share (a row, a key, an object and a
message, a stub): `reset` (the per-test reset to the seeded state, `Service.worker_reset`: the baseline), `restore`
(back to the snapshot), `snapshot` (the snapshot taken again, over the old one). Printed: the median and the 90th
percentile of each in milliseconds, and restore / reset. Then, for Redis, the other way it could be done: a
server-side `COPY` of every key into a spare logical database and back (envmgr uses DUMP/RESTORE: see the output).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from envmgr import Environment, Settings
from envmgr.endpoints import Worker
from envmgr.services.aws.backend import AwsService
from envmgr.services.wiremock.admin import WireMockAdmin

REPO = Path(__file__).resolve().parents[2]
NAME = "bench"


def build(env: Environment, aws: str, args: argparse.Namespace) -> dict[str, Callable[[], object]]:
    """The state the snapshot keeps; returns each service's change (what a test does before a reset)."""
    import redis

    worker = Worker()
    database = env.service("postgres").worker_view(env.endpoints["postgres"], worker).url
    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute("CREATE TABLE bench (id serial PRIMARY KEY, payload text)")
        connection.execute("INSERT INTO bench (payload) SELECT repeat('x', 100) FROM generate_series(1, %s)",
                           (args.rows,))  # fmt: skip
    client = redis.Redis.from_url(env.service("redis").worker_view(env.endpoints["redis"], worker).url)
    pipe = client.pipeline(transaction=False)
    for number in range(args.keys):
        pipe.set(f"key:{number}", "v" * 100, ex=3600 if number % 10 == 0 else None)
    pipe.execute()
    service = env.service(aws)
    assert isinstance(service, AwsService)
    s3 = service.clients(env.endpoints[aws], worker, "s3")
    sqs = service.clients(env.endpoints[aws], worker, "sqs")
    for number in range(args.objects):
        s3.put_object(Bucket="artwork", Key=f"bench/{number}.bin", Body=bytes([number % 256]) * 1024)
    queue = sqs.get_queue_url(QueueName="deliveries")["QueueUrl"]
    for number in range(args.messages):
        sqs.send_message(QueueUrl=queue, MessageBody=f"message {number}")
    admin = WireMockAdmin.of(env.endpoints["wiremock"])
    admin.import_stubs([
        {"request": {"method": "GET", "url": f"/bench/{number}"}, "response": {"status": 200, "body": "x"}}
        for number in range(args.stubs)
    ])  # fmt: skip

    def change_postgres() -> None:
        with psycopg.connect(database, autocommit=True) as connection:
            connection.execute("INSERT INTO bench (payload) VALUES ('changed')")

    def change_aws() -> None:
        s3.put_object(Bucket="artwork", Key="changed.bin", Body=b"x")
        sqs.send_message(QueueUrl=queue, MessageBody="changed")

    changes: dict[str, Callable[[], object]] = {
        "postgres": change_postgres,
        "redis": lambda: client.set("changed", "x"),
        aws: change_aws,
        "wiremock": lambda: admin.stub({"request": {"method": "GET", "url": "/changed"}, "response": {"status": 1}}),
    }
    return changes


def measure(env: Environment, service: str, change: Callable[[], object], rounds: int) -> dict[str, list[float]]:
    worker = Worker()
    hooks = env.service(service)
    ways: dict[str, Callable[[], object]] = {
        "reset": lambda: hooks.worker_reset(env.endpoints[service], worker),
        "restore": lambda: env.restore(NAME),
        "snapshot": lambda: env.snapshot(NAME, [service]),
    }
    samples: dict[str, list[float]] = {name: [] for name in ways}
    env.snapshot(NAME, [service])
    names = list(ways)
    for number in range(rounds):
        for name in names[number % 3 :] + names[: number % 3]:
            env.restore(NAME)  # each way starts from the snapshot's state, changed as a test would
            change()
            started = time.perf_counter()
            ways[name]()
            samples[name].append(time.perf_counter() - started)
    env.drop_snapshot(NAME)
    return samples


SPARE_DB = 300
"""a logical database no worker uses (workers: 1..N, brokers 512+): where the COPY alternative keeps its snapshot"""


def redis_copy_alternative(env: Environment, rounds: int) -> dict[str, list[float]]:
    """The other way to snapshot Redis, measured against the one envmgr uses: `COPY key key DB <spare>` of every
    key, server-side (no payload crosses the network), and back (FLUSHDB, then COPY each key of the spare db)."""
    import redis

    url = env.service("redis").worker_view(env.endpoints["redis"], Worker()).url
    client = redis.Redis.from_url(url)
    spare = redis.Redis.from_url(url.rsplit("/", 1)[0] + f"/{SPARE_DB}")
    own_db = int(url.rsplit("/", 1)[1])

    def snapshot() -> None:
        spare.flushdb()
        pipe = client.pipeline(transaction=False)
        for key in client.scan_iter(count=1000):
            pipe.copy(key, key, destination_db=SPARE_DB)
        pipe.execute()

    def restore() -> None:
        pipe = spare.pipeline(transaction=True)
        pipe.execute_command("SELECT", own_db)
        pipe.flushdb()
        pipe.execute_command("SELECT", SPARE_DB)
        for key in spare.scan_iter(count=1000):
            pipe.copy(key, key, destination_db=own_db)
        pipe.execute()

    samples: dict[str, list[float]] = {"COPY restore": [], "COPY snapshot": []}
    snapshot()
    for _ in range(rounds):
        client.set("changed", "x")
        for name, way in (("COPY restore", restore), ("COPY snapshot", snapshot)):
            started = time.perf_counter()
            way()
            samples[name].append(time.perf_counter() - started)
    spare.flushdb()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--objects", type=int, default=20)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--stubs", type=int, default=50)
    parser.add_argument("--aws", default="moto", choices=["moto", "localstack"])
    args = parser.parse_args()
    overrides: dict[str, Any] = {
        "alembic_ini": str(REPO / "tests" / "example_app" / "alembic.ini"), "seeds": str(REPO / "seeds"),
        "aws": {"backend": args.aws}, args.aws: {"enabled": True}, "wiremock": {"enabled": True},
        "celery": {"enabled": False},
    }  # fmt: skip
    settings = Settings(project_root=REPO, **overrides)
    services = ["postgres", "redis", args.aws, "wiremock"]
    with Environment(services, settings=settings) as env:
        changes = build(env, args.aws, args)
        print(
            f"state: {args.rows} rows, {args.keys} keys, {args.objects} objects + {args.messages} messages, "
            f"{args.stubs} stubs; {args.rounds} rounds"
        )
        for service in services:
            samples = measure(env, service, changes[service], args.rounds)
            line = []
            for name, values in samples.items():
                ms = sorted(value * 1000 for value in values)
                line.append(f"{name} {statistics.median(ms):7.1f} (p90 {ms[max(int(len(ms) * 0.9) - 1, 0)]:7.1f})")
            ratio = statistics.median(samples["restore"]) / statistics.median(samples["reset"])
            print(f"  {service:10} " + "   ".join(line) + f"   restore/reset {ratio:.1f}")
        other = redis_copy_alternative(env, args.rounds)
        print("  redis, the other way: " + "   ".join(
            f"{name} {statistics.median(values) * 1000:7.1f}" for name, values in other.items()))  # fmt: skip


if __name__ == "__main__":
    main()
