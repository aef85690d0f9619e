"""Isolation is a property: for every service and every fixture that reaches it, a test writes state and the next
test on the same worker, and the other worker, cannot see it. Run as a user would (a project of its own, `pytest`
and `pytest -n 2`), against real containers."""

from __future__ import annotations

import textwrap

import psycopg
import pytest
import redis

from envmgr import Environment, Settings, Worker
from envmgr.endpoints import Endpoints
from tests.integration.test_plugin import PROJECT_TABLE

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]

TABLE = PROJECT_TABLE + textwrap.dedent(
    """
    [tool.envmgr.wiremock]
    enabled = true

    [tool.envmgr.localstack]
    enabled = true

    [tool.envmgr.celery]
    app = "tasks"
    """
)

TASKS = """
from celery import Celery

app = Celery("isolation")

@app.task(name="isolation.echo")
def echo(value):
    return value
"""

# One sequence a file: each test leaves state behind through a fixture that does not clean up after itself, the next
# one (same file, so the same worker with --dist loadfile) must not see it; every test also checks that nothing of
# the other worker's is visible.
SEQUENCE = """
import os

import boto3
import psycopg
import requests
from sqlalchemy import text

import pytest

ME = os.environ.get("PYTEST_XDIST_WORKER", "main") + "-{tag}"


def test_1_leave_wiremock_requests(wiremock_url):
    for _ in range(3):
        requests.get(wiremock_url + "/left-behind/" + ME, timeout=5)


def test_2_wiremock_journal_is_empty(wiremock):
    assert wiremock.requests() == []


def test_3_leave_rows_through_the_url(postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("INSERT INTO users (email, name) VALUES (%s, 'leak')", (ME + "@example.com",))


@pytest.mark.envmgr_fresh_db
def test_4_fresh_db_starts_from_the_template(db_session):
    assert db_session.execute(text("SELECT count(*) FROM users")).scalar() == 3
    db_session.execute(text("INSERT INTO users (email, name) VALUES (:e, 'fresh')"), {{"e": ME + "@fresh"}})
    db_session.commit()


def test_5_no_rows_of_earlier_tests(postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        assert connection.execute("SELECT count(*) FROM users").fetchone()[0] == 3


def test_6_leave_objects_through_aws_env(aws_env):
    s3 = boto3.client("s3", endpoint_url=aws_env["AWS_ENDPOINT_URL"])
    s3.put_object(Bucket=aws_env["S3_BUCKET_ARTWORK"], Key="left/" + ME, Body=b"x")
    s3.create_bucket(Bucket="extra-" + ME.lower())


def test_7_account_is_back_to_its_seeds(s3_client, aws_env):
    buckets = [b["Name"] for b in s3_client.list_buckets()["Buckets"]]
    assert buckets == [aws_env["S3_BUCKET_ARTWORK"]]
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=buckets[0]).get("Contents", [])]
    assert not [key for key in keys if key.startswith("left/")]


def test_8_leave_keys_through_the_url(redis_url):
    import redis

    redis.Redis.from_url(redis_url).set("left:" + ME, "1")


def test_9_cache_and_broker_are_apart(redis_client, celery_app, redis_url):
    assert redis_client.dbsize() == 0
    assert celery_app.conf.broker_url.rsplit("/", 1)[1] != redis_url.rsplit("/", 1)[1]
    celery_app.send_task("isolation.echo", args=[ME])  # a message in the broker's database, not in the cache's
    assert redis_client.dbsize() == 0
"""


def make_isolation_project(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", pyproject=f"[project]\nname = 'isolation'\n{TABLE}")
    pytester.makepyfile(tasks=TASKS)
    pytester.makepyfile(test_a=SEQUENCE.format(tag="a"), test_b=SEQUENCE.format(tag="b"))


@pytest.mark.parametrize("xdist", [[], ["-n", "2", "--dist", "loadfile"]], ids=["single-process", "two-workers"])
def test_every_test_starts_from_the_seeded_state(pytester: pytest.Pytester, xdist: list[str]) -> None:
    make_isolation_project(pytester)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", *xdist)
    result.assert_outcomes(passed=18)


def test_reset_from_a_worker_resets_only_its_share(settings: Settings) -> None:
    """`envmgr_env.reset()` in worker gw0 (a handle scoped to it) leaves gw1's database and Redis db alone."""
    from envmgr.services.postgres.janitor import Janitor

    gw0, gw1 = Worker("gw0", isolated=True), Worker("gw1", isolated=True)
    with Environment(["postgres", "redis"], settings=settings, workers=2) as env:
        endpoints: Endpoints = env.endpoints
        server = endpoints["postgres"]
        for worker in (gw0, gw1):
            env.service("postgres").worker_setup(server, worker)
            with psycopg.connect(server.with_path(worker.database(server.path)).url, autocommit=True) as connection:
                connection.execute("CREATE TABLE marks (worker text)")
                connection.execute("INSERT INTO marks VALUES (%s)", (worker.worker_id,))
            redis.Redis.from_url(endpoints["redis"].with_path(str(worker.redis_db)).url).set("mark", worker.worker_id)
        handle = Environment.attach(env.id, settings=settings)
        handle.scope = gw0
        handle.reset()
        with Janitor(server) as janitor:
            assert janitor.exists(gw0.database(server.path))
            assert janitor.exists(gw1.database(server.path))
        with psycopg.connect(server.with_path(gw1.database(server.path)).url) as connection:
            assert connection.execute("SELECT worker FROM marks").fetchall() == [("gw1",)]
        with psycopg.connect(server.with_path(gw0.database(server.path)).url) as connection:
            exists = connection.execute("SELECT to_regclass('marks') IS NOT NULL").fetchone()
            assert exists == (False,)
        assert redis.Redis.from_url(endpoints["redis"].with_path("2").url).get("mark") == b"gw1"
        assert redis.Redis.from_url(endpoints["redis"].with_path("1").url).get("mark") is None


def test_official_image_without_reset_extension_is_detected() -> None:
    """The official LocalStack answers an unknown POST with 200 and an empty body: that is no reset."""
    from envmgr.services.localstack.accounts import is_reset_summary

    assert not is_reset_summary(b"")
    assert not is_reset_summary(b"{}")
    assert not is_reset_summary(b'{"status": "ok"}')
    assert is_reset_summary(b'{"accounts": null, "services": {"s3": {"buckets": 0}}, "took_ms": 0.2}')
