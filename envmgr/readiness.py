"""Readiness: a protocol probe retried until it passes or a deadline expires.

A probe is a callable that returns when the service answers its own protocol (`SELECT 1`, `PING`, an HTTP health
endpoint) and raises otherwise. `wait_until` keeps the last error, stops early when the container has exited, and
on time-out raises `ReadinessTimeoutError` naming the service and carrying the tail of its logs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from envmgr.errors import ReadinessTimeoutError, ServiceStartError

__all__ = ["Probe", "Waiter", "wait_until"]

Probe = Callable[[], None]

FIRST_INTERVAL = 0.02
MAX_INTERVAL = 0.25


@dataclass(frozen=True)
class Waiter:
    """What `wait_until` needs to know about the container besides the probe."""

    service: str
    logs: Callable[[], str]
    running: Callable[[], bool]


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
        if now >= deadline:
            raise ReadinessTimeoutError(
                waiter.service,
                f"{waiter.service} did not answer {what} within {timeout:g} s (last error: {_describe(last_error)})",
                "raise startup_timeout ([tool.envmgr] or ENVMGR_STARTUP_TIMEOUT) or read the log lines below",
                logs=waiter.logs(),
            )
        time.sleep(min(interval, max(deadline - now, 0.0)))
        interval = min(interval * 1.5, MAX_INTERVAL)


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "none"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
