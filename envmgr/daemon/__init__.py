"""The envmgr daemon: warm environments leased to test runs, one daemon per user and Docker engine.

It keeps environments that are started, migrated and seeded, per configuration, leases one to a client, resets it
when the lease ends and keeps it for the next client. State lives on the engine (labels, lease volumes), so a daemon
killed with SIGKILL and started again rebuilds it.

    protocol.py   the JSON protocol on the socket, errors included (documented there)
    trust.py      who may be trusted on the socket: folder, socket file and peer process of the same user
    pool.py       environments per configuration (config_key): lease, release (reset, pool size), recovery
    leases.py     lease volumes on the engine, naming the holder process
    monitor.py    dead holders' leases taken back; idle environments removed after their TTL
    server.py     Daemon (requests -> pool) and the Unix socket server (serve)
    __main__.py   `python -m envmgr.daemon [--socket PATH]`, the same as `envmgr daemon run`

A client starts a daemon with `envmgr.client.spawn` and talks to it with `envmgr.client.DaemonClient`.
Names are imported on first use: importing this package costs nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envmgr.client import spawn
    from envmgr.daemon.pool import config_key, daemon_key
    from envmgr.daemon.server import Daemon, serve

__all__ = ["Daemon", "config_key", "daemon_key", "serve", "spawn"]

_HOMES = {
    "Daemon": "envmgr.daemon.server",
    "serve": "envmgr.daemon.server",
    "config_key": "envmgr.daemon.pool",
    "daemon_key": "envmgr.daemon.pool",
    "spawn": "envmgr.client",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'envmgr.daemon' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
