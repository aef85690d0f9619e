"""The database: an async engine on the settings' database (made on first use), one session per request."""

from collections.abc import AsyncIterator
from functools import cache

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app.config import settings


@cache
def sessions() -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(create_async_engine(settings.SQLALCHEMY_DATABASE_URI), expire_on_commit=False)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with sessions()() as session:
        yield session
