"""CI sandboxes against a real engine: concurrent `envmgr up --sandbox` jobs, their .env files, `down --sandbox`,
the CI job id as the default sandbox, and `envmgr gc --older-than`."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis
from dotenv import dotenv_values

from envmgr.engine.connection import Engine
from tests.conftest import in_namespace, labelled
from tests.integration.test_cli import envmgr
from tests.integration.test_reaper import start_owner

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]


def by_sandbox(engine: Engine, sandbox: str) -> list[str]:
    return [env_id for env_id, record in engine.environments().items() if record.sandbox == sandbox]


def test_four_concurrent_sandboxes_each_see_only_their_own_data(tmp_path: Path, engine: Engine, namespace: str) -> None:
    sandboxes = [f"{namespace}-s{index}" for index in range(4)]
    command = [sys.executable, "-m", "envmgr", "up", "postgres", "redis", "--detach"]
    processes = [
        subprocess.Popen(
            [*command, "--sandbox", sandbox, "--env-file", str(tmp_path / f"{sandbox}.env")],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for sandbox in sandboxes
    ]
    try:
        for process in processes:
            _, stderr = process.communicate(timeout=180)
            assert process.returncode == 0, stderr
        env_files = {sandbox: tmp_path / f"{sandbox}.env" for sandbox in sandboxes}
        for sandbox, path in env_files.items():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert len(by_sandbox(engine, sandbox)) == 1
        variables = {sandbox: dotenv_values(path) for sandbox, path in env_files.items()}
        assert len({values["DATABASE_URL"] for values in variables.values()}) == 4
        for sandbox, values in variables.items():  # every job writes its own data ...
            assert values["ENVMGR_SANDBOX"] == sandbox
            assert values["ENVMGR_ENV_ID"] == by_sandbox(engine, sandbox)[0]
            with psycopg.connect(str(values["DATABASE_URL"]), autocommit=True) as connection:
                connection.execute("CREATE TABLE job (name text)")
                connection.execute("INSERT INTO job VALUES (%s)", (sandbox,))
            with redis.Redis.from_url(str(values["REDIS_URL"])) as client:
                client.set("job", sandbox)
        for sandbox, values in variables.items():  # ... and sees nobody else's
            with psycopg.connect(str(values["DATABASE_URL"])) as connection:
                assert connection.execute("SELECT name FROM job").fetchall() == [(sandbox,)]
            with redis.Redis.from_url(str(values["REDIS_URL"])) as client:
                assert client.keys() == [b"job"]
                assert client.get("job") == sandbox.encode()
        for index, sandbox in enumerate(sandboxes):
            down = envmgr("down", "--sandbox", sandbox, cwd=tmp_path)
            assert down.returncode == 0, down.stderr
            assert by_sandbox(engine, sandbox) == []
            assert all(by_sandbox(engine, other) for other in sandboxes[index + 1 :]), "down took another sandbox"
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        for env_id in in_namespace(engine, namespace):
            engine.remove_environment(env_id)


def test_the_ci_job_id_is_the_default_sandbox_of_a_detached_environment(
    tmp_path: Path, engine: Engine, namespace: str
) -> None:
    github = {"GITHUB_RUN_ID": namespace, "GITHUB_RUN_ATTEMPT": "1", "GITHUB_JOB": "test"}
    env_file = tmp_path / ".env.ci"
    started = envmgr("up", "redis", "--detach", "--env-file", str(env_file), cwd=tmp_path, env=github)
    try:
        assert started.returncode == 0, started.stderr
        sandbox = f"{namespace}-1-test"
        assert f"sandbox {sandbox} (GitHub Actions: $GITHUB_RUN_ID-$GITHUB_RUN_ATTEMPT-$GITHUB_JOB)" in started.stderr
        assert len(by_sandbox(engine, sandbox)) == 1
        assert dotenv_values(env_file)["ENVMGR_SANDBOX"] == sandbox
        down = envmgr("down", "--sandbox", sandbox, cwd=tmp_path)
        assert down.returncode == 0, down.stderr
    finally:
        for env_id in in_namespace(engine, namespace):
            engine.remove_environment(env_id)


def test_gc_older_than_removes_old_sandboxes_but_never_a_live_owners(
    tmp_path: Path, engine: Engine, namespace: str
) -> None:
    started = envmgr("up", "redis", "--sandbox", f"{namespace}-gc", "--detach", "--json", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    sandbox_env = by_sandbox(engine, f"{namespace}-gc")[0]
    owner, owned_env = start_owner()
    try:
        scope = ("--namespace", namespace)  # other people's environments on this engine are none of our business
        young = envmgr("gc", "--older-than", "1h", *scope, cwd=tmp_path)
        assert young.returncode == 0, young.stderr
        assert "removed 0 environment(s) older than 1h" in young.stderr
        assert labelled(engine, sandbox_env)
        assert labelled(engine, owned_env)

        time.sleep(1.2)
        old = envmgr("gc", "--older-than", "1s", *scope, cwd=tmp_path)
        assert old.returncode == 0, old.stderr
        assert f"removed {sandbox_env} (sandbox {namespace}-gc" in old.stderr
        assert labelled(engine, sandbox_env) == []
        assert len(labelled(engine, owned_env)) == 3, "an environment whose owner is alive must survive"

        zero = envmgr("gc", "--older-than", "0s", *scope, cwd=tmp_path)
        assert zero.returncode == 0, zero.stderr
        assert len(labelled(engine, owned_env)) == 3, "an environment whose owner is alive must survive"
    finally:
        os.kill(owner.pid, signal.SIGTERM)
        owner.wait()
        for env_id in in_namespace(engine, namespace):
            engine.remove_environment(env_id)


def test_gc_with_a_bad_duration_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = envmgr("gc", "--older-than", "soon", cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot read the duration 'soon'" in result.stderr
    assert "fix:" in result.stderr
    assert "Traceback" not in result.stderr
