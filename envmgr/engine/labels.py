"""What envmgr writes on the Docker objects it creates (labels), and the owner process those labels name.

Kept free of heavy imports: the pytest plugin, the daemon's client and the reaper's watchdog need it early.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LABEL_CONFIG", "LABEL_CREATED", "LABEL_DAEMON", "LABEL_DETACHED", "LABEL_ENV", "LABEL_GIVEN", "LABEL_HOST",
    "LABEL_IMAGE_SET", "LABEL_KEY_ID", "LABEL_LEASE", "LABEL_NAMESPACE", "LABEL_PID", "LABEL_PID_SPACE",
    "LABEL_PID_START", "LABEL_PREFIX", "LABEL_REPLICA", "LABEL_SANDBOX", "LABEL_SERVICE", "LABEL_SERVICE_CONFIG",
    "LABEL_SETTINGS", "LABEL_WORKERS",
    "Owner", "pid_space", "process_start_ticks",
]  # fmt: skip

LABEL_PREFIX = "envmgr."
"""what envmgr's labels start with (the engine and testcontainers put labels of their own)"""
LABEL_ENV = "envmgr.env"
LABEL_NAMESPACE = "envmgr.namespace"
LABEL_SERVICE = "envmgr.service"
LABEL_REPLICA = "envmgr.replica"
LABEL_WORKERS = "envmgr.workers"
LABEL_PID = "envmgr.owner.pid"
LABEL_PID_START = "envmgr.owner.start"
LABEL_HOST = "envmgr.owner.host"
LABEL_PID_SPACE = "envmgr.owner.pid-space"
LABEL_CREATED = "envmgr.created"
LABEL_SANDBOX = "envmgr.sandbox"
LABEL_DETACHED = "envmgr.detached"
LABEL_CONFIG = "envmgr.config"
LABEL_KEY_ID = "envmgr.key-id"
"""the fingerprint of the key the passwords derive from (envmgr.credentials); never a password itself"""
LABEL_SERVICE_CONFIG = "envmgr.service-config"
LABEL_IMAGE_SET = "envmgr.image-set"
LABEL_DAEMON = "envmgr.daemon"
LABEL_LEASE = "envmgr.lease"
LABEL_SETTINGS = "envmgr.settings"
LABEL_GIVEN = "envmgr.given"
"""the environment's services on servers envmgr did not start (their `url`), comma-separated: no container of theirs"""


def process_start_ticks(pid: int) -> str:
    """The start time of a process in clock ticks since boot (Linux), or "" where unknown.

    With the pid it identifies a process even after the pid is reused.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # The command name (field 2) may contain spaces and parentheses: split after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19]


def pid_space() -> str:
    """This process's pid namespace, named so that no other machine or container shares the name: the kernel's boot
    id and the namespace's inode ("" where /proc does not tell).

    A pid means something only inside its pid namespace: two hosts (or two containers on one host) with the same
    host name still have different pid spaces, and a pid looked up in the wrong one says nothing about the owner.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        inode = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return ""
    return f"{boot}/{inode}" if boot else ""


@dataclass(frozen=True)
class Owner:
    """The process that owns an environment: removing what it created is safe once it is gone."""

    pid: int
    start: str
    host: str
    """host name (for people; `space` decides whether the pid can be looked up here)"""
    space: str = ""
    """the pid namespace the pid belongs to (`pid_space`); "" in labels written before it was recorded"""

    @classmethod
    def current(cls) -> Owner:
        return cls.here(os.getpid(), process_start_ticks(os.getpid()))

    @classmethod
    def here(cls, pid: int, start: str) -> Owner:
        """A process of this pid namespace (the watchdog's owner: always started from the owner itself)."""
        return cls(pid=pid, start=start, host=socket.gethostname(), space=pid_space())

    @classmethod
    def from_labels(cls, labels: dict[str, str]) -> Owner | None:
        try:
            return cls(
                pid=int(labels[LABEL_PID]),
                start=labels.get(LABEL_PID_START, ""),
                host=labels[LABEL_HOST],
                space=labels.get(LABEL_PID_SPACE, ""),
            )
        except (KeyError, ValueError):
            return None

    def is_local(self) -> bool:
        """True when the owner's pid can be looked up from this process: the same pid namespace (for labels without
        one, written by an older envmgr: the same host name)."""
        if self.space:
            return self.space == pid_space()
        return self.host == socket.gethostname()

    def is_alive(self) -> bool:
        """True while the process runs. An owner elsewhere (another machine sharing a remote engine, another
        container, even with the same host name) cannot be checked from here: it is assumed alive."""
        if not self.is_local():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not self.start or process_start_ticks(self.pid) == self.start

    def labels(self) -> dict[str, str]:
        labels = {LABEL_PID: str(self.pid), LABEL_PID_START: self.start, LABEL_HOST: self.host}
        if self.space:
            labels[LABEL_PID_SPACE] = self.space
        return labels
