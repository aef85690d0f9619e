"""Losing the engine mid-run (dockerd killed, then started again) leaks nothing: the teardown says so in one line
and the fix, its watchdog stays and removes the environment once the engine answers again, exited containers
included. On a private dockerd (tests/integration/private_engine.py), never the machine's."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.private_engine import PrivateEngine

pytestmark = pytest.mark.docker

CLEAN_WITHIN = 30.0
RUN_TIMEOUT = 180.0

PROJECT = """
[project]
name = "engine-loss"

[tool.envmgr]
image_set = "local"

[tool.envmgr.postgres]
enabled = false
"""

TESTS = """
import time
from pathlib import Path

def test_before(redis_client):
    redis_client.set("k", "v")
    Path("started").touch()

def test_while_the_engine_is_gone(redis_client):
    deadline = time.monotonic() + 120
    while not Path("engine-killed").exists():  # the harness kills dockerd meanwhile
        assert time.monotonic() < deadline, "the harness never killed the engine"
        time.sleep(0.1)
    redis_client.ping()

def test_after(redis_client):
    redis_client.ping()
"""

OWNER = """
import sys
from envmgr import Environment, Settings
env = Environment(["redis"], settings=Settings())
env.start()
print(env.id, flush=True)
sys.stdin.readline()
"""


@dataclass(frozen=True)
class Loss:
    """What one run that lost its engine showed and left."""

    output: str
    returncode: int
    env_id: str
    seconds_to_clean: float
    """from the moment the restarted engine answered until nothing of the environment was left"""


def labelled(engine: PrivateEngine, env_id: str) -> list[str]:
    selector = {"label": [f"envmgr.env={env_id}"]}
    with contextlib.closing(engine.client()) as client:
        # ignore_removed: a container the watchdog removes between the listing and its inspection is gone, not an error
        containers = client.containers.list(all=True, filters=selector, ignore_removed=True)
        return [f"container {c.name} ({c.status})" for c in containers] + [
            f"network {n.name}" for n in client.networks.list(filters=selector)
        ]


def wait_clean(engine: PrivateEngine, env_id: str, since: float) -> float:
    """Seconds from `since` until nothing of the environment is left; fails after CLEAN_WITHIN."""
    while labelled(engine, env_id):
        assert time.monotonic() - since < CLEAN_WITHIN, (
            f"still there {CLEAN_WITHIN} s after the restart: {labelled(engine, env_id)}"
        )
        time.sleep(0.2)
    return time.monotonic() - since


def watchdogs(env_id: str) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", f"envmgr.engine.reaper --env {env_id}"], capture_output=True, text=True, check=False
    )
    return [int(pid) for pid in found.stdout.split()]


def wait_watchdog_ended(env_id: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while watchdogs(env_id):
        assert time.monotonic() < deadline, "the watchdog did not end once the environment was gone"
        time.sleep(0.1)


def lose_the_engine_during_a_run(project: Path, engine: PrivateEngine) -> Loss:
    """A pytest run on the private engine whose dockerd is killed mid-run and started again after the run."""
    (project / "pyproject.toml").write_text(PROJECT)
    (project / "test_loss.py").write_text(textwrap.dedent(TESTS))
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--tb=line", "test_loss.py"],
        cwd=project, env={**os.environ, "DOCKER_HOST": engine.host}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while not (project / "started").exists():
            assert run.poll() is None, f"the run ended before its first test: {run.communicate()[0]}"
            assert time.monotonic() < deadline, "the first test never ran"
            time.sleep(0.1)
        engine.kill()
        (project / "engine-killed").touch()
        output, _ = run.communicate(timeout=RUN_TIMEOUT)
    finally:
        if run.poll() is None:
            run.kill()
    found = re.search(r"could not remove environment (\w+)", output)
    assert found, f"the run did not say what it could not remove:\n{output}"
    env_id = found.group(1)
    assert watchdogs(env_id), "the watchdog was dismissed although the removal failed"
    engine.start()
    restarted = time.monotonic()
    return Loss(output, run.returncode, env_id, wait_clean(engine, env_id, restarted))


def teardown_message(output: str) -> list[str]:
    """The run's envmgr error and its fix (the cause without the engine's own words in parentheses)."""
    lines = output.splitlines()
    errors = [index for index, line in enumerate(lines) if line.startswith("envmgr: error:")]
    assert len(errors) == 1, output
    return [re.sub(r" \(.*\)$", "", lines[errors[0]]), lines[errors[0] + 1]]


def test_a_run_that_loses_the_engine_says_so_in_one_line_and_leaves_nothing_after_the_restart(
    private_engine: PrivateEngine, tmp_path: Path, namespace: str
) -> None:
    loss = lose_the_engine_during_a_run(tmp_path, private_engine)
    assert loss.returncode == 1, loss.output  # tests failed; not an internal error
    assert "INTERNALERROR" not in loss.output
    assert "Traceback" not in loss.output
    assert teardown_message(loss.output) == [
        f"envmgr: error: could not remove environment {loss.env_id}: the Docker engine at {private_engine.host} "
        "does not answer",
        f"envmgr:   fix: start the engine again; once it answers, a run's watchdog removes it by itself, or run: "
        f"envmgr down {loss.env_id}",
    ]
    assert loss.seconds_to_clean < CLEAN_WITHIN
    wait_watchdog_ended(loss.env_id)
    print(f"engine lost mid-run: clean {loss.seconds_to_clean:.1f} s after the restarted engine answered")


def test_the_watchdog_of_an_owner_killed_while_the_engine_is_gone_removes_it_once_the_engine_answers(
    private_engine: PrivateEngine, namespace: str
) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER], env={**os.environ, "DOCKER_HOST": private_engine.host},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert owner.stdout is not None
    env_id = owner.stdout.readline().strip()
    assert env_id, "the owner did not start its environment"
    assert len(labelled(private_engine, env_id)) == 2
    private_engine.kill()
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait()
    assert watchdogs(env_id), "the watchdog ended while the engine was gone"
    private_engine.start()
    seconds = wait_clean(private_engine, env_id, time.monotonic())
    assert seconds < CLEAN_WITHIN
    wait_watchdog_ended(env_id)
    print(f"owner killed while the engine was gone: clean {seconds:.1f} s after the restarted engine answered")
