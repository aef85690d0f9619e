"""An environment as the engine shows it: its labelled containers, networks and volumes (`EnvironmentRecord`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from docker.models.containers import Container

from envmgr.engine.labels import (
    LABEL_CREATED,
    LABEL_DETACHED,
    LABEL_SANDBOX,
    Owner,
)

__all__ = ["EnvironmentRecord", "environment_state"]


@dataclass(frozen=True)
class EnvironmentRecord:
    """One environment found on the engine through its labels."""

    id: str
    labels: dict[str, str]
    containers: tuple[Container, ...]
    networks: tuple[str, ...]
    lease: dict[str, str] | None = None
    """the labels of its lease volume (a daemon's environment leased to a run), if it has one"""
    daemon_presence: dict[str, str] | None = None
    """the labels of the presence volume of the daemon it belongs to (a daemon's environment), if one is there:
    the daemon process now serving it, which may have adopted it from a crashed one"""

    @property
    def owner(self) -> Owner | None:
        return Owner.from_labels(self.labels)

    @property
    def holder(self) -> Owner | None:
        """The process that leases it from a daemon (None when it is not leased)."""
        return Owner.from_labels(self.lease) if self.lease is not None else None

    @property
    def daemon(self) -> Owner | None:
        """The daemon process serving it (a daemon's environment whose daemon announced itself), else None."""
        return Owner.from_labels(self.daemon_presence) if self.daemon_presence is not None else None

    @property
    def detached(self) -> bool:
        return self.labels.get(LABEL_DETACHED) == "true"

    @property
    def sandbox(self) -> str | None:
        return self.labels.get(LABEL_SANDBOX) or None

    @property
    def state(self) -> str:
        """running, stopped, partial or empty: see `environment_state`."""
        return environment_state([str(container.status) for container in self.containers])

    @property
    def created(self) -> float:
        try:
            return float(self.labels.get(LABEL_CREATED, "0"))
        except ValueError:
            return 0.0


def environment_state(statuses: Sequence[str]) -> str:
    """An environment's state from its containers' statuses: "running" when every one runs, "stopped" when none
    does, "partial" in between (a paused container does not run), "empty" without containers (being created or
    removed)."""
    if not statuses:
        return "empty"
    running = sum(1 for status in statuses if status == "running")
    if running == len(statuses):
        return "running"
    return "stopped" if running == 0 else "partial"
