"""moto (`moto_server`): every AWS service moto emulates, one server per xdist worker.

Isolation: moto takes the account of a request from `MOTO_ACCOUNT_ID`, an `x-moto-account-id` header or an access
key it issued itself (IAM, STS): a 12-digit access key id is *not* an account, as it is in LocalStack. An
application that reads the AWS_* variables sends none of the others, so accounts cannot keep workers apart here:
each worker gets its own server (a per-worker service, ~60 MiB), whose account is the worker's
(`MOTO_ACCOUNT_ID`, so ARNs and queue URLs name the same account as in LocalStack).

Reset: `POST /moto-api/reset` empties the server (every service, every account) and the seeds (seeds/s3,
seeds/sqs.yaml and the queues of the settings) are loaded again through cached clients, when they are a few objects
(`RELOAD_OBJECTS`). With more, when the server holds nothing beyond S3 and SQS (its data API, `/moto-api/data.json`,
one call), the worker's account is compared with its seeded state and only what differs is repaired
(`aws/state.py`); a test that used DynamoDB, SNS ... gets the full reload. Its port is the access-key gate's
(`aws/gate.py`): moto itself listens on 127.0.0.1:5001 inside the container.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import MappingProxyType

from envmgr.endpoints import SESSION_WORKER_ID, ServiceEndpoint, Worker
from envmgr.services.aws.accounts import gate_headers, load_aws_seeds
from envmgr.services.aws.backend import AwsService
from envmgr.services.aws.given import reset_all, reset_worker
from envmgr.services.base import ComposeContext, ContainerSpec, Published, ServiceDocs

__all__ = ["PROBED", "RESET_PATH", "MotoService", "other_services", "reset_server"]

PORT = 5000
RESET_PATH = "/moto-api/reset"
DATA_PATH = "/moto-api/data.json"
PROBED = ("s3", "sqs", "sns")
"""the services of the fixtures: each answers an API call before the server is ready"""
HTTP_TIMEOUT = 5
REPAIRED = frozenset({"s3", "sqs"})
"""the services whose state a reset repairs (compared with the seeded state); any other's makes a full reset"""
ALWAYS_THERE = frozenset({("iam", "AccountSummary")})
"""(service, model) instances moto's data API lists on a server nobody used"""


def reset_server(endpoint: ServiceEndpoint) -> None:
    """Empty the moto server: every service, every account."""
    import urllib.request  # (when a reset runs: not in every pytest process that loads the plugin)

    request = urllib.request.Request(endpoint.url + RESET_PATH, data=b"", method="POST", headers=gate_headers(endpoint))
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
        response.read()


def other_services(endpoint: ServiceEndpoint) -> set[str]:
    """The services other than S3 and SQS of which the moto server holds anything (its data API lists the instances
    of every model of every service it has loaded)."""
    import urllib.request

    request = urllib.request.Request(endpoint.url + DATA_PATH, headers=gate_headers(endpoint))
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
        models = json.load(response)
    return {
        service
        for service, instances in models.items()
        if service not in REPAIRED
        and any(found and (service, model) not in ALWAYS_THERE for model, found in instances.items())
    }


class MotoService(AwsService):
    name = "moto"
    official_image = "motoserver/moto:5.2.5"
    local_image = "envmgr-local/moto:5.2.5"
    build_name = "moto"
    ports = MappingProxyType({"http": PORT})
    aws_port = PORT
    per_worker = True
    probe_description = "S3 ListBuckets, SQS ListQueues and SNS ListTopics answer"
    docs = ServiceDocs(
        local_image="`moto[server]` from PyPI",
        ready="S3 `ListBuckets`, SQS `ListQueues`, SNS `ListTopics` answer",
        seeds="as LocalStack",
        isolation="its own moto server (moto does not take the access key as the account)",
        reset="`POST /moto-api/reset` and the seeds reloaded (~30 ms); with more than 3 seeded objects, compared with "
        "the seeded state and only what differs repaired (unless a test used another service)",
    )
    image_python = "/usr/local/bin/python"
    """the official image is python:*-alpine (its python in /usr/local/bin); the local one links its venv there"""
    seed_job = "moto-seed"

    def probed_services(self) -> Sequence[str]:
        return PROBED

    def served_worker(self, published: Published) -> Worker:
        """A replica serves one worker: its endpoint names that worker's account and buckets."""
        return published.worker

    def container_spec(self, requirements: dict[str, ServiceEndpoint], worker: Worker) -> ContainerSpec:
        env = {
            "MOTO_ACCOUNT_ID": worker.aws_account_id,
            "AWS_DEFAULT_REGION": self.aws.region,
            **self.aws.env,
        }
        spec = ContainerSpec(image=self.image(), ports=dict(self.ports), env=env)
        return self.gated(spec, ["/usr/local/bin/moto_server", "-H", "127.0.0.1", "-p", str(self.upstream_port)])

    def probe(self, endpoint: ServiceEndpoint) -> None:
        self.probe_calls(endpoint)

    def prepare(self, endpoint: ServiceEndpoint) -> ServiceEndpoint:
        """Seed the replica's own worker's account."""
        load_aws_seeds(endpoint, _served(endpoint), self.settings, self.clients)
        return endpoint

    issues_keys = True

    def reset(self, endpoint: ServiceEndpoint) -> None:
        """The replica emptied and seeded again (on a given server: the environment's accounts only)."""
        if endpoint.extra.get("given"):
            reset_all(self, endpoint)
            return
        reset_server(endpoint)
        load_aws_seeds(endpoint, _served(endpoint), self.settings, self.clients)

    def worker_reset(self, endpoint: ServiceEndpoint, worker: Worker) -> None:
        """The worker's own server back to its seeded state: its S3 and SQS repaired where the difference from the
        seeded state is all there is (no other service holds anything); else, or when the seeds are a few objects
        (fewer calls), emptied and seeded again. On a given server: the worker's account only (`aws/given.py`)."""
        if endpoint.extra.get("given"):
            reset_worker(self, endpoint, worker)
            return
        if self.few_seeds(endpoint, worker) or not self._repaired(endpoint, worker):
            self.reload(endpoint, worker)

    def worker_setup(self, endpoint: ServiceEndpoint, worker: Worker) -> None:
        """On a given server, the worker's account seeded (a replica of envmgr's own was seeded by prepare)."""
        if endpoint.extra.get("given") and worker.isolated:
            reset_worker(self, endpoint, worker)

    def _repaired(self, endpoint: ServiceEndpoint, worker: Worker) -> bool:
        """Whether the worker's S3 and SQS were repaired and nothing else holds state (False: reload instead)."""
        try:
            if other_services(endpoint):
                return False
            self.repair(endpoint, worker)
        except Exception:  # botocore raises many types; the full reload is the answer to each
            return False
        return True

    def reload(self, endpoint: ServiceEndpoint, worker: Worker) -> None:
        """The worker's server emptied (every service), its seeds loaded again: what a reset did before the repair."""
        reset_server(endpoint)
        load_aws_seeds(endpoint, worker, self.settings, self.clients)

    def compose_healthcheck(self, endpoint: ServiceEndpoint, context: ComposeContext) -> list[str] | None:
        """moto's own data API answers (the image's Python: the official image has curl, the local one not), asked
        inside the container behind the gate."""
        port = self.upstream_port if self.aws.check_access_key else PORT
        script = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}{DATA_PATH}', timeout=3)"
        return ["CMD", self.image_python, "-c", context.text(script)]

    def compose_notes(self) -> list[str]:
        gate = (
            [
                "moto: behind the access-key gate (its entrypoint): only requests naming the access key id in "
                "the seed job's AWS_ACCESS_KEY_ID pass"
            ]
            if self.aws.check_access_key
            else []
        )
        return [
            f"moto: seeds/s3 and seeds/sqs.yaml are loaded by the one-shot `{self.seed_job}` service (started by a "
            "plain `up`) into the session's account",
            *gate,
        ]


def _served(endpoint: ServiceEndpoint) -> Worker:
    """The worker a replica serves (as `endpoint` recorded it): an xdist worker in worker isolation, else `main`."""
    worker_id = endpoint.extra.get("worker", SESSION_WORKER_ID)
    return Worker(worker_id, isolated=worker_id != SESSION_WORKER_ID)
