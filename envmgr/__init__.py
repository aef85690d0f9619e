"""envmgr: ephemeral, isolated test environments (PostgreSQL, Redis, Celery, LocalStack, WireMock) on Docker.

The public API is what `__all__` lists; every other module is private. Errors: see `envmgr.errors`.
Names are imported on first use (PEP 562), so that the processes that need little (the reaper's watchdog, the
daemon's client in the pytest plugin) do not pay for what they do not use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envmgr.config import Settings, load_settings
    from envmgr.endpoints import Endpoints, ServiceEndpoint, Worker
    from envmgr.environment import Environment, Health
    from envmgr.errors import (
        ConfigError,
        DaemonError,
        DaemonNotRunningError,
        DaemonUntrustedError,
        DockerUnavailableError,
        EnvironmentNotFoundError,
        EnvmgrError,
        ImageError,
        MigrationError,
        ReadinessTimeoutError,
        SeedError,
        ServerSettingError,
        ServiceNotEnabledError,
        ServiceStartError,
        SnapshotError,
    )
    from envmgr.faults import Faults

__all__ = [
    "ConfigError",
    "DaemonError",
    "DaemonNotRunningError",
    "DaemonUntrustedError",
    "DockerUnavailableError",
    "Endpoints",
    "Environment",
    "EnvironmentNotFoundError",
    "EnvmgrError",
    "Faults",
    "Health",
    "ImageError",
    "MigrationError",
    "ReadinessTimeoutError",
    "SeedError",
    "ServerSettingError",
    "ServiceEndpoint",
    "ServiceNotEnabledError",
    "ServiceStartError",
    "Settings",
    "SnapshotError",
    "Worker",
    "load_settings",
]

__version__ = "0.1.0"

_HOMES = {
    "Settings": "envmgr.config",
    "load_settings": "envmgr.config",
    "Endpoints": "envmgr.endpoints",
    "ServiceEndpoint": "envmgr.endpoints",
    "Worker": "envmgr.endpoints",
    "Environment": "envmgr.environment",
    "Faults": "envmgr.faults",
    "Health": "envmgr.environment",
}


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(_HOMES.get(name, "envmgr.errors")), name)
    raise AttributeError(f"module 'envmgr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
