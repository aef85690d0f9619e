"""An AWS emulator envmgr did not start (issue 21 part 1): `[tool.envmgr.moto] url` pointing at moto's own server
run as a plain process on 127.0.0.1 (`python -m moto.server`), Docker nowhere. Each xdist worker works in an account
of its own on the one server, every test starts from the seeded state, and nothing envmgr made is left there after
the run; what a killed run left is removed by `envmgr gc` and by the next run's start."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.conftest import REPO
from tests.integration.plain_servers import free_port, poll
from tests.integration.test_plugin import PROJECT_TABLE

MOTO_TABLE = PROJECT_TABLE + textwrap.dedent(
    """
    [tool.envmgr.postgres]
    enabled = false

    [tool.envmgr.redis]
    enabled = false

    [tool.envmgr.aws]
    backend = "moto"

    [tool.envmgr.moto]
    url = "${AWS_ENDPOINT_URL}"
    """
)
SEEDED_OBJECT = REPO / "seeds" / "s3" / "artwork" / "covers" / "placeholder.txt"

# Two files, one per worker (--dist loadfile): test 1 changes its account (an object, a bucket, a message, a queue),
# waits until the other worker has changed its own, checks it sees only its own, and keeps its changes until the
# other has checked too. Test 2 (the same worker, next test) finds exactly the seeded state.
ISOLATION = """
import os
import time
from pathlib import Path

ME = os.environ.get("PYTEST_XDIST_WORKER", "main")
OTHER = {{"gw0": "gw1", "gw1": "gw0"}}.get(ME, ME)
SHARED = Path({shared!r})
SEEDED = Path({seeded!r}).read_bytes()


def wait_for(path):
    deadline = time.monotonic() + 120
    while not path.exists():
        assert time.monotonic() < deadline, f"{{path}} never appeared"
        time.sleep(0.05)


def queues(sqs_client):
    return sorted(url.rsplit("/", 1)[-1] for url in sqs_client.list_queues().get("QueueUrls", []))


def messages(sqs_client, queue):
    attributes = sqs_client.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    return attributes["Attributes"]["ApproximateNumberOfMessages"]


def test_1_isolated_from_the_other_worker(s3_client, sqs_client, aws_env):
    bucket = aws_env["S3_BUCKET_ARTWORK"]
    assert bucket.endswith("-" + ME)
    s3_client.put_object(Bucket=bucket, Key="mine.txt", Body=ME.encode())
    s3_client.create_bucket(Bucket="extra-" + bucket)
    queue = sqs_client.get_queue_url(QueueName="deliveries")["QueueUrl"]
    sqs_client.send_message(QueueUrl=queue, MessageBody=ME)
    sqs_client.create_queue(QueueName="extra")
    (SHARED / (ME + ".written")).write_text(aws_env["AWS_ACCESS_KEY_ID"] + " " + queue)
    wait_for(SHARED / (OTHER + ".written"))
    assert sorted(b["Name"] for b in s3_client.list_buckets()["Buckets"]) == sorted([bucket, "extra-" + bucket])
    keys = sorted(o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["covers/placeholder.txt", "mine.txt"]
    assert queues(sqs_client) == ["deliveries", "deliveries-dlq", "extra"]
    assert messages(sqs_client, queue) == "1"
    (SHARED / (ME + ".checked")).touch()
    wait_for(SHARED / (OTHER + ".checked"))


def test_2_the_next_test_sees_the_seeded_state(s3_client, sqs_client, aws_env):
    bucket = aws_env["S3_BUCKET_ARTWORK"]
    assert [b["Name"] for b in s3_client.list_buckets()["Buckets"]] == [bucket]
    assert [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]] == ["covers/placeholder.txt"]
    assert s3_client.get_object(Bucket=bucket, Key="covers/placeholder.txt")["Body"].read() == SEEDED
    assert queues(sqs_client) == ["deliveries", "deliveries-dlq"]
    assert messages(sqs_client, sqs_client.get_queue_url(QueueName="deliveries")["QueueUrl"]) == "0"
"""

# A run that holds its environment until it is killed: it says which bucket it has, then waits.
HOLD = """
import time
from pathlib import Path


def test_hold(s3_client, aws_env):
    s3_client.put_object(Bucket=aws_env["S3_BUCKET_ARTWORK"], Key="left.txt", Body=b"behind")
    Path({marker!r}).write_text(aws_env["S3_BUCKET_ARTWORK"])
    time.sleep(3600)
"""


def _moto_python() -> str:
    """An interpreter that has moto's server (this one, or the system's python3)."""
    for candidate in (sys.executable, shutil.which("python3")):
        found = candidate and subprocess.run([candidate, "-c", "import moto.server"], capture_output=True, check=False)
        if candidate and found and found.returncode == 0:
            return candidate
    pytest.fail("no Python here has moto's server: pip install 'moto[server]'")


def bucket_account(env_id: str) -> str:
    """The session's account of environment `env_id` on a given server (envmgr.services.aws.given)."""
    return f"{int(hashlib.sha256(env_id.encode()).hexdigest(), 16) % 900_000_000 + 100_000_000}000"


class PlainMoto:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def client(self, service: str, key: str = "000000000000") -> Any:
        return boto3.client(
            service, endpoint_url=self.url, region_name="us-east-1", aws_access_key_id=key,
            aws_secret_access_key="test", config=Config(s3={"addressing_style": "path"}),
        )  # fmt: skip

    def account_client(self, account: str, service: str) -> Any:
        """A client in `account` (a key from moto's STS, as envmgr gets one)."""
        role = f"arn:aws:iam::{account}:role/check"
        key = self.client("sts").assume_role(RoleArn=role, RoleSessionName="check")["Credentials"]["AccessKeyId"]
        return self.client(service, key)

    def left_by(self, env_id: str, workers: int) -> list[str]:
        """Every bucket and queue in the environment's accounts, its buckets by name in any account, and its
        registration."""
        base = f"{int(hashlib.sha256(env_id.encode()).hexdigest(), 16) % 900_000_000 + 100_000_000}"
        left: list[str] = []
        for index in range(workers + 1):
            account = f"{base}{index:03d}"
            left += [b["Name"] for b in self.account_client(account, "s3").list_buckets().get("Buckets", [])]
            left += self.account_client(account, "sqs").list_queues().get("QueueUrls", [])
        for name in [f"artwork-{env_id}", *(f"artwork-{env_id}-gw{index}" for index in range(workers))]:
            try:
                self.client("s3").head_bucket(Bucket=name)
                left.append(name)
            except self.client("s3").exceptions.ClientError:
                pass
        registry = [b["Name"] for b in self.client("s3").list_buckets().get("Buckets", [])]
        return left + [f"registry bucket {name}" for name in registry if name == "envmgr-runs"]


@pytest.fixture(scope="module")
def moto_server() -> Iterator[PlainMoto]:
    port = free_port()
    process = subprocess.Popen(
        [_moto_python(), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        server = PlainMoto(port)
        poll(lambda: server.client("s3").list_buckets(), "moto's server answering")
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture
def given_moto(moto_server: PlainMoto, monkeypatch: pytest.MonkeyPatch) -> PlainMoto:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    return moto_server


def project(pytester: pytest.Pytester, **files: str) -> None:
    pytester.makefile(".toml", pyproject=f"[project]\nname = 'given-aws'\n{MOTO_TABLE}")
    pytester.makepyfile(**files)


def test_a_suite_on_a_given_moto_isolates_two_workers_and_leaves_nothing(
    pytester: pytest.Pytester, given_moto: PlainMoto
) -> None:
    shared = pytester.path / "shared"
    shared.mkdir()
    isolation = ISOLATION.format(shared=str(shared), seeded=str(SEEDED_OBJECT))
    project(pytester, test_a=isolation, test_b=isolation)
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-n", "2", "--dist", "loadfile", "--envmgr-report", "report.html"
    )  # fmt: skip
    result.assert_outcomes(passed=4)
    report = json.loads((pytester.path / "report.json").read_text())
    assert set(report["given"]) == {"moto"}
    written = {path.stem: path.read_text().split() for path in shared.glob("*.written")}
    assert set(written) == {"gw0", "gw1"}
    (key0, queue0), (key1, queue1) = written["gw0"], written["gw1"]
    assert key0 != key1
    assert queue0.split("/")[-2] != queue1.split("/")[-2]  # the accounts in the queue URLs
    assert given_moto.left_by(report["environment"], workers=2) == []


def test_what_a_killed_run_left_on_a_given_moto_is_removed_by_gc_and_by_the_next_run(
    pytester: pytest.Pytester, given_moto: PlainMoto
) -> None:
    marker = pytester.path / "held"
    project(pytester, test_hold=HOLD.format(marker=str(marker)))

    def killed_run() -> str:
        process = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:randomly"],
            cwd=pytester.path, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            poll(lambda: marker.read_text().strip() or None, "the held run's bucket", deadline=120)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        bucket = marker.read_text().strip()
        marker.unlink()
        return bucket

    bucket = killed_run()
    env_id = bucket.split("-")[1]  # artwork-<id>
    assert given_moto.left_by(env_id, workers=0), "the killed run's bucket, queues and registration are there"
    gc = subprocess.run(
        [sys.executable, "-m", "envmgr", "gc"], cwd=pytester.path, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert gc.returncode == 0, gc.stderr
    said = " ".join(gc.stderr.split())  # the console wraps long lines
    assert f"removed moto account {bucket_account(env_id)}: bucket {bucket} (2 objects) (environment {env_id})" in said
    assert f"queue deliveries (environment {env_id})" in said, said
    assert given_moto.left_by(env_id, workers=0) == []

    bucket = killed_run()
    env_id = bucket.split("-")[1]
    assert given_moto.left_by(env_id, workers=0)
    pytester.makepyfile(test_hold="def test_nothing(aws_env):\n    pass\n")
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=1)
    assert given_moto.left_by(env_id, workers=0) == []


def test_a_reset_on_a_given_moto_repairs_only_what_changed_in_the_workers_account(
    given_moto: PlainMoto, tmp_path: Path
) -> None:
    """With more seeded objects than a reload is worth (aws.backend.RELOAD_OBJECTS), the worker's reset puts back
    the one changed object and deletes the added one, and leaves the other worker's account alone."""
    from envmgr import Environment, Settings, Worker
    from envmgr.services.aws.accounts import aws_client

    for index in range(5):
        (tmp_path / "seeds" / "s3" / "media" / f"{index}.txt").parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "seeds" / "s3" / "media" / f"{index}.txt").write_text(f"seeded {index}")
    (tmp_path / "seeds" / "sqs.yaml").write_text("queues: [jobs]\n")
    settings = Settings(
        project_root=tmp_path, seeds=str(tmp_path / "seeds"), aws={"backend": "moto"},
        moto={"enabled": True, "url": "${AWS_ENDPOINT_URL}"}, postgres={"enabled": False}, redis={"enabled": False},
    )  # fmt: skip
    gw0, gw1 = Worker("gw0", isolated=True), Worker("gw1", isolated=True)
    with Environment(settings=settings, workers=2) as env:
        endpoint, moto = env.endpoints["moto"], env.service("moto")
        for worker in (gw0, gw1):
            moto.worker_setup(endpoint, worker)
        bucket = f"media-{env.id}-gw1"
        s3 = aws_client(endpoint, gw1, "s3")
        s3.put_object(Bucket=bucket, Key="2.txt", Body=b"changed")
        s3.put_object(Bucket=bucket, Key="added.txt", Body=b"new")
        aws_client(endpoint, gw0, "s3").put_object(Bucket=f"media-{env.id}-gw0", Key="other.txt", Body=b"gw0's")
        puts: list[str] = []
        moto.clients(endpoint, gw1, "s3").meta.events.register(
            "before-call.s3.PutObject", lambda params, **_: puts.append(params["url_path"])
        )
        moto.worker_reset(endpoint, gw1)
        assert len(puts) == 1, puts  # the changed object only: a reload would put all 5
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
        assert keys == [f"{index}.txt" for index in range(5)]
        assert s3.get_object(Bucket=bucket, Key="2.txt")["Body"].read() == b"seeded 2"
        other = aws_client(endpoint, gw0, "s3").list_objects_v2(Bucket=f"media-{env.id}-gw0")["Contents"]
        assert "other.txt" in [o["Key"] for o in other]  # another worker's account is untouched
        env_id = env.id
    assert given_moto.left_by(env_id, workers=2) == []
