"""What envmgr trusts on disk (envmgr.ownership, issue 19, item 14): never a link, judged on what is opened, in a
folder no one else can use to replace it; and where the daemon's socket goes by default."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from envmgr.credentials import Credentials
from envmgr.daemon import client, trust
from envmgr.errors import ConfigError, DaemonUntrustedError
from envmgr.ownership import UntrustedPath, opened, untrusted, untrusted_parent

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="handing a folder to another user (uid 65534) needs root")
NOBODY = 65534


def test_a_link_is_untrusted_whatever_it_points_to(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(mine)
    assert untrusted(mine, what="the folder", kind="folder") is None
    problem = untrusted(link, what="the folder", kind="folder")
    assert problem is not None
    assert f"the folder {link} is a symbolic link" in problem.cause
    assert problem.chmod is None, "no chmod makes a link trustworthy"
    with pytest.raises(UntrustedPath, match="symbolic link"), opened(link, what="the folder", kind="folder"):
        pass


def test_a_parent_others_can_write_is_refused_unless_it_is_sticky(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    problem = untrusted_parent(shared / "envmgr", what="the state folder")
    assert problem is not None
    assert f"the folder {shared} that holds the state folder {shared / 'envmgr'} is writable by others" in problem.cause
    assert problem.chmod == f"chmod go-w {shared}"
    shared.chmod(0o1777)  # like /tmp: only an entry's owner may rename or remove it
    assert untrusted_parent(shared / "envmgr", what="the state folder") is None


@as_root
def test_a_parent_of_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, NOBODY, NOBODY)
    problem = untrusted_parent(theirs / "envmgr", what="the state folder")
    assert problem is not None
    assert f"belongs to uid {NOBODY}" in problem.cause


def test_the_daemon_folder_is_made_private_through_its_descriptor_and_a_link_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o755)
    trust.private_folder(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    target = tmp_path / "target"
    target.mkdir(mode=0o755)
    link = tmp_path / "planted"
    link.symlink_to(target)
    with pytest.raises(DaemonUntrustedError, match="symbolic link"):
        trust.private_folder(link)
    assert stat.S_IMODE(target.stat().st_mode) == 0o755, "the link's target was left alone"


def test_the_key_is_opened_without_following_a_link(tmp_path: Path) -> None:
    real = tmp_path / "real"
    Credentials.load(real)
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    (folder / "secret.key").symlink_to(real / "secret.key")
    with pytest.raises(ConfigError, match=r"secret\.key is a symbolic link") as refused:
        Credentials.load(folder)
    assert f"remove {folder / 'secret.key'}" in str(refused.value.fix)


def test_a_state_folder_in_a_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ConfigError, match="writable by others") as refused:
        Credentials.load(shared / "envmgr")
    assert "XDG_STATE_HOME" in str(refused.value.fix)
    assert not (shared / "envmgr").exists(), "nothing made there"


def test_without_xdg_runtime_dir_the_daemon_socket_is_in_the_users_state_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ENVMGR_DAEMON_SOCKET", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    path = client.default_socket_path()
    assert path.parent == tmp_path / "envmgr" / "run"
    assert len(os.fsencode(path)) <= client.SOCKET_PATH_MAX
    deep = tmp_path / ("d" * 60)
    monkeypatch.setenv("XDG_STATE_HOME", str(deep))
    shorter = client.default_socket_path()
    assert len(os.fsencode(shorter)) <= client.SOCKET_PATH_MAX
    assert shorter.parent in (deep / "envmgr" / "run", Path(f"/tmp/envmgr-{os.getuid()}"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "runtime"))
    assert client.default_socket_path().parent == tmp_path / "runtime" / "envmgr"
