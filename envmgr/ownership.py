"""Whether a file or folder is the current user's alone: owned by them, and nobody else can change it (or, for a
secret, read it). Used for the daemon's socket (envmgr.daemon.trust) and the key of envmgr's credentials
(envmgr.credentials): a path another user could have made, or could still change, cannot be trusted.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Untrusted", "untrusted"]

KINDS = {"folder": stat.S_ISDIR, "socket": stat.S_ISSOCK, "file": stat.S_ISREG}


@dataclass(frozen=True)
class Untrusted:
    """Why a path cannot be trusted, and the `chmod` that would fix it when it is the user's own (else None)."""

    cause: str
    chmod: str | None = None


def untrusted(path: Path, *, what: str, kind: str, secret: bool = False) -> Untrusted | None:
    """None when `path` is a `kind` ("folder", "socket" or "file") of the current user that no one else can write
    (nor read, with `secret`); else why not. FileNotFoundError when it does not exist. A symbolic link is judged by
    what it points to."""
    info = path.stat()
    if not KINDS[kind](info.st_mode):
        return Untrusted(f"{what} {path} is not a {kind}")
    if info.st_uid != os.getuid():
        return Untrusted(f"{what} {path} belongs to uid {info.st_uid}, not to you (uid {os.getuid()})")
    mode = stat.S_IMODE(info.st_mode)
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return Untrusted(f"{what} {path} is writable by others (mode {mode:o})", f"chmod go-rwx {path}")
    if secret and info.st_mode & (stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH):
        return Untrusted(f"{what} {path} is readable by others (mode {mode:o})", f"chmod go-rwx {path}")
    return None
