"""Both AWS backends (LocalStack, moto) on real containers, behind the same fixtures: per-worker isolation, reset to the
seeds, SNS fanning out to SQS; and LocalStack running every service of its documented list."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import pytest

from envmgr import Environment, Settings
from envmgr.config import LOCALSTACK_SERVICES
from envmgr.endpoints import Endpoints, Worker
from envmgr.services.aws.accounts import aws_client
from tests.conftest import REPO

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]

BACKENDS = ["localstack", "moto"]
BACKEND_TABLES = {
    "localstack": '[tool.envmgr.localstack]\nenabled = true\nservices = ["s3", "sqs", "sns"]\n',
    "moto": '[tool.envmgr.aws]\nbackend = "moto"\n',
}


def backend_settings(settings: Settings, backend: str) -> Settings:
    """Bare settings with the repository's seeds, the AWS fixtures served by `backend` (with SNS)."""
    overrides: dict[str, object] = {"aws": {"backend": backend}, "seeds": str(REPO / "seeds")}
    if backend == "localstack":
        overrides["localstack"] = {"services": ["s3", "sqs", "sns"]}
    return Settings(**{**settings.model_dump(exclude={"aws", "localstack", "moto", "seeds"}), **overrides})


def bucket_names(client: object) -> list[str]:
    return sorted(b["Name"] for b in client.list_buckets()["Buckets"])  # type: ignore[attr-defined]


@pytest.fixture
def no_daemon(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The pytest runs below start their own environment (never lease one from a daemon running other code)."""
    monkeypatch.setenv("ENVMGR_DAEMON_SOCKET", str(tmp_path / "no-daemon.sock"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_workers_are_kept_apart_and_a_reset_restores_their_seeds(settings: Settings, backend: str) -> None:
    """Through the service's own hooks (what the fixtures call): LocalStack keeps workers apart by account, moto by
    a server each; resetting one worker's share leaves the other's alone."""
    configured = backend_settings(settings, backend)
    gw0, gw1 = Worker("gw0", isolated=True), Worker("gw1", isolated=True)
    with Environment([backend], settings=configured, workers=2) as env:
        service = env.service(backend)
        servers = {w.worker_id: env.endpoints.for_worker(w)[backend] for w in (gw0, gw1)}
        for worker in (gw0, gw1):
            service.worker_setup(servers[worker.worker_id], worker)
        s3_0, s3_1 = (aws_client(servers[w.worker_id], w, "s3") for w in (gw0, gw1))
        assert bucket_names(s3_0) == ["artwork-gw0"]
        assert bucket_names(s3_1) == ["artwork-gw1"]
        s3_1.put_object(Bucket="artwork-gw1", Key="new.png", Body=b"png")
        sqs_1 = aws_client(servers["gw1"], gw1, "sqs")
        url = sqs_1.get_queue_url(QueueName="deliveries")["QueueUrl"]
        assert f"127.0.0.1:{servers['gw1'].port}" in url, "queue URLs must work from the host"
        assert gw1.aws_account_id in url
        sqs_1.send_message(QueueUrl=url, MessageBody="hello")
        sqs_0 = aws_client(servers["gw0"], gw0, "sqs")
        url_0 = sqs_0.get_queue_url(QueueName="deliveries")["QueueUrl"]
        assert sqs_0.receive_message(QueueUrl=url_0, WaitTimeSeconds=0).get("Messages") is None

        service.worker_reset(servers["gw1"], gw1)
        keys = [o["Key"] for o in s3_1.list_objects_v2(Bucket="artwork-gw1")["Contents"]]
        assert keys == ["covers/placeholder.txt"], "the worker's account is back to its seeds"
        url = sqs_1.get_queue_url(QueueName="deliveries")["QueueUrl"]
        assert sqs_1.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages") is None
        assert bucket_names(s3_0) == ["artwork-gw0"], "resetting one worker must not touch another"


FIXTURE_TESTS = """
import os

import boto3

ME = os.environ.get("PYTEST_XDIST_WORKER", "main") + "-{tag}"


def test_1_leave_objects_messages_and_buckets_through_aws_env(aws_env):
    s3 = boto3.client("s3", endpoint_url=aws_env["AWS_ENDPOINT_URL"])
    s3.put_object(Bucket=aws_env["S3_BUCKET_ARTWORK"], Key="left/" + ME, Body=b"x")
    s3.create_bucket(Bucket="extra-" + ME.lower())
    sqs = boto3.client("sqs", endpoint_url=aws_env["AWS_ENDPOINT_URL"])
    sqs.send_message(QueueUrl=sqs.get_queue_url(QueueName="deliveries")["QueueUrl"], MessageBody=ME)


def test_2_the_account_is_back_to_its_seeds(s3_client, sqs_client, aws_env):
    assert [b["Name"] for b in s3_client.list_buckets()["Buckets"]] == [aws_env["S3_BUCKET_ARTWORK"]]
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=aws_env["S3_BUCKET_ARTWORK"])["Contents"]]
    assert keys == ["covers/placeholder.txt"]
    urls = sqs_client.list_queues()["QueueUrls"]
    assert sorted(url.rsplit("/", 1)[1] for url in urls) == ["deliveries", "deliveries-dlq"]
    url = sqs_client.get_queue_url(QueueName="deliveries")["QueueUrl"]
    assert sqs_client.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages") is None


def test_3_an_sns_topic_fans_out_to_an_sqs_queue(sns_client, sqs_client, aws_endpoint_url):
    queue = sqs_client.create_queue(QueueName="fan-out-" + ME)["QueueUrl"]
    arn = sqs_client.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic = sns_client.create_topic(Name="releases-" + ME)["TopicArn"]
    sns_client.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={{"RawMessageDelivery": "true"}})
    sns_client.publish(TopicArn=topic, Message="released " + ME)
    received = sqs_client.receive_message(QueueUrl=queue, WaitTimeSeconds=10).get("Messages", [])
    assert [message["Body"] for message in received] == ["released " + ME]


def test_4_no_topic_or_queue_of_an_earlier_test(sns_client, sqs_client):
    assert sns_client.list_topics()["Topics"] == []
    assert sns_client.list_subscriptions()["Subscriptions"] == []
    names = sorted(url.rsplit("/", 1)[1] for url in sqs_client.list_queues()["QueueUrls"])
    assert names == ["deliveries", "deliveries-dlq"]
"""


@pytest.mark.usefixtures("no_daemon")
@pytest.mark.parametrize(
    "xdist",
    # in one process: the same fixtures, on demand (CI time); the two workers also check that they are kept apart
    [
        pytest.param([], id="single-process", marks=pytest.mark.ondemand),
        pytest.param(["-n", "2", "--dist", "loadfile"], id="two-workers"),
    ],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_aws_fixtures_give_every_test_the_seeded_account(
    pytester: pytest.Pytester, backend: str, xdist: list[str]
) -> None:
    """aws_env, s3_client, sqs_client, sns_client: the same tests pass on either backend, in one process and in two
    workers (each file on its own worker: what one leaves behind, the next test of its worker must not see)."""
    table = f'[tool.envmgr]\nseeds = "{REPO / "seeds"}"\n\n{BACKEND_TABLES[backend]}'
    pytester.makefile(".toml", pyproject=f"[project]\nname = 'aws-{backend}'\n{table}")
    pytester.makepyfile(test_a=FIXTURE_TESTS.format(tag="a"), test_b=FIXTURE_TESTS.format(tag="b"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", *xdist)
    result.assert_outcomes(passed=8)


def test_localstack_runs_every_service_of_its_documented_list(settings: Settings) -> None:
    """`localstack.services` = the whole list: ready means each service answered its API call (health "running",
    i.e. its provider loaded), not merely "available"."""
    configured = settings.model_copy(
        update={"localstack": settings.localstack.model_copy(update={"services": list(LOCALSTACK_SERVICES)})}
    )
    with Environment(["localstack"], settings=configured) as env:
        url = env.endpoints["localstack"].url
        with urllib.request.urlopen(url + "/_localstack/health", timeout=5) as response:
            states = json.load(response)["services"]
        assert {name: states[name] for name in LOCALSTACK_SERVICES} == dict.fromkeys(LOCALSTACK_SERVICES, "running")


CALLBACK_TESTS = """
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests


def test_a_wiremock_webhook_reaches_the_test_s_own_server(wiremock, wiremock_url, envmgr_callback):
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    assert envmgr_callback.host == "host.docker.internal"
    server = ThreadingHTTPServer((envmgr_callback.bind, 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        wiremock.stub({{
            "request": {{"method": "POST", "url": "/payments"}},
            "response": {{"status": 202}},
            "serveEventListeners": [{{"name": "webhook", "parameters": {{
                "method": "POST",
                "url": envmgr_callback.url(server.server_port, "/paid"),
                "headers": {{"Content-Type": "application/json"}},
                "body": '{{"status": "paid"}}',
            }}}}],
        }})
        assert requests.post(wiremock_url + "/payments", timeout=5).status_code == 202
        deadline = time.monotonic() + 15
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert received == [("/paid", b'{{"status": "paid"}}')]
    finally:
        server.shutdown()
        server.server_close()
"""


@pytest.mark.usefixtures("no_daemon")
@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single-process", "two-workers"])
def test_a_wiremock_webhook_reaches_a_server_the_test_starts(pytester: pytest.Pytester, xdist: list[str]) -> None:
    pytester.makefile(".toml", pyproject="[project]\nname = 'callbacks'\n[tool.envmgr.wiremock]\nenabled = true\n")
    pytester.makepyfile(test_hooks=CALLBACK_TESTS.format())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *xdist)
    result.assert_outcomes(passed=1)


def test_every_container_knows_the_test_host_as_its_network_s_gateway(settings: Settings) -> None:
    """host.docker.internal is the gateway of the environment's own network (the address a callback server binds
    to), in every service's container."""
    with Environment(["postgres", "redis", "wiremock", "moto"], settings=settings) as env:
        callback = env.endpoints.callback
        assert callback is not None
        network = env.engine.client.networks.get(env.network_name)
        assert callback.bind == network.attrs["IPAM"]["Config"][0]["Gateway"]
        for endpoint in env.endpoints.all():
            container = env.engine.client.containers.get(endpoint.container)
            assert container.attrs["HostConfig"]["ExtraHosts"] == [f"host.docker.internal:{callback.bind}"]
        handle = Environment.attach(env.id, settings=settings)
        assert handle.endpoints.callback == callback, "a handle on a running environment knows it too"


def test_seeds_are_bad_on_moto_too(settings: Settings, tmp_path: Path) -> None:
    from envmgr import SeedError

    (tmp_path / "sqs.yaml").write_text("queues: deliveries\n")
    configured = Settings(**{**settings.model_dump(exclude={"seeds"}), "seeds": str(tmp_path)})
    with pytest.raises(SeedError, match=r"sqs.yaml"):
        Environment(["moto"], settings=configured).start()


def test_a_localstack_reset_empties_sns_topics_and_subscriptions(settings: Settings) -> None:
    """The local image resets in-process (its extension), the official one through the AWS API: either way the
    worker's topics and subscriptions are gone and only its seeded queues are left."""
    configured = backend_settings(settings, "localstack")
    gw0 = Worker("gw0", isolated=True)
    with Environment(["localstack"], settings=configured, workers=1) as env:
        server = env.endpoints["localstack"]
        sns, sqs = aws_client(server, gw0, "sns"), aws_client(server, gw0, "sqs")
        topic = sns.create_topic(Name="releases")["TopicArn"]
        queue = sqs.create_queue(QueueName="fan")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        env.service("localstack").worker_reset(server, gw0)
        assert sns.list_topics()["Topics"] == []
        assert sns.list_subscriptions()["Subscriptions"] == []
        assert sorted(url.rsplit("/", 1)[1] for url in sqs.list_queues()["QueueUrls"]) == [
            "deliveries",
            "deliveries-dlq",
        ]


@pytest.mark.usefixtures("no_daemon")
def test_envmgr_up_starts_moto_from_the_settings(pytester: pytest.Pytester) -> None:
    """`aws.backend = "moto"` alone enables moto: `envmgr up` starts it, seeds it and exports its variables."""
    table = f'[tool.envmgr]\nseeds = "{REPO / "seeds"}"\n[tool.envmgr.aws]\nbackend = "moto"\n' + "".join(
        f"[tool.envmgr.{name}]\nenabled = false\n" for name in ("postgres", "redis")
    )
    pytester.makefile(".toml", pyproject=f'[project]\nname = "m"\n{table}')
    result = pytester.run(sys.executable, "-m", "envmgr", "up", "--detach", "--json", "--env-file", "aws.env")
    assert result.ret == 0, result.stderr.str()
    endpoints = Endpoints.from_json(result.stdout.str())
    try:
        assert list(endpoints.services) == ["moto"]
        variables = (pytester.path / "aws.env").read_text()
        assert f"AWS_ENDPOINT_URL='{endpoints['moto'].url}'" in variables.splitlines()
        s3 = aws_client(endpoints["moto"], Worker(), "s3")
        assert bucket_names(s3) == ["artwork"]
    finally:
        down = pytester.run(sys.executable, "-m", "envmgr", "down", endpoints.id)
        assert down.ret == 0, down.stderr.str()
