"""The run-socket folders of pytest controllers (envmgr.engine.run_folders): named after their owner, removed once it
is gone, only the user's own, never through a link, never while their socket listens (issue 19, item 12)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from envmgr.engine import run_folders
from envmgr.engine.labels import Owner, process_start_ticks


def dead_owner() -> Owner:
    """A process that has ended (this process's pid with another start time would do too)."""
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    pid = int(ended.stdout)
    return Owner.here(pid, "12345")


def test_a_run_folder_is_named_after_this_process_and_read_back(tmp_path: Path) -> None:
    folder = run_folders.make(temp=tmp_path)
    assert folder.parent == tmp_path
    assert folder.name.startswith(f"envmgr-run-{os.getpid()}-{process_start_ticks(os.getpid())}-")
    assert (folder.stat().st_mode & 0o777) == 0o700
    owner = run_folders.owner_of(folder.name)
    assert owner is not None
    assert (owner.pid, owner.start) == (os.getpid(), process_start_ticks(os.getpid()))
    assert owner.is_alive()
    assert run_folders.owner_of("envmgr-run-abcdefgh") is None, "an older envmgr's folder names no owner"


def test_the_sweep_removes_a_dead_owners_folder_and_keeps_a_live_ones(tmp_path: Path) -> None:
    dead = run_folders.make(dead_owner(), temp=tmp_path)
    (dead / run_folders.SOCKET_NAME).write_bytes(b"")  # what a killed controller leaves (no one listens)
    live = run_folders.make(temp=tmp_path)
    assert run_folders.remove_dead(tmp_path) == [dead]
    assert not dead.exists()
    assert live.is_dir()


def test_the_watchdog_removes_only_its_owners_folder(tmp_path: Path) -> None:
    owner, other = dead_owner(), Owner.here(os.getpid(), "1")  # both gone
    mine, theirs = run_folders.make(owner, temp=tmp_path), run_folders.make(other, temp=tmp_path)
    assert run_folders.remove_dead(tmp_path, owner=owner) == [mine]
    assert theirs.is_dir()


def test_a_link_named_like_a_dead_owners_folder_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "precious").write_text("kept")
    link = tmp_path / f"envmgr-run-{dead_owner().pid}-12345-abcdefgh"
    link.symlink_to(target)
    assert run_folders.remove_dead(tmp_path) == []
    assert (target / "precious").read_text() == "kept"
    assert link.is_symlink()


def test_another_users_folder_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = run_folders.make(dead_owner(), temp=tmp_path)
    monkeypatch.setattr(os, "getuid", lambda: os.stat(folder).st_uid + 1)  # as another user sees it
    assert run_folders.remove_dead(tmp_path) == []
    assert folder.is_dir()


def test_a_folder_whose_socket_listens_is_kept_whatever_its_name_says() -> None:
    """A live controller in another pid namespace sharing the temp folder: its pid means nothing here."""
    temp = Path(tempfile.mkdtemp(prefix="envmgr-u-", dir="/tmp"))  # short: a socket's path has at most 108 bytes
    try:
        folder = run_folders.make(dead_owner(), temp=temp)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(str(folder / run_folders.SOCKET_NAME))
            server.listen(1)
            assert run_folders.remove_dead(temp) == []
        assert folder.is_dir()
        assert run_folders.remove_dead(temp) == [folder], "once no one listens"
    finally:
        shutil.rmtree(temp, ignore_errors=True)
