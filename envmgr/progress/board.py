"""What the terminal says about the starts under way: the lines to print for each event, in pytest's style
(verbosity 0: which services start, image builds with their steps, migrations as a count, seeds, each service
ready or failed; 1 and more: every replica and phase, each seed file), and the one status line a terminal that can
redraw shows meanwhile (`status`). Without such a line (not a terminal, or one the renderer may not redraw), a
phase that goes on says so again every `HEARTBEAT` seconds (elapsed against the deadline of a readiness wait, the
migrations applied so far), so that a slow start never looks like a hang and a CI log stays a list of plain lines.

Pure and not thread-safe: its renderer (envmgr.pytest.progress, the CLI's) calls it under a lock of its own.

    board = Board(verbosity=0)
    for line in board.lines(event, live=False):
        print(line)
    board.status(time.perf_counter())      # "envmgr: postgres migrating 12/500 3.1 s | localstack waiting 9 s of 120 s"
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from envmgr.progress.events import Advanced, Began, Ended, Event, Waiting, unit_name

__all__ = ["HEARTBEAT", "PREFIX", "Board"]

PREFIX = "envmgr: "
HEARTBEAT = 10.0
"""seconds between two lines about a phase that goes on, when no status line shows it"""
VERBOSE_HEARTBEAT = 3.0
SHOWN = 0.005
"""a phase shorter than this goes unsaid in a service's ready line (redis has nothing to prepare)"""
STEP_TEXT = 90
"""characters of a build step's instruction shown"""
VERBS = {
    "image": "building its image",
    "create": "creating its container",
    "ready": "waiting for it to answer",
    "prepare": "preparing it",
    "migrate": "migrating the template",
    "seed": "loading the seeds",
}


@dataclass
class _Unit:
    """One replica's start, as the events told it."""

    name: str
    phases: list[str] = field(default_factory=list)
    """the phases under way, innermost last (migrate runs inside prepare)"""
    since: dict[str, float] = field(default_factory=dict)
    count: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    detail: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    began: float | None = None
    """when its container's creation began (the start's wall time counts from there)"""
    waited: tuple[float, float] | None = None
    told: float = 0.0
    """when a line last spoke of it"""
    failed: bool = False
    """a phase of this start failed (and said so)"""


class Board:
    """See the module's documentation."""

    def __init__(self, verbosity: int = 0) -> None:
        self.verbosity = verbosity
        self.heartbeat = VERBOSE_HEARTBEAT if verbosity > 0 else HEARTBEAT
        self._units: dict[tuple[str, int], _Unit] = {}

    def busy(self) -> bool:
        """Something is under way."""
        return any(unit.phases for unit in self._units.values())

    def lines(self, event: Event, live: bool = False) -> list[str]:
        """Take the event in; the lines to print now (`live`: a status line shows what goes on, no heartbeat)."""
        unit = self._unit(event.service, event.replica)
        if isinstance(event, Began):
            said = self._began(unit, event)
        elif isinstance(event, Advanced):
            said = self._advanced(unit, event, live)
        elif isinstance(event, Waiting):
            unit.waited = (event.elapsed, event.timeout)
            said = self._heartbeat(unit, event.at, live, f"{unit.name} not answering yet: {event.elapsed:.0f} s "
                                   f"of {event.timeout:.0f} s")  # fmt: skip
        elif isinstance(event, Ended):
            said = self._ended(unit, event)
        else:
            said = [f"{unit.name}: {event.text}"]
        if said:
            unit.told = event.at
        return [PREFIX + line for line in said]

    def status(self, now: float | None = None) -> str:
        """The phases under way in one line (empty when nothing is)."""
        now = time.perf_counter() if now is None else now
        parts = [self._doing(unit, now) for unit in self._units.values() if unit.phases]
        return PREFIX + " | ".join(parts) if parts else ""

    # events ---------------------------------------------------------------------------------------------------

    def _unit(self, service: str, replica: int) -> _Unit:
        key = (service, replica)
        if key not in self._units:
            self._units[key] = _Unit(unit_name(service, replica))
        return self._units[key]

    def _began(self, unit: _Unit, event: Began) -> list[str]:
        unit.phases.append(event.phase)
        unit.since[event.phase] = event.at
        unit.count.pop(event.phase, None)
        unit.detail[event.phase] = event.detail
        if event.phase == "create":
            unit.began = event.at
            unit.waited = None
            unit.failed = False
            return [f"starting {unit.name}"] if self._shows(event.replica) else []
        if event.phase == "image":
            return [f"building image {event.detail} for {event.service}"]
        if event.phase == "migrate" and self.verbosity > 0:
            return [f"{unit.name} template: migrating ({event.detail})"]
        if event.phase == "prepare" and self.verbosity > 0:
            return [f"preparing {unit.name}"]
        return []

    def _advanced(self, unit: _Unit, event: Advanced, live: bool) -> list[str]:
        previous = unit.count.get(event.phase)
        unit.count[event.phase] = (event.done, event.total)
        if event.phase == "image":
            return [f"{unit.name} image step {event.done}/{event.total}: {_short(event.detail)}"]
        if event.phase == "migrate" and event.done == 0 and previous is None:
            what = f"{event.total} migration{'s' if event.total != 1 else ''} to apply"
            return [f"{unit.name} template: {what} ({event.detail})" if event.detail else f"{unit.name}: {what}"]
        if event.phase == "seed" and self.verbosity > 0:
            return [f"{unit.name} template: seed file {event.done}/{event.total}: {event.detail}"]
        elapsed = event.at - unit.since.get(event.phase, event.at)
        done = f"{event.done}/{event.total}" if event.total is not None else str(event.done)
        noun = "migrations applied" if event.phase == "migrate" else "files loaded"
        return self._heartbeat(unit, event.at, live, f"{unit.name} template: {done} {noun} ({elapsed:.0f} s)")

    def _heartbeat(self, unit: _Unit, now: float, live: bool, line: str) -> list[str]:
        if live:
            return []
        last = max(unit.told, unit.since.get(unit.phases[-1], now) if unit.phases else now)
        return [line] if now - last >= self.heartbeat else []

    def _ended(self, unit: _Unit, event: Ended) -> list[str]:
        if event.phase in unit.phases:
            unit.phases.remove(event.phase)
        unit.seconds[event.phase] = event.seconds
        if not event.ok:
            if unit.failed:
                return []  # its inner phase said where (prepare after migrate)
            unit.failed = True
            return [f"{unit.name} failed while {VERBS.get(event.phase, event.phase)}, after {event.seconds:.2f} s"]
        counted = unit.count.get(event.phase)
        if event.phase == "image":
            return [f"{unit.name} image built in {event.seconds:.1f} s"]
        if event.phase == "migrate":
            if counted is not None and counted[1] is not None:
                return [f"{unit.name} template: {_count(counted[1], 'migration')} applied in {event.seconds:.2f} s"]
            return [f"{unit.name} template: migrated ({event.detail}) in {event.seconds:.2f} s"]
        if event.phase == "seed":
            files = (counted[1] if counted is not None else 0) or 0
            loaded = f"{unit.name} template: {_count(files, 'seed file')} loaded in {event.seconds:.2f} s"
            return [loaded] if files else []
        if event.phase == "prepare" and self._shows(event.replica):
            wall = event.at - unit.began if unit.began is not None else event.seconds
            phases = ", ".join(f"{phase} {unit.seconds[phase]:.2f} s" for phase in ("create", "ready", "prepare")
                               if unit.seconds.get(phase, 0.0) >= SHOWN)  # fmt: skip
            return [f"{unit.name} ready in {wall:.2f} s" + (f" ({phases})" if phases else "")]
        if event.phase == "create" and self.verbosity > 0:
            return [f"{unit.name} created in {event.seconds:.2f} s"]
        if event.phase == "ready" and self.verbosity > 0:
            return [f"{unit.name} answers after {event.seconds:.2f} s"]
        return []

    def _shows(self, replica: int) -> bool:
        """The replicas of worker gw1 and on are shown with -v (their failures and long waits always)."""
        return replica == 0 or self.verbosity > 0

    # the status line ------------------------------------------------------------------------------------------

    def _doing(self, unit: _Unit, now: float) -> str:
        phase = unit.phases[-1]
        elapsed = now - unit.since.get(phase, now)
        counted = unit.count.get(phase)
        if phase == "ready":
            if unit.waited is not None:
                return f"{unit.name} waiting {elapsed:.1f} s of {unit.waited[1]:.0f} s"
            return f"{unit.name} waiting {elapsed:.1f} s"
        if counted is not None:
            done, total = counted
            of = f"/{total}" if total is not None else ""
            word = {"migrate": "migrating", "seed": "seeding", "image": "image step"}.get(phase, phase)
            return f"{unit.name} {word} {done}{of} {elapsed:.1f} s"
        word = {"create": "creating", "prepare": "preparing", "migrate": "migrating", "seed": "seeding",
                "image": "building image"}.get(phase, phase)  # fmt: skip
        return f"{unit.name} {word} {elapsed:.1f} s"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= STEP_TEXT else text[: STEP_TEXT - 3] + "..."


def _count(number: int, noun: str) -> str:
    """`1 migration`, `2 migrations`."""
    return f"{number} {noun}{'' if number == 1 else 's'}"
