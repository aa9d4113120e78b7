"""nlu outcomes: the intent the bot acted on for each patient message, and whether it fell back

Revision ID: 0012
Revises: 0008
Create Date: 2026-11-26 12:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('inbound_messages', sa.Column('nlu_intent', sa.String(length=100), nullable=True))
    op.add_column('inbound_messages', sa.Column('nlu_fallback', sa.Boolean(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE DROP COLUMN (SQLite 3.35+), as 0011: no batch rebuild of a referenced table.
    op.execute('ALTER TABLE inbound_messages DROP COLUMN nlu_fallback')
    op.execute('ALTER TABLE inbound_messages DROP COLUMN nlu_intent')
