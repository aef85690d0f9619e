"""Celery fixtures: the project's Celery app on this worker's broker, and a worker executing its tasks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from envmgr.config import Settings
from envmgr.endpoints import Endpoints

if TYPE_CHECKING:
    from envmgr.pytest.shares import WorkerShares

__all__ = ["celery_app", "celery_worker"]

CLEAN_FIXTURES = ("celery_worker",)
"""fixtures that leave the service as they found it (reset after the test)"""

SERVICE = "celery"


@pytest.fixture(scope="session")
def celery_app(envmgr_settings: Settings, envmgr_shares: WorkerShares) -> Any:
    """The project's Celery app ([tool.envmgr.celery] app) bound to this worker's broker and result backend: a
    Redis database of its own (`Worker.broker_db`), never the application's (`redis_url`); `.get()` works."""
    from envmgr.services.celery.app import load_app, use_broker

    broker = envmgr_shares.server("redis").with_path(str(envmgr_shares.worker.broker_db)).url
    app = load_app(envmgr_settings.celery.app)
    use_broker(app, broker)
    return app


@pytest.fixture(scope="session")
def _envmgr_celery_worker(celery_app: Any, envmgr_endpoints: Endpoints) -> Iterator[Any]:
    if SERVICE in envmgr_endpoints:  # the worker's own container runs the app
        yield envmgr_endpoints[SERVICE]
        return
    from celery.contrib.testing.worker import start_worker

    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10.0) as worker:
        yield worker


@pytest.fixture
def celery_worker(
    request: pytest.FixtureRequest, _envmgr_celery_worker: Any, celery_app: Any, envmgr_shares: WorkerShares
) -> Iterator[Any]:
    """A Celery worker executing this worker's tasks: its container replica when the celery service runs,
    otherwise an in-process solo worker (celery.contrib.testing). Its queue is purged after the test."""
    yield _envmgr_celery_worker
    if SERVICE in request.getfixturevalue("envmgr_endpoints"):
        envmgr_shares.reset(SERVICE)
    else:  # the in-process worker: purged through the app
        from envmgr.pytest.run import run_of

        with run_of(request.config).resets.measure(SERVICE, "reset"):
            celery_app.control.purge()
