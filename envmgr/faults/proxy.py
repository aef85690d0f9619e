"""FaultProxy: a TCP proxy in the test process through which one pytest worker reaches a shared server, so that a
fault ("Redis not answering", "database gone") hits that worker only, with the error the application would see in
production.

    proxy = FaultProxy("127.0.0.1", 5432, name="postgres-gw1")
    port = proxy.start()    # connect to 127.0.0.1:<port> instead of the server
    proxy.pause()           # connections stay open, nothing moves: clients hang until their own time-out
    proxy.stop()            # open connections are reset, new ones refused
    proxy.restore()         # back to normal on the same port; after a pause, buffered bytes flow on
    proxy.close()

One background thread serves the listening socket and every connection with `selectors` and non-blocking sockets.
Bytes read from one side are sent to the other at once (no extra wake-up when the other side can take them), with
TCP_NODELAY on both sides and at most `BUFFER_BYTES` waiting per direction (a side is not read while its peer's
buffer is full). The test thread never touches the sockets: `pause`, `stop` and `restore` queue a request, wake the
thread through a socket pair and wait (with a deadline) until it has been applied, so when they return the fault is
in place.

Stop without giving the port away: the listening socket is closed (connects are refused: nothing listens) and a
socket bound to the same port, not listening, takes its place until `restore` listens on it. It keeps the port from
the kernel's ephemeral ports and from programs that bind without SO_REUSEADDR; one that binds with SO_REUSEADDR can
still take it, and then `restore` raises `ProxyError`.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

from envmgr.errors import first_line
from envmgr.faults.proxy_loop import Loop
from envmgr.faults.proxy_state import BUFFER_BYTES, JOIN_TIMEOUT, ProxyError, ProxyState

__all__ = ["BUFFER_BYTES", "FaultProxy", "ProxyError", "ProxyState"]


class FaultProxy:
    """A TCP proxy on 127.0.0.1:<free port> forwarding to (target_host, target_port)."""

    def __init__(self, target_host: str, target_port: int, *, name: str = "") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.name = name or f"{target_host}:{target_port}"
        self._calls = threading.Lock()
        """one caller at a time in start/pause/stop/restore/close"""
        self._loop: Loop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> int:
        """Listen on a free port of 127.0.0.1 and start forwarding; return the port. Idempotent."""
        with self._calls:
            if self._closed:
                raise self._closed_error()
            if self._loop is None:
                loop = Loop(self.name, self._resolve())
                thread = threading.Thread(target=loop.run, name=f"envmgr-proxy-{self.name}", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop.port

    @property
    def port(self) -> int:
        """The local port clients connect to (the same after stop and restore)."""
        if self._loop is None:
            raise ProxyError(f"fault proxy {self.name} has no port yet", "call start() first")
        return self._loop.port

    @property
    def state(self) -> ProxyState:
        """The fault in effect: "running" (forwarding), "paused" or "stopped"."""
        return "running" if self._loop is None else self._loop.state

    def pause(self) -> None:
        """Forward nothing in either direction; connections (also new ones) stay open: clients hang until their
        own time-out, as with a server that does not answer."""
        self._command("paused")

    def stop(self) -> None:
        """Reset (RST) every open connection and refuse new ones, as with a server that is gone."""
        self._command("stopped")

    def restore(self) -> None:
        """Back to normal after pause or stop, on the same port; after a pause the buffered bytes flow on."""
        self._command("running")

    def close(self) -> None:
        """Reset every connection, free the port and end the thread (within JOIN_TIMEOUT seconds). Idempotent.

        Raises ProxyError if the thread does not end in time or had ended on an error of its own.
        """
        with self._calls:
            if self._closed:
                return
            self._closed = True
            if self._loop is None or self._thread is None:
                return
            self._loop.end()
            self._thread.join(JOIN_TIMEOUT)
            if self._thread.is_alive():
                raise ProxyError(
                    f"fault proxy {self.name}: its thread did not end within {JOIN_TIMEOUT:g} s",
                    "report this as an envmgr bug",
                )
            self._loop.raise_failure()

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _command(self, wanted: ProxyState) -> None:
        with self._calls:
            if self._closed:
                raise self._closed_error()
            if self._loop is None:
                raise ProxyError(f"fault proxy {self.name} is not started", "call start() first")
            self._loop.apply(wanted)

    def _closed_error(self) -> ProxyError:
        return ProxyError(f"fault proxy {self.name} is closed", "create a new FaultProxy")

    def _resolve(self) -> tuple[socket.AddressFamily, tuple[str, int]]:
        try:
            found = socket.getaddrinfo(self.target_host, self.target_port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ProxyError(
                f"fault proxy {self.name}: cannot resolve {self.target_host}: {first_line(exc)}",
                "give the server's address as seen from the host (e.g. 127.0.0.1)",
            ) from exc
        family, _, _, _, address = found[0]
        return family, (str(address[0]), int(address[1]))
