"""Which services an environment has, what each needs, in which waves they start, and their replicas: pure data.

    topology = Topology.plan(["celery", "redis", "postgres"], workers=2)
    topology.waves                  # (("redis", "postgres"), ("celery",))
    topology.replicas("celery")     # [Worker("gw0", isolated=True), Worker("gw1", isolated=True)]

A service needs what it `requires` (which must be part of the environment) and what it `uses` when that is part of
it; it starts in the first wave after all it needs. A per-worker service has one replica per xdist worker in worker
isolation (`workers` > 0), one otherwise. `Environment` and `compose` both start services in this order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from envmgr.endpoints import Worker
from envmgr.errors import ServiceNotEnabledError
from envmgr.services.registry import SERVICES, ServiceRegistry

__all__ = ["Topology"]


@dataclass(frozen=True)
class Topology:
    services: tuple[str, ...]
    """every service, in start order"""
    needs: Mapping[str, tuple[str, ...]]
    """what must be ready before each service starts"""
    waves: tuple[tuple[str, ...], ...]
    """services that can start together, each wave after the ones before"""
    workers: int
    """xdist workers served in worker isolation; 0 for session isolation"""
    per_worker: frozenset[str]
    """the services with a replica per worker"""

    @classmethod
    def plan(
        cls, names: Sequence[str], workers: int = 0, registry: ServiceRegistry = SERVICES, shared: Sequence[str] = ()
    ) -> Topology:
        """The topology of these services; ServiceNotEnabledError when one requires a service that is not there.
        `shared`: services on one server for every worker although their containers would be per worker (a given
        server: `url`)."""
        unique = list(dict.fromkeys(names))
        classes = {name: registry[name] for name in unique if name in registry}
        unknown = [name for name in unique if name not in classes]
        if unknown:
            raise ServiceNotEnabledError(
                f"unknown service {', '.join(repr(n) for n in unknown)}", f"use one of: {', '.join(registry)}"
            )
        for name, service in classes.items():
            missing = [req for req in service.requires if req not in classes]
            if missing:
                raise ServiceNotEnabledError(
                    f"{name} needs {', '.join(missing)}, which is not part of this environment",
                    f"add {', '.join(missing)} to the services",
                )
        needs = {name: (*c.requires, *(used for used in c.uses if used in classes)) for name, c in classes.items()}
        waves: list[tuple[str, ...]] = []
        done: set[str] = set()
        remaining = list(unique)
        while remaining:
            wave = tuple(name for name in remaining if set(needs[name]) <= done)
            if not wave:
                raise ServiceNotEnabledError(f"circular requirements among {', '.join(remaining)}")
            waves.append(wave)
            done.update(wave)
            remaining = [name for name in remaining if name not in wave]
        return cls(
            services=tuple(name for wave in waves for name in wave),
            needs=MappingProxyType(needs),
            waves=tuple(waves),
            workers=max(0, workers),
            per_worker=frozenset(name for name, c in classes.items() if c.per_worker and name not in shared),
        )

    def replicas(self, name: str) -> list[Worker]:
        """The workers served by the containers of a service: one each for a per-worker service."""
        if name in self.per_worker and self.workers > 0:
            return [Worker(f"gw{index}", isolated=True) for index in range(self.workers)]
        return [Worker(isolated=self.workers > 0)]

    def replica_of(self, name: str, worker: Worker) -> int:
        """Which replica of a service serves `worker` (an environment started for no workers has one of each)."""
        return worker.replica if name in self.per_worker and self.workers > 0 else 0

    def closure(self, names: Sequence[str]) -> list[str]:
        """`names` and everything they need, in start order."""
        wanted: set[str] = set()
        stack = list(names)
        while stack:
            name = stack.pop()
            if name not in wanted:
                wanted.add(name)
                stack.extend(self.needs[name])
        return [name for name in self.services if name in wanted]

    def dependants(self, name: str) -> list[str]:
        """The services that need `name`."""
        return [other for other in self.services if name in self.needs[other]]
