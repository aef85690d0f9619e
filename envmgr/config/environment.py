"""The `ENVMGR_*` variables: every one is a setting of the model, except `NON_SETTING_VARIABLES` (read by envmgr, its
scripts, images and compose files for other purposes, and those each service's images read: `image_variables` of its
settings class) and the compose port variables (`ENVMGR_POSTGRES_PORT`, `ENVMGR_<SERVICE>_<ROLE>_PORT`): any other (a
misspelt service or key, a name of another tool) is a `ConfigError` naming the variable, as is a variable of a
structured setting (`ENVMGR_POSTGRES`, `ENVMGR_LOCALSTACK__QUEUES`) whose value is not JSON."""

from __future__ import annotations

import difflib
import json
import re
import types
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from envmgr.errors import ConfigError
from envmgr.services.settings import ServiceSettings

__all__ = [
    "ENV_PREFIX",
    "NON_SETTING_VARIABLES",
    "check_environment",
    "image_variables",
    "is_compose_port_variable",
    "service_names",
]

ENV_PREFIX = "ENVMGR_"

NON_SETTING_VARIABLES: frozenset[str] = frozenset(
    {
        # read by envmgr itself
        "ENVMGR_DAEMON_SOCKET",  # the daemon's socket (client.py, `envmgr daemon --socket`)
        "ENVMGR_CA_CERT",  # `envmgr images build --ca-cert`
        "ENVMGR_BASE_IMAGE",  # `envmgr images build --base-image`, .ci/setup
        # written by `envmgr up --env-file` (and so often in the environment of a test run)
        "ENVMGR_ENV_ID",
        "ENVMGR_SANDBOX",
        # set by the pytest plugin for its xdist workers
        "ENVMGR_RUN_PLAN",
        "ENVMGR_RUN_ISOLATION",
        "ENVMGR_RUN_CONTROLLER",
        # a build argument of every local image (each service's images read their own: `image_variables`)
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


def service_names(model: type[BaseModel]) -> list[str]:
    """The services a settings model configures: its fields that are `ServiceSettings`, in order."""
    return [
        name
        for name, info in model.model_fields.items()
        if isinstance(info.annotation, type) and issubclass(info.annotation, ServiceSettings)
    ]


def is_compose_port_variable(name: str, model: type[BaseModel]) -> bool:
    """The host ports of an exported compose file (`envmgr.compose.port_variable`): not settings either."""
    services = "|".join(service.upper() for service in service_names(model))
    return re.fullmatch(rf"ENVMGR_(?:{services})(?:_[A-Z0-9]+)*_PORT", name) is not None


def image_variables(model: type[BaseModel]) -> frozenset[str]:
    """What the services' images read (`ServiceSettings.image_variables`)."""
    names: set[str] = set()
    for name in service_names(model):
        annotation = model.model_fields[name].annotation
        if isinstance(annotation, type) and issubclass(annotation, ServiceSettings):
            names.update(annotation.image_variables)
    return frozenset(names)


def check_environment(environ: Mapping[str, str], model: type[BaseModel]) -> None:
    """Raise `ConfigError` naming the first `ENVMGR_*` variable that is no setting of `model` (and not one of
    `NON_SETTING_VARIABLES`, an image's variable or a compose port), or that holds a structured setting whose value is
    not JSON."""
    ignored = NON_SETTING_VARIABLES | image_variables(model)
    for name in sorted(environ):
        upper = name.upper()  # pydantic-settings reads the variables without regard to case
        if not upper.startswith(ENV_PREFIX) or upper in ignored or is_compose_port_variable(upper, model):
            continue
        parts = upper[len(ENV_PREFIX) :].lower().split("__")
        annotation = _setting_type(parts, model)
        if annotation is None:
            close = difflib.get_close_matches(upper, _setting_variables(model), n=1, cutoff=0.75)
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


def _setting_type(parts: list[str], model: type[BaseModel]) -> Any:
    """The type of the setting at `parts` (`["postgres", "image"]`), or None when there is no such setting."""
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


def _setting_variables(model: type[BaseModel]) -> list[str]:
    """Every variable that names a setting: ENVMGR_IMAGE_SET, ENVMGR_POSTGRES, ENVMGR_POSTGRES__IMAGE ..."""
    names: list[str] = []
    for name, annotation in _fields(model).items():
        names.append(ENV_PREFIX + name.upper())
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += [f"{ENV_PREFIX}{name.upper()}__{inner.upper()}" for inner in _fields(annotation)]
    return names
