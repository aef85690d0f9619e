"""The `envmgr` command: the only place where errors become exit codes.

envmgr up [SERVICE...] [--detach --json]      start an environment (foreground until Ctrl-C, or detached)
envmgr down ID | --all | --sandbox ID         remove environments
envmgr status [--json]                        environments on this engine and each service's health
envmgr reset [SERVICE...] --env ID            back to the seeded state
envmgr gc                                     remove what dead owners left behind
envmgr doctor                                 engine, images and advice
envmgr images build [SERVICE...]              build the local image set from containers/
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from envmgr.config import Settings, load_settings
from envmgr.endpoints import Endpoints
from envmgr.engine import Engine
from envmgr.environment import Environment, Health
from envmgr.errors import EnvironmentNotFoundError, EnvmgrError, ServiceStartError
from envmgr.images import build_image, local_images
from envmgr.reaper import orphaned, sweep

__all__ = ["app", "main"]

app = typer.Typer(
    name="envmgr",
    help="Ephemeral, isolated test environments on Docker: PostgreSQL, Redis, Celery, LocalStack, WireMock.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
images_app = typer.Typer(help="Build and inspect the local image set.", no_args_is_help=True)
app.add_typer(images_app, name="images")

T = TypeVar("T")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="pyproject.toml to read [tool.envmgr] from (default: nearest)")
]
ImageSetOption = Annotated[
    str | None, typer.Option("--image-set", help="official (pinned registry images) or local (built from containers/)")
]


def _err() -> Console:
    return Console(stderr=True)


def _run(action: Callable[[], T]) -> T:
    """Run a command body; turn envmgr errors into a one-line cause, the fix and a non-zero exit code."""
    try:
        return action()
    except EnvmgrError as exc:
        _err().print(f"[bold red]envmgr: error:[/] {exc.cause}", highlight=False, soft_wrap=True)
        if exc.fix:
            _err().print(f"  [bold]fix:[/] {exc.fix}", highlight=False, soft_wrap=True)
        if isinstance(exc, ServiceStartError) and exc.logs:
            _err().print(f"  last log lines of {exc.service}:", highlight=False, markup=False)
            _err().print(exc.logs.rstrip(), highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _err().print("envmgr: interrupted")
        sys.exit(130)


def _settings(config: Path | None, image_set: str | None) -> Settings:
    overrides: dict[str, Any] = {}
    if image_set is not None:
        overrides["image_set"] = image_set
    return load_settings(config, **overrides)


def _endpoint_table(endpoints: Endpoints, health: dict[str, Health] | None = None) -> Table:
    table = Table(title=f"envmgr environment {endpoints.id}", title_justify="left")
    table.add_column("service")
    table.add_column("url (from this host)", overflow="fold")
    table.add_column("health")
    for name, endpoint in endpoints.services.items():
        state = "starting"
        if health is not None and name in health:
            probe = health[name]
            state = f"[green]up[/] {probe.seconds * 1000:.0f} ms" if probe.healthy else f"[red]down[/] {probe.detail}"
        table.add_row(name, endpoint.url, state)
    return table


@app.command()
def up(
    services: Annotated[list[str] | None, typer.Argument(help="services to start (default: the enabled ones)")] = None,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="leave it running and exit")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the endpoints as JSON on stdout")] = False,
    sandbox: Annotated[str | None, typer.Option(help="sandbox id (CI job) to label the environment with")] = None,
    env_file: Annotated[Path | None, typer.Option(help="write the connection variables to this .env file")] = None,
    config: ConfigOption = None,
    image_set: ImageSetOption = None,
) -> None:
    """Start an environment, print how to connect, and stay in the foreground until Ctrl-C (or --detach)."""

    def body() -> None:
        settings = _settings(config, image_set)
        env = Environment(services or None, settings=settings, sandbox=sandbox, detach=detach)
        with _err().status(f"starting {', '.join(env.services)} ..."):
            endpoints = env.start()
        try:
            if env_file is not None:
                _write_env_file(env_file, endpoints)
            if as_json:
                print(endpoints.to_json())
            else:
                _err().print(_endpoint_table(endpoints, env.health()))
            if detach:
                if not as_json:
                    _err().print(f"detached; remove it with: envmgr down {env.id}")
                return
            _foreground(env)
        finally:
            if not detach:
                with _err().status("removing the environment ..."):
                    env.close()

    _run(body)


def _foreground(env: Environment) -> None:
    """Show a live status table until SIGINT or SIGTERM."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    console = _err()
    console.print("Ctrl-C to stop and remove it.")
    with Live(_endpoint_table(env.endpoints, env.health()), console=console, refresh_per_second=1) as live:
        while not stop.wait(2.0):
            live.update(_endpoint_table(env.endpoints, env.health()))


def _write_env_file(path: Path, endpoints: Endpoints) -> None:
    lines = [f"{key}={json.dumps(value)}" for key, value in sorted(endpoints.as_env().items())]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


@app.command()
def down(
    env_ids: Annotated[list[str] | None, typer.Argument(help="environment ids")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every envmgr environment on this engine")] = False,
    sandbox: Annotated[str | None, typer.Option(help="the environments of this sandbox")] = None,
) -> None:
    """Remove environments (containers, networks, volumes)."""

    def body() -> None:
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
            _err().print(f"removed {env_id} ({count} resources)")

    _run(body)


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """List the environments on this engine with each service's health."""

    def body() -> None:
        engine = Engine.connect()
        rows: list[dict[str, Any]] = []
        for env_id, record in sorted(engine.environments().items(), key=lambda item: item[1].created):
            env = Environment.attach(env_id, engine=engine)
            health = env.health()
            owner = record.owner
            rows.append(
                {
                    "id": env_id,
                    "sandbox": record.sandbox,
                    "detached": record.detached,
                    "owner_pid": owner.pid if owner else None,
                    "orphaned": orphaned(record),
                    "age_seconds": round(time.time() - record.created, 1),
                    "services": {
                        name: {"url": env.endpoints[name].url, "healthy": h.healthy, "detail": h.detail}
                        for name, h in health.items()
                    },
                }
            )
        if as_json:
            print(json.dumps(rows, indent=2))
            return
        if not rows:
            _err().print("no envmgr environments on this engine")
            return
        table = Table("id", "sandbox", "owner", "age", "services")
        for row in rows:
            services = ", ".join(
                f"{name} [{'green' if s['healthy'] else 'red'}]{'up' if s['healthy'] else 'down'}[/]"
                for name, s in row["services"].items()
            )
            owner_text = "detached" if row["detached"] else f"pid {row['owner_pid']}"
            if row["orphaned"]:
                owner_text += " (gone)"
            table.add_row(row["id"], row["sandbox"] or "", owner_text, f"{row['age_seconds']:.0f} s", services)
        Console().print(table)

    _run(body)


@app.command()
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
        _err().print(f"reset {', '.join(services or env.services)} of {target}")

    _run(body)


def _only_environment(engine: Engine) -> str:
    records = engine.environments()
    if len(records) != 1:
        raise EnvironmentNotFoundError(
            f"{len(records)} environments on this engine; which one?", "pass --env ID (see envmgr status)"
        )
    return next(iter(records))


@app.command()
def gc() -> None:
    """Remove environments whose owner process is gone (detached ones are kept: use envmgr down)."""

    def body() -> None:
        removed = sweep(Engine.connect())
        _err().print(f"removed {len(removed)} orphaned environment(s){': ' + ', '.join(removed) if removed else ''}")

    _run(body)


@app.command()
def doctor(config: ConfigOption = None, image_set: ImageSetOption = None) -> None:
    """Check the engine and the images, and say what to do about what is missing."""

    def body() -> None:
        settings = _settings(config, image_set)
        engine = Engine.connect()
        version = engine.client.version()
        console = Console()
        console.print(f"[green]ok[/] engine {version.get('Version')} (API {version.get('ApiVersion')})")
        console.print(f"[green]ok[/] containers are reached at {engine.host_address()} (published ports only)")
        from envmgr.services import create_service

        problems = 0
        for name in settings.enabled_services():
            image = create_service(name, settings).image()
            if engine.has_image(image):
                console.print(f"[green]ok[/] {name}: image {image} present")
            else:
                problems += 1
                advice = (
                    f"envmgr images build {name}"
                    if settings.image_set == "local"
                    else "pulled on first use; without a registry: ENVMGR_IMAGE_SET=local and envmgr images build"
                )
                console.print(f"[yellow]missing[/] {name}: image {image} ({advice})")
        console.print(f"image set: {settings.image_set}; {problems} problem(s)")

    _run(body)


@images_app.command("build")
def images_build(
    services: Annotated[list[str] | None, typer.Argument(help="images to build (default: all)")] = None,
    base_image: Annotated[
        str | None, typer.Option(envvar="ENVMGR_BASE_IMAGE", help="BASE_IMAGE build argument (default: Debian slim)")
    ] = None,
    ca_cert: Annotated[
        list[Path] | None,
        typer.Option(help="extra CA certificate (PEM) to trust inside builds; repeatable", envvar="ENVMGR_CA_CERT"),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print only the result")] = False,
) -> None:
    """Build the local image set from containers/ (layers are cached)."""

    def body() -> None:
        catalog = local_images()
        names = services or list(catalog)
        unknown = [name for name in names if name not in catalog]
        if unknown:
            raise EnvmgrError(f"no image called {', '.join(unknown)}", f"choose among {', '.join(catalog)}")
        engine = Engine.connect()
        console = _err()
        for name in names:
            started = time.monotonic()
            with console.status(f"building {catalog[name].tag}") as progress:

                def show(line: str, progress: Any = progress, name: str = name) -> None:
                    if not quiet:
                        console.print(f"{name} | {line}", highlight=False, markup=False)
                    progress.update(f"building {catalog[name].tag}: {line[:80]}")

                tag = build_image(
                    engine, catalog[name], base_image=base_image, ca_certificates=ca_cert or [], on_line=show
                )
            console.print(f"[green]built[/] {tag} in {time.monotonic() - started:.1f} s")

    _run(body)


@images_app.command("list")
def images_list() -> None:
    """Show the local images and whether they are built."""

    def body() -> None:
        engine = Engine.connect()
        for name, image in local_images().items():
            state = "[green]present[/]" if engine.has_image(image.tag) else "[yellow]missing[/]"
            Console().print(f"{name:12} {image.tag:40} {state}")

    _run(body)


def main() -> None:
    app()
