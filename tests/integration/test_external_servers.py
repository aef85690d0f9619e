"""Servers envmgr did not start (issue 21, part 1): `postgres.url` and `redis.url` pointing at Debian's own
PostgreSQL 15 and redis-server, started as plain processes on 127.0.0.1 (no container), with DOCKER_HOST pointing
nowhere. A project's suite passes at -n 2, each worker on its own database and Redis database, every test from the
seeded state; nothing envmgr made is left on the servers afterwards, and what a killed run left is swept by the next
run and by `envmgr gc`. Bad URLs are one-line errors at start."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from envmgr import Environment, Faults, Settings, Worker
from envmgr.engine.connection import Engine
from envmgr.errors import EnvmgrError
from tests.conftest import REPO, labelled
from tests.integration.plain_servers import PlainPostgres, PlainRedis, free_port, plain_postgres, plain_redis, poll
from tests.integration.test_faults import FAULTING_WORKER, OTHER_WORKER
from tests.integration.test_plugin import PROJECT_TABLE

GIVEN_TABLE = PROJECT_TABLE + textwrap.dedent(
    """
    [tool.envmgr.postgres]
    url = "${DATABASE_URL}"

    [tool.envmgr.redis]
    url = "${REDIS_URL}"
    """
)

# Two files, one per worker (--dist loadfile): each test 1 writes a row and a Redis key, waits until the other
# worker has written its own, checks it sees none of the other's, and keeps its own until the other has checked too
# (so the other's check is made while the data exists). Each test 2 (the same worker, next test) sees the seeded
# state again.
ISOLATION = """
import os
import time
from pathlib import Path

import psycopg

ME = os.environ.get("PYTEST_XDIST_WORKER", "main")
OTHER = {{"gw0": "gw1", "gw1": "gw0"}}.get(ME, ME)
SHARED = Path({shared!r})


def wait_for(path):
    deadline = time.monotonic() + 120
    while not path.exists():
        assert time.monotonic() < deadline, f"{{path}} never appeared"
        time.sleep(0.05)


def test_1_isolated_from_the_other_worker(postgres_url, redis_client):
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        database = connection.execute("SELECT current_database()").fetchone()[0]
        assert database.startswith("envmgr_") and database.endswith("_app_" + ME), database
        connection.execute("INSERT INTO users (email, name) VALUES (%s, %s)", (ME + "@example.com", ME))
    redis_client.set("written-by", ME)
    (SHARED / (ME + ".written")).write_text(database + " " + str(redis_client.connection_pool.connection_kwargs["db"]))
    wait_for(SHARED / (OTHER + ".written"))
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        names = [row[0] for row in connection.execute("SELECT name FROM users WHERE name LIKE 'gw%%'")]
    assert names == [ME]
    assert redis_client.get("written-by") == ME.encode()
    assert redis_client.dbsize() == 1
    (SHARED / (ME + ".checked")).touch()
    wait_for(SHARED / (OTHER + ".checked"))


def test_2_the_next_test_sees_the_seeded_state(postgres_url, redis_client):
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        assert connection.execute("SELECT count(*) FROM users WHERE name LIKE 'gw%%'").fetchone()[0] == 0
        assert connection.execute("SELECT count(*) FROM users WHERE id <= 3").fetchone()[0] == 3
    assert redis_client.dbsize() == 0
"""

# A run that holds its environment until it is killed: it says which database it has, then waits.
HOLD = """
import time
from pathlib import Path

import psycopg


def test_hold(postgres_url, redis_client):
    redis_client.set("left", "behind")
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        database = connection.execute("SELECT current_database()").fetchone()[0]
    Path({marker!r}).write_text(database)
    time.sleep(3600)
"""


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PlainPostgres]:
    with plain_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def redis_server() -> Iterator[PlainRedis]:
    with plain_redis() as server:
        yield server


@pytest.fixture
def given(
    postgres_server: PlainPostgres, redis_server: PlainRedis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[PlainPostgres, PlainRedis]]:
    """The servers' URLs in DATABASE_URL and REDIS_URL, Docker nowhere; afterwards nothing of envmgr's on them."""
    monkeypatch.setenv("DATABASE_URL", postgres_server.url())
    monkeypatch.setenv("REDIS_URL", redis_server.url())
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    yield postgres_server, redis_server
    leftovers = postgres_server.databases(), redis_server.sizes()
    # a failed test's leftovers must not fail the next one: swept here, but reported
    for name in postgres_server.databases():
        postgres_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    client = redis_server.client()
    try:
        client.flushall()
    finally:
        client.close()
    assert leftovers == ([], {}), f"envmgr left these on the servers: {leftovers}"


def project(pytester: pytest.Pytester, table: str = GIVEN_TABLE, **files: str) -> None:
    pytester.makefile(".toml", pyproject=f"[project]\nname = 'given'\n{table}")
    pytester.makepyfile(**files)


def test_a_suite_on_given_servers_passes_at_n2_with_each_worker_isolated(
    pytester: pytest.Pytester, given: tuple[PlainPostgres, PlainRedis]
) -> None:
    postgres_server, _ = given
    shared = pytester.path / "shared"
    shared.mkdir()
    project(pytester, test_a=ISOLATION.format(shared=str(shared)), test_b=ISOLATION.format(shared=str(shared)))
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-n", "2", "--dist", "loadfile", "--envmgr-report", "report.html"
    )  # fmt: skip
    result.assert_outcomes(passed=4)
    assert "envmgr_" in (pytester.path / "report.html").read_text()  # the page people read, too
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["template"]["name"].startswith(f"envmgr_{report['environment']}_app_tpl_")  # built and reported
    assert report["services"]["postgres"]["resets"] == 2  # each worker's test 2, back to the seeded state
    assert set(report["given"]) == {"postgres", "redis"}
    assert postgres_server.password not in report["given"]["postgres"]  # masked
    result.stdout.fnmatch_lines(["envmgr: environment * | on servers envmgr did not start: postgres, redis | *"])
    written = {path.stem: path.read_text().split() for path in shared.glob("*.written")}
    assert set(written) == {"gw0", "gw1"}
    (db0, redis0), (db1, redis1) = written["gw0"], written["gw1"]
    assert db0 != db1
    assert redis0 != redis1
    assert db0.rpartition("_gw0")[0] == db1.rpartition("_gw1")[0]  # of one environment: envmgr_<id>_app
    assert "0" not in (redis0, redis1)  # database 0 (the claims', and an application's own) is never handed out


def _killed_run(pytester: pytest.Pytester, marker: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """A pytest run of the HOLD project, started; returns its database once its test holds it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-n", "2"],
        cwd=pytester.path, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        poll(lambda: marker.read_text().strip() or None, "the held run's database", deadline=120)
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    return marker.read_text().strip(), process


def _kill(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_what_a_killed_run_left_is_swept_by_gc_and_by_the_next_run(
    pytester: pytest.Pytester, given: tuple[PlainPostgres, PlainRedis]
) -> None:
    postgres_server, redis_server = given
    marker = pytester.path / "held"
    project(pytester, test_hold=HOLD.format(marker=str(marker)))

    database, process = _killed_run(pytester, marker)
    _kill(process)
    prefix = database.rpartition("_app_")[0]  # envmgr_<id>
    left = postgres_server.databases(prefix)
    assert database in left, left
    assert any("_tpl_" in name for name in left), left
    assert redis_server.sizes(), "the killed run's Redis database and claims are there"

    gc = subprocess.run(
        [sys.executable, "-m", "envmgr", "gc"], cwd=pytester.path, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert gc.returncode == 0, gc.stderr
    for name in left:
        assert f"removed postgres database {name}" in gc.stderr, gc.stderr
    assert "removed redis database" in gc.stderr
    assert postgres_server.databases() == []
    assert redis_server.sizes() == {}

    marker.unlink()
    database, process = _killed_run(pytester, marker)
    _kill(process)
    assert postgres_server.databases(database.rpartition("_app_")[0])
    pytester.makepyfile(test_hold="def test_nothing():\n    pass\n")
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=1)
    assert postgres_server.databases() == []
    assert redis_server.sizes() == {}


def test_an_unset_variable_in_a_url_is_a_usage_error_naming_it(pytester: pytest.Pytester) -> None:
    table = PROJECT_TABLE + '\n[tool.envmgr.postgres]\nurl = "${ENVMGR_TEST_NEVER_SET}"\n'
    project(pytester, table, test_x="def test_x(postgres_url):\n    pass\n")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*postgres.url*ENVMGR_TEST_NEVER_SET*not set*", "*set ENVMGR_TEST_NEVER_SET*or remove `url`*"]
    )


def test_an_unreachable_url_is_one_line_naming_the_service_and_the_masked_url(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("DATABASE_URL", f"postgresql://admin:s3cr3t-pw@127.0.0.1:{port}/postgres")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    table = PROJECT_TABLE + '\n[tool.envmgr.postgres]\nurl = "${DATABASE_URL}"\nstartup_timeout = 2\n'
    table += "\n[tool.envmgr.redis]\nenabled = false\n"
    project(pytester, table, test_x="def test_x(postgres_url):\n    pass\n")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert "s3cr3t-pw" not in output
    result.stderr.fnmatch_lines(
        [f"*postgres: the server at postgresql://admin:***@127.0.0.1:{port}/postgres (postgres.url) did not answer*"]
    )
    assert "Traceback" not in output


def test_a_role_that_may_not_create_databases_is_refused_at_start(
    pytester: pytest.Pytester, given: tuple[PlainPostgres, PlainRedis], monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres_server, _ = given
    postgres_server.execute("DROP ROLE IF EXISTS plain_user")
    postgres_server.execute("CREATE ROLE plain_user LOGIN PASSWORD 'plain-pw' NOCREATEDB")
    try:
        monkeypatch.setenv("DATABASE_URL", postgres_server.url("plain_user", "plain-pw"))
        project(pytester, test_x="def test_x(postgres_url):\n    pass\n")
        result = pytester.runpytest_subprocess()
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            [
                "*postgres: the role plain_user of postgres.url (postgresql://plain_user:***@*) may not create *",
                "*fix: give it the right (ALTER ROLE plain_user CREATEDB)*",
            ]
        )
    finally:
        postgres_server.execute("DROP ROLE IF EXISTS plain_user")


def test_faults_on_given_servers_go_through_the_workers_proxy(
    pytester: pytest.Pytester, given: tuple[PlainPostgres, PlainRedis]
) -> None:
    """`envmgr_faults` on a server envmgr did not start: the worker's own proxy in front of it hangs (pause) or
    refuses (stop) for that worker only; the other worker works normally, and the server itself is untouched."""
    signals = pytester.path / "signals"
    signals.mkdir()
    table = '[tool.envmgr.postgres]\nurl = "${DATABASE_URL}"\n\n[tool.envmgr.redis]\nurl = "${REDIS_URL}"\n'
    project(
        pytester, table,
        test_a=FAULTING_WORKER.format(signals=str(signals)), test_b=OTHER_WORKER.format(signals=str(signals)),
    )  # fmt: skip
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-n", "2", "--dist", "loadfile")
    result.assert_outcomes(passed=2)


def test_a_library_handle_refuses_to_pause_a_given_server_and_removes_what_it_made(
    given: tuple[PlainPostgres, PlainRedis], tmp_path: Path
) -> None:
    postgres_server, _ = given
    settings = Settings(project_root=tmp_path, postgres={"url": "${DATABASE_URL}"}, redis={"enabled": False})
    with Environment(settings=settings) as env:
        made = postgres_server.databases()
        assert f"envmgr_{env.id}_app" in made
        assert all(name.startswith(f"envmgr_{env.id}_app") for name in made), made
        with pytest.raises(EnvmgrError, match="postgres runs on a server envmgr did not start"):
            env.pause("postgres")
        with pytest.raises(EnvmgrError, match="cannot pause, stop or start it"):
            Faults(env, Worker()).stop("postgres")
    assert postgres_server.databases() == []


def test_a_redis_with_too_few_free_databases_is_refused_at_start(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """-n 2 needs three databases besides database 0: a server with three in all says so before any test runs."""
    with plain_redis(databases=3) as small:
        monkeypatch.setenv("REDIS_URL", small.url())
        monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        table = '[tool.envmgr.redis]\nurl = "${REDIS_URL}"\n\n[tool.envmgr.postgres]\nenabled = false\n'
        project(pytester, table, test_x="def test_x(redis_client):\n    pass\n")
        result = pytester.runpytest_subprocess("-n", "2")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            [
                "*redis: the server of redis.url (redis://:***@127.0.0.1:*) has 3 databases and 2 free*this run "
                "needs 3 (one for the session and one per xdist worker)*",
                "*fix: give the server more (redis-server --databases 64), or run fewer xdist workers (-n)*",
            ]
        )
        assert small.sizes() == {}  # the claims it made were taken back


def test_keep_does_not_keep_what_a_run_made_on_a_given_server(
    pytester: pytest.Pytester, given: tuple[PlainPostgres, PlainRedis]
) -> None:
    """--envmgr-keep cannot keep databases on a server envmgr did not start (the next run would sweep them, its
    session gone): they are removed, and the run says so instead of `envmgr down`."""
    project(pytester, test_x="def test_x(postgres_url, redis_client):\n    redis_client.set('k', 'v')\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--envmgr-keep")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*made on servers envmgr did not start (url) is removed, not kept*"])
    assert "envmgr down" not in result.stdout.str()


@pytest.mark.parametrize("example", ["fastapi_app", "django_app"])
def test_the_examples_pass_at_n2_on_given_servers(
    example: str, given: tuple[PlainPostgres, PlainRedis], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The FastAPI and Django examples, unchanged, with their servers given through ENVMGR_*__URL (itself naming the
    job's variables) and no Docker: they pass at -n 2 on databases of their own, and leave nothing (`given`)."""
    monkeypatch.setenv("ENVMGR_POSTGRES__URL", "${DATABASE_URL}")
    monkeypatch.setenv("ENVMGR_REDIS__URL", "${REDIS_URL}")
    folder = REPO / "tests" / "examples" / example
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=folder, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "13 passed" in result.stdout, result.stdout[-4000:]
    assert re.search(r"template envmgr_\w+_app_tpl_\w+ built", result.stdout), result.stdout[-4000:]


@pytest.mark.docker
def test_a_given_postgres_beside_a_redis_container(
    postgres_server: PlainPostgres, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, namespace: str, engine: Engine
) -> None:
    """One environment, Postgres on a given server and Redis in envmgr's container: both paths at once; a worker's
    clone on the server, its Redis database in the container; afterwards neither a database nor a container."""
    monkeypatch.setenv("DATABASE_URL", postgres_server.url())
    settings = Settings(project_root=tmp_path, postgres={"url": "${DATABASE_URL}"})
    worker = Worker("gw1", isolated=True)
    with Environment(settings=settings, workers=2) as env:
        assert env.needs_engine
        endpoints = env.endpoints
        assert endpoints["postgres"].extra["given"] == "true"
        assert endpoints["redis"].container  # envmgr's own
        env.service("postgres").worker_setup(endpoints["postgres"], worker)
        assert f"envmgr_{env.id}_app_gw1" in postgres_server.databases()
        client = redis.Redis.from_url(env.service("redis").worker_view(endpoints["redis"], worker).url)
        try:
            assert client.ping()
        finally:
            client.close()
        env_id = env.id
    assert postgres_server.databases() == []
    assert labelled(engine, env_id) == []


# A test that says which database and Redis database it has, then waits (when `go` is set) until told to go on.
RECORDING = """
import time
from pathlib import Path

import psycopg


def test_record(postgres_url, redis_client):
    redis_client.set("mine", "{tag}")
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        database = connection.execute("SELECT current_database()").fetchone()[0]
    db = redis_client.connection_pool.connection_kwargs["db"]
    Path({marker!r}).write_text(f"{{database}} {{db}}")
    go = {go!r}
    deadline = time.monotonic() + 300
    while go and not Path(go).exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert redis_client.get("mine") == b"{tag}"  # nobody emptied or shared it meanwhile
"""


def test_two_concurrent_runs_share_no_database_and_never_sweep_each_other(
    pytester: pytest.Pytester, given: tuple[PlainPostgres, PlainRedis]
) -> None:
    """While run A holds its databases, run B starts (its start sweeps the servers), runs at -n 2 and ends: B had
    other databases, A's are intact (A's session on each server keeps them), and A then ends cleanly."""
    postgres_server, redis_server = given
    go = pytester.path / "go"
    folders = {}
    for tag in ("a", "b"):
        folder = folders[tag] = pytester.path / tag
        folder.mkdir()
        (folder / "pyproject.toml").write_text(f"[project]\nname = 'given-{tag}'\n{GIVEN_TABLE}")
        waits = str(go) if tag == "a" else ""
        (folder / f"test_{tag}.py").write_text(RECORDING.format(tag=tag, marker=str(folder / "marker"), go=waits))
    running = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider"],
        cwd=folders["a"], start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        poll(lambda: (folders["a"] / "marker").read_text().strip() or None, "run A's databases", deadline=120)
        other = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider", "-n", "2"],
            cwd=folders["b"], capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert other.returncode == 0, other.stdout[-3000:]
        a_database, a_db = (folders["a"] / "marker").read_text().split()
        b_database, b_db = (folders["b"] / "marker").read_text().split()
        assert a_database.split("_")[1] != b_database.split("_")[1]  # two environments
        assert a_db != b_db
        assert a_database in postgres_server.databases()  # B's start swept the server and left A's alone
        client = redis_server.client(int(a_db))
        try:
            assert client.get("mine") == b"a"
        finally:
            client.close()
    finally:
        go.touch()
        output, _ = running.communicate(timeout=300)
    assert running.returncode == 0, output.decode()[-3000:]
