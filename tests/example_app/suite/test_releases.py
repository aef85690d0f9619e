"""The music-release service's own tests, written the way envmgr's users write theirs: envmgr fixtures only.

They run against the migrated, seeded database (3 users, 5 releases) in every worker, with or without -n 2.
"""

from __future__ import annotations

import datetime

import psycopg
import pytest
from musicapp import cache, repository
from musicapp.models import Release, Track
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session


def test_seeded_catalogue_is_there(db_session: Session) -> None:
    assert repository.count_releases(db_session) == 5
    ada = repository.user_by_email(db_session, "ada@example.com")
    assert ada is not None
    assert [r.title for r in repository.releases_of(db_session, ada.id)] == ["Dummy", "OK Computer"]


def test_create_release_with_tracks_and_commit(db_session: Session) -> None:
    owner = repository.create_user(db_session, "noor@example.com", "Noor")
    release = repository.create_release(
        db_session, owner, "Blue Lines", "Massive Attack", datetime.date(1991, 4, 8),
        tracks=[("Safe from Harm", 318000), ("Unfinished Sympathy", 308000)],
    )  # fmt: skip
    db_session.commit()  # the code under test commits; the fixture's outer transaction still rolls it back
    assert release.id is not None
    assert release.duration_ms == 626000
    assert repository.count_releases(db_session) == 6


def test_previous_test_left_nothing_behind(db_session: Session) -> None:
    assert repository.user_by_email(db_session, "noor@example.com") is None
    assert repository.count_releases(db_session) == 5


def test_track_positions_are_unique_per_release(db_session: Session) -> None:
    release = db_session.scalars(text("SELECT id FROM releases WHERE title = 'Dummy'")).one()
    db_session.add(Track(release_id=release, position=1, title="Duplicate", duration_ms=1))
    with pytest.raises(IntegrityError):
        db_session.flush()


def test_deleting_a_release_cascades_to_its_tracks(db_session: Session) -> None:
    release = db_session.scalars(text("SELECT id FROM releases WHERE title = 'Discovery'")).one()
    repository.delete_release(db_session, release)
    assert db_session.scalar(text("SELECT count(*) FROM tracks WHERE release_id = :r"), {"r": release}) == 0


def test_rename_unknown_release_fails(db_session: Session) -> None:
    with pytest.raises(LookupError):
        repository.rename_release(db_session, 99999, "Nothing")


def test_seed_function_from_sql_seed_is_usable(db_session: Session) -> None:
    dummy = db_session.scalars(text("SELECT id FROM releases WHERE title = 'Dummy'")).one()
    assert db_session.scalar(text("SELECT release_duration_ms(:r)"), {"r": dummy}) == 1087000


@pytest.mark.envmgr_fresh_db
def test_committed_release_is_visible_to_another_connection(db_session: Session, postgres_url: str) -> None:
    ines = repository.user_by_email(db_session, "ines@example.com")
    assert ines is not None
    repository.create_release(db_session, ines, "Random Access Memories", "Daft Punk", datetime.date(2013, 5, 17))
    db_session.commit()
    with psycopg.connect(postgres_url) as other:
        found = other.execute("SELECT count(*) FROM releases WHERE title = 'Random Access Memories'").fetchone()
    assert found == (1,)


def test_fresh_db_test_was_undone(db_session: Session) -> None:
    assert db_session.scalar(text("SELECT count(*) FROM releases WHERE artist = 'Daft Punk'")) == 1


def test_release_count_is_cached_in_redis(db_session: Session, redis_client) -> None:  # type: ignore[no-untyped-def]
    assert cache.release_count(redis_client, db_session, 1) == 2
    db_session.add(Release(title="Third", artist="Portishead", owner_id=1, released_on=datetime.date(2008, 4, 28)))
    db_session.flush()
    assert cache.release_count(redis_client, db_session, 1) == 2, "served from the cache"
    cache.invalidate(redis_client, 1)
    assert cache.release_count(redis_client, db_session, 1) == 3


def test_cache_starts_empty_in_every_test(redis_client) -> None:  # type: ignore[no-untyped-def]
    assert redis_client.dbsize() == 0
