"""Celery apps: the user's (loaded from its module) and a throw-away one for control commands (ping, purge)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from envmgr.errors import ConfigError

__all__ = ["broker_app", "load_app", "pinned_broker", "use_broker"]


@contextmanager
def broker_app(url: str) -> Iterator[tuple[Any, Any]]:
    """A throw-away Celery app and its connection to the broker at `url`, for control commands (ping, purge).

    Celery's `broker_url` setting prefers the CELERY_BROKER_URL variable to the app's own value, and in a pytest
    controller that variable names replica 0's broker, not the one being probed: the URL is set as the read and write
    URLs too (which win over that variable), and the connection is made on it."""
    from celery import Celery

    app = Celery("envmgr-control")
    app.conf.update(pinned_broker(url), broker_connection_retry_on_startup=False, broker_connection_timeout=2)
    try:
        with app.connection_for_write(url) as connection:
            yield app, connection
    finally:
        app.close()


def load_app(spec: str | None) -> Any:
    """The user's Celery app from 'module' (its `app` or `celery` attribute) or 'module:attribute'."""
    if not spec:
        raise ConfigError(
            "no Celery app is configured",
            'set [tool.envmgr.celery] app = "myapp.tasks" (or ENVMGR_CELERY__APP)',
        )
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import the Celery app module {module_name!r}: {exc}",
            "check [tool.envmgr.celery] app and that the module is importable (pytest's pythonpath)",
        ) from None
    for name in [attribute] if attribute else ["app", "celery"]:
        app = getattr(module, name, None)
        if app is not None and hasattr(app, "send_task"):
            return app
    raise ConfigError(
        f"module {module_name!r} has no Celery app {'named ' + repr(attribute) if attribute else '(app or celery)'}",
        'name it: [tool.envmgr.celery] app = "module:attribute"',
    )


def pinned_broker(url: str) -> dict[str, str]:
    """Celery settings naming `url` as the broker, over a CELERY_BROKER_URL variable of the process."""
    return {"broker_url": url, "broker_read_url": url, "broker_write_url": url}


def use_broker(app: Any, url: str) -> None:
    """Point the app's broker and result backend at `url` (a Redis database of the worker's own), so that
    `AsyncResult.get()` works. A result backend the app made before (a task applied eagerly, an earlier `.get()`)
    is made again from the new setting: Celery keeps the first one otherwise."""
    app.conf.update(pinned_broker(url), result_backend=url, broker_connection_retry_on_startup=True)
    made = getattr(app, "_backend", None)  # Celery's cache of the backend (None until first used)
    if made is not None and getattr(made, "url", None) != url:
        app._backend = app._get_backend()
