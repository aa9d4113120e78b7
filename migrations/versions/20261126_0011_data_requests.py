"""data requests: patients' copy and erasure requests; erased content and cleared histories marked

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 09:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

import clinic.models


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('data_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('export', 'erasure', name='data_request_kind', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('status', sa.Enum('pending', 'approved', 'done', 'rejected', name='data_request_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('requested_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', clinic.models.UTCDateTime(), nullable=True),
    sa.Column('done_at', clinic.models.UTCDateTime(), nullable=True),
    sa.Column('outbound_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_data_requests_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['decided_by_id'], ['staff_users.id'], name=op.f('fk_data_requests_decided_by_id_staff_users')),
    sa.ForeignKeyConstraint(['outbound_id'], ['outbound_messages.id'], name=op.f('fk_data_requests_outbound_id_outbound_messages'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_requests'))
    )
    op.create_index(op.f('ix_data_requests_contact_id'), 'data_requests', ['contact_id'], unique=False)
    op.create_index('uq_data_requests_open', 'data_requests', ['contact_id', 'kind'], unique=True,
                    sqlite_where=sa.text("status IN ('pending', 'approved')"),
                    postgresql_where=sa.text("status IN ('pending', 'approved')"))
    op.add_column('inbound_messages', sa.Column('erased_at', clinic.models.UTCDateTime(), nullable=True))
    op.add_column('outbound_messages', sa.Column('erased_at', clinic.models.UTCDateTime(), nullable=True))
    op.add_column('contacts', sa.Column('history_cleared_before', clinic.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE DROP COLUMN (SQLite 3.35+): batch mode would rebuild `contacts`, and on SQLite
    # dropping the old table cascades into every message that refers to it.
    op.execute('ALTER TABLE contacts DROP COLUMN history_cleared_before')
    op.execute('ALTER TABLE outbound_messages DROP COLUMN erased_at')
    op.execute('ALTER TABLE inbound_messages DROP COLUMN erased_at')
    op.drop_index('uq_data_requests_open', table_name='data_requests')
    op.drop_index(op.f('ix_data_requests_contact_id'), table_name='data_requests')
    op.drop_table('data_requests')
