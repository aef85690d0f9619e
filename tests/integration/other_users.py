"""Other local users, for the tests of what another user on the machine can and cannot do (issue 19, items 13, 14).

    with created_user() as other:                       # useradd -m (a home of its own), userdel -r at the end
        other.python("import os; print(os.getuid())")   # runuser -u NAME -- python3 -c ... (a clean environment)
        other.run("mkdir", "/tmp/x")

Acting as the user goes through `runuser -u NAME --` with a clean environment (HOME, PATH, LANG and what the caller
gives; no XDG_RUNTIME_DIR, no ENVMGR_*). Its Python is one of the machine's interpreters of this interpreter's
version that the user can run (this one lives under root's private home on some machines), with this checkout and
this interpreter's packages on PYTHONPATH: envmgr, boto3, pytest ... import as here. Needs root (`as_root` skips
with the reason elsewhere).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import site
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

__all__ = ["OtherUser", "as_root", "created_user"]

as_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("useradd") is None or shutil.which("runuser") is None,
    reason="acting as another local user needs root, useradd and runuser",
)


@dataclass(frozen=True)
class OtherUser:
    name: str
    uid: int
    gid: int
    home: Path
    interpreter: str

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        packages = [str(REPO), *site.getsitepackages(), site.getusersitepackages()]
        return {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONPATH": os.pathsep.join(p for p in packages if Path(p).is_dir()),
            "PYTHONDONTWRITEBYTECODE": "1",
            **(extra or {}),
        }

    def run(
        self,
        *command: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run `command` as this user (a clean environment plus `env`); its output captured."""
        variables = [f"{name}={value}" for name, value in self.environment(env).items()]
        return subprocess.run(
            ["runuser", "-u", self.name, "--", "env", "-i", *variables, *command],
            cwd=cwd or "/", capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def python(
        self, code: str, *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self.run(self.interpreter, "-c", code, *args, env=env, cwd=cwd, timeout=timeout)


def _interpreter_for(name: str) -> str:
    """An interpreter of this Python's version that `name` may run: this one, else the machine's python3.X."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, shutil.which(version) or "", f"/usr/bin/{version}", f"/usr/local/bin/{version}"]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            ["runuser", "-u", name, "--", candidate, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True, text=True, check=False, cwd="/",
        )  # fmt: skip
        if probe.returncode == 0 and probe.stdout.strip() == str(tuple(sys.version_info[:2])):
            return candidate
    pytest.fail(f"no {version} interpreter that user {name} may run (tried {', '.join(filter(None, candidates))})")


@contextlib.contextmanager
def created_user(prefix: str = "envmgr-t") -> Iterator[OtherUser]:
    """A new local user with a home of its own; removed (with its home) at the end."""
    name = f"{prefix}{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--create-home", "--user-group", "--shell", "/bin/sh", name], check=True,
                   capture_output=True)  # fmt: skip
    try:
        entry = pwd.getpwnam(name)
        yield OtherUser(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), _interpreter_for(name))
    finally:
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)
