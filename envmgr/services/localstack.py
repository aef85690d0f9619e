"""LocalStack (S3 and SQS): one gateway for the environment, one AWS account per xdist worker.

LocalStack keeps accounts apart: a 12-digit access key id *is* the account id, so worker gwN works in account
0000000000N+1 (see `Worker.aws_account_id`) and never sees another worker's buckets or queues. Seeds (buckets and
objects from seeds/s3/, queues from the settings and seeds/sqs.yaml) are loaded into each account that is used.

Reset: envmgr's local image has an in-process endpoint (`POST /_envmgr/state/reset`, containers/localstack) that
empties one account's S3 and SQS stores in milliseconds; on the official image, which has none, envmgr deletes
through the AWS API instead (slower, same result).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from envmgr.config import LocalStackSettings
from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.errors import SeedError, first_line
from envmgr.seeds import s3_seed_buckets, sqs_seed_queues
from envmgr.services.base import ContainerSpec, Published, Service

__all__ = [
    "SECRET_ACCESS_KEY",
    "LocalStackService",
    "aws_client",
    "load_aws_seeds",
    "reset_account",
    "restore_account",
]

PORT = 4566
HEALTH_PATH = "/_localstack/health"
RESET_PATH = "/_envmgr/state/reset"
SECRET_ACCESS_KEY = "test"
READY_STATES = {"available", "running"}
REQUIRED = ("s3", "sqs")
HTTP_TIMEOUT = 5
FALLBACK_ACCOUNTS = 8


class LocalStackService(Service):
    name = "localstack"
    official_image = "localstack/localstack:4.13.1"
    local_image = "envmgr-local/localstack:4.13.1"
    build_context = "localstack"
    ports = MappingProxyType({"gateway": PORT})
    probe_description = f"GET {HEALTH_PATH} (s3 and sqs available)"

    @property
    def ls(self) -> LocalStackSettings:
        config = self.config
        assert isinstance(config, LocalStackSettings)
        return config

    def container_spec(self, requirements: dict[str, ServiceEndpoint], worker: Worker) -> ContainerSpec:
        env = {
            "SERVICES": "s3,sqs",
            "PERSISTENCE": "0",
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "DISABLE_EVENTS": "1",
            "SQS_ENDPOINT_STRATEGY": "path",
            "AWS_DEFAULT_REGION": self.ls.region,
        }
        token = os.environ.get("LOCALSTACK_AUTH_TOKEN")
        if token:  # newer official images want one; the community tag pinned here does not
            env["LOCALSTACK_AUTH_TOKEN"] = token
        env.update(self.ls.env)
        return ContainerSpec(image=self.image(), ports=dict(self.ports), env=env)

    def host_env(self, host: str, host_ports: Mapping[str, int]) -> dict[str, str]:
        """URLs LocalStack hands out (SQS queue URLs) must work from the host: name the published address."""
        return {"LOCALSTACK_HOST": f"{host}:{host_ports['gateway']}"}

    def endpoint(self, published: Published) -> ServiceEndpoint:
        base = ServiceEndpoint(
            service=self.name,
            scheme="http",
            host=published.host,
            port=published.ports["gateway"],
            internal_host=published.alias,
            internal_port=PORT,
            image=published.image,
            container=published.container,
            extra={"region": self.ls.region, "account_id": Worker().aws_account_id},
        )
        buckets = list(s3_seed_buckets(self.settings.seeds_path()))
        return base.model_copy(update={"variables": aws_variables(base, Worker(), buckets)})

    def probe(self, endpoint: ServiceEndpoint) -> None:
        with urllib.request.urlopen(endpoint.url + HEALTH_PATH, timeout=2) as response:
            services = json.load(response).get("services", {})
        missing = [name for name in REQUIRED if services.get(name) not in READY_STATES]
        if missing:
            raise ConnectionError(f"not yet available: {', '.join(missing)} ({services})")

    def prepare(self, endpoint: ServiceEndpoint) -> ServiceEndpoint:
        """Seed the shared account (what `envmgr up` and session isolation use)."""
        load_aws_seeds(endpoint, Worker(), self.settings)
        return endpoint

    def reset(self, endpoint: ServiceEndpoint) -> None:
        """Every account emptied (the workers' too), then the shared account seeded again."""
        reset_account(endpoint, None)
        load_aws_seeds(endpoint, Worker(), self.settings)


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


def load_aws_seeds(endpoint: ServiceEndpoint, worker: Worker, settings: Any) -> None:
    """Create the seeded buckets, objects and queues in the worker's account."""
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


def restore_account(endpoint: ServiceEndpoint, worker: Worker, settings: Any) -> None:
    """The worker's account back to its seeded buckets, objects and queues."""
    reset_account(endpoint, worker)
    load_aws_seeds(endpoint, worker, settings)


def reset_account(endpoint: ServiceEndpoint, worker: Worker | None) -> None:
    """Empty the worker's account (S3 buckets and objects, SQS queues); other accounts are untouched.

    With no worker: every account. (On the official image, which lacks envmgr's reset endpoint, "every account"
    means the shared one and those of the first FALLBACK_ACCOUNTS workers, deleted through the AWS API.)
    """
    selection = {"account_ids": [worker.aws_account_id]} if worker is not None else {}
    request = urllib.request.Request(
        endpoint.url + RESET_PATH,
        data=json.dumps(selection).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT):
            return
    except urllib.error.HTTPError as exc:
        if exc.code != 404:  # 404: an image without envmgr's reset endpoint (the official one)
            raise
    accounts = (
        [worker] if worker is not None else [Worker(), *(Worker(f"gw{i}", True) for i in range(FALLBACK_ACCOUNTS))]
    )
    for account in accounts:
        _delete_through_api(endpoint, account)


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
