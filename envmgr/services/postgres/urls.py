"""The URL of a database for each Python driver: what `postgres_url` / `ServiceEndpoint.url` give is a plain
`postgresql://user:password@host:port/db`; SQLAlchemy wants the driver in the scheme.

    sqlalchemy_url(url)                           postgresql+psycopg://...        (sync engine, or async: psycopg 3)
    sqlalchemy_url(url, driver="psycopg_async")   postgresql+psycopg_async://...  (psycopg 3, async dialect by name)
    sqlalchemy_url(url, driver="asyncpg")         postgresql+asyncpg://...        (asyncpg)

`create_async_engine` accepts `postgresql+psycopg://` as well and picks psycopg's async dialect itself. asyncpg and
psycopg take the plain `postgresql://` URL as it is (`asyncpg.connect(url)`, `psycopg.AsyncConnection.connect(url)`).
"""

from __future__ import annotations

from typing import Literal, get_args

from envmgr.errors import ConfigError

__all__ = ["DRIVERS", "Driver", "sqlalchemy_url"]

Driver = Literal["psycopg", "psycopg_async", "asyncpg"]
DRIVERS: tuple[str, ...] = get_args(Driver)


def sqlalchemy_url(url: str, driver: Driver = "psycopg") -> str:
    """A `postgresql://` URL (any driver already named in it is replaced) for SQLAlchemy with `driver`; a URL of
    another database is returned as it is."""
    if driver not in DRIVERS:
        raise ConfigError(f"unknown PostgreSQL driver {driver!r}", f"use one of {', '.join(DRIVERS)}")
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    if scheme in {"postgresql", "postgres"} or scheme.startswith("postgresql+"):
        return f"postgresql+{driver}://{rest}"
    return url
