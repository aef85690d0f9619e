"""Who may be trusted on the daemon's socket: its folder, the socket file and the process behind it are the user's.

A lease answer carries credentials (database URLs with their passwords) and a request names the project's files
(migrations, seeds, Celery code), so a client talks only to a daemon of its own user. Before it sends anything, the
socket's folder and the socket must belong to the current user and be writable by nobody else (no one else can put a
socket there), and the process that accepted the connection must run as the current user (SO_PEERCRED). The daemon
serves only from a folder of its own that nobody else can write to. Neither is a symbolic link (judged by `lstat`;
the folder is opened with O_NOFOLLOW, checked and chmodded through that descriptor), and the folder that holds the
socket's folder lets no one else replace it (the user's or root's, and writable by no one else unless sticky).
An untrusted path or process is a DaemonUntrustedError (with `daemon = "auto"`: no daemon, and a warning).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from pathlib import Path

from envmgr.errors import DaemonNotRunningError, DaemonUntrustedError
from envmgr.ownership import Untrusted, UntrustedPath, opened, untrusted, untrusted_parent

__all__ = ["check_peer", "check_socket", "private_folder"]

FIX = (
    "someone else may be posing as your envmgr daemon: remove {path} (as its owner or root), or point "
    "ENVMGR_DAEMON_SOCKET to a socket in a folder of yours"
)
PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def private_folder(folder: Path) -> None:
    """Create the daemon's folder (0700) or check the one there: the user's own, not a link, writable by no one
    else, in a folder that lets no one else replace it; then made 0700 (through its open descriptor)."""
    what = "the folder of the envmgr daemon's socket"
    folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _raise_for(untrusted_parent(folder, what=what), folder)
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    try:
        with opened(folder, what=what, kind="folder") as fd:
            os.fchmod(fd, 0o700)
    except UntrustedPath as exc:
        _raise_for(exc.problem, folder)


def check_socket(path: Path) -> None:
    """Before connecting: the socket's folder and the socket are the user's and writable by no one else.

    DaemonNotRunningError when there is no socket; DaemonError when it cannot be trusted.
    """
    if not os.path.lexists(path):
        raise _not_running(path)
    try:
        _raise_for(untrusted_parent(path.parent, what="the folder of the envmgr daemon's socket"), path.parent)
    except FileNotFoundError:
        raise _not_running(path) from None
    _check_owned(path.parent, folder=True)
    _check_owned(path, folder=False)


def check_peer(connection: socket.socket, path: Path) -> None:
    """After connecting, before sending: the process that listens on the socket runs as the current user."""
    pid, uid, _ = PEERCRED.unpack(connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEERCRED.size))
    if uid != os.getuid():
        raise DaemonUntrustedError(
            f"the process listening on {path} (pid {pid}) runs as uid {uid}, not as you (uid {os.getuid()})",
            FIX.format(path=path),
        )


def _check_owned(path: Path, folder: bool) -> None:
    what = "the folder of the envmgr daemon's socket" if folder else "the envmgr daemon's socket"
    try:
        problem = untrusted(path, what=what, kind="folder" if folder else "socket")
    except FileNotFoundError:
        raise _not_running(path) from None
    _raise_for(problem, path)


def _raise_for(problem: Untrusted | None, path: Path) -> None:
    if problem is not None:
        fix = FIX.format(path=path)
        raise DaemonUntrustedError(
            problem.cause, f"{problem.chmod} if it is yours alone; else {fix}" if problem.chmod else fix
        )


def _not_running(path: Path) -> DaemonNotRunningError:
    return DaemonNotRunningError(f"no envmgr daemon answers on {path}", "start one: envmgr daemon start")
