"""The tasks API over HTTP (httpx.AsyncClient on the ASGI app), against envmgr's PostgreSQL and Redis."""

from app.models import Task
from sqlalchemy import func, select

SEEDED_TITLES = ["Write the release notes", "Review the migration", "Tag version 1.0"]


async def count_tasks(session) -> int:
    return await session.scalar(select(func.count()).select_from(Task))


async def test_health(client):
    response = await client.get("/health")
    assert response.json() == {"database": "ok", "redis": "ok"}


async def test_lists_the_seeded_tasks(client):
    response = await client.get("/tasks")
    assert [task["title"] for task in response.json()] == SEEDED_TITLES


async def test_filters_by_done(client):
    response = await client.get("/tasks", params={"done": "true"})
    assert [task["id"] for task in response.json()] == [1]


async def test_created_task_is_committed_and_seen_by_the_test_session(client, async_db_session):
    response = await client.post("/tasks", json={"title": "Announce the release"})
    assert response.status_code == 201
    assert await count_tasks(async_db_session) == 4


async def test_every_test_starts_from_the_seeds(client, async_db_session):
    await client.post("/tasks", json={"title": "Left behind?"})
    await client.delete("/tasks/1")
    assert await count_tasks(async_db_session) == 3


async def test_duplicate_title_is_a_conflict_and_the_session_goes_on(client, async_db_session):
    response = await client.post("/tasks", json={"title": "Tag version 1.0"})
    assert response.status_code == 409
    assert await count_tasks(async_db_session) == 3


async def test_unknown_task_is_not_found(client):
    response = await client.get("/tasks/999")
    assert response.status_code == 404


async def test_marks_a_task_done(client):
    await client.patch("/tasks/2", json={"done": True})
    response = await client.get("/tasks", params={"done": "true"})
    assert [task["id"] for task in response.json()] == [1, 2]


async def test_deletes_a_task(client):
    response = await client.delete("/tasks/3")
    assert response.status_code == 204
    assert (await client.get("/tasks/3")).status_code == 404


async def test_invalid_title_is_rejected(client):
    response = await client.post("/tasks", json={"title": ""})
    assert response.status_code == 422
