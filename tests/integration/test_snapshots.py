"""Named snapshots across services (issue 21 part 3): `envmgr_env.snapshot(name)` / `restore(name)` for a worker's
share of Postgres, Redis, the AWS account (moto) and WireMock; per worker (-n 2); the baseline pattern (a session
fixture builds a state once, every test starts from it); an unknown name; the snapshot databases swept."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import psycopg
import pytest

from envmgr import Environment, Settings
from envmgr.engine.connection import Engine
from envmgr.errors import EnvmgrError, SnapshotError
from tests.conftest import REPO
from tests.integration.test_plugin import PROJECT_TABLE

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]

TABLE = PROJECT_TABLE + textwrap.dedent(
    """
    [tool.envmgr.wiremock]
    enabled = true

    [tool.envmgr.celery]
    enabled = false
    """
)
AWS_TABLES = {
    "moto": '[tool.envmgr.aws]\nbackend = "moto"\n',
    "localstack": '[tool.envmgr.localstack]\nenabled = true\nservices = ["s3", "sqs"]\n',
}

CONFTEST = '''
import os
import time
from pathlib import Path

import boto3
import psycopg
import pytest
import requests

SYNC = Path({sync!r})


def signal(name):
    (SYNC / name).write_text("")


def wait_for(name, deadline=120):
    end = time.monotonic() + deadline
    while not (SYNC / name).exists():
        assert time.monotonic() < end, f"{{name}} never came"
        time.sleep(0.05)


def users(url):
    with psycopg.connect(url, autocommit=True) as connection:
        return {{row[0] for row in connection.execute("SELECT email FROM users")}}


def add_user(url, email):
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("INSERT INTO users (email, name) VALUES (%s, 'x')", (email,))


def clients(aws_env):
    return (boto3.client("s3", endpoint_url=aws_env["AWS_ENDPOINT_URL"]),
            boto3.client("sqs", endpoint_url=aws_env["AWS_ENDPOINT_URL"]))


def keys(s3, bucket):
    return {{o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}}


def messages(sqs, name):
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    return sorted(m["Body"] for m in found)


def status(wiremock_url, path):
    return requests.get(wiremock_url + path, timeout=5).status_code


@pytest.fixture(scope="session")
def signed_up(envmgr_env, postgres_url, redis_url):
    """The baseline pattern: an expensive state built once per worker, every later test starts from it."""
    import redis

    envmgr_env.reset(["postgres", "redis"])  # from the seeded state, whatever ran before on this worker
    add_user(postgres_url, "signed-up@example.com")
    redis.Redis.from_url(redis_url).set("session:signed-up", "yes")
    envmgr_env.snapshot("after_signup", ["postgres", "redis"])
    envmgr_env.use_baseline("after_signup")
    return "signed-up@example.com"
'''

TESTS = """
import pytest

from conftest import (add_user, clients, keys, messages, signal, status, users, wait_for)

TAG = "{tag}"
OTHER = "{other}"


def test_1_state_written_after_the_snapshot_is_gone_after_restore(
    envmgr_env, postgres_url, redis_client, aws_env, wiremock, wiremock_url
):
    s3, sqs = clients(aws_env)
    bucket = aws_env["S3_BUCKET_ARTWORK"]
    seeded_objects = keys(s3, bucket)
    deliveries = sqs.get_queue_url(QueueName="deliveries")["QueueUrl"]
    add_user(postgres_url, f"before-{{TAG}}@example.com")
    redis_client.set("kept", "before")
    redis_client.set("expiring", "x", ex=1000)
    s3.put_object(Bucket=bucket, Key="before.txt", Body=b"before")
    sqs.send_message(QueueUrl=deliveries, MessageBody="before")
    wiremock.stub({{"request": {{"method": "GET", "url": "/before"}}, "response": {{"status": 200}}}})
    envmgr_env.snapshot("s1")

    add_user(postgres_url, f"after-{{TAG}}@example.com")
    redis_client.set("kept", "after")
    redis_client.set("new", "after")
    s3.put_object(Bucket=bucket, Key="after.txt", Body=b"after")
    s3.delete_object(Bucket=bucket, Key="before.txt")
    s3.create_bucket(Bucket="after-" + TAG)
    sqs.send_message(QueueUrl=deliveries, MessageBody="after")
    sqs.create_queue(QueueName="after-" + TAG)
    wiremock.stub({{"request": {{"method": "GET", "url": "/after"}}, "response": {{"status": 200}}}})
    wiremock.replace_stubs([])  # the seeded stubs and /before gone too

    envmgr_env.restore("s1")

    emails = users(postgres_url)
    assert f"before-{{TAG}}@example.com" in emails and f"after-{{TAG}}@example.com" not in emails
    assert redis_client.get("kept") == b"before" and redis_client.get("new") is None
    assert 0 < redis_client.ttl("expiring") <= 1000
    assert keys(s3, bucket) == {{**seeded_objects, "before.txt": b"before"}}
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [bucket]
    assert messages(sqs, "deliveries") == ["before"]
    assert sorted(u.rsplit("/", 1)[1] for u in sqs.list_queues()["QueueUrls"]) == ["deliveries", "deliveries-dlq"]
    assert (status(wiremock_url, "/before"), status(wiremock_url, "/after")) == (200, 404)
    assert status(wiremock_url, "/ws/2/release/b1392450-e666-3926-a536-22c65f834433") == 200  # a seeded stub


def test_2_an_unknown_snapshot_names_the_known_ones(envmgr_env):
    from envmgr import SnapshotError

    with pytest.raises(SnapshotError) as raised:
        envmgr_env.restore("nope")
    assert raised.value.cause == "no snapshot named 'nope' in this worker (taken: 's1')"


def test_3_a_restore_never_touches_the_other_worker(envmgr_env, postgres_url, redis_client, aws_env, wiremock,
                                                    wiremock_url):
    s3, sqs = clients(aws_env)
    bucket = aws_env["S3_BUCKET_ARTWORK"]
    add_user(postgres_url, f"own-{{TAG}}@example.com")
    redis_client.set("own", TAG)
    s3.put_object(Bucket=bucket, Key="own.txt", Body=TAG.encode())
    wiremock.stub({{"request": {{"method": "GET", "url": "/own"}}, "response": {{"status": 200}}}})
    envmgr_env.snapshot("iso")
    add_user(postgres_url, f"later-{{TAG}}@example.com")
    redis_client.set("later", TAG)
    signal("snapshotted-" + TAG)
    wait_for("snapshotted-" + OTHER)
    envmgr_env.restore("iso")
    signal("restored-" + TAG)
    wait_for("restored-" + OTHER)  # the other worker has restored its own snapshot too, meanwhile
    emails = users(postgres_url)
    assert f"own-{{TAG}}@example.com" in emails and f"later-{{TAG}}@example.com" not in emails
    assert not {{f"own-{{OTHER}}@example.com", f"later-{{OTHER}}@example.com"}} & emails
    assert (redis_client.get("own"), redis_client.get("later")) == (TAG.encode(), None)
    assert keys(s3, bucket)["own.txt"] == TAG.encode()
    assert status(wiremock_url, "/own") == 200


def test_4_the_baseline_is_every_test_s_start(signed_up, postgres_url, redis_client):
    assert signed_up in users(postgres_url)
    assert redis_client.get("session:signed-up") == b"yes"
    add_user(postgres_url, "dirt@example.com")
    redis_client.set("dirt", "x")


def test_5_what_a_test_did_on_the_baseline_is_gone(signed_up, postgres_url, redis_client):
    emails = users(postgres_url)
    assert signed_up in emails and "dirt@example.com" not in emails
    assert redis_client.get("session:signed-up") == b"yes" and redis_client.get("dirt") is None
    redis_client.delete("session:signed-up")


def test_6_still_the_baseline_after_a_clean_fixture_emptied_redis(signed_up, postgres_url, redis_client):
    assert redis_client.get("session:signed-up") == b"yes"
"""


@pytest.fixture
def no_daemon(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ENVMGR_DAEMON_SOCKET", str(tmp_path / "no-daemon.sock"))


@pytest.mark.usefixtures("no_daemon")
@pytest.mark.parametrize(
    "backend",
    # moto: the same snapshot code (services/aws/state.py) as LocalStack, on demand (CI time)
    [pytest.param("moto", marks=pytest.mark.ondemand), "localstack"],
)
def test_snapshots_per_service_per_worker_and_as_a_baseline(pytester: pytest.Pytester, backend: str) -> None:
    """Two files on two workers (`--dist loadfile`), at the same time: each snapshots and restores its own share of
    Postgres, Redis, the AWS account and WireMock (state written after the snapshot is gone, state before it back);
    neither restore touches the other worker's (they wait for each other between the steps; LocalStack: both
    accounts on one server); a session fixture's snapshot is the baseline every later test of the worker starts
    from; an unknown name names those there are."""
    sync = pytester.path / "sync"
    sync.mkdir()
    pytester.makefile(".toml", pyproject=f"[project]\nname = 'snapshots'\n{TABLE}\n{AWS_TABLES[backend]}")
    pytester.makeconftest(CONFTEST.format(sync=str(sync)))
    pytester.makepyfile(test_a=TESTS.format(tag="a", other="b"), test_b=TESTS.format(tag="b", other="a"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", "-n", "2", "--dist",
                                           "loadfile")  # fmt: skip
    result.assert_outcomes(passed=12)


def test_snapshot_databases_are_dropped_by_the_environment_s_reset(settings: Settings) -> None:
    """`<database>_snap_<name>` lives under the environment's database prefix: resetting the environment (what a
    sweep and a warm environment's lease do) drops it, and `drop_snapshot` drops it at once. A snapshot that fails
    part-way keeps nothing."""
    configured = Settings(**{**settings.model_dump(), "alembic_ini": str(REPO / "tests/example_app/alembic.ini"),
                             "seeds": str(REPO / "seeds")})  # fmt: skip
    with Environment(["postgres"], settings=configured) as env:
        admin = env.endpoints["postgres"].with_path("postgres").url

        def databases() -> set[str]:
            with psycopg.connect(admin, autocommit=True) as connection:
                return {str(row[0]) for row in connection.execute("SELECT datname FROM pg_database")}

        env.snapshot("one")
        env.snapshot("two")
        assert {"app_snap_one", "app_snap_two"} <= databases()
        env.drop_snapshot("one")
        assert "app_snap_one" not in databases()
        env.reset()
        assert "app_snap_two" not in databases()
        with pytest.raises(SnapshotError, match="no snapshot named 'one' in this worker \\(taken: 'two'\\)"):
            env.restore("one")
        with pytest.raises(EnvmgrError, match="redis"):  # not in this environment: no half snapshot is kept
            env.snapshot("half", ["postgres", "redis"])
        assert "app_snap_half" not in databases()
        with pytest.raises(SnapshotError, match="taken: 'two'"):
            env.restore("half")


@pytest.mark.usefixtures("no_daemon")
def test_a_run_leaves_no_snapshot_behind(pytester: pytest.Pytester, engine: Engine) -> None:
    """Snapshots are dropped at the end of each worker's session: a kept environment (`--envmgr-keep`) holds no
    `_snap_` database after a run whose two workers took some."""
    pytester.makefile(".toml", pyproject=f"[project]\nname = 'snapshots-end'\n{PROJECT_TABLE}")
    pytester.makepyfile(
        test_a="def test_a(envmgr_env, postgres_url):\n    envmgr_env.snapshot('end-a')\n",
        test_b="def test_b(envmgr_env, postgres_url):\n    envmgr_env.snapshot('end-b')\n",
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--envmgr-keep")
    result.assert_outcomes(passed=2)
    env_id = re.search(r"envmgr down (\w+)", result.stdout.str())
    assert env_id is not None, result.stdout.str()
    try:
        env = Environment.attach(env_id.group(1), engine=engine)
        admin = env.endpoints["postgres"].with_path("postgres").url
        with psycopg.connect(admin, autocommit=True) as connection:
            rows = connection.execute("SELECT datname FROM pg_database WHERE datname LIKE 'app%'").fetchall()
        names = sorted(str(row[0]) for row in rows)
        assert not [name for name in names if "_snap_" in name], names
        assert "app" in names  # the environment's own database: the query saw the server's databases
    finally:
        engine.remove_environment(env_id.group(1))


HELD = """
from sqlalchemy import text


def test_a_snapshot_inside_db_session_is_refused(envmgr_env, db_session):
    db_session.execute(text("CREATE TABLE held (id int)"))
    db_session.commit()  # a savepoint: rolled back with the outer transaction after the test
    envmgr_env.snapshot("inside")


def test_the_next_test_has_a_working_session_and_no_snapshot(envmgr_env, db_session):
    assert db_session.execute(text("SELECT to_regclass('held')")).scalar() is None
"""


@pytest.mark.usefixtures("no_daemon")
def test_a_snapshot_while_db_session_holds_its_transaction_is_refused_in_one_line(pytester: pytest.Pytester) -> None:
    """db_session's changes live in a transaction rolled back after the test: a snapshot then would silently miss
    them (and end the session's connection, breaking its teardown). It is refused, naming the fixture and the fix;
    the session's teardown and the next test are unharmed."""
    pytester.makefile(".toml", pyproject=f"[project]\nname = 'snapshots-held'\n{PROJECT_TABLE}")
    pytester.makepyfile(test_held=HELD)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*SnapshotError: postgres: this test's db_session holds an open transaction*"])
    assert "AdminShutdown" not in result.stdout.str()
