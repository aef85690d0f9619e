"""Every fixture envmgr gives a test suite. Each is overridable: define a fixture of the same name in conftest.py.

Layers (each builds on the one before, so overriding one link changes everything above it):

    envmgr_settings ─ envmgr_worker ─ envmgr_endpoints ─┬─ envmgr_env
                                                        ├─ postgres_url ─ db_engine ─ db_session
                                                        └─ redis_url ─ redis_client

Isolation: under pytest-xdist each worker gets its own database (cloned from the migrated, seeded template) and its
own Redis logical database (db N+1 for worker gwN); in session isolation they share the environment's database.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from envmgr.config import Settings
from envmgr.endpoints import Endpoints, Worker

if TYPE_CHECKING:
    import redis
    import sqlalchemy
    import sqlalchemy.orm

    from envmgr.environment import Environment, Faults
    from envmgr.services.wiremock import WireMockAdmin

__all__ = [
    "FRESH_DB_MARKER",
    "aws_endpoint_url",
    "aws_env",
    "celery_app",
    "celery_worker",
    "db_engine",
    "db_session",
    "envmgr_endpoints",
    "envmgr_env",
    "envmgr_faults",
    "envmgr_settings",
    "envmgr_worker",
    "postgres_url",
    "redis_client",
    "redis_url",
    "s3_client",
    "sqs_client",
    "wiremock",
    "wiremock_url",
]

FRESH_DB_MARKER = "envmgr_fresh_db"


def _run(request: pytest.FixtureRequest) -> _PluginRun:
    from envmgr.pytest_plugin import run_of

    return run_of(request.config)


@pytest.fixture(scope="session")
def envmgr_settings(request: pytest.FixtureRequest) -> Settings:
    """The settings of this run: [tool.envmgr], ENVMGR_* and the --envmgr-* options."""
    return _run(request).settings


@pytest.fixture(scope="session")
def envmgr_worker(request: pytest.FixtureRequest) -> Worker:
    """Which pytest process this is and the names that isolate it (database, Redis db, AWS account, replicas)."""
    run = _run(request)
    return Worker(worker_id=run.worker_id, isolated=run.isolation == "worker")


@pytest.fixture(scope="session")
def envmgr_endpoints(request: pytest.FixtureRequest, envmgr_worker: Worker) -> Endpoints:
    """This worker's view of the run's environment (started by the controller, or here without xdist)."""
    return _run(request).endpoints().for_worker(envmgr_worker)


@pytest.fixture(scope="session")
def envmgr_env(request: pytest.FixtureRequest, envmgr_endpoints: Endpoints, envmgr_settings: Settings) -> Environment:
    """A handle on the environment: health, reset and (in the owning process) its timings."""
    from envmgr.environment import Environment

    run = _run(request)
    if run.environment is not None:
        return run.environment
    env = Environment.attach(envmgr_endpoints.id, settings=envmgr_settings)
    env.timings = run.resets  # its resets count in the run's report (sent to the controller by an xdist worker)
    return env


@pytest.fixture(scope="session")
def postgres_url(envmgr_endpoints: Endpoints, envmgr_worker: Worker) -> Iterator[str]:
    """The URL of this worker's database: a clone of the migrated, seeded template, dropped at the end."""
    from envmgr.database import Janitor

    server = envmgr_endpoints["postgres"]
    if not envmgr_worker.isolated:
        yield server.url
        return
    name = envmgr_worker.database(server.path)
    janitor = Janitor(server)
    janitor.clone(server.extra["template"], name)
    try:
        yield server.with_path(name).url
    finally:
        janitor.drop(name)


@pytest.fixture(scope="session")
def db_engine(postgres_url: str) -> Iterator[sqlalchemy.Engine]:
    """A SQLAlchemy 2 engine on this worker's database (psycopg 3 driver)."""
    import sqlalchemy

    from envmgr.seeds import sqlalchemy_url

    engine = sqlalchemy.create_engine(sqlalchemy_url(postgres_url))
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def db_session(request: pytest.FixtureRequest, db_engine: sqlalchemy.Engine) -> Iterator[sqlalchemy.orm.Session]:
    """A session inside an outer transaction that is rolled back after the test.

    The code under test may call `commit()`: each commit ends a savepoint, not the outer transaction. A test marked
    `envmgr_fresh_db` gets a plain session instead (its commits are real) on a database cloned anew afterwards.
    """
    from sqlalchemy.orm import Session

    if request.node.get_closest_marker(FRESH_DB_MARKER) is not None:
        with Session(db_engine) as session:
            yield session
        return
    connection = db_engine.connect()
    transaction = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    try:
        yield session
    finally:
        session.close()
        transaction.rollback()
        connection.close()


@pytest.fixture(autouse=True)
def _envmgr_fresh_db(request: pytest.FixtureRequest) -> Iterator[None]:
    """For tests marked envmgr_fresh_db: clone this worker's database anew from the template after the test."""
    yield
    if request.node.get_closest_marker(FRESH_DB_MARKER) is None:
        return
    if "postgres_url" not in request.fixturenames:
        return  # the test never touched the database
    from envmgr.database import Janitor

    worker: Worker = request.getfixturevalue("envmgr_worker")
    endpoints: Endpoints = request.getfixturevalue("envmgr_endpoints")
    if "db_engine" in request.fixturenames:
        request.getfixturevalue("db_engine").dispose()  # no pooled connection may hold the database open
    server = endpoints["postgres"]
    if worker.worker_id.startswith("gw") and not worker.isolated:
        pytest.fail("envmgr_fresh_db needs worker isolation under xdist (--envmgr-isolation=worker)")
    with _run(request).resets.measure("postgres", "reset"):
        Janitor(server).clone(server.extra["template"], worker.database(server.path))


@pytest.fixture(scope="session")
def redis_url(envmgr_endpoints: Endpoints, envmgr_worker: Worker) -> str:
    """The URL of this worker's own Redis logical database."""
    return envmgr_endpoints["redis"].with_path(str(envmgr_worker.redis_db)).url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis[bytes]]:
    """A client on this worker's own Redis database, emptied after each test."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


if TYPE_CHECKING:
    from envmgr.pytest_plugin import _PluginRun


# LocalStack -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def aws_endpoint_url(envmgr_endpoints: Endpoints, envmgr_worker: Worker, envmgr_settings: Settings) -> str:
    """LocalStack's URL; this worker's AWS account (see Worker.aws_account_id) is emptied and seeded once."""
    from envmgr.services.localstack import restore_account

    endpoint = envmgr_endpoints["localstack"]
    if envmgr_worker.isolated:
        restore_account(endpoint, envmgr_worker, envmgr_settings)
    return endpoint.url


@pytest.fixture
def aws_env(
    envmgr_settings: Settings,
    aws_endpoint_url: str,
    envmgr_endpoints: Endpoints,
    envmgr_worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """The AWS_* variables of this worker's account, set in os.environ for the test (for code that reads them)."""
    from envmgr.seeds import s3_seed_buckets
    from envmgr.services.localstack import aws_variables

    buckets = list(s3_seed_buckets(envmgr_settings.seeds_path()))
    variables = aws_variables(envmgr_endpoints["localstack"], envmgr_worker, buckets)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return variables


@pytest.fixture
def _envmgr_aws_reset(
    request: pytest.FixtureRequest,
    aws_endpoint_url: str,
    envmgr_endpoints: Endpoints,
    envmgr_worker: Worker,
    envmgr_settings: Settings,
) -> Iterator[None]:
    """After the test: this worker's account back to its seeded buckets, objects and queues."""
    yield
    from envmgr.services.localstack import restore_account

    endpoint = envmgr_endpoints["localstack"]
    with _run(request).resets.measure("localstack", "reset"):
        restore_account(endpoint, envmgr_worker, envmgr_settings)


@pytest.fixture
def s3_client(envmgr_endpoints: Endpoints, envmgr_worker: Worker, _envmgr_aws_reset: None) -> Any:
    """A boto3 S3 client in this worker's account; the account is reset to its seeds after the test."""
    from envmgr.services.localstack import aws_client

    return aws_client(envmgr_endpoints["localstack"], envmgr_worker, "s3")


@pytest.fixture
def sqs_client(envmgr_endpoints: Endpoints, envmgr_worker: Worker, _envmgr_aws_reset: None) -> Any:
    """A boto3 SQS client in this worker's account; the account is reset to its seeds after the test."""
    from envmgr.services.localstack import aws_client

    return aws_client(envmgr_endpoints["localstack"], envmgr_worker, "sqs")


# WireMock ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def wiremock_url(envmgr_endpoints: Endpoints) -> str:
    """The base URL of this worker's own WireMock (point the code under test's API base URL here)."""
    return envmgr_endpoints["wiremock"].url


@pytest.fixture
def wiremock(request: pytest.FixtureRequest, wiremock_url: str) -> Iterator[WireMockAdmin]:
    """The admin client of this worker's WireMock; back to the seeded stubs, empty journal, no delay after."""
    from envmgr.services.wiremock import WireMockAdmin

    admin = WireMockAdmin(wiremock_url)
    try:
        yield admin
    finally:
        with _run(request).resets.measure("wiremock", "reset"):
            admin.reset()


# Celery -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def celery_app(envmgr_settings: Settings, redis_url: str) -> Any:
    """The project's Celery app ([tool.envmgr.celery] app) bound to this worker's broker (its Redis database)."""
    from envmgr.services.celery import load_app

    app = load_app(envmgr_settings.celery.app)
    app.conf.update(broker_url=redis_url, result_backend=redis_url, broker_connection_retry_on_startup=True)
    return app


@pytest.fixture(scope="session")
def _envmgr_celery_worker(celery_app: Any, envmgr_endpoints: Endpoints) -> Iterator[Any]:
    if "celery" in envmgr_endpoints:  # the worker's own container runs the app
        yield envmgr_endpoints["celery"]
        return
    from celery.contrib.testing.worker import start_worker

    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10.0) as worker:
        yield worker


@pytest.fixture
def celery_worker(request: pytest.FixtureRequest, _envmgr_celery_worker: Any, celery_app: Any) -> Iterator[Any]:
    """A Celery worker executing this worker's tasks: its container replica when the celery service runs,
    otherwise an in-process solo worker (celery.contrib.testing). Its queue is purged after the test."""
    yield _envmgr_celery_worker
    with _run(request).resets.measure("celery", "reset"):
        celery_app.control.purge()


# faults -----------------------------------------------------------------------------------------------------


@pytest.fixture
def envmgr_faults(envmgr_env: Environment, envmgr_worker: Worker) -> Iterator[Faults]:
    """Pause or stop services during a test; everything is restored when it ends, pass or fail."""
    from envmgr.environment import Faults

    faults = Faults(envmgr_env, envmgr_worker)
    try:
        yield faults
    finally:
        faults.restore()
