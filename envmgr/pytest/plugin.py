"""The pytest plugin (entry point `pytest11: envmgr`): hooks only. The run's state is `envmgr.pytest.run`, the
controller's side of it `envmgr.pytest.coordinator`, where its environment comes from and how it ends
`envmgr.pytest.source`; the fixtures are `envmgr.pytest.fixtures` and each service's `fixtures.py`.

One environment per run, owned by the controller: the xdist controller (or the only process) starts it and tears it
down after the last worker has finished; workers never start containers. Only the services the collected tests use
are started: right after collection (in the background, while the first tests that need none run), each once per
run, or before it, when the last run of the same command reached them (`envmgr.prediction`; what collection then
shows unused is removed); an xdist worker asks the controller for them through a socket of the run's own
(`envmgr.pytest.channel`).
Before a test runs, the services it reaches are waited for; a service that cannot start errors that test with the
cause and the fix and stops the run. A crashed run is cleaned by the reaper.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, NoReturn

import pytest

from envmgr.config import Settings
from envmgr.endpoints import Endpoints, Worker
from envmgr.errors import EnvmgrError
from envmgr.pytest import heap
from envmgr.pytest.coordinator import COORDINATOR_KEY, Coordinator, coordinator_of
from envmgr.pytest.options import DEFAULT_LOGS_DIR, run_state, settings_of
from envmgr.pytest.report import resets_of, write_container_logs
from envmgr.pytest.run import RUN_KEY, RunState, run_of
from envmgr.pytest.source import Ending, LeasedSource, OwnedSource, SourceOptions, ending
from envmgr.pytest.timeline import install as install_timeline
from envmgr.pytest.variables import (
    CONTROLLER_VARIABLE,
    ISOLATION_VARIABLE,
    PLAN_VARIABLE,
    export,
    exported_names,
    restore,
    worker_variables,
)
from envmgr.pytest.warm import warm_start

__all__ = ["exported_names", "run_of"]  # (exported_names: envmgr.pytest.variables, kept here for tests)

WORKERINPUT_CONTROLLER = "envmgr_controller"
WORKERINPUT_ISOLATION = "envmgr_isolation"
WORKEROUTPUT_RESETS = "envmgr_resets"
WORKEROUTPUT_STOPPED = "envmgr_stopped"


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
        "--envmgr-daemon",
        choices=["auto", "on", "off"],
        default=None,
        help="warm environments from the per-user daemon (the setting daemon): off runs as if there were none",
    )
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
    from envmgr.services.registry import SERVICES

    for module in ["envmgr.pytest.fixtures", *SERVICES.fixture_modules(), "envmgr.integrations.flask_fixtures"]:
        pluginmanager.import_plugin(module)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Before conftest files (and the app they import) load: the run's plan and this process's connection variables
    in os.environ (DATABASE_URL, REDIS_URL, ..., the export table), so that settings read at import see them.

    The controller leases a warm environment from the daemon (envmgr.pytest.warm), or plans the environment it will
    own (ports, names, credentials; nothing starts, no engine is needed), or reads the running one it attaches to
    (`--envmgr-env`, a sourced ENVMGR_ENV_ID), and hands its endpoints to the xdist workers through their
    environment; each worker exports its own view. What the plugins loaded is frozen (envmgr.pytest.heap)."""
    worker_id = os.environ.get("PYTEST_XDIST_WORKER")
    if worker_id is not None and os.environ.get(CONTROLLER_VARIABLE) == str(os.getppid()):  # our controller's worker
        settings = settings_of(early_config, early_config.known_args_namespace)
        heap.freeze(settings)
        plan = os.environ.get(PLAN_VARIABLE)
        if plan:
            from envmgr.services.registry import SERVICES

            isolated = os.environ.get(ISOLATION_VARIABLE) == "worker"
            export(
                early_config,
                worker_variables(Endpoints.from_json(plan), Worker(worker_id, isolated), settings, SERVICES),
            )
        return
    run = run_state(early_config, early_config.known_args_namespace)
    heap.freeze(run.settings)
    early_config.stash[RUN_KEY] = run
    coordinator = _coordinate(early_config, run)
    export(early_config, {ISOLATION_VARIABLE: run.isolation, CONTROLLER_VARIABLE: str(os.getpid())})
    if run.options.attach_id is not None:
        planned = _attached(run.options.attach_id, run.settings)
    else:
        planned = _planned(run, coordinator)
    export(early_config, {PLAN_VARIABLE: planned.to_json()})
    export(early_config, worker_variables(planned, run.worker, run.settings, run.registry))


def _attached(env_id: str, settings: Settings) -> Endpoints:
    """The endpoints of the running environment the run attaches to (`--envmgr-env`, a sourced ENVMGR_ENV_ID), read
    from the engine before the conftest files load: each process, each xdist worker its own share, exports its
    variables then, over those a shell sourced from `envmgr up --env-file` (which name the environment's database,
    not a worker's)."""
    from envmgr.environment import Environment

    try:
        return Environment.attach(env_id, settings=settings).endpoints
    except EnvmgrError as exc:
        raise pytest.UsageError(f"envmgr: {exc}") from None


def _planned(run: RunState, coordinator: Coordinator) -> Endpoints:
    """The endpoints of the environment the run leases or will own (planned: nothing starts yet)."""
    try:
        coordinator.source = _own_or_lease(run)
        return coordinator.source.plan()
    except EnvmgrError as exc:  # a bad setting; daemon = "on" and a socket that cannot be trusted ...
        raise pytest.UsageError(f"envmgr: {exc}") from None


def _own_or_lease(run: RunState) -> OwnedSource | LeasedSource:
    """A warm environment leased from the daemon; else the run's own, kept warm by the daemon at the end when it
    may be (envmgr.pytest.warm), removed otherwise."""
    options = run.options
    if options.keep or options.keep_on_failure:
        return OwnedSource(run.settings, run.workers, options, run.progress)
    lease, keeper = warm_start(run.settings, run.workers, run.notices.append)
    if lease is not None:
        return LeasedSource(lease)
    return OwnedSource(run.settings, run.workers, options, run.progress, keeper=keeper)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None:
        config.stash[RUN_KEY] = RunState(
            settings=settings_of(config, config.option),
            worker_id=str(workerinput.get("workerid", "gw0")),
            isolation=str(workerinput.get(WORKERINPUT_ISOLATION, "worker")),
            options=SourceOptions(),
            controller=workerinput.get(WORKERINPUT_CONTROLLER),
        )
        _integrate(config)
        heap.freeze(run_of(config).settings)  # the conftest files and the app they imported
        return
    if RUN_KEY not in config.stash:  # planned in pytest_load_initial_conftests (not when pytest runs in-process)
        config.stash[RUN_KEY] = run_state(config, config.option)
        _coordinate(config, config.stash[RUN_KEY])
    install_timeline(config, config.stash[RUN_KEY])  # the terminal's progress, the report written at the end
    _integrate(config)
    heap.freeze(run_of(config).settings)  # the conftest files and the app they imported


def _coordinate(config: pytest.Config, run: RunState) -> Coordinator:
    """The controller's coordinator: it starts the run's services (run.starter)."""
    coordinator = Coordinator(run)
    run.starter = coordinator
    config.stash[COORDINATOR_KEY] = coordinator
    return coordinator


def _integrate(config: pytest.Config) -> None:
    """Register the integrations that apply to this run (`envmgr.integrations`): after every plugin of the command
    line and the entry points, so that their fixtures override those plugins' (a conftest still overrides them)."""
    from envmgr.integrations import django

    run = run_of(config)
    if django.applies(config, run.settings):
        config.pluginmanager.register(django, django.PLUGIN_NAME)
        run.integrations.append(django.__name__)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist, on the controller: tell each worker its isolation and where to ask for services."""
    run = run_of(node.config)
    coordinator = coordinator_of(node.config)
    assert coordinator is not None  # the controller's configure made it
    node.workerinput[WORKERINPUT_ISOLATION] = run.isolation
    node.workerinput[WORKERINPUT_CONTROLLER] = str(coordinator.serve_workers().path)


def pytest_sessionstart(session: pytest.Session) -> None:
    """The controller (or the only process), before xdist starts its workers: say what was noted before the
    terminal was there (why no daemon is used); start in the background what the last run of the same command
    reached (envmgr.pytest.prediction), while workers start and tests are collected."""
    coordinator = coordinator_of(session.config)
    if coordinator is not None:
        for line in coordinator.run.notices:
            _say(session.config, line)
    if coordinator is None or session.config.option.collectonly:
        return
    if not isinstance(coordinator.source, OwnedSource | LeasedSource):
        return
    from envmgr.pytest.prediction import load

    predicted = load(getattr(session.config, "cache", None), _prediction_key(session.config, coordinator.run))
    if predicted is not None and predicted.names():
        # a guess: when it cannot start (no engine ...), what the tests need is started after collection as usual,
        # and its error stops the run there
        with contextlib.suppress(EnvmgrError):
            coordinator.start_predicted(predicted)


def pytest_collection_finish(session: pytest.Session) -> None:
    """After collection (in each xdist worker, or the only process): start what the collected tests use, in the
    background, while the tests that need none run. The test modules and the items are frozen
    (envmgr.pytest.heap)."""
    run = session.config.stash.get(RUN_KEY, None)
    if run is None or session.config.option.collectonly:
        return
    heap.freeze(run.settings)
    from envmgr.pytest.channel import ControllerClient
    from envmgr.pytest.fixtures import needed_by

    needed = needed_by(session.items, run)
    run.needed.update(needed)
    run.faults_used = any("envmgr_faults" in getattr(item, "fixturenames", ()) for item in session.items)
    try:
        if run.is_worker:  # every worker collects every test: a worker's own replicas start when its tests need them
            if run.controller is not None:
                ControllerClient(run.controller).collected(list(needed))
            needed = {name: why for name, why in needed.items() if not run.service(name).per_worker}
        elif (coordinator := coordinator_of(session.config)) is not None:
            coordinator.collected(list(needed))
        if needed:
            run.ensure(list(needed), needed, wait=False)
    except EnvmgrError as exc:
        _stop(session, exc)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before a test's fixtures: wait for the services it reaches; a service that cannot start stops the run."""
    run = item.config.stash.get(RUN_KEY, None)
    if run is None:
        return
    from envmgr.pytest.fixtures import reach_of

    found = reach_of(item, run)
    enabled = run.settings.enabled_services()
    for name, why in found.first.items():
        if name not in enabled and not run.service(name).fixtures_without_service:
            pytest.fail(
                f"envmgr: this test uses {name} ({why}), which is not enabled\n"
                f"  fix: [tool.envmgr.{name}] enabled = true (or ENVMGR_{name.upper()}__ENABLED=true)",
                pytrace=False,
            )
    services = {name: why for name, why in found.first.items() if name in enabled}
    if found.everything:
        services.update(dict.fromkeys([name for name in run.needed if name not in services], "envmgr_endpoints"))
    if not services:
        return
    ensured = len(run.ensured)
    failure: EnvmgrError | None = None
    try:
        run.ensure(list(services), services)
    except EnvmgrError as exc:
        failure = exc
    if failure is not None:  # (raised outside the except clause: the report shows the cause once, unchained)
        _fail_and_stop(item, run, failure)
    if len(run.ensured) > ensured:
        heap.freeze(run.settings)  # what the first use of a service loaded (its client library, an attach's ...)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist, on the controller: a worker has finished (or crashed); keep the resets it made, and why it stopped
    the run (a service one of its tests reaches could not start)."""
    run = node.config.stash.get(RUN_KEY, None)
    output = getattr(node, "workeroutput", None) or {}
    if run is not None and output.get(WORKEROUTPUT_RESETS):
        run.worker_resets.append(output[WORKEROUTPUT_RESETS])
    if run is not None and output.get(WORKEROUTPUT_STOPPED):
        run.stopped = run.stopped or str(output[WORKEROUTPUT_STOPPED])


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A worker sends its resets (and why it stopped the run) to the controller; the controller notes the outcome
    (a run envmgr stopped exits with pytest's usage error, at -n 0 as under xdist) and saves the prediction."""
    config = session.config
    run = config.stash.get(RUN_KEY, None)
    if run is None:
        return
    if run.is_worker:
        workeroutput: dict[str, Any] | None = getattr(config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[WORKEROUTPUT_RESETS] = resets_of(run.resets.phases, run.resets.counts)
            workeroutput[WORKEROUTPUT_STOPPED] = run.stopped
        return
    if run.stopped is not None:
        session.exitstatus = exitstatus = pytest.ExitCode.USAGE_ERROR
    run.exitstatus = int(exitstatus)
    coordinator = coordinator_of(config)
    if coordinator is None:
        return
    if isinstance(coordinator.source, OwnedSource | LeasedSource) and not config.option.collectonly:
        from envmgr.pytest.prediction import save

        save(getattr(config, "cache", None), _prediction_key(config, run), coordinator.prediction())
    # the report is written after the teardown, by envmgr.pytest.timeline


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    coordinator = coordinator_of(config)
    if coordinator is None:
        return
    line = coordinator.summary()
    if line:
        terminalreporter.write_line(line)
    if coordinator.discard_failure is not None:
        terminalreporter.write_line(
            f"envmgr: the unused {', '.join(coordinator.discarded)} could not be removed before the end: "
            f"{coordinator.discard_failure.cause}"
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    restore(config)
    coordinator = coordinator_of(config)
    if coordinator is None:
        return
    coordinator.close()
    if coordinator.source is None:
        return
    _save_logs(config, coordinator.run)
    removing = ending(coordinator.source.kind, coordinator.run.options, coordinator.run.failed) is Ending.REMOVE
    late = coordinator.settle(removing)
    if late:
        _say(config, f"envmgr: {', '.join(late)} still under way at the end of the run: left to end on its own")
    try:
        lines = coordinator.source.finish(failed=coordinator.run.failed)
    except EnvmgrError as exc:  # e.g. the engine stopped: the watchdog removes the environment once it answers
        lines = [f"envmgr: error: {exc.cause}", *([f"envmgr:   fix: {exc.fix}"] if exc.fix else [])]
    for line in lines:
        _say(config, line)


# helpers ---------------------------------------------------------------------------------------------------------


def _prediction_key(config: pytest.Config, run: RunState) -> str:
    from envmgr.pytest.prediction import prediction_key

    params = config.invocation_params
    return prediction_key(params.args, str(params.dir), run.workers, run.isolation)


def _fail_and_stop(item: pytest.Item, run: RunState, exc: EnvmgrError) -> NoReturn:
    """A service this test reaches cannot start: the test errors at its set-up with the cause and the fix (the
    summary counts it: never a green line over a run that stopped), and the run stops after it (under xdist the
    controller stops the other workers). The run exits with pytest's usage error (pytest_sessionfinish)."""
    message = f"envmgr: {exc}"
    run.stopped = message
    item.session.shouldfail = message
    pytest.fail(message, pytrace=False)


def _stop(session: pytest.Session, exc: EnvmgrError) -> None:
    """A service of the run cannot start: stop the run (in an xdist worker: the controller stops the others)."""
    message = f"envmgr: {exc}"
    run = session.config.stash.get(RUN_KEY, None)
    if run is not None and run.is_worker:
        session.shouldstop = message  # the controller stops the other workers and reports it
    pytest.exit(message, returncode=pytest.ExitCode.USAGE_ERROR)


def _save_logs(config: pytest.Config, run: RunState) -> None:
    """After a failed run: every container's log in logs_dir (for CI artifacts), before anything is removed."""
    if not run.failed or run.logs_dir is None or run.endpoints is None:
        return
    if run.environment is not None and not run.environment.needs_engine:
        return  # no container: its servers' logs are where they run
    try:
        from envmgr.engine.connection import Engine

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
