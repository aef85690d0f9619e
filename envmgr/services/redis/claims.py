"""Redis on a server envmgr did not start (`redis.url`): logical databases claimed per worker, released, swept.

An environment claims one logical database for the session and one per xdist worker: for each, `SET NX` of the key
`envmgr:claim:<db>` in database 0 (its value names the environment), so two runs never share one. Database 0 is
never claimed (the claims live there, and it is where an application's own data usually is), nor one that holds
keys nobody claimed. While the environment runs, a connection of its own named `envmgr-<id>` (`CLIENT SETNAME`)
stays open: a claim whose environment has no such client was left by a killed run, and the sweep empties its
database and deletes it. Too few free databases is an error when the environment is planned, not mid-run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

import redis

from envmgr.endpoints import Component, ServiceEndpoint
from envmgr.errors import ConfigError
from envmgr.services.given import GivenUrl

__all__ = ["CLAIM_PREFIX", "RedisHold", "hold", "sweep"]

CLAIM_PREFIX = "envmgr:claim:"
SCHEMES = ("redis", "rediss")
PORT = 6379
TIMEOUT = 3.0
CLIENT_PREFIX = "envmgr-"


def parse(url: str) -> GivenUrl:
    return GivenUrl.of_setting(url, "redis", SCHEMES, PORT, 'redis://:password@host:6379 (e.g. "${REDIS_URL}")')


def _client(given: GivenUrl, db: int = 0, name: str | None = None) -> redis.Redis:
    return redis.Redis(
        host=given.host, port=given.port, db=db, username=given.username or None, password=given.password,
        ssl=given.scheme == "rediss", socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT,
        single_connection_client=True, client_name=name,
    )  # fmt: skip


def _answered(given: GivenUrl, name: str | None = None) -> redis.Redis:
    """A connection on database 0; ConnectionError (why) while the server does not answer."""
    client = _client(given, name=name)
    try:
        client.ping()
    except redis.exceptions.AuthenticationError as exc:
        client.close()
        raise ConfigError(
            f"redis: the server of redis.url ({given.masked}) refused the login: {exc}",
            "correct the password (or user) in redis.url",
        ) from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        client.close()
        raise ConnectionError(str(exc) or type(exc).__name__) from None
    return client


def _databases(client: redis.Redis, given: GivenUrl) -> int:
    try:
        answer = client.config_get("databases")
    except redis.exceptions.ResponseError as exc:  # CONFIG disabled (a managed server)
        raise ConfigError(
            f"redis: the server of redis.url ({given.masked}) does not say how many databases it has ({exc})",
            "allow CONFIG GET for envmgr's login, or leave redis.url unset to let envmgr start Redis",
        ) from None
    return int(str(answer.get("databases", 16)))


def _live_environments(client: redis.Redis) -> set[str]:
    names = {str(entry.get("name") or "") for entry in client.client_list()}
    return {name[len(CLIENT_PREFIX) :] for name in names if name.startswith(CLIENT_PREFIX)}


class RedisHold:
    """The environment's named connection and its claimed databases; `release` empties them, deletes the claims
    and closes the connection."""

    def __init__(self, given: GivenUrl, client: redis.Redis, claimed: list[int], endpoint: ServiceEndpoint) -> None:
        self._given = given
        self._client = client
        self.claimed = claimed
        self._endpoint = endpoint

    @property
    def endpoint(self) -> ServiceEndpoint:
        return self._endpoint

    def release(self) -> list[str]:
        try:
            for db in self.claimed:
                flush = _client(self._given, db)
                try:
                    flush.flushdb()
                finally:
                    flush.close()
                self._client.delete(f"{CLAIM_PREFIX}{db}")
        finally:
            self._client.close()
        return [f"redis database {db}" for db in self.claimed]


def hold(url: str, env_id: str, workers: int, variables: Mapping[str, Component]) -> RedisHold:
    """Claim one database for the session and one per worker for environment `env_id` (see the module's
    documentation); ConfigError when the server has too few free ones."""
    given = parse(url)
    client = _answered(given, name=f"{CLIENT_PREFIX}{env_id}")
    needed = workers + 1 if workers > 0 else 1
    claimed: list[int] = []
    try:
        count = _databases(client, given)
        value = json.dumps({"env": env_id, "claimed": round(time.time(), 3)})
        for db in range(1, count):
            if len(claimed) == needed:
                break
            key = f"{CLAIM_PREFIX}{db}"
            if not client.set(key, value, nx=True):
                continue  # another environment's
            probe = _client(given, db)
            try:
                empty = probe.dbsize() == 0
            finally:
                probe.close()
            if empty:
                claimed.append(db)
            else:  # someone's data that no environment claimed: never envmgr's to empty
                client.delete(key)
        if len(claimed) < needed:
            raise ConfigError(
                f"redis: the server of redis.url ({given.masked}) has {count} databases and {len(claimed)} free (empty "
                f"and unclaimed, database 0 excluded); this run needs {needed} (one for the session and one per "
                "xdist worker)",
                "give the server more (redis-server --databases 64), or run fewer xdist workers (-n)",
            )
    except BaseException:
        for db in claimed:
            client.delete(f"{CLAIM_PREFIX}{db}")
        client.close()
        raise
    endpoint = ServiceEndpoint(
        service="redis", scheme=given.scheme, host=given.host, port=given.port, internal_host=given.host,
        internal_port=given.port, username=given.username or "", password=given.password, path=str(claimed[0]),
        extra={"given": "true", "claimed": ",".join(map(str, claimed))},
    ).bind(**variables)  # fmt: skip
    return RedisHold(given, client, claimed, endpoint)


def sweep(url: str) -> list[str]:
    """Empty and unclaim the databases of every environment that has no live connection; return what was removed."""
    given = parse(url)
    client = _answered(given)
    removed: list[str] = []
    try:
        live = _live_environments(client)
        for raw_key in client.scan_iter(match=f"{CLAIM_PREFIX}*"):
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            raw = client.get(key)
            try:
                env_id = str(json.loads(raw or "{}").get("env", ""))
                db = int(key[len(CLAIM_PREFIX) :])
            except (ValueError, AttributeError):
                continue
            if env_id not in live:
                live = _live_environments(client)  # one that claimed after the first look is live too
            if env_id in live:
                continue
            flush = _client(given, db)
            try:
                flush.flushdb()
            finally:
                flush.close()
            client.delete(key)
            removed.append(f"redis database {db} (environment {env_id})")
    finally:
        client.close()
    return removed
