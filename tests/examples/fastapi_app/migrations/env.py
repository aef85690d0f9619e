"""Alembic environment of the tasks API, as the FastAPI full-stack template has it: the URL from the app's settings.

Nothing in it is for envmgr: envmgr migrates its template database with this file unchanged (the app's settings,
read from POSTGRES_* when imported, name the template there: see docs/fastapi.md).
"""

from logging.config import fileConfig

from alembic import context
from app.config import settings
from app.models import Base
from sqlalchemy import engine_from_config, pool

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

target_metadata = Base.metadata


def get_url() -> str:
    return settings.SQLALCHEMY_DATABASE_URI


def run_migrations_offline() -> None:
    context.configure(url=get_url(), target_metadata=target_metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    configuration = config.get_section(config.config_ini_section, {})
    configuration["sqlalchemy.url"] = get_url()
    connectable = engine_from_config(configuration, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
