"""pytest-django on envmgr's template: a Django project needs no conftest lines.

Registered by envmgr's pytest plugin (`applies`) when pytest-django runs with Django settings (DJANGO_SETTINGS_MODULE,
`--ds` or the ini option), Postgres is enabled and the setting `migrate` is set (`migrate = "django"` builds the
template with Django's own migrations, `django_fixtures` and envmgr's seeds). Registered after every plugin, its
fixtures override pytest-django's (a conftest's still override these):

* `django_db_setup`: no test database is created or migrated. `DATABASES['default']` (and the aliases that mirror
  it) is pointed at this worker's clone of the template (`postgres_url`: `<db>_gwN` under xdist); other aliases are
  left to Django's `setup_databases`. The user's `django_db_modify_db_settings` runs first.
* `_django_db_helper` (pytest-django's, behind `db`, `transactional_db`, `django_db_reset_sequences`, the
  `django_db` marker and `live_server`) is wrapped: before the test, the clone is made anew when an earlier test of
  this worker may have changed it; after a transactional test (`transaction=True`, `transactional_db`,
  `reset_sequences`, `live_server`) it is marked as changed. pytest-django empties every table after such a test
  (Django's flush); the next test that uses the database gets a fresh clone, seeds and fixtures included, instead of
  the empty tables Django's own runner would leave. A `reset_sequences` test starts on a fresh clone and its
  sequences are put back where the template has them after Django has reset them: ids continue after the seeded
  rows (a table without seeds starts at 1), so they are predictable and never collide with seeds.
* `CACHES`: every cache whose BACKEND is a Redis one (Django's RedisCache, django-redis) has its LOCATION set to
  this worker's own Redis database (`redis_url`), which is emptied before a test when an earlier one may have
  written to it. Redis then starts with the run.

Not covered: Django's unittest-style `TransactionTestCase` classes run on the clone and empty it as in Django (the
next pytest-style test gets a fresh clone); `--reuse-db`, `--create-db` and `--nomigrations` do nothing (the
template is built once per content of the migrations, seeds and fixtures).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from envmgr.pytest.run import run_of

if TYPE_CHECKING:
    from envmgr.config import Settings
    from envmgr.pytest.run import RunState
    from envmgr.pytest.shares import WorkerShares

__all__ = ["PLUGIN_NAME", "applies", "django_db_setup", "redis_cache_aliases"]

PLUGIN_NAME = "envmgr-django"
POSTGRES = "postgres"
REDIS = "redis"

SERVICE_FIXTURES = dict.fromkeys(
    ["django_db_setup", "_django_db_helper", "db", "transactional_db", "django_db_reset_sequences",
     "django_db_serialized_rollback"],
    POSTGRES,
)  # fmt: skip
"""pytest-django's database fixtures reach Postgres (see envmgr.pytest.reach) ..."""
CLEAN_FIXTURES = tuple(SERVICE_FIXTURES)
"""... and leave it clean: a transactional test is marked as changing it by `_django_db_helper` itself"""
SERVICE_MARKERS = {"django_db": POSTGRES}
"""a test marked django_db reaches Postgres"""
TRANSACTIONAL_FIXTURES = ("transactional_db", "live_server", "django_db_reset_sequences")


def applies(config: pytest.Config, settings: Settings) -> bool:
    """pytest-django runs in this process with Django settings, Postgres is enabled and templates are migrated."""
    if not config.pluginmanager.hasplugin("django") or not settings.postgres.enabled:
        return False
    if settings.migrate_spec() is None:
        return False
    from pytest_django.lazy_django import django_settings_is_configured

    return django_settings_is_configured()


def pytest_configure(config: pytest.Config) -> None:
    """Redis behind Django's CACHES is used by any test: the run needs it."""
    run = run_of(config)
    if redis_cache_aliases() and run.settings.redis.enabled:
        run.always.setdefault(REDIS, "Django CACHES")


def redis_cache_aliases() -> list[str]:
    """The aliases of `settings.CACHES` whose backend is a Redis one."""
    from django.conf import settings

    caches: dict[str, dict[str, Any]] = getattr(settings, "CACHES", {})
    return [alias for alias, cache in caches.items() if "redis" in str(cache.get("BACKEND", "")).lower()]


# the database ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def django_db_setup(  # noqa: PLR0917 - a fixture: its arguments are the fixtures it needs
    request: pytest.FixtureRequest,
    django_test_environment: None,
    django_db_blocker: Any,
    django_db_modify_db_settings: None,
    postgres_url: str,
    envmgr_shares: WorkerShares,
) -> Iterator[None]:
    """This worker's clone of the template as Django's default database (no test database is created)."""
    from django.db import connections
    from django.test.utils import setup_databases, teardown_databases

    verbosity = int(request.config.option.verbose)
    with django_db_blocker.unblock():
        mirrors = _point_default_at(postgres_url)
        others = [alias for alias in connections.settings if alias != "default" and alias not in mirrors]
        created = setup_databases(verbosity, interactive=False, aliases=others) if others else None
    envmgr_shares.before_reset(POSTGRES, connections.close_all)
    try:
        yield
    finally:
        with django_db_blocker.unblock():
            if created is not None:
                teardown_databases(created, verbosity=verbosity)
            connections.close_all()


def _point_default_at(url: str) -> list[str]:
    """`DATABASES['default']` and the aliases mirroring it (TEST: MIRROR) on the database at `url`, in place (the
    connection objects share those dicts); their connections closed. Returns the mirrors."""
    from django.db import connections

    from envmgr.integrations.django_migrate import point_at
    from envmgr.services.postgres.template.subprocesses import database_variables

    variables = database_variables(url)
    databases: dict[str, dict[str, Any]] = connections.settings
    mirrors = [alias for alias, db in databases.items() if (db.get("TEST") or {}).get("MIRROR") == "default"]
    for alias in ["default", *mirrors]:
        database = databases.setdefault(alias, {})
        engine = database.get("ENGINE")
        point_at(database, variables)
        connections[alias].close()
        if database["ENGINE"] != engine:
            del connections[alias]  # made with the other backend: made again on first use
    return mirrors


@dataclass(frozen=True)
class _DbUse:
    transactional: bool
    reset_sequences: bool


def _db_use(request: pytest.FixtureRequest) -> _DbUse:
    """How the test uses the database, as pytest-django's `_django_db_helper` decides it."""
    from pytest_django.fixtures import validate_django_db

    transactional = reset_sequences = False
    marker = request.node.get_closest_marker("django_db")
    if marker is not None:
        transactional, reset_sequences, *_ = validate_django_db(marker)
    names = request.fixturenames
    reset_sequences = reset_sequences or "django_db_reset_sequences" in names
    transactional = transactional or reset_sequences or any(name in names for name in TRANSACTIONAL_FIXTURES)
    return _DbUse(transactional=transactional, reset_sequences=reset_sequences)


@pytest.fixture
def _envmgr_django_db(
    request: pytest.FixtureRequest, django_db_setup: None, django_db_blocker: Any, envmgr_shares: WorkerShares
) -> Iterator[list[tuple[str, int | None, int]] | None]:
    """Before pytest-django's database set-up: a fresh clone when needed; the template's sequences for a
    reset_sequences test. After the test: a transactional one has changed the database."""
    from pytest_django.django_compat import is_django_unittest

    if is_django_unittest(request):
        yield None
        return
    run = run_of(request.config)
    use = _db_use(request)
    if use.reset_sequences or POSTGRES in run.dirty:
        envmgr_shares.reset(POSTGRES)
    sequences = None
    if use.reset_sequences:
        with django_db_blocker.unblock():
            sequences = _sequences()
    try:
        yield sequences
    finally:
        if use.transactional:
            run.dirty.add(POSTGRES)


@pytest.fixture
def _django_db_helper(
    _envmgr_django_db: list[tuple[str, int | None, int]] | None, django_db_blocker: Any, _django_db_helper: None
) -> None:
    """pytest-django's set-up of the test's database access, on envmgr's clone (see the module's documentation)."""
    if _envmgr_django_db:
        with django_db_blocker.unblock():
            _restore_sequences(_envmgr_django_db)


def _sequences() -> list[tuple[str, int | None, int]]:
    """Every sequence of the default database: its name, last value (None before its first use) and start."""
    from django.db import connections

    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT format('%I.%I', schemaname, sequencename), last_value, start_value FROM pg_sequences")
        return [(str(name), last, int(start)) for name, last, start in cursor.fetchall()]


def _restore_sequences(sequences: list[tuple[str, int | None, int]]) -> None:
    """Each sequence back to its value in `sequences` (after Django's reset_sequences set them all to 1)."""
    from django.db import connections

    calls = ", ".join(["setval(CAST(%s AS regclass), %s, %s)"] * len(sequences))
    params: list[object] = []
    for name, last, start in sequences:
        params += [name, last if last is not None else start, last is not None]
    with connections["default"].cursor() as cursor:
        cursor.execute(f"SELECT {calls}", params)


# the caches -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _envmgr_django_caches(request: pytest.FixtureRequest) -> Iterator[bool]:
    """Django's Redis caches on this worker's own Redis database, for the whole session (`override_settings`)."""
    aliases = redis_cache_aliases()
    if not aliases or not run_of(request.config).settings.redis.enabled:
        yield False
        return
    from django.conf import settings
    from django.test.utils import override_settings

    url: str = request.getfixturevalue("redis_url")
    caches = {alias: dict(cache) for alias, cache in settings.CACHES.items()}
    for alias in aliases:
        caches[alias]["LOCATION"] = url
    override = override_settings(CACHES=caches)
    override.enable()
    try:
        yield True
    finally:
        override.disable()


@pytest.fixture(autouse=True)
def _envmgr_django_cache_reset(request: pytest.FixtureRequest, _envmgr_django_caches: bool) -> Iterator[None]:
    """Any test may write to Django's cache: the worker's Redis database is emptied before a test when an earlier
    one ran since."""
    if not _envmgr_django_caches:
        yield
        return
    run = run_of(request.config)
    if REDIS in run.dirty:
        _empty_cache(request, run)
    try:
        yield
    finally:
        run.dirty.add(REDIS)


def _empty_cache(request: pytest.FixtureRequest, run: RunState) -> None:
    """The worker's Redis database emptied through Django's own (pooled) connection: one round trip; through a
    new connection (the service's reset) when that one fails (it was cut, e.g. by `envmgr_faults`)."""
    from django.core.cache import caches
    from redis.exceptions import RedisError

    try:
        with run.resets.measure(REDIS, "reset"):
            caches[redis_cache_aliases()[0]].clear()  # every Redis alias is on the worker's database
        run.dirty.discard(REDIS)
    except RedisError:
        shares: WorkerShares = request.getfixturevalue("envmgr_shares")
        shares.reset(REDIS)
