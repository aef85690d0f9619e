"""A replacement xdist worker (pytest-xdist restarts a crashed worker under a new id) gets shares of its own: its own
WireMock replica (replica index = worker index, a journal without the other workers' requests) and its own Redis
database; never a live or dead worker's."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]

PROJECT = """
[project]
name = "worker-restart"

[tool.envmgr]
image_set = "local"

[tool.envmgr.postgres]
enabled = false

[tool.envmgr.wiremock]
enabled = true
"""

CONFTEST = """
import json

import pytest
import requests

from envmgr.services.wiremock.admin import WireMockAdmin


@pytest.fixture
def record(envmgr_worker, envmgr_shares, wiremock_url, redis_client, request):
    \"\"\"What this worker reaches: its WireMock replica and journal, its Redis database; one JSON line per test.\"\"\"
    me = envmgr_worker.worker_id
    requests.get(f"{wiremock_url}/from-{me}", timeout=10)  # a 404, in this replica's journal
    journal = WireMockAdmin.of(envmgr_shares.server("wiremock")).requests()  # logged in (admin_auth)
    redis_client.set(f"seen-by-{me}", 1)
    line = {
        "test": request.node.name,
        "worker": me,
        "index": envmgr_worker.index,
        "replica": envmgr_shares.server("wiremock").replica,
        "container": envmgr_shares.server("wiremock").container,
        "journal": sorted({entry["request"]["url"] for entry in journal}),
        "redis_db": redis_client.connection_pool.connection_kwargs["db"],
        "redis_keys": sorted(key.decode() for key in redis_client.keys("*")),
    }
    with open("records.jsonl", "a") as handle:
        handle.write(json.dumps(line) + "\\n")
"""

CRASHING = """
import os

import pytest


def test_0_crash(record):
    try:
        os.close(os.open("crashed", os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return  # the replacement runs it again: no second crash
    os._exit(1)


@pytest.mark.parametrize("n", range(4))
def test_after_the_crash(record, n):
    pass
"""

WAITING = """
import json
import time
from pathlib import Path

import pytest


def test_0_wait_for_the_replacement():
    \"\"\"Keeps this worker busy (with more tests queued) until the replacement has run a test: the crashed worker's
    tests go to the replacement, not here.\"\"\"
    deadline = time.monotonic() + 180
    while True:
        path = Path("records.jsonl")
        lines = path.read_text().splitlines() if path.exists() else []
        if any(json.loads(line)["worker"] not in ("gw0", "gw1") for line in lines):
            return
        assert time.monotonic() < deadline, "no replacement worker ran a test"
        time.sleep(0.2)


@pytest.mark.parametrize("n", range(4))
def test_meanwhile(record, n):
    pass
"""


def test_a_replacement_worker_gets_its_own_wiremock_replica_and_redis_database(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ENVMGR_DAEMON_SOCKET", str(tmp_path / "no-daemon.sock"))
    pytester.makefile(".toml", pyproject=PROJECT)
    pytester.makeconftest(textwrap.dedent(CONFTEST))
    pytester.makepyfile(test_crashing=textwrap.dedent(CRASHING), test_waiting=textwrap.dedent(WAITING))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "--max-worker-restart", "1", "--dist", "loadfile", timeout=600
    )
    output = result.stdout.str()
    assert "replacing crashed worker" in output, output
    records = [json.loads(line) for line in (pytester.path / "records.jsonl").read_text().splitlines()]
    crashed = next(r["worker"] for r in records if r["test"] == "test_0_crash")
    survivor = next(r["worker"] for r in records if r["test"].startswith("test_meanwhile"))
    replacement = {r["worker"] for r in records} - {crashed, survivor}
    assert len(replacement) == 1, records
    new = replacement.pop()
    mine = [r for r in records if r["worker"] == new]
    assert len(mine) >= 4, "the replacement ran the crashed worker's remaining tests"
    for record in mine:
        assert record["replica"] == record["index"] == int(new.removeprefix("gw")), record
        assert record["container"].endswith(f"-wiremock-{record['index']}"), record
        assert record["journal"] == [f"/from-{new}"], "its journal holds its own requests only"
        assert record["redis_db"] == record["index"] + 1, record
        assert record["redis_keys"] == [f"seen-by-{new}"], "its Redis database holds its own keys only"
    others = {r["redis_db"] for r in records if r["worker"] != new}
    assert mine[0]["redis_db"] not in others
    assert {r["container"] for r in records if r["worker"] != new}.isdisjoint({r["container"] for r in mine})
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) <= 1, output  # the crashed test, when xdist reports it
    assert outcomes["passed"] >= 9, output
