"""Redis: a password-protected server without persistence, probed with PING.

Configured like a real server: `redis.settings` go on its command line (`--name value`, over envmgr's own `save` and
`appendonly`); `redis.password = false` runs it without a password (its port is still published on 127.0.0.1 only).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING

from envmgr.endpoints import REDIS_DATABASES, Component, ServiceEndpoint, Worker
from envmgr.errors import EnvmgrError, ServerSettingError
from envmgr.services.base import ComposeContext, ContainerSpec, DoctorNote, Published, Service, ServiceDocs
from envmgr.services.given import GivenHold
from envmgr.services.redis.settings import RedisSettings
from envmgr.services.settings import SettingValue

if TYPE_CHECKING:
    import redis

__all__ = ["RedisService"]

PORT = 6379
# One logical database per pytest-xdist worker for the application and one for its Celery broker (see Worker).
DATABASES = REDIS_DATABASES
NO_PERSISTENCE: Mapping[str, SettingValue] = MappingProxyType({"save": "", "appendonly": False})
VARIABLES: Mapping[str, Component] = MappingProxyType(
    {"REDIS_URL": "url", "REDIS_HOST": "host", "REDIS_PORT": "port", "REDIS_PASSWORD": "password"}
)
"""the connection variables, each naming a part of the endpoint"""
DIRECTIVE = re.compile(r"^>>> '(?P<name>[^\s']+)")
"""the directive a `*** FATAL CONFIG FILE ERROR ***` quotes (`>>> 'maxmemory "abc"'`); the reason is the next line"""


def server_command(config: RedisSettings, password: str | None) -> list[str]:
    """`redis-server --name value ...`: no persistence, the configured settings (which win), the databases envmgr
    needs, and the password when there is one."""
    settings: dict[str, SettingValue] = {**NO_PERSISTENCE, **config.settings, "databases": DATABASES}
    if password is not None:
        settings["requirepass"] = password
    return ["redis-server", *(arg for name, value in settings.items() for arg in (f"--{name}", _text(value)))]


def _text(value: SettingValue) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


class RedisService(Service):
    name = "redis"
    official_image = "redis:7.0.15-bookworm"
    local_image = "envmgr-local/redis:7"
    build_name = "redis"
    ports = MappingProxyType({"redis": PORT})
    probe_description = "PING"
    startup_deadline = 30.0
    docs = ServiceDocs(
        ready="`PING`",
        seeds="-",
        isolation="its own logical database (N+1 of 1024)",
        reset="`FLUSHDB` (<1 ms)",
    )
    fixtures = "envmgr.services.redis.fixtures"

    @property
    def redis(self) -> RedisSettings:
        config = self.config
        assert isinstance(config, RedisSettings)
        return config

    @property
    def server_password(self) -> str | None:
        """The password clients need: the environment's random one, or None with `redis.password = false`."""
        return self.password if self.redis.password else None

    def container_spec(self, requirements: dict[str, ServiceEndpoint], worker: Worker) -> ContainerSpec:
        command = server_command(self.redis, self.server_password)
        return ContainerSpec(image=self.image(), ports=dict(self.ports), env=dict(self.config.env), command=command)

    def endpoint(self, published: Published) -> ServiceEndpoint:
        endpoint = self.published_endpoint(published, "redis", username="", password=self.server_password, path="0")
        return endpoint.bind(**VARIABLES)

    def doctor(self, publish_address: str) -> list[DoctorNote]:
        """Without a password: fine on 127.0.0.1 only; a problem when every interface of a remote engine's host
        publishes it."""
        if self.redis.password:
            return []
        if publish_address == "127.0.0.1":
            return [DoctorNote(True, "password = false: no password, published on 127.0.0.1 only")]
        return [
            DoctorNote(
                False,
                "password = false on a remote engine: reachable without a password on every interface of the "
                f"engine's host ({publish_address}); keep the password there",
            )
        ]

    def diagnose(self, logs: str) -> ServerSettingError | None:
        """A setting of `redis.settings` the server refused (`*** FATAL CONFIG FILE ERROR ***`, the directive, why)."""
        keys = {name.lower(): name for name in self.redis.settings}
        lines = [line.strip() for line in logs.splitlines() if line.strip()]
        for number, line in enumerate(lines):
            found = DIRECTIVE.match(line)
            if found is None or found["name"].lower() not in keys:
                continue
            reason = lines[number + 1] if number + 1 < len(lines) else "no reason given"
            return ServerSettingError(
                self.name,
                f"redis.settings.{keys[found['name'].lower()]}: the server refused it: {reason} ({line})",
                "correct or remove it in [tool.envmgr.redis.settings] (or ENVMGR_REDIS__SETTINGS)",
                logs=logs,
            )
        return None

    def reset(self, endpoint: ServiceEndpoint) -> None:
        """Every logical database emptied (the session's and each worker's; on a given server, those claimed)."""
        claimed = _claimed(endpoint)
        if claimed:
            for db in claimed:
                with _client(endpoint.with_path(str(db)).url, timeout=5) as client:
                    client.flushdb()
            return
        with _client(endpoint.url, timeout=5) as client:
            client.flushall()

    def probe(self, endpoint: ServiceEndpoint) -> None:
        with _client(endpoint.url, timeout=2) as client:
            if not client.ping():
                raise ConnectionError("PING did not answer PONG")

    # per worker: its own logical database ----------------------------------------------------------------------

    def worker_view(self, endpoint: ServiceEndpoint, worker: Worker) -> ServiceEndpoint:
        """Database N+1 for worker gwN (0 for the session); on a given server, the one claimed for it."""
        claimed = _claimed(endpoint)
        if not claimed:
            return endpoint.with_path(str(worker.redis_db))
        if worker.redis_db >= len(claimed):
            raise EnvmgrError(
                f"redis: no database was claimed for {worker.worker_id} on the given server ({len(claimed)} claimed)",
                "run with as many xdist workers as the environment was planned for",
            )
        return endpoint.with_path(str(claimed[worker.redis_db]))

    # a server envmgr did not start ---------------------------------------------------------------------------

    def given_hold(self, url: str, env_id: str, workers: int) -> GivenHold:
        """One database claimed for the session and one per worker (envmgr.services.redis.claims)."""
        from envmgr.services.redis.claims import hold

        return hold(url, env_id, workers, VARIABLES)

    def given_sweep(self, url: str) -> list[str]:
        from envmgr.services.redis.claims import sweep

        return sweep(url)

    def worker_reset(self, endpoint: ServiceEndpoint, worker: Worker) -> None:
        """The worker's logical database emptied (FLUSHDB)."""
        with _client(self.worker_view(endpoint, worker).url, timeout=5) as client:
            client.flushdb()

    # named snapshots: every key of the worker's database, dumped ------------------------------------------------

    def snapshot(self, endpoint: ServiceEndpoint, worker: Worker, name: str) -> object:
        """Every key of the worker's database as DUMP gives it, with its remaining time to live (PTTL), in one
        pipelined round trip after the SCAN; kept in this process."""
        with _client(self.worker_view(endpoint, worker).url, timeout=10) as client:
            keys = list(client.scan_iter(count=1000))
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.dump(key)
                pipe.pttl(key)
            answers = pipe.execute()
        pairs = zip(answers[0::2], answers[1::2], strict=True)
        return tuple(
            (key, max(int(ttl), 0), payload)
            for key, (payload, ttl) in zip(keys, pairs, strict=True)
            if payload is not None and int(ttl) != -2  # expired since the SCAN
        )

    def restore(self, endpoint: ServiceEndpoint, worker: Worker, name: str, kept: object) -> None:
        """The worker's database emptied and every kept key restored (RESTORE ... REPLACE with its time to live),
        in one transaction: no client sees it half restored."""
        assert isinstance(kept, tuple)
        with _client(self.worker_view(endpoint, worker).url, timeout=10) as client:
            pipe = client.pipeline(transaction=True)
            pipe.flushdb()
            for key, ttl, payload in kept:
                pipe.restore(key, ttl, payload, replace=True)
            pipe.execute()

    # compose ---------------------------------------------------------------------------------------------------

    def compose_healthcheck(self, endpoint: ServiceEndpoint, context: ComposeContext) -> list[str] | None:
        auth = f"-a {shlex.quote(endpoint.password)} --no-auth-warning " if endpoint.password is not None else ""
        return ["CMD-SHELL", context.text(f"redis-cli -p {endpoint.internal_port} {auth}ping | grep -q PONG")]


def _claimed(endpoint: ServiceEndpoint) -> list[int]:
    """The databases claimed on a given server (none on envmgr's own)."""
    return [int(db) for db in endpoint.extra.get("claimed", "").split(",") if db]


@contextmanager
def _client(url: str, timeout: float) -> Iterator[redis.Redis]:
    """A short-lived client on one URL, closed at the end of the block."""
    import redis

    client: redis.Redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        yield client
    finally:
        client.close()
