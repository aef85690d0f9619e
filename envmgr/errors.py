"""Every error envmgr raises, in one tree.

::

    EnvmgrError                      base: a one-line cause (`cause`) and how to fix it (`fix`)
    ├── ConfigError                  bad [tool.envmgr] table or ENVMGR_* variable; names the key and the file
    │   └── ServerSettingError       a server refused a setting when it started; names the key with the server's
    │                                own line, carries `service` and `logs`
    ├── DockerUnavailableError       the Docker engine cannot be reached
    ├── ImageError                   an image is missing and cannot be pulled, or a build failed
    ├── ServiceStartError            a container could not be created or started
    │   └── ReadinessTimeoutError    a service did not answer its protocol probe before the deadline
    ├── MigrationError               migrating the template failed (Alembic, Django, a command or a function);
    │                                carries the last lines of a subprocess's output
    ├── SeedError                    a seed file is malformed or failed to load; names the file and the statement/row
    ├── EnvironmentNotFoundError     no environment (or sandbox) with that id on this engine
    ├── ServiceNotEnabledError       the service asked for is not part of this environment
    ├── TemplateCacheError           the template cache holds no usable entry for the template (`envmgr cache restore`)
    ├── SnapshotError                no snapshot of that name in this worker (names those there are), or one cannot
    │                                be taken
    └── DaemonError                  the envmgr daemon refused a request (stop while leases are held), or its socket
        │                            cannot be trusted (another user's folder, socket or process)
        ├── DaemonNotRunningError    no envmgr daemon answers on the socket
        └── DaemonUntrustedError     its folder, socket or process is not the user's alone (a link, another user's,
                                     writable by others): with `daemon = "auto"`, no daemon and a warning

`str(error)` is the cause followed by the fix, both on one line each, then its `details()` when it has them; the CLI
prints the same and exits non-zero. `ServiceStartError`, its subclass and `ServerSettingError` carry `service` and
`logs` (the tail of the container's output), `MigrationError` carries `output` (the tail of a migrate command's
output): their details, below the cause.
Every constructor argument is kept as the attribute of the same name: the daemon's protocol sends an error as its
class name and those attributes, and the client rebuilds the same error from them (envmgr.daemon.protocol).
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DaemonError",
    "DaemonNotRunningError",
    "DaemonUntrustedError",
    "DockerUnavailableError",
    "EnvironmentNotFoundError",
    "EnvmgrError",
    "ImageError",
    "MigrationError",
    "ReadinessTimeoutError",
    "SeedError",
    "ServerSettingError",
    "ServiceNotEnabledError",
    "ServiceStartError",
    "SnapshotError",
    "TemplateCacheError",
    "first_line",
]


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type): what goes into a one-line cause."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class EnvmgrError(Exception):
    """Base of every envmgr error: a one-line cause and the fix."""

    exit_code = 1

    def __init__(self, cause: str, fix: str | None = None) -> None:
        self.cause = cause
        self.fix = fix
        super().__init__(cause)

    def details(self) -> tuple[str, str] | None:
        """What is shown below the cause and the fix: a heading and its lines (a container's log tail, a command's
        output), or None."""
        return None

    def __str__(self) -> str:
        text = self.cause if not self.fix else f"{self.cause}\n  fix: {self.fix}"
        details = self.details()
        if details is not None and details[1].strip():
            heading, lines = details
            tail = "\n".join("    " + line for line in lines.rstrip().splitlines())
            text = f"{text}\n  {heading}:\n{tail}"
        return text


class ConfigError(EnvmgrError):
    """The configuration is invalid: an unknown key, a bad value or a missing file."""

    exit_code = 2


class ServerSettingError(ConfigError):
    """A server refused one of its settings (`postgres.settings`, `redis.settings`) when it started: the cause names
    the key with the server's own line (found in its log by `Service.diagnose`); the log tail follows."""

    def __init__(self, service: str, cause: str, fix: str | None = None, logs: str = "") -> None:
        self.service = service
        self.logs = logs
        super().__init__(cause, fix)

    def details(self) -> tuple[str, str] | None:
        return f"last log lines of {self.service}", self.logs


class DockerUnavailableError(EnvmgrError):
    """The Docker engine does not answer."""

    exit_code = 3


class ImageError(EnvmgrError):
    """An image is not present and cannot be pulled, or building it failed."""

    exit_code = 4


class ServiceStartError(EnvmgrError):
    """A service's container could not be created or started."""

    exit_code = 5

    def __init__(self, service: str, cause: str, fix: str | None = None, logs: str = "") -> None:
        self.service = service
        self.logs = logs
        super().__init__(cause, fix)

    def details(self) -> tuple[str, str] | None:
        return f"last log lines of {self.service}", self.logs


class ReadinessTimeoutError(ServiceStartError):
    """A service did not pass its protocol probe before the deadline."""


class MigrationError(EnvmgrError):
    """Migrating the template database failed (see `envmgr.services.postgres.template.migrate`)."""

    exit_code = 6

    def __init__(self, cause: str, fix: str | None = None, output: str = "") -> None:
        self.output = output
        super().__init__(cause, fix)

    def details(self) -> tuple[str, str] | None:
        return "last lines of its output", self.output


class SeedError(EnvmgrError):
    """A seed file could not be parsed or loaded."""

    exit_code = 7


class EnvironmentNotFoundError(EnvmgrError):
    """No environment with that id exists on this engine."""

    exit_code = 8


class ServiceNotEnabledError(EnvmgrError):
    """A service was asked for that the environment does not run."""

    exit_code = 2


class DaemonError(EnvmgrError):
    """The envmgr daemon refused a request, or its socket cannot be trusted."""

    exit_code = 9


class DaemonNotRunningError(DaemonError):
    """No envmgr daemon answers on the socket."""


class DaemonUntrustedError(DaemonError):
    """The daemon's folder, socket or process is not the current user's alone."""


class SnapshotError(EnvmgrError):
    """No snapshot of that name in this worker (`Environment.restore`), or one that cannot be taken."""


class TemplateCacheError(EnvmgrError):
    """The template cache has no usable entry for the project's template (`envmgr cache restore`), or one cannot be
    written."""

    exit_code = 10
