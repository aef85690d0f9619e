"""envmgr on Podman's Docker-compatible API (`podman system service`), where Podman is installed: `up --detach`,
`down`, the plugin at -n 2 (its report names the engine), and the watchdog after SIGKILL of an owner.

Podman keeps its images in its own storage: the local images are copied there once (`docker save | podman load`)
and kept for later runs (reloaded when the local image changed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest
import redis

from envmgr.config import Settings
from envmgr.engine.connection import Engine
from envmgr.services.registry import create_service
from tests.conftest import REPO, labelled
from tests.engines import cannot_run_podman, load_images, podman_service

pytestmark = [pytest.mark.docker, pytest.mark.ondemand]

SERVICES = ("postgres", "redis")
REAP_SECONDS = 30.0

PLUGIN_TESTS = """
import psycopg

def test_postgres_is_seeded(postgres_url):
    with psycopg.connect(postgres_url) as connection:
        assert connection.execute("SELECT count(*) FROM users").fetchone() == (3,)

def test_redis_answers(redis_client):
    assert redis_client.ping()
"""

OWNER_SCRIPT = """
import time
from envmgr import Environment, Settings
env = Environment(["redis"], settings=Settings())
env.start()
print(env.id, flush=True)
time.sleep(600)
"""


def envmgr(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envmgr", *args], cwd=cwd, env={**os.environ, "COLUMNS": "200"},
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_podman_up_down_plugin_and_reaper(
    namespace: str, monkeypatch: pytest.MonkeyPatch, pytester: pytest.Pytester, engine: Engine
) -> None:
    reason = cannot_run_podman()
    if reason is not None:
        pytest.skip(reason)
    images = [create_service(name, Settings(image_set="local")).image() for name in SERVICES]
    missing = [image for image in images if _podman_id(image) != _docker_id(image)]
    if missing:
        seconds = load_images(missing, {}, load=("podman", "load"))
        print(f"loaded {', '.join(missing)} into Podman's storage in {seconds:.1f} s")
    with podman_service() as podman:
        monkeypatch.setenv("DOCKER_HOST", podman.docker_host)
        monkeypatch.setenv("ENVMGR_IMAGE_SET", "local")
        doctor = envmgr("doctor", cwd=REPO)
        assert doctor.returncode == 0, doctor.stderr
        assert "engine Podman" in doctor.stdout
        assert f"at {podman.docker_host} (local)" in doctor.stdout

        pod_engine = Engine.connect()
        try:
            started = envmgr("up", *SERVICES, "--detach", "--json", cwd=REPO)
            assert started.returncode == 0, started.stderr
            data = json.loads(started.stdout)
            assert labelled(engine, data["id"]) == [], "the environment must be on Podman, not on dockerd"
            with psycopg.connect(data["services"]["postgres"]["url"]) as connection:
                assert connection.execute("SELECT count(*) FROM users").fetchone() == (3,)  # seeds/postgres
            client = redis.Redis.from_url(data["services"]["redis"]["url"])
            try:
                assert client.ping()
            finally:
                client.close()
            assert len(labelled(pod_engine, data["id"])) == 3  # label filters work: 2 containers, 1 network
            down = envmgr("down", data["id"], cwd=REPO)
            assert down.returncode == 0, down.stderr
            assert labelled(pod_engine, data["id"]) == []

            plugin_runs_on_podman(pytester)
            watchdog_cleans_podman_after_sigkill(pod_engine)
            left = list(pod_engine.environments())
        finally:
            pod_engine.client.close()
        assert left == [], f"left on Podman: {left}"


def plugin_runs_on_podman(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".toml",
        pyproject=textwrap.dedent(
            f"""
            [project]
            name = "podman-demo"
            [tool.pytest.ini_options]
            addopts = "-p no:hypothesispytest -p no:benchmark"
            [tool.envmgr]
            alembic_ini = "{REPO / "tests" / "example_app" / "alembic.ini"}"
            seeds = "{REPO / "seeds"}"
            """
        ),
    )
    pytester.makepyfile(test_podman_project=PLUGIN_TESTS)
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", f"--envmgr-report={report}")
    result.assert_outcomes(passed=2)
    entry = json.loads(report.read_text())["engine"]
    assert entry["kind"] == "Podman"
    assert entry["remote"] is False
    result.stdout.fnmatch_lines(["*| Podman * at unix://*"])


def watchdog_cleans_podman_after_sigkill(pod_engine: Engine) -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER_SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        env_id = owner.stdout.readline().strip()
        assert env_id, "the owner process did not start its environment"
        assert len(labelled(pod_engine, env_id)) == 2
    finally:
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
    deadline = time.monotonic() + REAP_SECONDS
    while labelled(pod_engine, env_id) and time.monotonic() < deadline:
        time.sleep(0.25)  # polled until REAP_SECONDS
    assert labelled(pod_engine, env_id) == [], "the watchdog did not clean Podman"


def _docker_id(image: str) -> str:
    return _image_id(["docker", "image", "inspect", "--format", "{{.Id}}", image], local=True)


def _podman_id(image: str) -> str:
    return _image_id(["podman", "image", "inspect", "--format", "{{.Id}}", image], local=False)


def _image_id(command: list[str], local: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"} if local else None
    found = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    return found.stdout.strip().removeprefix("sha256:") if found.returncode == 0 else ""
