"""The user's key and the passwords derived from it: made once, private, refused when someone else could know it."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from envmgr.credentials import KEY_BYTES, Credentials, state_folder
from envmgr.errors import ConfigError

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="handing a folder to another user (uid 65534) needs root")
NOBODY = 65534


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_key_is_made_once_private_and_whole(tmp_path: Path) -> None:
    folder = tmp_path / "state" / "envmgr"
    first = Credentials.load(folder)
    assert len(first.key) == KEY_BYTES
    assert mode(folder) == 0o700
    assert mode(folder / "secret.key") == 0o600
    assert Credentials.load(folder) == first
    assert sorted(p.name for p in folder.iterdir()) == ["secret.key"], "no temporary file left"


def test_passwords_are_stable_per_environment_and_service_and_differ_between_them(tmp_path: Path) -> None:
    credentials = Credentials.load(tmp_path)
    password = credentials.password("abc", "postgres")
    assert password == Credentials.load(tmp_path).password("abc", "postgres")
    assert len(password) == 24
    others = {credentials.password("abd", "postgres"), credentials.password("abc", "redis")}
    assert password not in others
    assert len(others) == 2


def test_another_key_gives_other_passwords_and_another_key_id(tmp_path: Path) -> None:
    mine, theirs = Credentials.load(tmp_path / "a"), Credentials.load(tmp_path / "b")
    assert mine.password("abc", "postgres") != theirs.password("abc", "postgres")
    assert mine.key_id != theirs.key_id
    assert mine.key_id not in mine.key.hex()


def test_concurrent_first_uses_agree_on_one_key(tmp_path: Path) -> None:
    folder = tmp_path / "envmgr"
    script = "import sys; from pathlib import Path; from envmgr.credentials import Credentials; "
    script += "print(Credentials.load(Path(sys.argv[1])).key.hex())"
    processes = [
        subprocess.Popen([sys.executable, "-c", script, str(folder)], stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    keys = {process.communicate(timeout=60)[0].strip() for process in processes}
    assert keys == {(folder / "secret.key").read_bytes().hex()}


def test_a_folder_others_can_write_to_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "envmgr"
    folder.mkdir(mode=0o700)
    os.chmod(folder, 0o777)
    with pytest.raises(ConfigError, match="writable by others") as refused:
        Credentials.load(folder)
    assert refused.value.fix
    assert f"chmod go-rwx {folder}" in refused.value.fix
    assert not (folder / "secret.key").exists()


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    Credentials.load(tmp_path)
    os.chmod(tmp_path / "secret.key", 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        Credentials.load(tmp_path)


def test_a_key_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    Credentials.load(tmp_path)
    (tmp_path / "secret.key").write_bytes(b"short")
    with pytest.raises(ConfigError, match="is 5 bytes"):
        Credentials.load(tmp_path)


@as_root
def test_a_folder_or_key_of_another_user_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "envmgr"
    Credentials.load(folder)
    os.chown(folder / "secret.key", NOBODY, NOBODY)
    with pytest.raises(ConfigError, match=f"belongs to uid {NOBODY}, not to you") as refused:
        Credentials.load(folder)
    assert "someone else may know" in str(refused.value.fix)
    os.chown(folder / "secret.key", os.getuid(), os.getgid())
    os.chown(folder, NOBODY, NOBODY)
    with pytest.raises(ConfigError, match=f"belongs to uid {NOBODY}, not to you"):
        Credentials.load(folder)


@as_root
def test_another_user_cannot_read_the_key(tmp_path: Path) -> None:
    folder = tmp_path / "envmgr"
    Credentials.load(folder)
    os.chmod(tmp_path, 0o755)  # the way to the folder is open: the folder and the key must close it themselves
    pid = os.fork()
    if pid == 0:  # the child: only system calls, then _exit
        code = 0
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.open(folder / "secret.key", os.O_RDONLY)
        except PermissionError:
            code = 13
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 13, "another user opened the key"


def test_the_state_folder_follows_xdg_state_home_and_else_the_password_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert state_folder() == tmp_path / "envmgr"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))  # as pytester and some wrappers do: the key stays the user's
    assert state_folder() == Path(pwd.getpwuid(os.getuid()).pw_dir) / ".local" / "state" / "envmgr"
