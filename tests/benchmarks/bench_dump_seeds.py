"""Benchmark: a ~100 MB pg_dump as a seed, loaded by envmgr against `psql -f` and `pg_restore` themselves, same
dumps, same server, same run.

Run on demand (not part of the test suite: tests/benchmarks is in norecursedirs):

    ENVMGR_IMAGE_SET=local python tests/benchmarks/bench_dump_seeds.py [--mb 100] [--rounds 3]

A source database of one envmgr Postgres server (`Environment(["postgres"])`) is filled with `--mb` megabytes of
rows (two tables: events with a jsonb column and text needing COPY escapes, and their tags; primary keys, a foreign
key, an index), then dumped twice by the host's pg_dump: plain SQL (`pg_dump`, COPY blocks) and custom format
(`pg_dump -Fc`). Each round loads each dump into fresh databases of the same server, alternating the sides, every
load in one transaction, and the rows and a checksum are compared with the source's:

* plain: envmgr's `load_postgres_seeds` (read, split, batches and COPY streams over TCP) against
  `psql -X -q -1 -v ON_ERROR_STOP=1 -f dump.sql` (the host's psql over TCP);
* custom: envmgr's `load_postgres_seeds` with the environment's engine (pg_restore in the server's container, the
  dump streamed in through the engine's API), and with the host's pg_restore (the way for a server envmgr did not
  start), against `pg_restore --no-owner --no-privileges --single-transaction -d ...` run directly on the host.

The medians and the ratios envmgr / tool are printed (1.00: as fast as the tool itself): the ratio of the medians,
and the median of each round's own ratio, steadier on a loaded machine (the two sides of a round run back to back).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

from envmgr import Environment, ServiceEndpoint, Settings
from envmgr.config.settings import ImageSet
from envmgr.engine.commands import EngineCommands
from envmgr.services.postgres.janitor import Janitor
from envmgr.services.postgres.template.seeds import load_postgres_seeds
from envmgr.services.postgres.tools import PgTools

ROW_BYTES = 117  # about what one event row and its tag take in the plain dump
FILL = """
CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz NOT NULL, kind text NOT NULL, payload jsonb,
                     note text);
CREATE TABLE tags (event bigint REFERENCES events, tag text NOT NULL);
INSERT INTO events
SELECT i, timestamptz '2024-01-01' + i * interval '1 second', (ARRAY['signup', 'login', 'buy'])[1 + i % 3],
       jsonb_build_object('n', i, 'ok', i % 2 = 0, 's', 'x;y''z'), E'tab\\there; back\\\\slash -- ' || i
FROM generate_series(1, ROWS) AS i;
INSERT INTO tags SELECT i, 'tag-' || (i % 97) FROM generate_series(1, ROWS) AS i;
CREATE INDEX events_kind_at ON events (kind, at);
"""
CHECK = "SELECT count(*), sum(hashtext(e.note || e.payload::text || t.tag)) FROM events e JOIN tags t ON t.event = e.id"
PLAIN = "postgres/001_prod.sql"
CUSTOM = "postgres/001_prod.dump"
WAYS = ("container", "host")
SIDES = ("envmgr plain", "psql -f", "envmgr custom (container)", "envmgr custom (host)", "pg_restore")


def host_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        sys.exit(f"{name} is not on PATH: install postgresql-client (the baseline runs the host's tools)")
    return found


def checksum(url: str) -> tuple[object, ...]:
    with psycopg.connect(url) as connection:
        row = connection.execute(CHECK).fetchone()
    assert row is not None
    return tuple(row)


def loaders(
    endpoint: ServiceEndpoint, commands: EngineCommands, folder: Path, address: list[str], login: dict[str, str]
) -> dict[str, Callable[[str, str], object]]:
    """Each side: (database name, its URL) -> load the dump into it."""
    psql, pg_restore = host_tool("psql"), host_tool("pg_restore")
    plain, custom = folder / "plain", folder / "custom"
    in_container, on_host = PgTools(endpoint, commands), PgTools(endpoint)

    def run_psql(name: str, url: str) -> object:
        command = [psql, "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", *address, name, "-f", str(plain / PLAIN)]
        return subprocess.run([*command, "-o", os.devnull], env=login, check=True, stdout=subprocess.DEVNULL)

    def run_pg_restore(name: str, url: str) -> object:
        options = ["--no-owner", "--no-privileges", "--single-transaction"]
        return subprocess.run([pg_restore, *options, *address, name, str(custom / CUSTOM)], env=login, check=True)

    return {
        "envmgr plain": lambda name, url: load_postgres_seeds(url, plain),
        "psql -f": run_psql,
        "envmgr custom (container)": lambda name, url: load_postgres_seeds(url, custom, tools=in_container),
        "envmgr custom (host)": lambda name, url: load_postgres_seeds(url, custom, tools=on_host),
        "pg_restore": run_pg_restore,
    }


def make_dumps(
    janitor: Janitor, megabytes: float, address: list[str], login: dict[str, str], folder: Path
) -> tuple[object, ...]:
    """The source database and its two dumps (folder/plain/postgres/..., folder/custom/postgres/...); its checksum."""
    pg_dump = host_tool("pg_dump")
    janitor.create("source")
    started = time.perf_counter()
    with psycopg.connect(janitor.url("source"), autocommit=True) as connection:
        connection.execute(FILL.replace("ROWS", str(int(megabytes * 1_000_000 / ROW_BYTES))).encode())
    expected = checksum(janitor.url("source"))
    plain, custom = folder / "plain" / PLAIN, folder / "custom" / CUSTOM
    subprocess.run([pg_dump, *address, "source", "-f", str(plain)], env=login, check=True)
    subprocess.run([pg_dump, "-Fc", *address, "source", "-f", str(custom)], env=login, check=True)
    janitor.drop("source")
    print(f"dumps: plain {plain.stat().st_size / 1e6:.1f} MB, custom {custom.stat().st_size / 1e6:.1f} MB "
          f"({expected[0]} rows; made in {time.perf_counter() - started:.1f} s)", flush=True)  # fmt: skip
    return expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0, help="size of the plain dump (default ~100 MB)")
    parser.add_argument("--rounds", type=int, default=3, help="loads per side, alternating (default 3)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="envmgr-bench-dumps-"))
    image_set: ImageSet = "official" if os.environ.get("ENVMGR_IMAGE_SET") == "official" else "local"
    times: dict[str, list[float]] = {side: [] for side in SIDES}
    try:
        for kind in ("plain", "custom"):
            (folder / kind / "postgres").mkdir(parents=True)
        with Environment(["postgres"], settings=Settings(project_root=folder, image_set=image_set)) as env:
            endpoint = env.endpoints["postgres"]
            login = {**os.environ, "PGPASSWORD": endpoint.password or ""}
            address = ["-h", endpoint.host, "-p", str(endpoint.port), "-U", endpoint.username or "", "-d"]
            with Janitor(endpoint) as janitor:
                expected = make_dumps(janitor, args.mb, address, login, folder)
                sides = loaders(endpoint, EngineCommands(env.engine.client), folder, address, login)
                for number in range(args.rounds):
                    for side in SIDES if number % 2 == 0 else tuple(reversed(SIDES)):
                        name = f"bench_{uuid.uuid4().hex[:8]}"
                        janitor.create(name)
                        started = time.perf_counter()
                        sides[side](name, janitor.url(name))
                        seconds = time.perf_counter() - started
                        loaded = checksum(janitor.url(name))
                        if loaded != expected:
                            sys.exit(f"{side} loaded {loaded}, expected {expected}")
                        janitor.drop(name)
                        times[side].append(seconds)
                        print(f"  round {number + 1} {side:26} {seconds:6.2f} s", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    median = {side: statistics.median(values) for side, values in times.items()}
    print(f"\nmedians of {args.rounds} round(s), {image_set} image:")
    for side in SIDES:
        print(f"  {side:26} {median[side]:6.2f} s")
    pairs = [("plain:  envmgr / psql -f", "envmgr plain", "psql -f")]
    pairs += [(f"custom: envmgr ({way}) / pg_restore", f"envmgr custom ({way})", "pg_restore") for way in WAYS]
    print("ratios: of the medians; the median of each round's own ratio (the sides of a round ran back to back)")
    for label, ours, theirs in pairs:
        paired = statistics.median(a / b for a, b in zip(times[ours], times[theirs], strict=True))
        print(f"  {label:36} {median[ours] / median[theirs]:.2f}   {paired:.2f}")


if __name__ == "__main__":
    main()
