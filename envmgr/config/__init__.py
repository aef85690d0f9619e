"""Settings: the `[tool.envmgr]` table of the project's pyproject.toml, overridden by `ENVMGR_*` variables
(`settings.py`: the model and `load_settings`; `environment.py`: the check of the `ENVMGR_*` variables). Each
service's table is its own (`envmgr/services/<name>/settings.py`), one typed field of `Settings`."""

from envmgr.config.environment import ENV_PREFIX, NON_SETTING_VARIABLES, check_environment, is_compose_port_variable
from envmgr.config.settings import SERVICE_NAMES, FlaskSettings, ImageSet, Settings, find_pyproject, load_settings
from envmgr.services.aws.settings import AWS_BACKENDS, AwsServiceSettings, AwsSettings
from envmgr.services.celery.settings import CelerySettings
from envmgr.services.localstack.settings import LOCALSTACK_SERVICES, LocalStackSettings
from envmgr.services.moto.settings import MotoSettings
from envmgr.services.postgres.settings import PostgresSettings
from envmgr.services.redis.settings import RedisSettings
from envmgr.services.settings import BadSettingError, DatabaseSettingValue, ServiceSettings, SettingValue
from envmgr.services.wiremock.settings import WireMockSettings

__all__ = [
    "AWS_BACKENDS",
    "ENV_PREFIX",
    "LOCALSTACK_SERVICES",
    "NON_SETTING_VARIABLES",
    "SERVICE_NAMES",
    "AwsServiceSettings",
    "AwsSettings",
    "BadSettingError",
    "CelerySettings",
    "DatabaseSettingValue",
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
