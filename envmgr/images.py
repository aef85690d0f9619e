"""Building the local image set from each service's `image/` folder (`envmgr/services/<name>/image/`, shipped in the
package), for machines that cannot pull from a registry.

Each folder is a build context whose Dockerfile takes a `BASE_IMAGE` build argument. Before a build envmgr writes
`extra-ca.crt` into a copy of the context: the CA certificates to trust inside the build (empty when none are
given), for networks whose TLS-intercepting proxy would otherwise break pip and npm. Layers are cached by the engine.

The same Dockerfiles build a second variant (`ENVMGR_VARIANT=official-lookalike`): the image without envmgr's extras
(baked Postgres cluster, LocalStack reset extension, WireMock AppCDS archive), tagged with the official image's name,
so that `image_set = "official"` finds it present and runs envmgr's official-image code path without a registry.
Every build carries the label `org.envmgr.variant`; an image of an official name without it (the real image, pulled)
is never overwritten.

A service may also have an image derived for the project (`Service.derived_image`: the Celery worker with the
project's requirements): `ensure_derived_image` builds it when its tag is missing, with `ca-bundle.pem` in the
context (certifi's CAs and the extra ones, `derived_ca_bundle`), on the environment's own network (the build's
downloads do not depend on the engine's default bridge). Such a build is part of its environment's life: a
`BuildCancel` ends it from another thread (the environment's removal), by hanging up on the engine, which then stops
the build and removes its step container (`forcerm`), so that nothing of it stays on the network.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import docker.errors
import requests

from envmgr.engine.connection import Engine
from envmgr.errors import ConfigError, ImageError, first_line
from envmgr.progress.events import Advanced, Progress, silent, timed
from envmgr.services.base import DerivedImage
from envmgr.services.registry import SERVICES, ServiceRegistry

__all__ = [
    "LOCAL",
    "OFFICIAL_LOOKALIKE",
    "VARIANT_LABEL",
    "BuildCancel",
    "LocalImage",
    "Variant",
    "build_image",
    "build_steps",
    "derived_ca_bundle",
    "ensure_derived_image",
    "foreign_image",
    "local_images",
    "official_lookalikes",
    "without_official_image",
]

CA_FILE_NAME = "extra-ca.crt"
CA_BUNDLE_NAME = "ca-bundle.pem"
"""the CAs a derived image's build trusts (certifi's and the extra ones)"""
HOST_CA_GLOB = "/usr/local/share/ca-certificates/**/*.crt"
"""the CA certificates added to this machine (update-ca-certificates), trusted in derived builds by default"""
DERIVED_LABEL = "org.envmgr.derived-from"
DERIVED_FIX = (
    "make the file install with pip on Python 3.11 for Linux (wheels, no paths of the project); behind a "
    "TLS-intercepting proxy set ENVMGR_CA_CERT to its CA certificate"
)
VARIANT_LABEL = "org.envmgr.variant"
"""label every image envmgr builds from a service's image folder carries: its variant"""
VARIANT_BUILD_ARG = "ENVMGR_VARIANT"
STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
"""a build step as the engine's builder announces it"""

Variant = Literal["local", "official-lookalike"]
LOCAL: Variant = "local"
OFFICIAL_LOOKALIKE: Variant = "official-lookalike"


@dataclass(frozen=True)
class LocalImage:
    """One buildable image: its build's name, its folder (the service's `image/`), the tag envmgr runs and the
    variant to build."""

    name: str
    folder: Path
    tag: str
    variant: Variant = LOCAL


def local_images(registry: ServiceRegistry = SERVICES) -> dict[str, LocalImage]:
    """Every buildable image by its build's name (postgres, redis, ..., celery-worker)."""
    return {
        cls.build_name: LocalImage(cls.build_name, cls.image_folder(), cls.local_image) for cls in registry.values()
    }


def official_lookalikes(registry: ServiceRegistry = SERVICES) -> dict[str, LocalImage]:
    """The official-lookalike variant of every image that has an official twin, tagged with the official name."""
    return {
        cls.build_name: LocalImage(cls.build_name, cls.image_folder(), cls.official_image, OFFICIAL_LOOKALIKE)
        for cls in registry.values()
        if cls.official_image != cls.local_image
    }


def without_official_image(registry: ServiceRegistry = SERVICES) -> list[str]:
    """Builds whose service uses the same image in both sets (the Celery worker): no lookalike to build."""
    return [cls.build_name for cls in registry.values() if cls.official_image == cls.local_image]


def foreign_image(engine: Engine, tag: str) -> bool:
    """An image called `tag` exists and envmgr did not build it (no variant label): the real one, pulled."""
    try:
        labels = engine.client.images.get(tag).labels or {}
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.DockerException as exc:
        raise ImageError(f"cannot inspect image {tag}: {first_line(exc)}", "check the Docker engine") from None
    return VARIANT_LABEL not in labels


def build_image(
    engine: Engine,
    image: LocalImage,
    *,
    base_image: str | None = None,
    ca_certificates: Sequence[Path] = (),
    on_line: Callable[[str], None] = lambda line: None,
    no_cache: bool = False,
) -> str:
    """Build one image; stream its output lines to `on_line`; return the tag.

    An official-lookalike is never built over an image of that name that envmgr did not build (see `foreign_image`).
    """
    source = image.folder
    if not (source / "Dockerfile").is_file():
        raise ConfigError(f"no Dockerfile in {source}", "reinstall envmgr: its image folders are part of the package")
    if image.variant != LOCAL and foreign_image(engine, image.tag):
        raise ImageError(
            f"{image.tag} exists and was not built by envmgr (no {VARIANT_LABEL} label): not overwritten",
            f"use it as it is, or remove it (`docker rmi {image.tag}`) to build envmgr's lookalike",
        )
    buildargs = {"BASE_IMAGE": base_image} if base_image else {}
    if image.variant != LOCAL:
        buildargs[VARIANT_BUILD_ARG] = image.variant
    with tempfile.TemporaryDirectory(prefix=f"envmgr-build-{image.name}-") as scratch:
        context = Path(scratch) / image.name
        shutil.copytree(source, context, ignore=shutil.ignore_patterns(CA_FILE_NAME, "__pycache__"))
        (context / CA_FILE_NAME).write_text(_ca_bundle(ca_certificates))
        try:
            stream = engine.client.api.build(
                path=str(context),
                tag=image.tag,
                buildargs=buildargs,
                rm=True,
                forcerm=True,
                decode=True,
                nocache=no_cache,
            )
            _follow(stream, image.tag, on_line)
        except docker.errors.DockerException as exc:
            raise ImageError(f"building {image.tag} failed: {first_line(exc)}", "see the build output above") from None
    return image.tag


BUILD_FIX = "read the build output; behind a TLS-intercepting proxy pass --ca-cert with its CA certificate"


def _follow(stream: Iterable[dict[str, Any]], what: str, on_line: Callable[[str], None], fix: str = BUILD_FIX) -> None:
    """Pass the build's output lines on; ImageError at its first error, naming the last `ERROR:` line printed
    before it (pip's reason) when there is one."""
    reason = ""
    for chunk in stream:
        if "error" in chunk:
            detail = f" ({reason})" if reason else ""
            raise ImageError(f"building {what} failed: {str(chunk['error']).strip()}{detail}", fix)
        text = str(chunk.get("stream") or chunk.get("status") or "").rstrip()
        for line in text.splitlines():
            if line.strip():
                on_line(line)
            if line.strip().startswith("ERROR:"):
                reason = line.strip()


def _ca_bundle(paths: Sequence[Path]) -> str:
    parts = []
    for path in paths:
        try:
            parts.append(path.read_text().strip() + "\n")
        except OSError as exc:
            raise ConfigError(
                f"cannot read CA certificate {path}: {exc.strerror}", "pass a readable PEM file"
            ) from None
    return "".join(parts)


def extra_ca_certificates() -> list[Path]:
    """The extra CAs a derived build trusts: `ENVMGR_CA_CERT` (paths separated by the path separator or spaces),
    else the certificates added to this machine (/usr/local/share/ca-certificates)."""
    explicit = os.environ.get("ENVMGR_CA_CERT", "").replace(os.pathsep, " ").split()
    if explicit:
        return [Path(path) for path in explicit]
    return [Path(path) for path in sorted(glob.glob(HOST_CA_GLOB, recursive=True))]


def derived_ca_bundle(extra: Sequence[Path]) -> str:
    """certifi's CA bundle (what pip trusts by default) followed by the extra CAs."""
    import certifi

    return Path(certifi.where()).read_text() + "\n" + _ca_bundle(extra)


class BuildCancel:
    """Ends the derived builds under way that were given it, from any thread: it hangs up on the engine (a legacy
    build ends when its client goes, and `forcerm` removes its step container); a build that begins afterwards
    ends at once. The build then raises ImageError."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: list[requests.Response] = []
        self.cancelled = False

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            responses = list(self._open)
        for response in responses:
            _hang_up(response)

    @contextmanager
    def tracking(self, responses: Sequence[requests.Response]) -> Iterator[None]:
        """The block follows a build whose HTTP responses are `responses`: cancel() hangs up on them."""
        with self._lock:
            self._open.extend(responses)
            cancelled = self.cancelled
        try:
            if cancelled:
                for response in responses:
                    _hang_up(response)
            yield
        finally:
            with self._lock:
                self._open = [known for known in self._open if all(known is not r for r in responses)]


def _hang_up(response: requests.Response) -> None:
    """Close the connection under a streamed response, waking the thread that reads it (shutdown does; a close
    from another thread would not)."""
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    try:
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)
        elif sock is not None:
            sock.close()  # a socket-like object (ssh://)
        else:
            response.close()
    except OSError:
        pass  # closed already


def build_steps(
    service: str, progress: Progress, on_line: Callable[[str], None] = lambda line: None
) -> Callable[[str], None]:
    """`on_line` that also tells `progress` each build step (`Step 2/5 : RUN pip install ...`)."""

    def line(text: str) -> None:
        step = STEP.match(text.strip())
        if step is not None:
            progress(Advanced(service, "image", int(step[1]), int(step[2]), detail=step[3].strip()))
        on_line(text)

    return line


def ensure_derived_image(
    engine: Engine,
    image: DerivedImage,
    *,
    network: str | None = None,
    on_line: Callable[[str], None] = lambda line: None,
    cancel: BuildCancel | None = None,
    service: str = "",
    progress: Progress = silent,
) -> bool:
    """Build `image` unless its tag is present; True when it was built. `network`: where the build's steps run
    (a network envmgr made), else the engine's default. `cancel`: what may end the build from another thread.
    `progress` hears the build begin, each step and its end (as phase `image` of `service`)."""
    if engine.has_image(image.tag):
        return False
    with timed(progress, service, "image", detail=image.tag):
        _build_derived(engine, image, network, build_steps(service, progress, on_line), cancel or BuildCancel())
    return True


def _build_derived(
    engine: Engine, image: DerivedImage, network: str | None, on_line: Callable[[str], None], cancel: BuildCancel
) -> None:
    what = f"{image.tag} from {image.source}"
    with tempfile.TemporaryDirectory(prefix="envmgr-build-derived-") as scratch:
        context = Path(scratch)
        (context / "Dockerfile").write_text(image.dockerfile)
        for name, data in image.files.items():
            (context / name).write_bytes(data)
        (context / CA_BUNDLE_NAME).write_text(derived_ca_bundle(extra_ca_certificates()))
        options: dict[str, Any] = {"network_mode": network} if network else {}
        try:
            with engine.responses() as responses:  # the build's: cancel() hangs up on it
                stream = engine.client.api.build(
                    path=str(context),
                    tag=image.tag,
                    buildargs={"BASE_IMAGE": image.base},
                    labels={DERIVED_LABEL: image.base},
                    rm=True,
                    forcerm=True,
                    decode=True,
                    **options,
                )
            with cancel.tracking(responses):
                _follow(stream, what, on_line, DERIVED_FIX)
        except (ImageError, docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
            if cancel.cancelled:
                raise ImageError(
                    f"the build of {what} was stopped: its environment is being removed",
                    "nothing to do: it is built again when an environment needs it",
                ) from None
            if isinstance(exc, ImageError):
                raise
            raise ImageError(f"building {what} failed: {first_line(exc)}", DERIVED_FIX) from None
