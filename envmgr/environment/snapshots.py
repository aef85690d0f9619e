"""Named snapshots of one worker's share of the services (`Environment.snapshot`, `restore`, `use_baseline`): what
each service kept under a name, and the baseline the per-test reset goes back to instead of the seeded state.

Each service keeps its part through its own hooks (`Service.snapshot`, `restore`, `drop_snapshot`): Postgres a copy
of the worker's database on its server, Redis the worker's keys dumped, LocalStack and moto the account's objects and
queues, WireMock its stubs (those in this process's memory). The book is plain data, shared by the run's state and
the `envmgr_env` handle of the same process (docs/snapshots.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from envmgr.errors import SnapshotError

__all__ = ["ShareHooks", "SnapshotBook"]


class ShareHooks(Protocol):
    """What a test process knows of its worker's shares (`envmgr.pytest.shares.WorkerShares`)."""

    @property
    def services(self) -> list[str]:
        """The services whose share the worker has used so far: those a snapshot takes by default."""

    def let_go(self, service: str) -> None:
        """Before a change that ends the share's connections (a restore): let pooled connections go."""


@dataclass
class SnapshotBook:
    """The snapshots one process took of its worker's share: name -> service -> what the service kept."""

    taken: dict[str, dict[str, object]] = field(default_factory=dict)
    baseline: str | None = None
    """the snapshot the per-test reset goes back to, for the services it has (None: the seeded state)"""
    stale: set[str] = field(default_factory=set)
    """services to bring back to the baseline before the next test that reaches them (it was just chosen)"""

    def kept(self, name: str) -> dict[str, object]:
        """What each service kept under `name`; SnapshotError naming the snapshots there are when there is none."""
        if name not in self.taken:
            known = ", ".join(repr(known) for known in self.taken) or "none yet"
            raise SnapshotError(
                f"no snapshot named {name!r} in this worker (taken: {known})",
                f'take it first: envmgr_env.snapshot("{name}") (snapshots are per xdist worker and per run)',
            )
        return self.taken[name]

    def baseline_of(self, service: str) -> tuple[str, object] | None:
        """The baseline's name and what `service` kept in it, when the per-test reset goes back to one."""
        if self.baseline is None or service not in self.taken.get(self.baseline, {}):
            return None
        return self.baseline, self.taken[self.baseline][service]
