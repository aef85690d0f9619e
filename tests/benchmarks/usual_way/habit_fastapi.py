"""The habit for tests/examples/fastapi_app: Postgres and Redis left running, the fixtures a team writes for them.

    HABIT_POSTGRES=postgresql://user:password@127.0.0.1:PORT HABIT_REDIS=redis://127.0.0.1:PORT HABIT_DB=tasks \
    PYTHONPATH=tests/benchmarks/usual_way pytest -p no:envmgr -p habit_fastapi [-n 2]

The template `tasks_tpl` (alembic upgrade head, the seeds) was made once by hand; each worker's database is kept
between runs (habit_common). `async_db_session`: SQLAlchemy's "join a session into an external transaction" recipe
on an async engine without a pool (any test's event loop may use it); `async_redis_client`: emptied after the test.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from habit_common import database_url, redis_url

os.environ["REDIS_URL"] = redis_url()


@pytest.fixture(scope="session")
def async_db_engine() -> Any:
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    url = database_url().replace("postgresql://", "postgresql+psycopg://", 1)
    os.environ["DATABASE_URL"] = url
    return create_async_engine(url, poolclass=NullPool)


@pytest_asyncio.fixture
async def async_db_session(async_db_engine: Any) -> AsyncIterator[Any]:
    from sqlalchemy.ext.asyncio import AsyncSession

    async with async_db_engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()


@pytest_asyncio.fixture
async def async_redis_client() -> AsyncIterator[Any]:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(os.environ["REDIS_URL"])
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()
