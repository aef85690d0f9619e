"""The envmgr daemon: warm environments leased to test runs, one daemon per user and Docker engine.

It keeps environments that are started, migrated and seeded, per configuration (a hash of the settings, the
services, the number of workers, the migrations and the seed files), leases one to a client, resets it when the
lease ends and keeps it for the next client; idle environments are removed after `daemon_idle_ttl` seconds, and
`daemon_pool_size` of them (leased or idle) are kept per configuration (started in the background as needed).

State lives on the engine, so a daemon killed with SIGKILL and started again rebuilds it from labels:
its environments carry `envmgr.daemon=<daemon key>`, `envmgr.config=<configuration hash>` and the settings they
were made from; a lease is a volume `envmgr-lease-<env id>` labelled with the holder process (pid, start time,
host). A lease whose holder has died (SIGKILL included) is taken back within a second, reset and pooled.
Environments are created detached (no watchdog): they outlive a daemon crash, and the next daemon adopts them.

Protocol: a Unix socket (mode 0600, in a 0700 folder), one JSON request per connection, one JSON line back.

    {"op": "ping"}                                   -> {"ok": true, "pid": 123, "version": "0.1.0"}
    {"op": "lease", "settings": {...}, "services": ["postgres", ...], "workers": 2,
     "holder": {"pid": 456, "start": "789", "host": "h"}}
                                                     -> {"ok": true, "lease": "<env id>", "warm": true,
                                                         "endpoints": {...Endpoints JSON...}}
    {"op": "release", "lease": "<env id>"}           -> {"ok": true}    (reset, then back to the pool)
    {"op": "status"}                                 -> {"ok": true, "environments": [{"id", "config", "state",
                                                         "holder", "idle_seconds"}, ...]}
    {"op": "stop", "force": false}                   -> {"ok": true}    (refused while leases are held, unless force)

Errors: {"ok": false, "error": {"type": "ConfigError", "cause": "...", "fix": "..."}}.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import socketserver
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors

from envmgr.client import default_socket_path
from envmgr.config import Settings
from envmgr.engine import Engine
from envmgr.environment import Environment
from envmgr.errors import EnvmgrError, first_line
from envmgr.labels import LABEL_CONFIG, LABEL_DAEMON, LABEL_ENV, LABEL_LEASE, LABEL_SETTINGS, Owner

__all__ = ["Daemon", "config_key", "daemon_key", "serve", "spawn"]

LOG = logging.getLogger("envmgr.daemon")
MONITOR_INTERVAL = 0.5
RELEASE_WAIT = 60.0
LEASE_VOLUME_PREFIX = "envmgr-lease-"
MAX_REQUEST_BYTES = 1 << 20


def daemon_key(socket_path: Path) -> str:
    """Identifies a daemon's environments: its user, its engine and its socket (the default socket makes it one
    daemon per user and engine; a daemon on another socket never adopts or removes these)."""
    engine = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return hashlib.sha256(f"{os.getuid()}|{engine}|{socket_path.resolve()}".encode()).hexdigest()[:12]


def config_key(settings: Settings, services: list[str], workers: int) -> str:
    """The hash under which warm environments are pooled: what they were made from, files included."""
    from envmgr.migrations import content_hash

    digest = hashlib.sha256()
    digest.update(settings.model_dump_json(exclude={"daemon", "daemon_pool_size", "daemon_idle_ttl"}).encode())
    digest.update(json.dumps([sorted(services), workers]).encode())
    digest.update(content_hash(settings).encode())
    seeds = settings.seeds_path()
    if seeds is not None and seeds.is_dir():
        for path in sorted(p for p in seeds.rglob("*") if p.is_file()):
            digest.update(path.relative_to(seeds).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class _Warm:
    """One environment the daemon manages."""

    env: Environment
    config: str
    holder: Owner | None = None
    idle_since: float = field(default_factory=time.monotonic)
    releasing: bool = False


class Daemon:
    """The pools, the leases and the monitor; request handling is `handle(request) -> response`."""

    def __init__(self, socket_path: Path, engine: Engine | None = None) -> None:
        self.engine = engine or Engine.connect()
        self.key = daemon_key(socket_path)
        self.owner = Owner.current()
        self._lock = threading.RLock()
        self._released = threading.Condition(self._lock)
        self._envs: dict[str, _Warm] = {}
        self._starting: dict[str, int] = {}
        self._stop = threading.Event()

    # lifecycle ------------------------------------------------------------------------------------------------

    def recover(self) -> None:
        """Adopt the environments of a previous daemon on this engine, with their leases, from labels."""
        for env_id, record in self.engine.environments().items():
            if record.labels.get(LABEL_DAEMON) != self.key:
                continue
            try:
                settings = Settings.model_validate_json(record.labels[LABEL_SETTINGS])
                env = Environment.attach(env_id, engine=self.engine, settings=settings)
                holder = self._lease_holder(env_id)
                if holder is None:
                    env.reset()  # a previous daemon may have died mid-release: start the next lease clean
            except Exception as exc:  # an environment that cannot be adopted is removed, not leaked
                LOG.warning("removing environment %s that cannot be adopted: %s", env_id, first_line(exc))
                self.engine.remove_environment(env_id)
                continue
            warm = _Warm(env=env, config=record.labels.get(LABEL_CONFIG, ""), holder=holder)
            self._envs[env_id] = warm
            LOG.info("adopted %s (%s)", env_id, "leased" if warm.holder else "idle")

    def run_monitor(self) -> threading.Thread:
        thread = threading.Thread(target=self._monitor, name="envmgr-daemon-monitor", daemon=True)
        thread.start()
        return thread

    def shutdown(self) -> None:
        """Remove every environment of this daemon (idle and leased)."""
        self._stop.set()
        with self._lock:
            envs = list(self._envs)
            self._envs.clear()
        for env_id in envs:
            self.engine.remove_environment(env_id)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # requests -------------------------------------------------------------------------------------------------

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        try:
            if op == "ping":
                from envmgr import __version__

                return {"ok": True, "pid": os.getpid(), "version": __version__}
            if op == "lease":
                return self._lease(request)
            if op == "release":
                self.release_later(str(request["lease"]))
                return {"ok": True}
            if op == "status":
                return {"ok": True, "environments": self.status()}
            if op == "stop":
                return self._stop_request(bool(request.get("force")))
            raise EnvmgrError(f"unknown daemon operation {op!r}", "use ping, lease, release, status or stop")
        except EnvmgrError as exc:
            return {"ok": False, "error": {"type": type(exc).__name__, "cause": exc.cause, "fix": exc.fix}}
        except (KeyError, TypeError, ValueError) as exc:
            return {"ok": False, "error": {"type": "EnvmgrError", "cause": f"bad request: {exc}", "fix": None}}

    def _lease(self, request: dict[str, Any]) -> dict[str, Any]:
        settings = Settings.model_validate(request["settings"])
        services = list(request.get("services") or settings.enabled_services())
        workers = int(request.get("workers", 0))
        holder = Owner(**request["holder"])
        config = config_key(settings, services, workers)
        warm = self._take_idle(config, holder)
        fresh = warm is None
        if warm is None:
            warm = self._start(settings, services, workers, config, holder)
        self._refill(settings, services, workers, config)
        return {"ok": True, "lease": warm.env.id, "warm": not fresh, "endpoints": warm.env.endpoints.model_dump()}

    def _take_idle(self, config: str, holder: Owner) -> _Warm | None:
        """An idle environment of this configuration; one being reset is waited for (up to RELEASE_WAIT s)."""
        deadline = time.monotonic() + RELEASE_WAIT
        with self._lock:
            while True:
                mine = [w for w in self._envs.values() if w.config == config]
                for warm in mine:
                    if warm.holder is None:
                        self._mark_leased(warm, holder)
                        return warm
                remaining = deadline - time.monotonic()
                if not any(w.releasing for w in mine) or remaining <= 0:
                    return None
                self._released.wait(remaining)

    def _start(self, settings: Settings, services: list[str], workers: int, config: str, holder: Owner | None) -> _Warm:
        labels = {LABEL_DAEMON: self.key, LABEL_CONFIG: config, LABEL_SETTINGS: settings.model_dump_json()}
        env = Environment(services, settings=settings, workers=workers, detach=True, engine=self.engine, labels=labels)
        env.start()
        warm = _Warm(env=env, config=config)
        with self._lock:
            self._envs[env.id] = warm
            if holder is not None:
                self._mark_leased(warm, holder)
        return warm

    def _refill(self, settings: Settings, services: list[str], workers: int, config: str) -> None:
        """Start environments in the background until the configuration has `daemon_pool_size` of them (leased or
        idle), so that concurrent runs find a warm one too."""
        with self._lock:
            existing = sum(1 for w in self._envs.values() if w.config == config)
            missing = settings.daemon_pool_size - existing - self._starting.get(config, 0)
            if missing <= 0:
                return
            self._starting[config] = self._starting.get(config, 0) + missing

        def warm_up() -> None:
            try:
                self._start(settings, services, workers, config, None)
            except Exception as exc:  # a failed warm-up is logged; the next lease starts its own environment
                LOG.warning("warming an environment for %s failed: %s", config, first_line(exc))
            finally:
                with self._lock:
                    self._starting[config] -= 1

        for _ in range(missing):
            threading.Thread(target=warm_up, name=f"envmgr-warm-{config}", daemon=True).start()

    def _mark_leased(self, warm: _Warm, holder: Owner) -> None:
        """Record the lease on the engine (the volume is the durable lease; the daemon's lock makes it unique)."""
        name = LEASE_VOLUME_PREFIX + warm.env.id
        try:
            self.engine.client.volumes.get(name)
        except docker.errors.NotFound:
            pass
        else:
            raise EnvmgrError(f"environment {warm.env.id} is already leased", "release it first")
        self.engine.client.volumes.create(
            name=name, labels={LABEL_ENV: warm.env.id, LABEL_LEASE: "true", **holder.labels()}
        )
        warm.holder = holder

    def _lease_holder(self, env_id: str) -> Owner | None:
        try:
            volume = self.engine.client.volumes.get(LEASE_VOLUME_PREFIX + env_id)
        except docker.errors.NotFound:
            return None
        return Owner.from_labels(dict(volume.attrs.get("Labels") or {}))

    def release(self, env_id: str) -> None:
        """End a lease: reset the environment and pool it (or remove it when the reset fails)."""
        with self._lock:
            warm = self._envs.get(env_id)
            if warm is None:
                raise EnvmgrError(f"no leased environment {env_id}", "see envmgr daemon status")
            if warm.holder is None or warm.releasing:
                return  # released already, or being released by the monitor
            warm.releasing = True
        try:
            warm.env.reset()
        except Exception as exc:  # an environment that cannot be reset is not handed out again
            LOG.warning("reset of %s failed, removing it: %s", env_id, first_line(exc))
            with self._lock:
                self._envs.pop(env_id, None)
                self._released.notify_all()
            self.engine.remove_environment(env_id)
            return
        finally:
            self._drop_lease_volume(env_id)
        with self._lock:
            warm.holder = None
            warm.releasing = False
            warm.idle_since = time.monotonic()
            self._released.notify_all()

    def release_later(self, env_id: str) -> None:
        """Release in the background: the client need not wait for the reset (the environment is not leased
        again before it is done)."""
        with self._lock:
            if env_id not in self._envs:
                raise EnvmgrError(f"no leased environment {env_id}", "see envmgr daemon status")
        threading.Thread(target=self.release, args=(env_id,), name=f"envmgr-release-{env_id}", daemon=True).start()

    def _drop_lease_volume(self, env_id: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.engine.client.volumes.get(LEASE_VOLUME_PREFIX + env_id).remove(force=True)

    def status(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            return [
                {
                    "id": env_id,
                    "config": warm.config,
                    "state": "leased" if warm.holder else "idle",
                    "holder": warm.holder.pid if warm.holder else None,
                    "idle_seconds": None if warm.holder else round(now - warm.idle_since, 1),
                    "services": list(warm.env.endpoints.services),
                }
                for env_id, warm in self._envs.items()
            ]

    def _stop_request(self, force: bool) -> dict[str, Any]:
        with self._lock:
            leased = [env_id for env_id, warm in self._envs.items() if warm.holder is not None]
        if leased and not force:
            raise EnvmgrError(
                f"{len(leased)} environment(s) are leased ({', '.join(leased)})",
                "wait for the runs to end, or stop with --force (their tests lose their services)",
            )
        self._stop.set()
        return {"ok": True}

    # monitor --------------------------------------------------------------------------------------------------

    def _monitor(self) -> None:
        """Take back leases of dead holders; remove environments idle for longer than their TTL."""
        while not self._stop.wait(MONITOR_INTERVAL):
            with self._lock:
                snapshot = list(self._envs.items())
            for env_id, warm in snapshot:
                if warm.holder is not None and not warm.holder.is_alive():
                    LOG.info("holder %s of %s is gone: taking it back", warm.holder.pid, env_id)
                    self.release(env_id)
                elif warm.holder is None and time.monotonic() - warm.idle_since > warm.env.settings.daemon_idle_ttl:
                    LOG.info("removing %s: idle for longer than its TTL", env_id)
                    with self._lock:
                        self._envs.pop(env_id, None)
                    self.engine.remove_environment(env_id)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        line = self.rfile.readline(MAX_REQUEST_BYTES)
        try:
            request = json.loads(line)
        except json.JSONDecodeError:
            response: dict[str, Any] = {"ok": False, "error": {"type": "EnvmgrError", "cause": "bad JSON"}}
        else:
            response = self.server.daemon_state.handle(request)
        self.wfile.write(json.dumps(response).encode() + b"\n")
        if self.server.daemon_state.stopping:
            threading.Thread(target=self.server.shutdown, daemon=True).start()


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, daemon_state: Daemon) -> None:
        self.daemon_state = daemon_state
        super().__init__(str(path), _Handler)


def serve(socket_path: Path | None = None) -> None:
    """Run the daemon in the foreground until it is stopped (`stop` request, SIGTERM or SIGINT)."""
    import signal

    path = socket_path or default_socket_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    _claim(path)
    state = Daemon(path)
    state.recover()
    previous = os.umask(0o177)  # the socket is created 0600: only this user may talk to the daemon
    try:
        server = _Server(path, state)
    finally:
        os.umask(previous)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    state.run_monitor()
    LOG.info("envmgr daemon %s listening on %s", os.getpid(), path)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        try:
            state.shutdown()
        finally:
            path.unlink(missing_ok=True)  # last: a vanished socket means the environments are gone too


def _claim(path: Path) -> None:
    """Refuse to start beside a live daemon; remove the socket file a dead one left."""
    import socket

    if not path.exists():
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink(missing_ok=True)
            return
    raise EnvmgrError(f"an envmgr daemon already listens on {path}", "use it, or stop it: envmgr daemon stop")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m envmgr.daemon", description="Run the envmgr daemon.")
    parser.add_argument("--socket", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serve(args.socket)


if __name__ == "__main__":
    main()


def spawn(path: Path, timeout: float = 15.0) -> tuple[int, Path]:
    """Start `python -m envmgr.daemon` in its own session; return its pid and log file once it answers."""
    import subprocess
    import sys

    from envmgr.client import DaemonClient

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    log = path.with_suffix(".log")
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "envmgr.daemon", "--socket", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    client = DaemonClient(path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.available():
            return process.pid, log
        if process.poll() is not None:
            break
        time.sleep(0.05)  # polling the socket of a process that is starting, within the deadline
    tail = log.read_text(errors="replace").splitlines()[-10:] if log.exists() else []
    raise EnvmgrError(
        f"the envmgr daemon did not answer within {timeout:g} s: {' | '.join(tail) or 'no output'}",
        f"read {log}",
    )
