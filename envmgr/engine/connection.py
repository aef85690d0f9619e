"""The container engine: connecting, where it is and how its ports are reached, labels, images, removing by label.

envmgr reaches containers only through published ports: on 127.0.0.1 of a local engine, or at the host named by
`DOCKER_HOST` for a remote one (`tcp://`, with TLS through `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH`, or `ssh://`),
where they are bound to that address rather than to every interface when the engine allows it (`EngineAddress`).
It never uses testcontainers' host guess, which picks the bridge gateway wherever the `/.dockerenv` marker exists,
and it disables Ryuk: envmgr has its own reaper (`envmgr.engine.reaper`). The engine may be Docker or Podman's
Docker-compatible API (`EngineInfo`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container
from docker.models.networks import Network
from testcontainers.core.config import testcontainers_config

from envmgr.engine.address import (
    ALL_INTERFACES,
    DEFAULT_HOST,
    DOCKER_HOST_SCHEMES,
    EngineAddress,
    EngineInfo,
    engine_kind,
)
from envmgr.engine.labels import (
    LABEL_DAEMON,
    LABEL_ENV,
    LABEL_LEASE,
    LABEL_SERVICE,
)
from envmgr.engine.records import EnvironmentRecord
from envmgr.errors import DockerUnavailableError, EnvmgrError, ImageError, first_line

__all__ = ["Engine", "engine_errors"]


class Engine:
    """A connected Docker engine."""

    def __init__(self, client: docker.DockerClient, address: EngineAddress | None = None) -> None:
        # envmgr reaps with its own mechanism; Ryuk's image cannot be assumed pullable (and misbehaves under xdist).
        testcontainers_config.ryuk_disabled = True
        self.client = client
        self.address = address or EngineAddress.parse(os.environ.get("DOCKER_HOST", "") or client.api.base_url)
        self._bind: str | None = None
        self._version: dict[str, Any] | None = None
        self._hooks = threading.Lock()

    @classmethod
    def connect(cls, timeout: float = 10.0) -> Engine:
        """Connect and ping; raise DockerUnavailableError with the address tried and the fix."""
        address = EngineAddress.parse(os.environ.get("DOCKER_HOST", ""))
        try:
            # ssh://: the `ssh` client, as the docker CLI and testcontainers use it (paramiko is not needed)
            client = docker.from_env(timeout=int(max(timeout, 1)), use_ssh_client=address.scheme == "ssh")
            client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
            raise DockerUnavailableError(
                f"cannot reach the Docker engine at {address.url} ({first_line(exc)})",
                "start the engine (e.g. `dockerd &` as root, Docker Desktop, or `podman system service`) or set "
                "DOCKER_HOST to a running one (with DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH for TLS)",
            ) from None
        return cls(client, address)

    def docker_host(self) -> str | None:
        """This engine's URL for a process or client that would otherwise follow DOCKER_HOST elsewhere (the watchdog,
        testcontainers' own clients): None when DOCKER_HOST names it already, or when its URL is not a DOCKER_HOST
        value (an SDK client built on a socket path)."""
        url = self.address.url
        if url == os.environ.get("DOCKER_HOST", DEFAULT_HOST) or self.address.scheme not in DOCKER_HOST_SCHEMES:
            return None
        return url

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for testcontainers' clients (containers, networks) so that they reach this engine."""
        url = self.docker_host()
        if url is None:
            return {}
        return {"environment": {**os.environ, "DOCKER_HOST": url}, "use_ssh_client": self.address.scheme == "ssh"}

    @property
    def remote(self) -> bool:
        """Not on this machine as far as envmgr can tell: ports at its host, files copied rather than mounted."""
        return self.address.remote

    def host_address(self) -> str:
        """The address at which published ports are reached: 127.0.0.1 locally, the DOCKER_HOST host remotely."""
        return self.address.host

    def publish_address(self) -> str:
        """The engine-side address ports are bound to: loopback locally, the engine's own address remotely (all
        interfaces once the engine has refused that address, see `publish_everywhere`)."""
        if self._bind is None:
            self._bind = self.address.bind()
        return self._bind

    def publish_everywhere(self) -> None:
        """The engine cannot bind its DOCKER_HOST address (NAT, a port forward): publish on all its interfaces."""
        self._bind = ALL_INTERFACES

    def describe(self) -> EngineInfo:
        """Which engine this is (one `version()` call, then remembered), where, and how its ports are reached."""
        if self._version is None:
            try:
                self._version = dict(self.client.version())
            except docker.errors.DockerException as exc:
                raise DockerUnavailableError(
                    f"the container engine at {self.address.url} did not say its version ({first_line(exc)})",
                    "check that it still runs (docker version)",
                ) from None
        return EngineInfo(
            kind=engine_kind(self._version),
            version=str(self._version.get("Version", "")),
            api_version=str(self._version.get("ApiVersion", "")),
            url=self.address.url,
            remote=self.address.remote,
            tls=self.address.tls,
            reached_at=self.host_address(),
            published_on=self.publish_address(),
        )

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

    @contextmanager
    def responses(self) -> Iterator[list[requests.Response]]:
        """The HTTP responses the calling thread gets from the engine in the block, in a list (a streamed build's:
        another thread may then hang up on it). The client's hooks are replaced, never changed in place: a request
        of another thread sees them before or after."""
        me = threading.get_ident()
        caught: list[requests.Response] = []

        def hook(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
            if threading.get_ident() == me:
                caught.append(response)
            return response

        api = self.client.api
        with self._hooks:
            api.hooks = {**api.hooks, "response": [*api.hooks.get("response", []), hook]}
        try:
            yield caught
        finally:
            with self._hooks:
                api.hooks = {**api.hooks, "response": [h for h in api.hooks.get("response", []) if h is not hook]}

    # labelled resources -------------------------------------------------------------------------------------

    def containers(self, env_id: str | None = None, **labels: str) -> list[Container]:
        filters = [f"{LABEL_ENV}={env_id}" if env_id else LABEL_ENV]
        filters += [f"{key}={value}" for key, value in labels.items()]
        # ignore_removed: a container removed between the listing and its inspection (another process tearing an
        # environment down) is simply not there, rather than a NotFound for the whole listing
        result: list[Container] = self.client.containers.list(all=True, filters={"label": filters}, ignore_removed=True)
        return result

    def environments(self) -> dict[str, EnvironmentRecord]:
        """Every envmgr environment on this engine, found by its labels (containers, networks, and volumes: a lease
        volume left alone when everything else of its environment is gone is still an environment to sweep)."""
        found: dict[str, tuple[dict[str, str], list[Container], list[str]]] = {}
        leases: dict[str, dict[str, str]] = {}
        with engine_errors(
            "cannot list the environments", "start the engine again, or set DOCKER_HOST to a running one"
        ):
            containers = self.containers()
            networks = self.client.networks.list(filters={"label": LABEL_ENV})
            volumes = self.client.volumes.list(filters={"label": LABEL_ENV})
        for container in containers:
            labels = dict(container.labels)
            entry = found.setdefault(labels[LABEL_ENV], (labels, [], []))
            entry[1].append(container)
        for network in networks:
            labels = dict(network.attrs.get("Labels") or {})
            entry = found.setdefault(labels[LABEL_ENV], (labels, [], []))
            entry[2].append(str(network.name))
        for volume in volumes:
            labels = dict(volume.attrs.get("Labels") or {})
            found.setdefault(labels[LABEL_ENV], (labels, [], []))
            if labels.get(LABEL_LEASE) == "true":
                leases[labels[LABEL_ENV]] = labels
        presences = self._daemon_presences() if any(LABEL_DAEMON in entry[0] for entry in found.values()) else {}
        return {
            env_id: EnvironmentRecord(
                env_id,
                labels,
                tuple(containers),
                tuple(networks),
                leases.get(env_id),
                presences.get(labels.get(LABEL_DAEMON, "")),
            )
            for env_id, (labels, containers, networks) in found.items()
        }

    def _daemon_presences(self) -> dict[str, dict[str, str]]:
        """Daemon key -> the labels of that daemon's presence volume (envmgr.daemon.presence): asked only when a
        daemon's environment is on the engine (a sweep runs at every start)."""
        with engine_errors(
            "cannot list the environments", "start the engine again, or set DOCKER_HOST to a running one"
        ):
            volumes = self.client.volumes.list(filters={"label": LABEL_DAEMON})
        return {
            str(labels[LABEL_DAEMON]): labels
            for volume in volumes
            if LABEL_ENV not in (labels := dict(volume.attrs.get("Labels") or {}))
        }

    def remove_environment(self, env_id: str) -> int:
        """Remove every container, network and volume labelled with this environment; return how many.

        DockerUnavailableError when the engine does not answer (stopped, restarting), EnvmgrError when it refuses:
        what was not removed is still labelled, and is removed by a later call (the watchdog's, `envmgr down`). A
        network that containers envmgr did not make are still attached to (an image build's step that is ending)
        is waited for, at most ATTACHED_WAIT seconds, and then named in the error."""
        selector = {"label": [f"{LABEL_ENV}={env_id}"]}
        unavailable = (
            f"start the engine again; once it answers, a run's watchdog removes it by itself, or run: "
            f"envmgr down {env_id}"
        )
        refused = f"deal with the engine's reason, then run: envmgr down {env_id} (a run's watchdog retries by itself)"
        with engine_errors(f"could not remove environment {env_id}", unavailable, refused):
            containers = self.client.containers.list(all=True, filters=selector, ignore_removed=True)
            removed = len(_parallel(self._remove_container, containers))
            for network in self.client.networks.list(filters=selector):
                removed += self._remove_network(env_id, network)
            for volume in self.client.volumes.list(filters=selector):
                removed += _ignore_missing(lambda v=volume: v.remove(force=True))
        return removed

    def _remove_network(self, env_id: str, network: Network) -> int:
        """Remove a network of the environment (its own containers are gone), once nothing is attached to it."""
        deadline = time.monotonic() + ATTACHED_WAIT
        while True:
            try:
                return _ignore_missing(network.remove)
            except docker.errors.APIError as exc:
                if "active endpoints" not in str(exc):
                    raise
            if time.monotonic() >= deadline:
                attached = self.attached(network)
                names = ", ".join(attached.values()) or "an endpoint of no container the engine lists"
                raise EnvmgrError(
                    f"could not remove environment {env_id}: {names} still attached to its network {network.name} "
                    f"{ATTACHED_WAIT:g} s after its own containers were removed",
                    f"stop what envmgr did not make (docker rm -f {' '.join(attached) or '...'}), then run: "
                    f"envmgr down {env_id}",
                )
            time.sleep(0.1)

    def attached(self, network: Network) -> dict[str, str]:
        """The containers attached to a network: short id -> what it is, for people (an image build's step is
        named as such: the legacy builder runs it, unlabelled, from an image id)."""
        network.reload()
        found: dict[str, str] = {}
        for container_id, entry in (network.attrs.get("Containers") or {}).items():
            name = str((entry or {}).get("Name") or container_id[:12])
            try:
                config = self.client.containers.get(container_id).attrs.get("Config") or {}
            except docker.errors.NotFound:
                continue  # gone meanwhile
            command = " ".join(config.get("Cmd") or [])
            if str(config.get("Image", "")).startswith("sha256:") and LABEL_ENV not in (config.get("Labels") or {}):
                found[container_id[:12]] = f"an image build's step {name} (`{_shortened(command)}`)"
            else:
                found[container_id[:12]] = f"container {name} (image {config.get('Image', '?')})"
        return found

    def remove_service(self, env_id: str, service: str) -> int:
        """Remove the containers of one service of an environment (every replica); return how many."""
        fix = f"run: envmgr down {env_id}"
        with engine_errors(f"could not remove {service} of environment {env_id}", fix, fix):
            containers = self.containers(env_id, **{LABEL_SERVICE: service})
            return len(_parallel(self._remove_container, containers))

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


ATTACHED_WAIT = 10.0
"""seconds an environment's removal waits for what envmgr did not make to leave its network (a build's step)"""
REFUSED = "the engine answers: its reason says what to change (see also `docker info` and the engine's log)"


def _address() -> str:
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def _shortened(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextmanager
def engine_errors(action: str, fix: str, refused: str = REFUSED) -> Iterator[None]:
    """Turn what the Docker SDK raises in the block into one line and a fix: DockerUnavailableError with `fix` when
    the engine does not answer, EnvmgrError with `refused` when it answers and refuses (`action` says what was
    being done): never "start the engine" to an engine that runs."""
    try:
        yield
    except docker.errors.APIError as exc:
        raise EnvmgrError(f"{action}: the Docker engine refused: {first_line(exc)}", refused) from None
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise DockerUnavailableError(
            f"{action}: the Docker engine at {_address()} does not answer ({first_line(exc)})", fix
        ) from None


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
