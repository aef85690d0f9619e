"""Benchmark: cold start of Postgres + Redis on a remote engine against the local one, same run, interleaved.

Run on demand, as root, from the repository root (not part of the test suite):

    ENVMGR_IMAGE_SET=local python tests/benchmarks/bench_engines.py --runs 5

The remote engine is a second dockerd in a network namespace of its own, reached on tcp://<its address>:2375 over a
veth pair (`tests/engines.py`, as the remote-engine test uses it); the images are loaded into it first (timed apart).
Each run: `Environment(["postgres", "redis"], engine=...)` started (the template database built, seeds loaded), then
a query from this process to each service; teardown timed apart. Local and remote runs alternate, so load on the
machine weighs on both alike.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import docker
import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.engines, when run as a script

from envmgr import Environment, Settings
from envmgr.engine.address import EngineAddress
from envmgr.engine.connection import Engine
from envmgr.services.registry import create_service
from tests.engines import cannot_run_namespaced_dockerd, load_images, namespaced_dockerd

SERVICES = ["postgres", "redis"]


def cold_start(engine: Engine, settings: Settings) -> tuple[float, float]:
    """Seconds to a first query on both services, and seconds to remove them."""
    started = time.perf_counter()
    env = Environment(SERVICES, settings=settings, engine=engine)
    endpoints = env.start()
    with psycopg.connect(endpoints["postgres"].url) as connection:
        connection.execute("SELECT 1")
    client = redis.Redis.from_url(endpoints["redis"].url)
    client.ping()
    client.close()
    ready = time.perf_counter() - started
    started = time.perf_counter()
    env.close()
    return ready, time.perf_counter() - started


def summary(name: str, samples: list[tuple[float, float]]) -> float:
    ready = [sample[0] for sample in samples]
    median = statistics.median(ready)
    print(
        f"{name:34} ready median {median * 1000:6.0f} ms (min {min(ready) * 1000:.0f}, max {max(ready) * 1000:.0f})"
        f"   teardown median {statistics.median(s[1] for s in samples) * 1000:5.0f} ms"
    )
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    reason = cannot_run_namespaced_dockerd()
    if reason is not None:
        raise SystemExit(f"cannot run: {reason}")
    settings = Settings()
    images = [create_service(name, settings).image() for name in SERVICES]
    local = Engine(docker.from_env(), EngineAddress.parse(""))
    with namespaced_dockerd() as remote:
        seconds = load_images(images, remote.env())
        print(f"images {', '.join(images)} loaded into {remote.docker_host} in {seconds:.1f} s")
        client = docker.DockerClient(base_url=remote.docker_host)
        remote_engine = Engine(client, EngineAddress.parse(remote.docker_host))
        cold_start(local, settings)  # warm the page cache and the imports on both sides
        cold_start(remote_engine, settings)
        ours: list[tuple[float, float]] = []
        theirs: list[tuple[float, float]] = []
        for _ in range(args.runs):
            ours.append(cold_start(local, settings))
            theirs.append(cold_start(remote_engine, settings))
        remote_engine.client.close()
    print(f"{args.runs} runs each, interleaved")
    baseline = summary("local engine (unix socket)", ours)
    measured = summary(f"remote engine ({remote.docker_host})", theirs)
    print(f"ratio remote / local: {measured / baseline:.2f}")


if __name__ == "__main__":
    main()
