"""Benchmark: the AWS backends side by side, in the same run: LocalStack (S3+SQS, and S3+SQS+SNS) against moto.

    ENVMGR_IMAGE_SET=local python tests/benchmarks/bench_aws.py --runs 5

Start-to-ready: `Environment.start()` of the backend alone (container create, readiness: each probed service
answers an API call, seeds loaded), median of the runs. Reset: what the fixtures do after a test (the worker's account
emptied and its seeds loaded again, `Service.worker_reset`), and the emptying alone (LocalStack's in-process reset of
one account, or the API deletion on an image without it; moto's POST /moto-api/reset of its server), medians of 20,
with a bucket object and a queue message made before each. Idle memory: docker stats (without page cache) a few
seconds after start, median of the runs. In worker isolation LocalStack is one container for every worker, moto one
per worker: multiply moto's memory by the workers.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from envmgr import Environment, Settings
from envmgr.endpoints import Worker
from envmgr.services.aws.accounts import aws_client
from envmgr.services.localstack.accounts import cleared, reset_account
from envmgr.services.moto.service import reset_server

REPO = Path(__file__).resolve().parents[2]
RESETS = 20
SETTLE_SECONDS = 3
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "localstack s3,sqs": ("localstack", {"localstack": {"services": ["s3", "sqs"]}}),
    "localstack s3,sqs,sns": ("localstack", {"localstack": {"services": ["s3", "sqs", "sns"]}}),
    "moto": ("moto", {"aws": {"backend": "moto"}}),
}


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def memory_mib(env: Environment, service: str) -> float:
    container = env.engine.client.containers.get(env.endpoints[service].container)
    usage = container.stats(stream=False)["memory_stats"]
    cache = usage.get("stats", {}).get("inactive_file", usage.get("stats", {}).get("cache", 0))
    return float(usage["usage"] - cache) / (1 << 20)


def dirty(env: Environment, service: str, worker: Worker) -> None:
    """What a test leaves behind: an object in the seeded bucket, a message in the seeded queue."""
    endpoint = env.endpoints[service]
    aws_client(endpoint, worker, "s3").put_object(Bucket=worker.bucket("artwork"), Key="left.txt", Body=b"x")
    sqs = aws_client(endpoint, worker, "sqs")
    sqs.send_message(QueueUrl=sqs.get_queue_url(QueueName="deliveries")["QueueUrl"], MessageBody="left")


def resets(env: Environment, service: str) -> tuple[float, float]:
    """(worker_reset: emptied and seeded again, emptying alone), medians in ms."""
    endpoint, worker = env.endpoints[service], Worker()
    handler = env.service(service)
    services = cleared(env.settings.localstack)
    full, empty = [], []
    for _ in range(RESETS):
        dirty(env, service, worker)
        full.append(timed(lambda: handler.worker_reset(endpoint, worker)))
    for _ in range(RESETS):
        handler.worker_reset(endpoint, worker)  # seeded again (not timed), then dirtied
        dirty(env, service, worker)
        if service == "moto":
            empty.append(timed(lambda: reset_server(endpoint)))
        else:
            empty.append(timed(lambda: reset_account(endpoint, worker, services)))
    return median_ms(full), median_ms(empty)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = Settings(project_root=REPO).model_dump(exclude={"aws", "localstack", "moto", "seeds", "daemon"})
    rows = []
    for label, (service, overrides) in VARIANTS.items():
        settings = Settings(**{**base, "seeds": str(REPO / "seeds"), "daemon": "off", **overrides})
        starts, memories = [], []
        for run in range(args.runs):
            env = Environment([service], settings=settings)
            try:
                starts.append(timed(env.start))
                time.sleep(SETTLE_SECONDS)  # let it settle before reading its idle memory
                memories.append(memory_mib(env, service))
                if run == args.runs - 1:
                    full, empty = resets(env, service)
                    image = env.endpoints[service].image
            finally:
                env.close()
        rows.append((label, image, median_ms(starts), full, empty, statistics.median(memories)))
    print(
        f"{'backend':24} {'image':34} {'start-to-ready ms':>18} {'reset+seeds ms':>15} {'empty ms':>9} {'idle MiB':>9}"
    )
    for label, image, start, full, empty, memory in rows:
        print(f"{label:24} {image:34} {start:18.0f} {full:15.1f} {empty:9.1f} {memory:9.1f}")


if __name__ == "__main__":
    main()
