"""What an environment's start reports while it runs: small typed events, sent to a sink passed down to where the
work happens (never module state, never a print from deep code):

    Began(service, phase, replica)              runtime.py (create, ready, prepare: through `Timings.measure`),
                                                the template build (migrate, seed), images.py (image)
    Advanced(service, phase, done, total)       a count moved: a migration applied, a seed file loaded, a build step
    Waiting(service, replica, elapsed, timeout) readiness.py: one probe that did not answer yet
    Ended(service, phase, seconds, ok)          the same seconds the timings and the report hold
    Noted(service, text)                        a fact: the template was reused

A sink is any `Progress` callable; `silent` ignores everything (the default everywhere), `Relay` hands each event
to its subscribers (the terminal, the report's waterfall). An event costs one small object and a call: the starts
send a few dozen, a readiness wait a few a second, a template build one per migration. A subscriber that fails
never fails the start it watches (progress is best effort: `Relay` drops its error).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = [
    "Advanced",
    "Began",
    "Ended",
    "Event",
    "Lap",
    "Noted",
    "Progress",
    "Relay",
    "Waiting",
    "silent",
    "timed",
    "unit_name",
]

PHASES = ("image", "create", "ready", "prepare", "migrate", "seed")
"""the phases of a start, in their order (migrate and seed happen inside prepare)"""


@dataclass(frozen=True, slots=True)
class Began:
    service: str
    phase: str
    replica: int = 0
    total: int | None = None
    """how many steps it has, when known (build steps, seed files)"""
    detail: str = ""
    """what it is: the migrate strategy ("alembic"), the image's tag"""
    at: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True, slots=True)
class Advanced:
    service: str
    phase: str
    done: int
    total: int | None = None
    replica: int = 0
    detail: str = ""
    """the step's own words: a build step's instruction, a seed file's name"""
    at: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True, slots=True)
class Waiting:
    service: str
    replica: int
    elapsed: float
    """seconds since the first probe"""
    timeout: float
    """seconds it has in all (its setting `startup_timeout`)"""
    at: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True, slots=True)
class Ended:
    service: str
    phase: str
    seconds: float
    replica: int = 0
    ok: bool = True
    detail: str = ""
    at: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True, slots=True)
class Noted:
    service: str
    text: str
    replica: int = 0
    at: float = field(default_factory=time.perf_counter)


Event = Began | Advanced | Waiting | Ended | Noted
Progress = Callable[[Event], None]


def silent(event: Event) -> None:
    """The sink that ignores every event."""


def unit_name(service: str, replica: int) -> str:
    """How the terminal and the report name one replica: `postgres`, `wiremock-1` (the replica of worker gw1)."""
    return service if replica == 0 else f"{service}-{replica}"


class Relay:
    """Hands each event to every subscriber, in the thread that sent it; a subscriber's error is dropped."""

    def __init__(self) -> None:
        self._sinks: tuple[Progress, ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, sink: Progress) -> None:
        with self._lock:
            self._sinks = (*self._sinks, sink)

    def unsubscribe(self, sink: Progress) -> None:
        with self._lock:
            self._sinks = tuple(known for known in self._sinks if known is not sink)

    def __call__(self, event: Event) -> None:
        for sink in self._sinks:
            try:
                sink(event)
            except Exception:  # a broken terminal or report never fails the start it watches
                continue


@dataclass
class Lap:
    """How long a `timed` phase took (set when it ends)."""

    seconds: float = 0.0


@contextmanager
def timed(
    progress: Progress, service: str, phase: str, replica: int = 0, *, total: int | None = None, detail: str = ""
) -> Iterator[Lap]:
    """Tell `progress` the phase begins and ends (`ok=False` when it raises); the lap holds its seconds after."""
    lap = Lap()
    progress(Began(service, phase, replica, total, detail))
    started = time.perf_counter()
    ok = False
    try:
        yield lap
        ok = True
    finally:
        lap.seconds = time.perf_counter() - started
        progress(Ended(service, phase, lap.seconds, replica, ok, detail))
