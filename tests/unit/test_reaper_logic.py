"""Who may be reaped: only environments that are not detached and whose owner on this host is gone."""

import os
import socket
import subprocess
import sys

from envmgr.engine import EnvironmentRecord
from envmgr.labels import LABEL_DETACHED, LABEL_ENV, Owner, process_start_ticks
from envmgr.reaper import orphaned


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def record(owner: Owner, detached: bool = False) -> EnvironmentRecord:
    labels = {LABEL_ENV: "e1", LABEL_DETACHED: "true" if detached else "false", **owner.labels()}
    return EnvironmentRecord("e1", labels, (), ())


def test_current_process_is_alive_and_identified_by_start_time() -> None:
    me = Owner.current()
    assert me.pid == os.getpid()
    assert me.start == process_start_ticks(os.getpid()) != ""
    assert me.is_alive()


def test_a_reused_pid_with_another_start_time_counts_as_dead() -> None:
    impostor = Owner(pid=os.getpid(), start="1", host=socket.gethostname())
    assert not impostor.is_alive()


def test_dead_owner_is_orphaned() -> None:
    assert orphaned(record(Owner(pid=dead_pid(), start="", host=socket.gethostname())))


def test_live_owner_is_not_orphaned() -> None:
    assert not orphaned(record(Owner.current()))


def test_detached_environment_is_never_orphaned() -> None:
    assert not orphaned(record(Owner(pid=dead_pid(), start="", host=socket.gethostname()), detached=True))


def test_owner_on_another_host_is_assumed_alive() -> None:
    assert not orphaned(record(Owner(pid=dead_pid(), start="", host="some-other-host")))


def test_labels_round_trip() -> None:
    me = Owner.current()
    assert Owner.from_labels(me.labels()) == me
    assert Owner.from_labels({}) is None
