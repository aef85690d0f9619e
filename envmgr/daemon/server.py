"""The daemon's server: requests (envmgr.daemon.protocol) answered from the pool, over a Unix socket.

`serve` listens first, then adopts the environments the last daemon on its socket left (in the background: ping and
status answer meanwhile, leases and releases wait for it), and runs in the foreground until a `stop` request,
SIGTERM or SIGINT; on the way out it removes its environments, then its socket (a vanished socket means the
environments are gone too).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from envmgr.config import Settings
from envmgr.daemon import monitor, presence, protocol, trust
from envmgr.daemon.client import default_socket_path
from envmgr.daemon.keys import daemon_key
from envmgr.daemon.pool import Pool
from envmgr.endpoints import Worker
from envmgr.engine.connection import Engine
from envmgr.engine.labels import Owner
from envmgr.errors import DaemonError, DaemonNotRunningError, EnvmgrError, first_line

__all__ = ["STOP_RECOVERY_WAIT", "Daemon", "serve"]

LOG = logging.getLogger("envmgr.daemon")
FIRST_ENVIRONMENT_WAIT = 3600.0
"""seconds a daemon a test run started (`exit_when_idle`) waits for its first environment: the run's, at its end"""
STOP_RECOVERY_WAIT = 30.0
"""seconds a `stop` without force waits for the adoption to end (the leases it adopts count): within the client's
wait for the answer"""


class Daemon:
    """What the daemon answers: `handle(request) -> response`, from its pool; and whether it is stopping."""

    def __init__(self, socket_path: Path, engine: Engine | None = None) -> None:
        self.engine = engine or Engine.connect()
        self.pool = Pool(self.engine, daemon_key(socket_path))
        self._stop = threading.Event()
        self._last_request = time.monotonic()

    def recover(self) -> None:
        """Announce this daemon on the engine (a sweep keeps its environments while it lives: see
        envmgr.daemon.presence), then adopt in the background the environments (and leases) a previous daemon on
        this socket left there."""
        presence.announce(self.engine, self.pool.key, Owner.current())
        self.pool.recover_in_background()

    def run_monitor(self) -> threading.Thread:
        return monitor.watch(self.pool, self._stop)

    def shutdown(self) -> None:
        """Remove every environment of this daemon (idle and leased)."""
        self._stop.set()
        self.pool.remove_all()
        presence.withdraw(self.engine, self.pool.key)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def exit_when_idle(self, seconds: float, shutdown: Callable[[], None]) -> None:
        """In a thread: call `shutdown` once the pool has been empty, and no request came, for `seconds`; before its
        first environment, for FIRST_ENVIRONMENT_WAIT at least (the run that started it hands its over at its end)."""

        def watch() -> None:
            had_one = False
            while not self._stop.wait(min(seconds, 5.0) / 2 or 0.1):
                empty = not self.pool.status()
                had_one = had_one or not empty
                quiet = time.monotonic() - self._last_request
                if empty and quiet > (seconds if had_one else max(seconds, FIRST_ENVIRONMENT_WAIT)):
                    LOG.info("no environment and no request for %.0f s: stopping", quiet)
                    self._stop.set()
                    shutdown()
                    return

        threading.Thread(target=watch, name="envmgr-daemon-idle", daemon=True).start()

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        self._last_request = time.monotonic()
        op = request.get("op")
        try:
            if op == "ping":
                from envmgr import __version__

                return {"ok": True, "pid": os.getpid(), "version": __version__, "recovering": self.pool.recovering}
            if op == "lease":
                lease = protocol.parse_lease_request(request)
                warm, was_warm = self.pool.lease(lease)
                if warm is None:
                    return {"ok": True, "lease": None}
                endpoints = warm.env.endpoints if lease.start else warm.env.plan()
                return {"ok": True, "lease": warm.env.id, "warm": was_warm, "endpoints": endpoints.model_dump()}
            if op == "ensure":
                worker = request.get("worker")
                endpoints = self.pool.ensure(
                    str(request["lease"]),
                    [str(name) for name in request.get("services") or []],
                    None if worker is None else Worker(str(worker), isolated=bool(request.get("isolated", True))),
                )
                return {"ok": True, "endpoints": endpoints.model_dump()}
            if op == "adopt":
                settings = Settings.model_validate(request["settings"])
                self.pool.adopt(str(request["env"]), settings, int(request.get("workers", 0)))
                return {"ok": True}
            if op == "drop_idle":
                return {"ok": True, "removed": self.pool.drop_idle()}
            if op == "release":
                self.pool.release_later(str(request["lease"]))
                return {"ok": True}
            if op == "status":
                return {"ok": True, "recovering": self.pool.recovering, "environments": self.pool.status()}
            if op == "stop":
                return self._stop_request(bool(request.get("force")))
            raise EnvmgrError(f"unknown daemon operation {op!r}", f"use one of {', '.join(protocol.OPERATIONS)}")
        except EnvmgrError as exc:
            return protocol.error_response(exc)
        except (KeyError, TypeError, ValueError) as exc:
            return protocol.error_response(
                EnvmgrError(f"bad daemon request: {first_line(exc)}", "client and daemon must be the same version")
            )
        except Exception as exc:  # logged with its traceback; the client gets the cause instead of a closed socket
            LOG.exception("%s request failed", op)
            return protocol.error_response(
                EnvmgrError(f"the envmgr daemon failed: {first_line(exc)}", "read the daemon's log")
            )

    def _stop_request(self, force: bool) -> dict[str, Any]:
        if not force:
            self.pool.await_recovery(STOP_RECOVERY_WAIT)  # the leases it adopts count
        leased = self.pool.leased()
        if leased and not force:
            raise DaemonError(
                f"{len(leased)} environment(s) are leased ({', '.join(leased)})",
                "wait for the runs to end, or stop with --force (their tests lose their services)",
            )
        self._stop.set()
        return {"ok": True}


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        try:
            request = protocol.decode(self.rfile.readline(protocol.MAX_REQUEST_BYTES))
        except EnvmgrError as exc:
            response = protocol.error_response(exc)
        else:
            response = self.server.daemon_state.handle(request)
        self.wfile.write(protocol.encode(response))
        if self.server.daemon_state.stopping:
            threading.Thread(target=self.server.shutdown, daemon=True).start()


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    request_queue_size = socket.SOMAXCONN
    """the listen backlog: a Unix socket refuses a connection at once (EAGAIN) when it is full (default 5)"""

    def __init__(self, path: Path, daemon_state: Daemon) -> None:
        self.daemon_state = daemon_state
        super().__init__(str(path), _Handler)


def serve(socket_path: Path | None = None, exit_when_idle: float | None = None) -> None:
    """Run the daemon in the foreground until it is stopped (`stop` request, SIGTERM or SIGINT), or, with
    `exit_when_idle`, once it has had no environment and no request for that many seconds.

    DaemonError when the socket's folder is not this user's alone, or a daemon already listens on the socket.
    """
    path = socket_path or default_socket_path()
    trust.private_folder(path.parent)
    _claim(path)
    state = Daemon(path)
    previous = os.umask(0o177)  # the socket is created 0600: only this user may talk to the daemon
    try:
        server = _Server(path, state)  # listening: a client that spawned it gets an answer from now on
    finally:
        os.umask(previous)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    try:
        state.recover()
    except BaseException:
        server.server_close()
        path.unlink(missing_ok=True)
        raise
    state.run_monitor()
    if exit_when_idle is not None:
        state.exit_when_idle(exit_when_idle, server.shutdown)
    LOG.info("envmgr daemon %s listening on %s", os.getpid(), path)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        _turn_away(server, path)
        server.server_close()
        try:
            state.shutdown()
        finally:
            path.unlink(missing_ok=True)  # last: a vanished socket means the environments are gone too


def _turn_away(server: _Server, path: Path) -> None:
    """The requests that reached the socket while the daemon was stopping (after the last it served) are answered
    that no daemon answers, as once the socket is closed, rather than dropped unanswered (a broken pipe)."""
    gone = DaemonNotRunningError(
        f"no envmgr daemon answers on {path}: it is stopping", "start one: envmgr daemon start"
    )
    stopping = protocol.encode(protocol.error_response(gone))
    server.socket.setblocking(False)
    while True:
        try:
            connection, _ = server.socket.accept()
        except OSError:  # none waits any more
            return
        with connection:
            try:
                connection.settimeout(1.0)
                with connection.makefile("rb") as request:
                    request.readline(protocol.MAX_REQUEST_BYTES)
                connection.sendall(stopping)
            except OSError:
                pass  # the client has gone


def _claim(path: Path) -> None:
    """Refuse to start beside a live daemon; remove the socket file a dead one left."""
    if not path.exists():
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink(missing_ok=True)
            return
    raise DaemonError(f"an envmgr daemon already listens on {path}", "use it, or stop it: envmgr daemon stop")
