"""A worker's share of each service: how it sees the server, and putting it back in the seeded state. Every service
fixture goes through `WorkerShares` (the `envmgr_shares` fixture)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.errors import SnapshotError

if TYPE_CHECKING:
    from envmgr.faults.proxy import FaultProxy
    from envmgr.pytest.run import RunState

__all__ = ["WorkerShares"]


class WorkerShares:
    """This worker's share of each service: how it sees the server, and putting it back in the seeded state.

    Every service fixture goes through here, so a reset is the service's own (`Service.worker_reset`) and is
    counted in the run's report."""

    def __init__(self, run: RunState, worker: Worker, *, proxied: bool = False) -> None:
        self._run = run
        self.worker = worker
        self.proxied = proxied
        """shared servers are reached through a proxy of this worker's (so that its faults are its own)"""
        self.proxies: dict[str, FaultProxy] = {}
        self._servers: dict[str, ServiceEndpoint] = {}
        self._before_reset: dict[str, list[Callable[[], object]]] = {}
        self._set_up: list[str] = []
        """services whose share this worker has made (and not removed yet)"""
        self._held: dict[str, str] = {}
        """service -> the fixture holding an open transaction on its share during the current test (db_session)"""

    @property
    def services(self) -> list[str]:
        """The services this worker has used so far (in start order)."""
        endpoints = self._run.endpoints
        order = list(endpoints.services) if endpoints is not None else []
        return sorted(self._servers, key=lambda name: order.index(name) if name in order else len(order))

    def before_reset(self, service: str, action: Callable[[], object]) -> None:
        """Run `action` before each reset of the service (e.g. let go of pooled connections a reset would cut)."""
        self._before_reset.setdefault(service, []).append(action)

    def server(self, service: str) -> ServiceEndpoint:
        """The service's endpoint for this worker (its replica of a per-worker service), as the server sees it;
        started first when the run has not started it yet (it waits for a start already under way)."""
        if service not in self._servers:
            endpoints = self._run.ensure([service], {service: "a fixture"}).for_worker(self.worker)
            endpoint = endpoints[service]
            if self.proxied and service not in endpoints.per_worker and not self._run.service(service).per_worker:
                from envmgr.faults.proxy import FaultProxy

                proxy = FaultProxy(endpoint.host, endpoint.port, name=f"{service}-{self.worker.worker_id}")
                endpoint = endpoint.moved_to("127.0.0.1", proxy.start())
                self.proxies[service] = proxy
            self._servers[service] = endpoint
        return self._servers[service]

    def close(self) -> None:
        """At the end of the session: remove the shares no fixture removed (an `always` service's, made for tests
        that reach it without a fixture), then close this worker's proxies."""
        try:
            for service in reversed(list(self._set_up)):
                self.teardown(service)
        finally:
            for proxy in self.proxies.values():
                proxy.close()
            self.proxies.clear()

    def view(self, service: str) -> ServiceEndpoint:
        """The service as this worker uses it: its database, its Redis db, its AWS account."""
        return self._run.service(service).worker_view(self.server(service), self.worker)

    def setup(self, service: str) -> None:
        """Make this worker's share of the service (its database clone, its account), once."""
        if service in self._set_up:
            return
        self._run.service(service).worker_setup(self.server(service), self.worker)
        self._set_up.append(service)

    def has_baseline(self, service: str) -> bool:
        """Whether the service's per-test reset goes back to a snapshot (`Environment.use_baseline`), not to the
        seeded state: a fixture that cleans up by itself then resets through `reset` instead."""
        book = self._run.snapshot_book
        return book is not None and book.baseline_of(service) is not None

    @contextmanager
    def holding(self, service: str, fixture: str) -> Iterator[None]:
        """While the body runs, `fixture` holds an open transaction on this worker's share of `service` (rolled back
        at its end): a snapshot, restore or reset of that share meanwhile is refused (`let_go`)."""
        self._held[service] = fixture
        try:
            yield
        finally:
            self._held.pop(service, None)

    def let_go(self, service: str) -> None:
        """Run the actions registered to run before the service's share is reset or restored (pools emptied).
        SnapshotError when a fixture of the current test holds an open transaction on it: its changes are not
        committed (a snapshot would silently miss them) and ending its connection would break the fixture."""
        fixture = self._held.get(service)
        if fixture is not None:
            raise SnapshotError(
                f"{service}: this test's {fixture} holds an open transaction (rolled back after the test), so a "
                "snapshot would not have its changes and a restore or reset would end its connection",
                f"snapshot, restore or reset {service} in a fixture that runs before {fixture} (e.g. a session "
                f"fixture that commits through db_engine or postgres_url), or name the other services only: "
                f"envmgr_env.snapshot(name, [...])",
            )
        for action in self._before_reset.get(service, ()):
            action()

    def reset(self, service: str) -> None:
        """This worker's share of the service back to the seeded state, or to the baseline snapshot when one is in
        use (`Environment.use_baseline`) and has the service (timed, counted in the report)."""
        book = self._run.snapshot_book
        baseline = book.baseline_of(service) if book is not None else None
        with self._run.resets.measure(service, "reset"):
            self.let_go(service)
            if baseline is None:
                self._run.service(service).worker_reset(self.server(service), self.worker)
            else:
                name, kept = baseline
                self._run.service(service).restore(self.server(service), self.worker, name, kept)
        self._run.dirty.discard(service)
        if book is not None:
            book.stale.discard(service)

    def teardown(self, service: str) -> None:
        """Remove this worker's share of the service (when it was made)."""
        if service not in self._set_up:
            return
        self._set_up.remove(service)
        self._run.service(service).worker_teardown(self.server(service), self.worker)
