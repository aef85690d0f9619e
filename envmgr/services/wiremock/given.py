"""A WireMock envmgr did not start (`wiremock.url`): one stub set and one request journal, so one run at -n 0 or 1.

A WireMock server cannot keep xdist workers apart: a stub matches any request that fits it, whoever made the stub,
so one worker's stubs would answer the other's requests, and a stub or journal entry the code under test makes
carries nothing that says which worker it belongs to, so no reset could remove one worker's alone. A given WireMock
is therefore refused at start with more than one worker (-n 2 ...), and serves one run at a time.

The run marks the server as its own with a stub of its own (`GET /__envmgr/run/<id>`, its metadata naming the owner
process); another run finding a live owner's mark is refused at start. Seeds: the stubs of seeds/wiremock/mappings,
their `bodyFileName` bodies read from seeds/wiremock/__files and sent inline (the server cannot read the seeds
folder), each tagged `{"envmgr": <id>}`. Reset (per test and at the end): `POST /__admin/reset` (the server's own
mapping files again, an empty journal, no delay), then the seeded stubs and the mark imported again. A run that was
killed leaves its stubs and mark: the next run's start and `envmgr gc` remove the stubs tagged with its id.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from envmgr.config import Settings
from envmgr.endpoints import ServiceEndpoint
from envmgr.engine.labels import Owner
from envmgr.errors import ConfigError
from envmgr.services.given import GivenUrl
from envmgr.services.wiremock.admin import WireMockAdmin, admin_auth
from envmgr.services.wiremock.seeds import WIREMOCK_SEEDS

__all__ = ["MARK", "WireMockHold", "hold", "reset_given", "seeded_stubs", "sweep"]

MARK = "/__envmgr/run/"
TAG = "envmgr"
SCHEMES = ("http", "https")
PORT = 8080
T = TypeVar("T")


def parse(url: str) -> GivenUrl:
    example = "http://host:8080 (admin login: http://user:password@host:8080)"
    return GivenUrl.of_setting(url, "wiremock", SCHEMES, PORT, example)


def _answering(call: Callable[[], T]) -> T:
    """`call()`, a ConnectionError while the server does not answer (the caller polls until its deadline)."""
    import requests

    try:
        return call()
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise ConnectionError(str(exc) or type(exc).__name__) from None


def endpoint_of(given: GivenUrl, env_id: str) -> ServiceEndpoint:
    """The server's endpoint: its URL without the login, which is the admin API's (`admin_auth`)."""
    base = ServiceEndpoint(
        service="wiremock", scheme=given.scheme, host=given.host, port=given.port, internal_host=given.host,
        internal_port=given.port, extra={"given": "true", "run": env_id, "owner": json.dumps(Owner.current().labels())},
    )  # fmt: skip
    extra = {**base.extra, "admin_url": base.url + "/__admin"}
    variables = {"WIREMOCK_ADMIN_URL": base.url + "/__admin"}
    if given.username and given.password:
        extra |= {"admin_username": given.username, "admin_password": given.password}
        variables |= {"WIREMOCK_ADMIN_USER": given.username, "WIREMOCK_ADMIN_PASSWORD": given.password}
    return base.model_copy(update={"extra": extra, "variables": variables}).bind(
        WIREMOCK_URL="url", WIREMOCK_HOST="host", WIREMOCK_PORT="port"
    )


def seeded_stubs(settings: Settings, env_id: str, owner: dict[str, str]) -> list[dict[str, Any]]:
    """The run's mark (naming its `owner` process) and the seeded stubs, bodies inline, each tagged with the
    environment's id."""
    mark = {
        "request": {"method": "GET", "url": MARK + env_id},
        "response": {"status": 204},
        "metadata": {TAG: env_id, "owner": owner},
    }
    stubs: list[dict[str, Any]] = [mark]
    seeds = settings.seeds_path()
    root = seeds / WIREMOCK_SEEDS if seeds is not None else None
    if root is None or not (root / "mappings").is_dir():
        return stubs
    for path in sorted((root / "mappings").rglob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        for stub in document.get("mappings", [document]):
            stubs.append(_inline(stub, root / "__files", env_id))
    return stubs


def _inline(stub: dict[str, Any], files: Path, env_id: str) -> dict[str, Any]:
    response = dict(stub.get("response", {}))
    body = response.get("bodyFileName")
    if isinstance(body, str) and "{{" not in body:  # the server has no seeds folder: the body goes in the stub
        del response["bodyFileName"]
        response["base64Body"] = base64.b64encode((files / body).read_bytes()).decode()
    return {**stub, "response": response, "metadata": {**stub.get("metadata", {}), TAG: env_id}}


def reset_given(endpoint: ServiceEndpoint, settings: Settings) -> None:
    """The server's own mapping files and the run's seeded stubs and mark again, an empty journal, no delay."""
    admin = WireMockAdmin.of(endpoint)
    admin.reset()
    owner = json.loads(endpoint.extra["owner"])  # the run's controller (the holder), also from a worker
    admin.import_stubs(seeded_stubs(settings, endpoint.extra["run"], owner))


@dataclass
class WireMockHold:
    endpoint: ServiceEndpoint

    def release(self) -> list[str]:
        """The server reset: its own mapping files, an empty journal; nothing of the run's left."""
        WireMockAdmin.of(self.endpoint).reset()
        return [f"wiremock stubs and request journal of environment {self.endpoint.extra['run']} (server reset)"]


def _marks(admin: WireMockAdmin) -> dict[str, Owner | None]:
    """The runs marking the server as theirs: environment id -> owner."""
    found: dict[str, Owner | None] = {}
    for stub in _answering(admin.stubs):
        url = str(stub.get("request", {}).get("url", ""))
        metadata = stub.get("metadata") or {}
        if url.startswith(MARK) and isinstance(metadata.get(TAG), str):
            found[metadata[TAG]] = Owner.from_labels(metadata.get("owner") or {})
    return found


def hold(url: str, env_id: str, workers: int, settings: Settings) -> WireMockHold:
    """Refused with more than one worker, or while another live run holds the server; else marked, reset, seeded."""
    given = parse(url)
    if workers > 1:
        raise ConfigError(
            f"wiremock: the server at {given.masked} (wiremock.url) is one stub set and one request journal for "
            f"all {workers} xdist workers: one worker's stubs would answer another's requests, and no reset can "
            "remove one worker's alone",
            "run with -n 0 or -n 1, or remove wiremock.url to let envmgr start a WireMock per worker",
        )
    endpoint = endpoint_of(given, env_id)
    admin = WireMockAdmin(endpoint.url, auth=admin_auth(endpoint))
    for other, owner in _marks(admin).items():
        if other != env_id and owner is not None and owner.is_alive():
            raise ConfigError(
                f"wiremock: the server at {given.masked} (wiremock.url) is in use by environment {other} (pid "
                f"{owner.pid} on {owner.host}): a WireMock envmgr did not start serves one run at a time",
                "wait for that run to end, or give this run a WireMock of its own",
            )
    reset_given(endpoint, settings)
    return WireMockHold(endpoint)


def sweep(url: str) -> list[str]:
    """The stubs of every run whose owner process is gone removed (by their tag); what was removed, for people."""
    given = parse(url)
    endpoint = endpoint_of(given, "")
    admin = WireMockAdmin(endpoint.url, auth=admin_auth(endpoint))
    removed: list[str] = []
    for env_id, owner in _marks(admin).items():
        if owner is None or owner.is_alive():
            continue
        count = len([stub for stub in admin.stubs() if (stub.get("metadata") or {}).get(TAG) == env_id])
        admin.remove_by_metadata(TAG, env_id)
        removed.append(f"wiremock: {count} stubs of environment {env_id} and the requests they matched")
    return removed
