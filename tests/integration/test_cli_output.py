"""What the envmgr command prints is the error's text as it is: brackets, `[/bold]` and `:x:` are not Rich markup."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]

REPO = Path(__file__).resolve().parents[2]


def envmgr(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "400", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "envmgr", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_config_error_keeps_its_brackets_and_colons(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.envmgr.postgres]\ndatabase = "Bad:x:[a]"\n')
    result = envmgr("up", "postgres", "--detach", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert (
        f"envmgr: error: bad value for 'postgres.database' in [tool.envmgr.postgres] in {tmp_path / 'pyproject.toml'}: "
        "String should match pattern '^[a-z_][a-z0-9_]{0,40}$' (got 'Bad:x:[a]')"
    ) in result.stderr
    assert "❌" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_seed_error_naming_a_file_with_markup_in_its_name_is_printed_intact(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.envmgr]\nseeds = "seeds"\n')
    (tmp_path / "seeds" / "postgres").mkdir(parents=True)
    (tmp_path / "seeds" / "[bold]x[red] :x:.sql").write_text("SELECT 1;\n")
    result = envmgr("compose", "export", "wiremock", cwd=tmp_path)  # reads the seeds folder, no container
    assert result.returncode == 7, result.stderr
    assert "envmgr: error: seed path seeds/[bold]x[red] :x:.sql is not where envmgr reads seeds" in result.stderr
    assert "(seeds/postgres/[bold]x[red] :x:.sql)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_failing_seed_statement_with_markup_in_it_exits_7_with_the_text_intact(
    tmp_path: Path, namespace: str
) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.envmgr]\nseeds = "seeds"\n')
    (tmp_path / "seeds" / "postgres").mkdir(parents=True)
    (tmp_path / "seeds" / "postgres" / "001.sql").write_text("INSERT INTO nowhere VALUES ('[/bold] :x: [red]');\n")
    result = envmgr("up", "postgres", "--detach", cwd=tmp_path)
    assert result.returncode == 7, result.stderr
    assert (
        "envmgr: error: seed file seeds/postgres/001.sql failed at statement 1 (line 1) "
        '"INSERT INTO nowhere VALUES (\'[/bold] :x: [red]\')": UndefinedTable: relation "nowhere" does not exist'
    ) in result.stderr
    assert "Traceback" not in result.stderr
