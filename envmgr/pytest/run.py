"""The state of one pytest process's use of envmgr, as plain data kept in `config.stash` (never in module state).

The controller (the xdist controller, or the only process) owns the environment through its coordinator
(`envmgr.pytest.coordinator`: the source, the starts in the background, the socket its workers ask on); an xdist
worker never starts containers: it asks the controller, once per service (`RunState.ensure` remembers what it has
been given). The fixtures read the run through `run_of(config)`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

from envmgr.config import Settings
from envmgr.endpoints import Endpoints, Worker
from envmgr.errors import EnvmgrError
from envmgr.progress.events import Relay
from envmgr.pytest.reach import FixtureMap
from envmgr.pytest.report import Resets
from envmgr.services.registry import SERVICES, ServiceRegistry
from envmgr.timings import Timings

if TYPE_CHECKING:
    from envmgr.environment import Environment
    from envmgr.environment.snapshots import SnapshotBook
    from envmgr.pytest.source import SourceOptions
    from envmgr.services.base import Service

__all__ = ["RUN_KEY", "RunState", "Starter", "run_of"]


class Starter(Protocol):
    """Who starts services for the controller's process (`envmgr.pytest.coordinator.Coordinator`)."""

    @property
    def environment(self) -> Environment | None:
        """The handle on the environment (None for a leased one, or before one is chosen)."""

    def ensure(self, services: Sequence[str], why: Mapping[str, str], worker: Worker, wait: bool) -> Endpoints:
        """Have these services started for `worker` and return the run's endpoints (at once without `wait`)."""


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
    endpoints: Endpoints | None = None
    """the run's endpoints as this process last had them"""
    exitstatus: int | None = None
    stopped: str | None = None
    """why envmgr stopped the run (a service a test reaches could not start): it exits with pytest's usage error"""
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
    ensured: set[str] = field(default_factory=set)
    """services this process has waited for and has (an xdist worker asks the controller for each once)"""
    controller: str | None = None
    """an xdist worker: the socket on which the controller starts services (envmgr.pytest.channel)"""
    starter: Starter | None = None
    """the controller: who starts its services (its coordinator)"""
    integrations: list[str] = field(default_factory=list)
    """modules of the integrations registered in this process (`envmgr.integrations`): their fixtures and markers
    reach services too (see envmgr.pytest.reach)"""
    always: dict[str, str] = field(default_factory=dict)
    """services an integration says every test may use, and why (e.g. Redis behind Django's CACHES)"""
    notices: list[str] = field(default_factory=list)
    """lines for the user at the start of the session (the controller's: e.g. why ENVMGR_ENV_ID is not used)"""
    faults_used: bool = False
    """a collected test uses `envmgr_faults`: this process reaches shared servers through proxies of its own"""
    progress: Relay = field(default_factory=Relay, repr=False)
    """the controller: where its environment tells how each start goes (the terminal, the report's waterfall)"""
    origin: float = field(default_factory=time.perf_counter)
    """`time.perf_counter()` when envmgr first saw the run: the report's times count from it"""
    snapshot_book: SnapshotBook | None = None
    """this worker's named snapshots and baseline (made when `envmgr_env` is first used: see `snapshots()`)"""
    _fixture_map: FixtureMap | None = field(default=None, repr=False)

    @property
    def is_worker(self) -> bool:
        return self.worker_id != "main"

    @property
    def worker(self) -> Worker:
        return Worker(worker_id=self.worker_id, isolated=self.isolation == "worker")

    @property
    def environment(self) -> Environment | None:
        """The controller's handle on its environment (None in an xdist worker, and for a leased one)."""
        return self.starter.environment if self.starter is not None else None

    @property
    def failed(self) -> bool:
        return self.exitstatus is not None and self.exitstatus != 0

    def service(self, name: str) -> Service:
        """The service object of `name` for this run's settings (made once per process)."""
        if name not in self.services:
            self.services[name] = self.registry.create(name, self.settings)
        return self.services[name]

    def snapshots(self) -> SnapshotBook:
        """This worker's snapshot book (shared by `envmgr_env` and the per-test reset), made on first use."""
        if self.snapshot_book is None:
            from envmgr.environment.snapshots import SnapshotBook

            self.snapshot_book = SnapshotBook()
        return self.snapshot_book

    def stale(self, service: str) -> bool:
        """Whether the service's share is to be brought back to a baseline chosen since (`use_baseline`)."""
        return self.snapshot_book is not None and service in self.snapshot_book.stale

    def always_services(self) -> dict[str, str]:
        """The enabled services every test reaches, whatever its fixtures, and why: those a setting marks `always`
        (an app that reads its connection variables from the environment) and those an integration says every
        test may use (`always`: Redis behind Django's CACHES)."""
        enabled = self.settings.enabled_services()
        found = {name: "setting always" for name in enabled if self.settings.service(name).always}
        found.update({name: why for name, why in self.always.items() if name in enabled and name not in found})
        return found

    def fixture_map(self) -> FixtureMap:
        """Which fixture belongs to which service (see envmgr.pytest.reach), read once per process."""
        if self._fixture_map is None:
            self._fixture_map = FixtureMap.of(self.registry, self.settings, self.integrations)
        return self._fixture_map

    def worker_named(self, worker_id: str) -> Worker:
        return Worker(worker_id=worker_id, isolated=self.isolation == "worker")

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

        A service this process has waited for once is not asked for again (no crossing to the controller per test).
        An xdist worker asks the controller (which owns the environment); the controller (or the only process) has
        its coordinator start them, each once per run."""
        own = worker is None or worker == self.worker
        if wait and own and self.endpoints is not None and self.ensured.issuperset(services):
            return self.endpoints
        worker = worker or self.worker
        if self.is_worker:
            endpoints = self._ask_controller(services, dict(why or {}), worker, wait)
        else:
            if self.starter is None:
                raise EnvmgrError("the run has no environment to start services in", "report this as an envmgr bug")
            endpoints = self.starter.ensure(services, dict(why or {}), worker, wait)
        if wait and own:
            self.endpoints = endpoints
            self.ensured.update(services)
            self._export(endpoints)
        return endpoints

    def _ask_controller(self, services: Sequence[str], why: dict[str, str], worker: Worker, wait: bool) -> Endpoints:
        if self.controller is None:
            raise EnvmgrError(
                "this xdist worker has no way to reach the run's controller",
                "the controller runs without envmgr's plugin; do not disable it in the controller only",
            )
        from envmgr.pytest.channel import ControllerClient

        return ControllerClient(self.controller).ensure(services, worker.worker_id, why, wait)

    def _export(self, endpoints: Endpoints) -> None:
        """This process's connection variables, as the services it has now are (a planned port that was taken
        meanwhile, a replica started for this worker)."""
        from envmgr.pytest.variables import worker_variables

        os.environ.update(worker_variables(endpoints, self.worker, self.settings, self.registry))


RUN_KEY = pytest.StashKey[RunState]()


def run_of(config: pytest.Config) -> RunState:
    try:
        return config.stash[RUN_KEY]
    except KeyError:
        raise pytest.UsageError("envmgr: the plugin is not configured in this process") from None
