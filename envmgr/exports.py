"""The connection variables a process gets: each service's own (DATABASE_URL, REDIS_URL, AWS_*, WIREMOCK_URL and the
per-component ones) and the project's `[tool.envmgr.export]` table, which names them the way the app reads them:

    [tool.envmgr.export]
    POSTGRES_SERVER = "{postgres.host}"
    POSTGRES_PORT = "{postgres.port}"
    SQLALCHEMY_DATABASE_URI = "{postgres.url:asyncpg}"     # for a SQLAlchemy driver: psycopg, psycopg_async, asyncpg
    CACHE_URL = "{redis.url}"
    AWS_REGION = "{aws.region}"                             # aws: the backend in use (LocalStack or moto)
    COVER_ART_BUCKET = "{s3.bucket:cover-art}"              # this worker's name of the seeded bucket cover-art

A field is `{service.part}`. Every service has `url`, `host`, `port` and their `internal_` forms (from another
container of the environment: what the Celery worker gets); the rest is each service's own (`export_parts` of its
settings class: Postgres's `user`, `password`, `database`; Redis's `password`, `database`; the AWS backends' `region`,
`access_key_id`, `secret_access_key`, `account_id`, `bucket:NAME`; WireMock's `admin_url`), and a settings class may
name aliases (`aws`, `s3`: whichever AWS backend is enabled). A part a service does not have is a `ConfigError`
naming the key. `{{` and `}}` are literal braces.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, cast

from envmgr.endpoints import Component, Endpoints, ServiceEndpoint
from envmgr.errors import ConfigError

if TYPE_CHECKING:
    from envmgr.services.postgres.urls import Driver

__all__ = [
    "ADDRESS_PARTS",
    "DRIVERS",
    "LOGIN_PARTS",
    "ExportTable",
    "Part",
    "check_template",
    "exported_variables",
]

DRIVERS = ("psycopg", "psycopg_async", "asyncpg")


@dataclass(frozen=True)
class Part:
    """Where one part of `{service.part}` takes its value from the service's endpoint (as the worker sees it)."""

    component: Component | None = None
    """a part of the endpoint (url, host, port, username, password, path)"""
    internal: bool = False
    """as another container of the environment reaches it (internal host and port)"""
    extra: str | None = None
    """a fact of the endpoint (`ServiceEndpoint.extra[extra]`)"""
    variable: str | None = None
    """one of the endpoint's variables"""
    spec: Literal["driver", "name"] | None = None
    """what may follow `:`: a SQLAlchemy driver (a URL), or a name it needs (`bucket:cover-art`)"""

    def value(self, endpoint: ServiceEndpoint, spec: str) -> str:
        if self.component is not None:
            text = endpoint.component(self.component, internal=self.internal)
            if spec and self.spec == "driver":
                from envmgr.services.postgres.urls import sqlalchemy_url

                return sqlalchemy_url(text, cast("Driver", spec))
            return text
        if self.variable is not None:
            return endpoint.variables.get(self.variable, "")
        found = endpoint.extra.get(self.extra or "", "")
        return f"{spec}{found}" if self.spec == "name" else found


ADDRESS_PARTS: Mapping[str, Part] = {
    "url": Part("url"),
    "host": Part("host"),
    "port": Part("port"),
    "internal_url": Part("url", internal=True),
    "internal_host": Part("host", internal=True),
    "internal_port": Part("port", internal=True),
}
"""what every service has"""
LOGIN_PARTS: Mapping[str, Part] = {"user": Part("username"), "password": Part("password"), "database": Part("path")}
"""what a server with a login and databases has (Postgres)"""
_INTERNAL = {"url": "internal_url", "host": "internal_host", "port": "internal_port"}


@dataclass(frozen=True)
class ExportTable:
    """The project's `[tool.envmgr.export]` table, with what each service (or alias) offers."""

    templates: Mapping[str, str] = field(default_factory=dict)
    parts: Mapping[str, Mapping[str, Part]] = field(default_factory=dict)
    """service or alias -> its parts"""
    aliases: Mapping[str, str] = field(default_factory=dict)
    """alias -> the service it stands for (aws -> localstack)"""

    def render(self, endpoints: Mapping[str, ServiceEndpoint], *, internal: bool = False) -> dict[str, str]:
        """The variables whose services are all among `endpoints`; `internal`: as another container on the
        environment's network reaches them (what the Celery worker gets)."""
        variables: dict[str, str] = {}
        for name, template in self.templates.items():
            value = self._render(template, endpoints, internal)
            if value is not None:
                variables[name] = value
        return variables

    def _render(self, template: str, endpoints: Mapping[str, ServiceEndpoint], internal: bool) -> str | None:
        out: list[str] = []
        for literal, field_name, spec, _ in string.Formatter().parse(template):
            out.append(literal)
            if field_name is None:
                continue
            service, _, part = field_name.partition(".")
            endpoint = endpoints.get(self.aliases.get(service, service))
            if endpoint is None:
                return None
            parts = self.parts.get(service, ADDRESS_PARTS)
            chosen = parts.get(_INTERNAL.get(part, part), parts[part]) if internal else parts[part]
            out.append(chosen.value(endpoint, spec or ""))
        return "".join(out)


def check_template(name: str, template: str, parts: Mapping[str, Mapping[str, Part]]) -> None:
    """ConfigError naming the export key when its template is malformed, or names a service or a part that does not
    exist, or a format the part does not take."""
    for field_name, spec in _fields(name, template):
        service, _, part = field_name.partition(".")
        if service not in parts:
            raise ConfigError(
                f"export.{name}: unknown service {service!r} in {template!r}",
                f"use one of: {', '.join(sorted(parts))}",
            )
        offered = parts[service]
        if part not in offered:
            raise ConfigError(
                f"export.{name}: {service} has no part {part!r} (in {template!r})",
                f"use one of: {', '.join(offered)}",
            )
        kind = offered[part].spec
        if kind == "name" and not spec:
            raise ConfigError(
                f"export.{name}: {{{service}.{part}}} needs a name (in {template!r})",
                f"name it after a colon: {{{service}.{part}:cover-art}}",
            )
        if spec and (kind is None or (kind == "driver" and spec not in DRIVERS)):
            takes = "takes no format" if kind is None else f"takes one of {', '.join(DRIVERS)}"
            raise ConfigError(
                f"export.{name}: bad format {spec!r} of {{{service}.{part}}} in {template!r}",
                f"{service}.{part} {takes} (a Postgres URL takes a driver: {{postgres.url:asyncpg}})",
            )


def exported_variables(endpoints: Endpoints, table: ExportTable, *, internal: bool = False) -> dict[str, str]:
    """Every service's own variables, then the export table's (where its services are there)."""
    services = endpoints.services
    variables: dict[str, str] = {"ENVMGR_ENV_ID": endpoints.id}
    for endpoint in services.values():
        variables.update(endpoint.internal_variables() if internal else endpoint.variables)
    return {**variables, **table.render(services, internal=internal)}


def _fields(name: str, template: str) -> list[tuple[str, str]]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"export.{name}: malformed template {template!r}: {exc}", "write {service.part}") from None
    return [(field, spec or "") for _, field, spec, _ in parsed if field is not None]
