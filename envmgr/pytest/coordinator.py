"""The controller's side of a run (the xdist controller, or the only process): it owns where the environment comes
from (`source`), starts services in the background and on demand, serves its xdist workers' requests on a socket of
the run's own (`channel`), and keeps what the next run predicts and what the report says.

    coordinator = Coordinator(run)              # kept in config.stash (COORDINATOR_KEY); run.starter is it
    coordinator.source = OwnedSource(...)       # or chosen on first use: attached, leased, owned
    coordinator.ensure(["postgres"], why, worker, wait=True)
    coordinator.collected(["postgres"])         # the first collection to end: what was started ahead and is unused
    coordinator.report()                        # what the environment cost (envmgr.pytest.report), what started
    coordinator.settle(removing=True)           # before the source finishes: no start left under way

Like pytest-xdist's controller, it outlives the workers and owns what they share; it is the only process that starts
containers, each service once per run (and each per-worker replica once per worker).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from envmgr.endpoints import Endpoints, Worker
from envmgr.errors import EnvmgrError
from envmgr.pytest.prediction import PREDICTED, Prediction
from envmgr.pytest.report import build_report, merge_resets, report_line, resets_of
from envmgr.pytest.run import RunState
from envmgr.topology import Topology

if TYPE_CHECKING:
    from envmgr.engine.address import EngineInfo
    from envmgr.environment import Environment
    from envmgr.pytest.channel import ControllerServer
    from envmgr.pytest.source import EnvironmentSource

__all__ = ["BACKGROUND_WAIT", "COORDINATOR_KEY", "Coordinator", "coordinator_of"]

BACKGROUND_WAIT = 30.0
"""seconds the end of a run waits for starts still under way in the background (those of an environment about to be
removed are stopped first, so they end within moments)"""


class Coordinator:
    """The controller's source, threads and socket, and what they did (see the module's documentation)."""

    def __init__(self, run: RunState) -> None:
        self.run = run
        self.source: EnvironmentSource | None = None
        """where the environment comes from (chosen on first use when not set before)"""
        self.channel: ControllerServer | None = None
        """under xdist: where the workers ask for services"""
        self.engine: EngineInfo | None = None
        """the engine the environment runs on (None for a leased one: the daemon's)"""
        self.start_seconds = 0.0
        """wall time of starting (or attaching to) the environment"""
        self.failure: EnvmgrError | None = None
        """the first error of a start in the background (reported when a test needs the service)"""
        self.predicted: Prediction | None = None
        """what this run started before collection because the last run of the same command reached it"""
        self.used: dict[str, set[str]] = {}
        """the services tests waited for, and the workers that waited (the next run's prediction)"""
        self.discarded: list[str] = []
        """services started ahead (predicted) that the collected tests do not reach: removed"""
        self.discard_failure: EnvmgrError | None = None
        """why removing them failed (they go with the environment at the end)"""
        self._ensured: set[tuple[str, str]] = set()
        """(service, worker id) started and waited for: asked again, they cost nothing"""
        self._collected = False
        self._source_started = False
        self._started_at: float | None = None
        self._lock = threading.RLock()
        self._background: list[threading.Thread] = []
        """starts (and removals) under way in the background: waited for, bounded, before the source finishes"""

    @property
    def environment(self) -> Environment | None:
        return self.source.environment if self.source is not None else None

    def serve_workers(self) -> ControllerServer:
        """The socket the xdist workers ask on (made once)."""
        if self.channel is None:
            from envmgr.pytest.channel import ControllerServer

            self.channel = ControllerServer(
                lambda services, worker_id, why, wait: self.ensure(
                    services, why, self.run.worker_named(worker_id), wait
                ),
                self.collected,
            )
        return self.channel

    def ensure(self, services: Sequence[str], why: Mapping[str, str], worker: Worker, wait: bool) -> Endpoints:
        """Have these services started for `worker` and return the run's endpoints; without `wait`, start them in
        the background and return at once. Each service starts once per run; what was waited for once returns at
        once. EnvmgrError when one cannot start."""
        run = self.run
        with self._lock:
            for name in services:
                if run.needed.get(name) in (None, PREDICTED):
                    run.needed[name] = why.get(name, "asked for")
                if wait:
                    self.used.setdefault(name, set()).add(worker.worker_id)
            source = self._source()
            known = run.endpoints is not None and all((name, worker.worker_id) in self._ensured for name in services)
        if known and run.endpoints is not None:
            return run.endpoints
        if not wait:
            self._in_background(self._ensure_quietly, (list(services), worker), "envmgr-start")
            return run.endpoints or source.start()
        return self._ensure(source, services, worker)

    def _source(self) -> EnvironmentSource:
        """The environment's source, chosen and started on first use (under the lock)."""
        if self.source is None:
            from envmgr.pytest.source import choose_source

            self.source = choose_source(self.run.settings, self.run.options, self.run.workers, self.run.progress)
        if not self._source_started:
            self._started_at = time.perf_counter()
            self.run.endpoints = self.source.start()
            self._source_started = True
            environment = self.source.environment
            if environment is not None and environment.needs_engine:  # a leased one runs on the daemon's engine
                self.engine = environment.engine.describe()
        return self.source

    def _ensure(self, source: EnvironmentSource, services: Sequence[str], worker: Worker) -> Endpoints:
        try:
            endpoints = source.ensure(services, worker)
        except EnvmgrError as exc:
            with self._lock:
                self.failure = self.failure or exc
            raise
        with self._lock:
            self.run.endpoints = endpoints
            self._ensured.update((name, worker.worker_id) for name in services)
            if self._started_at is not None:
                self.start_seconds = max(self.start_seconds, time.perf_counter() - self._started_at)
        return endpoints

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
        enabled = set(self.run.settings.enabled_services())
        with self._lock:
            self.predicted = prediction
        shared = [name for name in prediction.services if name in enabled]
        if shared:
            self.ensure(shared, dict.fromkeys(shared, PREDICTED), self.run.worker, wait=False)
        for name, workers in prediction.replicas_within(self.run.workers).items():
            if name in enabled:
                for worker_id in workers:
                    self.ensure([name], {name: PREDICTED}, self.run.worker_named(worker_id), wait=False)

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
                if self.run.needed.get(name) == PREDICTED:
                    del self.run.needed[name]
            self.discarded = unused
        if unused:
            self._in_background(self._discard_quietly, (environment, unused), "envmgr-discard")

    def _in_background(self, target: Callable[..., None], args: tuple[Any, ...], name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._background = [known for known in self._background if known.is_alive()]
            self._background.append(thread)
        thread.start()

    def settle(self, removing: bool, timeout: float = BACKGROUND_WAIT) -> list[str]:
        """Before the source finishes: wait (at most `timeout` seconds) for the starts still under way in the
        background, so that none outlives the environment's end. When the environment is about to be removed
        (`removing`), its starts are stopped first: no new one begins, those waiting for readiness give up, so they
        end at once. Returns the names of the threads still running after the time-out (the environment refuses
        them anything: `Environment.stop_starting`)."""
        environment = self.environment
        if removing and environment is not None:
            environment.stop_starting()
        with self._lock:
            threads = list(self._background)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [thread.name for thread in threads if thread.is_alive()]

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
        return Prediction.of(used, {name for name in used if self.run.service(name).per_worker})

    def report(self) -> dict[str, Any] | None:
        """What the environment cost this run (see envmgr.pytest.report), resets of every worker included."""
        run = self.run
        if run.endpoints is None:
            return None
        records = [resets_of(run.resets.phases, run.resets.counts), *run.worker_resets]
        phases: dict[str, dict[str, float]] = {}
        if self.environment is not None:
            timings = self.environment.timings
            phases = timings.phases
            records.append(resets_of(timings.phases, timings.counts))
        started = self._started(run.endpoints)
        skipped = [  # unused: neither asked for (a start that had not ended yet is not "skipped") nor running
            name
            for name in run.settings.enabled_services()
            if name not in started and name not in run.needed and name not in self.discarded
        ]
        engine = self.engine.as_dict() if self.engine is not None else None
        return build_report(
            run.endpoints, phases, merge_resets(records), self.start_seconds, started=started, skipped=skipped,
            discarded=self.discarded, engine=engine,
        )  # fmt: skip

    def _started(self, endpoints: Endpoints) -> dict[str, str]:
        """The services that really run (a replica of one worker's only, too), and why: the fixture or setting that
        asked for each, or the services that need it (`needed by celery`). A service of an environment this run did
        not start (attached, leased) that no test asked for, and that none of them needs, is not listed."""
        environment = self.environment
        if environment is not None:  # in start order, as the settings list them (not as the starts ended)
            ready = set(environment.started())
            running = [name for name in environment.topology.services if name in ready]
            needs = environment.topology.needs
        else:  # leased: the daemon's environment of the project's services
            running, needs = list(endpoints.services), self._needs()
        needed = {name: why for name, why in self.run.needed.items() if name in running}
        owned = self.source is not None and self.source.kind == "owned"
        started: dict[str, str] = {}
        for name in running:
            dependants = [other for other in running if name in needs.get(other, ()) and other in needed]
            if name in needed:
                started[name] = needed[name]
            elif dependants:
                started[name] = f"needed by {', '.join(dependants)}"
            elif owned:  # started by this run all the same (e.g. for envmgr_endpoints before collection said)
                started[name] = PREDICTED if self.predicted is not None and name in self.predicted.names() else (
                    "asked for")  # fmt: skip
        return started

    def _needs(self) -> Mapping[str, tuple[str, ...]]:
        try:
            return Topology.plan(self.run.settings.enabled_services(), registry=self.run.registry).needs
        except EnvmgrError:  # settings whose services do not form an environment: nothing needs anything
            return {}

    def summary(self) -> str | None:
        """One line about the environment for the terminal summary."""
        if self.source is not None and (line := self.source.summary()) is not None:
            return line
        report = self.report()
        return report_line(report) if report is not None and self.environment is not None else None

    def close(self) -> None:
        """Stop serving the workers (after the last one has ended)."""
        if self.channel is not None:
            self.channel.close()


COORDINATOR_KEY = pytest.StashKey[Coordinator]()


def coordinator_of(config: pytest.Config) -> Coordinator | None:
    """The controller's coordinator (None in an xdist worker, or before the plugin configured the run)."""
    return config.stash.get(COORDINATOR_KEY, None)
