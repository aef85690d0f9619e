"""The tasks API: tasks in PostgreSQL, view counters and a cached summary in Redis."""

import json
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.cache import get_redis
from app.db import get_session
from app.models import Task

__all__ = ["app", "get_redis", "get_session"]

STATS_KEY = "stats"
STATS_TTL = 60

app = FastAPI(title="tasks")
Session = Annotated[AsyncSession, Depends(get_session)]
Cache = Annotated[Redis, Depends(get_redis)]


class TaskIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)


class TaskPatch(BaseModel):
    done: bool


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    done: bool


class TaskViewed(TaskOut):
    views: int


async def _task(session: AsyncSession, task_id: int) -> Task:
    task = await session.get(Task, task_id)
    if task is None:
        raise HTTPException(status_code=404, detail=f"no task {task_id}")
    return task


@app.get("/health")
async def health(session: Session, cache: Cache) -> dict[str, str]:
    await session.execute(select(1))
    await cache.ping()
    return {"database": "ok", "redis": "ok"}


@app.get("/tasks")
async def list_tasks(session: Session, done: bool | None = None) -> list[TaskOut]:
    query = select(Task).order_by(Task.id)
    if done is not None:
        query = query.where(Task.done == done)
    return [TaskOut.model_validate(task) for task in await session.scalars(query)]


@app.post("/tasks", status_code=201)
async def create_task(body: TaskIn, session: Session, cache: Cache) -> TaskOut:
    task = Task(title=body.title)
    session.add(task)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise HTTPException(status_code=409, detail=f"a task is already titled {body.title!r}") from None
    await cache.delete(STATS_KEY)
    return TaskOut.model_validate(task)


@app.get("/tasks/{task_id}")
async def get_task(task_id: int, session: Session, cache: Cache) -> TaskViewed:
    task = await _task(session, task_id)
    views = await cache.incr(f"views:task:{task_id}")
    return TaskViewed(id=task.id, title=task.title, done=task.done, views=views)


@app.patch("/tasks/{task_id}")
async def update_task(task_id: int, body: TaskPatch, session: Session, cache: Cache) -> TaskOut:
    task = await _task(session, task_id)
    task.done = body.done
    await session.commit()
    await cache.delete(STATS_KEY)
    return TaskOut.model_validate(task)


@app.delete("/tasks/{task_id}", status_code=204)
async def delete_task(task_id: int, session: Session, cache: Cache) -> Response:
    await session.delete(await _task(session, task_id))
    await session.commit()
    await cache.delete(STATS_KEY)
    return Response(status_code=204)


@app.get("/stats")
async def stats(session: Session, cache: Cache) -> dict[str, int | bool]:
    """How many tasks there are and how many are done, cached in Redis for a minute."""
    cached = await cache.get(STATS_KEY)
    if cached is not None:
        return {**json.loads(cached), "cached": True}
    total, done = (await session.execute(select(func.count(), func.count().filter(Task.done)))).one()
    counts = {"total": total, "done": done}
    await cache.set(STATS_KEY, json.dumps(counts), ex=STATS_TTL)
    return {**counts, "cached": False}
