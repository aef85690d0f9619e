"""Benchmark: start on demand (only the services the collected tests reach, in the background after collection;
xdist workers ask the controller; per-worker replicas when a worker needs them), each side in the same run.

Run on demand, from the repository root (not part of the test suite):

    ENVMGR_IMAGE_SET=local python tests/benchmarks/bench_on_demand.py [--runs 5] [--parts unit,suite,cold,workers]

1. unit: `pytest tests/unit -n 2` with envmgr's plugin (nothing reached, so nothing starts) against `-p no:envmgr`,
   process start to exit. Goal: ratio <= 1.05.
2. suite: the example suite (tests/example_app/suite) at -n 2 with the five services of the repository's
   pyproject.toml, process start to exit (it starts its own environment, on demand), against the sum of "the
   environment started alone" (`envmgr up --detach --json --workers 2`: a WireMock and a Celery worker per
   xdist worker, as the suite has; timed; `envmgr down` after, not timed) and "the same
   suite on that running environment" (`--envmgr-env ID`). Goal: ratio <= 0.75 (start and collection overlap).
   Both sides with pytest's cache (see WITH_CACHE).
3. cold: `Environment(settings=<the repository's>).start()` of all five services, against each service started
   alone (Celery with the Redis it needs), in-process; `.close()` not timed. Goal: all five / slowest alone <= 1.3.
4. workers: a generated project (Postgres, Redis, WireMock; every test uses db_session, redis_client and wiremock:
   each worker has its own database, Redis db and WireMock replica) at -n 1, 2, 4, 8: the time from process start to
   the first test's call (a conftest hook writes a timestamp per worker; also when the last worker got there), and
   the memory of the run's containers (`docker stats --no-stream`, summed) while every worker is held at its first
   test (the hook waits for a signal file that the script writes after sampling), and process start to exit; on
   demand against up front (`envmgr up --detach --workers N`, then the run attached: every replica before any
   worker, as before on-demand starts).

Within a round the sides alternate (the order flips each round) after an untimed warm-up (parts 1 and 2: of each
side; part 3: all five services; part 4: the first -n); medians of `--runs` rounds. The machine may be shared: the
load average is printed at the start and before each part.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from envmgr import Environment, load_settings

REPO = Path(__file__).resolve().parents[2]
SERVICES = ["postgres", "redis", "localstack", "wiremock", "celery"]
NEEDS = {"celery": ["redis", "celery"]}  # celery requires redis: its start includes redis's
PARTS = ("unit", "suite", "cold", "workers")
WAIT_SECONDS = 600.0

WITH_CACHE = ("-o", "addopts=-p no:hypothesispytest -p no:benchmark")
"""The repository's addopts without `-p no:cacheprovider`: as in a user's project, pytest's cache keeps what the
last run reached (envmgr.pytest.prediction), so the on-demand side starts it before collection from its second run on
(the warm-up run is the first)."""

Sample = Callable[[], float]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def child_env(**extra: str) -> dict[str, str]:
    """This checkout's code, the local images, no daemon (a warm leased environment is another measure)."""
    return {**os.environ, "PYTHONPATH": str(REPO), "ENVMGR_IMAGE_SET": "local", "ENVMGR_DAEMON": "off", **extra}


def run(command: list[str], cwd: Path = REPO, **extra: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, env=child_env(**extra), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-4000:]}{result.stderr[-3000:]}")
    return result


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def interleaved(samplers: dict[str, Sample], rounds: int, warm: list[str] | None = None) -> dict[str, list[float]]:
    """An untimed warm-up of each (or of those named in `warm`), then `rounds` rounds of each; the order flips every
    round."""
    for name in samplers if warm is None else warm:
        samplers[name]()
    samples: dict[str, list[float]] = {name: [] for name in samplers}
    names = list(samplers)
    for number in range(rounds):
        for name in names if number % 2 == 0 else names[::-1]:
            samples[name].append(samplers[name]())
    return samples


def seconds(value: float) -> str:
    return f"{value:.2f} s"


def report(name: str, samples: list[float]) -> float:
    median = statistics.median(samples)
    print(
        f"  {name:52} median {seconds(median):>9}  (min {seconds(min(samples))}, max {seconds(max(samples))}, "
        f"n={len(samples)})"
    )
    return median


def verdict(ratio: float, goal: float) -> str:
    return f"ratio {ratio:.3f} (goal <= {goal}: {'met' if ratio <= goal else 'NOT met'})"


# 1. unit tests: the plugin's own cost when nothing is reached -------------------------------------------------------


def bench_unit(rounds: int) -> None:
    print(f"1. pytest tests/unit -n 2, process start to exit (load {load()})")
    base = [sys.executable, "-m", "pytest", "tests/unit", "-n", "2", "-q"]
    kept: list[str] = []

    def with_plugin() -> float:
        started = time.perf_counter()
        result = run(base)
        kept.append(result.stdout)
        return time.perf_counter() - started

    samples = interleaved(
        {"envmgr": with_plugin, "-p no:envmgr": lambda: timed(lambda: run([*base, "-p", "no:envmgr"]))}, rounds
    )
    ours = report("with envmgr's plugin", samples["envmgr"])
    theirs = report("-p no:envmgr", samples["-p no:envmgr"])
    paired = statistics.median(a / b for a, b in zip(samples["envmgr"], samples["-p no:envmgr"], strict=True))
    passed = re.search(r"(\d+) passed", kept[-1])
    print(
        f"  {passed.group(0) if passed else '?'} per run; {verdict(ours / theirs, 1.05)}; "
        f"median of paired ratios {paired:.3f}"
    )
    imports = [plugin_import_seconds() for _ in range(rounds)]
    print(
        f"  the plugin's import in each process (the controller and each worker): median "
        f"{statistics.median(imports) * 1000:.0f} ms (min {min(imports) * 1000:.0f} ms) of {rounds}"
    )


PLUGIN_IMPORT = """
import importlib, time
import pytest
started = time.perf_counter()
from envmgr.services.registry import SERVICES
import envmgr.pytest.plugin
for name in ["envmgr.pytest.fixtures", *SERVICES.fixture_modules(), "envmgr.integrations.flask_fixtures"]:
    importlib.import_module(name)
print(time.perf_counter() - started)
"""


def plugin_import_seconds() -> float:
    """What a pytest process spends importing the plugin and the fixture modules it registers (pytest imported)."""
    return float(run([sys.executable, "-c", PLUGIN_IMPORT]).stdout)


# 2. the example suite: on demand against environment first, then the suite -----------------------------------------


def bench_suite(rounds: int) -> None:
    print(f"2. tests/example_app/suite -n 2, five services, process start to exit (load {load()})")
    suite = [sys.executable, "-m", "pytest", "tests/example_app/suite", "-n", "2", "-q", *WITH_CACHE]
    up_times: list[float] = []
    attached_times: list[float] = []
    summaries: list[str] = []

    def on_demand() -> float:
        started = time.perf_counter()
        result = run(suite)
        elapsed = time.perf_counter() - started
        summaries.append(next((line for line in result.stdout.splitlines() if line.startswith("envmgr:")), ""))
        return elapsed

    def up_then_suite() -> float:
        started = time.perf_counter()
        result = run([sys.executable, "-m", "envmgr", "up", "--detach", "--json", "--workers", "2"])
        up = time.perf_counter() - started
        env_id = str(json.loads(result.stdout)["id"])
        try:
            attached = timed(lambda: run([*suite, "--envmgr-env", env_id]))
        finally:
            run([sys.executable, "-m", "envmgr", "down", env_id])
        up_times.append(up)
        attached_times.append(attached)
        return up + attached

    samples = interleaved({"on demand": on_demand, "up + attached": up_then_suite}, rounds)
    up_times, attached_times = up_times[1:], attached_times[1:]  # without the warm-up
    ours = report("suite, its own environment (on demand)", samples["on demand"])
    report("  envmgr up --detach --json --workers 2 (start alone)", up_times)
    report("  suite --envmgr-env ID (running environment)", attached_times)
    theirs = report("start alone + suite on it (per round sum)", samples["up + attached"])
    sum_of_medians = statistics.median(up_times) + statistics.median(attached_times)
    print(
        f"  {verdict(ours / theirs, 0.75)}; against the sum of the two medians ({seconds(sum_of_medians)}): "
        f"{ours / sum_of_medians:.3f}"
    )
    print(f"  last on-demand run: {summaries[-1]}")


# 3. cold start: all five together against the slowest alone ---------------------------------------------------------


def bench_cold(rounds: int) -> None:
    print(f"3. cold start, Environment.start() in-process, close() not timed (load {load()})")
    settings = load_settings(REPO / "pyproject.toml", daemon="off")

    def starter(services: list[str]) -> Sample:
        def sample() -> float:
            env = Environment(services, settings=settings)
            try:
                return timed(env.start)
            finally:
                env.close()

        return sample

    samplers = {"all five": starter(SERVICES)}
    samplers.update({f"{name} alone": starter(NEEDS.get(name, [name])) for name in SERVICES})
    samples = interleaved(samplers, rounds, warm=["all five"])  # it reads every image
    together = report("all five (postgres, redis, localstack, wiremock, celery)", samples["all five"])
    alone = {
        name: report(f"{name} alone" + (" (with redis)" if name in NEEDS else ""), samples[f"{name} alone"])
        for name in SERVICES
    }
    slowest = max(alone, key=alone.__getitem__)
    print(
        f"  slowest alone: {slowest} {seconds(alone[slowest])}; all five / slowest alone: "
        f"{verdict(together / alone[slowest], 1.3)}"
    )


# 4. environment cost per number of workers --------------------------------------------------------------------------

WORKERS_PYPROJECT = """\
[tool.envmgr]
alembic_ini = "{repo}/tests/example_app/alembic.ini"
seeds = "{repo}/seeds"

[tool.envmgr.wiremock]
enabled = true

[tool.envmgr.localstack]
enabled = false

[tool.envmgr.celery]
enabled = false

[tool.pytest.ini_options]
addopts = "-p no:cacheprovider -p no:hypothesispytest -p no:benchmark"
"""

WORKERS_CONFTEST = '''\
"""At its first test's call each process writes a timestamp (first-<worker>), then waits for $BENCH_DIR/go."""

import os
import time
from pathlib import Path

import pytest

OUT = Path(os.environ["BENCH_DIR"])


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    mark = OUT / f"first-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    if mark.exists():
        return
    mark.write_text(repr(time.time()))
    deadline = time.monotonic() + {wait}
    while not (OUT / "go").exists():
        assert time.monotonic() < deadline, "the benchmark never wrote the go file"
        time.sleep(0.05)
'''

WORKERS_TEST = """
def test_{number:03d}(db_session, redis_client, wiremock):
    db_session.execute(sqlalchemy.text("SELECT count(*) FROM users"))
    redis_client.set("key", "value")
    assert requests.get(wiremock.base_url + STUB, timeout=10).status_code == 200
"""

WORKERS_HEADER = """\
import requests
import sqlalchemy

STUB = "/ws/2/release/b1392450-e666-3926-a536-22c65f834433"
"""

MEMORY_UNITS = {"B": 1, "KiB": 1 << 10, "kB": 1000, "MiB": 1 << 20, "MB": 1000**2, "GiB": 1 << 30, "GB": 1000**3}


def mebibytes(usage: str) -> float:
    """'123.4MiB / 7.6GiB' (docker stats' MemUsage) -> 123.4"""
    match = re.match(r"\s*([\d.]+)\s*([A-Za-z]+)", usage)
    if match is None or match.group(2) not in MEMORY_UNITS:
        raise ValueError(f"unexpected docker stats memory: {usage!r}")
    return float(match.group(1)) * MEMORY_UNITS[match.group(2)] / (1 << 20)


def containers_memory(namespace: str) -> tuple[int, float]:
    """How many containers the namespace has, and their memory (MiB, docker stats --no-stream) summed."""
    ids = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=envmgr.namespace={namespace}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not ids:
        return 0, 0.0
    stats = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", *ids],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return len(ids), sum(mebibytes(line.split("/")[0]) for line in stats if line.strip())


def wait_for(condition: Callable[[], bool], what: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            sys.exit(f"the run ended ({process.returncode}) before {what}:\n{output[-4000:]}")
        if time.monotonic() > deadline:
            process.kill()
            sys.exit(f"no {what} within {WAIT_SECONDS:.0f} s")
        time.sleep(0.05)


def workers_run(project: Path, workers: int, upfront: bool = False) -> dict[str, float]:
    """One run at -n `workers`: seconds to the first test (first worker, last worker), containers, memory, total.

    `upfront`: the environment is started first for every worker (`envmgr up --detach --json --workers N`, timed:
    every replica before any worker, as envmgr did before on-demand starts), then the run attaches to it; its
    times count from the start of `envmgr up`."""
    marks = Path(tempfile.mkdtemp(prefix="bench-marks-"))
    namespace = f"bench-{uuid.uuid4().hex[:10]}"
    command = [sys.executable, "-m", "pytest", "-q", "-n", str(workers)]
    started_wall, started = time.time(), time.perf_counter()
    env_id = None
    if upfront:
        up = run([sys.executable, "-m", "envmgr", "up", "--detach", "--json", "--workers", str(workers)], cwd=project,
                 ENVMGR_NAMESPACE=namespace)  # fmt: skip
        env_id = json.loads(up.stdout)["id"]
        command += ["--envmgr-env", env_id]
    process = subprocess.Popen(
        command,
        cwd=project,
        env=child_env(BENCH_DIR=str(marks), ENVMGR_NAMESPACE=namespace),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: len(list(marks.glob("first-*"))) >= workers, f"{workers} workers at their first test", process)
        count, memory = containers_memory(namespace)
        (marks / "go").write_text("")
        output, _ = process.communicate(timeout=WAIT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        total = time.perf_counter() - started
        if env_id is not None:
            run([sys.executable, "-m", "envmgr", "down", env_id], cwd=project, ENVMGR_NAMESPACE=namespace)
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({process.returncode}):\n{output[-4000:]}")
    firsts = [float(path.read_text()) - started_wall for path in marks.glob("first-*")]
    for path in marks.iterdir():
        path.unlink()
    marks.rmdir()
    return {"first": min(firsts), "last first": max(firsts), "containers": count, "memory": memory, "total": total}


def bench_workers(rounds: int, counts: list[int]) -> None:
    print(f"4. environment cost per -n (postgres, redis, wiremock per worker) (load {load()})")
    print("   on demand (replicas when a worker first needs one) against up front (envmgr up --workers N, then the")
    print("   run attached; times from the start of envmgr up)")
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as folder:
        project = Path(folder)
        (project / "pyproject.toml").write_text(WORKERS_PYPROJECT.format(repo=REPO))
        (project / "conftest.py").write_text(WORKERS_CONFTEST.replace("{wait}", str(WAIT_SECONDS)))
        tests = "".join(WORKERS_TEST.format(number=number) for number in range(4 * max(counts)))
        (project / "test_workers.py").write_text(WORKERS_HEADER + tests)
        sides = (("on demand", False), ("up front", True))
        results: dict[tuple[str, int], list[dict[str, float]]] = {(s, c): [] for s, _ in sides for c in counts}
        workers_run(project, counts[0])  # warm-up: imports, page cache
        for number in range(rounds):
            for count in counts if number % 2 == 0 else counts[::-1]:
                for side, upfront in sides if number % 2 == 0 else sides[::-1]:
                    results[(side, count)].append(workers_run(project, count, upfront))
    print(
        f"  {'-n':>3} {'side':>10} {'first test':>11} {'last worker':>12} {'total':>8} {'containers':>11} "
        f"{'memory MiB':>11}   first test: on demand / up front"
    )
    for count in counts:
        medians = {
            side: {key: statistics.median(r[key] for r in results[(side, count)]) for key in results[(side, count)][0]}
            for side, _ in sides
        }
        for side, _ in sides:
            m = medians[side]
            ratio = f"{medians['on demand']['first'] / medians['up front']['first']:.2f}" if side == "on demand" else ""
            print(
                f"  {count:3} {side:>10} {seconds(m['first']):>11} {seconds(m['last first']):>12} "
                f"{seconds(m['total']):>8} {m['containers']:11.0f} {m['memory']:11.0f}   {ratio}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="rounds per part (>= 5)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--workers", default="1,2,4,8", help="the -n values of part 4")
    args = parser.parse_args()
    parts = [part for part in args.parts.split(",") if part]
    unknown = set(parts) - set(PARTS)
    if unknown:
        sys.exit(f"unknown parts: {', '.join(sorted(unknown))}")
    print(f"{args.runs} rounds; load average at start {load()}; {os.cpu_count()} cores")
    if "unit" in parts:
        bench_unit(args.runs)
    if "suite" in parts:
        bench_suite(args.runs)
    if "cold" in parts:
        bench_cold(args.runs)
    if "workers" in parts:
        bench_workers(args.runs, [int(count) for count in args.workers.split(",")])
    print(f"load average at end {load()}")


if __name__ == "__main__":
    main()
