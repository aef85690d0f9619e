"""The images of one environment: each service's checked once (its base image present, pulled or its build asked
for; the image derived for the project, the Celery worker with its requirements, built on the environment's network
when missing), in a daemon thread of its own (a build of minutes never holds up the interpreter's exit), and the
builds under way stopped when the environment goes (the engine ends a build whose client hangs up)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait

from envmgr.engine.connection import Engine
from envmgr.images import BuildCancel, ensure_derived_image
from envmgr.progress.events import Progress
from envmgr.services.base import Service

__all__ = ["BUILD_STOP_WAIT", "ImageChecks"]

BUILD_STOP_WAIT = 10.0
"""seconds a teardown waits for the builds it stopped (their steps run on the environment's network)"""


class ImageChecks:
    """The image checks of one environment's services (see the module's documentation)."""

    def __init__(
        self,
        engine: Callable[[], Engine],
        network: str,
        progress: Progress,
        settle: Callable[[Future[None]], None],
    ) -> None:
        self._engine = engine
        self._network = network
        self._progress = progress
        self._settle = settle
        """told when a check ends (the runtime wakes the calls waiting for starts)"""
        self._lock = threading.Lock()
        self._checks: dict[str, tuple[Service, Future[None]]] = {}
        self._builds = BuildCancel()

    def check(self, services: Sequence[Service]) -> list[Future[None]]:
        """The checks of these services, each begun once."""
        with self._lock:
            for service in services:
                if service.name not in self._checks:
                    future: Future[None] = Future()
                    future.set_running_or_notify_cancel()
                    self._checks[service.name] = (service, future)
                    future.add_done_callback(self._settle)
                    threading.Thread(
                        target=self._ensure, args=(service, future, self._builds),
                        name=f"envmgr-{self._network}-image-{service.name}", daemon=True,
                    ).start()  # fmt: skip
            return [self._checks[service.name][1] for service in services]

    def _ensure(self, service: Service, future: Future[None], builds: BuildCancel) -> None:
        try:
            engine = self._engine()
            engine.ensure_image(service.base_image(), service.name, service.build_hint())
            derived = service.derived_image()
            if derived is not None:
                ensure_derived_image(
                    engine, derived, network=self._network, cancel=builds, service=service.name,
                    progress=self._progress,
                )  # fmt: skip
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(None)

    def stop(self) -> list[str]:
        """Stop the builds under way and wait for them (at most BUILD_STOP_WAIT seconds); those still under way,
        named."""
        self._builds.cancel()
        with self._lock:
            checks = list(self._checks.values())
        builds = {future: derived for service, future in checks if (derived := service.derived_image()) is not None}
        wait(builds, timeout=BUILD_STOP_WAIT)
        return [f"{derived.tag} from {derived.source}" for future, derived in builds.items() if not future.done()]

    def forget(self) -> None:
        """The environment is gone: a new one checks again (and builds are not stopped any more)."""
        with self._lock:
            self._checks.clear()
        self._builds = BuildCancel()
