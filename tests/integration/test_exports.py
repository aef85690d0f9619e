"""The app's own variable names, in os.environ before conftest files and the app are imported."""

from __future__ import annotations

import textwrap

import pytest

from tests.integration.test_plugin import PROJECT_TABLE

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]

TABLE = PROJECT_TABLE + textwrap.dedent(
    """
    [tool.envmgr.export]
    POSTGRES_SERVER = "{postgres.host}"
    POSTGRES_PORT = "{postgres.port}"
    POSTGRES_DB = "{postgres.database}"
    SQLALCHEMY_DATABASE_URI = "{postgres.url:psycopg}"
    CACHE_URL = "{redis.url}"
    """
)

# The app reads its settings when it is imported, as settings modules do; conftest.py imports it.
APP = """
import os

SETTINGS = {name: os.environ.get(name) for name in (
    "DATABASE_URL", "POSTGRES_SERVER", "POSTGRES_PORT", "POSTGRES_DB", "SQLALCHEMY_DATABASE_URI", "CACHE_URL",
    "REDIS_URL",
)}
"""

TESTS = """
import os

import psycopg
import redis
import sqlalchemy

import app


def test_settings_read_at_import_reach_this_workers_services(postgres_url, redis_url):
    settings = app.SETTINGS
    database = postgres_url.rsplit("/", 1)[1]
    assert database == ("app_" + os.environ["PYTEST_XDIST_WORKER"] if "-n" in {xdist!r} else "app")
    assert settings["POSTGRES_DB"] == database
    assert settings["DATABASE_URL"] == postgres_url
    assert settings["CACHE_URL"] == redis_url == settings["REDIS_URL"]
    assert settings["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")
    engine = sqlalchemy.create_engine(settings["SQLALCHEMY_DATABASE_URI"])
    with engine.connect() as connection:
        assert connection.execute(sqlalchemy.text("SELECT count(*) FROM users")).scalar() == 3
    engine.dispose()
    assert int(settings["POSTGRES_PORT"]) > 0 and settings["POSTGRES_SERVER"] == "127.0.0.1"
    assert redis.Redis.from_url(settings["CACHE_URL"]).ping()
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single-process", "two-workers"])
def test_exported_before_the_conftest_imports_the_app(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: object, xdist: list[str]
) -> None:
    monkeypatch.setenv("ENVMGR_DAEMON_SOCKET", str(pytester.path / "no-daemon.sock"))
    for name in ("DATABASE_URL", "REDIS_URL", "ENVMGR_RUN_PLAN"):
        monkeypatch.delenv(name, raising=False)  # nothing inherited from the run that runs this test
    pytester.makefile(".toml", pyproject=f"[project]\nname = 'exports'\n{TABLE}")
    pytester.makepyfile(app=APP, conftest="import app  # the app, and its settings, at conftest import\n")
    pytester.makepyfile(test_settings=TESTS.format(xdist=xdist))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *xdist)
    result.assert_outcomes(passed=1)


def test_a_bad_export_names_the_key(pytester: pytest.Pytester) -> None:
    table = PROJECT_TABLE + '\n[tool.envmgr.export]\nDB_HOST = "{postgress.host}"\n'
    pytester.makefile(".toml", pyproject=f"[project]\nname = 'exports'\n{table}")
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "export.DB_HOST: unknown service 'postgress'" in result.stderr.str()


ENV_PY_FROM_APP_SETTINGS = """
import os

from alembic import context
from sqlalchemy import create_engine

# As an app's settings build it (e.g. the FastAPI full-stack template): from POSTGRES_* variables, not sqlalchemy.url
URL = "postgresql+psycopg://{}:{}@{}:{}/{}".format(
    os.environ["POSTGRES_USER"], os.environ["POSTGRES_PASSWORD"], os.environ["POSTGRES_SERVER"],
    os.environ["POSTGRES_PORT"], os.environ["POSTGRES_DB"],
)
with create_engine(URL).connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
"""

MIGRATION = """
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.execute("CREATE TABLE things (id serial PRIMARY KEY, name text)")
"""


def test_an_env_py_that_reads_app_settings_migrates_unchanged(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The template is migrated while the POSTGRES_* variables (and the export table's) name it."""
    monkeypatch.setenv("ENVMGR_DAEMON_SOCKET", str(pytester.path / "no-daemon.sock"))
    versions = pytester.path / "migrations" / "versions"
    versions.mkdir(parents=True)
    (pytester.path / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    (pytester.path / "migrations" / "env.py").write_text(ENV_PY_FROM_APP_SETTINGS)
    (pytester.path / "migrations" / "script.py.mako").write_text("")
    (versions / "0001_things.py").write_text(MIGRATION)
    table = '[tool.envmgr]\nalembic_ini = "alembic.ini"\n\n[tool.envmgr.export]\nPOSTGRES_SERVER = "{postgres.host}"\n'
    pytester.makefile(".toml", pyproject=f"[project]\nname = 'appsettings'\n{table}")
    pytester.makepyfile(
        test_things="from sqlalchemy import text\n\n"
        "def test_migrated(db_session):\n"
        "    assert db_session.execute(text('SELECT count(*) FROM things')).scalar() == 0\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=1)
