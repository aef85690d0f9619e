"""The Celery worker's image, built from the project's own dependencies:

    [tool.envmgr.celery]
    requirements = "requirements.txt"     # pip install -r, into the worker's venv
    dockerfile = "ci/celery.Dockerfile"   # or a Dockerfile of the project's (FROM ${BASE_IMAGE})

envmgr builds it FROM the worker image (`envmgr-local/celery-worker:5`, or `celery.image`) when it is missing, tagged
`envmgr-local/celery-worker-project:<hash>` by the hash of what it is built from (the base image's name, the
Dockerfile, the requirements file's bytes): a changed file makes another tag, an unchanged one finds its image.
The build context holds the Dockerfile, `requirements.txt` (when configured) and `ca-bundle.pem` (the CAs pip
trusts while building, `envmgr.images.derived_ca_bundle`); the default Dockerfile installs the requirements in a
build stage and copies only the venv into the image, so the CA bundle stays out of it.

A requirements file is read alone: `-r other.txt`, `-c constraints.txt` or `-e .` naming the project's files do
not reach the build (use a `dockerfile` for those). Packages need wheels for Linux (no compiler in the image).
"""

from __future__ import annotations

from hashlib import sha256
from pathlib import Path

from envmgr.config import Settings
from envmgr.errors import ConfigError
from envmgr.services.base import DerivedImage

__all__ = ["DEFAULT_DOCKERFILE", "REPOSITORY", "worker_image"]

REPOSITORY = "envmgr-local/celery-worker-project"
HASH_VERSION = b"envmgr-celery-image-v1"
DEFAULT_DOCKERFILE = """\
# envmgr: the Celery worker with the project's requirements (built FROM the worker image, BASE_IMAGE)
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS build
USER root
COPY requirements.txt ca-bundle.pem /tmp/envmgr/
RUN PIP_CERT=/tmp/envmgr/ca-bundle.pem PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    /opt/venv/bin/pip install -r /tmp/envmgr/requirements.txt

FROM ${BASE_IMAGE}
COPY --from=build /opt/venv /opt/venv
"""


def worker_image(settings: Settings, base: str) -> DerivedImage | None:
    """The worker's image built FROM `base` with the project's requirements or Dockerfile; None when neither is
    configured. `ConfigError` when a configured file cannot be read."""
    celery = settings.celery
    requirements = settings.resolve(celery.requirements)
    dockerfile = settings.resolve(celery.dockerfile)
    if requirements is None and dockerfile is None:
        return None
    files: dict[str, bytes] = {}
    if requirements is not None:
        files["requirements.txt"] = _read(requirements, "celery.requirements")
    text = _read(dockerfile, "celery.dockerfile").decode() if dockerfile is not None else DEFAULT_DOCKERFILE
    digest = sha256(HASH_VERSION + b"\0" + base.encode() + b"\0" + text.encode())
    for name, data in sorted(files.items()):
        digest.update(b"\0" + name.encode() + b"\0" + data.replace(b"\r\n", b"\n"))
    source = " and ".join(str(path.name) for path in (dockerfile, requirements) if path is not None)
    return DerivedImage(
        tag=f"{REPOSITORY}:{digest.hexdigest()[:16]}", base=base, dockerfile=text, files=files, source=source
    )


def _read(path: Path, key: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{key}: cannot read {path}: {exc.strerror or exc}",
            f"set [tool.envmgr.celery] {key.split('.')[1]} to a file relative to pyproject.toml",
        ) from None
