"""The run report (`--envmgr-report`, the summary line) and post-mortems (`--envmgr-keep-on-failure`,
`--envmgr-logs-dir`), run as a user would: a project, its tests, `pytest` in a subprocess."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import psycopg
import pytest

from envmgr.engine.connection import Engine
from envmgr.engine.reaper import expired, orphaned
from envmgr.environment import Environment
from tests.conftest import in_namespace, labelled
from tests.integration.test_plugin import make_project

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]

REPORT_TESTS = """
import pytest
from sqlalchemy import text

def test_seeded(db_session):
    assert db_session.execute(text("SELECT count(*) FROM users")).scalar() == 3

@pytest.mark.envmgr_fresh_db
@pytest.mark.parametrize("n", range(2))
def test_commits_for_real(db_session, n):
    db_session.execute(text("INSERT INTO users (email, name) VALUES (:e, 'X')"), {"e": f"{n}@example.com"})
    db_session.commit()

def test_redis(redis_client):
    redis_client.set("k", "v")
"""

BARE_TABLE = "[tool.envmgr]\n"  # postgres and redis, no migrations: the quickest environment

FAILING_TESTS = """
def test_passes(postgres_url, redis_client):
    redis_client.set("k", "v")

def test_fails(postgres_url):
    assert postgres_url == "something else"
"""

PASSING_TESTS = """
def test_passes(postgres_url, redis_client):
    redis_client.set("k", "v")
"""


@pytest.fixture(autouse=True)
def no_daemon(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """These runs start their own environment, even when an envmgr daemon runs on this machine."""
    monkeypatch.setenv("ENVMGR_DAEMON_SOCKET", str(tmp_path / "no-daemon.sock"))


def env_id_in(output: str) -> str:
    found = re.search(r"envmgr down (\w+)", output)
    assert found is not None, output
    return found.group(1)


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single-process", "two-workers"])
def test_report_json_and_summary_line(pytester: pytest.Pytester, xdist: list[str]) -> None:
    from tests.integration.test_plugin import PROJECT_TABLE

    make_project(pytester, REPORT_TESTS, table=PROJECT_TABLE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *xdist, "--envmgr-report", "out/report.json")
    result.assert_outcomes(passed=4)
    report = json.loads((pytester.path / "out" / "report.json").read_text())
    assert set(report) >= {"environment", "services", "total_seconds"}
    assert set(report["services"]) == {"postgres", "redis"}
    postgres, redis = report["services"]["postgres"], report["services"]["redis"]
    assert set(postgres) == {"create", "ready", "prepare", "migrate", "seed", "reset", "resets"}
    for phase in ("create", "ready", "prepare", "migrate", "seed"):
        assert postgres[phase] > 0, phase
    assert postgres["prepare"] >= postgres["migrate"] + postgres["seed"]
    assert redis["create"] > 0
    assert redis["ready"] > 0
    assert postgres["resets"] == 2, "each envmgr_fresh_db test re-clones its database once, in whichever worker"
    assert postgres["reset"] > 0
    assert redis["resets"] == 0, "FLUSHDB after a test is not a reset"
    assert report["total_seconds"] >= report["start_seconds"] > 0
    lines = [line for line in result.outlines if line.startswith("envmgr: environment")]
    assert len(lines) == 1, result.outlines
    assert lines[0].startswith(f"envmgr: environment {report['environment']} | template app_tpl_")
    assert re.search(r"\| postgres create \d+\.\d\ds ready \d+\.\d\ds .*migrate \d+\.\d\ds seed \d+\.\d\ds", lines[0])
    assert "| redis create" in lines[0]
    assert re.search(r"\| resets 2 in \d+ ms \(postgres 2\)$", lines[0]), lines[0]


def test_keep_on_failure_keeps_a_reachable_environment_and_its_logs(
    pytester: pytest.Pytester, engine: Engine, namespace: str
) -> None:
    make_project(pytester, FAILING_TESTS, table=BARE_TABLE)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--envmgr-keep-on-failure", "--envmgr-logs-dir", "logs"
    )
    try:
        result.assert_outcomes(passed=1, failed=1)
        output = result.stdout.str()
        env_id = env_id_in(output)
        assert f"environment {env_id} is kept for a post-mortem" in output
        assert re.search(r"envmgr:\s+postgres\s+postgresql://envmgr:\S+@127\.0\.0\.1:\d+/app", output), output
        assert re.search(r"envmgr:\s+redis\s+redis://:\S+@127\.0\.0\.1:\d+/0", output), output
        logs = pytester.path / "logs"
        assert sorted(path.name for path in logs.iterdir()) == ["postgres.log", "redis.log"]
        assert "database system is ready to accept connections" in (logs / "postgres.log").read_text()
        assert "Ready to accept connections" in (logs / "redis.log").read_text()

        time.sleep(2)  # pytest has exited: neither its watchdog nor a sweep may take the environment
        record = engine.environments()[env_id]
        assert record.detached
        assert not orphaned(record)
        assert not expired(record, time.time(), 3600)
        environment = Environment.attach(env_id, engine=engine)
        assert all(health.healthy for health in environment.health().values())
        with psycopg.connect(environment.endpoints["postgres"].url) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
    finally:
        for env_id in in_namespace(engine, namespace):
            engine.remove_environment(env_id)


def test_keep_on_failure_after_a_passing_run_leaves_nothing(pytester: pytest.Pytester, engine: Engine) -> None:
    make_project(pytester, PASSING_TESTS, table=BARE_TABLE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--envmgr-keep-on-failure")
    result.assert_outcomes(passed=1)
    assert "envmgr down" not in result.stdout.str()
    assert not (pytester.path / "envmgr-logs").exists()
    line = next(line for line in result.outlines if line.startswith("envmgr: environment"))
    env_id = line.split()[2]
    assert labelled(engine, env_id) == []


def test_logs_dir_alone_writes_logs_of_a_failed_run_and_removes_the_environment(
    pytester: pytest.Pytester, engine: Engine
) -> None:
    make_project(pytester, FAILING_TESTS, table=BARE_TABLE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--envmgr-logs-dir", "ci/logs")
    result.assert_outcomes(passed=1, failed=1)
    assert "envmgr down" not in result.stdout.str()
    result.stdout.fnmatch_lines([f"envmgr: logs of 2 container(s) written to {pytester.path / 'ci' / 'logs'}"])
    assert "database system is ready" in (pytester.path / "ci" / "logs" / "postgres.log").read_text()
    line = next(line for line in result.outlines if line.startswith("envmgr: environment"))
    assert labelled(engine, line.split()[2]) == []
