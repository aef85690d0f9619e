"""What names a daemon and a pool of its environments: light enough for a test run to label its own environment as
one the daemon may keep (`envmgr.pytest.warm`) without loading the daemon.

`daemon_key(socket)`: the daemon's environments (its user, its engine, its socket). `config_key(settings, workers)`:
what an environment is made from (the settings, the number of workers, the migrations and seeds by content): a lease
gets an environment of the same key, whatever services it runs (it starts those it lacks)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from envmgr.config import Settings

__all__ = ["config_key", "daemon_key"]


def daemon_key(socket_path: Path) -> str:
    """Identifies a daemon's environments: its user, its engine and its socket (the default socket makes it one
    daemon per user and engine; a daemon on another socket never adopts or removes these)."""
    engine = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return hashlib.sha256(f"{os.getuid()}|{engine}|{socket_path.resolve()}".encode()).hexdigest()[:12]


def config_key(settings: Settings, workers: int) -> str:
    """The hash under which warm environments are pooled: what they were made from, files included. Not which of
    the enabled services run: a lease starts the ones it needs on the environment it gets. Not the settings of the
    daemon itself nor of the test process (gc_freeze)."""
    from envmgr.services.postgres.template.content_hash import content_hash

    digest = hashlib.sha256()
    not_the_environments = {"daemon", "daemon_pool_size", "daemon_idle_ttl", "gc_freeze"}
    digest.update(settings.model_dump_json(exclude=not_the_environments).encode())
    digest.update(json.dumps([workers]).encode())
    digest.update(content_hash(settings).encode())
    seeds = settings.seeds_path()
    if seeds is not None and seeds.is_dir():
        for path in sorted(p for p in seeds.rglob("*") if p.is_file()):
            digest.update(path.relative_to(seeds).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
