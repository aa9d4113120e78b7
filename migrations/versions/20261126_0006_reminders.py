"""reminders: what became of each appointment reminder (sent with its outbox row, or skipped and why)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 07:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import clinic.models


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('appointment_reminders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('offset_hours', sa.Integer(), nullable=False),
    sa.Column('start_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('due_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('status', sa.Enum('sent', 'skipped', name='reminder_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('reason', sa.String(length=30), nullable=True),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('outbound_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', clinic.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_appointment_reminders_appointment_id_appointments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_appointment_reminders_contact_id_contacts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['outbound_id'], ['outbound_messages.id'], name=op.f('fk_appointment_reminders_outbound_id_outbound_messages'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appointment_reminders')),
    sa.UniqueConstraint('appointment_id', 'offset_hours', name=op.f('uq_appointment_reminders_appointment_id_offset_hours'))
    )
    op.create_index(op.f('ix_appointment_reminders_contact_id'), 'appointment_reminders', ['contact_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_appointment_reminders_contact_id'), table_name='appointment_reminders')
    op.drop_table('appointment_reminders')
