"""Debian's own PostgreSQL 15 and redis-server started as plain processes on 127.0.0.1 (no container): the servers
envmgr did not start, for tests of `postgres.url` and `redis.url`. Each in a temporary folder of its own, on a free
port, ready when it answers (polled with a deadline), stopped and removed at the end."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

__all__ = ["PG_BIN", "PlainPostgres", "PlainRedis", "free_port", "plain_postgres", "plain_redis", "poll"]

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "postgres"
"""the operating-system user the server runs as (initdb refuses root)"""
DEADLINE = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def poll(check: Callable[[], object], what: str, deadline: float = DEADLINE) -> None:
    """Call `check` until it passes (no exception) or `deadline` seconds have passed (then its last error)."""
    end = time.monotonic() + deadline
    pause = 0.02
    while True:
        try:
            check()
            return
        except Exception as exc:
            if time.monotonic() > end:
                raise AssertionError(f"{what} not reached within {deadline:g} s: {exc}") from exc
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def _as_postgres(*command: str) -> list[str]:
    """`command` run as the postgres user (root runs it through runuser)."""
    if os.geteuid() != 0:
        return list(command)
    return ["runuser", "-u", PG_USER, "--", *command]


@dataclass(frozen=True)
class PlainPostgres:
    folder: Path
    port: int
    user: str
    password: str

    def url(self, user: str | None = None, password: str | None = None, database: str = "postgres") -> str:
        return f"postgresql://{user or self.user}:{password or self.password}@127.0.0.1:{self.port}/{database}"

    def databases(self, prefix: str = "envmgr_") -> list[str]:
        with psycopg.connect(self.url(), autocommit=True) as connection:
            rows = connection.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1", (prefix,)
            ).fetchall()
        return [str(row[0]) for row in rows]

    def execute(self, statement: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(statement)  # type: ignore[arg-type]


@contextmanager
def plain_postgres() -> Iterator[PlainPostgres]:
    """A PostgreSQL 15 cluster in a temporary folder, its superuser `admin` with a random password, listening on
    127.0.0.1 only (and a socket in its folder); stopped and removed at the end."""
    folder = Path(tempfile.mkdtemp(prefix="envmgr-plain-pg-"))
    password = secrets.token_urlsafe(12)
    port = free_port()
    server = PlainPostgres(folder, port, "admin", password)
    data = folder / "data"
    started = False
    try:
        (folder / "pwfile").write_text(password + "\n")
        if os.geteuid() == 0:
            shutil.chown(folder, PG_USER, PG_USER)
            shutil.chown(folder / "pwfile", PG_USER, PG_USER)
        subprocess.run(
            _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-U", "admin", f"--pwfile={folder / 'pwfile'}",
                         "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"),
            check=True, capture_output=True, text=True, cwd=folder,
        )  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=100"
        subprocess.run(
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-W",
                         "start"),
            check=True, capture_output=True, text=True, cwd=folder,
        )  # fmt: skip
        started = True
        poll(lambda: psycopg.connect(server.url(), connect_timeout=2).close(), "postgres answering")
        yield server
    finally:
        if started:
            subprocess.run(
                _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"),
                capture_output=True, check=False, cwd=folder,
            )  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class PlainRedis:
    port: int
    password: str
    databases: int

    def url(self, db: int | None = None) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}" + (f"/{db}" if db is not None else "")

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, db=db)

    def sizes(self) -> dict[int, int]:
        """Keys per database, for those that have any."""
        sizes = {}
        for db in range(self.databases):
            client = self.client(db)
            try:
                count = int(client.dbsize())
            finally:
                client.close()
            if count:
                sizes[db] = count
        return sizes


@contextmanager
def plain_redis(databases: int = 16) -> Iterator[PlainRedis]:
    """redis-server on 127.0.0.1 and a free port, a random password, no persistence; stopped at the end."""
    folder = Path(tempfile.mkdtemp(prefix="envmgr-plain-redis-"))
    server = PlainRedis(free_port(), secrets.token_urlsafe(12), databases)
    process = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(server.port), "--requirepass", server.password,
         "--save", "", "--appendonly", "no", "--databases", str(databases), "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def answers() -> None:
            client = server.client()
            try:
                assert client.ping()
            finally:
                client.close()

        poll(answers, "redis answering")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)
