"""envmgr: ephemeral, isolated test environments (PostgreSQL, Redis, Celery, LocalStack, WireMock) on Docker.

The public API is what `__all__` lists; every other module is private. Errors: see `envmgr.errors`.
"""

from envmgr.config import Settings, load_settings
from envmgr.endpoints import Endpoints, ServiceEndpoint
from envmgr.environment import Environment, Health
from envmgr.errors import (
    ConfigError,
    DockerUnavailableError,
    EnvironmentNotFoundError,
    EnvmgrError,
    ImageError,
    MigrationError,
    ReadinessTimeoutError,
    SeedError,
    ServiceNotEnabledError,
    ServiceStartError,
)

__all__ = [
    "ConfigError",
    "DockerUnavailableError",
    "Endpoints",
    "Environment",
    "EnvironmentNotFoundError",
    "EnvmgrError",
    "Health",
    "ImageError",
    "MigrationError",
    "ReadinessTimeoutError",
    "SeedError",
    "ServiceEndpoint",
    "ServiceNotEnabledError",
    "ServiceStartError",
    "Settings",
    "load_settings",
]

__version__ = "0.1.0"
