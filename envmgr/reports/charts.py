"""The report's charts as inline SVG (no script, no network): the waterfall of the environment's phases (a row per
service replica, a bar per phase), where the run's wall time went, and the trend of the last runs. Each bar and
point carries its figures (`data-*`, and a `<title>` a browser shows on hover), so that a test reads them back."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["COLORS", "environment_intervals", "trend_chart", "wall_chart", "waterfall"]

COLORS = {
    "image": "#8e44ad",
    "create": "#2e86c1",
    "ready": "#17a589",
    "prepare": "#ca6f1e",
    "migrate": "#c0392b",
    "seed": "#d4ac0d",
    "pytest start": "#95a5a6",
    "collection": "#5d6d7e",
    "tests": "#28b463",
    "teardown": "#af7ac5",
    "environment": "#2e86c1",
    "start_seconds": "#2e86c1",
    "reset_seconds": "#ca6f1e",
    "test_seconds": "#28b463",
}
INNER = ("migrate", "seed")
"""phases inside `prepare`: drawn on a row of their own under their replica's (its template)"""
LABEL = 170
PLOT = 700
ROW = 22
AXIS = 24
BAR_LABEL = 48
"""pixels a bar needs to carry its seconds"""


def _unit(service: str, replica: int) -> str:
    return service if replica == 0 else f"{service}-{replica}"


def _step(end: float) -> float:
    """A round step for about six ticks from 0 to `end`."""
    raw = end / 6
    magnitude = 10 ** math.floor(math.log10(raw))
    return float(next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw))


def _ticks(end: float) -> list[float]:
    """Round ticks from 0 to `end` (about six)."""
    if end <= 0:
        return [0.0]
    step = _step(end)
    return [i * step for i in range(int(end / step + 1e-9) + 1)]


def _ceiling(value: float) -> float:
    """The first round tick at or above `value`."""
    if value <= 0:
        return 1.0
    step = _step(value)
    return math.ceil(value / step - 1e-9) * step


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def _axis(y: int, origin: float, scale: float, end: float) -> list[str]:
    parts = [f'<line x1="{LABEL}" y1="{y}" x2="{LABEL + PLOT}" y2="{y}" class="axis"/>']
    for tick in _ticks(end):
        x = LABEL + tick * scale
        parts.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" class="axis"/>')
        parts.append(f'<text x="{x:.1f}" y="{y + 16}" class="tick">{tick + origin:g} s</text>')
    return parts


def waterfall(spans: Sequence[Mapping[str, Any]]) -> str:
    """A row per replica (and one for its template's migrate and seed), a bar per phase; time from the first
    phase's beginning. Empty when nothing started in this run."""
    if not spans:
        return ""
    origin = min(float(span["start"]) for span in spans)
    end = max(float(span["start"]) + float(span["seconds"]) for span in spans) - origin
    scale = PLOT / end if end > 0 else 0.0
    rows: dict[tuple[str, int, bool], int] = {}
    for span in sorted(spans, key=lambda s: (float(s["start"]), s["phase"] in INNER)):
        key = (str(span["service"]), int(span["replica"]), span["phase"] in INNER)
        rows.setdefault(key, len(rows))
    height = len(rows) * ROW + AXIS + 8
    parts = [f'<svg id="waterfall" xmlns="http://www.w3.org/2000/svg" width="{LABEL + PLOT + 20}" '
             f'height="{height}" role="img" aria-label="waterfall of the environment\'s phases">']  # fmt: skip
    for (service, replica, inner), row in rows.items():
        y = row * ROW
        name = _unit(service, replica) + (" template" if inner else "")
        parts.append(f'<text x="{LABEL - 8}" y="{y + 15}" class="row{" inner" if inner else ""}">{escape(name)}</text>')
    for span in spans:
        service, replica, phase = str(span["service"]), int(span["replica"]), str(span["phase"])
        row = rows[(service, replica, phase in INNER)]
        seconds, start = float(span["seconds"]), float(span["start"]) - origin
        x, width = LABEL + start * scale, max(1.0, seconds * scale)
        failed = "" if span.get("ok", True) else " failed"
        title = f"{_unit(service, replica)} {phase} {_seconds(seconds)}" + (" (failed)" if failed else "")
        parts.append(
            f'<rect class="bar{failed}" x="{x:.2f}" y="{row * ROW + 3}" width="{width:.2f}" height="{ROW - 6}" '
            f'fill="{COLORS.get(phase, "#7f8c8d")}" data-service="{escape(service)}" data-phase="{escape(phase)}" '
            f'data-replica="{replica}" data-start="{start:.4f}" data-seconds="{seconds:.4f}">'
            f"<title>{escape(title)}</title></rect>"
        )
        if width >= BAR_LABEL:
            label = f'<text x="{x + width / 2:.2f}" y="{row * ROW + 15}" class="on-bar">{_seconds(seconds)}</text>'
            parts.append(label)
    parts += _axis(len(rows) * ROW + 2, 0.0, scale, end)
    parts.append("</svg>")
    return "".join(parts)


def environment_intervals(spans: Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """When at least one phase was under way: the union of the spans, as (start, end) from the run's origin."""
    intervals = sorted((float(s["start"]), float(s["start"]) + float(s["seconds"])) for s in spans)
    merged: list[tuple[float, float]] = []
    for start, end in intervals:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def wall_chart(wall: Mapping[str, Any], spans: Sequence[Mapping[str, Any]]) -> str:
    """The run's parts one after the other (pytest start, collection, tests, teardown), and under them when the
    environment was starting."""
    parts_of = [(name, float(wall.get(key, 0.0))) for name, key in WALL_PARTS]
    total = float(wall.get("total", 0.0)) or sum(seconds for _, seconds in parts_of)
    if total <= 0:
        return ""
    scale = PLOT / total
    offset = float(wall.get("origin", 0.0))  # the spans count from the run's origin, the chart from the process start
    parts = [f'<svg id="wall" xmlns="http://www.w3.org/2000/svg" width="{LABEL + PLOT + 20}" '
             f'height="{2 * ROW + AXIS + 8}" role="img" aria-label="where the wall time went">',
             f'<text x="{LABEL - 8}" y="15" class="row">pytest</text>',
             f'<text x="{LABEL - 8}" y="{ROW + 15}" class="row">environment</text>']  # fmt: skip
    x = float(LABEL)
    for name, seconds in parts_of:
        width = seconds * scale
        parts.append(
            f'<rect class="wall" x="{x:.2f}" y="3" width="{width:.2f}" height="{ROW - 6}" fill="{COLORS[name]}" '
            f'data-part="{name}" data-seconds="{seconds:.4f}"><title>{name} {_seconds(seconds)}</title></rect>'
        )
        if width >= BAR_LABEL * 2:
            parts.append(f'<text x="{x + width / 2:.2f}" y="15" class="on-bar">{name} {_seconds(seconds)}</text>')
        x += width
    for start, end in environment_intervals(spans):
        parts.append(
            f'<rect class="environment" x="{LABEL + (start + offset) * scale:.2f}" y="{ROW + 3}" '
            f'width="{max(1.0, (end - start) * scale):.2f}" height="{ROW - 6}" fill="{COLORS["environment"]}">'
            f"<title>environment starting {_seconds(end - start)}</title></rect>"
        )
    parts += _axis(2 * ROW + 2, 0.0, scale, total)
    parts.append("</svg>")
    return "".join(parts)


WALL_PARTS = (("pytest start", "pytest_start"), ("collection", "collection"), ("tests", "tests"),
              ("teardown", "teardown"))  # fmt: skip


def trend_chart(runs: Sequence[Mapping[str, Any]], series: Sequence[str]) -> str:
    """A line per figure over the last runs (the oldest left), a point per run."""
    if not runs:
        return ""
    top = _ceiling(max([float(run.get(name, 0.0)) for run in runs for name in series] + [0.0]))
    height = 160
    step = PLOT / max(1, len(runs) - 1)
    parts = [f'<svg id="trend" xmlns="http://www.w3.org/2000/svg" width="{LABEL + PLOT + 20}" '
             f'height="{height + AXIS + 8}" role="img" aria-label="trend of the last runs">']  # fmt: skip
    for tick in _ticks(top):
        y = height - tick / top * (height - 10)
        parts.append(f'<line x1="{LABEL}" y1="{y:.1f}" x2="{LABEL + PLOT}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{LABEL - 8}" y="{y + 4:.1f}" class="row">{tick:g} s</text>')
    for name in series:
        points = [(LABEL + i * step if len(runs) > 1 else LABEL + PLOT / 2,
                   height - float(run.get(name, 0.0)) / top * (height - 10)) for i, run in enumerate(runs)]  # fmt: skip
        color = COLORS.get(name, "#7f8c8d")
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for index, ((x, y), run) in enumerate(zip(points, runs, strict=True)):
            value = float(run.get(name, 0.0))
            when = escape(str(run.get("at", "")))
            parts.append(
                f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}" data-run="{index}" '
                f'data-series="{name}" data-seconds="{value:.4f}"><title>run {index + 1} ({when}): '
                f"{name.replace('_seconds', '')} {_seconds(value)}</title></circle>"
            )
    for index in range(len(runs)):
        x = LABEL + index * step if len(runs) > 1 else LABEL + PLOT / 2
        parts.append(f'<text x="{x:.1f}" y="{height + 16}" class="tick">{index + 1}</text>')
    parts.append("</svg>")
    return "".join(parts)
