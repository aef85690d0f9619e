"""LocalStack: one gateway for the environment, one AWS account per xdist worker.

LocalStack keeps accounts apart: a 12-digit access key id *is* the account id, so worker gwN works in account
0000000000N+1 (see `Worker.aws_account_id`) and never sees another worker's buckets, queues or topics. It runs the
services `localstack.services` lists (default S3 and SQS; `LOCALSTACK_SERVICES` are those the local image can run),
and is ready when each answers an API call, not merely when its health says "available". Seeds (buckets and objects
from seeds/s3/, queues from the settings and seeds/sqs.yaml) are loaded into each account that is used. An account is
reset in-process (the local image's endpoint, `accounts.py`) and seeded again when the seeds are a few objects
(`RELOAD_OBJECTS`); with more, it is compared with its seeded state and only the difference is repaired
(`aws/state.py`), with the full reload where the repair fails. Its port is the access-key gate's
(`aws/gate.py`): LocalStack itself listens on 127.0.0.1:4567 inside the container.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.services.aws.accounts import delete_through_api, load_aws_seeds
from envmgr.services.aws.backend import AwsService
from envmgr.services.aws.given import reset_all, reset_worker
from envmgr.services.base import ComposeContext, ContainerSpec, Published, ServiceDocs
from envmgr.services.localstack.accounts import cleared, reset_account, restore_account
from envmgr.services.localstack.settings import LocalStackSettings

__all__ = ["HEALTH_PATH", "READY_STATES", "SEED_JOB", "LocalStackService"]

PORT = 4566
HEALTH_PATH = "/_localstack/health"
READY_STATES = ("available", "running")
LOCALSTACK_PYTHON = "/opt/code/localstack/.venv/bin/python"
"""the LocalStack venv's interpreter (boto3 included): the same path in the official and the local image"""
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


class LocalStackService(AwsService):
    name = "localstack"
    official_image = "localstack/localstack:4.13.1"
    local_image = "envmgr-local/localstack:4.13.1"
    build_name = "localstack"
    ports = MappingProxyType({"gateway": PORT})
    aws_port = PORT
    probe_description = f"GET {HEALTH_PATH} and one API call per service (S3 ListBuckets, SQS ListQueues ...)"
    startup_deadline = 180.0
    docs = ServiceDocs(
        official_image="community, no token; `LOCALSTACK_AUTH_TOKEN` passed through when set",
        local_image="with moto-ext: SNS, IAM, STS ... run",
        ready="`/_localstack/health` lists each of `localstack.services`, then each answers an API call "
        "(`ListBuckets`, `ListQueues`, `ListTopics` ...)",
        seeds="`seeds/s3/<bucket>/<key>`, queues from `seeds/sqs.yaml` and `[tool.envmgr.localstack] queues`",
        isolation="its own AWS account; seeded buckets named `<bucket>-gwN` (S3 names are global)",
        reset="the account emptied in-process and the seeds reloaded (~17 ms); with more than 3 seeded objects, "
        "compared with its seeded state and only what differs repaired (~25 ms)",
    )
    image_python = LOCALSTACK_PYTHON
    seed_job = SEED_JOB

    @property
    def ls(self) -> LocalStackSettings:
        config = self.config
        assert isinstance(config, LocalStackSettings)
        return config

    def probed_services(self) -> Sequence[str]:
        return self.ls.services

    def served_worker(self, published: Published) -> Worker:
        """One server for every worker: its endpoint names the shared account (each worker's view its own)."""
        return Worker()

    def container_spec(self, requirements: dict[str, ServiceEndpoint], worker: Worker) -> ContainerSpec:
        env = {
            "SERVICES": ",".join(self.ls.services),
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
        spec = ContainerSpec(image=self.image(), ports=dict(self.ports), env=env)
        # behind the gate: LocalStack on 127.0.0.1 only (its health check reads GATEWAY_LISTEN)
        return self.gated(spec, ["docker-entrypoint.sh"], {"GATEWAY_LISTEN": f"127.0.0.1:{self.upstream_port}"})

    def host_env(self, host: str, host_ports: Mapping[str, int]) -> dict[str, str]:
        """URLs LocalStack hands out (SQS queue URLs) must work from the host: name the published address."""
        return {"LOCALSTACK_HOST": f"{host}:{host_ports['gateway']}"}

    def probe(self, endpoint: ServiceEndpoint) -> None:
        """Health first (each service enabled), then one API call per service: "available" in the health only says
        a service is enabled; its provider may still fail to load (SNS without moto answers 500)."""
        import urllib.request  # (when a start is probed: not in every pytest process that loads the plugin)

        with urllib.request.urlopen(endpoint.url + HEALTH_PATH, timeout=2) as response:
            services = json.load(response).get("services", {})
        missing = [name for name in self.ls.services if services.get(name) not in READY_STATES]
        if missing:
            raise ConnectionError(f"not yet available: {', '.join(missing)} ({services})")
        self.probe_calls(endpoint)

    def prepare(self, endpoint: ServiceEndpoint) -> ServiceEndpoint:
        """Seed the shared account (what `envmgr up` and session isolation use)."""
        load_aws_seeds(endpoint, Worker(), self.settings, self.clients)
        return endpoint

    def cleared_services(self) -> Sequence[str]:
        return cleared(self.ls)

    def reset(self, endpoint: ServiceEndpoint) -> None:
        """Every account emptied (the workers' too), then the shared account seeded again (on a given server: the
        environment's accounts only)."""
        if endpoint.extra.get("given"):
            reset_all(self, endpoint)
            return
        reset_account(endpoint, None, cleared(self.ls))
        load_aws_seeds(endpoint, Worker(), self.settings, self.clients)

    # per worker: its own AWS account ---------------------------------------------------------------------------

    def worker_setup(self, endpoint: ServiceEndpoint, worker: Worker) -> None:
        if worker.isolated:  # the shared account was seeded by prepare
            restore_account(endpoint, worker, self.settings, self.clients)

    def worker_reset(self, endpoint: ServiceEndpoint, worker: Worker) -> None:
        """The worker's account back to its seeded buckets, objects and queues (its topics gone): compared with the
        seeded state and only what differs repaired; emptied and seeded again when the seeds are a few objects
        (fewer calls), or when the repair fails (a versioned bucket that will not delete)."""
        if endpoint.extra.get("given"):
            reset_worker(self, endpoint, worker)
            return
        if self.few_seeds(endpoint, worker):
            restore_account(endpoint, worker, self.settings, self.clients)
            return
        try:
            self.repair(endpoint, worker)
            if "sns" in self.ls.services:
                sns = self.clients(endpoint, worker, "sns")
                if sns.list_topics().get("Topics"):  # a topic's subscriptions go with it
                    delete_through_api(endpoint, worker, ["sns"], self.clients)
        except Exception:  # botocore raises many types; the full reload is the answer to each
            restore_account(endpoint, worker, self.settings, self.clients)

    # compose ---------------------------------------------------------------------------------------------------

    def compose_healthcheck(self, endpoint: ServiceEndpoint, context: ComposeContext) -> list[str] | None:
        script = _HEALTH_SCRIPT.format(
            port=endpoint.internal_port, path=HEALTH_PATH, required=tuple(self.ls.services), ready=READY_STATES
        )
        return ["CMD", LOCALSTACK_PYTHON, "-c", context.text(script)]

    def compose_notes(self) -> list[str]:
        gate = (
            [
                "localstack: behind the access-key gate (its entrypoint): only requests naming the access key id in "
                "the seed job's AWS_ACCESS_KEY_ID pass"
            ]
            if self.aws.check_access_key
            else []
        )
        return [
            f"localstack: seeds/s3 and seeds/sqs.yaml are loaded by the one-shot `{SEED_JOB}` service (started by a "
            "plain `up`); LOCALSTACK_HOST names 127.0.0.1 and the port variable's value",
            *gate,
        ]
