"""The habit for the repository's example suite (tests/example_app/suite/test_releases.py): the fixtures of
`usual_way/conftest.py` (a session in an outer transaction rolled back after the test, Redis emptied after it), on
Postgres and Redis left running instead of containers started by each process.

    HABIT_POSTGRES=... HABIT_REDIS=... HABIT_DB=music PYTHONPATH=tests/benchmarks/usual_way \
    pytest -p no:envmgr -p habit_example tests/example_app/suite/test_releases.py [-n 2]

The template `music_tpl` (alembic upgrade head, the seeds) was made once by hand; each worker's database is kept
between runs (habit_common). A test marked `envmgr_fresh_db` commits for real: the worker's database is made again
from the template after it (cheaper than usual_way/conftest.py's DROP SCHEMA + migrations + seeds, so the habit
measured here is the faster one).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from habit_common import database_url, recreate_database, redis_url

FRESH_DB_MARKER = "envmgr_fresh_db"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{FRESH_DB_MARKER}: the test commits for real; its database is made again")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return database_url()


@pytest.fixture(scope="session")
def db_engine(postgres_url: str) -> Iterator[Any]:
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    yield engine
    engine.dispose()


@pytest.fixture
def db_session(request: pytest.FixtureRequest, db_engine: Any) -> Iterator[Any]:
    from sqlalchemy.orm import Session

    if request.node.get_closest_marker(FRESH_DB_MARKER) is not None:
        with Session(db_engine) as session:
            yield session
        db_engine.dispose()
        recreate_database(request.getfixturevalue("postgres_url"))
        return
    connection = db_engine.connect()
    transaction = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    yield session
    session.close()
    transaction.rollback()
    connection.close()


@pytest.fixture(scope="session")
def redis_url_() -> str:
    return redis_url()


@pytest.fixture
def redis_client(redis_url_: str) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(redis_url_)
    yield client
    client.flushdb()
    client.close()
