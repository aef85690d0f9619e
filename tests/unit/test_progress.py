"""The progress events (sent where the work happens), what the terminal says of them (the board), and the spans the
report's waterfall draws."""

from __future__ import annotations

import time

import pytest

from envmgr.errors import ReadinessTimeoutError
from envmgr.images import build_steps
from envmgr.progress.board import HEARTBEAT, Board
from envmgr.progress.events import Advanced, Began, Ended, Event, Noted, Relay, Waiting, timed
from envmgr.progress.spans import Recorder
from envmgr.readiness import Waiter, wait_until
from envmgr.timings import Timings


class Heard(list[Event]):
    def __call__(self, event: Event) -> None:
        self.append(event)


def test_a_measured_phase_is_told_with_the_seconds_the_timings_keep() -> None:
    heard, timings = Heard(), Timings()
    with timings.measure("postgres", "create", 0, heard):
        time.sleep(0.02)
    began, ended = heard
    assert isinstance(began, Began)
    assert (began.service, began.phase, began.replica) == ("postgres", "create", 0)
    assert isinstance(ended, Ended)
    assert ended.ok
    assert ended.seconds == timings.phases["postgres"]["create"]  # the same figure, not a second measurement


def test_a_failed_phase_ends_not_ok_and_the_error_goes_on() -> None:
    heard = Heard()
    with pytest.raises(RuntimeError), timed(heard, "postgres", "migrate", detail="alembic"):
        raise RuntimeError("boom")
    ended = heard[-1]
    assert isinstance(ended, Ended)
    assert not ended.ok
    assert ended.detail == "alembic"


def test_a_subscriber_that_fails_never_fails_the_start() -> None:
    relay, heard = Relay(), Heard()

    def broken(event: Event) -> None:
        raise OSError("the terminal is gone")

    relay.subscribe(broken)
    relay.subscribe(heard)
    relay(Noted("postgres", "x"))
    assert len(heard) == 1
    relay.unsubscribe(heard)
    relay(Noted("postgres", "y"))
    assert len(heard) == 1


def test_a_readiness_wait_tells_elapsed_against_the_deadline() -> None:
    heard, attempts = Heard(), []

    def probe() -> None:
        attempts.append(1)
        if len(attempts) < 4:
            raise ConnectionError("not yet")

    waiter = Waiter(service="redis", logs=lambda: "", running=lambda: True, replica=2, progress=heard)
    wait_until(probe, waiter, 5.0, "PING")
    waits = [event for event in heard if isinstance(event, Waiting)]
    assert len(waits) == 3
    assert all(w.service == "redis" and w.replica == 2 and w.timeout == 5.0 for w in waits)
    assert [w.elapsed for w in waits] == sorted(w.elapsed for w in waits)


def test_a_readiness_time_out_is_still_told_before_it_is_raised() -> None:
    heard = Heard()

    def probe() -> None:
        raise ConnectionError("never")

    waiter = Waiter(service="localstack", logs=lambda: "", running=lambda: True, progress=heard)
    with pytest.raises(ReadinessTimeoutError):
        wait_until(probe, waiter, 0.1, "health")
    assert isinstance(heard[-1], Waiting)
    assert heard[-1].elapsed >= 0.1


def test_build_steps_are_told_with_their_count() -> None:
    heard, lines = Heard(), []
    on_line = build_steps("celery", heard, lines.append)
    for line in ["Step 1/3 : ARG BASE_IMAGE", " ---> abc", "Step 2/3 : FROM ${BASE_IMAGE}", "Step 3/3 : RUN pip x"]:
        on_line(line)
    assert [(e.done, e.total, e.detail) for e in heard if isinstance(e, Advanced)] == [
        (1, 3, "ARG BASE_IMAGE"), (2, 3, "FROM ${BASE_IMAGE}"), (3, 3, "RUN pip x")]  # fmt: skip
    assert len(lines) == 4


def start(board: Board, service: str = "postgres", replica: int = 0, at: float = 100.0) -> list[str]:
    said = []
    said += board.lines(Began(service, "create", replica, at=at))
    said += board.lines(Ended(service, "create", 0.5, replica, at=at + 0.5))
    said += board.lines(Began(service, "ready", replica, at=at + 0.5))
    said += board.lines(Ended(service, "ready", 1.0, replica, at=at + 1.5))
    said += board.lines(Began(service, "prepare", replica, at=at + 1.5))
    said += board.lines(Began(service, "migrate", replica, detail="alembic", at=at + 1.6))
    for done in range(4):
        said += board.lines(Advanced(service, "migrate", done, 3, replica, "alembic", at=at + 1.7 + done / 10))
    said += board.lines(Ended(service, "migrate", 0.4, replica, detail="alembic", at=at + 2.0))
    said += board.lines(Began(service, "seed", replica, at=at + 2.0))
    for done in (1, 2):
        said += board.lines(Advanced(service, "seed", done, 2, replica, f"f{done}.sql", at=at + 2.0 + done / 20))
    said += board.lines(Ended(service, "seed", 0.1, replica, at=at + 2.1))
    said += board.lines(Ended(service, "prepare", 0.7, replica, at=at + 2.2))
    return said


def test_the_default_lines_say_the_start_the_migration_count_the_seeds_and_ready() -> None:
    assert start(Board()) == [
        "envmgr: starting postgres",
        "envmgr: postgres template: 3 migrations to apply (alembic)",
        "envmgr: postgres template: 3 migrations applied in 0.40 s",
        "envmgr: postgres template: 2 seed files loaded in 0.10 s",
        "envmgr: postgres ready in 2.20 s (create 0.50 s, ready 1.00 s, prepare 0.70 s)",
    ]


def test_verbose_says_every_phase_and_seed_file_and_other_replicas() -> None:
    said = start(Board(verbosity=1), "wiremock", replica=1)
    assert "envmgr: starting wiremock-1" in said
    assert "envmgr: wiremock-1 created in 0.50 s" in said
    assert "envmgr: wiremock-1 answers after 1.00 s" in said
    assert "envmgr: wiremock-1 template: seed file 2/2: f2.sql" in said
    quiet = start(Board(verbosity=0), "wiremock", replica=1)
    assert "envmgr: starting wiremock-1" not in quiet  # another worker's replica: with -v
    assert "envmgr: wiremock-1 ready in 2.20 s (create 0.50 s, ready 1.00 s, prepare 0.70 s)" not in quiet


def test_a_long_wait_says_so_again_every_heartbeat_unless_a_status_line_shows_it() -> None:
    board = Board()
    board.lines(Began("localstack", "create", at=0.0))
    board.lines(Ended("localstack", "create", 1.0, at=1.0))
    board.lines(Began("localstack", "ready", at=1.0))
    beats = []
    for tick in range(1, 70):
        beats += board.lines(Waiting("localstack", 0, tick / 2, 120.0, at=1.0 + tick / 2))
    assert beats == [
        "envmgr: localstack not answering yet: 10 s of 120 s",
        "envmgr: localstack not answering yet: 20 s of 120 s",
        "envmgr: localstack not answering yet: 30 s of 120 s",
    ]
    assert HEARTBEAT == 10.0
    assert not board.lines(Waiting("localstack", 0, 45.0, 120.0, at=46.0), live=True)
    assert board.status(46.5) == "envmgr: localstack waiting 45.5 s of 120 s"


def test_the_status_line_says_what_is_under_way() -> None:
    board = Board()
    board.lines(Began("postgres", "create", at=0.0))
    board.lines(Began("redis", "create", at=0.0))
    assert board.status(0.25) == "envmgr: postgres creating 0.2 s | redis creating 0.2 s"
    board.lines(Ended("redis", "create", 0.3, at=0.3))
    board.lines(Began("postgres", "image", detail="x:1", at=0.3))
    board.lines(Advanced("postgres", "image", 2, 5, detail="RUN pip", at=0.4))
    assert board.status(1.3) == "envmgr: postgres image step 2/5 1.0 s"
    board.lines(Ended("postgres", "image", 1.0, at=1.3))
    board.lines(Ended("postgres", "create", 1.3, at=1.3))
    assert board.status(1.3) == ""
    assert not board.busy()


def test_a_failure_says_where_once() -> None:
    board = Board()
    board.lines(Began("postgres", "create", at=0.0))
    assert board.lines(Ended("postgres", "create", 0.2, ok=False, at=0.2)) == [
        "envmgr: postgres failed while creating its container, after 0.20 s"
    ]
    board.lines(Began("redis", "prepare", at=1.0))
    board.lines(Began("redis", "seed", at=1.1))
    assert board.lines(Ended("redis", "seed", 0.1, ok=False, at=1.2)) == [
        "envmgr: redis failed while loading the seeds, after 0.10 s"
    ]
    assert board.lines(Ended("redis", "prepare", 0.2, ok=False, at=1.2)) == []  # the inner phase said where


def test_a_reused_template_is_said_and_an_image_build_with_its_steps() -> None:
    board = Board()
    reused = board.lines(Noted("postgres", "template app_tpl_x reused"))
    assert reused == ["envmgr: postgres: template app_tpl_x reused"]
    assert board.lines(Began("celery", "image", detail="p:1", at=0.0)) == ["envmgr: building image p:1 for celery"]
    assert board.lines(Advanced("celery", "image", 1, 2, detail="FROM   x", at=0.1)) == [
        "envmgr: celery image step 1/2: FROM x"
    ]
    assert board.lines(Ended("celery", "image", 3.0, at=3.0)) == ["envmgr: celery image built in 3.0 s"]


def test_the_recorder_keeps_each_ended_phase_from_the_origin() -> None:
    recorder = Recorder(origin=10.0)
    recorder(Began("postgres", "create", at=11.0))
    recorder(Ended("postgres", "create", 0.5, at=11.5))
    recorder(Ended("wiremock", "ready", 0.25, 1, ok=False, at=11.0))
    spans = recorder.spans()
    assert [(s.service, s.phase, s.replica, s.start, s.seconds, s.ok) for s in spans] == [
        ("wiremock", "ready", 1, 0.75, 0.25, False),
        ("postgres", "create", 0, 1.0, 0.5, True),
    ]
    assert spans[1].as_dict() == {"service": "postgres", "phase": "create", "replica": 0, "start": 1.0,
                                  "seconds": 0.5, "ok": True}  # fmt: skip
