"""A check of the suite itself (issue 19, item 11): the machine's Docker engine keeps its default bridge.

A `dockerd --bridge=none` started in the host's network namespace deletes an existing `docker0`; afterwards every
`docker run` and `docker build` on the default bridge fails ("could not find bridge docker0") until the engine is
restarted. When `docker0` existed as the run began, it must still exist when the run ends: otherwise the run fails
(exit status 1) with a line that says so, whatever its tests did.

Registered by tests/conftest.py (`pytest_plugins`); checked by the controller (or the only process), so that the
whole run is covered whatever xdist worker ran the test that broke it. The check asks the kernel of this process's
network namespace (`if_nametoindex`), nothing else.
"""

from __future__ import annotations

import socket

import pytest

__all__ = ["BRIDGE", "bridge_exists"]

BRIDGE = "docker0"
_PRESENT_AT_START = pytest.StashKey[bool]()


def bridge_exists(name: str = BRIDGE) -> bool:
    """Whether a network interface of this name exists in this process's network namespace."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    if not _is_xdist_worker(session.config):
        session.config.stash[_PRESENT_AT_START] = bridge_exists()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if _is_xdist_worker(config) or not config.stash.get(_PRESENT_AT_START, False) or bridge_exists():
        return
    message = (
        f"the host engine's {BRIDGE} bridge existed when this run began and is gone now: a test started a dockerd "
        f"with --bridge=none in the host's network namespace (docker run and docker build on the default bridge "
        f"fail until dockerd restarts)"
    )
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"ERROR: {message}", red=True, bold=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
