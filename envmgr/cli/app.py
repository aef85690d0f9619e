"""The `envmgr` command: the only place where errors become exit codes.

envmgr up [SERVICE...] [--detach --json]      start an environment (foreground until Ctrl-C, or detached)
envmgr down ID | --all | --sandbox ID         remove environments
envmgr status [--json]                        environments on this engine and each service's health
envmgr reset [SERVICE...] --env ID            back to the seeded state
envmgr gc [--older-than DURATION]             remove what dead owners left behind (and old sandboxes)
envmgr doctor                                 engine, images and advice
envmgr images build [SERVICE...]              build the local image set from the services' image folders
                   [--official-lookalike]       ... or its variants tagged with the official names
envmgr report show [REPORT] [--open]          a run report (the last run's from pytest's cache), or in a browser
envmgr report compare [A B]                   what got slower from one run report to another

The apps and their shared options, consoles and error handling (`run_command`: the only place where errors become exit
codes); each command group is a module of its own."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from envmgr.config import Settings, load_settings
from envmgr.errors import EnvmgrError

__all__ = [
    "ConfigOption",
    "ImageSetOption",
    "ShowSecretsOption",
    "SocketOption",
    "app",
    "compose_app",
    "daemon_app",
    "err_console",
    "images_app",
    "main",
    "out_console",
    "read_settings",
    "report_app",
    "run_command",
]

app = typer.Typer(
    name="envmgr",
    help="Ephemeral, isolated test environments on Docker: PostgreSQL, Redis, Celery, LocalStack, WireMock.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
images_app = typer.Typer(help="Build and inspect the local image set.", no_args_is_help=True)
app.add_typer(images_app, name="images")


compose_app = typer.Typer(help="Plain docker compose files of envmgr environments.", no_args_is_help=True)
app.add_typer(compose_app, name="compose")

daemon_app = typer.Typer(help="The daemon that keeps warm environments for test runs.", no_args_is_help=True)
app.add_typer(daemon_app, name="daemon")

report_app = typer.Typer(help="The run reports pytest writes, and what got slower.", no_args_is_help=True)
app.add_typer(report_app, name="report")


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


def err_console() -> Console:
    """The console for messages (stderr). Strings print as they are: no Rich markup (`[tool.envmgr]`, a regex's
    brackets and `[/bold]` in a seed stay text), no `:emoji:` codes, no highlighting; styles come from `Text` parts.
    (`status()` and its `update()` still parse a string as markup: give them `Text`.)"""
    return Console(stderr=True, markup=False, emoji=False, highlight=False)


def out_console() -> Console:
    """The console for results (stdout): plain text like `err_console()`."""
    return Console(markup=False, emoji=False, highlight=False)


def run_command(action: Callable[[], T]) -> T:
    """Run a command body; turn envmgr errors into a one-line cause, the fix and a non-zero exit code."""
    try:
        return action()
    except EnvmgrError as exc:
        err_console().print(Text.assemble(("envmgr: error:", "bold red"), " ", exc.cause), soft_wrap=True)
        if exc.fix:
            err_console().print(Text.assemble("  ", ("fix:", "bold"), " ", exc.fix), soft_wrap=True)
        details = exc.details()
        if details is not None and details[1].strip():
            err_console().print(f"  {details[0]}:", highlight=False, markup=False)
            err_console().print(details[1].rstrip(), highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console().print("envmgr: interrupted")
        sys.exit(130)


def read_settings(config: Path | None, image_set: str | None) -> Settings:
    overrides: dict[str, Any] = {}
    if image_set is not None:
        overrides["image_set"] = image_set
    return load_settings(config, **overrides)


SocketOption = Annotated[
    Path | None, typer.Option("--socket", envvar="ENVMGR_DAEMON_SOCKET", help="the daemon's Unix socket")
]


def main() -> None:
    app()
