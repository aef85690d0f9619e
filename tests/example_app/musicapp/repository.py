"""What musicapp does with its data: the functions its tests (and envmgr's) exercise against a cloned database."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from musicapp.models import Release, Track, User


def create_user(session: Session, email: str, name: str) -> User:
    user = User(email=email, name=name)
    session.add(user)
    session.flush()
    return user


def user_by_email(session: Session, email: str) -> User | None:
    return session.scalars(select(User).where(User.email == email)).one_or_none()


def create_release(
    session: Session,
    owner: User,
    title: str,
    artist: str,
    released_on: datetime.date,
    *,
    tracks: Sequence[tuple[str, int | None]] = (),
    mbid: uuid.UUID | None = None,
) -> Release:
    """A release with its tracks, numbered from 1 in the order given as (title, duration in ms)."""
    release = Release(title=title, artist=artist, released_on=released_on, owner=owner, mbid=mbid)
    release.tracks = [
        Track(position=position, title=track_title, duration_ms=duration)
        for position, (track_title, duration) in enumerate(tracks, start=1)
    ]
    session.add(release)
    session.flush()
    return release


def releases_of(session: Session, user_id: int) -> list[Release]:
    """The user's releases, oldest first, with their tracks loaded."""
    query = (
        select(Release)
        .where(Release.owner_id == user_id)
        .options(selectinload(Release.tracks))
        .order_by(Release.released_on, Release.title)
    )
    return list(session.scalars(query))


def rename_release(session: Session, release_id: int, title: str) -> Release:
    release = session.get(Release, release_id)
    if release is None:
        raise LookupError(f"no release {release_id}")
    release.title = title
    session.flush()
    return release


def count_releases(session: Session, user_id: int | None = None) -> int:
    query = select(func.count(Release.id))
    if user_id is not None:
        query = query.where(Release.owner_id == user_id)
    return int(session.scalar(query) or 0)


def delete_release(session: Session, release_id: int) -> None:
    """Delete a release; its tracks go with it (ON DELETE CASCADE)."""
    release = session.get(Release, release_id)
    if release is None:
        raise LookupError(f"no release {release_id}")
    session.delete(release)
    session.flush()
