"""Async SQLAlchemy on a test database: an engine usable from any event loop, and a session rolled back afterwards.

The engine has no pool (`NullPool`): a pooled asyncpg or psycopg connection belongs to the event loop it was opened
in, and pytest-asyncio gives each test its own loop by default (or one per class, module, session ...), so a pool
shared by a session-scoped engine would hand a test a connection of a closed loop. SQLAlchemy's advice for an engine
used across event loops is the same (NullPool, or `dispose()` before another loop uses it). The price: each test
opens a connection of its own (as much as a `psycopg.connect`: authentication and the server's new process).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from envmgr.errors import ConfigError
from envmgr.services.postgres.urls import Driver, sqlalchemy_url

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

__all__ = ["async_engine", "rolled_back_session"]

_NEEDS: dict[str, tuple[str, ...]] = {
    "psycopg": ("greenlet", "psycopg"),
    "psycopg_async": ("greenlet", "psycopg"),
    "asyncpg": ("greenlet", "asyncpg"),
}


def _check_installed(driver: Driver) -> None:
    """ConfigError naming what to install when the driver (or SQLAlchemy's greenlet) cannot be imported."""
    for module in _NEEDS[driver]:
        try:
            importlib.import_module(module)
        except ImportError:
            if module == "greenlet":
                raise ConfigError(
                    "SQLAlchemy's asyncio support needs greenlet, which is not installed",
                    "pip install greenlet (or sqlalchemy[asyncio])",
                ) from None
            raise ConfigError(
                f"the PostgreSQL driver {driver!r} is chosen (postgres.async_driver), but {module} is not installed",
                f'pip install {module}, or set postgres.async_driver = "psycopg" in [tool.envmgr]',
            ) from None


def async_engine(url: str, driver: Driver = "psycopg") -> AsyncEngine:
    """A SQLAlchemy `AsyncEngine` on the database of `url` (a `postgresql://` URL) with `driver`, without a pool,
    so that any event loop may use it; ConfigError when the driver is not installed."""
    _check_installed(driver)
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    return create_async_engine(sqlalchemy_url(url, driver), poolclass=NullPool)


@asynccontextmanager
async def rolled_back_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """An `AsyncSession` inside an outer transaction that is rolled back at the end.

    The code under test may `commit()` or `rollback()`: each ends a savepoint (`join_transaction_mode=
    "create_savepoint"`), never the outer transaction. `expire_on_commit=False`, as SQLAlchemy advises for
    asyncio (an expired attribute cannot be loaded implicitly there)."""
    from sqlalchemy.ext.asyncio import AsyncSession

    async with engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()
