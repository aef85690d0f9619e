"""A new service is one folder and one registry line: it gets its start order, per-worker view and reset, and a
compose entry without any other module naming it (pure logic, no Docker)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from envmgr.compose import compose_document
from envmgr.config import Settings
from envmgr.docs_reference import reference, services_table
from envmgr.endpoints import Endpoints, ServiceEndpoint, Worker
from envmgr.errors import ConfigError, SeedError, ServiceNotEnabledError
from envmgr.images import local_images, official_lookalikes
from envmgr.pytest.run import RunState
from envmgr.pytest.shares import WorkerShares
from envmgr.pytest.source import SourceOptions
from envmgr.seed_layout import layout_text
from envmgr.services.registry import SERVICES
from envmgr.topology import Topology
from tests.unit.dummy_service import DummyService, SettingsWithDummy
from tests.unit.dummy_store.service import StoreService
from tests.unit.dummy_store.settings import StoreSettings

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


# A second service, as a newcomer adds one: its folder (tests/unit/dummy_store/: settings with its seed layout,
# service, image folder), one registry line and one typed field in the settings. Everything below follows from those.

STORE_REGISTRY = SERVICES.with_services(StoreService)  # the registry line


class SettingsWithStore(Settings):
    store: StoreSettings = Field(default_factory=StoreSettings)  # the typed field


def _store_project(root: Path) -> Path:
    seeds = root / "seeds"
    (seeds / "store" / "covers").mkdir(parents=True)
    (seeds / "store" / "covers" / "a.jpg").write_bytes(b"jpg")
    (seeds / "postgres").mkdir()
    return seeds


def test_a_new_service_has_its_table_and_its_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ENVMGR_STORE__REGION", "north")
    monkeypatch.setenv("ENVMGR_STORE_CACHE", "on")  # a variable its image reads: not a setting, not an error
    settings = SettingsWithStore(project_root=tmp_path, store={"enabled": True})
    assert settings.enabled_services()[-1] == "store"
    assert isinstance(settings.service("store"), StoreSettings)
    assert settings.store.region == "north"
    monkeypatch.setenv("ENVMGR_STORE__REGOIN", "x")
    with pytest.raises(ConfigError) as caught:
        SettingsWithStore(project_root=tmp_path)
    assert caught.value.cause.startswith("unknown environment variable ENVMGR_STORE__REGOIN")
    assert "did you mean ENVMGR_STORE__REGION?" in (caught.value.fix or "")


def test_a_new_service_says_what_it_reads_under_the_seeds_folder(tmp_path: Path) -> None:
    seeds = _store_project(tmp_path)
    settings = SettingsWithStore(project_root=tmp_path, seeds=Path("seeds"))
    assert settings.seeds_path() == seeds
    (seeds / "store" / "loose.txt.bak").write_text("x")
    with pytest.raises(SeedError, match=r"seeds/store/loose\.txt\.bak is not where envmgr reads seeds: store objects"):
        settings.seeds_path()
    assert "store/<bucket>/" in layout_text(settings.seed_entries())
    (seeds / "store" / "loose.txt.bak").unlink()
    (seeds / "elsewhere").mkdir()  # no service reads it: the layout named in the error includes the store's entry
    with pytest.raises(SeedError) as caught:
        settings.seeds_path()
    assert "store/<bucket>/" in (caught.value.fix or "")
    assert Settings(project_root=tmp_path, seeds=Path("seeds")).seed_entries() == [
        entry for entry in settings.seed_entries() if entry.names != ("store",)
    ]


def test_a_new_service_has_its_image_build_and_its_docs(tmp_path: Path) -> None:
    image = local_images(STORE_REGISTRY)["store"]
    assert image.folder == Path(__file__).parent / "dummy_store" / "image"
    assert (image.folder / "Dockerfile").is_file()
    assert official_lookalikes(STORE_REGISTRY)["store"].tag == "example/store:2"
    assert "store" not in local_images()  # the default registry does not know it
    row = services_table(STORE_REGISTRY).splitlines()[-1]
    assert row == (
        "| store | `example/store:2` | `envmgr-local/store:2` | `GET /health` | `seeds/store/<bucket>/<key>` | "
        "a bucket prefix per worker | the worker's buckets emptied |"
    )
    page = reference(SettingsWithStore)
    assert "## `[tool.envmgr.store]`" in page
    assert "`ENVMGR_STORE__REGION`" in page
    settings = SettingsWithStore(project_root=tmp_path, image_set="official", store={"enabled": True})
    topology = Topology.plan(["postgres", "store"], registry=STORE_REGISTRY)
    assert topology.waves == (("postgres", "store"),)
    assert STORE_REGISTRY.create("store", settings).base_image() == "example/store:2"
