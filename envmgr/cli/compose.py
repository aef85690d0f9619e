"""`envmgr compose export`: a plain docker compose file of the environment `envmgr up` would start."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from envmgr.cli.app import (
    ConfigOption,
    ImageSetOption,
    err_console,
    read_settings,
    run_command,
)


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

        settings = read_settings(config, image_set)
        base_dir = output.resolve().parent if output is not None else None
        text = render(compose_document(settings, services or None, base_dir=base_dir))
        if output is None:
            sys.stdout.write(text)
            return
        write_private(output, text)
        err_console().print(
            f"wrote {output}; start it with: docker compose -p NAME -f {output} up -d", highlight=False, soft_wrap=True
        )

    run_command(body)
