"""The services envmgr runs, one folder each, and the one registry that maps a name to its class.

Adding a service: a folder `services/<name>/` (its `Service` subclass, client helpers, fixtures), one line in
`SERVICES` below and its settings class in `envmgr.config`. Nothing else names it: `Environment`, `topology`,
`compose` and the fixtures ask the service through the hooks of `Service` (see `base.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType

from envmgr.config import Settings
from envmgr.errors import ConfigError
from envmgr.services.base import ComposeContext, ContainerSpec, DerivedImage, Published, Service
from envmgr.services.celery import CeleryService
from envmgr.services.localstack import LocalStackService
from envmgr.services.moto import MotoService
from envmgr.services.postgres import PostgresService
from envmgr.services.redis import RedisService
from envmgr.services.wiremock import WireMockService

__all__ = [
    "SERVICES",
    "ComposeContext",
    "ContainerSpec",
    "DerivedImage",
    "Published",
    "Service",
    "ServiceRegistry",
    "create_service",
]


class ServiceRegistry(Mapping[str, type[Service]]):
    """Service classes by name; immutable (`with_services` makes a larger one, e.g. in a test)."""

    def __init__(self, classes: Iterable[type[Service]]) -> None:
        self._classes: Mapping[str, type[Service]] = MappingProxyType({cls.name: cls for cls in classes})

    def __getitem__(self, name: str) -> type[Service]:
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def with_services(self, *classes: type[Service]) -> ServiceRegistry:
        return ServiceRegistry([*self._classes.values(), *classes])

    def create(self, name: str, settings: Settings) -> Service:
        """An instance of the named service for one environment; ConfigError for a name it does not know."""
        try:
            cls = self._classes[name]
        except KeyError:
            raise ConfigError(f"unknown service {name!r}", f"use one of: {', '.join(self._classes)}") from None
        return cls(settings)

    def fixture_modules(self) -> list[str]:
        """The modules of the services' pytest fixtures, for the plugin to register."""
        return list(dict.fromkeys(cls.fixtures for cls in self._classes.values() if cls.fixtures))


SERVICES = ServiceRegistry(
    [PostgresService, RedisService, LocalStackService, MotoService, WireMockService, CeleryService]
)


def create_service(name: str, settings: Settings) -> Service:
    return SERVICES.create(name, settings)
