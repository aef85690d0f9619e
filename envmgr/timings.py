"""How long each phase of each service took: create, ready, prepare, reset (and how many times); with a progress
sink, each measured phase is also sent as it begins and ends (`envmgr.progress.events`: the same seconds)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from envmgr.progress.events import Began, Ended, Progress

__all__ = ["Timings"]


@dataclass
class Timings:
    """Seconds per phase per service (create, ready, prepare, reset) and how many times each phase ran.

    Repeated phases add up (three resets take the time of three); the replicas of a per-worker service start
    concurrently, so a phase measured with `replica` takes as long as its slowest replica (wall time).
    """

    phases: dict[str, dict[str, float]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    _replicas: dict[tuple[str, str], dict[int, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def measure(
        self, service: str, phase: str, replica: int | None = None, progress: Progress | None = None
    ) -> Iterator[None]:
        if progress is not None:
            progress(Began(service, phase, replica or 0))
        started = time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                bucket = self.phases.setdefault(service, {})
                if replica is None:
                    bucket[phase] = bucket.get(phase, 0.0) + elapsed
                else:
                    spent = self._replicas.setdefault((service, phase), {})
                    spent[replica] = spent.get(replica, 0.0) + elapsed
                    bucket[phase] = max(spent.values())
                counts = self.counts.setdefault(service, {})
                counts[phase] = counts.get(phase, 0) + 1
            if progress is not None:
                progress(Ended(service, phase, elapsed, replica or 0, ok=ok))
