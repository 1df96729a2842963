"""staff accounts in the browser: invitation and password-reset links (issue 15)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 14:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "account_link",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("staff_user.id"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("purpose", sa.String(10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_account_link_user_id", "account_link", ["user_id"])


def downgrade():
    op.drop_index("ix_account_link_user_id", table_name="account_link")
    op.drop_table("account_link")
