"""Issue 19, item 11: the suite's check that the host engine's docker0 bridge outlives the run (tests/host_bridge.py),
shown to catch a run that deletes it, in a network namespace of the test's own (the host's docker0 is never touched:
the namespace has a docker0 bridge of its own, and the run is started inside it).

The test that fails on the code issue 19 was filed against is
tests/unit/test_issue19_units.py::test_the_private_engine_runs_dockerd_in_a_network_namespace_of_its_own; the
destructive path itself (tests/integration/private_engine.py starting `dockerd --bridge=none` in the host's
namespace) is not run here."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from tests.conftest import REPO

NEEDS = "a network namespace of the test's own (root, the `ip` program)"


@pytest.fixture
def namespace_with_docker0() -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip(f"needs {NEEDS}")
    name = f"envmgr-b{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "add", "docker0", "type", "bridge"], check=True,
                       capture_output=True)  # fmt: skip
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


def run_inside(namespace: str, pytester: pytest.Pytester, tests: str) -> pytest.RunResult:
    pytester.makepyfile(test_bridge=textwrap.dedent(tests))
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider -p no:envmgr -p tests.host_bridge\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    completed = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-m", "pytest", "-q", str(pytester.path)],
        cwd=pytester.path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return pytest.RunResult(completed.returncode, completed.stdout.splitlines(), completed.stderr.splitlines(), 0.0)


def test_a_run_that_deletes_docker0_fails_with_the_reason(
    namespace_with_docker0: str, pytester: pytest.Pytester
) -> None:
    result = run_inside(
        namespace_with_docker0,
        pytester,
        """
        import subprocess

        def test_deletes_the_bridge():
            subprocess.run(["ip", "link", "delete", "docker0"], check=True)  # what dockerd --bridge=none does
        """,
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.outlines
    assert any("docker0 bridge existed when this run began and is gone now" in line for line in result.outlines)


def test_a_run_that_keeps_docker0_passes(namespace_with_docker0: str, pytester: pytest.Pytester) -> None:
    result = run_inside(namespace_with_docker0, pytester, "def test_nothing():\n    pass\n")
    assert result.ret == pytest.ExitCode.OK, result.outlines
