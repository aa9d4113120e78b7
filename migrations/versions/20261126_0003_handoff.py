"""handoff: nurse tickets, private notes, staff users and sessions, canned responses, staff events

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 02:25:32.655837
"""

import sqlalchemy as sa
from alembic import op

import clinic.models


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('canned_responses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('updated_at', clinic.models.UTCDateTime(), nullable=False),
    sa.CheckConstraint("language IN ('it', 'en')", name=op.f('ck_canned_responses_language')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_canned_responses'))
    )
    op.create_table('staff_users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=300), nullable=False),
    sa.Column('role', sa.Enum('nurse', 'admin', name='staff_role', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('first_failed_at', clinic.models.UTCDateTime(), nullable=True),
    sa.Column('locked_until', clinic.models.UTCDateTime(), nullable=True),
    sa.Column('last_login_at', clinic.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_users')),
    sa.UniqueConstraint('username', name=op.f('uq_staff_users_username'))
    )
    op.create_table('handoff_tickets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=30), nullable=False),
    sa.Column('priority', sa.String(length=10), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=True),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('waiting', 'claimed', 'resolved', name='ticket_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('created_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('updated_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('claimed_by_id', sa.Integer(), nullable=True),
    sa.Column('claimed_at', clinic.models.UTCDateTime(), nullable=True),
    sa.Column('first_reply_at', clinic.models.UTCDateTime(), nullable=True),
    sa.Column('resolved_by_id', sa.Integer(), nullable=True),
    sa.Column('resolved_at', clinic.models.UTCDateTime(), nullable=True),
    sa.CheckConstraint("priority IN ('normal', 'urgent')", name=op.f('ck_handoff_tickets_priority')),
    sa.ForeignKeyConstraint(['claimed_by_id'], ['staff_users.id'], name=op.f('fk_handoff_tickets_claimed_by_id_staff_users')),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_handoff_tickets_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['resolved_by_id'], ['staff_users.id'], name=op.f('fk_handoff_tickets_resolved_by_id_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handoff_tickets'))
    )
    with op.batch_alter_table('handoff_tickets', schema=None) as batch_op:
        batch_op.create_index('ix_handoff_tickets_status', ['status', 'created_at'], unique=False)
        batch_op.create_index('uq_handoff_tickets_open_contact', ['contact_id'], unique=True, sqlite_where=sa.text("status <> 'resolved'"), postgresql_where=sa.text("status <> 'resolved'"))

    op.create_table('staff_sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('expires_at', clinic.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_users.id'], name=op.f('fk_staff_sessions_staff_id_staff_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_staff_sessions'))
    )
    with op.batch_alter_table('staff_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_sessions_staff_id'), ['staff_id'], unique=False)

    op.create_table('staff_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=30), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('at', clinic.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_users.id'], name=op.f('fk_staff_events_staff_id_staff_users')),
    sa.ForeignKeyConstraint(['ticket_id'], ['handoff_tickets.id'], name=op.f('fk_staff_events_ticket_id_handoff_tickets'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_events'))
    )
    with op.batch_alter_table('staff_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_events_staff_id'), ['staff_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_staff_events_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('ticket_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', clinic.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_users.id'], name=op.f('fk_ticket_notes_staff_id_staff_users')),
    sa.ForeignKeyConstraint(['ticket_id'], ['handoff_tickets.id'], name=op.f('fk_ticket_notes_ticket_id_handoff_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_notes'))
    )
    with op.batch_alter_table('ticket_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_notes_ticket_id'), ['ticket_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('ticket_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_notes_ticket_id'))

    op.drop_table('ticket_notes')
    with op.batch_alter_table('staff_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_events_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_staff_events_staff_id'))

    op.drop_table('staff_events')
    with op.batch_alter_table('staff_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_sessions_staff_id'))

    op.drop_table('staff_sessions')
    with op.batch_alter_table('handoff_tickets', schema=None) as batch_op:
        batch_op.drop_index('uq_handoff_tickets_open_contact', sqlite_where=sa.text("status <> 'resolved'"), postgresql_where=sa.text("status <> 'resolved'"))
        batch_op.drop_index('ix_handoff_tickets_status')

    op.drop_table('handoff_tickets')
    op.drop_table('staff_users')
    op.drop_table('canned_responses')
