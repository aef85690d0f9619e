"""What envmgr writes on the Docker objects it creates (labels), and the owner process those labels name.

Kept free of heavy imports: the pytest plugin, the daemon's client and the reaper's watchdog need it early.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LABEL_CONFIG", "LABEL_CREATED", "LABEL_DAEMON", "LABEL_DETACHED", "LABEL_ENV", "LABEL_HOST", "LABEL_IMAGE_SET",
    "LABEL_KEY_ID", "LABEL_LEASE", "LABEL_NAMESPACE", "LABEL_PID", "LABEL_PID_START", "LABEL_REPLICA",
    "LABEL_SANDBOX", "LABEL_SERVICE", "LABEL_SERVICE_CONFIG", "LABEL_SETTINGS", "LABEL_WORKERS", "Owner",
    "process_start_ticks",
]  # fmt: skip

LABEL_ENV = "envmgr.env"
LABEL_NAMESPACE = "envmgr.namespace"
LABEL_SERVICE = "envmgr.service"
LABEL_REPLICA = "envmgr.replica"
LABEL_WORKERS = "envmgr.workers"
LABEL_PID = "envmgr.owner.pid"
LABEL_PID_START = "envmgr.owner.start"
LABEL_HOST = "envmgr.owner.host"
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


@dataclass(frozen=True)
class Owner:
    """The process that owns an environment: removing what it created is safe once it is gone."""

    pid: int
    start: str
    host: str

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(pid=pid, start=process_start_ticks(pid), host=socket.gethostname())

    @classmethod
    def from_labels(cls, labels: dict[str, str]) -> Owner | None:
        try:
            return cls(pid=int(labels[LABEL_PID]), start=labels.get(LABEL_PID_START, ""), host=labels[LABEL_HOST])
        except (KeyError, ValueError):
            return None

    def is_alive(self) -> bool:
        """True while the process runs; on another host we cannot tell and assume it does."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not self.start or process_start_ticks(self.pid) == self.start

    def labels(self) -> dict[str, str]:
        return {LABEL_PID: str(self.pid), LABEL_PID_START: self.start, LABEL_HOST: self.host}
