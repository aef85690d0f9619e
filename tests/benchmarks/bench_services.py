"""Benchmark: each service's start-to-ready, reset cost and idle memory; all five started together against the sum
of their serial starts, in the same run.

    ENVMGR_IMAGE_SET=local python tests/benchmarks/bench_services.py --runs 3

Start-to-ready is `Environment.start()` of that service alone (container create + protocol probe + seeds), median
of the runs. Reset is the service's own reset (the way the fixtures do it between tests), median of 20. Idle memory
is the container's memory use (docker stats, without page cache) a few seconds after start. "Together" starts all
five in one Environment; "serial sum" adds up the single-service medians: the baseline of starting them one after
the other.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from envmgr import Environment, load_settings
from envmgr.endpoints import Worker
from envmgr.services.aws.accounts import load_aws_seeds
from envmgr.services.localstack.accounts import reset_account
from envmgr.services.wiremock.admin import WireMockAdmin

REPO = Path(__file__).resolve().parents[2]
SERVICES = ["postgres", "redis", "localstack", "wiremock", "celery"]
NEEDS = {"celery": ["redis", "celery"]}  # celery requires redis: its start includes redis's
RESETS = 20
SETTLE_SECONDS = 3


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def memory_mib(env: Environment, service: str) -> float:
    container = env.engine.client.containers.get(env.endpoints[service].container)
    stats = container.stats(stream=False)
    usage = stats["memory_stats"]
    cache = usage.get("stats", {}).get("inactive_file", usage.get("stats", {}).get("cache", 0))
    return float(usage["usage"] - cache) / (1 << 20)


def reset_cost(env: Environment, service: str, settings: object) -> float:
    endpoint = env.endpoints[service]
    if service == "localstack":  # what the s3_client/sqs_client fixtures do: the account emptied, seeds back
        worker = Worker()
        return median_ms([timed(lambda: (reset_account(endpoint, worker), load_aws_seeds(endpoint, worker, settings)))
                          for _ in range(RESETS)])  # fmt: skip
    if service == "wiremock":
        admin = WireMockAdmin.of(endpoint)
        return median_ms([timed(admin.reset) for _ in range(RESETS)])
    return median_ms([timed(lambda: env.reset([service])) for _ in range(RESETS)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    settings = load_settings(REPO / "pyproject.toml", daemon="off")
    rows = []
    starts: dict[str, float] = {}
    for service in SERVICES:
        samples = []
        for run in range(args.runs):
            env = Environment(NEEDS.get(service, [service]), settings=settings)
            samples.append(timed(env.start))
            try:
                if run == args.runs - 1:
                    time.sleep(SETTLE_SECONDS)  # let the service settle before reading its idle memory
                    memory = memory_mib(env, service)
                    reset = reset_cost(env, service, settings)
            finally:
                env.close()
        starts[service] = statistics.median(samples)
        rows.append((service, starts[service] * 1000, reset, memory))
    together = []
    for _ in range(args.runs):
        env = Environment(SERVICES, settings=settings)
        together.append(timed(env.start))
        env.close()
    print(f"{'service':12} {'start-to-ready ms':>18} {'reset ms':>10} {'idle MiB':>9}")
    for service, start, reset, memory in rows:
        print(f"{service:12} {start:18.0f} {reset:10.1f} {memory:9.1f}")
    serial = sum(starts[s] for s in SERVICES if s != "celery") + starts["celery"] - starts["redis"]
    both = statistics.median(together)
    print(f"all five together: {both * 1000:.0f} ms; serial sum of single starts: {serial * 1000:.0f} ms; "
          f"ratio {both / serial:.2f} (x{serial / both:.1f} faster)")  # fmt: skip


if __name__ == "__main__":
    main()
