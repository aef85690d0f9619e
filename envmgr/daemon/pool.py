"""The daemon's environments, pooled per configuration: leased to one holder at a time, reset on release, and at
most `daemon_pool_size` idle ones per configuration.

A configuration is a hash of what an environment is made from (`config_key`): the settings, the services, the
number of workers, the migrations and the seed files. Environments carry `envmgr.daemon=<daemon key>`,
`envmgr.config=<configuration hash>` and the settings they were made from, so that a daemon started after a crash
adopts them (`Pool.recover`, in the background while the daemon answers already: leases and releases wait for it,
so that nothing is leased twice). They are created detached (no watchdog): they outlive a daemon crash.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from envmgr.config import Settings
from envmgr.daemon.keys import config_key
from envmgr.daemon.leases import Leases
from envmgr.daemon.protocol import LeaseRequest
from envmgr.endpoints import Endpoints, Worker
from envmgr.engine.connection import Engine
from envmgr.engine.labels import LABEL_CONFIG, LABEL_DAEMON, LABEL_SETTINGS, Owner
from envmgr.environment import Environment
from envmgr.errors import DaemonError, EnvironmentNotFoundError, first_line

__all__ = ["RECOVERY_WAIT", "Pool", "Warm"]

LOG = logging.getLogger("envmgr.daemon")
RELEASE_WAIT = 60.0
SHUTDOWN_WAIT = 120.0
RECOVERY_WAIT = 300.0
"""seconds a lease or a release waits for the adoption of the last daemon's environments"""


@dataclass
class Warm:
    """One environment of the pool: idle (no holder), leased, or being reset to go back to the pool (releasing)."""

    env: Environment
    config: str
    holder: Owner | None = None
    project: tuple[str, int] | None = None
    """the project's folder and the xdist workers it was made for (None: adopted after a restart of the daemon)"""
    idle_since: float = field(default_factory=time.monotonic)
    releasing: bool = False

    @property
    def pooled(self) -> bool:
        """Idle, or on its way back to idle: what counts against `daemon_pool_size`."""
        return self.holder is None or self.releasing


class Pool:
    """The environments of one daemon; every method is safe to call from several threads."""

    def __init__(self, engine: Engine, key: str) -> None:
        self.engine = engine
        self.key = key
        self.leases = Leases(engine)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._envs: dict[str, Warm] = {}
        self._warming: dict[str, int] = {}
        self._start_locks: dict[str, threading.Lock] = {}
        self._background: set[threading.Thread] = set()
        self._closed = False
        self._recovered = threading.Event()

    def recover(self) -> None:
        """Adopt the environments of a previous daemon on this engine, with their leases, from labels (the idle
        ones reset); stops adopting when the pool closes. Leases and releases wait until it has ended."""
        try:
            self._adopt()
        finally:
            self._recovered.set()

    def recover_in_background(self) -> None:
        """`recover` in a thread (`remove_all` waits for it): the daemon answers meanwhile."""

        def recover() -> None:
            try:
                self.recover()
            except Exception:  # what could not be adopted stays labelled: swept once this daemon has gone
                LOG.exception("adopting the last daemon's environments failed")

        self._in_background(recover, "envmgr-recover")

    @property
    def recovering(self) -> bool:
        """Still adopting the last daemon's environments."""
        return not self._recovered.is_set()

    def await_recovery(self, timeout: float = RECOVERY_WAIT) -> None:
        """Return once the adoption has ended; DaemonError after `timeout` seconds."""
        if not self._recovered.wait(timeout):
            raise DaemonError(
                f"the envmgr daemon is still adopting the environments of the last one (waited {timeout:g} s)",
                "try again in a moment (envmgr daemon status answers meanwhile), or read the daemon's log",
            )

    def _adopt(self) -> None:
        for env_id, record in self.engine.environments().items():
            if record.labels.get(LABEL_DAEMON) != self.key:
                continue
            if record.holder is None and record.owner is not None and record.owner.is_alive():
                continue  # a run's own, still running (made with this key, handed over at its end: `adopt`)
            with self._lock:
                if self._closed:
                    return  # stopping: what is not adopted stays labelled, swept once this daemon has gone
            try:
                settings = Settings.model_validate_json(record.labels[LABEL_SETTINGS])
                env = Environment.attach(
                    env_id, engine=self.engine, settings=settings, services=settings.enabled_services(), resume=True
                )
                holder = self.leases.holder(env_id)
                if holder is None:
                    env.reset()  # a previous daemon may have died mid-release: start the next lease clean
            except Exception as exc:  # an environment that cannot be adopted is removed, not leaked
                LOG.warning("removing environment %s that cannot be adopted: %s", env_id, first_line(exc))
                self.engine.remove_environment(env_id)
                continue
            warm = Warm(env=env, config=record.labels.get(LABEL_CONFIG, ""), holder=holder)
            with self._lock:
                self._envs[env_id] = warm
            LOG.info("adopted %s (%s)", env_id, "leased" if warm.holder else "idle")

    # leasing --------------------------------------------------------------------------------------------------

    def lease(self, request: LeaseRequest) -> tuple[Warm | None, bool]:
        """An environment for the holder, and whether it was warm (idle in the pool) rather than started for it.
        A warm one gets the requested services it lacks (`request.start`: started before the answer); when none is
        warm, one is started for it, unless `request.start` is false (a test run, which then starts its own and may
        hand it over: `adopt`): then None."""
        self.await_recovery()  # an adopted one may be idle (or leased already)
        config = config_key(request.settings, request.workers)
        warm = self._take_idle(config, request.holder)
        was_warm = warm is not None
        if warm is not None and request.start:
            try:
                warm.env.ensure(request.services)
            except BaseException:
                self._discard(warm)
                raise
        if warm is None and not request.start:
            return None, False
        if warm is None:
            warm = self._start(request, config)
            try:
                with self._lock:
                    if self._closed:
                        raise DaemonError("the envmgr daemon is stopping", "start it again: envmgr daemon start")
                    self._envs[warm.env.id] = warm
                    self._mark_leased(warm, request.holder)
            except BaseException:
                self._discard(warm)
                raise
        if request.start:
            self._refill(request, config)
        return warm, was_warm

    def ensure(self, env_id: str, services: list[str], worker: Worker | None) -> Endpoints:
        """Start what a lease asks for (its tests reach it) on its environment; the environment's endpoints."""
        with self._lock:
            warm = self._envs.get(env_id)
        if warm is None or warm.holder is None:
            raise EnvironmentNotFoundError(f"no lease {env_id} in this envmgr daemon", "see envmgr daemon status")
        return warm.env.ensure(services, worker)

    def adopt(self, env_id: str, settings: Settings, workers: int) -> None:
        """Keep a run's environment warm: take charge of it (it was made with this daemon's labels), reset it and
        pool it; an older idle environment of the configuration beyond `daemon_pool_size` makes room for it."""
        self.await_recovery()
        config = config_key(settings, workers)
        record = self.engine.environments().get(env_id)
        if record is None:
            raise EnvironmentNotFoundError(f"no environment {env_id} on this engine", "nothing to keep")
        if record.labels.get(LABEL_DAEMON) != self.key or record.labels.get(LABEL_CONFIG) != config:
            raise DaemonError(
                f"environment {env_id} was not made for this daemon's pool (configuration {config})",
                "it is removed by its run as usual",
            )
        env = Environment.attach(
            env_id, engine=self.engine, settings=settings, services=settings.enabled_services(), resume=True
        )
        project = (str(settings.project_root), workers)
        warm = Warm(env=env, config=config, holder=Owner.current(), releasing=True, project=project)
        with self._lock:
            if self._closed:
                raise DaemonError("the envmgr daemon is stopping", "the run removes its environment")
            crowded = [w for w in self._envs.values() if w.config == config and w.holder is None]
            # the project's migrations, seeds or settings changed since: no run leases these again
            stale = [w for w in self._envs.values() if w.project == project and w.config != config and w.holder is None]
            for older in stale:
                del self._envs[older.env.id]  # out of the pool now; off the engine after the run has its answer
            self._envs[env_id] = warm
        for older in crowded[: max(0, len(crowded) + 1 - settings.daemon_pool_size)]:
            LOG.info("removing %s: %s takes its place", older.env.id, env_id)
            self._discard(older)
        for older in stale:
            LOG.info("removing %s: %s is its project's newer configuration", older.env.id, env_id)
            remove = functools.partial(self.engine.remove_environment, older.env.id)
            self._in_background(remove, f"envmgr-remove-{older.env.id}")
        LOG.info("adopted %s from its run", env_id)
        self._in_background(lambda: self._finish_release(warm, keep=True), f"envmgr-adopt-{env_id}")

    def drop_idle(self) -> list[str]:
        """Remove every idle environment (`envmgr down --all-idle`); their ids."""
        with self._lock:
            idle = [w for w in self._envs.values() if w.holder is None]
            for warm in idle:
                self._envs.pop(warm.env.id)
            self._changed.notify_all()
        for warm in idle:
            self.engine.remove_environment(warm.env.id)
        return [warm.env.id for warm in idle]

    def _take_idle(self, config: str, holder: Owner) -> Warm | None:
        """An idle environment of this configuration; one being reset is waited for (up to RELEASE_WAIT s)."""
        deadline = time.monotonic() + RELEASE_WAIT
        with self._lock:
            while True:
                mine = [w for w in self._envs.values() if w.config == config]
                for warm in mine:
                    if warm.holder is None:
                        self._mark_leased(warm, holder)
                        return warm
                remaining = deadline - time.monotonic()
                if not any(w.releasing for w in mine) or remaining <= 0:
                    return None
                self._changed.wait(remaining)

    def _start(self, request: LeaseRequest, config: str) -> Warm:
        """Start an environment of this configuration (not in the pool yet)."""
        settings = request.settings
        labels = {LABEL_DAEMON: self.key, LABEL_CONFIG: config, LABEL_SETTINGS: settings.model_dump_json()}
        env = Environment(
            request.services, settings=settings, workers=request.workers, detach=True, engine=self.engine, labels=labels
        )
        with self._start_lock(config):
            env.start()
        return Warm(env=env, config=config, project=(str(settings.project_root), request.workers))

    def _warm_up(self, request: LeaseRequest, config: str) -> None:
        """Start an idle environment for the pool; remove it when the pool has filled up meanwhile."""
        warm = self._start(request, config)
        with self._lock:
            if not self._closed and self._has_room(warm):
                self._envs[warm.env.id] = warm
                self._changed.notify_all()
                return
        LOG.info("removing the warmed-up %s: its configuration has its idle environments already", warm.env.id)
        self.engine.remove_environment(warm.env.id)

    def _start_lock(self, config: str) -> threading.Lock:
        """One start at a time per configuration: preparing runs Alembic in this process, and concurrent Alembic
        runs of one migration folder in threads of one process break each other (its module-level context)."""
        with self._lock:
            return self._start_locks.setdefault(config, threading.Lock())

    def _refill(self, request: LeaseRequest, config: str) -> None:
        """Start environments in the background until the configuration has `daemon_pool_size` of them (leased or
        idle), so that concurrent runs find a warm one too."""
        with self._lock:
            existing = sum(1 for w in self._envs.values() if w.config == config)
            missing = request.settings.daemon_pool_size - existing - self._warming.get(config, 0)
            if missing <= 0:
                return
            self._warming[config] = self._warming.get(config, 0) + missing

        def warm_up() -> None:
            try:
                self._warm_up(request, config)
            except Exception as exc:  # a failed warm-up is logged; the next lease starts its own environment
                LOG.warning("warming an environment for %s failed: %s", config, first_line(exc))
            finally:
                with self._lock:
                    self._warming[config] -= 1

        for _ in range(missing):
            self._in_background(warm_up, f"envmgr-warm-{config}")

    def _mark_leased(self, warm: Warm, holder: Owner) -> None:
        """Lease it (under the lock, which makes the lease unique; the volume makes it durable)."""
        self.leases.record(warm.env.id, holder)
        warm.holder = holder

    def _has_room(self, warm: Warm) -> bool:
        """True while the configuration has fewer than `daemon_pool_size` idle environments besides this one."""
        with self._lock:
            pooled = sum(1 for w in self._envs.values() if w.config == warm.config and w.pooled and w is not warm)
            return pooled < warm.env.settings.daemon_pool_size

    # releasing ------------------------------------------------------------------------------------------------

    def release(self, env_id: str) -> None:
        """End a lease: reset the environment and pool it, or remove it when the configuration has its
        `daemon_pool_size` idle environments already (or the reset fails)."""
        begun = self._begin_release(env_id)
        if begun is not None:
            self._finish_release(*begun)

    def release_later(self, env_id: str) -> None:
        """Release in the background: the client need not wait for the reset. The lease counts as ended from now
        on (`leased`), the environment is not leased again before the reset is done."""
        self.await_recovery()  # an adopted lease is only known once adopted
        begun = self._begin_release(env_id)
        if begun is not None:
            self._in_background(lambda: self._finish_release(*begun), f"envmgr-release-{env_id}")

    def _begin_release(self, env_id: str) -> tuple[Warm, bool] | None:
        """Mark it released (being reset) or take it out of the pool; None when it is released already."""
        with self._lock:
            warm = self._envs.get(env_id)
            if warm is None:
                raise EnvironmentNotFoundError(
                    f"no environment {env_id} in this envmgr daemon", "see envmgr daemon status"
                )
            if warm.holder is None or warm.releasing:
                return None  # released already, or being released by the monitor
            keep = self._has_room(warm)
            if keep:
                warm.releasing = True
            else:
                self._envs.pop(env_id)
                self._changed.notify_all()
            return warm, keep

    def _finish_release(self, warm: Warm, keep: bool) -> None:
        env_id = warm.env.id
        if not keep:
            LOG.info("removing %s: its configuration has its idle environments already", env_id)
            self.engine.remove_environment(env_id)
            return
        try:
            warm.env.reset()
        except Exception as exc:  # an environment that cannot be reset is not handed out again
            LOG.warning("reset of %s failed, removing it: %s", env_id, first_line(exc))
            self._discard(warm)
            return
        finally:
            self.leases.drop(env_id)
        with self._lock:
            if not self._closed:
                warm.holder = None
                warm.releasing = False
                warm.idle_since = time.monotonic()
                self._changed.notify_all()
                return
        self._discard(warm)

    def _in_background(self, work: Callable[[], object], name: str) -> None:
        """Run `work` in a thread that `remove_all` waits for (a release or a warm-up cut short would leak)."""

        def run() -> None:
            try:
                work()
            finally:
                with self._lock:
                    self._background.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=name, daemon=True)
        with self._lock:
            self._background.add(thread)
        thread.start()

    def _discard(self, warm: Warm) -> None:
        """Take it out of the pool and remove it from the engine (its lease volume too)."""
        with self._lock:
            self._envs.pop(warm.env.id, None)
            self._changed.notify_all()
        self.engine.remove_environment(warm.env.id)

    # for the monitor and the server ---------------------------------------------------------------------------

    def holders(self) -> dict[str, Owner]:
        """The environments leased now (not being released), and their holders."""
        with self._lock:
            return {env_id: w.holder for env_id, w in self._envs.items() if w.holder is not None and not w.releasing}

    def expire_idle(self) -> list[str]:
        """Remove the environments idle for longer than their `daemon_idle_ttl`; return their ids."""
        now = time.monotonic()
        with self._lock:
            expired = [
                w
                for w in self._envs.values()
                if w.holder is None and now - w.idle_since > w.env.settings.daemon_idle_ttl
            ]
            for warm in expired:
                self._envs.pop(warm.env.id)
        for warm in expired:
            self.engine.remove_environment(warm.env.id)
        return [warm.env.id for warm in expired]

    def leased(self) -> list[str]:
        """The environments leased now: a lease that has ended (its environment being reset) is not."""
        return list(self.holders())

    def status(self) -> list[dict[str, Any]]:
        """One entry an environment, in the shape of the protocol's `status` answer."""
        now = time.monotonic()
        with self._lock:
            return [
                {
                    "id": env_id,
                    "config": warm.config,
                    "state": "leased" if warm.holder else "idle",
                    "holder": warm.holder.pid if warm.holder else None,
                    "idle_seconds": None if warm.holder else round(now - warm.idle_since, 1),
                    "services": list(dict.fromkeys(e.service for e in warm.env.endpoints.all())),
                }
                for env_id, warm in self._envs.items()
            ]

    def remove_all(self) -> None:
        """Close the pool and remove every environment, idle and leased, once the releases and warm-ups under way
        are done (up to SHUTDOWN_WAIT s)."""
        with self._lock:
            self._closed = True
            background = list(self._background)
        deadline = time.monotonic() + SHUTDOWN_WAIT
        for thread in background:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            envs = list(self._envs.values())
            self._envs.clear()
            self._changed.notify_all()
        for warm in envs:
            self.engine.remove_environment(warm.env.id)
