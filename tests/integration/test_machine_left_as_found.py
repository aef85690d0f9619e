"""Issue 19, item 12: a killed run leaves nothing on the machine, its run-socket folder included.

(Item 11, the host engine's docker0 bridge: tests/host_bridge.py checks every run of the suite, shown to work in
tests/integration/test_host_bridge_check.py; the failing test is tests/unit/test_private_engine.py.)"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from envmgr.engine.connection import Engine
from tests.conftest import in_namespace
from tests.integration.test_cli import envmgr

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]

HELD_RUN = """
import os
import time
from pathlib import Path


def test_holds_the_run(redis_client):
    Path(os.environ["READY_FILE"]).write_text("running")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until the run is killed (the worker goes with its controller)
        time.sleep(0.2)


def test_another(redis_client):
    pass
"""


def wait_for(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return bool(condition())  # type: ignore[operator]


@pytest.fixture
def temp() -> Iterator[Path]:
    """The runs' temp folder (TMPDIR), where the controller makes its run-socket folder: a short path (a Unix
    socket's path has at most 108 bytes; pytest's tmp_path under xdist is too long for one)."""
    folder = Path(tempfile.mkdtemp(prefix="envmgr-t12-", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def kill_a_run(tmp_path: Path, temp: Path, tests: str) -> None:
    """A `pytest -n 2` run of `tests` in its own TMPDIR, SIGKILLed (controller, then its workers) once its first
    test runs, while its run-socket folder is there."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'held'\n\n[tool.envmgr]\n")
    (project / "test_held.py").write_text(tests)
    ready = tmp_path / "ready"
    env = {**os.environ, "TMPDIR": str(temp), "READY_FILE": str(ready), "ENVMGR_DAEMON": "off",
           "ENVMGR_IMAGE_SET": os.environ.get("ENVMGR_IMAGE_SET", "local")}  # fmt: skip
    with (tmp_path / "run.log").open("wb") as log:
        run = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", str(project)],
            cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        assert wait_for(ready.exists, 120), f"the run did not start: {(tmp_path / 'run.log').read_text()[-2000:]}"
        folders = list(temp.glob("envmgr-run-*"))
        assert len(folders) == 1, folders
        assert [path.name for path in folders[0].iterdir()] == ["controller.sock"]
        os.kill(run.pid, signal.SIGKILL)  # the controller
        run.wait(timeout=30)
    finally:
        if run.poll() is None:
            os.kill(run.pid, signal.SIGKILL)
            run.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)  # its xdist workers (the watchdog runs in a session of its own)


def test_the_watchdog_removes_a_sigkilled_controllers_run_socket_folder(
    tmp_path: Path, temp: Path, engine: Engine, namespace: str
) -> None:
    """The xdist controller makes `envmgr-run-*/controller.sock` in the temp folder and removes it at its end; a
    controller killed with SIGKILL left it there for good. Its environment's watchdog (it outlives the controller)
    removes it with the environment."""
    kill_a_run(tmp_path, temp, HELD_RUN)
    assert wait_for(lambda: not in_namespace(engine, namespace), 60), "the watchdog removed the environment"
    left = [str(path) for path in temp.glob("envmgr-run-*")]
    assert wait_for(lambda: not list(temp.glob("envmgr-run-*")), 10), f"left behind: {left}"


def test_the_next_sweep_removes_the_run_socket_folder_of_a_killed_run_that_started_nothing(
    tmp_path: Path, temp: Path
) -> None:
    """A run that reached no service has no environment and no watchdog: `envmgr gc` (as every start, and every
    `pytest -n` run) removes the folder of a controller that is gone, and says so."""
    kill_a_run(tmp_path, temp, HELD_RUN.replace("(redis_client)", "()"))
    folders = list(temp.glob("envmgr-run-*"))
    assert len(folders) == 1, "nothing but the sweep removes it"
    swept = envmgr("gc", cwd=tmp_path, env={"TMPDIR": str(temp)})
    assert swept.returncode == 0, swept.stderr
    assert not list(temp.glob("envmgr-run-*")), f"left behind: {folders}"
    assert f"removed {folders[0]}" in swept.stderr
