"""Celery worker containers running the user's Celery app, one per xdist worker, each on its own broker database.

The worker of replica N consumes from Redis database N+1 (the xdist worker gwN's, see `Worker.redis_db`), so a task
sent by one pytest worker is executed only by that worker's Celery worker. The project's code is mounted read-only
at /app (`[tool.envmgr.celery] code_dir`, default the project root) and the app is `[tool.envmgr.celery] app`. The
container's environment names the broker (CELERY_BROKER_URL, CELERY_RESULT_BACKEND, which Celery reads by default)
and the internal URLs of the other services (DATABASE_URL, REDIS_URL, AWS_ENDPOINT_URL, WIREMOCK_URL ...), so a
task can reach them from inside the environment's network.

Readiness: `control.ping` through the broker answers. Reset: the worker's queues purged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from envmgr.config import CelerySettings
from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.errors import ConfigError
from envmgr.services.base import ContainerSpec, Published, Service

__all__ = ["CeleryService", "broker_app"]

PING_TIMEOUT = 1.0


class CeleryService(Service):
    name = "celery"
    official_image = "envmgr-local/celery-worker:5"  # no official image exists: built from containers/ in both sets
    local_image = "envmgr-local/celery-worker:5"
    build_context = "celery-worker"
    ports = MappingProxyType({})
    requires = ("redis",)
    uses = ("postgres", "localstack", "wiremock")
    per_worker = True
    probe_description = "celery control ping through the broker"

    @property
    def cfg(self) -> CelerySettings:
        config = self.config
        assert isinstance(config, CelerySettings)
        return config

    def container_spec(self, requirements: dict[str, ServiceEndpoint], worker: Worker) -> ContainerSpec:
        if not self.cfg.app:
            raise ConfigError(
                "the celery service needs the module of your Celery app",
                'set [tool.envmgr.celery] app = "myapp.tasks" (or ENVMGR_CELERY__APP)',
            )
        code_dir = self.settings.resolve(self.cfg.code_dir) or self.settings.project_root
        env: dict[str, str] = {}
        for endpoint in requirements.values():
            env.update(_worker_view(endpoint, worker).internal_variables())
        broker = _worker_view(requirements["redis"], worker).internal_url
        env.update(
            {
                "CELERY_APP": self.cfg.app,
                "CELERY_BROKER_URL": broker,
                "CELERY_RESULT_BACKEND": broker,
                "CELERY_QUEUES": ",".join(self.cfg.queues),
                "ENVMGR_WORKER": worker.worker_id,
                **self.cfg.env,
            }
        )
        return ContainerSpec(image=self.image(), ports={}, env=env, binds={str(code_dir): "/app"})

    def endpoint(self, published: Published) -> ServiceEndpoint:
        """How to reach the worker: through its broker (the worker's Redis database)."""
        broker = _worker_view(published.needs["redis"], published.worker)
        return broker.model_copy(
            update={
                "service": self.name,
                "image": published.image,
                "container": published.container,
                "variables": {"CELERY_BROKER_URL": broker.url, "CELERY_RESULT_BACKEND": broker.url},
                "extra": {"queues": ",".join(self.cfg.queues), "worker": published.worker.worker_id},
            }
        )

    def probe(self, endpoint: ServiceEndpoint) -> None:
        with broker_app(endpoint.url) as app:
            if not app.control.ping(timeout=PING_TIMEOUT, limit=1):  # the first answer is enough
                raise ConnectionError("no Celery worker answered ping")

    def reset(self, endpoint: ServiceEndpoint) -> None:
        with broker_app(endpoint.url) as app:
            for queue in endpoint.extra.get("queues", "celery").split(","):
                with app.connection_for_write() as connection:
                    connection.default_channel.queue_purge(queue)


def _worker_view(endpoint: ServiceEndpoint, worker: Worker) -> ServiceEndpoint:
    """A shared server's endpoint as one worker uses it: its Redis database, its Postgres database."""
    if endpoint.service == "redis":
        return endpoint.with_path(str(worker.redis_db))
    if endpoint.service == "postgres":
        return endpoint.with_path(worker.database(endpoint.path))
    return endpoint


@contextmanager
def broker_app(url: str) -> Iterator[Any]:
    """A throw-away Celery app on a broker URL, for control commands (ping, purge)."""
    from celery import Celery

    app = Celery("envmgr-control", broker=url, backend=url)
    app.conf.broker_connection_retry_on_startup = False
    app.conf.broker_connection_timeout = 2
    try:
        yield app
    finally:
        app.close()


def load_app(spec: str | None) -> Any:
    """The user's Celery app from 'module' (its `app` or `celery` attribute) or 'module:attribute'."""
    import importlib

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
