"""The Celery worker container with a project's own code and dependencies: the code in a folder only its owner may
read (mode 0700, as `mktemp -d` makes it), the image built from the project's requirements.txt (once per content),
the export table's variables as the worker reaches them, and results through the worker's result backend."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from envmgr.config import load_settings
from envmgr.engine import Engine
from envmgr.images import ensure_derived_image
from envmgr.services.celery.image import worker_image
from envmgr.services.registry import create_service
from tests.conftest import REPO

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]

PYPROJECT = """\
[project]
name = "jobs"

[tool.envmgr]
[tool.envmgr.export]
CACHE_HOST = "{redis.host}"

[tool.envmgr.celery]
enabled = true
app = "jobs"
requirements = "requirements.txt"

[tool.pytest.ini_options]
pythonpath = ["."]
"""
JOBS = """\
import os

from celery import Celery

app = Celery("jobs")


@app.task
def whoami():
    import idna  # requirements.txt: in the worker's image, not in envmgr's worker image

    return {"uid": os.getuid(), "gid": os.getgid(), "cache_host": os.environ["CACHE_HOST"], "idna": idna.__version__}
"""
TEST = """\
import os

import jobs


def test_the_worker_runs_the_private_code_with_its_requirements(celery_app, celery_worker):
    answer = jobs.whoami.delay().get(timeout=60)  # the result comes back through the worker's result backend
    assert answer == {"uid": os.getuid(), "gid": os.getgid(), "cache_host": "redis", "idna": "3.10"}
    assert os.environ["CACHE_HOST"] == "127.0.0.1"  # the test process gets the same variable, as it reaches Redis
"""


@pytest.fixture
def private_project(namespace: str, engine: Engine) -> Iterator[Path]:
    """A project in a folder only its owner may read, whose requirements are this test's own (a tag of its own);
    the image built for it is removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="envmgr-private-"))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    (folder / "pyproject.toml").write_text(PYPROJECT)
    (folder / "jobs.py").write_text(JOBS)
    (folder / "test_jobs.py").write_text(TEST)
    (folder / "requirements.txt").write_text(f"# {namespace}\nidna==3.10\n")
    image = worker_image(load_settings(folder / "pyproject.toml"), "envmgr-local/celery-worker:5")
    assert image is not None
    try:
        yield folder
    finally:
        if engine.has_image(image.tag):
            engine.client.images.remove(image.tag, force=True)
        subprocess.run(["rm", "-rf", str(folder)], check=True)


def test_worker_reads_a_private_folder_and_has_the_projects_requirements(private_project: Path, engine: Engine) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-p", "no:benchmark",
         "-p", "no:hypothesispytest", "--envmgr-image-set", "local"],
        cwd=private_project,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert re.search(r"\b1 passed\b", result.stdout), output[-4000:]

    settings = load_settings(private_project / "pyproject.toml", image_set="local")
    service = create_service("celery", settings)
    built = service.derived_image()
    assert built is not None
    assert service.image() == built.tag
    assert engine.has_image(built.tag)
    assert ensure_derived_image(engine, built) is False, "built once per content: present, not built again"
    (private_project / "requirements.txt").write_text(f"{built.files['requirements.txt'].decode()}\n")
    changed = create_service("celery", load_settings(private_project / "pyproject.toml", image_set="local"))
    assert changed.image() != built.tag, "a changed requirements file is another image"


def test_a_replica_is_probed_on_its_own_broker_whatever_celery_broker_url_says(
    monkeypatch: pytest.MonkeyPatch, namespace: str
) -> None:
    """A pytest controller has exported replica 0's CELERY_BROKER_URL when it starts another worker's replica;
    Celery's settings prefer that variable to the app's own broker, so probe and purge must not go through them."""
    from envmgr import Environment

    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:9/0")  # nothing listens there
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://127.0.0.1:9/0")
    settings = load_settings(REPO / "pyproject.toml", startup_timeout=60)
    with Environment(["redis", "celery"], settings=settings) as env:
        celery = create_service("celery", settings)
        endpoint = env.endpoints["celery"]
        celery.probe(endpoint)
        celery.reset(endpoint)
        assert env.health()["celery"].healthy
