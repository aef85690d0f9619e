"""Removal of what a dead owner left behind; never of what a live process still uses.

Two mechanisms, neither needing a pulled image:

* a **watchdog** per environment: a small process in its own session (`python -m envmgr.reaper`), started by the
  owner, that waits on the owner's pid (a pidfd: woken the moment the owner dies, SIGKILL included) and then removes
  everything labelled with the environment's id. The owner stops it after a clean teardown, or when it hands the
  environment over (`envmgr up --detach`, the daemon).
* a **sweep** at every environment start and in `envmgr gc`: environments on this host whose owner process is gone
  and that are not detached are removed.

The owner is always the process that created the environment (the pytest controller, never an xdist worker), so a
worker that ends early cannot take anything with it.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import subprocess
import sys
import time

from envmgr.engine import Engine, EnvironmentRecord, Owner

__all__ = ["Watchdog", "orphaned", "sweep"]

RECHECK_SECONDS = 5.0


class Watchdog:
    """Handle on the watchdog process guarding one environment."""

    def __init__(self, env_id: str, owner: Owner) -> None:
        self.env_id = env_id
        self._process = subprocess.Popen(
            [
                sys.executable, "-m", "envmgr.reaper",
                "--env", env_id, "--pid", str(owner.pid), "--start", owner.start,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # outlives the owner's process group (Ctrl-C, SIGKILL of the group)
            close_fds=True,
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
    owner = Owner(pid=args.pid, start=args.start, host=socket.gethostname())
    _wait_for_exit(owner)
    Engine.connect().remove_environment(args.env)


if __name__ == "__main__":
    main()
