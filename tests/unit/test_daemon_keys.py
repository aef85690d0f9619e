"""The daemon pools warm environments under what they were made from: a setting of the test process or of the
daemon itself does not make a warm environment cold."""

from __future__ import annotations

from pathlib import Path

import pytest

from envmgr.config import load_settings
from envmgr.daemon.keys import config_key


def key_of(tmp_path: Path, table: str, workers: int = 0) -> str:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(f"[project]\nname = 'keys'\n[tool.envmgr]\n{table}\n")
    return config_key(load_settings(pyproject), workers)


@pytest.mark.parametrize("table", ["gc_freeze = false", "daemon = 'on'", "daemon_idle_ttl = 60"])
def test_a_setting_of_the_process_or_the_daemon_keeps_the_key(tmp_path: Path, table: str) -> None:
    assert key_of(tmp_path, table) == key_of(tmp_path, "")


@pytest.mark.parametrize("table", ["isolation = 'session'", "[tool.envmgr.redis]\nenabled = false"])
def test_a_setting_of_the_environment_changes_the_key(tmp_path: Path, table: str) -> None:
    assert key_of(tmp_path, table) != key_of(tmp_path, "")


def test_the_number_of_workers_changes_the_key(tmp_path: Path) -> None:
    assert key_of(tmp_path, "", workers=2) != key_of(tmp_path, "")
