"""The run-socket folders of pytest controllers, named after the process that made them.

A controller serves its xdist workers on `<temp>/envmgr-run-<pid>-<start ticks>-XXXXXXXX/controller.sock` (a 0700
folder of its own) and removes it at its end. A controller killed with SIGKILL cannot: its environment's watchdog
removes the folder once the owner is gone (`remove_dead(owner=...)`), and so does the next sweep (every environment
start, `envmgr gc`, every xdist run) for the current user's folders whose owner is gone, runs that started no
environment included.

Only folders of the current user are removed, never through a symbolic link (judged by `lstat`; `shutil.rmtree`
refuses a link and does not follow the links inside), and never one whose socket still accepts a connection (a live
controller whose pid this process cannot look up, in another pid namespace sharing the temp folder).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import stat
import tempfile
from pathlib import Path

from envmgr.engine.labels import Owner

__all__ = ["PREFIX", "SOCKET_NAME", "make", "owner_of", "remove_dead"]

PREFIX = "envmgr-run-"
SOCKET_NAME = "controller.sock"
_NAME = re.compile(rf"^{re.escape(PREFIX)}(\d+)-(\d+)-[A-Za-z0-9_]+$")


def make(owner: Owner | None = None, temp: Path | None = None) -> Path:
    """A new run folder (mode 0700) in `temp` (the temp folder) named after `owner` (this process)."""
    owner = Owner.current() if owner is None else owner
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{owner.pid}-{owner.start or 0}-", dir=temp))


def owner_of(name: str) -> Owner | None:
    """The process a run folder's name names (None: not a run folder's name)."""
    found = _NAME.match(name)
    if found is None:
        return None
    start = found.group(2)
    return Owner.here(int(found.group(1)), "" if start == "0" else start)


def remove_dead(temp: Path | None = None, owner: Owner | None = None) -> list[Path]:
    """Remove the current user's run folders in `temp` (the temp folder) whose owner is gone; with `owner`, only
    that process's (gone: the watchdog's owner). The folders removed."""
    folder = Path(tempfile.gettempdir()) if temp is None else temp
    try:
        entries = [entry for entry in os.scandir(folder) if entry.name.startswith(PREFIX)]
    except OSError:
        return []
    removed = []
    for entry in entries:
        named = owner_of(entry.name)
        if named is None or (owner is not None and (named.pid, named.start) != (owner.pid, owner.start)):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue
        if owner is None and named.is_alive():
            continue
        path = Path(entry.path)
        if _listening(path / SOCKET_NAME):
            continue
        with contextlib.suppress(OSError):  # removed meanwhile by another sweep, or not ours to remove after all
            shutil.rmtree(path)
            removed.append(path)
    return removed


def _listening(path: Path) -> bool:
    """Whether a process accepts connections on the Unix socket at `path` (its controller is alive)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True
