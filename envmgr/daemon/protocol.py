"""The daemon's protocol: the JSON shapes that server and client exchange, and how errors cross the socket.

A Unix socket (mode 0600, in a 0700 folder of the daemon's user; see envmgr.daemon.trust), one JSON request per
connection, one JSON line back:

    {"op": "ping"}                                   -> {"ok": true, "pid": 123, "version": "0.1.0",
                                                         "recovering": false}
    {"op": "lease", "settings": {...}, "services": ["postgres", ...], "workers": 2,
     "holder": {"pid": 456, "start": "789", "host": "h"}, "start": true}
                                                     -> {"ok": true, "lease": "<env id>", "warm": true,
                                                         "endpoints": {...Endpoints JSON...}}
        "start": false (a test run): only a warm environment of the configuration, or {"ok": true, "lease": null};
        its "endpoints" are every service's, where it runs or where it will run once asked for (`ensure`).
    {"op": "ensure", "lease": "<env id>", "services": ["wiremock"], "worker": "gw1"}
                                                     -> {"ok": true, "endpoints": {...}}   (started on the lease)
    {"op": "adopt", "env": "<env id>", "settings": {...}, "workers": 2}
                                                     -> {"ok": true}    (a run's environment kept warm: reset,
                                                                          then in the pool)
    {"op": "release", "lease": "<env id>"}           -> {"ok": true}    (reset, then back to the pool)
    {"op": "drop_idle"}                              -> {"ok": true, "removed": ["<env id>", ...]}
    {"op": "status"}                                 -> {"ok": true, "recovering": false, "environments": [{"id",
                                                         "config", "state", "holder", "idle_seconds", "services"},
                                                         ...]}
    {"op": "stop", "force": false}                   -> {"ok": true}    (refused while leases are held, unless force)

`recovering`: the daemon still adopts the environments the last daemon on its socket left; it answers ping and status
meanwhile, while lease, release and stop (without force) wait for the adoption to end.

`settings` is `Settings.model_dump(mode="json")`; `services` may be null (the enabled ones); `holder` is the
process that holds the lease (its pid, its start time in clock ticks, its host).

Errors: {"ok": false, "error": {"type": "ServiceStartError", "cause": "...", "fix": "...", <attributes>}}: the
class name in the envmgr.errors tree and the error's constructor arguments (for ServiceStartError and
ReadinessTimeoutError also `service` and `logs`). The client raises the same class with the same attributes, so
the CLI prints the same message and exits with the same code as without the daemon; an unknown class arrives as
EnvmgrError.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from typing import Any

from envmgr import errors
from envmgr.config import Settings
from envmgr.engine.labels import Owner
from envmgr.errors import EnvmgrError

__all__ = [
    "MAX_REQUEST_BYTES",
    "OPERATIONS",
    "LeaseRequest",
    "decode",
    "decode_error",
    "encode",
    "encode_error",
    "error_response",
    "lease_request",
    "parse_lease_request",
    "raise_for_error",
]

MAX_REQUEST_BYTES = 1 << 20
OPERATIONS = ("ping", "lease", "ensure", "adopt", "release", "drop_idle", "status", "stop")


def encode(message: dict[str, Any]) -> bytes:
    """One message as one line."""
    return json.dumps(message).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """One line as a message (a JSON object); EnvmgrError when it is not one."""
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvmgrError(f"bad daemon message: {exc}", "client and daemon must be the same envmgr version") from None
    if not isinstance(message, dict):
        raise EnvmgrError("bad daemon message: not a JSON object", "client and daemon must be the same envmgr version")
    return message


# errors ---------------------------------------------------------------------------------------------------------


def encode_error(exc: EnvmgrError) -> dict[str, Any]:
    """The error's class name and constructor arguments (kept as attributes of the same name, see envmgr.errors)."""
    fields = {name: getattr(exc, name) for name in _parameters(type(exc)) if hasattr(exc, name)}
    return {"type": type(exc).__name__, **fields}


def decode_error(payload: dict[str, Any]) -> EnvmgrError:
    """The error `encode_error` encoded: the same class (EnvmgrError when unknown) with the same attributes."""
    cls = _error_classes().get(str(payload.get("type")), EnvmgrError)
    arguments = {name: payload[name] for name in _parameters(cls) if name in payload}
    try:
        return cls(**arguments)
    except TypeError:  # arguments missing (a daemon of another version): the cause and fix still arrive
        return EnvmgrError(str(payload.get("cause")), payload.get("fix"))


def error_response(exc: EnvmgrError) -> dict[str, Any]:
    return {"ok": False, "error": encode_error(exc)}


def raise_for_error(response: dict[str, Any]) -> dict[str, Any]:
    """The response when it is a success; the error it carries, raised, otherwise."""
    if not response.get("ok"):
        error = response.get("error")
        raise decode_error(error if isinstance(error, dict) else {"cause": "the daemon gave no error"})
    return response


def _error_classes() -> dict[str, type[EnvmgrError]]:
    return {
        name: value
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, EnvmgrError)
    }


def _parameters(cls: type[EnvmgrError]) -> list[str]:
    return [name for name in inspect.signature(cls).parameters if name != "self"]


# requests -------------------------------------------------------------------------------------------------------


def lease_request(
    settings: Settings, services: list[str] | None, workers: int, holder: Owner, start: bool = True
) -> dict[str, Any]:
    return {
        "op": "lease",
        "settings": settings.model_dump(mode="json"),
        "services": services,
        "workers": workers,
        "holder": {"pid": holder.pid, "start": holder.start, "host": holder.host, "space": holder.space},
        "start": start,
    }


@dataclass(frozen=True)
class LeaseRequest:
    """A lease request as the daemon reads it."""

    settings: Settings
    services: list[str]
    workers: int
    holder: Owner
    start: bool = True
    """start an environment when none is warm (else: answer that there is none)"""


def parse_lease_request(request: dict[str, Any]) -> LeaseRequest:
    """KeyError, TypeError or ValueError (pydantic's ValidationError) when the request is malformed."""
    settings = Settings.model_validate(request["settings"])
    services = [str(name) for name in request.get("services") or settings.enabled_services()]
    holder = request["holder"]
    return LeaseRequest(
        settings=settings,
        services=services,
        workers=int(request.get("workers", 0)),
        holder=Owner(
            pid=int(holder["pid"]),
            start=str(holder["start"]),
            host=str(holder["host"]),
            space=str(holder.get("space", "")),
        ),
        start=bool(request.get("start", True)),
    )
