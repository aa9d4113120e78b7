"""outreach follow-ups: waitlist offers, after-visit messages, satisfaction answers, specialty follow-ups

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 09:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

import clinic.models


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('specialties') as batch:
        batch.add_column(sa.Column('followup', sa.String(length=30), nullable=True))
        batch.add_column(sa.Column('followup_book', sa.String(length=50), nullable=True))
    op.create_table('waitlist_offers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('slot_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.Enum('offered', 'accepted', 'declined', 'expired', 'gone', name='offer_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('outbound_id', sa.Integer(), nullable=True),
    sa.Column('gone_outbound_id', sa.Integer(), nullable=True),
    sa.Column('appointment_id', sa.Integer(), nullable=True),
    sa.Column('offered_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('expires_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('closed_at', clinic.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['entry_id'], ['waitlist_entries.id'], name=op.f('fk_waitlist_offers_entry_id_waitlist_entries'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['slot_id'], ['slots.id'], name=op.f('fk_waitlist_offers_slot_id_slots'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_waitlist_offers_contact_id_contacts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['outbound_id'], ['outbound_messages.id'], name=op.f('fk_waitlist_offers_outbound_id_outbound_messages'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['gone_outbound_id'], ['outbound_messages.id'], name=op.f('fk_waitlist_offers_gone_outbound_id_outbound_messages'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_waitlist_offers_appointment_id_appointments'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waitlist_offers')),
    sa.UniqueConstraint('entry_id', 'slot_id', name=op.f('uq_waitlist_offers_entry_id_slot_id'))
    )
    op.create_index('uq_waitlist_offers_open_entry', 'waitlist_offers', ['entry_id'], unique=True,
                    sqlite_where=sa.text("status = 'offered'"), postgresql_where=sa.text("status = 'offered'"))
    op.create_index('ix_waitlist_offers_slot_status', 'waitlist_offers', ['slot_id', 'status'], unique=False)
    op.create_index(op.f('ix_waitlist_offers_contact_id'), 'waitlist_offers', ['contact_id'], unique=False)
    op.create_table('after_visit_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('followup', 'survey', 'rebook', name='after_visit_kind', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('status', sa.Enum('sent', 'skipped', name='after_visit_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('reason', sa.String(length=30), nullable=True),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('outbound_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', clinic.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_after_visit_messages_appointment_id_appointments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_after_visit_messages_contact_id_contacts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['outbound_id'], ['outbound_messages.id'], name=op.f('fk_after_visit_messages_outbound_id_outbound_messages'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_after_visit_messages')),
    sa.UniqueConstraint('appointment_id', 'kind', name=op.f('uq_after_visit_messages_appointment_id_kind'))
    )
    op.create_index(op.f('ix_after_visit_messages_contact_id'), 'after_visit_messages', ['contact_id'], unique=False)
    op.create_table('satisfaction_responses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('rating', sa.Integer(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('answered_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('commented_at', clinic.models.UTCDateTime(), nullable=True),
    sa.CheckConstraint('rating BETWEEN 1 AND 5', name=op.f('ck_satisfaction_responses_rating')),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_satisfaction_responses_appointment_id_appointments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_satisfaction_responses_contact_id_contacts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_satisfaction_responses')),
    sa.UniqueConstraint('appointment_id', name=op.f('uq_satisfaction_responses_appointment_id'))
    )


def downgrade() -> None:
    op.drop_table('satisfaction_responses')
    op.drop_index(op.f('ix_after_visit_messages_contact_id'), table_name='after_visit_messages')
    op.drop_table('after_visit_messages')
    op.drop_index(op.f('ix_waitlist_offers_contact_id'), table_name='waitlist_offers')
    op.drop_index('ix_waitlist_offers_slot_status', table_name='waitlist_offers')
    op.drop_index('uq_waitlist_offers_open_entry', table_name='waitlist_offers')
    op.drop_table('waitlist_offers')
    # Plain DROP COLUMN (SQLite 3.35+): batch mode would rebuild `specialties`, which appointments refer to.
    op.execute('ALTER TABLE specialties DROP COLUMN followup_book')
    op.execute('ALTER TABLE specialties DROP COLUMN followup')
