"""The habit for tests/examples/flask_app (its Postgres and Redis tests): both left running, a team's fixtures.

    HABIT_POSTGRES=... HABIT_REDIS=... HABIT_DB=billing PYTHONPATH=tests/benchmarks/usual_way \
    pytest -p no:envmgr -p habit_flask tests/test_invoices.py tests/test_cache.py [-n 2]

The template `billing_tpl` (flask db upgrade, the seeds) was made once by hand; each worker's database is kept
between runs (habit_common). `flask_db_session`: Flask-SQLAlchemy's `db.session` bound to a connection in an outer
transaction rolled back after the test (the app's commits end savepoints); `flask_client` is the app's test client on
it; `redis_client` is emptied after the test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from habit_common import redis_url

os.environ["REDIS_URL"] = redis_url()


@pytest.fixture(scope="session")
def flask_app() -> Any:
    from habit_common import database_url

    os.environ["DATABASE_URL"] = database_url()
    from billing import create_app

    app = create_app()
    app.config["TESTING"] = True
    return app


@pytest.fixture
def flask_db_session(flask_app: Any) -> Iterator[Any]:
    from billing.extensions import db
    from sqlalchemy.orm import Session
    from sqlalchemy.util import ScopedRegistry

    with flask_app.app_context():
        connection = db.engine.connect()
        transaction = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        original = db.session.registry
        db.session.registry = ScopedRegistry(lambda: session, lambda: None)
        try:
            yield session
        finally:
            db.session.registry = original
            session.close()
            transaction.rollback()
            connection.close()


@pytest.fixture
def flask_client(flask_app: Any, flask_db_session: Any) -> Any:
    return flask_app.test_client()


@pytest.fixture
def redis_client() -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    yield client
    client.flushdb()
    client.close()
