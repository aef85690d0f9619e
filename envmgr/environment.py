"""Environment: the services of one isolated test environment, started together and removed together.

    with Environment(["postgres", "redis"]) as env:
        env.endpoints["postgres"].url

Start-up: settings are already validated; the engine is reached; orphans of dead owners are swept; every image is
checked before anything is created; a labelled network is created and a watchdog guards it; the services start
concurrently (a service waits only for those it requires), each ready when its own protocol answers, then prepared
(migrations, seeds). Any failure removes everything created so far and raises the failing service's error.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast

import docker.errors
from pydantic import ValidationError
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from envmgr.config import Settings, load_settings
from envmgr.containers import alias, free_port, is_running, published_from, run_container
from envmgr.credentials import Credentials
from envmgr.endpoints import Callback, Endpoints, ServiceEndpoint, Worker
from envmgr.engine import Engine, EngineAddress
from envmgr.errors import ConfigError, EnvironmentNotFoundError, EnvmgrError, ServiceNotEnabledError, first_line
from envmgr.faults import Faults
from envmgr.labels import (
    LABEL_CREATED,
    LABEL_DETACHED,
    LABEL_ENV,
    LABEL_IMAGE_SET,
    LABEL_KEY_ID,
    LABEL_NAMESPACE,
    LABEL_REPLICA,
    LABEL_SANDBOX,
    LABEL_SERVICE,
    LABEL_SERVICE_CONFIG,
    LABEL_SETTINGS,
    LABEL_WORKERS,
    Owner,
)
from envmgr.readiness import Waiter, wait_until
from envmgr.reaper import Watchdog, sweep
from envmgr.services.base import Published, Service
from envmgr.services.registry import SERVICES, ServiceRegistry
from envmgr.timings import Timings
from envmgr.topology import Topology

__all__ = ["Environment", "Faults", "Health"]

STOP_TIMEOUT = 5

_Ready = dict[tuple[str, int], ServiceEndpoint]
"""endpoints started so far, by (service, replica)"""


@dataclass(frozen=True)
class Health:
    """One probe of one service."""

    service: str
    healthy: bool
    seconds: float
    detail: str = ""


class Environment:
    """An isolated set of service containers on its own Docker network; a context manager."""

    def __init__(
        self,
        services: Sequence[str] | None = None,
        *,
        settings: Settings | None = None,
        env_id: str | None = None,
        sandbox: str | None = None,
        detach: bool = False,
        engine: Engine | None = None,
        workers: int = 0,
        labels: Mapping[str, str] | None = None,
        guard_detached: bool = False,
        registry: ServiceRegistry = SERVICES,
        credentials: Credentials | None = None,
    ) -> None:
        """`workers`: 0 for session isolation (one replica of everything); N for worker isolation, where each of
        the N pytest workers has its own replica of the per-worker services (WireMock, Celery worker).

        The services' passwords derive from the user's key and the environment's id (envmgr.credentials): no label
        holds one, and a process of the same user that attaches derives the same."""
        self.settings = settings if settings is not None else load_settings()
        names = list(services) if services is not None else self.settings.enabled_services()
        self.topology = Topology.plan(names, workers, registry)
        self.id = env_id or secrets.token_hex(5)
        self._credentials = credentials or Credentials.load()
        self._services: dict[str, Service] = {
            name: registry.create(name, self.settings) for name in self.topology.services
        }
        for name, service in self._services.items():
            service.password = self._credentials.password(self.id, name)
        self.sandbox = sandbox
        self.detach = detach
        self.guard_detached = guard_detached
        """with detach: keep the watchdog (a crash of this process still removes it) until hand_over()"""
        self.workers = self.topology.workers
        self._extra_labels = dict(labels or {})
        self.timings = Timings()
        self._engine = engine
        self._owner = Owner.current()
        self._endpoints: Endpoints | None = None
        self._containers: dict[str, DockerContainer] = {}
        self._watchdog: Watchdog | None = None
        self._lock = threading.Lock()
        self._network: Network | None = None
        self._gateway: str | None = None
        """the gateway of the environment's network: the test host, as containers reach it"""
        self._labels: dict[str, str] = {}
        self._begun = False
        self._attached = False
        self._ready: _Ready = {}
        """every started (probed, prepared) replica"""
        self._planned: dict[tuple[str, int], tuple[dict[str, int], ServiceEndpoint]] = {}
        """host ports and endpoint of each replica, chosen before its container starts (dependants use them)"""
        self._units: dict[tuple[str, int], Future[ServiceEndpoint]] = {}
        self._checked_images: set[str] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._cancel = threading.Event()
        self.scope: Worker | None = None
        """set for a test process's handle (the `envmgr_env` fixture): `reset()` then resets this worker's share
        only, never another worker's"""

    # lifecycle ---------------------------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine.connect()
        return self._engine

    @property
    def begun(self) -> bool:
        """Whether this handle has created anything on the engine (its network, its watchdog) and not removed it."""
        return self._begun

    @property
    def network_name(self) -> str:
        return f"{self.settings.namespace}-{self.id}"

    @property
    def services(self) -> list[str]:
        return list(self._services)

    def service(self, name: str) -> Service:
        """The service object of one of this environment's services (its hooks: worker_view, worker_reset...)."""
        try:
            return self._services[name]
        except KeyError:
            raise ServiceNotEnabledError(
                f"service {name!r} is not part of environment {self.id} (it has {', '.join(self._services)})",
                f"enable it: [tool.envmgr.{name}] enabled = true (or ENVMGR_{name.upper()}__ENABLED=true)",
            ) from None

    def replicas(self, name: str) -> list[Worker]:
        """The workers served by the containers of a service: one each for per-worker services."""
        return self.topology.replicas(name)

    def labels(self) -> dict[str, str]:
        """The labels put on every container and network of this environment."""
        labels = {
            LABEL_ENV: self.id,
            LABEL_NAMESPACE: self.settings.namespace,
            LABEL_CREATED: f"{time.time():.3f}",
            LABEL_DETACHED: "true" if self.detach else "false",
            LABEL_IMAGE_SET: self.settings.image_set,
            LABEL_WORKERS: str(self.workers),
            LABEL_KEY_ID: self._credentials.key_id,
            **self._owner.labels(),
        }
        if self.sandbox:
            labels[LABEL_SANDBOX] = self.sandbox
        return {**self._extra_labels, **labels}

    def start(self, service: str | None = None, worker: Worker | None = None) -> Endpoints:
        """Start every service and return the endpoints; on failure nothing is left running.

        With `service`: start that stopped service again (see `stop`), on the same ports, once it answers.
        """
        if service is not None:
            self._restart(service, worker)
            return self.endpoints
        if self._endpoints is not None and len(self._ready) == self._unit_count():
            return self._endpoints
        try:
            self.begin()
            self.ensure(self.services)
        except BaseException:
            self._teardown()
            raise
        if self.detach and not self.guard_detached:
            self._dismiss_watchdog()
        return self.endpoints

    def begin(self) -> None:
        """Sweep orphans, create the labelled network and the watchdog: what every service start needs first."""
        if self._begun:
            return
        engine = self.engine
        sweep(engine)
        labels = self.labels()
        try:
            network = Network(engine.client_kwargs(), docker_network_kw={"labels": labels, "driver": "bridge"})
            network.name = self.network_name
            network.create()
            self._network = network
            self._gateway = engine.network_gateway(self.network_name)
            self._watchdog = Watchdog(self.id, self._owner, engine.docker_host())  # this engine, whatever DOCKER_HOST
        except BaseException:
            self._teardown()
            raise
        self._labels = labels
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix=f"envmgr-{self.id}")
        self._begun = True
        self._endpoints = self._build_endpoints()

    def ensure(self, services: Sequence[str], worker: Worker | None = None) -> Endpoints:
        """Start whatever of `services` (and what they need) is not started yet, and return the endpoints.

        For a per-worker service: the replica of `worker`, or every replica when `worker` is None. Concurrent calls
        share the starts they have in common; a service that failed to start fails every call that needs it. The
        environment's other services keep running (`start()` removes everything on failure instead).
        """
        self.begin()
        units = self._units_for(services, worker)
        self._check_images(engine=self.engine, names=list(dict.fromkeys(name for name, _ in units)))
        futures = [self._unit(name, unit_worker) for name, unit_worker in units]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            raise cast(BaseException, failed[0].exception())
        wait(futures)
        for future in futures:
            future.result()
        return self.endpoints

    def plan(self, worker: Worker | None = None) -> Endpoints:
        """The endpoints every service will have (ports, names, credentials), before anything starts and without
        the engine: for a per-worker service, `worker`'s replica (or every replica). Starts keep to the plan (a port
        taken meanwhile is replaced)."""
        with self._lock:
            planned = [
                self._plan(name, unit_worker)
                for name in self.topology.services
                for unit_worker in (
                    [worker] if worker is not None and name in self.topology.per_worker else self.replicas(name)
                )
            ]
        return Endpoints(
            id=self.id, network=self.network_name, namespace=self.settings.namespace, sandbox=self.sandbox,
            per_worker=tuple(sorted(self.topology.per_worker)) if self.workers > 0 else (),
        ).with_endpoints(planned)  # fmt: skip

    def check_replicas(self, services: Sequence[str], worker: Worker, workers: int) -> None:
        """For a run of `workers` xdist workers on this (attached) environment: ServiceNotEnabledError when one of
        `services` has a replica per worker but none of `worker`'s own (the environment was started for fewer
        workers), rather than `worker` sharing another worker's."""
        if workers <= 0:
            return  # session isolation: one share for everybody, by choice
        for name in services:
            if name in self.topology.per_worker and not 0 <= worker.replica < self.workers:
                raise ServiceNotEnabledError(
                    f"environment {self.id} was started for {self.workers} xdist workers: {name} has no replica of "
                    f"{worker.worker_id}'s own (its tests would see another worker's)",
                    f"start it for this run's workers: envmgr up --workers {workers}; or run with "
                    f"{f'-n {self.workers}' if self.workers else 'no -n'} or --envmgr-isolation session",
                )

    def discard(self, services: Sequence[str]) -> None:
        """Remove every replica of these services from the running environment, once their starts have ended
        (started ahead of need and not needed after all: see envmgr.pytest.prediction). Their planned ports stay theirs,
        so a later `ensure` starts them where the plan said."""
        with self._lock:
            keys = [key for key in self._units if key[0] in services]
            futures = [self._units[key] for key in keys]
        wait(futures)  # a start under way ends first, well or not: its container is then there to remove
        for name in dict.fromkeys(name for name, _ in keys):
            self.engine.remove_service(self.id, name)
        with self._lock:
            for key in keys:
                self._units.pop(key, None)
                self._ready.pop(key, None)
                container = self._containers.pop(alias(*key), None)
                if container is not None:
                    container.get_docker_client().client.close()
            if self._begun:
                self._endpoints = self._build_endpoints()

    def started(self) -> list[str]:
        """The services with at least one replica started."""
        return list(dict.fromkeys(name for name, _ in self._ready))

    def hand_over(self) -> None:
        """Let the environment outlive this process: its watchdog is dismissed (a guarded detached one's too)."""
        self._dismiss_watchdog()

    def close(self) -> None:
        """Remove every container, network and volume of this environment (a detached one is left running)."""
        if self.detach and self._endpoints is not None:
            return
        self._teardown()

    def __enter__(self) -> Environment:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise EnvmgrError(f"environment {self.id} is not started", "call start() or use it in a with block")
        return self._endpoints

    # operations on a running environment -------------------------------------------------------------------

    def health(self, services: Sequence[str] | None = None) -> dict[str, Health]:
        """Probe every service once (or those named)."""
        names = self.endpoints.services if services is None else services
        return {name: self._probe_once(name) for name in names}

    def reset(self, services: Sequence[str] | None = None) -> None:
        """Bring services back to their prepared state (default: all), every replica, and drop what workers made
        (their databases, Redis databases, AWS accounts): what a fresh environment would have.

        On a handle scoped to a worker (`scope`, as `envmgr_env` gives each test process): that worker's share of
        each service only (its database, its Redis db, its account, its replicas); other workers are untouched."""
        for name in services if services is not None else self.services:
            service = self.service(name)
            with self.timings.measure(name, "reset"):
                if self.scope is not None:
                    service.worker_reset(self._endpoint_of(name, self.scope), self.scope)
                    continue
                for endpoint in self.endpoints.all():
                    if endpoint.service == name:
                        service.reset(endpoint)

    # fault injection -----------------------------------------------------------------------------------------

    def pause(self, service: str, worker: Worker | None = None) -> None:
        """Freeze a service's container (connections hang: "Redis down", "database not answering")."""
        self._container_of(service, worker).pause()

    def unpause(self, service: str, worker: Worker | None = None) -> None:
        self._container_of(service, worker).unpause()

    def stop(self, service: str, worker: Worker | None = None) -> None:
        """Stop a service's container (connections are refused); `start(service)` brings it back on the same ports."""
        self._container_of(service, worker).stop(timeout=STOP_TIMEOUT)

    def _restart(self, service: str, worker: Worker | None = None) -> None:
        worker = worker or Worker()
        container = self._container_of(service, worker)
        container.start()
        handler = self.service(service)
        endpoint = self._endpoint_of(service, worker)
        self._await_ready(handler, endpoint, container)
        if handler.data_in_ram:  # the restart emptied it: prepared again (template, seeds), this worker's data back
            handler.prepare(endpoint)
            handler.worker_setup(endpoint, worker)

    def _endpoint_of(self, service: str, worker: Worker | None) -> ServiceEndpoint:
        """The endpoint of `worker`'s replica of a service: never another worker's. A handle made before that
        replica started (replicas start on demand) reads the environment's labels again to find it."""
        self.service(service)
        replica = self.topology.replica_of(service, worker or Worker())
        if (service, replica) not in self._ready and self._attached:
            again = Environment.attach(self.id, engine=self.engine, settings=self.settings)
            self._ready.update(again._ready)
            self._endpoints = self._build_endpoints()
        if (service, replica) not in self._ready:
            raise ServiceNotEnabledError(
                f"replica {replica} of {service} has not started in environment {self.id}",
                f"use {service} in a test of this worker first (its replica starts when it is first needed)",
            )
        return self._ready[(service, replica)]

    def _container_of(self, service: str, worker: Worker | None) -> Any:
        return self.engine.client.containers.get(self._endpoint_of(service, worker).container)

    def _probe_once(self, name: str) -> Health:
        started = time.perf_counter()
        try:
            self.service(name).probe(self.endpoints[name])
        except Exception as exc:  # a failing probe is the answer here, not an error
            return Health(name, False, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
        return Health(name, True, time.perf_counter() - started)

    # attaching to an environment started elsewhere ------------------------------------------------------

    @classmethod
    def attach(
        cls,
        env_id: str,
        *,
        engine: Engine | None = None,
        settings: Settings | None = None,
        registry: ServiceRegistry = SERVICES,
        credentials: Credentials | None = None,
        stopped_ok: bool = False,
    ) -> Environment:
        """A handle on a running environment (started by another process), rebuilt from its labels; its passwords
        derived from this user's key (ConfigError when the environment was started with another key).

        A stopped service is a ServiceStartError, unless `stopped_ok` (`envmgr status`): its endpoint is then where
        it will be once started again (envmgr pins the ports). EnvironmentNotFoundError when the environment is
        gone, or goes while it is read."""
        engine = engine or Engine.connect()
        record = engine.environments().get(env_id)
        if record is None:
            raise EnvironmentNotFoundError(
                f"no environment {env_id!r} on this engine",
                "list them with `envmgr status`",
            )
        try:
            if settings is not None:
                base = settings
            elif LABEL_SETTINGS in record.labels:  # made by the daemon from a project's settings
                base = Settings.model_validate_json(record.labels[LABEL_SETTINGS])
            else:
                base = Settings()
            configs: dict[str, Any] = {}
            for container in record.containers:
                name = container.labels.get(LABEL_SERVICE, "")
                if name in registry:
                    configs[name] = json.loads(container.labels.get(LABEL_SERVICE_CONFIG, "{}"))
            merged = base.model_copy(update={"namespace": record.labels.get(LABEL_NAMESPACE, base.namespace)})
            merged = merged.model_copy(
                update={name: base.service(name).model_validate(config) for name, config in configs.items()}
            )
        except (ValidationError, ValueError) as exc:  # a shared engine: another machine's envmgr, another version
            raise ConfigError(
                f"environment {env_id} has settings labels this envmgr cannot read ({first_line(exc)})",
                f"use the envmgr version that started it, or remove it: envmgr down {env_id}",
            ) from None
        credentials = credentials or Credentials.load()
        if record.labels.get(LABEL_KEY_ID) != credentials.key_id:
            raise ConfigError(
                f"environment {env_id} was started with another key than yours (by another user, an older envmgr, "
                "or before your key was replaced): its passwords cannot be derived here",
                f"attach as the user that started it, or remove it: envmgr down {env_id}",
            )
        workers = int(record.labels.get(LABEL_WORKERS, "0"))
        env = cls(list(configs), settings=merged, env_id=env_id, sandbox=record.sandbox, detach=record.detached,
                  engine=engine, workers=workers, registry=registry, credentials=credentials)  # fmt: skip
        host = engine.host_address()
        found: _Ready = {}
        order = {name: index for index, name in enumerate(env.topology.services)}
        ours = [c for c in record.containers if c.labels.get(LABEL_SERVICE, "") in env._services]
        for container in sorted(ours, key=lambda c: order[c.labels[LABEL_SERVICE]]):
            name = container.labels[LABEL_SERVICE]
            service = env._services[name]
            replica = int(container.labels.get(LABEL_REPLICA, "0"))
            worker = env._replica_worker(name, replica)
            try:
                published = published_from(
                    container, service=name, host=host, ports=service.ports, worker=worker, replica=replica,
                    needs=env._needs_of(name, worker, found), attached=True, stopped_ok=stopped_ok,
                )  # fmt: skip
            except docker.errors.NotFound:  # removed since the listing (another process tears it down)
                raise EnvironmentNotFoundError(
                    f"environment {env_id} is being removed (its container {container.name} is gone)",
                    "list them with `envmgr status`",
                ) from None
            found[(name, replica)] = service.recover(_with_replica(service.endpoint(published), replica))
        env._ready = found
        env._attached = True
        env._gateway = engine.network_gateway(record.networks[0]) if record.networks else None
        env._endpoints = env._build_endpoints()
        env.detach = True  # a handle never tears down what it did not start, unless asked: see remove()
        return env

    def prepare(self) -> Endpoints:
        """Run every service's prepare step again (on an attached environment): a template that exists is reused."""
        prepared = []
        for endpoint in self.endpoints.all():
            with self.timings.measure(endpoint.service, "prepare", endpoint.replica):
                prepared.append(self.service(endpoint.service).prepare(endpoint))
        self._ready = {(e.service, e.replica): e for e in prepared}
        self._endpoints = self._build_endpoints()
        return self._endpoints

    def remove(self) -> None:
        """Remove the environment whatever its owner or detached state (`envmgr down`)."""
        self._teardown()

    # internals ----------------------------------------------------------------------------------------------

    def _check_images(self, engine: Engine, names: Sequence[str]) -> None:
        with self._lock:
            services = [self._services[name] for name in names if name not in self._checked_images]
        if not services:
            return
        with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
            futures = [pool.submit(self._ensure_image, engine, service) for service in services]
        for future in futures:
            future.result()
        with self._lock:
            self._checked_images.update(service.name for service in services)

    def _ensure_image(self, engine: Engine, service: Service) -> None:
        """The service's image present: its base image pulled (or its build asked for), then the image derived for
        the project (the Celery worker with its requirements) built on the environment's network when missing."""
        from envmgr.images import ensure_derived_image

        engine.ensure_image(service.base_image(), service.name, service.build_hint())
        derived = service.derived_image()
        if derived is not None:
            ensure_derived_image(engine, derived, network=self.network_name)

    def _unit_count(self) -> int:
        return sum(len(self.replicas(name)) for name in self.services)

    def _units_for(self, services: Sequence[str], worker: Worker | None) -> list[tuple[str, Worker]]:
        """The replicas to start for `services` and everything they need, in start order."""
        units: list[tuple[str, Worker]] = []
        for name in self.topology.closure([self.service(name).name for name in services]):
            if name in self.topology.per_worker and worker is not None and self.workers > 0:
                units.append((name, Worker(worker.worker_id, isolated=True)))
            else:
                units += [(name, w) for w in self.replicas(name)]
        return units

    def _unit(self, name: str, worker: Worker) -> Future[ServiceEndpoint]:
        """The start of one replica: begun once, shared by every caller that needs it."""
        key = (name, self.topology.replica_of(name, worker))
        with self._lock:
            future = self._units.get(key)
            if future is None:
                self._plan(name, worker)  # its endpoint is known now: dependants start without waiting for it
                assert self._pool is not None
                future = self._pool.submit(self._start_service, name, worker)
                self._units[key] = future
            return future

    def _plan(self, name: str, worker: Worker) -> ServiceEndpoint:
        """Choose the replica's host ports and compute its endpoint before its container exists (under the lock)."""
        replica = self.topology.replica_of(name, worker)
        if (name, replica) in self._planned:
            return self._planned[(name, replica)][1]
        service = self._services[name]
        needs = {required: self._plan(required, worker) for required in self.topology.needs[name]}
        viewed = {required: self._services[required].worker_view(e, worker) for required, e in needs.items()}
        if self._engine is not None:
            host, publish, remote = self._engine.host_address(), self._engine.publish_address(), self._engine.remote
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
        endpoint = _with_replica(service.endpoint(published), replica)
        self._planned[(name, replica)] = (host_ports, endpoint)
        return endpoint

    def _build_endpoints(self) -> Endpoints:
        per_worker = tuple(sorted(self.topology.per_worker)) if self.workers > 0 else ()
        return Endpoints(
            id=self.id, network=self.network_name, namespace=self.settings.namespace, sandbox=self.sandbox,
            per_worker=per_worker, callback=self._callback(),
        ).with_endpoints([self._ready[key] for key in sorted(self._ready, key=self._order)])  # fmt: skip

    def _callback(self) -> Callback | None:
        """Where containers reach the test host: the network's gateway, when that is this machine (a local engine)."""
        if self._gateway is None or self.engine.host_address() != "127.0.0.1":
            return None
        return Callback(bind=self._gateway)

    def _order(self, key: tuple[str, int]) -> tuple[int, int]:
        return (self.topology.services.index(key[0]), key[1])

    def _replica_worker(self, name: str, replica: int) -> Worker:
        """The worker a replica serves (in session isolation, and for shared services: the environment's own)."""
        if self.workers > 0 and name in self.topology.per_worker:
            return Worker(f"gw{replica}", isolated=True)
        return Worker(isolated=self.workers > 0)

    def _needs_of(self, name: str, worker: Worker, ready: _Ready) -> dict[str, ServiceEndpoint]:
        """What `name`'s replica for `worker` is handed: each needed service as that worker sees it."""
        needs = {}
        for required in self.topology.needs[name]:
            endpoint = ready[(required, self.topology.replica_of(required, worker))]
            needs[required] = self._services[required].worker_view(endpoint, worker)
        return needs

    def _planned_needs(self, name: str, worker: Worker) -> dict[str, ServiceEndpoint]:
        with self._lock:
            planned = {key: endpoint for key, (_, endpoint) in self._planned.items()}
        return self._needs_of(name, worker, planned)

    def _started_needs(self, name: str, worker: Worker) -> dict[str, ServiceEndpoint]:
        """The needs as they actually started (a planned port may have been taken meanwhile), waited for: their
        starts were submitted before this one's, so they are running or done."""
        with self._lock:
            futures = {
                key: self._units[key]
                for key in ((req, self.topology.replica_of(req, worker)) for req in self.topology.needs[name])
            }
        return self._needs_of(name, worker, {key: future.result() for key, future in futures.items()})

    def _start_service(self, name: str, worker: Worker) -> ServiceEndpoint:
        """Create, probe and prepare one replica (in the pool's thread); its needs are planned, maybe not ready."""
        service = self._services[name]
        replica = self.topology.replica_of(name, worker)
        needs = self._planned_needs(name, worker)
        with self._lock:
            host_ports = self._planned[(name, replica)][0]
        spec = service.container_spec(needs, worker)
        network_alias = alias(name, replica)
        assert self._network is not None
        service_labels = {
            **self._labels,
            LABEL_SERVICE: name,
            LABEL_REPLICA: str(replica),
            LABEL_SERVICE_CONFIG: service.config.model_dump_json(),
        }

        def created(container: DockerContainer) -> None:
            with self._lock:
                self._containers[network_alias] = container

        with self.timings.measure(name, "create", replica):
            wrapped = run_container(
                self.engine, service=name, spec=spec, name=f"{self.settings.namespace}-{self.id}-{network_alias}",
                network_alias=network_alias, network=self._network, labels=service_labels, host_env=service.host_env,
                created=created, host_ports=host_ports, gateway=self._gateway,
            )  # fmt: skip
        started = self._started_needs(name, worker)  # its container runs already; its probe may need them
        published = published_from(
            wrapped, service=name, host=self.engine.host_address(), ports=service.ports, worker=worker,
            replica=replica, needs=started,
        )  # fmt: skip
        endpoint = _with_replica(service.endpoint(published), replica)
        with self.timings.measure(name, "ready", replica):
            self._await_ready(service, endpoint, wrapped, self._cancel)
        with self.timings.measure(name, "prepare", replica):
            prepared = service.prepare(endpoint)
        with self._lock:
            self._ready[(name, replica)] = prepared
            self._endpoints = self._build_endpoints()
        return prepared

    def _await_ready(
        self, service: Service, endpoint: ServiceEndpoint, container: Any, cancel: threading.Event | None = None
    ) -> None:
        engine = self.engine
        waiter = Waiter(
            service=service.name,
            logs=lambda: engine.container_logs(container),
            running=lambda: not (cancel is not None and cancel.is_set()) and is_running(container),
        )
        wait_until(lambda: service.probe(endpoint), waiter, self.settings.startup_timeout,
                   service.probe_description)  # fmt: skip

    def _dismiss_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None

    def _teardown(self) -> None:
        """Remove everything; when the engine could not remove it all (stopped, restarting), the watchdog is
        ordered to remove it as soon as the engine answers, and the error (one line and the fix) is raised."""
        self._cancel.set()  # starts still waiting for readiness give up
        if self._pool is not None:  # starts under way end first: a container made after the removal would stay
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        try:
            self.engine.remove_environment(self.id)
        except BaseException:
            self._release(removed=False)
            raise
        self._release(removed=True)

    def _release(self, removed: bool) -> None:
        """Let go of what this handle holds; the watchdog is dismissed only when the environment is gone."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for container in self._containers.values():
            container.get_docker_client().client.close()
        self._containers.clear()
        if removed:
            self._dismiss_watchdog()
        elif self._watchdog is not None:
            self._watchdog.remove_now()
            self._watchdog = None
        self._endpoints = None
        self._ready.clear()
        self._units.clear()
        self._planned.clear()
        self._gateway = None
        self._begun = False


def _with_replica(endpoint: ServiceEndpoint, replica: int) -> ServiceEndpoint:
    return endpoint if endpoint.replica == replica else endpoint.model_copy(update={"replica": replica})
