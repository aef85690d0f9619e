"""Fixtures of habit_django (registered after pytest-django, so that they override its own, as a conftest's would)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TRANSACTIONAL_FIXTURES = ("transactional_db", "django_db_reset_sequences", "live_server")


def _load_seeds() -> None:
    """The genres fixture (loaddata), then the seed rows with the ORM (what a team's conftest does with its own
    seed data), and the sequences moved past the explicit ids."""
    import yaml
    from catalog.models import Author, Book, Genre
    from django.core.management import call_command
    from django.core.management.color import no_style
    from django.db import connection

    call_command("loaddata", "genres.json", verbosity=0)
    rows = yaml.safe_load((Path.cwd() / "seeds" / "postgres" / "001_catalog.yaml").read_text())
    Author.objects.bulk_create(Author(**row) for row in rows["catalog_author"])
    Book.objects.bulk_create(Book(**row) for row in rows["catalog_book"])
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), [Author, Book, Genre]):
            cursor.execute(statement)


def _seeded() -> bool:
    from catalog.models import Book

    return Book.objects.exists()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> None:
    """pytest-django's own (created once, reused with --reuse-db), plus the seeds when the tables are empty."""
    with django_db_blocker.unblock():
        if not _seeded():
            _load_seeds()


@pytest.fixture(autouse=True)
def _seeds_for_transactional_tests(request: pytest.FixtureRequest) -> None:
    """A transactional test starts from the seeds too (an earlier one's flush emptied the tables), with the
    sequences past the seeded ids (a reset_sequences test has them at 1)."""
    marker = request.node.get_closest_marker("django_db")
    transactional = bool(marker and (marker.kwargs.get("transaction") or marker.kwargs.get("reset_sequences")))
    if not transactional and not any(name in request.fixturenames for name in TRANSACTIONAL_FIXTURES):
        return
    request.getfixturevalue("_django_db_helper")
    from catalog.models import Author, Book, Genre
    from django.core.management.color import no_style
    from django.db import connection

    if not _seeded():
        _load_seeds()
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), [Author, Book, Genre]):
            cursor.execute(statement)


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    yield
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def redis_client() -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    yield client
    client.flushdb()
    client.close()
