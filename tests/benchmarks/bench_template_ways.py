"""Measurement: three ways to keep a migrated template beyond its server (issue 20), on the template of a Django app
with many migrations, same engine, same run. It chose `pg_dump -Fc` for `postgres.template_cache`.

Run on demand (not part of the test suite; needs the docker CLI, and pg_restore on PATH for the host's row):

    ENVMGR_IMAGE_SET=local python tests/benchmarks/bench_template_ways.py [--migrations 500] [--rounds 3]

The app is bench_django.py's (the example's 2 migrations and `--migrations` more, a model each). Its template is
built once by envmgr (`Environment(["postgres"])`: Django's migrate and the seeds), then, for each way, the time to
save it, what is saved, and the time from nothing to a server whose template is ready:

1. `pg_dump -Fc` of a clone of the template (in the server's container), then `pg_restore --single-transaction`
   into a fresh database: in the container (the dump streamed in through the engine's API) and by the host's
   pg_restore. Restored into the running server: a cold start pays its server start plus this.
2. A data-directory archive: `tar` of the whole cluster (after CHECKPOINT) fetched out of the container; a new
   container is created, the archive copied into it before it starts, unpacked into its tmpfs by a wrapping
   entrypoint: the time from create to the template answering (the old cluster's password: a real use would have
   to set the new one, one more restart or a trusted socket).
3. A committed image layer: the cluster copied out of the tmpfs into the container's own layer, `docker commit`;
   a new container of that image, whose entrypoint copies the cluster into its tmpfs (the local image's baked-cluster
   path): create to ready. For a CI cache the image must also go through `docker save`/`docker load` (timed).

A plain cold start of the same image (create to `SELECT 1`) is the baseline each start is compared with.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

from envmgr import Environment, load_settings
from envmgr.engine.commands import EngineCommands
from envmgr.services.postgres.janitor import Janitor
from envmgr.services.postgres.tools import PgTools

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.benchmarks, when run as a script
from tests.benchmarks.bench_django import project

IMAGE = "envmgr-local/postgres:15"
PGDATA = "/var/lib/postgresql/data"
CACHED = "/var/lib/postgresql/cached"
TUNING = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]


def docker(*args: str, stdin: bytes | None = None) -> str:
    done = subprocess.run(["docker", *args], input=stdin, capture_output=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"docker {' '.join(args)}: {done.stderr.decode()}")
    return done.stdout.decode().strip()


def timed(action: Callable[..., object], *args: object, **kwargs: object) -> float:
    started = time.perf_counter()
    action(*args, **kwargs)
    return time.perf_counter() - started


def ready(port: int, password: str, user: str, database: str, deadline: float = 60.0) -> None:
    """Poll until `database` answers on the published port (a template: connect to postgres, look it up)."""
    url = f"postgresql://{user}:{password}@127.0.0.1:{port}/postgres"
    end = time.monotonic() + deadline
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2) as connection:
                found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
                if found is not None or not database:
                    return
        except psycopg.Error:
            pass
        if time.monotonic() > end:
            raise SystemExit(f"no server with {database or 'SELECT 1'} on port {port} after {deadline} s")
        time.sleep(0.02)


def start(name: str, image: str, *, env: dict[str, str], entrypoint: list[str] | None = None,
          archive: Path | None = None) -> int:  # fmt: skip
    """Create (and copy the archive into /tmp), start; the published port."""
    args = ["create", "--name", name, "--tmpfs", PGDATA, "-p", "127.0.0.1::5432"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    if entrypoint is not None:
        args += ["--entrypoint", entrypoint[0]]
    args += [image, *(entrypoint[1:] if entrypoint else []), *([] if entrypoint else ["postgres", *TUNING])]
    docker(*args)
    if archive is not None:
        docker("cp", str(archive), f"{name}:/tmp/pgdata.tar")
    docker("start", name)
    return int(docker("port", name, "5432/tcp").rsplit(":", 1)[1])


def archive(url: str, container: str, tar: Path) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CHECKPOINT")
    with tar.open("wb") as out:
        subprocess.run(["docker", "exec", container, "tar", "-C", PGDATA, "-cf", "-", "."], stdout=out, check=True)


def started_ready(name: str, image: str, env: dict[str, str], template: str, made: list[str], **how: object) -> None:
    """A new container, from create to its template answering."""
    made.append(name)
    port = start(name, image, env=env, **how)  # type: ignore[arg-type]
    ready(port, env["POSTGRES_PASSWORD"], env["POSTGRES_USER"], template)


def commit(container: str, image: str) -> None:
    docker("exec", container, "sh", "-c", f"rm -rf {CACHED} && cp -a {PGDATA} {CACHED}")
    docker("commit", container, image)


def restore(tools: PgTools, dump: Path) -> None:
    result = tools.restore(dump, "restored", ["--single-transaction"])
    if result.exit_code != 0:
        raise SystemExit(result.output)


def main() -> None:  # noqa: PLR0915 - one measurement after the other, printed as it goes
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--migrations", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    run = uuid.uuid4().hex[:6]
    made: list[str] = []
    image = f"envmgr-bench/template-layer:{run}"
    results: dict[str, list[float]] = {}

    def note(key: str, seconds: float) -> None:
        results.setdefault(key, []).append(seconds)
        print(f"  {key:48} {seconds:7.3f} s", flush=True)

    unpack = [
        "sh",
        "-c",
        f"tar -xf /tmp/pgdata.tar -C {PGDATA} && exec docker-entrypoint.sh postgres {' '.join(TUNING)}",
    ]
    with tempfile.TemporaryDirectory(prefix="envmgr-bench-ways-") as folder:
        root = project(Path(folder), tests=1, migrations=args.migrations)
        os.environ.pop("DJANGO_SETTINGS_MODULE", None)
        settings = load_settings(root / "pyproject.toml", image_set="local")
        started = time.perf_counter()
        with Environment(["postgres"], settings=settings) as env:
            endpoint = env.endpoints["postgres"]
            template = endpoint.extra["template"]
            print(
                f"template {template} of {2 + args.migrations} migrations built in "
                f"{time.perf_counter() - started:.1f} s (migrate {float(endpoint.extra['migrate_seconds']):.1f} s)"
            )
            container = endpoint.container
            login = {"POSTGRES_PASSWORD": endpoint.password or "", "POSTGRES_USER": endpoint.username or "",
                     "POSTGRES_DB": "app"}  # fmt: skip
            tools = PgTools(endpoint, EngineCommands(env.engine.client))
            dump, tar, saved = Path(folder) / "template.dump", Path(folder) / "pgdata.tar", Path(folder) / "image.tar"
            try:
                for number in range(args.rounds):
                    print(f"round {number + 1}", flush=True)
                    name = f"envmgr-bench-{run}-{number}"
                    note(
                        "cold start (create to SELECT 1)", timed(started_ready, f"{name}-cold", IMAGE, login, "", made)
                    )
                    with Janitor(endpoint) as janitor:
                        janitor.clone(template, "dump_me")
                        note("1. pg_dump -Fc (container)", timed(tools.dump, "dump_me", dump, ["-Fc"]))
                        janitor.drop("dump_me")
                        for way, restorer in (("container", tools), ("host", PgTools(endpoint))):
                            janitor.create("restored")
                            note(f"1. pg_restore into a fresh database ({way})", timed(restore, restorer, dump))
                            janitor.drop("restored")
                    note("2. data directory: tar out of the container", timed(archive, endpoint.url, container, tar))
                    note("2. data directory: create+copy+start to template",
                         timed(started_ready, f"{name}-tar", IMAGE, login, template, made, entrypoint=unpack,
                               archive=tar))  # fmt: skip
                    note("3. image layer: copy + docker commit", timed(commit, container, image))
                    note("3. image layer: create+start to template",
                         timed(started_ready, f"{name}-layer", image, {**login, "ENVMGR_BAKED_PGDATA": CACHED},
                               template, made))  # fmt: skip
                    note("3. image layer: docker save (for a CI cache)", timed(docker, "save", "-o", str(saved), image))
                    note("3. image layer: docker load", timed(docker, "load", "-i", str(saved)))
                    print(
                        f"  sizes: dump {dump.stat().st_size / 1e6:.1f} MB, data directory "
                        f"{tar.stat().st_size / 1e6:.1f} MB, saved image {saved.stat().st_size / 1e6:.1f} MB"
                    )
                    saved.unlink()
                    docker("rm", "-f", *made)
                    made.clear()
            finally:
                if made:
                    docker("rm", "-f", *made)
                subprocess.run(["docker", "rmi", "-f", image], capture_output=True, check=False)
    print(f"\nmedians of {args.rounds} round(s):")
    for key, values in results.items():
        print(f"  {key:48} {statistics.median(values):7.3f} s")


if __name__ == "__main__":
    main()
