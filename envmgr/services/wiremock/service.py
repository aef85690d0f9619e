"""WireMock: stubs of external HTTP APIs, one instance per xdist worker.

Isolation: WireMock has one stub set and one request journal per server, so in worker isolation every xdist worker
gets its own replica (a per-worker service): one worker's stubs and journal are invisible to another by
construction. Seeds (seeds/wiremock/mappings and __files) are copied into each container at creation, so
`POST /__admin/reset` (a few ms, `admin.py`) restores exactly the seeded stubs with an empty journal.
"""

from __future__ import annotations

from types import MappingProxyType

from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.seeds import wiremock_seed_dirs
from envmgr.services.base import ContainerSpec, Published, Service
from envmgr.services.wiremock.admin import WireMockAdmin

__all__ = ["WireMockService"]

PORT = 8080
HOME = "/home/wiremock"


class WireMockService(Service):
    name = "wiremock"
    official_image = "wiremock/wiremock:3.13.2"
    local_image = "envmgr-local/wiremock:3.13.2"
    build_context = "wiremock"
    ports = MappingProxyType({"http": PORT})
    per_worker = True
    probe_description = "GET /__admin/health"
    fixtures = "envmgr.services.wiremock.fixtures"
    compose_image_healthcheck = True  # curl or bash /dev/tcp, in the official and the local image

    def container_spec(self, requirements: dict[str, ServiceEndpoint], worker: Worker) -> ContainerSpec:
        copies = {str(path): HOME for path in wiremock_seed_dirs(self.settings.seeds_path())}
        return ContainerSpec(image=self.image(), ports=dict(self.ports), env=dict(self.config.env), copies=copies)

    def endpoint(self, published: Published) -> ServiceEndpoint:
        base = self.published_endpoint(published, "http")
        return base.model_copy(
            update={
                "extra": {"admin_url": base.url + "/__admin"},
                "variables": {"WIREMOCK_ADMIN_URL": base.url + "/__admin"},
            }
        ).bind(WIREMOCK_URL="url", WIREMOCK_HOST="host", WIREMOCK_PORT="port")

    def probe(self, endpoint: ServiceEndpoint) -> None:
        import requests

        response = requests.get(endpoint.url + "/__admin/health", timeout=2)
        response.raise_for_status()

    def reset(self, endpoint: ServiceEndpoint) -> None:
        WireMockAdmin(endpoint.url).reset()

    def worker_reset(self, endpoint: ServiceEndpoint, worker: Worker) -> None:
        """The worker's own replica back to the seeded stubs, with an empty journal and no delay."""
        self.reset(endpoint)

    def compose_notes(self) -> list[str]:
        return [
            "wiremock: seeds/wiremock/{mappings,__files} are bind-mounted read-only (envmgr copies them); WireMock "
            "runs as uid 1000, so the files must be readable by others (as in a usual checkout)",
            "wiremock: no health check here: the image's own HEALTHCHECK applies (curl or bash /dev/tcp)",
        ]
