"""A WireMock envmgr did not start (issue 21 part 1): `[tool.envmgr.wiremock] url` pointing at a WireMock container
this test runs itself (`docker run` of the local image, published on 127.0.0.1, labelled and removed at the end),
with DOCKER_HOST pointing nowhere for envmgr. One run at -n 0 or 1: seeded stubs (bodies inline), each test from
the seeded stubs and an empty journal, nothing of the run's left at its end; -n 2 is refused at start in one line; a
second run while one holds the server is refused; what a killed run left is removed by `envmgr gc`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.plain_servers import poll
from tests.integration.test_plugin import PROJECT_TABLE

pytestmark = pytest.mark.docker

WIREMOCK_TABLE = PROJECT_TABLE + textwrap.dedent(
    """
    [tool.envmgr.postgres]
    enabled = false

    [tool.envmgr.redis]
    enabled = false

    [tool.envmgr.wiremock]
    enabled = true
    url = "${WIREMOCK_URL}"
    """
)
RELEASE = "/ws/2/release/b1392450-e666-3926-a536-22c65f834433"

SUITE = """
import requests

RELEASE = {release!r}


def test_1_stubs_and_calls(wiremock, wiremock_url):
    assert requests.get(wiremock_url + RELEASE, timeout=5).json()["title"] == "OK Computer"  # seeded, body inline
    wiremock.stub({{"request": {{"method": "GET", "url": "/added"}}, "response": {{"status": 201}}}})
    assert requests.get(wiremock_url + "/added", timeout=5).status_code == 201
    assert len(wiremock.requests()) == 2


def test_2_the_next_test_sees_the_seeded_stubs(wiremock, wiremock_url):
    assert wiremock.requests() == []
    assert requests.get(wiremock_url + "/added", timeout=5).status_code == 404
    assert requests.get(wiremock_url + RELEASE, timeout=5).status_code == 200
"""

HOLD = """
import time
from pathlib import Path


def test_hold(wiremock_url):
    Path({marker!r}).write_text("held")
    time.sleep(3600)
"""


class GivenWireMock:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def admin(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}/__admin{path}", timeout=5) as response:
            return json.load(response)

    def stubs(self) -> list[dict[str, Any]]:
        return list(self.admin("/mappings")["mappings"])

    def requests(self) -> list[dict[str, Any]]:
        return list(self.admin("/requests")["requests"])


def _docker(*args: str, docker_host: str | None) -> str:
    env = {key: value for key, value in os.environ.items() if key != "DOCKER_HOST"}
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, env=env).stdout.strip()


@pytest.fixture(scope="module")
def wiremock_server() -> Iterator[GivenWireMock]:
    """WireMock from the local image, on 127.0.0.1 and a port of Docker's choosing; removed at the end."""
    docker_host = os.environ.get("DOCKER_HOST")
    image = _docker("images", "--format", "{{.Repository}}:{{.Tag}}", "envmgr-local/wiremock", docker_host=docker_host)
    label = f"envmgr-test.given-wiremock={uuid.uuid4().hex[:8]}"
    container = _docker(
        "run", "-d", "--rm", "--label", label, "-p", "127.0.0.1::8080", image.splitlines()[0], docker_host=docker_host
    )
    try:
        port = int(_docker("port", container, "8080/tcp", docker_host=docker_host).splitlines()[0].rsplit(":", 1)[1])
        server = GivenWireMock(port)
        poll(lambda: server.admin("/health"), "the WireMock container answering", deadline=90)
        yield server
    finally:
        _docker("rm", "-f", container, docker_host=docker_host)
        assert _docker("ps", "-aq", "--filter", f"label={label}", docker_host=docker_host) == ""


@pytest.fixture
def given_wiremock(wiremock_server: GivenWireMock, monkeypatch: pytest.MonkeyPatch) -> Iterator[GivenWireMock]:
    monkeypatch.setenv("WIREMOCK_URL", wiremock_server.url)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    yield wiremock_server
    assert (wiremock_server.stubs(), wiremock_server.requests()) == ([], []), "envmgr left these on the server"


def project(pytester: pytest.Pytester, **files: str) -> None:
    pytester.makefile(".toml", pyproject=f"[project]\nname = 'given-wiremock'\n{WIREMOCK_TABLE}")
    pytester.makepyfile(**files)


@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_suite_on_a_given_wiremock_at_n0_or_n1_sees_the_seeded_stubs_in_each_test(
    pytester: pytest.Pytester, given_wiremock: GivenWireMock, workers: str
) -> None:
    project(pytester, test_suite=SUITE.format(release=RELEASE))
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-n", workers)
    result.assert_outcomes(passed=2)


def test_a_given_wiremock_is_refused_at_n2_in_one_line(
    pytester: pytest.Pytester, given_wiremock: GivenWireMock
) -> None:
    project(pytester, test_suite=SUITE.format(release=RELEASE))
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    said = " ".join(str(result.stderr).split())
    assert "wiremock: the server at http://127.0.0.1:" in said, said
    assert "is one stub set and one request journal for all 2 xdist workers" in said, said
    assert "run with -n 0 or -n 1, or remove wiremock.url" in said, said


def test_a_second_run_is_refused_while_one_holds_and_a_killed_runs_stubs_are_removed_by_gc(
    pytester: pytest.Pytester, given_wiremock: GivenWireMock
) -> None:
    marker = pytester.path / "held"
    project(pytester, test_hold=HOLD.format(marker=str(marker)))
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:randomly"],
        cwd=pytester.path, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        poll(marker.read_text, "the held run", deadline=120)
        marks = [s for s in given_wiremock.stubs() if s["request"].get("url", "").startswith("/__envmgr/run/")]
        assert len(marks) == 1, given_wiremock.stubs()
        env_id = marks[0]["metadata"]["envmgr"]
        second = pytester.runpytest_subprocess("-p", "no:randomly", "-k", "nothing")
        assert second.ret == pytest.ExitCode.USAGE_ERROR
        assert f"is in use by environment {env_id}" in " ".join(str(second.stderr).split())
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert len(given_wiremock.stubs()) == 2  # the killed run's mark and seeded stub
    gc = subprocess.run(
        [sys.executable, "-m", "envmgr", "gc"], cwd=pytester.path, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert gc.returncode == 0, gc.stderr
    assert f"wiremock: 2 stubs of environment {env_id}" in " ".join(gc.stderr.split()), gc.stderr
    assert given_wiremock.stubs() == []
