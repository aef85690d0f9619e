"""LocalStack (S3 and SQS): one gateway for the environment, one AWS account per xdist worker.

LocalStack keeps accounts apart: a 12-digit access key id *is* the account id, so worker gwN works in account
0000000000N+1 (see `Worker.aws_account_id`) and never sees another worker's buckets or queues. Seeds (buckets and
objects from seeds/s3/, queues from the settings and seeds/sqs.yaml) are loaded into each account that is used
(`accounts.py`, which also resets an account).
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from envmgr.config import LocalStackSettings
from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.services.base import ComposeContext, ContainerSpec, Published, Service
from envmgr.services.localstack.accounts import aws_variables, load_aws_seeds, reset_account, restore_account

__all__ = ["HEALTH_PATH", "READY_STATES", "REQUIRED", "LocalStackService"]

PORT = 4566
HEALTH_PATH = "/_localstack/health"
READY_STATES = ("available", "running")
REQUIRED = ("s3", "sqs")
LOCALSTACK_PYTHON = "/opt/code/localstack/.venv/bin/python"
"""the LocalStack venv's interpreter (boto3 included): the same path in the official and the local image"""
SEEDS_MOUNT = "/envmgr-seeds"
SEED_JOB = "localstack-seed"

_HEALTH_SCRIPT = """\
import json, sys, urllib.request
try:
    with urllib.request.urlopen("http://127.0.0.1:{port}{path}", timeout=3) as response:
        states = json.load(response).get("services", {{}})
except Exception as exc:
    sys.exit(f"unhealthy: {{exc}}")
missing = [name for name in {required!r} if states.get(name) not in {ready!r}]
sys.exit(f"not yet available: {{missing}}" if missing else 0)
"""

_SEED_SCRIPT = """\
import json, os
import boto3
from botocore.config import Config

seeds = json.loads(os.environ["ENVMGR_SEEDS"])
options = {"endpoint_url": os.environ["AWS_ENDPOINT_URL"], "region_name": os.environ["AWS_DEFAULT_REGION"]}
s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}), **options)
for bucket, objects in seeds["buckets"].items():
    s3.create_bucket(Bucket=bucket)
    for key, path in objects:
        s3.upload_file(path, bucket, key)
    print(f"s3: {bucket} ({len(objects)} objects)")
sqs = boto3.client("sqs", **options)
for queue in seeds["queues"]:
    sqs.create_queue(QueueName=queue)
    print(f"sqs: {queue}")
"""


class LocalStackService(Service):
    name = "localstack"
    official_image = "localstack/localstack:4.13.1"
    local_image = "envmgr-local/localstack:4.13.1"
    build_context = "localstack"
    ports = MappingProxyType({"gateway": PORT})
    probe_description = f"GET {HEALTH_PATH} (s3 and sqs available)"
    fixtures = "envmgr.services.localstack.fixtures"

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
            "DNS_ADDRESS": "0",  # no DNS server of its own, and no look-up of localstack.cloud at start
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
        base = self.published_endpoint(
            published, "http", extra={"region": self.ls.region, "account_id": Worker().aws_account_id}
        )
        return base.model_copy(update={"variables": aws_variables(base, Worker(), self._buckets())})

    def _buckets(self) -> list[str]:
        from envmgr.seeds import s3_seed_buckets

        return list(s3_seed_buckets(self.settings.seeds_path()))

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

    # per worker: its own AWS account ---------------------------------------------------------------------------

    def worker_view(self, endpoint: ServiceEndpoint, worker: Worker) -> ServiceEndpoint:
        """The worker's account: its AWS_* variables and S3_BUCKET_<NAME> names."""
        return endpoint.model_copy(
            update={
                "variables": aws_variables(endpoint, worker, self._buckets()),
                "extra": {**endpoint.extra, "account_id": worker.aws_account_id},
            }
        )

    def worker_setup(self, endpoint: ServiceEndpoint, worker: Worker) -> None:
        if worker.isolated:  # the shared account was seeded by prepare
            restore_account(endpoint, worker, self.settings)

    def worker_reset(self, endpoint: ServiceEndpoint, worker: Worker) -> None:
        """The worker's account back to its seeded buckets, objects and queues."""
        restore_account(endpoint, worker, self.settings)

    # compose ---------------------------------------------------------------------------------------------------

    def compose_healthcheck(self, endpoint: ServiceEndpoint, context: ComposeContext) -> list[str] | None:
        script = _HEALTH_SCRIPT.format(
            port=endpoint.internal_port, path=HEALTH_PATH, required=REQUIRED, ready=READY_STATES
        )
        return ["CMD", LOCALSTACK_PYTHON, "-c", context.text(script)]

    def compose_jobs(self, endpoint: ServiceEndpoint, image: str, context: ComposeContext) -> dict[str, Any]:
        """A one-shot container (the LocalStack image's Python and boto3) creating the seeded buckets, objects and
        queues in the default account once LocalStack is healthy; none when there is nothing to seed."""
        from envmgr.seeds import s3_seed_buckets, sqs_seed_queues

        seeds = self.settings.seeds_path()
        buckets = s3_seed_buckets(seeds)
        queues = sqs_seed_queues(seeds, self.ls.queues)
        if not buckets and not queues:
            return {}
        worker = Worker()
        plan: dict[str, Any] = {"buckets": {}, "queues": queues}
        volumes: list[str] = []
        if buckets and seeds is not None:
            s3_root = seeds / "s3"
            volumes.append(f"{context.host_path(str(s3_root))}:{SEEDS_MOUNT}/s3:ro")
            plan["buckets"] = {
                worker.bucket(bucket): [
                    [key, f"{SEEDS_MOUNT}/s3/{path.relative_to(s3_root).as_posix()}"] for key, path in objects
                ]
                for bucket, objects in buckets.items()
            }
        aws = {  # the account, the secret, the region, the (internal) endpoint
            name: value for name, value in endpoint.internal_variables().items() if name.startswith("AWS_")
        }
        job: dict[str, Any] = {
            "image": image,
            "entrypoint": [LOCALSTACK_PYTHON, "-c", context.text(_SEED_SCRIPT)],
            "environment": {
                **{k: context.text(v) for k, v in aws.items()},
                "ENVMGR_SEEDS": context.text(json.dumps(plan)),
            },
            "depends_on": {self.name: {"condition": "service_healthy"}},
            "restart": "no",
        }
        if volumes:
            job["volumes"] = volumes
        return {SEED_JOB: job}

    def compose_notes(self) -> list[str]:
        return [
            f"localstack: seeds/s3 and seeds/sqs.yaml are loaded by the one-shot `{SEED_JOB}` service (started by a "
            "plain `up`); LOCALSTACK_HOST names 127.0.0.1 and the port variable's value"
        ]
