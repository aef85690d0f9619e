"""Which services a test reaches through its fixtures, and which of them it may leave changed: pure logic.

Each service's fixtures module lists its fixtures in `__all__` and, in `CLEAN_FIXTURES`, those that put the
service back as they found it (`db_session` rolls back, `redis_client` empties its database, `wiremock` resets its
server ...). A test *reaches* a service when any of its fixtures is in the test's closure; it *may dirty* it when one
is reached other than through a clean fixture: `postgres_url` used by the app's own engine, `wiremock_url` called by
the app, `aws_env` read by the app. Markers in `RESET_AFTER_MARKERS` (`envmgr_fresh_db`) reset the service right
after the test.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from envmgr.services import ServiceRegistry

__all__ = ["FixtureMap", "Reach", "reach"]


@dataclass(frozen=True)
class FixtureMap:
    """What the services' fixtures modules say: fixture -> service, the clean fixtures, the reset-after markers."""

    service_of: Mapping[str, str]
    clean: frozenset[str]
    reset_after: Mapping[str, frozenset[str]]
    """service -> markers after which it is reset at once"""

    @classmethod
    def of(cls, registry: ServiceRegistry) -> FixtureMap:
        service_of: dict[str, str] = {}
        clean: set[str] = set()
        reset_after: dict[str, frozenset[str]] = {}
        for name, service in registry.items():
            if not service.fixtures:
                continue
            module = importlib.import_module(service.fixtures)
            names = set(getattr(module, "__all__", ())) - set(getattr(module, "NOT_FIXTURES", ()))
            service_of.update(dict.fromkeys(names, name))
            clean.update(getattr(module, "CLEAN_FIXTURES", ()))
            reset_after[name] = frozenset(getattr(module, "RESET_AFTER_MARKERS", ()))
        return cls(service_of=service_of, clean=frozenset(clean), reset_after=reset_after)


@dataclass(frozen=True)
class Reach:
    reached: frozenset[str]
    """services whose fixtures are in the test's closure"""
    dirtying: frozenset[str]
    """services the test may leave changed"""


def reach(
    closure: Iterable[str],
    initial: Sequence[str] | None,
    argnames: Mapping[str, Iterable[str]],
    fixtures: FixtureMap,
) -> Reach:
    """`closure`: every fixture of the test; `initial`: those it asks for itself (autouse included), None when
    unknown (then every reached service counts as dirtied); `argnames`: what each fixture asks for."""
    reached = frozenset(fixtures.service_of[name] for name in closure if name in fixtures.service_of)
    if initial is None:
        return Reach(reached, reached)
    raw: set[str] = set()
    stack = list(initial)
    while stack:  # the closure, without looking inside the clean fixtures
        name = stack.pop()
        if name in raw:
            continue
        raw.add(name)
        if name not in fixtures.clean:
            stack.extend(argnames.get(name, ()))
    dirtying = frozenset(
        fixtures.service_of[name] for name in raw if name in fixtures.service_of and name not in fixtures.clean
    )
    return Reach(reached, dirtying)
