"""The example projects under tests/examples/, each run in its own folder as its users would run it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]

FASTAPI_APP = REPO / "tests" / "examples" / "fastapi_app"
FASTAPI_TESTS = 13
DJANGO_APP = REPO / "tests" / "examples" / "django_app"
DJANGO_TESTS = 13
FLASK_APP = REPO / "tests" / "examples" / "flask_app"
FLASK_TESTS = 15
# Plugins some machines' Python carries and the example does not use (see the main pyproject's addopts).
QUIET = ("-p", "no:cacheprovider", "-p", "no:benchmark", "-p", "no:hypothesispytest")


@pytest.mark.parametrize("workers", [None, 2], ids=["one-process", "two-workers"])
def test_fastapi_example_passes(namespace: str, workers: int | None) -> None:
    _passes(FASTAPI_APP, FASTAPI_TESTS, workers)


@pytest.mark.parametrize("workers", [None, 2], ids=["one-process", "two-workers"])
def test_django_example_passes_without_a_conftest(namespace: str, workers: int | None) -> None:
    assert not list(DJANGO_APP.rglob("conftest.py"))
    output = _passes(DJANGO_APP, DJANGO_TESTS, workers)
    # Its tests find the seeds and the fixture, which only envmgr's template has (a test database of pytest-django's
    # own would be empty); Redis was started for Django's CACHES.
    assert "started for postgres (mark.django_db), redis (Django CACHES)" in output, output[-4000:]


@pytest.mark.parametrize("workers", [None, 2], ids=["one-process", "two-workers"])
def test_flask_example_passes(namespace: str, workers: int | None) -> None:
    """Flask-SQLAlchemy + Flask-Migrate (its env.py unchanged) + factory_boy + Redis + Celery workers built from the
    example's requirements.txt, with WireMock as the partner API."""
    output = _passes(FLASK_APP, FLASK_TESTS, workers)
    assert "started for postgres (db_session), redis (redis_client), wiremock (wiremock), celery" in output


def _passes(folder: Path, tests: int, workers: int | None) -> str:
    """Run the example's suite as its users would (in its folder); it passes with `tests` tests. Its output."""
    xdist = ["-n", str(workers)] if workers else ["-p", "no:xdist"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *xdist, *QUIET, "-v"],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert re.search(rf"\b{tests} passed\b", result.stdout), output[-4000:]
    assert re.search(r"envmgr: environment \w+ ", result.stdout), output[-4000:]
    if workers:
        assert f"created: {workers}/{workers} workers" in result.stdout, output[-4000:]
    return result.stdout
