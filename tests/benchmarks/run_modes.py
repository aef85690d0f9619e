"""The example suite in every mode, several runs in a row each: does it pass every time, and how long does it take?

Run on demand, from the repository root (not part of the test suite; it runs one pytest process at a time):

    PYTHONPATH=$PWD python tests/benchmarks/run_modes.py [--modes single,n2,n4,daemon] [--image-sets local,official]
        [--runs 3]

Each run is `python -m pytest tests/example_app/suite -q` from the repository root, timed from process start to
exit, with this checkout's code (PYTHONPATH) and a namespace (ENVMGR_NAMESPACE) of its own, in one of the modes:

    single   no xdist
    n2       -n 2
    n4       -n 4
    daemon   -n 2, leasing from a daemon (ENVMGR_DAEMON=on) that this script starts on a socket in a temporary folder
             of its own (never a user's daemon); one daemon per image set, stopped after its runs. Its runs share a
             namespace: the daemon pools environments per configuration (the namespace is part of it), so the first
             run leases an environment started for it and the next ones lease it warm, reset after each release.

and for each image set (ENVMGR_IMAGE_SET): `local` (envmgr's own images) and `official` (the official names, which
`.ci/setup` tags on the official-lookalike variants). Every other mode runs with ENVMGR_DAEMON=off and the private
socket, so no daemon of a user is ever leased from.

One line per run as it goes (pytest's counts, seconds, the environment line), then a table. After all runs, the
engine must hold no container, network or volume of the script's namespaces, of the environments the runs reported,
or of the script's daemons, and each daemon's log no line at level WARNING or above (a reset that failed makes the next
run start cold, and the runs would not show it). Exit status 1 when a run failed, had errors, passed no test, or on
any such problem.
Each run's output is kept in a folder (printed) when something failed, or always with --keep-logs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from envmgr.daemon.client import DaemonClient
from envmgr.daemon.keys import daemon_key
from envmgr.engine.connection import Engine
from envmgr.engine.labels import LABEL_DAEMON, LABEL_ENV, LABEL_NAMESPACE
from envmgr.errors import EnvmgrError

REPO = Path(__file__).resolve().parents[2]
SUITE = "tests/example_app/suite"
MODES: dict[str, list[str]] = {"single": [], "n2": ["-n", "2"], "n4": ["-n", "4"], "daemon": ["-n", "2"]}
IMAGE_SETS = ("local", "official")
RUN_TIMEOUT = 900.0
SETTLE_TIMEOUT = 120.0
COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)\b")
SUMMARY = re.compile(r"^=*\s*(?:\d+ \w+(?:, )?)+.* in ([\d.]+)s")
DAEMON_TROUBLE = re.compile(r" (WARNING|ERROR|CRITICAL) |^Traceback")
ENVIRONMENT = re.compile(r"^envmgr: environment ([0-9a-f]+)\b(.*)$")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass
class Run:
    """One pytest process: what it reported and how long it took."""

    mode: str
    image_set: str
    number: int
    namespace: str
    seconds: float = 0.0
    exit_code: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    pytest_seconds: float | None = None
    environment: str | None = None
    environment_line: str = ""
    log: Path | None = None

    @property
    def ok(self) -> bool:
        return (
            self.exit_code == 0
            and self.counts.get("passed", 0) > 0
            and not self.counts.get("failed")
            and not self.counts.get("errors")
        )

    def counted(self) -> str:
        if not self.counts:
            return "no summary" if self.exit_code is not None else "timed out"
        return ", ".join(f"{number} {name}" for name, number in self.counts.items())


def parse(run: Run, output: str) -> None:
    """pytest's summary line (counts, its own seconds) and envmgr's environment line."""
    for line in output.splitlines():
        stripped = line.strip()
        environment = ENVIRONMENT.match(stripped)
        if environment:
            run.environment = environment.group(1)
            run.environment_line = stripped
        summary = SUMMARY.match(stripped)
        if summary:
            run.pytest_seconds = float(summary.group(1))
            run.counts = {}
            for number, name in COUNT.findall(stripped):
                key = "errors" if name.startswith("error") else name
                run.counts[key] = int(number)


def child_env(run: Run, socket_path: Path) -> dict[str, str]:
    """This checkout's code, the run's image set and namespace; the daemon required in the daemon mode, off
    otherwise; the script's private socket either way."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "ENVMGR_IMAGE_SET": run.image_set,
        "ENVMGR_NAMESPACE": run.namespace,
        "ENVMGR_DAEMON": "on" if run.mode == "daemon" else "off",
        "ENVMGR_DAEMON_SOCKET": str(socket_path),
    }


def execute(run: Run, socket_path: Path, logs: Path) -> None:
    command = [sys.executable, "-m", "pytest", SUITE, "-q", *MODES[run.mode]]
    started = time.perf_counter()
    try:
        result = subprocess.run(
            command,
            cwd=REPO,
            env=child_env(run, socket_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        output = result.stdout
        run.exit_code = result.returncode
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode(errors="replace")
        output += f"\nrun_modes: killed after {RUN_TIMEOUT:.0f} s\n"
    run.seconds = time.perf_counter() - started
    parse(run, output)
    run.log = logs / f"{run.image_set}-{run.mode}-{run.number}.log"
    run.log.write_text(f"$ {' '.join(command)}\n{output}")


def report_run(run: Run, runs: int) -> None:
    verdict = "ok  " if run.ok else "FAIL"
    pytest_seconds = f"pytest {run.pytest_seconds:.1f} s" if run.pytest_seconds is not None else "no pytest time"
    source = ""
    if run.environment_line:
        source = run.environment_line.split("|")[0].removeprefix("envmgr: ").strip()
    print(
        f"{verdict} {run.mode:6} {run.image_set:8} run {run.number}/{runs}: {run.counted():28} "
        f"{run.seconds:6.1f} s ({pytest_seconds}, exit {run.exit_code}) | {source} | load {load()}",
        flush=True,
    )
    if not run.ok and run.log is not None:
        tail = run.log.read_text(errors="replace").splitlines()[-40:]
        print("\n".join(f"    | {line}" for line in tail), flush=True)


@contextmanager
def daemon(socket_path: Path, kept_log: Path) -> Iterator[list[str]]:
    """A daemon of the script's own on `socket_path`, running this checkout's code; yields a list to which the
    problems found when stopping it are added: a lease still held, a daemon that would not stop, and what its log
    (kept as `kept_log`) says at level WARNING or above (a failed reset, a failed request)."""
    log = socket_path.with_suffix(".log")  # where `spawn` writes it
    log.unlink(missing_ok=True)
    subprocess.run(
        [sys.executable, "-m", "envmgr", "daemon", "start", "--socket", str(socket_path)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=True, capture_output=True,
    )  # fmt: skip
    problems: list[str] = []
    try:
        yield problems
    finally:
        problems.extend(stop_daemon(DaemonClient(socket_path)))
        shutil.copyfile(log, kept_log)
        problems.extend(
            f"the daemon's log: {line}"
            for line in log.read_text(errors="replace").splitlines()
            if DAEMON_TROUBLE.search(line)
        )


def stop_daemon(client: DaemonClient) -> list[str]:
    """Wait for the leases to be handed back and reset, stop the daemon (forced only when it refuses), and wait
    until it removed its environments and its socket."""
    problems: list[str] = []
    deadline = time.monotonic() + SETTLE_TIMEOUT
    environments = client.status()
    while any(env["state"] != "idle" for env in environments):
        if time.monotonic() > deadline:
            problems.append(f"the daemon's leases were not handed back within {SETTLE_TIMEOUT:.0f} s: {environments}")
            break
        time.sleep(0.2)  # polling the daemon's state, within the deadline
        environments = client.status()
    print(f"     daemon before stop: {[(env['id'], env['state']) for env in environments]}", flush=True)
    try:
        client.stop(force=bool(problems))
    except EnvmgrError as exc:  # a refused stop is a finding; stop it anyway
        problems.append(f"the daemon refused to stop: {exc}")
        client.stop(force=True)
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while client.path.exists():  # the daemon removes its socket after its environments
        if time.monotonic() > deadline:
            problems.append(f"the daemon did not stop within {SETTLE_TIMEOUT:.0f} s")
            break
        time.sleep(0.1)
    return problems


def leftovers(engine: Engine, namespaces: set[str], environments: set[str], daemons: set[str]) -> list[str]:
    """Every container, network and volume labelled with one of the namespaces, environments or daemons."""
    selectors = (
        [f"{LABEL_NAMESPACE}={name}" for name in sorted(namespaces)]
        + [f"{LABEL_ENV}={env_id}" for env_id in sorted(environments)]
        + [f"{LABEL_DAEMON}={key}" for key in sorted(daemons)]
    )
    found: set[str] = set()
    for selector in selectors:
        filters = {"label": [selector]}
        found.update(f"container {c.name}" for c in engine.client.containers.list(all=True, filters=filters))
        found.update(f"network {n.name}" for n in engine.client.networks.list(filters=filters))
        found.update(f"volume {v.name}" for v in engine.client.volumes.list(filters=filters))
    return sorted(found)


def block(
    mode: str, image_set: str, *, count: int, tag: str, socket_path: Path, logs: Path, runs: list[Run]
) -> list[str]:
    """`count` runs in a row of one mode and image set (added to `runs` as they end), with a daemon of their own in
    the daemon mode; the problems found when stopping it."""
    stopping: AbstractContextManager[list[str]] = (
        daemon(socket_path, logs / f"daemon-{image_set}.log") if mode == "daemon" else nullcontext([])
    )
    with stopping as problems:
        for number in range(1, count + 1):
            namespace = f"m{tag}-{mode}-{image_set}" + ("" if mode == "daemon" else f"-{number}")
            run = Run(mode, image_set, number, namespace)
            runs.append(run)
            execute(run, socket_path, logs)
            report_run(run, count)
    return [f"{mode}/{image_set}: {problem}" for problem in problems]


def table(runs: list[Run]) -> None:
    print(f"\n{'mode':7} {'image set':9} {'run':>3}  {'counts':30} {'seconds':>8} {'pytest s':>8}  environment")
    for run in runs:
        source = run.environment_line.split("|")[0].removeprefix("envmgr: ").strip() or "-"
        pytest_seconds = f"{run.pytest_seconds:8.1f}" if run.pytest_seconds is not None else f"{'-':>8}"
        flag = "" if run.ok else "  FAILED"
        print(
            f"{run.mode:7} {run.image_set:9} {run.number:3}  {run.counted():30} {run.seconds:8.1f} {pytest_seconds}"
            f"  {source}{flag}"
        )


def names(value: str, known: tuple[str, ...], what: str) -> list[str]:
    chosen = [name for name in value.split(",") if name]
    unknown = sorted(set(chosen) - set(known))
    if unknown or not chosen:
        raise SystemExit(f"unknown or no {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument(
        "--image-sets", default=",".join(IMAGE_SETS), help=f"comma-separated, of {', '.join(IMAGE_SETS)}"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs in a row per mode and image set")
    parser.add_argument("--keep-logs", action="store_true", help="keep each run's output even when all passed")
    args = parser.parse_args()
    modes = names(args.modes, tuple(MODES), "modes")
    image_sets = names(args.image_sets, IMAGE_SETS, "image sets")
    if args.runs < 1:
        raise SystemExit("--runs must be at least 1")

    engine = Engine.connect()
    logs = Path(tempfile.mkdtemp(prefix="run-modes-logs-"))
    scratch = Path(tempfile.mkdtemp(prefix="run-modes-"))
    socket_path = scratch / "run" / "daemon.sock"
    tag = uuid.uuid4().hex[:6]
    print(
        f"{SUITE}: modes {', '.join(modes)}; image sets {', '.join(image_sets)}; {args.runs} runs each; "
        f"{os.cpu_count()} cores; load average {load()}; namespaces m{tag}-*",
        flush=True,
    )
    runs: list[Run] = []
    problems: list[str] = []
    try:
        for image_set in image_sets:
            for mode in modes:
                problems += block(
                    mode, image_set, count=args.runs, tag=tag, socket_path=socket_path, logs=logs, runs=runs
                )
    finally:
        namespaces = {run.namespace for run in runs}
        environments = {run.environment for run in runs if run.environment}
        left = leftovers(engine, namespaces, environments, {daemon_key(socket_path)})
        shutil.rmtree(scratch, ignore_errors=True)
    table(runs)
    failed = [run for run in runs if not run.ok]
    print(f"\nload average at end {load()}")
    print(f"left on the engine by the script's namespaces, environments and daemons: {left or 'nothing'}")
    for problem in problems:
        print(f"problem: {problem}")
    print(f"{len(runs) - len(failed)} of {len(runs)} runs passed")
    if failed or left or problems or args.keep_logs:
        print(f"each run's output: {logs}")
    else:
        shutil.rmtree(logs)
    if failed or left or problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
