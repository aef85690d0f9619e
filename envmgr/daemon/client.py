"""The daemon's client, used by the pytest plugin and `envmgr up`, and `spawn`, which starts a daemon.

The protocol is documented in envmgr.daemon.protocol; the client trusts only a daemon of its own user
(envmgr.daemon.trust). Kept light: a leasing test run imports neither Docker nor the daemon's pool.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envmgr.config import Settings
from envmgr.credentials import state_folder
from envmgr.daemon import protocol, trust
from envmgr.endpoints import Endpoints
from envmgr.engine.labels import Owner
from envmgr.errors import DaemonError, DaemonNotRunningError, DaemonUntrustedError

__all__ = ["DaemonClient", "Lease", "auto_mode", "default_socket_path", "lease_if_running", "spawn"]

SOCKET_PATH_MAX = 107
"""bytes in a Unix socket's path (108 in Linux's sun_path, its terminating zero included)"""
PING_TIMEOUT = 5.0  # a daemon that does not answer a ping within it is an error (DaemonError), not "none"
LEASE_TIMEOUT = 600.0


def _engine_key() -> str:
    engine = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return hashlib.sha256(f"{os.getuid()}|{engine}".encode()).hexdigest()[:12]


def default_socket_path() -> Path:
    """$ENVMGR_DAEMON_SOCKET, else a per-user folder no one else can create: $XDG_RUNTIME_DIR/envmgr, else `run` in
    envmgr's state folder (~/.local/state/envmgr/run); a shorter name there when the socket's path would not fit in a
    Unix socket address, and /tmp/envmgr-<uid> only when even that does not."""
    explicit = os.environ.get("ENVMGR_DAEMON_SOCKET")
    if explicit:
        return Path(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "envmgr" / f"daemon-{_engine_key()}.sock"
    folder = state_folder() / "run"
    for name in (f"daemon-{_engine_key()}.sock", f"d{_engine_key()[:8]}.sock"):
        if len(os.fsencode(folder / name)) <= SOCKET_PATH_MAX:
            return folder / name
    return Path(f"/tmp/envmgr-{os.getuid()}") / f"daemon-{_engine_key()}.sock"


@dataclass(frozen=True)
class Lease:
    """An environment leased from the daemon: hand it back with `DaemonClient.release`."""

    id: str
    endpoints: Endpoints
    warm: bool


_STATUS_FIX = "see envmgr daemon status, and the daemon's log beside its socket"
Warn = Callable[[str], None]
"""where a warning line goes"""


def _to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class DaemonClient:
    """Talks to the daemon on its Unix socket; one request per connection."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_socket_path()

    def _call(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request, return the response; the daemon's error, raised, when it answers with one.

        Nothing is sent before the socket is trusted (trust.check_socket, trust.check_peer).
        DaemonNotRunningError when no daemon listens; DaemonError when it cannot be trusted or does not answer.
        """
        trust.check_socket(self.path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(timeout)
            try:
                connection.connect(str(self.path))
            except (FileNotFoundError, ConnectionRefusedError):
                raise DaemonNotRunningError(
                    f"no envmgr daemon answers on {self.path}", "start one: envmgr daemon start"
                ) from None
            except OSError as exc:
                raise DaemonError(f"cannot reach the envmgr daemon on {self.path}: {exc}", _STATUS_FIX) from None
            trust.check_peer(connection, self.path)
            try:
                connection.sendall(protocol.encode(request))
                with connection.makefile("rb") as stream:
                    line = stream.readline()
            except TimeoutError:
                raise DaemonError(
                    f"the envmgr daemon on {self.path} did not answer {request.get('op')} within {timeout:g} s",
                    _STATUS_FIX,
                ) from None
            except OSError as exc:
                raise DaemonError(f"the envmgr daemon on {self.path} failed: {exc}", _STATUS_FIX) from None
        if not line:
            raise DaemonError(f"the envmgr daemon on {self.path} closed the connection", _STATUS_FIX)
        return protocol.raise_for_error(protocol.decode(line))

    def available(self, auto: bool = False, warn: Warn | None = None) -> bool:
        """True when a daemon answers on the socket, False when none does; DaemonUntrustedError when the socket
        cannot be trusted (another user's folder, socket or process), except with `auto` (`auto_mode`): then that
        is no daemon either, said in one warning line (to `warn`; stderr by default)."""
        try:
            self._call({"op": "ping"}, PING_TIMEOUT)
        except DaemonNotRunningError:
            return False
        except DaemonUntrustedError as exc:
            if not auto:
                raise
            (warn or _to_stderr)(f"envmgr: warning: using no daemon: {exc.cause} ({exc.fix})")
            return False
        return True

    def pid(self) -> int:
        """The daemon's process id."""
        return int(self._call({"op": "ping"}, PING_TIMEOUT)["pid"])

    def lease(self, settings: Settings, services: list[str] | None = None, workers: int = 0) -> Lease:
        response = self._call(protocol.lease_request(settings, services, workers, Owner.current()), LEASE_TIMEOUT)
        return Lease(
            id=str(response["lease"]),
            endpoints=Endpoints.model_validate(response["endpoints"]),
            warm=bool(response["warm"]),
        )

    def lease_warm(self, settings: Settings, workers: int = 0) -> Lease | None:
        """A warm environment of this configuration, or None (the daemon starts none: a test run starts its own,
        and may hand it over at its end: `adopt`). Its endpoints are every enabled service's: where it runs, or where
        it will once a test asks for it (`ensure`)."""
        request = protocol.lease_request(settings, None, workers, Owner.current(), start=False)
        response = self._call(request, LEASE_TIMEOUT)
        if response.get("lease") is None:
            return None
        return Lease(
            id=str(response["lease"]),
            endpoints=Endpoints.model_validate(response["endpoints"]),
            warm=bool(response["warm"]),
        )

    def ensure(self, lease_id: str, services: list[str], worker: str | None, isolated: bool = True) -> Endpoints:
        """Start these services on the leased environment (for a per-worker service: `worker`'s replica)."""
        request = {"op": "ensure", "lease": lease_id, "services": services, "worker": worker, "isolated": isolated}
        return Endpoints.model_validate(self._call(request, LEASE_TIMEOUT)["endpoints"])

    def adopt(self, env_id: str, settings: Settings, workers: int) -> None:
        """Hand a run's environment to the daemon, which keeps it warm (made with its labels: `labels_for`)."""
        request = {"op": "adopt", "env": env_id, "settings": settings.model_dump(mode="json"), "workers": workers}
        self._call(request, LEASE_TIMEOUT)

    def drop_idle(self) -> list[str]:
        """Remove the daemon's idle environments; their ids."""
        return [str(env_id) for env_id in self._call({"op": "drop_idle"}, LEASE_TIMEOUT)["removed"]]

    def release(self, lease_id: str) -> None:
        """Hand the lease back (the daemon resets the environment in the background). DaemonNotRunningError when
        the daemon is gone (stopped with --force: the environment is gone with it)."""
        self._call({"op": "release", "lease": lease_id}, LEASE_TIMEOUT)

    def status(self) -> list[dict[str, Any]]:
        environments: list[dict[str, Any]] = self._call({"op": "status"}, PING_TIMEOUT * 10)["environments"]
        return environments

    def stop(self, force: bool = False) -> None:
        self._call({"op": "stop", "force": force}, PING_TIMEOUT * 10)


def auto_mode(settings: Settings) -> bool:
    """Whether a daemon is only used when one can be: `daemon = "auto"` and the default socket (a socket named by
    ENVMGR_DAEMON_SOCKET, or `daemon = "on"`, that cannot be trusted is an error)."""
    return settings.daemon == "auto" and not os.environ.get("ENVMGR_DAEMON_SOCKET")


def lease_if_running(settings: Settings, services: list[str] | None = None, workers: int = 0) -> Lease | None:
    """A warm environment from the daemon, by the setting `daemon`: `off` never; `auto` when one answers; `on`
    requires one (DaemonNotRunningError otherwise). None: start your own."""
    if settings.daemon == "off":
        return None
    client = DaemonClient()
    if not client.available(auto_mode(settings)):
        if settings.daemon == "on":
            raise DaemonNotRunningError(
                f"no envmgr daemon answers on {client.path} (daemon = 'on')",
                "start it (envmgr daemon start) or set daemon = 'auto'",
            )
        return None
    return client.lease(settings, services, workers)


def spawn(path: Path, timeout: float = 15.0, exit_when_idle: float | None = None) -> tuple[int, Path]:
    """Start `python -m envmgr.daemon` in its own session; return its pid and log file once it answers.
    `exit_when_idle`: it stops after that many seconds with no environment and no request (one a test run starts).

    The log file is beside the socket, in the user's private folder (created 0700, or refused when it is not
    the user's alone: DaemonError).
    """
    trust.private_folder(path.parent)
    log = path.with_suffix(".log")
    idle = ["--exit-when-idle", f"{exit_when_idle:g}"] if exit_when_idle is not None else []
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "envmgr.daemon", "--socket", str(path), *idle],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    client = DaemonClient(path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.available():
            return process.pid, log
        if process.poll() is not None:
            break
        time.sleep(0.05)  # polling the socket of a process that is starting, within the deadline
    tail = log.read_text(errors="replace").splitlines()[-10:] if log.exists() else []
    raise DaemonError(
        f"the envmgr daemon did not answer within {timeout:g} s: {' | '.join(tail) or 'no output'}",
        f"read {log}",
    )
