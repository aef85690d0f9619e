"""Where the engine is (`EngineAddress`, from DOCKER_HOST) and what it is (`EngineInfo`: Docker or Podman, local or
remote, how its ports are reached)."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlparse

__all__ = ["ALL_INTERFACES", "EngineAddress", "EngineInfo", "engine_kind"]

DEFAULT_HOST = "unix:///var/run/docker.sock"
LOCAL_SCHEMES = {"unix", "npipe", "http+unix", "http+docker"}
DOCKER_HOST_SCHEMES = {"unix", "npipe", "tcp", "http", "https", "ssh"}
LOOPBACK_NAMES = {"localhost", "localunixsocket"}
ALL_INTERFACES = "0.0.0.0"


@dataclass(frozen=True)
class EngineAddress:
    """Where the engine is, and how the ports it publishes are reached from this process.

    A local engine (a unix socket, a named pipe, TCP on loopback) publishes on 127.0.0.1 and can bind-mount this
    machine's files. Any other engine is remote: its ports are reached at the host `DOCKER_HOST` names, files are
    copied into containers instead of bind-mounted, and ports are bound to the engine's own address (`bind`) so
    that they are not open on every interface of that machine (when the engine cannot bind that address, e.g.
    behind NAT, `Engine` falls back to all interfaces).
    """

    url: str
    """as configured: DOCKER_HOST, or the SDK's default socket"""
    scheme: str
    """unix, npipe, tcp, ssh, http or https"""
    host: str
    """where published ports are reached: 127.0.0.1 for a local engine"""
    remote: bool
    tls: bool
    """TCP with TLS (DOCKER_TLS_VERIFY / DOCKER_CERT_PATH, or an https:// URL); ssh:// is encrypted by SSH"""
    bind_to: str = ""
    """the engine-side address to publish on, when known better than from the host name ("": from `host`)"""

    @classmethod
    def parse(cls, docker_host: str, environ: Mapping[str, str] | None = None) -> EngineAddress:
        """Read a DOCKER_HOST value (`environ`: the TLS variables, as the docker SDK reads them)."""
        environ = os.environ if environ is None else environ
        url = docker_host.strip() or DEFAULT_HOST
        parsed = urlparse(url if "://" in url else f"tcp://{url}")  # the SDK accepts a bare host:port
        scheme = parsed.scheme or "tcp"
        hostname = parsed.hostname or ""
        tls = scheme == "https" or (scheme in {"tcp", "http"} and _tls_requested(environ))
        if scheme in LOCAL_SCHEMES or not hostname or hostname in LOOPBACK_NAMES or _is_loopback(hostname):
            return cls(url=url, scheme=scheme, host="127.0.0.1", remote=False, tls=tls)
        return cls(url=url, scheme=scheme, host=hostname, remote=True, tls=tls)

    def bind(self) -> str:
        """The address ports are published on: loopback locally; the engine's own address remotely (a host name is
        resolved here, as the SDK resolves it to connect), or all interfaces when it cannot be resolved."""
        if not self.remote:
            return "127.0.0.1"
        if self.bind_to:
            return self.bind_to
        try:
            ipaddress.IPv4Address(self.host)
        except ValueError:
            try:
                return str(socket.getaddrinfo(self.host, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
            except (OSError, IndexError):
                return ALL_INTERFACES
        return self.host


@dataclass(frozen=True)
class EngineInfo:
    """What `envmgr doctor` and the run report say about the engine: which, where, how ports are reached."""

    kind: str
    """Docker or Podman"""
    version: str
    api_version: str
    url: str
    remote: bool
    tls: bool
    reached_at: str
    """the host at which published ports are reached"""
    published_on: str
    """the engine-side address ports are bound to (0.0.0.0: every interface of the engine's machine)"""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def engine_kind(version: Mapping[str, Any]) -> str:
    """Docker or Podman, from the engine's `version()` answer (Podman's compatible API names its components)."""
    names = [str(component.get("Name", "")) for component in version.get("Components") or []]
    platform = str((version.get("Platform") or {}).get("Name", ""))
    return "Podman" if any("podman" in name.lower() for name in [*names, platform]) else "Docker"


def _tls_requested(environ: Mapping[str, str]) -> bool:
    """As `docker.from_env` decides: DOCKER_TLS_VERIFY or DOCKER_CERT_PATH set to something."""
    return bool(environ.get("DOCKER_TLS_VERIFY")) or bool(environ.get("DOCKER_CERT_PATH"))


def _is_loopback(hostname: str) -> bool:
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False
