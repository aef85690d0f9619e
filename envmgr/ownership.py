"""Whether a file or folder is the current user's alone: owned by them, and nobody else can change it (or, for a
secret, read it). Used for the daemon's socket and folder (envmgr.daemon.trust) and the key of envmgr's credentials
(envmgr.credentials): a path another user could have made, or could still change, cannot be trusted.

A symbolic link is never trusted, whatever it points to (another user may have planted it, and what it points to
may change): paths are judged by `lstat`, and folders and files are opened with O_NOFOLLOW and judged by `fstat` on
the open descriptor (`opened`), so that what is checked is what is used. The folder that holds such a path must not
let anyone else replace it (`untrusted_parent`).
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import pwd
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Untrusted", "UntrustedPath", "judged", "opened", "untrusted", "untrusted_parent"]

KINDS = {"folder": stat.S_ISDIR, "socket": stat.S_ISSOCK, "file": stat.S_ISREG}


@dataclass(frozen=True)
class Untrusted:
    """Why a path cannot be trusted, and the `chmod` that would fix it when it is the user's own (else None)."""

    cause: str
    chmod: str | None = None


class UntrustedPath(Exception):
    """Raised by `opened`: the path cannot be trusted (`problem`)."""

    def __init__(self, problem: Untrusted, path: Path) -> None:
        super().__init__(problem.cause)
        self.problem = problem
        self.path = path


def untrusted(path: Path, *, what: str, kind: str, secret: bool = False) -> Untrusted | None:
    """None when `path` is a `kind` ("folder", "socket" or "file") of the current user that no one else can write
    (nor read, with `secret`); else why not. FileNotFoundError when it does not exist. A symbolic link is untrusted
    (judged by `lstat`, never by what it points to)."""
    return judged(os.lstat(path), path, what=what, kind=kind, secret=secret)


def judged(info: os.stat_result, path: Path, *, what: str, kind: str, secret: bool = False) -> Untrusted | None:
    """`untrusted` for what `lstat` or `fstat` said of `path`."""
    if stat.S_ISLNK(info.st_mode):
        return Untrusted(f"{what} {path} is a symbolic link (envmgr follows none: another user may have planted it)")
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


def untrusted_parent(path: Path, *, what: str) -> Untrusted | None:
    """None when the folder holding `path` lets no one else put, rename or remove entries there: it belongs to the
    user or root, and no one else can write it, unless it is sticky (like /tmp: only an entry's owner may rename or
    remove it, and the entry itself must then be the user's, which its own check says). A folder writable by the
    user's own group is the user's alone when that group is the user's private group (name and members: the user).
    FileNotFoundError when it does not exist."""
    parent = path.parent
    info = os.stat(parent)
    if info.st_uid not in (os.getuid(), 0):
        return Untrusted(
            f"the folder {parent} that holds {what} {path} belongs to uid {info.st_uid}, not to you "
            f"(uid {os.getuid()}) nor root: its owner can replace what is in it"
        )
    others = info.st_mode & stat.S_IWOTH or (info.st_mode & stat.S_IWGRP and not _private_group(info.st_gid))
    if others and not info.st_mode & stat.S_ISVTX:
        mode = stat.S_IMODE(info.st_mode)
        return Untrusted(
            f"the folder {parent} that holds {what} {path} is writable by others (mode {mode:o}, not sticky): "
            "anyone who can write it can replace what is in it",
            f"chmod go-w {parent}" if info.st_uid == os.getuid() else None,
        )
    return None


@contextlib.contextmanager
def opened(
    path: Path,
    *,
    what: str,
    kind: str,
    secret: bool = False,
    dir_fd: int | None = None,
    shown: Path | None = None,
) -> Iterator[int]:
    """A descriptor of `path` (a "folder" or a "file", read-only), opened without following a link and judged by
    `fstat` (UntrustedPath otherwise); closed at the end. `dir_fd`: `path` is a name in that open folder (`shown`:
    its whole path, for messages). FileNotFoundError when it does not exist."""
    named = shown or path
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_DIRECTORY if kind == "folder" else 0)
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):  # a link (or not a folder): say which
            info = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
            problem = judged(info, named, what=what, kind=kind) or Untrusted(f"{what} {named} is not a {kind}")
            raise UntrustedPath(problem, named) from None
        raise
    try:
        found = judged(os.fstat(fd), named, what=what, kind=kind, secret=secret)
        if found is not None:
            raise UntrustedPath(found, named)
        yield fd
    finally:
        os.close(fd)


def _private_group(gid: int) -> bool:
    """Whether the group is the current user's private group: named after the user, no one else a member."""
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(gid)
    except KeyError:
        return False
    return gid == os.getgid() and group.gr_name == user and set(group.gr_mem) <= {user}
