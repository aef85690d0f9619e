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
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import docker.errors
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from envmgr.config import Settings, load_settings
from envmgr.endpoints import Endpoints, ServiceEndpoint, Worker, replica_key
from envmgr.engine import Engine
from envmgr.errors import (
    EnvironmentNotFoundError,
    EnvmgrError,
    ServiceNotEnabledError,
    ServiceStartError,
    first_line,
)
from envmgr.labels import (
    LABEL_CREATED,
    LABEL_DETACHED,
    LABEL_ENV,
    LABEL_IMAGE_SET,
    LABEL_NAMESPACE,
    LABEL_REPLICA,
    LABEL_SANDBOX,
    LABEL_SECRET,
    LABEL_SERVICE,
    LABEL_SERVICE_CONFIG,
    LABEL_SETTINGS,
    LABEL_WORKERS,
    Owner,
)
from envmgr.readiness import Waiter, wait_until
from envmgr.reaper import Watchdog, sweep
from envmgr.services import SERVICES, ContainerSpec, Published, Service, create_service
from envmgr.timings import Timings

__all__ = ["Environment", "Faults", "Health"]

PORT_ATTEMPTS = 3
STOP_TIMEOUT = 5


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
    ) -> None:
        """`workers`: 0 for session isolation (one replica of everything); N for worker isolation, where each of
        the N pytest workers has its own replica of the per-worker services (WireMock, Celery worker)."""
        self.settings = settings if settings is not None else load_settings()
        names = list(services) if services is not None else self.settings.enabled_services()
        self._services: dict[str, Service] = {name: create_service(name, self.settings) for name in names}
        for service in self._services.values():
            missing = [name for name in service.requires if name not in self._services]
            if missing:
                raise ServiceNotEnabledError(
                    f"{service.name} needs {', '.join(missing)}, which is not part of this environment",
                    f"add {', '.join(missing)} to the services",
                )
        self.id = env_id or secrets.token_hex(5)
        self.sandbox = sandbox
        self.detach = detach
        self.guard_detached = guard_detached
        """with detach: keep the watchdog (a crash of this process still removes it) until hand_over()"""
        self.workers = max(0, workers)
        self._extra_labels = dict(labels or {})
        self.timings = Timings()
        self._engine = engine
        self._owner = Owner.current()
        self._endpoints: Endpoints | None = None
        self._containers: dict[str, DockerContainer] = {}
        self._watchdog: Watchdog | None = None
        self._lock = threading.Lock()

    # lifecycle ---------------------------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine.connect()
        return self._engine

    @property
    def network_name(self) -> str:
        return f"{self.settings.namespace}-{self.id}"

    @property
    def services(self) -> list[str]:
        return list(self._services)

    def replicas(self, name: str) -> list[Worker]:
        """The workers served by the containers of a service: one each for per-worker services."""
        if self._services[name].per_worker and self.workers > 0:
            return [Worker(f"gw{index}", isolated=True) for index in range(self.workers)]
        return [Worker(isolated=self.workers > 0)]

    def labels(self) -> dict[str, str]:
        """The labels put on every container and network of this environment."""
        labels = {
            LABEL_ENV: self.id,
            LABEL_NAMESPACE: self.settings.namespace,
            LABEL_CREATED: f"{time.time():.3f}",
            LABEL_DETACHED: "true" if self.detach else "false",
            LABEL_IMAGE_SET: self.settings.image_set,
            LABEL_WORKERS: str(self.workers),
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
        if self._endpoints is not None:
            return self._endpoints
        engine = self.engine
        sweep(engine)
        self._check_images(engine)
        labels = self.labels()
        try:
            network = Network(docker_network_kw={"labels": labels, "driver": "bridge"})
            network.name = self.network_name
            network.create()
            self._watchdog = Watchdog(self.id, self._owner)
            ready: dict[str, ServiceEndpoint] = {}
            for wave in self._waves():
                ready.update(self._start_wave(wave, network, labels, ready))
        except BaseException:
            self._teardown()
            raise
        self._endpoints = Endpoints(
            id=self.id,
            network=self.network_name,
            namespace=self.settings.namespace,
            sandbox=self.sandbox,
            services=ready,
        )
        if self.detach and not self.guard_detached:
            self._dismiss_watchdog()
        return self._endpoints

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

    def health(self) -> dict[str, Health]:
        """Probe every service once."""
        return {name: self._probe_once(name) for name in self.endpoints.services}

    def reset(self, services: Sequence[str] | None = None) -> None:
        """Bring services back to their prepared state (default: all), every replica, and drop what workers made
        (their databases, Redis databases, AWS accounts): what a fresh environment would have."""
        for name in services if services is not None else self.services:
            service = self._service(name)
            keys = [key for key in self.endpoints.services if key == name or key.startswith(name + "@")]
            with self.timings.measure(name, "reset"):
                for key in keys:
                    service.reset(self.endpoints.services[key])

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
        container = self._container_of(service, worker)
        container.start()
        handler = self._service(service)
        key = replica_key(service, (worker or Worker()).replica if handler.per_worker else 0)
        endpoint = self.endpoints.services[key]
        self._await_ready(handler, endpoint, container)
        if handler.data_in_ram:  # the restart emptied it: prepared again (template, seeds), this worker's data back
            handler.prepare(endpoint)
            handler.restore_worker(endpoint, worker or Worker())

    def _container_of(self, service: str, worker: Worker | None) -> Any:
        replica = (worker or Worker()).replica if self._service(service).per_worker else 0
        endpoint = self.endpoints.services.get(replica_key(service, replica)) or self.endpoints[service]
        return self.engine.client.containers.get(endpoint.container)

    def _service(self, name: str) -> Service:
        try:
            return self._services[name]
        except KeyError:
            raise ServiceNotEnabledError(
                f"service {name!r} is not part of environment {self.id}",
                f"use one of: {', '.join(self._services)}",
            ) from None

    def _probe_once(self, name: str) -> Health:
        started = time.perf_counter()
        try:
            self._service(name).probe(self.endpoints[name])
        except Exception as exc:  # a failing probe is the answer here, not an error
            return Health(name, False, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
        return Health(name, True, time.perf_counter() - started)

    # attaching to an environment started elsewhere ------------------------------------------------------

    @classmethod
    def attach(cls, env_id: str, *, engine: Engine | None = None, settings: Settings | None = None) -> Environment:
        """A handle on a running environment (started by another process), rebuilt from its labels."""
        engine = engine or Engine.connect()
        record = engine.environments().get(env_id)
        if record is None:
            raise EnvironmentNotFoundError(
                f"no environment {env_id!r} on this engine",
                "list them with `envmgr status`",
            )
        if settings is not None:
            base = settings
        elif LABEL_SETTINGS in record.labels:  # made by the daemon from a project's settings
            base = Settings.model_validate_json(record.labels[LABEL_SETTINGS])
        else:
            base = Settings()
        configs: dict[str, Any] = {}
        for container in record.containers:
            name = container.labels.get(LABEL_SERVICE, "")
            if name in SERVICES:
                configs[name] = json.loads(container.labels.get(LABEL_SERVICE_CONFIG, "{}"))
        merged = base.model_copy(update={"namespace": record.labels.get(LABEL_NAMESPACE, base.namespace)})
        merged = merged.model_copy(
            update={name: base.service(name).model_validate(config) for name, config in configs.items()}
        )
        workers = int(record.labels.get(LABEL_WORKERS, "0"))
        env = cls(list(configs), settings=merged, env_id=env_id, sandbox=record.sandbox,
                  detach=record.detached, engine=engine, workers=workers)  # fmt: skip
        host = engine.host_address()
        services: dict[str, ServiceEndpoint] = {}
        order = {name: index for index, name in enumerate(name for wave in env._waves() for name in wave)}
        for container in sorted(record.containers, key=lambda c: order.get(c.labels.get(LABEL_SERVICE, ""), -1)):
            name = container.labels.get(LABEL_SERVICE, "")
            if name not in env._services:
                continue
            service = env._services[name]
            service.password = container.labels.get(LABEL_SECRET, service.password)
            replica = int(container.labels.get(LABEL_REPLICA, "0"))
            worker = (
                Worker(f"gw{replica}", isolated=True)
                if workers > 0 and service.per_worker
                else Worker(isolated=workers > 0)
            )
            needs = {
                req: services.get(replica_key(req, worker.replica)) or services[req] for req in env._needs(service)
            }
            published = _published_from(container, host, service, worker, needs)
            services[replica_key(name, replica)] = service.recover(service.endpoint(published))
        env._endpoints = Endpoints(
            id=env_id, network=env.network_name, namespace=merged.namespace, sandbox=record.sandbox,
            services=services,
        )  # fmt: skip
        env.detach = True  # a handle never tears down what it did not start, unless asked: see remove()
        return env

    def prepare(self) -> Endpoints:
        """Run every service's prepare step again (on an attached environment): a template that exists is reused."""
        endpoints = self.endpoints
        services = {}
        for name, endpoint in endpoints.services.items():
            with self.timings.measure(name, "prepare"):
                services[name] = self._services[name].prepare(endpoint)
        self._endpoints = endpoints.model_copy(update={"services": services})
        return self._endpoints

    def remove(self) -> None:
        """Remove the environment whatever its owner or detached state (`envmgr down`)."""
        self._teardown()

    # internals ----------------------------------------------------------------------------------------------

    def _check_images(self, engine: Engine) -> None:
        services = list(self._services.values())
        with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
            futures = [pool.submit(engine.ensure_image, s.image(), s.name, s.build_hint()) for s in services]
        for future in futures:
            future.result()

    def _waves(self) -> list[list[str]]:
        """Services grouped so that each group needs only services of earlier groups."""
        remaining = dict(self._services)
        done: set[str] = set()
        waves: list[list[str]] = []
        while remaining:
            wave = [name for name, s in remaining.items() if set(self._needs(s)) <= done]
            if not wave:
                raise ServiceNotEnabledError(f"circular requirements among {', '.join(remaining)}")
            waves.append(wave)
            done.update(wave)
            for name in wave:
                del remaining[name]
        return waves

    def _needs(self, service: Service) -> list[str]:
        """What must be ready before `service` starts: its requirements and the used services that are here."""
        return [*service.requires, *(name for name in service.uses if name in self._services)]

    def _start_wave(
        self, names: list[str], network: Network, labels: dict[str, str], ready: dict[str, ServiceEndpoint]
    ) -> dict[str, ServiceEndpoint]:
        cancel = threading.Event()
        units = [(name, worker) for name in names for worker in self.replicas(name)]
        with ThreadPoolExecutor(max_workers=len(units)) as pool:
            futures: dict[Future[ServiceEndpoint], str] = {
                pool.submit(
                    self._start_service, name, worker, network=network, labels=labels, ready=ready, cancel=cancel
                ): replica_key(name, worker.replica)
                for name, worker in units
            }
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                cancel.set()  # the others stop waiting; the first failure is the one reported
                wait(futures)
                raise cast(BaseException, failed[0].exception())
        return {futures[f]: f.result() for f in futures}

    def _start_service(
        self,
        name: str,
        worker: Worker,
        *,
        network: Network,
        labels: dict[str, str],
        ready: dict[str, ServiceEndpoint],
        cancel: threading.Event,
    ) -> ServiceEndpoint:
        service = self._services[name]
        needs = {req: ready.get(replica_key(req, worker.replica)) or ready[req] for req in self._needs(service)}
        spec = service.container_spec(needs, worker)
        alias = _alias(name, worker.replica)
        service_labels = {
            **labels,
            LABEL_SERVICE: name,
            LABEL_REPLICA: str(worker.replica),
            LABEL_SECRET: service.password,
            LABEL_SERVICE_CONFIG: service.config.model_dump_json(),
        }
        with self.timings.measure(name, "create", worker.replica):
            wrapped = self._run_container(service, alias, spec, network, service_labels)
        published = _published_from(wrapped, self.engine.host_address(), service, worker, needs)
        endpoint = service.endpoint(published)
        with self.timings.measure(name, "ready", worker.replica):
            self._await_ready(service, endpoint, wrapped, cancel)
        with self.timings.measure(name, "prepare", worker.replica):
            return service.prepare(endpoint)

    def _run_container(
        self, service: Service, alias: str, spec: ContainerSpec, network: Network, labels: dict[str, str]
    ) -> Any:
        """Create and start one container; its ports are pinned to free loopback ports (kept across restarts)."""
        engine = self.engine
        publish = engine.publish_address()
        name = service.name
        for attempt in range(PORT_ATTEMPTS):
            host_ports = {role: _free_port(publish) for role in spec.ports}
            container = DockerContainer(
                spec.image,
                command=cast(Any, spec.command),
                env={**spec.env, **service.host_env(engine.host_address(), host_ports)},
                name=f"{self.settings.namespace}-{self.id}-{alias}",
                network=network,
                network_aliases=[alias],
            )
            for role, port in spec.ports.items():
                cast(dict[str, Any], container.ports)[f"{port}/tcp"] = (publish, host_ports[role])
            for path in engine.image_volumes(spec.image):
                container.with_tmpfs_mount(path)
            for path, size in spec.tmpfs.items():
                container.with_tmpfs_mount(path, size or None)
            for host_path, container_path in spec.binds.items():
                container.with_volume_mapping(host_path, container_path, "ro")
            for source, destination, mode in _copies(spec.copies):
                container.with_copy_into_container(source, destination, mode)
            container.with_kwargs(labels=labels, privileged=False)
            with self._lock:
                self._containers[alias] = container
            try:
                container.start()
            except docker.errors.DockerException as exc:
                taken = "port is already allocated" in str(exc) or "address already in use" in str(exc)
                if taken and attempt < PORT_ATTEMPTS - 1:  # another process took the port meanwhile: try others
                    container.stop()
                    continue
                raise ServiceStartError(
                    name,
                    f"{name} could not start from image {spec.image}: {first_line(exc)}",
                    "check the image and the service's env/command settings",
                ) from None
            return container.get_wrapped_container()
        raise AssertionError("unreachable")  # pragma: no cover

    def _await_ready(
        self, service: Service, endpoint: ServiceEndpoint, container: Any, cancel: threading.Event | None = None
    ) -> None:
        engine = self.engine
        waiter = Waiter(
            service=service.name,
            logs=lambda: engine.container_logs(container),
            running=lambda: not (cancel is not None and cancel.is_set()) and _is_running(container),
        )
        wait_until(lambda: service.probe(endpoint), waiter, self.settings.startup_timeout,
                   service.probe_description)  # fmt: skip

    def _dismiss_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None

    def _teardown(self) -> None:
        try:
            self.engine.remove_environment(self.id)
        finally:
            for container in self._containers.values():
                container.get_docker_client().client.close()
            self._containers.clear()
            self._dismiss_watchdog()
            self._endpoints = None


class Faults:
    """Faults injected into one worker's view of an environment, undone (in reverse order) by `restore()`.

    Per-worker services (WireMock, Celery) are faulted for this worker only; a shared server (Postgres, Redis,
    LocalStack) is faulted for every worker for as long as the fault lasts: keep such faults short.
    """

    def __init__(self, env: Environment, worker: Worker | None = None) -> None:
        self._env = env
        self._worker = worker
        self._undo: list[Callable[[], object]] = []

    def pause(self, service: str) -> None:
        """Freeze the service: clients hang until their time-out ("Redis down", "database not answering")."""
        self._env.pause(service, self._worker)
        self._undo.append(lambda: self._env.unpause(service, self._worker))

    def stop(self, service: str) -> None:
        """Stop the service: connections are refused. Restored by starting it again on the same port."""
        self._env.stop(service, self._worker)
        self._undo.append(lambda: self._env.start(service, self._worker))

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()

    def __enter__(self) -> Faults:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()


def _copies(copies: Mapping[str, str]) -> list[tuple[bytes, str, int]]:
    """Each file of the copied folders, readable by any user in the container (the service may not run as root,
    and a checkout's modes are the host's business)."""
    files: list[tuple[bytes, str, int]] = []
    for host_path, container_dir in copies.items():
        source = Path(host_path)
        for path in sorted(p for p in [source, *source.rglob("*")] if p.is_file()):
            relative = path.relative_to(source.parent).as_posix()
            files.append((path.read_bytes(), f"{container_dir.rstrip('/')}/{relative}", 0o644))
    return files


def _free_port(address: str) -> int:
    """A port free on `address` right now (the engine binds it a moment later; a lost race is retried)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def _alias(service: str, replica: int) -> str:
    """The container's name on the environment's network: `wiremock`, `wiremock-1`, ..."""
    return service if replica == 0 else f"{service}-{replica}"


def _published_from(
    container: Any, host: str, service: Service, worker: Worker, needs: Mapping[str, ServiceEndpoint]
) -> Published:
    """Read the published ports of a started container back from the engine."""
    container.reload()
    ports: dict[str, Any] = container.attrs["NetworkSettings"]["Ports"] or {}
    spec_ports = service.ports
    published: dict[str, int] = {}
    for role, port in spec_ports.items():
        bindings = ports.get(f"{port}/tcp") or []
        if not bindings:
            raise ServiceStartError(service.name, f"{service.name} has no published port for {port}/tcp")
        published[role] = int(bindings[0]["HostPort"])
    return Published(
        host=host,
        ports=published,
        alias=_alias(service.name, worker.replica),
        container_ports=dict(spec_ports),
        image=str(container.attrs["Config"]["Image"]),
        container=str(container.name),
        worker=worker,
        needs=dict(needs),
    )


def _is_running(container: Any) -> bool:
    try:
        container.reload()
    except docker.errors.NotFound:
        return False
    return bool(container.status == "running")
