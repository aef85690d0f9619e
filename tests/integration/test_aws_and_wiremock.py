"""LocalStack and WireMock on real containers: readiness, seeds, per-worker isolation, reset, faults."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from envmgr import Environment, Settings
from envmgr.endpoints import Worker
from envmgr.services.aws.accounts import aws_client, load_aws_seeds
from envmgr.services.localstack.accounts import reset_account
from envmgr.services.wiremock.admin import WireMockAdmin
from tests.conftest import REPO

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]

OK_COMPUTER = "/ws/2/release/b1392450-e666-3926-a536-22c65f834433"


@pytest.fixture
def seeded(settings: Settings) -> Settings:
    """Bare settings plus the repository's seeds (s3/, sqs.yaml, wiremock/)."""
    return settings.model_copy(update={"seeds": REPO / "seeds"})


def bucket_names(client: object) -> list[str]:
    return sorted(b["Name"] for b in client.list_buckets()["Buckets"])  # type: ignore[attr-defined]


def test_localstack_accounts_keep_workers_apart_and_reset_restores_seeds(seeded: Settings) -> None:
    gw0, gw1 = Worker("gw0", isolated=True), Worker("gw1", isolated=True)
    with Environment(["localstack"], settings=seeded, workers=2) as env:
        endpoint = env.endpoints["localstack"]
        for worker in (gw0, gw1):
            load_aws_seeds(endpoint, worker, seeded)
        s3_0, s3_1 = aws_client(endpoint, gw0, "s3"), aws_client(endpoint, gw1, "s3")
        assert bucket_names(s3_0) == ["artwork-gw0"]
        assert bucket_names(s3_1) == ["artwork-gw1"]
        s3_1.put_object(Bucket="artwork-gw1", Key="new.png", Body=b"png")
        sqs_1 = aws_client(endpoint, gw1, "sqs")
        url = sqs_1.get_queue_url(QueueName="deliveries")["QueueUrl"]
        assert f"127.0.0.1:{endpoint.port}" in url, "queue URLs must work from the host"
        sqs_1.send_message(QueueUrl=url, MessageBody="hello")
        sqs_0 = aws_client(endpoint, gw0, "sqs")
        url_0 = sqs_0.get_queue_url(QueueName="deliveries")["QueueUrl"]
        assert sqs_0.receive_message(QueueUrl=url_0, WaitTimeSeconds=0).get("Messages") is None

        reset_account(endpoint, gw1)
        assert bucket_names(s3_1) == []
        assert bucket_names(s3_0) == ["artwork-gw0"], "resetting one account must not touch another"
        load_aws_seeds(endpoint, gw1, seeded)
        keys = [o["Key"] for o in s3_1.list_objects_v2(Bucket="artwork-gw1")["Contents"]]
        assert keys == ["covers/placeholder.txt"]


def test_wiremock_replicas_are_isolated_and_reset_to_the_seeded_stubs(seeded: Settings) -> None:
    with Environment(["wiremock"], settings=seeded, workers=2) as env:
        first = env.endpoints.for_worker(Worker("gw0", isolated=True))["wiremock"]
        second = env.endpoints.for_worker(Worker("gw1", isolated=True))["wiremock"]
        assert first.container != second.container
        for endpoint in (first, second):
            assert requests.get(endpoint.url + OK_COMPUTER, timeout=5).json()["title"] == "OK Computer"
        admin = WireMockAdmin.of(first)  # logged in: the admin API asks for the environment's login
        admin.stub({"request": {"method": "GET", "url": "/teapot"}, "response": {"status": 418}})
        assert requests.get(first.url + "/teapot", timeout=5).status_code == 418
        assert requests.get(second.url + "/teapot", timeout=5).status_code == 404
        assert admin.count({"method": "GET", "url": "/teapot"}) == 1
        assert WireMockAdmin.of(second).count({"method": "GET", "url": "/teapot"}) == 1, "its own 404 only"
        admin.reset()
        assert requests.get(first.url + "/teapot", timeout=5).status_code == 404
        assert admin.count({"method": "GET", "url": "/teapot"}) == 1, "journal emptied, then the request above"
        assert requests.get(first.url + OK_COMPUTER, timeout=5).status_code == 200


def test_wiremock_delays_and_faults(seeded: Settings) -> None:
    with Environment(["wiremock"], settings=seeded) as env:
        url = env.endpoints["wiremock"].url
        admin = WireMockAdmin.of(env.endpoints["wiremock"])
        admin.set_global_delay(1500)
        with pytest.raises(requests.Timeout):
            requests.get(url + OK_COMPUTER, timeout=0.5)
        admin.reset()
        started = time.monotonic()
        assert requests.get(url + OK_COMPUTER, timeout=5).status_code == 200
        assert time.monotonic() - started < 1.5, "reset removes the global delay"
        admin.fault("GET", "/ws/2/release/broken")
        with pytest.raises(requests.ConnectionError):
            requests.get(url + "/ws/2/release/broken", timeout=5)


def test_bad_sqs_seed_file_is_a_seed_error(settings: Settings, tmp_path: Path) -> None:
    from envmgr import SeedError

    (tmp_path / "sqs.yaml").write_text("queues: deliveries\n")
    env = Environment(["localstack"], settings=settings.model_copy(update={"seeds": tmp_path}))
    with pytest.raises(SeedError, match=r"sqs.yaml"):
        env.start()
