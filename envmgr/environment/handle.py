"""Environment: the services of one isolated test environment, started together and removed together; the small
facade over its phases (`plan.py`: names, ports, credentials before anything runs; `runtime.py`: network, starts,
readiness, teardown; `attach.py`: rebuilt from the labels of one started elsewhere).

    with Environment(["postgres", "redis"]) as env:
        env.endpoints["postgres"].url

Start-up: settings are already validated; the engine is reached; orphans of dead owners are swept; every image is
checked before anything is created; a labelled network is created and a watchdog guards it; the services start
concurrently (a service waits only for those it requires), each ready when its own protocol answers, then prepared
(migrations, seeds). Any failure removes everything created so far and raises the failing service's error.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from envmgr.config import Settings, load_settings
from envmgr.credentials import Credentials
from envmgr.endpoints import Endpoints, Worker, started_for
from envmgr.engine.connection import Engine
from envmgr.engine.labels import LABEL_PREFIX, LABEL_REPLICA, LABEL_SERVICE, LABEL_SERVICE_CONFIG
from envmgr.environment.attach import read_attachment, read_ready
from envmgr.environment.given import refuse_unknown
from envmgr.environment.plan import EnvironmentPlan, Labels
from envmgr.environment.runtime import Runtime
from envmgr.environment.snapshots import ShareHooks, SnapshotBook
from envmgr.errors import EnvmgrError, ServiceNotEnabledError
from envmgr.progress.events import Progress, silent
from envmgr.services.base import Service
from envmgr.services.registry import SERVICES, ServiceRegistry
from envmgr.timings import Timings
from envmgr.topology import Topology

__all__ = ["Environment", "Health"]

STOP_TIMEOUT = 5


@dataclass(frozen=True)
class Health:
    """One probe of one service."""

    service: str
    healthy: bool
    seconds: float
    detail: str = ""


class Environment:
    """An isolated set of service containers on its own Docker network; a context manager."""

    def __init__(
        self,
        services: Sequence[str] | None = None,
        *,
        settings: Settings | None = None,
        env_id: str | None = None,
        sandbox: str | None = None,
        detach: bool = False,
        engine: Engine | None = None,
        workers: int = 0,
        labels: Labels | None = None,
        guard_detached: bool = False,
        registry: ServiceRegistry = SERVICES,
        credentials: Credentials | None = None,
        progress: Progress = silent,
    ) -> None:
        """`workers`: 0 for session isolation (one replica of everything); N for worker isolation, where each of
        the N pytest workers has its own replica of the per-worker services (WireMock, Celery worker).

        The services' passwords derive from the user's key and the environment's id (envmgr.credentials): no label
        holds one, and a process of the same user that attaches derives the same. `progress` is told how each start
        goes (envmgr.progress.events: the terminal's live lines, the report's waterfall)."""
        settings = settings if settings is not None else load_settings()
        settings.seeds_path()  # the seeds folder checked before anything is planned or started (a SeedError)
        names = list(services) if services is not None else settings.enabled_services()
        self._plan = EnvironmentPlan(
            settings, names, workers=workers, registry=registry, env_id=env_id,
            credentials=credentials or Credentials.load(), sandbox=sandbox, detach=detach, labels=labels or {},
        )  # fmt: skip
        self.guard_detached = guard_detached
        """with detach: keep the watchdog (a crash of this process still removes it) until hand_over()"""
        self.timings = Timings()
        self._runtime = Runtime(self._plan, engine, self.timings, progress)
        self.scope: Worker | None = None
        """set for a test process's handle (the `envmgr_env` fixture): `reset()` then resets this worker's share
        only, never another worker's"""
        self.snapshots = SnapshotBook()
        """the named snapshots of the scope's share (the `envmgr_env` fixture hands it the run's book)"""
        self.shares: ShareHooks | None = None
        """the test process's shares (the `envmgr_env` fixture): which services a snapshot takes, pools let go"""
        self.unknown_given: list[str] = []  # given servers (`url`) attached without endpoints: reset/health refuse

    # what it is ------------------------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._plan.id

    @property
    def settings(self) -> Settings:
        return self._plan.settings

    @property
    def topology(self) -> Topology:
        return self._plan.topology

    @property
    def workers(self) -> int:
        return self._plan.workers

    @property
    def sandbox(self) -> str | None:
        return self._plan.sandbox

    @property
    def detach(self) -> bool:
        return self._plan.detach

    @detach.setter
    def detach(self, value: bool) -> None:
        self._plan.detach = value

    @property
    def engine(self) -> Engine:
        return self._runtime.engine

    @property
    def needs_engine(self) -> bool:
        """Whether any of its services runs in a container (not all on servers envmgr did not start: `url`)."""
        return self._plan.given.needs_engine()

    @property
    def failure(self) -> BaseException | None:
        """The first start that failed (the environment is not to be kept or handed on), or None."""
        return self._runtime.failure

    @property
    def begun(self) -> bool:
        """Whether this handle has created anything on the engine (its network, its watchdog) and not removed it."""
        return self._runtime.begun

    @property
    def network_name(self) -> str:
        return self._plan.network_name

    @property
    def services(self) -> list[str]:
        return list(self._plan.services)

    def service(self, name: str) -> Service:
        """The service object of one of this environment's services (its hooks: worker_view, worker_reset...)."""
        return self._plan.service(name)

    def replicas(self, name: str) -> list[Worker]:
        """The workers served by the containers of a service: one each for per-worker services."""
        return self._plan.replicas(name)

    def labels(self) -> dict[str, str]:
        """The labels put on every container and network of this environment."""
        return self._plan.labels()

    @property
    def endpoints(self) -> Endpoints:
        endpoints = self._runtime.endpoints
        if endpoints is None:
            raise EnvmgrError(f"environment {self.id} is not started", "call start() or use it in a with block")
        return endpoints

    # lifecycle -------------------------------------------------------------------------------------------------

    def start(self, service: str | None = None, worker: Worker | None = None) -> Endpoints:
        """Start every service and return the endpoints; on failure nothing is left running.

        With `service`: start that stopped service again (see `stop`), on the same ports, once it answers.
        """
        if service is not None:
            self._runtime.restart(service, worker or Worker())
            return self.endpoints
        if self._runtime.complete():
            return self.endpoints
        try:
            self.begin()
            self.ensure(self.services)
        except BaseException:
            self._runtime.teardown(final=False)  # nothing left running; start() may be called again
            raise
        if self.detach and not self.guard_detached:
            self._runtime.dismiss_watchdog()
        return self.endpoints

    def begin(self) -> None:
        """Sweep orphans, create the labelled network and the watchdog: what every service start needs first."""
        self._runtime.begin()

    def ensure(self, services: Sequence[str], worker: Worker | None = None) -> Endpoints:
        """Start whatever of `services` (and what they need) is not started yet, and return the endpoints.

        For a per-worker service: the replica of `worker`, or every replica when `worker` is None. Concurrent calls
        share the starts they have in common. The first start that fails (or image: a derived image's build) fails
        the environment: every call waiting then, and every later one, raises its error at once; the services that
        started keep running until `close()` (`start()` removes everything on failure instead), which also stops a
        build under way.
        """
        self._runtime.ensure(services, worker)
        return self.endpoints

    def plan(self, worker: Worker | None = None) -> Endpoints:
        """The endpoints every service will have (ports, names, credentials), before anything starts and without
        the engine: for a per-worker service, `worker`'s replica (or every replica). Starts keep to the plan (a port
        taken meanwhile is replaced)."""
        return self._plan.plan(worker, self._runtime.connected)

    def check_replicas(self, services: Sequence[str], worker: Worker, workers: int) -> None:
        """For a run of `workers` xdist workers on this (attached) environment: ServiceNotEnabledError when one of
        `services` has a replica per worker but none of `worker`'s own (the environment was started for fewer
        workers), rather than `worker` sharing another worker's."""
        if workers <= 0:
            return  # session isolation: one share for everybody, by choice
        for name in services:
            if name in self.topology.per_worker and not 0 <= worker.replica < self.workers:
                raise ServiceNotEnabledError(
                    f"environment {self.id} was started {started_for(self.workers)}: {name} has no replica of "
                    f"{worker.worker_id}'s own (its tests would see another worker's)",
                    f"start it for this run's workers: envmgr up --workers {workers}; or run with "
                    f"{f'-n {self.workers}' if self.workers else 'no -n'} or --envmgr-isolation session",
                )

    def discard(self, services: Sequence[str]) -> None:
        """Remove every replica of these services from the running environment, once their starts have ended
        (started ahead of need and not needed after all: see envmgr.pytest.prediction). Their planned ports stay
        theirs, so a later `ensure` starts them where the plan said."""
        self._runtime.discard(services)

    def started(self) -> list[str]:
        """The services with at least one replica started."""
        return list(dict.fromkeys(name for name, _ in self._runtime.ready))

    def stop_starting(self) -> None:
        """Its owner is about to remove it: no start begins from now on (a thread still starting something in the
        background gets an error instead of a new network), and starts waiting for readiness give up."""
        self._runtime.stop_starting()

    def release_given(self) -> list[str]:
        """Remove what it made on servers envmgr did not start and let go of them (an environment that started
        nothing: `close` is not needed); return what was removed."""
        return self._plan.given.release()

    def hand_over(self) -> None:
        """Let the environment outlive this process: its watchdog is dismissed (a guarded detached one's too)."""
        self._runtime.dismiss_watchdog()

    def close(self) -> None:
        """Remove every container, network and volume of this environment (a detached one is left running)."""
        if self.detach and self._runtime.endpoints is not None:
            return
        self._runtime.teardown()

    def remove(self) -> None:
        """Remove the environment whatever its owner or detached state (`envmgr down`)."""
        self._runtime.teardown()

    def __enter__(self) -> Environment:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # operations on a running environment -------------------------------------------------------------------

    def health(self, services: Sequence[str] | None = None) -> dict[str, Health]:
        """Probe every service once (or those named)."""
        names = [*self.endpoints.services, *self.unknown_given] if services is None else services
        refuse_unknown(self.id, names, self.unknown_given)
        return {name: self._probe_once(name) for name in names}

    def reset(self, services: Sequence[str] | None = None) -> None:
        """Bring services back to their prepared state (default: all), every replica, with what workers made (their
        databases fresh clones again, kept for the next run's workers; Redis databases, AWS accounts emptied).

        On a handle scoped to a worker (`scope`, as `envmgr_env` gives each test process): that worker's share of
        each service only (its database, its Redis db, its account, its replicas); other workers are untouched."""
        names = list(services) if services is not None else [*self.services, *self.unknown_given]
        refuse_unknown(self.id, names, self.unknown_given)
        for name in names:
            service = self.service(name)
            with self.timings.measure(name, "reset"):
                if self.scope is not None:
                    service.worker_reset(self._runtime.endpoint_of(name, self.scope), self.scope)
                    continue
                for endpoint in self.endpoints.all():
                    if endpoint.service == name:
                        service.reset(endpoint)

    # named snapshots (docs/snapshots.md) ---------------------------------------------------------------------

    def snapshot(self, name: str, services: Sequence[str] | None = None) -> None:
        """Keep the scope's share of each service (default: those this worker has used; without a scope, every
        started service's session share) as it is now, under `name` (taken again if it exists): its database
        copied, its Redis keys dumped, its account's objects and queues, its WireMock stubs."""
        worker = self.scope or Worker()
        names = list(services) if services is not None else self._share_services()
        if name in self.snapshots.taken:
            self.drop_snapshot(name)
        kept: dict[str, object] = {}
        try:
            for service in names:
                self._let_go(service)
                with self.timings.measure(service, "snapshot"):
                    endpoint = self._runtime.endpoint_of(service, worker)
                    kept[service] = self.service(service).snapshot(endpoint, worker, name)
        except BaseException:  # no half snapshot: what the services before the failing one kept is dropped
            self.snapshots.taken[name] = kept
            with contextlib.suppress(Exception):
                self.drop_snapshot(name)
            raise
        self.snapshots.taken[name] = kept

    def restore(self, name: str) -> None:
        """The scope's share of each service in snapshot `name` made what it kept again (SnapshotError, naming
        those there are, for a name never taken)."""
        worker = self.scope or Worker()
        for service, kept in self.snapshots.kept(name).items():
            self._let_go(service)
            with self.timings.measure(service, "restore"):
                self.service(service).restore(self._runtime.endpoint_of(service, worker), worker, name, kept)

    def use_baseline(self, name: str | None) -> None:
        """From the next test on, the per-test reset of each service in snapshot `name` goes back to it instead of
        the seeded state (None: the seeded state again); its services are brought back to it before the next test
        that reaches them."""
        if name is not None:
            self.snapshots.stale.update(self.snapshots.kept(name))
        self.snapshots.baseline = name

    def drop_snapshot(self, name: str) -> None:
        """Remove snapshot `name` (what its services keep on their servers); the baseline, when it was this one,
        is the seeded state again."""
        worker = self.scope or Worker()
        for service, kept in self.snapshots.kept(name).items():
            self.service(service).drop_snapshot(self._runtime.endpoint_of(service, worker), worker, name, kept)
        del self.snapshots.taken[name]
        if self.snapshots.baseline == name:
            self.snapshots.baseline = None

    def drop_snapshots(self) -> None:
        """Remove every snapshot (the `envmgr_env` fixture does at the end of the worker's session)."""
        for name in list(self.snapshots.taken):
            self.drop_snapshot(name)

    def _share_services(self) -> list[str]:
        return list(self.shares.services) if self.shares is not None else self.started()

    def _let_go(self, service: str) -> None:
        if self.shares is not None:
            self.shares.let_go(service)

    def prepare(self) -> Endpoints:
        """Run every service's prepare step again (on an attached environment): a template that exists is reused."""
        prepared = []
        for endpoint in self.endpoints.all():
            with self.timings.measure(endpoint.service, "prepare", endpoint.replica):
                prepared.append(self.service(endpoint.service).prepare(endpoint))
        return self._runtime.prepared({(e.service, e.replica): e for e in prepared})

    # fault injection -----------------------------------------------------------------------------------------

    def pause(self, service: str, worker: Worker | None = None) -> None:
        """Freeze a service's container (connections hang: "Redis down", "database not answering")."""
        self._runtime.container_of(service, worker).pause()

    def unpause(self, service: str, worker: Worker | None = None) -> None:
        self._runtime.container_of(service, worker).unpause()

    def stop(self, service: str, worker: Worker | None = None) -> None:
        """Stop a service's container (connections are refused); `start(service)` brings it back on the same ports."""
        self._runtime.container_of(service, worker).stop(timeout=STOP_TIMEOUT)

    def _probe_once(self, name: str) -> Health:
        started = time.perf_counter()
        try:
            self.service(name).probe(self.endpoints[name])
        except Exception as exc:  # a failing probe is the answer here, not an error
            return Health(name, False, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
        return Health(name, True, time.perf_counter() - started)

    # attaching to an environment started elsewhere ------------------------------------------------------

    @classmethod
    def on_given(cls, endpoints: Endpoints, settings: Settings, workers: int) -> Environment:
        """A handle on a run's environment whose services are all on servers envmgr did not start (no engine to
        read labels from): rebuilt from its endpoints (an xdist worker's `envmgr_env`); it never removes them."""
        env = cls(list(endpoints.services), settings=settings, env_id=endpoints.id, workers=workers, detach=True)
        env._runtime.adopt({(e.service, e.replica): e for e in endpoints.all()}, None)
        return env

    @classmethod
    def attach(
        cls,
        env_id: str,
        *,
        engine: Engine | None = None,
        settings: Settings | None = None,
        registry: ServiceRegistry = SERVICES,
        credentials: Credentials | None = None,
        stopped_ok: bool = False,
        services: Sequence[str] | None = None,
        resume: bool = False,
        given: Endpoints | None = None,
    ) -> Environment:
        """A handle on a running environment (started by another process), rebuilt from its labels; its passwords
        derived from this user's key (ConfigError when the environment was started with another key).

        `services`: the services the handle has (default: those the environment runs). `resume`: the handle takes
        charge of it (a daemon given a run's environment): it starts the services it has not started yet, on its
        network and with its labels, and `remove()` removes it.

        A stopped service is a ServiceStartError, unless `stopped_ok` (`envmgr status`): its endpoint is then where
        it will be once started again (envmgr pins the ports). EnvironmentNotFoundError when the environment is
        gone, or goes while it is read.

        `given`: the run's endpoints (a worker's `envmgr_endpoints`): its given servers' (`url`) are not in labels;
        without them, `reset()` and `health()` of those are an EnvmgrError."""
        engine = engine or Engine.connect()
        credentials = credentials or Credentials.load()
        found = read_attachment(env_id, engine, settings, registry, credentials)
        record = found.record
        known = {name: given.services[name] for name in found.given if given is not None and name in given.services}
        names = list(dict.fromkeys([*(services or []), *found.services, *known]))
        env = cls(names, settings=found.settings, env_id=env_id, sandbox=record.sandbox,
                  detach=record.detached, engine=engine, workers=found.workers, registry=registry,
                  credentials=credentials)  # fmt: skip
        gateway = engine.network_gateway(record.networks[0]) if record.networks else None
        ready = read_ready(env._plan, engine, record, stopped_ok=stopped_ok)
        env._runtime.adopt({**ready, **{(name, e.replica): e for name, e in known.items()}}, gateway)
        env.unknown_given = [name for name in found.given if name not in known]
        env.detach = True  # a handle never tears down what it did not start, unless asked: see remove()
        if resume:
            per_service = {LABEL_SERVICE, LABEL_REPLICA, LABEL_SERVICE_CONFIG}
            own = {key: value for key, value in record.labels.items() if key.startswith(LABEL_PREFIX)}
            env._runtime.resume({key: value for key, value in own.items() if key not in per_service})
        return env
