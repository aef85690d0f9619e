"""Leases on the engine: a volume `envmgr-lease-<env id>` labelled with the holder process (pid, start time, host).

The volume is the durable lease: a daemon started after a crash finds which environments are held, and by whom.
That an environment is leased once at most is the pool's lock; the volume only records it.
"""

from __future__ import annotations

import contextlib

import docker.errors

from envmgr.engine.connection import Engine
from envmgr.engine.labels import LABEL_ENV, LABEL_LEASE, Owner
from envmgr.errors import EnvmgrError

__all__ = ["LEASE_VOLUME_PREFIX", "Leases"]

LEASE_VOLUME_PREFIX = "envmgr-lease-"


class Leases:
    """The lease volumes of one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, env_id: str, holder: Owner) -> None:
        """Record that `holder` leases the environment; EnvmgrError when a lease is recorded already."""
        name = LEASE_VOLUME_PREFIX + env_id
        try:
            self.engine.client.volumes.get(name)
        except docker.errors.NotFound:
            pass
        else:
            raise EnvmgrError(f"environment {env_id} is already leased", "release it first")
        self.engine.client.volumes.create(name=name, labels={LABEL_ENV: env_id, LABEL_LEASE: "true", **holder.labels()})

    def holder(self, env_id: str) -> Owner | None:
        """Who holds the environment, or None when it is not leased."""
        try:
            volume = self.engine.client.volumes.get(LEASE_VOLUME_PREFIX + env_id)
        except docker.errors.NotFound:
            return None
        return Owner.from_labels(dict(volume.attrs.get("Labels") or {}))

    def drop(self, env_id: str) -> None:
        """End the lease on the engine (nothing when there is none)."""
        with contextlib.suppress(docker.errors.NotFound):
            self.engine.client.volumes.get(LEASE_VOLUME_PREFIX + env_id).remove(force=True)
