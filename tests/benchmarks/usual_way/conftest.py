"""The example suite's fixtures written the usual way: plain testcontainers, the alembic CLI, one set per worker.

The baseline of `bench_plugin.py` (nothing of envmgr's plugin; its seed loader only, the seeding is not what is
compared). Loaded as a plugin with envmgr's switched off, so the unchanged suite of the example app runs against it:

    python -m pytest tests/example_app/suite/test_releases.py -p no:envmgr -p tests.benchmarks.usual_way.conftest [-n N]

Every pytest process (each xdist worker, or the only one) starts its own Postgres and Redis containers on first use,
migrates its database with `alembic upgrade head` in a subprocess and loads the seeds. `db_session` is SQLAlchemy's
"join a session into an external transaction" recipe; a test marked `envmgr_fresh_db` commits for real, and its
database is rebuilt afterwards: DROP SCHEMA public CASCADE, then the migrations and the seeds again.
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy
from sqlalchemy.orm import Session

os.environ.setdefault("TC_HOST", "127.0.0.1")  # reach the containers on 127.0.0.1, never the bridge gateway
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")  # the Ryuk image cannot be pulled here

from testcontainers.community.postgres import PostgresContainer
from testcontainers.community.redis import RedisContainer

from envmgr.services.postgres.template.seeds import load_postgres_seeds

REPO = Path(__file__).resolve().parents[3]
APP = REPO / "tests" / "example_app"
SEEDS = REPO / "seeds"
POSTGRES_IMAGE = "envmgr-local/postgres:15"
REDIS_IMAGE = "envmgr-local/redis:7"
FRESH_DB_MARKER = "envmgr_fresh_db"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{FRESH_DB_MARKER}: the test commits for real; the schema is rebuilt after it")


def migrate_and_seed(url: str, ini_path: Path) -> None:
    """`alembic upgrade head` from the app's folder (as a developer runs it), then the seeds."""
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ini_path), "upgrade", "head"],
        cwd=APP,
        check=True,
        capture_output=True,
    )
    load_postgres_seeds(url, SEEDS)


@pytest.fixture(scope="session")
def postgres_container() -> Iterator[PostgresContainer]:
    with PostgresContainer(POSTGRES_IMAGE, username="test", password="test", dbname="test", driver=None) as container:
        yield container


@pytest.fixture(scope="session")
def alembic_ini(postgres_container: PostgresContainer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app's alembic.ini with sqlalchemy.url pointing at this process's container (its env.py reads only that)."""
    config = configparser.RawConfigParser()
    config.read(APP / "alembic.ini")
    config.set("alembic", "sqlalchemy.url", postgres_container.get_connection_url(driver="psycopg"))
    path = tmp_path_factory.mktemp("alembic") / "alembic.ini"
    with path.open("w") as handle:
        config.write(handle)
    return path


@pytest.fixture(scope="session")
def postgres_url(postgres_container: PostgresContainer, alembic_ini: Path) -> str:
    url = postgres_container.get_connection_url()
    migrate_and_seed(url, alembic_ini)
    return url


@pytest.fixture(scope="session")
def db_engine(postgres_container: PostgresContainer, postgres_url: str) -> Iterator[sqlalchemy.Engine]:
    engine = sqlalchemy.create_engine(postgres_container.get_connection_url(driver="psycopg"))
    yield engine
    engine.dispose()


@pytest.fixture
def db_session(request: pytest.FixtureRequest, db_engine: sqlalchemy.Engine) -> Iterator[Session]:
    if request.node.get_closest_marker(FRESH_DB_MARKER) is not None:
        with Session(db_engine) as session:
            yield session
        return
    connection = db_engine.connect()
    transaction = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    yield session
    session.close()
    transaction.rollback()
    connection.close()


@pytest.fixture(autouse=True)
def _rebuild_schema_after_commits(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if request.node.get_closest_marker(FRESH_DB_MARKER) is None or "postgres_url" not in request.fixturenames:
        return
    engine: sqlalchemy.Engine = request.getfixturevalue("db_engine")
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    migrate_and_seed(request.getfixturevalue("postgres_url"), request.getfixturevalue("alembic_ini"))


@pytest.fixture(scope="session")
def redis_container() -> Iterator[RedisContainer]:
    with RedisContainer(REDIS_IMAGE) as container:
        yield container


@pytest.fixture
def redis_client(redis_container: RedisContainer) -> Iterator[redis.Redis[bytes]]:
    client = redis_container.get_client()
    yield client
    client.flushdb()
    client.close()
