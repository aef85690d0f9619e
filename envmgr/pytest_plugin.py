"""The pytest plugin (entry point `pytest11: envmgr`): options and the environment's lifecycle; fixtures are in
`envmgr.fixtures`.

One environment per run, owned by the controller: the xdist controller (or the only process) starts it and tears it
down after the last worker has finished; workers receive its `Endpoints` through `workerinput` and never start
containers. Without xdist it starts on first use; under xdist the controller starts it before the workers, when the
project has a `[tool.envmgr]` table or an `--envmgr-*` option is given. A crashed run is cleaned by the reaper.
"""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from envmgr.client import DaemonClient, Lease, lease_if_running
from envmgr.config import Settings, find_pyproject, load_settings
from envmgr.endpoints import Endpoints
from envmgr.timings import Timings

if TYPE_CHECKING:
    from envmgr.environment import Environment
from envmgr.errors import DaemonNotRunningError, EnvironmentNotFoundError, EnvmgrError
from envmgr.report import Resets, build_report, merge_resets, report_line, resets_of, write_container_logs, write_report

__all__ = ["run_of"]

pytest_plugins = ["envmgr.fixtures"]  # every fixture lives there

WORKERINPUT_ENDPOINTS = "envmgr_endpoints"
WORKERINPUT_ISOLATION = "envmgr_isolation"
WORKEROUTPUT_RESETS = "envmgr_resets"
DEFAULT_LOGS_DIR = "envmgr-logs"


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
    lease: Lease | None = None
    """the environment leased from the daemon, when one answered"""
    keep_on_failure: bool = False
    """--envmgr-keep-on-failure: a failed run leaves its environment running for a post-mortem"""
    logs_dir: Path | None = None
    """where the containers' logs go when the run fails (None: nowhere)"""
    report_path: Path | None = None
    """--envmgr-report: where the JSON report goes"""
    exitstatus: int | None = None
    start_seconds: float = 0.0
    """wall time of starting (or attaching to) the environment"""
    resets: Timings = field(default_factory=Timings)
    """resets made in this process by fixtures (and by envmgr_env.reset() in an xdist worker)"""
    worker_resets: list[Resets] = field(default_factory=list)
    """the resets of each xdist worker, received on the controller through workeroutput"""
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
            return self._timed_start()
        except EnvmgrError as exc:
            raise pytest.UsageError(f"envmgr: {exc}") from None

    def start(self) -> Endpoints:
        """Start (or attach to) the run's environment; EnvmgrError when it cannot."""
        if self._endpoints is not None:
            return self._endpoints
        if self.attach_id is not None:
            from envmgr.environment import Environment  # imported on use: a leased run never needs it

            environment = Environment.attach(self.attach_id, settings=self.settings)
            self._endpoints = environment.prepare()
        elif (lease := self._lease_from_daemon()) is not None:
            self.lease = lease
            self._endpoints = lease.endpoints
            return self._endpoints
        else:
            # Kept on failure: labelled detached from the start (never swept as an orphan afterwards), yet guarded
            # by its watchdog until the run ends, so that a killed run still leaves nothing.
            from envmgr.environment import Environment

            environment = Environment(
                settings=self.settings,
                detach=self.keep or self.keep_on_failure,
                guard_detached=self.keep_on_failure and not self.keep,
                workers=self.workers,
            )
            self._endpoints = environment.start()
        self.environment = environment
        return self._endpoints

    def _lease_from_daemon(self) -> Lease | None:
        """A warm environment from the daemon (setting `daemon`: auto uses one when it answers, on requires it)."""
        if self.keep or self.keep_on_failure:  # a leased environment goes back to the daemon: it cannot be kept
            return None
        return lease_if_running(self.settings, None, self.workers)

    def summary(self) -> str | None:
        """One line about the environment for the terminal summary."""
        if self.lease is not None:
            state = "warm" if self.lease.warm else "started for this run"
            return f"envmgr: environment {self.lease.id} leased from the daemon ({state})"
        report = self.report()
        return report_line(report) if report is not None and self.environment is not None else None

    def _timed_start(self) -> Endpoints:
        if self._endpoints is not None:
            return self._endpoints
        started = time.perf_counter()
        try:
            return self.start()
        finally:
            self.start_seconds = time.perf_counter() - started

    def report(self) -> dict[str, Any] | None:
        """What the environment cost this run (see envmgr.report), resets of every worker included."""
        if self._endpoints is None:
            return None
        records = [resets_of(self.resets.phases, self.resets.counts), *self.worker_resets]
        phases: dict[str, dict[str, float]] = {}
        if self.environment is not None:
            timings = self.environment.timings
            phases = timings.phases
            records.append(resets_of(timings.phases, timings.counts))
        return build_report(self._endpoints, phases, merge_resets(records), self.start_seconds)

    @property
    def failed(self) -> bool:
        return self.exitstatus is not None and self.exitstatus != 0

    def _save_logs(self, config: pytest.Config) -> None:
        """After a failed run: every container's log in logs_dir (for CI artifacts), before anything is removed."""
        if not self.failed or self.logs_dir is None or self._endpoints is None:
            return
        try:
            from envmgr.engine import Engine

            engine = self.environment.engine if self.environment is not None else Engine.connect()
            written = write_container_logs(engine, self._endpoints, self.logs_dir)
        except (OSError, EnvmgrError) as exc:  # never in the way of the teardown that follows
            _say(config, f"envmgr: could not write the containers' logs to {self.logs_dir}: {exc}")
            return
        _say(config, f"envmgr: logs of {len(written)} container(s) written to {self.logs_dir}")

    def _keep_for_post_mortem(self, config: pytest.Config) -> bool:
        """--envmgr-keep-on-failure after a failed run: hand the environment over (no watchdog, labelled detached:
        nothing reaps it) and say how to reach it and remove it. False when there is nothing to keep."""
        environment = self.environment
        if not (self.keep_on_failure and self.failed) or environment is None or self.keep or self.attach_id:
            return False
        environment.hand_over()
        endpoints = environment.endpoints
        _say(config, f"envmgr: the run failed; environment {environment.id} is kept for a post-mortem:")
        width = max(len(key) for key in endpoints.services)
        for key, endpoint in endpoints.services.items():
            _say(config, f"envmgr:   {key:{width}}  {endpoint.redacted_url}")
        _say(
            config,
            f"envmgr: full URLs with credentials: envmgr status --json; remove it with: envmgr down {environment.id}",
        )
        return True

    def finish(self, config: pytest.Config) -> None:
        self._save_logs(config)
        if self.lease is not None:
            try:
                DaemonClient().release(self.lease.id)  # the daemon resets it and keeps it warm
            except (DaemonNotRunningError, EnvironmentNotFoundError) as exc:  # stopped (--force): env gone too
                _say(config, f"envmgr: lease {self.lease.id} not handed back: {exc.cause}")
            return
        if self.environment is None:
            return
        if self._keep_for_post_mortem(config):
            return
        if self.keep or self.attach_id is not None:
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                env_id = self.environment.id
                reporter.write_line(f"envmgr: environment {env_id} kept; remove it with: envmgr down {env_id}")
            return
        if self.environment.guard_detached:
            self.environment.remove()  # kept only on failure, and the run passed
        else:
            self.environment.close()


def _say(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)


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
    group.addoption(
        "--envmgr-keep-on-failure",
        action="store_true",
        help="when the run fails, leave the environment running, print how to reach and remove it, and write the "
        f"containers' logs (to --envmgr-logs-dir, default {DEFAULT_LOGS_DIR}/ in the rootdir)",
    )
    group.addoption(
        "--envmgr-logs-dir",
        default=None,
        metavar="PATH",
        help="when the run fails, write each container's log here (<service>[-replica].log), e.g. for CI artifacts",
    )
    group.addoption(
        "--envmgr-report",
        default=None,
        metavar="PATH",
        help="write what the environment cost per service (create, ready, migrate, seed, resets) as JSON",
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
    if workerinput is None:
        _reporting_options(config, run)
    config.stash[RUN_KEY] = run


def _reporting_options(config: pytest.Config, run: _PluginRun) -> None:
    """--envmgr-keep-on-failure, --envmgr-logs-dir, --envmgr-report (paths relative to where pytest was run)."""
    here = config.invocation_params.dir
    run.keep_on_failure = bool(config.getoption("envmgr_keep_on_failure"))
    logs_dir = config.getoption("envmgr_logs_dir")
    if logs_dir is not None:
        run.logs_dir = here / logs_dir
    elif run.keep_on_failure:
        run.logs_dir = config.rootpath / DEFAULT_LOGS_DIR
    report = config.getoption("envmgr_report")
    run.report_path = here / report if report is not None else None


def _start_or_exit(run: _PluginRun) -> Endpoints:
    """Start the environment before any test runs; a failure ends the run with the cause and the fix."""
    try:
        return run._timed_start()
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


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist, on the controller: a worker has finished (or crashed); keep the resets it made."""
    run = node.config.stash.get(RUN_KEY, None)
    output = getattr(node, "workeroutput", None) or {}
    if run is not None and output.get(WORKEROUTPUT_RESETS):
        run.worker_resets.append(output[WORKEROUTPUT_RESETS])


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A worker sends its resets to the controller; the controller notes the outcome and writes the report."""
    config = session.config
    run = config.stash.get(RUN_KEY, None)
    if run is None:
        return
    workeroutput: dict[str, Any] | None = getattr(config, "workeroutput", None)
    if run.is_worker:
        if workeroutput is not None:
            workeroutput[WORKEROUTPUT_RESETS] = resets_of(run.resets.phases, run.resets.counts)
        return
    run.exitstatus = int(exitstatus)
    report = run.report()
    if run.report_path is not None and report is not None:
        try:
            write_report(run.report_path, report)
        except OSError as exc:
            _say(config, f"envmgr: could not write the report to {run.report_path}: {exc}")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = config.stash.get(RUN_KEY, None)
    line = run.summary() if run is not None and not run.is_worker else None
    if line:
        terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(RUN_KEY, None)
    if run is not None and not run.is_worker:
        run.finish(config)
