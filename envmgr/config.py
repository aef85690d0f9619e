"""Settings: the `[tool.envmgr]` table of the project's pyproject.toml, overridden by `ENVMGR_*` variables.

Precedence, highest first: keyword overrides (CLI and pytest options), `ENVMGR_*` environment variables (nested
keys with `__`, e.g. `ENVMGR_POSTGRES__IMAGE`), `[tool.envmgr]`, defaults. An unknown key or a bad value raises
`ConfigError` naming the key and where it came from.

Every `ENVMGR_*` variable is a setting, except those in `NON_SETTING_VARIABLES` (read by envmgr, its scripts, images
and compose files for other purposes) and the compose port variables (`ENVMGR_POSTGRES_PORT`,
`ENVMGR_<SERVICE>_<ROLE>_PORT`): any other (a misspelt service or key, a name of another tool) is a `ConfigError`
naming the variable, as is a variable of a structured setting (`ENVMGR_POSTGRES`, `ENVMGR_LOCALSTACK__QUEUES`) whose
value is not JSON.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    PyprojectTomlConfigSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from envmgr.aws_api import PROBE_CALLS
from envmgr.errors import ConfigError
from envmgr.seed_layout import check_seeds_folder

__all__ = [
    "AWS_BACKENDS",
    "LOCALSTACK_SERVICES",
    "NON_SETTING_VARIABLES",
    "SERVICE_NAMES",
    "AwsServiceSettings",
    "AwsSettings",
    "BadSettingError",
    "CelerySettings",
    "FlaskSettings",
    "ImageSet",
    "LocalStackSettings",
    "MotoSettings",
    "PostgresSettings",
    "RedisSettings",
    "ServiceSettings",
    "SettingValue",
    "Settings",
    "WireMockSettings",
    "check_environment",
    "find_pyproject",
    "is_compose_port_variable",
    "load_settings",
]

ImageSet = Literal["official", "local"]
ENV_PREFIX = "ENVMGR_"

NON_SETTING_VARIABLES: frozenset[str] = frozenset(
    {
        # read by envmgr itself
        "ENVMGR_DAEMON_SOCKET",  # the daemon's socket (client.py, `envmgr daemon --socket`)
        "ENVMGR_CA_CERT",  # `envmgr images build --ca-cert`
        "ENVMGR_BASE_IMAGE",  # `envmgr images build --base-image`, .ci/setup
        "ENVMGR_CONTAINERS_DIR",  # where the image build contexts are (images.py)
        # written by `envmgr up --env-file` (and so often in the environment of a test run)
        "ENVMGR_ENV_ID",
        "ENVMGR_SANDBOX",
        # set by the pytest plugin for its xdist workers
        "ENVMGR_RUN_PLAN",
        "ENVMGR_RUN_ISOLATION",
        "ENVMGR_RUN_CONTROLLER",
        # set in containers envmgr starts
        "ENVMGR_WORKER",  # the Celery worker's xdist worker
        "ENVMGR_BAKED_PGDATA",  # the local Postgres image
        "ENVMGR_JAVA_OPTS",  # the local WireMock image
        "ENVMGR_WARMUP",  # the local LocalStack image
        "ENVMGR_WARMUP_SERVICES",
        "ENVMGR_VARIANT",  # a build argument of the local images (official-lookalike variants)
        # the CI scripts, the daemon's compose file (compose/envmgr-daemon.yml) and the benchmarks
        "ENVMGR_SETUP_IMAGES",
        "ENVMGR_DEBIAN_MIRROR",
        "ENVMGR_IMAGE",
        "ENVMGR_UID",
        "ENVMGR_GID",
        "ENVMGR_PROJECTS",
        "ENVMGR_BENCH_FIRST_TEST",
    }
)
"""`ENVMGR_*` variables that are not settings: left alone by the check of the environment."""


def is_compose_port_variable(name: str) -> bool:
    """The host ports of an exported compose file (`envmgr.compose.port_variable`): not settings either."""
    services = "|".join(service.upper() for service in SERVICE_NAMES)
    return re.fullmatch(rf"ENVMGR_(?:{services})(?:_[A-Z0-9]+)*_PORT", name) is not None


SettingValue = str | int | float | bool
"""one server setting's value (a bool is written as the server spells it: on/off for Postgres, yes/no for Redis)"""
DatabaseSettingValue = SettingValue | list[str]
"""a per-database Postgres setting: a list for list settings such as search_path"""

POSTGRES_SETTING_NAME = re.compile(r"^[a-z_][a-z0-9_.]*$")
REDIS_SETTING_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


class BadSettingError(ValueError):
    """A bad entry inside a settings table (`postgres.settings`, ...): the key below the field, and the fix."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem
        self.fix = fix


def _check_server_settings(
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
        "connection variables from the environment)",
    )
    image: str | None = Field(default=None, description="explicit image; overrides the image set")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment for the container")


class PostgresSettings(ServiceSettings):
    """PostgreSQL: the server, the template database (migrations, seeds) and every clone of it."""

    enabled: bool = Field(default=True, description="run this service")
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
    app_role: str | None = Field(
        default=None,
        pattern=r"^[a-z_][a-z0-9_]{0,40}$",
        description="a non-superuser role (random password, subject to row-level security) that tests, "
        "`postgres_url` and `envmgr up`'s variables log in as; migrations, seeds and envmgr use the owner "
        "(postgres.user); it gets USAGE on schema public and ALL on its tables and sequences, present and future",
    )

    @field_validator("settings", mode="before")
    @classmethod
    def _server_settings(cls, value: Any) -> Any:
        return _check_server_settings(
            value,
            pattern=POSTGRES_SETTING_NAME,
            reserved={"port": "remove it: envmgr publishes the server's port 5432 on a free host port"},
            example="max_prepared_transactions = 10",
        )

    @field_validator("database_settings", mode="before")
    @classmethod
    def _database_settings(cls, value: Any) -> Any:
        return _check_server_settings(
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


class RedisSettings(ServiceSettings):
    """Redis: one server; each xdist worker uses a logical database of its own."""

    enabled: bool = Field(default=True, description="run this service")
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

    @field_validator("settings", mode="before")
    @classmethod
    def _server_settings(cls, value: Any) -> Any:
        return _check_server_settings(
            value,
            pattern=REDIS_SETTING_NAME,
            reserved={
                "port": "remove it: envmgr publishes the server's port 6379 on a free host port",
                "requirepass": "remove it: set redis.password (true: a random password, false: none)",
                "databases": "remove it: envmgr uses 1024 databases (one per xdist worker, and their brokers')",
            },
            example='maxmemory = "64mb"',
        )


AwsBackend = Literal["localstack", "moto"]
AWS_BACKENDS: tuple[str, ...] = get_args(AwsBackend)
"""the services that can serve the AWS fixtures (`[tool.envmgr.aws] backend`)"""

LOCALSTACK_SERVICES: tuple[str, ...] = tuple(PROBE_CALLS)
"""the AWS services `localstack.services` may list: those the local image runs (see containers/localstack/README.md),
each with the API call that proves it works (`envmgr.aws_api`)"""


class AwsSettings(BaseModel):
    """`[tool.envmgr.aws]`: which service serves the AWS fixtures, variables and seeds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: AwsBackend = Field(
        default="localstack",
        description="the service behind aws_endpoint_url, aws_env, s3_client, sqs_client, sns_client: localstack or "
        "moto; setting it enables that service (unless its own table says enabled = false)",
    )


class AwsServiceSettings(ServiceSettings):
    """What both AWS backends have: the region, and queues created in every account."""

    region: str = Field(default="us-east-1", description="the AWS region of the clients and variables")
    queues: list[str] = Field(default_factory=list, description="SQS queues created in every account")


class LocalStackSettings(AwsServiceSettings):
    services: list[str] = Field(
        default_factory=lambda: ["s3", "sqs"],
        description="the AWS services LocalStack runs (SERVICES); each must answer an API call before it is ready",
    )

    @field_validator("services")
    @classmethod
    def _known_services(cls, services: list[str]) -> list[str]:
        unknown = [name for name in services if name not in LOCALSTACK_SERVICES]
        if unknown:
            raise PydanticCustomError(
                "envmgr_unknown_aws_service",
                "unknown AWS service {unknown}",
                {"unknown": ", ".join(repr(name) for name in unknown),
                 "fix": f"use some of the services LocalStack runs here: {', '.join(LOCALSTACK_SERVICES)}"},
            )  # fmt: skip
        if not services:
            raise PydanticCustomError(
                "envmgr_no_aws_service",
                "no AWS service listed",
                {"fix": 'list at least one, e.g. services = ["s3", "sqs"]'},
            )
        return list(dict.fromkeys(services))


class MotoSettings(AwsServiceSettings):
    """moto in server mode: every AWS service moto emulates, one server per xdist worker."""


class WireMockSettings(ServiceSettings):
    """WireMock: one server per xdist worker, with the seeded stubs."""

    admin_auth: bool = Field(
        default=False,
        description="the admin API (/__admin) asks for HTTP basic auth: user envmgr, a password new per "
        "environment (WIREMOCK_ADMIN_USER, WIREMOCK_ADMIN_PASSWORD; envmgr's admin client and probe use them); "
        "the stubs stay open",
    )


class CelerySettings(ServiceSettings):
    """Celery: a worker container per xdist worker running the project's app (docs/celery.md)."""

    app: str | None = Field(default=None, description="the project's Celery app: 'module' or 'module:attribute'")
    code_dir: Path | None = Field(
        default=None,
        description="the folder mounted read-only at /app in the worker, on its PYTHONPATH (default: the project "
        "root); the worker runs as the invoking user's uid:gid, so a folder only its owner may read works",
    )
    queues: list[str] = Field(default_factory=lambda: ["celery"], description="queues the worker consumes")
    requirements: Path | None = Field(
        default=None,
        description="a requirements file (pip install -r) the worker's image is built with, FROM envmgr's worker "
        "image; tagged by the hash of its content, so rebuilt only when it changes (see docs/celery.md)",
    )
    dockerfile: Path | None = Field(
        default=None,
        description="a Dockerfile the worker's image is built from instead (FROM ${BASE_IMAGE}, envmgr's worker "
        "image; the context holds it, extra-ca.crt and the requirements file); tagged by the hash of its content",
    )


class FlaskSettings(BaseModel):
    """The project's Flask app, for envmgr's Flask fixtures and Flask-Migrate's env.py (`envmgr.integrations.flask`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    app: str | None = Field(
        default=None,
        description="the Flask app as `flask --app` takes it: 'module:create_app' (a factory, called with no "
        "arguments), 'module:app' or 'module'; made by the flask_app fixture, and pushed as the app context while "
        "in-process Alembic migrations run (Flask-Migrate's env.py needs it)",
    )


class Settings(BaseSettings):
    """The whole configuration of one project."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    namespace: str = Field(
        default="envmgr", pattern=r"^[a-z0-9][a-z0-9-]{0,30}$", description="prefix of container and network names"
    )
    image_set: ImageSet = Field(
        default="official",
        description="official: pinned registry images; local: images built from containers/ (`envmgr images build`)",
    )
    startup_timeout: float = Field(
        default=60.0, gt=0, le=3600, description="seconds each service has to answer its readiness probe"
    )
    isolation: Literal["auto", "session", "worker"] = Field(
        default="auto",
        description="worker: a database, Redis db, AWS account and replicas per xdist worker; session: one share "
        "for the run; auto: worker under xdist",
    )
    reset: Literal["reached", "every-test"] = Field(
        default="reached",
        description="which tests start from the seeded state of a service: those whose fixtures reach it "
        "(reached), or every test, for apps that read connection variables from the environment (every-test)",
    )
    daemon: Literal["auto", "on", "off"] = Field(
        default="auto", description="lease warm environments from `envmgr daemon` (auto: when one is running)"
    )
    daemon_pool_size: int = Field(default=1, ge=0, le=16, description="environments kept per configuration")
    daemon_idle_ttl: float = Field(default=900.0, gt=0, description="seconds an idle warm environment is kept")
    alembic_ini: Path | None = Field(
        default=None,
        description="the Alembic configuration whose migrations build the template database, in-process (an ini "
        "without script_location, as Flask-Migrate writes it, has its own folder as script location)",
    )
    migrate: str | None = Field(
        default=None,
        min_length=1,
        description="how the template database is migrated: 'alembic' (alembic_ini, default: alembic.ini), 'django' "
        "(Django's migrate command, in a subprocess), a shell command run in the project root with the database's "
        "DATABASE_URL and POSTGRES_* variables ('flask db upgrade'), or 'module:function' called with the URL "
        "(default: 'alembic' when alembic_ini is set, else none)",
    )
    migrate_files: list[str] | None = Field(
        default=None,
        description="globs (relative to the project root, ** for any folders) of the files a migrate command or "
        "function reads: the template is rebuilt when one changes (default: ['**/migrations/**'], for django "
        "['**/migrations/*.py'])",
    )
    django_fixtures: list[str] = Field(
        default_factory=list,
        description="Django fixtures loaded (loaddata) into the template after the migrations, before the seeds "
        "(migrate = 'django')",
    )
    seeds: Path | None = Field(
        default=None,
        description="the seed folder: postgres/ (*.sql, *.py, *.json, *.yaml, loaded into the template after the "
        "migrations), s3/<bucket>/, sqs.yaml, wiremock/{mappings,__files}/; anything else in it is an error, but "
        "hidden files and README/*.md/*.txt/*.rst notes",
    )
    follow_symlinks: bool = Field(
        default=False,
        description="let symbolic links in the seeds folder lead outside it (refused by default: a template would "
        "depend on files outside the project)",
    )
    project_root: Path = Field(default=Path("."), description="set by load_settings: the pyproject's folder")

    export: dict[str, str] = Field(
        default_factory=dict,
        description='connection variables named the way the app reads them: `NAME = "{service.part}"`, '
        'e.g. `POSTGRES_SERVER = "{postgres.host}"`, `SQLALCHEMY_DATABASE_URI = "{postgres.url:psycopg}"` (parts: '
        "url, host, port, user, password, database and internal_url/host/port; a URL may name a driver: psycopg, "
        "psycopg_async, asyncpg); set before conftest files and the app are imported, in `envmgr up --env-file`, "
        "and (internal) in the Celery worker",
    )

    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    localstack: LocalStackSettings = Field(default_factory=LocalStackSettings)
    moto: MotoSettings = Field(default_factory=MotoSettings)
    wiremock: WireMockSettings = Field(default_factory=WireMockSettings)
    celery: CelerySettings = Field(default_factory=CelerySettings)
    flask: FlaskSettings = Field(default_factory=FlaskSettings)
    aws: AwsSettings = Field(default_factory=AwsSettings)

    @model_validator(mode="before")
    @classmethod
    def _backend_enabled(cls, data: Any) -> Any:
        """`aws.backend` given: that service is enabled, unless its own table sets `enabled` itself."""
        if not isinstance(data, dict):
            return data
        aws = data.get("aws")
        if isinstance(aws, AwsSettings):
            backend = aws.backend if "backend" in aws.model_fields_set else None
        else:
            backend = aws.get("backend") if isinstance(aws, dict) else None
        if backend not in AWS_BACKENDS:
            return data  # not given (or a bad value, which the field's own validation reports)
        table = data.get(backend)
        if table is None:
            return {**data, backend: {"enabled": True}}
        if isinstance(table, dict) and "enabled" not in table:
            return {**data, backend: {**table, "enabled": True}}
        return data

    @model_validator(mode="after")
    def _one_aws_backend(self) -> Settings:
        """Options of the AWS service that is not `aws.backend` are a mistake: that service would not serve the
        fixtures (an enabled LocalStack under moto, LocalStack's `services` under moto, an enabled moto under
        LocalStack ...). Judged by value, not by the keys given: a full dump of the settings validates again."""
        backend = self.aws.backend
        for other in AWS_BACKENDS:
            config = self.service(other)
            if other == backend:
                continue
            default = type(config)()
            changed = [name for name in type(config).model_fields if getattr(config, name) != getattr(default, name)]
            if config.enabled or changed:
                key = f"{other}.{'enabled' if config.enabled else changed[0]}"
                raise PydanticCustomError(
                    "envmgr_aws_backend",
                    "an option of {other}, but aws.backend is '{backend}' (only the backend's table may have options)",
                    {"key": key, "other": other, "backend": backend,
                     "fix": f'remove the [tool.envmgr.{other}] options, or set [tool.envmgr.aws] backend = "{other}"'},
                )  # fmt: skip
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _CheckedEnvironment(settings_cls))

    @field_validator("export")
    @classmethod
    def _check_export(cls, table: dict[str, str]) -> dict[str, str]:
        from envmgr.exports import check_template

        for name, template in table.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ConfigError(f"export.{name}: not a variable name", "use letters, digits and _")
            check_template(name, template, cls.service_names())
        return table

    @classmethod
    def service_names(cls) -> list[str]:
        """The services this settings model configures: its fields that are `ServiceSettings`, in order."""
        return [
            name
            for name, info in cls.model_fields.items()
            if isinstance(info.annotation, type) and issubclass(info.annotation, ServiceSettings)
        ]

    def service(self, name: str) -> ServiceSettings:
        if name not in self.service_names():
            raise ConfigError(
                f"unknown service {name!r}",
                f"choose among {', '.join(self.service_names())}",
            )
        settings: ServiceSettings = getattr(self, name)
        return settings

    def enabled_services(self) -> list[str]:
        return [name for name in self.service_names() if self.service(name).enabled]

    def resolve(self, path: Path | None) -> Path | None:
        """A configured path made absolute against the project root."""
        if path is None:
            return None
        return path if path.is_absolute() else (self.project_root / path).resolve()

    def alembic_ini_path(self) -> Path | None:
        """The configured alembic.ini (absolute), or None: migrations run only when configured."""
        return self.resolve(self.alembic_ini)

    def migrate_spec(self) -> str | None:
        """The migration strategy in force (`envmgr.migrate_strategies`): `migrate`, else "alembic" when alembic_ini
        is set, else None (no migrations)."""
        if self.migrate is not None and self.migrate.strip():
            return self.migrate.strip()
        return "alembic" if self.alembic_ini is not None else None

    def seeds_path(self) -> Path | None:
        """The configured seeds folder (absolute), or None: seeds load only when configured.

        Checked at every call (`envmgr.seed_layout`): a file is a `ConfigError`; an entry envmgr would not read, or a
        symbolic link out of the folder (unless `follow_symlinks`), a `SeedError`.
        """
        path = self.resolve(self.seeds)
        if path is None:
            return None
        return check_seeds_folder(path, follow_symlinks=self.follow_symlinks)


SERVICE_NAMES: tuple[str, ...] = tuple(Settings.service_names())
"""the services the settings configure (and `envmgr.services.SERVICES` runs)"""


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest pyproject.toml at or above `start` (default: the working directory)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_settings(pyproject: Path | None = None, **overrides: Any) -> Settings:
    """Read the settings of the project whose pyproject.toml is given (or found from the working directory).

    `overrides` take precedence over everything else; nested values are dicts (`postgres={"image": "..."}`).
    """
    path = pyproject if pyproject is not None else find_pyproject()
    if path is not None and not path.is_file():
        raise ConfigError(f"configuration file {path} does not exist", "pass the path of a pyproject.toml")
    source_name = str(path) if path is not None else "the defaults"

    class _ProjectSettings(Settings):
        model_config = SettingsConfigDict(pyproject_toml_table_header=("tool", "envmgr"))

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            assert path is not None
            return (
                init_settings,
                _CheckedEnvironment(settings_cls),
                PyprojectTomlConfigSettingsSource(settings_cls, path),
            )

    root = path.parent.resolve() if path is not None else Path.cwd().resolve()
    settings_cls = _ProjectSettings if path is not None else Settings
    try:
        settings = settings_cls(**{"project_root": root, **overrides})
    except ValidationError as exc:
        raise _config_error(exc, source_name, overrides) from None
    except SettingsError as exc:  # a variable check_environment let through but pydantic-settings could not parse
        raise ConfigError(f"cannot read the ENVMGR_* variables: {exc}", "correct or unset the variable") from None
    except (ValueError, OSError) as exc:  # a malformed TOML file or an unreadable one
        raise ConfigError(f"cannot read {source_name}: {exc}", "fix the file's syntax") from None
    return settings


def _config_error(exc: ValidationError, source_name: str, overrides: dict[str, Any]) -> ConfigError:
    first = exc.errors()[0]
    context: dict[str, Any] = dict(first.get("ctx") or {})
    loc: tuple[int | str, ...] = tuple(str(context["key"]).split(".")) if "key" in context else first["loc"]
    key = ".".join(str(part) for part in loc)
    top = str(loc[0]) if loc else ""
    env_name = _variable_of(loc, os.environ)
    if top in overrides:
        where = "the command-line options"
    elif env_name is not None:
        where = f"the environment ({env_name})"
    else:
        where = f"[tool.envmgr] in {source_name}"
    bad = (first.get("ctx") or {}).get("error")
    if isinstance(bad, BadSettingError):
        return ConfigError(f"bad value for '{key}.{bad.key}' in {where}: {bad.problem}", bad.fix)
    if first["type"] == "extra_forbidden":
        known = ", ".join(sorted(_known_keys(first["loc"])))
        return ConfigError(
            f"unknown configuration key {key!r} in {where}",
            f"remove it or use one of: {known}",
        )
    if "fix" in context:  # envmgr's own check (PydanticCustomError): its message, its fix
        return ConfigError(f"bad value for {key!r} in {where}: {first['msg']}", str(context["fix"]))
    return ConfigError(
        f"bad value for {key!r} in {where}: {first['msg']} (got {first.get('input')!r})",
        "correct the value; see docs/configuration.md",
    )


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed beside the unknown one at `loc`."""
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        annotation = model.model_fields[str(part)].annotation if str(part) in model.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return [name for name in model.model_fields if name != "project_root"]


def _variable_of(loc: tuple[int | str, ...], environ: Mapping[str, str]) -> str | None:
    """The ENVMGR_* variable that set the value at `loc` (`ENVMGR_POSTGRES__IMAGE`, or `ENVMGR_POSTGRES` holding
    JSON), if one did."""
    names = {name.upper(): name for name in environ}
    for length in range(len(loc), 0, -1):
        candidate = ENV_PREFIX + "__".join(str(part) for part in loc[:length]).upper()
        if candidate in names:
            return names[candidate]
    return None


# the environment ----------------------------------------------------------------------------------------------


class _CheckedEnvironment(EnvSettingsSource):
    """The ENVMGR_* variables, checked first (`check_environment`)."""

    def __call__(self) -> dict[str, Any]:
        check_environment(os.environ)
        return super().__call__()


def check_environment(environ: Mapping[str, str]) -> None:
    """Raise `ConfigError` naming the first `ENVMGR_*` variable that is no setting (and not one of
    `NON_SETTING_VARIABLES` or a compose port), or that holds a structured setting whose value is not JSON."""
    for name in sorted(environ):
        upper = name.upper()  # pydantic-settings reads the variables without regard to case
        if not upper.startswith(ENV_PREFIX) or upper in NON_SETTING_VARIABLES or is_compose_port_variable(upper):
            continue
        parts = upper[len(ENV_PREFIX) :].lower().split("__")
        annotation = _setting_type(parts)
        if annotation is None:
            close = difflib.get_close_matches(upper, _setting_variables(), n=1, cutoff=0.75)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(
                f"unknown environment variable {name}: no setting {'.'.join(parts)!r}",
                f"{hint}unset it, or use ENVMGR_<KEY> (nested: ENVMGR_<SERVICE>__<KEY>) with a key of the "
                "configuration reference, docs/configuration.md",
            )
        if _is_structured(annotation):
            try:
                json.loads(environ[name])
            except ValueError as exc:
                raise ConfigError(
                    f"bad value in the environment variable {name}: not JSON ({_json_error(exc)})",
                    f"set {name} to JSON (e.g. {_json_example(annotation)}) or unset it",
                ) from None


def _json_error(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    return str(exc)


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    return {name: field.annotation for name, field in model.model_fields.items() if name != "project_root"}


def _setting_type(parts: list[str]) -> Any:
    """The type of the setting at `parts` (`["postgres", "image"]`), or None when there is no such setting."""
    model: type[BaseModel] = Settings
    for index, part in enumerate(parts):
        fields = _fields(model)
        if part not in fields:
            return None
        annotation = fields[part]
        if index == len(parts) - 1:
            return annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
            continue
        if get_origin(annotation) is dict and len(parts) == index + 2:  # ENVMGR_POSTGRES__ENV__NAME: one entry
            return str
        return None
    return None


def _is_structured(annotation: Any) -> bool:
    """Whether pydantic-settings reads a variable of this type as JSON (a model, a list, a mapping ...)."""
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_is_structured(arg) for arg in get_args(annotation) if arg is not type(None))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return get_origin(annotation) in (list, dict, set, tuple, frozenset)


def _json_example(annotation: Any) -> str:
    if get_origin(annotation) is list:
        return '["a", "b"]'
    if get_origin(annotation) is dict:
        return '{"NAME": "value"}'
    return '{"enabled": true}'


def _setting_variables() -> list[str]:
    """Every variable that names a setting: ENVMGR_IMAGE_SET, ENVMGR_POSTGRES, ENVMGR_POSTGRES__IMAGE ..."""
    names: list[str] = []
    for name, annotation in _fields(Settings).items():
        names.append(ENV_PREFIX + name.upper())
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += [f"{ENV_PREFIX}{name.upper()}__{inner.upper()}" for inner in _fields(annotation)]
    return names
