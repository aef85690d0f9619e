import pytest
from app.main import app, get_redis, get_session
from httpx import ASGITransport, AsyncClient


@pytest.fixture
async def client(async_db_session, async_redis_client):
    """The app, its database session and Redis client replaced by envmgr's (rolled back, emptied after the test)."""
    app.dependency_overrides.update({get_session: lambda: async_db_session, get_redis: lambda: async_redis_client})
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client:
        yield client
    app.dependency_overrides.clear()
