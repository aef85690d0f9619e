"""What every service's settings table has (`ServiceSettings`), and the checks of a table of server settings
(`postgres.settings`, `redis.settings`): each service's own table is `services/<name>/settings.py`, one typed field of
`envmgr.config.Settings`."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from envmgr.exports import Part
from envmgr.seed_layout import SeedEntry
from envmgr.services.given import unset_variables

__all__ = [
    "BadSettingError", "DatabaseSettingValue", "ServiceSettings", "SettingValue", "check_given_url",
    "check_server_settings", "given_url_field",
]  # fmt: skip

SettingValue = str | int | float | bool
"""one server setting's value (a bool is written as the server spells it: on/off for Postgres, yes/no for Redis)"""
DatabaseSettingValue = SettingValue | list[str]
"""a per-database Postgres setting: a list for list settings such as search_path"""


class BadSettingError(ValueError):
    """A bad entry inside a settings table (`postgres.settings`, ...): the key below the field, and the fix."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem
        self.fix = fix


def check_server_settings(
    value: Any,
    *,
    pattern: re.Pattern[str],
    reserved: Mapping[str, str],
    example: str,
    allow_lists: bool = False,
) -> Any:
    """Each name spelled as the server spells it, not one envmgr manages, each value one string, number or bool."""
    if not isinstance(value, Mapping):
        return value  # pydantic reports the wrong type of the whole table
    for name, item in value.items():
        if not isinstance(name, str) or not pattern.fullmatch(name):
            raise BadSettingError(
                str(name),
                "not a setting name",
                f"spell it as the server does ({pattern.pattern}), e.g. {example}",
            )
        if name in reserved:
            raise BadSettingError(name, "set by envmgr", reserved[name])
        scalar = isinstance(item, str | int | float) and not (isinstance(item, str) and ("\n" in item or "\0" in item))
        listed = allow_lists and isinstance(item, list) and all(isinstance(part, str) for part in item)
        if not (scalar or listed):
            kinds = "a string (one line), a number, a boolean" + (" or a list of strings" if allow_lists else "")
            raise BadSettingError(name, f"the value must be {kinds} (got {item!r})", f"write one value, e.g. {example}")
    return value


class ServiceSettings(BaseModel):
    """What every service has: whether it runs, an explicit image, and extra container environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=False, description="run this service")
    always: bool = Field(
        default=False,
        description="start it in every run, even when no collected test uses its fixtures (apps that read their "
        "connection variables from the environment): every test waits for it, and each xdist worker's share of it "
        "(its database clone, its account) is made before the worker's first test",
    )
    image: str | None = Field(default=None, description="explicit image; overrides the image set")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment for the container")
    startup_timeout: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="seconds it has to answer its readiness probe (default: [tool.envmgr] startup_timeout when set, "
        "else the service's own)",
    )

    image_variables: ClassVar[tuple[str, ...]] = ()
    seed_entries: ClassVar[tuple[SeedEntry, ...]] = ()
    export_parts: ClassVar[Mapping[str, Part]] = {}
    """what `[tool.envmgr.export]` may name of it besides url, host, port and their internal forms"""
    export_aliases: ClassVar[tuple[str, ...]] = ()
    """other names the export table may give it (`aws`, `s3` for the AWS backend in use)"""
    """what the service reads under the seeds folder (checked by `envmgr.seed_layout`: nothing else may be there)"""
    """`ENVMGR_*` variables the service's images read (not settings: the check of the environment leaves them alone)"""


def given_url_field(example: str) -> Any:
    """The `url` field of a service that can use a server envmgr did not start."""
    return Field(
        default=None,
        description="a server envmgr does not start (no container, no Docker needed for it): `${VAR}` and "
        f"`${{VAR:-default}}` are read from the environment, e.g. `{example}`; what envmgr makes there carries the "
        "run's id and is removed at its end (docs/external-servers.md)",
    )


def check_given_url(value: Any) -> Any:
    """Every `${VAR}` without a default is set (in this process's environment) and the URL parses."""
    if not isinstance(value, str):
        return value
    missing = unset_variables(value, os.environ)
    if missing:
        names = ", ".join(missing)
        raise PydanticCustomError(
            "envmgr_unset_variable",
            "it names the variable {names}, which is not set",
            {"names": names, "fix": f"set {names} in the environment, give it a default (${{{missing[0]}:-value}}), "
             "or remove `url` to let envmgr start the server"},
        )  # fmt: skip
    return value
