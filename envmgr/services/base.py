"""What every service provides: its images, its container, its probe, its endpoint, its per-worker view, reset and
named snapshots, and its compose entry. `Environment`, `topology`, `compose` and the fixtures ask a service through
these hooks and never by its name."""

from __future__ import annotations

import inspect
import os
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol

from envmgr.config import Settings
from envmgr.endpoints import ServiceEndpoint, Worker
from envmgr.errors import ConfigError, EnvmgrError
from envmgr.progress.events import Progress, silent
from envmgr.services.given import GivenHold, UnsetVariableError, expand
from envmgr.services.settings import ServiceSettings

__all__ = [
    "CommandResult",
    "ComposeContext",
    "ContainerCommands",
    "ContainerSpec",
    "DerivedImage",
    "DoctorNote",
    "Published",
    "Service",
    "ServiceDocs",
    "new_password",
]


def new_password() -> str:
    """A fresh random credential: URL-safe, 24 characters."""
    return secrets.token_urlsafe(18)


@dataclass(frozen=True)
class ContainerSpec:
    """What to run: the image, its environment, entrypoint and command, the ports to publish, tmpfs and bind mounts."""

    image: str
    ports: dict[str, int]
    env: dict[str, str] = field(default_factory=dict)
    command: list[str] | None = None
    tmpfs: dict[str, str] = field(default_factory=dict)
    binds: dict[str, str] = field(default_factory=dict)
    """host path -> container path, mounted read-only (on a remote engine its content is copied there instead)"""
    copies: dict[str, str] = field(default_factory=dict)
    """host file or folder -> container folder it is copied into before start (works with remote engines)"""
    user: str | None = None
    """`uid:gid` the container runs as (None: the image's user)"""
    entrypoint: list[str] | None = None
    """instead of the image's entrypoint (None: the image's)"""


class CommandResult(NamedTuple):
    """How a program run in a container ended: its exit code and its output (stdout and stderr together)."""

    exit_code: int
    output: str


class ContainerCommands(Protocol):
    """Runs a program inside one of the environment's containers (`envmgr.engine.commands`): `inputs` (name -> host
    file) are copied into the folder it runs in, `outputs` (name -> host file) copied back when it succeeds."""

    def run_in_container(
        self,
        container: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        inputs: Mapping[str, Path] | None = None,
        outputs: Mapping[str, Path] | None = None,
    ) -> CommandResult: ...


@dataclass(frozen=True)
class DerivedImage:
    """An image envmgr builds FROM a service's image for one project (the Celery worker with the project's own
    requirements), tagged by the hash of what it is built from, so that it is built once per content."""

    tag: str
    base: str
    """the service's image it is built FROM (the `BASE_IMAGE` build argument)"""
    dockerfile: str
    files: Mapping[str, bytes] = field(default_factory=dict)
    """further files of the build context, by name (envmgr adds `ca-bundle.pem`: the CAs to trust while building)"""
    source: str = ""
    """what it is built from, for people (`requirements.txt`)"""


@dataclass(frozen=True)
class Published:
    """Where the container's ports were published on the host, and its name on the environment's network."""

    host: str
    ports: dict[str, int]
    """role -> host port (the same roles as ContainerSpec.ports)"""
    alias: str
    container_ports: dict[str, int]
    image: str
    container: str
    worker: Worker
    """the worker this replica serves (replica 0 in session isolation)"""
    needs: Mapping[str, ServiceEndpoint] = field(default_factory=dict)
    """the endpoints of the services it required or used (the worker's replicas)"""


@dataclass(frozen=True)
class ServiceDocs:
    """The service's row of the services table in docs/services.md (generated: `envmgr.docs_reference`), in
    Markdown: what is said beyond its image names."""

    ready: str
    """when it counts as ready (its protocol probe)"""
    seeds: str
    """what it loads, from where"""
    isolation: str
    """what each xdist worker gets of it"""
    reset: str
    """how a worker's share goes back to the seeded state, and what that costs"""
    official_image: str = ""
    """a note on the official image"""
    local_image: str = ""
    """a note on the local image (what envmgr's build adds)"""


@dataclass(frozen=True)
class DoctorNote:
    """One line of `envmgr doctor` about a service's settings: fine (`ok`) or a problem to fix."""

    ok: bool
    text: str


@dataclass(frozen=True)
class ComposeContext:
    """What a service's compose hooks may use: how to write a host path and a literal value into the file."""

    host_path: Callable[[str], str]
    """a host file or folder as a bind source in the compose file"""
    text: Callable[[str], str]
    """a literal value (compose would interpolate `$NAME`)"""


class Service(ABC):
    """One service of one environment. Stateless apart from the credential chosen for that environment."""

    name: ClassVar[str]
    official_image: ClassVar[str]
    """pinned image for users with a registry (never `latest`)"""
    local_image: ClassVar[str]
    """image built from the service's `image/` folder by `envmgr images build`"""
    build_name: ClassVar[str]
    """the name of that build (`envmgr images build <build_name>`)"""
    ports: ClassVar[Mapping[str, int]]
    """container ports to publish, by role; the first is the primary one"""
    requires: ClassVar[tuple[str, ...]] = ()
    """services that must be ready before this one starts"""
    uses: ClassVar[tuple[str, ...]] = ()
    """services that, when part of the environment, start before this one and are handed to container_spec"""
    data_in_ram: ClassVar[bool] = False
    """its data lives in a tmpfs: a stop empties it (start(service) prepares it again)"""
    per_worker: ClassVar[bool] = False
    """one container per xdist worker (in worker isolation) instead of one for the environment"""
    probe_description: ClassVar[str]
    startup_deadline: ClassVar[float] = 60.0
    """seconds it has by default to answer its probe (`readiness_timeout`): what a busy 2-core machine needs"""
    docs: ClassVar[ServiceDocs]
    """its row of the services table (docs/services.md)"""
    fixtures: ClassVar[str | None] = None
    """the module of its pytest fixtures (registered by the plugin), or None; services that can stand in for one
    another (LocalStack, moto) share one, and `serves_fixtures` says which of them serves it"""
    fixtures_without_service: ClassVar[bool] = False
    """its fixtures work when the service is not enabled (Celery: an in-process worker)"""
    compose_image_healthcheck: ClassVar[bool] = False
    """compose uses the image's own HEALTHCHECK (the official and the local image both declare one)"""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.password = new_password()
        """the credential of this environment's instance of the service (an Environment sets the one it derives
        from the user's key and its id: envmgr.credentials)"""
        self.progress: Progress = silent
        """where `prepare` tells how its steps go (migrations, seeds: `envmgr.progress.events`); an Environment sets
        its own sink"""
        self.commands: ContainerCommands | None = None
        """runs programs inside its containers: set by the environment that runs them (None: no engine here)"""

    @classmethod
    def image_folder(cls) -> Path:
        """The build context of its local image: the `image/` folder beside the module that defines the service
        (shipped inside the package)."""
        return Path(inspect.getfile(cls)).resolve().parent / "image"

    @classmethod
    def serves_fixtures(cls, settings: Settings) -> bool:
        """Whether this project's use of its fixtures reaches this service (for a shared fixtures module: is it the
        configured one?). Default: yes."""
        return True

    @property
    def config(self) -> ServiceSettings:
        return self.settings.service(self.name)

    def readiness_timeout(self) -> tuple[float, str]:
        """Seconds it has to answer its probe, and the setting that says so: its table's `startup_timeout`, else
        `[tool.envmgr] startup_timeout`, else its own default (`startup_deadline`)."""
        own = f"{self.name}.startup_timeout"
        if self.config.startup_timeout is not None:
            return self.config.startup_timeout, own
        if self.settings.startup_timeout is not None:
            return self.settings.startup_timeout, "startup_timeout"
        return self.startup_deadline, own

    def image(self) -> str:
        """The image the service runs: its derived image when it has one, else its base image."""
        derived = self.derived_image()
        return derived.tag if derived is not None else self.base_image()

    def base_image(self) -> str:
        """The explicit image, or the image set's."""
        if self.config.image:
            return self.config.image
        return self.local_image if self.settings.image_set == "local" else self.official_image

    def derived_image(self) -> DerivedImage | None:
        """An image built for this project FROM `base_image()` (e.g. with the project's requirements), or None."""
        return None

    def build_hint(self) -> str | None:
        """How to get a missing base image, when pulling it makes no sense (a local image); None to try pulling."""
        if self.base_image() == self.local_image:
            return f"build it: `envmgr images build {self.build_name}`"
        return None

    @abstractmethod
    def container_spec(self, requirements: dict[str, ServiceEndpoint], worker: Worker) -> ContainerSpec:
        """The container to run for `worker`'s replica, given the endpoints of the services it requires."""

    def host_env(self, host: str, host_ports: Mapping[str, int]) -> dict[str, str]:
        """Container environment that depends on where its ports are published (known before start). Default: none."""
        return {}

    @abstractmethod
    def endpoint(self, published: Published) -> ServiceEndpoint:
        """How to reach the started container."""

    def published_endpoint(self, published: Published, scheme: str, **fields: Any) -> ServiceEndpoint:
        """The endpoint of the service's primary port as published (what every service's endpoint starts from),
        with the service's own `fields` (credentials, path, extra facts)."""
        role, port = next(iter(self.ports.items()))
        return ServiceEndpoint(
            service=self.name, scheme=scheme, host=published.host, port=published.ports[role],
            internal_host=published.alias, internal_port=port, image=published.image, container=published.container,
            **fields,
        )  # fmt: skip

    @abstractmethod
    def probe(self, endpoint: ServiceEndpoint) -> None:
        """Return when the service answers its protocol; raise otherwise. Must not block long (short time-outs)."""

    def diagnose(self, logs: str) -> EnvmgrError | None:
        """The cause of a start that failed (its container exited, or did not answer in time), read in its log tail
        in the service's own terms, to raise instead of the generic error: a setting the server refused is a
        ServerSettingError naming the key with the server's own line (and the tail). None (the default) when the
        log says nothing the service knows."""
        return None

    def prepare(self, endpoint: ServiceEndpoint) -> ServiceEndpoint:
        """After readiness: load what the environment needs (seeds); return the endpoint to hand out."""
        return endpoint

    def recover(self, endpoint: ServiceEndpoint) -> ServiceEndpoint:
        """On attach to a running environment: restore facts `prepare` put on the endpoint, without touching data."""
        return endpoint

    def reset(self, endpoint: ServiceEndpoint) -> None:  # noqa: B027 - optional hook
        """Back to the prepared state, for every worker (what a fresh environment has). Default: nothing to reset."""

    # per worker ---------------------------------------------------------------------------------------------

    def worker_view(self, endpoint: ServiceEndpoint, worker: Worker) -> ServiceEndpoint:
        """The server's endpoint as `worker` uses it (its database, its Redis db, its account). Default: as is."""
        return endpoint

    def worker_setup(self, endpoint: ServiceEndpoint, worker: Worker) -> None:  # noqa: B027 - optional hook
        """Before `worker`'s first test: make its share of the server (clone its database, seed its account)."""

    def worker_reset(self, endpoint: ServiceEndpoint, worker: Worker) -> None:  # noqa: B027 - optional hook
        """`worker`'s share back to the prepared (seeded) state; other workers' shares are untouched."""

    def worker_teardown(self, endpoint: ServiceEndpoint, worker: Worker) -> None:  # noqa: B027 - optional hook
        """After `worker`'s last test: remove what its share must not leave behind. Default: nothing (a Postgres
        worker's database is kept for the next run; the environment's reset makes it fresh again)."""

    # named snapshots of a worker's share (envmgr.environment.snapshots) ------------------------------------------

    def snapshot(self, endpoint: ServiceEndpoint, worker: Worker, name: str) -> object:
        """Keep `worker`'s share as it is now under `name` (other workers' are untouched); return what `restore`
        and `drop_snapshot` need: a handle on what the server keeps (a database's name) or the content itself.
        Default: None, a service with no state of its own (a Celery worker: its queue is in Redis)."""
        return None

    def restore(self, endpoint: ServiceEndpoint, worker: Worker, name: str, kept: object) -> None:  # noqa: B027
        """`worker`'s share made what `snapshot` kept under `name` again (`kept`: what it returned)."""

    def drop_snapshot(self, endpoint: ServiceEndpoint, worker: Worker, name: str, kept: object) -> None:  # noqa: B027
        """Remove what `snapshot` kept on the server (at the end of the run). Default: nothing kept there."""

    # a server envmgr did not start (`url`) -----------------------------------------------------------------

    def given_url(self) -> str | None:
        """The URL of the server to use instead of a container (its table's `url`, `${VAR}` expanded), or None:
        envmgr runs its container. This is the one place that decides (`envmgr.environment.given`)."""
        raw = getattr(self.config, "url", None)
        if not raw:
            return None
        try:
            return expand(raw, os.environ)
        except UnsetVariableError as exc:
            raise ConfigError(
                f"{self.name}.url names the variable {exc.name}, which is not set",
                f"set {exc.name}, give it a default (${{{exc.name}:-value}}), or remove [tool.envmgr.{self.name}] url",
            ) from None

    def given_hold(self, url: str, env_id: str, workers: int) -> GivenHold:
        """Take hold of the given server for environment `env_id` of `workers` xdist workers (0: one share): its
        endpoint, each worker's share claimed (what the server lacks for them is a ConfigError now, not mid-run).
        ConnectionError (its reason) while the server does not answer: the caller tries again until its deadline."""
        raise ConfigError(
            f"{self.name} cannot use a server envmgr did not start", f"remove [tool.envmgr.{self.name}] url"
        )

    def given_sweep(self, url: str) -> list[str]:
        """Remove from the given server what environments whose owner is gone left there (a killed run's); return
        what was removed, for people. ConnectionError when the server does not answer."""
        return []

    def doctor(self, publish_address: str) -> list[DoctorNote]:
        """What `envmgr doctor` says about this service's settings beyond its image (ports are published on
        `publish_address`). Default: nothing."""
        return []

    # compose export -------------------------------------------------------------------------------------------

    def compose_healthcheck(self, endpoint: ServiceEndpoint, context: ComposeContext) -> list[str] | None:
        """A compose health check speaking the service's protocol with a tool its image has, or None."""
        return None

    def compose_jobs(self, endpoint: ServiceEndpoint, image: str, context: ComposeContext) -> dict[str, Any]:
        """One-shot compose services that prepare this one (e.g. load seeds); the services that need this one
        wait for them to complete. Default: none."""
        return {}

    def compose_notes(self) -> list[str]:
        """What the compose file does differently from envmgr for this service, one sentence each."""
        return []
