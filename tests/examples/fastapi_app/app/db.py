"""The database: an async engine on DATABASE_URL (made on first use), one session per request."""

import os
from collections.abc import AsyncIterator
from functools import cache

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine


def database_url() -> str:
    """DATABASE_URL with the psycopg 3 driver (`postgresql+psycopg://`, which SQLAlchemy runs async)."""
    url = os.environ.get("DATABASE_URL", "postgresql://tasks@localhost/tasks")
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@cache
def sessions() -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(create_async_engine(database_url()), expire_on_commit=False)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with sessions()() as session:
        yield session
