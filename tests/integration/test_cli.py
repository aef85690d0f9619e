"""The envmgr command against a real engine: detached environments, down, status, and clean failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis

from envmgr.config import Settings
from envmgr.engine.connection import Engine
from envmgr.engine.labels import (
    LABEL_DETACHED,
    LABEL_ENV,
    LABEL_NAMESPACE,
    LABEL_REPLICA,
    LABEL_SERVICE,
    LABEL_SERVICE_CONFIG,
)
from envmgr.services.registry import create_service
from tests.conftest import labelled

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]


def envmgr(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    merged = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "envmgr", *args],
        cwd=cwd,
        env=merged,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_detached_environment_survives_the_cli_and_down_removes_it(tmp_path: Path, engine: Engine) -> None:
    started = envmgr("up", "postgres", "redis", "--detach", "--json", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    data = json.loads(started.stdout)
    env_id = data["id"]
    try:
        assert set(data["services"]) == {"postgres", "redis"}
        # The CLI has exited and its watchdog was dismissed: the environment must still answer a while later.
        time.sleep(2)
        with psycopg.connect(data["services"]["postgres"]["url"]) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
        client = redis.Redis.from_url(data["services"]["redis"]["url"])
        assert client.ping()
        client.close()
        status = envmgr("status", "--json", cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        row = next(r for r in json.loads(status.stdout) if r["id"] == env_id)
        assert row["detached"] is True
        assert all(s["healthy"] for s in row["services"].values())
        gc = envmgr("gc", cwd=tmp_path)
        assert gc.returncode == 0
        assert len(labelled(engine, env_id)) == 3, "gc must spare detached environments"
    finally:
        down = envmgr("down", env_id, cwd=tmp_path)
        left = labelled(engine, env_id)
        engine.remove_environment(env_id)  # whatever `down` did: the planted container never outlives the test
    assert down.returncode == 0, down.stderr
    assert left == []


def test_down_of_an_unknown_id_fails_clearly(tmp_path: Path) -> None:
    result = envmgr("down", "nope000000", cwd=tmp_path)
    assert result.returncode == 8
    assert "no environment nope000000" in result.stderr
    assert "fix:" in result.stderr


def test_bad_configuration_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.envmgr]\nstartup_timout = 3\n")
    result = envmgr("up", "--detach", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown configuration key 'startup_timout'" in result.stderr
    assert str(tmp_path / "pyproject.toml") in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_image_is_one_line_and_exit_4(tmp_path: Path) -> None:
    result = envmgr(
        "up", "postgres", "--detach", cwd=tmp_path, env={"ENVMGR_POSTGRES__IMAGE": "envmgr-missing/postgres:0"}
    )
    assert result.returncode == 4, result.stderr
    assert "image envmgr-missing/postgres:0 for postgres" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_engine_is_one_line_and_exit_3(tmp_path: Path) -> None:
    result = envmgr("up", "--detach", cwd=tmp_path, env={"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock"})
    assert result.returncode == 3
    assert "cannot reach the Docker engine" in result.stderr
    assert "fix:" in result.stderr
    assert "Traceback" not in result.stderr


def test_doctor_reports_engine_and_images(tmp_path: Path) -> None:
    result = envmgr("doctor", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "engine" in result.stdout
    assert "postgres" in result.stdout


def test_status_lists_an_environment_it_cannot_read_instead_of_failing(
    tmp_path: Path, engine: Engine, namespace: str
) -> None:
    """A shared engine holds environments of other machines' envmgr, other versions among them: `status` says which
    it cannot read and goes on; `down` still removes them (by label)."""
    env_id = "f" + os.urandom(5).hex()[:9]
    labels = {
        LABEL_ENV: env_id, LABEL_NAMESPACE: namespace, LABEL_SERVICE: "redis", LABEL_REPLICA: "0",
        LABEL_SERVICE_CONFIG: json.dumps({"setting_of_a_later_version": 1}), LABEL_DETACHED: "true",
    }  # fmt: skip
    image = create_service("redis", Settings(project_root=tmp_path)).image()
    engine.client.containers.create(image, name=f"{namespace}-{env_id}-redis", labels=labels)
    try:
        status = envmgr("status", "--json", cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        row = next(r for r in json.loads(status.stdout) if r["id"] == env_id)
        assert "cannot read" in row["unreadable"]
        assert row["services"] == {}
    finally:
        down = envmgr("down", env_id, cwd=tmp_path)
        left = labelled(engine, env_id)
        engine.remove_environment(env_id)  # whatever `down` did: the planted container never outlives the test
    assert down.returncode == 0, down.stderr
    assert left == []
