"""PostgreSQL's client programs (`pg_restore`, `pg_dump`) run for one server: where they run is decided here.

* In the server's own container, through the engine's API (`ContainerCommands`): works whatever the test host has
  (no client installed, another major version, a remote engine), and its programs are the server's own version.
  The dump is streamed into the container's /tmp and the program connects to 127.0.0.1 inside it. Used whenever
  envmgr started the server (the endpoint names its container and the environment runs it).
* On this machine, when the server has no container envmgr runs (a server envmgr did not start): the `pg_restore` or
  `pg_dump` on PATH, connecting to the endpoint's address. It must read the dump's format (a `pg_dump` of the same
  major version or older) and speak to the server.
* Neither: a `ToolMissing` error saying both ways to get one (install the client programs, or turn the dump into
  plain SQL once with `pg_restore -f seed.sql seed.dump`, which the seed loader reads without any program).

The password goes in the environment (`PGPASSWORD`), never on a command line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from envmgr.endpoints import ServiceEndpoint
from envmgr.errors import EnvmgrError
from envmgr.services.base import CommandResult, ContainerCommands

__all__ = ["PgTools", "ToolMissing", "endpoint_for_url"]

INSIDE_HOST = "127.0.0.1"
DUMP_NAME = "envmgr.dump"


def endpoint_for_url(url: str) -> ServiceEndpoint:
    """The endpoint of a Postgres URL (`postgresql://user:password@host:port/database`): a server with no container."""
    parts = urlsplit(url)
    return ServiceEndpoint(
        service="postgres", scheme=parts.scheme or "postgresql", host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432, internal_host="", internal_port=0, username=unquote(parts.username or ""),
        password=unquote(parts.password) if parts.password is not None else None, path=parts.path.lstrip("/"),
    )  # fmt: skip


class ToolMissing(EnvmgrError):
    """Neither the server's container nor this machine can run the program."""


@dataclass(frozen=True)
class PgTools:
    """`pg_restore` and `pg_dump` against one server (`endpoint`: its superuser; any database)."""

    endpoint: ServiceEndpoint
    commands: ContainerCommands | None = None
    """the engine that runs the server's container, when envmgr runs it"""

    @classmethod
    def for_url(cls, url: str) -> PgTools:
        """The programs on this machine for the server of a database URL (no container)."""
        return cls(endpoint_for_url(url))

    @property
    def in_container(self) -> bool:
        return self.commands is not None and bool(self.endpoint.container)

    def where(self, program: str) -> str:
        """`in container envmgr-x-postgres` or `/usr/bin/pg_restore`: where `program` runs (ToolMissing: nowhere)."""
        if self.in_container:
            return f"in container {self.endpoint.container}"
        found = shutil.which(program)
        if found is None:
            raise ToolMissing(
                f"{program} is needed and there is no {program} to run: the server runs in no container envmgr "
                f"started, and {program} is not on PATH",
                "install PostgreSQL's client programs (Debian/Ubuntu: postgresql-client) of the server's major "
                "version or newer",
            )
        return found

    def restore(self, dump: Path, database: str, options: Sequence[str] = ()) -> CommandResult:
        """`pg_restore [options] -d database dump`; the result as the program ended (the caller reads its errors)."""
        return self._run("pg_restore", [*options, "--dbname", database], dump=dump)

    def dump(self, database: str, target: Path, options: Sequence[str] = ()) -> CommandResult:
        """`pg_dump [options] -f target database`: `target` written when it succeeds."""
        return self._run("pg_dump", [*options, "--dbname", database], target=target)

    def _run(
        self, program: str, args: list[str], *, dump: Path | None = None, target: Path | None = None
    ) -> CommandResult:
        login = ["--username", self.endpoint.username or "postgres", "--no-password"]
        env = {"PGPASSWORD": self.endpoint.password or "", "PGCONNECT_TIMEOUT": "10"}
        if self.in_container:
            assert self.commands is not None
            command = [program, "--host", INSIDE_HOST, "--port", str(self.endpoint.internal_port), *login, *args]
            if dump is not None:
                command.append(DUMP_NAME)
            if target is not None:
                command += ["--file", DUMP_NAME]
            return self.commands.run_in_container(
                self.endpoint.container, command, env=env,
                inputs={DUMP_NAME: dump} if dump is not None else {},
                outputs={DUMP_NAME: target} if target is not None else {},
            )  # fmt: skip
        executable = self.where(program)
        command = [executable, "--host", self.endpoint.host, "--port", str(self.endpoint.port), *login, *args]
        if dump is not None:
            command.append(str(dump))
        if target is not None:
            command += ["--file", str(target)]
        completed = subprocess.run(
            command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False
        )
        return CommandResult(completed.returncode, completed.stdout.decode("utf-8", "replace"))
