"""Where a pytest run's environment comes from, and how it ends.

    source = choose_source(settings, options, workers)    # Owned, Attached or Leased
    endpoints = source.start()
    ...
    for line in source.finish(failed=run_failed):        # what to tell the user
        print(line)

- `OwnedSource`: the run starts its own environment and removes it at the end, unless kept (`--envmgr-keep`), or
  kept for a post-mortem because the run failed (`--envmgr-keep-on-failure`).
- `AttachedSource`: the run uses a running environment (`--envmgr-env ID`) and leaves it running.
- `LeasedSource`: the run leases a warm environment from the daemon and hands it back (the daemon resets it).

What happens at the end is a pure decision (`ending`), unit-tested without Docker.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from envmgr.config import Settings
from envmgr.daemon.client import DaemonClient, Lease, lease_if_running
from envmgr.endpoints import Endpoints, Worker, started_for
from envmgr.errors import DaemonNotRunningError, EnvironmentNotFoundError, EnvmgrError
from envmgr.progress.events import Progress, silent
from envmgr.pytest.variables import CONTROLLER_VARIABLE

if TYPE_CHECKING:
    from envmgr.environment import Environment
    from envmgr.pytest.warm import Keeper

__all__ = [
    "ENV_ID_VARIABLE",
    "AttachedSource",
    "Ending",
    "EnvironmentSource",
    "LeasedSource",
    "OwnedSource",
    "SourceOptions",
    "attach_problem",
    "choose_source",
    "ending",
    "sourced_env_id",
]


@dataclass(frozen=True)
class SourceOptions:
    """The run's choices about its environment (from the --envmgr-* options)."""

    keep: bool = False
    """--envmgr-keep: leave the environment running after the run"""
    keep_on_failure: bool = False
    """--envmgr-keep-on-failure: a failed run leaves its environment running for a post-mortem"""
    attach_id: str | None = None
    """--envmgr-env ID: use this running environment"""


class Ending(enum.Enum):
    REMOVE = "remove"
    """removed with everything it made"""
    KEEP = "keep"
    """left running, as asked (--envmgr-keep) or because the run did not start it (--envmgr-env)"""
    POST_MORTEM = "post-mortem"
    """left running because the run failed (--envmgr-keep-on-failure): no watchdog, nothing reaps it"""
    HAND_BACK = "hand back"
    """returned to the daemon, which resets it for the next run"""


def ending(kind: str, options: SourceOptions, failed: bool) -> Ending:
    """What happens to a run's environment at its end: `kind` is "owned", "attached" or "leased"."""
    if kind == "leased":
        return Ending.HAND_BACK
    if kind == "attached" or options.keep:
        return Ending.KEEP
    if options.keep_on_failure and failed:
        return Ending.POST_MORTEM
    return Ending.REMOVE


class EnvironmentSource(Protocol):
    kind: str
    environment: Environment | None
    """the handle on the environment (None for a leased one: the daemon holds it)"""

    def start(self) -> Endpoints:
        """Get the environment (for an owned one: its network; services start in `ensure`)."""
        ...

    def ensure(self, services: Sequence[str], worker: Worker | None) -> Endpoints:
        """Have these services running (for a per-worker service: `worker`'s replica) and return the endpoints."""
        ...

    def finish(self, failed: bool) -> list[str]:
        """End the run's use of the environment; return what to tell the user (one line each)."""
        ...

    def summary(self) -> str | None:
        """A line about where the environment came from, when the report does not say it."""
        ...


class OwnedSource:
    kind = "owned"

    def __init__(
        self,
        settings: Settings,
        workers: int,
        options: SourceOptions,
        progress: Progress = silent,
        keeper: Keeper | None = None,
    ) -> None:
        from envmgr.environment import Environment

        self.options = options
        self.keeper = keeper
        """hands the environment to the daemon at the end, which keeps it warm for the next run (envmgr.pytest.warm)"""
        # Kept (or kept on failure, or kept warm by the daemon): labelled detached from the start (never swept as an
        # orphan afterwards), yet guarded by its watchdog until the run ends, so that a killed run leaves nothing.
        self.environment: Environment | None = Environment(
            settings=settings,
            detach=options.keep or options.keep_on_failure or keeper is not None,
            guard_detached=True,
            workers=workers,
            progress=progress,
            labels=keeper.labels if keeper is not None else None,
        )

    def plan(self) -> Endpoints:
        """Every service's endpoint before anything starts (see Environment.plan)."""
        assert self.environment is not None
        return self.environment.plan()

    def start(self) -> Endpoints:
        assert self.environment is not None
        self.environment.begin()
        return self.environment.endpoints

    def ensure(self, services: Sequence[str], worker: Worker | None) -> Endpoints:
        assert self.environment is not None
        return self.environment.ensure(services, worker)

    def finish(self, failed: bool) -> list[str]:
        environment = self.environment
        assert environment is not None
        if not environment.begun:  # nothing was started (no test used a service): no engine to ask
            environment.release_given()  # but a given server held since planning is let go
            return []
        decision = ending(self.kind, self.options, failed)
        lines = []
        if decision in (Ending.KEEP, Ending.POST_MORTEM) and environment.release_given():
            lines.append(  # the next run's sweep would remove it anyway: its session on the server is gone
                f"envmgr: what environment {environment.id} made on servers envmgr did not start (url) is removed, "
                "not kept"
            )
        if decision in (Ending.KEEP, Ending.POST_MORTEM) and not environment.needs_engine:
            environment.remove()  # nothing else to keep
            return lines
        if decision is Ending.KEEP:
            environment.hand_over()  # its watchdog guarded it while the run lasted
            return [*lines, f"envmgr: environment {environment.id} kept; remove it with: envmgr down {environment.id}"]
        if decision is Ending.POST_MORTEM:
            environment.hand_over()
            endpoints = environment.endpoints
            lines.append(f"envmgr: the run failed; environment {environment.id} is kept for a post-mortem:")
            every = endpoints.all()
            width = max(len(_shown(e.service, e.replica)) for e in every)
            lines += [f"envmgr:   {_shown(e.service, e.replica):{width}}  {e.redacted_url}" for e in every]
            lines.append(
                "envmgr: full URLs with credentials: envmgr status --json; remove it with: "
                f"envmgr down {environment.id}"
            )
            return lines
        if self.keeper is not None:
            kept = self.keeper.keep(environment)
            if kept is not None:
                return [kept]
        environment.remove()
        return [self.keeper.problem] if self.keeper is not None and self.keeper.problem else []

    def summary(self) -> str | None:
        return None


class AttachedSource:
    kind = "attached"

    def __init__(self, env_id: str, settings: Settings, workers: int = 0) -> None:
        self.env_id = env_id
        self.settings = settings
        self.workers = workers
        """the run's xdist workers in worker isolation (0: one share for everybody)"""
        self.environment: Environment | None = None
        self.endpoints = Endpoints(id=env_id, network="")

    def start(self) -> Endpoints:
        from envmgr.environment import Environment

        self.environment = Environment.attach(self.env_id, settings=self.settings)
        self.endpoints = self.environment.prepare()
        return self.endpoints

    def ensure(self, services: Sequence[str], worker: Worker | None) -> Endpoints:
        """Everything it has runs already; a per-worker service must have a replica for `worker` (the worker's
        tests would otherwise share another worker's WireMock journal or Celery worker)."""
        if worker is not None and self.environment is not None:
            self.environment.check_replicas(services, worker, self.workers)
        return self.endpoints

    def finish(self, failed: bool) -> list[str]:
        return [f"envmgr: environment {self.env_id} kept; remove it with: envmgr down {self.env_id}"]

    def summary(self) -> str | None:
        return None


class LeasedSource:
    kind = "leased"
    environment: Environment | None = None

    def __init__(self, lease: Lease, client: DaemonClient | None = None) -> None:
        self.lease = lease
        self.client = client or DaemonClient()

    def plan(self) -> Endpoints:
        """Every service's endpoint: where it runs, or where the daemon will start it (`ensure`)."""
        return self.lease.endpoints

    def start(self) -> Endpoints:
        return self.lease.endpoints

    def ensure(self, services: Sequence[str], worker: Worker | None) -> Endpoints:
        """The daemon starts on the leased environment what it lacks (a lease of a run's kept environment has what
        that run used; a lease of `envmgr up`'s, everything)."""
        worker_id = worker.worker_id if worker is not None else None
        isolated = worker.isolated if worker is not None else False
        return self.client.ensure(self.lease.id, list(services), worker_id, isolated)

    def finish(self, failed: bool) -> list[str]:
        try:
            self.client.release(self.lease.id)  # the daemon resets it and keeps it warm
        except (DaemonNotRunningError, EnvironmentNotFoundError) as exc:  # stopped (--force): the environment too
            return [f"envmgr: lease {self.lease.id} not handed back: {exc.cause}"]
        return []

    def summary(self) -> str | None:
        state = "warm" if self.lease.warm else "started for this run"
        return f"envmgr: environment {self.lease.id} leased from the daemon ({state})"


ENV_ID_VARIABLE = "ENVMGR_ENV_ID"
"""the environment `envmgr up --env-file` wrote (and a shell that sourced the file has)"""


def sourced_env_id(environ: Mapping[str, str]) -> str | None:
    """ENVMGR_ENV_ID as the user's shell set it (`set -a; . ./.env` after `envmgr up --env-file .env`), or None.
    Not when it comes from an envmgr run: a pytest run exports ENVMGR_ENV_ID (its own environment's) together with
    ENVMGR_RUN_CONTROLLER to its processes, and a pytest started inside one of its tests inherits both."""
    value = environ.get(ENV_ID_VARIABLE, "").strip()
    if not value or environ.get(CONTROLLER_VARIABLE):
        return None
    return value


def attach_problem(env_id: str, settings: Settings, workers: int) -> str | None:
    """Why this run cannot use the running environment `env_id` (None: it can): it is not on this engine (or the
    engine does not answer), it was started with another user's key, or it has too few replicas of its per-worker
    services for the run's `workers` xdist workers."""
    from envmgr.environment import Environment

    try:
        environment = Environment.attach(env_id, settings=settings)
    except EnvmgrError as exc:
        return exc.cause
    per_worker = sorted(environment.topology.per_worker)
    if workers > 0 and per_worker and environment.workers < workers:
        return (
            f"it was started {started_for(environment.workers)} and this run has {workers} "
            f"({', '.join(per_worker)} need a replica per worker: envmgr up --workers {workers})"
        )
    return None


def choose_source(
    settings: Settings, options: SourceOptions, workers: int, progress: Progress = silent
) -> EnvironmentSource:
    """Attached when asked; else leased from the daemon when one answers (setting `daemon`); else owned (its starts
    told to `progress`). A run that keeps its environment never leases (a leased environment goes back to the
    daemon)."""
    if options.attach_id is not None:
        return AttachedSource(options.attach_id, settings, workers)
    if not (options.keep or options.keep_on_failure):
        lease = lease_if_running(settings, None, workers)
        if lease is not None:
            return LeasedSource(lease)
    return OwnedSource(settings, workers, options, progress)


def _shown(service: str, replica: int) -> str:
    return service if replica == 0 else f"{service}-{replica}"
