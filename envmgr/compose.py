"""`envmgr compose export`: the environment envmgr would start, as a plain docker compose file.

    document = compose_document(load_settings(), ["postgres", "redis"])
    print(render(document))

`compose_document` is a pure function of the settings and the service names: it asks every service module for its
container (`Service.container_spec`) and its endpoint (`Service.endpoint`), exactly as `Environment` does, so the
images, environment and commands come from one place. What compose needs on top: ports published on 127.0.0.1
(a free port, or the one `ENVMGR_<SERVICE>_PORT` names when compose runs), one network, health checks speaking each
service's protocol, `depends_on` that waits for them, bind mounts for what envmgr copies into containers (seeds),
and a one-shot job that loads the LocalStack seeds (envmgr loads them through the AWS API after readiness).

Only the session form is exported (one container per service, the `main` worker's names): xdist workers' replicas
and per-worker databases are envmgr's business. envmgr does not own what this file starts: its containers carry
`envmgr.component=compose-export`, never `envmgr.env`, so `envmgr status`, `gc` and the reaper leave them alone.
"""

from __future__ import annotations

import math
import os
import re
import textwrap
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from envmgr.config import Settings
from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.services.base import ComposeContext, ContainerSpec, Published, Service
from envmgr.services.registry import SERVICES, ServiceRegistry
from envmgr.topology import Topology

__all__ = [
    "COMPONENT",
    "LABEL_COMPONENT",
    "NETWORK",
    "compose_document",
    "port_variable",
    "render",
    "write_private",
]

LABEL_COMPONENT = "envmgr.component"
COMPONENT = "compose-export"
NETWORK = "envmgr"
PUBLISH_HOST = "127.0.0.1"
HEALTH_INTERVAL_SECONDS = 1

_Places = tuple[Path | None, Path]
"""(the compose file's folder if known, the project root), both resolved"""

PASSED_THROUGH: tuple[str, ...] = ("LOCALSTACK_AUTH_TOKEN",)
"""credentials a service module copies from envmgr's own environment: exported as `${NAME:-}` references"""


def compose_document(
    settings: Settings,
    services: Sequence[str] | None = None,
    *,
    base_dir: Path | None = None,
    registry: ServiceRegistry = SERVICES,
) -> dict[str, Any]:
    """The compose document (a dict, ready for YAML) of the environment `Environment(services, settings=...)` would
    start in session isolation. Passwords are chosen now, fresh. `base_dir`: the folder the file will be written
    to: host paths inside the project are then written relative to it (compose resolves them against the file's
    folder); default: absolute.

    Values are compose text: `$` is doubled everywhere except in the port variables meant for interpolation.
    """
    names = list(dict.fromkeys(services if services else settings.enabled_services()))
    topology = Topology.plan(names, 0, registry)
    instances = {name: registry.create(name, settings) for name in topology.services}
    places: _Places = (base_dir.resolve() if base_dir is not None else None, settings.project_root.resolve())
    context = ComposeContext(host_path=lambda path: _host_path(path, places), text=_text)
    worker = Worker()
    endpoints: dict[str, ServiceEndpoint] = {}
    compose_services: dict[str, Any] = {}
    jobs: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    for name in topology.services:
        service = instances[name]
        needs = {required: endpoints[required] for required in topology.needs[name]}
        spec = service.container_spec(needs, worker)
        endpoint = service.endpoint(_published(service, spec, worker, needs))
        endpoints[name] = endpoint
        entry = _compose_service(service, spec, endpoint, needs=needs, instances=instances, context=context)
        for required in needs:  # what prepares a service (its seed job) completes before its dependants start
            for job in jobs.get(required, {}):
                entry.setdefault("depends_on", {})[job] = {"condition": "service_completed_successfully"}
        compose_services[name] = entry
        jobs[name] = service.compose_jobs(endpoint, spec.image, context)
        for job_name, job in jobs[name].items():
            compose_services[job_name] = {**job, "labels": {LABEL_COMPONENT: COMPONENT}, "networks": [NETWORK]}
        if service.compose_image_healthcheck and service.config.image:
            notes.append(f"{name}: explicit image {service.config.image}: its own HEALTHCHECK (if any) applies")
        notes += service.compose_notes()
    return {
        "x-envmgr": {
            "exported-by": f"envmgr {_envmgr_version()}",
            "exported-at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "image-set": settings.image_set,
            "services": names,
            "jobs": [job for entries in jobs.values() for job in entries],
            "ports": {
                port_variable(name, role): f"{name}:{port}"
                for name in names
                for role, port in instances[name].ports.items()
            },
            "notes": notes,
        },
        "services": compose_services,
        "networks": {NETWORK: {"labels": {LABEL_COMPONENT: COMPONENT}}},
    }


def render(document: Mapping[str, Any]) -> str:
    """The compose file: a comment header (how to use it, what compose cannot do) and the YAML."""
    meta: dict[str, Any] = dict(document.get("x-envmgr") or {})
    services: dict[str, Any] = dict(document.get("services") or {})
    jobs = set(meta.get("jobs") or [])
    shown = [name for name in services if name not in jobs]
    example = next((name for name in shown if services[name].get("ports")), "postgres")
    container_port = str((services.get(example, {}).get("ports") or ["5432"])[0]).rsplit(":", 1)[-1]
    variables = ", ".join(f"{name} ({where})" for name, where in (meta.get("ports") or {}).items()) or "none"
    paragraphs = [
        f"Generated by `envmgr compose export` ({meta.get('exported-by', 'envmgr')}, image set "
        f"{meta.get('image-set', '?')}): the environment envmgr starts for {', '.join(shown)}, in session isolation "
        "(one container a service). Credentials are fresh random values chosen at export time: keep this file "
        "private (envmgr writes it with mode 0600). envmgr does not own, list or reap what it starts.",
        "",
        "  docker compose -p NAME -f FILE up -d            (Compose v1: docker-compose -p NAME -f FILE up -d)",
        f"  docker compose -p NAME -f FILE port {example} {container_port}   the published 127.0.0.1 address",
        "  docker compose -p NAME -f FILE down -v          containers, network and anonymous volumes",
        "",
        "Ports are published on 127.0.0.1 only: on a free port, or on the one a variable names when compose runs: "
        f"{variables}.",
        *(meta.get("notes") or []),
    ]
    lines: list[str] = []
    for paragraph in paragraphs:
        if not paragraph or paragraph.startswith("  "):
            lines.append(f"# {paragraph}".rstrip())
            continue
        lines += textwrap.wrap(paragraph, width=116, initial_indent="# ", subsequent_indent="#   ")
    body = yaml.dump(
        dict(document), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120, allow_unicode=True
    )
    return "\n".join(lines) + "\n" + body


def write_private(path: Path, text: str) -> None:
    """Write the file readable by its owner only (it holds the environment's credentials)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    path.chmod(0o600)


def port_variable(service: str, role: str) -> str:
    """The variable that fixes the host port of one of a service's ports when compose runs: ENVMGR_POSTGRES_PORT,
    ENVMGR_LOCALSTACK_PORT ... for the primary port of each service, ENVMGR_<SERVICE>_<ROLE>_PORT for others."""
    cls = SERVICES.get(service)
    primary = next(iter(cls.ports), role) if cls is not None else role
    parts = [service] if role == primary else [service, role]
    return "ENVMGR_" + "_".join(re.sub(r"[^A-Z0-9]", "_", part.upper()) for part in parts) + "_PORT"


# internals ------------------------------------------------------------------------------------------------------


def _published(
    service: Service, spec: ContainerSpec, worker: Worker, needs: Mapping[str, ServiceEndpoint]
) -> Published:
    """Where the service is, as seen from the compose network: its service name and its container ports. The
    endpoints built from it are internal ones (what the other containers' environments must name)."""
    return Published(
        host=service.name,
        ports=dict(spec.ports),
        alias=service.name,
        container_ports=dict(spec.ports),
        image=spec.image,
        container=service.name,
        worker=worker,
        needs=dict(needs),
    )


def _compose_service(
    service: Service,
    spec: ContainerSpec,
    endpoint: ServiceEndpoint,
    *,
    needs: Mapping[str, ServiceEndpoint],
    instances: Mapping[str, Service],
    context: ComposeContext,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"image": spec.image}
    if spec.user is not None:
        entry["user"] = spec.user
    if spec.entrypoint is not None:
        entry["entrypoint"] = [_text(arg) for arg in spec.entrypoint]
    if spec.command is not None:
        entry["command"] = [_text(arg) for arg in spec.command]
    environment = {name: _text(value) for name, value in spec.env.items()}
    for name in PASSED_THROUGH:
        if name in environment and spec.env[name] == os.environ.get(name):
            environment[name] = f"${{{name}:-}}"  # taken from the environment of `compose up`, never written here
    environment.update(_host_environment(service, spec))
    if environment:
        entry["environment"] = environment
    if spec.ports:
        entry["ports"] = [
            f"{PUBLISH_HOST}:${{{port_variable(service.name, role)}:-}}:{port}" for role, port in spec.ports.items()
        ]
    volumes = [f"{context.host_path(host)}:{target}:ro" for host, target in spec.binds.items()]
    volumes += [
        f"{context.host_path(host)}:{folder.rstrip('/')}/{Path(host).name}:ro" for host, folder in spec.copies.items()
    ]
    if volumes:
        entry["volumes"] = volumes
    if spec.tmpfs:
        entry["tmpfs"] = [f"{path}:size={size}" if size else path for path, size in spec.tmpfs.items()]
    healthcheck = service.compose_healthcheck(endpoint, context)
    if healthcheck is not None:
        entry["healthcheck"] = {
            "test": healthcheck,
            "interval": f"{HEALTH_INTERVAL_SECONDS}s",
            "timeout": "5s",
            "retries": max(3, math.ceil(service.readiness_timeout()[0] / HEALTH_INTERVAL_SECONDS)),
        }
    if needs:
        entry["depends_on"] = {
            name: {"condition": "service_healthy" if _has_healthcheck(instances[name], need, context) else
                   "service_started"}
            for name, need in needs.items()
        }  # fmt: skip
    entry["labels"] = {LABEL_COMPONENT: COMPONENT}
    entry["networks"] = [NETWORK]
    return entry


def _host_environment(service: Service, spec: ContainerSpec) -> dict[str, str]:
    """`Service.host_env` (variables naming the published address, e.g. LOCALSTACK_HOST): the host port is only
    known when compose runs, so it names `${ENVMGR_<SERVICE>_PORT:-<container port>}` (right when the port is
    fixed by that variable; otherwise the container port stands in)."""
    host_ports = dict(spec.ports)
    values = service.host_env(PUBLISH_HOST, host_ports)
    result: dict[str, str] = {}
    for name, value in values.items():
        text = _text(value)
        for role, port in host_ports.items():
            text = text.replace(
                f"{PUBLISH_HOST}:{port}", f"{PUBLISH_HOST}:${{{port_variable(service.name, role)}:-{port}}}"
            )
        result[name] = text
    return result


def _has_healthcheck(service: Service, endpoint: ServiceEndpoint, context: ComposeContext) -> bool:
    """True when compose can wait for the service to be healthy: envmgr's check, or the image's own (which an
    explicit image may lack: then only "started" can be awaited)."""
    if service.compose_image_healthcheck:
        return not service.config.image
    return service.compose_healthcheck(endpoint, context) is not None


def _host_path(path: str, places: _Places) -> str:
    """A bind source. Relative to the compose file's folder (`./seeds/wiremock/mappings`, `../seeds/s3`) when both
    the file and the source are inside the project, so the file works wherever the project is checked out;
    absolute otherwise (compose resolves relative sources against the file's folder)."""
    absolute = Path(path).resolve()
    base, root = places
    if base is None or not (absolute.is_relative_to(root) and base.is_relative_to(root)):
        return _text(str(absolute))
    relative = Path(os.path.relpath(absolute, base)).as_posix()
    return _text(relative if relative == "." or relative.startswith("..") else f"./{relative}")


class _Dumper(yaml.SafeDumper):
    """Safe YAML with multi-line strings (the inline scripts) as literal blocks."""


def _represent_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_text)


def _text(value: str) -> str:
    """A literal value in compose, which would interpolate `$NAME`."""
    return value.replace("$", "$$")


def _envmgr_version() -> str:
    try:
        return version("envmgr")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
        return "unknown"
