"""send turns: the phone number's throughput schedule, shared by every sending process

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26 21:45:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('send_turns',
    sa.Column('phone_number_id', sa.String(length=64), nullable=False),
    sa.Column('next_turn', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('phone_number_id', name=op.f('pk_send_turns'))
    )


def downgrade() -> None:
    op.drop_table('send_turns')
