"""The daemon's client, used by the pytest plugin and `envmgr up` (see envmgr.daemon for the protocol)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envmgr.config import Settings
from envmgr.endpoints import Endpoints
from envmgr.errors import (
    ConfigError,
    EnvmgrError,
    ImageError,
    MigrationError,
    SeedError,
)
from envmgr.labels import Owner

__all__ = ["DaemonClient", "Lease", "default_socket_path", "lease_if_running"]

PING_TIMEOUT = 1.0
LEASE_TIMEOUT = 600.0
ERRORS: dict[str, type[EnvmgrError]] = {
    cls.__name__: cls for cls in (ConfigError, ImageError, MigrationError, SeedError, EnvmgrError)
}


def _engine_key() -> str:
    engine = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return hashlib.sha256(f"{os.getuid()}|{engine}".encode()).hexdigest()[:12]


def default_socket_path() -> Path:
    """$ENVMGR_DAEMON_SOCKET, else a per-user runtime folder: $XDG_RUNTIME_DIR/envmgr or /tmp/envmgr-<uid>."""
    explicit = os.environ.get("ENVMGR_DAEMON_SOCKET")
    if explicit:
        return Path(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    folder = Path(runtime) / "envmgr" if runtime else Path(f"/tmp/envmgr-{os.getuid()}")
    return folder / f"daemon-{_engine_key()}.sock"


@dataclass(frozen=True)
class Lease:
    """An environment leased from the daemon: hand it back with `DaemonClient.release`."""

    id: str
    endpoints: Endpoints
    warm: bool


class DaemonClient:
    """Talks to the daemon on its Unix socket; one request per connection."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_socket_path()

    def _call(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(timeout)
            connection.connect(str(self.path))
            connection.sendall(json.dumps(request).encode() + b"\n")
            with connection.makefile("rb") as stream:
                line = stream.readline()
        if not line:
            raise EnvmgrError(f"the envmgr daemon on {self.path} closed the connection", "see envmgr daemon status")
        response: dict[str, Any] = json.loads(line)
        if not response.get("ok"):
            error = response.get("error") or {}
            cls = ERRORS.get(str(error.get("type")), EnvmgrError)  # start failures arrive as the base class
            raise cls(f"daemon: {error.get('cause')}", error.get("fix"))
        return response

    def available(self) -> bool:
        """True when a daemon answers on the socket."""
        if not self.path.exists():
            return False
        try:
            self._call({"op": "ping"}, PING_TIMEOUT)
        except (OSError, EnvmgrError, ValueError):
            return False
        return True

    def pid(self) -> int:
        """The daemon's process id."""
        return int(self._call({"op": "ping"}, PING_TIMEOUT)["pid"])

    def lease(self, settings: Settings, services: list[str] | None = None, workers: int = 0) -> Lease:
        owner = Owner.current()
        response = self._call(
            {
                "op": "lease",
                "settings": settings.model_dump(mode="json"),
                "services": services,
                "workers": workers,
                "holder": {"pid": owner.pid, "start": owner.start, "host": owner.host},
            },
            LEASE_TIMEOUT,
        )
        return Lease(
            id=str(response["lease"]),
            endpoints=Endpoints.model_validate(response["endpoints"]),
            warm=bool(response["warm"]),
        )

    def release(self, lease_id: str) -> None:
        self._call({"op": "release", "lease": lease_id}, LEASE_TIMEOUT)

    def status(self) -> list[dict[str, Any]]:
        environments: list[dict[str, Any]] = self._call({"op": "status"}, PING_TIMEOUT * 10)["environments"]
        return environments

    def stop(self, force: bool = False) -> None:
        self._call({"op": "stop", "force": force}, PING_TIMEOUT * 10)


def lease_if_running(settings: Settings, services: list[str] | None = None, workers: int = 0) -> Lease | None:
    """A warm environment from the daemon, by the setting `daemon`: `off` never; `auto` when one answers; `on`
    requires one (EnvmgrError otherwise). None: start your own."""
    if settings.daemon == "off":
        return None
    client = DaemonClient()
    if not client.available():
        if settings.daemon == "on":
            raise EnvmgrError(
                f"no envmgr daemon answers on {client.path} (daemon = 'on')",
                "start it (envmgr daemon start) or set daemon = 'auto'",
            )
        return None
    return client.lease(settings, services, workers)
