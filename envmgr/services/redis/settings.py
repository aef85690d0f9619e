"""`[tool.envmgr.redis]`: one server; each xdist worker uses a logical database of its own."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from envmgr.exports import Part
from envmgr.services.settings import (
    ServiceSettings,
    SettingValue,
    check_given_url,
    check_server_settings,
    given_url_field,
)

__all__ = ["RedisSettings"]

REDIS_SETTING_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


class RedisSettings(ServiceSettings):
    """Redis: one server; each xdist worker uses a logical database of its own."""

    export_parts = {"password": Part("password"), "database": Part("path")}

    enabled: bool = Field(default=True, description="run this service")
    url: str | None = given_url_field('url = "${REDIS_URL:-redis://127.0.0.1:6379}"')
    password: bool = Field(
        default=True,
        description="a random password; false: no password (the port is still published on 127.0.0.1 only; "
        "`envmgr doctor` says so)",
    )
    settings: dict[str, SettingValue] = Field(
        default_factory=dict,
        description='server settings, `--name value`: `{maxmemory = "64mb", maxmemory-policy = "allkeys-lru"}` '
        "(not port, requirepass, databases)",
    )

    @field_validator("url")
    @classmethod
    def _given_url(cls, value: Any) -> Any:
        return check_given_url(value)

    @field_validator("settings", mode="before")
    @classmethod
    def _server_settings(cls, value: Any) -> Any:
        return check_server_settings(
            value,
            pattern=REDIS_SETTING_NAME,
            reserved={
                "port": "remove it: envmgr publishes the server's port 6379 on a free host port",
                "requirepass": "remove it: set redis.password (true: a random password, false: none)",
                "databases": "remove it: envmgr uses 1024 databases (one per xdist worker, and their brokers')",
            },
            example='maxmemory = "64mb"',
        )
