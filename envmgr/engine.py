"""The Docker engine: connecting, resolving the host address, labels, images, and removing by label.

envmgr reaches containers only through ports published on 127.0.0.1 of a local engine (or on the host named by
`DOCKER_HOST` for a remote one). It never uses testcontainers' host guess, which picks the bridge gateway wherever
the `/.dockerenv` marker exists, and it disables Ryuk: envmgr has its own reaper (`envmgr.reaper`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import docker
import docker.errors
from docker.models.containers import Container
from testcontainers.core.config import testcontainers_config

from envmgr.errors import DockerUnavailableError, ImageError, first_line
from envmgr.labels import (
    LABEL_CREATED,
    LABEL_DETACHED,
    LABEL_ENV,
    LABEL_SANDBOX,
    Owner,
)

__all__ = ["Engine", "EnvironmentRecord"]

LOCAL_SCHEMES = {"unix", "npipe", "http+unix", "http+docker"}


@dataclass(frozen=True)
class EnvironmentRecord:
    """One environment found on the engine through its labels."""

    id: str
    labels: dict[str, str]
    containers: tuple[Container, ...]
    networks: tuple[str, ...]

    @property
    def owner(self) -> Owner | None:
        return Owner.from_labels(self.labels)

    @property
    def detached(self) -> bool:
        return self.labels.get(LABEL_DETACHED) == "true"

    @property
    def sandbox(self) -> str | None:
        return self.labels.get(LABEL_SANDBOX) or None

    @property
    def created(self) -> float:
        try:
            return float(self.labels.get(LABEL_CREATED, "0"))
        except ValueError:
            return 0.0


class Engine:
    """A connected Docker engine."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client

    @classmethod
    def connect(cls, timeout: float = 10.0) -> Engine:
        """Connect and ping; raise DockerUnavailableError with the address tried and the fix."""
        # envmgr reaps with its own mechanism; Ryuk's image cannot be assumed pullable (and misbehaves under xdist).
        testcontainers_config.ryuk_disabled = True
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        try:
            client = docker.from_env(timeout=int(max(timeout, 1)))
            client.ping()
        except (docker.errors.DockerException, OSError) as exc:
            raise DockerUnavailableError(
                f"cannot reach the Docker engine at {where} ({first_line(exc)})",
                "start the engine (e.g. `dockerd &` as root, or Docker Desktop) or set DOCKER_HOST to a running one",
            ) from None
        return cls(client)

    def host_address(self) -> str:
        """The address at which published ports are reached: 127.0.0.1 locally, the DOCKER_HOST host remotely."""
        base = urlparse(os.environ.get("DOCKER_HOST", "") or self.client.api.base_url)
        if base.scheme in LOCAL_SCHEMES or not base.hostname or base.hostname in {"localhost", "localunixsocket"}:
            return "127.0.0.1"
        return base.hostname

    def publish_address(self) -> str:
        """The host interface ports are bound to: loopback locally; all interfaces only for a remote engine."""
        return "127.0.0.1" if self.host_address() == "127.0.0.1" else "0.0.0.0"

    def network_gateway(self, name: str) -> str | None:
        """The IPv4 gateway of a Docker network (the host's address on its bridge), or None if it has none."""
        try:
            network = self.client.networks.get(name)
        except docker.errors.DockerException as exc:
            raise DockerUnavailableError(
                f"cannot inspect network {name}: {first_line(exc)}", "check the Docker engine"
            ) from None
        for config in (network.attrs.get("IPAM") or {}).get("Config") or []:
            gateway = str(config.get("Gateway") or "")
            if gateway and ":" not in gateway:
                return gateway
        return None

    # images -------------------------------------------------------------------------------------------------

    def has_image(self, image: str) -> bool:
        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            return False
        return True

    def ensure_image(self, image: str, service: str, build_hint: str | None) -> None:
        """Make sure `image` is present: pull it if it is not; raise ImageError with the fix otherwise."""
        if self.has_image(image):
            return
        if build_hint is not None:
            raise ImageError(
                f"image {image} for {service} is not present on this engine",
                build_hint,
            )
        try:
            self.client.images.pull(image)
        except docker.errors.DockerException as exc:
            raise ImageError(
                f"image {image} for {service} is not present and cannot be pulled ({first_line(exc)})",
                f"pull it where a registry is reachable, or build the local set: `envmgr images build {service}` "
                "and set ENVMGR_IMAGE_SET=local",
            ) from None

    # labelled resources -------------------------------------------------------------------------------------

    def containers(self, env_id: str | None = None, **labels: str) -> list[Container]:
        filters = [f"{LABEL_ENV}={env_id}" if env_id else LABEL_ENV]
        filters += [f"{key}={value}" for key, value in labels.items()]
        # ignore_removed: a container removed between the listing and its inspection (another process tearing an
        # environment down) is simply not there, rather than a NotFound for the whole listing
        result: list[Container] = self.client.containers.list(all=True, filters={"label": filters}, ignore_removed=True)
        return result

    def environments(self) -> dict[str, EnvironmentRecord]:
        """Every envmgr environment on this engine, found by its labels (containers and networks)."""
        found: dict[str, tuple[dict[str, str], list[Container], list[str]]] = {}
        for container in self.containers():
            labels = dict(container.labels)
            entry = found.setdefault(labels[LABEL_ENV], (labels, [], []))
            entry[1].append(container)
        for network in self.client.networks.list(filters={"label": LABEL_ENV}):
            labels = dict(network.attrs.get("Labels") or {})
            entry = found.setdefault(labels[LABEL_ENV], (labels, [], []))
            entry[2].append(str(network.name))
        return {
            env_id: EnvironmentRecord(env_id, labels, tuple(containers), tuple(networks))
            for env_id, (labels, containers, networks) in found.items()
        }

    def remove_environment(self, env_id: str) -> int:
        """Remove every container, network and volume labelled with this environment; return how many."""
        selector = {"label": [f"{LABEL_ENV}={env_id}"]}
        containers = self.client.containers.list(all=True, filters=selector, ignore_removed=True)
        removed = len(_parallel(self._remove_container, containers))
        for network in self.client.networks.list(filters=selector):
            removed += _ignore_missing(network.remove)
        for volume in self.client.volumes.list(filters=selector):
            removed += _ignore_missing(lambda v=volume: v.remove(force=True))
        return removed

    def _remove_container(self, container: Container) -> int:
        return _ignore_missing(lambda: container.remove(force=True, v=True))

    def container_logs(self, container: Container, lines: int = 40) -> str:
        try:
            raw: bytes = container.logs(tail=lines)
        except docker.errors.DockerException as exc:
            return f"(logs unavailable: {first_line(exc)})"
        return raw.decode("utf-8", "replace")

    def image_volumes(self, image: str) -> list[str]:
        """Paths the image declares as VOLUME (envmgr backs them with tmpfs: nothing outlives the container)."""
        config: dict[str, Any] = self.client.images.get(image).attrs.get("Config") or {}
        return sorted((config.get("Volumes") or {}).keys())


def _parallel(function: Any, items: Iterable[Any]) -> list[Any]:
    items = list(items)
    if len(items) <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(8, len(items))) as pool:
        return list(pool.map(function, items))


def _ignore_missing(action: Any) -> int:
    """Run a removal; a resource that is already gone (or being removed) counts as removed."""
    for attempt in range(3):
        try:
            action()
        except docker.errors.NotFound:
            return 1
        except docker.errors.APIError as exc:
            if "already in progress" in str(exc) or (exc.status_code == 409 and attempt < 2):
                time.sleep(0.2)  # a concurrent removal holds the resource; retry a bounded number of times
                continue
            raise
        return 1
    return 1
