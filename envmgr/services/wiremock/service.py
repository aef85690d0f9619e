"""WireMock: stubs of external HTTP APIs, one instance per xdist worker.

Isolation: WireMock has one stub set and one request journal per server, so in worker isolation every xdist worker
gets its own replica (a per-worker service): one worker's stubs and journal are invisible to another by
construction. Seeds (seeds/wiremock/mappings and __files) are copied into each container at creation, so
`POST /__admin/reset` (a few ms, `admin.py`) restores exactly the seeded stubs with an empty journal.

The admin API asks for a login (`wiremock.admin_auth`, on by default): WireMock runs with `--admin-api-basic-auth
envmgr:<the environment's password>` and every admin call of envmgr (probe, reset, the `wiremock` fixture, the compose
health check) logs in; the stubbed endpoints stay open. With `admin_auth = false` the admin API is open to anyone who
reaches the port (127.0.0.1: any local user).
"""

from __future__ import annotations

import base64
from types import MappingProxyType

from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.services.base import ComposeContext, ContainerSpec, Published, Service, ServiceDocs
from envmgr.services.given import GivenHold
from envmgr.services.wiremock.admin import WireMockAdmin, admin_auth
from envmgr.services.wiremock.settings import WireMockSettings

__all__ = ["WireMockService"]

PORT = 8080
HOME = "/home/wiremock"
ADMIN_USER = "envmgr"


class WireMockService(Service):
    name = "wiremock"
    official_image = "wiremock/wiremock:3.13.2"
    local_image = "envmgr-local/wiremock:3.13.2"
    build_name = "wiremock"
    ports = MappingProxyType({"http": PORT})
    per_worker = True
    probe_description = "GET /__admin/health"
    startup_deadline = 90.0
    docs = ServiceDocs(
        local_image="AppCDS: ready in ~1.2 s",
        ready="`GET /__admin/health`",
        seeds="`seeds/wiremock/mappings` and `__files` copied in",
        isolation="its own WireMock container (stubs and journal are per server)",
        reset="`POST /__admin/reset` (~5 ms) back to the seeded stubs, no delay",
    )
    fixtures = "envmgr.services.wiremock.fixtures"
    compose_image_healthcheck = True  # curl or bash /dev/tcp, in the official and the local image

    @property
    def wiremock(self) -> WireMockSettings:
        return self.settings.wiremock

    def container_spec(self, requirements: dict[str, ServiceEndpoint], worker: Worker) -> ContainerSpec:
        from envmgr.services.wiremock.seeds import wiremock_seed_dirs

        copies = {str(path): HOME for path in wiremock_seed_dirs(self.settings.seeds_path())}
        command = ["--admin-api-basic-auth", f"{ADMIN_USER}:{self.password}"] if self.wiremock.admin_auth else None
        return ContainerSpec(
            image=self.image(), ports=dict(self.ports), env=dict(self.config.env), copies=copies, command=command
        )

    def endpoint(self, published: Published) -> ServiceEndpoint:
        base = self.published_endpoint(published, "http")
        extra = {"admin_url": base.url + "/__admin"}
        variables = {"WIREMOCK_ADMIN_URL": base.url + "/__admin"}
        if self.wiremock.admin_auth:
            extra |= {"admin_username": ADMIN_USER, "admin_password": self.password}
            variables |= {"WIREMOCK_ADMIN_USER": ADMIN_USER, "WIREMOCK_ADMIN_PASSWORD": self.password}
        return base.model_copy(update={"extra": extra, "variables": variables}).bind(
            WIREMOCK_URL="url", WIREMOCK_HOST="host", WIREMOCK_PORT="port"
        )

    def probe(self, endpoint: ServiceEndpoint) -> None:
        import requests

        response = requests.get(endpoint.url + "/__admin/health", timeout=2, auth=admin_auth(endpoint))
        response.raise_for_status()

    def reset(self, endpoint: ServiceEndpoint) -> None:
        if endpoint.extra.get("given"):  # the server's own stubs, then the run's seeded ones (wiremock/given.py)
            from envmgr.services.wiremock.given import reset_given

            reset_given(endpoint, self.settings)
            return
        WireMockAdmin.of(endpoint).reset()

    def worker_reset(self, endpoint: ServiceEndpoint, worker: Worker) -> None:
        """The worker's own replica back to the seeded stubs, with an empty journal and no delay."""
        self.reset(endpoint)

    # named snapshots: the replica's stubs -------------------------------------------------------------------

    def snapshot(self, endpoint: ServiceEndpoint, worker: Worker, name: str) -> object:
        """The stubs of the worker's replica (its mappings, through the admin API), kept in this process."""
        return tuple(WireMockAdmin.of(endpoint).stubs())

    def restore(self, endpoint: ServiceEndpoint, worker: Worker, name: str, kept: object) -> None:
        """Exactly the kept stubs again, the request journal emptied, no delays."""
        assert isinstance(kept, tuple)
        if endpoint.extra.get("given"):  # never DELETE /mappings there: the server's own may be files
            admin = WireMockAdmin.of(endpoint)
            admin.reset()
            admin.import_stubs(list(kept))
            return
        WireMockAdmin.of(endpoint).replace_stubs(list(kept))

    # a server envmgr did not start: one run at -n 0 or 1 (envmgr.services.wiremock.given) --------------------

    def given_hold(self, url: str, env_id: str, workers: int) -> GivenHold:
        from envmgr.services.wiremock.given import hold

        return hold(url, env_id, workers, self.settings)

    def given_sweep(self, url: str) -> list[str]:
        from envmgr.services.wiremock.given import sweep

        return sweep(url)

    def compose_healthcheck(self, endpoint: ServiceEndpoint, context: ComposeContext) -> list[str] | None:
        """With `admin_auth` the image's own check (an anonymous GET /__admin/health) gets 401: this one logs in
        (bash and /dev/tcp, in the official and the local image). Without it: None, the image's own applies."""
        login = admin_auth(endpoint)
        if login is None:
            return None
        token = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
        request = rf"GET /__admin/health HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {token}\r\n"
        request += r"Connection: close\r\n\r\n"
        script = (
            f"exec 3<>/dev/tcp/127.0.0.1/{endpoint.internal_port} && printf '{request}' >&3 "
            '&& read -r status <&3 && case "$status" in *" 200"*) exit 0;; esac; exit 1'
        )
        return ["CMD", "bash", "-c", context.text(script)]

    def compose_notes(self) -> list[str]:
        return [
            "wiremock: seeds/wiremock/{mappings,__files} are bind-mounted read-only (envmgr copies them); WireMock "
            "runs as uid 1000, so the files must be readable by others (as in a usual checkout)",
            "wiremock: no health check here: the image's own HEALTHCHECK applies (curl or bash /dev/tcp)"
            if not self.wiremock.admin_auth
            else "wiremock: admin_auth: the admin API asks for user envmgr and the password in the command; the "
            "health check logs in",
        ]
