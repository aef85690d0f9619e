"""No password on Docker: labels of containers, networks and volumes carry none; another process of the same user
derives them (envmgr status, reset, attach), a process with another key is told why it cannot."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from envmgr import Environment, Settings
from envmgr.credentials import Credentials
from envmgr.engine.connection import Engine
from envmgr.engine.labels import LABEL_ENV
from tests.integration.test_cli import envmgr

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]


@pytest.fixture
def detached(settings: Settings) -> Iterator[Environment]:
    """A detached environment (as `envmgr up --detach` leaves one), removed at the end."""
    env = Environment(["postgres", "redis", "wiremock"], settings=settings, detach=True)
    env.start()
    try:
        yield env
    finally:
        env.remove()


def every_label(engine: Engine, env_id: str) -> dict[str, dict[str, str]]:
    """The labels of every container, network and volume of the environment, by object."""
    selector = {"label": [f"{LABEL_ENV}={env_id}"]}
    client = engine.client
    found = {f"container {c.name}": dict(c.labels) for c in client.containers.list(all=True, filters=selector)}
    found |= {f"network {n.name}": dict(n.attrs.get("Labels") or {}) for n in client.networks.list(filters=selector)}
    found |= {f"volume {v.name}": dict(v.attrs.get("Labels") or {}) for v in client.volumes.list(filters=selector)}
    return found


def test_no_label_of_any_container_network_or_volume_holds_a_password(detached: Environment, engine: Engine) -> None:
    passwords = {e.password for e in detached.endpoints.all() if e.password}
    passwords |= {detached.service(name).password for name in detached.services}
    assert len(passwords) >= 2  # postgres and redis at least
    labels = every_label(engine, detached.id)
    assert len(labels) == 4  # three containers and the network
    leaks = [
        f"{owner}: {key}"
        for owner, pairs in labels.items()
        for key, value in pairs.items()
        if any(password in f"{key}={value}" for password in passwords)
    ]
    assert leaks == []


def test_another_process_of_the_same_user_derives_the_passwords(detached: Environment, tmp_path: Path) -> None:
    """`envmgr status` and `reset` in another process, with another $HOME (as pytester and wrappers set it)."""
    other_home = {"HOME": str(tmp_path)}
    status = envmgr("status", "--json", cwd=tmp_path, env=other_home)
    assert status.returncode == 0, status.stderr
    row = next(r for r in json.loads(status.stdout) if r["id"] == detached.id)
    assert row["services"]["postgres"]["url"] == detached.endpoints["postgres"].url
    assert row["services"]["redis"]["url"] == detached.endpoints["redis"].url
    assert all(service["healthy"] for service in row["services"].values()), row
    reset = envmgr("reset", "--env", detached.id, cwd=tmp_path, env=other_home)
    assert reset.returncode == 0, reset.stderr
    attached = Environment.attach(detached.id)
    assert attached.endpoints["postgres"].url == detached.endpoints["postgres"].url


def test_a_process_with_another_key_is_told_why_it_cannot_attach(detached: Environment, tmp_path: Path) -> None:
    other_key = {"XDG_STATE_HOME": str(tmp_path / "state")}
    status = envmgr("status", "--json", cwd=tmp_path, env=other_key)
    assert status.returncode == 0, status.stderr
    row = next(r for r in json.loads(status.stdout) if r["id"] == detached.id)
    assert "started with another key" in row["unreadable"]
    assert row["services"] == {}
    reset = envmgr("reset", "--env", detached.id, cwd=tmp_path, env=other_key)
    assert reset.returncode == 2, reset.stderr  # ConfigError
    assert "started with another key" in reset.stderr
    assert f"envmgr down {detached.id}" in reset.stderr
    assert "Traceback" not in reset.stderr
    assert Credentials.load(tmp_path / "state" / "envmgr").key_id != Credentials.load().key_id


def test_the_passwords_are_the_derived_ones(detached: Environment) -> None:
    credentials = Credentials.load()
    assert detached.endpoints["postgres"].password == credentials.password(detached.id, "postgres")
    assert detached.endpoints["redis"].password == credentials.password(detached.id, "redis")
