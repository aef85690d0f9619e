"""Attaching to an environment started elsewhere (another process, `envmgr up --detach`, the daemon): its settings,
services and replicas read back from the labels on its containers, its passwords derived from this user's key.

    attachment = read_attachment(env_id, engine, settings, registry, credentials)
    ready = read_ready(plan, engine, attachment.record)      # each replica's endpoint, as its container is published
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import docker.errors
from pydantic import ValidationError

from envmgr.config import Settings
from envmgr.credentials import Credentials
from envmgr.engine.connection import Engine
from envmgr.engine.containers import published_from
from envmgr.engine.labels import (
    LABEL_GIVEN,
    LABEL_KEY_ID,
    LABEL_NAMESPACE,
    LABEL_REPLICA,
    LABEL_SERVICE,
    LABEL_SERVICE_CONFIG,
    LABEL_SETTINGS,
    LABEL_WORKERS,
)
from envmgr.engine.records import EnvironmentRecord
from envmgr.environment.plan import EnvironmentPlan, Ready, with_replica
from envmgr.errors import ConfigError, EnvironmentNotFoundError, first_line
from envmgr.services.registry import ServiceRegistry

__all__ = ["Attachment", "read_attachment", "read_ready"]


@dataclass(frozen=True)
class Attachment:
    """What the labels of a running environment say."""

    record: EnvironmentRecord
    settings: Settings
    """the settings it was started with (each service's table from its container's label)"""
    services: list[str]
    workers: int
    given: list[str]
    """its services on servers envmgr did not start (no container, so no labels of theirs but their names)"""


def read_attachment(
    env_id: str, engine: Engine, settings: Settings | None, registry: ServiceRegistry, credentials: Credentials
) -> Attachment:
    """The environment's settings and services from its labels. EnvironmentNotFoundError when it is not there;
    ConfigError when its labels cannot be read here or it was started with another key."""
    record = engine.environments().get(env_id)
    if record is None:
        raise EnvironmentNotFoundError(f"no environment {env_id!r} on this engine", "list them with `envmgr status`")
    try:
        if settings is not None:
            base = settings
        elif LABEL_SETTINGS in record.labels:  # made by the daemon from a project's settings
            base = Settings.model_validate_json(record.labels[LABEL_SETTINGS])
        else:
            base = Settings()
        configs: dict[str, Any] = {}
        for container in record.containers:
            name = container.labels.get(LABEL_SERVICE, "")
            if name in registry:
                configs[name] = json.loads(container.labels.get(LABEL_SERVICE_CONFIG, "{}"))
        merged = base.model_copy(update={"namespace": record.labels.get(LABEL_NAMESPACE, base.namespace)})
        merged = merged.model_copy(
            update={name: base.service(name).model_validate(config) for name, config in configs.items()}
        )
    except (ValidationError, ValueError) as exc:  # a shared engine: another machine's envmgr, another version
        raise ConfigError(
            f"environment {env_id} has settings labels this envmgr cannot read ({first_line(exc)})",
            f"use the envmgr version that started it, or remove it: envmgr down {env_id}",
        ) from None
    if record.labels.get(LABEL_KEY_ID) != credentials.key_id:
        raise ConfigError(
            f"environment {env_id} was started with another key than yours (by another user, an older envmgr, "
            "or before your key was replaced): its passwords cannot be derived here",
            f"attach as the user that started it, or remove it: envmgr down {env_id}",
        )
    given = [name for name in record.labels.get(LABEL_GIVEN, "").split(",") if name in registry]
    return Attachment(record, merged, list(configs), int(record.labels.get(LABEL_WORKERS, "0")), given)


def read_ready(
    plan: EnvironmentPlan, engine: Engine, record: EnvironmentRecord | None = None, *, stopped_ok: bool = False
) -> Ready:
    """Each replica's endpoint, as its container is published (the record read again when not given).

    A stopped service is a ServiceStartError, unless `stopped_ok`; EnvironmentNotFoundError when the environment goes
    while it is read."""
    if record is None:
        record = engine.environments().get(plan.id)
        if record is None:
            raise EnvironmentNotFoundError(
                f"no environment {plan.id!r} on this engine", "list them with `envmgr status`"
            )
    host = engine.host_address()
    found: Ready = {}
    order = {name: index for index, name in enumerate(plan.topology.services)}
    ours = [c for c in record.containers if c.labels.get(LABEL_SERVICE, "") in plan.services]
    for container in sorted(ours, key=lambda c: order[c.labels[LABEL_SERVICE]]):
        name = container.labels[LABEL_SERVICE]
        service = plan.services[name]
        replica = int(container.labels.get(LABEL_REPLICA, "0"))
        worker = plan.replica_worker(name, replica)
        try:
            published = published_from(
                container, service=name, host=host, ports=service.ports, worker=worker, replica=replica,
                needs=plan.needs_of(name, worker, found), attached=True, stopped_ok=stopped_ok,
            )  # fmt: skip
        except docker.errors.NotFound:  # removed since the listing (another process tears it down)
            raise EnvironmentNotFoundError(
                f"environment {plan.id} is being removed (its container {container.name} is gone)",
                "list them with `envmgr status`",
            ) from None
        found[(name, replica)] = service.recover(with_replica(service.endpoint(published), replica))
    return found
