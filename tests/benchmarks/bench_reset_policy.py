"""Benchmark: what the per-test reset policy costs a test, per service, against the code before it (1d8ba4d), same run.

Run on demand, from the repository root (not part of the test suite):

    ENVMGR_IMAGE_SET=local python tests/benchmarks/bench_reset_policy.py [--runs 5] [--tests 100] [--workers 0]

The policy (envmgr/fixtures.py `_envmgr_seeded_state`, envmgr/reach.py): a test starts from the seeded state of each
service it reaches; a service is reset for the worker before such a test when an earlier test on the worker may have
changed it (reached it through a fixture other than the self-cleaning ones). Before it (commit 1d8ba4d), only the
clean fixtures cleaned up after themselves and nothing reset what a raw fixture's test changed.

A project is generated in a temporary folder: for each of postgres, redis, wiremock and localstack, a test file of
`--tests` tests alternating between the raw fixture (postgres_url + a committed INSERT through psycopg; redis_url +
SET; wiremock_url + a GET of a seeded stub; aws_env + boto3 put_object into the seeded bucket) and the clean one
(db_session + INSERT + flush; redis_client + SET; wiremock + the same GET; s3_client + put_object). Two cases:
"raw only" (`-k raw`: every test dirties the service, so the new code resets before every test but the first) and
"mixed" (all of them, alternating: the worst order for the new code, each clean test follows a raw one).

Each side's environment is started once, before the runs (`envmgr up --detach --json` with that side's code: 1d8ba4d
cannot attach to an environment the current code started, its settings labels differ), and every run attaches to it
with `--envmgr-env ID`, so start-up is excluded. The old side runs the same project with PYTHONPATH=<a temporary
`git worktree add --detach` of 1d8ba4d>; the new side with PYTHONPATH=<this checkout>. A
conftest plugin records each test's setup + call + teardown (`report.duration`) in a JSON file. The first and last
test of each run are left out (they carry the session fixtures' set-up and teardown). Old and new alternate run by
run (the order flips each round). Without xdist (`--workers 0`, the default: one pytest process a run, the quickest)
the run's share is the environment's own database, Redis db, account; `--workers N` runs under xdist (a worker's own).

Printed per service and case: the median per-test cost (all tests of all runs), old and new, their ratio, and what a
1,000-test suite pays extra, (new - old) x 1000, from the medians and from the mean per test (median over runs of each
run's mean): in the mixed case the durations are bimodal, so the mean is what a suite pays.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OLD_COMMIT = "1d8ba4d"
SERVICES = ("postgres", "redis", "wiremock", "localstack")
PLUGINS_OFF = ("-p", "no:cacheprovider", "-p", "no:benchmark", "-p", "no:hypothesispytest")  # ~1.3 s a process
CASES = {"raw only": ("-k", "raw"), "mixed": ()}

PYPROJECT = """\
[tool.envmgr]
alembic_ini = "{repo}/tests/example_app/alembic.ini"
seeds = "{repo}/seeds"

[tool.envmgr.localstack]
enabled = true

[tool.envmgr.wiremock]
enabled = true

[tool.envmgr.celery]
enabled = false
"""

RECORDER = '''\
"""Records each test's setup + call + teardown durations (report.duration) in $BENCH_DURATIONS, in test order."""

import json
import os


class DurationRecorder:
    def __init__(self, path):
        self.path = path
        self.durations = {}

    def pytest_runtest_logreport(self, report):
        self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + report.duration

    def pytest_sessionfinish(self):
        with open(self.path, "w") as handle:
            json.dump(list(self.durations.items()), handle)


def pytest_configure(config):
    path = os.environ.get("BENCH_DURATIONS")
    if path and not hasattr(config, "workerinput"):  # the controller (or the only process) sees every report
        config.pluginmanager.register(DurationRecorder(path), "bench-duration-recorder")
'''

# Each test body: (fixtures, statements). Raw tests use the fixture an app would read; clean ones the fixture that
# cleans up after itself, and only that one (asking for the raw one too would make the test a dirtying one).
BODIES: dict[str, dict[str, tuple[str, str]]] = {
    "postgres": {
        "raw": (
            "postgres_url",
            """\
            with psycopg.connect(postgres_url) as connection:
                connection.execute(INSERT, (f"raw-{uuid.uuid4()}@example.com",))
            """,
        ),
        "clean": (
            "db_session",
            """\
            db_session.execute(sqlalchemy.text(INSERT.replace("%s", ":email")), {"email": f"c-{uuid.uuid4()}@x.org"})
            db_session.flush()
            """,
        ),
    },
    "redis": {
        "raw": ("redis_url", "redis.Redis.from_url(redis_url).set(f'raw-{uuid.uuid4()}', 'value')\n"),
        "clean": ("redis_client", "redis_client.set(f'clean-{uuid.uuid4()}', 'value')\n"),
    },
    "wiremock": {
        "raw": ("wiremock_url", "assert requests.get(wiremock_url + STUB, timeout=10).status_code == 200\n"),
        "clean": ("wiremock", "assert requests.get(wiremock.base_url + STUB, timeout=10).status_code == 200\n"),
    },
    "localstack": {
        "raw": (
            "aws_env",
            """\
            s3 = boto3.client("s3", config=S3_CONFIG)
            s3.put_object(Bucket=aws_env["S3_BUCKET_ARTWORK"], Key=f"raw/{uuid.uuid4()}", Body=b"raw")
            """,
        ),
        "clean": (
            "s3_client, envmgr_worker",
            """\
            s3_client.put_object(Bucket=envmgr_worker.bucket("artwork"), Key=f"clean/{uuid.uuid4()}", Body=b"c")
            """,
        ),
    },
}

HEADER = """\
import uuid

import boto3
import psycopg
import redis
import requests
import sqlalchemy
from botocore.config import Config

INSERT = "INSERT INTO users (email, name) VALUES (%s, 'Bench')"
STUB = "/ws/2/release/b1392450-e666-3926-a536-22c65f834433"
S3_CONFIG = Config(s3={"addressing_style": "path"})
"""


def write_project(root: Path, tests: int) -> None:
    (root / "pyproject.toml").write_text(PYPROJECT.format(repo=REPO))
    (root / "conftest.py").write_text(RECORDER)
    for service, bodies in BODIES.items():
        parts = [HEADER]
        for number in range(tests):
            kind = "raw" if number % 2 == 0 else "clean"
            fixtures, body = bodies[kind]
            parts.append(
                f"\ndef test_{number:03d}_{kind}({fixtures}):\n{textwrap.indent(textwrap.dedent(body), '    ')}"
            )
        (root / f"test_{service}.py").write_text("\n".join(parts))


@contextmanager
def old_checkout() -> Iterator[Path]:
    """A temporary detached worktree of the code before the policy, removed at the end."""
    folder = Path(tempfile.mkdtemp(prefix="envmgr-old-"))
    path = folder / "checkout"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(path), OLD_COMMIT], cwd=REPO, check=True, capture_output=True
    )
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=REPO, check=False)
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class Side:
    name: str
    code: Path


def environment_variables(code: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(code), "ENVMGR_IMAGE_SET": "local", "ENVMGR_DAEMON": "off"}


@contextmanager
def running_environment(side: Side, project: Path) -> Iterator[str]:
    """`envmgr up --detach --json` with the side's code, in the project; its id; `envmgr down` at the end."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "envmgr", "up", "--detach", "--json"],
        cwd=project,
        env=environment_variables(side.code),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(
            f"{side.name}: envmgr up failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    env_id = str(json.loads(result.stdout)["id"])
    print(f"{side.name}: environment {env_id} started in {time.perf_counter() - started:.1f} s (not in the figures)")
    try:
        yield env_id
    finally:
        subprocess.run(
            [sys.executable, "-m", "envmgr", "down", env_id],
            cwd=project,
            env=environment_variables(side.code),
            capture_output=True,
            check=False,
        )


@dataclass
class Samples:
    """Per-test durations of every run of one side, service and case (first and last test of each run left out)."""

    durations: list[float] = field(default_factory=list)
    run_means: list[float] = field(default_factory=list)
    summary: str = ""


def run_once(side: Side, project: Path, env_id: str, service: str, *, case: tuple[str, ...], workers: int) -> Samples:
    out = project / "durations.json"
    out.unlink(missing_ok=True)
    xdist = ("-n", str(workers)) if workers else ()
    command = [
        sys.executable,
        "-m",
        "pytest",
        f"test_{service}.py",
        *case,
        "-q",
        *PLUGINS_OFF,
        "--envmgr-env",
        env_id,
        *xdist,
    ]
    result = subprocess.run(
        command,
        cwd=project,
        env={**environment_variables(side.code), "BENCH_DURATIONS": str(out)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(
            f"{side.name}: {' '.join(command)} failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}{result.stderr[-3000:]}"
        )
    durations = [seconds for _, seconds in json.loads(out.read_text())][1:-1]
    summary = next((line for line in result.stdout.splitlines() if line.startswith("envmgr:")), "")
    return Samples(durations, [statistics.fmean(durations)] if durations else [], summary)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 0.01 else f"{seconds * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per side, service and case")
    parser.add_argument("--tests", type=int, default=100, help="tests per service (half raw, half clean)")
    parser.add_argument("--workers", type=int, default=0, help="pytest -n N (default 0: without xdist)")
    parser.add_argument("--services", default=",".join(SERVICES), help="comma-separated subset")
    args = parser.parse_args()
    services = [name for name in args.services.split(",") if name]
    print(f"load average at start: {load()}; {os.cpu_count()} cores")
    samples: dict[tuple[str, str, str], Samples] = {}
    with tempfile.TemporaryDirectory(prefix="bench-reset-") as folder, old_checkout() as old_code:
        project = Path(folder) / "project"  # a fixed name: `-k raw` must not match the folder's random one
        project.mkdir()
        write_project(project, args.tests)
        sides = (Side("new", REPO), Side(f"old {OLD_COMMIT}", old_code))
        with ExitStack() as stack:
            env_ids = {side.name: stack.enter_context(running_environment(side, project)) for side in sides}
            for side in sides:  # warm-up: imports, the per-worker database/replicas, page cache
                for service in services:
                    run_once(side, project, env_ids[side.name], service, case=("-k", "000"), workers=args.workers)
            for round_number in range(args.runs):
                order = sides if round_number % 2 == 0 else sides[::-1]
                for service in services:
                    for case_name, case in CASES.items():
                        for side in order:
                            got = run_once(side, project, env_ids[side.name], service, case=case, workers=args.workers)
                            kept = samples.setdefault((side.name, service, case_name), Samples())
                            kept.durations += got.durations
                            kept.run_means += got.run_means
                            kept.summary = got.summary
                print(f"  round {round_number + 1}/{args.runs} done; load average {load()}")
    print(
        f"\n{args.runs} runs per side, {args.tests} tests per service, "
        f"{'-n ' + str(args.workers) if args.workers else 'no xdist'}; per test = setup + call + teardown"
    )
    print(
        f"{'service':11} {'case':9} {'old median':>11} {'new median':>11} {'ratio':>6} {'extra/1000 (med)':>17}"
        f" {'old mean':>10} {'new mean':>10} {'extra/1000 (mean)':>18}"
    )
    for service in services:
        for case_name in CASES:
            old, new = samples[(sides[1].name, service, case_name)], samples[(sides[0].name, service, case_name)]
            old_median, new_median = statistics.median(old.durations), statistics.median(new.durations)
            old_mean, new_mean = statistics.median(old.run_means), statistics.median(new.run_means)
            print(
                f"{service:11} {case_name:9} {ms(old_median):>11} {ms(new_median):>11} "
                f"{new_median / old_median:6.2f} {(new_median - old_median) * 1000:15.2f} s"
                f" {ms(old_mean):>10} {ms(new_mean):>10} {(new_mean - old_mean) * 1000:16.2f} s"
            )
    print("\nlast new-code run's envmgr line per service and case:")
    for service in services:
        for case_name in CASES:
            print(f"  {service} {case_name}: {samples[(sides[0].name, service, case_name)].summary}")
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
