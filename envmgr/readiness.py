"""Readiness: a protocol probe retried until it passes or a deadline expires.

A probe is a callable that returns when the service answers its own protocol (`SELECT 1`, `PING`, an HTTP health
endpoint) and raises otherwise; each probe that did not answer is told to the waiter's progress sink (elapsed
against the deadline). `wait_until` keeps the last error, stops early when the container has exited, and
on time-out raises `ReadinessTimeoutError` naming the service, the setting that gives it more time, how long its
earlier starts on this machine took, and the tail of its logs.

`diagnosed` lets the service read the cause of such an error in its log tail (`Service.diagnose`: a setting its
server refused), raised instead with the cause first.

`StartTimes` keeps how long the last waits of each service and image took, in the user's state folder
(`start-times.json`, written whole with `os.replace`; a lost update between two processes costs one sample): a
deadline that fails on a busy machine says whether this start was slow or the service hangs.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from envmgr.errors import EnvmgrError, ReadinessTimeoutError, ServiceStartError
from envmgr.progress.events import Progress, Waiting, silent

__all__ = ["Probe", "StartTimes", "Waiter", "diagnosed", "wait_until"]

Probe = Callable[[], None]

FIRST_INTERVAL = 0.02
MAX_INTERVAL = 0.25
KEPT_SAMPLES = 20
"""waits remembered per service and image"""


@dataclass(frozen=True)
class StartTimes:
    """How long earlier readiness waits took on this machine, per service and image (see the module's docs)."""

    path: Path

    def record(self, service: str, image: str, seconds: float) -> None:
        """Remember one wait (best effort: a state folder that cannot be written loses the sample)."""
        key = f"{service} {image}"
        data = self._read()
        data[key] = [*data.get(key, [])[-(KEPT_SAMPLES - 1) :], round(seconds, 2)]
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle)
            os.replace(temporary, self.path)
        except OSError:
            return  # the sample is lost; the wait itself went well

    def summary(self, service: str, image: str) -> str | None:
        """`earlier starts of localstack here took 4.1 to 27 s (median 6.2 s, 12 starts)`, or None."""
        samples = self._read().get(f"{service} {image}", [])
        if not samples:
            return None
        return (
            f"earlier starts of {service} here took {min(samples):g} to {max(samples):g} s (median "
            f"{statistics.median(samples):g} s, {len(samples)} start{'s' if len(samples) > 1 else ''})"
        )

    def _read(self) -> dict[str, list[float]]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd) as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {
            str(key): [float(x) for x in value if isinstance(x, int | float)]
            for key, value in data.items()
            if isinstance(value, list)
        }


@dataclass(frozen=True)
class Waiter:
    """What `wait_until` needs to know about the container besides the probe."""

    service: str
    logs: Callable[[], str]
    running: Callable[[], bool]
    setting: str = "startup_timeout"
    """the setting that gives it more time (`localstack.startup_timeout`)"""
    earlier: Callable[[], str | None] = lambda: None
    """how long earlier starts took (`StartTimes.summary`)"""
    replica: int = 0
    progress: Progress = silent
    """told after each probe that did not answer: the seconds waited so far against the deadline"""


def wait_until(probe: Probe, waiter: Waiter, timeout: float, what: str) -> float:
    """Run `probe` until it passes; return the seconds it took.

    `what` says in words what the probe checks (e.g. "SELECT 1"); it appears in the error.
    """
    started = time.monotonic()
    deadline = started + timeout
    interval = FIRST_INTERVAL
    last_error: BaseException | None = None
    while True:
        try:
            probe()
        except Exception as exc:  # any failure of the probe means "not ready yet"; the last one is reported
            last_error = exc
        else:
            return time.monotonic() - started
        if not waiter.running():
            raise ServiceStartError(
                waiter.service,
                f"{waiter.service} exited before answering {what} (last error: {_describe(last_error)})",
                "read the log lines below; check the image and its environment",
                logs=waiter.logs(),
            )
        now = time.monotonic()
        waiter.progress(Waiting(waiter.service, waiter.replica, now - started, timeout))
        if now >= deadline:
            earlier = waiter.earlier()
            variable = "ENVMGR_" + waiter.setting.upper().replace(".", "__")
            raise ReadinessTimeoutError(
                waiter.service,
                f"{waiter.service} did not answer {what} within {timeout:g} s (last error: {_describe(last_error)})"
                + (f"; {earlier}" if earlier else ""),
                f"raise {waiter.setting} (in [tool.envmgr] or {variable}) if the machine is busy, or read the log "
                "lines below",
                logs=waiter.logs(),
            )
        time.sleep(min(interval, max(deadline - now, 0.0)))
        interval = min(interval * 1.5, MAX_INTERVAL)


@contextmanager
def diagnosed(diagnose: Callable[[str], EnvmgrError | None]) -> Iterator[None]:
    """A container that exited or did not answer in the block (a ServiceStartError with its log tail): the cause
    `diagnose` reads in that tail (`Service.diagnose`) is raised instead, when it finds one."""
    try:
        yield
    except ServiceStartError as exc:
        cause = diagnose(exc.logs) if exc.logs else None
        if cause is None:
            raise
        raise cause from None


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "none"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
