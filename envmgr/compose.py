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

import json
import math
import os
import re
import shlex
import textwrap
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from envmgr.config import Settings
from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.errors import ServiceNotEnabledError
from envmgr.seeds import s3_seed_buckets, sqs_seed_queues
from envmgr.services import SERVICES, ContainerSpec, Published, Service, create_service
from envmgr.services import localstack as localstack_module

__all__ = [
    "COMPONENT",
    "LABEL_COMPONENT",
    "LOCALSTACK_SEED_SERVICE",
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
LOCALSTACK_SEED_SERVICE = "localstack-seed"
SEEDS_MOUNT = "/envmgr-seeds"
LOCALSTACK_PYTHON = "/opt/code/localstack/.venv/bin/python"
"""the LocalStack venv's interpreter (boto3 included): the same path in the official and the local image"""
HEALTH_INTERVAL_SECONDS = 1

_Places = tuple[Path | None, Path]
"""(the compose file's folder if known, the project root), both resolved"""

PASSED_THROUGH: tuple[str, ...] = ("LOCALSTACK_AUTH_TOKEN",)
"""credentials a service module copies from envmgr's own environment: exported as `${NAME:-}` references"""
IMAGE_HEALTHCHECK: frozenset[str] = frozenset({"wiremock", "celery"})
"""services whose images (official and local set alike) declare their own HEALTHCHECK: compose uses it"""

_LOCALSTACK_HEALTH = """\
import json, sys, urllib.request
try:
    with urllib.request.urlopen("http://127.0.0.1:{port}{path}", timeout=3) as response:
        states = json.load(response).get("services", {{}})
except Exception as exc:
    sys.exit(f"unhealthy: {{exc}}")
missing = [name for name in {required!r} if states.get(name) not in {ready!r}]
sys.exit(f"not yet available: {{missing}}" if missing else 0)
"""

_LOCALSTACK_SEED = """\
import json, os
import boto3
from botocore.config import Config

seeds = json.loads(os.environ["ENVMGR_SEEDS"])
options = {"endpoint_url": os.environ["AWS_ENDPOINT_URL"], "region_name": os.environ["AWS_DEFAULT_REGION"]}
s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}), **options)
for bucket, objects in seeds["buckets"].items():
    s3.create_bucket(Bucket=bucket)
    for key, path in objects:
        s3.upload_file(path, bucket, key)
    print(f"s3: {bucket} ({len(objects)} objects)")
sqs = boto3.client("sqs", **options)
for queue in seeds["queues"]:
    sqs.create_queue(QueueName=queue)
    print(f"sqs: {queue}")
"""


def compose_document(
    settings: Settings, services: Sequence[str] | None = None, *, base_dir: Path | None = None
) -> dict[str, Any]:
    """The compose document (a dict, ready for YAML) of the environment `Environment(services, settings=...)` would
    start in session isolation. Passwords are chosen now, fresh. `base_dir`: the folder the file will be written
    to: host paths inside the project are then written relative to it (compose resolves them against the file's
    folder); default: absolute.

    Values are compose text: `$` is doubled everywhere except in the port variables meant for interpolation.
    """
    names = list(dict.fromkeys(services if services else settings.enabled_services()))
    instances = {name: create_service(name, settings) for name in names}
    for service in instances.values():
        missing = [name for name in service.requires if name not in instances]
        if missing:
            raise ServiceNotEnabledError(
                f"{service.name} needs {', '.join(missing)}, which is not part of this export",
                f"add {', '.join(missing)} to the services",
            )
    places: _Places = (base_dir.resolve() if base_dir is not None else None, settings.project_root.resolve())
    worker = Worker()
    endpoints: dict[str, ServiceEndpoint] = {}
    compose_services: dict[str, Any] = {}
    notes: list[str] = []
    for name in _start_order(instances):
        service = instances[name]
        needs = {requirement: endpoints[requirement] for requirement in _needs(service, instances)}
        spec = service.container_spec(needs, worker)
        endpoint = service.endpoint(_published(service, spec, worker, needs))
        endpoints[name] = endpoint
        compose_services[name] = _compose_service(
            service, spec, endpoint, needs=needs, instances=instances, places=places
        )
        if name in IMAGE_HEALTHCHECK and service.config.image:
            notes.append(f"{name}: explicit image {service.config.image}: its own HEALTHCHECK (if any) applies")
    seeding = instances.get("localstack")
    if seeding is not None:
        job = _localstack_seed_job(seeding, compose_services["localstack"]["image"], endpoints["localstack"], places)
        if job is not None:
            compose_services[LOCALSTACK_SEED_SERVICE] = job
            celery = compose_services.get("celery")
            if celery is not None:
                celery["depends_on"][LOCALSTACK_SEED_SERVICE] = {"condition": "service_completed_successfully"}
    notes += _notes(instances)
    return {
        "x-envmgr": {
            "exported-by": f"envmgr {_envmgr_version()}",
            "exported-at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "image-set": settings.image_set,
            "services": names,
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
    shown = [name for name in services if name != LOCALSTACK_SEED_SERVICE]
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


def _needs(service: Service, instances: Mapping[str, Service]) -> list[str]:
    """What starts before `service` (as in Environment): its requirements and the used services exported too."""
    return [*service.requires, *(name for name in service.uses if name in instances)]


def _start_order(instances: Mapping[str, Service]) -> list[str]:
    order: list[str] = []
    remaining = dict(instances)
    while remaining:
        ready = [name for name, s in remaining.items() if set(_needs(s, instances)) <= set(order)]
        if not ready:
            raise ServiceNotEnabledError(f"circular requirements among {', '.join(remaining)}")
        order += ready
        for name in ready:
            del remaining[name]
    return order


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
    places: _Places,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"image": spec.image}
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
    volumes = [f"{_host_path(host, places)}:{target}:ro" for host, target in spec.binds.items()]
    volumes += [
        f"{_host_path(host, places)}:{folder.rstrip('/')}/{Path(host).name}:ro" for host, folder in spec.copies.items()
    ]
    if volumes:
        entry["volumes"] = volumes
    if spec.tmpfs:
        entry["tmpfs"] = [f"{path}:size={size}" if size else path for path, size in spec.tmpfs.items()]
    healthcheck = _healthcheck(service, endpoint)
    if healthcheck is not None:
        entry["healthcheck"] = healthcheck
    if needs:
        entry["depends_on"] = {
            name: {"condition": "service_healthy" if _has_healthcheck(instances[name]) else "service_started"}
            for name in needs
        }
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


def _has_healthcheck(service: Service) -> bool:
    if service.name in IMAGE_HEALTHCHECK:
        return not service.config.image  # an explicit image may have none: then only "started" can be awaited
    return service.name in {"postgres", "redis", "localstack"}


def _healthcheck(service: Service, endpoint: ServiceEndpoint) -> dict[str, Any] | None:
    """A check that speaks the service's protocol with a tool the image has (official and local set alike)."""
    test: list[str]
    if service.name == "postgres":
        # -h 127.0.0.1: TCP, so the image's initialisation phase (a server on the Unix socket only) does not count
        test = ["CMD", "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(endpoint.internal_port),
                "-U", _text(endpoint.username or ""), "-d", _text(endpoint.path)]  # fmt: skip
    elif service.name == "redis":
        password = shlex.quote(endpoint.password or "")
        test = ["CMD-SHELL", _text(f"redis-cli -p {endpoint.internal_port} -a {password} --no-auth-warning ping "
                                   "| grep -q PONG")]  # fmt: skip
    elif service.name == "localstack":
        script = _LOCALSTACK_HEALTH.format(
            port=endpoint.internal_port,
            path=localstack_module.HEALTH_PATH,
            required=tuple(localstack_module.REQUIRED),
            ready=tuple(sorted(localstack_module.READY_STATES)),
        )
        test = ["CMD", LOCALSTACK_PYTHON, "-c", _text(script)]
    else:
        return None  # wiremock and celery: the images' own HEALTHCHECK (see IMAGE_HEALTHCHECK)
    settings: Settings = service.settings
    return {
        "test": test,
        "interval": f"{HEALTH_INTERVAL_SECONDS}s",
        "timeout": "5s",
        "retries": max(3, math.ceil(settings.startup_timeout / HEALTH_INTERVAL_SECONDS)),
    }


def _localstack_seed_job(
    service: Service, image: str, endpoint: ServiceEndpoint, places: _Places
) -> dict[str, Any] | None:
    """A one-shot container (the LocalStack image's Python and boto3) creating the seeded buckets, objects and
    queues in the default account, once LocalStack is healthy; None when there is nothing to seed."""
    settings = service.settings
    seeds = settings.seeds_path()
    buckets = s3_seed_buckets(seeds)
    queues = sqs_seed_queues(seeds, settings.localstack.queues)
    if not buckets and not queues:
        return None
    worker = Worker()
    plan: dict[str, Any] = {"buckets": {}, "queues": queues}
    volumes: list[str] = []
    if buckets and seeds is not None:
        s3_root = seeds / "s3"
        volumes.append(f"{_host_path(str(s3_root), places)}:{SEEDS_MOUNT}/s3:ro")
        plan["buckets"] = {
            worker.bucket(bucket): [
                [key, f"{SEEDS_MOUNT}/s3/{path.relative_to(s3_root).as_posix()}"] for key, path in objects
            ]
            for bucket, objects in buckets.items()
        }
    aws = {
        name: value
        for name, value in endpoint.internal_variables().items()
        if name.startswith("AWS_")  # the account, the secret, the region, the (internal) endpoint
    }
    job: dict[str, Any] = {
        "image": image,
        "entrypoint": [LOCALSTACK_PYTHON, "-c", _text(_LOCALSTACK_SEED)],
        "environment": {**{k: _text(v) for k, v in aws.items()}, "ENVMGR_SEEDS": _text(json.dumps(plan))},
        "depends_on": {"localstack": {"condition": "service_healthy"}},
        "restart": "no",
        "labels": {LABEL_COMPONENT: COMPONENT},
        "networks": [NETWORK],
    }
    if volumes:
        job["volumes"] = volumes
    return job


def _notes(instances: Mapping[str, Service]) -> list[str]:
    notes: list[str] = []
    if "postgres" in instances:
        notes.append(
            "postgres: an empty database; envmgr's migrations (alembic_ini) and seeds/postgres are not applied: "
            "run them against the published port"
        )
    if "localstack" in instances:
        notes.append(
            f"localstack: seeds/s3 and seeds/sqs.yaml are loaded by the one-shot `{LOCALSTACK_SEED_SERVICE}` "
            "service (started by a plain `up`); LOCALSTACK_HOST names 127.0.0.1 and the port variable's value"
        )
    if "wiremock" in instances:
        notes.append(
            "wiremock: seeds/wiremock/{mappings,__files} are bind-mounted read-only (envmgr copies them); WireMock "
            "runs as uid 1000, so the files must be readable by others (as in a usual checkout)"
        )
    if "wiremock" in instances or "celery" in instances:
        notes.append(
            "wiremock, celery: no health check here: their images' own HEALTHCHECK applies "
            "(curl or bash /dev/tcp for WireMock, the ready file for Celery)"
        )
    if "celery" in instances:
        notes.append(
            "celery: the project's code_dir is bind-mounted read-only at /app; the worker runs as uid 1000 and "
            "must be able to read it"
        )
    return notes


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
