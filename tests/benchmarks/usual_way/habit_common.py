"""The habit of the edit-test loop: Postgres and Redis started once by hand (`docker run ... -p 127.0.0.1:P:5432`) and
left running; the suite runs with envmgr's plugin off (`-p no:envmgr`) against them. Shared by the `habit_*` plugins
of `tests/benchmarks/profile_loop.py`.

What a team writes around a long-running local server (the equivalent of pytest-django's `--reuse-db`):

* the migrated, seeded database `<base>_tpl` is made once by hand (`alembic upgrade head`, the seeds);
* each pytest process (each xdist worker, or the only one) uses `<base>_<worker>`, created from it with
  `CREATE DATABASE ... TEMPLATE` the first time and kept between runs (one `SELECT` per run to find it);
* each test runs in an outer transaction rolled back afterwards; Redis: a logical database per worker, emptied after
  each test that used it.

Configured by the environment: HABIT_POSTGRES (`postgresql://user:password@127.0.0.1:port`), HABIT_REDIS
(`redis://127.0.0.1:port`), HABIT_DB (the base name).
"""

from __future__ import annotations

import os

import psycopg
from psycopg import sql

__all__ = ["database_url", "redis_url", "worker_name"]


def worker_name() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def redis_url() -> str:
    """This worker's own Redis logical database (main: 0, gwN: N + 1)."""
    worker = worker_name()
    index = 0 if worker == "main" else int(worker.removeprefix("gw")) + 1
    return f"{os.environ['HABIT_REDIS']}/{index}"


def database_url(base: str | None = None) -> str:
    """This worker's database, made from the template the first time (kept between runs, like --reuse-db)."""
    server = os.environ["HABIT_POSTGRES"]
    base = base or os.environ["HABIT_DB"]
    name = f"{base}_{worker_name()}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if found is None:
            connection.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(f"{base}_tpl"))
            )
    return f"{server}/{name}"


def recreate_database(url: str, base: str | None = None) -> None:
    """After a test whose commits were real: the worker's database dropped and made again from the template."""
    server = os.environ["HABIT_POSTGRES"]
    base = base or os.environ["HABIT_DB"]
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        connection.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(f"{base}_tpl"))
        )
