"""The variables a pytest process puts in os.environ, and takes back at the end of the run: the connection variables
of each service as this worker uses it (`worker_variables`), and what the controller hands its xdist workers (its plan,
its isolation, its pid)."""

from __future__ import annotations

import os

import pytest

from envmgr.config import Settings
from envmgr.endpoints import Endpoints, Worker
from envmgr.exports import exported_variables
from envmgr.process_state import RUN_CONTROLLER_VARIABLE
from envmgr.services.registry import ServiceRegistry

__all__ = [
    "CONTROLLER_VARIABLE",
    "ISOLATION_VARIABLE",
    "PLAN_VARIABLE",
    "export",
    "exported_names",
    "restore",
    "unset",
    "worker_variables",
]

PLAN_VARIABLE = "ENVMGR_RUN_PLAN"
"""the controller's plan (Endpoints JSON), for its xdist workers to export their view before their conftests load"""
ISOLATION_VARIABLE = "ENVMGR_RUN_ISOLATION"
CONTROLLER_VARIABLE = RUN_CONTROLLER_VARIABLE
"""the controller's pid: a process is its xdist worker when its parent is that pid (a pytest run inside a test of
another run inherits PYTEST_XDIST_WORKER from it, and is no worker of anybody's)"""
SAVED_KEY = pytest.StashKey[dict[str, str | None]]()


def worker_variables(
    endpoints: Endpoints, worker: Worker, settings: Settings, registry: ServiceRegistry
) -> dict[str, str]:
    """What `worker`'s process exports: each service as that worker uses it (its database, its Redis db, its
    account, its replica: `ServiceRegistry.worker_views`), named by the services and by the export table."""
    return exported_variables(registry.worker_views(endpoints, worker, settings), settings.export_table())


def exported_names(config: pytest.Config) -> list[str]:
    """The variables this process's envmgr set in os.environ (restored at the end of the run)."""
    saved: dict[str, str | None] = config.stash.get(SAVED_KEY, {})
    return sorted(saved)


def unset(config: pytest.Config, name: str) -> None:
    config.stash.setdefault(SAVED_KEY, {}).setdefault(name, os.environ.get(name))
    os.environ.pop(name, None)


def export(config: pytest.Config, variables: dict[str, str]) -> None:
    """Set the variables in os.environ; what they replaced comes back at the end of the run."""
    saved = config.stash.setdefault(SAVED_KEY, {})
    for name, value in variables.items():
        saved.setdefault(name, os.environ.get(name))
        os.environ[name] = value


def restore(config: pytest.Config) -> None:
    """The variables as they were before the run."""
    saved: dict[str, str | None] = config.stash.get(SAVED_KEY, {})
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
