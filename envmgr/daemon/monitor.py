"""The daemon's monitor: leases whose holder died (SIGKILL included) are taken back, reset and pooled within a
second; environments idle for longer than their `daemon_idle_ttl` are removed."""

from __future__ import annotations

import logging
import threading

from envmgr.daemon.pool import Pool

__all__ = ["MONITOR_INTERVAL", "sweep", "watch"]

LOG = logging.getLogger("envmgr.daemon")
MONITOR_INTERVAL = 0.5


def sweep(pool: Pool) -> None:
    """One pass: take back the leases of dead holders, remove the environments idle for too long."""
    for env_id, holder in pool.holders().items():
        if not holder.is_alive():
            LOG.info("holder %s of %s is gone: taking it back", holder.pid, env_id)
            pool.release(env_id)
    for env_id in pool.expire_idle():
        LOG.info("removed %s: idle for longer than its TTL", env_id)


def watch(pool: Pool, stop: threading.Event, interval: float = MONITOR_INTERVAL) -> threading.Thread:
    """Sweep every `interval` seconds in a thread of its own, until `stop` is set."""

    def run() -> None:
        while not stop.wait(interval):
            try:
                sweep(pool)
            except Exception:  # the next pass tries again; the monitor must outlive one failure (engine hiccup)
                LOG.exception("monitor pass failed")

    thread = threading.Thread(target=run, name="envmgr-daemon-monitor", daemon=True)
    thread.start()
    return thread
