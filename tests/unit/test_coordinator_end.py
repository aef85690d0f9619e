"""The controller's account of a run and its end (pure logic, fakes for the environment): the report names what
really started, requirements included, never `skipped (unused)` for a service that ran; the end of a run waits,
bounded, for starts still under way in the background, having stopped those of an environment it removes."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from envmgr.config import Settings
from envmgr.endpoints import Endpoints, Worker
from envmgr.pytest.coordinator import Coordinator
from envmgr.pytest.reach import FixtureMap, reach
from envmgr.pytest.report import report_line
from envmgr.pytest.run import RunState
from envmgr.pytest.source import SourceOptions
from envmgr.timings import Timings
from envmgr.topology import Topology


class FakeEnvironment:
    """What the coordinator asks of an environment: what runs, what needs what, and the end's stop."""

    def __init__(self, services: Sequence[str], running: Sequence[str]) -> None:
        self.topology = Topology.plan(services)
        self.running = list(running)
        self.stopped = threading.Event()
        self.engine = self
        self.needs_engine = True
        self.timings = Timings()

    def describe(self) -> None:
        """(the engine's: none here)"""

    def started(self) -> list[str]:
        return list(self.running)

    def stop_starting(self) -> None:
        self.stopped.set()


class FakeSource:
    kind = "owned"

    def __init__(self, environment: FakeEnvironment, starting: threading.Event | None = None) -> None:
        self.environment = environment
        self.starting = starting

    def start(self) -> Endpoints:
        return Endpoints(id="e1", network="n")

    def ensure(self, services: Sequence[str], worker: Worker | None) -> Endpoints:
        if self.starting is not None:  # a start that ends only once the environment stops its starts
            self.starting.set()
            self.environment.stopped.wait(10)
        return Endpoints(id="e1", network="n")


def _coordinator(tmp_path: Path, enabled: Sequence[str], source: FakeSource) -> Coordinator:
    tables = {name: {"enabled": True} for name in enabled}
    settings = Settings(project_root=tmp_path, **tables)  # type: ignore[arg-type]
    run = RunState(settings=settings, worker_id="main", isolation="session", options=SourceOptions())
    coordinator = Coordinator(run)
    coordinator.source = source  # type: ignore[assignment]
    run.endpoints = Endpoints(id="e1", network="n")
    return coordinator


def test_a_service_started_for_another_is_reported_started_with_why(tmp_path: Path) -> None:
    environment = FakeEnvironment(["postgres", "redis", "celery"], running=["redis", "celery"])
    coordinator = _coordinator(tmp_path, ["postgres", "redis", "celery"], FakeSource(environment))
    coordinator.run.needed.update({"celery": "celery_worker"})
    report = coordinator.report()
    assert report is not None
    assert report["started"] == {"redis": "needed by celery", "celery": "celery_worker"}
    assert report["skipped"] == ["postgres"]
    assert "started for redis (needed by celery), celery (celery_worker) | skipped (unused) postgres" in report_line(
        report
    )


def test_what_runs_is_never_skipped_and_what_was_asked_for_but_does_not_run_is_not_started(tmp_path: Path) -> None:
    environment = FakeEnvironment(["postgres", "redis"], running=["postgres"])
    coordinator = _coordinator(tmp_path, ["postgres", "redis"], FakeSource(environment))
    coordinator.run.needed.update({"redis": "redis_client"})  # asked for, still starting when the run ended
    report = coordinator.report()
    assert report is not None
    assert report["started"] == {"postgres": "asked for"}
    assert report["skipped"] == []


def test_an_always_service_is_reached_by_every_test_without_dirtying_it() -> None:
    fixtures = FixtureMap(service_of={"redis_client": "redis"}, clean=frozenset({"redis_client"}), reset_after={})
    found = reach(["request"], ["request"], {}, fixtures, always={"postgres": "setting always"})
    assert found.reached == {"postgres"}
    assert found.first == {"postgres": "setting always"}
    assert found.dirtying == frozenset()
    own = reach(["redis_client"], ["redis_client"], {}, fixtures, always={"redis": "Django CACHES"})
    assert own.first == {"redis": "redis_client"}  # the test's own fixture says why, where it has one


def test_the_end_stops_the_starts_of_an_environment_it_removes_then_waits_for_them(tmp_path: Path) -> None:
    starting = threading.Event()
    environment = FakeEnvironment(["redis"], running=[])
    coordinator = _coordinator(tmp_path, ["redis"], FakeSource(environment, starting))
    coordinator.ensure(["redis"], {"redis": "redis_client"}, coordinator.run.worker, wait=False)
    assert starting.wait(5)
    assert coordinator.settle(removing=True, timeout=10) == []
    assert environment.stopped.is_set()


def test_the_end_of_a_kept_environment_waits_bounded_and_names_what_is_still_under_way(tmp_path: Path) -> None:
    starting = threading.Event()
    environment = FakeEnvironment(["redis"], running=[])
    coordinator = _coordinator(tmp_path, ["redis"], FakeSource(environment, starting))
    coordinator.ensure(["redis"], {"redis": "redis_client"}, coordinator.run.worker, wait=False)
    assert starting.wait(5)
    assert coordinator.settle(removing=False, timeout=0.2) == ["envmgr-start"]
    assert not environment.stopped.is_set()  # a kept environment's start is let finish
    environment.stopped.set()
