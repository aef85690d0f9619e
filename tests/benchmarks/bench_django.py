"""Benchmark: a Django suite on envmgr's template (Django's migrations, built once per content; each xdist worker
clones it) against pytest-django's own database handling (each worker creates `test_app_gwN` and runs every
migration), same server, same run.

Run on demand (not part of the test suite):

    ENVMGR_IMAGE_SET=local python tests/benchmarks/bench_django.py [--rounds 3] [--tests 40]

The project is a copy of tests/examples/django_app whose tests are replaced by a suite both sides pass (no test
reads the seeds): `--tests` tests that write and read through the `db` fixture, and 4 `transaction=True` tests.
`--migrations N` adds N migrations (a model each) to the app's 2, for a project whose history is longer.

1. `envmgr up postgres redis --detach --json` in the copy starts Postgres and Redis (Django's CACHES: envmgr wires
   the cache to each worker's Redis database and empties it before each test; pytest-django's side does not) and
   builds the template (Django's migrations, the fixture, the seeds): its migrate and seed times are printed (a
   cost paid once per content of the migrations).
2. At -n 1, 2 and 4, alternating (A, B, A, B ...) after one warm-up round each, process start to exit:
   * envmgr: `pytest --envmgr-env ID`: the plugin attaches to that environment; each worker clones the template;
   * pytest-django: `pytest -p no:envmgr` with POSTGRES_* pointing at the same server: each worker creates its test
     database and migrates it (and drops it at the end), as pytest-django does without envmgr.
   The medians of wall time and of CPU time (user + system of pytest and its workers: Postgres's own work is not in
   it) and the ratios envmgr / pytest-django are printed (below 1: envmgr is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "tests" / "examples" / "django_app"
WORKER_COUNTS = (1, 2, 4)
QUIET = ("-q", "-p", "no:cacheprovider", "-p", "no:benchmark", "-p", "no:hypothesispytest")
TRANSACTIONAL_TESTS = 4

SUITE = """
import pytest

from catalog.models import Author, Book, Genre


@pytest.mark.parametrize("number", range({tests}))
def test_a_book_is_written_and_read(db: None, number: int) -> None:
    author = Author.objects.create(name=f"Author {{number}}")
    genre, _ = Genre.objects.get_or_create(name=f"Genre {{number}}")
    Book.objects.create(title=f"Book {{number}}", author=author, genre=genre, stock=number)
    assert Book.objects.get(title=f"Book {{number}}").stock == number


@pytest.mark.parametrize("number", range({transactional}))
@pytest.mark.django_db(transaction=True)
def test_a_committed_book(number: int) -> None:
    author = Author.objects.create(name=f"Committed {{number}}")
    genre, _ = Genre.objects.get_or_create(name="Committed")
    Book.objects.create(title=f"Committed {{number}}", author=author, genre=genre)
    assert Book.objects.filter(title__startswith="Committed").count() == 1
"""


EXTRA_MIGRATION = """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("catalog", "{previous}")]
    operations = [
        migrations.CreateModel(
            name="Extra{number}",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("name", models.CharField(max_length=100, db_index=True)),
                ("created", models.DateTimeField(auto_now_add=True)),
            ],
        ),
    ]
"""


def project(folder: Path, tests: int, migrations: int = 0) -> Path:
    """A copy of the example with the benchmark's suite and `migrations` more migrations (a model each)."""
    root = folder / "django_app"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    previous = "0002_book_stock"
    for number in range(3, 3 + migrations):
        name = f"{number:04d}_extra{number}"
        text = EXTRA_MIGRATION.format(previous=previous, number=number)
        (root / "catalog" / "migrations" / f"{name}.py").write_text(text)
        previous = name
    (root / "tests").mkdir()
    (root / "tests" / "test_bench.py").write_text(
        textwrap.dedent(SUITE.format(tests=tests, transactional=TRANSACTIONAL_TESTS))
    )
    return root


def envmgr(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envmgr", *args], cwd=root, env=env, capture_output=True, text=True, check=False
    )


def timed_run(root: Path, env: dict[str, str], args: list[str], expected: int) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, of pytest and its xdist workers) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *QUIET, *args], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0 or f"{expected} passed" not in result.stdout:
        raise SystemExit(f"pytest {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tests", type=int, default=40)
    parser.add_argument("--migrations", type=int, default=0, help="migrations added to the example's 2 (a model each)")
    options = parser.parse_args()
    expected = options.tests + TRANSACTIONAL_TESTS
    base_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
        "ENVMGR_NAMESPACE": os.environ.get("ENVMGR_NAMESPACE", f"benchdj{os.getpid()}"),
    }
    base_env.pop("DJANGO_SETTINGS_MODULE", None)
    with tempfile.TemporaryDirectory(prefix="envmgr-bench-django-") as folder:
        root = project(Path(folder), options.tests, options.migrations)
        started = time.perf_counter()
        up = envmgr(root, base_env, "up", "postgres", "redis", "--detach", "--json")
        if up.returncode != 0:
            raise SystemExit(f"envmgr up failed:\n{up.stderr}")
        endpoints = json.loads(up.stdout)
        env_id = endpoints["id"]
        try:
            postgres = endpoints["services"]["postgres"]
            extra = postgres["extra"]
            print(f"1. envmgr up (container, template): {time.perf_counter() - started:.2f} s; template "
                  f"{extra['template']}: Django migrate {float(extra['migrate_seconds']):.2f} s, seeds "
                  f"{float(extra['seed_seconds']):.2f} s (once per content)")  # fmt: skip
            plain = {
                **base_env,
                "POSTGRES_HOST": postgres["host"],
                "POSTGRES_PORT": str(postgres["port"]),
                "POSTGRES_USER": postgres["username"],
                "POSTGRES_PASSWORD": postgres["password"],
                "POSTGRES_DB": postgres["path"],
            }
            print(f"2. {expected} tests ({TRANSACTIONAL_TESTS} transactional), {2 + options.migrations} migrations of "
                  f"the app, process start to exit, medians of {options.rounds} rounds")  # fmt: skip
            for workers in WORKER_COUNTS:
                xdist = ["-n", str(workers)]
                ours_args = [*xdist, "--envmgr-env", env_id]
                theirs_args = [*xdist, "-p", "no:envmgr"]
                timed_run(root, base_env, ours_args, expected)  # warm-up
                timed_run(root, plain, theirs_args, expected)
                ours: list[tuple[float, float]] = []
                theirs: list[tuple[float, float]] = []
                for _ in range(options.rounds):
                    ours.append(timed_run(root, base_env, ours_args, expected))
                    theirs.append(timed_run(root, plain, theirs_args, expected))
                for index, what in enumerate(("wall", "CPU ")):
                    a = statistics.median(sample[index] for sample in ours)
                    b = statistics.median(sample[index] for sample in theirs)
                    print(f"  -n {workers} {what}: envmgr template+clone {a:6.2f} s   pytest-django create+migrate "
                          f"{b:6.2f} s   ratio {a / b:.2f}")  # fmt: skip
        finally:
            down = envmgr(root, base_env, "down", env_id)
            if down.returncode != 0:
                print(f"envmgr down {env_id} failed: {down.stderr}", file=sys.stderr)


if __name__ == "__main__":
    main()
