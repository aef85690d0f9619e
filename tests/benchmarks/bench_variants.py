"""Benchmark: start-to-ready of each local image against its official-lookalike variant, in the same run.

    envmgr images build --official-lookalike postgres localstack wiremock   # the variants, tagged as official
    python tests/benchmarks/bench_variants.py --runs 3

The official-lookalike is the same build without envmgr's extras (Postgres: initdb at every start instead of the
baked cluster; LocalStack: no reset extension and no warm-up; WireMock: no AppCDS archive, plain JVM flags), tagged
with the official image's name, so `image_set = "official"` runs it. Each sample is `Environment.start()` of that
service alone in a bare project (no migrations, no seeds), split into the engine's create and the probe's ready
phase; the two variants alternate run by run so that a busy machine weighs on both alike. Median of the runs.
The last column is the margin left to the default startup_timeout.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from envmgr import Environment, load_settings
from envmgr.config import Settings

REPO = Path(__file__).resolve().parents[2]
SERVICES = ["postgres", "localstack", "wiremock"]
VARIANTS = {"local": "local", "official-lookalike": "official"}
"""variant -> the image set that runs it"""


def sample(service: str, settings: Settings) -> tuple[float, float, float]:
    """(start-to-ready, create, ready) seconds of one start of `service` alone."""
    env = Environment([service], settings=settings)
    started = time.perf_counter()
    env.start()
    total = time.perf_counter() - started
    try:
        image = env.endpoints[service].image
        expected = settings.image_set
        assert (image.startswith("envmgr-local/")) == (expected == "local"), f"{service} ran {image}"
        phases = env.timings.phases[service]
        return total, phases["create"], phases["ready"]
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="envmgr-bench-variants-") as root:
        settings = {
            variant: load_settings(
                REPO / "pyproject.toml",
                daemon="off",
                image_set=image_set,
                project_root=Path(root),
                alembic_ini=None,
                seeds=None,
            )
            for variant, image_set in VARIANTS.items()
        }
        samples: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
        for service in SERVICES:
            for run in range(args.runs):
                order = list(VARIANTS) if run % 2 == 0 else list(reversed(VARIANTS))
                for variant in order:
                    samples.setdefault((service, variant), []).append(sample(service, settings[variant]))
    timeout = settings["local"].startup_timeout
    print(f"{'service':11} {'variant':19} {'start-to-ready ms':>17} {'create ms':>10} {'ready ms':>9} "
          f"{'runs (ms)':>22} {'timeout margin':>15}")  # fmt: skip
    for (service, variant), values in samples.items():
        total, create, ready = (statistics.median(column) * 1000 for column in zip(*values, strict=True))
        runs = " ".join(f"{value[0] * 1000:.0f}" for value in values)
        margin = timeout / max(value[0] for value in values)
        print(f"{service:11} {variant:19} {total:17.0f} {create:10.0f} {ready:9.0f} {runs:>22} "
              f"{f'x{margin:.0f}':>15}")  # fmt: skip


if __name__ == "__main__":
    main()
