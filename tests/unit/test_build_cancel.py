"""BuildCancel: a derived image's build is ended from another thread by hanging up on the engine (issue 19, item 6).
The engine's side is a socket pair here: what matters is that the thread reading the build's stream wakes at once."""

from __future__ import annotations

import socket
import threading
import time
from types import SimpleNamespace
from typing import Any, cast

import requests

from envmgr.images import BuildCancel


def streamed(sock: socket.socket) -> requests.Response:
    """A stand-in for a streamed response over `sock` (what `Engine.responses` catches: raw.connection.sock)."""
    return cast(requests.Response, SimpleNamespace(raw=SimpleNamespace(connection=SimpleNamespace(sock=sock))))


def test_cancel_wakes_the_thread_that_reads_the_build_at_once() -> None:
    ours, engines = socket.socketpair()
    got: list[Any] = []
    reader = threading.Thread(target=lambda: got.append(ours.recv(1024)))
    cancel = BuildCancel()
    try:
        with cancel.tracking([streamed(ours)]):
            reader.start()
            time.sleep(0.1)  # the reader blocks in recv, as a build's stream does between its lines
            started = time.monotonic()
            cancel.cancel()
            reader.join(timeout=5)
        assert not reader.is_alive()
        assert time.monotonic() - started < 1
        assert got == [b""]
        assert cancel.cancelled
    finally:
        ours.close()
        engines.close()


def test_a_build_that_begins_after_the_cancel_is_hung_up_on_at_once() -> None:
    ours, engines = socket.socketpair()
    cancel = BuildCancel()
    cancel.cancel()
    try:
        with cancel.tracking([streamed(ours)]):
            ours.settimeout(5)
            assert ours.recv(1024) == b""
    finally:
        ours.close()
        engines.close()
