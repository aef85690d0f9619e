"""The Celery worker container with a project's own code and dependencies: the code in a folder only its owner may
read (mode 0700, as `mktemp -d` makes it), the image built from the project's requirements.txt (once per content),
the export table's variables as the worker reaches them, and results through the worker's result backend."""

from __future__ import annotations

import os
import re
import secrets
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from envmgr.config import load_settings
from envmgr.engine.connection import Engine
from envmgr.images import ensure_derived_image
from envmgr.services.celery.image import worker_image
from envmgr.services.registry import create_service
from tests.conftest import REPO, in_namespace

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


# a failed start returns within seconds, even while a derived Celery image builds ----------------------------------

BUILD_SECONDS = 80
SLOW_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${{BASE_IMAGE}}
# a build that takes its time, as `pip install` of a project's requirements does (no network needed)
RUN sleep {seconds} && echo {token}
"""
CELERY_APP = """
from celery import Celery

app = Celery("tasks")

@app.task
def add(a, b):
    return a + b
"""
START_FAILS_WHILE_BUILDING = """
def test_a_database_test(db_session):
    pass

def test_a_celery_test(celery_worker):
    pass
"""


def wait_for(condition: Callable[[], bool], what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {seconds:g} s"
        time.sleep(0.2)


@pytest.fixture
def slow_celery_project(pytester: pytest.Pytester, engine: Engine) -> Iterator[Path]:
    """A project whose Celery worker image takes BUILD_SECONDS to build and whose Postgres fails to start at once
    (a seed file that fails): its derived image is removed afterwards."""
    token = secrets.token_hex(6)
    (pytester.path / "celery.Dockerfile").write_text(SLOW_DOCKERFILE.format(token=token, seconds=BUILD_SECONDS))
    (pytester.path / "tasks.py").write_text(CELERY_APP)
    seeds = pytester.path / "seeds" / "postgres"
    seeds.mkdir(parents=True)
    (seeds / "001_broken.sql").write_text("INSERT INTO no_such_table VALUES (1);\n")
    table = textwrap.dedent(
        """
        [tool.envmgr]
        seeds = "seeds"

        [tool.envmgr.celery]
        enabled = true
        app = "tasks"
        dockerfile = "celery.Dockerfile"
        """
    )
    pytester.makefile(".toml", pyproject=f"[project]\nname = 'slowbuild'\n{table}")
    pytester.makepyfile(test_start=START_FAILS_WHILE_BUILDING)
    settings = load_settings(pytester.path / "pyproject.toml", image_set=os.environ.get("ENVMGR_IMAGE_SET", "local"))
    derived = create_service("celery", settings).derived_image()
    assert derived is not None
    try:
        yield pytester.path
    finally:
        # a build still running after the run (the defect) ends within BUILD_SECONDS; its image is removed then
        wait_for(lambda: not _builds_running(engine, token), "the slow build ended", BUILD_SECONDS + 60)
        if engine.has_image(derived.tag):
            engine.client.images.remove(derived.tag, force=True)


def _builds_running(engine: Engine, token: str) -> bool:
    """Whether a build step of this test's Dockerfile still runs (the legacy builder's step container)."""
    for container in engine.client.containers.list(all=True, ignore_removed=True):
        command = " ".join(container.attrs.get("Config", {}).get("Cmd") or [])
        if token in command and container.status in ("running", "created"):
            return True
    return False


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single-process", "two-workers"])
def test_a_failed_start_returns_within_seconds_while_a_celery_image_builds(
    slow_celery_project: Path, pytester: pytest.Pytester, engine: Engine, namespace: str, xdist: list[str]
) -> None:
    """Postgres fails at once (its seed file); a worker's Celery image is building on the environment's network.
    The run ended only after the build (6 minutes with pip in issue 19), then printed "could not remove
    environment ... has active endpoints / fix: start the engine again" while the engine was up."""
    started = time.monotonic()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *xdist, timeout=BUILD_SECONDS + 120)
    elapsed = time.monotonic() - started
    output = result.stdout.str() + result.stderr.str()
    assert result.ret != 0
    assert "001_broken.sql" in output, "the cause is named"
    assert "no_such_table" in output, "the cause is named"
    problems = []
    if elapsed > BUILD_SECONDS / 2:
        problems.append(f"the failed run took {elapsed:.0f} s (the build takes {BUILD_SECONDS} s)")
    problems += [line.strip() for line in output.splitlines() if "active endpoints" in line or "engine again" in line]
    assert not problems, "\n".join(problems)
    wait_for(lambda: not in_namespace(engine, namespace), "the environment was removed", 30)
    assert not _builds_running(engine, slow_celery_project.joinpath("celery.Dockerfile").read_text().split()[-1])


UNIMPORTABLE_APP = """\
import envmgr_test_no_such_package  # in no image: the worker cannot import the app

from celery import Celery

app = Celery("unimportable")
"""


def test_a_worker_that_cannot_import_the_app_names_the_module_and_where_to_list_it(pytester: pytest.Pytester) -> None:
    """The worker's import error read as "celery exited before answering celery control ping ... fix: read the log
    lines below": the module was three lines further down, and nothing said where to list it."""
    (pytester.path / "unimportable.py").write_text(UNIMPORTABLE_APP)
    table = '[tool.envmgr.celery]\nenabled = true\napp = "unimportable"\n'
    pytester.makefile(".toml", pyproject=f"[project]\nname = 'unimportable'\n[tool.envmgr]\n{table}")
    pytester.makepyfile(test_tasks="def test_a_task(celery_worker):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    output = " ".join((result.stdout.str() + result.stderr.str()).split())
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output[-3000:]
    assert "the Celery worker cannot import 'envmgr_test_no_such_package' (ModuleNotFoundError)" in output, output
    assert 'fix: list it in a requirements file: [tool.envmgr.celery] requirements = "requirements.txt"' in output
    assert "ERROR at setup of test_a_task" in output, output[-3000:]
