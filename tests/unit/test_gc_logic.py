"""`envmgr gc --older-than`: reading durations, and which environments are old enough and ownerless to remove."""

import socket
import subprocess
import sys

import pytest

from envmgr.engine.labels import LABEL_CREATED, LABEL_DETACHED, LABEL_ENV, LABEL_SANDBOX, Owner
from envmgr.engine.reaper import expired, parse_duration
from envmgr.engine.records import EnvironmentRecord
from envmgr.errors import ConfigError

NOW = 1_700_000_000.0
HOUR = 3600.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("2h", 7200), ("1d", 86400), ("1w", 604800), ("90s", 90), ("1h30m", 5400), ("1.5h", 5400),
     ("0s", 0), ("0", 0), (" 2H ", 7200)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "5", "1x", "-1h", "1h 30", "two hours", "1h-30m"])
def test_bad_durations_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ConfigError, match="cannot read the duration") as caught:
        parse_duration(text)
    assert "30m" in caught.value.fix


def dead_owner() -> Owner:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return Owner(pid=process.pid, start="", host=socket.gethostname())


def record(owner: Owner | None, age: float, detached: bool = False, sandbox: str = "") -> EnvironmentRecord:
    labels = {LABEL_ENV: "e1", LABEL_DETACHED: "true" if detached else "false", LABEL_CREATED: f"{NOW - age:.3f}"}
    if owner is not None:
        labels.update(owner.labels())
    if sandbox:
        labels[LABEL_SANDBOX] = sandbox
    return EnvironmentRecord("e1", labels, (), ())


def test_an_old_sandbox_whose_cli_has_exited_is_removed() -> None:
    assert expired(record(dead_owner(), 3 * HOUR, detached=True, sandbox="job-1"), NOW, 2 * HOUR)


def test_a_young_sandbox_survives() -> None:
    assert not expired(record(dead_owner(), 10 * 60, detached=True, sandbox="job-1"), NOW, HOUR)


def test_age_exactly_the_threshold_is_old_enough() -> None:
    assert expired(record(dead_owner(), HOUR, detached=True), NOW, HOUR)


def test_zero_removes_any_ownerless_environment() -> None:
    assert expired(record(dead_owner(), 0.0, detached=True), NOW, 0.0)


def test_a_live_owner_is_never_removed_however_old() -> None:
    assert not expired(record(Owner.current(), 30 * 24 * HOUR), NOW, 0.0)
    # detached from the start but owned by a live process (pytest --envmgr-keep-on-failure during its run)
    assert not expired(record(Owner.current(), 30 * 24 * HOUR, detached=True), NOW, 0.0)


def test_an_old_attached_environment_of_a_dead_owner_is_removed() -> None:
    assert expired(record(dead_owner(), 2 * HOUR), NOW, HOUR)


def test_an_attached_environment_owned_on_another_host_is_kept() -> None:
    elsewhere = Owner(pid=1, start="", host="some-other-host")
    assert not expired(record(elsewhere, 30 * 24 * HOUR), NOW, HOUR)


def test_a_detached_environment_made_on_another_host_goes_by_age() -> None:
    elsewhere = Owner(pid=1, start="", host="some-other-host")
    assert expired(record(elsewhere, 2 * HOUR, detached=True), NOW, HOUR)
    assert not expired(record(elsewhere, 10 * 60, detached=True), NOW, HOUR)


def test_without_owner_labels_only_a_detached_one_is_removed() -> None:
    assert expired(record(None, 2 * HOUR, detached=True), NOW, HOUR)
    assert not expired(record(None, 2 * HOUR), NOW, HOUR)
