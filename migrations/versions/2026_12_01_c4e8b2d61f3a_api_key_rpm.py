"""API keys: `rpm`, a key's own requests-per-minute limit (NULL: the [limits] key_per_minute default).

Revision ID: c4e8b2d61f3a
Revises: a7c3e1f09d42
Create Date: 2026-12-01 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c4e8b2d61f3a'
down_revision = 'a7c3e1f09d42'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('api_keys') as batch_op:
        batch_op.add_column(sa.Column('rpm', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('api_keys') as batch_op:
        batch_op.drop_column('rpm')
