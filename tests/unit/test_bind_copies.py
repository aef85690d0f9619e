"""A bind mount on a remote engine becomes a copy of the folder's content, without VCS folders, caches and
virtualenvs, and within a size limit."""

from __future__ import annotations

from pathlib import Path

import pytest

import envmgr.engine.containers
from envmgr.engine.containers import bind_copies
from envmgr.errors import ServiceStartError


def project(root: Path) -> Path:
    files = {
        "musicapp/__init__.py": "",
        "musicapp/tasks.py": "TASKS = 1\n",
        "musicapp/sub/deep.py": "X = 2\n",
        ".git/HEAD": "ref: refs/heads/main\n",
        "musicapp/__pycache__/tasks.cpython-311.pyc": "x",
        ".venv/lib/site.py": "x",
        "node_modules/left-pad/index.js": "x",
        "settings.toml": "a = 1\n",
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_folder_content_lands_at_the_mount_point_without_caches(tmp_path: Path) -> None:
    copies = bind_copies("celery", project(tmp_path / "code"), "/app/")
    assert {destination: data for data, destination, _mode in copies} == {
        "/app/musicapp/__init__.py": b"",
        "/app/musicapp/tasks.py": b"TASKS = 1\n",
        "/app/musicapp/sub/deep.py": b"X = 2\n",
        "/app/settings.toml": b"a = 1\n",
    }
    assert {mode for _data, _destination, mode in copies} == {0o644}  # readable by the container's user


def test_a_single_file_is_copied_to_the_mount_point(tmp_path: Path) -> None:
    source = tmp_path / "config.yaml"
    source.write_text("k: v\n")
    assert bind_copies("celery", source, "/etc/app.yaml") == [(b"k: v\n", "/etc/app.yaml", 0o644)]


def test_too_much_to_copy_names_the_folder_and_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envmgr.engine.containers, "COPY_LIMIT_BYTES", 10)
    source = project(tmp_path / "code")
    with pytest.raises(ServiceStartError) as raised:
        bind_copies("celery", source, "/app")
    assert str(source) in raised.value.cause
    assert raised.value.fix is not None
    assert "code_dir" in raised.value.fix
