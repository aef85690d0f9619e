"""The fault matrix of issue 14, re-run: SIGKILL of the controller during the start and during a migration, four
concurrent `pytest -n 2` runs of one small project, and the engine killed and started again mid-run (on a private
dockerd). Each asserts that nothing is left and that what the user reads is clear, and prints its figure (time to
clean, wall time) as a line starting with "fault matrix:" (run with -s to see them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from envmgr.engine.connection import Engine
from envmgr.engine.labels import LABEL_NAMESPACE
from tests.conftest import in_namespace
from tests.integration.private_engine import PrivateEngine
from tests.integration.test_engine_loss import CLEAN_WITHIN, lose_the_engine_during_a_run, teardown_message
from tests.integration.test_plugin import MINIMAL_ENV_PY

pytestmark = [pytest.mark.docker, pytest.mark.ondemand, pytest.mark.usefixtures("no_daemon")]

RUN_TIMEOUT = 300.0
CONCURRENT_RUNS = 4

SMALL_PROJECT = """
[project]
name = "matrix"

[tool.envmgr]
image_set = "local"
"""

ISOLATION_TESTS = """
import os

import psycopg
import pytest

RUN = os.environ["MATRIX_RUN"]


@pytest.mark.parametrize("n", range(6))
def test_only_this_run_and_worker(postgres_url, redis_client, envmgr_worker, n):
    redis_client.set(f"{RUN}-{envmgr_worker.worker_id}-{n}", 1)
    keys = {key.decode() for key in redis_client.keys("*")}
    assert keys == {f"{RUN}-{envmgr_worker.worker_id}-{n}"}, "another run or worker wrote here"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS marks (run text)")
        connection.execute("INSERT INTO marks VALUES (%s)", (RUN,))
        runs = {row[0] for row in connection.execute("SELECT run FROM marks")}
        assert runs == {RUN}, "another run wrote into this database"
        assert connection.execute("SELECT current_database()").fetchone()[0] == "app_" + envmgr_worker.worker_id
"""

LONG_MIGRATION = """
import time
from pathlib import Path

from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.execute("CREATE TABLE started (id int)")
    Path({marker!r}).touch()
    deadline = time.monotonic() + 120  # a long migration: the harness kills the run meanwhile
    while time.monotonic() < deadline and not Path({marker!r}).with_suffix(".never").exists():
        time.sleep(0.1)
"""


@pytest.fixture
def no_daemon(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ENVMGR_DAEMON_SOCKET", str(tmp_path / "no-daemon.sock"))


def figure(scenario: str, text: str) -> None:
    print(f"fault matrix: {scenario}: {text}")


def pytest_process(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=project, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def kill_when(process: subprocess.Popen[str], ready: Callable[[], object], what: str) -> float:
    """SIGKILL of the run's controller once `ready()` is true; the moment of the kill."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while not ready():
        assert process.poll() is None, f"the run ended before {what}: {process.communicate()[0]}"
        assert time.monotonic() < deadline, f"no {what} within {RUN_TIMEOUT} s"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    killed = time.monotonic()
    process.wait(timeout=30)
    return killed


def seconds_to_clean(engine: Engine, namespace: str, since: float) -> float:
    while in_namespace(engine, namespace):
        assert time.monotonic() - since < CLEAN_WITHIN, f"still there: {in_namespace(engine, namespace)}"
        time.sleep(0.1)
    return time.monotonic() - since


def test_sigkill_of_the_controller_during_the_start(tmp_path: Path, engine: Engine, namespace: str) -> None:
    (tmp_path / "pyproject.toml").write_text(SMALL_PROJECT)
    (tmp_path / "test_small.py").write_text("def test_db(db_session, redis_client):\n    pass\n")
    run = pytest_process(tmp_path, "-n", "2")
    killed = kill_when(run, lambda: engine.containers(**{LABEL_NAMESPACE: namespace}), "container")
    seconds = seconds_to_clean(engine, namespace, killed)
    figure("SIGKILL of the controller during the start", f"nothing left {seconds:.1f} s after the kill")


def test_sigkill_of_the_controller_during_a_migration(tmp_path: Path, engine: Engine, namespace: str) -> None:
    versions = tmp_path / "migrations" / "versions"
    versions.mkdir(parents=True)
    (tmp_path / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    (tmp_path / "migrations" / "env.py").write_text(MINIMAL_ENV_PY)
    (tmp_path / "migrations" / "script.py.mako").write_text("")
    marker = tmp_path / "migrating"
    (versions / "0001_long.py").write_text(textwrap.dedent(LONG_MIGRATION.format(marker=str(marker))))
    (tmp_path / "pyproject.toml").write_text(SMALL_PROJECT + 'alembic_ini = "alembic.ini"\n')
    (tmp_path / "test_small.py").write_text("def test_db(db_session):\n    pass\n")
    run = pytest_process(tmp_path, "-n", "2")
    killed = kill_when(run, marker.exists, "migration")
    seconds = seconds_to_clean(engine, namespace, killed)
    figure("SIGKILL of the controller during a migration", f"nothing left {seconds:.1f} s after the kill")


def test_four_concurrent_runs_keep_apart_and_leave_nothing(tmp_path: Path, engine: Engine, namespace: str) -> None:
    (tmp_path / "pyproject.toml").write_text(SMALL_PROJECT)
    (tmp_path / "test_isolation.py").write_text(textwrap.dedent(ISOLATION_TESTS))
    started = time.monotonic()
    alone = pytest_process(tmp_path, "-n", "2", env={"MATRIX_RUN": "alone"})
    output = alone.communicate(timeout=RUN_TIMEOUT)[0]
    assert alone.returncode == 0, output
    baseline = time.monotonic() - started
    started = time.monotonic()
    runs = [pytest_process(tmp_path, "-n", "2", env={"MATRIX_RUN": f"run{i}"}) for i in range(CONCURRENT_RUNS)]
    outputs = [run.communicate(timeout=RUN_TIMEOUT)[0] for run in runs]
    wall = time.monotonic() - started
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output
        assert "6 passed" in output, output
        assert "Traceback" not in output
        assert "INTERNALERROR" not in output
    assert in_namespace(engine, namespace) == [], "each run removed its environment before it ended"
    figure(
        f"{CONCURRENT_RUNS} concurrent pytest -n 2 runs",
        f"all passed, no cross-talk, 0 left; {wall:.1f} s wall (one run alone, just before: {baseline:.1f} s)",
    )


def test_the_engine_killed_and_started_again_mid_run(
    private_engine: PrivateEngine, tmp_path: Path, namespace: str
) -> None:
    loss = lose_the_engine_during_a_run(tmp_path, private_engine)
    assert "Traceback" not in loss.output
    assert "INTERNALERROR" not in loss.output
    assert teardown_message(loss.output)[0].startswith(f"envmgr: error: could not remove environment {loss.env_id}")
    assert loss.seconds_to_clean < CLEAN_WITHIN
    figure(
        "dockerd killed mid-run and started again",
        f"one-line error and fix at teardown, nothing left {loss.seconds_to_clean:.1f} s after the engine answered",
    )
