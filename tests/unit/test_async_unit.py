"""The async pieces without Docker: driver URLs, the async engine's driver checks, and which runner of an async fixture
shares a test's event loop (items collected by a real, in-process pytest)."""

from __future__ import annotations

import contextlib
import sys

import pytest

from envmgr.config import Settings
from envmgr.errors import ConfigError
from envmgr.pytest.async_fixtures import AsyncFixture, loop_scope_of, runner_for
from envmgr.services.postgres.aio import async_engine
from envmgr.services.postgres.urls import sqlalchemy_url

URL = "postgresql://envmgr:secret@127.0.0.1:5432/app_gw0"


@pytest.mark.parametrize(
    ("driver", "scheme"),
    [
        ("psycopg", "postgresql+psycopg"),
        ("psycopg_async", "postgresql+psycopg_async"),
        ("asyncpg", "postgresql+asyncpg"),
    ],
)
def test_sqlalchemy_url_names_the_driver(driver: str, scheme: str) -> None:
    assert sqlalchemy_url(URL, driver) == f"{scheme}://envmgr:secret@127.0.0.1:5432/app_gw0"  # type: ignore[arg-type]


def test_sqlalchemy_url_replaces_a_driver_already_named() -> None:
    assert sqlalchemy_url("postgresql+psycopg2://h/db", "asyncpg") == "postgresql+asyncpg://h/db"


def test_sqlalchemy_url_refuses_an_unknown_driver() -> None:
    with pytest.raises(ConfigError, match="unknown PostgreSQL driver 'pg8000'"):
        sqlalchemy_url(URL, "pg8000")  # type: ignore[arg-type]


def test_async_driver_setting_defaults_to_psycopg_and_refuses_others() -> None:
    assert Settings().postgres.async_driver == "psycopg"
    with pytest.raises(ValueError, match="async_driver"):
        Settings(postgres={"async_driver": "aiopg"})  # type: ignore[arg-type]


@pytest.mark.parametrize(("driver", "name"), [("psycopg", "psycopg"), ("asyncpg", "asyncpg")])
def test_async_engine_has_the_driver_and_no_pool(driver: str, name: str) -> None:
    from sqlalchemy.pool import NullPool

    engine = async_engine(URL, driver)  # type: ignore[arg-type]
    assert engine.url.drivername == f"postgresql+{name}"
    assert isinstance(engine.pool, NullPool)


def test_async_engine_without_asyncpg_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # import asyncpg now fails, as when it is not installed
    with pytest.raises(ConfigError) as caught:
        async_engine(URL, "asyncpg")
    assert caught.value.cause == (
        "the PostgreSQL driver 'asyncpg' is chosen (postgres.async_driver), but asyncpg is not installed"
    )
    assert caught.value.fix is not None
    assert caught.value.fix.startswith("pip install asyncpg")


def test_async_engine_without_greenlet_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "greenlet", None)
    with pytest.raises(ConfigError, match="greenlet") as caught:
        async_engine(URL)
    assert caught.value.fix == "pip install greenlet (or sqlalchemy[asyncio])"


TESTS = """
import pytest

@pytest.mark.asyncio
async def test_function_loop():
    pass

@pytest.mark.asyncio(loop_scope="module")
async def test_module_loop():
    pass

@pytest.mark.asyncio(loop_scope="session")
async def test_session_loop():
    pass

@pytest.mark.anyio
async def test_anyio():
    pass

def test_sync():
    pass
"""
INI = "[pytest]\naddopts = -p no:benchmark -p no:hypothesispytest\nasyncio_default_fixture_loop_scope = function\n"


def test_the_runner_follows_the_tests_loop(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    items = {item.name: item for item in pytester.getitems(TESTS)}
    runners = {name: runner_for("async_db_session", items[name]) for name in items if name != "test_sync"}
    anyio = {runners.pop(name) for name in list(runners) if name.startswith("test_anyio[")}  # one per backend
    assert anyio == {"anyio"}
    assert runners == {
        "test_function_loop": "asyncio_function",
        "test_module_loop": "asyncio_module",
        "test_session_loop": "asyncio_session",
    }
    with pytest.raises(ConfigError, match="pytest-asyncio does not run test test_sync"):
        runner_for("async_redis_client", items["test_sync"])


def test_the_default_test_loop_scope_is_read_from_the_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI + "asyncio_default_test_loop_scope = session\n")
    items = {item.name: item for item in pytester.getitems(TESTS)}
    assert loop_scope_of(items["test_function_loop"]) == "session"
    assert loop_scope_of(items["test_module_loop"]) == "module"


def test_without_pytest_asyncio_only_anyio_runs_the_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pytest_asyncio", None)  # as when pytest-asyncio is not installed
    fixture = AsyncFixture("async_thing", lambda request: contextlib.nullcontext())  # type: ignore[arg-type, return-value]
    assert list(fixture.runners()) == ["_envmgr_async_thing_anyio"]
