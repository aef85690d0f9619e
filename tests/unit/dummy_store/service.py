"""The store: one server for the environment, probed with nothing (no container runs in the unit tests)."""

from __future__ import annotations

from types import MappingProxyType

from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.services.base import ContainerSpec, Published, Service, ServiceDocs


class StoreService(Service):
    name = "store"
    official_image = "example/store:2"
    local_image = "envmgr-local/store:2"
    build_name = "store"
    ports = MappingProxyType({"s3": 9000})
    probe_description = "GET /health"
    docs = ServiceDocs(
        ready="`GET /health`",
        seeds="`seeds/store/<bucket>/<key>`",
        isolation="a bucket prefix per worker",
        reset="the worker's buckets emptied",
    )

    def container_spec(self, requirements: dict[str, ServiceEndpoint], worker: Worker) -> ContainerSpec:
        return ContainerSpec(image=self.image(), ports=dict(self.ports), env=dict(self.config.env))

    def endpoint(self, published: Published) -> ServiceEndpoint:
        return self.published_endpoint(published, "http")

    def probe(self, endpoint: ServiceEndpoint) -> None:
        return None
