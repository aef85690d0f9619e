"""`[tool.envmgr.postgres]`: the server, the template database and every clone of it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from envmgr.exports import LOGIN_PARTS, Part
from envmgr.services.postgres.seed_files import SEED_ENTRY
from envmgr.services.settings import (
    BadSettingError,
    DatabaseSettingValue,
    ServiceSettings,
    SettingValue,
    check_given_url,
    check_server_settings,
    given_url_field,
)

__all__ = ["PostgresSettings"]

POSTGRES_SETTING_NAME = re.compile(r"^[a-z_][a-z0-9_.]*$")


class PostgresSettings(ServiceSettings):
    """PostgreSQL: the server, the template database (migrations, seeds) and every clone of it."""

    image_variables = ("ENVMGR_BAKED_PGDATA",)
    seed_entries = (SEED_ENTRY,)
    export_parts = {
        **LOGIN_PARTS,
        "url": Part("url", spec="driver"),
        "internal_url": Part("url", internal=True, spec="driver"),
    }

    enabled: bool = Field(default=True, description="run this service")
    url: str | None = given_url_field('url = "${DATABASE_URL}"')
    database: str = Field(
        default="app",
        pattern=r"^[a-z_][a-z0-9_]{0,40}$",
        description="the environment's database (workers' clones: <database>_gwN; the template: <database>_tpl_<hash>)",
    )
    user: str = Field(
        default="envmgr",
        pattern=r"^[a-z_][a-z0-9_]{0,40}$",
        description="the owner's login (migrations, seeds); the password is random per environment",
    )
    tuned: bool = Field(
        default=True, description="fsync, synchronous_commit and full_page_writes off: a throw-away server"
    )
    async_driver: Literal["psycopg", "asyncpg"] = Field(
        default="psycopg", description="the driver of the async_db_engine fixture (asyncpg: pip install asyncpg)"
    )
    settings: dict[str, SettingValue] = Field(
        default_factory=dict,
        description="server settings, `-c name=value` on the server's command line (both image sets), over the "
        'tuning: `{max_prepared_transactions = 10, work_mem = "8MB", jit = false}` (a bool is on/off)',
    )
    extensions: list[str] = Field(
        default_factory=list,
        description="`CREATE EXTENSION` in the template before migrations, so every clone has them: "
        '`["hstore", "citext"]` (what the image has: `pg_available_extensions`)',
    )
    locale: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.@-]+$",
        description="LC_COLLATE and LC_CTYPE of the template (made from template0; default: the server's, "
        "en_US.utf8); both image sets have C, C.UTF-8, en_US.UTF-8, POSIX; another is an error listing them",
    )
    encoding: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_-]+$", description="the template's encoding (default: the server's, UTF8)"
    )
    database_settings: dict[str, DatabaseSettingValue] = Field(
        default_factory=dict,
        description="`ALTER DATABASE ... SET` on every clone (the environment's and each worker's): "
        '`{statement_timeout = "5s", search_path = ["app", "public"]}`',
    )
    template_cache: Path | None = Field(
        default=None,
        description="a folder of saved templates (relative to the project root): the template is restored from it "
        "instead of migrated and seeded when it holds this one (same migrations, seeds, template options, Postgres "
        "major version and migration tool versions), and saved into it after a build; a damaged entry is ignored "
        "with one line (`envmgr cache save/restore`; a CI cache step: docs/ci.md)",
    )
    app_role: str | None = Field(
        default=None,
        pattern=r"^[a-z_][a-z0-9_]{0,40}$",
        description="a non-superuser role (random password, subject to row-level security) that tests, "
        "`postgres_url` and `envmgr up`'s variables log in as; migrations, seeds and envmgr use the owner "
        "(postgres.user); it gets USAGE on schema public and ALL on its tables and sequences, present and future",
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
            pattern=POSTGRES_SETTING_NAME,
            reserved={"port": "remove it: envmgr publishes the server's port 5432 on a free host port"},
            example="max_prepared_transactions = 10",
        )

    @field_validator("database_settings", mode="before")
    @classmethod
    def _database_settings(cls, value: Any) -> Any:
        return check_server_settings(
            value, pattern=POSTGRES_SETTING_NAME, reserved={}, example='statement_timeout = "5s"', allow_lists=True
        )

    @field_validator("extensions", mode="before")
    @classmethod
    def _extensions(cls, value: Any) -> Any:
        for index, name in enumerate(value if isinstance(value, list) else []):
            if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_-]+", name):
                raise BadSettingError(
                    str(index),
                    f"not an extension name (got {name!r})",
                    'name extensions as CREATE EXTENSION does, e.g. "hstore"',
                )
        return value

    @model_validator(mode="after")
    def _app_role_is_not_the_owner(self) -> PostgresSettings:
        if self.app_role is not None and self.app_role == self.user:
            raise BadSettingError(
                "app_role",
                f"the application role {self.app_role!r} is the owner (postgres.user)",
                "choose another name: the owner runs migrations and seeds, the application role the tests",
            )
        return self

    def template_options(self) -> dict[str, Any]:
        """What the template is built with besides migrations and seeds (part of its name's hash when set)."""
        options = {"extensions": self.extensions, "locale": self.locale, "encoding": self.encoding,
                   "app_role": self.app_role}  # fmt: skip
        return {name: value for name, value in options.items() if value}
