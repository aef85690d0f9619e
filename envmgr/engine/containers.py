"""Creating one service container on the engine, and reading back where its ports were published.

Ports are pinned to chosen host ports on the publish address, so a restarted container keeps its endpoint: on a
local engine a port free on 127.0.0.1 right now; on a remote one (whose ports cannot be probed from here) a random
port of `REMOTE_PORTS`, bound to the engine's own address. A port taken between the choice and the start is retried
with other ports; an engine that cannot bind its own address publishes on all its interfaces instead.

Bind mounts name this machine's files: on a remote engine their content is copied into the container before it
starts (`bind_copies`: without VCS folders, caches and virtualenvs, up to `COPY_LIMIT_BYTES`).
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import docker.errors
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from envmgr.endpoints import CALLBACK_HOST, ServiceEndpoint, Worker
from envmgr.engine.address import ALL_INTERFACES
from envmgr.engine.connection import Engine
from envmgr.errors import ServiceStartError, first_line
from envmgr.services.base import ContainerSpec, Published

__all__ = ["alias", "bind_copies", "free_port", "is_running", "published_from", "run_container"]

PORT_ATTEMPTS = 4
PORT_TAKEN = ("port is already allocated", "address already in use")
ADDRESS_REFUSED = "cannot assign requested address"
REMOTE_PORTS = (20000, 32767)
"""where host ports are chosen on a remote engine: above the usual services, below Linux's ephemeral range"""
COPY_LIMIT_BYTES = 64 * 1024 * 1024
NOT_COPIED = frozenset(
    {".git", ".hg", ".svn", "__pycache__", ".venv", "venv", "node_modules", ".mypy_cache", ".pytest_cache",
     ".ruff_cache", ".tox", ".nox", ".envmgr"}
)  # fmt: skip
"""folders left out when a bind mount's content is copied to a remote engine"""


def alias(service: str, replica: int) -> str:
    """The container's name on the environment's network: `wiremock`, `wiremock-1`, ..."""
    return service if replica == 0 else f"{service}-{replica}"


def run_container(
    engine: Engine,
    *,
    service: str,
    spec: ContainerSpec,
    name: str,
    network_alias: str,
    network: Network,
    labels: Mapping[str, str],
    host_env: Callable[[str, Mapping[str, int]], dict[str, str]],
    created: Callable[[DockerContainer], None],
    host_ports: Mapping[str, int] | None = None,
    gateway: str | None = None,
) -> Any:
    """Create and start one container; return the docker SDK's container. `host_ports`: the ports chosen when it
    was planned (others are tried when one was taken meanwhile). `host_env(host, host_ports)` gives the environment
    that depends on the published ports; `created` is told of the container before it starts (so a failure
    half-way can still remove it). `gateway`: the network's gateway, which the container knows as
    `host.docker.internal` (the test host, see `Callback`)."""
    copies = _copies(spec.copies)
    if engine.remote:
        for host_path, container_path in spec.binds.items():
            copies += bind_copies(service, Path(host_path), container_path)
    for attempt in range(PORT_ATTEMPTS):
        publish = engine.publish_address()
        if attempt == 0 and host_ports is not None:
            chosen = dict(host_ports)
        else:
            chosen = {role: free_port(publish, remote=engine.remote) for role in spec.ports}
        container = DockerContainer(
            spec.image,
            docker_client_kw=engine.client_kwargs(),
            command=cast(Any, spec.command),
            env={**spec.env, **host_env(engine.host_address(), chosen)},
            name=name,
            network=network,
            network_aliases=[network_alias],
        )
        for role, port in spec.ports.items():
            cast(dict[str, Any], container.ports)[f"{port}/tcp"] = (publish, chosen[role])
        for path in engine.image_volumes(spec.image):
            container.with_tmpfs_mount(path)
        for path, size in spec.tmpfs.items():
            container.with_tmpfs_mount(path, size or None)
        if not engine.remote:
            for host_path, container_path in spec.binds.items():
                container.with_volume_mapping(host_path, container_path, "ro")
        for source, destination, mode in copies:
            container.with_copy_into_container(source, destination, mode)
        extra_hosts = {CALLBACK_HOST: gateway} if gateway else {}
        user: dict[str, Any] = {"user": spec.user} if spec.user else {}
        if spec.entrypoint is not None:
            user["entrypoint"] = list(spec.entrypoint)
        container.with_kwargs(labels=dict(labels), privileged=False, extra_hosts=extra_hosts, **user)
        created(container)
        try:
            container.start()
        except docker.errors.DockerException as exc:
            if ADDRESS_REFUSED in str(exc) and publish != ALL_INTERFACES:  # the engine does not own that address
                container.stop()
                engine.publish_everywhere()
                continue
            taken = any(text in str(exc) for text in PORT_TAKEN)
            if taken and attempt < PORT_ATTEMPTS - 1:  # another process took the port meanwhile: try others
                container.stop()
                continue
            if taken:
                raise ServiceStartError(
                    service,
                    f"{service} could not publish its ports on {publish}: {first_line(exc)}",
                    "another process keeps taking free ports on this address; stop it or retry",
                ) from None
            raise ServiceStartError(
                service,
                f"{service} could not start from image {spec.image}: {first_line(exc)}",
                "check the image and the service's env/command settings",
            ) from None
        return container.get_wrapped_container()
    raise AssertionError("unreachable")  # pragma: no cover


def published_from(
    container: Any,
    *,
    service: str,
    host: str,
    ports: Mapping[str, int],
    worker: Worker,
    replica: int,
    needs: Mapping[str, ServiceEndpoint],
    attached: bool = False,
    stopped_ok: bool = False,
) -> Published:
    """Read the published ports of a container back from the engine: one just started, or (`attached`) one of a
    running environment. A stopped container of an attached environment is a ServiceStartError, unless
    `stopped_ok`: then its ports are those it was created with (envmgr pins them: it gets them back on start)."""
    container.reload()
    bound: dict[str, Any] = container.attrs["NetworkSettings"]["Ports"] or {}
    name = container.name
    if attached and container.status != "running":
        if not stopped_ok:
            env_id = container.labels.get("envmgr.env", "")
            raise ServiceStartError(
                service,
                f"{service} of environment {env_id} is stopped (container {name} is {container.status})",
                f"start it again: docker start {name}; or remove the environment: envmgr down {env_id}",
            )
        bound = container.attrs["HostConfig"]["PortBindings"] or {}
    published: dict[str, int] = {}
    for role, port in ports.items():
        bindings = bound.get(f"{port}/tcp") or []
        if not bindings and container.status != "running":  # it exited at once: its own output says why
            raise ServiceStartError(
                service,
                f"{service} exited right after it started (container {name} is {container.status})",
                "read its last log lines below; check the service's env/command settings",
                logs=_logs(container),
            )
        if not bindings:
            raise ServiceStartError(
                service,
                f"{service} has no published port for {port}/tcp (container {name} is {container.status})",
                f"start it again (envmgr up) or remove it: envmgr down {container.labels.get('envmgr.env', '')}",
            )
        published[role] = int(bindings[0]["HostPort"])
    return Published(
        host=host,
        ports=published,
        alias=alias(service, replica),
        container_ports=dict(ports),
        image=str(container.attrs["Config"]["Image"]),
        container=str(name),
        worker=worker,
        needs=dict(needs),
    )


def _logs(container: Any, lines: int = 40) -> str:
    try:
        raw: bytes = container.logs(tail=lines)
    except docker.errors.DockerException as exc:
        return f"(logs unavailable: {first_line(exc)})"
    return raw.decode("utf-8", "replace")


def is_running(container: Any) -> bool:
    try:
        container.reload()
    except docker.errors.NotFound:
        return False
    return bool(container.status == "running")


def bind_copies(service: str, source: Path, container_path: str) -> list[tuple[bytes, str, int]]:
    """The files of a bind mount (`source` mounted at `container_path`) to copy instead, for a remote engine: the
    folder's content lands at `container_path` itself; VCS folders, caches and virtualenvs (`NOT_COPIED`) are left
    out. ServiceStartError when it exceeds `COPY_LIMIT_BYTES`."""
    if source.is_file():
        return [(source.read_bytes(), container_path, 0o644)]
    paths = [p for p in _walk(source) if p.is_file()]
    total = sum(p.stat().st_size for p in paths)
    if total > COPY_LIMIT_BYTES:
        raise ServiceStartError(
            service,
            f"{service} mounts {source} ({total // 2**20} MiB) at {container_path}; a remote engine cannot mount this "
            f"machine's files, and envmgr copies at most {COPY_LIMIT_BYTES // 2**20} MiB",
            "point the setting at the folder the container needs (for celery: [tool.envmgr.celery] code_dir), or "
            "use a local engine",
        )
    root = container_path.rstrip("/")
    return [(p.read_bytes(), f"{root}/{p.relative_to(source).as_posix()}", 0o644) for p in sorted(paths)]


def _walk(folder: Path) -> list[Path]:
    """Every path under `folder`, without the folders of `NOT_COPIED` (nor what they hold)."""
    found: list[Path] = []
    for path in folder.iterdir():
        if path.is_dir() and not path.is_symlink():
            if path.name not in NOT_COPIED:
                found += _walk(path)
        else:
            found.append(path)
    return found


def _copies(copies: Mapping[str, str]) -> list[tuple[bytes, str, int]]:
    """Each file of the copied folders, readable by any user in the container (the service may not run as root,
    and a checkout's modes are the host's business)."""
    files: list[tuple[bytes, str, int]] = []
    for host_path, container_dir in copies.items():
        source = Path(host_path)
        for path in sorted(p for p in [source, *source.rglob("*")] if p.is_file()):
            relative = path.relative_to(source.parent).as_posix()
            files.append((path.read_bytes(), f"{container_dir.rstrip('/')}/{relative}", 0o644))
    return files


def free_port(address: str, *, remote: bool = False) -> int:
    """A port free on `address` right now (the engine binds it a moment later; a lost race is retried). A remote
    engine's ports cannot be probed from here: a random one of REMOTE_PORTS (a taken one is retried likewise)."""
    if remote:
        return random.randint(*REMOTE_PORTS)  # a port number, not a secret
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])
