"""clinic schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 22:20:12.910153
"""

import sqlalchemy as sa
from alembic import op

import clinic.models


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('wa_id', sa.String(length=20), nullable=True),
    sa.Column('user_id', sa.String(length=100), nullable=True),
    sa.Column('profile_name', sa.String(length=200), nullable=True),
    sa.Column('language', sa.String(length=2), nullable=True),
    sa.Column('created_at', clinic.models.UTCDateTime(), nullable=False),
    sa.CheckConstraint('wa_id IS NOT NULL OR user_id IS NOT NULL', name=op.f('ck_contacts_reachable')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts')),
    sa.UniqueConstraint('user_id', name=op.f('uq_contacts_user_id')),
    sa.UniqueConstraint('wa_id', name=op.f('uq_contacts_wa_id'))
    )
    op.create_table('locations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=50), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('phone', sa.String(length=30), nullable=True),
    sa.Column('opening_hours', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_locations')),
    sa.UniqueConstraint('key', name=op.f('uq_locations_key'))
    )
    op.create_table('patients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('first_name', sa.String(length=100), nullable=False),
    sa.Column('last_name', sa.String(length=100), nullable=False),
    sa.Column('date_of_birth', sa.Date(), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('created_at', clinic.models.UTCDateTime(), nullable=False),
    sa.CheckConstraint("language IN ('it', 'en')", name=op.f('ck_patients_language')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patients'))
    )
    op.create_table('specialties',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=50), nullable=False),
    sa.Column('name_it', sa.String(length=100), nullable=False),
    sa.Column('name_en', sa.String(length=100), nullable=False),
    sa.Column('synonyms_it', sa.JSON(), nullable=False),
    sa.Column('synonyms_en', sa.JSON(), nullable=False),
    sa.Column('preparation_it', sa.Text(), nullable=True),
    sa.Column('preparation_en', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_specialties')),
    sa.UniqueConstraint('key', name=op.f('uq_specialties_key'))
    )
    op.create_table('contact_patients',
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('relationship', sa.Enum('self', 'parent', 'guardian', 'carer', 'child', 'spouse', 'other', name='relationship', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('created_at', clinic.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_patients_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_contact_patients_patient_id_patients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('contact_id', 'patient_id', name=op.f('pk_contact_patients'))
    )
    op.create_table('practitioners',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=50), nullable=False),
    sa.Column('title', sa.String(length=30), nullable=False),
    sa.Column('first_name', sa.String(length=100), nullable=False),
    sa.Column('last_name', sa.String(length=100), nullable=False),
    sa.Column('location_id', sa.Integer(), nullable=False),
    sa.Column('languages', sa.JSON(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['location_id'], ['locations.id'], name=op.f('fk_practitioners_location_id_locations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_practitioners')),
    sa.UniqueConstraint('key', name=op.f('uq_practitioners_key'))
    )
    op.create_table('closures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('location_id', sa.Integer(), nullable=True),
    sa.Column('practitioner_id', sa.Integer(), nullable=True),
    sa.Column('first_day', sa.Date(), nullable=False),
    sa.Column('last_day', sa.Date(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.CheckConstraint('first_day <= last_day', name=op.f('ck_closures_order')),
    sa.ForeignKeyConstraint(['location_id'], ['locations.id'], name=op.f('fk_closures_location_id_locations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['practitioner_id'], ['practitioners.id'], name=op.f('fk_closures_practitioner_id_practitioners'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_closures'))
    )
    op.create_table('practitioner_specialties',
    sa.Column('practitioner_id', sa.Integer(), nullable=False),
    sa.Column('specialty_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['practitioner_id'], ['practitioners.id'], name=op.f('fk_practitioner_specialties_practitioner_id_practitioners'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['specialty_id'], ['specialties.id'], name=op.f('fk_practitioner_specialties_specialty_id_specialties'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('practitioner_id', 'specialty_id', name=op.f('pk_practitioner_specialties'))
    )
    op.create_table('slots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('practitioner_id', sa.Integer(), nullable=False),
    sa.Column('location_id', sa.Integer(), nullable=False),
    sa.Column('start_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('end_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('bookable', sa.Boolean(), nullable=False),
    sa.CheckConstraint('start_at < end_at', name=op.f('ck_slots_order')),
    sa.ForeignKeyConstraint(['location_id'], ['locations.id'], name=op.f('fk_slots_location_id_locations')),
    sa.ForeignKeyConstraint(['practitioner_id'], ['practitioners.id'], name=op.f('fk_slots_practitioner_id_practitioners'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_slots')),
    sa.UniqueConstraint('practitioner_id', 'start_at', name=op.f('uq_slots_practitioner_id_start_at'))
    )
    with op.batch_alter_table('slots', schema=None) as batch_op:
        batch_op.create_index('ix_slots_start_at', ['start_at'], unique=False)

    op.create_table('waitlist_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('specialty_id', sa.Integer(), nullable=True),
    sa.Column('practitioner_id', sa.Integer(), nullable=True),
    sa.Column('wanted_from', sa.Date(), nullable=False),
    sa.Column('wanted_until', sa.Date(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', clinic.models.UTCDateTime(), nullable=False),
    sa.CheckConstraint('specialty_id IS NOT NULL OR practitioner_id IS NOT NULL', name=op.f('ck_waitlist_entries_target')),
    sa.CheckConstraint('wanted_from <= wanted_until', name=op.f('ck_waitlist_entries_order')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_waitlist_entries_patient_id_patients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['practitioner_id'], ['practitioners.id'], name=op.f('fk_waitlist_entries_practitioner_id_practitioners')),
    sa.ForeignKeyConstraint(['specialty_id'], ['specialties.id'], name=op.f('fk_waitlist_entries_specialty_id_specialties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waitlist_entries'))
    )
    op.create_table('working_hours',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('practitioner_id', sa.Integer(), nullable=False),
    sa.Column('location_id', sa.Integer(), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=False),
    sa.Column('start_time', sa.Time(), nullable=False),
    sa.Column('end_time', sa.Time(), nullable=False),
    sa.Column('slot_minutes', sa.Integer(), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=True),
    sa.Column('valid_until', sa.Date(), nullable=True),
    sa.CheckConstraint('slot_minutes > 0', name=op.f('ck_working_hours_slot_minutes')),
    sa.CheckConstraint('start_time < end_time', name=op.f('ck_working_hours_order')),
    sa.CheckConstraint('weekday BETWEEN 0 AND 6', name=op.f('ck_working_hours_weekday')),
    sa.ForeignKeyConstraint(['location_id'], ['locations.id'], name=op.f('fk_working_hours_location_id_locations')),
    sa.ForeignKeyConstraint(['practitioner_id'], ['practitioners.id'], name=op.f('fk_working_hours_practitioner_id_practitioners'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_working_hours'))
    )
    with op.batch_alter_table('working_hours', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_working_hours_practitioner_id'), ['practitioner_id'], unique=False)

    op.create_table('appointments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('practitioner_id', sa.Integer(), nullable=False),
    sa.Column('specialty_id', sa.Integer(), nullable=True),
    sa.Column('location_id', sa.Integer(), nullable=False),
    sa.Column('slot_id', sa.Integer(), nullable=False),
    sa.Column('start_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('end_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.Enum('booked', 'confirmed', 'completed', 'no_show', 'cancelled', name='status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('cancellation_reason', sa.Text(), nullable=True),
    sa.Column('rescheduled_from_id', sa.Integer(), nullable=True),
    sa.Column('created_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('changed_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('changed_by', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['location_id'], ['locations.id'], name=op.f('fk_appointments_location_id_locations')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_appointments_patient_id_patients')),
    sa.ForeignKeyConstraint(['practitioner_id'], ['practitioners.id'], name=op.f('fk_appointments_practitioner_id_practitioners')),
    sa.ForeignKeyConstraint(['rescheduled_from_id'], ['appointments.id'], name=op.f('fk_appointments_rescheduled_from_id_appointments')),
    sa.ForeignKeyConstraint(['slot_id'], ['slots.id'], name=op.f('fk_appointments_slot_id_slots')),
    sa.ForeignKeyConstraint(['specialty_id'], ['specialties.id'], name=op.f('fk_appointments_specialty_id_specialties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appointments')),
    sa.UniqueConstraint('rescheduled_from_id', name=op.f('uq_appointments_rescheduled_from_id'))
    )
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.create_index('ix_appointments_patient_start', ['patient_id', 'start_at'], unique=False)
        batch_op.create_index('ix_appointments_practitioner_start', ['practitioner_id', 'start_at'], unique=False)
        batch_op.create_index('uq_appointments_active_slot', ['slot_id'], unique=True, sqlite_where=sa.text("status <> 'cancelled'"), postgresql_where=sa.text("status <> 'cancelled'"))

    op.create_table('working_breaks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('working_hours_id', sa.Integer(), nullable=False),
    sa.Column('start_time', sa.Time(), nullable=False),
    sa.Column('end_time', sa.Time(), nullable=False),
    sa.CheckConstraint('start_time < end_time', name=op.f('ck_working_breaks_order')),
    sa.ForeignKeyConstraint(['working_hours_id'], ['working_hours.id'], name=op.f('fk_working_breaks_working_hours_id_working_hours'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_working_breaks'))
    )
    with op.batch_alter_table('working_breaks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_working_breaks_working_hours_id'), ['working_hours_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('working_breaks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_working_breaks_working_hours_id'))

    op.drop_table('working_breaks')
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_index('uq_appointments_active_slot', sqlite_where=sa.text("status <> 'cancelled'"), postgresql_where=sa.text("status <> 'cancelled'"))
        batch_op.drop_index('ix_appointments_practitioner_start')
        batch_op.drop_index('ix_appointments_patient_start')

    op.drop_table('appointments')
    with op.batch_alter_table('working_hours', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_working_hours_practitioner_id'))

    op.drop_table('working_hours')
    op.drop_table('waitlist_entries')
    with op.batch_alter_table('slots', schema=None) as batch_op:
        batch_op.drop_index('ix_slots_start_at')

    op.drop_table('slots')
    op.drop_table('practitioner_specialties')
    op.drop_table('closures')
    op.drop_table('practitioners')
    op.drop_table('contact_patients')
    op.drop_table('specialties')
    op.drop_table('patients')
    op.drop_table('locations')
    op.drop_table('contacts')
