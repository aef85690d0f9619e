"""Servers envmgr did not start (a service's `url` setting: a CI job's service container, a shared server on a
laptop): the `${VAR}` / `${VAR:-default}` expansion of the setting, the URL as people may read it (password
masked), and the names envmgr gives what it makes on such a server.

Everything envmgr makes on a given server carries the environment's id in its name (`envmgr_<id>_...` databases,
Redis claim keys naming the id), and the environment holds it alive while it runs: a session of its own on the
server (a Postgres advisory lock, a Redis client named `envmgr-<id>`), which the server ends when the owner dies.
What no live session holds was left by a run that was killed: the next run's start (and `envmgr gc`) removes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import SplitResult, unquote, urlsplit

from envmgr.endpoints import MASK, ServiceEndpoint
from envmgr.errors import ConfigError

__all__ = [
    "GIVEN_PREFIX",
    "GivenHold",
    "GivenUrl",
    "UnsetVariableError",
    "expand",
    "given_prefix",
    "mask",
    "unset_variables",
]

GIVEN_PREFIX = "envmgr_"
"""what the name of everything envmgr makes on a given server starts with (then the environment's id and `_`)"""
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


class UnsetVariableError(ValueError):
    """`${NAME}` without a default names a variable the environment does not have."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the variable {name} is not set")
        self.name = name


def unset_variables(text: str, environ: Mapping[str, str]) -> list[str]:
    """The variables `text` names without a default that `environ` does not have."""
    return [m["name"] for m in VARIABLE.finditer(text) if m["default"] is None and m["name"] not in environ]


def expand(text: str, environ: Mapping[str, str]) -> str:
    """`${NAME}` replaced by the variable's value, `${NAME:-default}` by the value or, when unset or empty, the
    default (as the shell does); UnsetVariableError for a `${NAME}` that is not set."""

    def value(found: re.Match[str]) -> str:
        name, default = found["name"], found["default"]
        current = environ.get(name)
        if default is not None:
            return current if current else default
        if current is None:
            raise UnsetVariableError(name)
        return current

    return VARIABLE.sub(value, text)


def mask(url: str) -> str:
    """The URL with its password masked (for errors and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}").geturl()


@dataclass(frozen=True)
class GivenUrl:
    """A given server's URL in parts."""

    url: str
    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None
    path: str
    query: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str, schemes: tuple[str, ...], default_port: int) -> GivenUrl:
        """ValueError (a sentence) when it is not a URL of one of `schemes` with a host."""
        parts: SplitResult = urlsplit(url)
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"not a {' or '.join(schemes)} URL with a host: {mask(url)}")
        try:
            port = parts.port or default_port
        except ValueError:
            raise ValueError(f"bad port in {mask(url)}") from None
        query = dict(part.split("=", 1) for part in parts.query.split("&") if "=" in part)
        return cls(
            url=url, scheme=parts.scheme, host=parts.hostname, port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            path=unquote(parts.path.lstrip("/")), query=query,
        )  # fmt: skip

    @classmethod
    def of_setting(cls, url: str, service: str, schemes: tuple[str, ...], default_port: int, example: str) -> GivenUrl:
        """`parse` for the setting `<service>.url`: ConfigError naming the setting, with `example` as the fix."""
        try:
            return cls.parse(url, schemes, default_port)
        except ValueError as exc:
            raise ConfigError(f"{service}.url: {exc}", f"write it as {example}") from None

    @property
    def masked(self) -> str:
        return mask(self.url)


def given_prefix(env_id: str) -> str:
    """`envmgr_<id>_`: what the names of everything an environment makes on a given server start with."""
    return f"{GIVEN_PREFIX}{env_id}_"


class GivenHold(Protocol):
    """An environment's hold on a given server while it runs: the endpoint it hands out, and its release (removes
    everything the environment made there, then ends the session that held it; returns what it removed)."""

    @property
    def endpoint(self) -> ServiceEndpoint: ...

    def release(self) -> list[str]: ...
