"""Alembic environment of the tasks API, after Alembic's async template.

A caller that holds a connection (envmgr, building its template database) passes it as
`config.attributes["connection"]`; otherwise the app's own async engine is used (`alembic upgrade head`).
"""

import asyncio
from logging.config import fileConfig

from alembic import context
from app.db import database_url
from app.models import Base
from sqlalchemy.engine import Connection

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)


def run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(database_url(), poolclass=NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(run_migrations)
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    asyncio.run(run_async_migrations())
