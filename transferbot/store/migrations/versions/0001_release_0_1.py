"""The schema release 0.1 made with create_all: a database from that release is recognised as this revision.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

TS = sa.DateTime(timezone=True)  # SQLite keeps naive UTC text; PostgreSQL a timestamptz


# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('account',
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('name', sa.String(), nullable=False),
    sa.Column('locale', sa.String(), nullable=False),
    sa.Column('timezone', sa.String(), nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('inboundmessage',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('received_at', TS, nullable=False),
    sa.Column('peer', sa.String(), nullable=False),
    sa.Column('mail_from', sa.String(), nullable=False),
    sa.Column('rcpt_tos', sa.JSON(), nullable=False),
    sa.Column('message_id', sa.String(), nullable=False),
    sa.Column('digest', sa.String(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(), nullable=False),
    sa.Column('outcome', sa.String(), nullable=False),
    sa.Column('checks', sa.JSON(), nullable=False),
    sa.Column('reason', sa.String(), nullable=False),
    sa.Column('from_address', sa.String(), nullable=False),
    sa.Column('subject', sa.String(), nullable=False),
    sa.Column('transfer_id', sa.String(), nullable=True),
    sa.Column('party_id', sa.Integer(), nullable=True),
    sa.Column('read_at', TS, nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('inboundmessage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inboundmessage_digest'), ['digest'], unique=False)
        batch_op.create_index(batch_op.f('ix_inboundmessage_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_inboundmessage_received_at'), ['received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_inboundmessage_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_inboundmessage_transfer_id'), ['transfer_id'], unique=False)

    op.create_table('meta',
    sa.Column('key', sa.String(), nullable=False),
    sa.Column('value', sa.String(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('outboundmessage',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('transfer_id', sa.String(), nullable=True),
    sa.Column('party_id', sa.Integer(), nullable=True),
    sa.Column('key', sa.String(), nullable=False),
    sa.Column('message_id', sa.String(), nullable=False),
    sa.Column('envelope_from', sa.String(), nullable=False),
    sa.Column('recipients', sa.JSON(), nullable=False),
    sa.Column('subject', sa.String(), nullable=False),
    sa.Column('render', sa.JSON(), nullable=False),
    sa.Column('rendered', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', TS, nullable=False),
    sa.Column('give_up_at', TS, nullable=True),
    sa.Column('last_attempt_at', TS, nullable=True),
    sa.Column('last_error', sa.String(), nullable=False),
    sa.Column('sent_at', TS, nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('outboundmessage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outboundmessage_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outboundmessage_transfer_id'), ['transfer_id'], unique=False)
        batch_op.create_index('outbox_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('outbox_unrendered', ['id'], unique=False, sqlite_where=sa.text('rendered = 0'), postgresql_where=sa.text('NOT rendered'))

    op.create_table('accountaddress',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.String(), nullable=False),
    sa.Column('address', sa.String(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'address')
    )
    with op.batch_alter_table('accountaddress', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_accountaddress_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_accountaddress_address'), ['address'], unique=False)

    op.create_table('entitlement',
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('product', sa.String(), nullable=False),
    sa.Column('customer_id', sa.String(), nullable=False),
    sa.Column('isv_id', sa.String(), nullable=False),
    sa.Column('reseller_id', sa.String(), nullable=True),
    sa.Column('state', sa.String(), nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('updated_at', TS, nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['account.id'], ),
    sa.ForeignKeyConstraint(['isv_id'], ['account.id'], ),
    sa.ForeignKeyConstraint(['reseller_id'], ['account.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('inboundraw',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['id'], ['inboundmessage.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('outboundraw',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['id'], ['outboundmessage.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('transfer',
    sa.Column('id', sa.String(), nullable=False),
    sa.Column('entitlement_id', sa.String(), nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('from_reseller_id', sa.String(), nullable=True),
    sa.Column('to_reseller_id', sa.String(), nullable=True),
    sa.Column('product', sa.String(), nullable=False),
    sa.Column('note', sa.String(), nullable=False),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('fingerprint', sa.String(), nullable=False),
    sa.Column('created_at', TS, nullable=False),
    sa.Column('expires_at', TS, nullable=False),
    sa.Column('next_due_at', TS, nullable=True),
    sa.Column('closed_at', TS, nullable=True),
    sa.ForeignKeyConstraint(['entitlement_id'], ['entitlement.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('transfer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transfer_entitlement_id'), ['entitlement_id'], unique=False)
        batch_op.create_index('one_pending_per_entitlement', ['entitlement_id'], unique=True, sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))
        batch_op.create_index('transfer_status_due', ['status', 'next_due_at'], unique=False)

    op.create_table('event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('transfer_id', sa.String(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('at', TS, nullable=False),
    sa.Column('kind', sa.String(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('prev_hash', sa.String(), nullable=False),
    sa.Column('hash', sa.String(), nullable=False),
    sa.ForeignKeyConstraint(['transfer_id'], ['transfer.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('transfer_id', 'seq')
    )
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_transfer_id'), ['transfer_id'], unique=False)

    op.create_table('party',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('transfer_id', sa.String(), nullable=False),
    sa.Column('role', sa.String(), nullable=False),
    sa.Column('account_id', sa.String(), nullable=False),
    sa.Column('token', sa.String(), nullable=False),
    sa.Column('locale', sa.String(), nullable=False),
    sa.Column('timezone', sa.String(), nullable=False),
    sa.Column('decision', sa.String(), nullable=False),
    sa.Column('decided_at', TS, nullable=True),
    sa.Column('decided_by', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(), nullable=False),
    sa.Column('confirmation_message_id', sa.String(), nullable=False),
    sa.Column('reminders_sent', sa.Integer(), nullable=False),
    sa.Column('last_call_sent', sa.Boolean(), nullable=False),
    sa.Column('last_help_at', TS, nullable=True),
    sa.Column('last_notice_at', TS, nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.ForeignKeyConstraint(['decided_by'], ['inboundmessage.id'], ),
    sa.ForeignKeyConstraint(['transfer_id'], ['transfer.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token'),
    sa.UniqueConstraint('transfer_id', 'role')
    )
    with op.batch_alter_table('party', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_party_transfer_id'), ['transfer_id'], unique=False)

    op.create_table('partyaddress',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('party_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('undeliverable_at', TS, nullable=True),
    sa.Column('undeliverable_reason', sa.String(), nullable=False),
    sa.ForeignKeyConstraint(['party_id'], ['party.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('party_id', 'address')
    )
    with op.batch_alter_table('partyaddress', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_partyaddress_party_id'), ['party_id'], unique=False)

    op.create_table('revokedtoken',
    sa.Column('token', sa.String(), nullable=False),
    sa.Column('party_id', sa.Integer(), nullable=False),
    sa.Column('revoked_at', TS, nullable=False),
    sa.ForeignKeyConstraint(['party_id'], ['party.id'], ),
    sa.PrimaryKeyConstraint('token')
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('revokedtoken')
    with op.batch_alter_table('partyaddress', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_partyaddress_party_id'))

    op.drop_table('partyaddress')
    with op.batch_alter_table('party', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_party_transfer_id'))

    op.drop_table('party')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_transfer_id'))

    op.drop_table('event')
    with op.batch_alter_table('transfer', schema=None) as batch_op:
        batch_op.drop_index('transfer_status_due')
        batch_op.drop_index('one_pending_per_entitlement', sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))
        batch_op.drop_index(batch_op.f('ix_transfer_entitlement_id'))

    op.drop_table('transfer')
    op.drop_table('outboundraw')
    op.drop_table('inboundraw')
    op.drop_table('entitlement')
    with op.batch_alter_table('accountaddress', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_accountaddress_address'))
        batch_op.drop_index(batch_op.f('ix_accountaddress_account_id'))

    op.drop_table('accountaddress')
    with op.batch_alter_table('outboundmessage', schema=None) as batch_op:
        batch_op.drop_index('outbox_unrendered', sqlite_where=sa.text('rendered = 0'), postgresql_where=sa.text('NOT rendered'))
        batch_op.drop_index('outbox_due')
        batch_op.drop_index(batch_op.f('ix_outboundmessage_transfer_id'))
        batch_op.drop_index(batch_op.f('ix_outboundmessage_message_id'))

    op.drop_table('outboundmessage')
    op.drop_table('meta')
    with op.batch_alter_table('inboundmessage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inboundmessage_transfer_id'))
        batch_op.drop_index(batch_op.f('ix_inboundmessage_state'))
        batch_op.drop_index(batch_op.f('ix_inboundmessage_received_at'))
        batch_op.drop_index(batch_op.f('ix_inboundmessage_message_id'))
        batch_op.drop_index(batch_op.f('ix_inboundmessage_digest'))

    op.drop_table('inboundmessage')
    op.drop_table('account')
