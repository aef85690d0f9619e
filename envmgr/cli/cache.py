"""`envmgr cache save DIR` and `envmgr cache restore DIR`: the project's migrated, seeded template database and a
cache folder (`envmgr.services.postgres.template.cache`; in a test run: `[tool.envmgr.postgres] template_cache`).

* `save DIR`: with `--env ID`, the template of that running environment's server; with `--url URL`, of a server
  envmgr did not start (a superuser URL; the host's pg_dump); with neither, a temporary Postgres environment builds
  it (or finds it in DIR already) and is removed.
* `restore DIR`: DIR's entry for this project's template into a running server (`--env ID`, default the
  environment of ENVMGR_ENV_ID or the only one on the engine; or `--url URL`), so that runs against it migrate
  nothing. No entry for the template's key, or a damaged one, is exit code 10.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from envmgr.cli.app import ConfigOption, ImageSetOption, err_console, read_settings, run_command
from envmgr.config import Settings
from envmgr.endpoints import ServiceEndpoint
from envmgr.errors import EnvironmentNotFoundError, TemplateCacheError
from envmgr.services.base import ContainerCommands

__all__ = ["cache_app", "cache_restore", "cache_save"]

cache_app = typer.Typer(
    help="The template cache: migrated, seeded templates kept in a folder (a CI cache, a fresh engine).",
    no_args_is_help=True,
)

FolderArgument = Annotated[Path, typer.Argument(help="the cache folder", file_okay=False)]
EnvOption = Annotated[str | None, typer.Option("--env", help="a running environment (see envmgr status)")]
UrlOption = Annotated[
    str | None, typer.Option("--url", help="a server envmgr did not start: a superuser URL (postgresql://...)")
]


def cache_save(
    folder: FolderArgument,
    env_id: EnvOption = None,
    url: UrlOption = None,
    config: ConfigOption = None,
    image_set: ImageSetOption = None,
) -> None:
    """Save the project's template (migrations and seeds applied) into a cache folder."""

    def body() -> None:
        from envmgr.services.postgres.template.transfer import save_template

        settings = read_settings(config, image_set)
        if env_id is None and url is None:
            _save_from_a_new_server(settings, folder)
            return
        endpoint, commands = _server(settings, env_id, url)
        saved = save_template(endpoint, settings, folder, commands)
        err_console().print(f"{saved.line} ({saved.entry.name})", soft_wrap=True)

    run_command(body)


def cache_restore(
    folder: FolderArgument,
    env_id: EnvOption = None,
    url: UrlOption = None,
    config: ConfigOption = None,
    image_set: ImageSetOption = None,
) -> None:
    """Restore the project's template from a cache folder into a running server: its runs migrate nothing."""

    def body() -> None:
        from envmgr.services.postgres.template.transfer import restore_template

        settings = read_settings(config, image_set)
        endpoint, commands = _server(settings, env_id or os.environ.get("ENVMGR_ENV_ID") or None, url, only=True)
        restored = restore_template(endpoint, settings, folder, commands)
        err_console().print(restored.line, soft_wrap=True)

    run_command(body)


def _save_from_a_new_server(settings: Settings, folder: Path) -> None:
    from envmgr.environment import Environment

    cached = settings.model_copy(
        update={"postgres": settings.postgres.model_copy(update={"template_cache": folder.resolve()})}
    )
    starting = err_console().status("starting a Postgres server to build the template")
    with starting, Environment(["postgres"], settings=cached) as env:
        line = env.endpoints["postgres"].extra.get("template_cache", "")
    if " restored from " in line:
        err_console().print(f"{line}: it is there already", soft_wrap=True)
    elif " saved in " in line:
        err_console().print(line, soft_wrap=True)
    else:
        raise TemplateCacheError(line.removeprefix("template cache: ") or "nothing was saved", "see the line above")


def _server(
    settings: Settings, env_id: str | None, url: str | None, *, only: bool = False
) -> tuple[ServiceEndpoint, ContainerCommands | None]:
    """The Postgres server to save from or restore into: its superuser endpoint, and the engine that runs its
    container (None for a server envmgr did not start)."""
    if url is not None:
        if env_id is not None:
            raise TemplateCacheError("both --env and --url name a server", "name one")
        from envmgr.services.postgres.tools import endpoint_for_url

        return endpoint_for_url(url), None
    from envmgr.engine.connection import Engine
    from envmgr.environment import Environment

    engine = Engine.connect()
    if env_id is None:
        found = list(engine.environments())
        if not only or len(found) != 1:
            raise EnvironmentNotFoundError(
                f"{len(found)} environments on this engine; which server?",
                "pass --env ID (see envmgr status) or --url URL",
            )
        env_id = found[0]
    env = Environment.attach(env_id, engine=engine, settings=settings)
    return env.endpoints["postgres"], env.service("postgres").commands
