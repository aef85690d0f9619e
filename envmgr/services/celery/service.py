"""Celery worker containers running the user's Celery app, one per xdist worker, each on its own broker database.

The worker of replica N consumes from its broker database (the xdist worker gwN's, see `Worker.broker_db`), so a
task sent by one pytest worker is executed only by that worker's Celery worker. The project's code is mounted
read-only at /app (`[tool.envmgr.celery] code_dir`, default the project root; copied there on a remote engine, see
`envmgr.engine.containers.bind_copies`) and the app is `[tool.envmgr.celery] app`. The container runs as the invoking
user's uid:gid, so it reads a project folder only its owner may read (a `mktemp -d` folder, a 0750 home). Its image
is built with the project's requirements when `requirements` or `dockerfile` is set (`image.py`). The container's
environment names the broker (CELERY_BROKER_URL, CELERY_RESULT_BACKEND, which Celery reads by default), the internal
URLs of the other services (DATABASE_URL, REDIS_URL, AWS_ENDPOINT_URL, WIREMOCK_URL ...) and the export table's
variables as seen from inside the environment's network, so a task reaches them as the app would.

Readiness: `control.ping` through the broker answers. Reset: the worker's queues purged.
"""

from __future__ import annotations

import os
import re
from types import MappingProxyType

from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.errors import ConfigError, ServiceStartError
from envmgr.services.base import ContainerSpec, DerivedImage, Published, Service, ServiceDocs
from envmgr.services.celery.app import broker_app
from envmgr.services.celery.settings import CelerySettings

__all__ = ["CeleryService"]

PING_TIMEOUT = 1.0
MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'")
"""the line Python writes when an import fails for want of the module"""


class CeleryService(Service):
    name = "celery"
    official_image = "envmgr-local/celery-worker:5"  # no official image exists: built from image/ in both sets
    local_image = "envmgr-local/celery-worker:5"
    build_name = "celery-worker"
    ports = MappingProxyType({})
    requires = ("redis",)
    uses = ("postgres", "localstack", "moto", "wiremock")
    per_worker = True
    probe_description = "celery control ping through the broker"
    startup_deadline = 120.0
    docs = ServiceDocs(
        official_image="no official image: built from its image folder in both sets",
        ready="`control.ping` through the broker",
        seeds="-",
        isolation="its own worker container on the worker's broker database",
        reset="queues purged",
    )
    fixtures = "envmgr.services.celery.fixtures"
    compose_image_healthcheck = True  # the worker's ready file
    fixtures_without_service = True  # celery_worker runs an in-process worker then

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
        for endpoint in requirements.values():  # each as this worker sees it (its database, its Redis db, ...)
            env.update(endpoint.internal_variables())
        env.update(self.settings.export_table().render(requirements, internal=True))
        broker = _broker(requirements["redis"], worker).internal_url
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
        return ContainerSpec(image=self.image(), ports={}, env=env, binds={str(code_dir): "/app"}, user=_invoker())

    def derived_image(self) -> DerivedImage | None:
        """The worker image with the project's requirements (or Dockerfile), when configured."""
        from envmgr.services.celery.image import worker_image

        return worker_image(self.settings, self.base_image())

    def diagnose(self, logs: str) -> ServiceStartError | None:
        """A worker that could not import a module of the app (`ModuleNotFoundError` in its log): the image lacks a
        package the app's module, or its package's `__init__.py`, imports."""
        missing = MISSING_MODULE.findall(logs)
        if not missing:
            return None
        cfg = self.cfg
        if cfg.dockerfile is not None:
            where = f"install it in {cfg.dockerfile.name} ([tool.envmgr.celery] dockerfile)"
        elif cfg.requirements is not None:
            where = f"add it to {cfg.requirements.name} ([tool.envmgr.celery] requirements)"
        else:
            where = 'list it in a requirements file: [tool.envmgr.celery] requirements = "requirements.txt"'
        return ServiceStartError(
            self.name,
            f"the Celery worker cannot import {missing[-1]!r} (ModuleNotFoundError): its image lacks a package that "
            f"{cfg.app or 'the Celery app'} or its package's __init__.py imports",
            f"{where}, with everything the app's package imports (docs/celery.md)",
            logs=logs,
        )

    def endpoint(self, published: Published) -> ServiceEndpoint:
        """How to reach the worker: through its broker (the worker's Redis database)."""
        broker = _broker(published.needs["redis"], published.worker)
        return broker.model_copy(
            update={
                "service": self.name,
                "image": published.image,
                "container": published.container,
                "extra": {"queues": ",".join(self.cfg.queues), "worker": published.worker.worker_id},
            }
        ).bind(CELERY_BROKER_URL="url", CELERY_RESULT_BACKEND="url")

    def probe(self, endpoint: ServiceEndpoint) -> None:
        with broker_app(endpoint.url) as (app, connection):
            if not app.control.ping(timeout=PING_TIMEOUT, limit=1, connection=connection):  # one answer is enough
                raise ConnectionError("no Celery worker answered ping")

    def reset(self, endpoint: ServiceEndpoint) -> None:
        """The replica's queues purged."""
        with broker_app(endpoint.url) as (_, connection):
            for queue in endpoint.extra.get("queues", "celery").split(","):
                connection.default_channel.queue_purge(queue)

    def worker_reset(self, endpoint: ServiceEndpoint, worker: Worker) -> None:
        """The worker's own replica: its queues purged."""
        self.reset(endpoint)

    def compose_notes(self) -> list[str]:
        return [
            "celery: the project's code_dir is bind-mounted read-only at /app; the worker runs as the uid:gid of "
            "who exported the file, who must be able to read it",
            "celery: no health check here: the image's own HEALTHCHECK applies (the ready file)",
        ]


def _invoker() -> str | None:
    """`uid:gid` of this process (the worker reads the project's files as their owner would), where there is one."""
    if not hasattr(os, "getuid"):
        return None
    return f"{os.getuid()}:{os.getgid()}"


def _broker(redis: ServiceEndpoint, worker: Worker) -> ServiceEndpoint:
    """The worker's broker: a Redis database of its own, apart from the application's (`Worker.broker_db`)."""
    return redis.with_path(str(worker.broker_db)).model_copy(update={"variables": {}, "bindings": {}})
