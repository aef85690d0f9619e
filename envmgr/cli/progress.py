"""The live progress of `envmgr up`'s start on the console (stderr): the lines envmgr.progress.board says, printed
above Rich's status line, which shows what is under way (elapsed time against the deadline, migrations so far).
Not on a terminal, Rich prints the lines alone, and a phase that goes on says so again every few seconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.status import Status
from rich.text import Text

from envmgr.progress.board import Board
from envmgr.progress.events import Event

__all__ = ["ConsoleProgress"]

TICK = 0.5


class ConsoleProgress:
    """A progress sink for the CLI (see the module's documentation); `shown(text)` holds the status line."""

    def __init__(self, console: Console, verbosity: int = 0) -> None:
        self.console = console
        self.board = Board(verbosity)
        self.live = console.is_terminal
        self._status: Status | None = None
        self._idle = Text("")
        self._lock = threading.Lock()

    @contextmanager
    def shown(self, idle: str) -> Iterator[None]:
        """The status line while the block runs: what is under way, else `idle`."""
        self._idle = Text(idle)
        stop = threading.Event()
        with self.console.status(self._idle) as status:
            with self._lock:
                self._status = status
            ticker = threading.Thread(target=self._ticking, args=(stop,), name="envmgr-progress", daemon=True)
            ticker.start()
            try:
                yield
            finally:
                stop.set()
                ticker.join()
                with self._lock:
                    self._status = None

    def __call__(self, event: Event) -> None:
        with self._lock:
            for line in self.board.lines(event, live=self.live):
                self.console.print(line, highlight=False, markup=False, soft_wrap=True)
            self._update(event.at)

    def _update(self, now: float) -> None:
        if self._status is not None:
            text = self.board.status(now)
            self._status.update(Text(text) if text else self._idle)

    def _ticking(self, stop: threading.Event) -> None:
        while not stop.wait(TICK):
            with self._lock:
                self._update(time.perf_counter())
