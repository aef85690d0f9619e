"""Faults injected into one worker's view of an environment, undone in reverse order (`Faults`), and the proxy through
which a worker reaches a shared server so that a fault hits that worker only (`proxy.py`, its thread `proxy_loop.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from envmgr.endpoints import Worker

if TYPE_CHECKING:
    from envmgr.faults.proxy import FaultProxy

__all__ = ["Faultable", "Faults"]


class Faultable(Protocol):
    """What faults act on without a proxy: an environment's containers (`envmgr.environment.Environment`)."""

    def pause(self, service: str, worker: Worker | None = None) -> None: ...

    def unpause(self, service: str, worker: Worker | None = None) -> None: ...

    def stop(self, service: str, worker: Worker | None = None) -> None: ...

    def start(self, service: str | None = None, worker: Worker | None = None) -> object: ...


class Faults:
    """Faults injected into one worker's view of an environment, undone (in reverse order) by `restore()`.

    Per-worker services (WireMock, Celery) are faulted in their container: it is this worker's own. A shared server
    (Postgres, Redis, LocalStack) is faulted through this worker's proxy in front of it when there is one (the
    `envmgr_faults` fixture arranges that): the app gets what it would get in production (a hang for `pause`;
    connections reset and refused for `stop`) and the other workers are not affected. Without a proxy (a plain
    library handle) the shared container itself is paused or stopped, for every worker: keep such faults short.
    """

    def __init__(
        self, env: Faultable, worker: Worker | None = None, proxies: Mapping[str, FaultProxy] | None = None
    ) -> None:
        self._env = env
        self._worker = worker
        self._proxies = dict(proxies or {})
        self._undo: list[Callable[[], object]] = []

    def pause(self, service: str) -> None:
        """Freeze the service: clients hang until their time-out ("Redis down", "database not answering")."""
        proxy = self._proxies.get(service)
        if proxy is not None:
            proxy.pause()
            self._undo.append(proxy.restore)
            return
        self._env.pause(service, self._worker)
        self._undo.append(lambda: self._env.unpause(service, self._worker))

    def stop(self, service: str) -> None:
        """Stop the service: open connections are reset and new ones refused. Restored on the same port."""
        proxy = self._proxies.get(service)
        if proxy is not None:
            proxy.stop()
            self._undo.append(proxy.restore)
            return
        self._env.stop(service, self._worker)
        self._undo.append(lambda: self._env.start(service, self._worker))

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()

    def __enter__(self) -> Faults:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()
