"""whatsapp messages

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 01:52:12.898766
"""

import sqlalchemy as sa
from alembic import op

import clinic.models


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('inbound_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('wamid', sa.String(length=200), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('phone_number_id', sa.String(length=50), nullable=False),
    sa.Column('type', sa.String(length=30), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('rasa_text', sa.Text(), nullable=True),
    sa.Column('context_wamid', sa.String(length=200), nullable=True),
    sa.Column('media_id', sa.String(length=100), nullable=True),
    sa.Column('media_path', sa.String(length=500), nullable=True),
    sa.Column('media_mime', sa.String(length=100), nullable=True),
    sa.Column('sent_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('received_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'handled', 'failed', name='inbound_status', native_enum=False, length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('handled_at', clinic.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_inbound_messages_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_messages')),
    sa.UniqueConstraint('wamid', name=op.f('uq_inbound_messages_wamid'))
    )
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_messages_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index('ix_inbound_messages_pending', ['status', 'contact_id', 'id'], unique=False)

    op.create_table('outbound_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('source', sa.String(length=50), nullable=False),
    sa.Column('biz_opaque_callback_data', sa.String(length=512), nullable=True),
    sa.Column('status', sa.Enum('held', 'queued', 'sending', 'sent', 'delivered', 'read', 'failed', name='outbound_status', native_enum=False, length=20), nullable=False),
    sa.Column('wamid', sa.String(length=200), nullable=True),
    sa.Column('error_code', sa.Integer(), nullable=True),
    sa.Column('error_title', sa.String(length=300), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('created_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('sent_at', clinic.models.UTCDateTime(), nullable=True),
    sa.Column('delivered_at', clinic.models.UTCDateTime(), nullable=True),
    sa.Column('read_at', clinic.models.UTCDateTime(), nullable=True),
    sa.Column('failed_at', clinic.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_outbound_messages_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbound_messages')),
    sa.UniqueConstraint('wamid', name=op.f('uq_outbound_messages_wamid'))
    )
    with op.batch_alter_table('outbound_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbound_messages_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index('ix_outbound_messages_due', ['status', 'next_attempt_at'], unique=False)

    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_inbound_at', clinic.models.UTCDateTime(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_column('last_inbound_at')

    with op.batch_alter_table('outbound_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_outbound_messages_due')
        batch_op.drop_index(batch_op.f('ix_outbound_messages_contact_id'))

    op.drop_table('outbound_messages')
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_messages_pending')
        batch_op.drop_index(batch_op.f('ix_inbound_messages_contact_id'))

    op.drop_table('inbound_messages')
