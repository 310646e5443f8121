"""Stored responses of the Responses API (/v1/responses with `store`), owner-scoped, for
previous_response_id, GET /v1/responses/{id} and its input_items.

Revision ID: b5d2f7e3a8c1
Revises: e2b7d4a91c06
Create Date: 2026-12-01 15:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b5d2f7e3a8c1'
down_revision = 'e2b7d4a91c06'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'stored_responses',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('previous_response_id', sa.String(length=64), nullable=True),
        sa.Column('model', sa.String(length=200), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('input_items', sa.JSON(), nullable=False),
        sa.Column('response', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_stored_responses_user_created', 'stored_responses', ['user_id', 'created_at'], unique=False)


def downgrade():
    op.drop_index('ix_stored_responses_user_created', table_name='stored_responses')
    op.drop_table('stored_responses')
