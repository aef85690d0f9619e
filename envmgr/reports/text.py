"""Reports as text: one report's figures (`envmgr report show`) and what got slower from one report to another
(`envmgr report compare A B`), with the trend's threshold (envmgr.reports.trend: a fifth and a quarter second)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from envmgr.reports.trend import FLOOR, GROWTH, grew

__all__ = ["Change", "changes", "compare_lines", "describe"]

PHASES = ("create", "ready", "prepare", "migrate", "seed", "reset")
WALL = ("pytest_start", "collection", "tests", "teardown", "total")


@dataclass(frozen=True)
class Change:
    figure: str
    before: float
    after: float

    @property
    def delta(self) -> float:
        return self.after - self.before

    def text(self) -> str:
        share = f", {self.delta / self.before:+.0%}" if self.before > 0 else ""
        return f"{self.figure}: {self.before:.2f} s -> {self.after:.2f} s ({self.delta:+.2f} s{share})"


def figures(report: Mapping[str, Any]) -> dict[str, float]:
    """Every figure of a report by a name people read: `postgres prepare`, `start`, `wall tests`."""
    found: dict[str, float] = {}
    for name, entry in (report.get("services") or {}).items():
        for phase in PHASES:
            if phase in entry:
                found[f"{name} {phase}"] = float(entry[phase])
    for key, name in (("start_seconds", "start"), ("reset_seconds", "resets"), ("total_seconds", "environment")):
        if key in report:
            found[name] = float(report[key])
    for part in WALL:
        if part in (report.get("wall") or {}):
            found[f"wall {part.replace('_', ' ')}"] = float(report["wall"][part])
    return found


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[list[Change], list[Change]]:
    """(slower, faster): the figures both reports have that grew (or shrank) past the threshold, largest first."""
    old, new = figures(before), figures(after)
    common = [name for name in new if name in old]
    slower = [Change(name, old[name], new[name]) for name in common if grew(old[name], new[name])]
    faster = [Change(name, old[name], new[name]) for name in common if grew(new[name], old[name])]
    return sorted(slower, key=lambda c: -c.delta), sorted(faster, key=lambda c: c.delta)


def compare_lines(before: Mapping[str, Any], after: Mapping[str, Any], names: tuple[str, str]) -> list[str]:
    slower, faster = changes(before, after)
    threshold = f"more than {GROWTH:.0%} and {FLOOR:g} s"
    lines = [f"{names[1]} against {names[0]} (a change counts when it is {threshold}):"]
    if slower:
        lines.append("slower:")
        lines += [f"  {change.text()}" for change in slower]
    else:
        lines.append("nothing got slower")
    if faster:
        lines.append("faster:")
        lines += [f"  {change.text()}" for change in faster]
    new_services = sorted(set(after.get("services") or {}) - set(before.get("services") or {}))
    gone = sorted(set(before.get("services") or {}) - set(after.get("services") or {}))
    if new_services:
        lines.append(f"started only in {names[1]}: {', '.join(new_services)}")
    if gone:
        lines.append(f"started only in {names[0]}: {', '.join(gone)}")
    return lines


def describe(report: Mapping[str, Any]) -> list[str]:
    """One report as a few plain lines and a table of its phases."""
    lines = [f"environment {report.get('environment', '?')}" + (f" ({report['at']})" if report.get("at") else "")]
    template = report.get("template")
    if template:
        lines.append(f"template {template.get('name')} {'built' if template.get('created') else 'reused'}")
    lines.append(
        f"start {float(report.get('start_seconds', 0.0)):.2f} s, resets {float(report.get('reset_seconds', 0.0)):.2f}"
        f" s, environment in all {float(report.get('total_seconds', 0.0)):.2f} s"
    )
    wall = report.get("wall") or {}
    if wall:
        parts = ", ".join(f"{part.replace('_', ' ')} {float(wall.get(part, 0.0)):.2f} s" for part in WALL[:-1])
        lines.append(f"wall {float(wall.get('total', 0.0)):.2f} s: {parts}")
    services = report.get("services") or {}
    if services:
        width = max(len(name) for name in services)
        lines.append(f"{'service':{width}}  " + "  ".join(f"{phase:>8}" for phase in PHASES) + "  resets")
        for name, entry in services.items():
            cells = "  ".join(f"{float(entry.get(phase, 0.0)):>7.2f}s" for phase in PHASES)
            lines.append(f"{name:{width}}  {cells}  {int(entry.get('resets', 0)):>6}")
    for flag in (report.get("trend") or {}).get("flags") or []:
        lines.append(f"since the run before: {flag.get('text', flag)}")
    return lines
