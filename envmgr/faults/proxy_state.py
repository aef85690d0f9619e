"""The fault proxy's states, limits and error (shared by `proxy.py` and its thread, `proxy_loop.py`)."""

from __future__ import annotations

from typing import Literal

from envmgr.errors import EnvmgrError

__all__ = ["BUFFER_BYTES", "ProxyError", "ProxyState"]

ProxyState = Literal["running", "paused", "stopped"]

LOOPBACK = "127.0.0.1"
BUFFER_BYTES = 256 * 1024
"""the most bytes waiting to be sent, per connection and direction"""
CHUNK_BYTES = 64 * 1024
BACKLOG = 128
ACCEPT_BATCH = 64
"""connections accepted per wake-up, so that a burst of connects does not starve the open connections"""
COMMAND_TIMEOUT = 5.0
"""seconds pause/stop/restore wait for the proxy thread to apply them"""
JOIN_TIMEOUT = 5.0


class ProxyError(EnvmgrError):
    """A fault proxy could not do what was asked: not started, closed, port lost, or its thread failed."""
