"""What the app keeps in Redis: view counters and the cached summary."""


async def test_redis_starts_empty(async_redis_client):
    assert await async_redis_client.dbsize() == 0


async def test_views_are_counted_in_redis(client, async_redis_client):
    await client.get("/tasks/2")
    response = await client.get("/tasks/2")
    assert response.json()["views"] == 2
    assert await async_redis_client.get("views:task:2") == b"2"


async def test_summary_is_cached_until_a_task_changes(client):
    first = (await client.get("/stats")).json()
    second = (await client.get("/stats")).json()
    await client.post("/tasks", json={"title": "Write the blog post"})
    third = (await client.get("/stats")).json()
    assert (first, second, third) == (
        {"total": 3, "done": 1, "cached": False},
        {"total": 3, "done": 1, "cached": True},
        {"total": 4, "done": 1, "cached": False},
    )
