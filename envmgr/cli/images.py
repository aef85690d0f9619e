"""`envmgr images build`, `envmgr images list`: the local image set."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from envmgr.cli.app import (
    err_console,
    out_console,
    run_command,
)
from envmgr.engine.connection import Engine
from envmgr.errors import (
    EnvmgrError,
)
from envmgr.images import build_image, foreign_image, local_images, official_lookalikes, without_official_image


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
        console = err_console()
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

    run_command(body)


def images_list() -> None:
    """Show the local images and whether they are built."""

    def body() -> None:
        engine = Engine.connect()
        for name, image in local_images().items():
            state = ("present", "green") if engine.has_image(image.tag) else ("missing", "yellow")
            out_console().print(Text.assemble(f"{name:12} {image.tag:40} ", state))

    run_command(body)
