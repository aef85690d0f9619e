"""One module a service; `SERVICES` maps each name to its class."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from envmgr.config import SERVICE_NAMES, Settings
from envmgr.errors import ConfigError
from envmgr.services.base import ContainerSpec, Published, Service
from envmgr.services.celery import CeleryService
from envmgr.services.localstack import LocalStackService
from envmgr.services.postgres import PostgresService
from envmgr.services.redis import RedisService
from envmgr.services.wiremock import WireMockService

__all__ = ["SERVICES", "ContainerSpec", "Published", "Service", "create_service"]

SERVICES: Mapping[str, type[Service]] = MappingProxyType(
    {
        PostgresService.name: PostgresService,
        RedisService.name: RedisService,
        LocalStackService.name: LocalStackService,
        WireMockService.name: WireMockService,
        CeleryService.name: CeleryService,
    }
)


def create_service(name: str, settings: Settings) -> Service:
    try:
        cls = SERVICES[name]
    except KeyError:
        if name in SERVICE_NAMES:
            raise ConfigError(
                f"service {name!r} is not available in this version of envmgr",
                f"use one of: {', '.join(SERVICES)}",
            ) from None
        raise ConfigError(f"unknown service {name!r}", f"use one of: {', '.join(SERVICES)}") from None
    return cls(settings)
