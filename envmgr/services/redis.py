"""Redis: a password-protected server without persistence, probed with PING."""

from __future__ import annotations

from types import MappingProxyType

import redis

from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.services.base import ContainerSpec, Published, Service

__all__ = ["RedisService"]

PORT = 6379
# One logical database per pytest-xdist worker (db 0 is the session's): 1023 workers before any sharing.
DATABASES = 1024


class RedisService(Service):
    name = "redis"
    official_image = "redis:7.0.15-bookworm"
    local_image = "envmgr-local/redis:7"
    build_context = "redis"
    ports = MappingProxyType({"redis": PORT})
    probe_description = "PING"

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
        client = redis.Redis.from_url(endpoint.url, socket_timeout=5)
        try:
            client.flushall()
        finally:
            client.close()

    def probe(self, endpoint: ServiceEndpoint) -> None:
        client = redis.Redis.from_url(endpoint.url, socket_timeout=2, socket_connect_timeout=2)
        try:
            if not client.ping():
                raise ConnectionError("PING did not answer PONG")
        finally:
            client.close()
