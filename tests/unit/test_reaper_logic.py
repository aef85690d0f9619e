"""Who may be reaped: only environments that are not detached and whose owner, in this pid namespace, is gone."""

import json
import os
import socket
import subprocess
import sys

from envmgr.engine.labels import (
    LABEL_CREATED,
    LABEL_DAEMON,
    LABEL_DETACHED,
    LABEL_ENV,
    LABEL_LEASE,
    LABEL_PID_SPACE,
    LABEL_SETTINGS,
    Owner,
    pid_space,
    process_start_ticks,
)
from envmgr.engine.reaper import DEFAULT_IDLE_TTL, RETRY_SECONDS, expired, orphaned, remove_until_done
from envmgr.engine.records import EnvironmentRecord
from envmgr.errors import DockerUnavailableError

NOW = 1_800_000_000.0


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


def test_current_owner_names_its_pid_space() -> None:
    me = Owner.current()
    assert me.space == pid_space() != ""
    assert me.is_local()
    assert Owner.from_labels(me.labels()) == me


def test_a_dead_pid_of_another_pid_space_with_the_same_host_name_counts_as_alive() -> None:
    """Another machine (or container) sharing a remote engine, whose host name happens to be ours: its owner's pid
    means nothing here, and a lookup in our process table must not condemn it."""
    elsewhere = Owner(pid=dead_pid(), start="1", host=socket.gethostname(), space="another-boot/4026531836")
    assert not elsewhere.is_local()
    assert elsewhere.is_alive()
    assert not orphaned(record(elsewhere))
    assert not expired(record(elsewhere, detached=False), now=10**10, older_than=0)


def test_a_dead_pid_of_our_pid_space_counts_as_dead() -> None:
    here = Owner(pid=dead_pid(), start="", host="whatever-the-name", space=pid_space())
    assert here.is_local()
    assert orphaned(record(here))


def test_labels_without_a_pid_space_fall_back_on_the_host_name() -> None:
    """Written by an envmgr that did not record the pid space: the host name decides, as it did then."""
    labels = Owner(pid=dead_pid(), start="", host=socket.gethostname()).labels()
    assert LABEL_PID_SPACE not in labels
    legacy = Owner.from_labels(labels)
    assert legacy is not None
    assert legacy.space == ""
    assert orphaned(record(legacy))


class EngineComesBack:
    """A removal that fails while the engine "does not answer" (the first `failures` calls), on a fake clock."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.now = 0.0

    def remove(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise DockerUnavailableError("could not remove environment e1: the Docker engine does not answer")

    def pause(self, seconds: float) -> None:
        self.now += seconds


def test_the_watchdog_keeps_removing_until_the_engine_answers() -> None:
    engine = EngineComesBack(failures=12)
    assert remove_until_done(engine.remove, 3600, clock=lambda: engine.now, pause=engine.pause)
    assert engine.calls == 13
    assert engine.now == 12 * RETRY_SECONDS


def test_the_watchdog_gives_up_after_its_patience_and_leaves_it_to_the_next_sweep() -> None:
    engine = EngineComesBack(failures=10**6)
    assert not remove_until_done(engine.remove, 30, clock=lambda: engine.now, pause=engine.pause)
    assert engine.now <= 30
    assert engine.calls == int(30 / RETRY_SECONDS) + 1


def test_a_removal_that_succeeds_at_once_is_not_repeated() -> None:
    engine = EngineComesBack(failures=0)
    assert remove_until_done(engine.remove, 3600, clock=lambda: engine.now, pause=engine.pause)
    assert engine.calls == 1
    assert engine.now == 0


def daemon_record(
    daemon: Owner, age: float, holder: Owner | None = None, ttl: float | None = None
) -> EnvironmentRecord:
    """A daemon's warm environment (detached, labelled with its daemon and settings), maybe leased."""
    settings = {} if ttl is None else {"daemon_idle_ttl": ttl}
    labels = {
        LABEL_ENV: "e1", LABEL_DETACHED: "true", LABEL_DAEMON: "d1", LABEL_SETTINGS: json.dumps(settings),
        LABEL_CREATED: str(NOW - age), **daemon.labels(),
    }  # fmt: skip
    lease = None if holder is None else {LABEL_ENV: "e1", LABEL_LEASE: "true", **holder.labels()}
    return EnvironmentRecord("e1", labels, (), (), lease)


def test_an_environment_of_a_dead_daemon_is_orphaned_once_older_than_its_idle_ttl() -> None:
    gone = Owner(pid=dead_pid(), start="", host=socket.gethostname())
    assert orphaned(daemon_record(gone, age=DEFAULT_IDLE_TTL + 1), now=NOW)
    assert not orphaned(daemon_record(gone, age=DEFAULT_IDLE_TTL - 1), now=NOW)  # a restarted daemon may adopt it
    assert orphaned(daemon_record(gone, age=61, ttl=60), now=NOW)


def test_an_environment_of_a_live_daemon_or_leased_by_a_live_run_is_kept() -> None:
    gone = Owner(pid=dead_pid(), start="", host=socket.gethostname())
    assert not orphaned(daemon_record(Owner.current(), age=10 * DEFAULT_IDLE_TTL), now=NOW)
    assert not orphaned(daemon_record(gone, age=10 * DEFAULT_IDLE_TTL, holder=Owner.current()), now=NOW)
    assert orphaned(daemon_record(gone, age=10 * DEFAULT_IDLE_TTL, holder=gone), now=NOW)


def test_a_dead_daemon_on_another_host_is_assumed_alive() -> None:
    elsewhere = Owner(pid=dead_pid(), start="", host="some-other-host")
    assert not orphaned(daemon_record(elsewhere, age=10 * DEFAULT_IDLE_TTL), now=NOW)


def test_the_reapers_idle_ttl_is_the_settings_default() -> None:
    from envmgr.config import Settings

    assert Settings.model_fields["daemon_idle_ttl"].default == DEFAULT_IDLE_TTL
