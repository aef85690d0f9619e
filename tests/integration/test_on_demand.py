"""Pay only for what the run uses: services start when the collected tests reach them, each once per run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from envmgr.engine.connection import Engine
from envmgr.engine.labels import LABEL_NAMESPACE, LABEL_SERVICE
from tests.integration.test_plugin import PROJECT_TABLE

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]

ALL_FIVE = PROJECT_TABLE + textwrap.dedent(
    """
    [tool.envmgr.localstack]
    enabled = true

    [tool.envmgr.wiremock]
    enabled = true
    """
)


def project(pytester: pytest.Pytester, table: str, **files: str) -> None:
    pytester.makefile(".toml", pyproject=f"[project]\nname = 'ondemand'\n{table}")
    pytester.makepyfile(**{name: textwrap.dedent(text) for name, text in files.items()})


@pytest.fixture
def no_daemon(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ENVMGR_DAEMON_SOCKET", str(tmp_path / "no-daemon.sock"))


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single-process", "two-workers"])
def test_a_run_without_envmgr_tests_starts_nothing_and_needs_no_engine(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, xdist: list[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # no engine at all
    project(pytester, ALL_FIVE, test_unit="def test_pure():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *xdist)
    result.assert_outcomes(passed=1)
    assert "envmgr:" not in result.stdout.str()  # no environment, and no error about the engine at the end


@pytest.mark.usefixtures("no_daemon")
@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single-process", "two-workers"])
def test_only_what_the_tests_reach_is_started(pytester: pytest.Pytester, xdist: list[str]) -> None:
    project(
        pytester,
        ALL_FIVE,
        test_cache="""
        import pytest

        @pytest.mark.parametrize("n", range(3))
        def test_cache(redis_client, n):
            redis_client.set("k", n)
        """,
        test_aws="""
        def test_upload(s3_client):
            s3_client.list_buckets()
        """,
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *xdist, "-k", "not upload", "--envmgr-report",
                                           "report.json")  # fmt: skip
    assert result.parseoutcomes()["passed"] == 3  # (xdist's summary does not count the deselected one)
    report = json.loads((pytester.path / "report.json").read_text())
    assert list(report["services"]) == ["redis"]
    assert report["started"] == {"redis": "redis_client"}
    assert set(report["skipped"]) == {"postgres", "localstack", "wiremock"}
    assert "started for redis (redis_client) | skipped (unused)" in result.stdout.str()


@pytest.mark.usefixtures("no_daemon")
def test_a_replica_starts_for_the_worker_that_needs_it(pytester: pytest.Pytester, namespace: str) -> None:
    """WireMock is used by one worker's tests only: one replica starts, for that worker; removed at the end."""
    project(
        pytester,
        ALL_FIVE,
        test_mock=f"""
        import docker

        def test_mock(wiremock_url, envmgr_worker):
            client = docker.from_env()
            replicas = client.containers.list(
                filters={{"label": ["{LABEL_NAMESPACE}={namespace}", "{LABEL_SERVICE}=wiremock"]}}
            )
            assert [c.labels["envmgr.replica"] for c in replicas] == [str(envmgr_worker.replica)]
        """,
        test_cache="""
        def test_cache(redis_client):
            redis_client.ping()
        """,
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile")
    result.assert_outcomes(passed=2)


@pytest.mark.usefixtures("no_daemon")
def test_sigkill_of_the_controller_during_an_on_demand_start_leaves_nothing(
    pytester: pytest.Pytester, engine: Engine, namespace: str
) -> None:
    project(pytester, PROJECT_TABLE, test_db="def test_db(db_session):\n    pass\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2"],
        cwd=pytester.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not engine.containers(**{LABEL_NAMESPACE: namespace}):  # the start is under way
            assert process.poll() is None, "the run ended before its environment started"
            assert time.monotonic() < deadline, "no container appeared"
            time.sleep(0.05)  # polling the engine for the start, within a deadline
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    deadline = time.monotonic() + 30
    while engine.containers(**{LABEL_NAMESPACE: namespace}):
        assert time.monotonic() < deadline, "the environment was not removed within 30 s of the SIGKILL"
        time.sleep(0.2)  # polling for the watchdog's removal, within the 30 s the contract allows


AHEAD_TABLE = """
[tool.envmgr.wiremock]
enabled = true
"""

AHEAD_CONFTEST = f"""
import os
import time

import docker


def running():
    client = docker.from_env()
    try:
        found = client.containers.list(filters={{"label": ["{LABEL_NAMESPACE}=" + os.environ["ENVMGR_NAMESPACE"]]}})
        return {{c.labels["{LABEL_SERVICE}"] for c in found}}
    finally:
        client.close()


def pytest_collection_modifyitems(config, items):
    # in the only process, or in each xdist worker: this collection has not ended
    if os.environ.get("EXPECT_AHEAD") != "1":
        if "PYTEST_XDIST_WORKER" not in os.environ:  # (another worker's collection may have ended already)
            assert running() == set(), "nothing starts before collection without a prediction"
        return
    # no collection can end while this waits (every worker waits here): only a start ahead of it satisfies it
    deadline = time.monotonic() + 120
    while not {{"redis", "wiremock"}} <= running():
        assert time.monotonic() < deadline, f"not started ahead of collection: {{running()}}"
        time.sleep(0.1)
"""

AHEAD_TESTS = {
    "test_cache": """
    def test_cache(redis_client):
        redis_client.set("k", "v")
    """,
    "test_mock": """
    def test_mock(wiremock_url):
        pass
    """,
}


@pytest.mark.usefixtures("no_daemon")
@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single-process", "two-workers"])
def test_the_next_run_of_a_command_starts_what_the_last_reached_while_it_collects(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, xdist: list[str]
) -> None:
    """The first run starts after collection; the second run of the same command starts Redis and WireMock (the
    last run's) before its collection ends (its conftest waits for them there)."""
    project(pytester, AHEAD_TABLE, **AHEAD_TESTS)
    pytester.makeconftest(AHEAD_CONFTEST)
    first = pytester.runpytest_subprocess(*xdist, "--envmgr-report", "report.json")  # the same command twice
    first.assert_outcomes(passed=2)
    monkeypatch.setenv("EXPECT_AHEAD", "1")
    second = pytester.runpytest_subprocess(*xdist, "--envmgr-report", "report.json")
    second.assert_outcomes(passed=2)
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["started"] == {"redis": "redis_client", "wiremock": "wiremock_url"}


@pytest.mark.usefixtures("no_daemon")
@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single-process", "two-workers"])
def test_what_was_started_ahead_and_is_no_longer_reached_is_removed(
    pytester: pytest.Pytester, namespace: str, xdist: list[str]
) -> None:
    """The last run used WireMock; this one's tests no longer do: WireMock, started ahead, is removed once
    collection shows it, before the run ends."""
    project(pytester, AHEAD_TABLE, **AHEAD_TESTS)
    pytester.runpytest_subprocess(*xdist, "--envmgr-report", "report.json").assert_outcomes(passed=2)
    (pytester.path / "test_mock.py").unlink()
    project(
        pytester,
        AHEAD_TABLE,
        test_cache=f"""
        import time
        import docker

        def test_cache(redis_client):
            client = docker.from_env()
            deadline = time.monotonic() + 120
            while client.containers.list(
                all=True, ignore_removed=True,
                filters={{"label": ["{LABEL_NAMESPACE}={namespace}", "{LABEL_SERVICE}=wiremock"]}},
            ):
                assert time.monotonic() < deadline, "WireMock, started ahead and unused, is still there"
                time.sleep(0.1)
            client.close()
        """,
    )
    second = pytester.runpytest_subprocess(*xdist, "--envmgr-report", "report.json")
    second.assert_outcomes(passed=1)
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["started"] == {"redis": "redis_client"}
    assert report["discarded"] == ["wiremock"]
    assert "started ahead (the last run), removed (unused) wiremock" in second.stdout.str()
