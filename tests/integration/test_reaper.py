"""The reaper: SIGKILL of an owner leaves nothing within 30 s; a live owner is never reaped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from envmgr.engine.connection import Engine
from envmgr.engine.reaper import sweep
from tests.conftest import labelled

pytestmark = pytest.mark.docker

OWNER_SCRIPT = """
import sys, time
from envmgr import Environment, Settings
env = Environment(["postgres", "redis"], settings=Settings())
env.start()
print(env.id, flush=True)
time.sleep(600)
"""


def start_owner() -> tuple[subprocess.Popen[str], str]:
    owner = subprocess.Popen([sys.executable, "-c", OWNER_SCRIPT], stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    env_id = owner.stdout.readline().strip()
    assert env_id, "the owner process did not start its environment"
    return owner, env_id


def wait_gone(engine: Engine, env_id: str, seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if not labelled(engine, env_id):
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(f"still there after {seconds} s: {labelled(engine, env_id)}")


def test_sigkill_of_the_owner_leaves_nothing_within_30_seconds(engine: Engine) -> None:
    owner, env_id = start_owner()
    assert len(labelled(engine, env_id)) == 3
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait()
    wait_gone(engine, env_id, 30)


def test_sweep_spares_a_live_owner_and_removes_a_dead_one(engine: Engine) -> None:
    owner, env_id = start_owner()
    try:
        assert env_id not in sweep(engine)
        assert len(labelled(engine, env_id)) == 3
    finally:
        owner.send_signal(signal.SIGSTOP)  # freeze it so its watchdog cannot act before the sweep does
        for process in _watchdogs(env_id):
            os.kill(process, signal.SIGKILL)
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
    assert sweep(engine) == [env_id] or labelled(engine, env_id) == []
    assert labelled(engine, env_id) == []


def _watchdogs(env_id: str) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", f"envmgr.engine.reaper --env {env_id}"], capture_output=True, text=True, check=False
    )
    return [int(pid) for pid in found.stdout.split()]


def test_a_lease_volume_left_alone_is_swept(engine: Engine) -> None:
    """A lease volume whose environment is otherwise gone (its holder dead) is an environment the sweep removes."""
    from envmgr.engine.labels import LABEL_ENV, LABEL_LEASE, Owner

    dead = Owner(pid=2**22 + 12345, start="1", host=Owner.current().host)  # above pid_max: never a live process
    env_id = f"t{os.getpid()}x"
    engine.client.volumes.create(
        name=f"envmgr-lease-{env_id}", labels={LABEL_ENV: env_id, LABEL_LEASE: "true", **dead.labels()}
    )
    assert env_id in engine.environments()
    sweep(engine)
    assert env_id not in engine.environments()
