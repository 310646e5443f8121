"""Request log: what each request cost and its usage breakdown (cache read/write and reasoning
tokens, the cost of each part), and the indexes that keep every log filter fast at millions of rows.

Revision ID: e2b7d4a91c06
Revises: c4e8b2d61f3a
Create Date: 2026-12-01 12:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e2b7d4a91c06'
down_revision = 'c4e8b2d61f3a'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('request_logs') as batch_op:
        batch_op.add_column(sa.Column('cost', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('cache_read_tokens', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('cache_write_tokens', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('reasoning_tokens', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('cost_parts', sa.JSON(), nullable=True))
    op.create_index('ix_request_logs_key_created', 'request_logs', ['api_key_id', 'created_at'], unique=False)
    op.create_index('ix_request_logs_model_created', 'request_logs', ['model', 'created_at'], unique=False)
    op.create_index('ix_request_logs_status_created', 'request_logs', ['status', 'created_at'], unique=False)
    op.create_index('ix_activity_logs_created_at', 'activity_logs', ['created_at'], unique=False)


def downgrade():
    op.drop_index('ix_activity_logs_created_at', table_name='activity_logs')
    op.drop_index('ix_request_logs_status_created', table_name='request_logs')
    op.drop_index('ix_request_logs_model_created', table_name='request_logs')
    op.drop_index('ix_request_logs_key_created', table_name='request_logs')
    with op.batch_alter_table('request_logs') as batch_op:
        for column in ('cost_parts', 'reasoning_tokens', 'cache_write_tokens', 'cache_read_tokens', 'cost'):
            batch_op.drop_column(column)
