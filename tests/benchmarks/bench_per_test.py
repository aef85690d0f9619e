"""Benchmark: what envmgr adds to every test that reaches a service, this code against an earlier commit, same run.

Run on demand (not part of the test suite), as root with the local images built:

    ENVMGR_IMAGE_SET=local python tests/benchmarks/bench_per_test.py [--baseline REF] [--rounds 3] [--tests 400]

A project of its own (in a temporary folder) enables Redis only; its tests each take `redis_url` and do nothing else,
so what a test costs beyond pytest's own is envmgr's: the hook that waits for the services the test reaches (under
xdist, in the workers) and the reset of what an earlier test may have changed (Redis's FLUSHDB, the same on both
sides). Each side runs the suite twice per round, with `--tests` tests and with a tenth of them; the per-test cost is
the difference of the two wall times over the difference of the test counts, so start-up and teardown cancel out.

The baseline is the same repository at `--baseline` (default: the commit before the pytest layer became a package,
where every test crossed to the controller), checked out in a temporary worktree and put first on PYTHONPATH; this
side is the working tree. Both load the plugin explicitly (`-p no:envmgr -p <module>`), so the installed entry point
does not matter. The sides alternate (A, B, A, B ...); medians are printed, with the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BASELINE = "3cd1aa1"
"""main before this session's restructuring: envmgr.pytest_plugin, a controller crossing per test"""

PYPROJECT = """
[tool.envmgr]
namespace = "benchpt"
[tool.envmgr.postgres]
enabled = false
[tool.envmgr.redis]
enabled = true
[tool.pytest.ini_options]
addopts = "-p no:cacheprovider -p no:hypothesispytest -p no:benchmark -p no:randomly"
"""


@dataclass(frozen=True)
class Side:
    name: str
    pythonpath: Path
    plugin: str


def write_project(folder: Path, count: int) -> None:
    (folder / "pyproject.toml").write_text(PYPROJECT)
    tests = "\n".join(f"def test_{index}(redis_url):\n    assert redis_url\n" for index in range(count))
    (folder / "test_many.py").write_text(tests)


def run_suite(side: Side, folder: Path, workers: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(side.pythonpath)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:envmgr", "-p", side.plugin]
    if workers:
        command += ["-n", str(workers)]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(
            f"{side.name}: pytest exited {result.returncode}\n{result.stdout[-3000:]}{result.stderr[-2000:]}"
        )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default=BASELINE, help="git ref of the baseline (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tests", type=int, default=400)
    parser.add_argument("--workers", type=int, nargs="*", default=[0, 2], help="xdist workers (0: no xdist)")
    args = parser.parse_args()
    few = max(1, args.tests // 10)
    with tempfile.TemporaryDirectory(prefix="envmgr-bench-per-test-") as scratch:
        root = Path(scratch)
        worktree = root / "baseline"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(worktree), args.baseline],
                       check=True, capture_output=True)  # fmt: skip
        try:
            sides = [
                Side(f"baseline {args.baseline}", worktree, "envmgr.pytest_plugin"),
                Side("this tree", REPO, "envmgr.pytest.plugin"),
            ]
            projects = {count: root / f"project-{count}" for count in (few, args.tests)}
            for count, folder in projects.items():
                folder.mkdir()
                write_project(folder, count)
            print(f"load average at start: {os.getloadavg()[0]:.1f}")
            for workers in args.workers:
                per_test: dict[str, list[float]] = {side.name: [] for side in sides}
                for side in sides:  # warm-up: images, caches
                    run_suite(side, projects[few], workers)
                for _ in range(args.rounds):
                    for side in sides:
                        many = run_suite(side, projects[args.tests], workers)
                        some = run_suite(side, projects[few], workers)
                        per_test[side.name].append((many - some) / (args.tests - few))
                medians = {name: statistics.median(values) for name, values in per_test.items()}
                label = f"-n {workers}" if workers else "no xdist"
                print(f"{label}: per-test cost, median of {args.rounds} rounds (load {os.getloadavg()[0]:.1f})")
                for name, value in medians.items():
                    print(f"  {name:24} {value * 1000:7.2f} ms per test")
                base, ours = medians[sides[0].name], medians[sides[1].name]
                print(
                    f"  ratio (this tree / baseline): {ours / base:.2f}; saved {(base - ours) * 1000:.2f} ms per test"
                )
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)],
                           check=False, capture_output=True)  # fmt: skip


if __name__ == "__main__":
    main()
