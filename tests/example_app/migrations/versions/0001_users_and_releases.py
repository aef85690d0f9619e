"""users and releases

Revision ID: 0001
Revises:
Create Date: 2024-05-02 10:14:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("artist", sa.String(length=300), nullable=False),
        sa.Column("mbid", sa.Uuid(), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("released_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name="fk_releases_owner_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_releases"),
        sa.UniqueConstraint("mbid", name="uq_releases_mbid"),
    )


def downgrade() -> None:
    op.drop_table("releases")
    op.drop_table("users")
