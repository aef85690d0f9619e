"""Migrations that run in a subprocess (a migrate command, Django's migrate): the database's variables in its
environment, its own process group, its output captured and its tail kept for the `MigrationError`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from envmgr.errors import MigrationError

MIGRATE_TIMEOUT = 600.0
"""seconds a migrate subprocess may run before it is stopped (with its children)"""
OUTPUT_LINES = 15
"""lines of a failed subprocess's output kept in the MigrationError"""


def database_variables(url: str) -> dict[str, str]:
    """DATABASE_URL and POSTGRES_HOST/PORT/USER/PASSWORD/DB of a `postgresql://` URL."""
    parts = urlsplit(url)
    return {
        "DATABASE_URL": url,
        "POSTGRES_HOST": parts.hostname or "",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or ""),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_DB": unquote(parts.path.lstrip("/")),
    }


def migration_environment(url: str, project_root: Path, variables: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a migrate subprocess: this process's, plus the database's connection variables
    (DATABASE_URL, POSTGRES_HOST/PORT/USER/PASSWORD/DB and libpq's PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE),
    the project root first on PYTHONPATH, and this interpreter's folder first on PATH (so `python`, `flask`,
    `alembic` are those of the environment that runs envmgr). `variables`: the template's variables as the project
    names them (the export table's), given to the subprocess only (this process's os.environ is never changed)."""
    database = database_variables(url)
    libpq = {
        "PGHOST": database["POSTGRES_HOST"],
        "PGPORT": database["POSTGRES_PORT"],
        "PGUSER": database["POSTGRES_USER"],
        "PGPASSWORD": database["POSTGRES_PASSWORD"],
        "PGDATABASE": database["POSTGRES_DB"],
    }
    python_path = [str(project_root), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    path = [str(Path(sys.executable).parent), *filter(None, os.environ.get("PATH", "").split(os.pathsep))]
    return {
        **os.environ,
        **(variables or {}),
        **database,
        **libpq,
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(python_path)),
        "PATH": os.pathsep.join(dict.fromkeys(path)),
    }


# subprocesses ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finished:
    returncode: int
    output: str


def run_subprocess(
    command: list[str], cwd: Path, env: Mapping[str, str], what: str, pass_fds: tuple[int, ...] = ()
) -> Finished:
    """Run a migrate subprocess in its own process group, output (stdout and stderr together) captured; stopped
    with its children when it outlives MIGRATE_TIMEOUT or this process is interrupted. `pass_fds`: descriptors
    it inherits (a pipe it reports on)."""
    try:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=pass_fds,
        )
    except OSError as exc:
        raise MigrationError(f"cannot run the {what}: {exc.strerror}", "check the setting migrate") from None
    try:
        output, _ = process.communicate(timeout=MIGRATE_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        output, _ = process.communicate()
        raise MigrationError(
            f"the {what} did not finish within {MIGRATE_TIMEOUT:.0f} s and was stopped",
            "make the migration faster, or look for a prompt or a lock it waits on",
            output=tail(output.decode(errors="replace")),
        ) from None
    except BaseException:
        _kill_group(process)
        process.wait()
        raise
    return Finished(process.returncode, output.decode(errors="replace"))


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):  # it has ended already
        os.killpg(process.pid, signal.SIGKILL)


def ended(returncode: int) -> str:
    if returncode < 0:
        return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def tail(output: str) -> str:
    lines = [line for line in output.rstrip().splitlines() if line.strip()]
    return "\n".join(lines[-OUTPUT_LINES:])


def read_outcome(path: Path) -> dict[str, Any]:
    """What the Django subprocess wrote about its run (nothing when it died before writing)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# in-process helpers ---------------------------------------------------------------------------------------------
