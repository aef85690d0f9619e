"""PostgreSQL fixtures: this worker's database (a clone of the migrated, seeded template), an engine and a session
rolled back after each test; the `envmgr_fresh_db` marker for tests whose commits must be real."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from envmgr.endpoints import Worker

if TYPE_CHECKING:
    import sqlalchemy
    import sqlalchemy.orm

    from envmgr.fixtures import WorkerShares

__all__ = ["FRESH_DB_MARKER", "db_engine", "db_session", "postgres_url"]

SERVICE = "postgres"
FRESH_DB_MARKER = "envmgr_fresh_db"


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
    worker: Worker = request.getfixturevalue("envmgr_worker")
    if worker.worker_id.startswith("gw") and not worker.isolated:
        pytest.fail("envmgr_fresh_db needs worker isolation under xdist (--envmgr-isolation=worker)")
    if "db_engine" in request.fixturenames:
        request.getfixturevalue("db_engine").dispose()  # no pooled connection may hold the database open
    shares: WorkerShares = request.getfixturevalue("envmgr_shares")
    shares.reset(SERVICE)
