"""audit: append-only, hash-chained audit entries and the chain head

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 05:55:00.000000
"""

import sqlalchemy as sa
from alembic import op

import clinic.models


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# Append-only: UPDATE and DELETE (TRUNCATE too on PostgreSQL) are refused by the database.
POSTGRESQL_TRIGGER = (
    """CREATE OR REPLACE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_entries is append-only: % refused', TG_OP;
END $$""",
    """CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_entries
FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()""",
)
SQLITE_TRIGGERS = tuple(
    f"""CREATE TRIGGER audit_entries_no_{op_.lower()} BEFORE {op_} ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only: {op_} refused'); END"""
    for op_ in ("UPDATE", "DELETE")
)


def upgrade() -> None:
    op.create_table('audit_entries',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('at', clinic.models.UTCDateTime(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('subject', sa.String(length=100), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_entries'))
    )
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.create_index('ix_audit_entries_at', ['at'], unique=False)
        batch_op.create_index('ix_audit_entries_hash', ['hash'], unique=False)

    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_audit_head_single')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_head'))
    )
    dialect = op.get_bind().dialect.name
    for statement in {"postgresql": POSTGRESQL_TRIGGER, "sqlite": SQLITE_TRIGGERS}.get(dialect, ()):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table('audit_head')
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_entries_hash')
        batch_op.drop_index('ix_audit_entries_at')

    op.drop_table('audit_entries')
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_entries_append_only()")
