"""What the plugin reads before anything runs: the settings (once per process) and the run's options, the
environment it attaches to among them (`--envmgr-env`, or the ENVMGR_ENV_ID of a shell that sourced `envmgr up
--env-file` output, when the run can use it)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from envmgr.config import Settings, find_pyproject, load_settings
from envmgr.errors import EnvmgrError
from envmgr.pytest.run import RunState
from envmgr.pytest.source import ENV_ID_VARIABLE, SourceOptions, attach_problem, sourced_env_id

__all__ = ["DEFAULT_LOGS_DIR", "run_state", "settings_of"]

DEFAULT_LOGS_DIR = "envmgr-logs"
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
    workers = workers if isolation == "worker" else 0
    attach_id, notices = _attach_id(getattr(options, "envmgr_env", None), settings, workers)
    return RunState(
        settings=settings,
        worker_id="main",
        isolation=isolation,
        options=SourceOptions(
            keep=bool(getattr(options, "envmgr_keep", False)),
            keep_on_failure=keep_on_failure,
            attach_id=attach_id,
        ),
        workers=workers,
        logs_dir=here / logs_dir if logs_dir else (config.rootpath / DEFAULT_LOGS_DIR if keep_on_failure else None),
        report_path=here / report if report is not None else None,
        notices=notices,
    )


def _attach_id(option: str | None, settings: Settings, workers: int) -> tuple[str | None, list[str]]:
    """The environment the run uses: `--envmgr-env ID`; else the one a shell that sourced `envmgr up --env-file`
    output names (ENVMGR_ENV_ID set by the user, not by an envmgr run), when the run can use it; else none (the run
    starts its own, or leases one). With the line to tell the user about ENVMGR_ENV_ID."""
    sourced = sourced_env_id(os.environ)
    if option is not None or sourced is None:
        return option, []
    problem = attach_problem(sourced, settings, workers)
    if problem is None:
        return sourced, [f"envmgr: this run uses environment {sourced}: {ENV_ID_VARIABLE}={sourced} (from the "
                         "environment, as --envmgr-env would)"]  # fmt: skip
    return None, [
        f"envmgr: {ENV_ID_VARIABLE}={sourced} (from the environment) is not used: {problem}; this run starts its own "
        f"(unset {ENV_ID_VARIABLE} to silence this)"
    ]


def _overrides(options: Any) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if getattr(options, "envmgr_image_set", None):
        overrides["image_set"] = options.envmgr_image_set
    if getattr(options, "envmgr_isolation", None):
        overrides["isolation"] = options.envmgr_isolation
    if getattr(options, "envmgr_daemon", None):
        overrides["daemon"] = options.envmgr_daemon
    return overrides
