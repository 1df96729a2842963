"""answers know their date: the day the client signed (clinical specification v2, section 0, item 4)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 08:30:00

Earlier submissions get the day they were signed (UTC), which is what ``answered_on`` means.
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("submission") as batch:
        batch.add_column(sa.Column("answered_on", sa.Date(), nullable=True))
    submission = sa.table("submission", sa.column("id", sa.Integer), sa.column("signed_at", sa.DateTime(timezone=True)),
                          sa.column("answered_on", sa.Date))
    conn = op.get_bind()
    rows = conn.execute(sa.select(submission.c.id, submission.c.signed_at)).all()
    for row_id, signed_at in rows:
        if isinstance(signed_at, str):  # SQLite hands back text
            import datetime as dt

            signed_at = dt.datetime.fromisoformat(signed_at)
        conn.execute(submission.update().where(submission.c.id == row_id).values(answered_on=signed_at.date()))
    with op.batch_alter_table("submission") as batch:
        batch.alter_column("answered_on", existing_type=sa.Date(), nullable=False)


def downgrade():
    with op.batch_alter_table("submission") as batch:
        batch.drop_column("answered_on")
