"""Warm by default: the next run of the same project leases this run's environment from the per-user daemon.

At the start of a run (the controller, before conftest files load), with the setting `daemon` (`auto`, the default):

* a daemon answers and holds an idle environment of this configuration (`envmgr.daemon.keys.config_key`): the run
  leases it (`lease_warm`), exports its variables as for a planned one, and asks the daemon for the services its
  tests reach that it has not started yet (`LeasedSource` in envmgr.pytest.source);
* else the run owns its environment as always, labelled so that the daemon may keep it (its labels computed when it
  begins, off the run's start), and a `Keeper` starts the daemon in the background when none answers. At the end
  the environment is handed to the daemon (`adopt`), which resets it and keeps it for `daemon_idle_ttl`, instead of
  being removed. A daemon started this way stops once it has had nothing to keep, and no request, for that long.

Not with a service on a server envmgr did not start (`url`), not in CI (a one-shot job has no next run:
`envmgr.sandbox.ci_job`, or `CI` set), not with another socket than the default one (`ENVMGR_DAEMON_SOCKET`: a
daemon someone else runs is used, never started), not when the run keeps its environment (`--envmgr-keep`,
`--envmgr-keep-on-failure`) or attaches to one: then runs are as without a daemon.
`daemon = "on"` starts a daemon wherever; `daemon = "off"` never uses one. An environment whose start failed is
removed, never kept.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from envmgr.config import Settings
from envmgr.daemon.client import DaemonClient, Lease, Warn, auto_mode, spawn
from envmgr.engine.labels import LABEL_CONFIG, LABEL_DAEMON, LABEL_SETTINGS
from envmgr.errors import EnvmgrError
from envmgr.sandbox import ci_job

if TYPE_CHECKING:
    from envmgr.environment import Environment

__all__ = ["SPAWN_WAIT", "Keeper", "may_start_daemon", "warm_start"]

SPAWN_WAIT = 20.0
"""seconds the run's end waits for the daemon it started in the background"""


def may_start_daemon(settings: Settings, environ: Mapping[str, str]) -> bool:
    """Whether a run may start the per-user daemon when none answers (see the module's documentation)."""
    if settings.daemon == "on":
        return True
    if settings.daemon == "off" or environ.get("ENVMGR_DAEMON_SOCKET"):
        return False
    in_ci = ci_job(environ) is not None or environ.get("CI", "").lower() in {"1", "true", "yes"}
    return not in_ci


class Keeper:
    """Hands a run's environment to the daemon at the run's end; starts the daemon in the background meanwhile when
    none answers."""

    def __init__(self, settings: Settings, workers: int, client: DaemonClient, start_daemon: bool) -> None:
        self.settings = settings
        self.workers = workers
        self.client = client
        self._start_daemon_too = start_daemon
        """start the daemon, in the background, when the environment begins (a run that starts nothing starts no
        daemon either)"""
        self._started: threading.Thread | None = None
        self._start_error: EnvmgrError | None = None
        self.problem: str | None = None
        """why the environment was not kept (its hand-over refused), for the run's last lines"""

    def _start_daemon(self) -> None:
        try:
            spawn(self.client.path, exit_when_idle=self.settings.daemon_idle_ttl)
        except EnvmgrError as exc:
            self._start_error = exc

    def labels(self) -> dict[str, str]:
        """The labels that make the environment one the daemon may keep (computed when the environment begins,
        which is also when the daemon starts in the background, when it is to)."""
        from envmgr.daemon.keys import config_key, daemon_key

        if self._start_daemon_too and self._started is None:
            self._started = threading.Thread(target=self._start_daemon, name="envmgr-daemon-spawn", daemon=True)
            self._started.start()

        return {
            LABEL_DAEMON: daemon_key(self.client.path),
            LABEL_CONFIG: config_key(self.settings, self.workers),
            LABEL_SETTINGS: self.settings.model_dump_json(),
        }

    def keep(self, environment: Environment) -> str | None:
        """Hand the environment to the daemon: what to say when it keeps it, else None (the caller removes it, and
        says why when there is something to say: `problem`)."""
        self.problem = None
        if environment.failure is not None:
            return None  # a failed start is not handed on
        if self._started is not None:
            self._started.join(SPAWN_WAIT)
        try:
            if self._start_error is not None:
                raise self._start_error
            self.client.adopt(environment.id, self.settings, self.workers)
        except EnvmgrError as exc:
            self.problem = f"envmgr: environment {environment.id} not kept warm: {exc.cause}"
            return None
        environment.hand_over()  # the daemon has it: this run's watchdog lets go
        return f"envmgr: environment {environment.id} kept warm for the next run (envmgr down --all-idle removes it)"


def warm_start(settings: Settings, workers: int, warn: Warn) -> tuple[Lease | None, Keeper | None]:
    """At a run's start: a warm environment leased from the daemon, or else the keeper of the run's own (None when
    the daemon is not to be used: `daemon = "off"`, or a socket `auto` cannot trust). The caller has ruled out runs
    that keep or attach."""
    if settings.daemon == "off" or settings.given_services():  # what a run makes there is its own, removed at its end
        return None, None
    client = DaemonClient()
    untrusted: list[str] = []

    def said(line: str) -> None:
        untrusted.append(line)
        warn(line)

    if client.available(auto_mode(settings), said):
        lease = client.lease_warm(settings, workers)
        if lease is not None:
            return lease, None
        return None, Keeper(settings, workers, client, start_daemon=False)
    if not untrusted and may_start_daemon(settings, os.environ):
        return None, Keeper(settings, workers, client, start_daemon=True)
    return None, None
