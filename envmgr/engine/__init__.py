"""The container engine (Docker, or Podman's compatible API; local or remote): `connection.py` (Engine: connecting,
images, listing and removing by label), `address.py` (where it is, how its ports are reached), `records.py` (an
environment as the engine shows it), `labels.py` (the labels on everything envmgr makes, the owner they name),
`containers.py` (running one container), `reaper.py` (the watchdog and the sweep of what dead owners left),
`run_folders.py` (pytest controllers' run-socket folders, named after their owner)."""

from envmgr.engine.address import ALL_INTERFACES, EngineAddress, EngineInfo, engine_kind
from envmgr.engine.connection import Engine, engine_errors
from envmgr.engine.records import EnvironmentRecord, environment_state

__all__ = [
    "ALL_INTERFACES",
    "Engine",
    "EngineAddress",
    "EngineInfo",
    "EnvironmentRecord",
    "engine_errors",
    "engine_kind",
    "environment_state",
]
