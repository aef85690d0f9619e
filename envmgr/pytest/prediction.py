"""What the last run reached, so that the next run of the same command starts it before collection.

A run learns which services its tests reach only after collection; under xdist that is after every worker has
started and collected. The services (and each worker's replicas) that the last run of the same command (same
arguments, folder, workers and isolation) waited for are kept in pytest's cache; the next such run starts them as
soon as it is configured, while workers start and collect. Collection then says what is actually reached, and what
was started ahead but is not reached is removed (`Environment.discard`). A run without pytest's cache, or the first
run of a command, predicts nothing and starts after collection as before.

    key = prediction_key(config, workers, isolation)
    predicted = load(cache, key)          # Prediction | None
    ...
    save(cache, key, Prediction.of(used))
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["PREDICTED", "Prediction", "load", "prediction_key", "save"]

PREDICTED = "the last run"
"""why a service started before collection (the report and the summary say it)"""
CACHE_PREFIX = "envmgr/reached/"


class Cache(Protocol):
    """pytest's `config.cache` (its get and set are all that is used)."""

    def get(self, key: str, default: Any) -> Any: ...

    def set(self, key: str, value: object) -> None: ...


@dataclass(frozen=True)
class Prediction:
    """The services a run's tests waited for; for a per-worker service, the workers whose replica they used."""

    services: tuple[str, ...] = ()
    replicas: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """per-worker service -> worker ids ("gw0", ...)"""

    @classmethod
    def of(cls, used: Mapping[str, set[str]], per_worker: set[str]) -> Prediction:
        """From what tests waited for: service -> the workers that waited (any worker id for a shared service)."""
        return cls(
            services=tuple(sorted(name for name in used if name not in per_worker)),
            replicas={name: tuple(sorted(workers)) for name, workers in sorted(used.items()) if name in per_worker},
        )

    def replicas_within(self, workers: int) -> dict[str, list[str]]:
        """The predicted replicas of workers this run has (gw0 ... gw<workers-1>; "main" without xdist)."""
        valid = {f"gw{index}" for index in range(workers)} if workers > 0 else {"main"}
        return {name: [w for w in ids if w in valid] for name, ids in self.replicas.items() if set(ids) & valid}

    def names(self) -> set[str]:
        return {*self.services, *self.replicas}

    def to_json(self) -> dict[str, Any]:
        return {"services": list(self.services), "replicas": {name: list(ids) for name, ids in self.replicas.items()}}

    @classmethod
    def from_json(cls, value: object) -> Prediction | None:
        """None for anything but what `to_json` wrote (a cache of another version, edited by hand)."""
        if not isinstance(value, dict):
            return None
        services, replicas = value.get("services"), value.get("replicas")
        if not isinstance(services, list) or not isinstance(replicas, dict):
            return None
        if not all(isinstance(name, str) for name in services):
            return None
        if not all(isinstance(ids, list) and all(isinstance(w, str) for w in ids) for ids in replicas.values()):
            return None
        return cls(tuple(services), {str(name): tuple(ids) for name, ids in replicas.items()})


VARYING_OPTIONS = ("--basetemp",)
"""options whose value may change at every run without changing what is collected (a fresh temporary folder)"""


def prediction_key(args: Sequence[str], folder: str, workers: int, isolation: str) -> str:
    """The cache key of one command: its arguments (but VARYING_OPTIONS), the folder it runs in, its workers and
    isolation."""
    kept: list[str] = []
    skip_value = False
    for arg in args:
        if skip_value:
            skip_value = False
        elif arg in VARYING_OPTIONS:
            skip_value = True
        elif not arg.startswith(tuple(f"{option}=" for option in VARYING_OPTIONS)):
            kept.append(arg)
    digest = hashlib.sha256(json.dumps([kept, folder, workers, isolation]).encode()).hexdigest()[:16]
    return CACHE_PREFIX + digest


def load(cache: Cache | None, key: str) -> Prediction | None:
    if cache is None:
        return None
    return Prediction.from_json(cache.get(key, None))


def save(cache: Cache | None, key: str, prediction: Prediction) -> None:
    if cache is not None:
        cache.set(key, prediction.to_json())
