"""The trend of a project's last runs, kept in pytest's cache folder (`.pytest_cache/v/envmgr/runs`, one JSON value
pytest's `config.cache` reads and writes): each run's figures (start, reset, test and wall time), the last few
reports whole (what `envmgr report show` and `compare` read), and which figure grew past the threshold since the
run before.

    runs = remember(config.cache, report)   # this run added; {"runs": [...], "flags": [...]} for the report
    read_runs(Path(".pytest_cache"))        # the same, read by the CLI without pytest

A figure is flagged when it grew by more than GROWTH (a fifth) and by more than FLOOR seconds: the noise of a busy
machine on figures of a few tenths of a second is not a slowdown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "FIGURES",
    "FLOOR",
    "GROWTH",
    "KEY",
    "Flag",
    "entry_of",
    "flags",
    "read_runs",
    "remember",
    "trend_until",
]

KEY = "envmgr/runs"
"""the key in pytest's cache"""
KEPT_RUNS = 30
"""runs whose figures the trend keeps"""
KEPT_REPORTS = 5
"""runs whose whole report is kept (for `envmgr report show` and `compare`)"""
GROWTH = 0.2
FLOOR = 0.25
FIGURES = {
    "start_seconds": "start time",
    "reset_seconds": "reset time",
    "test_seconds": "test time",
    "wall_seconds": "wall time",
}
"""the trend's figures, and how the report names them"""


class Cache(Protocol):
    """pytest's `config.cache` (what the trend needs of it)."""

    def get(self, key: str, default: Any) -> Any: ...

    def set(self, key: str, value: object) -> None: ...


@dataclass(frozen=True)
class Flag:
    """A figure that grew past the threshold since the run before."""

    figure: str
    before: float
    after: float

    @property
    def name(self) -> str:
        return FIGURES.get(self.figure, self.figure)

    def text(self) -> str:
        grown = self.after - self.before
        share = f", +{grown / self.before:.0%}" if self.before > 0 else ""
        return f"{self.name} grew from {self.before:.2f} s to {self.after:.2f} s (+{grown:.2f} s{share})"

    def as_dict(self) -> dict[str, Any]:
        return {"figure": self.figure, "before": self.before, "after": self.after, "text": self.text()}


def entry_of(report: Mapping[str, Any], at: datetime | None = None) -> dict[str, Any]:
    """A run's figures in the trend."""
    wall = report.get("wall") or {}
    return {
        "at": (at or datetime.now(UTC)).isoformat(timespec="seconds"),
        "environment": report.get("environment"),
        "start_seconds": float(report.get("start_seconds", 0.0)),
        "reset_seconds": float(report.get("reset_seconds", 0.0)),
        "test_seconds": float(wall.get("tests", 0.0)),
        "wall_seconds": float(wall.get("total", 0.0)),
    }


def grew(before: float, after: float, growth: float = GROWTH, floor: float = FLOOR) -> bool:
    return after - before > floor and after > before * (1 + growth)


def flags(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[Flag]:
    """The figures of `after` that grew past the threshold since `before` (none without a run before)."""
    if before is None:
        return []
    found = []
    for figure in FIGURES:
        old, new = float(before.get(figure, 0.0)), float(after.get(figure, 0.0))
        if grew(old, new):
            found.append(Flag(figure, old, new))
    return found


def remember(cache: Cache | None, report: Mapping[str, Any]) -> dict[str, Any]:
    """Add this run to the cache's trend; return the trend as the report shows it: {"runs": [...this one last],
    "flags": [...], "kept": true} (`kept` false, and this run alone, without pytest's cache)."""
    entry = entry_of(report, _at(report))
    if cache is None:
        return {"runs": [entry], "flags": [], "kept": False}
    stored = _stored(cache.get(KEY, None))
    previous = stored["runs"][-1] if stored["runs"] else None
    grown = [flag.as_dict() for flag in flags(previous, entry)]
    runs = [*stored["runs"], entry][-KEPT_RUNS:]
    kept = {**report, "trend": {"flags": grown}}  # its runs are the trend's, up to it (`trend_until`)
    reports = [*stored["reports"], kept][-KEPT_REPORTS:]
    cache.set(KEY, {"version": 1, "runs": runs, "reports": reports})
    return {"runs": runs, "flags": grown, "kept": True}


def trend_until(stored: Mapping[str, Sequence[Any]], report: Mapping[str, Any]) -> dict[str, Any]:
    """The trend as a kept report showed it: the runs up to its own, its flags."""
    runs = list(stored.get("runs", []))
    ends = [i for i, run in enumerate(runs) if (run.get("at"), run.get("environment")) ==
            (report.get("at"), report.get("environment"))]  # fmt: skip
    shown = runs[: ends[-1] + 1] if ends else runs
    return {"runs": shown, "flags": list((report.get("trend") or {}).get("flags", [])), "kept": True}


def _at(report: Mapping[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(report["at"])) if report.get("at") else None
    except ValueError:
        return None


def read_runs(cache_dir: Path) -> dict[str, Any]:
    """What the cache folder holds ({"runs": [], "reports": []} when nothing), as pytest wrote it."""
    path = cache_dir / "v" / KEY
    try:
        return _stored(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return _stored(None)


def _stored(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("version") != 1:
        return {"version": 1, "runs": [], "reports": []}
    runs = [run for run in value.get("runs", []) if isinstance(run, dict)]
    reports = [report for report in value.get("reports", []) if isinstance(report, dict)]
    return {"version": 1, "runs": runs, "reports": reports}
