"""Benchmark: pytest start to the first test with a warm daemon against a cold start; four sandboxes against one.

    ENVMGR_IMAGE_SET=local python tests/benchmarks/bench_daemon.py --runs 3

1. The example suite (tests/example_app, all five services, migrated and seeded) is run with a probe plugin that
   records the moment the first test starts. Cold: `daemon = off`, the run starts its own environment. Warm: a
   daemon (on a private socket) has already served one run; the next runs lease its warm environment. Same suite,
   same process, interleaved; the figure is wall time from the pytest process's start to its first test.
2. `envmgr up postgres redis --sandbox ... --detach`: one alone, then four started at once (parallel processes);
   wall time until all are up, then `envmgr down --sandbox` for each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import time, os, pytest
def pytest_runtest_setup(item):
    marker = os.environ["ENVMGR_BENCH_FIRST_TEST"]
    if not os.path.exists(marker):
        open(marker, "w").write(repr(time.time()))
"""


def first_test_seconds(extra_env: dict[str, str], folder: Path) -> float:
    marker = folder / "first-test"
    marker.unlink(missing_ok=True)
    env = {**os.environ, **extra_env, "ENVMGR_BENCH_FIRST_TEST": str(marker), "PYTHONPATH": str(folder)}
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/example_app", "-q", "-x", "-p", "no:cacheprovider",
         "-p", "bench_probe"],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"the example suite failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    return float(marker.read_text()) - started


def sandboxes(count: int) -> float:
    def one(index: int) -> None:
        subprocess.run(
            [sys.executable, "-m", "envmgr", "up", "postgres", "redis", "--detach", "--sandbox", f"bench-{index}"],
            cwd=REPO, capture_output=True, check=True, env={**os.environ, "ENVMGR_DAEMON": "off"},
        )  # fmt: skip

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(one, range(count)))
    elapsed = time.perf_counter() - started
    for index in range(count):
        subprocess.run([sys.executable, "-m", "envmgr", "down", "--sandbox", f"bench-{index}"],
                       cwd=REPO, capture_output=True, check=True)  # fmt: skip
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="envmgr-bench-") as scratch:
        folder = Path(scratch)
        (folder / "bench_probe.py").write_text(PROBE)
        socket_path = folder / "run" / "daemon.sock"
        daemon_env = {"ENVMGR_DAEMON_SOCKET": str(socket_path), "ENVMGR_DAEMON": "on"}
        subprocess.run([sys.executable, "-m", "envmgr", "daemon", "start"], env={**os.environ, **daemon_env},
                       check=True, capture_output=True)  # fmt: skip
        try:
            first_test_seconds(daemon_env, folder)  # the daemon's first run starts, migrates and seeds
            cold, warm = [], []
            for _ in range(args.runs):
                cold.append(first_test_seconds({"ENVMGR_DAEMON": "off"}, folder))
                warm.append(first_test_seconds(daemon_env, folder))
        finally:
            subprocess.run([sys.executable, "-m", "envmgr", "daemon", "stop", "--force"],
                           env={**os.environ, **daemon_env}, check=False, capture_output=True)  # fmt: skip
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"pytest start -> first test, all five services migrated and seeded (median of {args.runs}):")
    print(f"  cold (own environment) {c:6.2f} s   warm daemon lease {w:6.2f} s   ratio {w / c:.2f} (x{c / w:.1f})")
    one = statistics.median(sandboxes(1) for _ in range(args.runs))
    four = statistics.median(sandboxes(4) for _ in range(args.runs))
    print(f"sandboxes (postgres + redis, detached): one {one:.2f} s; four at once {four:.2f} s; "
          f"ratio {four / one:.2f} (serial would be {4 * one:.2f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
