"""Warm by default (issue 20): the second run of a project leases the first run's environment from the per-user
daemon, which the first run started in the background and handed its environment to; nobody starts a daemon by
hand. Against real containers and a real daemon, on a socket of the test's own."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from envmgr import Environment
from envmgr.config import Settings
from envmgr.daemon.client import DaemonClient
from envmgr.engine.connection import Engine
from envmgr.engine.labels import LABEL_DAEMON
from envmgr.errors import DaemonNotRunningError
from envmgr.pytest.warm import may_start_daemon
from envmgr.services.postgres.janitor import Janitor
from envmgr.services.postgres.template import build as _template_build  # noqa: F401 - see fresh_worker_databases
from tests.conftest import in_namespace

pytestmark = pytest.mark.docker

PROJECT = """
[project]
name = "warm"

[tool.envmgr]
seeds = "seeds"
daemon_idle_ttl = {ttl}

[tool.envmgr.localstack]
enabled = false

[tool.envmgr.wiremock]
enabled = true
"""

CONFTEST = """
import os

DATABASE_AT_IMPORT = os.environ.get("DATABASE_URL")  # an app's settings, read when the conftest imports it
"""

TESTS = """
import os

import psycopg
import conftest


def test_the_app_read_its_database_at_import(postgres_url):
    assert conftest.DATABASE_AT_IMPORT is not None
    assert conftest.DATABASE_AT_IMPORT.rsplit("/", 1)[1] == postgres_url.rsplit("/", 1)[1]


def test_seeded_and_committed(postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        assert connection.execute("SELECT count(*) FROM releases").fetchone()[0] == 2, "the seeded rows only"
        connection.execute("INSERT INTO releases (title) VALUES ('left by the last run')")


def test_redis(redis_client):
    assert redis_client.dbsize() == 0
    redis_client.set("left", "by the last run")


def test_which_database(postgres_url):
    with psycopg.connect(postgres_url) as connection:
        oid = connection.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]
    os.makedirs("oids", exist_ok=True)
    with open(os.path.join("oids", postgres_url.rsplit("/", 1)[1]), "w") as out:
        out.write(str(oid))
"""

WIREMOCK_TEST = """
import requests


def test_wiremock(wiremock_url):
    assert requests.get(f"{wiremock_url}/not-stubbed", timeout=10).status_code == 404
"""

SEED = """
CREATE TABLE releases (id serial PRIMARY KEY, title text NOT NULL);
INSERT INTO releases (title) VALUES ('OK Computer'), ('Kid A');
"""


@pytest.fixture
def socket_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A daemon socket of the test's own; whatever daemon a run starts there is stopped (its environments with it)
    at the end."""
    path = tmp_path / "daemon" / "envmgr.sock"
    monkeypatch.setenv("ENVMGR_DAEMON_SOCKET", str(path))
    monkeypatch.setenv("ENVMGR_DAEMON", "on")  # the default socket is the user's own; with this one, say "on"
    yield path
    client = DaemonClient(path)
    try:
        client.stop(force=True)
    except DaemonNotRunningError:
        return
    deadline = time.monotonic() + 120
    while path.exists():
        assert time.monotonic() < deadline, "the daemon did not stop"
        time.sleep(0.1)


def make_project(pytester: pytest.Pytester, ttl: float = 900) -> None:
    pytester.makefile(".toml", pyproject=PROJECT.format(ttl=ttl))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_app=TESTS)
    seeds = pytester.path / "seeds" / "postgres"
    seeds.mkdir(parents=True)
    (seeds / "001_releases.sql").write_text(SEED)


def environment_line(output: str) -> str:
    found = [line for line in output.splitlines() if line.startswith("envmgr: environment ")]
    assert found, output[-3000:]
    return found[-1]


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", *args)


def idle(client: DaemonClient, env_id: str) -> bool:
    return any(env["id"] == env_id and env["state"] == "idle" for env in client.status())


def wait_for(condition: object, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def fresh_worker_databases(engine: Engine, env_id: str) -> dict[str, int]:
    """The workers' databases of the environment that carry the fresh mark, with their oids. (Attaching imports the
    template machinery, and SQLAlchemy with it: imported with this module, before pytester's snapshot of
    sys.modules, or pytester would unload it after the test and a later in-process Alembic upgrade would meet two
    copies of SQLAlchemy.)"""
    env = Environment.attach(env_id, engine=engine)
    endpoint = env.endpoints["postgres"]
    template = endpoint.extra["template"]
    with Janitor(endpoint) as janitor:
        query = "SELECT datname, oid FROM pg_database WHERE datname LIKE 'app\\_%'"
        rows = janitor.connection.execute(query).fetchall()
        return {str(name): int(str(oid)) for name, oid in rows if janitor.is_fresh(str(name), template)}


def test_the_next_run_leases_the_last_runs_environment_back_in_its_seeded_state(
    pytester: pytest.Pytester, socket_path: Path, engine: Engine, namespace: str
) -> None:
    make_project(pytester)
    first = run(pytester)
    first.assert_outcomes(passed=4)
    kept = re.search(r"envmgr: environment (\w+) kept warm for the next run", first.stdout.str())
    assert kept is not None, first.stdout.str()[-3000:]
    env_id = kept[1]
    assert socket_path.exists(), "the run started the daemon"
    client = DaemonClient(socket_path)
    wait_for(lambda: idle(client, env_id), "the daemon did not make the run's environment idle (reset)")
    labels = engine.environments()[env_id].labels
    assert labels[LABEL_DAEMON], "labelled as the daemon's"
    made = fresh_worker_databases(engine, env_id)  # the reset made each worker's database a marked clone again
    assert set(made) == {"app_gw0", "app_gw1"}, made
    shutil.rmtree(pytester.path / "oids")

    second = run(pytester)
    second.assert_outcomes(passed=4)  # the committed row and the Redis key of the first run are gone
    assert environment_line(second.stdout.str()).startswith(f"envmgr: environment {env_id} leased from the daemon")
    used = {path.name: int(path.read_text()) for path in (pytester.path / "oids").iterdir()}
    assert used, "the test that reads its database ran"
    assert all(made[name] == oid for name, oid in used.items()), (made, used)  # taken, not cloned again
    assert [line for line in second.stdout.lines if "kept warm" in line] == [], "a leased one goes back, as it is"

    pytester.makepyfile(test_wiremock=WIREMOCK_TEST)  # a service the kept environment has not started yet
    third = run(pytester)
    third.assert_outcomes(passed=5)
    assert environment_line(third.stdout.str()).startswith(f"envmgr: environment {env_id} leased from the daemon")
    wait_for(lambda: idle(client, env_id), "the lease was not handed back")
    services = {s for env in client.status() if env["id"] == env_id for s in env["services"]}  # type: ignore[attr-defined]
    assert "wiremock" in services, "started on the leased environment, for this run and the next"
    assert set(in_namespace(engine, namespace)) != set(), "kept, by the daemon"


def test_an_environment_whose_start_failed_is_not_kept(
    pytester: pytest.Pytester, socket_path: Path, engine: Engine, namespace: str
) -> None:
    make_project(pytester)
    (pytester.path / "seeds" / "postgres" / "002_broken.sql").write_text("INSERT INTO no_such_table VALUES (1);\n")
    result = run(pytester)
    assert result.ret != 0
    assert "kept warm" not in result.stdout.str()
    assert in_namespace(engine, namespace) == [], "removed, as without a daemon"


def test_a_daemon_a_run_started_keeps_the_environment_for_its_idle_time_then_stops(
    pytester: pytest.Pytester, socket_path: Path, engine: Engine, namespace: str
) -> None:
    make_project(pytester, ttl=3)
    result = run(pytester)
    result.assert_outcomes(passed=4)
    assert "kept warm for the next run" in result.stdout.str()
    wait_for(lambda: in_namespace(engine, namespace) == [], "the idle environment outlived its time-out", 120)
    wait_for(lambda: not socket_path.exists(), "the daemon the run started did not stop once idle", 120)


def test_envmgr_down_all_idle_removes_what_the_daemon_keeps(
    pytester: pytest.Pytester, socket_path: Path, engine: Engine, namespace: str
) -> None:
    from tests.integration.test_cli import envmgr

    make_project(pytester)
    run(pytester).assert_outcomes(passed=4)
    client = DaemonClient(socket_path)
    wait_for(lambda: client.status() and all(env["state"] == "idle" for env in client.status()), "not idle")
    dropped = envmgr("down", "--all-idle", cwd=pytester.path)
    assert dropped.returncode == 0, dropped.stderr
    assert "removed 1 idle environment(s)" in dropped.stderr
    assert in_namespace(engine, namespace) == []


@pytest.mark.parametrize(
    ("daemon", "environ", "starts"),
    [
        ("auto", {}, True),
        ("auto", {"CI": "true"}, False),
        ("auto", {"GITHUB_RUN_ID": "1", "GITHUB_RUN_ATTEMPT": "1", "GITHUB_JOB": "t"}, False),
        ("auto", {"ENVMGR_DAEMON_SOCKET": "/run/someone/daemon.sock"}, False),
        ("on", {"CI": "true", "ENVMGR_DAEMON_SOCKET": "/x.sock"}, True),
        ("off", {}, False),
    ],
)
def test_when_a_run_starts_the_daemon(daemon: str, environ: dict[str, str], starts: bool, tmp_path: Path) -> None:
    """Not in CI (no next run), not on a socket someone else names (their daemon), never with daemon = "off"."""
    assert may_start_daemon(Settings(project_root=tmp_path, daemon=daemon), environ) is starts


def kept_id(result: pytest.RunResult) -> str:
    kept = re.search(r"envmgr: environment (\w+) kept warm for the next run", result.stdout.str())
    assert kept is not None, result.stdout.str()[-3000:]
    return kept[1]


def test_a_projects_newer_configuration_replaces_its_older_idle_environment_of_the_same_workers(
    pytester: pytest.Pytester, socket_path: Path, engine: Engine, namespace: str
) -> None:
    """Every migration or seed edit makes a new configuration: its run starts an environment of its own and hands it
    to the daemon, which kept the older one too, though no run could lease it again (the trial projects found 4-6
    full environments, about 2 GB, kept for 15 minutes). The older one of the same project and worker count goes;
    the project's environment for another worker count stays."""
    make_project(pytester)
    first = run(pytester)
    first.assert_outcomes(passed=4)
    older = kept_id(first)
    client = DaemonClient(socket_path)
    wait_for(lambda: idle(client, older), "the first run's environment was not made idle")
    alone = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "0")  # another worker count
    alone.assert_outcomes(passed=4)
    other_workers = kept_id(alone)
    wait_for(lambda: idle(client, other_workers), "the -n 0 run's environment was not made idle")

    seed = pytester.path / "seeds" / "postgres" / "001_releases.sql"
    seed.write_text(SEED + "DELETE FROM releases WHERE title = 'none';\n")  # a seed edit: the same rows, a new content
    second = run(pytester)
    second.assert_outcomes(passed=4)
    newer = kept_id(second)
    assert newer != older, "a new configuration cannot lease the old one"
    wait_for(lambda: idle(client, newer), "the second run's environment was not made idle")
    kept = {str(env["id"]) for env in client.status()}
    assert older not in kept, kept
    wait_for(lambda: older not in in_namespace(engine, namespace), "the older one was not removed from the engine")
    assert {newer, other_workers} <= kept, kept
