"""A pytest plugin of `profile_loop.py`: where one pytest process's time goes, written as JSON lines.

Loaded with `-p loop_timing` (tests/benchmarks on PYTHONPATH) in every process of a run (xdist passes `-p` to its
workers); does nothing unless LOOP_TIMING_FILE is set. Each process appends one JSON object to that file when it
exits:

* `marks`: wall-clock times (time.time()) of the hooks of a run: this plugin's import, load_initial_conftests,
  configure, sessionstart (xdist starts its workers there), collection, the first test's set-up and call, the last
  test's end, sessionfinish, unconfigure, exit (LOOP_T0 is the launch of the pytest command, set by the harness);
* `cpu`: the process's CPU time (time.process_time(), user + system, this process only) at the same marks: a
  breakdown that a loaded machine disturbs much less than the wall clock;
* `hooks`: seconds spent in each of envmgr's own hook implementations (its plugin and integrations), and calls;
* `fixtures`: seconds spent setting up each fixture, and calls (pytest_fixture_setup);
* `phases`: seconds of every test's setup / call / teardown, summed;
* `modules`: the heavy packages this process imported (docker, testcontainers, sqlalchemy ...).

With LOOP_CPROFILE_DIR set, the process is also profiled with cProfile from this plugin's import to its exit
(`<worker>-<pid>.prof` there).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest

FILE = os.environ.get("LOOP_TIMING_FILE")
PROFILE_DIR = os.environ.get("LOOP_CPROFILE_DIR")
HEAVY = ("docker", "testcontainers", "sqlalchemy", "pydantic", "pydantic_settings", "rich", "typer", "alembic",
         "psycopg", "redis", "requests", "boto3", "botocore", "celery", "django", "yaml", "filelock")  # fmt: skip

_marks: dict[str, float] = {"import": time.time()}
_cpu: dict[str, float] = {"import": time.process_time()}
_hooks: dict[str, list[float]] = defaultdict(lambda: [0.0, 0, 0.0])
_fixtures: dict[str, list[float]] = defaultdict(lambda: [0.0, 0, 0.0])
_phases: dict[str, float] = defaultdict(float)
_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
_profiler: Any = None

if PROFILE_DIR:
    import cProfile

    _profiler = cProfile.Profile()
    _profiler.enable()


def _mark(name: str, *, first: bool = False) -> None:
    if first and name in _marks:
        return
    _marks[name] = time.time()
    _cpu[name] = time.process_time()


@atexit.register
def _write() -> None:
    if _profiler is not None:
        _profiler.disable()
        _profiler.dump_stats(os.path.join(PROFILE_DIR or ".", f"{_worker}-{os.getpid()}.prof"))
    if not FILE:
        return
    _mark("exit")
    record = {
        "worker": _worker,
        "pid": os.getpid(),
        "t0": float(os.environ.get("LOOP_T0", "0") or 0),
        "marks": _marks,
        "cpu": _cpu,
        "hooks": {name: {"seconds": s, "calls": int(c), "cpu": u} for name, (s, c, u) in _hooks.items()},
        "fixtures": {name: {"seconds": s, "calls": int(c), "cpu": u} for name, (s, c, u) in _fixtures.items()},
        "phases": dict(_phases),
        "modules": sorted(name for name in HEAVY if name in sys.modules),
    }
    with open(FILE, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def _timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started, cpu = time.perf_counter(), time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            slot = _hooks[name]
            slot[0] += time.perf_counter() - started
            slot[1] += 1
            slot[2] += time.process_time() - cpu

    return timed


PLUGIN_HOOKS = ("pytest_configure", "pytest_configure_node", "pytest_sessionstart", "pytest_collection_finish",
                "pytest_runtest_setup", "pytest_testnodedown", "pytest_sessionfinish", "pytest_terminal_summary",
                "pytest_unconfigure")  # fmt: skip


def _wrap_envmgr_hooks(config: pytest.Config) -> None:
    """Time each hook implementation of envmgr's plugins (envmgr.pytest_plugin, envmgr.integrations.*)."""
    for hook_name in PLUGIN_HOOKS:
        caller = getattr(config.hook, hook_name, None)
        if caller is None:
            continue
        for impl in caller.get_hookimpls():
            module = getattr(impl.plugin, "__name__", "") or ""
            if module.startswith("envmgr") and not getattr(impl.function, "_loop_timed", False):
                short = module.removeprefix("envmgr.")
                impl.function = _timed(f"{short}.{hook_name}", impl.function)
                impl.function._loop_timed = True  # type: ignore[attr-defined]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Iterator[None]:
    _mark("load_initial_conftests")
    _wrap_envmgr_hooks(early_config)  # envmgr's entry point is registered by now; its configure runs before ours
    try:
        return (yield)
    finally:
        _mark("load_initial_conftests_end")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """(A historic hook: no wrapper. Its end is the start of pytest_sessionstart, which pytest calls right after.)"""
    _mark("configure")
    _wrap_envmgr_hooks(config)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> Iterator[None]:
    _mark("configure_end")
    _wrap_envmgr_hooks(session.config)  # integrations registered during configure (envmgr-django)
    _mark("sessionstart")
    try:
        return (yield)
    finally:
        _mark("sessionstart_end")


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    _mark("collection")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> Iterator[None]:
    _mark("collection_finish")
    try:
        return (yield)
    finally:
        _mark("collection_finish_end")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodeready(node: Any) -> None:
    _mark(f"node_ready_{node.gateway.id}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    _mark("first_setup", first=True)
    started = time.perf_counter()
    try:
        return (yield)
    finally:
        _phases["setup"] += time.perf_counter() - started


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    _mark("first_call", first=True)
    started = time.perf_counter()
    try:
        return (yield)
    finally:
        _phases["call"] += time.perf_counter() - started


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    started = time.perf_counter()
    try:
        return (yield)
    finally:
        _phases["teardown"] += time.perf_counter() - started
        _phases["tests"] += 1
        _mark("last_teardown_end")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    started, cpu = time.perf_counter(), time.process_time()
    try:
        return (yield)
    finally:
        slot = _fixtures[fixturedef.argname]
        slot[0] += time.perf_counter() - started
        slot[1] += 1
        slot[2] += time.process_time() - cpu


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> Iterator[None]:
    _mark("sessionfinish")
    try:
        return (yield)
    finally:
        _mark("sessionfinish_end")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_unconfigure(config: pytest.Config) -> Iterator[None]:
    _mark("unconfigure")
    try:
        return (yield)
    finally:
        _mark("unconfigure_end")
