"""What an environment is before anything runs (no engine needed): its id, its services and their credentials, the
topology (start order, replicas per worker), the labels of everything it makes, and each replica's host ports and
endpoint, chosen once so that dependants start from them before the replica itself is up."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from envmgr.config import Settings
from envmgr.credentials import Credentials
from envmgr.endpoints import Callback, Endpoints, ServiceEndpoint, Worker
from envmgr.engine.address import EngineAddress
from envmgr.engine.connection import Engine
from envmgr.engine.containers import alias, free_port
from envmgr.engine.labels import (
    LABEL_CREATED,
    LABEL_DETACHED,
    LABEL_ENV,
    LABEL_GIVEN,
    LABEL_IMAGE_SET,
    LABEL_KEY_ID,
    LABEL_NAMESPACE,
    LABEL_SANDBOX,
    LABEL_WORKERS,
    Owner,
)
from envmgr.environment.given import GivenServers
from envmgr.errors import ServiceNotEnabledError
from envmgr.progress.events import Progress, silent
from envmgr.services.base import Published, Service
from envmgr.services.registry import ServiceRegistry
from envmgr.topology import Topology

__all__ = ["EnvironmentPlan", "Labels", "Ready", "with_replica"]

Labels = Mapping[str, str] | Callable[[], Mapping[str, str]]
"""a caller's labels for an environment, or what computes them (when it begins: off the planning's path)"""
Ready = dict[tuple[str, int], ServiceEndpoint]
"""endpoints by (service, replica)"""


class EnvironmentPlan:
    """The environment's services, names, labels and planned endpoints (see the module's documentation)."""

    def __init__(
        self,
        settings: Settings,
        names: Sequence[str],
        *,
        workers: int,
        registry: ServiceRegistry,
        env_id: str | None,
        credentials: Credentials,
        sandbox: str | None,
        detach: bool,
        labels: Labels,
    ) -> None:
        self.settings = settings
        configured = settings.service_names()
        given = [name for name in names if name in configured and getattr(settings.service(name), "url", None)]
        self.topology = Topology.plan(names, workers, registry, shared=given)  # a given server serves every worker
        self.id = env_id or secrets.token_hex(5)
        self.credentials = credentials
        self.services: dict[str, Service] = {name: registry.create(name, settings) for name in self.topology.services}
        for name, service in self.services.items():
            service.password = credentials.password(self.id, name)
        self.sandbox = sandbox
        self.detach = detach
        self.workers = self.topology.workers
        self.given = GivenServers(self.services, self.id, self.workers, self.topology.needs)
        """the services on servers envmgr did not start (their `url`): no container, no engine for them"""
        self.owner = Owner.current()
        self._extra_labels = labels
        """labels of the caller's (a callable: computed when first needed, when the environment begins)"""
        self.progress: Progress = silent
        """told what planning did that people should know (what a given server's sweep removed)"""
        self._planned: dict[tuple[str, int], tuple[dict[str, int], ServiceEndpoint]] = {}
        """host ports and endpoint of each replica, chosen before its container starts (dependants use them)"""
        self._lock = threading.Lock()

    @property
    def network_name(self) -> str:
        return f"{self.settings.namespace}-{self.id}"

    def service(self, name: str) -> Service:
        """The service object of one of this environment's services."""
        try:
            return self.services[name]
        except KeyError:
            raise ServiceNotEnabledError(
                f"service {name!r} is not part of environment {self.id} (it has {', '.join(self.services)})",
                f"enable it: [tool.envmgr.{name}] enabled = true (or ENVMGR_{name.upper()}__ENABLED=true)",
            ) from None

    def labels(self) -> dict[str, str]:
        """The labels put on every container and network of this environment."""
        labels = {
            LABEL_ENV: self.id,
            LABEL_NAMESPACE: self.settings.namespace,
            LABEL_CREATED: f"{time.time():.3f}",
            LABEL_DETACHED: "true" if self.detach else "false",
            LABEL_IMAGE_SET: self.settings.image_set,
            LABEL_WORKERS: str(self.workers),
            LABEL_KEY_ID: self.credentials.key_id,
            **self.owner.labels(),
        }
        if self.sandbox:
            labels[LABEL_SANDBOX] = self.sandbox
        if self.given.urls:  # a handle attached from the labels knows they exist (it has no container of theirs)
            labels[LABEL_GIVEN] = ",".join(sorted(self.given.urls))
        extra = self._extra_labels() if callable(self._extra_labels) else self._extra_labels
        return {**extra, **labels}

    def replicas(self, name: str) -> list[Worker]:
        """The workers served by the containers of a service: one each for per-worker services."""
        return self.topology.replicas(name)

    def unit_count(self) -> int:
        return sum(len(self.replicas(name)) for name in self.services)

    def units_for(self, services: Sequence[str], worker: Worker | None) -> list[tuple[str, Worker]]:
        """The replicas to start for `services` and everything they need, in start order."""
        units: list[tuple[str, Worker]] = []
        for name in self.topology.closure([self.service(name).name for name in services]):
            if name in self.topology.per_worker and worker is not None and self.workers > 0:
                units.append((name, Worker(worker.worker_id, isolated=True)))
            else:
                units += [(name, w) for w in self.replicas(name)]
        return units

    def replica_worker(self, name: str, replica: int) -> Worker:
        """The worker a replica serves (in session isolation, and for shared services: the environment's own)."""
        if self.workers > 0 and name in self.topology.per_worker:
            return Worker(f"gw{replica}", isolated=True)
        return Worker(isolated=self.workers > 0)

    def plan(self, worker: Worker | None = None, engine: Engine | None = None) -> Endpoints:
        """The endpoints every service will have: for a per-worker service, `worker`'s replica (or every replica)."""
        with self._lock:
            planned = [
                self._plan(name, unit_worker, engine)
                for name in self.topology.services
                for unit_worker in (
                    [worker] if worker is not None and name in self.topology.per_worker else self.replicas(name)
                )
            ]
        return self._empty_endpoints().with_endpoints(planned)

    def planned(self, name: str, worker: Worker, engine: Engine | None) -> ServiceEndpoint:
        """The replica's planned endpoint, chosen now when it has none yet."""
        with self._lock:
            return self._plan(name, worker, engine)

    def host_ports(self, name: str, replica: int) -> dict[str, int]:
        with self._lock:
            return self._planned[(name, replica)][0]

    def planned_needs(self, name: str, worker: Worker) -> dict[str, ServiceEndpoint]:
        """What `name`'s replica for `worker` is handed, as planned."""
        with self._lock:
            planned = {key: endpoint for key, (_, endpoint) in self._planned.items()}
        return self.needs_of(name, worker, planned)

    def needs_of(self, name: str, worker: Worker, ready: Ready) -> dict[str, ServiceEndpoint]:
        """What `name`'s replica for `worker` is handed: each needed service as that worker sees it."""
        needs = {}
        for required in self.topology.needs[name]:
            endpoint = ready[(required, self.topology.replica_of(required, worker))]
            needs[required] = self.services[required].worker_view(endpoint, worker)
        return needs

    def endpoints(self, ready: Ready, callback: Callback | None) -> Endpoints:
        """The environment's endpoints: these replicas, in start order."""
        ordered = [ready[key] for key in sorted(ready, key=self._order)]
        return self._empty_endpoints(callback).with_endpoints(ordered)

    def adopt(self, ready: Ready) -> None:
        """Replicas started elsewhere are where they run: planning uses them (their dependants, `plan()`)."""
        with self._lock:
            for key, endpoint in ready.items():
                roles = self.services[key[0]].ports
                main = {next(iter(roles)): endpoint.port} if roles else {}  # a worker (celery) publishes no port
                self._planned[key] = ({**main, **endpoint.ports}, endpoint)

    def forget(self) -> None:
        """Forget the planned ports (the environment is gone)."""
        with self._lock:
            self._planned.clear()

    def _empty_endpoints(self, callback: Callback | None = None) -> Endpoints:
        return Endpoints(
            id=self.id, network=self.network_name, namespace=self.settings.namespace, sandbox=self.sandbox,
            per_worker=tuple(sorted(self.topology.per_worker)) if self.workers > 0 else (), callback=callback,
        )  # fmt: skip

    def _order(self, key: tuple[str, int]) -> tuple[int, int]:
        return (self.topology.services.index(key[0]), key[1])

    def _plan(self, name: str, worker: Worker, engine: Engine | None) -> ServiceEndpoint:
        """Choose the replica's host ports and compute its endpoint before its container exists (under the lock)."""
        replica = self.topology.replica_of(name, worker)
        if (name, replica) in self._planned:
            return self._planned[(name, replica)][1]
        service = self.services[name]
        if name in self.given:  # a server envmgr did not start: where it is, held for this environment
            endpoint = with_replica(self.given.endpoint(name, self.progress), replica)
            self._planned[(name, replica)] = ({}, endpoint)
            return endpoint
        needs = {required: self._plan(required, worker, engine) for required in self.topology.needs[name]}
        viewed = {required: self.services[required].worker_view(e, worker) for required, e in needs.items()}
        if engine is not None:
            host, publish, remote = engine.host_address(), engine.publish_address(), engine.remote
        else:  # planned before anything starts: from DOCKER_HOST, no engine needed yet
            address = EngineAddress.parse(os.environ.get("DOCKER_HOST", ""))
            host, publish, remote = address.host, address.bind(), address.remote
        host_ports = {role: free_port(publish, remote=remote) for role in service.ports}
        network_alias = alias(name, replica)
        published = Published(
            host=host, ports=host_ports, alias=network_alias,
            container_ports=dict(service.ports), image=service.image(),
            container=f"{self.settings.namespace}-{self.id}-{network_alias}", worker=worker, needs=viewed,
        )  # fmt: skip
        endpoint = with_replica(service.endpoint(published), replica)
        self._planned[(name, replica)] = (host_ports, endpoint)
        return endpoint


def with_replica(endpoint: ServiceEndpoint, replica: int) -> ServiceEndpoint:
    return endpoint if endpoint.replica == replica else endpoint.model_copy(update={"replica": replica})
