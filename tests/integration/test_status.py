"""`envmgr status` reports every environment's state (running, stopped, partial) and never fails as a whole: a
stopped container is listed with its state, not probed, and its endpoint is where it comes back."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envmgr import Environment, Settings
from envmgr.engine.connection import Engine
from envmgr.engine.labels import LABEL_ENV
from tests.integration.test_cli import envmgr

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]


@pytest.fixture
def detached(settings: Settings) -> Iterator[Environment]:
    env = Environment(["redis", "wiremock"], settings=settings, detach=True)
    env.start()
    try:
        yield env
    finally:
        env.remove()


def status_row(env_id: str, cwd: Path) -> dict[str, Any]:
    result = envmgr("status", "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    row: dict[str, Any] = next(r for r in json.loads(result.stdout) if r["id"] == env_id)
    return row


def stop(engine: Engine, env: Environment, service: str) -> None:
    engine.client.containers.get(env.endpoints[service].container).stop(timeout=5)


def test_status_shows_a_stopped_service_and_a_partial_environment(
    detached: Environment, engine: Engine, tmp_path: Path
) -> None:
    assert status_row(detached.id, tmp_path)["state"] == "running"
    stop(engine, detached, "wiremock")
    row = status_row(detached.id, tmp_path)
    assert row["state"] == "partial"
    assert row["unreadable"] is None
    wiremock, redis = row["services"]["wiremock"], row["services"]["redis"]
    assert wiremock["state"] == "exited"
    assert wiremock["healthy"] is False
    assert wiremock["detail"] == "container exited"
    assert wiremock["url"] == detached.endpoints["wiremock"].url, "where it comes back: the pinned port"
    assert redis["state"] == "running"
    assert redis["healthy"] is True
    table = envmgr("status", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    line = next(line for line in table.stdout.splitlines() if detached.id in line)
    assert "partial" in line
    assert "wiremock down (exited)" in table.stdout
    assert detached.endpoints["wiremock"].url in table.stdout, "off a terminal a URL is whole (not cut with '…')"
    assert "…" not in table.stdout


def test_status_shows_a_stopped_environment_and_reset_says_what_to_do(
    detached: Environment, engine: Engine, tmp_path: Path
) -> None:
    stop(engine, detached, "wiremock")
    stop(engine, detached, "redis")
    row = status_row(detached.id, tmp_path)
    assert row["state"] == "stopped"
    assert {name: s["state"] for name, s in row["services"].items()} == {"redis": "exited", "wiremock": "exited"}
    reset = envmgr("reset", "--env", detached.id, cwd=tmp_path)
    assert reset.returncode == 5, reset.stderr  # ServiceStartError
    assert f"of environment {detached.id} is stopped" in reset.stderr
    assert "fix: start it again: docker start " in reset.stderr
    assert "Traceback" not in reset.stderr


def test_a_leftover_without_its_creation_time_has_no_age_instead_of_fifty_years(tmp_path: Path, engine: Engine) -> None:
    """A volume some run left with only the environment's label (no creation time): status lists it with an
    unknown age (JSON null, `?` in the table), not the seconds since 1970."""
    env_id = f"noage{os.getpid()}"
    volume = engine.client.volumes.create(name=f"envmgr-test-{env_id}", labels={LABEL_ENV: env_id})
    try:
        assert status_row(env_id, tmp_path)["age_seconds"] is None
        table = envmgr("status", cwd=tmp_path)
        assert table.returncode == 0, table.stderr
        line = next(line for line in table.stdout.splitlines() if env_id in line)
        assert "?" in line
        assert not re.search(r"\d{5,}", line.replace(env_id, "")), line  # no seconds (or days) since 1970
    finally:
        volume.remove(force=True)
