"""PostgreSQL fixtures: this worker's database (a clone of the migrated, seeded template), an engine and a session
rolled back after each test, sync and async; the `envmgr_fresh_db` marker for tests whose commits must be real."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest

from envmgr.endpoints import Worker
from envmgr.errors import EnvmgrError
from envmgr.pytest.async_fixtures import AsyncFixture

if TYPE_CHECKING:
    import sqlalchemy
    import sqlalchemy.orm
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

    from envmgr.config import Settings
    from envmgr.pytest.shares import WorkerShares

__all__ = [
    "FRESH_DB_MARKER",
    "async_db_engine",
    "async_db_session",
    "db_engine",
    "db_session",
    "postgres_url",
]

SERVICE = "postgres"
FRESH_DB_MARKER = "envmgr_fresh_db"
NOT_FIXTURES = ("FRESH_DB_MARKER",)
CLEAN_FIXTURES = ("db_session", "async_db_session")
"""fixtures that leave the database as they found it (the outer transaction is rolled back)"""
RESET_AFTER_MARKERS = (FRESH_DB_MARKER,)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{FRESH_DB_MARKER}: the test commits for real; its database is cloned anew from the template"
    )


@pytest.fixture(scope="session")
def postgres_url(envmgr_shares: WorkerShares) -> Iterator[str]:
    """The URL of this worker's database: a clone of the migrated, seeded template, dropped at the end."""
    envmgr_shares.setup(SERVICE)
    try:
        yield envmgr_shares.view(SERVICE).url
    finally:
        envmgr_shares.teardown(SERVICE)


@pytest.fixture(scope="session")
def db_engine(postgres_url: str, envmgr_shares: WorkerShares) -> Iterator[sqlalchemy.Engine]:
    """A SQLAlchemy 2 engine on this worker's database (psycopg 3 driver); its pool is emptied before the
    database is cloned anew (a reset), so no test gets a connection the reset cut."""
    import sqlalchemy

    from envmgr.services.postgres.urls import sqlalchemy_url

    engine = sqlalchemy.create_engine(sqlalchemy_url(postgres_url), pool_pre_ping=True)
    envmgr_shares.before_reset(SERVICE, engine.dispose)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def db_session(request: pytest.FixtureRequest, db_engine: sqlalchemy.Engine) -> Iterator[sqlalchemy.orm.Session]:
    """A session inside an outer transaction that is rolled back after the test.

    The code under test may call `commit()`: each commit ends a savepoint, not the outer transaction. A test marked
    `envmgr_fresh_db` gets a plain session instead (its commits are real) on a database equal to the template,
    cloned anew afterwards.
    """
    from sqlalchemy.orm import Session

    if request.node.get_closest_marker(FRESH_DB_MARKER) is not None:
        with Session(db_engine) as session:
            yield session
        return
    shares: WorkerShares = request.getfixturevalue("envmgr_shares")
    connection = db_engine.connect()
    transaction = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    try:
        with shares.holding(SERVICE, "db_session"):
            yield session
    finally:
        session.close()
        transaction.rollback()
        connection.close()


@pytest.fixture(scope="session")
def async_db_engine(postgres_url: str, envmgr_settings: Settings) -> Iterator[AsyncEngine]:
    """A SQLAlchemy `AsyncEngine` on this worker's database, with the driver of `postgres.async_driver` (psycopg 3,
    or asyncpg). It has no pool, so any event loop may use it (each test's own, a session loop, anyio's)."""
    from envmgr.services.postgres.aio import async_engine

    try:
        engine = async_engine(postgres_url, envmgr_settings.postgres.async_driver)
    except EnvmgrError as exc:
        pytest.fail(f"envmgr: {exc}", pytrace=False)
    try:
        yield engine
    finally:
        engine.sync_engine.dispose()  # nothing pooled: no connection to close, no event loop needed


@asynccontextmanager
async def _open_async_db_session(request: pytest.FixtureRequest) -> AsyncIterator[AsyncSession]:
    from sqlalchemy.ext.asyncio import AsyncSession

    from envmgr.services.postgres.aio import rolled_back_session

    engine: AsyncEngine = request.getfixturevalue("async_db_engine")
    if request.node.get_closest_marker(FRESH_DB_MARKER) is not None:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            yield session
        return
    shares: WorkerShares = request.getfixturevalue("envmgr_shares")
    async with rolled_back_session(engine) as session:
        with shares.holding(SERVICE, "async_db_session"):
            yield session


ASYNC_DB_SESSION = AsyncFixture("async_db_session", _open_async_db_session)
# the async fixtures behind async_db_session (envmgr.pytest.async_fixtures)
globals().update(ASYNC_DB_SESSION.runners())


@pytest.fixture
def async_db_session(request: pytest.FixtureRequest, async_db_engine: AsyncEngine) -> AsyncSession:
    """An `AsyncSession` inside an outer transaction that is rolled back after the test, in the test's event loop.

    For async tests run by pytest-asyncio (strict mode: `@pytest.mark.asyncio`; or auto mode) or anyio
    (`@pytest.mark.anyio`). The code under test may `commit()`: each commit ends a savepoint, not the outer
    transaction. `expire_on_commit=False`. A test marked `envmgr_fresh_db` gets a plain session (real commits)."""
    session: AsyncSession = ASYNC_DB_SESSION.value(request)
    return session


@pytest.fixture(autouse=True)
def _envmgr_fresh_db(request: pytest.FixtureRequest) -> None:
    """Tests marked envmgr_fresh_db need a database of their own under xdist (the reset is envmgr's per-test
    reset: the database is equal to the template before the test and cloned anew after it)."""
    if request.node.get_closest_marker(FRESH_DB_MARKER) is None or "postgres_url" not in request.fixturenames:
        return
    worker: Worker = request.getfixturevalue("envmgr_worker")
    if worker.worker_id.startswith("gw") and not worker.isolated:
        pytest.fail("envmgr_fresh_db needs worker isolation under xdist (--envmgr-isolation=worker)")
