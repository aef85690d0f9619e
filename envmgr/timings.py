"""How long each phase of each service took: create, ready, prepare, reset (and how many times)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

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
    def measure(self, service: str, phase: str, replica: int | None = None) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
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
