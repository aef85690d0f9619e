"""AWS accounts in LocalStack: one per xdist worker. The variables that name one, boto3 clients in one, its seeds,
and its reset.

Reset: envmgr's local image has an in-process endpoint (`POST /_envmgr/state/reset`, containers/localstack) that
empties one account's S3 and SQS stores in milliseconds; on the official image, which has none, envmgr deletes
through the AWS API instead (slower, same result).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from envmgr.config import LocalStackSettings, Settings
from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.errors import SeedError, first_line

__all__ = [
    "RESET_PATH",
    "SECRET_ACCESS_KEY",
    "aws_client",
    "aws_variables",
    "is_reset_summary",
    "load_aws_seeds",
    "reset_account",
    "restore_account",
]

RESET_PATH = "/_envmgr/state/reset"
SECRET_ACCESS_KEY = "test"
HTTP_TIMEOUT = 5
FALLBACK_ACCOUNTS = 8


def aws_variables(endpoint: ServiceEndpoint, worker: Worker, buckets: Sequence[str] = ()) -> dict[str, str]:
    """What an application reads to reach this account: the standard AWS_* variables, and S3_BUCKET_<NAME> with
    the worker's name of each seeded bucket."""
    variables = {
        "AWS_ENDPOINT_URL": endpoint.url,
        "AWS_ACCESS_KEY_ID": worker.aws_account_id,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": endpoint.extra.get("region", "us-east-1"),
    }
    for bucket in buckets:
        variables["S3_BUCKET_" + re.sub(r"[^A-Z0-9]", "_", bucket.upper())] = worker.bucket(bucket)
    return variables


def aws_client(endpoint: ServiceEndpoint, worker: Worker, service: str) -> Any:
    """A boto3 client of `service` ('s3', 'sqs') in the worker's account, through localstack-client."""
    from botocore.config import Config
    from localstack_client.session import Session

    session = Session(
        aws_access_key_id=worker.aws_account_id,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        region_name=endpoint.extra.get("region", "us-east-1"),
        localstack_host=f"{endpoint.host}:{endpoint.port}",
    )
    return session.client(service, config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))


def load_aws_seeds(endpoint: ServiceEndpoint, worker: Worker, settings: Settings) -> None:
    """Create the seeded buckets, objects and queues in the worker's account."""
    from envmgr.seeds import s3_seed_buckets, sqs_seed_queues

    seeds = settings.seeds_path()
    config: LocalStackSettings = settings.localstack
    buckets = s3_seed_buckets(seeds)
    queues = sqs_seed_queues(seeds, config.queues)
    if buckets:
        s3 = aws_client(endpoint, worker, "s3")
        for bucket, objects in buckets.items():
            name = worker.bucket(bucket)
            _seed_call(f"s3/{bucket}", lambda b=name: s3.create_bucket(Bucket=b))
            for key, path in objects:
                _seed_call(f"s3/{bucket}/{key}", lambda b=name, k=key, p=path: s3.upload_file(str(p), b, k))
    if queues:
        sqs = aws_client(endpoint, worker, "sqs")
        for queue in queues:
            _seed_call(f"sqs queue {queue}", lambda q=queue: sqs.create_queue(QueueName=q))


def _seed_call(what: str, action: Any) -> None:
    try:
        action()
    except Exception as exc:  # botocore raises many types; every one is a failed seed here
        raise SeedError(f"seeding LocalStack failed at {what}: {first_line(exc)}", "check the seeds folder") from None


def restore_account(endpoint: ServiceEndpoint, worker: Worker, settings: Settings) -> None:
    """The worker's account back to its seeded buckets, objects and queues."""
    reset_account(endpoint, worker)
    load_aws_seeds(endpoint, worker, settings)


def reset_account(endpoint: ServiceEndpoint, worker: Worker | None) -> None:
    """Empty the worker's account (S3 buckets and objects, SQS queues); other accounts are untouched.

    With no worker: every account. (On the official image, which lacks envmgr's reset endpoint, "every account"
    means the shared one and those of the first FALLBACK_ACCOUNTS workers, deleted through the AWS API.)
    """
    if _reset_in_process(endpoint, worker):
        return
    accounts = (
        [worker] if worker is not None else [Worker(), *(Worker(f"gw{i}", True) for i in range(FALLBACK_ACCOUNTS))]
    )
    for account in accounts:
        _delete_through_api(endpoint, account)


def _reset_in_process(endpoint: ServiceEndpoint, worker: Worker | None) -> bool:
    """Reset through envmgr's extension (the local image); False where there is none.

    The extension is recognised by its answer (a summary with `services` and `took_ms`), never by the status code
    alone: the official image answers an unknown `POST` with 200 and an empty body, and resetting nothing there
    would leave every test's buckets and queues for the next one.
    """
    selection = {"account_ids": [worker.aws_account_id]} if worker is not None else {}
    request = urllib.request.Request(
        endpoint.url + RESET_PATH,
        data=json.dumps(selection).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 405):  # no such route: an image without the extension
            return False
        raise
    return is_reset_summary(body)


def is_reset_summary(body: bytes) -> bool:
    """True when `body` is the extension's answer to a reset."""
    try:
        summary = json.loads(body)
    except ValueError:
        return False
    return isinstance(summary, dict) and isinstance(summary.get("services"), dict) and "took_ms" in summary


def _delete_through_api(endpoint: ServiceEndpoint, worker: Worker) -> None:
    s3 = aws_client(endpoint, worker, "s3")
    for bucket in s3.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=name):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=name, Delete={"Objects": keys})
        s3.delete_bucket(Bucket=name)
    sqs = aws_client(endpoint, worker, "sqs")
    for url in sqs.list_queues().get("QueueUrls", []):
        sqs.delete_queue(QueueUrl=url)
