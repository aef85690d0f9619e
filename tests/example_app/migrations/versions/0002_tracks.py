"""tracks, and an index to find releases by artist and title

Revision ID: 0002
Revises: 0001
Create Date: 2024-05-09 16:41:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tracks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["release_id"], ["releases.id"], name="fk_tracks_release_id_releases", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_tracks"),
        sa.UniqueConstraint("release_id", "position", name="uq_tracks_release_id_position"),
    )
    op.create_index("ix_releases_artist_title", "releases", ["artist", "title"])


def downgrade() -> None:
    op.drop_index("ix_releases_artist_title", table_name="releases")
    op.drop_table("tracks")
