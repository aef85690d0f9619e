"""The dummy service: per worker, requires Redis, a health check, a one-shot job, and resets it records."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from pydantic import Field

from envmgr.config import Settings
from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.services.base import ComposeContext, ContainerSpec, Published, Service
from envmgr.services.settings import ServiceSettings


class DummySettings(ServiceSettings):
    greeting: str = "hello"


class SettingsWithDummy(Settings):
    """Its settings class: the project's settings with a [tool.envmgr.dummy] table."""

    dummy: DummySettings = Field(default_factory=DummySettings)


class DummyService(Service):
    name = "dummy"
    official_image = "example/dummy:1"
    local_image = "envmgr-local/dummy:1"
    build_name = "dummy"
    ports = MappingProxyType({"http": 9000})
    requires = ("redis",)
    per_worker = True
    probe_description = "nothing"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.resets: list[tuple[int, str]] = []

    def container_spec(self, requirements: dict[str, ServiceEndpoint], worker: Worker) -> ContainerSpec:
        assert isinstance(self.config, DummySettings)
        env = {"GREETING": self.config.greeting, "REDIS": requirements["redis"].internal_url}
        return ContainerSpec(image=self.image(), ports=dict(self.ports), env=env)

    def endpoint(self, published: Published) -> ServiceEndpoint:
        return ServiceEndpoint(
            service=self.name, scheme="http", host=published.host, port=published.ports["http"],
            internal_host=published.alias, internal_port=9000, path="shared",
        )  # fmt: skip

    def probe(self, endpoint: ServiceEndpoint) -> None:
        return None

    def worker_view(self, endpoint: ServiceEndpoint, worker: Worker) -> ServiceEndpoint:
        return endpoint.with_path(f"space-{worker.worker_id}")

    def worker_reset(self, endpoint: ServiceEndpoint, worker: Worker) -> None:
        self.resets.append((endpoint.replica, worker.worker_id))

    def compose_healthcheck(self, endpoint: ServiceEndpoint, context: ComposeContext) -> list[str] | None:
        return ["CMD", "dummy-ping", str(endpoint.internal_port)]

    def compose_jobs(self, endpoint: ServiceEndpoint, image: str, context: ComposeContext) -> dict[str, Any]:
        return {"dummy-seed": {"image": image, "command": ["seed"], "restart": "no"}}
