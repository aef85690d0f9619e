"""Which services a test reaches through its fixtures, and which of them it may leave changed: pure logic.

Each service's fixtures module lists its fixtures in `__all__` and, in `CLEAN_FIXTURES`, those that put the
service back as they found it (`db_session` rolls back, `redis_client` empties its database, `wiremock` resets its
server ...). A test *reaches* a service when any of its fixtures is in the test's closure; it *may dirty* it when one
is reached other than through a clean fixture: `postgres_url` used by the app's own engine, `wiremock_url` called by
the app, `aws_env` read by the app. Markers in `RESET_AFTER_MARKERS` (`envmgr_fresh_db`) reset the service right
after the test. An integration with another plugin (`envmgr.integrations.django`) adds its own: `SERVICE_FIXTURES`
(fixture -> service), `CLEAN_FIXTURES`, and `SERVICE_MARKERS` (a test carrying the marker reaches the service).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from envmgr.config import Settings
from envmgr.services.registry import ServiceRegistry

__all__ = ["CORE_FIXTURES", "FixtureMap", "Reach", "reach"]

CORE_FIXTURES = frozenset({"envmgr_endpoints", "envmgr_env", "envmgr_faults", "envmgr_shares"})
"""envmgr's own fixtures that reach every service (a test that uses one itself may use any service)"""


@dataclass(frozen=True)
class FixtureMap:
    """What the services' fixtures modules say: fixture -> service, the clean fixtures, the reset-after markers."""

    service_of: Mapping[str, str]
    clean: frozenset[str]
    reset_after: Mapping[str, frozenset[str]]
    """service -> markers after which it is reset at once"""
    markers: Mapping[str, str] = field(default_factory=dict)
    """marker -> the service a test carrying it reaches (e.g. pytest-django's django_db: postgres)"""

    @classmethod
    def of(
        cls, registry: ServiceRegistry, settings: Settings | None = None, integrations: Sequence[str] = ()
    ) -> FixtureMap:
        """What the registry's fixtures modules say, plus the modules `integrations` names. With `settings`: of
        services sharing a fixtures module, only the one that serves it (`serves_fixtures`)."""
        service_of: dict[str, str] = {}
        clean: set[str] = set()
        reset_after: dict[str, frozenset[str]] = {}
        markers: dict[str, str] = {}
        for module_name in integrations:
            module = importlib.import_module(module_name)
            service_of.update(getattr(module, "SERVICE_FIXTURES", {}))
            clean.update(getattr(module, "CLEAN_FIXTURES", ()))
            markers.update(getattr(module, "SERVICE_MARKERS", {}))
        for name, service in registry.items():
            if not service.fixtures or (settings is not None and not service.serves_fixtures(settings)):
                continue
            module = importlib.import_module(service.fixtures)
            names = set(getattr(module, "__all__", ())) - set(getattr(module, "NOT_FIXTURES", ()))
            service_of.update(dict.fromkeys(names, name))
            clean.update(getattr(module, "CLEAN_FIXTURES", ()))
            reset_after[name] = frozenset(getattr(module, "RESET_AFTER_MARKERS", ()))
        return cls(service_of=service_of, clean=frozenset(clean), reset_after=reset_after, markers=markers)


@dataclass(frozen=True)
class Reach:
    reached: frozenset[str]
    """services whose fixtures are in the test's closure"""
    dirtying: frozenset[str]
    """services the test may leave changed"""
    first: Mapping[str, str]
    """for each reached service, a fixture of the test's that reaches it (for the report: why it started)"""
    everything: bool = False
    """the test uses one of envmgr's own fixtures (CORE_FIXTURES) other than through a service's: it may use any
    service of the environment"""


def reach(
    closure: Iterable[str],
    initial: Sequence[str] | None,
    argnames: Mapping[str, Iterable[str]],
    fixtures: FixtureMap,
    markers: Iterable[str] = (),
    *,
    always: Mapping[str, str] | None = None,
) -> Reach:
    """`closure`: every fixture of the test; `initial`: those it asks for itself (autouse included), None when
    unknown (then every reached service counts as dirtied); `argnames`: what each fixture asks for; `markers`: the
    names of the test's markers (those of `fixtures.markers` reach a service, without dirtying it); `always`: the
    services every test reaches whatever its fixtures, and why (`RunState.always_services`), without dirtying them
    (the setting `reset = "every-test"` resets them before each test)."""
    first: dict[str, str] = {}
    for name in closure:
        if name in fixtures.service_of:
            first.setdefault(fixtures.service_of[name], name)
    for marker in markers:
        if marker in fixtures.markers:
            first.setdefault(fixtures.markers[marker], f"mark.{marker}")
    for service, why in (always or {}).items():
        first.setdefault(service, why)
    reached = frozenset(first)
    if initial is None:
        return Reach(reached, reached, first, everything=bool(CORE_FIXTURES & set(closure)))
    own: set[str] = set()
    queue = list(initial)
    own_first: dict[str, str] = {}
    for name in queue:  # breadth first through the test's own requests, not inside the services' fixtures
        if name in own:
            continue
        own.add(name)
        if name in fixtures.service_of:
            own_first.setdefault(fixtures.service_of[name], name)
        else:
            queue.extend(argnames.get(name, ()))
    first = {**first, **own_first}  # the fixture the test (or its own fixtures) asked for, where there is one
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
    return Reach(reached, dirtying, first, everything=bool(CORE_FIXTURES & own))
