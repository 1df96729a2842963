"""mail and background work (issue 13): the outbox; the PDF task's claim and back-off

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 12:00:00

- ``outbox``: one row per email, the whole message encrypted at rest (bound to the row's random ``uid``), its
  kind, status (queued, sending, sent, failed), attempts, a short reason for the last failure (never an address),
  and when it may next be tried. ``appointment_id`` has no foreign key yet: the appointments table comes in 0007.
- ``submission.pdf_attempts`` and ``submission.pdf_due_at``: the PDF task's failed tries and its next try (or its
  claim), so that two workers never render one PDF at once and a failing PDF backs off.
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("message", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uid"),
    )
    op.create_index("ix_outbox_appointment_id", "outbox", ["appointment_id"])
    op.create_index("ix_outbox_status_next_attempt", "outbox", ["status", "next_attempt_at"])
    with op.batch_alter_table("submission") as batch:
        batch.add_column(sa.Column("pdf_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("pdf_due_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("submission") as batch:
        batch.drop_column("pdf_due_at")
        batch.drop_column("pdf_attempts")
    op.drop_index("ix_outbox_status_next_attempt", table_name="outbox")
    op.drop_index("ix_outbox_appointment_id", table_name="outbox")
    op.drop_table("outbox")
