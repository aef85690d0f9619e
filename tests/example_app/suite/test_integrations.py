"""musicapp against its external dependencies: S3 artwork, SQS deliveries, the metadata API through a Celery task,
and what happens when Redis or the API misbehave. envmgr fixtures only; isolated per xdist worker."""

from __future__ import annotations

import json

import pytest
import redis
from celery.exceptions import TimeoutError as CeleryTimeout
from musicapp import cache, storage, tasks
from sqlalchemy.orm import Session

OK_COMPUTER = "b1392450-e666-3926-a536-22c65f834433"
DUMMY = "76df3287-6cda-33eb-8e9a-044b5e15ffdd"


def test_artwork_upload_lands_in_this_workers_bucket(s3_client, aws_env) -> None:  # type: ignore[no-untyped-def]
    bucket = aws_env["S3_BUCKET_ARTWORK"]
    key = storage.upload_artwork(s3_client, bucket, 7, b"\x89PNG fake")
    assert s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"\x89PNG fake"
    keys = sorted(o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["covers/7.png", "covers/placeholder.txt"]


def test_bucket_is_back_to_its_seeds_in_the_next_test(s3_client, aws_env) -> None:  # type: ignore[no-untyped-def]
    bucket = aws_env["S3_BUCKET_ARTWORK"]
    assert [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]] == ["covers/placeholder.txt"]


def test_delivery_is_announced_on_sqs(sqs_client) -> None:  # type: ignore[no-untyped-def]
    storage.announce_delivery(sqs_client, "deliveries", 3, "bandcamp")
    url = sqs_client.get_queue_url(QueueName="deliveries")["QueueUrl"]
    messages = sqs_client.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert [json.loads(m["Body"]) for m in messages] == [{"release_id": 3, "store": "bandcamp"}]


def test_metadata_task_runs_in_this_workers_celery_worker(celery_app, celery_worker, wiremock) -> None:  # type: ignore[no-untyped-def]
    result = tasks.fetch_release_title.delay(OK_COMPUTER)
    assert result.get(timeout=20) == "OK Computer"
    # the task reached this worker's WireMock (another worker's would have journalled it there). A retried task is
    # at-least-once: an answer slower than the task's time-out (a busy machine) is asked for again, so the journal
    # holds one request or more, each matched by the seeded stub.
    requests = wiremock.find({"method": "GET", "urlPath": f"/ws/2/release/{OK_COMPUTER}"})
    assert 1 <= len(requests) <= 1 + tasks.fetch_release_title.max_retries
    assert all(entry.get("wasMatched", True) for entry in wiremock.requests())


def test_metadata_task_retries_on_5xx(celery_app, celery_worker, wiremock) -> None:  # type: ignore[no-untyped-def]
    path = f"/ws/2/release/{DUMMY}"
    wiremock.import_stubs([
        {"scenarioName": "flaky", "requiredScenarioState": "Started", "newScenarioState": "recovered",
         "request": {"method": "GET", "urlPath": path}, "response": {"status": 503}},
        {"scenarioName": "flaky", "requiredScenarioState": "recovered",
         "request": {"method": "GET", "urlPath": path},
         "response": {"status": 200, "jsonBody": {"title": "Dummy"}}},
    ])  # fmt: skip
    assert tasks.fetch_release_title.delay(DUMMY).get(timeout=20) == "Dummy"
    assert wiremock.count({"method": "GET", "urlPath": path}) >= 2  # the 503, then the answer (asked again when slow)


def test_metadata_api_timing_out_fails_the_task_after_its_retries(celery_app, celery_worker, wiremock) -> None:  # type: ignore[no-untyped-def]
    wiremock.set_global_delay(int(tasks.REQUEST_TIMEOUT * 1000) + 700)
    result = tasks.fetch_release_title.delay(OK_COMPUTER)
    with pytest.raises(tasks.UpstreamError):
        result.get(timeout=20, propagate=True)
    assert wiremock.count({"method": "GET", "urlPath": f"/ws/2/release/{OK_COMPUTER}"}) == 3  # 1 + 2 retries


def test_release_count_survives_a_redis_outage(db_session: Session, redis_url: str, envmgr_faults) -> None:  # type: ignore[no-untyped-def]
    client = redis.Redis.from_url(redis_url, socket_timeout=0.3, socket_connect_timeout=0.3)
    assert cache.release_count(client, db_session, 1) == 2
    envmgr_faults.pause("redis")
    assert cache.release_count(client, db_session, 1) == 2, "answered from the database while Redis hangs"
    envmgr_faults.restore()
    assert client.ping()
    client.close()


def test_celery_task_waits_out_nothing_when_its_worker_is_stopped(  # type: ignore[no-untyped-def]
    celery_app, celery_worker, envmgr_faults
) -> None:
    envmgr_faults.stop("celery")
    result = tasks.fetch_release_title.delay(OK_COMPUTER)
    with pytest.raises(CeleryTimeout):
        result.get(timeout=1)
    envmgr_faults.restore()
    assert result.get(timeout=20) == "OK Computer", "the queued task runs once the worker is back"
