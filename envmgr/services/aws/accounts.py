"""An AWS account per worker, in whichever emulator serves AWS (LocalStack, moto): the variables that name it, boto3
clients in it, its seeds, and emptying it through the AWS API.

Worker gwN works in account 0000000000N+1 (`Worker.aws_account_id`): LocalStack reads the account from the access
key id; moto runs one server per worker whose account is that id (`MOTO_ACCOUNT_ID`). Its seeded buckets are
`<bucket>-gwN` in worker isolation (S3 bucket names are global in LocalStack). The access key id is the account's
own, derived from the environment's secret (`gate.py`: the emulator's gate lets no other through); with
`check_access_key = false` it is the 12-digit account id.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envmgr.config import Settings
from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.errors import SeedError, first_line
from envmgr.services.aws import gate
from envmgr.services.aws.settings import AwsServiceSettings

if TYPE_CHECKING:
    from envmgr.services.aws.state import AccountState

__all__ = [
    "CLEARABLE",
    "GATE_SECRET",
    "SECRET_ACCESS_KEY",
    "Clients",
    "access_key",
    "account_id",
    "aws_client",
    "aws_variables",
    "bucket_of",
    "delete_through_api",
    "gate_headers",
    "load_aws_seeds",
    "seeded_state",
]

SECRET_ACCESS_KEY = "test"
"""not checked (by the emulators nor the gate): the access key id is what is secret"""
GATE_SECRET = "gate_password"
"""the endpoint's `extra` key of the secret the access key ids derive from (masked like a password)"""
CLEARABLE = ("s3", "sqs", "sns")
"""the services an account is emptied of between tests (buckets and objects, queues and messages, topics and
subscriptions)"""


def aws_variables(endpoint: ServiceEndpoint, worker: Worker, buckets: Sequence[str] = ()) -> dict[str, str]:
    """What an application reads to reach this account: the standard AWS_* variables, and S3_BUCKET_<NAME> with
    the worker's name of each seeded bucket."""
    variables = {
        "AWS_ENDPOINT_URL": endpoint.url,
        "AWS_ACCESS_KEY_ID": access_key(endpoint, worker),
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": endpoint.extra.get("region", "us-east-1"),
    }
    for bucket in buckets:
        variables["S3_BUCKET_" + re.sub(r"[^A-Z0-9]", "_", bucket.upper())] = bucket_of(endpoint, worker, bucket)
    return variables


def account_id(endpoint: ServiceEndpoint, worker: Worker) -> str:
    """The worker's account: `Worker.aws_account_id` on envmgr's emulator; on a server envmgr did not start, the
    environment's own (`aws/given.py`: its 9-digit base, then 000 for the session and N+1 for gwN)."""
    base = endpoint.extra.get("account_base")
    return f"{base}{worker.redis_db:03d}" if base else worker.aws_account_id


def bucket_of(endpoint: ServiceEndpoint, worker: Worker, name: str) -> str:
    """The worker's name of seeded bucket `name` (bucket names are global): `Worker.bucket`, with the environment's
    id before the worker's on a server envmgr did not start (`artwork-<id>-gw1`, `artwork-<id>`)."""
    tag = endpoint.extra.get("bucket_tag")
    if not tag:
        return worker.bucket(name)
    return f"{name}-{tag}-{worker.worker_id}" if worker.isolated else f"{name}-{tag}"


def access_key(endpoint: ServiceEndpoint, worker: Worker) -> str:
    """The access key id of the worker's account: one the server issued for it (a given moto: STS), derived from
    the environment's secret where the emulator's gate checks it, else the 12-digit account id."""
    account = account_id(endpoint, worker)
    issued = endpoint.extra.get(f"key_{account}")
    if issued:
        return issued
    secret = endpoint.extra.get(GATE_SECRET)
    return gate.access_key_id(secret, account) if secret else account


def gate_headers(endpoint: ServiceEndpoint) -> dict[str, str]:
    """What envmgr's own calls beside the AWS API (the emulators' reset endpoints) send to pass the gate."""
    return {gate.HEADER: access_key(endpoint, Worker())} if endpoint.extra.get(GATE_SECRET) else {}


def aws_client(endpoint: ServiceEndpoint, worker: Worker, service: str) -> Any:
    """A new boto3 client of `service` ('s3', 'sqs', 'sns' ...) in the worker's account, at the emulator's endpoint
    (path-style S3 addressing: the emulator is reached by address, not by a bucket's host name). Making one costs
    60-250 ms (its own boto3 session reads the service's model): envmgr's own calls use `Clients`."""
    return _new_client(_new_session(endpoint, worker), endpoint, service)


def _new_session(endpoint: ServiceEndpoint, worker: Worker) -> Any:
    import boto3

    return boto3.session.Session(
        aws_access_key_id=access_key(endpoint, worker),
        aws_secret_access_key=SECRET_ACCESS_KEY,
        region_name=endpoint.extra.get("region", "us-east-1"),
    )


def _new_client(session: Any, endpoint: ServiceEndpoint, service: str) -> Any:
    from botocore.config import Config

    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2})
    return session.client(service, endpoint_url=endpoint.url, config=config)


class Clients:
    """boto3 clients made once per endpoint, account and AWS service, from one session per account (its models read
    once): what envmgr's seeds and resets use, instead of two new clients (120-500 ms on a busy machine) a reset."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[tuple[str, str, str], Any] = {}
        self._clients: dict[tuple[str, str, str, str], Any] = {}

    def __call__(self, endpoint: ServiceEndpoint, worker: Worker, service: str) -> Any:
        account = (endpoint.url, access_key(endpoint, worker), endpoint.extra.get("region", "us-east-1"))
        key = (*account, service)
        with self._lock:  # a boto3 session is not thread-safe; its clients are
            if key not in self._clients:
                if account not in self._sessions:
                    self._sessions[account] = _new_session(endpoint, worker)
                self._clients[key] = _new_client(self._sessions[account], endpoint, service)
            return self._clients[key]


class SeedManifest:
    """The seeded state of an account, read from the seeds folder: each seed file's ETag is computed again only
    when the file changed (its size or modification time)."""

    def __init__(self) -> None:
        self._etags: dict[Path, tuple[int, int, str]] = {}
        self.queue_defaults: dict[str, dict[str, str]] = {}
        """per endpoint URL: the attributes its emulator gives a queue created without any (learnt by a repair)"""

    def etag(self, path: Path) -> str:
        from envmgr.services.aws.state import file_etag

        stat = path.stat()
        known = self._etags.get(path)
        if known is None or known[:2] != (stat.st_size, stat.st_mtime_ns):
            known = (stat.st_size, stat.st_mtime_ns, file_etag(path))
            self._etags[path] = known
        return known[2]

    def state(self, endpoint: ServiceEndpoint, worker: Worker, settings: Settings) -> AccountState:
        return seeded_state(endpoint, worker, settings, self.etag)


def seeded_state(endpoint: ServiceEndpoint, worker: Worker, settings: Settings, etag: Any = None) -> AccountState:
    """What the worker's account holds once seeded: the seeded buckets (the worker's names) with their files, the
    seeded queues (no messages, the emulator's default attributes)."""
    from envmgr.services.aws.seeds import s3_seed_buckets, sqs_seed_queues
    from envmgr.services.aws.state import AccountState, ObjectState, QueueState, file_etag

    seeds = settings.seeds_path()
    compute = etag or file_etag
    buckets = {
        bucket_of(endpoint, worker, bucket): {key: ObjectState(etag=compute(path), body=path) for key, path in objects}
        for bucket, objects in s3_seed_buckets(seeds).items()
    }
    queues = {name: QueueState() for name in sqs_seed_queues(seeds, _settings_of(endpoint, settings).queues)}
    return AccountState(buckets=buckets, queues=queues)


def _settings_of(endpoint: ServiceEndpoint, settings: Settings) -> AwsServiceSettings:
    config = settings.service(endpoint.service)
    assert isinstance(config, AwsServiceSettings), f"{endpoint.service} is not an AWS service"
    return config


def load_aws_seeds(
    endpoint: ServiceEndpoint, worker: Worker, settings: Settings, clients: Clients | None = None
) -> None:
    """Create the seeded buckets, objects and queues in the worker's account."""
    from envmgr.services.aws.seeds import s3_seed_buckets, sqs_seed_queues

    client = clients or aws_client
    seeds = settings.seeds_path()
    buckets = s3_seed_buckets(seeds)
    queues = sqs_seed_queues(seeds, _settings_of(endpoint, settings).queues)
    if buckets:
        s3 = client(endpoint, worker, "s3")
        for bucket, objects in buckets.items():
            name = bucket_of(endpoint, worker, bucket)
            _seed_call(endpoint, f"s3/{bucket}", lambda b=name: s3.create_bucket(Bucket=b))
            for key, path in objects:  # one PUT each: the ETag is the file's MD5 (the reset compares it)
                _seed_call(endpoint, f"s3/{bucket}/{key}", lambda b=name, k=key, p=path: s3.put_object(
                    Bucket=b, Key=k, Body=p.read_bytes()))  # fmt: skip
    if queues:
        sqs = client(endpoint, worker, "sqs")
        for queue in queues:
            _seed_call(endpoint, f"sqs queue {queue}", lambda q=queue: sqs.create_queue(QueueName=q))


def _seed_call(endpoint: ServiceEndpoint, what: str, action: Any) -> None:
    try:
        action()
    except Exception as exc:  # botocore raises many types; every one is a failed seed here
        raise SeedError(
            f"seeding {endpoint.service} failed at {what}: {first_line(exc)}", "check the seeds folder"
        ) from None


def delete_through_api(
    endpoint: ServiceEndpoint, worker: Worker, services: Sequence[str] = CLEARABLE, clients: Clients | None = None
) -> None:
    """Empty the worker's account of `services` (of CLEARABLE) through the AWS API: every S3 bucket with its objects,
    every SQS queue, every SNS topic and subscription."""
    client = clients or aws_client
    if "s3" in services:
        s3 = client(endpoint, worker, "s3")
        for bucket in s3.list_buckets().get("Buckets", []):
            name = bucket["Name"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    s3.delete_objects(Bucket=name, Delete={"Objects": keys})
            s3.delete_bucket(Bucket=name)
    if "sqs" in services:
        sqs = client(endpoint, worker, "sqs")
        for url in sqs.list_queues().get("QueueUrls", []):
            sqs.delete_queue(QueueUrl=url)
    if "sns" in services:
        sns = client(endpoint, worker, "sns")
        for page in sns.get_paginator("list_subscriptions").paginate():
            for subscription in page.get("Subscriptions", []):
                if subscription["SubscriptionArn"].startswith("arn:"):  # not "PendingConfirmation"
                    sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])
        for page in sns.get_paginator("list_topics").paginate():
            for topic in page.get("Topics", []):
                sns.delete_topic(TopicArn=topic["TopicArn"])
