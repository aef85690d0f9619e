"""Benchmark: what the access-key gate in front of an AWS emulator (envmgr/services/aws/gate.py) adds to each AWS
call, the emulator with the gate (the default) against the same emulator without (`check_access_key = false`), in
one run, interleaved.

    ENVMGR_IMAGE_SET=local python tests/benchmarks/bench_aws_gate.py --backend moto --calls 300 --rounds 5

Each round makes `--calls` calls of each kind through one boto3 client (a kept-alive connection, as an application
has) on each emulator, alternating which goes first; the figure is the median of the per-call medians of the rounds.
Kinds: S3 HeadBucket (tiny request and answer), S3 PutObject of 64 KiB, SQS SendMessage; and ListBuckets on a new
connection per call (urllib, no boto3), where the gate reads the first request and connects to the emulator.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from envmgr import Environment, Settings
from envmgr.endpoints import Worker
from envmgr.services.aws.accounts import access_key, aws_client
from envmgr.services.aws.api import PROBE_CALLS, call

BODY = b"x" * 64 * 1024


def per_call_ms(action: Callable[[], object], calls: int) -> float:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def kinds(env: Environment, backend: str) -> dict[str, Callable[[], object]]:
    endpoint = env.endpoints[backend]
    worker = Worker()
    s3: Any = aws_client(endpoint, worker, "s3")
    sqs: Any = aws_client(endpoint, worker, "sqs")
    s3.create_bucket(Bucket="bench")
    queue = sqs.create_queue(QueueName="bench")["QueueUrl"]
    s3.head_bucket(Bucket="bench")
    return {
        "S3 HeadBucket": lambda: s3.head_bucket(Bucket="bench"),
        "S3 PutObject 64 KiB": lambda: s3.put_object(Bucket="bench", Key="k", Body=BODY),
        "SQS SendMessage": lambda: sqs.send_message(QueueUrl=queue, MessageBody="m"),
        "new connection + ListBuckets": lambda: call(
            endpoint.url, PROBE_CALLS["s3"], region="us-east-1", access_key=access_key(endpoint, worker)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["moto", "localstack"], default="moto")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    base = Settings(aws={"backend": args.backend})
    table = base.service(args.backend)
    gated = Settings(**{**base.model_dump(), args.backend: table.model_copy(update={"check_access_key": True})})
    open_ = Settings(**{**base.model_dump(), args.backend: table.model_copy(update={"check_access_key": False})})
    with Environment([args.backend], settings=gated) as with_gate, Environment([args.backend], settings=open_) as bare:
        calls = {"gate": kinds(with_gate, args.backend), "none": kinds(bare, args.backend)}
        results: dict[str, dict[str, list[float]]] = {"gate": {}, "none": {}}
        for round_ in range(args.rounds):
            order = ["gate", "none"] if round_ % 2 == 0 else ["none", "gate"]
            for kind in calls["gate"]:
                for which in order:
                    results[which].setdefault(kind, []).append(per_call_ms(calls[which][kind], args.calls))
    print(f"{args.backend}: median per call over {args.rounds} rounds of {args.calls} calls (ms)")
    print(f"{'call':32} {'no gate':>9} {'gate':>9} {'added':>9}")
    for kind in results["gate"]:
        none, gate = statistics.median(results["none"][kind]), statistics.median(results["gate"][kind])
        print(f"{kind:32} {none:9.2f} {gate:9.2f} {gate - none:+9.2f}")


if __name__ == "__main__":
    main()
