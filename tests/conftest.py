"""Shared test helpers: settings that follow ENVMGR_* (CI selects the local image set) and leak checks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from envmgr.config import Settings
from envmgr.engine.connection import Engine
from envmgr.engine.labels import LABEL_ENV, LABEL_NAMESPACE

if TYPE_CHECKING:
    from tests.integration.private_engine import PrivateEngine

REPO = Path(__file__).resolve().parents[1]

pytest_plugins = ["pytester", "tests.host_bridge"]  # host_bridge: docker0 must outlive the run (issue 19)


@pytest.fixture(autouse=True)
def _no_inherited_environment(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables this run's envmgr exported (DATABASE_URL, CELERY_BROKER_URL, ENVMGR_ENV_ID ...) are this
    process's, and those an xdist worker inherits from its controller (ENVMGR_RUN_PLAN, ENVMGR_RUN_CONTROLLER ...)
    its run's: the pytest runs and CLI processes a test starts are a user's, and must not inherit them from it."""
    from envmgr.pytest.plugin import exported_names
    from envmgr.pytest.variables import CONTROLLER_VARIABLE, ISOLATION_VARIABLE, PLAN_VARIABLE

    for name in [*exported_names(request.config), CONTROLLER_VARIABLE, ISOLATION_VARIABLE, PLAN_VARIABLE]:
        monkeypatch.delenv(name, raising=False)
    # The runs a test starts keep no environment warm for a next run (a test of that says otherwise): with the
    # default (daemon = "auto") they would start the user's daemon and leave their environments to it.
    monkeypatch.setenv("ENVMGR_DAEMON", "off")


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine.connect()


@pytest.fixture
def namespace(monkeypatch: pytest.MonkeyPatch) -> str:
    """A namespace of this test's own, also for the CLI and pytest processes it runs (ENVMGR_NAMESPACE)."""
    name = f"t{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("ENVMGR_NAMESPACE", name)
    return name


@pytest.fixture
def settings(tmp_path: Path, namespace: str) -> Settings:
    """Settings from ENVMGR_* only (no pyproject), rooted in an empty folder: a bare environment."""
    return Settings(project_root=tmp_path)


def labelled(engine: Engine, env_id: str) -> list[str]:
    """Every container, network and volume still labelled with this environment."""
    selector = {"label": [f"{LABEL_ENV}={env_id}"]}
    client = engine.client
    return (
        [f"container {c.name}" for c in client.containers.list(all=True, filters=selector, ignore_removed=True)]
        + [f"network {n.name}" for n in client.networks.list(filters=selector)]
        + [f"volume {v.name}" for v in client.volumes.list(filters=selector)]
    )


def in_namespace(engine: Engine, namespace: str) -> list[str]:
    return [
        env_id for env_id, record in engine.environments().items() if record.labels.get(LABEL_NAMESPACE) == namespace
    ]


@pytest.fixture(scope="module")
def private_engine() -> Iterator[PrivateEngine]:
    """A dockerd of the module's own holding the local Redis image, to stop and restart (never the machine's)."""
    from tests.integration.private_engine import PrivateEngine

    with PrivateEngine.started(images=["envmgr-local/redis:7"]) as engine:
        yield engine


@pytest.fixture
def no_new_environments(engine: Engine, namespace: str) -> Iterator[None]:
    """Fail the test if it leaves behind an environment of its namespace."""
    yield
    left = in_namespace(engine, namespace)
    assert not left, f"environments left behind: {left}"
