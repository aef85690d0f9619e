"""Alembic environment of musicapp.

The URL comes from the Alembic configuration (`sqlalchemy.url`); a caller that already holds a connection (envmgr,
or a test) may pass it as `config.attributes["connection"]`, which is then used as it is.
"""

from logging.config import fileConfig

from alembic import context
from musicapp.models import Base
from sqlalchemy import engine_from_config, pool
from sqlalchemy.engine import Connection

config = context.config

if config.config_file_name is not None:
    fileConfig(config.config_file_name)

target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
        return
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with connectable.connect() as new_connection:
        do_run_migrations(new_connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
