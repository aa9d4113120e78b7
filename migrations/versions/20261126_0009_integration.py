"""integration: FHIR API clients, the webhook outbox (hook deliveries), private calendar feeds

Revision ID: 0009
Revises: 0006
Create Date: 2026-11-26 09:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

import clinic.models


revision = '0009'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_clients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('last_used_at', clinic.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_clients')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_clients_key_hash')),
    sa.UniqueConstraint('name', name=op.f('uq_api_clients_name'))
    )
    op.create_table('hook_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('event', sa.String(length=40), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'delivered', 'failed', name='hook_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('last_attempt_at', clinic.models.UTCDateTime(), nullable=True),
    sa.Column('last_http_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.String(length=200), nullable=True),
    sa.Column('created_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('delivered_at', clinic.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hook_deliveries')),
    sa.UniqueConstraint('event_id', 'url', name=op.f('uq_hook_deliveries_event_id_url'))
    )
    op.create_index('ix_hook_deliveries_due', 'hook_deliveries', ['status', 'next_attempt_at'], unique=False)
    op.create_table('calendar_feeds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('practitioner_id', sa.Integer(), nullable=True),
    sa.Column('location_id', sa.Integer(), nullable=True),
    sa.Column('created_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('revoked_at', clinic.models.UTCDateTime(), nullable=True),
    sa.CheckConstraint('(practitioner_id IS NULL) <> (location_id IS NULL)', name=op.f('ck_calendar_feeds_one_owner')),
    sa.ForeignKeyConstraint(['location_id'], ['locations.id'], name=op.f('fk_calendar_feeds_location_id_locations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['practitioner_id'], ['practitioners.id'], name=op.f('fk_calendar_feeds_practitioner_id_practitioners'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_feeds')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_calendar_feeds_token_hash'))
    )


def downgrade() -> None:
    op.drop_table('calendar_feeds')
    op.drop_index('ix_hook_deliveries_due', table_name='hook_deliveries')
    op.drop_table('hook_deliveries')
    op.drop_table('api_clients')
