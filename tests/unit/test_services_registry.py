"""A new service is one folder and one registry line: it gets its start order, per-worker view and reset, and a
compose entry without any other module naming it (pure logic, no Docker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envmgr.compose import compose_document
from envmgr.endpoints import Endpoints, ServiceEndpoint, Worker
from envmgr.errors import ServiceNotEnabledError
from envmgr.pytest.run import RunState
from envmgr.pytest.shares import WorkerShares
from envmgr.pytest.source import SourceOptions
from envmgr.services.registry import SERVICES
from envmgr.topology import Topology
from tests.unit.dummy_service import DummyService, SettingsWithDummy

REGISTRY = SERVICES.with_services(DummyService)  # the one registry line


def test_the_default_registry_does_not_know_the_dummy() -> None:
    assert "dummy" not in SERVICES
    assert "dummy" in REGISTRY
    assert list(REGISTRY)[: len(SERVICES)] == list(SERVICES)


def test_start_order_and_replicas_come_from_the_service_class() -> None:
    topology = Topology.plan(["dummy", "postgres", "redis"], workers=3, registry=REGISTRY)
    assert topology.waves == (("postgres", "redis"), ("dummy",))
    assert topology.needs["dummy"] == ("redis",)
    assert [w.worker_id for w in topology.replicas("dummy")] == ["gw0", "gw1", "gw2"]
    assert [w.worker_id for w in topology.replicas("redis")] == ["main"]
    assert topology.replica_of("dummy", Worker("gw2", isolated=True)) == 2
    assert topology.replica_of("redis", Worker("gw2", isolated=True)) == 0
    assert topology.dependants("redis") == ["dummy"]


def test_a_missing_requirement_is_named() -> None:
    with pytest.raises(ServiceNotEnabledError, match="dummy needs redis"):
        Topology.plan(["dummy"], registry=REGISTRY)


def dummy_endpoint(replica: int, port: int) -> ServiceEndpoint:
    return ServiceEndpoint(
        service="dummy", replica=replica, scheme="http", host="127.0.0.1", port=port, internal_host="dummy",
        internal_port=9000, path="shared",
    )  # fmt: skip


def test_per_worker_view_and_reset_go_through_the_service_hooks(tmp_path: Path) -> None:
    settings = SettingsWithDummy(project_root=tmp_path)
    endpoints = Endpoints(id="e", network="n").with_endpoints([dummy_endpoint(0, 9000), dummy_endpoint(1, 9001)])
    run = RunState(settings=settings, worker_id="gw1", isolation="worker", options=SourceOptions(),
                   registry=REGISTRY, endpoints=endpoints)  # fmt: skip
    run.controller = None
    shares = WorkerShares(run, run.worker)
    shares._servers["dummy"] = endpoints.for_worker(run.worker)["dummy"]  # as the controller would hand it over
    assert shares.server("dummy").port == 9001  # the worker's own replica
    assert shares.view("dummy").path == "space-gw1"
    shares.reset("dummy")
    service = run.service("dummy")
    assert isinstance(service, DummyService)
    assert service.resets == [(1, "gw1")]
    assert run.resets.counts["dummy"]["reset"] == 1  # counted in the run's report


def test_compose_exports_the_dummy_with_its_health_check_and_job(tmp_path: Path) -> None:
    settings = SettingsWithDummy(project_root=tmp_path, dummy={"greeting": "hi"})
    document = compose_document(settings, ["dummy", "redis"], registry=REGISTRY)
    services = document["services"]
    assert list(services) == ["redis", "dummy", "dummy-seed"]
    dummy = services["dummy"]
    assert dummy["environment"]["GREETING"] == "hi"
    assert dummy["healthcheck"]["test"] == ["CMD", "dummy-ping", "9000"]
    assert dummy["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert services["dummy-seed"]["networks"] == services["dummy"]["networks"]
    assert document["x-envmgr"]["jobs"] == ["dummy-seed"]
