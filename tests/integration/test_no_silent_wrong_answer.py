"""Issue 19, items 1, 2 and 5: paths where envmgr gave a wrong answer without an error.

Each test is a small project run as a new user would (`pytest` in a subprocess, the CLI, the library) against real
containers, and asserts the right answer (or the loud error) the issue asks for."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from dotenv import dotenv_values

from envmgr.engine.connection import Engine
from tests.conftest import in_namespace
from tests.integration.test_cli import envmgr
from tests.integration.test_plugin import PROJECT_TABLE, make_project

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]


def no_daemon(monkeypatch: pytest.MonkeyPatch, pytester: pytest.Pytester) -> None:
    """Runs of this test start their own environment (a daemon of the machine is not theirs to lease from)."""
    monkeypatch.setenv("ENVMGR_DAEMON_SOCKET", str(pytester.path / "no-daemon.sock"))


# item 1: migrations go into the template, whatever the app's settings module cached ------------------------------

# An app whose settings are read once, when its settings module is imported (pydantic-settings' `settings =
# Settings()`, here without the dependency), as the FastAPI full-stack template has it.
APP_CONFIG = """
import os


class Settings:
    def __init__(self) -> None:
        self.POSTGRES_SERVER = os.environ["POSTGRES_SERVER"]
        self.POSTGRES_PORT = int(os.environ["POSTGRES_PORT"])
        self.POSTGRES_USER = os.environ["POSTGRES_USER"]
        self.POSTGRES_PASSWORD = os.environ["POSTGRES_PASSWORD"]
        self.POSTGRES_DB = os.environ["POSTGRES_DB"]

    @property
    def SQLALCHEMY_DATABASE_URI(self) -> str:
        return (f"postgresql+psycopg://{self.POSTGRES_USER}:{self.POSTGRES_PASSWORD}@{self.POSTGRES_SERVER}:"
                f"{self.POSTGRES_PORT}/{self.POSTGRES_DB}")


settings = Settings()
"""

# The usual env.py of such an app: the URL from the app's settings, set as sqlalchemy.url (no change for envmgr).
COMMON_ENV_PY = """
from alembic import context
from sqlalchemy import engine_from_config, pool

from app.core.config import settings

config = context.config


def run_migrations_online() -> None:
    configuration = config.get_section(config.config_ini_section) or {}
    configuration["sqlalchemy.url"] = str(settings.SQLALCHEMY_DATABASE_URI)
    connectable = engine_from_config(configuration, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
"""

ITEMS_MIGRATION = """
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
"""

APP_EXPORTS = """
[tool.envmgr.export]
POSTGRES_SERVER = "{postgres.host}"
POSTGRES_PORT = "{postgres.port}"
POSTGRES_USER = "{postgres.user}"
POSTGRES_PASSWORD = "{postgres.password}"
POSTGRES_DB = "{postgres.database}"
"""


def alembic_project(root: Path, env_py: str, *, seeds: bool) -> None:
    (root / "app" / "core").mkdir(parents=True)
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "core" / "__init__.py").write_text("")
    (root / "app" / "core" / "config.py").write_text(APP_CONFIG)
    (root / "migrations" / "versions").mkdir(parents=True)
    (root / "migrations" / "env.py").write_text(env_py)
    (root / "migrations" / "script.py.mako").write_text("")
    (root / "migrations" / "versions" / "0001_items.py").write_text(ITEMS_MIGRATION)
    (root / "alembic.ini").write_text("[alembic]\nscript_location = migrations\nprepend_sys_path = .\n")
    if seeds:
        (root / "seeds" / "postgres").mkdir(parents=True)
        (root / "seeds" / "postgres" / "001_items.yaml").write_text("items:\n  - {name: first}\n  - {name: second}\n")


def test_the_common_env_py_migrates_the_template_when_the_apps_settings_are_imported_first(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The conftest imports the app (its settings read POSTGRES_* then, naming the run's database `app`); the
    template is built later, in the same process: Alembic migrated `app`, the template stayed empty, and the seed
    failed with "fix the seed file" (a seed that is right)."""
    no_daemon(monkeypatch, pytester)
    alembic_project(pytester.path, COMMON_ENV_PY, seeds=True)
    table = '[tool.envmgr]\nalembic_ini = "alembic.ini"\nseeds = "seeds"\n' + APP_EXPORTS
    pytester.makefile(".toml", pyproject=f"[project]\nname = 'fullstack'\n{table}")
    pytester.makeconftest("from app.core.config import settings  # noqa: F401 - the app, imported as its tests do\n")
    pytester.makepyfile(
        test_items="""
        from sqlalchemy import text

        def test_the_seeded_items(db_session):
            assert db_session.execute(text("SELECT name FROM items ORDER BY id")).scalars().all() == ["first", "second"]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


OTHER_DATABASE_ENV_PY = """
from alembic import context
from sqlalchemy import create_engine, pool

# Somewhere in the app's settings the database name is fixed: the migrations reach another database of the server.
url = context.config.get_main_option("sqlalchemy.url").rsplit("/", 1)[0] + "/postgres"
with create_engine(url, poolclass=pool.NullPool).connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
"""


def test_migrations_that_reach_another_database_stop_the_run_naming_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migrations that change another database than the template left it empty, and nothing was reported: the
    tests ran against a database without tables. After migrating, a template that did not change (or another
    database that did) is an error naming the database the migrations reached, and the fix."""
    no_daemon(monkeypatch, pytester)
    alembic_project(pytester.path, OTHER_DATABASE_ENV_PY, seeds=False)
    pytester.makefile(".toml", pyproject="[project]\nname = 'elsewhere'\n[tool.envmgr]\nalembic_ini = 'alembic.ini'\n")
    pytester.makepyfile(test_never="def test_never_runs(db_session):\n    raise AssertionError('ran')\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), output[-3000:]
    assert "AssertionError: ran" not in output, "no test may run on an empty template"
    named = [line for line in output.splitlines() if re.search(r"migrat", line, re.I) and '"postgres"' in line]
    named += [line for line in output.splitlines() if re.search(r"migrat", line, re.I) and "'postgres'" in line]
    assert named, f"no line names the database the migrations reached:\n{output[-3000:]}"
    assert "fix:" in output


# item 2: `always` services are waited for before the first test, and reported as started --------------------------


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single-process", "two-workers"])
def test_an_always_service_is_ready_before_the_first_test_and_reported_as_started(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, xdist: list[str]
) -> None:
    """An app that reads DATABASE_URL from the environment reaches no envmgr fixture: with `always = true` its
    first tests ran before Postgres was ready ("server closed the connection unexpectedly" / "connection
    refused"), and the report said `"started": {}` or listed Postgres as skipped (unused)."""
    no_daemon(monkeypatch, pytester)
    make_project(
        pytester,
        """
        import os

        import psycopg
        import pytest

        @pytest.mark.parametrize("n", range(2))
        def test_the_app_reads_its_database_from_the_environment(n):
            with psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=5) as connection:
                assert connection.execute("SELECT count(*) FROM users").fetchone()[0] == 3
        """,
        table=PROJECT_TABLE + "\n[tool.envmgr.postgres]\nalways = true\n",
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--envmgr-report", "report.json", *xdist)
    result.assert_outcomes(passed=2)
    report = json.loads((pytester.path / "report.json").read_text())
    assert "postgres" in report["started"], report
    assert "postgres" not in report["skipped"], report


def test_an_always_service_that_cannot_start_stops_the_run_before_its_first_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing waited for an `always` service, so its failed start (here a seed file of a table that does not exist)
    was reported nowhere: tests that read DATABASE_URL ran (and passed, when they did not query the missing rows)."""
    no_daemon(monkeypatch, pytester)
    seeds = pytester.path / "seeds" / "postgres"
    seeds.mkdir(parents=True)
    (seeds / "001_missing.sql").write_text("INSERT INTO no_such_table (id) VALUES (1);\n")
    table = '[tool.envmgr]\nseeds = "seeds"\n\n[tool.envmgr.postgres]\nalways = true\n'
    make_project(pytester, "def test_the_app_reads_its_variables():\n    pass\n", table=table)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output[-3000:]
    assert "seeds/postgres/001_missing.sql" in output, output[-3000:]
    assert " passed" not in output.splitlines()[-1], output[-3000:]


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single-process", "two-workers"])
def test_a_service_that_cannot_start_errors_the_test_that_needs_it_and_stops_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, xdist: list[str]
) -> None:
    """A service that failed to start stopped the run with pytest.exit: the test that needed it was neither failed
    nor errored, and the last line said "2 passed" in green over a run that had stopped (exit status 4 the only
    sign). Now that test errors at its set-up with the cause and the fix, the summary counts it, the tests after it
    do not run, and the exit status is still pytest's usage error."""
    no_daemon(monkeypatch, pytester)
    seeds = pytester.path / "seeds" / "postgres"
    seeds.mkdir(parents=True)
    (seeds / "001_missing.sql").write_text("INSERT INTO no_such_table (id) VALUES (1);\n")
    tests = "def test_before():\n    pass\n\ndef test_db(postgres_url):\n    pass\n\n"
    tests += "".join(f"def test_after_{n}():\n    pass\n\n" for n in range(20))
    make_project(pytester, tests, table='[tool.envmgr]\nseeds = "seeds"\n')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", *xdist)
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output[-3000:]
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", outcomes.get("error")) == 1, output[-3000:]
    assert outcomes.get("passed", 0) < 21, "the tests after the failed start ran"
    assert "ERROR at setup of test_db" in output, output[-3000:]
    assert "seeds/postgres/001_missing.sql" in output, output[-3000:]
    assert "fix:" in output, output[-3000:]
    assert "During handling of the above exception" not in output, output[-3000:]


# item 5: a shell that sourced `envmgr up --env-file` is where a plain `pytest` runs ------------------------------


ATTACHED_TESTS = """
import os


def test_the_app_reaches_the_sourced_environment(postgres_url, envmgr_endpoints):
    assert envmgr_endpoints.id == os.environ["SOURCED_ENV_ID"]
    assert os.environ["DATABASE_URL"] == os.environ["SOURCED_DATABASE_URL"]
"""


def test_a_plain_pytest_in_a_shell_that_sourced_the_env_file_uses_that_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, engine: Engine, namespace: str
) -> None:
    """`eval "$(envmgr up --detach --env-file .env ...)"`, `set -a; . ./.env`, then `pytest`: the run ignored
    ENVMGR_ENV_ID, planned an environment of its own and pointed DATABASE_URL at its own port."""
    no_daemon(monkeypatch, pytester)
    make_project(pytester, ATTACHED_TESTS)
    env_file = pytester.path / ".env"
    up = envmgr("up", "postgres", "--detach", "--json", "--env-file", str(env_file), cwd=pytester.path,
                env={"ENVMGR_DAEMON": "off"})  # fmt: skip
    assert up.returncode == 0, up.stderr
    env_id = json.loads(up.stdout)["id"]
    try:
        sourced = {name: value for name, value in dotenv_values(env_file).items() if value is not None}
        assert sourced["ENVMGR_ENV_ID"] == env_id
        for name, value in sourced.items():  # what `set -a; . ./.env` does to the shell
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("SOURCED_ENV_ID", env_id)
        monkeypatch.setenv("SOURCED_DATABASE_URL", sourced["DATABASE_URL"])
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
        result.assert_outcomes(passed=1)
        assert in_namespace(engine, namespace) == [env_id], "the run started an environment of its own"
    finally:
        engine.remove_environment(env_id)


SOURCED_CONFTEST = """
import os

IMPORTED_DATABASE_URL = os.environ["DATABASE_URL"]  # the app's settings, read when the conftest imports it
"""

SOURCED_WORKER_TESTS = """
import os

import psycopg
import pytest

from conftest import IMPORTED_DATABASE_URL


def database_of(url):
    return url.rsplit("/", 1)[1].split("?")[0]


@pytest.mark.parametrize("n", range(4))
def test_the_app_reads_its_workers_own_database_at_import(postgres_url, envmgr_endpoints, n):
    assert envmgr_endpoints.id == os.environ["SOURCED_ENV_ID"]
    worker = os.environ["PYTEST_XDIST_WORKER"]
    assert database_of(os.environ["SOURCED_DATABASE_URL"]) == "app"  # what the file says: the shared database
    assert database_of(IMPORTED_DATABASE_URL) == f"app_{worker}"
    assert os.environ["DATABASE_URL"] == IMPORTED_DATABASE_URL
    with psycopg.connect(postgres_url) as connection:
        assert connection.execute("SELECT current_database()").fetchone()[0] == f"app_{worker}"
"""


def test_a_sourced_env_file_under_xdist_gives_each_worker_its_own_database_before_the_conftest_loads(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, engine: Engine, namespace: str
) -> None:
    """`envmgr up --env-file .env`, sourced, then `pytest -n 2`: the fixtures used each worker's database, but the
    app's settings (read at import) kept the file's DATABASE_URL, the environment's shared database, in both
    workers: what one worker's app wrote the other saw, and no reset ever touched it."""
    no_daemon(monkeypatch, pytester)
    make_project(pytester, SOURCED_WORKER_TESTS)
    pytester.makeconftest(SOURCED_CONFTEST)
    env_id = _sourced(pytester, monkeypatch, "postgres")
    try:
        monkeypatch.setenv("SOURCED_ENV_ID", env_id)
        monkeypatch.setenv("SOURCED_DATABASE_URL", os.environ["DATABASE_URL"])
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
        result.assert_outcomes(passed=4)
        assert in_namespace(engine, namespace) == [env_id], "the run started an environment of its own"
    finally:
        engine.remove_environment(env_id)


def test_a_sourced_env_id_of_an_environment_that_is_gone_is_said_in_one_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the sourced environment cannot be used, the run says so (and why) in one line instead of silently
    pointing the app at another one."""
    no_daemon(monkeypatch, pytester)
    make_project(pytester, "def test_db(postgres_url):\n    pass\n")
    monkeypatch.setenv("ENVMGR_ENV_ID", "0badc0ffee")
    monkeypatch.setenv("DATABASE_URL", "postgresql://envmgr:x@127.0.0.1:1/app")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    output = result.stdout.str() + result.stderr.str()
    said = [line for line in output.splitlines() if "0badc0ffee" in line and "ENVMGR_ENV_ID" in line]
    assert len(said) >= 1, f"nothing says why ENVMGR_ENV_ID=0badc0ffee is not used:\n{output[-3000:]}"


def _sourced(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *services: str) -> str:
    """`envmgr up SERVICES --detach --env-file .env`, its variables put in this test's environment (a shell that
    sourced the file); the environment's id."""
    env_file = pytester.path / ".env"
    up = envmgr("up", *services, "--detach", "--json", "--env-file", str(env_file), cwd=pytester.path,
                env={"ENVMGR_DAEMON": "off"})  # fmt: skip
    assert up.returncode == 0, up.stderr
    for name, value in dotenv_values(env_file).items():
        if value is not None:
            monkeypatch.setenv(name, value)
    return str(json.loads(up.stdout)["id"])


def _said_and_owned(result: pytest.RunResult, env_id: str, why: str) -> None:
    output = result.stdout.str() + result.stderr.str()
    said = [line for line in output.splitlines() if f"ENVMGR_ENV_ID={env_id}" in line and "is not used" in line]
    assert len(said) == 1, output[-3000:]
    assert why in said[0], said[0]
    assert "this run starts its own" in said[0]


def test_a_sourced_environment_with_too_few_replicas_for_the_workers_is_said_and_not_used(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, engine: Engine, namespace: str
) -> None:
    """`envmgr up` without --workers gives one WireMock for everybody; `pytest -n 2` on it would make both workers
    share its journal: the run says so and starts an environment of its own."""
    no_daemon(monkeypatch, pytester)
    table = "[tool.envmgr.wiremock]\nenabled = true\n[tool.envmgr.redis]\nenabled = false\n"
    make_project(pytester, "def test_wiremock(wiremock_url):\n    pass\n", table=table)
    env_id = _sourced(pytester, monkeypatch, "wiremock")
    try:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
        result.assert_outcomes(passed=1)
        _said_and_owned(result, env_id, "started without xdist workers (one replica for everybody) and this run has 2")
    finally:
        engine.remove_environment(env_id)


def test_a_sourced_environment_of_another_key_is_said_and_not_used(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, engine: Engine, namespace: str
) -> None:
    """An environment started with another user's key (here: another state folder, so another key): its passwords
    cannot be derived; the run says so and starts its own."""
    no_daemon(monkeypatch, pytester)
    make_project(pytester, "def test_db(postgres_url):\n    pass\n")
    env_id = _sourced(pytester, monkeypatch, "postgres")
    try:
        monkeypatch.setenv("XDG_STATE_HOME", str(pytester.path / "another-users-state"))
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
        result.assert_outcomes(passed=1)
        _said_and_owned(result, env_id, "was started with another key than yours")
    finally:
        engine.remove_environment(env_id)
