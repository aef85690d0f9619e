"""`envmgr doctor`: the engine, the images and each service's own checks, with what to do about each problem."""

from __future__ import annotations

from rich.text import Text

from envmgr.cli.app import (
    ConfigOption,
    ImageSetOption,
    out_console,
    read_settings,
    run_command,
)
from envmgr.engine.connection import Engine


def doctor(config: ConfigOption = None, image_set: ImageSetOption = None) -> None:
    """Check the engine and the images, and say what to do about what is missing."""

    def body() -> None:
        settings = read_settings(config, image_set)
        engine = Engine.connect()
        info = engine.describe()
        console = out_console()
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
                    f"envmgr images build {service.build_name}"
                    if settings.image_set == "local"
                    else "pulled on first use; without a registry: ENVMGR_IMAGE_SET=local and envmgr images build"
                )
                console.print(Text.assemble(("missing", "yellow"), f" {name}: image {image} ({advice})"))
            for note in service.doctor(engine.publish_address()):
                problems += 0 if note.ok else 1
                console.print(
                    Text.assemble(("ok", "green") if note.ok else ("warning", "yellow"), f" {name}: {note.text}")
                )
        console.print(f"image set: {settings.image_set}; {problems} problem(s)")

    run_command(body)
