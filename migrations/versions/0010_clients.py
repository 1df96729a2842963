"""clients across visits: client records, day-of confirmations, sessions (issue 14)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 14:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "client",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("uid", sa.String(32), nullable=False, unique=True),
        sa.Column("name", sa.LargeBinary(), nullable=False),
        sa.Column("dob", sa.LargeBinary(), nullable=False),
        sa.Column("email", sa.LargeBinary(), nullable=False),
        sa.Column("name_index", sa.Text(), nullable=False),
        sa.Column("dob_index", sa.String(32), nullable=False),
        sa.Column("email_index", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("merged_into_id", sa.Integer(), sa.ForeignKey("client.id"), nullable=True),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=True),
    )
    for column in ("name_index", "dob_index", "email_index"):
        op.create_index(f"ix_client_{column}", "client", [column])
    op.create_table(
        "day_check",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("uid", sa.String(32), nullable=False, unique=True),
        sa.Column("submission_id", sa.Integer(), sa.ForeignKey("submission.id"), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("work", sa.LargeBinary(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("changed", sa.LargeBinary(), nullable=True),
        sa.Column("answers_before", sa.LargeBinary(), nullable=True),
        sa.Column("result_before", sa.LargeBinary(), nullable=True),
        sa.Column("outcome_before", sa.String(16), nullable=True),
        sa.Column("answered_on_before", sa.Date(), nullable=True),
    )
    op.create_index("ix_day_check_submission_id", "day_check", ["submission_id"])
    op.create_table(
        "treatment_session",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("review_id", sa.Integer(), sa.ForeignKey("review.id"), nullable=False, unique=True),
        sa.Column("client_id", sa.Integer(), sa.ForeignKey("client.id"), nullable=True),
        sa.Column("on", sa.Date(), nullable=False),
        sa.Column("treated", sa.Boolean(), nullable=False),
        sa.Column("variant", sa.String(16), nullable=False),
        sa.Column("areas", sa.String(200), nullable=False),
        sa.Column("recorded_by_id", sa.Integer(), sa.ForeignKey("staff_user.id"), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_treatment_session_client_id", "treatment_session", ["client_id"])
    with op.batch_alter_table("appointment") as batch:
        batch.add_column(sa.Column("client_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_appointment_client", "client", ["client_id"], ["id"])
        batch.create_index("ix_appointment_client_id", ["client_id"])
    with op.batch_alter_table("submission") as batch:
        batch.add_column(sa.Column("client_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("previous_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("on_the_day", sa.String(16), nullable=False, server_default=""))
        batch.create_foreign_key("fk_submission_client", "client", ["client_id"], ["id"])
        batch.create_foreign_key("fk_submission_previous", "submission", ["previous_id"], ["id"])
        batch.create_index("ix_submission_client_id", ["client_id"])
    with op.batch_alter_table("draft") as batch:
        batch.add_column(sa.Column("prefilled_from_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("pages_to_confirm", sa.String(1000), nullable=False, server_default=""))


def downgrade():
    with op.batch_alter_table("draft") as batch:
        batch.drop_column("pages_to_confirm")
        batch.drop_column("prefilled_from_id")
    with op.batch_alter_table("submission") as batch:
        batch.drop_index("ix_submission_client_id")
        batch.drop_constraint("fk_submission_previous", type_="foreignkey")
        batch.drop_constraint("fk_submission_client", type_="foreignkey")
        batch.drop_column("on_the_day")
        batch.drop_column("previous_id")
        batch.drop_column("client_id")
    with op.batch_alter_table("appointment") as batch:
        batch.drop_index("ix_appointment_client_id")
        batch.drop_constraint("fk_appointment_client", type_="foreignkey")
        batch.drop_column("client_id")
    op.drop_table("treatment_session")
    op.drop_table("day_check")
    op.drop_table("client")
