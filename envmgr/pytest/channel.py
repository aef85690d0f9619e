"""How xdist workers ask the controller for services: a Unix socket of the run's own (mode 0600 in a 0700 folder,
named after the controller: `envmgr.engine.run_folders`, so that a killed controller's is removed by its watchdog or
the next sweep).

The controller owns the environment and starts each service once per run, when the first worker asks for it (a
worker asks, without waiting, for everything its collected tests reach right after collection, and waits for a
service when a test first needs it). Per-worker replicas (WireMock, Celery) start for the worker that asks.

One JSON request per connection, one JSON line back (the daemon's encoding, errors included: envmgr.daemon.protocol):

    {"op": "ensure", "services": ["postgres"], "worker": "gw1", "why": {"postgres": "db_session"}, "wait": true}
        -> {"ok": true, "endpoints": {...Endpoints JSON...}}          (when they are ready; at once without wait)
    {"op": "collected", "reached": ["postgres", "wiremock"]}          (a worker's collection has ended)
        -> {"ok": true}
"""

from __future__ import annotations

import os
import selectors
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from envmgr.daemon.protocol import MAX_REQUEST_BYTES, decode, encode, error_response, raise_for_error
from envmgr.daemon.trust import check_peer
from envmgr.endpoints import Endpoints
from envmgr.engine import run_folders
from envmgr.errors import EnvmgrError

__all__ = ["Collected", "ControllerClient", "ControllerServer", "Ensure"]

ENSURE_TIMEOUT = 3600.0
SOCKET_PATH_MAX = 108
"""bytes in a Unix socket's path (Linux's sun_path)"""
Ensure = Callable[[Sequence[str], str, Mapping[str, str], bool], Endpoints]
"""(services, worker id, why each is needed, wait) -> the endpoints started so far"""
Collected = Callable[[Sequence[str]], None]
"""(the services a worker's collected tests reach) -> None"""


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        try:
            check_peer(self.connection, self.server.path)  # only this user's processes (the run's workers)
            line = self.rfile.readline(MAX_REQUEST_BYTES)
            if not line:  # closed without a request: a sweep asking whether this run is alive
                return
            request = decode(line)
            op = request.get("op")
            response: dict[str, Any]
            if op == "ensure":
                endpoints = self.server.ensure(
                    [str(name) for name in request.get("services") or []],
                    str(request.get("worker", "main")),
                    {str(k): str(v) for k, v in (request.get("why") or {}).items()},
                    bool(request.get("wait", True)),
                )
                response = {"ok": True, "endpoints": endpoints.model_dump(mode="json")}
            elif op == "collected":
                self.server.collected([str(name) for name in request.get("reached") or []])
                response = {"ok": True}
            else:
                raise EnvmgrError(f"unknown request {op!r}", "workers and controller must match")
        except EnvmgrError as exc:
            response = error_response(exc)
        self.wfile.write(encode(response))


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    timeout = 0.0
    """handle_request() never blocks: the controller's loop calls it only when a connection is waiting"""
    request_queue_size = socket.SOMAXCONN
    """the listen backlog: a Unix socket refuses a connection at once (EAGAIN) when it is full, and every worker of a
    large run connects at the same moment (socketserver's default is 5)"""

    def __init__(self, path: Path, ensure: Ensure, collected: Collected) -> None:
        self.path = path
        self.ensure = ensure
        self.collected = collected
        super().__init__(str(path), _Handler)


class ControllerServer:
    """The controller's end: serves `ensure` and `collected` requests from a thread until `close()`."""

    def __init__(self, ensure: Ensure, collected: Collected) -> None:
        run_folders.remove_dead()  # what killed runs left (the next sweep)
        self._folder = run_folders.make()  # 0700: mkdtemp's mode
        self.path = self._folder / run_folders.SOCKET_NAME
        if len(os.fsencode(self.path)) > SOCKET_PATH_MAX:
            self._folder.rmdir()
            raise EnvmgrError(
                f"the run's socket {self.path} is longer than a Unix socket's path may be ({SOCKET_PATH_MAX} bytes)",
                "set TMPDIR to a shorter folder (e.g. /tmp) for pytest -n",
            )
        previous = os.umask(0o177)
        try:
            self._server = _Server(self.path, ensure, collected)
        finally:
            os.umask(previous)
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="envmgr-controller", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        """Accept requests (each handled in a thread of its own) until `close()` writes to the wake-up pipe: no
        polling interval for the end of the run to wait out (serve_forever's was up to 0.2 s at every run's end)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self._server, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in selector.select()}
                if self._wake_read in ready:
                    return
                self._server.handle_request()  # a connection is waiting: accepted without blocking

    def close(self) -> None:
        os.write(self._wake_write, b"x")
        self._thread.join(timeout=5)
        self._server.server_close()
        for end in (self._wake_read, self._wake_write):
            os.close(end)
        self.path.unlink(missing_ok=True)
        self._folder.rmdir()


class ControllerClient:
    """A worker's end."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def ensure(self, services: Sequence[str], worker: str, why: Mapping[str, str], wait: bool) -> Endpoints:
        request = {"op": "ensure", "services": list(services), "worker": worker, "why": dict(why), "wait": wait}
        return Endpoints.model_validate(self._call(request)["endpoints"])

    def collected(self, reached: Sequence[str]) -> None:
        """Tell the controller what this worker's collected tests reach."""
        self._call({"op": "collected", "reached": list(reached)})

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(ENSURE_TIMEOUT)
            try:
                connection.connect(str(self.path))
                check_peer(connection, self.path)
                connection.sendall(encode(request))
                with connection.makefile("rb") as stream:
                    line = stream.readline()
            except OSError as exc:
                raise EnvmgrError(
                    f"this xdist worker cannot reach the run's controller at {self.path}: {exc}",
                    "the controller process has ended; run pytest again",
                ) from None
        if not line:
            raise EnvmgrError("the run's controller closed the connection", "run pytest again")
        return raise_for_error(decode(line))
