"""The environment's servers that envmgr did not start (a service's `url`): the one place that decides, per
service, "its container or the given server" (`Service.given_url`), and the given servers' lifecycle.

When the environment is first planned, each given server is swept (what killed runs left there is removed:
`Service.given_sweep`), then held (`Service.given_hold`: the environment's session on it, its shares claimed), the
server polled until it answers or its deadline passes; the hold's endpoint is the service's planned and started
endpoint (no container, no port, no engine). The service is then prepared as a container's would be (template,
clones, seeds). At the end (`release`) everything the environment made on it is removed and its session ended.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

from envmgr.config import Settings
from envmgr.endpoints import ServiceEndpoint
from envmgr.errors import ConfigError, EnvmgrError, ServiceStartError
from envmgr.progress.events import Noted, Progress, silent
from envmgr.services.base import Service
from envmgr.services.given import GivenHold, mask
from envmgr.timings import Timings

__all__ = ["GIVEN_DEADLINE", "GivenServers", "given_services", "not_a_container", "refuse_unknown", "sweep_given"]

GIVEN_DEADLINE = 10.0
"""seconds a given server has to answer by default (its table's or [tool.envmgr] startup_timeout when set)"""
POLL = (0.05, 0.5)
"""first and longest pause between tries"""


class GivenServers:
    """The given servers of one environment (see the module's documentation)."""

    def __init__(
        self, services: Mapping[str, Service], env_id: str, workers: int, needs: Mapping[str, Sequence[str]]
    ) -> None:
        self._services = services
        self.urls: dict[str, str] = {}
        for name, service in services.items():
            url = service.given_url()
            if url is not None:
                self.urls[name] = url
        for name in services:  # a container reaches what it needs on the environment's network: not a given server
            given = [need for need in needs.get(name, ()) if need in self.urls]
            if name not in self.urls and given:
                raise ConfigError(
                    f"{name} runs in a container and needs {', '.join(given)}, which is on a server envmgr did not "
                    f"start ({given[0]}.url): envmgr cannot hand that server to its container",
                    f"remove [tool.envmgr.{given[0]}] url (envmgr starts it), or disable {name}",
                )
        self._env_id = env_id
        self._workers = workers
        self._holds: dict[str, GivenHold] = {}
        self._lock = threading.Lock()

    def __contains__(self, name: object) -> bool:
        return name in self.urls

    def needs_engine(self) -> bool:
        """Whether any of the environment's services runs in a container."""
        return any(name not in self.urls for name in self._services)

    def endpoint(self, name: str, progress: Progress = silent) -> ServiceEndpoint:
        """The given server's endpoint, held for this environment (taken on first use)."""
        with self._lock:
            if name not in self._holds:
                self._holds[name] = self._hold(name, progress)
            return self._holds[name].endpoint

    def _hold(self, name: str, progress: Progress) -> GivenHold:
        service, url = self._services[name], self.urls[name]
        timeout, setting = service.readiness_timeout()
        if setting == f"{name}.startup_timeout" and service.config.startup_timeout is None:
            timeout = min(timeout, GIVEN_DEADLINE)
        deadline = time.monotonic() + timeout
        pause = POLL[0]
        while True:
            try:
                swept = service.given_sweep(url)
                hold = service.given_hold(url, self._env_id, self._workers)
            except ConnectionError as exc:
                if time.monotonic() + pause > deadline:
                    raise ServiceStartError(
                        name,
                        f"{name}: the server at {mask(url)} ({name}.url) did not answer within {timeout:g} s: {exc}",
                        f"start it or correct {name}.url (more time: {setting})",
                    ) from None
                time.sleep(pause)  # a poll with a deadline: the server may still be starting
                pause = min(pause * 2, POLL[1])
                continue
            except EnvmgrError:
                raise
            except Exception as exc:  # a library's error the service did not word: still one line
                raise ConfigError(
                    f"{name}: the server at {mask(url)} ({name}.url) failed: {type(exc).__name__}: {exc}",
                    f"check the server and {name}.url",
                ) from None
            for line in swept:
                progress(Noted(name, f"removed {line}, left by a run that was killed"))
            return hold

    def start(self, name: str, endpoint: ServiceEndpoint, timings: Timings, progress: Progress) -> ServiceEndpoint:
        """Held when planned (it answered then): probed once more, then prepared as a container would be (the
        template, the environment's database, seeds)."""
        service = self._services[name]
        with timings.measure(name, "ready", endpoint.replica, progress):
            try:
                service.probe(endpoint)
            except Exception as exc:
                raise ServiceStartError(
                    name,
                    f"{name}: the server at {endpoint.redacted_url} ({name}.url) stopped answering: "
                    f"{type(exc).__name__}: {exc}",
                    f"start it again or correct {name}.url",
                ) from None
        with timings.measure(name, "prepare", endpoint.replica, progress):
            return service.prepare(endpoint)

    def release(self) -> list[str]:
        """Remove what the environment made on each given server and end its sessions; return what was removed.
        Every server is released even when one fails (the first failure is raised afterwards)."""
        with self._lock:
            holds, self._holds = self._holds, {}
        removed: list[str] = []
        failure: BaseException | None = None
        for name, hold in holds.items():
            try:
                removed += hold.release()
            except Exception as exc:
                failure = failure or EnvmgrError(
                    f"{name}: could not remove what environment {self._env_id} made on {mask(self.urls[name])}: "
                    f"{type(exc).__name__}: {exc}",
                    "the next run (or `envmgr gc`) removes it once this process is gone",
                )
        if failure is not None:
            raise failure
        return removed


def given_services(settings: Settings) -> list[str]:
    """The enabled services on a server envmgr did not start (their `url` set), from the settings alone."""
    return settings.given_services()


def not_a_container(service: str) -> EnvmgrError:
    """What pausing, stopping or starting a given server's container is."""
    return EnvmgrError(
        f"{service} runs on a server envmgr did not start ({service}.url): envmgr cannot pause, stop or start it",
        "use the envmgr_faults fixture: it reaches a shared server through a proxy of the worker's own, which hangs "
        "or refuses connections instead",
    )


def refuse_unknown(env_id: str, names: Sequence[str], unknown: Sequence[str]) -> None:
    """An EnvmgrError when `names` (to reset or probe) has given servers of `unknown`: a handle without their
    endpoints (attached from the engine's labels outside the run: they name the service, not what the run holds)."""
    services = [name for name in names if name in unknown]
    if not services:
        return
    raise EnvmgrError(
        f"environment {env_id} has {', '.join(services)} on a server envmgr did not start ({services[0]}.url): "
        "this handle, attached from its containers, does not know what the run holds there",
        "reset or probe it from the run's tests (envmgr_env.reset(), envmgr_env.health()), or name only the "
        "other services",
    )


def sweep_given(services: Mapping[str, Service]) -> list[str]:
    """What killed runs left on the given servers of these services, removed (`envmgr gc`): for people."""
    removed: list[str] = []
    for name, service in services.items():
        url = service.given_url()
        if url is None:
            continue
        try:
            removed += service.given_sweep(url)
        except ConnectionError as exc:
            cause = f"{name}: the server at {mask(url)} ({name}.url) did not answer: {exc}"
            raise ServiceStartError(name, cause, f"start it or correct {name}.url") from None
    return removed
