"""`envmgr down`, `status`, `reset`, `gc`: the environments on this engine."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from envmgr.cli.app import (
    ConfigOption,
    ShowSecretsOption,
    err_console,
    out_console,
    run_command,
)
from envmgr.config import load_settings
from envmgr.engine import run_folders
from envmgr.engine.connection import Engine
from envmgr.engine.labels import LABEL_DAEMON, LABEL_NAMESPACE, LABEL_REPLICA, LABEL_SERVICE
from envmgr.engine.reaper import expired, orphaned, parse_duration
from envmgr.engine.records import EnvironmentRecord
from envmgr.environment import Environment
from envmgr.environment.given import sweep_given
from envmgr.errors import (
    ConfigError,
    EnvironmentNotFoundError,
    EnvmgrError,
)
from envmgr.services.given import mask
from envmgr.services.registry import SERVICES


def down(
    env_ids: Annotated[list[str] | None, typer.Argument(help="environment ids")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every envmgr environment on this engine")] = False,
    sandbox: Annotated[str | None, typer.Option(help="the environments of this sandbox")] = None,
    all_idle: Annotated[
        bool,
        typer.Option("--all-idle", help="the environments the daemon keeps warm and no run leases (yours only)"),
    ] = False,
) -> None:
    """Remove environments (containers, networks, volumes)."""

    def body() -> None:
        if all_idle:
            _drop_idle()
            return
        engine = Engine.connect()
        records = engine.environments()
        if all_:
            targets = list(records)
        elif sandbox is not None:
            targets = [env_id for env_id, record in records.items() if record.sandbox == sandbox]
            if not targets:
                raise EnvironmentNotFoundError(f"no environment of sandbox {sandbox!r}", "list them: envmgr status")
        else:
            if not env_ids:
                raise EnvironmentNotFoundError("no environment named", "give an id, --sandbox ID or --all")
            missing = [env_id for env_id in env_ids if env_id not in records]
            if missing:
                raise EnvironmentNotFoundError(
                    f"no environment {', '.join(missing)} on this engine", "list them: envmgr status"
                )
            targets = list(env_ids)
        for env_id in targets:
            count = engine.remove_environment(env_id)
            err_console().print(f"removed {env_id} ({count} resources)")

    run_command(body)


def _drop_idle() -> None:
    """Ask this user's daemon to remove what it keeps idle; without a daemon there is nothing kept."""
    from envmgr.daemon.client import DaemonClient

    client = DaemonClient()
    if not client.available():
        err_console().print(f"no envmgr daemon answers on {client.path}: nothing is kept warm")
        return
    removed = client.drop_idle()
    err_console().print(f"removed {len(removed)} idle environment(s){': ' + ', '.join(removed) if removed else ''}")


def status(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    show_secrets: ShowSecretsOption = False,
) -> None:
    """List the environments on this engine: their state (running, stopped, partial), each service's container
    state, health and URL. One environment that cannot be read or probed is listed with the reason; the listing
    never fails for it."""

    def body() -> None:
        engine = Engine.connect()
        rows: list[dict[str, Any]] = []
        for env_id, record in sorted(engine.environments().items(), key=lambda item: item[1].created):
            row = _status_row(engine, env_id, record)
            if row is not None:
                rows.append(row)
        if as_json:
            print(json.dumps(rows, indent=2))
            return
        if not rows:
            err_console().print("no envmgr environments on this engine")
            return
        table = Table("id", "state", "sandbox", "owner", "age")
        table.add_column("services", overflow="fold")  # a URL is wrapped, never cut short with "…"
        for row in rows:
            services = Text("\n").join(
                Text.assemble(
                    f"{name} ",
                    ("up", "green") if s["healthy"] else ("down", "red"),
                    "" if s["state"] == "running" else f" ({s['state']})",
                    f" {s['url'] if show_secrets else s['redacted_url']}",
                )
                for name, s in row["services"].items()
            )
            if "error" in row:
                services = Text(row["error"], style="yellow")
            owner_text = "detached" if row["detached"] else f"pid {row['owner_pid']}"
            if row["kept"] is not None:
                owner_text = f"kept warm by the daemon ({row['kept']})"
            if row["orphaned"]:
                owner_text += " (gone)"
            table.add_row(
                row["id"],
                row["state"],
                row["sandbox"] or "",
                owner_text,
                "?" if row["age_seconds"] is None else _age(row["age_seconds"]),
                services,
            )
        console = out_console()
        if not console.is_terminal:  # a pipe or a log: as wide as the rows are (a URL stays whole, on one line)
            console.width = 1000
        console.print(table)

    run_command(body)


def _status_row(engine: Engine, env_id: str, record: EnvironmentRecord) -> dict[str, Any] | None:
    """One environment for `envmgr status`; None when it was removed since the listing (a shared engine)."""
    owner = record.owner
    row: dict[str, Any] = {
        "id": env_id,
        "state": record.state,
        "sandbox": record.sandbox,
        "detached": record.detached,
        "owner_pid": owner.pid if owner else None,
        "orphaned": orphaned(record),
        "kept": (f"leased by pid {record.holder.pid}" if record.holder else "idle")
        if LABEL_DAEMON in record.labels
        else None,
        "age_seconds": round(time.time() - record.created, 1) if record.created > 0 else None,  # None: unlabelled
        "services": {},
        "unreadable": None,
    }
    try:
        env = Environment.attach(env_id, engine=engine, stopped_ok=True)
    except EnvironmentNotFoundError:
        return None
    except EnvmgrError as exc:  # another key, another envmgr version, a broken container: listed with the reason
        row["unreadable"] = exc.cause
        return row
    states = {
        container.labels.get(LABEL_SERVICE, ""): str(container.status)
        for container in record.containers
        if container.labels.get(LABEL_REPLICA, "0") == "0"
    }
    running = [name for name in env.endpoints.services if states.get(name) == "running"]
    health = env.health(running)  # a stopped or paused container is not probed (a paused one would hang)
    for name, endpoint in env.endpoints.services.items():
        state = states.get(name, "missing")
        probe = health.get(name)
        row["services"][name] = {
            "url": endpoint.url,
            "redacted_url": endpoint.redacted_url,
            "state": state,
            "healthy": probe is not None and probe.healthy,
            "detail": probe.detail if probe is not None else f"container {state}",
        }
    return row


def reset(
    services: Annotated[list[str] | None, typer.Argument(help="services to reset (default: all)")] = None,
    env_id: Annotated[str, typer.Option("--env", help="environment id")] = "",
    config: ConfigOption = None,
) -> None:
    """Bring a running environment back to its seeded state."""

    def body() -> None:
        engine = Engine.connect()
        target = env_id or _only_environment(engine)
        env = Environment.attach(target, engine=engine, settings=load_settings(config))
        env.reset(services or None)
        err_console().print(f"reset {', '.join(services or env.services)} of {target}")

    run_command(body)


def _only_environment(engine: Engine) -> str:
    records = engine.environments()
    if len(records) != 1:
        raise EnvironmentNotFoundError(
            f"{len(records)} environments on this engine; which one?", "pass --env ID (see envmgr status)"
        )
    return next(iter(records))


def gc(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help="remove environments older than this (30m, 2h, 1d) whose owner is gone, detached ones and CI "
            "sandboxes included; never one whose owner process is alive",
        ),
    ] = None,
    namespace: Annotated[str | None, typer.Option(help="only environments of this namespace")] = None,
) -> None:
    """Remove environments whose owner process is gone (detached ones are kept unless --older-than)."""

    def body() -> None:
        limit = parse_duration(older_than) if older_than is not None else None
        if _sweep_given():
            return  # every enabled service is on a server envmgr did not start: no engine to ask
        engine = Engine.connect()
        now = time.time()
        removed: list[str] = []
        for env_id, record in sorted(engine.environments().items(), key=lambda item: item[1].created):
            if namespace is not None and record.labels.get(LABEL_NAMESPACE) != namespace:
                continue
            if not (orphaned(record) if limit is None else expired(record, now, limit)):
                continue
            count = engine.remove_environment(env_id)
            removed.append(env_id)
            kind = f"sandbox {record.sandbox}" if record.sandbox else "detached" if record.detached else "orphaned"
            err_console().print(f"removed {env_id} ({kind}, {_age(now - record.created)} old, {count} resources)")
        what = "orphaned environment(s)" if limit is None else f"environment(s) older than {older_than}"
        err_console().print(f"removed {len(removed)} {what}{': ' + ', '.join(removed) if removed else ''}")
        for folder in run_folders.remove_dead():
            err_console().print(f"removed {folder} (the run-socket folder of a run that was killed)")

    run_command(body)


def _sweep_given() -> bool:
    """Remove what killed runs left on the servers envmgr did not start that this project's settings name (`url`)
    and say what it was; True when every enabled service is on such a server."""
    try:
        settings = load_settings()
        services = {name: SERVICES.create(name, settings) for name in settings.enabled_services()}
        given = {name: service for name, service in services.items() if service.given_url() is not None}
    except ConfigError as exc:  # the engine's environments are still swept
        err_console().print(f"servers envmgr did not start (url) not swept: {exc.cause}")
        return False
    if not given:
        return False
    removed = sweep_given(given)
    for line in removed:
        err_console().print(f"removed {line} (left by a run that was killed)")
    servers = ", ".join(f"{name} ({mask(service.given_url() or '')})" for name, service in given.items())
    err_console().print(f"removed {len(removed)} leftover(s) of killed runs on {servers}")
    return len(given) == len(services)


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
