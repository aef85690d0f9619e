"""What a pytest process loads once is frozen out of the garbage collector's way (envmgr.pytest.heap, the setting
gc_freeze); what the tests make is collected as before."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.integration.test_plugin import PROJECT_TABLE

CONFTEST = """
CONFTEST_OBJECT = ["made when the conftest file loaded"]
"""

TESTS = """
import gc
import os
import weakref

from conftest import CONFTEST_OBJECT

MODULE_OBJECT = ["made when the test module loaded"]
FROZEN = os.environ["EXPECT_FROZEN"] == "1"


def tracked(obj):
    return any(other is obj for other in gc.get_objects())


def test_what_the_conftest_and_the_test_module_made_is_frozen_unless_turned_off():
    assert tracked(CONFTEST_OBJECT) is not FROZEN
    assert tracked(MODULE_OBJECT) is not FROZEN
    assert (gc.get_freeze_count() > 0) is FROZEN


def test_a_cycle_a_test_makes_is_collected():
    class Node:
        pass

    first, second = Node(), Node()
    first.other, second.other = second, first
    gone = weakref.ref(first)
    del first, second
    gc.collect()
    assert gone() is None
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single-process", "two-workers"])
@pytest.mark.parametrize("setting", ["", "gc_freeze = false"], ids=["default", "off"])
def test_what_stays_loaded_is_frozen_and_what_the_tests_make_is_collected(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, xdist: list[str], setting: str
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # no service is used: no engine needed
    monkeypatch.setenv("EXPECT_FROZEN", "0" if setting else "1")
    pytester.makefile(".toml", pyproject=f"[project]\nname = 'heap'\n{PROJECT_TABLE}{setting}\n")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_heap=textwrap.dedent(TESTS))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *xdist)
    result.assert_outcomes(passed=2)


@pytest.mark.docker
@pytest.mark.usefixtures("no_new_environments")
@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single-process", "two-workers"])
def test_what_a_services_first_use_loaded_is_frozen(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, xdist: list[str]
) -> None:
    monkeypatch.setenv("ENVMGR_DAEMON_SOCKET", str(tmp_path / "no-daemon.sock"))
    pytester.makefile(".toml", pyproject=f"[project]\nname = 'heap'\n{PROJECT_TABLE}")
    pytester.makepyfile(
        test_first_use="""
        import gc

        from envmgr.pytest.run import run_of


        def test_the_endpoints_the_first_use_brought_are_frozen(request, redis_client):
            endpoints = run_of(request.config).endpoints
            assert endpoints is not None and "redis" in endpoints.services
            assert not any(other is endpoints for other in gc.get_objects())
            redis_client.set("made", 1)
            assert redis_client.get("made") == b"1"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *xdist)
    result.assert_outcomes(passed=1)
