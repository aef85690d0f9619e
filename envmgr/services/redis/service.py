"""Redis: a password-protected server without persistence, probed with PING."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING

from envmgr.endpoints import REDIS_DATABASES, ServiceEndpoint, Worker
from envmgr.services.base import ComposeContext, ContainerSpec, Published, Service

if TYPE_CHECKING:
    import redis

__all__ = ["RedisService"]

PORT = 6379
# One logical database per pytest-xdist worker for the application and one for its Celery broker (see Worker).
DATABASES = REDIS_DATABASES


class RedisService(Service):
    name = "redis"
    official_image = "redis:7.0.15-bookworm"
    local_image = "envmgr-local/redis:7"
    build_context = "redis"
    ports = MappingProxyType({"redis": PORT})
    probe_description = "PING"
    fixtures = "envmgr.services.redis.fixtures"

    def container_spec(self, requirements: dict[str, ServiceEndpoint], worker: Worker) -> ContainerSpec:
        command = [
            "redis-server",
            "--requirepass", self.password,
            "--save", "",
            "--appendonly", "no",
            "--databases", str(DATABASES),
        ]  # fmt: skip
        return ContainerSpec(image=self.image(), ports=dict(self.ports), env=dict(self.config.env), command=command)

    def endpoint(self, published: Published) -> ServiceEndpoint:
        endpoint = ServiceEndpoint(
            service=self.name,
            scheme="redis",
            host=published.host,
            port=published.ports["redis"],
            internal_host=published.alias,
            internal_port=PORT,
            username="",
            password=self.password,
            path="0",
            image=published.image,
            container=published.container,
        )
        return endpoint.model_copy(update={"variables": {"REDIS_URL": endpoint.url}})

    def reset(self, endpoint: ServiceEndpoint) -> None:
        """Every logical database emptied (the session's and each worker's)."""
        with _client(endpoint.url, timeout=5) as client:
            client.flushall()

    def probe(self, endpoint: ServiceEndpoint) -> None:
        with _client(endpoint.url, timeout=2) as client:
            if not client.ping():
                raise ConnectionError("PING did not answer PONG")

    # per worker: its own logical database ----------------------------------------------------------------------

    def worker_view(self, endpoint: ServiceEndpoint, worker: Worker) -> ServiceEndpoint:
        return endpoint.with_path(str(worker.redis_db))

    def worker_reset(self, endpoint: ServiceEndpoint, worker: Worker) -> None:
        """The worker's logical database emptied (FLUSHDB)."""
        with _client(self.worker_view(endpoint, worker).url, timeout=5) as client:
            client.flushdb()

    # compose ---------------------------------------------------------------------------------------------------

    def compose_healthcheck(self, endpoint: ServiceEndpoint, context: ComposeContext) -> list[str] | None:
        password = shlex.quote(endpoint.password or "")
        return ["CMD-SHELL", context.text(f"redis-cli -p {endpoint.internal_port} -a {password} --no-auth-warning "
                                          "ping | grep -q PONG")]  # fmt: skip


@contextmanager
def _client(url: str, timeout: float) -> Iterator[redis.Redis]:
    """A short-lived client on one URL, closed at the end of the block."""
    import redis

    client: redis.Redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        yield client
    finally:
        client.close()
