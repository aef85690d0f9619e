"""A seed in Python: gets a SQLAlchemy Connection inside the seeding transaction (do not commit it)."""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def seed(connection: Connection) -> None:
    """Kofi's vinyl of Kind of Blue, added through bound parameters."""
    owner = connection.execute(sa.text("SELECT id FROM users WHERE email = :email"), {"email": "kofi@example.com"})
    owner_id = owner.scalar_one()
    release_id = connection.execute(
        sa.text(
            "INSERT INTO releases (title, artist, owner_id, released_on) "
            "VALUES (:title, :artist, :owner, :released_on) RETURNING id"
        ),
        {
            "title": "Kind of Blue",
            "artist": "Miles Davis",
            "owner": owner_id,
            "released_on": datetime.date(1959, 8, 17),
        },
    ).scalar_one()
    connection.execute(
        sa.text("INSERT INTO tracks (release_id, position, title, duration_ms) VALUES (:r, :p, :t, :d)"),
        [
            {"r": release_id, "p": 1, "t": "So What", "d": 562000},
            {"r": release_id, "p": 2, "t": "Freddie Freeloader", "d": 586000},
        ],
    )
