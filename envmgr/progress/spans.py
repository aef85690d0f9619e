"""The spans a report's waterfall draws: each phase of each replica that ended (image, create, ready, prepare,
migrate, seed), from when it began to its end, in seconds since the run's origin. The seconds are those the events
carried: the same the timings measured (create, ready, prepare) and the template build returned (migrate, seed),
so that the waterfall and the report's figures agree."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from envmgr.progress.events import Ended, Event

__all__ = ["Recorder", "Span"]


@dataclass(frozen=True)
class Span:
    service: str
    phase: str
    replica: int
    start: float
    """seconds from the run's origin to the phase's beginning"""
    seconds: float
    ok: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "phase": self.phase,
            "replica": self.replica,
            "start": round(self.start, 4),
            "seconds": round(self.seconds, 4),
            "ok": self.ok,
        }


class Recorder:
    """A progress sink that keeps every ended phase as a span (thread-safe)."""

    def __init__(self, origin: float) -> None:
        self.origin = origin
        """`time.perf_counter()` at the run's beginning"""
        self._spans: list[Span] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        if isinstance(event, Ended):
            span = Span(event.service, event.phase, event.replica, event.at - event.seconds - self.origin,
                        event.seconds, event.ok)  # fmt: skip
            with self._lock:
                self._spans.append(span)

    def spans(self) -> list[Span]:
        """Every span so far, by start."""
        with self._lock:
            return sorted(self._spans, key=lambda span: (span.start, span.service, span.replica))
