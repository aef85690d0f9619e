"""The daemon against real containers: leases, resets, crashes of the daemon and of lease holders."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from envmgr import Settings, load_settings
from envmgr.client import DaemonClient
from envmgr.daemon import spawn
from tests.conftest import REPO

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]

HOLDER_SCRIPT = """
import sys, time
from pathlib import Path
from envmgr import load_settings
from envmgr.client import DaemonClient
settings = load_settings(Path(sys.argv[1]), localstack={"enabled": False}, wiremock={"enabled": False},
                         celery={"enabled": False})
lease = DaemonClient(Path(sys.argv[2])).lease(settings)
print(lease.id, flush=True)
time.sleep(600)
"""


@pytest.fixture
def daemon(tmp_path: Path, namespace: str) -> Iterator[DaemonClient]:
    """A daemon of this test's own on a private socket; stopped (and its environments removed) afterwards."""
    path = tmp_path / "run" / "daemon.sock"
    spawn(path)
    client = DaemonClient(path)
    try:
        yield client
    finally:
        if client.available():
            client.stop(force=True)
        deadline = time.monotonic() + 60
        while path.exists():  # the daemon removes its socket after its environments
            assert time.monotonic() < deadline, "the daemon did not stop"
            time.sleep(0.1)


@pytest.fixture
def small(namespace: str) -> Settings:
    """The repository's settings (migrations, seeds) with Postgres and Redis only."""
    return load_settings(
        REPO / "pyproject.toml", localstack={"enabled": False}, wiremock={"enabled": False}, celery={"enabled": False}
    )


def users(url: str) -> int:
    with psycopg.connect(url) as connection:
        return int(connection.execute("SELECT count(*) FROM users").fetchone()[0])  # type: ignore[index]


def test_socket_is_private(daemon: DaemonClient) -> None:
    assert stat.S_IMODE(daemon.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(daemon.path.parent.stat().st_mode) == 0o700


def test_lease_release_resets_and_the_next_lease_is_warm(daemon: DaemonClient, small: Settings) -> None:
    first = daemon.lease(small)
    assert not first.warm
    url = first.endpoints["postgres"].url
    assert users(url) == 3
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("INSERT INTO users (email, name) VALUES ('left@over.example', 'Left')")
    daemon.release(first.id)
    second = daemon.lease(small)
    assert second.warm
    assert second.id == first.id
    assert users(second.endpoints["postgres"].url) == 3, "the release reset the database"
    daemon.release(second.id)


def test_daemon_killed_and_restarted_keeps_leases_and_never_leases_twice(daemon: DaemonClient, small: Settings) -> None:
    held = daemon.lease(small)
    pid = daemon.pid()
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)  # our child: reap it
    spawn(daemon.path)
    states = {env["id"]: env for env in daemon.status()}
    assert states[held.id]["state"] == "leased"
    assert states[held.id]["holder"] == os.getpid()
    other = daemon.lease(small)
    assert other.id != held.id, "a held lease must not be handed out again"
    assert users(held.endpoints["postgres"].url) == 3, "the holder's environment still works"
    daemon.release(other.id)
    daemon.release(held.id)


def test_lease_of_a_killed_holder_is_taken_back_and_reset(daemon: DaemonClient, small: Settings) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, str(REPO / "pyproject.toml"), str(daemon.path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None
    env_id = holder.stdout.readline().strip()
    assert {env["id"]: env["state"] for env in daemon.status()}[env_id] == "leased"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    deadline = time.monotonic() + 20
    while {env["id"]: env["state"] for env in daemon.status()}[env_id] != "idle":
        assert time.monotonic() < deadline, "the daemon did not take the lease back"
        time.sleep(0.2)
    again = daemon.lease(small)
    assert again.id == env_id
    daemon.release(again.id)


def test_pytest_runs_lease_from_the_daemon(daemon: DaemonClient, pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".toml",
        pyproject=textwrap.dedent(
            f"""
            [tool.envmgr]
            alembic_ini = "{REPO / "tests" / "example_app" / "alembic.ini"}"
            seeds = "{REPO / "seeds"}"
            daemon = "on"
            """
        ),
    )
    pytester.makepyfile(
        test_users="""
        from sqlalchemy import text

        def test_users(db_session):
            assert db_session.execute(text("SELECT count(*) FROM users")).scalar() == 3
            db_session.execute(text("INSERT INTO users (email, name) VALUES ('z@example.com', 'Z')"))
            db_session.commit()
        """
    )
    env = {"ENVMGR_DAEMON_SOCKET": str(daemon.path)}
    os.environ.update(env)
    try:
        first = pytester.runpytest_subprocess("-p", "no:cacheprovider")
        first.assert_outcomes(passed=1)
        first.stdout.fnmatch_lines(["*leased from the daemon (started for this run)*"])
        second = pytester.runpytest_subprocess("-p", "no:cacheprovider")
        second.assert_outcomes(passed=1)
        second.stdout.fnmatch_lines(["*leased from the daemon (warm)*"])
    finally:
        for name in env:
            del os.environ[name]


def test_envmgr_up_leases_in_the_foreground_and_releases_on_ctrl_c(daemon: DaemonClient, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.envmgr]\n")
    up = subprocess.Popen(
        [sys.executable, "-m", "envmgr", "up", "postgres", "redis", "--json"],
        cwd=tmp_path, env={**os.environ, "ENVMGR_DAEMON_SOCKET": str(daemon.path)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert up.stdout is not None
        env_id = json.loads(up.stdout.readline())["id"]
        assert {env["id"]: env["state"] for env in daemon.status()}[env_id] == "leased"
        assert up.stderr is not None
        while "Ctrl-C" not in up.stderr.readline():  # the live table is up: Ctrl-C now means "stop"
            assert up.poll() is None, "envmgr up ended early"
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)
    assert up.returncode == 0
    deadline = time.monotonic() + 20
    while {env["id"]: env["state"] for env in daemon.status()}[env_id] != "idle":
        assert time.monotonic() < deadline, "the lease was not handed back"
        time.sleep(0.2)
