"""The one registry of the services envmgr runs: name -> `Service` class.

Adding a service: its folder `services/<name>/` (settings, service, image, fixtures), one line in `SERVICES` below
and one typed field in `envmgr.config.Settings`. Nothing else names it: `Environment`, `topology`, `compose`, the
seed-layout check, the docs and the fixtures ask the service through the hooks of `Service` (`base.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType

from envmgr.config import Settings
from envmgr.endpoints import Endpoints, Worker
from envmgr.errors import ConfigError
from envmgr.services.base import Service
from envmgr.services.celery.service import CeleryService
from envmgr.services.localstack.service import LocalStackService
from envmgr.services.moto.service import MotoService
from envmgr.services.postgres.service import PostgresService
from envmgr.services.redis.service import RedisService
from envmgr.services.wiremock.service import WireMockService

__all__ = ["SERVICES", "ServiceRegistry", "create_service"]


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

    def worker_views(self, endpoints: Endpoints, worker: Worker, settings: Settings) -> Endpoints:
        """`worker`'s view of the environment: its replica of each per-worker service under the service's name, each
        as that worker uses it (`Service.worker_view`: its database, its Redis db, its account)."""
        own = endpoints.for_worker(worker)
        viewed = {
            name: self.create(name, settings).worker_view(endpoint, worker) if name in self else endpoint
            for name, endpoint in own.services.items()
        }
        return own.model_copy(update={"services": viewed})

    def fixture_modules(self) -> list[str]:
        """The modules of the services' pytest fixtures, for the plugin to register."""
        return list(dict.fromkeys(cls.fixtures for cls in self._classes.values() if cls.fixtures))


SERVICES = ServiceRegistry(
    [PostgresService, RedisService, LocalStackService, MotoService, WireMockService, CeleryService]
)


def create_service(name: str, settings: Settings) -> Service:
    return SERVICES.create(name, settings)
