"""The schema of musicapp: users own releases, releases have tracks. Kept in step with migrations/versions/."""

from __future__ import annotations

import datetime
import uuid

from sqlalchemy import ForeignKey, Index, MetaData, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))

    releases: Mapped[list[Release]] = relationship(back_populates="owner", order_by="Release.released_on")

    def __repr__(self) -> str:
        return f"User(id={self.id!r}, email={self.email!r})"


class Release(Base):
    __tablename__ = "releases"
    __table_args__ = (Index("ix_releases_artist_title", "artist", "title"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    artist: Mapped[str] = mapped_column(String(300))
    mbid: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    """MusicBrainz release id, when known"""
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    released_on: Mapped[datetime.date]

    owner: Mapped[User] = relationship(back_populates="releases")
    tracks: Mapped[list[Track]] = relationship(
        back_populates="release", order_by="Track.position", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def duration_ms(self) -> int:
        return sum(track.duration_ms or 0 for track in self.tracks)

    def __repr__(self) -> str:
        return f"Release(id={self.id!r}, artist={self.artist!r}, title={self.title!r})"


class Track(Base):
    __tablename__ = "tracks"
    __table_args__ = (UniqueConstraint("release_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    position: Mapped[int]
    title: Mapped[str] = mapped_column(String(300))
    duration_ms: Mapped[int | None]

    release: Mapped[Release] = relationship(back_populates="tracks")

    def __repr__(self) -> str:
        return f"Track(release_id={self.release_id!r}, position={self.position!r}, title={self.title!r})"
