"""An AWS emulator envmgr did not start (`[tool.envmgr.moto] url`, `[tool.envmgr.localstack] url`): one server for
every worker, an AWS account per worker, everything envmgr makes there accounted to the environment.

Accounts: the environment's 9-digit base (from its id) then 000 for the session's share and N+1 for worker gwN
(`accounts.account_id`). LocalStack takes a 12-digit access key id as its account; moto takes the account of a key
it issued: envmgr asks moto's STS for one per account (`AssumeRole` of `arn:aws:iam::<account>:role/envmgr`) and
checks that the server honours it (a moto started with MOTO_ACCOUNT_ID puts every request in one account: refused).
Seeded buckets are named `<bucket>-<id>` / `<bucket>-<id>-gwN` (bucket names are global); queues are per account.

Liveness: each run registers itself as an object `<id>` in the bucket `envmgr-runs` of the server's default
account, naming its owner process and accounts. At the end (`release`) each of its accounts is emptied (every S3
bucket with its objects, every SQS queue, every SNS topic) and the object deleted (the bucket too once empty). A
sweep (a run's start, `envmgr gc`) does the same for each registered run whose owner process is gone; an owner on
another machine cannot be checked from here and is left alone. Other services' state in those accounts (DynamoDB,
IAM ...) is not removed, nor the temporary credentials moto keeps.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from hashlib import sha256
from typing import Any, ClassVar, Protocol

from envmgr.config import Settings
from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.engine.labels import Owner
from envmgr.errors import ConfigError
from envmgr.services.aws.accounts import SECRET_ACCESS_KEY, Clients, access_key, account_id, load_aws_seeds
from envmgr.services.aws.settings import AwsServiceSettings
from envmgr.services.given import GivenUrl

__all__ = ["REGISTRY_BUCKET", "AwsHold", "empty_account", "hold", "reset_all", "reset_worker", "sweep", "workers_of"]

REGISTRY_BUCKET = "envmgr-runs"
REGISTRY_KEY = "000000000000"
"""the access key id of envmgr's own calls outside the environment's accounts (the server's default account)"""
SCHEMES = ("http", "https")
ROLE = "arn:aws:iam::{account}:role/envmgr"


class AwsService(Protocol):
    """What this module asks of the AWS service (envmgr.services.aws.backend.AwsService)."""

    name: ClassVar[str]
    aws_port: ClassVar[int]
    issues_keys: ClassVar[bool]
    settings: Settings
    clients: Clients

    @property
    def aws(self) -> AwsServiceSettings: ...

    def cleared_services(self) -> Sequence[str]: ...

    def few_seeds(self, endpoint: ServiceEndpoint, worker: Worker) -> bool: ...

    def repair(self, endpoint: ServiceEndpoint, worker: Worker) -> object: ...

    def worker_view(self, endpoint: ServiceEndpoint, worker: Worker) -> ServiceEndpoint: ...


def _parse(service: AwsService, url: str) -> GivenUrl:
    example = f'http://host:{service.aws_port} (e.g. "${{AWS_ENDPOINT_URL}}")'
    return GivenUrl.of_setting(url, service.name, SCHEMES, service.aws_port, example)


def _client(url: str, key: str, region: str, name: str) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=3, read_timeout=15)
    return boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=SECRET_ACCESS_KEY, region_name=region)\
        .client(name, endpoint_url=url, config=config)  # fmt: skip


def _answering(call: Callable[[], Any]) -> Any:
    """`call()`, a ConnectionError while the server does not answer (the caller polls until its deadline)."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    try:
        return call()
    except (BotoConnectionError, HTTPClientError, OSError) as exc:
        raise ConnectionError(str(exc) or type(exc).__name__) from None


def workers_of(endpoint: ServiceEndpoint) -> list[Worker]:
    """The session's share and each worker's: every account the environment has on the server."""
    count = int(endpoint.extra.get("workers", "0"))
    return [Worker(), *(Worker(f"gw{index}", isolated=True) for index in range(count))]


def empty_account(client: Callable[[str], Any], services: Sequence[str]) -> list[str]:
    """Every S3 bucket (with its objects), SQS queue and SNS topic of one account deleted; what was, named."""
    removed: list[str] = []
    if "s3" in services:
        s3 = client("s3")
        for bucket in s3.list_buckets().get("Buckets", []):
            name, count = bucket["Name"], 0
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    s3.delete_objects(Bucket=name, Delete={"Objects": keys})
                    count += len(keys)
            s3.delete_bucket(Bucket=name)
            removed.append(f"bucket {name} ({count} objects)")
    if "sqs" in services:
        sqs = client("sqs")
        for url in sqs.list_queues().get("QueueUrls", []):
            sqs.delete_queue(QueueUrl=url)
            removed.append(f"queue {url.rsplit('/', 1)[-1]}")
    if "sns" in services:
        sns = client("sns")
        for page in sns.get_paginator("list_topics").paginate():
            for topic in page.get("Topics", []):
                sns.delete_topic(TopicArn=topic["TopicArn"])
                removed.append(f"topic {topic['TopicArn'].rsplit(':', 1)[-1]}")
    return removed


def _empty(service: AwsService, endpoint: ServiceEndpoint, worker: Worker) -> list[str]:
    return empty_account(lambda name: service.clients(endpoint, worker, name), service.cleared_services())


def reset_worker(service: AwsService, endpoint: ServiceEndpoint, worker: Worker) -> None:
    """The worker's account back to its seeded state (never another account, never the server's reset): emptied and
    seeded again when the seeds are a few objects, else only what differs repaired (the full reload if it fails)."""
    if not service.few_seeds(endpoint, worker):
        try:
            service.repair(endpoint, worker)
            if "sns" in service.cleared_services():
                sns = service.clients(endpoint, worker, "sns")
                if sns.list_topics().get("Topics"):
                    _empty(service, endpoint, worker)
                    load_aws_seeds(endpoint, worker, service.settings, service.clients)
            return
        except Exception:  # botocore raises many types; the full reload is the answer to each
            pass
    _empty(service, endpoint, worker)
    load_aws_seeds(endpoint, worker, service.settings, service.clients)


def reset_all(service: AwsService, endpoint: ServiceEndpoint) -> None:
    """Every account of the environment emptied, the session's seeded again (the workers' when they set up)."""
    for worker in workers_of(endpoint):
        _empty(service, endpoint, worker)
    load_aws_seeds(endpoint, Worker(), service.settings, service.clients)


@dataclass
class AwsHold:
    """The environment's accounts on the server; `release` empties them and removes its registration."""

    service: AwsService
    endpoint: ServiceEndpoint
    url: str

    def release(self) -> list[str]:
        removed = _remove_run(self.service, self.endpoint)
        _unregister(self.url, self.service.aws.region, self.endpoint.extra["bucket_tag"])
        return removed


def _remove_run(service: AwsService, endpoint: ServiceEndpoint) -> list[str]:
    removed: list[str] = []
    for worker in workers_of(endpoint):
        account = account_id(endpoint, worker)
        removed += [f"{service.name} account {account}: {item}" for item in _empty(service, endpoint, worker)]
    return removed


def hold(service: AwsService, url: str, env_id: str, workers: int) -> AwsHold:
    """The environment's accounts on the server (moto: a key issued for each), its run registered; the endpoint
    names the session's account."""
    given = _parse(service, url)
    base = f"{int(sha256(env_id.encode()).hexdigest(), 16) % 900_000_000 + 100_000_000}"
    extra = {
        "given": "true", "region": service.aws.region, "account_base": base, "bucket_tag": env_id,
        "workers": str(workers), "worker": "main",
    }  # fmt: skip
    plain = ServiceEndpoint(
        service=service.name, scheme=given.scheme, host=given.host, port=given.port, internal_host=given.host,
        internal_port=given.port, extra=extra,
    )  # fmt: skip
    registry = _client(url, REGISTRY_KEY, service.aws.region, "s3")
    _answering(registry.list_buckets)
    if service.issues_keys:
        extra.update(_issue_keys(url, service, plain))
    endpoint = service.worker_view(plain.model_copy(update={"extra": extra}), Worker())
    _register(registry, env_id, {"env": env_id, "workers": workers, "base": base, "owner": Owner.current().labels()})
    return AwsHold(service, endpoint, url)


def _issue_keys(url: str, service: AwsService, endpoint: ServiceEndpoint) -> dict[str, str]:
    """moto: an access key id per account (STS AssumeRole into it), checked to land in that account."""
    sts = _client(url, REGISTRY_KEY, service.aws.region, "sts")
    keys: dict[str, str] = {}
    for worker in workers_of(endpoint):
        account = account_id(endpoint, worker)
        answer = _answering(partial(sts.assume_role, RoleArn=ROLE.format(account=account), RoleSessionName="envmgr"))
        keys[f"key_{account}"] = answer["Credentials"]["AccessKeyId"]
    first = account_id(endpoint, Worker())
    sqs = _client(url, keys[f"key_{first}"], service.aws.region, "sqs")
    queue = sqs.create_queue(QueueName="envmgr-account-check")["QueueUrl"]
    sqs.delete_queue(QueueUrl=queue)
    if f"/{first}/" not in queue:
        raise ConfigError(
            f"{service.name}: the server at {url} ({service.name}.url) put a request made with account {first}'s key "
            f"in another account ({queue}): it keeps no accounts apart (started with MOTO_ACCOUNT_ID?), so envmgr "
            "cannot keep workers and runs apart there",
            "start the server without MOTO_ACCOUNT_ID, or remove the url to let envmgr start moto",
        )
    return keys


def _clients_of(url: str, key: str, region: str) -> Callable[[str], Any]:
    return lambda name: _client(url, key, region, name)


def _register(registry: Any, env_id: str, record: dict[str, Any]) -> None:
    body = json.dumps(record).encode()
    for attempt in range(3):  # another run may delete the emptied bucket between our create and put
        try:
            registry.create_bucket(Bucket=REGISTRY_BUCKET)
        except Exception as exc:  # already there (ours or another run's)
            if "BucketAlready" not in type(exc).__name__ and "BucketAlready" not in str(exc):
                raise
        try:
            registry.put_object(Bucket=REGISTRY_BUCKET, Key=env_id, Body=body)
            return
        except Exception:
            if attempt == 2:
                raise
            time.sleep(0.05)


def _unregister(url: str, region: str, env_id: str) -> None:
    registry = _client(url, REGISTRY_KEY, region, "s3")
    registry.delete_object(Bucket=REGISTRY_BUCKET, Key=env_id)
    if not registry.list_objects_v2(Bucket=REGISTRY_BUCKET, MaxKeys=1).get("Contents"):
        with contextlib.suppress(Exception):  # another run registered meanwhile: its bucket now
            registry.delete_bucket(Bucket=REGISTRY_BUCKET)


def sweep(service: AwsService, url: str) -> list[str]:
    """Empty the accounts of every registered run whose owner process is gone, and unregister it; what was
    removed, for people."""
    given = _parse(service, url)
    region = service.aws.region
    registry = _client(url, REGISTRY_KEY, region, "s3")
    names = [bucket["Name"] for bucket in _answering(registry.list_buckets).get("Buckets", [])]
    if REGISTRY_BUCKET not in names:
        return []
    removed: list[str] = []
    for item in registry.list_objects_v2(Bucket=REGISTRY_BUCKET).get("Contents", []):
        try:
            record = json.loads(registry.get_object(Bucket=REGISTRY_BUCKET, Key=item["Key"])["Body"].read())
            owner = Owner.from_labels(record["owner"])
            env_id, base, workers = str(record["env"]), str(record["base"]), int(record["workers"])
        except Exception:  # gone meanwhile, or not envmgr's
            continue
        if owner is None or owner.is_alive():
            continue
        extra = {"account_base": base, "bucket_tag": env_id, "workers": str(workers), "region": region}
        endpoint = ServiceEndpoint(
            service=service.name, scheme=given.scheme, host=given.host, port=given.port, internal_host=given.host,
            internal_port=given.port, extra=extra,
        )  # fmt: skip
        if service.issues_keys:
            endpoint = endpoint.model_copy(update={"extra": {**extra, **_issue_keys(url, service, endpoint)}})
        swept: list[str] = []
        for worker in workers_of(endpoint):
            key = access_key(endpoint, worker)
            lines = empty_account(_clients_of(url, key, region), service.cleared_services())
            account = account_id(endpoint, worker)
            swept += [f"{service.name} account {account}: {line} (environment {env_id})" for line in lines]
        _unregister(url, region, env_id)
        removed += swept or [f"{service.name} registration of environment {env_id} (its accounts were empty)"]
    return removed
