"""Shared test helpers: settings that follow ENVMGR_* (CI selects the local image set) and leak checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from envmgr.config import Settings
from envmgr.engine import LABEL_ENV, Engine

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine.connect()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings from ENVMGR_* only (no pyproject), rooted in an empty folder: a bare environment."""
    return Settings(project_root=tmp_path)


def labelled(engine: Engine, env_id: str) -> list[str]:
    """Every container, network and volume still labelled with this environment."""
    selector = {"label": [f"{LABEL_ENV}={env_id}"]}
    client = engine.client
    return (
        [f"container {c.name}" for c in client.containers.list(all=True, filters=selector)]
        + [f"network {n.name}" for n in client.networks.list(filters=selector)]
        + [f"volume {v.name}" for v in client.volumes.list(filters=selector)]
    )


@pytest.fixture
def no_new_environments(engine: Engine) -> Iterator[None]:
    """Fail the test if it leaves an environment behind that was not there before."""
    before = set(engine.environments())
    yield
    after = set(engine.environments()) - before
    assert not after, f"environments left behind: {sorted(after)}"
