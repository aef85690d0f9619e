"""Benchmark: what the pytest plugin's database handling costs, against doing without it, same images, same run.

Run on demand (not part of the test suite):

    ENVMGR_IMAGE_SET=local python tests/benchmarks/bench_plugin.py [--runs 10] [--suite-runs 3] [--pytest-args ARGS]

1. Per-worker database: `Janitor.clone(template, name)` (CREATE DATABASE ... TEMPLATE) on an `Environment(["postgres"])`
   prepared with the repository's settings, against `alembic upgrade head` (in-process) + the seeds into an empty
   database: what each worker does without a template.
2. Per-test reset: the `db_session` fixture's outer transaction (connect, begin, savepoint session; after a small
   write: close, rollback), and the `envmgr_fresh_db` path (dispose the engine, clone anew, first connection to the
   new database), against TRUNCATE of every table RESTART IDENTITY CASCADE + the seeds again. A committed write
   precedes each fresh-db and truncate sample, outside the timed part.
3. The example suite (tests/example_app/suite/test_releases.py), process start to exit, without xdist and at -n 1, 2,
   4: with envmgr, against the same unchanged tests on tests/benchmarks/usual_way/conftest.py (plain testcontainers
   per process, the alembic CLI, DROP SCHEMA + migrations + seeds after a test that commits), loaded with `-p` while
   envmgr's plugin is off.
   `--pytest-args` adds arguments to both sides (e.g. `-p no:benchmark` when that plugin's per-process cost hides
   the difference).

The two sides of each comparison alternate within one run (A, B, A, B, ...) after one warm-up round each, and the
medians are reported: the machine may be loaded by others.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy
from sqlalchemy.orm import Session

from envmgr import Environment, ServiceEndpoint, load_settings
from envmgr.config import SERVICE_NAMES
from envmgr.services.postgres.janitor import Janitor
from envmgr.services.postgres.template.alembic_upgrade import run_migrations
from envmgr.services.postgres.template.seeds import load_postgres_seeds
from envmgr.services.postgres.urls import sqlalchemy_url

REPO = Path(__file__).resolve().parents[2]
SUITE = ("tests/example_app/suite/test_releases.py", "-q", "-p", "no:cacheprovider")
SUITE_SERVICES = ("postgres", "redis")
USUAL_WAY = ("-p", "no:envmgr", "-p", "tests.benchmarks.usual_way.conftest")
WORKER_COUNTS: tuple[int | None, ...] = (None, 1, 2, 4)  # None: without xdist
INSERT_USER = sqlalchemy.text("INSERT INTO users (email, name) VALUES ('bench@example.com', 'Bench')")
SEEDED_DDL = "DROP FUNCTION release_duration_ms(integer)"  # seeds/postgres/002_releases.sql creates it

Sample = Callable[[], float]
"""One measurement: does its own set-up and clean-up, returns the seconds of the part that is measured."""


@dataclass(frozen=True)
class Row:
    """One line of the final table: envmgr's median against the baseline's."""

    measure: str
    ours: str
    ours_seconds: float
    baseline: str
    baseline_seconds: float

    @property
    def ratio(self) -> float:
        return self.ours_seconds / self.baseline_seconds


def interleaved(samplers: dict[str, tuple[Sample, int]], rounds: int) -> dict[str, list[float]]:
    """Each round runs every sampler its number of times, in the order given; one untimed warm-up round first."""
    for sample, _ in samplers.values():
        sample()
    samples: dict[str, list[float]] = {name: [] for name in samplers}
    for _ in range(rounds):
        for name, (sample, repeat) in samplers.items():
            samples[name].extend(sample() for _ in range(repeat))
    return samples


def ms(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.1f} ms" if seconds < 0.1 else f"{seconds * 1000:.0f} ms"


def report(name: str, samples: list[float]) -> float:
    median = statistics.median(samples)
    print(f"  {name:44} median {ms(median):>9}  (min {ms(min(samples))}, max {ms(max(samples))}, n={len(samples)})")
    return median


@contextmanager
def scratch_database(janitor: Janitor, name: str, template: str | None = None) -> Iterator[str]:
    """A database on the server for the block (empty, or cloned from `template`); its URL."""
    if template is None:
        janitor.drop(name)
        janitor.create(name)
    else:
        janitor.clone(template, name)
    try:
        yield janitor.url(name)
    finally:
        janitor.drop(name)


# 1. per-worker database ---------------------------------------------------------------------------------------------


def bench_worker_database(server: ServiceEndpoint, ini_path: Path, seeds: Path, rounds: int) -> list[Row]:
    print("1. per-worker database")
    template = server.extra["template"]
    with Janitor(server) as janitor:

        def clone() -> float:
            started = time.perf_counter()
            janitor.clone(template, "bench_clone")
            elapsed = time.perf_counter() - started
            janitor.drop("bench_clone")
            return elapsed

        def migrate_and_seed() -> float:
            with scratch_database(janitor, "bench_build") as url:
                started = time.perf_counter()
                run_migrations(ini_path, url)
                load_postgres_seeds(url, seeds)
                return time.perf_counter() - started

        samples = interleaved({"clone": (clone, 1), "build": (migrate_and_seed, 1)}, rounds)
    ours = report("Janitor.clone(template, name)", samples["clone"])
    baseline = report("alembic upgrade head (in-process) + seeds", samples["build"])
    print(f"  ratio clone / migrate+seed: {ours / baseline:.3f}  (x{baseline / ours:.1f} faster)")
    return [Row("per-worker database", "clone", ours, "migrate + seed", baseline)]


# 2. per-test reset --------------------------------------------------------------------------------------------------


def bench_reset(server: ServiceEndpoint, seeds: Path, rounds: int, iterations: int) -> list[Row]:
    print("2. per-test reset")
    template = server.extra["template"]
    with Janitor(server) as janitor, scratch_database(janitor, "bench_worker", template) as url:
        engine = sqlalchemy.create_engine(sqlalchemy_url(url))
        tables = ", ".join(
            engine.dialect.identifier_preparer.quote(name)
            for name in sqlalchemy.inspect(engine).get_table_names()
            if name != "alembic_version"
        )

        def savepoint() -> float:
            started = time.perf_counter()
            connection = engine.connect()
            transaction = connection.begin()
            session = Session(bind=connection, join_transaction_mode="create_savepoint")
            set_up = time.perf_counter() - started
            session.execute(INSERT_USER)
            session.commit()  # what the code under test does: ends a savepoint, not the outer transaction
            started = time.perf_counter()
            session.close()
            transaction.rollback()
            connection.close()
            return set_up + time.perf_counter() - started

        def fresh_db() -> float:
            with engine.begin() as connection:
                connection.execute(INSERT_USER)
            started = time.perf_counter()
            engine.dispose()
            with Janitor(server) as fixture_janitor:  # as the fixture does: a janitor of its own
                fixture_janitor.clone(template, "bench_worker")
            engine.connect().close()  # the next test's first connection is a new one, to the new database
            return time.perf_counter() - started

        def truncate() -> float:
            with engine.begin() as connection:
                connection.execute(INSERT_USER)
            started = time.perf_counter()
            with engine.begin() as connection:
                connection.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
                connection.exec_driver_sql(SEEDED_DDL)  # or the seeds fail: the function exists already
            load_postgres_seeds(url, seeds)
            return time.perf_counter() - started

        per_round = math.ceil(iterations / rounds)
        samples = interleaved(
            {"savepoint": (savepoint, per_round), "fresh": (fresh_db, 1), "truncate": (truncate, 1)}, rounds
        )
        engine.dispose()
    savepoint_median = report("db_session: savepoint session + rollback", samples["savepoint"])
    fresh_median = report("envmgr_fresh_db: dispose + clone + connect", samples["fresh"])
    baseline = report(f"TRUNCATE {tables} + seeds", samples["truncate"])
    print(
        f"  ratio savepoint / truncate+seed: {savepoint_median / baseline:.4f}   "
        f"fresh db / truncate+seed: {fresh_median / baseline:.2f}"
    )
    return [
        Row("per-test reset", "savepoint rollback", savepoint_median, "truncate + seed", baseline),
        Row("commit-test reset", "fresh clone", fresh_median, "truncate + seed", baseline),
    ]


# 3. the example suite end to end ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """How one side runs the suite: its pytest arguments and its environment variables."""

    name: str
    args: tuple[str, ...]
    env: dict[str, str]

    def command(self, workers: int | None) -> list[str]:
        return [sys.executable, "-m", "pytest", *SUITE, *self.args, *(() if workers is None else ("-n", str(workers)))]

    def shown(self) -> str:
        variables = " ".join(f"{key}={value}" for key, value in self.env.items())
        return f"{variables} python -m pytest {shlex.join((*SUITE, *self.args))} [-n N]".strip()


@dataclass(frozen=True)
class SuiteRun:
    seconds: float
    output: str


def run_suite(side: Side, workers: int | None) -> SuiteRun:
    command = side.command(workers)
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=REPO, env={**os.environ, **side.env}, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return SuiteRun(elapsed, result.stdout)


def suite_sampler(side: Side, workers: int | None, kept: list[SuiteRun]) -> Sample:
    """A sample that runs the suite and keeps the run (its output shows where envmgr's time went)."""

    def sample() -> float:
        kept.append(run_suite(side, workers))
        return kept[-1].seconds

    return sample


def label(workers: int | None) -> str:
    return "no xdist" if workers is None else f"-n {workers}"


def bench_suite(rounds: int, pytest_args: tuple[str, ...]) -> list[Row]:
    # The suite needs Postgres and Redis only: whatever else [tool.envmgr] enables stays off, as in the usual way; and
    # the run starts its own environment (a warm one leased from a running daemon is another measure).
    others_off = {f"ENVMGR_{name.upper()}__ENABLED": "false" for name in SERVICE_NAMES if name not in SUITE_SERVICES}
    ours = Side("envmgr", pytest_args, {"ENVMGR_IMAGE_SET": "local", "ENVMGR_DAEMON": "off", **others_off})
    theirs = Side("usual way", (*USUAL_WAY, *pytest_args), {})
    print("3. example suite, process start to exit")
    runs: dict[tuple[str, int | None], list[SuiteRun]] = {}
    samplers: dict[str, tuple[Sample, int]] = {}
    for side in (ours, theirs):
        print(f"  {side.name}: {side.shown()}")
    for workers in WORKER_COUNTS:
        for side in (ours, theirs):
            kept = runs.setdefault((side.name, workers), [])
            samplers[f"{side.name} {label(workers)}"] = (suite_sampler(side, workers, kept), 1)
    samples = interleaved(samplers, rounds)
    rows = []
    for workers in WORKER_COUNTS:
        mine_name, their_name = f"{ours.name} {label(workers)}", f"{theirs.name} {label(workers)}"
        mine, baseline = report(mine_name, samples[mine_name]), report(their_name, samples[their_name])
        paired = statistics.median(a / b for a, b in zip(samples[mine_name], samples[their_name], strict=True))
        print(f"    ratio envmgr / usual way: {mine / baseline:.2f}  (median ratio of adjacent runs: {paired:.2f})")
        summary = re.search(r"^envmgr: .*$", runs[(ours.name, workers)][-1].output, re.MULTILINE)
        if summary:
            print(f"    last envmgr run: {summary.group(0)}")
        rows.append(Row(f"suite {label(workers)}", "envmgr", mine, "usual way", baseline))
    return rows


def print_table(rows: list[Row]) -> None:
    print()
    print(f"{'measure':20} {'envmgr':>30} {'baseline':>30} {'ratio':>8}")
    for row in rows:
        ours = f"{row.ours} {ms(row.ours_seconds)}"
        baseline = f"{row.baseline} {ms(row.baseline_seconds)}"
        print(f"{row.measure:20} {ours:>30} {baseline:>30} {row.ratio:8.3g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="samples of clone, fresh db and truncate (>= 10)")
    parser.add_argument("--iterations", type=int, default=200, help="samples of the savepoint reset (>= 200)")
    parser.add_argument("--suite-runs", type=int, default=3, help="runs of the suite per side and -n (>= 3)")
    parser.add_argument("--pytest-args", default="", help="more pytest arguments for both sides: '-p no:benchmark'")
    args = parser.parse_args()
    settings = load_settings(REPO / "pyproject.toml")
    if settings.image_set != "local":
        sys.exit("the usual way runs the envmgr-local images: run with ENVMGR_IMAGE_SET=local")
    ini_path, seeds = settings.alembic_ini_path(), settings.seeds_path()
    if ini_path is None or seeds is None:
        sys.exit("[tool.envmgr] of pyproject.toml must set alembic_ini and seeds")
    print(f"{args.runs} runs, {args.iterations} savepoint iterations, {args.suite_runs} suite runs; interleaved")
    with Environment(["postgres"], settings=settings) as env:
        server = env.endpoints["postgres"]
        rows = bench_worker_database(server, ini_path, seeds, args.runs)
        rows += bench_reset(server, seeds, args.runs, args.iterations)
    rows += bench_suite(args.suite_runs, tuple(shlex.split(args.pytest_args)))
    print_table(rows)


if __name__ == "__main__":
    main()
