"""Removal of what a dead owner left behind; never of what a live process still uses.

Two mechanisms, neither needing a pulled image:

* a **watchdog** per environment: a small process in its own session (`python -m envmgr.engine.reaper`), started by the
  owner, that waits on the owner's pid (a pidfd: woken the moment the owner dies, SIGKILL included) and then removes
  everything labelled with the environment's id, and the owner's run-socket folder (`envmgr.engine.run_folders`: a
  SIGKILLed pytest controller's). The owner dismisses it after a teardown that removed everything, or when it hands
  the environment over (`envmgr up --detach`, the daemon). When a teardown could not remove everything (the engine
  stopped or restarting), the owner orders it to remove the environment now instead. Removal is tried again every
  RETRY_SECONDS while the engine does not answer, for up to PATIENCE seconds; after that the watchdog gives up and
  leaves the environment to the next sweep (its owner is gone by then, or will be).
* a **sweep** at every environment start and in `envmgr gc`: environments whose owner process is gone and that are
  not detached are removed, and this user's run-socket folders whose owner is gone. "Gone" is decided only for
  owners in this pid namespace (`Owner.is_local`): on a shared remote engine, another machine's envmgr sees our
  environments too, and must never judge our owner dead by looking its pid up in its own process table (nor we
  theirs).

`envmgr gc --older-than DURATION` goes further for environments nobody will come back for (a CI job's sandbox whose
`envmgr down` never ran): see `expired`.

The owner is always the process that created the environment (the pytest controller, never an xdist worker), so a
worker that ends early cannot take anything with it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from envmgr.engine import run_folders
from envmgr.engine.connection import Engine
from envmgr.engine.labels import LABEL_DAEMON, LABEL_SETTINGS, Owner
from envmgr.engine.records import EnvironmentRecord
from envmgr.errors import ConfigError, EnvmgrError

__all__ = ["Watchdog", "expired", "orphaned", "parse_duration", "remove_until_done", "sweep"]

RECHECK_SECONDS = 5.0
RETRY_SECONDS = 1.0
"""between two attempts to remove an environment while the engine does not answer"""
DEFAULT_IDLE_TTL = 900.0
"""`Settings.daemon_idle_ttl`'s default (this module stays clear of the settings' imports: the watchdog runs it)"""
PATIENCE = 3600.0
"""how long a watchdog keeps trying; then the next sweep (every start, `envmgr gc`) is the one to remove it"""
REMOVE_ORDER = b"remove\n"

_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


class Watchdog:
    """Handle on the watchdog process guarding one environment."""

    def __init__(self, env_id: str, owner: Owner, docker_host: str | None = None) -> None:
        """`docker_host`: the engine to clean, when it is not the one DOCKER_HOST names (an explicit `Engine`)."""
        self.env_id = env_id
        environ = {**os.environ, "DOCKER_HOST": docker_host} if docker_host else None
        self._process: subprocess.Popen[bytes] = subprocess.Popen(
            [
                # at the lowest priority: it must not compete with the start-up it guards for the CPU
                "nice", "-n", "19", sys.executable, "-m", "envmgr.engine.reaper",
                "--env", env_id, "--pid", str(owner.pid), "--start", owner.start,
                "--run-folders", tempfile.gettempdir(),  # where the owner's run-socket folder would be
            ],
            stdin=subprocess.PIPE,  # the owner's orders (REMOVE_ORDER)
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # outlives the owner's process group (Ctrl-C, SIGKILL of the group)
            close_fds=True,
            env=environ,
        )  # fmt: skip

    def stop(self) -> None:
        """Dismiss the watchdog: the owner has torn down or handed the environment over."""
        self._close_orders()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)

    def remove_now(self) -> bool:
        """Order the watchdog to remove the environment now, and until that succeeds (the owner's teardown could
        not); it exits when done. False when the watchdog is not running any more."""
        if self._process.poll() is not None or self._process.stdin is None:
            return False
        try:
            self._process.stdin.write(REMOVE_ORDER)
            self._process.stdin.flush()
        except BrokenPipeError:  # it ended meanwhile
            return False
        finally:
            self._close_orders()
        return True

    def _close_orders(self) -> None:
        if self._process.stdin is not None and not self._process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):  # nothing left to say to a watchdog that has ended
                self._process.stdin.close()


def orphaned(record: EnvironmentRecord, now: float | None = None) -> bool:
    """True when nobody can still use the environment: not detached and its owner on this host is gone; or a
    daemon's environment (detached, to outlive a daemon crash) whose daemon is gone (the one that made it, and the
    one that announced itself for its socket since), that no live run leases, and that is older than its idle
    time-out: a daemon started again would have adopted it by then."""
    owner = record.owner
    if owner is None:
        return False
    if not record.detached:
        return not owner.is_alive()
    if LABEL_DAEMON not in record.labels or not owner.is_local():
        return False
    if any(process is not None and process.is_alive() for process in (owner, record.daemon, record.holder)):
        return False
    age = (time.time() if now is None else now) - record.created
    return age > _idle_ttl(record)


def _idle_ttl(record: EnvironmentRecord) -> float:
    """The `daemon_idle_ttl` of the settings a daemon's environment was made from (its default when unreadable)."""
    try:
        value = json.loads(record.labels.get(LABEL_SETTINGS, "{}")).get("daemon_idle_ttl", DEFAULT_IDLE_TTL)
        return float(value)
    except (ValueError, TypeError, AttributeError):
        return DEFAULT_IDLE_TTL


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
    """Remove every orphaned environment on the engine (return their ids), and this user's run-socket folders whose
    owner is gone."""
    run_folders.remove_dead()
    removed = []
    for env_id, record in engine.environments().items():
        if orphaned(record):
            engine.remove_environment(env_id)
            removed.append(env_id)
    return removed


def remove_until_done(
    remove: Callable[[], object],
    patience: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], object] = time.sleep,
) -> bool:
    """Call `remove` until it succeeds (True), trying again every RETRY_SECONDS while it raises EnvmgrError (the
    engine does not answer, or refuses), for up to `patience` seconds (False: the next sweep's turn)."""
    deadline = clock() + patience
    while True:
        try:
            remove()
        except EnvmgrError:
            if clock() + RETRY_SECONDS > deadline:
                return False
            pause(RETRY_SECONDS)
            continue
        return True


def _wait_for_exit_or_order(owner: Owner, orders: int) -> bool:
    """Block until the owner process has exited (True), or has ordered the removal on `orders` (the watchdog's
    stdin; False)."""
    try:
        fd = os.pidfd_open(owner.pid)
    except ProcessLookupError:
        return True
    except OSError:  # no pidfd (old kernel): poll the pid instead
        fd = -1
    poller = select.poll()
    poller.register(orders, select.POLLIN)
    if fd >= 0:
        poller.register(fd, select.POLLIN)
    try:
        while owner.is_alive():
            for ready, _ in poller.poll(int((RECHECK_SECONDS if fd >= 0 else 0.5) * 1000)):
                if ready == fd:
                    return True  # it has exited (its parent may not have reaped it yet: a zombie is "alive")
                if os.read(orders, len(REMOVE_ORDER)) == REMOVE_ORDER:
                    return False
                poller.unregister(orders)  # closed without an order: the owner ended or dismisses us
    finally:
        if fd >= 0:
            os.close(fd)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m envmgr.engine.reaper", description=__doc__)
    parser.add_argument("--env", required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--start", default="")
    parser.add_argument("--patience", type=float, default=PATIENCE)
    parser.add_argument("--run-folders", type=Path, default=None)
    args = parser.parse_args(argv)
    owner = Owner.here(args.pid, args.start)
    if _wait_for_exit_or_order(owner, sys.stdin.fileno()):  # not on an order: the owner ends its folder itself
        run_folders.remove_dead(args.run_folders, owner=owner)
    remove_until_done(lambda: Engine.connect(timeout=5).remove_environment(args.env), args.patience)


if __name__ == "__main__":
    main()
