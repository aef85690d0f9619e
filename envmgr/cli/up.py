"""`envmgr up`: start an environment (or lease a warm one from the daemon), print how to connect, stay in the
foreground with a live health table until Ctrl-C (or --detach)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from envmgr.cli.app import (
    ConfigOption,
    ImageSetOption,
    ShowSecretsOption,
    err_console,
    read_settings,
    run_command,
)
from envmgr.cli.progress import ConsoleProgress
from envmgr.config import Settings
from envmgr.daemon.client import DaemonClient, Lease
from envmgr.endpoints import Endpoints, Worker
from envmgr.environment import Environment, Health
from envmgr.environment.given import given_services
from envmgr.errors import (
    ConfigError,
    DaemonNotRunningError,
    EnvironmentNotFoundError,
)
from envmgr.exports import ExportTable
from envmgr.progress.events import silent
from envmgr.sandbox import ci_job, env_file_text


def _endpoint_table(endpoints: Endpoints, show_secrets: bool, health: dict[str, Health] | None = None) -> Table:
    table = Table(title=f"envmgr environment {endpoints.id}", title_justify="left")
    table.add_column("service")
    table.add_column("url (from this host)", overflow="fold")
    table.add_column("health")
    for name, endpoint in endpoints.services.items():
        state: str | Text = "starting"
        if health is not None and name in health:
            probe = health[name]
            state = (
                Text.assemble(("up", "green"), f" {probe.seconds * 1000:.0f} ms")
                if probe.healthy
                else Text.assemble(("down", "red"), " ", probe.detail)
            )
        table.add_row(name, endpoint.url if show_secrets else endpoint.redacted_url, state)
    return table


def _application_view(env: Environment) -> Endpoints:
    """The endpoints as the application uses them outside pytest: each service as the session's worker sees it
    (Postgres's application role when `postgres.app_role` is set; envmgr keeps the owner's login for itself)."""
    endpoints = env.endpoints
    worker = Worker()
    views = [env.service(e.service).worker_view(e, worker) if e.replica == 0 else e for e in endpoints.all()]
    return endpoints.with_endpoints(views)


def up(
    services: Annotated[list[str] | None, typer.Argument(help="services to start (default: the enabled ones)")] = None,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="leave it running and exit")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the endpoints as JSON on stdout")] = False,
    sandbox: Annotated[
        str | None,
        typer.Option(
            help="sandbox id to label the environment with (envmgr down --sandbox ID removes it); with --detach in "
            "CI, the job's id by default (GitHub Actions, GitLab, Jenkins, Buildkite, CircleCI, Azure Pipelines)"
        ),
    ] = None,
    env_file: Annotated[Path | None, typer.Option(help="write the connection variables to this .env file")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            help="xdist workers that will run on it (pytest -n N --envmgr-env ID): a WireMock and a Celery worker of "
            "each one's own (0: one of each, for everybody)",
        ),
    ] = 0,
    show_secrets: ShowSecretsOption = False,
    config: ConfigOption = None,
    image_set: ImageSetOption = None,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="more progress: every phase of every replica")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress lines while it starts")] = False,
) -> None:
    """Start an environment, print how to connect, and stay in the foreground until Ctrl-C (or --detach)."""

    def body() -> None:
        settings = read_settings(config, image_set)
        given = given_services(settings)
        if detach and given:
            raise ConfigError(
                f"envmgr up --detach cannot keep an environment on a server envmgr did not start ({', '.join(given)}: "
                "url): what it makes there is removed once envmgr up has exited",
                "run envmgr up in the foreground, or let pytest use the server directly (it needs no envmgr up)",
            )
        if not detach and sandbox is None and not given and (lease := _lease(settings, services, workers)) is not None:
            _up_leased(lease, settings, env_file, as_json, show_secrets)
            return
        progress = ConsoleProgress(err_console(), verbose)
        env = Environment(
            services or None, settings=settings, sandbox=_sandbox(sandbox, detach), detach=detach, workers=workers,
            progress=silent if quiet else progress,
        )  # fmt: skip
        with progress.shown(f"starting {', '.join(env.services)} ..."):
            env.start()
        try:
            endpoints = _application_view(env)
            if env_file is not None:
                _write_env_file(env_file, endpoints, settings.export_table())
            if as_json:
                print(endpoints.to_json())
            else:
                err_console().print(_endpoint_table(endpoints, show_secrets, env.health()))
                _print_variables(endpoints, settings.export_table(), show_secrets)
            if detach:
                if not as_json:
                    err_console().print(f"detached; remove it with: envmgr down {env.id}")
                return
            _foreground(env, show_secrets, "Ctrl-C to stop and remove it.")
        finally:
            if not detach:
                with err_console().status("removing the environment ..."):
                    env.close()

    run_command(body)


def _lease(settings: Settings, services: list[str] | None, workers: int) -> Lease | None:
    """A warm environment from the daemon when one answers (setting `daemon`: auto, on, off)."""
    from envmgr.daemon.client import lease_if_running

    with err_console().status("asking the envmgr daemon for an environment ..."):
        return lease_if_running(settings, services or None, workers)


def _up_leased(lease: Lease, settings: Settings, env_file: Path | None, as_json: bool, show_secrets: bool) -> None:
    """Hold a lease in the foreground; Ctrl-C hands it back (the daemon resets it and keeps it warm)."""

    try:
        env = Environment.attach(lease.id, settings=settings)
        endpoints = _application_view(env)
        if env_file is not None:
            _write_env_file(env_file, endpoints, settings.export_table())
        if as_json:
            print(endpoints.to_json())
        err_console().print(f"leased {'warm ' if lease.warm else ''}environment {lease.id} from the daemon")
        if not as_json:
            _print_variables(endpoints, settings.export_table(), show_secrets)
        _foreground(
            env,
            show_secrets,
            "Ctrl-C to hand it back to the daemon (it resets it and keeps it warm; envmgr down --all-idle removes it).",
        )
    finally:
        try:
            DaemonClient().release(lease.id)
        except (DaemonNotRunningError, EnvironmentNotFoundError) as exc:  # daemon stopped (--force): env gone too
            err_console().print(
                f"envmgr: lease {lease.id} not handed back: {exc.cause}", highlight=False, soft_wrap=True
            )


def _print_variables(endpoints: Endpoints, export: ExportTable, show_secrets: bool) -> None:
    """Every connection variable (what --env-file writes): the services' own and the [tool.envmgr.export] table's;
    passwords masked unless `show_secrets`."""
    from envmgr.exports import exported_variables

    console = err_console()
    masked = "" if show_secrets else "; passwords masked: --show-secrets prints them"
    console.print(f"connection variables (also written by --env-file{masked}):")
    for name, value in sorted(exported_variables(endpoints, export).items()):
        shown = value
        if not show_secrets:
            for endpoint in endpoints.all():
                shown = endpoint.redacted(shown)
        console.print(f"  {name}={shown}", highlight=False, markup=False, soft_wrap=True)


def _foreground(env: Environment, show_secrets: bool, on_stop: str) -> None:
    """Show a live status table until SIGINT or SIGTERM (`on_stop` says what Ctrl-C does)."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    console = err_console()
    console.print(on_stop)
    endpoints = _application_view(env)
    with Live(_endpoint_table(endpoints, show_secrets, env.health()), console=console, refresh_per_second=1) as live:
        while not stop.wait(2.0):
            live.update(_endpoint_table(endpoints, show_secrets, env.health()))


def _sandbox(given: str | None, detach: bool) -> str | None:
    """The sandbox id: the one given, else (detached only) the CI job's id when a CI system's variables are set."""
    if given is not None or not detach:
        return given
    job = ci_job(os.environ)
    if job is None:
        return None
    err_console().print(
        f"sandbox {job.sandbox} ({job.source}); remove it with: envmgr down --sandbox {job.sandbox}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    return job.sandbox


def _write_env_file(path: Path, endpoints: Endpoints, export: ExportTable) -> None:
    """Every connection variable (the services' own and the export table's), quoted for python-dotenv and the
    shell; readable by the owner only (0600, from the moment the file exists: it holds passwords)."""
    from envmgr.exports import exported_variables

    variables = exported_variables(endpoints, export)
    if endpoints.sandbox:
        variables["ENVMGR_SANDBOX"] = endpoints.sandbox
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)  # an existing file keeps its mode through O_TRUNC
        handle.write(env_file_text(variables))
