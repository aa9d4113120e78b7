"""consent: the privacy notices (versioned, per language) and the consent ledger

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 06:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import clinic.models


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('privacy_notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.String(length=40), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('published_at', clinic.models.UTCDateTime(), nullable=False),
    sa.CheckConstraint("language IN ('it', 'en')", name=op.f('ck_privacy_notices_language')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_privacy_notices')),
    sa.UniqueConstraint('version', 'language', name=op.f('uq_privacy_notices_version_language'))
    )
    op.create_table('consent_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('granted', sa.Boolean(), nullable=False),
    sa.Column('notice_version', sa.String(length=40), nullable=False),
    sa.Column('at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('how', sa.String(length=60), nullable=False),
    sa.CheckConstraint("purpose IN ('appointments', 'results', 'followups')", name=op.f('ck_consent_records_purpose')),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_consent_records_contact_id_contacts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_records'))
    )
    op.create_index('ix_consent_records_contact_purpose', 'consent_records', ['contact_id', 'purpose', 'id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_consent_records_contact_purpose', table_name='consent_records')
    op.drop_table('consent_records')
    op.drop_table('privacy_notices')
