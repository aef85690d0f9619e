"""The state of one pytest process's use of envmgr, as plain data kept in `config.stash` (never in module state).

The controller (the xdist controller, or the only process) owns the environment through its `source`; an xdist
worker receives the endpoints through `workerinput` and never starts containers. The fixtures read the run through
`run_of(config)`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from envmgr.config import Settings
from envmgr.endpoints import Endpoints, Worker
from envmgr.errors import EnvmgrError
from envmgr.reach import FixtureMap
from envmgr.report import Resets, build_report, merge_resets, report_line, resets_of
from envmgr.services import SERVICES, ServiceRegistry
from envmgr.timings import Timings

if TYPE_CHECKING:
    from envmgr.engine import EngineInfo
    from envmgr.environment import Environment
    from envmgr.pytest_source import EnvironmentSource, SourceOptions
    from envmgr.services import Service

__all__ = ["RUN_KEY", "RunState", "run_of"]


@dataclass
class RunState:
    """What envmgr knows about this pytest process."""

    settings: Settings
    worker_id: str
    isolation: str
    """"worker" (a share of every service per xdist worker) or "session" (everybody shares)"""
    opted_in: bool
    """the controller starts an environment before the workers (a [tool.envmgr] table or an --envmgr-* option)"""
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
    _fixture_map: FixtureMap | None = field(default=None, repr=False)

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
            self._fixture_map = FixtureMap.of(self.registry)
        return self._fixture_map

    def start(self) -> Endpoints:
        """The environment's endpoints: started (or attached, or leased) on first call by the controller; an
        EnvmgrError when it cannot be."""
        if self.endpoints is not None:
            return self.endpoints
        if self.is_worker:
            raise EnvmgrError(
                "this xdist worker received no environment from the controller",
                "add a [tool.envmgr] table to pyproject.toml (or pass an --envmgr-* option) so that the controller "
                "starts one",
            )
        from envmgr.pytest_source import choose_source

        started = time.perf_counter()
        try:
            self.source = choose_source(self.settings, self.options, self.workers)
            self.endpoints = self.source.start()
        finally:
            self.start_seconds = time.perf_counter() - started
        if self.source.environment is not None:  # a leased one runs on the daemon's engine
            self.engine = self.source.environment.engine.describe()
        return self.endpoints

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
        engine = self.engine.as_dict() if self.engine is not None else None
        return build_report(self.endpoints, phases, merge_resets(records), self.start_seconds, engine)

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
