"""Faults injected into one worker's view of an environment, undone in reverse order."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from envmgr.endpoints import Worker

if TYPE_CHECKING:
    from envmgr.environment import Environment

__all__ = ["Faults"]


class Faults:
    """Faults injected into one worker's view of an environment, undone (in reverse order) by `restore()`.

    Per-worker services (WireMock, Celery) are faulted for this worker only; a shared server (Postgres, Redis,
    LocalStack) is faulted for every worker for as long as the fault lasts: keep such faults short.
    """

    def __init__(self, env: Environment, worker: Worker | None = None) -> None:
        self._env = env
        self._worker = worker
        self._undo: list[Callable[[], object]] = []

    def pause(self, service: str) -> None:
        """Freeze the service: clients hang until their time-out ("Redis down", "database not answering")."""
        self._env.pause(service, self._worker)
        self._undo.append(lambda: self._env.unpause(service, self._worker))

    def stop(self, service: str) -> None:
        """Stop the service: connections are refused. Restored by starting it again on the same port."""
        self._env.stop(service, self._worker)
        self._undo.append(lambda: self._env.start(service, self._worker))

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()

    def __enter__(self) -> Faults:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()
