"""appointments, invitation links and API tokens (issue 13): the booking is the unit of work

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 12:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "appointment",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("uid", sa.String(32), nullable=False, unique=True),
        sa.Column("external_id", sa.String(100), nullable=True, unique=True),
        sa.Column("source", sa.String(60), nullable=False),
        sa.Column("client_name", sa.LargeBinary(), nullable=False),
        sa.Column("client_dob", sa.LargeBinary(), nullable=False),
        sa.Column("client_email", sa.LargeBinary(), nullable=False),
        sa.Column("client_phone", sa.LargeBinary(), nullable=False),
        sa.Column("name_index", sa.Text(), nullable=False),
        sa.Column("dob_index", sa.String(32), nullable=False),
        sa.Column("appointment_date", sa.Date(), nullable=False),
        sa.Column("appointment_time", sa.Time(), nullable=False),
        sa.Column("treatment_variant", sa.String(16), nullable=False),
        sa.Column("treatment_areas", sa.String(200), nullable=False),
        sa.Column("practitioner_id", sa.Integer(), sa.ForeignKey("staff_user.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dob_failures", sa.Integer(), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("draft_id", sa.Integer(), nullable=True),
        sa.Column("submission_id", sa.Integer(), sa.ForeignKey("submission.id"), nullable=True, unique=True),
        sa.Column("mismatch", sa.String(200), nullable=False),
    )
    op.create_index("ix_appointment_day", "appointment", ["appointment_date", "appointment_time"])
    op.create_index("ix_appointment_name_index", "appointment", ["name_index"])
    op.create_index("ix_appointment_dob_index", "appointment", ["dob_index"])
    op.create_index("ix_appointment_draft_id", "appointment", ["draft_id"])
    op.create_table(
        "invitation_link",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("appointment_id", sa.Integer(), sa.ForeignKey("appointment.id"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
    )
    op.create_index("ix_invitation_link_appointment_id", "invitation_link", ["appointment_id"])
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(60), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "reminder_sent",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("appointment_id", sa.Integer(), sa.ForeignKey("appointment.id"), nullable=False),
        sa.Column("days_before", sa.Integer(), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("appointment_id", "days_before"),
    )


def downgrade():
    op.drop_table("reminder_sent")
    op.drop_table("api_token")
    op.drop_table("invitation_link")
    op.drop_table("appointment")
