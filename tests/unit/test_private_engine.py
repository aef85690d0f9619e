"""Issue 19, item 11: the suite's private engine runs its dockerd in a network namespace of its own.

A `dockerd --bridge=none` started in the host's network namespace deletes the host engine's docker0 bridge. Nothing
runs here: the commands `PrivateEngine.start()` would run are recorded."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest

# the commands, recorded -----------------------------------------------------------------------------------------


class _Recorder:
    """Stands in for the `subprocess` module of the private engine's helpers: records every command, runs none.
    A started process has exited at once (so `start()` gives up at its first check)."""

    DEVNULL = -3
    STDOUT = -2
    PIPE = -1

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def Popen(self, args: Any, *rest: Any, **kwargs: Any) -> Any:
        self.commands.append([str(arg) for arg in args])
        return types.SimpleNamespace(poll=lambda: 1, pid=0, returncode=1, wait=lambda timeout=None: 1,
                                     send_signal=lambda signum: None, kill=lambda: None)  # fmt: skip

    def run(self, args: Any, *rest: Any, **kwargs: Any) -> Any:
        self.commands.append([str(arg) for arg in args])
        return types.SimpleNamespace(returncode=0, stdout="", stderr="")

    check_call = run
    check_output = run


def _in_a_network_namespace(command: list[str]) -> bool:
    """Whether this command line starts dockerd inside another network namespace (`ip netns exec NS dockerd ...`,
    `nsenter --net=... dockerd ...`, `unshare --net dockerd ...`)."""
    programs = [Path(arg).name for arg in command]
    if "dockerd" not in programs:
        return False
    before = [*programs[: programs.index("dockerd")], *command[: programs.index("dockerd")]]  # names and flags
    if not before:
        return False
    joined = " ".join(before)
    return (
        ("ip" in before and "netns" in before and "exec" in before)
        or ("nsenter" in before and any(a.startswith(("--net", "-n")) for a in before))
        or ("unshare" in before and any(a in ("--net", "-n") or a.startswith("--net=") for a in before))
        or "netns" in joined
    )


def test_the_private_engine_runs_dockerd_in_a_network_namespace_of_its_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`dockerd --bridge=none` started in the host's network namespace deletes the host engine's docker0 bridge
    (every later `docker run` on the default bridge fails: "could not find bridge docker0"). The private engine of
    the suite must start its dockerd inside a network namespace of its own, as tests/engines.py does. Nothing is
    run here: the commands are recorded."""
    import tests.engines
    from tests.integration import private_engine

    recorder = _Recorder()
    monkeypatch.setattr(private_engine, "subprocess", recorder)
    monkeypatch.setattr(tests.engines, "subprocess", recorder)
    engine = private_engine.PrivateEngine(tmp_path)
    with pytest.raises(RuntimeError):  # the recorded dockerd "exited" at once
        engine.start()
    started = [command for command in recorder.commands if "dockerd" in [Path(arg).name for arg in command]]
    assert started, f"no dockerd command was run: {recorder.commands}"
    assert all(_in_a_network_namespace(command) for command in started), (
        f"dockerd is started in the host's network namespace: {' '.join(started[0])}"
    )
