"""What the plugin reads before anything runs: the settings, the run's options, and the connection variables it
puts in os.environ (and takes back at the end)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from envmgr.config import Settings, find_pyproject, load_settings
from envmgr.endpoints import Endpoints, Worker
from envmgr.errors import EnvmgrError
from envmgr.exports import exported_variables
from envmgr.pytest_run import RunState
from envmgr.pytest_source import SourceOptions
from envmgr.services.registry import ServiceRegistry

__all__ = [
    "CONTROLLER_VARIABLE",
    "DEFAULT_LOGS_DIR",
    "ISOLATION_VARIABLE",
    "PLAN_VARIABLE",
    "export",
    "exported_names",
    "restore",
    "run_state",
    "settings_of",
    "unset",
    "worker_variables",
]

DEFAULT_LOGS_DIR = "envmgr-logs"
PLAN_VARIABLE = "ENVMGR_RUN_PLAN"
"""the controller's plan (Endpoints JSON), for its xdist workers to export their view before their conftests load"""
ISOLATION_VARIABLE = "ENVMGR_RUN_ISOLATION"
CONTROLLER_VARIABLE = "ENVMGR_RUN_CONTROLLER"
"""the controller's pid: a process is its xdist worker when its parent is that pid (a pytest run inside a test of
another run inherits PYTEST_XDIST_WORKER from it, and is no worker of anybody's)"""
SAVED_KEY = pytest.StashKey[dict[str, str | None]]()
SETTINGS_KEY = pytest.StashKey[Settings]()


def settings_of(config: pytest.Config, options: Any) -> Settings:
    """The run's settings (read once per process)."""
    if SETTINGS_KEY in config.stash:
        return config.stash[SETTINGS_KEY]
    config.stash[SETTINGS_KEY] = _read_settings(config, options)
    return config.stash[SETTINGS_KEY]


def _read_settings(config: pytest.Config, options: Any) -> Settings:
    option = getattr(options, "envmgr_config", None)
    pyproject = find_pyproject(config.rootpath) if option is None else config.rootpath / option
    try:
        return load_settings(pyproject, **_overrides(options))
    except EnvmgrError as exc:
        raise pytest.UsageError(f"envmgr: {exc}") from None


def run_state(config: pytest.Config, options: Any) -> RunState:
    """The controller's (or the only process's) run, from the settings and the command line's options."""
    settings = settings_of(config, options)
    numprocesses = getattr(options, "numprocesses", None)
    distributed = bool(numprocesses)  # xdist turns dist "no" into "load" when -n is given (after this point)
    isolation = settings.isolation if settings.isolation != "auto" else ("worker" if distributed else "session")
    workers = (numprocesses if isinstance(numprocesses, int) else os.cpu_count() or 1) if distributed else 1
    here = config.invocation_params.dir
    keep_on_failure = bool(getattr(options, "envmgr_keep_on_failure", False))
    logs_dir = getattr(options, "envmgr_logs_dir", None)
    report = getattr(options, "envmgr_report", None)
    return RunState(
        settings=settings,
        worker_id="main",
        isolation=isolation,
        options=SourceOptions(
            keep=bool(getattr(options, "envmgr_keep", False)),
            keep_on_failure=keep_on_failure,
            attach_id=getattr(options, "envmgr_env", None),
        ),
        workers=workers if isolation == "worker" else 0,
        logs_dir=here / logs_dir if logs_dir else (config.rootpath / DEFAULT_LOGS_DIR if keep_on_failure else None),
        report_path=here / report if report is not None else None,
    )


def worker_variables(
    endpoints: Endpoints, worker: Worker, settings: Settings, registry: ServiceRegistry
) -> dict[str, str]:
    """What `worker`'s process exports: each service as that worker uses it (its database, its Redis db, its
    account, its replica: `ServiceRegistry.worker_views`), named by the services and by the export table."""
    return exported_variables(registry.worker_views(endpoints, worker, settings), settings.export)


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


def _overrides(options: Any) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if getattr(options, "envmgr_image_set", None):
        overrides["image_set"] = options.envmgr_image_set
    if getattr(options, "envmgr_isolation", None):
        overrides["isolation"] = options.envmgr_isolation
    return overrides


def restore(config: pytest.Config) -> None:
    """The variables as they were before the run."""
    saved: dict[str, str | None] = config.stash.get(SAVED_KEY, {})
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
