"""`AwsService`: what LocalStack and moto have in common as services: the endpoint and its AWS_* variables, each
worker's view (its account, its bucket names), seeds, the probe's API calls, the access-key gate in the emulator's
container (`gate.py`), and the compose seed job. Each backend says how it runs, which worker's account an endpoint
names, and how it empties an account."""

from __future__ import annotations

import dataclasses
import json
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from envmgr.config import Settings
from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.services.aws import gate
from envmgr.services.aws.accounts import (
    CLEARABLE,
    GATE_SECRET,
    Clients,
    SeedManifest,
    access_key,
    account_id,
    aws_variables,
    bucket_of,
)
from envmgr.services.aws.api import call_each
from envmgr.services.aws.settings import AwsServiceSettings
from envmgr.services.aws.state import Repair
from envmgr.services.base import ComposeContext, ContainerSpec, Published, Service
from envmgr.services.given import GivenHold

__all__ = ["RELOAD_OBJECTS", "AwsService"]

SEEDS_MOUNT = "/envmgr-seeds"
GATE_ENTRYPOINT = ["/bin/sh", "-c", '"$ENVMGR_GATE_PYTHON" -c "$ENVMGR_GATE" & exec "$@"', "envmgr-gate"]
"""the gate in the background, then the emulator (its command follows) as the container's main process"""

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


RELOAD_OBJECTS = 3
"""up to this many seeded objects, a reset empties the account and loads them again (through cached clients); with
more, it compares the account with the seeded state and repairs the difference (bench_aws_reset.py)"""


class AwsService(Service):
    """An AWS emulator: the fixtures `aws_endpoint_url`, `aws_env`, `s3_client`, `sqs_client` and `sns_client` are
    served by the one `[tool.envmgr.aws] backend` names."""

    fixtures = "envmgr.services.aws.fixtures"
    aws_port: ClassVar[int]
    """the container port of the AWS API"""
    image_python: ClassVar[str]
    """a Python with boto3 in both the official and the local image (the compose seed job runs it)"""
    seed_job: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.clients = Clients()
        """boto3 clients made once per account (each new one costs 60-250 ms)"""
        self.manifest = SeedManifest()
        """the seeded state, the seed files' ETags computed once"""

    @property
    def aws(self) -> AwsServiceSettings:
        config = self.config
        assert isinstance(config, AwsServiceSettings)
        return config

    @classmethod
    def serves_fixtures(cls, settings: Settings) -> bool:
        return settings.aws.backend == cls.name

    @abstractmethod
    def served_worker(self, published: Published) -> Worker:
        """The worker whose account the endpoint's variables name (the shared one, or a replica's own worker)."""

    @abstractmethod
    def probed_services(self) -> Sequence[str]:
        """The AWS services whose API calls must answer before the service is ready."""

    @property
    def upstream_port(self) -> int:
        """Where the emulator listens inside its container behind the gate (on 127.0.0.1 only)."""
        return self.aws_port + 1

    def gated(self, spec: ContainerSpec, emulator: list[str], env: Mapping[str, str] | None = None) -> ContainerSpec:
        """`spec` with the access-key gate in front (`check_access_key`): the gate on the service's port, then
        `emulator` (its command, with `env`) on `upstream_port`. As is without the check."""
        if not self.aws.check_access_key:
            return spec
        gate_env = {
            **spec.env, **(env or {}),
            "ENVMGR_GATE": gate.source(), "ENVMGR_GATE_PYTHON": self.image_python, gate.SECRET: self.password,
            gate.PORT: str(self.aws_port), gate.UPSTREAM: str(self.upstream_port),
        }  # fmt: skip
        return dataclasses.replace(spec, env=gate_env, entrypoint=[*GATE_ENTRYPOINT, *emulator])

    def endpoint(self, published: Published) -> ServiceEndpoint:
        worker = self.served_worker(published)
        secret = {GATE_SECRET: self.password} if self.aws.check_access_key else {}
        base = self.published_endpoint(
            published, "http",
            extra={"region": self.aws.region, "account_id": worker.aws_account_id, "worker": worker.worker_id,
                   "bucket_suffix": worker.bucket(""), **secret},
        )  # fmt: skip
        return self.worker_view(base, worker)

    # a server envmgr did not start (`url`: aws/given.py) -----------------------------------------------------------

    issues_keys: ClassVar[bool] = False
    """whether the server takes the account from access keys it issued (moto) rather than from any 12-digit id"""

    def cleared_services(self) -> Sequence[str]:
        """The services whose state an account is emptied of (on a given server: at its reset and end)."""
        return CLEARABLE

    def given_hold(self, url: str, env_id: str, workers: int) -> GivenHold:
        """An account per worker on the server, the run registered there (envmgr.services.aws.given)."""
        from envmgr.services.aws.given import hold

        return hold(self, url, env_id, workers)

    def given_sweep(self, url: str) -> list[str]:
        from envmgr.services.aws.given import sweep

        return sweep(self, url)

    def seeded_buckets(self) -> list[str]:
        from envmgr.services.aws.seeds import s3_seed_buckets

        return list(s3_seed_buckets(self.settings.seeds_path()))

    def probe_calls(self, endpoint: ServiceEndpoint) -> None:
        """One cheap API call per probed service (ListBuckets, ListQueues, ListTopics ...): each really answers."""
        key = endpoint.extra.get("access_key_id", endpoint.extra.get("account_id", ""))
        call_each(endpoint.url, self.probed_services(), region=self.aws.region, access_key=key)

    def few_seeds(self, endpoint: ServiceEndpoint, worker: Worker) -> bool:
        """Whether the seeds are so few objects (RELOAD_OBJECTS) that emptying the account and loading them again
        takes fewer calls than comparing it with them (a listing per bucket, the attributes of each queue)."""
        state = self.manifest.state(endpoint, worker, self.settings)
        return sum(len(objects) for objects in state.buckets.values()) <= RELOAD_OBJECTS

    def repair(self, endpoint: ServiceEndpoint, worker: Worker) -> Repair:
        """The worker's account made its seeded state again, changing only what differs from it (`state.py`)."""
        from envmgr.services.aws.state import repair_account

        state = self.manifest.state(endpoint, worker, self.settings)
        defaults = self.manifest.queue_defaults.setdefault(endpoint.url, {})
        return repair_account(lambda service: self.clients(endpoint, worker, service), state, defaults)

    # named snapshots: the worker's account's S3 and SQS content, kept in this process ----------------------------

    def snapshot(self, endpoint: ServiceEndpoint, worker: Worker, name: str) -> object:
        """The worker's account's buckets with their objects, its queues with their attributes and visible messages
        (`state.capture_account`)."""
        from envmgr.services.aws.state import capture_account

        return capture_account(lambda service: self.clients(endpoint, worker, service))

    def restore(self, endpoint: ServiceEndpoint, worker: Worker, name: str, kept: object) -> None:
        """The worker's account repaired into the kept state: only what differs is changed (a queue that holds
        messages in the snapshot is always made again, with them)."""
        from envmgr.services.aws.state import AccountState, repair_account

        assert isinstance(kept, AccountState)
        defaults = self.manifest.queue_defaults.setdefault(endpoint.url, {})
        repair_account(lambda service: self.clients(endpoint, worker, service), kept, defaults)

    def worker_view(self, endpoint: ServiceEndpoint, worker: Worker) -> ServiceEndpoint:
        """The worker's account: its AWS_* variables and S3_BUCKET_<NAME> names."""
        extra = {
            **endpoint.extra, "account_id": account_id(endpoint, worker),
            "bucket_suffix": bucket_of(endpoint, worker, ""), "access_key_id": access_key(endpoint, worker),
        }  # fmt: skip
        return endpoint.model_copy(
            update={"variables": aws_variables(endpoint, worker, self.seeded_buckets()), "extra": extra}
        )

    # compose ---------------------------------------------------------------------------------------------------

    def compose_jobs(self, endpoint: ServiceEndpoint, image: str, context: ComposeContext) -> dict[str, Any]:
        """A one-shot container (the image's own Python and boto3) creating the seeded buckets, objects and queues
        in the default account once the service is healthy; none when there is nothing to seed."""
        from envmgr.services.aws.seeds import s3_seed_buckets, sqs_seed_queues

        seeds = self.settings.seeds_path()
        buckets = s3_seed_buckets(seeds)
        queues = sqs_seed_queues(seeds, self.aws.queues)
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
            "entrypoint": [self.image_python, "-c", context.text(_SEED_SCRIPT)],
            "environment": {
                **{k: context.text(v) for k, v in aws.items()},
                "ENVMGR_SEEDS": context.text(json.dumps(plan)),
            },
            "depends_on": {self.name: {"condition": "service_healthy"}},
            "restart": "no",
        }
        if volumes:
            job["volumes"] = volumes
        return {self.seed_job: job}
