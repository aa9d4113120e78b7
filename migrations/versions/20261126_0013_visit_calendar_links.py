"""visit calendar links: a patient's link to one visit's .ics (only the token's hash)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26 13:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

import clinic.models


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('visit_calendar_links',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('created_at', clinic.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_visit_calendar_links_appointment_id_appointments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_visit_calendar_links'))
    )
    op.create_index(op.f('ix_visit_calendar_links_appointment_id'), 'visit_calendar_links', ['appointment_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_visit_calendar_links_appointment_id'), table_name='visit_calendar_links')
    op.drop_table('visit_calendar_links')
