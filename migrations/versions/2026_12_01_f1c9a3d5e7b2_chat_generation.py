"""Chat answers generated apart from the page: the Stop flag and the generator's heartbeat.

Revision ID: f1c9a3d5e7b2
Revises: b5d2f7e3a8c1
Create Date: 2026-12-01 14:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f1c9a3d5e7b2'
down_revision = 'b5d2f7e3a8c1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('chat_messages') as batch_op:
        batch_op.add_column(sa.Column('stop_requested', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(), nullable=True))
    # answers left `pending` by the release before: their page-bound stream is gone
    op.execute("UPDATE chat_messages SET status = 'error', error = 'Interrupted by an upgrade.' "
               "WHERE status IN ('pending', 'streaming')")


def downgrade():
    with op.batch_alter_table('chat_messages') as batch_op:
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('stop_requested')
