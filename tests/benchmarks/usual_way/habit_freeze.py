"""What a team could add to its conftest to get what envmgr's gc_freeze does (the `habit-frozen` side of
bench_loop.py): gc.freeze after the plugins, the conftest files and the collection."""

from __future__ import annotations

import gc

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests() -> None:
    gc.freeze()


@pytest.hookimpl(trylast=True)
def pytest_configure() -> None:
    gc.freeze()


@pytest.hookimpl(trylast=True)
def pytest_collection_finish() -> None:
    gc.freeze()
