"""The pytest plugin, run as a user would: a project with [tool.envmgr], its tests, `pytest` and `pytest -n N`."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from envmgr.engine.connection import Engine
from tests.conftest import REPO

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]

PROJECT_TABLE = f"""
[tool.envmgr]
alembic_ini = "{REPO / "tests" / "example_app" / "alembic.ini"}"
seeds = "{REPO / "seeds"}"
"""

ISOLATION_TESTS = """
import os
import psycopg
import pytest

@pytest.mark.parametrize("n", range({count}))
def test_worker_sees_only_its_own_rows(postgres_url, redis_client, n):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        assert connection.execute("SELECT current_database()").fetchone()[0] == "app_" + worker
        connection.execute("INSERT INTO users (email, name) VALUES (%s, %s)", (f"{{worker}}-{{n}}@example.com", worker))
        others = connection.execute(
            "SELECT count(*) FROM users WHERE name LIKE 'gw%%' AND name <> %s", (worker,)
        ).fetchone()[0]
        assert others == 0
        assert connection.execute("SELECT count(*) FROM users WHERE id <= 3").fetchone()[0] == 3
    assert redis_client.connection_pool.connection_kwargs["db"] == int(worker[2:]) + 1
    redis_client.set(f"seen:{{n}}", worker)
    assert {{key.decode() for key in redis_client.keys()}} == {{f"seen:{{n}}"}}
"""


MINIMAL_ENV_PY = """
from alembic import context
from sqlalchemy import create_engine

with create_engine(context.config.get_main_option("sqlalchemy.url")).connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""


def make_project(pytester: pytest.Pytester, tests: str, table: str = PROJECT_TABLE) -> None:
    pytester.makefile(".toml", pyproject=f"[project]\nname = 'demo'\n{table}")
    pytester.makepyfile(test_demo=textwrap.dedent(tests))


def worker_isolation(pytester: pytest.Pytester, workers: int) -> None:
    make_project(pytester, ISOLATION_TESTS.format(count=workers * 3))
    result = pytester.runpytest_subprocess("-n", str(workers), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=workers * 3)
    workers_seen = set(re.findall(r"\[(gw\d+)\]", "\n".join(result.outlines))) or None
    assert workers_seen is None or len(workers_seen) >= 2


def test_session_mode_rolls_back_between_tests(pytester: pytest.Pytester) -> None:
    make_project(
        pytester,
        """
        from sqlalchemy import text

        def test_seeded_and_commit_is_allowed(db_session):
            assert db_session.execute(text("SELECT count(*) FROM users")).scalar() == 3
            db_session.execute(text("INSERT INTO users (email, name) VALUES ('x@example.com', 'X')"))
            db_session.commit()
            assert db_session.execute(text("SELECT count(*) FROM users")).scalar() == 4

        def test_previous_commit_was_rolled_back(db_session):
            assert db_session.execute(text("SELECT count(*) FROM users")).scalar() == 3
            assert db_session.execute(text("SELECT count(*) FROM tracks")).scalar() > 0

        def test_redis_is_emptied_after_each_test_part_1(redis_client):
            redis_client.set("k", "v")

        def test_redis_is_emptied_after_each_test_part_2(redis_client):
            assert redis_client.get("k") is None

        def test_database_is_the_sessions(postgres_url, envmgr_worker):
            assert envmgr_worker.worker_id == "main" and not envmgr_worker.isolated
            assert postgres_url.endswith("/app")
        """,
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*envmgr: environment * template app_tpl_* built*"])


def test_fresh_db_marker_commits_for_real_then_restores(pytester: pytest.Pytester) -> None:
    make_project(
        pytester,
        """
        import psycopg
        import pytest
        from sqlalchemy import text

        @pytest.mark.envmgr_fresh_db
        def test_commit_visible_to_other_connections(db_session, postgres_url):
            db_session.execute(text("INSERT INTO users (email, name) VALUES ('c@example.com', 'C')"))
            db_session.commit()
            with psycopg.connect(postgres_url) as other:
                assert other.execute("SELECT count(*) FROM users").fetchone()[0] == 4

        def test_next_test_sees_the_template_again(postgres_url):
            with psycopg.connect(postgres_url) as other:
                assert other.execute("SELECT count(*) FROM users").fetchone()[0] == 3
        """,
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_two_workers_are_isolated(pytester: pytest.Pytester) -> None:
    worker_isolation(pytester, 2)


@pytest.mark.ondemand  # the two-worker case above checks the same in CI
def test_four_workers_are_isolated(pytester: pytest.Pytester) -> None:
    worker_isolation(pytester, 4)


def test_second_run_against_a_kept_environment_skips_migrations(pytester: pytest.Pytester, engine: Engine) -> None:
    make_project(
        pytester,
        """
        def test_users(db_session):
            from sqlalchemy import text
            assert db_session.execute(text("SELECT count(*) FROM users")).scalar() == 3
        """,
    )
    first = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--envmgr-keep")
    first.assert_outcomes(passed=1)
    env_id = re.search(r"envmgr down (\w+)", first.stdout.str())
    assert env_id is not None, first.stdout.str()
    try:
        first.stdout.fnmatch_lines(["*template app_tpl_* built*"])
        second = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--envmgr-env", env_id.group(1))
        second.assert_outcomes(passed=1)
        second.stdout.fnmatch_lines(["*template app_tpl_* reused (migrations and seeds skipped)*"])
    finally:
        engine.remove_environment(env_id.group(1))


def test_broken_migration_fails_the_run_before_any_test(pytester: pytest.Pytester, tmp_path: Path) -> None:
    project = pytester.path
    (project / "migrations" / "versions").mkdir(parents=True)
    (project / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    (project / "migrations" / "env.py").write_text(MINIMAL_ENV_PY)
    (project / "migrations" / "script.py.mako").write_text("")
    (project / "migrations" / "versions" / "0001_broken.py").write_text(
        textwrap.dedent(
            """
            from alembic import op
            revision = "0001"
            down_revision = None

            def upgrade():
                op.execute("CREATE TABLE ok (id int)")
                op.execute("ALTER TABLE missing_table ADD COLUMN x int")
            """
        )
    )
    make_project(
        pytester,
        "def test_never_runs(db_session):\n    raise AssertionError('ran')\n",
        table='[tool.envmgr]\nalembic_ini = "alembic.ini"\n',
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret != 0
    output = result.stdout.str() + result.stderr.str()
    assert "0001" in output
    assert "missing_table" in output
    assert "fix:" in output
    assert "AssertionError: ran" not in output, "no test may run after a failed migration"
    assert "ERROR at setup of test_never_runs" in output, "the test that needed the database is the one that errors"


def test_bad_seed_file_fails_the_run_naming_the_file(pytester: pytest.Pytester) -> None:
    seeds = pytester.path / "seeds" / "postgres"
    seeds.mkdir(parents=True)
    (seeds / "001_broken.sql").write_text("CREATE TABLE a (id int);\nINSERT INTO nowhere VALUES (1);\n")
    make_project(pytester, "def test_never_runs(db_session):\n    pass\n", table='[tool.envmgr]\nseeds = "seeds"\n')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    assert result.ret != 0
    output = result.stdout.str() + result.stderr.str()
    assert "001_broken.sql" in output
    assert "nowhere" in output
    assert "passed" not in result.stdout.str()


def test_attaching_to_a_kept_environment_with_per_worker_replicas(pytester: pytest.Pytester, engine: Engine) -> None:
    """`-n 2 --envmgr-keep`, then `-n 2 --envmgr-env ID` with WireMock (a replica per worker): each worker of the
    second run reaches its own replica (this used to be a raw KeyError on 'wiremock@1')."""
    make_project(
        pytester,
        """
        import os
        import pytest
        import requests

        from envmgr.services.wiremock.admin import admin_auth

        @pytest.mark.parametrize("n", range(4))
        def test_own_replica(wiremock_url, envmgr_endpoints, n):
            worker = os.environ["PYTEST_XDIST_WORKER"]
            assert envmgr_endpoints["wiremock"].replica == int(worker[2:])
            login = admin_auth(envmgr_endpoints["wiremock"])  # the admin API asks for a login (admin_auth)
            assert requests.get(wiremock_url + "/__admin/health", timeout=5, auth=login).ok
        """,
        table=PROJECT_TABLE + "\n[tool.envmgr.wiremock]\nenabled = true\n",
    )
    first = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", "--envmgr-keep")
    first.assert_outcomes(passed=4)
    env_id = re.search(r"envmgr down (\w+)", first.stdout.str())
    assert env_id is not None, first.stdout.str()
    try:
        second = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", "--envmgr-env", env_id.group(1))
        second.assert_outcomes(passed=4)
    finally:
        engine.remove_environment(env_id.group(1))


def test_a_run_of_more_workers_than_the_environment_has_replicas_for_is_refused(
    pytester: pytest.Pytester, engine: Engine
) -> None:
    """`envmgr up` serves every worker from one WireMock: `pytest -n 2 --envmgr-env ID` would let each worker's
    tests see the other's requests, so the run stops at the first test that reaches WireMock, with the fix;
    `envmgr up --workers 2` gives each worker its own replica, and the same run passes."""
    from tests.integration.test_cli import envmgr

    make_project(
        pytester,
        """
        import os
        import pytest
        import requests

        @pytest.mark.parametrize("n", range(4))
        def test_own_journal(wiremock, wiremock_url, envmgr_endpoints, n):
            requests.get(f"{wiremock_url}/probe/{os.environ['PYTEST_XDIST_WORKER']}/{n}", timeout=5)
            assert envmgr_endpoints["wiremock"].replica == int(os.environ["PYTEST_XDIST_WORKER"][2:])
            assert [r["request"]["url"] for r in wiremock.requests()] == [
                f"/probe/{os.environ['PYTEST_XDIST_WORKER']}/{n}"]
        """,
        table="[tool.envmgr.wiremock]\nenabled = true\n",
    )
    for workers, outcome in (("0", "refused"), ("2", "passed")):
        up = envmgr("up", "wiremock", "--detach", "--json", "--workers", workers, cwd=pytester.path,
                    env={"ENVMGR_DAEMON": "off"})  # fmt: skip
        assert up.returncode == 0, up.stderr
        env_id = json.loads(up.stdout)["id"]
        try:
            run = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", "--envmgr-env", env_id)
            if outcome == "passed":
                run.assert_outcomes(passed=4)
            else:
                assert run.ret != 0
                output = run.stdout.str()
                assert "passed" not in output
                said = f"environment {env_id} was started without xdist workers (one replica for everybody): wiremock"
                assert f"{said} has no replica" in output
                assert "fix: start it for this run's workers: envmgr up --workers 2" in output
        finally:
            engine.remove_environment(env_id)
