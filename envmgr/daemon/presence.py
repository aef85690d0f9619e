"""A daemon's presence on the engine: a volume `envmgr-daemon-<key>` labelled with its key and its process.

A daemon's environments are detached: they outlive a crash, and the next daemon on the same socket adopts them. The
sweep (`envmgr.engine.reaper.orphaned`) keeps them while the daemon that made them, or the one that announced itself for
their key since, is alive; once neither is (and no live run leases them), they go after their idle time-out.
"""

from __future__ import annotations

import contextlib

import docker.errors

from envmgr.engine.connection import Engine, engine_errors
from envmgr.engine.labels import LABEL_DAEMON, Owner

__all__ = ["PRESENCE_VOLUME_PREFIX", "announce", "withdraw"]

PRESENCE_VOLUME_PREFIX = "envmgr-daemon-"


def announce(engine: Engine, key: str, daemon: Owner) -> None:
    """Record `daemon` as the process serving the environments of `key` (replacing a crashed one's record)."""
    with engine_errors("cannot record the daemon on the engine", "start the engine again, then the daemon"):
        withdraw(engine, key)
        engine.client.volumes.create(name=PRESENCE_VOLUME_PREFIX + key, labels={LABEL_DAEMON: key, **daemon.labels()})


def withdraw(engine: Engine, key: str) -> None:
    """Remove the record (a daemon that stops cleanly has removed its environments first)."""
    with contextlib.suppress(docker.errors.NotFound):
        engine.client.volumes.get(PRESENCE_VOLUME_PREFIX + key).remove(force=True)
