"""The controller's account of a run for its report, and the report written at the run's very end.

    install(config, run)     # pytest_configure, in the controller (or the only process)

It keeps when the run's parts began and ended (pytest start: from the process's start to the session's; the
collection; the tests; the teardown, up to the environment's removal), and the spans of the environment's phases
(envmgr.progress.spans, the same events the terminal shows). After the environment is removed it adds them to the
report (`wall`, `waterfall`, `at`), adds the run to the project's trend in pytest's cache folder
(envmgr.reports.trend: every run with an environment, so that `envmgr report show` and the next report have it),
and writes the report: `--envmgr-report PATH` JSON, or for a PATH ending in `.html` the HTML page and the JSON
beside it (`report.html`, `report.json`). Without pytest's cache (`-p no:cacheprovider`) the trend is this run's.

It also installs the terminal's progress (envmgr.pytest.progress) when the session starts, unless the run is quiet
(`-q`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from envmgr.progress.spans import Recorder
from envmgr.pytest.coordinator import coordinator_of
from envmgr.pytest.report import write_report
from envmgr.pytest.run import RunState

__all__ = ["PLUGIN_NAME", "Timeline", "install", "process_age"]

PLUGIN_NAME = "envmgr-timeline"
PROGRESS_PLUGIN = "envmgr-progress"


def install(config: pytest.Config, run: RunState) -> None:
    """Register the run's timeline; it hears the run's progress relay, and at the session's start (pytest's
    terminal is there then) installs the progress view."""
    if config.pluginmanager.get_plugin(PLUGIN_NAME) is not None:
        return
    timeline = Timeline(config, run)
    config.pluginmanager.register(timeline, PLUGIN_NAME)
    run.progress.subscribe(timeline.recorder)


def process_age() -> float | None:
    """Seconds since this process began (Linux's /proc), or None."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat, open("/proc/uptime", encoding="ascii") as uptime:
            started = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22: start time, in clock ticks
            return max(0.0, float(uptime.read().split()[0]) - started / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


class Timeline:
    """A pytest plugin of the controller (see the module's documentation)."""

    def __init__(self, config: pytest.Config, run: RunState) -> None:
        self.config = config
        self.run = run
        self.recorder = Recorder(run.origin)
        age = process_age()
        self.process_start = time.perf_counter() - age if age is not None else run.origin
        self.marks: dict[str, float] = {}
        self.report: dict[str, Any] | None = None
        self.view: Any = None
        """the progress view (closed at the end)"""

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.marks["session"] = time.perf_counter()
        config = self.config
        if config.get_verbosity() >= 0 and config.pluginmanager.get_plugin("terminalreporter") is not None:
            from envmgr.pytest.progress import ProgressView  # not even loaded with -q

            self.view = ProgressView(config)
            config.pluginmanager.register(self.view, PROGRESS_PLUGIN)
            self.run.progress.subscribe(self.view)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        self.marks["tests"] = time.perf_counter()
        try:
            return (yield)
        finally:
            self.marks["tests_end"] = time.perf_counter()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """The report as the coordinator has it (before the teardown forgets what started)."""
        coordinator = coordinator_of(self.config)
        if coordinator is not None and not self.config.option.collectonly:
            self.report = coordinator.report()

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """After the environment's removal (the plugin's own unconfigure): the report, complete."""
        self.marks["end"] = time.perf_counter()
        if self.view is not None:
            self.view.close()
        if self.report is None:
            return
        report = self.complete(self.report)
        if self.run.report_path is not None:
            try:
                write_reports(self.run.report_path, report)
            except OSError as exc:
                reporter = config.pluginmanager.get_plugin("terminalreporter")
                if reporter is not None:
                    reporter.write_line(f"envmgr: could not write the report to {self.run.report_path}: {exc}")

    def complete(self, report: dict[str, Any]) -> dict[str, Any]:
        """The report with the run's wall time, the waterfall and the trend (the run added to it)."""
        from envmgr.reports.trend import remember

        report = {**report, "at": datetime.now(UTC).isoformat(timespec="seconds")}
        report["wall"] = self.wall()
        report["waterfall"] = [span.as_dict() for span in self.recorder.spans()]
        report["trend"] = remember(getattr(self.config, "cache", None), report)
        return report

    def wall(self) -> dict[str, float]:
        """Seconds of each part of the run, and `origin`: when the waterfall's times begin (from the process's
        start)."""
        now = time.perf_counter()
        session = self.marks.get("session", self.run.origin)
        tests = self.marks.get("tests", session)
        tests_end = self.marks.get("tests_end", tests)
        end = self.marks.get("end", now)
        parts = {
            "pytest_start": session - self.process_start,
            "collection": tests - session,
            "tests": tests_end - tests,
            "teardown": end - tests_end,
        }
        wall = {name: round(max(0.0, seconds), 4) for name, seconds in parts.items()}
        wall["total"] = round(sum(wall.values()), 4)
        wall["origin"] = round(self.run.origin - self.process_start, 4)
        return wall


def write_reports(path: Path, report: dict[str, Any]) -> None:
    """The JSON report at `path`; for a `.html` path the page there and the JSON beside it."""
    if path.suffix.lower() in {".html", ".htm"}:
        from envmgr.reports.html import write_html

        write_html(path, report)
        write_report(path.with_suffix(".json"), report)
        return
    write_report(path, report)
