"""envmgr's own fixtures; each service's are in its folder (`envmgr/services/<name>/fixtures.py`). Every fixture is
overridable: define one of the same name in conftest.py.

Layers (each builds on the one before, so overriding one link changes everything above it):

    envmgr_settings ─ envmgr_worker ─ envmgr_endpoints ─┬─ envmgr_env ─ envmgr_faults
                                                        ├─ envmgr_shares ─ (each service's fixtures)
                                                        ├─ postgres_url ─┬─ db_engine ─ db_session
                                                        │                └─ async_db_engine ─ async_db_session
                                                        └─ redis_url ─ redis_client, async_redis_client  ...

Isolation: under pytest-xdist each worker gets its own share of every service (its database cloned from the
migrated, seeded template, its Redis database, its AWS account, its WireMock and Celery replicas); in session
isolation they share the environment's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from envmgr.config import Settings
from envmgr.endpoints import Callback, Endpoints, Worker
from envmgr.errors import EnvmgrError
from envmgr.pytest.reach import Reach, reach
from envmgr.pytest.run import RunState, run_of
from envmgr.pytest.shares import WorkerShares

if TYPE_CHECKING:
    from envmgr.environment import Environment
    from envmgr.faults import Faults

__all__ = [
    "envmgr_callback",
    "envmgr_callback_host",
    "envmgr_endpoints",
    "envmgr_env",
    "envmgr_faults",
    "envmgr_settings",
    "envmgr_shares",
    "envmgr_worker",
    "needed_by",
    "reach_of",
]


@pytest.fixture(scope="session")
def envmgr_settings(request: pytest.FixtureRequest) -> Settings:
    """The settings of this run: [tool.envmgr], ENVMGR_* and the --envmgr-* options."""
    return run_of(request.config).settings


@pytest.fixture(scope="session")
def envmgr_worker(request: pytest.FixtureRequest) -> Worker:
    """Which pytest process this is and the names that isolate it (database, Redis db, AWS account, replicas)."""
    return run_of(request.config).worker


@pytest.fixture(scope="session")
def envmgr_endpoints(request: pytest.FixtureRequest, envmgr_worker: Worker) -> Endpoints:
    """This worker's view of the run's environment: every service the run's tests use (or, where that is not known,
    every enabled service), started by the controller (or here without xdist)."""
    run = run_of(request.config)
    services = list(run.needed) or run.settings.enabled_services()
    try:
        endpoints = run.ensure(services, dict.fromkeys(services, "envmgr_endpoints"))
    except EnvmgrError as exc:
        raise pytest.UsageError(f"envmgr: {exc}") from None
    return endpoints.for_worker(envmgr_worker)


@pytest.fixture(scope="session")
def envmgr_shares(request: pytest.FixtureRequest, envmgr_worker: Worker) -> Iterator[WorkerShares]:
    """This worker's share of each service (used by every service's fixtures); a service starts when first used.
    When the collected tests use `envmgr_faults`, shared servers are reached through a proxy of this worker's."""
    run = run_of(request.config)
    shares = WorkerShares(run, envmgr_worker, proxied=run.faults_used)
    try:
        yield shares
    finally:
        shares.close()


@pytest.fixture(scope="session")
def envmgr_env(
    request: pytest.FixtureRequest, envmgr_endpoints: Endpoints, envmgr_settings: Settings, envmgr_shares: WorkerShares
) -> Iterator[Environment]:
    """A handle on the environment: health, faults, `reset()` of this worker's share of every service (never
    another worker's), and named snapshots of that share (`snapshot`, `restore`, `use_baseline`: docs/snapshots.md),
    removed at the end of the session."""
    from envmgr.environment import Environment

    run = run_of(request.config)
    if run.environment is not None:
        env = run.environment
    elif envmgr_endpoints.services and all(e.extra.get("given") for e in envmgr_endpoints.all()):
        env = Environment.on_given(envmgr_endpoints, envmgr_settings, run.workers)  # no engine to attach through
        env.timings = run.resets
    else:
        env = Environment.attach(envmgr_endpoints.id, settings=envmgr_settings, given=envmgr_endpoints)
        env.timings = run.resets  # its resets count in the run's report (sent to the controller by an xdist worker)
    env.scope = run.worker
    env.snapshots = run.snapshots()
    env.shares = envmgr_shares
    try:
        yield env
    finally:
        env.drop_snapshots()


@pytest.fixture(scope="session")
def envmgr_callback(request: pytest.FixtureRequest) -> Callback:
    """Where this test process is reachable from the environment's containers: a server of the test's listens on
    `bind` (the gateway of the environment's network; never 0.0.0.0) and a service calls it at `url(port)`
    (`http://host.docker.internal:<port>`). Starts no service."""
    run = run_of(request.config)
    try:
        endpoints = run.endpoints or run.ensure([], {})
    except EnvmgrError as exc:
        raise pytest.UsageError(f"envmgr: {exc}") from None
    if endpoints.callback is None:
        raise pytest.UsageError(
            "envmgr: containers cannot call back into this test process: the Docker engine is remote (DOCKER_HOST), "
            "so its networks' gateways are on another machine; run the tests with a local engine"
        )
    return endpoints.callback


@pytest.fixture(scope="session")
def envmgr_callback_host(envmgr_callback: Callback) -> str:
    """The test host's name inside the environment's network: `host.docker.internal`."""
    return envmgr_callback.host


@pytest.fixture
def envmgr_faults(envmgr_env: Environment, envmgr_worker: Worker, envmgr_shares: WorkerShares) -> Iterator[Faults]:
    """Pause or stop services during a test, for this worker only; everything is restored when it ends, pass or
    fail."""
    from envmgr.faults import Faults

    faults = Faults(envmgr_env, envmgr_worker, envmgr_shares.proxies)
    try:
        yield faults
    finally:
        faults.restore()


REACH_KEY = pytest.StashKey[Reach]()


def reach_of(item: pytest.Item, run: RunState) -> Reach:
    """The services `item` reaches and may dirty (computed once per test): through its fixtures and markers, and
    the run's `always` services, which every test reaches."""
    if REACH_KEY not in item.stash:
        fixtures = run.fixture_map()
        always = run.always_services()
        info = getattr(item, "_fixtureinfo", None)  # pytest's fixture graph: which fixture asks for which
        markers = [marker.name for marker in item.iter_markers()] if fixtures.markers else []
        if info is None:
            item.stash[REACH_KEY] = reach(getattr(item, "fixturenames", ()), None, {}, fixtures, markers, always=always)
        else:
            argnames = {name: [arg for d in defs for arg in d.argnames] for name, defs in info.name2fixturedefs.items()}
            closure, initial = info.names_closure, list(info.initialnames)
            item.stash[REACH_KEY] = reach(closure, initial, argnames, fixtures, markers, always=always)
    return item.stash[REACH_KEY]


@pytest.fixture(autouse=True)
def _envmgr_seeded_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts from the seeded state of each service it reaches (setting `reset = "every-test"`: of
    every service), for this worker: a service is reset before the test when an earlier test on this worker may
    have changed it, and after a test marked to reset it (`envmgr_fresh_db`)."""
    run = run_of(request.config)
    fixtures = run.fixture_map()
    every = run.settings.reset == "every-test"
    found = reach_of(request.node, run)
    if not found.reached and not (every and run.endpoints is not None):
        yield
        return
    shares: WorkerShares = request.getfixturevalue("envmgr_shares")
    enabled = set(run.settings.enabled_services())
    for service in run.always_services():  # reached by no fixture: this worker's share made before its first test
        shares.setup(service)
    running = set(shares.services) | ((set(run.needed) if every else found.reached) & enabled)
    wanted = running if every else found.reached & running
    for service in [name for name in shares.services if name in wanted and (name in run.dirty or run.stale(name))]:
        shares.reset(service)
    yield
    markers = {marker.name for marker in request.node.iter_markers()}
    marked = {name for name in found.reached if fixtures.reset_after.get(name, frozenset()) & markers}
    changed = running if every else (found.dirtying | marked) & running
    for service in [name for name in shares.services if name in changed]:
        if fixtures.reset_after.get(service, frozenset()) & markers:
            shares.reset(service)
        else:
            run.dirty.add(service)


def needed_by(items: list[pytest.Item], run: RunState) -> dict[str, str]:
    """The services the collected tests use, and why (the first fixture that reaches each), plus those a setting
    says the run always needs. A test that uses envmgr's own fixtures directly may use any enabled service."""
    enabled = run.settings.enabled_services()
    needed = run.always_services()
    for item in items:
        found = reach_of(item, run)
        for service, fixture in found.first.items():
            needed.setdefault(service, fixture)
        if found.everything:
            for service in enabled:
                needed.setdefault(service, "envmgr_endpoints")
    return {name: needed[name] for name in enabled if name in needed}
