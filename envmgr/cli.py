"""The `envmgr` command: the only place where errors become exit codes.

envmgr up [SERVICE...] [--detach --json]      start an environment (foreground until Ctrl-C, or detached)
envmgr down ID | --all | --sandbox ID         remove environments
envmgr status [--json]                        environments on this engine and each service's health
envmgr reset [SERVICE...] --env ID            back to the seeded state
envmgr gc [--older-than DURATION]             remove what dead owners left behind (and old sandboxes)
envmgr doctor                                 engine, images and advice
envmgr images build [SERVICE...]              build the local image set from the services' image folders
                   [--official-lookalike]       ... or its variants tagged with the official names
"""

from __future__ import annotations

import json
import os
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
from rich.text import Text

from envmgr.config import Settings, load_settings
from envmgr.daemon.client import DaemonClient, Lease
from envmgr.endpoints import Endpoints, Worker
from envmgr.engine import Engine, EnvironmentRecord
from envmgr.environment import Environment, Health
from envmgr.errors import (
    DaemonNotRunningError,
    EnvironmentNotFoundError,
    EnvmgrError,
    MigrationError,
    ServiceStartError,
)
from envmgr.images import build_image, foreign_image, local_images, official_lookalikes, without_official_image
from envmgr.labels import LABEL_NAMESPACE, LABEL_REPLICA, LABEL_SERVICE
from envmgr.reaper import expired, orphaned, parse_duration
from envmgr.sandbox import ci_job, env_file_text

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
    str | None,
    typer.Option(
        "--image-set", help="official (pinned registry images) or local (built from each service's image/ folder)"
    ),
]
ShowSecretsOption = Annotated[
    bool,
    typer.Option(
        "--show-secrets", help="print passwords as they are (masked by default; --json and --env-file keep them)"
    ),
]


def _err() -> Console:
    """The console for messages (stderr). Strings print as they are: no Rich markup (`[tool.envmgr]`, a regex's
    brackets and `[/bold]` in a seed stay text), no `:emoji:` codes, no highlighting; styles come from `Text` parts.
    (`status()` and its `update()` still parse a string as markup: give them `Text`.)"""
    return Console(stderr=True, markup=False, emoji=False, highlight=False)


def _out() -> Console:
    """The console for results (stdout): plain text like `_err()`."""
    return Console(markup=False, emoji=False, highlight=False)


def _run(action: Callable[[], T]) -> T:
    """Run a command body; turn envmgr errors into a one-line cause, the fix and a non-zero exit code."""
    try:
        return action()
    except EnvmgrError as exc:
        _err().print(Text.assemble(("envmgr: error:", "bold red"), " ", exc.cause), soft_wrap=True)
        if exc.fix:
            _err().print(Text.assemble("  ", ("fix:", "bold"), " ", exc.fix), soft_wrap=True)
        if isinstance(exc, ServiceStartError) and exc.logs:
            _err().print(f"  last log lines of {exc.service}:", highlight=False, markup=False)
            _err().print(exc.logs.rstrip(), highlight=False, markup=False, soft_wrap=True)
        if isinstance(exc, MigrationError) and exc.output:
            _err().print("  last lines of its output:", highlight=False, markup=False)
            _err().print(exc.output.rstrip(), highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _err().print("envmgr: interrupted")
        sys.exit(130)


def _settings(config: Path | None, image_set: str | None) -> Settings:
    overrides: dict[str, Any] = {}
    if image_set is not None:
        overrides["image_set"] = image_set
    return load_settings(config, **overrides)


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


@app.command()
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
) -> None:
    """Start an environment, print how to connect, and stay in the foreground until Ctrl-C (or --detach)."""

    def body() -> None:
        settings = _settings(config, image_set)
        if not detach and sandbox is None and (lease := _lease(settings, services, workers)) is not None:
            _up_leased(lease, settings, env_file, as_json, show_secrets)
            return
        env = Environment(
            services or None, settings=settings, sandbox=_sandbox(sandbox, detach), detach=detach, workers=workers
        )
        with _err().status(Text(f"starting {', '.join(env.services)} ...")):
            env.start()
        try:
            endpoints = _application_view(env)
            if env_file is not None:
                _write_env_file(env_file, endpoints, settings.export)
            if as_json:
                print(endpoints.to_json())
            else:
                _err().print(_endpoint_table(endpoints, show_secrets, env.health()))
                _print_variables(endpoints, settings.export, show_secrets)
            if detach:
                if not as_json:
                    _err().print(f"detached; remove it with: envmgr down {env.id}")
                return
            _foreground(env, show_secrets)
        finally:
            if not detach:
                with _err().status("removing the environment ..."):
                    env.close()

    _run(body)


def _lease(settings: Settings, services: list[str] | None, workers: int) -> Lease | None:
    """A warm environment from the daemon when one answers (setting `daemon`: auto, on, off)."""
    from envmgr.daemon.client import lease_if_running

    with _err().status("asking the envmgr daemon for an environment ..."):
        return lease_if_running(settings, services or None, workers)


def _up_leased(lease: Lease, settings: Settings, env_file: Path | None, as_json: bool, show_secrets: bool) -> None:
    """Hold a lease in the foreground; Ctrl-C hands it back (the daemon resets it and keeps it warm)."""
    from envmgr.daemon.client import DaemonClient

    try:
        env = Environment.attach(lease.id, settings=settings)
        endpoints = _application_view(env)
        if env_file is not None:
            _write_env_file(env_file, endpoints, settings.export)
        if as_json:
            print(endpoints.to_json())
        _err().print(f"leased {'warm ' if lease.warm else ''}environment {lease.id} from the daemon")
        if not as_json:
            _print_variables(endpoints, settings.export, show_secrets)
        _foreground(env, show_secrets)
    finally:
        try:
            DaemonClient().release(lease.id)
        except (DaemonNotRunningError, EnvironmentNotFoundError) as exc:  # daemon stopped (--force): env gone too
            _err().print(f"envmgr: lease {lease.id} not handed back: {exc.cause}", highlight=False, soft_wrap=True)


def _print_variables(endpoints: Endpoints, export: dict[str, str], show_secrets: bool) -> None:
    """Every connection variable (what --env-file writes): the services' own and the [tool.envmgr.export] table's;
    passwords masked unless `show_secrets`."""
    from envmgr.exports import exported_variables

    console = _err()
    masked = "" if show_secrets else "; passwords masked: --show-secrets prints them"
    console.print(f"connection variables (also written by --env-file{masked}):")
    for name, value in sorted(exported_variables(endpoints, export).items()):
        shown = value
        if not show_secrets:
            for endpoint in endpoints.all():
                shown = endpoint.redacted(shown)
        console.print(f"  {name}={shown}", highlight=False, markup=False, soft_wrap=True)


def _foreground(env: Environment, show_secrets: bool) -> None:
    """Show a live status table until SIGINT or SIGTERM."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    console = _err()
    console.print("Ctrl-C to stop and remove it.")
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
    _err().print(
        f"sandbox {job.sandbox} ({job.source}); remove it with: envmgr down --sandbox {job.sandbox}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    return job.sandbox


def _write_env_file(path: Path, endpoints: Endpoints, export: dict[str, str]) -> None:
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
            _err().print("no envmgr environments on this engine")
            return
        table = Table("id", "state", "sandbox", "owner", "age", "services")
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
            if row["orphaned"]:
                owner_text += " (gone)"
            table.add_row(
                row["id"], row["state"], row["sandbox"] or "", owner_text, f"{row['age_seconds']:.0f} s", services
            )
        _out().print(table)

    _run(body)


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
        "age_seconds": round(time.time() - record.created, 1),
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
            _err().print(f"removed {env_id} ({kind}, {_age(now - record.created)} old, {count} resources)")
        what = "orphaned environment(s)" if limit is None else f"environment(s) older than {older_than}"
        _err().print(f"removed {len(removed)} {what}{': ' + ', '.join(removed) if removed else ''}")

    _run(body)


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


@app.command()
def doctor(config: ConfigOption = None, image_set: ImageSetOption = None) -> None:
    """Check the engine and the images, and say what to do about what is missing."""

    def body() -> None:
        settings = _settings(config, image_set)
        engine = Engine.connect()
        info = engine.describe()
        console = _out()
        ok = ("ok", "green")
        where = "remote" if info.remote else "local"
        secured = ", TLS" if info.tls else ", SSH" if engine.address.scheme == "ssh" else ""
        console.print(Text.assemble(ok, f" engine {info.kind} {info.version} (API {info.api_version})"))
        console.print(Text.assemble(ok, f" at {info.url} ({where}{secured})"))
        binding = f"ports bound to {info.published_on} on the engine" if info.remote else "published ports only"
        console.print(Text.assemble(ok, f" containers are reached at {info.reached_at} ({binding})"))
        if info.remote and not info.tls and engine.address.scheme != "ssh":
            console.print(
                Text.assemble(
                    ("warning", "yellow"),
                    f" {info.url} is plain TCP: whoever reaches it controls the engine; use TLS (DOCKER_TLS_VERIFY=1, "
                    "DOCKER_CERT_PATH) or ssh://",
                )
            )
        from envmgr.services.registry import create_service

        problems = 0
        for name in settings.enabled_services():
            service = create_service(name, settings)
            derived = service.derived_image()
            if derived is not None and not engine.has_image(derived.tag):  # built on first use, from the base
                console.print(f"note {name}: image {derived.tag} is built from {derived.source} on first use")
            image = service.base_image() if derived is not None else service.image()
            if engine.has_image(image):
                console.print(Text.assemble(ok, f" {name}: image {image} present"))
            else:
                problems += 1
                advice = (
                    f"envmgr images build {name}"
                    if settings.image_set == "local"
                    else "pulled on first use; without a registry: ENVMGR_IMAGE_SET=local and envmgr images build"
                )
                console.print(Text.assemble(("missing", "yellow"), f" {name}: image {image} ({advice})"))
        if "redis" in settings.enabled_services() and not settings.redis.password:
            problems += _no_redis_password(console, engine.publish_address())
        console.print(f"image set: {settings.image_set}; {problems} problem(s)")

    _run(body)


def _no_redis_password(console: Console, publish_address: str) -> int:
    """Say, in one line, that Redis runs without a password and who can reach it; 1 (a problem) when everybody can."""
    if publish_address == "127.0.0.1":
        console.print(
            Text.assemble(("ok", "green"), " redis: password = false: no password, published on 127.0.0.1 only")
        )
        return 0
    console.print(
        Text.assemble(
            ("warning", "yellow"),
            " redis: password = false on a remote engine: reachable without a password on every interface of the "
            f"engine's host ({publish_address}); keep the password there",
        )
    )
    return 1


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
    no_cache: Annotated[bool, typer.Option("--no-cache", help="rebuild every layer")] = False,
    official_lookalike: Annotated[
        bool,
        typer.Option(
            "--official-lookalike",
            help="build the variants without envmgr's extras, tagged with the official image names (to run "
            "ENVMGR_IMAGE_SET=official without a registry); an official image already pulled is left alone",
        ),
    ] = False,
) -> None:
    """Build the local image set from the services' image folders (layers are cached)."""

    def body() -> None:
        catalog = official_lookalikes() if official_lookalike else local_images()
        requested = services or list(catalog)
        no_twin = [name for name in requested if official_lookalike and name in without_official_image()]
        names = [name for name in requested if name not in no_twin]
        unknown = [name for name in names if name not in catalog]
        if unknown:
            raise EnvmgrError(f"no image called {', '.join(unknown)}", f"choose among {', '.join(catalog)}")
        engine = Engine.connect()
        console = _err()
        for name in no_twin:
            console.print(f"[yellow]skipped[/] {name}: no official image (both image sets use the local one)")
        for name in names:
            if official_lookalike and foreign_image(engine, catalog[name].tag):
                console.print(
                    f"[yellow]skipped[/] {catalog[name].tag}: an image of that name exists that envmgr did not build "
                    "(the official one, pulled); left as it is"
                )
                continue
            started = time.monotonic()
            with console.status(Text(f"building {catalog[name].tag}")) as progress:

                def show(line: str, progress: Any = progress, name: str = name) -> None:
                    if not quiet:
                        console.print(f"{name} | {line}", highlight=False, markup=False)
                    progress.update(Text(f"building {catalog[name].tag}: {line[:80]}"))  # a build line is no markup

                tag = build_image(
                    engine,
                    catalog[name],
                    base_image=base_image,
                    ca_certificates=ca_cert or [],
                    on_line=show,
                    no_cache=no_cache,
                )
            console.print(Text.assemble(("built", "green"), f" {tag} in {time.monotonic() - started:.1f} s"))

    _run(body)


@images_app.command("list")
def images_list() -> None:
    """Show the local images and whether they are built."""

    def body() -> None:
        engine = Engine.connect()
        for name, image in local_images().items():
            state = ("present", "green") if engine.has_image(image.tag) else ("missing", "yellow")
            _out().print(Text.assemble(f"{name:12} {image.tag:40} ", state))

    _run(body)


compose_app = typer.Typer(help="Plain docker compose files of envmgr environments.", no_args_is_help=True)
app.add_typer(compose_app, name="compose")


@compose_app.command("export")
def compose_export(
    services: Annotated[list[str] | None, typer.Argument(help="services to export (default: the enabled ones)")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write to this file (mode 0600) instead of stdout")
    ] = None,
    config: ConfigOption = None,
    image_set: ImageSetOption = None,
) -> None:
    """Write a docker compose file of the environment `envmgr up` would start (session form, fresh passwords)."""

    def body() -> None:
        from envmgr.compose import compose_document, render, write_private

        settings = _settings(config, image_set)
        base_dir = output.resolve().parent if output is not None else None
        text = render(compose_document(settings, services or None, base_dir=base_dir))
        if output is None:
            sys.stdout.write(text)
            return
        write_private(output, text)
        _err().print(
            f"wrote {output}; start it with: docker compose -p NAME -f {output} up -d", highlight=False, soft_wrap=True
        )

    _run(body)


def main() -> None:
    app()


daemon_app = typer.Typer(help="The daemon that keeps warm environments for test runs.", no_args_is_help=True)
app.add_typer(daemon_app, name="daemon")

SocketOption = Annotated[
    Path | None, typer.Option("--socket", envvar="ENVMGR_DAEMON_SOCKET", help="the daemon's Unix socket")
]


@daemon_app.command("start")
def daemon_start(socket_path: SocketOption = None) -> None:
    """Start the daemon in the background (one per user and engine) and wait until it answers."""

    def body() -> None:
        from envmgr.daemon.client import DaemonClient, default_socket_path, spawn

        path = socket_path or default_socket_path()
        client = DaemonClient(path)
        if client.available():
            _err().print(f"envmgr daemon already running on {path}")
            return
        pid, log = spawn(path)
        _err().print(f"envmgr daemon {pid} listening on {path} (log: {log})", soft_wrap=True)

    _run(body)


@daemon_app.command("run")
def daemon_run(socket_path: SocketOption = None) -> None:
    """Run the daemon in the foreground (for containers and supervisors)."""

    def body() -> None:
        import logging

        from envmgr.daemon.server import serve

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        serve(socket_path)

    _run(body)


def _running_daemon(socket_path: Path | None) -> DaemonClient:
    from envmgr.daemon.client import DaemonClient

    client = DaemonClient(socket_path)
    if not client.available():
        raise DaemonNotRunningError(f"no envmgr daemon answers on {client.path}", "start one: envmgr daemon start")
    return client


@daemon_app.command("stop")
def daemon_stop(
    socket_path: SocketOption = None,
    force: Annotated[bool, typer.Option("--force", help="stop even while environments are leased")] = False,
) -> None:
    """Stop the daemon; it removes its environments."""

    def body() -> None:
        client = _running_daemon(socket_path)
        client.stop(force)
        _err().print("envmgr daemon stopping")

    _run(body)


@daemon_app.command("status")
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
        _out().print(table)

    _run(body)
