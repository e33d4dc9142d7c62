"""Sender authentication on every inbound message; the replaced contact's notice rate-limited.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

TS = sa.DateTime(timezone=True)

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inboundmessage") as batch:
        batch.add_column(sa.Column("helo", sa.String(), nullable=False, server_default=""))
        batch.add_column(sa.Column("auth", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("auth_tries", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_read_at", TS, nullable=True))
    with op.batch_alter_table("revokedtoken") as batch:
        batch.add_column(sa.Column("addresses", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("last_notice_at", TS, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("revokedtoken") as batch:
        batch.drop_column("last_notice_at")
        batch.drop_column("addresses")
    with op.batch_alter_table("inboundmessage") as batch:
        batch.drop_column("next_read_at")
        batch.drop_column("auth_tries")
        batch.drop_column("auth")
        batch.drop_column("helo")
