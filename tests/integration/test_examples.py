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
FLASK_APP = REPO / "tests" / "examples" / "flask_app"
FLASK_TESTS = 15
# Plugins some machines' Python carries and the example does not use (see the main pyproject's addopts).
QUIET = ("-p", "no:cacheprovider", "-p", "no:benchmark", "-p", "no:hypothesispytest")


def run_example(folder: Path, workers: int | None, tests: int) -> str:
    """`pytest` (or `pytest -n N`) in the example's folder, as its users run it; its output, once it passed."""
    xdist = ["-n", str(workers)] if workers else ["-p", "no:xdist"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *xdist, *QUIET],
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


@pytest.mark.parametrize("workers", [None, 2], ids=["one-process", "two-workers"])
def test_fastapi_example_passes(namespace: str, workers: int | None) -> None:
    run_example(FASTAPI_APP, workers, FASTAPI_TESTS)


@pytest.mark.parametrize("workers", [None, 2], ids=["one-process", "two-workers"])
def test_flask_example_passes(namespace: str, workers: int | None) -> None:
    """Flask-SQLAlchemy + Flask-Migrate (its env.py unchanged) + factory_boy + Redis + Celery workers built from the
    example's requirements.txt, with WireMock as the partner API."""
    output = run_example(FLASK_APP, workers, FLASK_TESTS)
    assert "started for postgres (db_session), redis (redis_client), wiremock (wiremock), celery" in output
