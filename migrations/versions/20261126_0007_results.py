"""results: lab reports (encrypted files on disk, a row each), single-use download links, identity checks

Revision ID: 0007
Revises: 0011
Create Date: 2026-11-26 09:07:33.001303
"""

import sqlalchemy as sa
from alembic import op

import clinic.models


revision = '0007'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('identity_checks',
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('first_failed_at', clinic.models.UTCDateTime(), nullable=True),
    sa.Column('locked_until', clinic.models.UTCDateTime(), nullable=True),
    sa.Column('verified_patient_id', sa.Integer(), nullable=True),
    sa.Column('verified_until', clinic.models.UTCDateTime(), nullable=True),
    sa.Column('updated_at', clinic.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_identity_checks_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['verified_patient_id'], ['patients.id'], name=op.f('fk_identity_checks_verified_patient_id_patients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('contact_id', name=op.f('pk_identity_checks'))
    )
    op.create_table('lab_results',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=50), nullable=False),
    sa.Column('file_name', sa.String(length=100), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('delivery', sa.Enum('document', 'link', name='result_delivery', native_enum=False, create_constraint=True, length=10), nullable=False),
    sa.Column('status', sa.Enum('ready', 'delivered', name='result_status', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('source', sa.String(length=50), nullable=False),
    sa.Column('external_id', sa.String(length=100), nullable=True),
    sa.Column('created_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('notified_at', clinic.models.UTCDateTime(), nullable=True),
    sa.Column('notify_reason', sa.String(length=30), nullable=True),
    sa.Column('notify_outbound_id', sa.Integer(), nullable=True),
    sa.Column('delivered_at', clinic.models.UTCDateTime(), nullable=True),
    sa.Column('delivered_contact_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['delivered_contact_id'], ['contacts.id'], name=op.f('fk_lab_results_delivered_contact_id_contacts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['notify_outbound_id'], ['outbound_messages.id'], name=op.f('fk_lab_results_notify_outbound_id_outbound_messages'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_lab_results_patient_id_patients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lab_results')),
    sa.UniqueConstraint('source', 'external_id', name=op.f('uq_lab_results_source_external_id'))
    )
    with op.batch_alter_table('lab_results', schema=None) as batch_op:
        batch_op.create_index('ix_lab_results_patient_status', ['patient_id', 'status'], unique=False)
        batch_op.create_index('ix_lab_results_unnotified', ['notified_at'], unique=False)

    op.create_table('result_links',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('result_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('created_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('expires_at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('used_at', clinic.models.UTCDateTime(), nullable=True),
    sa.Column('revoked_at', clinic.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_result_links_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['result_id'], ['lab_results.id'], name=op.f('fk_result_links_result_id_lab_results'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_result_links'))
    )
    with op.batch_alter_table('result_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_result_links_result_id'), ['result_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('result_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_result_links_result_id'))

    op.drop_table('result_links')
    with op.batch_alter_table('lab_results', schema=None) as batch_op:
        batch_op.drop_index('ix_lab_results_unnotified')
        batch_op.drop_index('ix_lab_results_patient_status')

    op.drop_table('lab_results')
    op.drop_table('identity_checks')
