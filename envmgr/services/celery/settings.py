"""`[tool.envmgr.celery]`: the worker container and the project's app it runs."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from envmgr.services.settings import ServiceSettings

__all__ = ["CelerySettings"]


class CelerySettings(ServiceSettings):
    """Celery: a worker container per xdist worker running the project's app (docs/celery.md)."""

    image_variables = ("ENVMGR_WORKER",)

    app: str | None = Field(default=None, description="the project's Celery app: 'module' or 'module:attribute'")
    code_dir: Path | None = Field(
        default=None,
        description="the folder mounted read-only at /app in the worker, on its PYTHONPATH (default: the project "
        "root); the worker runs as the invoking user's uid:gid, so a folder only its owner may read works",
    )
    queues: list[str] = Field(default_factory=lambda: ["celery"], description="queues the worker consumes")
    requirements: Path | None = Field(
        default=None,
        description="a requirements file (pip install -r) the worker's image is built with, FROM envmgr's worker "
        "image; tagged by the hash of its content, so rebuilt only when it changes (see docs/celery.md)",
    )
    dockerfile: Path | None = Field(
        default=None,
        description="a Dockerfile the worker's image is built from instead (FROM ${BASE_IMAGE}, envmgr's worker "
        "image; the context holds it, extra-ca.crt and the requirements file); tagged by the hash of its content",
    )
