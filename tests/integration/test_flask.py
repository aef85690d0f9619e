"""Flask-Migrate's generated env.py migrated in-process by `envmgr up` (no pytest, the project found from a
sub-folder): the app's context pushed, the app made on the template's variables; and the two ways it goes wrong."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]

EXAMPLE = REPO / "tests" / "examples" / "flask_app"
REVISION = "40a75dce95ae"  # migrations/versions/ of the example
FLASK_TABLE = '[tool.envmgr.flask]\napp = "billing:create_app"\n'


def flask_project(folder: Path, *, flask_table: str = FLASK_TABLE, export: str = "") -> Path:
    """The example's app, Flask-Migrate folder and seeds, with a pyproject of Postgres and Redis only."""
    for part in ("billing", "migrations", "seeds"):
        shutil.copytree(EXAMPLE / part, folder / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.rmtree(folder / "seeds" / "wiremock")
    (folder / "pyproject.toml").write_text(
        '[project]\nname = "billing"\n\n[tool.envmgr]\nalembic_ini = "migrations/alembic.ini"\nseeds = "seeds"\n\n'
        f"{flask_table}{export}"
    )
    (folder / "elsewhere").mkdir()
    return folder


def envmgr(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envmgr", *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def up_and_read(project: Path) -> tuple[int, str | None, list[str]]:
    """`envmgr up postgres --detach` from a sub-folder (the project root is not the working directory), then the
    migrated database's alembic revision and invoice numbers; the environment is removed afterwards."""
    started = envmgr("up", "postgres", "--detach", "--json", cwd=project / "elsewhere")
    assert started.returncode == 0, started.stderr
    data = json.loads(started.stdout)
    try:
        with psycopg.connect(data["services"]["postgres"]["url"]) as connection:
            revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            numbers = [row[0] for row in connection.execute("SELECT number FROM invoices ORDER BY number")]
    finally:
        assert envmgr("down", data["id"], cwd=project).returncode == 0
    return started.returncode, revision[0] if revision else None, numbers


def test_flask_migrate_env_py_runs_unchanged_in_the_apps_context(tmp_path: Path) -> None:
    project = flask_project(tmp_path)
    code, revision, numbers = up_and_read(project)
    assert (code, revision) == (0, REVISION)
    assert numbers == ["A-001", "A-002", "I-001"]  # migrated, then seeded


def test_an_app_reading_an_exported_variable_gets_the_templates_url(tmp_path: Path) -> None:
    project = flask_project(tmp_path, export='\n[tool.envmgr.export]\nBILLING_DB = "{postgres.url:psycopg}"\n')
    init = project / "billing" / "__init__.py"
    init.write_text(init.read_text().replace("return url.replace(", 'return os.environ["BILLING_DB"] or url.replace('))
    code, revision, _ = up_and_read(project)
    assert (code, revision) == (0, REVISION)


def test_without_the_flask_setting_the_error_says_to_set_it(tmp_path: Path) -> None:
    project = flask_project(tmp_path, flask_table="")
    failed = envmgr("up", "postgres", "--detach", "--json", cwd=project)
    assert failed.returncode == 6, failed.stderr  # a migration error
    assert "Working outside of application context" in failed.stderr
    assert "[tool.envmgr.flask] app" in failed.stderr


def test_an_app_that_ignores_the_environment_is_not_migrated(tmp_path: Path) -> None:
    project = flask_project(tmp_path)
    init = project / "billing" / "__init__.py"
    fixed = '"postgresql+psycopg://billing@127.0.0.1:9/billing"'
    init.write_text(init.read_text().replace('os.environ.get("DATABASE_URL", ', f"({fixed} or "))
    failed = envmgr("up", "postgres", "--detach", "--json", cwd=project)
    assert failed.returncode == 2, failed.stderr  # a configuration error: flask.app
    assert "connects to database 'billing', not to the template" in failed.stderr
    assert "read the database URL from the environment" in failed.stderr


def test_an_app_module_that_does_not_import_names_the_setting(tmp_path: Path) -> None:
    project = flask_project(tmp_path, flask_table='[tool.envmgr.flask]\napp = "biling:create_app"\n')
    failed = envmgr("up", "postgres", "--detach", "--json", cwd=project)
    assert failed.returncode == 2, failed.stderr
    assert "flask.app: cannot import 'biling'" in failed.stderr


FLASK_TESTS = """
from sqlalchemy import text


def test_the_seeded_invoices(db_session):
    assert db_session.execute(text("SELECT number FROM invoices ORDER BY number")).scalars().all() == [
        "A-001", "A-002", "I-001"
    ]
"""


def _run_with_the_app_imported(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.RunResult:
    """pytest in the project, its conftest importing the app (so Flask-Migrate's env.py runs in a clean process, in
    the app context made there)."""
    monkeypatch.setenv("ENVMGR_DAEMON_SOCKET", str(pytester.path / "no-daemon.sock"))
    pytester.makeconftest("import billing  # noqa: F401 - the app, imported as its tests do\n")
    pytester.makepyfile(test_invoices=FLASK_TESTS)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider")


def test_flask_migrate_runs_in_a_clean_process_in_the_apps_context(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    flask_project(pytester.path)
    _run_with_the_app_imported(pytester, monkeypatch).assert_outcomes(passed=1)


def test_an_app_that_ignores_the_environment_is_named_from_the_clean_process_too(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = flask_project(pytester.path)
    init = project / "billing" / "__init__.py"
    fixed = '"postgresql+psycopg://billing@127.0.0.1:9/billing"'
    init.write_text(init.read_text().replace('os.environ.get("DATABASE_URL", ', f"({fixed} or "))
    result = _run_with_the_app_imported(pytester, monkeypatch)
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output[-3000:]
    assert "connects to database 'billing', not to the template" in output
