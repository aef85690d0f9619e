"""`envmgr daemon start/run/stop/status`: the per-user daemon that keeps warm environments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from envmgr.cli.app import (
    SocketOption,
    err_console,
    out_console,
    run_command,
)
from envmgr.daemon.client import DaemonClient
from envmgr.errors import (
    DaemonNotRunningError,
)


def daemon_start(socket_path: SocketOption = None) -> None:
    """Start the daemon in the background (one per user and engine) and wait until it answers."""

    def body() -> None:
        from envmgr.daemon.client import DaemonClient, default_socket_path, spawn

        path = socket_path or default_socket_path()
        client = DaemonClient(path)
        if client.available():
            err_console().print(f"envmgr daemon already running on {path}")
            return
        pid, log = spawn(path)
        err_console().print(f"envmgr daemon {pid} listening on {path} (log: {log})", soft_wrap=True)

    run_command(body)


def daemon_run(
    socket_path: SocketOption = None,
    exit_when_idle: Annotated[
        float | None,
        typer.Option(
            "--exit-when-idle",
            min=0,
            metavar="SECONDS",
            help="stop after this many seconds with no environment and no request (a daemon a test run started)",
        ),
    ] = None,
) -> None:
    """Run the daemon in the foreground (for containers and supervisors)."""

    def body() -> None:
        import logging

        from envmgr.daemon.server import serve

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        serve(socket_path, exit_when_idle=exit_when_idle)

    run_command(body)


def _running_daemon(socket_path: Path | None) -> DaemonClient:
    from envmgr.daemon.client import DaemonClient

    client = DaemonClient(socket_path)
    if not client.available():
        raise DaemonNotRunningError(f"no envmgr daemon answers on {client.path}", "start one: envmgr daemon start")
    return client


def daemon_stop(
    socket_path: SocketOption = None,
    force: Annotated[bool, typer.Option("--force", help="stop even while environments are leased")] = False,
) -> None:
    """Stop the daemon; it removes its environments."""

    def body() -> None:
        client = _running_daemon(socket_path)
        client.stop(force)
        err_console().print("envmgr daemon stopping")

    run_command(body)


def daemon_status(
    socket_path: SocketOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """The daemon's environments: idle (warm) or leased, and to whom."""

    def body() -> None:
        client = _running_daemon(socket_path)
        environments = client.status()
        if as_json:
            print(json.dumps(environments, indent=2))
            return
        table = Table("id", "state", "holder", "idle", "services", title=f"envmgr daemon on {client.path}")
        for env in environments:
            idle = "" if env["idle_seconds"] is None else f"{env['idle_seconds']:.0f} s"
            table.add_row(env["id"], env["state"], str(env["holder"] or ""), idle, ", ".join(env["services"]))
        out_console().print(table)

    run_command(body)
