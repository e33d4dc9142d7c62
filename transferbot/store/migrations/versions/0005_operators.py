"""The dashboard's operators (argon2 password hashes), their sign-in sessions, and the dashboard's own key.

The key (``meta`` row ``ui-secret``, for CSRF tokens) is made here, once, so that daemons starting together
share it and no page view ever has to write it.

Revision ID: 0005
Revises: 0003 (the lead rewires it onto 0004, the API's keys and webhooks, when both are merged)
Create Date: 2026-11-28
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

TS = sa.DateTime(timezone=True)

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "operator",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "operatorsession",
        sa.Column("token_hash", sa.String(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["operator_id"], ["operator.id"]),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_operatorsession_operator_id", "operatorsession", ["operator_id"])
    op.create_index("ix_operatorsession_expires_at", "operatorsession", ["expires_at"])
    meta = sa.table("meta", sa.column("key", sa.String()), sa.column("value", sa.String()))
    op.execute(meta.delete().where(meta.c.key == "ui-secret"))
    op.execute(meta.insert().values(key="ui-secret", value=secrets.token_hex(32)))


def downgrade() -> None:
    meta = sa.table("meta", sa.column("key", sa.String()))
    op.execute(meta.delete().where(meta.c.key == "ui-secret"))
    op.drop_index("ix_operatorsession_expires_at", table_name="operatorsession")
    op.drop_index("ix_operatorsession_operator_id", table_name="operatorsession")
    op.drop_table("operatorsession")
    op.drop_table("operator")
