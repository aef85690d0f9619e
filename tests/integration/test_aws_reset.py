"""The per-test reset of an AWS account repairs only what differs from the seeded state (issue 20, "Reset only what
changed"), and the next test still finds exactly the seeded state: after a test deleted, added or changed an object,
created a bucket, left messages, purged, changed or deleted a queue (moto; LocalStack for one run)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from envmgr import Environment, Settings
from envmgr.endpoints import Worker
from envmgr.services.aws.accounts import aws_client
from envmgr.services.aws.backend import RELOAD_OBJECTS, AwsService
from tests.conftest import REPO

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]

SEED_FILE = REPO / "seeds" / "s3" / "artwork" / "covers" / "placeholder.txt"

DIRTY_THEN_CHECK = """
import boto3
import pytest

SEEDED = {seeded!r}


def clients(aws_env):
    return (boto3.client("s3", endpoint_url=aws_env["AWS_ENDPOINT_URL"]),
            boto3.client("sqs", endpoint_url=aws_env["AWS_ENDPOINT_URL"]))


def url(sqs, name):
    return sqs.get_queue_url(QueueName=name)["QueueUrl"]


def dirty_delete_object(s3, sqs, bucket):
    s3.delete_object(Bucket=bucket, Key="covers/placeholder.txt")

def dirty_add_object(s3, sqs, bucket):
    s3.put_object(Bucket=bucket, Key="covers/new.txt", Body=b"new")

def dirty_change_object(s3, sqs, bucket):
    s3.put_object(Bucket=bucket, Key="covers/placeholder.txt", Body=b"changed")

def dirty_new_bucket(s3, sqs, bucket):
    s3.create_bucket(Bucket=bucket + "-more")
    s3.put_object(Bucket=bucket + "-more", Key="k", Body=b"v")

def dirty_delete_bucket(s3, sqs, bucket):
    for item in s3.list_objects_v2(Bucket=bucket)["Contents"]:
        s3.delete_object(Bucket=bucket, Key=item["Key"])
    s3.delete_bucket(Bucket=bucket)

def dirty_leave_messages(s3, sqs, bucket):
    sqs.send_message(QueueUrl=url(sqs, "deliveries"), MessageBody="left")
    sqs.send_message(QueueUrl=url(sqs, "deliveries"), MessageBody="in flight")
    sqs.receive_message(QueueUrl=url(sqs, "deliveries"), MaxNumberOfMessages=1, VisibilityTimeout=300)
    sqs.send_message(QueueUrl=url(sqs, "deliveries-dlq"), MessageBody="later", DelaySeconds=300)

def dirty_purge_queue(s3, sqs, bucket):
    sqs.send_message(QueueUrl=url(sqs, "deliveries"), MessageBody="x")
    sqs.purge_queue(QueueUrl=url(sqs, "deliveries"))
    sqs.send_message(QueueUrl=url(sqs, "deliveries"), MessageBody="after the purge")

def dirty_queue_attributes(s3, sqs, bucket):
    sqs.set_queue_attributes(QueueUrl=url(sqs, "deliveries"), Attributes={{"VisibilityTimeout": "7"}})

def dirty_delete_queue_and_add_one(s3, sqs, bucket):
    sqs.delete_queue(QueueUrl=url(sqs, "deliveries-dlq"))
    sqs.create_queue(QueueName="extra")


DIRTY = [dirty_delete_object, dirty_add_object, dirty_change_object, dirty_new_bucket, dirty_delete_bucket,
         dirty_leave_messages, dirty_purge_queue, dirty_queue_attributes, dirty_delete_queue_and_add_one]
CASES = [step for dirty in DIRTY for step in (("dirty", dirty), ("check", dirty))]


@pytest.mark.parametrize("step, dirty", CASES, ids=[f"{{n}}-{{s}}-{{d.__name__}}" for n, (s, d) in enumerate(CASES)])
def test_case(aws_env, step, dirty):
    s3, sqs = clients(aws_env)
    bucket = aws_env["S3_BUCKET_ARTWORK"]
    if step == "dirty":
        dirty(s3, sqs, bucket)
        return
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [bucket]
    objects = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert {{o["Key"]: o["ETag"] for o in objects}} == SEEDED
    names = sorted(u.rsplit("/", 1)[1] for u in sqs.list_queues()["QueueUrls"])
    assert names == ["deliveries", "deliveries-dlq"]
    for name in names:
        attributes = sqs.get_queue_attributes(QueueUrl=url(sqs, name), AttributeNames=["All"])["Attributes"]
        assert attributes["VisibilityTimeout"] == "30"
        counts = [attributes[k] for k in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                                          "ApproximateNumberOfMessagesDelayed")]
        assert counts == ["0", "0", "0"], (name, counts)
"""


def etag(data: bytes) -> str:
    return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'


def seeds_folder(folder: Path, extra: int) -> tuple[Path, dict[str, str]]:
    """A copy of the repository's seeds whose bucket holds `extra` more objects (beyond RELOAD_OBJECTS, a reset
    compares and repairs instead of reloading), and the seeded objects' ETags."""
    seeds = folder / "seeds"
    shutil.copytree(REPO / "seeds", seeds)
    for number in range(extra):
        (seeds / "s3" / "artwork" / "covers" / f"cover-{number}.txt").write_bytes(b"cover %d" % number)
    bucket = seeds / "s3" / "artwork"
    return seeds, {p.relative_to(bucket).as_posix(): etag(p.read_bytes()) for p in bucket.rglob("*") if p.is_file()}


@pytest.fixture
def no_daemon(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ENVMGR_DAEMON_SOCKET", str(tmp_path / "no-daemon.sock"))


MOTO = '[tool.envmgr.aws]\nbackend = "moto"\n'
LOCALSTACK = '[tool.envmgr.localstack]\nenabled = true\nservices = ["s3", "sqs"]\n'


@pytest.mark.usefixtures("no_daemon")
@pytest.mark.parametrize(
    ("table", "extra", "xdist"),
    [
        pytest.param(MOTO, 0, [], id="moto-reload", marks=pytest.mark.ondemand),  # the reload is backend-agnostic
        pytest.param(MOTO, RELOAD_OBJECTS, [], id="moto-repair"),
        pytest.param(LOCALSTACK, RELOAD_OBJECTS, ["-n", "2", "--dist", "loadfile"], id="localstack-repair-2-workers"),
    ],
)
def test_after_each_kind_of_change_the_next_test_finds_exactly_the_seeded_state(
    pytester: pytest.Pytester, table: str, extra: int, xdist: list[str]
) -> None:
    """Raw `aws_env` tests change the account every way a test can through S3 and SQS; the test after each finds
    the seeded bucket, objects (their ETags), queues (default attributes, no message visible, in flight or
    delayed). With the repository's seeds (one object) a reset reloads them; with more, it repairs the difference.
    LocalStack: two workers' accounts on one server at once (a repair never deletes the other's buckets)."""
    seeds, seeded = seeds_folder(pytester.path, extra)
    pyproject = f"[project]\nname = 'aws-reset'\n[tool.envmgr]\nseeds = \"{seeds}\"\n{table}"
    pytester.makefile(".toml", pyproject=pyproject)
    tests = DIRTY_THEN_CHECK.format(seeded=seeded)
    files = {"test_dirty": tests, "test_dirty_too": tests} if xdist else {"test_dirty": tests}
    pytester.makepyfile(**files)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", *xdist)
    result.assert_outcomes(passed=18 * len(files))


def moto_settings(settings: Settings, seeds: Path) -> Settings:
    overrides: dict[str, object] = {"aws": {"backend": "moto"}, "seeds": str(seeds)}
    return Settings(**{**settings.model_dump(exclude={"aws", "moto", "seeds"}), **overrides})


def test_a_reset_repairs_only_what_changed_and_a_full_reload_follows_other_services(
    settings: Settings, tmp_path: Path
) -> None:
    """Through the service's hooks: an untouched account is left as it is (once the first repair has learnt the
    emulator's default queue attributes); one changed object is the only one put
    back; a DynamoDB table (a service the repair does not compare) makes the reset empty the whole server."""
    seeds, _ = seeds_folder(tmp_path, RELOAD_OBJECTS)
    configured = moto_settings(settings, seeds)
    with Environment(["moto"], settings=configured) as env:
        endpoint, worker = env.endpoints["moto"], Worker()
        service = env.service("moto")
        assert isinstance(service, AwsService)
        learnt = service.repair(endpoint, worker)  # a queue made again: the emulator's default attributes learnt
        assert (learnt.buckets, learnt.objects, len(learnt.queues)) == ([], [], 1)
        assert not service.repair(endpoint, worker).changed
        s3 = aws_client(endpoint, worker, "s3")
        s3.put_object(Bucket="artwork", Key="covers/placeholder.txt", Body=b"changed")
        s3.put_object(Bucket="artwork", Key="extra.txt", Body=b"x")
        repaired = service.repair(endpoint, worker)
        assert (repaired.buckets, sorted(repaired.objects), repaired.queues) == (
            [],
            ["artwork/covers/placeholder.txt", "artwork/extra.txt"],
            [],
        )
        assert s3.get_object(Bucket="artwork", Key="covers/placeholder.txt")["Body"].read() == SEED_FILE.read_bytes()

        dynamodb = aws_client(endpoint, worker, "dynamodb")
        dynamodb.create_table(
            TableName="left", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        )  # fmt: skip
        service.worker_reset(endpoint, worker)
        assert dynamodb.list_tables()["TableNames"] == []
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="artwork")["Contents"]]
        assert len(keys) == RELOAD_OBJECTS + 1
        assert "extra.txt" not in keys
