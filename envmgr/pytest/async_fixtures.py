"""envmgr's async fixtures (`async_db_session`, `async_redis_client`) run in the event loop of the test that asks for
them, whichever plugin runs the test; envmgr requires none.

A connection of asyncpg, psycopg or redis.asyncio belongs to the loop it was opened in, so the fixture must share the
test's loop. pytest-asyncio runs an async fixture in the loop of `asyncio_default_fixture_loop_scope` (unset: the
fixture's own scope), not the test's: a test in a session loop (`asyncio_default_test_loop_scope = "session"`) with
the fixture default unset would get a connection of another loop. Hence each async fixture is a pair:

* the public fixture, a plain one: it names what it needs (so `envmgr.reach` sees the service it reaches) and, for
  the test at hand, takes its value from the runner that shares the test's loop;
* its runners, async fixtures that open the value (`AsyncFixture.open`) and close it after the test:
  - `anyio`: a plain async fixture, which anyio's pytest plugin runs in the test's runner when the test uses
    `anyio_backend` (marked `@pytest.mark.anyio`; SQLAlchemy needs the asyncio backend);
  - `asyncio_<scope>`, one per loop scope, when pytest-asyncio is installed: a `pytest_asyncio.fixture` with that
    `loop_scope`; the test's loop scope is its `asyncio` marker's `loop_scope`, else `asyncio_default_test_loop_scope`
    (what pytest-asyncio itself reads), in strict mode (`@pytest.mark.asyncio`) and in auto mode alike.
  A test that neither plugin runs fails with one line saying what to install or mark.

The fixtures module of a service binds the runners as module attributes (`globals().update(FIXTURE.runners())`):
pytest finds fixtures there. Not supported: anyio tests under pytest-asyncio's *auto* mode (both plugins then claim
every async fixture; anyio itself warns against it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import pytest

from envmgr.errors import ConfigError

__all__ = ["LOOP_SCOPES", "AsyncFixture", "loop_scope_of", "runner_for"]

LOOP_SCOPES = ("function", "class", "module", "package", "session")
ANYIO = "anyio"


def loop_scope_of(item: pytest.Item) -> str:
    """The scope of the event loop pytest-asyncio runs `item` in: its `asyncio` marker's, else the default."""
    marker = item.get_closest_marker("asyncio")
    scope = (marker.kwargs.get("loop_scope") or marker.kwargs.get("scope")) if marker is not None else None
    if scope is None:
        try:
            scope = item.config.getini("asyncio_default_test_loop_scope")
        except ValueError:  # pytest-asyncio before 0.24: every test in a loop of its own
            scope = None
    return str(scope or "function")


def runner_for(fixture: str, item: pytest.Item) -> str:
    """Which runner of an async fixture shares the loop of test `item`: `anyio`, or `asyncio_<loop scope>`;
    ConfigError when no async plugin runs the test."""
    if "anyio_backend" in getattr(item, "fixturenames", ()):
        return ANYIO
    plugins = item.config.pluginmanager
    if plugins.has_plugin("asyncio"):
        from pytest_asyncio import is_async_test

        if is_async_test(item):
            return f"asyncio_{loop_scope_of(item)}"
        raise ConfigError(
            f"{fixture} is an async fixture, but pytest-asyncio does not run test {item.name}",
            'make the test `async def` and mark it @pytest.mark.asyncio (or set asyncio_mode = "auto")',
        )
    raise ConfigError(
        f"{fixture} is an async fixture, but no async test plugin is active (pytest-asyncio or anyio)",
        'pip install pytest-asyncio and mark the test @pytest.mark.asyncio (or set asyncio_mode = "auto"), or mark '
        "it @pytest.mark.anyio",
    )


@dataclass(frozen=True)
class AsyncFixture:
    """An async fixture of envmgr: `open(request)` gives the value for one test (an async context manager; what it
    needs comes from `request.getfixturevalue`, set up already by the public fixture, which names it)."""

    name: str
    open: Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[Any]]

    def runner_name(self, runner: str) -> str:
        return f"_envmgr_{self.name}_{runner}"

    def runners(self) -> dict[str, Any]:
        """The runner fixtures by name: anyio's, and one per loop scope when pytest-asyncio is installed."""
        made: dict[str, Any] = {self.runner_name(ANYIO): pytest.fixture(self._runner(), name=self.runner_name(ANYIO))}
        try:
            import pytest_asyncio
        except ImportError:
            return made
        for scope in LOOP_SCOPES:
            name = self.runner_name(f"asyncio_{scope}")
            made[name] = pytest_asyncio.fixture(self._runner(), loop_scope=scope, name=name)  # type: ignore[call-overload]
        return made

    def value(self, request: pytest.FixtureRequest) -> Any:
        """For the public fixture: the value, opened by the runner that shares the test's loop."""
        try:
            runner = runner_for(self.name, request.node)
        except ConfigError as exc:
            error = exc
        else:
            return request.getfixturevalue(self.runner_name(runner))
        pytest.fail(f"envmgr: {error}", pytrace=False)

    def _runner(self) -> Callable[[pytest.FixtureRequest], AsyncIterator[Any]]:
        """A new async generator function (each runner its own: pytest-asyncio marks the function it decorates)."""

        async def runner(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
            async with self.open(request) as value:
                yield value

        runner.__doc__ = f"runs {self.name} in the test's event loop (see envmgr.pytest.async_fixtures)"
        return runner
