"""envmgr against a remote engine, for real: a second dockerd in a network namespace this test creates, reached on
tcp://<its address>:2375 (see tests/engines.py). `up --detach --json` with seeds, `down`, the plugin at -n 2, and
SIGKILL of an owner, whose environment the watchdog removes from the remote engine, while another machine's envmgr
(a process in another pid namespace with the same host name) must not take the live owner for dead.

One test: the engine and its image load (~20 s) are paid once, whichever xdist worker runs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import docker
import psycopg
import pytest
import redis
import requests

from envmgr.config import Settings
from envmgr.engine.connection import Engine
from envmgr.environment import Environment
from envmgr.services.registry import create_service
from tests.conftest import REPO, labelled
from tests.engines import SecondEngine, cannot_run_namespaced_dockerd, load_images, namespaced_dockerd

pytestmark = pytest.mark.docker

SERVICES = ("postgres", "redis", "wiremock")
STUB_PATH = "/ws/2/release/b1392450-e666-3926-a536-22c65f834433"
"""a stub of the repository's seeds/wiremock"""
REAP_SECONDS = 30.0

OWNER_SCRIPT = """
import time
from envmgr import Environment, Settings
env = Environment(["redis"], settings=Settings())
env.start()
print(env.id, flush=True)
time.sleep(600)
"""

PLUGIN_TESTS = """
import os
import psycopg
import requests

ADDRESS = os.environ["REMOTE_ADDRESS"]

def test_postgres_is_seeded_and_on_the_remote_engine(postgres_url):
    assert f"@{ADDRESS}:" in postgres_url
    with psycopg.connect(postgres_url) as connection:
        assert connection.execute("SELECT count(*) FROM users").fetchone() == (3,)

def test_redis_answers_on_the_remote_engine(redis_client):
    assert redis_client.connection_pool.connection_kwargs["host"] == ADDRESS
    assert redis_client.ping()

def test_wiremock_serves_its_seeded_stub(wiremock_url):
    assert wiremock_url.startswith(f"http://{ADDRESS}:")
    response = requests.get(wiremock_url + "STUB_PATH", timeout=5)
    assert response.status_code == 200 and response.json()["title"] == "OK Computer"

def test_a_second_worker_has_its_own_share(postgres_url, redis_client):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    assert postgres_url.endswith("/app_" + worker)
    assert redis_client.connection_pool.connection_kwargs["db"] == int(worker[2:]) + 1
""".replace("STUB_PATH", STUB_PATH)


def envmgr(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envmgr", *args], cwd=cwd, env={**os.environ, "COLUMNS": "200"},
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.mark.ondemand  # a private engine in a network namespace: 45 s; on demand (CI time)
def test_remote_engine_up_down_plugin_and_reaper(
    namespace: str, monkeypatch: pytest.MonkeyPatch, pytester: pytest.Pytester, engine: Engine
) -> None:
    reason = cannot_run_namespaced_dockerd()
    if reason is not None:
        pytest.skip(reason)
    settings = Settings(image_set="local")
    images = [create_service(name, settings).image() for name in SERVICES]
    with namespaced_dockerd() as remote:
        seconds = load_images(images, remote.env())
        print(f"loaded {', '.join(images)} into the remote engine in {seconds:.1f} s")
        monkeypatch.setenv("DOCKER_HOST", remote.docker_host)
        monkeypatch.setenv("ENVMGR_IMAGE_SET", "local")
        remote_engine = Engine.connect()
        step = Steps()
        try:
            with step("doctor"):
                doctor_names_the_remote_engine(remote)
            with step("up"):
                env_id = up_reaches_every_service_at_the_engine_address(remote, remote_engine)
            assert labelled(engine, env_id) == [], "the environment must be on the remote engine only"
            with step("down"):
                down = envmgr("down", env_id, cwd=REPO)
            assert down.returncode == 0, down.stderr
            assert labelled(remote_engine, env_id) == []
            with step("plugin -n 2"):
                plugin_runs_at_two_workers_on_the_remote_engine(pytester, monkeypatch, remote, remote_engine)
            with step("reaper"):
                reaper_spares_a_live_owner_and_cleans_after_sigkill(remote_engine)
            with step("refused address"):
                an_address_the_engine_cannot_bind_falls_back_to_all_interfaces(remote, remote_engine)
            left = list(remote_engine.environments())
        finally:
            remote_engine.client.close()
            print(f"remote engine steps: {step}")
        assert left == [], f"left on the remote engine: {left}"


class Steps:
    """How long each step took (printed: the test's own figures when it runs with -s)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - started

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.seconds.items())


def doctor_names_the_remote_engine(remote: SecondEngine) -> None:
    doctor = envmgr("doctor", cwd=REPO)
    assert doctor.returncode == 0, doctor.stderr
    assert "engine Docker" in doctor.stdout
    assert f"at {remote.docker_host} (remote)" in doctor.stdout
    assert f"containers are reached at {remote.address} (ports bound to {remote.address} on the engine)" in (
        doctor.stdout
    )
    assert "plain TCP" in doctor.stdout  # the exposure is said


def up_reaches_every_service_at_the_engine_address(remote: SecondEngine, remote_engine: Engine) -> str:
    """`envmgr up` from the repository (its seeds and migrations; WireMock's seeds copied, not mounted)."""
    started = envmgr("up", *SERVICES, "--detach", "--json", cwd=REPO)
    assert started.returncode == 0, started.stderr
    data = json.loads(started.stdout)
    services = data["services"]
    assert {services[name]["host"] for name in SERVICES} == {remote.address}
    for container in remote_engine.containers(data["id"]):
        for bindings in (container.attrs["HostConfig"]["PortBindings"] or {}).values():
            assert {binding["HostIp"] for binding in bindings} == {remote.address}, container.name  # not 0.0.0.0
    with psycopg.connect(services["postgres"]["url"]) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)
        assert connection.execute("SELECT count(*) FROM users").fetchone() == (3,)  # seeds/postgres
    client = redis.Redis.from_url(services["redis"]["url"])
    try:
        assert client.ping()
    finally:
        client.close()
    stub = requests.get(services["wiremock"]["url"] + STUB_PATH, timeout=5)
    assert stub.status_code == 200, stub.text
    assert stub.json()["title"] == "OK Computer"
    wiremock = remote_engine.client.containers.get(services["wiremock"]["container"])
    assert wiremock.attrs["HostConfig"]["Binds"] in (None, []), "a remote engine cannot mount this machine's files"
    return str(data["id"])


def plugin_runs_at_two_workers_on_the_remote_engine(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, remote: SecondEngine, remote_engine: Engine
) -> None:
    pytester.makefile(
        ".toml",
        pyproject=textwrap.dedent(
            f"""
            [project]
            name = "remote-demo"
            [tool.pytest.ini_options]
            addopts = "-p no:hypothesispytest -p no:benchmark"
            [tool.envmgr]
            alembic_ini = "{REPO / "tests" / "example_app" / "alembic.ini"}"
            seeds = "{REPO / "seeds"}"
            [tool.envmgr.wiremock]
            enabled = true
            """
        ),
    )
    pytester.makepyfile(test_remote=PLUGIN_TESTS)
    monkeypatch.setenv("REMOTE_ADDRESS", remote.address)  # read by the project's tests
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", f"--envmgr-report={report}")
    result.assert_outcomes(passed=4)
    engine_entry = json.loads(report.read_text())["engine"]
    assert engine_entry["kind"] == "Docker"
    assert engine_entry["url"] == remote.docker_host
    assert engine_entry["remote"] is True
    assert engine_entry["reached_at"] == engine_entry["published_on"] == remote.address
    result.stdout.fnmatch_lines([f"*Docker * at {remote.docker_host}*"])  # the summary line names the engine
    assert list(remote_engine.environments()) == []


def reaper_spares_a_live_owner_and_cleans_after_sigkill(remote_engine: Engine) -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER_SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        env_id = owner.stdout.readline().strip()
        assert env_id, "the owner process did not start its environment"
        assert len(labelled(remote_engine, env_id)) == 2  # redis and the network
        # Another machine sharing the engine, with the same host name: a process in a pid namespace of its own. Its
        # `envmgr gc` sees our environment, cannot see our owner, and must leave the environment alone.
        elsewhere = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "envmgr", "gc"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert elsewhere.returncode == 0, elsewhere.stderr
        assert "removed 0 orphaned" in elsewhere.stderr
        assert len(labelled(remote_engine, env_id)) == 2, "another machine's gc took our live owner for dead"
    finally:
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
    deadline = time.monotonic() + REAP_SECONDS
    while labelled(remote_engine, env_id) and time.monotonic() < deadline:
        time.sleep(0.25)  # polled until REAP_SECONDS
    assert labelled(remote_engine, env_id) == [], "the watchdog did not clean the remote engine"


def an_address_the_engine_cannot_bind_falls_back_to_all_interfaces(remote: SecondEngine, remote_engine: Engine) -> None:
    """Behind NAT or a port forward the engine does not own the address it is reached at: envmgr publishes on all
    the engine's interfaces instead (here: the namespace's), and the service is still reached."""
    unowned = Engine(remote_engine.client, replace(remote_engine.address, bind_to=remote.link_address))
    with Environment(["redis"], settings=Settings(), engine=unowned) as env:
        assert unowned.publish_address() == "0.0.0.0"
        client = redis.Redis.from_url(env.endpoints["redis"].url)
        try:
            assert client.ping()
        finally:
            client.close()
        assert env.endpoints["redis"].host == remote.address


def test_the_remote_engine_is_gone_afterwards() -> None:
    """What namespaced_dockerd creates (namespace, veth pair, folder, dockerd and containerd) is removed at its exit."""
    reason = cannot_run_namespaced_dockerd()
    if reason is not None:
        pytest.skip(reason)
    with namespaced_dockerd() as remote:
        assert remote.namespace in _netns()
        assert remote.root is not None
        assert (remote.root / "data").is_dir()
        client = docker.DockerClient(base_url=remote.docker_host)
        try:
            assert client.ping()
        finally:
            client.close()
    assert remote.namespace not in _netns()
    assert subprocess.run(["ip", "link", "show", remote.link], capture_output=True, check=False).returncode != 0
    assert not remote.root.exists()
    assert list(Path("/sys/fs/cgroup").glob(f"*/{remote.namespace}")) == []  # its containers' cgroup parent
    assert subprocess.run(["pgrep", "-f", str(remote.root)], capture_output=True, check=False).stdout == b""


def _netns() -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in listed.splitlines() if line.strip()]
