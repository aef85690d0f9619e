"""Benchmark: the per-test reset of an AWS account after a raw-fixture test (issue 20, "Reset only what changed"):
the old full reload against the repair of the difference, alternating in one run, per backend.

    ENVMGR_IMAGE_SET=local python tests/benchmarks/bench_aws_reset.py [--rounds 20] [--backends moto,localstack] \
        [--objects N]

The seeds are the repository's (one bucket with one object, two queues), or with `--objects N` a copy of them whose
bucket holds N objects (1 KiB each).

Each round, before each measured reset, a test's changes are made (an object put in the seeded bucket, a message
sent to a seeded queue: what bench_reset_policy.py's raw tests do). Measured, in rotating order within the round:

* `old`: what `worker_reset` did before (the account emptied: moto's `POST /moto-api/reset`, LocalStack's in-process
  reset; then the seeds loaded again through two new boto3 clients);
* `reload, cached clients`: the same emptying and reload through the service's cached clients (what part of the
  gain is the clients alone);
* `repair`: the comparison with the seeded state and the repair of the difference alone (`AwsService.repair`);
* `new`: `Service.worker_reset` as it is now (the reload through cached clients when the seeds are a few objects,
  else the repair; moto: after asking its data API whether any other service holds something);
* `new, nothing changed`: the same with no change made before it (what a reset costs a test that changed nothing).

Printed: the median and the 90th percentile of each, in milliseconds, and old / new.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from envmgr import Environment, Settings
from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.services.aws.accounts import load_aws_seeds
from envmgr.services.aws.backend import AwsService
from envmgr.services.localstack.accounts import cleared, reset_account
from envmgr.services.moto.service import reset_server

REPO = Path(__file__).resolve().parents[2]
BACKENDS: dict[str, dict[str, Any]] = {
    "moto": {"aws": {"backend": "moto"}},
    "localstack": {"aws": {"backend": "localstack"}, "localstack": {"enabled": True, "services": ["s3", "sqs"]}},
}


def dirty(service: AwsService, endpoint: ServiceEndpoint, worker: Worker) -> None:
    s3 = service.clients(endpoint, worker, "s3")
    s3.put_object(Bucket=worker.bucket("artwork"), Key="left.txt", Body=b"x")
    sqs = service.clients(endpoint, worker, "sqs")
    sqs.send_message(QueueUrl=sqs.get_queue_url(QueueName="deliveries")["QueueUrl"], MessageBody="left")


def old_reset(backend: str, service: AwsService, endpoint: ServiceEndpoint, worker: Worker, cached: bool) -> None:
    clients = service.clients if cached else None
    if backend == "moto":
        reset_server(endpoint)
    else:
        reset_account(endpoint, worker, cleared(service.settings.localstack), clients)
    load_aws_seeds(endpoint, worker, service.settings, clients)


def seeds_with(objects: int, folder: Path) -> Path:
    """A copy of the repository's seeds whose bucket holds `objects` objects."""
    seeds = folder / "seeds"
    shutil.copytree(REPO / "seeds", seeds)
    for number in range(objects - 1):
        (seeds / "s3" / "artwork" / "covers" / f"cover-{number:03}.txt").write_bytes(bytes([65 + number % 26]) * 1024)
    return seeds


def measure(backend: str, rounds: int, seeds: Path) -> dict[str, list[float]]:
    settings = Settings(project_root=REPO, seeds=str(seeds), **BACKENDS[backend])  # type: ignore[arg-type]
    with Environment([backend], settings=settings) as env:
        endpoint, worker = env.endpoints[backend], Worker()
        service = env.service(backend)
        assert isinstance(service, AwsService)
        ways: dict[str, Callable[[], object]] = {
            "old": lambda: old_reset(backend, service, endpoint, worker, cached=False),
            "reload, cached clients": lambda: old_reset(backend, service, endpoint, worker, cached=True),
            "repair": lambda: service.repair(endpoint, worker),
            "new": lambda: service.worker_reset(endpoint, worker),
            "new, nothing changed": lambda: service.worker_reset(endpoint, worker),
        }
        samples: dict[str, list[float]] = {name: [] for name in ways}
        service.worker_reset(endpoint, worker)  # the cached clients made once, as after a worker's first test
        names = list(ways)
        for number in range(rounds):
            for name in names[number % len(names) :] + names[: number % len(names)]:
                if name != "new, nothing changed":
                    dirty(service, endpoint, worker)
                started = time.perf_counter()
                ways[name]()
                samples[name].append(time.perf_counter() - started)
        return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--backends", default="moto,localstack")
    parser.add_argument("--objects", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        seeds = seeds_with(args.objects, Path(folder)) if args.objects else REPO / "seeds"
        for backend in args.backends.split(","):
            report(backend, args.rounds, measure(backend, args.rounds, seeds), args.objects or 1)


def report(backend: str, rounds: int, samples: dict[str, list[float]], objects: int) -> None:
    print(f"\n{backend} ({rounds} rounds, {objects} seeded objects)")
    for name, values in samples.items():
        ms = sorted(value * 1000 for value in values)
        print(f"  {name:24} median {statistics.median(ms):7.1f} ms   p90 {ms[int(len(ms) * 0.9) - 1]:7.1f} ms")
    old, new = (statistics.median(samples[name]) for name in ("old", "new"))
    print(f"  old / new: {old / new:.1f}x")


if __name__ == "__main__":
    main()
