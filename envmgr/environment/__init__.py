"""One environment on one engine: `Environment` (`handle.py`, the facade) over its phases: `plan.py` (what it is
before anything runs), `runtime.py` (network, starts, readiness, teardown) and `attach.py` (one started elsewhere,
rebuilt from its labels)."""

from envmgr.environment.handle import Environment, Health

__all__ = ["Environment", "Health"]
