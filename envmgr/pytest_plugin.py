"""The pytest plugin (entry point `pytest11: envmgr`): hooks only. The run's state is `envmgr.pytest_run`, where its
environment comes from and how it ends is `envmgr.pytest_source`, the fixtures are `envmgr.fixtures` and each
service's `fixtures.py`.

One environment per run, owned by the controller: the xdist controller (or the only process) starts it and tears it
down after the last worker has finished; workers never start containers. Only the services the collected tests use
are started: right after collection (in the background, while the first tests that need none run), each once per
run; an xdist worker asks the controller for them through a socket of the run's own (`envmgr.pytest_controller`).
Before a test runs, the services it reaches are waited for; a service that cannot start stops the run with the cause
and the fix. A crashed run is cleaned by the reaper.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from envmgr.config import Settings, find_pyproject, load_settings
from envmgr.endpoints import Endpoints, Worker
from envmgr.errors import EnvmgrError
from envmgr.exports import worker_variables
from envmgr.pytest_run import RUN_KEY, RunState, run_of
from envmgr.pytest_source import OwnedSource, SourceOptions, may_lease
from envmgr.report import resets_of, write_container_logs, write_report

__all__ = ["exported_names", "run_of"]

WORKERINPUT_CONTROLLER = "envmgr_controller"
PLAN_VARIABLE = "ENVMGR_RUN_PLAN"
"""the controller's plan (Endpoints JSON), for its xdist workers to export their view before their conftests load"""
ISOLATION_VARIABLE = "ENVMGR_RUN_ISOLATION"
CONTROLLER_VARIABLE = "ENVMGR_RUN_CONTROLLER"
"""the controller's pid: a process is its xdist worker when its parent is that pid (a pytest run inside a test of
another run inherits PYTEST_XDIST_WORKER from it, and is no worker of anybody's)"""
SAVED_KEY = pytest.StashKey[dict[str, str | None]]()
SETTINGS_KEY = pytest.StashKey[Settings]()
WORKERINPUT_ISOLATION = "envmgr_isolation"
WORKEROUTPUT_RESETS = "envmgr_resets"
DEFAULT_LOGS_DIR = "envmgr-logs"


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


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Register the fixtures: envmgr's own, each service's (from the service registry) and the Flask ones."""
    from envmgr.services import SERVICES

    for module in ["envmgr.fixtures", *SERVICES.fixture_modules(), "envmgr.integrations.flask_fixtures"]:
        pluginmanager.import_plugin(module)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Before conftest files (and the app they import) load: the run's plan and this process's connection variables
    in os.environ (DATABASE_URL, REDIS_URL, ..., the export table), so that settings read at import see them.

    The controller plans the environment it will own (ports, names, credentials; nothing starts, no engine is
    needed) and hands the plan to the xdist workers through their environment; each worker exports its own view."""
    worker_id = os.environ.get("PYTEST_XDIST_WORKER")
    if worker_id is not None and os.environ.get(CONTROLLER_VARIABLE) == str(os.getppid()):  # our controller's worker
        plan = os.environ.get(PLAN_VARIABLE)
        if plan:
            settings = _settings(early_config, early_config.known_args_namespace)
            isolated = os.environ.get(ISOLATION_VARIABLE) == "worker"
            _export(early_config, worker_variables(Endpoints.from_json(plan), Worker(worker_id, isolated), settings))
        return
    run = _run_state(early_config, early_config.known_args_namespace)
    early_config.stash[RUN_KEY] = run
    _export(early_config, {ISOLATION_VARIABLE: run.isolation, CONTROLLER_VARIABLE: str(os.getpid())})
    if may_lease(run.settings, run.options) or run.options.attach_id is not None:
        _unset(early_config, PLAN_VARIABLE)
        return  # variables come with the leased or attached environment, before the first test that uses it
    source = OwnedSource(run.settings, run.workers, run.options)
    run.source = source
    try:
        planned = source.plan()
    except EnvmgrError as exc:
        raise pytest.UsageError(f"envmgr: {exc}") from None
    _export(early_config, {PLAN_VARIABLE: planned.to_json()})
    _export(early_config, worker_variables(planned, run.worker, run.settings))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None:
        config.stash[RUN_KEY] = RunState(
            settings=_settings(config, config.option),
            worker_id=str(workerinput.get("workerid", "gw0")),
            isolation=str(workerinput.get(WORKERINPUT_ISOLATION, "worker")),
            options=SourceOptions(),
            controller=workerinput.get(WORKERINPUT_CONTROLLER),
        )
        return
    if RUN_KEY not in config.stash:  # planned in pytest_load_initial_conftests (not when pytest runs in-process)
        config.stash[RUN_KEY] = _run_state(config, config.option)


def _settings(config: pytest.Config, options: Any) -> Settings:
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


def _run_state(config: pytest.Config, options: Any) -> RunState:
    """The controller's (or the only process's) run, from the settings and the command line's options."""
    settings = _settings(config, options)
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


def exported_names(config: pytest.Config) -> list[str]:
    """The variables this process's envmgr set in os.environ (restored at the end of the run)."""
    saved: dict[str, str | None] = config.stash.get(SAVED_KEY, {})
    return sorted(saved)


def _unset(config: pytest.Config, name: str) -> None:
    config.stash.setdefault(SAVED_KEY, {}).setdefault(name, os.environ.get(name))
    os.environ.pop(name, None)


def _export(config: pytest.Config, variables: dict[str, str]) -> None:
    """Set the variables in os.environ; what they replaced comes back at the end of the run."""
    saved = config.stash.setdefault(SAVED_KEY, {})
    for name, value in variables.items():
        saved.setdefault(name, os.environ.get(name))
        os.environ[name] = value


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist, on the controller: tell each worker its isolation and where to ask for services."""
    run = run_of(node.config)
    if run.channel is None:
        from envmgr.pytest_controller import ControllerServer

        run.channel = ControllerServer(
            lambda services, worker_id, why, wait: run.ensure(
                services, why, worker=run.worker_named(worker_id), wait=wait
            )
        )
    node.workerinput[WORKERINPUT_ISOLATION] = run.isolation
    node.workerinput[WORKERINPUT_CONTROLLER] = str(run.channel.path)


def pytest_collection_finish(session: pytest.Session) -> None:
    """After collection (in each xdist worker, or the only process): start what the collected tests use, in the
    background, while the tests that need none run."""
    run = session.config.stash.get(RUN_KEY, None)
    if run is None or session.config.option.collectonly:
        return
    from envmgr.fixtures import needed_by

    needed = needed_by(session.items, run)
    run.needed.update(needed)
    run.faults_used = any("envmgr_faults" in getattr(item, "fixturenames", ()) for item in session.items)
    if run.is_worker:  # every worker collects every test: a worker's own replicas start when its tests need them
        needed = {name: why for name, why in needed.items() if not run.service(name).per_worker}
    if needed:
        try:
            run.ensure(list(needed), needed, wait=False)
        except EnvmgrError as exc:
            _stop(session, exc)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before a test's fixtures: wait for the services it reaches; a service that cannot start stops the run."""
    run = item.config.stash.get(RUN_KEY, None)
    if run is None:
        return
    from envmgr.fixtures import reach_of

    found = reach_of(item, run.fixture_map())
    enabled = run.settings.enabled_services()
    services = {name: why for name, why in found.first.items() if name in enabled}
    if found.everything:
        services.update(dict.fromkeys([name for name in run.needed if name not in services], "envmgr_endpoints"))
    if not services:
        return
    try:
        run.ensure(list(services), services)
    except EnvmgrError as exc:
        _stop(item.session, exc)


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
    if run.is_worker:
        workeroutput: dict[str, Any] | None = getattr(config, "workeroutput", None)
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
    for name, value in config.stash.get(SAVED_KEY, {}).items():  # the variables as they were before the run
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    run = config.stash.get(RUN_KEY, None)
    if run is None or run.is_worker:
        return
    if run.channel is not None:
        run.channel.close()
    if run.source is None:
        return
    _save_logs(config, run)
    for line in run.source.finish(failed=run.failed):
        _say(config, line)


# helpers ---------------------------------------------------------------------------------------------------------


def _overrides(options: Any) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if getattr(options, "envmgr_image_set", None):
        overrides["image_set"] = options.envmgr_image_set
    if getattr(options, "envmgr_isolation", None):
        overrides["isolation"] = options.envmgr_isolation
    return overrides


def _stop(session: pytest.Session, exc: EnvmgrError) -> None:
    """A service of the run cannot start: stop the run (in an xdist worker: the controller stops the others)."""
    message = f"envmgr: {exc}"
    session.shouldstop = message
    pytest.exit(message, returncode=pytest.ExitCode.USAGE_ERROR)


def _save_logs(config: pytest.Config, run: RunState) -> None:
    """After a failed run: every container's log in logs_dir (for CI artifacts), before anything is removed."""
    if not run.failed or run.logs_dir is None or run.endpoints is None:
        return
    try:
        from envmgr.engine import Engine

        engine = run.environment.engine if run.environment is not None else Engine.connect()
        written = write_container_logs(engine, run.endpoints, run.logs_dir)
    except (OSError, EnvmgrError) as exc:  # never in the way of the teardown that follows
        _say(config, f"envmgr: could not write the containers' logs to {run.logs_dir}: {exc}")
        return
    _say(config, f"envmgr: logs of {len(written)} container(s) written to {run.logs_dir}")


def _say(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
