"""The state of one pytest process's use of envmgr, as plain data kept in `config.stash` (never in module state).

The controller (the xdist controller, or the only process) owns the environment through its `source`; an xdist
worker receives the endpoints through `workerinput` and never starts containers. The fixtures read the run through
`run_of(config)`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from envmgr.config import Settings
from envmgr.endpoints import Endpoints, Worker
from envmgr.errors import EnvmgrError
from envmgr.prediction import PREDICTED, Prediction
from envmgr.reach import FixtureMap
from envmgr.report import Resets, build_report, merge_resets, report_line, resets_of
from envmgr.services.registry import SERVICES, ServiceRegistry
from envmgr.timings import Timings

if TYPE_CHECKING:
    from envmgr.engine import EngineInfo
    from envmgr.environment import Environment
    from envmgr.pytest_controller import ControllerServer
    from envmgr.pytest_source import EnvironmentSource, SourceOptions
    from envmgr.services.base import Service

__all__ = ["RUN_KEY", "RunState", "run_of"]


@dataclass
class RunState:
    """What envmgr knows about this pytest process."""

    settings: Settings
    worker_id: str
    isolation: str
    """"worker" (a share of every service per xdist worker) or "session" (everybody shares)"""
    options: SourceOptions
    workers: int = 0
    """replicas of per-worker services: the number of xdist workers in worker isolation, else 0"""
    logs_dir: Path | None = None
    """where the containers' logs go when the run fails (None: nowhere)"""
    report_path: Path | None = None
    """--envmgr-report: where the JSON report goes"""
    source: EnvironmentSource | None = None
    """where the environment came from (the controller only)"""
    endpoints: Endpoints | None = None
    exitstatus: int | None = None
    start_seconds: float = 0.0
    """wall time of starting (or attaching to) the environment"""
    engine: EngineInfo | None = None
    """the engine the environment runs on (None for a leased one: the daemon's)"""
    resets: Timings = field(default_factory=Timings)
    """resets made in this process by fixtures (and by envmgr_env.reset() in an xdist worker)"""
    worker_resets: list[Resets] = field(default_factory=list)
    """the resets of each xdist worker, received on the controller through workeroutput"""
    registry: ServiceRegistry = field(default_factory=lambda: SERVICES, repr=False)
    """the services envmgr knows (a test may add its own)"""
    services: dict[str, Service] = field(default_factory=dict)
    """service objects made on demand in this process (their hooks: worker_view, worker_reset ...)"""
    dirty: set[str] = field(default_factory=set)
    """services whose share of this worker a test may have changed since it was last reset"""
    needed: dict[str, str] = field(default_factory=dict)
    """the services this run starts, and why (the first fixture or setting that asked for each)"""
    controller: str | None = None
    """an xdist worker: the socket on which the controller starts services (envmgr.pytest_controller)"""
    channel: ControllerServer | None = None
    """the controller under xdist: where the workers ask for services"""
    integrations: list[str] = field(default_factory=list)
    """modules of the integrations registered in this process (`envmgr.integrations`): their fixtures and markers
    reach services too (see envmgr.reach)"""
    always: dict[str, str] = field(default_factory=dict)
    """services an integration says every test may use, and why (e.g. Redis behind Django's CACHES)"""
    faults_used: bool = False
    """a collected test uses `envmgr_faults`: this process reaches shared servers through proxies of its own"""
    failure: EnvmgrError | None = None
    """the first error of a start in the background (reported when a test needs the service)"""
    predicted: Prediction | None = None
    """what this run started before collection because the last run of the same command reached it"""
    used: dict[str, set[str]] = field(default_factory=dict)
    """the services tests waited for, and the workers that waited (the next run's prediction)"""
    discarded: list[str] = field(default_factory=list)
    """services started ahead (predicted) that the collected tests do not reach: removed"""
    discard_failure: EnvmgrError | None = None
    """why removing them failed (they go with the environment at the end)"""
    _collected: bool = field(default=False, repr=False)
    _fixture_map: FixtureMap | None = field(default=None, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _source_started: bool = field(default=False, repr=False)
    _started_at: float | None = field(default=None, repr=False)

    @property
    def is_worker(self) -> bool:
        return self.worker_id != "main"

    @property
    def worker(self) -> Worker:
        return Worker(worker_id=self.worker_id, isolated=self.isolation == "worker")

    @property
    def environment(self) -> Environment | None:
        return self.source.environment if self.source is not None else None

    @property
    def failed(self) -> bool:
        return self.exitstatus is not None and self.exitstatus != 0

    def service(self, name: str) -> Service:
        """The service object of `name` for this run's settings (made once per process)."""
        if name not in self.services:
            self.services[name] = self.registry.create(name, self.settings)
        return self.services[name]

    def fixture_map(self) -> FixtureMap:
        """Which fixture belongs to which service (see envmgr.reach), read once per process."""
        if self._fixture_map is None:
            self._fixture_map = FixtureMap.of(self.registry, self.settings, self.integrations)
        return self._fixture_map

    def ensure(
        self,
        services: Sequence[str],
        why: Mapping[str, str] | None = None,
        *,
        worker: Worker | None = None,
        wait: bool = True,
    ) -> Endpoints:
        """Have these services started for `worker` (default: this process's) and return the run's endpoints;
        without `wait`, start them in the background and return at once. EnvmgrError when one cannot start.

        An xdist worker asks the controller (which owns the environment); the controller (or the only process)
        starts them itself, each once per run."""
        worker = worker or self.worker
        why = dict(why or {})
        if self.is_worker:
            if self.controller is None:
                raise EnvmgrError(
                    "this xdist worker has no way to reach the run's controller",
                    "the controller runs without envmgr's plugin; do not disable it in the controller only",
                )
            from envmgr.pytest_controller import ControllerClient

            endpoints = ControllerClient(self.controller).ensure(services, worker.worker_id, why, wait)
            if wait:
                self.endpoints = endpoints
                self._export(endpoints)
            return endpoints
        with self._lock:
            for name in services:
                if self.needed.get(name) in (None, PREDICTED):
                    self.needed[name] = why.get(name, "asked for")
                if wait:
                    self.used.setdefault(name, set()).add(worker.worker_id)
            source = self._source()
        if not wait:
            threading.Thread(
                target=self._ensure_quietly, args=(list(services), worker), name="envmgr-start", daemon=True
            ).start()
            return self.endpoints or source.start()
        return self._ensure(source, services, worker)

    def _source(self) -> EnvironmentSource:
        """The environment's source, chosen and started on first use (under the lock)."""
        if self.source is None:
            from envmgr.pytest_source import choose_source

            self.source = choose_source(self.settings, self.options, self.workers)
        if not self._source_started:
            self._started_at = time.perf_counter()
            self.endpoints = self.source.start()
            self._source_started = True
            if self.source.environment is not None:  # a leased one runs on the daemon's engine
                self.engine = self.source.environment.engine.describe()
        return self.source

    def _ensure(self, source: EnvironmentSource, services: Sequence[str], worker: Worker) -> Endpoints:
        try:
            endpoints = source.ensure(services, worker)
        except EnvmgrError as exc:
            with self._lock:
                self.failure = self.failure or exc
            raise
        with self._lock:
            self.endpoints = endpoints
            if self._started_at is not None:
                self.start_seconds = max(self.start_seconds, time.perf_counter() - self._started_at)
        if worker == self.worker:
            self._export(endpoints)
        return endpoints

    def _export(self, endpoints: Endpoints) -> None:
        """This process's connection variables, as the services it has now are (a planned port that was taken
        meanwhile, a replica started for this worker)."""
        from envmgr.pytest_setup import worker_variables

        os.environ.update(worker_variables(endpoints, self.worker, self.settings, self.registry))

    def _ensure_quietly(self, services: list[str], worker: Worker) -> None:
        """A start in the background: its error is kept (and raised again where a test needs the service)."""
        assert self.source is not None
        try:
            self._ensure(self.source, services, worker)
        except EnvmgrError:
            pass  # kept in self.failure; the test that needs the service reports it
        except Exception as exc:  # never lost in a thread: reported where a test needs the service
            with self._lock:
                self.failure = self.failure or EnvmgrError(f"starting {', '.join(services)} failed: {exc!r}")

    def start_predicted(self, prediction: Prediction) -> None:
        """Start in the background what the last run of this command reached (before collection says it)."""
        enabled = set(self.settings.enabled_services())
        with self._lock:
            self.predicted = prediction
        shared = [name for name in prediction.services if name in enabled]
        if shared:
            self.ensure(shared, dict.fromkeys(shared, PREDICTED), wait=False)
        for name, workers in prediction.replicas_within(self.workers).items():
            if name in enabled:
                for worker_id in workers:
                    self.ensure([name], {name: PREDICTED}, worker=self.worker_named(worker_id), wait=False)

    def collected(self, reached: Sequence[str]) -> None:
        """Collection (the first to end, under xdist) says which services the tests reach: what was started ahead
        of it and is not reached (nor needed by what is) is removed, in the background."""
        with self._lock:
            if self._collected:
                return
            self._collected = True
            environment = self.environment
            if self.predicted is None or environment is None:
                return
            wanted = environment.topology.closure([name for name in reached if name in environment.topology.needs])
            unused = sorted(self.predicted.names() - set(wanted))
            for name in unused:
                if self.needed.get(name) == PREDICTED:
                    del self.needed[name]
            self.discarded = unused
        if unused:
            threading.Thread(
                target=self._discard_quietly, args=(environment, unused), name="envmgr-discard", daemon=True
            ).start()

    def _discard_quietly(self, environment: Environment, services: list[str]) -> None:
        """In a thread: a failure is kept for the summary (the environment's removal at the end takes them)."""
        try:
            environment.discard(services)
        except EnvmgrError as exc:
            self.discard_failure = exc
        except Exception as exc:  # never lost in a thread
            self.discard_failure = EnvmgrError(f"removing {', '.join(services)} failed: {exc!r}")

    def prediction(self) -> Prediction:
        """What this run's tests waited for, as the next run's prediction."""
        with self._lock:
            used = {name: set(workers) for name, workers in self.used.items()}
        return Prediction.of(used, {name for name in used if self.service(name).per_worker})

    def worker_named(self, worker_id: str) -> Worker:
        return Worker(worker_id=worker_id, isolated=self.isolation == "worker")

    def report(self) -> dict[str, Any] | None:
        """What the environment cost this run (see envmgr.report), resets of every worker included."""
        if self.endpoints is None:
            return None
        records = [resets_of(self.resets.phases, self.resets.counts), *self.worker_resets]
        phases: dict[str, dict[str, float]] = {}
        if self.environment is not None:
            timings = self.environment.timings
            phases = timings.phases
            records.append(resets_of(timings.phases, timings.counts))
        running = {endpoint.service for endpoint in self.endpoints.all()}  # a replica of one worker's only, too
        started = {name: why for name, why in self.needed.items() if name in running}
        skipped = [
            name for name in self.settings.enabled_services() if name not in self.needed and name not in self.discarded
        ]
        engine = self.engine.as_dict() if self.engine is not None else None
        return build_report(
            self.endpoints, phases, merge_resets(records), self.start_seconds, started=started, skipped=skipped,
            discarded=self.discarded, engine=engine,
        )  # fmt: skip

    def summary(self) -> str | None:
        """One line about the environment for the terminal summary."""
        if self.source is not None and (line := self.source.summary()) is not None:
            return line
        report = self.report()
        return report_line(report) if report is not None and self.environment is not None else None


RUN_KEY = pytest.StashKey[RunState]()


def run_of(config: pytest.Config) -> RunState:
    try:
        return config.stash[RUN_KEY]
    except KeyError:
        raise pytest.UsageError("envmgr: the plugin is not configured in this process") from None
