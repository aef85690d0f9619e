"""Live progress while an environment starts (issue 22), as a user sees it: pytest run on a pseudo-terminal (the
start, an image build with its steps, the migrations as a count, a status line redrawn in place), nothing of it with
`-q`, plain lines once each when the output is not a terminal; and the counts told where the work happens (the
template's migrations in this process and in a clean one, its seed files)."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from envmgr import Environment, ServiceEndpoint, load_settings
from envmgr.engine.connection import Engine
from envmgr.progress.events import Advanced, Began, Ended, Event, Noted
from envmgr.services.celery.image import worker_image
from envmgr.services.postgres.janitor import Janitor
from envmgr.services.postgres.template.alembic_process import upgrade_in_subprocess
from envmgr.services.postgres.template.alembic_upgrade import run_migrations
from envmgr.services.postgres.template.build import ensure_template
from tests.conftest import REPO, labelled

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments", "no_daemon")]

ALEMBIC_INI = REPO / "tests" / "example_app" / "alembic.ini"
MIGRATIONS = len(list((REPO / "tests" / "example_app" / "migrations" / "versions").glob("*.py")))
SEED_FILES = len(list((REPO / "seeds" / "postgres").iterdir()))
DEADLINE = 600.0
STATUS = re.compile(r"\r\x1b\[Kenvmgr: [^\r\n]*(creating|waiting|migrating|seeding|preparing|image step)")
"""the status line, redrawn in place"""
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

POSTGRES_TABLE = f"""
[project]
name = "progressdemo"

[tool.envmgr]
alembic_ini = "{ALEMBIC_INI}"
seeds = "{REPO / "seeds"}"
"""
CELERY_TABLE = """
[tool.envmgr.celery]
enabled = true
app = "jobs"
dockerfile = "worker.Dockerfile"

[tool.pytest.ini_options]
pythonpath = ["."]
"""
DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${{BASE_IMAGE}}
RUN echo {marker} > /tmp/envmgr-progress-test
"""
JOBS = """\
from celery import Celery

app = Celery("jobs")


@app.task
def add(x, y):
    return x + y
"""
DB_TEST = """\
from sqlalchemy import text


def test_seeded(db_session):
    assert db_session.execute(text("SELECT count(*) FROM users")).scalar() == 3
"""
WORKER_TEST = """\
import jobs


def test_the_worker_adds(celery_app, celery_worker):
    assert jobs.add.delay(1, 2).get(timeout=60) == 3
"""


@pytest.fixture
def no_daemon(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """These runs start their own environment, even when an envmgr daemon runs on this machine."""
    monkeypatch.setenv("ENVMGR_DAEMON_SOCKET", str(tmp_path / "no-daemon.sock"))


def project(folder: Path, table: str, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(table)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))
    return folder


def on_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run a command on a pseudo-terminal (its stdout and stderr a terminal of 120 columns); everything it wrote,
    control sequences included, and its exit code."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its stdin, stdout and stderr
        try:
            os.chdir(cwd)
            os.environ["COLUMNS"] = "120"
            os.execv(args[0], args)
        finally:
            os._exit(127)
    output = b""
    deadline = time.monotonic() + DEADLINE
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child has ended and closed the terminal
                break
            if not chunk:
                break
            output += chunk
        else:
            os.kill(pid, signal.SIGTERM)
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode("utf-8", "replace")


def pytest_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "--envmgr-image-set",
            "local", *args]  # fmt: skip


def lines_of(output: str) -> list[str]:
    """The lines as the terminal shows them in the end: a carriage return starts the line again (a redraw);
    without colours."""
    text = ANSI.sub("", output.replace("\r\n", "\n").replace("\r\x1b[K", "\r"))
    return [line.rsplit("\r", 1)[-1] for line in text.split("\n")]


@pytest.fixture
def celery_project(tmp_path: Path, engine: Engine) -> Iterator[Path]:
    """Postgres (migrations, seeds) and a Celery worker whose image this test's own Dockerfile derives (a tag of its
    own, built during the start; removed afterwards)."""
    folder = project(tmp_path / "celery", POSTGRES_TABLE + CELERY_TABLE,
                     {"worker.Dockerfile": DOCKERFILE.format(marker=uuid.uuid4().hex), "jobs.py": JOBS,
                      "test_db.py": DB_TEST, "test_worker.py": WORKER_TEST})  # fmt: skip
    image = worker_image(load_settings(folder / "pyproject.toml"), "envmgr-local/celery-worker:5")
    assert image is not None
    try:
        yield folder
    finally:
        if engine.has_image(image.tag):
            engine.client.images.remove(image.tag, force=True)


def test_a_terminal_shows_the_start_the_image_build_and_the_migration_count(celery_project: Path) -> None:
    code, output = on_terminal(pytest_command(), celery_project)
    assert code == 0, output[-3000:]
    shown = lines_of(output)
    for expected in (
        r"envmgr: starting postgres",
        r"envmgr: starting celery",
        r"envmgr: building image envmgr-local/celery-worker-project:\w+ for celery",
        r"envmgr: celery image step 1/\d: ARG BASE_IMAGE",
        r"envmgr: celery image step 3/\d: RUN echo \w+ > /tmp/envmgr-progress-test",
        r"envmgr: celery image built in \d+\.\d s",
        rf"envmgr: postgres template: {MIGRATIONS} migrations to apply \(alembic\)",
        rf"envmgr: postgres template: {MIGRATIONS} migrations applied in \d+\.\d\d s",
        rf"envmgr: postgres template: {SEED_FILES} seed files loaded in \d+\.\d\d s",
        r"envmgr: postgres ready in \d+\.\d\d s \(create \d+\.\d\d s, ready \d+\.\d\d s, prepare \d+\.\d\d s\)",
        r"envmgr: celery ready in \d+\.\d\d s \(create \d+\.\d\d s, ready \d+\.\d\d s\)",
    ):
        assert any(re.fullmatch(expected, line.strip()) for line in shown), (expected, output[-4000:])
    assert STATUS.search(output), "a status line redrawn in place while the tests wait"
    assert re.search(r"\b2 passed\b", ANSI.sub("", output))
    # pytest's own line goes on after the lines above it: its file name again, then its result
    assert any(re.match(r"test_\w+\.py \.", line) for line in shown), output[-3000:]


@pytest.fixture
def postgres_project(tmp_path: Path) -> Path:
    return project(tmp_path / "postgres", POSTGRES_TABLE, {"test_db.py": DB_TEST})


BOARD_LINE = re.compile(r"envmgr: (?!environment \w+ \|)")
"""a line of the progress (the summary line at the end, `envmgr: environment ID | ...`, is not one)"""


def test_quiet_shows_nothing_of_the_progress(postgres_project: Path) -> None:
    code, output = on_terminal(pytest_command("-q"), postgres_project)
    assert code == 0, output[-3000:]
    assert re.search(r"\b1 passed\b", ANSI.sub("", output))
    assert not [line for line in lines_of(output) if BOARD_LINE.match(line.strip())], output
    assert "\x1b[K" not in output


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single-process", "two-workers"])
def test_not_on_a_terminal_the_progress_is_plain_lines_once_each(postgres_project: Path, xdist: list[str]) -> None:
    result = subprocess.run(pytest_command(*xdist), cwd=postgres_project, capture_output=True, text=True,
                            timeout=DEADLINE, check=False)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "\r" not in result.stdout
    assert "\x1b[" not in result.stdout
    progress = [line.strip() for line in result.stdout.splitlines() if BOARD_LINE.match(line.strip())]
    assert len(progress) == len(set(progress)), progress  # no line twice: neither a redraw nor a second process
    assert progress[:1] == ["envmgr: starting postgres"], progress
    assert f"envmgr: postgres template: {MIGRATIONS} migrations to apply (alembic)" in progress
    assert any(line.startswith("envmgr: postgres ready in ") for line in progress), progress
    assert not [line for line in progress if re.search(r"(creating|waiting|migrating|seeding) \d", line)], progress


@pytest.mark.parametrize("quiet", [False, True], ids=["progress", "quiet"])
def test_envmgr_up_tells_its_start_in_plain_lines_once_each_or_nothing_when_quiet(
    postgres_project: Path, engine: Engine, quiet: bool
) -> None:
    """`envmgr up` (not on a terminal, as in CI) tells the same start as pytest does, on stderr, a line each: what
    starts, the migrations to apply, when it is ready; with --quiet none of it (the endpoints table and the line
    that says how to remove it stay)."""
    args = [sys.executable, "-m", "envmgr", "up", "postgres", "--detach", "--image-set", "local", *(["-q"] * quiet)]
    result = subprocess.run(args, cwd=postgres_project, capture_output=True, text=True, timeout=DEADLINE,
                            check=False, env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    detached = re.search(r"detached; remove it with: envmgr down (\w+)", result.stderr)
    try:
        assert result.returncode == 0, result.stderr[-3000:]
        assert detached is not None, result.stderr[-3000:]
        assert "\r" not in result.stderr
        progress = [line.strip() for line in result.stderr.splitlines() if BOARD_LINE.match(line.strip())]
        if quiet:
            assert progress == [], progress
            return
        assert len(progress) == len(set(progress)), progress
        assert progress[:1] == ["envmgr: starting postgres"], progress
        assert f"envmgr: postgres template: {MIGRATIONS} migrations to apply (alembic)" in progress
        assert any(line.startswith("envmgr: postgres ready in ") for line in progress), progress
    finally:
        if detached is not None:
            engine.remove_environment(detached[1])


# the counts, where the work happens --------------------------------------------------------------------------


class Heard(list[Event]):
    def __call__(self, event: Event) -> None:
        self.append(event)


@pytest.fixture(scope="module")
def server(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceEndpoint]:
    """One bare Postgres server for the module."""
    bare = project(tmp_path_factory.mktemp("bare"), "[tool.envmgr]\n", {})
    with Environment(["postgres"], settings=load_settings(bare / "pyproject.toml", image_set="local")) as env:
        env_id = env.id
        yield env.endpoints["postgres"]
    assert labelled(engine, env_id) == []


def scratch(server: ServiceEndpoint) -> str:
    name = f"steps_{uuid.uuid4().hex[:8]}"
    with Janitor(server) as janitor:
        janitor.create(name)
    return server.with_path(name).url


def applied(url: str) -> str:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row is not None
    return str(row[0])


def test_an_upgrade_counts_its_migrations_here_and_in_a_clean_process(server: ServiceEndpoint) -> None:
    expected = [(done, MIGRATIONS) for done in range(MIGRATIONS + 1)]
    here: list[tuple[int, int]] = []
    url = scratch(server)
    run_migrations(ALEMBIC_INI, url, project_root=REPO, steps=lambda done, total: here.append((done, total)))
    assert here == expected
    clean: list[tuple[int, int]] = []
    other = scratch(server)
    upgrade_in_subprocess(ALEMBIC_INI, other, "head", REPO, steps=lambda done, total: clean.append((done, total)))
    assert clean == expected  # through the pipe of the clean process
    assert applied(other) == applied(url)


def test_the_template_build_tells_its_migrations_and_seeds_with_the_results_seconds(
    server: ServiceEndpoint, tmp_path: Path
) -> None:
    folder = project(tmp_path / "p", f'[tool.envmgr]\nalembic_ini = "{ALEMBIC_INI}"\nseeds = "{REPO / "seeds"}"\n'
                     f'[tool.envmgr.postgres]\ndatabase = "p{uuid.uuid4().hex[:6]}"\n', {})  # fmt: skip
    settings = load_settings(folder / "pyproject.toml", image_set="local")
    heard = Heard()
    result = ensure_template(server, settings, progress=heard)
    assert result.created
    began = [(e.phase, e.detail) for e in heard if isinstance(e, Began)]
    assert began == [("migrate", "alembic"), ("seed", str(REPO / "seeds"))]
    migrations = [(e.done, e.total) for e in heard if isinstance(e, Advanced) and e.phase == "migrate"]
    assert migrations == [(done, MIGRATIONS) for done in range(MIGRATIONS + 1)]
    seeds = [(e.done, e.total, e.detail) for e in heard if isinstance(e, Advanced) and e.phase == "seed"]
    assert [(done, total) for done, total, _ in seeds] == [(i, SEED_FILES) for i in range(1, SEED_FILES + 1)]
    assert seeds[0][2] == "seeds/postgres/001_users.yaml"
    ended = {e.phase: e for e in heard if isinstance(e, Ended)}
    assert ended["migrate"].seconds == result.migrate_seconds  # what the report says, to the digit
    assert ended["seed"].seconds == result.seed_seconds
    again = Heard()
    assert not ensure_template(server, settings, progress=again).created
    assert [type(e) for e in again] == [Noted]
    assert isinstance(again[0], Noted)
    assert again[0].text == f"template {result.name} reused (migrations and seeds skipped)"
