"""Request log: the upstream's overrun, what an answer cost beyond the hold (micro-USD, not charged).

Revision ID: a7c3e1f09d42
Revises: 5d1f0c2a9b7e
Create Date: 2026-11-30 12:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a7c3e1f09d42'
down_revision = '5d1f0c2a9b7e'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('request_logs') as batch_op:
        batch_op.add_column(sa.Column('overrun', sa.BigInteger(), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('request_logs') as batch_op:
        batch_op.drop_column('overrun')
