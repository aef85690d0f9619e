"""The passwords of an environment's services: derived from a key only their user holds, never written on Docker.

    password = base64url(HMAC-SHA256(key, "password|<environment id>|<service>"))[:24]

The key is 32 random bytes in `secret.key` of envmgr's state folder: `$XDG_STATE_HOME/envmgr/`, else
`~/.local/state/envmgr/` of the user's home as the password database names it (like OpenSSH: a `$HOME` changed by
a wrapper, `sudo -E` or pytester still finds the same key), else of `$HOME`. It is made on first use (the folder
0700, the file 0600, written whole before it appears under its name) and refused, with the fix, when the folder or
the file is another user's or a symbolic link, when others can write the folder, or read or write the file, or when
the folder that holds the state folder lets others replace it (writable by others and not sticky, or another
user's): a key someone else could have planted or can read gives away the passwords. The folder and the key are
opened without following links and judged on the open descriptors, so what is checked is what is read.

An environment carries only `envmgr.key-id`, a fingerprint of the key (an HMAC of a fixed text: it tells nothing
about the key nor the passwords), so a process with another key says so instead of failing to log in.

Why derived, and not a password file per environment (the other choice, also owner-only):

* another user on the machine: anyone who can `docker inspect` reads labels (and lists them: `docker ps --format`,
  CI logs, monitoring), so labels carry nothing secret; the key is readable by its user (and root) only;
* another process of the same user (`envmgr status`, `reset`, `--envmgr-env ID`, a later CI step, the daemon
  adopting environments after a crash) derives the same passwords from the same key: nothing to hand over;
* the reaper, `envmgr down`, `gc` and a plain `docker rm` remove an environment without touching any file here:
  nothing is stored per environment, so nothing is left behind, goes stale, or must be removed with it (a file per
  environment would have to be, by each of them, and leak when one of them cannot run).

What it does not do: a process of another user, or of the same uid on another file system (a CI step in another
container), cannot derive them; `envmgr status` lists such an environment with the reason, and `envmgr down`
removes it. Hand the connection variables over with `envmgr up --env-file` instead. A daemon in a container must
mount the user's state folder (compose/envmgr-daemon.yml does).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import pwd
import secrets
from dataclasses import dataclass
from pathlib import Path

from envmgr.errors import ConfigError
from envmgr.ownership import Untrusted, UntrustedPath, opened, untrusted_parent

__all__ = ["KEY_BYTES", "Credentials", "state_folder"]

KEY_BYTES = 32
KEY_FILE = "secret.key"
PASSWORD_CHARS = 24


def state_folder() -> Path:
    """envmgr's private folder for this user (see the module's docstring)."""
    xdg = os.environ.get("XDG_STATE_HOME")
    if xdg:
        return Path(xdg) / "envmgr"
    try:
        home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:  # a uid without a passwd entry (a container run with --user N)
        home = Path.home()
    return home / ".local" / "state" / "envmgr"


@dataclass(frozen=True)
class Credentials:
    """The key of this user, and what derives from it."""

    key: bytes

    @classmethod
    def load(cls, folder: Path | None = None) -> Credentials:
        """The user's key, made on first use; ConfigError when the folder or the key cannot be trusted or made.

        Nothing is followed through a link: the folder is opened with O_NOFOLLOW and judged by `fstat`, the key is
        opened in it with O_NOFOLLOW and judged and read through that descriptor; the folder that holds the state
        folder must let no one else replace it (the user's or root's, writable by no one else unless sticky)."""
        folder = folder if folder is not None else state_folder()
        path = folder / KEY_FILE
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            parent = untrusted_parent(folder, what="envmgr's state folder")
            if parent is not None:
                fix = "set XDG_STATE_HOME to a folder of yours (envmgr keeps its key in $XDG_STATE_HOME/envmgr)"
                raise ConfigError(parent.cause, f"{parent.chmod}, or {fix}" if parent.chmod else fix)
            with contextlib.suppress(FileExistsError):
                folder.mkdir(mode=0o700)
            with opened(folder, what="envmgr's state folder", kind="folder") as folder_fd:
                try:
                    key = _read_key(path, folder_fd)
                except FileNotFoundError:
                    _create(folder_fd)
                    key = _read_key(path, folder_fd)
        except UntrustedPath as exc:
            raise _refused(exc.problem, exc.path) from None
        except OSError as exc:
            raise ConfigError(
                f"cannot read or make envmgr's key {path}: {exc.strerror or exc}",
                "set XDG_STATE_HOME to a folder of yours (envmgr keeps its key in $XDG_STATE_HOME/envmgr)",
            ) from None
        if len(key) != KEY_BYTES:
            raise ConfigError(
                f"envmgr's key {path} is {len(key)} bytes, not {KEY_BYTES}",
                f"remove it (envmgr makes a new one; running environments then cannot be attached): rm {path}",
            )
        return cls(key)

    @property
    def key_id(self) -> str:
        """A fingerprint of the key (labelled on every environment): reveals nothing of the key or the passwords."""
        return hmac.new(self.key, b"envmgr key id", hashlib.sha256).hexdigest()[:16]

    def password(self, env_id: str, service: str) -> str:
        """The password of one service of one environment: URL-safe, 24 characters."""
        digest = hmac.new(self.key, f"password|{env_id}|{service}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode()[:PASSWORD_CHARS]


def _read_key(path: Path, folder_fd: int) -> bytes:
    """The key file's bytes, read through a descriptor opened in the state folder without following a link, once
    that descriptor is judged (the user's own regular file, 0600)."""
    with opened(Path(KEY_FILE), what="envmgr's key", kind="file", secret=True, dir_fd=folder_fd, shown=path) as fd:
        key = bytearray()
        while len(key) <= KEY_BYTES and (chunk := os.read(fd, KEY_BYTES + 1 - len(key))):
            key += chunk
        return bytes(key)


def _refused(problem: Untrusted, path: Path) -> ConfigError:
    remove = f"remove {path} (as its owner or root): someone else may know your environments' passwords"
    return ConfigError(
        problem.cause,
        f"{problem.chmod} if it is yours alone; else {remove}"
        if problem.chmod
        else f"{remove}; or set XDG_STATE_HOME to a folder of yours",
    )


def _create(folder_fd: int) -> None:
    """Write a new key under a temporary name in the state folder and link it into place: a concurrent first use
    finds either no key or a whole one, and only one key wins."""
    temporary = f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=folder_fd
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(KEY_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: theirs is the key
            os.link(temporary, KEY_FILE, src_dir_fd=folder_fd, dst_dir_fd=folder_fd, follow_symlinks=False)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=folder_fd)
