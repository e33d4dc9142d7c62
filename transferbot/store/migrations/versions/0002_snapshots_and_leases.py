"""Mail rendered from a snapshot at send time; work claimed under a lease.

Mail that release 0.1 queued and rendered keeps its bytes (``outboundraw``) and is sent as it is;
mail it queued but had not rendered yet is marked failed with a note (``transferbot resend`` mails
the party again), since its facts were never kept.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

TS = sa.DateTime(timezone=True)

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mailsnapshot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("transfer_id", sa.String(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_mailsnapshot_transfer_id", "mailsnapshot", ["transfer_id"])
    op.execute("UPDATE outboundmessage SET status = 'failed', last_error = 'queued by release 0.1 but never"
               " rendered; `transferbot resend` mails the party again' WHERE status = 'queued' AND NOT rendered")
    with op.batch_alter_table("outboundmessage") as batch:
        batch.drop_index("outbox_unrendered", sqlite_where=sa.text("rendered = 0"),
                         postgresql_where=sa.text("NOT rendered"))
        batch.drop_column("rendered")
        batch.add_column(sa.Column("snapshot_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("lease_owner", sa.String(), nullable=False, server_default=""))
        batch.add_column(sa.Column("lease_until", TS, nullable=True))
        batch.create_foreign_key("fk_outboundmessage_snapshot", "mailsnapshot", ["snapshot_id"], ["id"])
    with op.batch_alter_table("inboundmessage") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(), nullable=False, server_default=""))
        batch.add_column(sa.Column("lease_until", TS, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inboundmessage") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
    with op.batch_alter_table("outboundmessage") as batch:
        batch.drop_constraint("fk_outboundmessage_snapshot", type_="foreignkey")
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
        batch.drop_column("snapshot_id")
        batch.add_column(sa.Column("rendered", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.create_index("outbox_unrendered", ["id"], sqlite_where=sa.text("rendered = 0"),
                           postgresql_where=sa.text("NOT rendered"))
    op.drop_index("ix_mailsnapshot_transfer_id", "mailsnapshot")
    op.drop_table("mailsnapshot")
