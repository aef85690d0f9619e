"""Benchmark: cold runs of a Django app with a long migration history, with the template cache (`template_cache`)
against without it, and against an app of 2 migrations, same machine, same run.

Run on demand (not part of the test suite):

    ENVMGR_IMAGE_SET=local python tests/benchmarks/bench_template_cache.py [--migrations 500] [--rounds 3] [-n 2]

The apps are bench_django.py's (the example's 2 migrations, and `--migrations` more, a model each; its suite of
`--tests` tests). Every run is cold: `pytest -n 2` with no daemon (`ENVMGR_DAEMON=off`), so the run starts Postgres and
Redis on the engine, builds the template and removes everything at the end, as a CI job on a fresh engine does.
Alternating, after one warm-up of each (which also saves the cache's entry):

* cached: the long app with `ENVMGR_POSTGRES__TEMPLATE_CACHE` naming a folder that holds its template (restored);
* migrating: the long app without the cache (Django's migrate of every migration);
* short: the 2-migration app without the cache.

Each run's report (`--envmgr-report`) is checked: the cached runs restored the template and migrated nothing, the
others migrated. Medians of wall time, and the ratios cached / short (the goal: <= 1.2) and cached / migrating.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.benchmarks, when run as a script
from tests.benchmarks.bench_django import QUIET, REPO, TRANSACTIONAL_TESTS, project

SIDES = ("cached", "migrating", "short")


def cold_run(root: Path, env: dict[str, str], workers: int, expected: int) -> tuple[float, dict[str, Any]]:
    """Wall seconds of one cold pytest run (process start to exit) and its envmgr report."""
    report = root / "envmgr-report.json"  # in the project: a path elsewhere would move pytest's rootdir
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *QUIET, "-n", str(workers), "--envmgr-report", str(report)],
        cwd=root, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if result.returncode != 0 or f"{expected} passed" not in result.stdout:
        raise SystemExit(f"pytest failed in {root}:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    return seconds, json.loads(report.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tests", type=int, default=40)
    parser.add_argument("--migrations", type=int, default=500, help="migrations added to the example's 2")
    parser.add_argument("-n", dest="workers", type=int, default=2)
    options = parser.parse_args()
    expected = options.tests + TRANSACTIONAL_TESTS
    base = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
        "ENVMGR_NAMESPACE": os.environ.get("ENVMGR_NAMESPACE", f"benchtc{os.getpid()}"),
        "ENVMGR_DAEMON": "off",
    }
    base.pop("DJANGO_SETTINGS_MODULE", None)
    base.pop("ENVMGR_POSTGRES__TEMPLATE_CACHE", None)
    with tempfile.TemporaryDirectory(prefix="envmgr-bench-cache-") as folder:
        long_app = project(Path(folder) / "long", options.tests, options.migrations)
        short_app = project(Path(folder) / "short", options.tests, 0)
        cache = Path(folder) / "template-cache"
        runs = {
            "cached": (long_app, {**base, "ENVMGR_POSTGRES__TEMPLATE_CACHE": str(cache)}),
            "migrating": (long_app, base),
            "short": (short_app, base),
        }
        times: dict[str, list[float]] = {side: [] for side in SIDES}
        for number in range(options.rounds + 1):  # round 0: the warm-up, which saves the cache's entry
            for side in SIDES if number % 2 == 0 else tuple(reversed(SIDES)):
                root, env = runs[side]
                seconds, facts = cold_run(root, env, options.workers, expected)
                template = facts.get("template", {})
                migrate = facts["services"]["postgres"]["migrate"]
                restored = bool(template.get("restored"))
                if number > 0 and (restored != (side == "cached") or (migrate > 0) == restored):
                    raise SystemExit(f"{side}: restored {restored}, migrate {migrate} s: {template}")
                print(f"  {'warm-up' if number == 0 else f'round {number}':8} {side:10} {seconds:6.2f} s  "
                      f"migrate {migrate:5.2f} s  {template.get('cache', '')}", flush=True)  # fmt: skip
                if number > 0:
                    times[side].append(seconds)
    median = {side: statistics.median(values) for side, values in times.items()}
    print(f"\ncold runs, pytest -n {options.workers}, {expected} tests, medians of {options.rounds} rounds:")
    print(f"  {2 + options.migrations} migrations, template cache hit: {median['cached']:6.2f} s")
    print(f"  {2 + options.migrations} migrations, migrating:          {median['migrating']:6.2f} s")
    print(f"  2 migrations, migrating:            {median['short']:6.2f} s")
    for label, other in (("cached / 2-migration app", "short"), ("cached / migrating", "migrating")):
        paired = statistics.median(a / b for a, b in zip(times["cached"], times[other], strict=True))
        print(f"ratio {label:25} {median['cached'] / median[other]:.2f} of the medians, {paired:.2f} the median of "
              "each round's own")  # fmt: skip
    print("(goal: cached / 2-migration app <= 1.2)")


if __name__ == "__main__":
    main()
