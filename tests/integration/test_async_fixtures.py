"""The async fixtures (async_db_engine, async_db_session, async_redis_client), run as a user would: a project with
[tool.envmgr], async tests, pytest-asyncio in strict and auto mode, anyio, and without an async plugin."""

from __future__ import annotations

import pytest

from tests.integration.test_plugin import PROJECT_TABLE, make_project

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]

STRICT_MODE_TESTS = """
import asyncio

import pytest
from sqlalchemy import text

COUNT_USERS = text("SELECT count(*) FROM users")
INSERT_USER = text("INSERT INTO users (email, name) VALUES ('x@example.com', 'X')")


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.asyncio
async def test_commit_is_allowed(async_db_session):
    assert await async_db_session.scalar(COUNT_USERS) == 3
    await async_db_session.execute(INSERT_USER)
    await async_db_session.commit()
    assert await async_db_session.scalar(COUNT_USERS) == 4


@pytest.mark.asyncio
async def test_previous_commit_was_rolled_back(async_db_session):
    assert await async_db_session.scalar(COUNT_USERS) == 3


@pytest.mark.asyncio
async def test_a_rollback_ends_a_savepoint_only(async_db_session):
    await async_db_session.execute(INSERT_USER)
    await async_db_session.commit()
    await async_db_session.execute(text("INSERT INTO users (email, name) VALUES ('y@example.com', 'Y')"))
    await async_db_session.rollback()
    assert await async_db_session.scalar(COUNT_USERS) == 4


@pytest.mark.asyncio
async def test_redis_is_emptied_after_each_test_part_1(async_redis_client):
    await async_redis_client.set("k", "v")
    assert await async_redis_client.get("k") == b"v"


@pytest.mark.asyncio
async def test_redis_is_emptied_after_each_test_part_2(async_redis_client, redis_client):
    assert await async_redis_client.dbsize() == 0
    kwargs = async_redis_client.connection_pool.connection_kwargs
    assert kwargs["db"] == redis_client.connection_pool.connection_kwargs["db"]


@pytest.mark.asyncio(loop_scope="module")
async def test_a_module_loop_shares_the_fixtures_loop(async_db_session):
    assert await async_db_session.scalar(text("SELECT current_database()")) == "app"


@pytest.mark.anyio
async def test_anyio_runs_the_fixtures_too(async_db_session, async_redis_client):
    await async_db_session.execute(INSERT_USER)
    await async_redis_client.set("k", "anyio")
    assert await async_db_session.scalar(COUNT_USERS) == 4


@pytest.mark.asyncio
async def test_anyio_changes_were_undone(async_db_session, async_redis_client):
    assert await async_db_session.scalar(COUNT_USERS) == 3
    assert await async_redis_client.get("k") is None


@pytest.mark.envmgr_fresh_db
@pytest.mark.asyncio
async def test_fresh_db_commits_for_real(async_db_session, async_db_engine):
    await async_db_session.execute(INSERT_USER)
    await async_db_session.commit()
    async with async_db_engine.connect() as other:
        assert await other.scalar(COUNT_USERS) == 4


@pytest.mark.asyncio
async def test_after_fresh_db_the_template_is_back(async_db_session):
    assert await async_db_session.scalar(COUNT_USERS) == 3


def test_sync_test_is_told_what_to_do(async_db_session):
    raise AssertionError("a sync test cannot use an AsyncSession")
"""


def test_strict_mode_sessions_roll_back_and_clients_are_emptied(pytester: pytest.Pytester) -> None:
    make_project(
        pytester,
        STRICT_MODE_TESTS,
        table=PROJECT_TABLE + '\n[tool.pytest.ini_options]\nasyncio_default_fixture_loop_scope = "function"\n',
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=10, errors=1)
    result.stdout.fnmatch_lines(
        [
            "envmgr: async_db_session is an async fixture, but pytest-asyncio does not run test "
            "test_sync_test_is_told_what_to_do",
            "  fix: make the test `async def` and mark it @pytest.mark.asyncio*",
        ]
    )


SESSION_LOOP_TESTS = """
import pytest
import pytest_asyncio
from sqlalchemy import text

from envmgr.services.postgres.aio import rolled_back_session


@pytest_asyncio.fixture
async def own_session(async_db_engine):
    # a fixture of the user's, in the loop of asyncio_default_fixture_loop_scope (function), not the test's
    async with rolled_back_session(async_db_engine) as session:
        yield session


async def test_engine_has_the_configured_driver(async_db_engine):
    assert async_db_engine.url.drivername == "postgresql+asyncpg"


@pytest.mark.parametrize("n", range(3))
async def test_envmgr_fixtures_share_the_session_loop(async_db_session, async_redis_client, n):
    await async_db_session.execute(text("INSERT INTO users (email, name) VALUES ('x@example.com', 'X')"))
    assert await async_db_session.scalar(text("SELECT count(*) FROM users")) == 4
    assert await async_redis_client.incr("n") == 1


async def test_a_fixture_in_another_loop_fails(own_session):
    await own_session.scalar(text("SELECT 1"))
"""


def test_auto_mode_session_loop_and_asyncpg(pytester: pytest.Pytester) -> None:
    """Tests in a session loop while fixtures default to function loops: envmgr's fixtures follow the test's loop
    (asyncpg refuses a connection of another loop, as the control fixture shows)."""
    ini = (
        '\n[tool.envmgr.postgres]\nasync_driver = "asyncpg"\n'
        '\n[tool.pytest.ini_options]\nasyncio_mode = "auto"\nasyncio_default_fixture_loop_scope = "function"\n'
        'asyncio_default_test_loop_scope = "session"\n'
    )
    make_project(pytester, SESSION_LOOP_TESTS, table=PROJECT_TABLE + ini)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["E   RuntimeError: *got Future*attached to a different loop"])
    result.stdout.fnmatch_lines(["FAILED *test_a_fixture_in_another_loop_fails*"])


def test_without_an_async_plugin_the_test_is_told_what_to_install(pytester: pytest.Pytester) -> None:
    make_project(pytester, "async def test_needs_a_plugin(async_redis_client):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:asyncio", "-p", "no:anyio")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "envmgr: async_redis_client is an async fixture, but no async test plugin is active*",
            "  fix: pip install pytest-asyncio and mark the test @pytest.mark.asyncio*",
        ]
    )
