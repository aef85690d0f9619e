"""How to reach each service of one environment: the one contract that crosses process boundaries.

The controller, the pytest-xdist workers, the CLI and the `.env` export all speak `Endpoints`; it is frozen and
round-trips through JSON (`Endpoints.from_json(endpoints.to_json()) == endpoints`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, computed_field

from envmgr.errors import ServiceNotEnabledError

__all__ = ["CALLBACK_HOST", "Callback", "Component", "Endpoints", "ServiceEndpoint", "Worker", "started_for"]

Component = Literal["url", "host", "port", "username", "password", "path"]
"""a part of an endpoint a connection variable can name (`ServiceEndpoint.bindings`)"""
MASK = "***"

SESSION_WORKER_ID = "main"
CALLBACK_HOST = "host.docker.internal"
"""the name of the test host in every service container (as with Docker Desktop's engine)"""
REDIS_DATABASES = 1024
"""logical databases of envmgr's Redis server: the application's 0..511 (0 for the session), the broker's 512.."""
BROKER_DB_BASE = REDIS_DATABASES // 2


@dataclass(frozen=True)
class Worker:
    """One pytest process and the names that keep it apart from the others in a shared environment.

    In worker isolation, xdist worker `gwN` (or the only process, `main`, as N = 0) has its own database
    `<db>_<worker_id>`, Redis logical database N+1 (and 512+N+1 for its Celery broker), AWS account 0000000000N+1
    in LocalStack (with its seeded buckets named `<bucket>-<worker_id>`), and replica N of each per-worker service
    (WireMock, Celery worker). In session isolation everybody shares db 0 (broker: 512), the environment's
    database, account 000000000000 and replica 0.
    """

    worker_id: str = SESSION_WORKER_ID
    isolated: bool = False

    @property
    def index(self) -> int:
        return int(self.worker_id[2:]) if self.worker_id.startswith("gw") else 0

    def database(self, base: str) -> str:
        return f"{base}_{self.worker_id}" if self.isolated else base

    @property
    def redis_db(self) -> int:
        """The worker's Redis database for the application (its cache, its keys)."""
        return self.index + 1 if self.isolated else 0

    @property
    def broker_db(self) -> int:
        """The worker's Redis database for the Celery broker and result backend: never the application's, so the
        app's keys and kombu's never mix, and emptying the app's database leaves the broker alone."""
        return BROKER_DB_BASE + self.redis_db

    @property
    def aws_account_id(self) -> str:
        return f"{self.redis_db:012d}"

    def bucket(self, name: str) -> str:
        """The worker's S3 bucket for a seeded bucket name: bucket names are global in S3 (and LocalStack), so
        accounts alone cannot keep two workers' `artwork` buckets apart; in worker isolation it is `artwork-gw1`."""
        return f"{name}-{self.worker_id}" if self.isolated else name

    @property
    def replica(self) -> int:
        return self.index if self.isolated else 0


class ServiceEndpoint(BaseModel):
    """One service as seen from the host (`host`, `port`, `url`) and from the environment's network (`internal_*`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    service: str
    replica: int = Field(default=0, ge=0, description="which replica of a per-worker service (0: the first)")
    scheme: str
    host: str
    port: int
    internal_host: str
    internal_port: int
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    path: str = ""
    ports: dict[str, int] = Field(default_factory=dict, description="further published ports by role")
    image: str = ""
    container: str = ""
    variables: dict[str, str] = Field(default_factory=dict, description="what `envmgr up --env-file` exports")
    bindings: dict[str, Component] = Field(
        default_factory=dict,
        description="variables that name one part of this endpoint (DATABASE_URL: url, POSTGRES_DB: path): they "
        "follow it to another database, login or network (with_path, with_login, internal_variables)",
    )
    extra: dict[str, str] = Field(default_factory=dict, description="service-specific facts (e.g. the template db)")

    def _url(self, host: str, port: int, path: str | None = None) -> str:
        auth = ""
        if self.password is not None:
            auth = f"{quote(self.username or '', safe='')}:{quote(self.password, safe='')}@"
        elif self.username:
            auth = f"{quote(self.username, safe='')}@"
        suffix = self.path if path is None else path
        if suffix and not suffix.startswith("/"):
            suffix = "/" + suffix
        return f"{self.scheme}://{auth}{host}:{port}{suffix}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def url(self) -> str:
        """The URL to use from the host, with credentials."""
        return self._url(self.host, self.port)

    @property
    def redacted_url(self) -> str:
        """`url` with the password masked, for logs (`envmgr status --json` gives the full one)."""
        if self.password is None:
            return self.url
        return self.model_copy(update={"password": MASK}).url.replace(quote(MASK, safe=""), MASK)

    @property
    def internal_url(self) -> str:
        """The URL to use from another container on the environment's network."""
        return self._url(self.internal_host, self.internal_port)

    def component(self, part: Component, *, internal: bool = False) -> str:
        """One part of the endpoint as a variable carries it (a missing login part is "")."""
        match part:
            case "url":
                return self.internal_url if internal else self.url
            case "host":
                return self.internal_host if internal else self.host
            case "port":
                return str(self.internal_port if internal else self.port)
            case "username":
                return self.username or ""
            case "password":
                return self.password or ""
            case "path":
                return self.path

    def _bound(self, *, internal: bool = False) -> dict[str, str]:
        return {name: self.component(part, internal=internal) for name, part in self.bindings.items()}

    def bind(self, **bindings: Component) -> ServiceEndpoint:
        """The same endpoint with these variables naming its parts: `bind(DATABASE_URL="url", POSTGRES_DB="path")`."""
        merged = self.model_copy(update={"bindings": {**self.bindings, **bindings}})
        return merged.model_copy(update={"variables": {**self.variables, **merged._bound()}})

    def internal_variables(self) -> dict[str, str]:
        """`variables` as another container on the environment's network must use them: bound ones name the
        internal host and port; in the others, the published `host:port` becomes the internal one."""
        outside, inside = f"{self.host}:{self.port}", f"{self.internal_host}:{self.internal_port}"
        unbound = {name: value.replace(outside, inside) for name, value in self.variables.items()}
        return {**unbound, **self._bound(internal=True)}

    def moved_to(self, host: str, port: int) -> ServiceEndpoint:
        """The same service reached at another address (e.g. through a proxy); variables follow."""
        outside, inside = f"{self.host}:{self.port}", f"{host}:{port}"
        moved = self.model_copy(update={"host": host, "port": port})
        unbound = {n: v.replace(outside, inside) for n, v in self.variables.items() if n not in self.bindings}
        return moved.model_copy(update={"variables": {**self.variables, **unbound, **moved._bound()}})

    def with_path(self, path: str) -> ServiceEndpoint:
        """The same server with another path (another database, another Redis db index); bound variables follow."""
        return self._moved(path=path)

    def with_login(self, username: str | None, password: str | None) -> ServiceEndpoint:
        """The same server reached with another login (an application role); bound variables follow."""
        return self._moved(username=username, password=password)

    def _moved(self, **update: str | None) -> ServiceEndpoint:
        moved = self.model_copy(update=update)
        return moved.model_copy(update={"variables": {**self.variables, **moved._bound()}})

    def redacted(self, text: str) -> str:
        """`text` with this endpoint's passwords masked (for what people read; programs get the real ones): its
        login's, and those in `extra` under a key ending in `password` (WireMock's admin login) or `access_key_id`
        (the AWS emulator's key, which its gate checks)."""
        hidden = [
            self.password,
            *(value for key, value in self.extra.items() if key.endswith(("password", "access_key_id"))),
        ]
        for secret in filter(None, hidden):
            text = text.replace(quote(secret, safe=""), MASK).replace(secret, MASK)
        return text

    def redacted_variables(self) -> dict[str, str]:
        """`variables` with the password masked wherever it appears."""
        return {name: self.redacted(value) for name, value in self.variables.items()}


class Callback(BaseModel):
    """Where the test process can be reached from inside the environment's network, for services that call back
    (WireMock webhooks, an app's partner calling its webhook URL).

    Every service container resolves `host` (`host.docker.internal`) to the gateway of the environment's Docker
    network, an address of the test host on that network's bridge. A server the test starts must listen on `bind`
    (that gateway address), not on 127.0.0.1 (containers cannot reach the host's loopback) and not on 0.0.0.0 (every
    interface: the host's other networks too); the service calls it at `url(port)`."""

    model_config = ConfigDict(frozen=True)

    host: str = CALLBACK_HOST
    """the test host's name inside the network"""
    bind: str
    """the address a callback server of the test must bind to: the gateway of the environment's network"""

    def url(self, port: int, path: str = "", scheme: str = "http") -> str:
        """The URL a service inside the network calls to reach the test's server listening on (`bind`, `port`)."""
        suffix = path if not path or path.startswith("/") else "/" + path
        return f"{scheme}://{self.host}:{port}{suffix}"


class Endpoints(BaseModel):
    """Every service of one environment, by name."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    network: str
    namespace: str = "envmgr"
    sandbox: str | None = None
    services: dict[str, ServiceEndpoint] = Field(default_factory=dict)
    """replica 0 of every service, by name"""
    replicas: tuple[ServiceEndpoint, ...] = ()
    """the further replicas of per-worker services (replica 1, 2, ... for workers gw1, gw2, ...)"""
    per_worker: tuple[str, ...] = ()
    """services with a replica per xdist worker: a worker uses its own replica, never another's"""
    callback: Callback | None = None
    """where the test process is reachable from inside the network; None when the engine is remote (its network's
    gateway is on another machine)"""

    def __getitem__(self, service: str) -> ServiceEndpoint:
        try:
            return self.services[service]
        except KeyError:
            raise ServiceNotEnabledError(
                f"service {service!r} is not part of environment {self.id}",
                f"enable it ([tool.envmgr.{service}] enabled = true) or start it: envmgr up {service}",
            ) from None

    def __contains__(self, service: object) -> bool:
        return service in self.services

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> Endpoints:
        return cls.model_validate_json(text)

    def replica(self, service: str, replica: int = 0) -> ServiceEndpoint:
        """One replica of a service; a service without replicas answers with its only endpoint."""
        for endpoint in self.replicas:
            if endpoint.service == service and endpoint.replica == replica:
                return endpoint
        if service not in self.services:
            others = [endpoint for endpoint in self.replicas if endpoint.service == service]
            if others:
                return others[0]
        return self[service]

    def all(self) -> list[ServiceEndpoint]:
        """Every endpoint: each service's first replica, then the further replicas."""
        return [*self.services.values(), *self.replicas]

    def with_endpoints(self, endpoints: list[ServiceEndpoint]) -> Endpoints:
        """The same environment with these endpoints (replica 0 as services, the rest as replicas)."""
        services = {e.service: e for e in endpoints if e.replica == 0}
        return self.model_copy(update={"services": services, "replicas": tuple(e for e in endpoints if e.replica)})

    def for_worker(self, worker: Worker) -> Endpoints:
        """This worker's view: its replica of each per-worker service under the service's plain name (a per-worker
        service whose replica for this worker has not started is not in the view)."""
        names = list(dict.fromkeys([*self.services, *(endpoint.service for endpoint in self.replicas)]))
        services = {name: self.replica(name, worker.replica) for name in names}
        for name in self.per_worker:
            if services.get(name) is not None and services[name].replica != worker.replica:
                del services[name]
        return self.model_copy(update={"services": services, "replicas": ()})

    def as_env(self, *, redacted: bool = False) -> dict[str, str]:
        """Connection variables of every service (DATABASE_URL, POSTGRES_HOST, REDIS_URL, AWS_ENDPOINT_URL, ...);
        `redacted`: passwords masked, for people to read."""
        merged: dict[str, str] = {"ENVMGR_ENV_ID": self.id}
        for endpoint in self.services.values():
            merged.update(endpoint.redacted_variables() if redacted else endpoint.variables)
        return merged


def started_for(workers: int) -> str:
    """How an environment's replicas of per-worker services read in a message (`envmgr up` without --workers
    starts one replica, shared by everybody)."""
    return f"for {workers} xdist workers" if workers else "without xdist workers (one replica for everybody)"
