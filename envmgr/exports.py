"""The connection variables a process gets: each service's own (DATABASE_URL, REDIS_URL, AWS_*, WIREMOCK_URL and the
per-component ones) and the project's `[tool.envmgr.export]` table, which names them the way the app reads them:

    [tool.envmgr.export]
    POSTGRES_SERVER = "{postgres.host}"
    POSTGRES_PORT = "{postgres.port}"
    SQLALCHEMY_DATABASE_URI = "{postgres.url:asyncpg}"     # for a SQLAlchemy driver: psycopg, psycopg_async, asyncpg
    CACHE_URL = "{redis.url}"

A field is `{service.part}`: `url`, `host`, `port`, `user`, `password`, `database` (the path: a database, a Redis
db), and the `internal_` forms of url, host and port (from another container of the environment: what the Celery
worker gets). `{{` and `}}` are literal braces.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, cast

from envmgr.endpoints import Endpoints, ServiceEndpoint
from envmgr.errors import ConfigError

if TYPE_CHECKING:
    from envmgr.services.postgres.urls import Driver

__all__ = [
    "PARTS",
    "check_template",
    "database_variables",
    "export_table",
    "exported_variables",
    "render",
]

PARTS = ("url", "host", "port", "user", "password", "database", "internal_url", "internal_host", "internal_port")
DRIVERS = ("psycopg", "psycopg_async", "asyncpg")


def check_template(name: str, template: str, services: Iterable[str]) -> None:
    """ConfigError naming the export key when its template is malformed or names an unknown service or part."""
    known = set(services)
    for field, spec in _fields(name, template):
        service, _, part = field.partition(".")
        if service not in known:
            raise ConfigError(
                f"export.{name}: unknown service {service!r} in {template!r}",
                f"use one of: {', '.join(sorted(known))}",
            )
        if part not in PARTS:
            raise ConfigError(
                f"export.{name}: unknown part {part!r} in {template!r}", f"use one of: {', '.join(PARTS)}"
            )
        if spec and (part not in ("url", "internal_url") or spec not in DRIVERS):
            raise ConfigError(
                f"export.{name}: bad format {spec!r} in {template!r}",
                f"only a URL takes a driver: {{{service}.url:asyncpg}} (one of {', '.join(DRIVERS)})",
            )


def render(name: str, template: str, endpoints: Mapping[str, ServiceEndpoint]) -> str | None:
    """The value of one export for these endpoints; None when a service it names is not part of them."""
    out: list[str] = []
    for literal, field, spec, _ in string.Formatter().parse(template):
        out.append(literal)
        if field is None:
            continue
        service, _, part = field.partition(".")
        endpoint = endpoints.get(service)
        if endpoint is None:
            return None
        out.append(_part(endpoint, part, spec or ""))
    return "".join(out)


def exported_variables(endpoints: Endpoints, table: Mapping[str, str], *, internal: bool = False) -> dict[str, str]:
    """Every service's own variables, then the export table's (where its services are there)."""
    services = endpoints.services
    variables: dict[str, str] = {"ENVMGR_ENV_ID": endpoints.id}
    for endpoint in services.values():
        variables.update(endpoint.internal_variables() if internal else endpoint.variables)
    return {**variables, **export_table(table, services, internal=internal)}


def export_table(
    table: Mapping[str, str], endpoints: Mapping[str, ServiceEndpoint], *, internal: bool = False
) -> dict[str, str]:
    """The export table's variables whose services are all among `endpoints`; `internal`: as another container on
    the environment's network reaches them (what the Celery worker gets)."""
    variables: dict[str, str] = {}
    for name, template in table.items():
        value = render(name, _internal(template) if internal else template, endpoints)
        if value is not None:
            variables[name] = value
    return variables


def database_variables(database: ServiceEndpoint, table: Mapping[str, str]) -> dict[str, str]:
    """The variables that name one database, for the process that migrates it: its own (DATABASE_URL, POSTGRES_*)
    and the export table's that name only it (`SQLALCHEMY_DATABASE_URI = "{postgres.url:psycopg}"`)."""
    return {**database.variables, **export_table(table, {database.service: database})}


def _internal(template: str) -> str:
    """The same template seen from inside the environment's network: host, port and url become internal ones."""
    out: list[str] = []
    for literal, field, spec, _ in string.Formatter().parse(template):
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if field is None:
            continue
        service, _, part = field.partition(".")
        if part in ("url", "host", "port"):
            part = "internal_" + part
        out.append("{" + f"{service}.{part}" + (f":{spec}" if spec else "") + "}")
    return "".join(out)


def _part(endpoint: ServiceEndpoint, part: str, spec: str) -> str:
    match part:
        case "url" | "internal_url":
            url = endpoint.internal_url if part == "internal_url" else endpoint.url
            if spec:
                from envmgr.services.postgres.urls import sqlalchemy_url

                return sqlalchemy_url(url, cast("Driver", spec))
            return url
        case "host":
            return endpoint.host
        case "port":
            return str(endpoint.port)
        case "internal_host":
            return endpoint.internal_host
        case "internal_port":
            return str(endpoint.internal_port)
        case "user":
            return endpoint.username or ""
        case "password":
            return endpoint.password or ""
        case "database":
            return endpoint.path
    raise ConfigError(f"unknown part {part!r}", f"use one of: {', '.join(PARTS)}")


def _fields(name: str, template: str) -> list[tuple[str, str]]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"export.{name}: malformed template {template!r}: {exc}", "write {service.part}") from None
    return [(field, spec or "") for _, field, spec, _ in parsed if field is not None]
