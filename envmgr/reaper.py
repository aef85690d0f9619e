"""Removal of what a dead owner left behind; never of what a live process still uses.

Two mechanisms, neither needing a pulled image:

* a **watchdog** per environment: a small process in its own session (`python -m envmgr.reaper`), started by the
  owner, that waits on the owner's pid (a pidfd: woken the moment the owner dies, SIGKILL included) and then removes
  everything labelled with the environment's id. The owner stops it after a clean teardown, or when it hands the
  environment over (`envmgr up --detach`, the daemon).
* a **sweep** at every environment start and in `envmgr gc`: environments whose owner process is gone and that are
  not detached are removed. "Gone" is decided only for owners in this pid namespace (`Owner.is_local`): on a shared
  remote engine, another machine's envmgr sees our environments too, and must never judge our owner dead by looking
  its pid up in its own process table (nor we theirs).

`envmgr gc --older-than DURATION` goes further for environments nobody will come back for (a CI job's sandbox whose
`envmgr down` never ran): see `expired`.

The owner is always the process that created the environment (the pytest controller, never an xdist worker), so a
worker that ends early cannot take anything with it.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import subprocess
import sys
import time

from envmgr.engine import Engine, EnvironmentRecord
from envmgr.errors import ConfigError
from envmgr.labels import Owner

__all__ = ["Watchdog", "expired", "orphaned", "parse_duration", "sweep"]

RECHECK_SECONDS = 5.0

_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


class Watchdog:
    """Handle on the watchdog process guarding one environment."""

    def __init__(self, env_id: str, owner: Owner, docker_host: str | None = None) -> None:
        """`docker_host`: the engine to clean, when it is not the one DOCKER_HOST names (an explicit `Engine`)."""
        self.env_id = env_id
        environ = {**os.environ, "DOCKER_HOST": docker_host} if docker_host else None
        self._process = subprocess.Popen(
            [
                # at the lowest priority: it must not compete with the start-up it guards for the CPU
                "nice", "-n", "19", sys.executable, "-m", "envmgr.reaper",
                "--env", env_id, "--pid", str(owner.pid), "--start", owner.start,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # outlives the owner's process group (Ctrl-C, SIGKILL of the group)
            close_fds=True,
            env=environ,
        )  # fmt: skip

    def stop(self) -> None:
        """Dismiss the watchdog: the owner has torn down or handed the environment over."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)


def orphaned(record: EnvironmentRecord) -> bool:
    """True when nobody can still use the environment: not detached and its owner on this host is gone."""
    owner = record.owner
    if record.detached or owner is None:
        return False
    return not owner.is_alive()


def expired(record: EnvironmentRecord, now: float, older_than: float) -> bool:
    """True when `envmgr gc --older-than` may remove the environment: created at least `older_than` seconds before
    `now`, and its owner gone.

    A detached environment (`envmgr up --detach`, a CI sandbox) was handed over by a CLI that has exited, so its age
    alone decides; but a live owner on this host still spares it (a pytest run with `--envmgr-keep-on-failure`,
    whose environment is labelled detached from the start). An attached one is removed only when its owner is
    gone (on another host the owner cannot be checked and counts as alive).
    """
    if now - record.created < older_than:
        return False
    owner = record.owner
    if record.detached:
        return owner is None or not (owner.is_local() and owner.is_alive())
    return owner is not None and not owner.is_alive()  # no owner labels: like `orphaned`, never assume it is gone


def parse_duration(text: str) -> float:
    """Seconds in a duration such as `30m`, `2h`, `1d`, `1h30m`, `90s` or `0` (units s, m, h, d, w)."""
    cleaned = text.strip().lower().replace(" ", "")
    if cleaned == "0":
        return 0.0
    parts = _DURATION_PART.findall(cleaned)
    if not cleaned or "".join(number + unit for number, unit in parts) != cleaned:
        raise ConfigError(
            f"cannot read the duration {text!r}",
            "write a number and a unit, s m h d or w, e.g. 30m, 2h, 1d or 1h30m",
        )
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def sweep(engine: Engine) -> list[str]:
    """Remove every orphaned environment on the engine; return their ids."""
    removed = []
    for env_id, record in engine.environments().items():
        if orphaned(record):
            engine.remove_environment(env_id)
            removed.append(env_id)
    return removed


def _wait_for_exit(owner: Owner) -> None:
    """Block until the owner process has exited."""
    try:
        fd = os.pidfd_open(owner.pid)
    except ProcessLookupError:
        return
    except OSError:  # no pidfd (old kernel): poll the pid instead
        fd = -1
    try:
        poller = select.poll()
        if fd >= 0:
            poller.register(fd, select.POLLIN)
        while owner.is_alive():
            if fd >= 0:
                if poller.poll(int(RECHECK_SECONDS * 1000)):
                    return
            else:
                time.sleep(0.5)  # bounded poll of a pid without pidfd support
    finally:
        if fd >= 0:
            os.close(fd)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m envmgr.reaper", description=__doc__)
    parser.add_argument("--env", required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--start", default="")
    args = parser.parse_args(argv)
    owner = Owner.here(args.pid, args.start)
    _wait_for_exit(owner)
    Engine.connect().remove_environment(args.env)


if __name__ == "__main__":
    main()
