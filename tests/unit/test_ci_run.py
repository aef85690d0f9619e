""".ci/run: set-up, then ruff check, ruff format --check and mypy, then pytest; a failing check fails CI first.

The script runs from a copy with a stub `.ci/setup` and a stub `python3` first on PATH that records its arguments.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECKS = ["-m ruff check .", "-m ruff format --check .", "-m mypy"]
PYTEST = "-m pytest -n 2"


def _run_ci(tmp_path: Path, failing: str | None) -> tuple[int, list[str]]:
    (tmp_path / ".ci").mkdir()
    shutil.copy(REPO / ".ci" / "run", tmp_path / ".ci" / "run")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    stubs = {
        tmp_path / ".ci" / "setup": "#!/bin/sh\nexit 0\n",
        bin_dir / "python3": (
            f'#!/bin/sh\necho "$*" >> "{log}"\nif [ "$*" = "{failing or ""}" ]; then exit 1; fi\nexit 0\n'
        ),
    }
    for path, text in stubs.items():
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    result = subprocess.run(
        [str(tmp_path / ".ci" / "run")],
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return result.returncode, calls


def test_ci_runs_the_checks_before_the_tests(tmp_path: Path) -> None:
    status, calls = _run_ci(tmp_path, failing=None)
    assert status == 0
    assert calls[:4] == [*CHECKS, PYTEST]
    assert len(calls) == 5
    assert calls[4].startswith("-m pytest -n 2 tests/")  # the official image set's step


@pytest.mark.parametrize("failing", CHECKS)
def test_a_failing_check_fails_ci_before_the_tests(tmp_path: Path, failing: str) -> None:
    status, calls = _run_ci(tmp_path, failing=failing)
    assert status != 0
    assert calls == CHECKS[: CHECKS.index(failing) + 1]
    assert PYTEST not in calls
