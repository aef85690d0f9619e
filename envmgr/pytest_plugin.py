"""The pytest plugin (entry point `pytest11: envmgr`): options and the environment's lifecycle; fixtures are in
`envmgr.fixtures`.

One environment per run, owned by the controller: the xdist controller (or the only process) starts it and tears it
down after the last worker has finished; workers receive its `Endpoints` through `workerinput` and never start
containers. Without xdist it starts on first use; under xdist the controller starts it before the workers, when the
project has a `[tool.envmgr]` table or an `--envmgr-*` option is given. A crashed run is cleaned by the reaper.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from typing import Any

import pytest

from envmgr.config import Settings, find_pyproject, load_settings
from envmgr.endpoints import Endpoints
from envmgr.environment import Environment
from envmgr.errors import EnvmgrError

__all__ = ["run_of"]

pytest_plugins = ["envmgr.fixtures"]  # every fixture lives there

WORKERINPUT_ENDPOINTS = "envmgr_endpoints"
WORKERINPUT_ISOLATION = "envmgr_isolation"


@dataclass
class _PluginRun:
    """What the plugin knows about this pytest process; kept in config.stash, never in module state."""

    settings: Settings
    worker_id: str
    isolation: str
    opted_in: bool
    keep: bool
    attach_id: str | None = None
    workers: int = 0
    """replicas of per-worker services: the number of xdist workers in worker isolation, else 0"""
    environment: Environment | None = None
    _endpoints: Endpoints | None = field(default=None, repr=False)

    @property
    def is_worker(self) -> bool:
        return self.worker_id != "main"

    def endpoints(self) -> Endpoints:
        if self._endpoints is not None:
            return self._endpoints
        if self.is_worker:
            raise pytest.UsageError(
                "envmgr: this xdist worker received no environment from the controller; add a [tool.envmgr] table "
                "to pyproject.toml (or pass an --envmgr-* option) so that the controller starts one"
            )
        try:
            return self.start()
        except EnvmgrError as exc:
            raise pytest.UsageError(f"envmgr: {exc}") from None

    def start(self) -> Endpoints:
        """Start (or attach to) the run's environment; EnvmgrError when it cannot."""
        if self._endpoints is not None:
            return self._endpoints
        if self.attach_id is not None:
            environment = Environment.attach(self.attach_id, settings=self.settings)
            self._endpoints = environment.prepare()
        else:
            environment = Environment(settings=self.settings, detach=self.keep, workers=self.workers)
            self._endpoints = environment.start()
        self.environment = environment
        return self._endpoints

    def summary(self) -> str | None:
        """One line about the environment for the terminal summary."""
        if self._endpoints is None or self.environment is None:
            return None
        parts = [f"envmgr: environment {self._endpoints.id}"]
        if "postgres" in self._endpoints:
            extra = self._endpoints["postgres"].extra
            if extra.get("template_created") == "true":
                parts.append(
                    f"template {extra['template']} built (migrate {extra['migrate_seconds']} s, "
                    f"seed {extra['seed_seconds']} s)"
                )
            elif "template" in extra:
                parts.append(f"template {extra['template']} reused (migrations and seeds skipped)")
        phases = self.environment.timings.phases
        if phases:
            parts.append(
                "; ".join(
                    f"{name} " + " ".join(f"{phase} {seconds * 1000:.0f} ms" for phase, seconds in timing.items())
                    for name, timing in phases.items()
                )
            )
        return " | ".join(parts)

    def finish(self, config: pytest.Config) -> None:
        if self.environment is None:
            return
        if self.keep or self.attach_id is not None:
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                env_id = self.environment.id
                reporter.write_line(f"envmgr: environment {env_id} kept; remove it with: envmgr down {env_id}")
            return
        self.environment.close()


RUN_KEY = pytest.StashKey[_PluginRun]()


def run_of(config: pytest.Config) -> _PluginRun:
    try:
        return config.stash[RUN_KEY]
    except KeyError:
        raise pytest.UsageError("envmgr: the plugin is not configured in this process") from None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("envmgr", "envmgr: ephemeral test environments")
    group.addoption("--envmgr-config", default=None, help="pyproject.toml with the [tool.envmgr] table")
    group.addoption("--envmgr-image-set", choices=["official", "local"], default=None, help="image set")
    group.addoption(
        "--envmgr-isolation",
        choices=["auto", "session", "worker"],
        default=None,
        help="one database per xdist worker (worker) or one for the run (session); auto: worker under xdist",
    )
    group.addoption("--envmgr-keep", action="store_true", help="leave the environment running after the run")
    group.addoption(
        "--envmgr-env",
        default=None,
        metavar="ID",
        help="use this running environment (envmgr up --detach, or kept with --envmgr-keep) instead of starting one",
    )


def _overrides(config: pytest.Config) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if config.getoption("envmgr_image_set"):
        overrides["image_set"] = config.getoption("envmgr_image_set")
    if config.getoption("envmgr_isolation"):
        overrides["isolation"] = config.getoption("envmgr_isolation")
    return overrides


def _declared(pyproject: Any) -> bool:
    """True when the project's pyproject.toml has a [tool.envmgr] table."""
    if pyproject is None:
        return False
    try:
        with open(pyproject, "rb") as handle:
            return "envmgr" in tomllib.load(handle).get("tool", {})
    except (OSError, tomllib.TOMLDecodeError):
        return False


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    from envmgr.fixtures import FRESH_DB_MARKER  # registered through pytest_plugins by now

    config.addinivalue_line(
        "markers", f"{FRESH_DB_MARKER}: the test commits for real; its database is cloned anew from the template"
    )
    option = config.getoption("envmgr_config")
    pyproject = find_pyproject(config.rootpath) if option is None else config.rootpath / option
    overrides = _overrides(config)
    try:
        settings = load_settings(pyproject, **overrides)
    except EnvmgrError as exc:
        raise pytest.UsageError(f"envmgr: {exc}") from None
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None:
        run = _PluginRun(
            settings=settings,
            worker_id=str(workerinput.get("workerid", "gw0")),
            isolation=str(workerinput.get(WORKERINPUT_ISOLATION, "worker")),
            opted_in=True,
            keep=False,
        )
        if WORKERINPUT_ENDPOINTS in workerinput:
            run._endpoints = Endpoints.from_json(workerinput[WORKERINPUT_ENDPOINTS])
    else:
        attach_id = config.getoption("envmgr_env")
        distributed = bool(getattr(config.option, "numprocesses", None)) and config.getoption("dist", "no") != "no"
        isolation = settings.isolation if settings.isolation != "auto" else ("worker" if distributed else "session")
        workers = (int(config.option.numprocesses) if distributed else 1) if isolation == "worker" else 0
        run = _PluginRun(
            settings=settings,
            worker_id="main",
            isolation=isolation,
            opted_in=_declared(pyproject) or bool(overrides) or option is not None or attach_id is not None,
            keep=bool(config.getoption("envmgr_keep")),
            attach_id=attach_id,
            workers=workers,
        )
    config.stash[RUN_KEY] = run


def _start_or_exit(run: _PluginRun) -> Endpoints:
    """Start the environment before any test runs; a failure ends the run with the cause and the fix."""
    try:
        return run.start()
    except EnvmgrError as exc:
        pytest.exit(f"envmgr: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist, on the controller: start the environment once and hand its endpoints to each worker."""
    run = run_of(node.config)
    node.workerinput[WORKERINPUT_ISOLATION] = run.isolation
    if run.opted_in:
        node.workerinput[WORKERINPUT_ENDPOINTS] = _start_or_exit(run).to_json()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Without xdist: start the environment after collection, and only if a collected test uses envmgr."""
    run = session.config.stash.get(RUN_KEY, None)
    if run is None or run.is_worker or session.config.option.collectonly:
        return
    if any("envmgr_endpoints" in getattr(item, "fixturenames", ()) for item in session.items):
        _start_or_exit(run)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = config.stash.get(RUN_KEY, None)
    line = run.summary() if run is not None and not run.is_worker else None
    if line:
        terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(RUN_KEY, None)
    if run is not None and not run.is_worker:
        run.finish(config)
