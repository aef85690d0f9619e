"""`envmgr compose export` against real compose: the file validates, and it runs the environment on 127.0.0.1.

A compose binary is required here: `docker compose` (v2 plugin) or `docker-compose` (v1). Without one these
tests fail, saying so, rather than skipping.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
import redis
import requests
from botocore.config import Config

from envmgr.compose import compose_document, render, write_private
from envmgr.config import Settings, load_settings
from envmgr.engine.connection import Engine
from tests.conftest import REPO

pytestmark = pytest.mark.docker

PORT_VARIABLES = ("ENVMGR_POSTGRES_PORT", "ENVMGR_REDIS_PORT", "ENVMGR_LOCALSTACK_PORT", "ENVMGR_WIREMOCK_PORT")
DEADLINE = 90.0


def compose_binary() -> list[str]:
    """`docker compose` if the v2 plugin answers, else `docker-compose`; fail (not skip) when neither does."""
    for candidate in (["docker", "compose"], ["docker-compose"]):
        try:
            probe = subprocess.run([*candidate, "version"], capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return candidate
    pytest.fail(
        "no compose binary: neither `docker compose` (the v2 plugin) nor `docker-compose` (v1) works on this "
        "machine; install one (Debian: `apt-get install -y docker-compose`) to run the compose export tests"
    )


class Project:
    """One compose project: a unique name, one file, and `down -v` that must leave nothing behind."""

    def __init__(self, binary: list[str], file: Path, engine: Engine) -> None:
        self.binary = binary
        self.file = file
        self.engine = engine
        self.name = f"envmgrct{uuid.uuid4().hex[:10]}"

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 180) -> str:
        environment = {key: value for key, value in os.environ.items() if key not in PORT_VARIABLES}
        result = subprocess.run(
            [*self.binary, "-p", self.name, "-f", str(self.file), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**environment, **(env or {})},
            cwd=self.file.parent,
        )
        assert result.returncode == 0, f"compose {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def address(self, service: str, port: int) -> tuple[str, int]:
        host, _, published = self.run("port", service, str(port)).strip().rpartition(":")
        return host, int(published)

    def container(self, service: str) -> Any:
        container_id = self.run("ps", "-q", service).strip()
        return self.engine.client.containers.get(container_id)

    def leftovers(self) -> list[str]:
        selector = {"label": [f"com.docker.compose.project={self.name}"]}
        client = self.engine.client
        return (
            [f"container {c.name}" for c in client.containers.list(all=True, filters=selector, ignore_removed=True)]
            + [f"network {n.name}" for n in client.networks.list(filters=selector)]
            + [f"volume {v.name}" for v in client.volumes.list(filters=selector)]
        )

    def remove_leftovers(self) -> None:
        selector = {"label": [f"com.docker.compose.project={self.name}"]}
        client = self.engine.client
        for container in client.containers.list(all=True, filters=selector):
            container.remove(force=True, v=True)
        for network in client.networks.list(filters=selector):
            network.remove()
        for volume in client.volumes.list(filters=selector):
            volume.remove(force=True)


@pytest.fixture
def project(tmp_path: Path, engine: Engine) -> Iterator[Callable[[dict[str, Any]], Project]]:
    """Write a document to a file and hand out its compose project; `down -v` at the end, which must clean all."""
    binary = compose_binary()
    started: list[Project] = []

    def make(document: dict[str, Any]) -> Project:
        file = tmp_path / "compose" / "environment.yml"
        write_private(file, render(document))
        started.append(Project(binary, file, engine))
        return started[-1]

    yield make
    problems = []
    for item in started:
        try:
            item.run("down", "-v", "--remove-orphans")
        except AssertionError as exc:
            problems.append(str(exc))
        left = item.leftovers()
        if left:
            problems.append(f"left behind by `down -v`: {left}")
            item.remove_leftovers()
    assert not problems, "\n".join(problems)


def wait_for(check: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    end = time.monotonic() + deadline
    while True:
        try:
            return check()
        except Exception as exc:
            if time.monotonic() > end:
                raise AssertionError(f"{what} not ready after {deadline:.0f} s: {exc}") from exc
            time.sleep(0.3)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_full_export_of_the_example_project_validates(tmp_path: Path) -> None:
    """Every service, seeds and the Celery worker of this repository's pyproject: `compose config` accepts it."""
    binary = compose_binary()
    settings = load_settings(REPO / "pyproject.toml")
    file = tmp_path / "all.yml"
    write_private(file, render(compose_document(settings, ["postgres", "redis", "localstack", "wiremock", "celery"])))
    result = subprocess.run(
        [*binary, "-f", str(file), "config"], capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    for service in ("postgres", "redis", "localstack", "wiremock", "celery", "localstack-seed"):
        assert f"  {service}:" in result.stdout
    assert "127.0.0.1" in result.stdout
    assert "0.0.0.0" not in result.stdout


def test_postgres_and_redis_answer_on_the_published_loopback_ports(
    settings: Settings, project: Callable[[dict[str, Any]], Project]
) -> None:
    document = compose_document(settings, ["postgres", "redis"])
    env = project(document)
    redis_port = free_port()  # the user's pick for redis; postgres gets a free port from the engine
    env.run("up", "-d", "postgres", "redis", env={"ENVMGR_REDIS_PORT": str(redis_port)})

    host, port = env.address("postgres", 5432)
    assert host == "127.0.0.1"
    postgres_env = document["services"]["postgres"]["environment"]
    url = f"postgresql://{postgres_env['POSTGRES_USER']}:{postgres_env['POSTGRES_PASSWORD']}@{host}:{port}/app"

    def select_one() -> Any:
        with psycopg.connect(url, connect_timeout=2) as connection:
            return connection.execute("SELECT 1").fetchone()

    assert wait_for(select_one, "postgres") == (1,)

    host, port = env.address("redis", 6379)
    assert (host, port) == ("127.0.0.1", redis_port)
    command = document["services"]["redis"]["command"]
    client = redis.Redis(host=host, port=port, password=command[command.index("--requirepass") + 1], socket_timeout=2)
    try:
        assert wait_for(client.ping, "redis") is True
    finally:
        client.close()
    for service in ("postgres", "redis"):  # the compose health checks turn healthy too
        wait_for(lambda s=service: _assert_healthy(env.container(s)), f"{service} health check")


def test_every_service_starts_seeded_and_healthy(project: Callable[[dict[str, Any]], Project]) -> None:
    """The repository's example environment: the seed job loads LocalStack, WireMock serves the mounted stubs,
    the Celery worker (code mounted at /app) becomes healthy after everything it depends on."""
    settings = load_settings(REPO / "pyproject.toml")
    document = compose_document(settings, ["postgres", "redis", "localstack", "wiremock", "celery"])
    env = project(document)
    env.run("up", "-d", timeout=300)
    wait_for(lambda: _assert_healthy(env.container("celery")), "celery health check", deadline=120)
    seed = env.container("localstack-seed")
    assert seed.attrs["State"]["ExitCode"] == 0, seed.logs().decode()

    host, port = env.address("wiremock", 8080)
    user, password = document["services"]["wiremock"]["command"][1].split(":", 1)  # admin_auth (the default)
    mappings = requests.get(f"http://{host}:{port}/__admin/mappings", timeout=5, auth=(user, password))
    assert mappings.json()["mappings"], "the seeded WireMock stubs are served"

    host, port = env.address("localstack", 4566)
    options: dict[str, Any] = {
        "endpoint_url": f"http://{host}:{port}",
        # the session's account, where the seed job loads, with the environment's key (the gate checks it)
        "aws_access_key_id": document["services"]["localstack-seed"]["environment"]["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": "test",
        "region_name": "us-east-1",
    }
    s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}), **options)
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["artwork"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="artwork")["Contents"]] == ["covers/placeholder.txt"]
    queues = boto3.client("sqs", **options).list_queues().get("QueueUrls", [])
    assert sorted(url.rsplit("/", 1)[-1] for url in queues) == ["deliveries", "deliveries-dlq"]


def test_wiremock_admin_auth_the_health_check_logs_in_and_strangers_get_401(
    project: Callable[[dict[str, Any]], Project],
) -> None:
    settings = Settings(wiremock={"enabled": True, "admin_auth": True}, postgres={"enabled": False})
    document = compose_document(settings, ["wiremock"])
    env = project(document)
    env.run("up", "-d", timeout=300)
    wait_for(lambda: _assert_healthy(env.container("wiremock")), "wiremock health check", deadline=120)
    host, port = env.address("wiremock", 8080)
    assert requests.get(f"http://{host}:{port}/__admin/mappings", timeout=5).status_code == 401
    user, password = document["services"]["wiremock"]["command"][1].split(":", 1)
    assert requests.get(f"http://{host}:{port}/__admin/mappings", timeout=5, auth=(user, password)).ok


def _assert_healthy(container: Any) -> None:
    container.reload()
    status = container.attrs["State"].get("Health", {}).get("Status")
    assert status == "healthy", f"{container.name}: {status}"


def test_moto_starts_healthy_and_its_seed_job_loads_the_seeds(
    settings: Settings, project: Callable[[dict[str, Any]], Project]
) -> None:
    """The moto backend exported: its health check (moto's data API, through the image's Python) turns healthy, then
    the seed job (the image's Python and boto3) loads the buckets, objects and queues."""
    configured = Settings(**{**settings.model_dump(exclude={"aws", "seeds"}), "aws": {"backend": "moto"},
                             "seeds": str(REPO / "seeds")})  # fmt: skip
    document = compose_document(configured, ["moto"])
    env = project(document)
    env.run("up", "-d", timeout=300)
    wait_for(lambda: _assert_healthy(env.container("moto")), "moto health check", deadline=120)
    wait_for(lambda: _assert_exited(env.container("moto-seed")), "moto-seed job", deadline=120)
    host, port = env.address("moto", 5000)
    options: dict[str, Any] = {
        "endpoint_url": f"http://{host}:{port}",
        "aws_access_key_id": document["services"]["moto-seed"]["environment"]["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": "test",
        "region_name": "us-east-1",
    }
    s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}), **options)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="artwork")["Contents"]] == ["covers/placeholder.txt"]
    queues = boto3.client("sqs", **options).list_queues().get("QueueUrls", [])
    assert sorted(url.rsplit("/", 1)[-1] for url in queues) == ["deliveries", "deliveries-dlq"]


def _assert_exited(container: Any) -> None:
    container.reload()
    state = container.attrs["State"]
    assert state["Status"] == "exited", f"{container.name}: {state['Status']}"
    assert state["ExitCode"] == 0, container.logs().decode()
