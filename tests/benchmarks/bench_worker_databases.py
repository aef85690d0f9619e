"""Benchmark: a worker's database at the start of a warm run, taken with its fresh mark against cloned, in one run.

    ENVMGR_IMAGE_SET=local python tests/benchmarks/bench_worker_databases.py [--rounds 15] [--rows 0,200000]

What `PostgresService.worker_setup` does before a worker's first test: since issue 20 it takes the database the
environment's reset left with a fresh mark (one query and a COMMENT), where it used to clone the template (`DROP
DATABASE` and `CREATE DATABASE ... TEMPLATE`, the cost growing with the template's size). One environment per
`--rows` value: the example app's migrations and seeds, plus that many rows of ~100 bytes in a seed of their own (a
bigger seeded database). Each round, alternating: `take` (the database marked fresh first, as the reset leaves it;
the reset itself runs after the previous run, in the daemon's background) and `clone` (the database left unmarked, as
a run that used it leaves it). Printed: medians and 90th percentiles in milliseconds, and take / clone.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from envmgr import Environment, load_settings
from envmgr.endpoints import Worker
from envmgr.services.postgres.janitor import Janitor, fresh_mark

REPO = Path(__file__).resolve().parents[2]
BIG_SEED = """
CREATE TABLE bench_rows (id serial PRIMARY KEY, payload text NOT NULL);
INSERT INTO bench_rows (payload) SELECT repeat('x', 100) FROM generate_series(1, {rows});
"""


def project(folder: Path, rows: int) -> Path:
    """The repository's settings (the example app's alembic.ini), its seeds copied, plus the big seed."""
    seeds = folder / "seeds"
    for source in (REPO / "seeds").rglob("*"):
        if source.is_file():
            target = seeds / source.relative_to(REPO / "seeds")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    if rows:
        (seeds / "postgres" / "900_bench_rows.sql").write_text(BIG_SEED.format(rows=rows))
    return seeds


def measure(rows: int, rounds: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="envmgr-bench-workerdb-") as folder:
        seeds = project(Path(folder), rows)
        alembic_ini = REPO / "tests" / "example_app" / "alembic.ini"
        settings = load_settings(REPO / "pyproject.toml", seeds=seeds, alembic_ini=alembic_ini)
        with Environment(["postgres"], settings=settings, workers=1) as env:
            endpoint, service = env.endpoints["postgres"], env.service("postgres")
            template = endpoint.extra["template"]
            worker = Worker("gw0", isolated=True)
            name = worker.database(endpoint.path)
            service.worker_setup(endpoint, worker)  # the first run's clone (not measured)
            times: dict[str, list[float]] = {"take": [], "clone": []}
            for _ in range(rounds):
                for way in ("take", "clone"):
                    with Janitor(endpoint) as janitor:
                        if way == "take":
                            janitor.mark(name, fresh_mark(template, settings.postgres.database_settings))
                        else:
                            janitor.mark(name, None)
                    started = time.perf_counter()
                    service.worker_setup(endpoint, worker)
                    times[way].append((time.perf_counter() - started) * 1000)
            return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--rows", default="0,200000", help="extra seeded rows of ~100 bytes, one environment each")
    options = parser.parse_args()
    for rows in [int(n) for n in options.rows.split(",")]:
        times = measure(rows, options.rounds)
        line = f"{rows:>7} extra rows:"
        for way in ("take", "clone"):
            values = sorted(times[way])
            p90 = values[int(0.9 * (len(values) - 1))]
            line += f"  {way} median {statistics.median(values):7.1f} ms p90 {p90:7.1f} ms"
        ratio = statistics.median(times["take"]) / statistics.median(times["clone"])
        print(f"{line}  take / clone {ratio:.3f}", flush=True)


if __name__ == "__main__":
    main()
