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
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

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

from envmgr.config.environment import ENV_PREFIX, check_environment, service_names
from envmgr.errors import ConfigError
from envmgr.exports import ADDRESS_PARTS, ExportTable, Part, check_template
from envmgr.seed_layout import SeedEntry, check_seeds_folder
from envmgr.services.aws.settings import AWS_BACKENDS, AwsSettings
from envmgr.services.celery.settings import CelerySettings
from envmgr.services.localstack.settings import LocalStackSettings
from envmgr.services.moto.settings import MotoSettings
from envmgr.services.postgres.settings import PostgresSettings
from envmgr.services.redis.settings import RedisSettings
from envmgr.services.settings import BadSettingError, ServiceSettings
from envmgr.services.wiremock.settings import WireMockSettings

__all__ = ["SERVICE_NAMES", "FlaskSettings", "ImageSet", "Settings", "find_pyproject", "load_settings"]

ImageSet = Literal["official", "local"]


class FlaskSettings(BaseModel):
    """The project's Flask app, for envmgr's Flask fixtures and Flask-Migrate's env.py (`envmgr.integrations.flask`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    app: str | None = Field(
        default=None,
        description="the Flask app as `flask --app` takes it: 'module:create_app' (a factory, called with no "
        "arguments), 'module:app' or 'module'; made by the flask_app fixture, and pushed as the app context while "
        "Alembic migrations run (Flask-Migrate's env.py needs it)",
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
        description="official: pinned registry images; local: images built from the services' image folders "
        "(`envmgr images build`)",
    )
    startup_timeout: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="seconds every service has to answer its readiness probe, unless its own table sets "
        "startup_timeout (default: each service's own, docs/services.md: postgres 60, redis 30, localstack 180, "
        "moto 60, wiremock 90, celery 120)",
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
        default="auto",
        description="warm environments from the per-user daemon: a run leases the one the last run of the project "
        "left, else starts its own and hands it to the daemon at its end, which keeps it for daemon_idle_ttl (auto: "
        "the daemon is started when none runs, but not in CI nor on a socket ENVMGR_DAEMON_SOCKET names; on: "
        "everywhere; off: never; docs/daemon.md)",
    )
    daemon_pool_size: int = Field(default=1, ge=0, le=16, description="environments kept per configuration")
    daemon_idle_ttl: float = Field(
        default=900.0,
        gt=0,
        description="seconds an idle warm environment is kept (and a daemon a run started, once it keeps nothing)",
    )
    gc_freeze: bool = Field(
        default=True,
        description="in every pytest process, once the plugins, then the conftest files (and the app they import), "
        "then the test modules are loaded, move every object that exists to the garbage collector's permanent "
        "generation (gc.freeze): the collections during the run and the five pytest makes at its end skip them "
        "(objects the tests make are collected as before; docs/pytest.md)",
    )
    alembic_ini: Path | None = Field(
        default=None,
        description="the Alembic configuration whose migrations build the template database: in envmgr's process, or "
        "in a clean one when the project's modules are imported there already (an ini without script_location, as "
        "Flask-Migrate writes it, has its own folder as script location)",
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
        "migrations), s3/<bucket>/ (S3 bucket names), sqs.yaml, wiremock/{mappings,__files}/ (checked as WireMock "
        "reads them); anything else in it is an error, but hidden files and README/*.md/*.txt/*.rst notes; a folder "
        "set here that does not exist is an error too",
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
        'e.g. `POSTGRES_SERVER = "{postgres.host}"`, `SQLALCHEMY_DATABASE_URI = "{postgres.url:psycopg}"`, '
        '`COVER_ART_BUCKET = "{s3.bucket:cover-art}"` (every service: url, host, port, internal_url/host/port; '
        "postgres: user, password, database, a URL with a driver: psycopg, psycopg_async, asyncpg; redis: password, "
        "database; aws or s3 (the AWS backend in use): region, access_key_id, secret_access_key, account_id, "
        "bucket:NAME; wiremock: admin_url; docs/variables.md); set before conftest files and the app are imported, "
        "in `envmgr up --env-file`, and (internal) in the Celery worker",
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
        parts = cls.export_parts()
        for name, template in table.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ConfigError(f"export.{name}: not a variable name", "use letters, digits and _")
            check_template(name, template, parts)
        return table

    @classmethod
    def export_parts(cls) -> dict[str, Mapping[str, Part]]:
        """What the export table may name: each service (and each of its aliases) with its parts."""
        parts: dict[str, Mapping[str, Part]] = {}
        for name in cls.service_names():
            table = cls.model_fields[name].annotation
            assert isinstance(table, type) and issubclass(table, ServiceSettings)  # noqa: PT018 - narrowing
            offered = {**ADDRESS_PARTS, **table.export_parts}
            for alias in (name, *table.export_aliases):
                parts.setdefault(alias, offered)
        return parts

    def export_table(self) -> ExportTable:
        """The `[tool.envmgr.export]` table with what each service offers; an alias stands for the enabled service
        that declares it (`aws`: the AWS backend in use)."""
        aliases: dict[str, str] = {}
        for name in self.service_names():
            for alias in self.service(name).export_aliases:
                if alias not in aliases or self.service(name).enabled:
                    aliases[alias] = name
        return ExportTable(self.export, self.export_parts(), aliases)

    @classmethod
    def service_names(cls) -> list[str]:
        """The services this settings model configures: its fields that are `ServiceSettings`, in order."""
        return service_names(cls)

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

    def given_services(self) -> list[str]:
        """The enabled services on a server envmgr did not start (their `url` set)."""
        return [name for name in self.enabled_services() if getattr(self.service(name), "url", None)]

    def resolve(self, path: Path | None) -> Path | None:
        """A configured path made absolute against the project root."""
        if path is None:
            return None
        return path if path.is_absolute() else (self.project_root / path).resolve()

    def alembic_ini_path(self) -> Path | None:
        """The configured alembic.ini (absolute), or None: migrations run only when configured."""
        return self.resolve(self.alembic_ini)

    def migrate_spec(self) -> str | None:
        """The migration strategy in force (`envmgr.services.postgres.template.migrate`): `migrate`, else "alembic"
        when alembic_ini is set, else None (no migrations)."""
        if self.migrate is not None and self.migrate.strip():
            return self.migrate.strip()
        return "alembic" if self.alembic_ini is not None else None

    def seeds_path(self) -> Path | None:
        """The configured seeds folder (absolute), or None: seeds load only when configured.

        Checked at every call (`envmgr.seed_layout`) against what the services read there (`seed_entries`): a file
        is a `ConfigError`; a folder that does not exist, an entry no service would read, or a symbolic link out of
        the folder (unless `follow_symlinks`), a `SeedError`.
        """
        path = self.resolve(self.seeds)
        if path is None:
            return None
        return check_seeds_folder(path, self.seed_entries(), follow_symlinks=self.follow_symlinks)

    def seed_entries(self) -> list[SeedEntry]:
        """What the services read under the seeds folder (`ServiceSettings.seed_entries`), in the services' order."""
        entries: list[SeedEntry] = []
        for name in self.service_names():
            entries += [entry for entry in self.service(name).seed_entries if entry not in entries]
        return entries


SERVICE_NAMES: tuple[str, ...] = tuple(Settings.service_names())
"""the services the settings configure (and `envmgr.services.registry.SERVICES` runs)"""


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
        table = ".".join(["tool.envmgr", *(str(part) for part in loc[:-1])])
        where = f"[{table}] in {source_name}"
    bad = (first.get("ctx") or {}).get("error")
    if isinstance(bad, BadSettingError):
        return ConfigError(f"bad value for '{key}.{bad.key}' in {where}: {bad.problem}", bad.fix)
    if first["type"] == "extra_forbidden":
        keys = sorted(_known_keys(first["loc"]))
        close = difflib.get_close_matches(str(loc[-1]), keys, n=1, cutoff=0.75)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return ConfigError(
            f"unknown configuration key {key!r} in {where}",
            f"{hint}remove it or use one of: {', '.join(keys)}",
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
        check_environment(os.environ, self.settings_cls)
        return super().__call__()
