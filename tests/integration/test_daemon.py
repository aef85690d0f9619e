"""The daemon against real containers: leases, resets, crashes of the daemon and of lease holders."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from envmgr import DaemonError, DaemonNotRunningError, Settings, load_settings
from envmgr.daemon.client import DaemonClient, Lease, spawn
from envmgr.engine.connection import Engine
from envmgr.engine.labels import LABEL_ENV, LABEL_SERVICE
from envmgr.engine.reaper import orphaned
from tests.conftest import REPO, in_namespace
from tests.integration.test_cli import envmgr

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]

HOLDER_SCRIPT = """
import sys, time
from pathlib import Path
from envmgr import load_settings
from envmgr.daemon.client import DaemonClient
settings = load_settings(Path(sys.argv[1]), localstack={"enabled": False}, wiremock={"enabled": False},
                         celery={"enabled": False})
lease = DaemonClient(Path(sys.argv[2])).lease(settings)
print(lease.id, flush=True)
time.sleep(600)
"""


as_root = pytest.mark.skipif(os.geteuid() != 0, reason="acting as another user (uid 65534) needs root")
NOBODY = 65534


def listen_as(uid: int, path: Path) -> tuple[int, int]:
    """A process running as `uid` that listens on `path`, accepts one connection and reports, on the pipe it
    returns (with its pid), "listening" and then how many bytes it received. Forked: another user cannot run this
    interpreter (its home is private)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only system calls, then _exit
        status = 1
        try:
            os.close(read_end)
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
                server.bind(str(path))
                server.listen(1)
                os.write(write_end, b"listening\n")
                connection, _ = server.accept()
                connection.settimeout(30)
                received = 0
                while chunk := connection.recv(4096):
                    received += len(chunk)
                os.write(write_end, f"{received}\n".encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    return pid, read_end


@pytest.fixture
def daemon(tmp_path: Path, namespace: str) -> Iterator[DaemonClient]:
    """A daemon of this test's own on a private socket; stopped (and its environments removed) afterwards, whether
    it answers or not (one a test spawned again may still be adopting, or never answer)."""
    path = tmp_path / "run" / "daemon.sock"
    spawn(path)
    client = DaemonClient(path)
    try:
        yield client
    finally:
        os.chown(path.parent, os.getuid(), os.getgid())  # a test may have handed the folder to someone else
        os.chmod(path.parent, 0o700)
        if client.available():
            client.stop(force=True)
        else:
            stop_daemons_on(path)
        wait_until_stopped(path)


def daemon_pids(path: Path) -> list[int]:
    """This user's daemons serving `path` (a test's own socket): by their command line, from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # ended meanwhile
            continue
        if b"envmgr.daemon" in command and str(path).encode() in command:
            pids.append(int(entry.name))
    return pids


def stop_daemons_on(path: Path) -> None:
    """End the daemons of this socket that do not answer, each by its pid (SIGTERM: it removes its environments
    and its socket), and wait until they have ended."""
    for pid in daemon_pids(path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while daemon_pids(path):
        assert time.monotonic() < deadline, f"the daemons of {path} did not end"
        time.sleep(0.1)


def wait_until_stopped(path: Path) -> None:
    deadline = time.monotonic() + 60
    while path.exists():  # the daemon removes its socket after its environments
        assert time.monotonic() < deadline, "the daemon did not stop"
        time.sleep(0.1)


def wait_until_settled(daemon: DaemonClient) -> list[dict[str, object]]:
    """The daemon's environments once no lease is held or being released."""
    deadline = time.monotonic() + 120
    while True:
        environments = daemon.status()
        if all(env["state"] == "idle" for env in environments):
            return environments
        assert time.monotonic() < deadline, f"the leases were not handed back: {environments}"
        time.sleep(0.2)


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
    other = daemon.lease(small)  # waits for the adoption of the last daemon's environments (in the background)
    assert other.id != held.id, "a held lease must not be handed out again"
    states = {env["id"]: env for env in daemon.status()}
    assert states[held.id]["state"] == "leased"
    assert states[held.id]["holder"] == os.getpid()
    assert users(held.endpoints["postgres"].url) == 3, "the holder's environment still works"
    daemon.release(other.id)
    daemon.release(held.id)


def test_environments_of_a_killed_daemon_are_swept_after_their_idle_time_out_unless_a_new_daemon_serves_them(
    daemon: DaemonClient, small: Settings, engine: Engine
) -> None:
    """A daemon's environments are detached (they outlive a crash, to be adopted); with no daemon left to serve
    them they are orphans once their idle time-out has passed, and not while a daemon started again serves them."""
    warm = daemon.lease(small)
    daemon.release(warm.id)
    wait_until_settled(daemon)
    pid = daemon.pid()
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    record = engine.environments()[warm.id]
    later = record.created + small.daemon_idle_ttl + 1
    assert orphaned(record, now=later), "nothing serves it any more"
    assert not orphaned(record, now=record.created + 1), "a daemon started again may still adopt it"
    spawn(daemon.path)
    record = engine.environments()[warm.id]
    assert not orphaned(record, now=later), "the new daemon adopted it"
    assert daemon.lease(small).id == warm.id


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


def test_pytest_runs_lease_from_the_daemon(
    daemon: DaemonClient, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
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
    monkeypatch.setenv("ENVMGR_DAEMON_SOCKET", str(daemon.path))
    monkeypatch.setenv("ENVMGR_DAEMON", "on")
    first = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    first.assert_outcomes(passed=1)  # the daemon holds no environment of this project: the run starts its own
    first.stdout.fnmatch_lines(["*environment * kept warm for the next run*"])
    wait_until_settled(daemon)
    second = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    second.assert_outcomes(passed=1)  # its own row of the first run is gone: reset before the lease
    second.stdout.fnmatch_lines(["*leased from the daemon (warm)*"])


def test_envmgr_up_leases_in_the_foreground_and_releases_on_ctrl_c(daemon: DaemonClient, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.envmgr]\n")
    up = subprocess.Popen(
        [sys.executable, "-m", "envmgr", "up", "postgres", "redis", "--json"],
        cwd=tmp_path, env={**os.environ, "ENVMGR_DAEMON_SOCKET": str(daemon.path), "ENVMGR_DAEMON": "auto"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert up.stdout is not None
        env_id = json.loads(up.stdout.readline())["id"]
        assert {env["id"]: env["state"] for env in daemon.status()}[env_id] == "leased"
        assert up.stderr is not None
        while "Ctrl-C" not in (line := up.stderr.readline()):  # the live table is up: Ctrl-C now means "stop"
            assert up.poll() is None, "envmgr up ended early"
        assert "hand it back to the daemon" in line, line  # not "stop and remove it": it stays warm
        assert "remove it" not in line.split(";")[0], line
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)
    assert up.returncode == 0
    deadline = time.monotonic() + 20
    while {env["id"]: env["state"] for env in daemon.status()}[env_id] != "idle":
        assert time.monotonic() < deadline, "the lease was not handed back"
        time.sleep(0.2)


def test_a_failed_start_gives_the_same_error_and_exit_code_with_the_daemon_as_without(
    daemon: DaemonClient, tmp_path: Path
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.envmgr]\ndaemon = "on"\n\n[tool.envmgr.postgres]\nimage = "envmgr-test/does-not-exist:1"\n'
    )
    socket_env = {"ENVMGR_DAEMON_SOCKET": str(daemon.path)}
    leased = envmgr("up", "postgres", "redis", cwd=tmp_path, env=socket_env)
    alone = envmgr("up", "postgres", "redis", cwd=tmp_path, env={**socket_env, "ENVMGR_DAEMON": "off"})
    assert alone.returncode == 4, alone.stderr  # ImageError
    assert leased.returncode == alone.returncode, leased.stderr

    def message(stderr: str) -> list[str]:
        return [line for line in stderr.splitlines() if line.startswith(("envmgr: error:", "  fix:"))]

    assert message(alone.stderr)
    assert message(leased.stderr) == message(alone.stderr)
    assert "Traceback" not in leased.stderr
    assert daemon.status() == [], "the failed start left nothing in the pool"


def test_socket_of_a_folder_of_another_user_is_refused_before_anything_is_sent(daemon: DaemonClient) -> None:
    assert daemon.available(), "the positive path: our own folder, socket and daemon"
    os.chmod(daemon.path.parent, 0o770)
    with pytest.raises(DaemonError, match="writable by others") as refused:
        daemon.available()
    assert refused.value.fix
    assert "ENVMGR_DAEMON_SOCKET" in refused.value.fix
    os.chmod(daemon.path.parent, 0o700)
    if os.geteuid() == 0:
        os.chown(daemon.path.parent, NOBODY, NOBODY)
        with pytest.raises(DaemonError, match=f"belongs to uid {NOBODY}, not to you"):
            daemon.status()
        os.chown(daemon.path.parent, os.getuid(), os.getgid())
    assert daemon.status() == []


@as_root
def test_a_listener_of_another_user_is_refused_before_anything_is_sent() -> None:
    """The folder and the socket file are ours (chowned back after it bound), but the process is not (SO_PEERCRED)."""
    folder = Path(tempfile.mkdtemp(prefix="envmgr-trust-"))
    try:
        os.chown(folder, NOBODY, NOBODY)
        path = folder / "daemon.sock"
        pid, pipe = listen_as(NOBODY, path)
        with os.fdopen(pipe) as reports:
            try:
                assert reports.readline().strip() == "listening"
                os.chown(folder, os.getuid(), os.getgid())
                os.chown(path, os.getuid(), os.getgid())
                client = DaemonClient(path)
                with pytest.raises(DaemonError, match=f"runs as uid {NOBODY}, not as you") as refused:
                    client.lease(Settings(daemon="on"))
                assert refused.value.fix
                assert "ENVMGR_DAEMON_SOCKET" in refused.value.fix
                assert reports.readline().strip() == "0", "the client sent something to a stranger"
            finally:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
    finally:
        shutil.rmtree(folder)


def test_the_daemon_refuses_a_folder_others_can_write_to(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    os.chmod(folder, 0o777)
    for command in (["daemon", "run"], ["daemon", "start"]):
        result = envmgr(*command, "--socket", str(folder / "daemon.sock"), cwd=tmp_path)
        assert result.returncode == 9, result.stderr  # DaemonError
        assert "writable by others" in result.stderr
        assert "Traceback" not in result.stderr
    assert list(folder.iterdir()) == [], "no socket, no log"


@as_root
def test_the_daemon_refuses_a_folder_of_another_user(tmp_path: Path) -> None:
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o700)
    os.chown(folder, NOBODY, NOBODY)
    result = envmgr("daemon", "run", "--socket", str(folder / "daemon.sock"), cwd=tmp_path)
    assert result.returncode == 9, result.stderr
    assert f"belongs to uid {NOBODY}" in result.stderr
    assert list(folder.iterdir()) == []


def test_pool_size_caps_the_idle_environments_after_concurrent_leases(
    daemon: DaemonClient, small: Settings, engine: Engine, namespace: str
) -> None:
    settings = small.model_copy(update={"daemon_pool_size": 1})
    with ThreadPoolExecutor(4) as pool:
        leases = list(pool.map(lambda _: daemon.lease(settings), range(4)))
    assert len({lease.id for lease in leases}) == 4
    for lease in leases:
        daemon.release(lease.id)
    environments = wait_until_settled(daemon)
    assert len(environments) == 1, f"pool size 1 keeps one idle environment: {environments}"
    deadline = time.monotonic() + 60
    while (on_engine := in_namespace(engine, namespace)) != [environments[0]["id"]]:
        assert time.monotonic() < deadline, f"the extra environments were not removed: {on_engine}"
        time.sleep(0.2)
    again = daemon.lease(settings)
    assert again.warm
    assert again.id == environments[0]["id"]
    assert users(again.endpoints["postgres"].url) == 3
    daemon.release(again.id)


def test_concurrent_leases_that_each_start_an_environment_all_succeed(daemon: DaemonClient, small: Settings) -> None:
    """Each lease starts, migrates and seeds its own environment of the same configuration at the same time."""
    settings = small.model_copy(update={"daemon_pool_size": 0})
    with ThreadPoolExecutor(3) as pool:
        leases: list[Lease] = list(pool.map(lambda _: daemon.lease(settings), range(3)))
    assert len({lease.id for lease in leases}) == 3
    assert not any(lease.warm for lease in leases)
    assert [users(lease.endpoints["postgres"].url) for lease in leases] == [3, 3, 3]
    for lease in leases:
        daemon.release(lease.id)
    assert wait_until_settled(daemon) == [], "pool size 0 keeps nothing"


def test_release_after_a_forced_stop_is_a_clear_error_and_pytest_tolerates_it(
    daemon: DaemonClient, pytester: pytest.Pytester
) -> None:
    pytester.makefile(".toml", pyproject='[tool.envmgr]\ndaemon = "on"\n')
    pytester.makepyfile(test_first="def test_uses_the_environment(envmgr_endpoints):\n    pass\n")
    stop_it = """
        import subprocess, sys

        def test_stop_the_daemon(envmgr_endpoints):
            stop = subprocess.run([sys.executable, "-m", "envmgr", "daemon", "stop", "--force"])
            assert stop.returncode == 0
        """
    env = {"ENVMGR_DAEMON_SOCKET": str(daemon.path), "ENVMGR_DAEMON": "on"}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        kept = pytester.runpytest_subprocess("-p", "no:cacheprovider")  # its environment is the daemon's after it
        kept.stdout.fnmatch_lines(["*environment * kept warm for the next run*"])
        wait_until_settled(daemon)
        pytester.makepyfile(test_first="", test_stop=stop_it)
        run = pytester.runpytest_subprocess("-p", "no:cacheprovider")  # leases it, and stops the daemon meanwhile
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    run.assert_outcomes(passed=1)
    run.stdout.fnmatch_lines(["*envmgr: lease * not handed back: no envmgr daemon answers on*"])
    assert run.ret == 0
    wait_until_stopped(daemon.path)
    with pytest.raises(DaemonNotRunningError, match="no envmgr daemon answers") as gone:
        daemon.release("0123456789")
    assert gone.value.fix == "start one: envmgr daemon start"


def test_a_refused_stop_exits_with_the_daemon_error_code(daemon: DaemonClient, small: Settings, tmp_path: Path) -> None:
    held = daemon.lease(small)
    refused = envmgr("daemon", "stop", "--socket", str(daemon.path), cwd=tmp_path)
    assert refused.returncode == 9, refused.stderr  # DaemonError
    assert f"1 environment(s) are leased ({held.id})" in refused.stderr
    assert "--force" in refused.stderr
    assert daemon.available()
    daemon.release(held.id)


# issue 19, item 9: the daemon listens first, and a finished lease counts as released -----------------------------


def test_stopping_the_daemon_right_after_a_leased_run_ends_is_not_refused(
    daemon: DaemonClient, small: Settings
) -> None:
    """`envmgr daemon stop` right after a run handed its lease back was refused with "1 environment(s) are leased"
    while the daemon reset it."""
    lease = daemon.lease(small)
    daemon.release(lease.id)
    daemon.stop()  # no --force: nothing is leased any more
    wait_until_stopped(daemon.path)


def test_the_daemon_answers_while_it_adopts_the_environments_of_the_last_one(
    daemon: DaemonClient, small: Settings, engine: Engine
) -> None:
    """A daemon started again adopted the environments its predecessor left (and reset the idle ones) before it
    listened: under load that took longer than `envmgr daemon start` waits, which reported a failure although the
    daemon came up later. Here adopting takes long because the idle environment's Postgres does not answer
    (SIGSTOP: its container still runs); the new daemon must answer ping meanwhile, and a lease waits for the
    adoption: it gets the adopted environment, warm."""
    lease = daemon.lease(small)
    daemon.release(lease.id)
    wait_until_settled(daemon)
    pid = daemon.pid()
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    selector = {"label": [f"{LABEL_ENV}={lease.id}", f"{LABEL_SERVICE}=postgres"]}
    postgres = engine.client.containers.list(filters=selector)
    assert len(postgres) == 1
    server_pid = int(postgres[0].attrs["State"]["Pid"])
    os.kill(server_pid, signal.SIGSTOP)
    stopped = True
    try:
        started = time.monotonic()
        try:
            spawn(daemon.path, timeout=5.0)
        except DaemonError as exc:
            pytest.fail(f"the daemon did not answer while adopting ({time.monotonic() - started:.1f} s): {exc}")
        assert daemon.available()
        os.kill(server_pid, signal.SIGCONT)  # within the reset's connect time-out: the adoption goes on
        stopped = False
        again = daemon.lease(small)
        assert (again.id, again.warm) == (lease.id, True), "the lease waited for the adoption"
        daemon.release(again.id)
    finally:
        if stopped:
            os.kill(server_pid, signal.SIGCONT)
        _stop_daemons_on(daemon.path)


def _stop_daemons_on(path: Path) -> None:
    """The daemon a test spawned goes on adopting when `spawn` gives up on it: once it answers, the `daemon`
    fixture stops it; one that does not answer within a minute is ended (SIGTERM: it removes its environments)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if DaemonClient(path).available():
            return
        time.sleep(0.2)
    for pid in _daemon_pids(path):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while _daemon_pids(path):
        assert time.monotonic() < deadline, "the daemon did not end"
        time.sleep(0.2)


def _daemon_pids(path: Path) -> list[int]:
    """The daemons started on this socket (by this test: the path is its own)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"envmgr.daemon" in command and str(path).encode() in command:
                pids.append(int(entry.name))
    return pids
