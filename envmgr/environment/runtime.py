"""What an environment has on the engine while it runs, and how it gets there and goes away: its labelled network
and watchdog (`begin`), its images (each checked once, a derived one built on its network, in a thread of its own),
the start of each replica (once, in a thread pool: create, probe, prepare; a service waits only for those it needs),
what is ready, its containers, and its removal (`teardown`: the builds under way are stopped and the starts end
first, then everything labelled with its id goes; when the engine cannot remove it all, the watchdog is ordered to
as soon as it answers). Once its owner removes it (or says it will: `stop_starting`), nothing starts in it again: a
start a background thread asks for afterwards is refused rather than making a new network and watchdog.

The first start (or image) that fails fails the environment: every call waiting for a start then, and every later
one, raises its error at once, rather than waiting for starts (a build of minutes) that no longer matter."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from envmgr.credentials import state_folder
from envmgr.endpoints import Callback, Endpoints, ServiceEndpoint, Worker
from envmgr.engine.commands import EngineCommands
from envmgr.engine.connection import Engine
from envmgr.engine.containers import alias, is_running, published_from, run_container
from envmgr.engine.labels import LABEL_REPLICA, LABEL_SERVICE, LABEL_SERVICE_CONFIG
from envmgr.engine.reaper import Watchdog, sweep
from envmgr.environment.given import not_a_container
from envmgr.environment.images import BUILD_STOP_WAIT, ImageChecks
from envmgr.environment.plan import EnvironmentPlan, Ready, with_replica
from envmgr.errors import EnvmgrError, ServiceNotEnabledError
from envmgr.progress.events import Progress, silent
from envmgr.readiness import StartTimes, Waiter, diagnosed, wait_until
from envmgr.services.base import CommandResult, Service
from envmgr.timings import Timings

__all__ = ["Runtime"]


class Runtime:
    """One environment on one engine (see the module's documentation)."""

    def __init__(
        self, plan: EnvironmentPlan, engine: Engine | None, timings: Timings, progress: Progress = silent
    ) -> None:
        self.plan = plan
        self.timings = timings
        self.progress = progress
        """told how each start goes (envmgr.progress.events), as are the services' prepare steps"""
        for service in plan.services.values():
            service.progress = progress
        plan.progress = progress
        self.attached = False
        """rebuilt from the engine's labels (`envmgr.environment.attach`), not started by this handle"""
        self.gateway: str | None = None
        """the gateway of the environment's network: the test host, as containers reach it"""
        self.ready: Ready = {}
        """every started (probed, prepared) replica"""
        self._engine = engine
        for service in plan.services.values():
            service.commands = self  # the engine's, once it is connected (run_in_container)
        self._endpoints: Endpoints | None = None
        self._containers: dict[str, DockerContainer] = {}
        self._watchdog: Watchdog | None = None
        self._lock = threading.RLock()
        self._settled = threading.Condition(self._lock)
        """notified when a start or an image check ends, and when the environment is being removed"""
        self._failure: BaseException | None = None
        """the first start or image check that failed: every wait for a start raises it"""
        self._network: Network | None = None
        self._labels: dict[str, str] = {}
        self._begun = False
        self._units: dict[tuple[str, int], Future[ServiceEndpoint]] = {}
        self._images = ImageChecks(lambda: self.engine, plan.network_name, progress, self._settle)
        """each service's image check (a derived image's build), in a daemon thread: never joined at exit"""
        self._pool: ThreadPoolExecutor | None = None
        self._cancel = threading.Event()
        self._closed = False
        """removed (or about to be) by its owner: a start asked for later (a thread of the owner's that was still
        starting something in the background) is refused, never a new network and watchdog after the teardown"""
        self._start_times = StartTimes(state_folder() / "start-times.json")

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine.connect()
        return self._engine

    def run_in_container(self, container: str, command: Sequence[str], **files: Any) -> CommandResult:
        """A program run inside one of the environment's containers (`ContainerCommands`, for the services)."""
        return EngineCommands(self.engine.client).run_in_container(container, command, **files)

    @property
    def connected(self) -> Engine | None:
        """The engine, when this handle has one already (planning does not connect)."""
        return self._engine

    @property
    def begun(self) -> bool:
        return self._begun

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    @property
    def endpoints(self) -> Endpoints | None:
        return self._endpoints

    def complete(self) -> bool:
        """Every replica of every service is started."""
        return self._endpoints is not None and len(self.ready) == self.plan.unit_count()

    def adopt(self, ready: Ready, gateway: str | None) -> None:
        """What an environment started elsewhere has (read from its labels: `envmgr.environment.attach`)."""
        self.ready = ready
        self.attached = True
        self.gateway = gateway
        self.plan.adopt(ready)
        for key, endpoint in ready.items():  # started: an `ensure` of them (a handle that resumes it) is done
            done: Future[ServiceEndpoint] = Future()
            done.set_result(endpoint)
            self._units[key] = done
        self._endpoints = self._build_endpoints()

    def resume(self, labels: dict[str, str]) -> None:
        """Take charge of an adopted environment (a daemon serving it): the services it has not started yet start
        on its network with its `labels`, as if this handle had begun it (without a watchdog: it is detached)."""
        self._network = Network(self.engine.client_kwargs())
        self._network.name = self.plan.network_name
        self._labels = labels
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix=f"envmgr-{self.plan.id}")
        self._begun = True
        self.attached = False

    def prepared(self, ready: Ready) -> Endpoints:
        """The replicas prepared again (on an attached environment)."""
        self.ready = ready
        self._endpoints = self._build_endpoints()
        return self._endpoints

    # begin, start ------------------------------------------------------------------------------------------

    def begin(self) -> None:
        """Sweep orphans, create the labelled network and the watchdog: what every service start needs first."""
        if self._begun:
            return
        self._refuse_if_closed()
        if not self.plan.given.needs_engine():  # every service on a server envmgr did not start: no engine at all
            self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix=f"envmgr-{self.plan.id}")
            self._begun = True
            self._endpoints = self._build_endpoints()
            return
        engine = self.engine
        sweep(engine)
        labels = self.plan.labels()
        try:
            network = Network(engine.client_kwargs(), docker_network_kw={"labels": labels, "driver": "bridge"})
            network.name = self.plan.network_name
            network.create()
            self._network = network
            self.gateway = engine.network_gateway(self.plan.network_name)
            self._watchdog = Watchdog(self.plan.id, self.plan.owner, engine.docker_host())  # this engine
        except BaseException:
            self.teardown(final=False)  # nothing started: its owner may begin again (the engine back)
            raise
        self._labels = labels
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix=f"envmgr-{self.plan.id}")
        self._begun = True
        self._endpoints = self._build_endpoints()

    def ensure(self, services: Sequence[str], worker: Worker | None) -> None:
        """Start whatever of `services` (and what they need) is not started yet, their images checked first;
        concurrent calls share the starts they have in common. The first start that fails, this call's or
        another's, fails this call at once (see the module's documentation)."""
        self.begin()
        cancel = self._cancel
        units = self.plan.units_for(services, worker)
        names = [name for name in dict.fromkeys(name for name, _ in units) if name not in self.plan.given]
        self._await(self._images.check([self.plan.services[name] for name in names]), cancel)
        self._await([self._unit(name, unit_worker) for name, unit_worker in units], cancel)

    def _await(self, futures: Sequence[Future[Any]], cancel: threading.Event) -> None:
        """Until every future is done, the environment has failed (its first failure raised) or is being removed."""
        with self._settled:
            while self._failure is None and not cancel.is_set() and not all(f.done() for f in futures):
                self._settled.wait()
            failure = self._failure
        if failure is not None:
            raise failure
        if not all(f.done() for f in futures):
            raise EnvmgrError(
                f"environment {self.plan.id} is being removed: the starts under way were stopped",
                "nothing to do: its owner ended it",
            )
        for future in futures:
            future.result()

    def _settle(self, future: Future[Any]) -> None:
        """A start or image check has ended: its failure, the environment's first, fails every wait."""
        failure = None if future.cancelled() else future.exception()
        with self._settled:
            if failure is not None and self._failure is None:
                self._failure = failure
            self._settled.notify_all()

    def discard(self, services: Sequence[str]) -> None:
        """Remove every replica of these services once their starts have ended; their planned ports stay theirs."""
        with self._lock:
            keys = [key for key in self._units if key[0] in services]
            futures = [self._units[key] for key in keys]
        wait(futures)  # a start under way ends first, well or not: its container is then there to remove
        for name in dict.fromkeys(name for name, _ in keys):
            if name not in self.plan.given:  # a given server's share stays until the environment is removed
                self.engine.remove_service(self.plan.id, name)
        with self._lock:
            for key in keys:
                self._units.pop(key, None)
                self.ready.pop(key, None)
                container = self._containers.pop(alias(*key), None)
                if container is not None:
                    container.get_docker_client().client.close()
            if self._begun:
                self._endpoints = self._build_endpoints()

    def restart(self, service: str, worker: Worker) -> None:
        """Start a stopped service's container again and wait until it answers; a service whose data lives in RAM
        is prepared again and `worker`'s share made anew."""
        container = self.container_of(service, worker)
        container.start()
        handler = self.plan.service(service)
        endpoint = self.endpoint_of(service, worker)
        self.await_ready(handler, endpoint, container)
        if handler.data_in_ram:  # the restart emptied it: prepared again (template, seeds), this worker's data back
            handler.prepare(endpoint)
            handler.worker_setup(endpoint, worker)

    def endpoint_of(self, service: str, worker: Worker | None) -> ServiceEndpoint:
        """The endpoint of `worker`'s replica of a service: never another worker's. A handle made before that
        replica started (replicas start on demand) reads the environment's labels again to find it."""
        self.plan.service(service)
        replica = self.plan.topology.replica_of(service, worker or Worker())
        if (service, replica) not in self.ready and self.attached:
            from envmgr.environment.attach import read_ready

            self.ready.update(read_ready(self.plan, self.engine))
            self._endpoints = self._build_endpoints()
        if (service, replica) not in self.ready:
            raise ServiceNotEnabledError(
                f"replica {replica} of {service} has not started in environment {self.plan.id}",
                f"use {service} in a test of this worker first (its replica starts when it is first needed)",
            )
        return self.ready[(service, replica)]

    def container_of(self, service: str, worker: Worker | None) -> Any:
        if service in self.plan.given:
            raise not_a_container(service)
        return self.engine.client.containers.get(self.endpoint_of(service, worker).container)

    def await_ready(
        self, service: Service, endpoint: ServiceEndpoint, container: Any, cancel: threading.Event | None = None
    ) -> None:
        engine = self.engine
        timeout, setting = service.readiness_timeout()
        image = service.image()
        waiter = Waiter(
            service=service.name,
            logs=lambda: engine.container_logs(container),
            running=lambda: not (cancel is not None and cancel.is_set()) and is_running(container),
            setting=setting,
            earlier=lambda: self._start_times.summary(service.name, image),
            replica=endpoint.replica,
            progress=self.progress,
        )
        with diagnosed(service.diagnose):
            seconds = wait_until(lambda: service.probe(endpoint), waiter, timeout, service.probe_description)
        self._start_times.record(service.name, image, seconds)

    def _unit(self, name: str, worker: Worker) -> Future[ServiceEndpoint]:
        """The start of one replica: begun once, shared by every caller that needs it."""
        key = (name, self.plan.topology.replica_of(name, worker))
        with self._lock:
            future = self._units.get(key)
            if future is None:
                self._refuse_if_closed()
                self.plan.planned(name, worker, self._engine)  # its endpoint is known now: dependants go on
                assert self._pool is not None
                future = self._pool.submit(self._start_service, name, worker)
                self._units[key] = future
                future.add_done_callback(self._settle)
            return future

    def _started_needs(self, name: str, worker: Worker) -> dict[str, ServiceEndpoint]:
        """The needs as they actually started (a planned port may have been taken meanwhile), waited for: their
        starts were submitted before this one's, so they are running or done."""
        topology = self.plan.topology
        with self._lock:
            futures = {
                key: self._units[key]
                for key in ((req, topology.replica_of(req, worker)) for req in topology.needs[name])
            }
        return self.plan.needs_of(name, worker, {key: future.result() for key, future in futures.items()})

    def _start_service(self, name: str, worker: Worker) -> ServiceEndpoint:
        """Create, probe and prepare one replica (in the pool's thread); its needs are planned, maybe not ready."""
        plan = self.plan
        service = plan.services[name]
        replica = plan.topology.replica_of(name, worker)
        if name in plan.given:
            given = plan.given.start(name, plan.planned(name, worker, None), self.timings, self.progress)
            return self._record(name, replica, given)  # a server envmgr did not start: held when planned
        spec = service.container_spec(plan.planned_needs(name, worker), worker)
        host_ports = plan.host_ports(name, replica)
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

        with self.timings.measure(name, "create", replica, self.progress):
            wrapped = run_container(
                self.engine, service=name, spec=spec, name=f"{plan.settings.namespace}-{plan.id}-{network_alias}",
                network_alias=network_alias, network=self._network, labels=service_labels, host_env=service.host_env,
                created=created, host_ports=host_ports, gateway=self.gateway,
            )  # fmt: skip
        started = self._started_needs(name, worker)  # its container runs already; its probe may need them
        with diagnosed(service.diagnose):  # it may have exited at once
            published = published_from(
                wrapped, service=name, host=self.engine.host_address(), ports=service.ports, worker=worker,
                replica=replica, needs=started,
            )  # fmt: skip
        endpoint = with_replica(service.endpoint(published), replica)
        with self.timings.measure(name, "ready", replica, self.progress):
            self.await_ready(service, endpoint, wrapped, self._cancel)
        with self.timings.measure(name, "prepare", replica, self.progress):
            prepared = service.prepare(endpoint)
        return self._record(name, replica, prepared)

    def _record(self, name: str, replica: int, prepared: ServiceEndpoint) -> ServiceEndpoint:
        with self._lock:
            self.ready[(name, replica)] = prepared
            self._endpoints = self._build_endpoints()
        return prepared

    def _build_endpoints(self) -> Endpoints:
        return self.plan.endpoints(self.ready, self._callback())

    def _callback(self) -> Callback | None:
        """Where containers reach the test host: the network's gateway, when that is this machine (a local engine)."""
        if self.gateway is None or self.engine.host_address() != "127.0.0.1":
            return None
        return Callback(bind=self.gateway)

    # teardown ------------------------------------------------------------------------------------------------

    def dismiss_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None

    def stop_starting(self) -> None:
        """No start begins from now on (`begin` and new replicas are refused), those waiting for readiness give up
        and builds under way are stopped: the owner is about to remove the environment."""
        with self._lock:
            self._closed = True
        self._stop_starts()

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise EnvmgrError(
                f"environment {self.plan.id} has been removed by its owner: nothing starts in it any more",
                "make a new Environment (a start still under way when its owner ended it is not carried out)",
            )

    def teardown(self, *, final: bool = True) -> None:
        """Remove everything; when the engine could not remove it all (stopped, restarting), the watchdog is
        ordered to remove it as soon as the engine answers, and the error (one line and the fix) is raised.
        `final` (the owner's removal): nothing starts in it afterwards; a failed start's cleanup is not final."""
        if final:
            with self._lock:
                self._closed = True
        building = self._stop_starts()
        self._close_pool()  # starts under way end first: a container made after the removal would stay
        try:
            try:
                if self.plan.given.needs_engine():
                    self.engine.remove_environment(self.plan.id)
            finally:
                if final:
                    self.plan.given.release()  # what it made on servers envmgr did not start
        except EnvmgrError as exc:
            self._release(removed=False)
            if not building:
                raise
            still = ", ".join(building)
            raise type(exc)(
                f"{exc.cause} (the build of {still}, which envmgr stopped, had not ended {BUILD_STOP_WAIT:g} s later)",
                exc.fix,
            ) from None
        except BaseException:
            self._release(removed=False)
            raise
        self._release(removed=True)

    def _stop_starts(self) -> list[str]:
        """Starts waiting for readiness give up, builds under way are stopped and every wait for a start returns;
        the builds are waited for (`ImageChecks.stop`). Returns those still under way (named)."""
        self._cancel.set()
        with self._settled:
            self._settled.notify_all()
        return self._images.stop()

    def _close_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _release(self, removed: bool) -> None:
        """Let go of what this handle holds; the watchdog is dismissed only when the environment is gone."""
        self._close_pool()
        for container in self._containers.values():
            container.get_docker_client().client.close()
        self._containers.clear()
        if removed:
            self.dismiss_watchdog()
        elif self._watchdog is not None:
            self._watchdog.remove_now()
            self._watchdog = None
        self._endpoints = None
        self.ready.clear()
        self._units.clear()
        self._images.forget()
        self._failure = None
        self.plan.forget()
        self.gateway = None
        self._begun = False
        if not self._closed:
            self._cancel = threading.Event()  # a start after a failed one waits for readiness again
