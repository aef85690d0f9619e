"""The edit-test loop (issue 20): envmgr's second and later runs on its default path against the habit it must
replace, per stack, with where the time goes. Run on demand (not part of the test suite), one pytest process tree at a
time:

    ENVMGR_IMAGE_SET=local python tests/benchmarks/bench_loop.py [--stacks django,fastapi,flask,example]
        [--workers 0,2] [--rounds 5] [--modes default,habit] [--max-load 3.5 --max-wait 90]
        [--daemon-cycles 10] [--importtime] [--profile DIR] [--json out.json]
    python tests/benchmarks/bench_loop.py --analyze DIR      # envmgr's functions in the profiles of --profile DIR
    python tests/benchmarks/bench_loop.py --report FILE      # markdown tables of the phases of a --json FILE

Stacks (the example projects, run from their own folder with their own pytest settings; the same tests on every
side):

    django   tests/examples/django_app, without the one test that uses envmgr_faults (the habit has no faults)
    fastapi  tests/examples/fastapi_app, every test
    flask    tests/examples/flask_app: tests/test_invoices.py and tests/test_cache.py (Postgres and Redis; the Celery
             and WireMock tests are left out, and so are those services on envmgr's side: ENVMGR_<S>__ENABLED=false)
    django-many  a copy of django (in the temporary folder) with 300 more tests that each read the database: the
             per-test costs
    django-migrations  a copy of django with 50 more migrations (a model each): what pytest-django --reuse-db runs
             in every process of every run (`migrate`: nothing to apply, but every migration and model checked)
    example  the repository's own (its pyproject): tests/example_app/suite/test_releases.py, --noconftest (the
             repository's tests/conftest.py is its own test suite's); LocalStack, WireMock and Celery disabled

Sides, alternating within each round (A, B, C, A, B, C ...) after one unmeasured warm-up run each:

    default  envmgr's default path, nothing but `pytest`: the warm-up run starts the per-user daemon in the
             background (on this script's private socket) and hands it its environment; every later run leases it
             back (warm by default; envmgr.pytest.warm)
    daemon   (not by default) the same with the daemon started by hand first (`envmgr daemon start` on the private
             socket, stopped at the end of the stack); every run leases the warm environment of its configuration
             (-n 0 and -n 2 are two configurations) and hands it back (the daemon resets it in the background)
    attach   (not by default) `envmgr up --detach` once per stack, then `pytest --envmgr-env ID`
    unfrozen (not by default) the default path with the setting gc_freeze off (envmgr.pytest.heap): what envmgr
             costs without freezing what the process keeps loaded out of the garbage collector's way
    owned    (not by default) no daemon, nothing attached: every run starts its own environment, as the second
             run does today unless `envmgr daemon start` was run by hand
    habit    Postgres and Redis started once by hand (`docker run` of envmgr-local/postgres:15 and
             envmgr-local/redis:7, published on 127.0.0.1) and left running; the migrated, seeded template database
             made once by hand; `pytest -p no:envmgr -p habit_<stack>` (tests/benchmarks/usual_way/habit_*.py): for
             Django pytest-django `--reuse-db`, for the others per-worker databases kept between runs and the
             rollback fixtures a team writes
    habit-frozen  (not by default) the habit with gc.freeze where envmgr freezes (usual_way/habit_freeze.py): what
             a team gets by adding that to its conftest

Every process of every run loads tests/benchmarks/loop_timing.py (`-p loop_timing`), which writes when each phase
of the process began and ended (wall clock and the process's CPU time), envmgr's hooks and the fixtures' set-up
times (JSON lines; see its docstring). Printed per stack and -n: medians of wall time (launch to exit), time to the
first test (launch to the first test's call) and CPU (user + system of pytest and its workers; not Postgres's), their
ratios to the habit, and the median 1-minute load average of the runs (this machine is shared: the CPU ratio is the
one a loaded machine disturbs least); then each phase's medians, wall and CPU, per side. Options:

    --max-load L --max-wait S   before each round, wait (up to S s) until the load average is below L
    --daemon-cycles N           after the rounds: N lease / release cycles against the daemon without pytest (the
                                round trips and the reset that follows a release, until the environment is idle)
    --importtime                one more run per side with PYTHONPROFILEIMPORTTIME (and -s): import seconds per
                                process by top-level package
    --profile DIR               one more run per side under cProfile (DIR/<stack>-n<N>-<side>/<worker>-<pid>.prof)
    --json FILE                 every run's records
    --as-this-machine           run as this machine is set up: PYTHONDONTWRITEBYTECODE (no bytecode written, every
                                module compiled again in every run) and the pytest plugins of its Python that no
                                stack uses (hypothesis, pytest-benchmark); by default both are off, as on a
                                developer's machine, on every side
    --habit-tuned               the habit's Postgres tuned like envmgr's (data in a tmpfs, fsync, synchronous_commit
                                and full_page_writes off); by default it runs with the image's own settings

Network: everything is published on 127.0.0.1; nothing is left behind (the hand-started containers are removed, the
attached environments taken down, the daemon stopped).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "tests" / "benchmarks"
HABIT_DIR = BENCH / "usual_way"
EXAMPLES = REPO / "tests" / "examples"
POSTGRES_IMAGE = "envmgr-local/postgres:15"
REDIS_IMAGE = "envmgr-local/redis:7"
HABIT_LABEL = "envmgr-bench.habit"
HABIT_USER = HABIT_PASSWORD = "habit"
RUN_TIMEOUT = 600.0
PASSED = re.compile(r"(\d+) passed")
TUNED_RUN = ("--tmpfs", "/var/lib/postgresql/data")
TUNED_COMMAND = ("postgres", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
AS_THIS_MACHINE = "LOOP_AS_THIS_MACHINE"
MACHINE_PLUGINS_OFF = "-p no:hypothesispytest -p no:benchmark"
OFF = {f"ENVMGR_{name}__ENABLED": "false" for name in ("LOCALSTACK", "WIREMOCK", "CELERY", "MOTO")}


@dataclass
class Stack:
    name: str
    root: Path
    args: list[str]
    habit_plugin: str
    expected: int
    habit_db: str = ""
    habit_args: list[str] = field(default_factory=list)
    envmgr_env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[Stack, Habit], None] | None = None
    make: Callable[[Stack], None] | None = None
    """makes the project's folder (a copy of an example with more tests), before anything runs in it"""


# the habit's servers ---------------------------------------------------------------------------------------------


class Habit:
    """Postgres and Redis started by hand, as a developer does once a day."""

    def __init__(self, tag: str, tuned: bool = False) -> None:
        self.tag = tag
        self.tuned = tuned
        """like envmgr's server: data in a tmpfs, fsync, synchronous_commit and full_page_writes off (a developer
        who knows); by default the image's own settings (`docker run` as most do it)"""
        self.names = [f"{tag}-habit-postgres", f"{tag}-habit-redis"]
        self.network = f"{tag}-habit"
        self.pg_port = self.redis_port = 0

    def start(self) -> None:
        """On a network of their own (the default bridge may be missing on a shared engine), published on
        127.0.0.1 only."""
        self.remove()
        docker("network", "create", "--label", f"{HABIT_LABEL}={self.tag}", self.network)
        docker("run", "-d", "--name", self.names[0], "--label", f"{HABIT_LABEL}={self.tag}", "--network", self.network,
               "-e", f"POSTGRES_USER={HABIT_USER}", "-e", f"POSTGRES_PASSWORD={HABIT_PASSWORD}",
               "-e", "POSTGRES_DB=habit", "-p", "127.0.0.1::5432", *TUNED_RUN * self.tuned, POSTGRES_IMAGE,
               *TUNED_COMMAND * self.tuned)  # fmt: skip
        docker("run", "-d", "--name", self.names[1], "--label", f"{HABIT_LABEL}={self.tag}", "--network", self.network,
               "-p", "127.0.0.1::6379", REDIS_IMAGE)  # fmt: skip
        self.pg_port = int(docker("port", self.names[0], "5432/tcp").split(":")[-1])
        self.redis_port = int(docker("port", self.names[1], "6379/tcp").split(":")[-1])
        deadline = time.monotonic() + 60
        import psycopg

        while True:
            try:
                with psycopg.connect(self.url("habit"), connect_timeout=2) as connection:
                    connection.execute("SELECT 1")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def remove(self) -> None:
        subprocess.run(["docker", "rm", "-f", "-v", *self.names], capture_output=True, check=False)
        subprocess.run(["docker", "network", "rm", self.network], capture_output=True, check=False)

    @property
    def server(self) -> str:
        return f"postgresql://{HABIT_USER}:{HABIT_PASSWORD}@127.0.0.1:{self.pg_port}"

    def url(self, database: str) -> str:
        return f"{self.server}/{database}"

    def sql(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url("habit"), autocommit=True) as connection:
            connection.execute(statement)

    def env(self, stack: Stack) -> dict[str, str]:
        return {
            "HABIT_POSTGRES": self.server,
            "HABIT_REDIS": f"redis://127.0.0.1:{self.redis_port}",
            "HABIT_DB": stack.habit_db,
            "POSTGRES_HOST": "127.0.0.1",
            "POSTGRES_SERVER": "127.0.0.1",  # the FastAPI app's name for it
            "POSTGRES_PORT": str(self.pg_port),
            "POSTGRES_USER": HABIT_USER,
            "POSTGRES_PASSWORD": HABIT_PASSWORD,
            "POSTGRES_DB": stack.habit_db,
        }


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.strip()


def _python(code: str, cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"preparing in {cwd} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")


def _seed(url: str, seeds: Path, cwd: Path, env: dict[str, str]) -> None:
    _python("from envmgr.services.postgres.template.seeds import load_postgres_seeds; "
            f"load_postgres_seeds({url!r}, __import__('pathlib').Path({str(seeds)!r}))", cwd, env)  # fmt: skip


def _template(habit: Habit, stack: Stack) -> str:
    name = f"{stack.habit_db}_tpl"
    habit.sql(f'DROP DATABASE IF EXISTS "{name}"')
    habit.sql(f'CREATE DATABASE "{name}"')
    return habit.url(name)


def prepare_django(stack: Stack, habit: Habit) -> None:
    """pytest-django makes test_bookshop[_gwN] itself (the first run: the warm-up); its NAME must exist."""
    habit.sql(f'DROP DATABASE IF EXISTS "{stack.habit_db}"')  # (and the test databases of an earlier stack)
    for suffix in ("", "_gw0", "_gw1"):
        habit.sql(f'DROP DATABASE IF EXISTS "test_{stack.habit_db}{suffix}"')
    habit.sql(f'CREATE DATABASE "{stack.habit_db}"')


def prepare_fastapi(stack: Stack, habit: Habit) -> None:
    url = _template(habit, stack)
    env = {**base_env(), **habit.env(stack), "POSTGRES_DB": f"{stack.habit_db}_tpl", "PYTHONPATH": str(stack.root)}
    _python("import alembic.config; alembic.config.main(['upgrade', 'head'])", stack.root, env)
    _seed(url, stack.root / "seeds", stack.root, env)


def prepare_flask(stack: Stack, habit: Habit) -> None:
    url = _template(habit, stack)
    env = {**base_env(), "DATABASE_URL": url, "PYTHONPATH": str(stack.root)}
    _python("from billing import create_app; from flask_migrate import upgrade; app = create_app(); "
            "app.app_context().push(); upgrade()", stack.root, env)  # fmt: skip
    _seed(url, stack.root / "seeds", stack.root, env)


def prepare_example(stack: Stack, habit: Habit) -> None:
    url = _template(habit, stack)
    app = REPO / "tests" / "example_app"
    env = {**base_env(), "PYTHONPATH": str(app)}
    _python("from alembic.config import Config; from alembic import command; "
            "c = Config('alembic.ini'); c.set_main_option('sqlalchemy.url', "
            f"{url.replace('postgresql://', 'postgresql+psycopg://')!r}); command.upgrade(c, 'head')",
            app, env)  # fmt: skip
    _seed(url, REPO / "seeds", app, env)


MANY_TESTS = """
import pytest
from catalog.models import Book


@pytest.mark.parametrize("number", range({count}))
def test_a_query(db: None, number: int) -> None:
    assert Book.objects.count() == 3
"""
MANY = 300
MORE_MIGRATIONS = 50


def make_django_migrations(stack: Stack) -> None:
    """tests/examples/django_app copied (to stack.root) with MORE_MIGRATIONS more migrations (a model each, as
    tests/benchmarks/bench_django.py --migrations makes them): pytest-django --reuse-db runs `migrate` in every
    process of every run (the graph loaded, each migration checked, post_migrate for every model); envmgr checks
    the template's content hash."""
    sys.path.insert(0, str(BENCH))
    from bench_django import EXTRA_MIGRATION

    shutil.rmtree(stack.root, ignore_errors=True)
    shutil.copytree(EXAMPLES / "django_app", stack.root, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    previous = "0002_book_stock"
    for number in range(3, 3 + MORE_MIGRATIONS):
        name = f"{number:04d}_extra{number}"
        (stack.root / "catalog" / "migrations" / f"{name}.py").write_text(
            EXTRA_MIGRATION.format(previous=previous, number=number)
        )
        previous = name


def make_django_many(stack: Stack) -> None:
    """tests/examples/django_app copied (to stack.root), with MANY more tests that each read the database: the
    per-test costs (envmgr: the controller crossing, the seeded-state and cache resets; the habit: its cache clear)."""
    shutil.rmtree(stack.root, ignore_errors=True)
    shutil.copytree(EXAMPLES / "django_app", stack.root, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    (stack.root / "tests" / "test_many.py").write_text(MANY_TESTS.format(count=MANY))


STACKS = {
    "django": Stack(
        "django", EXAMPLES / "django_app",
        ["--deselect", "tests/test_views.py::test_the_page_is_served_from_the_database_when_redis_is_down"],
        "habit_django", 12, habit_db="bookshop", habit_args=["--reuse-db"], prepare=prepare_django,
    ),
    "django-many": Stack(
        "django-many", Path(tempfile.gettempdir()) / "envmgr-loop-django-many",
        ["--deselect", "tests/test_views.py::test_the_page_is_served_from_the_database_when_redis_is_down"],
        "habit_django", 12 + MANY, habit_db="bookshop", habit_args=["--reuse-db"], prepare=prepare_django,
        make=make_django_many,
    ),
    "django-migrations": Stack(
        "django-migrations", Path(tempfile.gettempdir()) / "envmgr-loop-django-migrations",
        ["--deselect", "tests/test_views.py::test_the_page_is_served_from_the_database_when_redis_is_down",
         "--deselect", "tests/test_catalog.py::test_both_migrations_are_applied"],  # it counts the example's two
        "habit_django", 11, habit_db="bookshop", habit_args=["--reuse-db"], prepare=prepare_django,
        make=make_django_migrations,
    ),
    "fastapi": Stack("fastapi", EXAMPLES / "fastapi_app", [], "habit_fastapi", 13, habit_db="tasks",
                     prepare=prepare_fastapi),
    "flask": Stack(
        "flask", EXAMPLES / "flask_app", ["tests/test_invoices.py", "tests/test_cache.py"], "habit_flask", 12,
        habit_db="billing", envmgr_env=OFF, prepare=prepare_flask,
    ),
    "example": Stack(
        "example", REPO, ["tests/example_app/suite/test_releases.py", "--noconftest"], "habit_example", 11,
        habit_db="music", envmgr_env=OFF, prepare=prepare_example,
    ),
}  # fmt: skip


# runs ---------------------------------------------------------------------------------------------------------------


def base_env() -> dict[str, str]:
    """The runs' environment. As on a developer's machine unless --as-this-machine: bytecode is written (this
    machine sets PYTHONDONTWRITEBYTECODE, so every run would compile every module again, pytest's assertion rewrite
    of the plugins' packages included) and the plugins of this machine's Python that no stack uses (hypothesis,
    pytest-benchmark: about 0.7 s per process at the end of a run) are off, on both sides."""
    env = dict(os.environ)
    for name in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "PYTEST_XDIST_WORKER", "PYTEST_ADDOPTS"):
        env.pop(name, None)
    env.setdefault("ENVMGR_IMAGE_SET", "local")
    if env.pop(AS_THIS_MACHINE, "") != "1":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTEST_ADDOPTS"] = MACHINE_PLUGINS_OFF
    return env


class RunFailed(Exception):
    """A run did not pass every test (on a shared engine, e.g. when someone else's cleanup removed a container)."""


@dataclass
class Run:
    side: str
    wall: float
    cpu: float
    load: float
    records: list[dict[str, Any]]
    stderr: str = ""

    @property
    def main(self) -> dict[str, Any]:
        return next(r for r in self.records if r["worker"] == "main")

    @property
    def workers(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["worker"] != "main"]

    def first(self, mark: str) -> float | None:
        times = [r["marks"][mark] for r in self.records if mark in r["marks"]]
        return min(times) - self.main["t0"] if times else None

    @property
    def ttft(self) -> float:
        return self.first("first_call") or float("nan")


def pytest_run(stack: Stack, side: str, workers: int, env: dict[str, str], extra: list[str], *,
               profile_dir: Path | None = None, importtime: bool = False) -> Run:  # fmt: skip
    """One run, launch to exit, with every process's timing records."""
    with tempfile.NamedTemporaryFile(prefix="loop-timing-", suffix=".jsonl", delete=False) as handle:
        timing = Path(handle.name)
    run_env = {
        **env,
        "LOOP_TIMING_FILE": str(timing),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH), env.get("PYTHONPATH", "")])),
    }
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        run_env["LOOP_CPROFILE_DIR"] = str(profile_dir)
    if importtime:
        run_env["PYTHONPROFILEIMPORTTIME"] = "1"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "loop_timing", "-n", str(workers), *stack.args, *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    run_env["LOOP_T0"] = repr(time.time())
    started = time.perf_counter()
    result = subprocess.run(command, cwd=stack.root, env=run_env, capture_output=True, text=True, timeout=RUN_TIMEOUT,
                            check=False)  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    records = [json.loads(line) for line in timing.read_text().splitlines() if line.strip()]
    timing.unlink()
    passed = PASSED.search(result.stdout)
    if result.returncode != 0 or passed is None or int(passed.group(1)) != stack.expected:
        raise RunFailed(f"{stack.name} {side} -n {workers} failed ({result.returncode}), expected {stack.expected} "
                        f"passed:\n{result.stdout[-4000:]}\n{result.stderr[-3000:]}")  # fmt: skip
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    run = Run(side, wall, cpu, max(load, os.getloadavg()[0]), records)
    run.stderr = result.stderr
    return run


# the phase breakdown -----------------------------------------------------------------------------------------------


def spans(run: Run, clock: str = "wall") -> dict[str, float]:
    """Seconds of each phase of a run, from its processes' marks (main: the controller or the only process).

    clock "wall": wall-clock seconds (a process's first span starts at the launch of the command); "cpu": the CPU
    seconds each process spent in the phase (its own user + system time; the first span starts at its start)."""
    cpu = clock == "cpu"
    key = "cpu" if cpu else "marks"
    main = run.main
    m = main.get(key, {})
    t0 = 0.0 if cpu else main["t0"]
    out: dict[str, float] = {}

    def span(name: str, start: str | float, end: str | float, marks: dict[str, float] = m) -> None:
        a = marks.get(start) if isinstance(start, str) else start
        b = marks.get(end) if isinstance(end, str) else end
        if a is not None and b is not None:
            out[name] = b - a

    span("main: interpreter + pytest import", t0, "import")
    span("main: plugins import (entry points)", "import", "load_initial_conftests")
    span("main: load_initial_conftests (settings, plan/ping)", "load_initial_conftests", "load_initial_conftests_end")
    span("main: -> configure (conftests, ini)", "load_initial_conftests_end", "configure")
    span("main: configure (django.setup, integrations)", "configure", "configure_end")
    span("main: sessionstart (xdist spawns workers)", "sessionstart", "sessionstart_end")
    if run.workers:
        ready = [v for k, v in m.items() if k.startswith("node_ready_")]
        if ready and not cpu:
            span("main: sessionstart -> all workers ready", "sessionstart", max(ready))
        for worker in run.workers:
            _worker_spans(worker, worker.get(key, {}), t0, cpu, span)
    else:
        span("main: collection", "collection", "collection_finish")
        span("main: collection_finish (envmgr: lease/ensure)", "collection_finish", "collection_finish_end")
        span("main: first setup -> last teardown", "first_setup", "last_teardown_end")
    span("main: sessionfinish", "sessionfinish", "sessionfinish_end")
    span("main: unconfigure (envmgr: release / remove)", "unconfigure", "unconfigure_end")
    span("main: unconfigure end -> exit", "unconfigure_end", "exit")
    if cpu:
        span("main: total (process)", 0.0, "exit")
        out["all processes (CPU of the run)"] = run.cpu
    else:
        first_setup = run.first("first_setup")
        if first_setup is not None:
            out["to first test set-up"] = first_setup
        out["to first test call"] = run.ttft
        ends = [r["marks"].get("last_teardown_end") for r in run.records]
        if any(ends):
            out["last test end -> exit"] = t0 + run.wall - max(e for e in ends if e)
        out["all processes (wall of the run)"] = run.wall
    _aggregates(run, cpu, out)
    return out


def _worker_spans(worker: dict[str, Any], w: dict[str, float], t0: float, cpu: bool, span: Any) -> None:
    prefix = f"{worker['worker']}: "
    span(prefix + "spawn + interpreter + pytest import", t0, "import", w)
    span(prefix + "plugins + initial conftests", "import", "load_initial_conftests_end", w)
    span(prefix + "configure", "configure", "configure_end", w)
    span(prefix + "collection", "collection", "collection_finish", w)
    span(prefix + "collection_finish (envmgr: ensure, no wait)", "collection_finish", "collection_finish_end", w)
    span(prefix + "first setup -> last teardown", "first_setup", "last_teardown_end", w)
    span(prefix + "sessionfinish -> exit", "sessionfinish", "exit", w)
    if cpu:
        span(prefix + "total (process)", 0.0, "exit", w)


def _aggregates(run: Run, cpu: bool, out: dict[str, float]) -> None:
    """envmgr's hooks, the tests' phases and the fixtures' set-up, summed over the run's processes."""
    field = "cpu" if cpu else "seconds"
    for record in run.records:
        for name, data in record["hooks"].items():
            out[f"hook {name} (all processes)"] = out.get(f"hook {name} (all processes)", 0.0) + data.get(field, 0.0)
        if not cpu:
            for name, value in record["phases"].items():
                if name != "tests":
                    out[f"tests: {name} (all processes)"] = out.get(f"tests: {name} (all processes)", 0.0) + value
        for name, data in record["fixtures"].items():
            label = f"fixture {name} (all processes)"
            out[label] = out.get(label, 0.0) + data.get(field, 0.0)


def print_breakdown(title: str, runs: dict[str, list[Run]]) -> None:
    """The spans of every side, wall and CPU, medians over its runs; fixtures only above 5 ms."""
    table: dict[str, dict[str, float]] = {}
    for side, side_runs in runs.items():
        for clock in ("wall", "cpu"):
            per = [spans(r, clock) for r in side_runs]
            for key in {k for p in per for k in p}:
                values = [p[key] for p in per if key in p]
                table.setdefault(key, {})[f"{side} {clock}"] = statistics.median(values)
    columns = [f"{side} {clock}" for side in runs for clock in ("wall", "cpu")]
    print(f"\n  breakdown {title} (medians, seconds; wall clock and the processes' own CPU)")
    print("    " + f"{'phase':<58}" + "".join(f"{c:>13}" for c in columns))

    def order(key: str) -> tuple[int, str]:
        prefixes = ("main", "gw", "to ", "last", "all", "tests", "hook")
        kind = next((index for index, prefix in enumerate(prefixes) if key.startswith(prefix)), len(prefixes))
        return kind, key

    for key in sorted(table, key=order):
        row = table[key]
        if key.startswith(("fixture", "hook")) and max(row.values()) < 0.005:
            continue
        cells = "".join(f"{row[c]:>13.3f}" if c in row else f"{'':>13}" for c in columns)
        print("    " + f"{key[:58]:<58}" + cells)


# a report for the notes -----------------------------------------------------------------------------------------------

REPORT_ROWS = (
    ("main: interpreter + pytest import", "interpreter + pytest import (controller / only process)"),
    ("main: plugins import (entry points)", "entry-point plugins imported (envmgr's among them)"),
    ("main: load_initial_conftests (settings, plan/ping)", "load_initial_conftests (envmgr: settings, ping, plan)"),
    ("main: configure (django.setup, integrations)", "configure"),
    ("main: sessionstart -> all workers ready", "xdist: sessionstart -> every worker ready"),
    ("W: spawn + interpreter + pytest import", "worker: spawn + interpreter + pytest import"),
    ("W: plugins + initial conftests", "worker: plugins + initial conftests (app imports)"),
    ("W: collection", "worker: collection"),
    ("W: collection_finish (envmgr: ensure, no wait)", "worker: collection_finish (envmgr: ask for services)"),
    ("main: collection", "collection"),
    ("main: collection_finish (envmgr: lease/ensure)", "collection_finish (envmgr: lease / attach)"),
    ("W: first setup -> last teardown", "worker: first test set-up -> last test end"),
    ("main: first setup -> last teardown", "first test set-up -> last test end"),
    ("W: sessionfinish -> exit", "worker: sessionfinish -> exit (session fixtures' teardown)"),
    ("main: sessionfinish", "controller: sessionfinish (waits for the workers)"),
    ("main: unconfigure (envmgr: release / remove)", "unconfigure (envmgr: channel close, release)"),
    ("main: unconfigure end -> exit", "unconfigure end -> exit"),
    ("to first test call", "**time to the first test**"),
    ("all processes (wall of the run)", "**wall of the run**"),
    ("all processes (CPU of the run)", "**CPU of the run (all processes)**"),
)


def report(path: Path) -> None:
    """Markdown tables from a --json file: per stack and -n, each phase's median (wall and CPU) per side, the
    envmgr-minus-habit difference of the daemon side, and the tests' and fixtures' costs (worker rows: the mean
    of the workers)."""
    data = json.loads(path.read_text())
    groups: dict[tuple[str, int], dict[str, list[Run]]] = {}
    for entry in data:
        runs = [Run(r["side"], r["wall"], r["cpu"], r["load"], r["records"]) for r in entry["runs"]]
        groups.setdefault((entry["stack"], entry["workers"]), {})[entry["side"]] = runs
    for (stack, workers), sides in groups.items():
        names = list(sides)
        table: dict[str, dict[str, float]] = {}
        for side, runs in sides.items():
            for clock in ("wall", "cpu"):
                per = [_worker_mean(spans(r, clock)) for r in runs]
                for key in {k for p in per for k in p}:
                    values = [p[key] for p in per if key in p]
                    table.setdefault(key, {})[f"{side} {clock}"] = statistics.median(values)
        load = statistics.median(r.load for runs in sides.values() for r in runs)
        print(f"\n#### {stack}, -n {workers} (medians of {len(next(iter(sides.values())))} runs; load {load:.1f})\n")
        header = " | ".join(f"{s} wall | {s} CPU" for s in names)
        ours = "default" if "default" in names else "daemon"
        print(f"| phase | {header} | {ours} - habit, wall / CPU |")
        print("|---" * (2 + 2 * len(names)) + "|")
        for key, label in REPORT_ROWS:
            row = table.get(key)
            if row is None:
                continue
            cells = " | ".join(f"{_cell(row, f'{s} wall')} | {_cell(row, f'{s} cpu')}" for s in names)
            delta = ""
            if ours in names and "habit" in names:
                parts = [_delta(row, f"{ours} {c}", f"habit {c}") for c in ("wall", "cpu")]
                delta = " / ".join(parts)
            print(f"| {label} | {cells} | {delta} |")
        print()
        fixtures = sorted(k for k in table if k.startswith(("fixture", "hook", "tests:")))
        for key in fixtures:
            row = table[key]
            if max(row.values()) < 0.01:
                continue
            cells = " | ".join(f"{_cell(row, f'{s} wall')} | {_cell(row, f'{s} cpu')}" for s in names)
            print(f"| {key.replace(' (all processes)', ' (sum)')} | {cells} | |")


def _worker_mean(values: dict[str, float]) -> dict[str, float]:
    """gw0: x, gw1: y ... -> W: mean."""
    out: dict[str, float] = {}
    merged: dict[str, list[float]] = {}
    for key, value in values.items():
        if key.startswith("gw"):
            merged.setdefault("W:" + key.split(":", 1)[1], []).append(value)
        else:
            out[key] = value
    out.update({key: sum(v) / len(v) for key, v in merged.items()})
    return out


def _cell(row: dict[str, float], column: str) -> str:
    return f"{row[column]:.3f}" if column in row else ""


def _delta(row: dict[str, float], a: str, b: str) -> str:
    return f"{(row[a] - row[b]) * 1000:+.0f} ms" if a in row and b in row else "-"


# import times ---------------------------------------------------------------------------------------------------------

IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def import_summary(stderr: str, processes: int) -> dict[str, float]:
    """Seconds of import per top-level package (self times summed; all processes of the run, divided by their
    number), from PYTHONPROFILEIMPORTTIME's lines; `envmgr (cumulative)`: the imports made while an envmgr module
    was being imported (its dependencies included, as far as it imported them first)."""
    per: dict[str, float] = {}
    total = 0.0
    envmgr_cumulative = 0.0
    for line in stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match is None:
            continue
        self_us, cumulative_us, indent, name = int(match[1]), int(match[2]), len(match[3]), match[4]
        package = name.split(".")[0]
        per[package] = per.get(package, 0.0) + self_us / 1e6
        total += self_us / 1e6
        if package == "envmgr" and indent <= 1:  # the outermost envmgr import of a chain (the entry point, -p ...)
            envmgr_cumulative += cumulative_us / 1e6
    out = {name: seconds / processes for name, seconds in per.items()}
    out["(all imports)"] = total / processes
    out["envmgr entry (cumulative)"] = envmgr_cumulative / processes
    return out


def print_imports(title: str, summaries: dict[str, dict[str, float]]) -> None:
    sides = list(summaries)
    keys = sorted({k for s in summaries.values() for k in s},
                  key=lambda k: -max(s.get(k, 0.0) for s in summaries.values()))  # fmt: skip
    print(f"\n  imports {title} (seconds per process, PYTHONPROFILEIMPORTTIME self times by top-level package)")
    print("    " + f"{'package':<40}" + "".join(f"{s:>10}" for s in sides))
    for key in keys[:25]:
        print("    " + f"{key:<40}" + "".join(f"{summaries[s].get(key, 0.0):>10.3f}" for s in sides))


# cProfile ------------------------------------------------------------------------------------------------------------

PROFILED = (
    ("envmgr/pytest_plugin.py", "pytest_load_initial_conftests"),
    ("envmgr/pytest_plugin.py", "pytest_configure"),
    ("envmgr/pytest_plugin.py", "pytest_sessionstart"),
    ("envmgr/pytest_plugin.py", "pytest_collection_finish"),
    ("envmgr/pytest_plugin.py", "pytest_runtest_setup"),
    ("envmgr/pytest_plugin.py", "pytest_unconfigure"),
    ("envmgr/config.py", "load_settings"),
    ("envmgr/pytest_source.py", "may_lease"),
    ("envmgr/pytest_source.py", "choose_source"),
    ("envmgr/pytest_source.py", "plan"),
    ("envmgr/client.py", "available"),
    ("envmgr/client.py", "lease"),
    ("envmgr/client.py", "release"),
    ("envmgr/client.py", "_call"),
    ("envmgr/pytest_run.py", "ensure"),
    ("envmgr/pytest_run.py", "_export"),
    ("envmgr/pytest_controller.py", "_call"),
    ("envmgr/pytest_controller.py", "handle"),
    ("envmgr/fixtures.py", "_envmgr_seeded_state"),
    ("envmgr/fixtures.py", "reset"),
    ("envmgr/fixtures.py", "setup"),
    ("envmgr/fixtures.py", "teardown"),
    ("envmgr/fixtures.py", "reach_of"),
    ("envmgr/services/postgres/janitor.py", "clone"),
    ("envmgr/services/postgres/janitor.py", "drop"),
    ("envmgr/services/postgres/janitor.py", "connection"),
    ("envmgr/environment.py", "attach"),
    ("envmgr/environment.py", "prepare"),
    ("envmgr/environment.py", "check_replicas"),
    ("envmgr/engine.py", "connect"),
    ("envmgr/integrations/django.py", "django_db_setup"),
    ("envmgr/integrations/django.py", "_envmgr_django_db"),
    ("envmgr/integrations/django.py", "_empty_cache"),
    ("envmgr/integrations/flask_fixtures.py", "flask_app"),
    ("pytest_django/fixtures.py", "django_db_setup"),
    ("pytest_django/plugin.py", "_setup_django"),
    ("pytest_django/plugin.py", "django_test_environment"),
    ("habit_common.py", "database_url"),
    ("xdist/workermanage.py", "setup_nodes"),
)


def analyze(folder: Path) -> None:
    """Cumulative seconds and calls of envmgr's (and the habit's) functions of interest, per profiled process."""
    import pstats

    for sub in sorted(p for p in folder.iterdir() if p.is_dir()) or [folder]:
        files = sorted(sub.glob("*.prof"))
        if not files:
            continue
        print(f"\n  {sub.name}")
        print("    " + f"{'function':<58}" + "".join(f"{f.stem.split('-')[0]:>16}" for f in files))
        stats = [pstats.Stats(str(f)).stats for f in files]  # type: ignore[attr-defined]
        for path, name in PROFILED:
            cells = []
            for table in stats:
                found = [(v[1], v[3]) for (file, _, func), v in table.items() if file.endswith(path) and func == name]
                calls = sum(c for c, _ in found)
                seconds = max((s for _, s in found), default=0.0)
                cells.append(f"{seconds * 1000:9.1f}ms x{calls:<4}" if found else f"{'-':>16}")
            if any(c.strip() != "-" for c in cells):
                print("    " + f"{(path.rsplit('/', 1)[-1] + ':' + name)[:58]:<58}" + "".join(cells))


# sides ---------------------------------------------------------------------------------------------------------------


@contextmanager
def daemon(env: dict[str, str], start: bool) -> Iterator[None]:
    """A daemon of this script's own on a private socket (ENVMGR_DAEMON_SOCKET in env), stopped at the end (with what
    it keeps). `start`: started by hand first (the `daemon` side); else the first run starts it, as by default."""
    if start:
        subprocess.run([sys.executable, "-m", "envmgr", "daemon", "start"], env=env, check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run([sys.executable, "-m", "envmgr", "daemon", "stop", "--force"], env=env, check=False,
                       capture_output=True)  # fmt: skip


@contextmanager
def attached(stack: Stack, env: dict[str, str], workers: int) -> Iterator[str]:
    up = subprocess.run(
        [sys.executable, "-m", "envmgr", "up", "postgres", "redis", "--detach", "--json", "--workers", str(workers)],
        cwd=stack.root, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if up.returncode != 0:
        raise SystemExit(f"envmgr up failed in {stack.root}:\n{up.stderr[-3000:]}")
    env_id = json.loads(up.stdout)["id"]
    try:
        yield env_id
    finally:
        subprocess.run([sys.executable, "-m", "envmgr", "down", env_id], cwd=stack.root, env=env, capture_output=True,
                       check=False)  # fmt: skip


def wait_for_quiet(max_load: float | None, max_wait: float) -> None:
    """Before a round: wait (up to max_wait s) until the 1-minute load average is below max_load (a shared machine)."""
    if max_load is None:
        return
    deadline = time.monotonic() + max_wait
    while os.getloadavg()[0] >= max_load and time.monotonic() < deadline:
        time.sleep(5)


def measure(stack: Stack, habit: Habit, workers: int, socket_env: dict[str, str], options: argparse.Namespace
            ) -> dict[str, list[Run]]:  # fmt: skip
    """One stack at one -n: every side, alternating, after a warm-up run each (see the module's documentation)."""
    rounds, modes, profile = options.rounds, options.modes.split(","), options.profile
    importtime, cycles = options.importtime, options.daemon_cycles
    envmgr_env = {**base_env(), **socket_env, **stack.envmgr_env}
    habit_env = {**base_env(), **habit.env(stack), "ENVMGR_DAEMON": "off",
                 "PYTHONPATH": str(HABIT_DIR)}  # fmt: skip
    sides: dict[str, tuple[dict[str, str], list[str]]] = {}
    with ExitStack() as stack_exit:
        if "default" in modes:  # nothing but `pytest`: the first run starts the daemon, the next ones lease from it
            sides["default"] = ({**envmgr_env, "ENVMGR_DAEMON": "on"}, [])  # "on": auto leaves a named socket alone
        if "daemon" in modes:
            sides["daemon"] = ({**envmgr_env, "ENVMGR_DAEMON": "on"}, [])
        if "attach" in modes:
            env_id = stack_exit.enter_context(attached(stack, {**envmgr_env, "ENVMGR_DAEMON": "off"}, workers))
            sides["attach"] = ({**envmgr_env, "ENVMGR_DAEMON": "off"}, ["--envmgr-env", env_id])
        if "owned" in modes:  # what every run is without a daemon: the run starts its own environment (cold)
            sides["owned"] = ({**envmgr_env, "ENVMGR_DAEMON": "off"}, [])
        if "unfrozen" in modes:  # the default path with the setting gc_freeze off (envmgr.pytest.heap)
            sides["unfrozen"] = ({**envmgr_env, "ENVMGR_DAEMON": "on", "ENVMGR_GC_FREEZE": "false"}, [])
        if "habit" in modes:
            sides["habit"] = (habit_env, ["-p", "no:envmgr", "-p", stack.habit_plugin, *stack.habit_args])
        if "habit-frozen" in modes:  # the habit with gc.freeze where envmgr freezes (usual_way/habit_freeze.py)
            sides["habit-frozen"] = (habit_env, ["-p", "no:envmgr", "-p", stack.habit_plugin, "-p", "habit_freeze",
                                                 *stack.habit_args])  # fmt: skip
        for side, (env, extra) in sides.items():  # warm-up: the daemon's environment, pytest-django's database ...
            pytest_run(stack, side, workers, env, extra)
        runs: dict[str, list[Run]] = {side: [] for side in sides}
        failures = 0
        for number in range(rounds):
            wait_for_quiet(options.max_load, options.max_wait)
            for side, (env, extra) in sides.items():
                try:
                    run = pytest_run(stack, side, workers, env, extra)
                except RunFailed as exc:  # kept out of the medians, said; three in a stack end the script
                    failures += 1
                    print(f"    round {number + 1} {side:<12} FAILED (left out): {str(exc)[-600:]}", flush=True)
                    if failures >= 3:
                        raise
                    continue
                runs[side].append(run)
                print(f"    round {number + 1} {side:<12} wall {run.wall:6.2f} s  cpu {run.cpu:5.2f} s  first test "
                      f"{run.ttft:5.2f} s  load {run.load:4.2f}", flush=True)  # fmt: skip
        if profile is not None:
            for side, (env, extra) in sides.items():
                pytest_run(stack, side, workers, env, extra, profile_dir=profile / f"{stack.name}-n{workers}-{side}")
        warm = "default" if "default" in sides else "daemon"
        if cycles and warm in sides:
            daemon_cycles(stack, sides[warm][0], workers if workers else 0, cycles)
        if importtime:
            summaries = {}
            for side, (env, extra) in sides.items():
                run = pytest_run(stack, side, workers, env, [*extra, "-s"], importtime=True)  # -s: not captured
                summaries[side] = import_summary(run.stderr, len(run.records))
            print_imports(f"{stack.name} -n {workers}", summaries)
    return runs


CYCLE = """
import json, sys, time
from pathlib import Path
from envmgr.daemon.client import DaemonClient
from envmgr.config import find_pyproject, load_settings
started = time.perf_counter()
settings = load_settings(find_pyproject(Path.cwd()))
parse = time.perf_counter() - started
client = DaemonClient()
out = []
for _ in range(int(sys.argv[1])):
    t = time.perf_counter(); client.available(); ping = time.perf_counter() - t
    t = time.perf_counter(); lease = client.lease(settings, None, int(sys.argv[2])); leased = time.perf_counter() - t
    t = time.perf_counter(); client.release(lease.id); released = time.perf_counter() - t
    t = time.perf_counter()
    while any(e["id"] == lease.id and e["state"] != "idle" for e in client.status()):
        time.sleep(0.005)
    out.append({"ping": ping, "lease": leased, "release": released, "reset": time.perf_counter() - t,
                "warm": lease.warm, "settings": parse})
print(json.dumps(out))
"""


def daemon_cycles(stack: Stack, env: dict[str, str], workers: int, cycles: int) -> None:
    """The daemon's side of a warm run, without pytest: ping, lease, release (the round trips the plugin makes) and
    the reset that follows a release (until the daemon's status shows the environment idle again)."""
    result = subprocess.run([sys.executable, "-c", CYCLE, str(cycles), str(workers)], cwd=stack.root, env=env,
                            capture_output=True, text=True, check=False)  # fmt: skip
    if result.returncode != 0:
        print(f"    daemon cycles failed: {result.stderr[-2000:]}")
        return
    rows = json.loads(result.stdout)
    cells = "  ".join(f"{key} {statistics.median(r[key] for r in rows) * 1000:6.1f} ms"
                      for key in ("settings", "ping", "lease", "release", "reset"))  # fmt: skip
    warm = all(r["warm"] for r in rows)
    print(f"    daemon cycles (medians of {cycles}, workers={workers}): {cells}; all warm: {warm}")


def summarise(stack: Stack, workers: int, runs: dict[str, list[Run]]) -> list[str]:
    """One table line per side: medians of wall time, time to the first test and CPU, their ratios to the habit's,
    and the median 1-minute load average of its runs."""

    def med(side: str, what: Callable[[Run], float]) -> float:
        return statistics.median(what(run) for run in runs[side])

    lines = []
    for side in runs:
        cells = []
        for what in (lambda r: r.wall, lambda r: r.ttft, lambda r: r.cpu):
            value = med(side, what)
            ratio = f"{value / med('habit', what):.2f}" if "habit" in runs else "-"
            cells.append(f"{value:.2f} | {ratio}")
        load = med(side, lambda r: r.load)
        lines.append(f"| {stack.name} | -n {workers} | {side} | {' | '.join(cells)} | {load:.2f} |")
    return lines


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stacks", default="django,fastapi,flask,example")
    parser.add_argument("--workers", default="0,2")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--modes", default="default,habit")
    parser.add_argument("--json", type=Path, default=None, help="write every run's records here")
    parser.add_argument("--profile", type=Path, default=None, help="one more run per side under cProfile, here")
    parser.add_argument("--max-load", type=float, default=None, help="before a round, wait for a lower load average")
    parser.add_argument("--max-wait", type=float, default=120.0, help="... for at most this many seconds")
    parser.add_argument("--habit-tuned", action="store_true", help="the habit's Postgres tuned as envmgr's is")
    parser.add_argument("--daemon-cycles", type=int, default=0, help="lease/release cycles timed without pytest")
    parser.add_argument("--importtime", action="store_true", help="one more run per side: import times")
    parser.add_argument("--as-this-machine", action="store_true",
                        help="no bytecode written, this machine's extra pytest plugins on (see base_env)")  # fmt: skip
    parser.add_argument("--report", type=Path, default=None, help="only print markdown tables of a --json file")
    parser.add_argument("--analyze", type=Path, default=None, help="only print the functions of the profiles here")
    return parser.parse_args()


def main() -> None:
    options = parse_options()
    if options.analyze is not None:
        analyze(options.analyze)
        return
    if options.report is not None:
        report(options.report)
        return
    modes = options.modes.split(",")
    if options.as_this_machine:
        os.environ[AS_THIS_MACHINE] = "1"
    tag = f"loop{os.getpid()}"
    folder = Path(tempfile.mkdtemp(prefix="envmgr-loop-"))  # 0700: the daemon's private socket folder
    socket_env = {"ENVMGR_DAEMON_SOCKET": str(folder / "daemon.sock"), "ENVMGR_NAMESPACE": tag}
    habit = Habit(tag, tuned=options.habit_tuned)
    results: list[dict[str, Any]] = []
    summary: list[str] = []
    try:
        if "habit" in modes:
            habit.start()
        for stack in [STACKS[name] for name in options.stacks.split(",")]:
            if stack.make is not None:
                stack.make(stack)
            if "habit" in modes and stack.prepare is not None:
                stack.prepare(stack, habit)
            uses_daemon = "daemon" in modes or "default" in modes
            with daemon({**base_env(), **socket_env}, "daemon" in modes) if uses_daemon else nullcontext():
                for workers in [int(n) for n in options.workers.split(",")]:
                    print(f"\n{stack.name} -n {workers} ({stack.expected} tests); {os.getloadavg()[0]:.2f} load",
                          flush=True)  # fmt: skip
                    runs = measure(stack, habit, workers, socket_env, options)
                    if not options.rounds:
                        continue
                    lines = summarise(stack, workers, runs)
                    summary += lines
                    print("\n".join("  " + line for line in lines), flush=True)
                    for side, side_runs in runs.items():
                        kept = [r.__dict__ for r in side_runs]
                        results.append({"stack": stack.name, "workers": workers, "side": side, "runs": kept})
                    print_breakdown(f"{stack.name} -n {workers}", runs)
    finally:
        habit.remove()
        shutil.rmtree(folder, ignore_errors=True)
        for stack in STACKS.values():
            if stack.make is not None:
                shutil.rmtree(stack.root, ignore_errors=True)
        if options.json is not None:
            options.json.write_text(json.dumps(results))
    print("\n| stack | -n | side | wall s | / habit | first test s | / habit | CPU s | / habit | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
