"""Conversation settings (system prompt, temperature, max tokens) and deletion with an undo window.

Revision ID: 3e9a6c1d8b54
Revises: f1c9a3d5e7b2
Create Date: 2026-12-01 16:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3e9a6c1d8b54'
down_revision = 'f1c9a3d5e7b2'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('conversations') as batch_op:
        batch_op.add_column(sa.Column('system_prompt', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('temperature', sa.Double(), nullable=True))
        batch_op.add_column(sa.Column('max_tokens', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('deleted_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('conversations') as batch_op:
        batch_op.drop_column('deleted_at')
        batch_op.drop_column('max_tokens')
        batch_op.drop_column('temperature')
        batch_op.drop_column('system_prompt')
