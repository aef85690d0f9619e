"""The live progress of a run's starts in pytest's terminal (envmgr.progress.board says what; this module where and
when). Only the controller shows it: it alone starts containers (an xdist worker asks it), so workers never write a
line of it. `-q` shows nothing (the view is not even subscribed); `-v` shows more (envmgr.progress.board).

pytest owns the terminal, so every line goes *above* the line pytest is writing (its `tests/test_x.py ...`): on a
terminal that line is erased, the lines written, and it is written again; elsewhere (a CI log) the lines follow it
and the dots go on below, aligned. The lines are written at moments pytest is not writing:

- while a test's setup runs (it is where tests wait for their services): at once, straight to the terminal past
  pytest's output capture, and on a terminal with a status line redrawn in place (what is under way, elapsed time
  against the deadline, migrations so far) that gives way to pytest's line when the setup ends;
- under xdist (the controller runs no test; its terminal shows the workers' results): at once, as plain lines
  (not on a terminal, the dots that follow begin a line of their own);
- otherwise (a start in the background while a test runs or tests are collected): at the next test's report, or at
  the end of the collection or the session.

Without a status line (not a terminal, xdist, `-s`, live logging), a phase that goes on says so again every few
seconds instead (envmgr.progress.board.HEARTBEAT). An event costs a lock and a few comparisons; a test a context
manager around its setup (no thread, no write, when nothing starts).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Generator
from contextlib import suppress

import pytest

from envmgr.progress.board import Board
from envmgr.progress.events import Event

__all__ = ["ProgressView", "Terminal"]

ERASE = "\r\x1b[K"
REDRAW_INTERVAL = 0.1
"""at most ten redraws of the status line a second"""
TICK = 0.5
"""the status line's elapsed times move on at least this often while a test waits"""


class Terminal:
    """pytest's terminal: its writer (what it has written of its current line) and a descriptor of the terminal of
    our own, taken before any test runs, that pytest's capture of a test's output does not redirect."""

    def __init__(self, config: pytest.Config) -> None:
        self.writer = config.get_terminal_writer()
        self.fd: int | None = None
        with suppress(AttributeError, OSError, ValueError):  # no real stdout (pytest run in-process by a test)
            self.fd = os.dup(sys.stdout.fileno())
        self.tty = self.fd is not None and os.isatty(self.fd)
        self.status = ""
        """the status line on the screen (it stands where pytest's current line was)"""
        self._owed: str | None = None
        """not on a terminal: pytest's line as it was when lines of ours last followed it, spaces not written yet"""

    def pytest_line(self) -> str:
        """What pytest has written of its current line (its `tests/test_x.py ..`)."""
        line = getattr(self.writer, "_current_line", None)
        return line if isinstance(line, str) else " " * self.writer.width_of_current_line

    def above(self, lines: list[str], flush: bool, settle: bool = True) -> None:
        """Write the lines above pytest's current line (or the status line). `flush`: pytest's own output first
        (never while a test's output is captured: it would go to the capture). Not on a terminal, the lines follow
        pytest's line and, with `settle` (or at `settle()`), spaces as wide as it: its dots go on below, aligned."""
        if flush:
            self.writer.flush()
        text = "".join(line + "\n" for line in lines)
        if self.tty:
            self._write(ERASE + text + (self.status or self.pytest_line()))
            return
        current = self.pytest_line()
        lead = "" if self._owed == current else ("\n" if current else "")  # right below lines of ours: go on
        self._owed = current
        self._write(lead + text)
        if settle:
            self.settle()

    def settle(self) -> None:
        """Not on a terminal: spaces as wide as pytest's line, after lines of ours (pytest writes on from there)."""
        if self._owed is not None:
            self._write(" " * self.writer.width_of_current_line)
            self._owed = None

    def show(self, status: str) -> None:
        """The status line in place of pytest's current line (a terminal only)."""
        if not self.tty or status == self.status:
            return
        if not status:
            self.hide()
            return
        width = max(20, self.writer.fullwidth - 1)
        self.status = status if len(status) <= width else status[: width - 3] + "..."
        self._write(ERASE + self.status)

    def hide(self) -> None:
        """pytest's current line back in place of the status line."""
        if self.status:
            self.status = ""
            self._write(ERASE + self.pytest_line())

    def close(self) -> None:
        if self.fd is not None:
            with suppress(OSError):
                os.close(self.fd)
            self.fd = None

    def _write(self, text: str) -> None:
        if self.fd is None:
            self.writer.write(text, flush=True)
            return
        data = text.encode("utf-8", "replace")
        with suppress(OSError):  # a closed terminal: progress is best effort
            while data:
                data = data[os.write(self.fd, data) :]


class ProgressView:
    """The progress sink and the pytest plugin that shows it (registered in the controller only, once the session
    starts: pytest's terminal and xdist's controller are there then)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.board = Board(config.get_verbosity())
        self.terminal = Terminal(config)
        self.live = self.terminal.tty and config.getoption("capture", "fd") != "no" and not config.getini("log_cli")
        """a status line may be drawn while a test's setup waits"""
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._held = False
        """a test's setup runs: pytest writes nothing until it ends"""
        self._direct = config.pluginmanager.get_plugin("dsession") is not None
        """under xdist: the controller's terminal shows the workers' results, lines go out at once"""
        self._drawn = 0.0
        self._ticker: threading.Thread | None = None
        self._tick = threading.Event()

    # the sink (any thread) ----------------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        with self._lock:
            live = self._held and self.live
            lines = self.board.lines(event, live)
            if self._direct or self._held:
                if lines:
                    self.terminal.above(lines, flush=self._direct, settle=False)  # settled when the setup ends
                if live:
                    self._redraw(event.at, force=bool(lines))
            else:
                self._pending.extend(lines)

    # pytest's hooks (its main thread) ----------------------------------------------------------------------

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._drain(flush=True)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, object, object]:
        self._hold()
        try:
            return (yield)
        finally:
            self._release()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self._pending:
            self._drain(flush=True)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self._drain(flush=True)

    def close(self) -> None:
        self._release()
        self._drain(flush=True)
        self.terminal.close()

    # holding the terminal while a test's setup runs ------------------------------------------------------------

    def _hold(self) -> None:
        with self._lock:
            self._held = True
            if self._pending:
                self.terminal.above(self._pending, flush=False, settle=False)  # pytest flushed as the test began
                self._pending = []
            if self.live and self.board.busy():
                self._redraw(time.perf_counter(), force=True)

    def _release(self) -> None:
        with self._lock:
            self._held = False
            self.terminal.hide()
            self.terminal.settle()
            ticker, self._ticker = self._ticker, None
            if ticker is not None:
                self._tick.set()
        if ticker is not None:
            ticker.join()

    def _drain(self, flush: bool) -> None:
        with self._lock:
            if self._pending:
                self.terminal.above(self._pending, flush=flush)
                self._pending = []

    def _redraw(self, now: float, force: bool = False) -> None:
        """The status line again (under the lock), at most every REDRAW_INTERVAL; a ticker keeps its times moving
        while the setup waits and something is under way."""
        if not force and now - self._drawn < REDRAW_INTERVAL:
            return
        self._drawn = now
        self.terminal.show(self.board.status(now))
        if self._ticker is None and self.board.busy():
            self._tick = threading.Event()
            self._ticker = threading.Thread(target=self._ticking, args=(self._tick,), name="envmgr-progress",
                                            daemon=True)  # fmt: skip
            self._ticker.start()

    def _ticking(self, stop: threading.Event) -> None:
        while not stop.wait(TICK):
            with self._lock:
                if stop.is_set():
                    return
                if not (self._held and self.board.busy()):
                    self.terminal.hide()
                    self._ticker = None
                    return
                self._redraw(time.perf_counter(), force=True)
