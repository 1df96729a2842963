"""Database models: drafts in progress and submissions, stored for good."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Date, DateTime, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from . import clock
from .crypto import EncryptedBytes, EncryptedJSON, EncryptedText, bind_encrypted_columns, binding
from .extensions import db


def utcnow() -> dt.datetime:
    """Return the current time in UTC (timezone-aware), from the clinic's clock (tests fix it there)."""
    return clock.now()


class Draft(db.Model):
    """A questionnaire in progress. The client's cookie holds only a random token; its hash is stored."""

    __tablename__ = "draft"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    answers: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON, default=dict)
    signature_name: Mapped[str | None] = mapped_column(EncryptedText)
    signed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    is_kiosk: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    # A returning client's questionnaire, prefilled from an earlier screening (screening.clients): which one,
    # and the pages (ids, comma-separated) the client has still to confirm or change.
    prefilled_from_id: Mapped[int | None] = mapped_column()
    pages_to_confirm: Mapped[str] = mapped_column(String(1000), default="", server_default="")

    def seal_binding(self) -> str:
        """What this row's encrypted values are bound to (crypto.binding)."""
        return binding("draft", {"token_hash": self.token_hash})


class Submission(db.Model):
    """A signed, submitted questionnaire and its screening result. Never edited after it is stored.

    Answers, result, signature and PDF are encrypted at rest; the reference, dates and outcome are not
    (they say nothing about who the client is). Name and date of birth are searchable only through
    keyed blind indexes.
    """

    __tablename__ = "submission"
    __table_args__ = (
        Index("ix_submission_appointment_date", "appointment_date"),
        Index("ix_submission_outcome_appointment", "outcome", "appointment_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    answers: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON)
    dictionary_version: Mapped[str] = mapped_column(String(32))
    rules_digest: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON)
    outcome: Mapped[str] = mapped_column(String(16))
    appointment_date: Mapped[dt.date] = mapped_column(Date)
    signature_name: Mapped[str] = mapped_column(EncryptedText)
    signed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # The day the client signed: the answers describe that day (clinical specification v2, 0.4).
    answered_on: Mapped[dt.date] = mapped_column(Date)
    submitted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    is_kiosk: Mapped[bool] = mapped_column(default=False)
    # Blind indexes for the staff search (crypto.Vault.name_index and dob_index), set at submit.
    # Indexed although searched with LIKE '%...%': the search then reads this small index, not the table's
    # encrypted rows.
    name_index: Mapped[str] = mapped_column(Text, default="", index=True)
    dob_index: Mapped[str | None] = mapped_column(String(32), index=True)
    pdf: Mapped[bytes | None] = mapped_column(EncryptedBytes)
    # HMAC-SHA256 of the PDF under a key derived from the index key (crypto.Vault.pdf_digest), never a plain hash:
    # the PDF is reproducible from public inputs and a guess, so a plain hash would say who the client is.
    pdf_hmac: Mapped[str | None] = mapped_column(String(64))
    pdf_rendered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # The PDF task's claim and back-off (tasks.render_pdf): failed tries so far, and when the PDF may next be tried
    # (a claim sets it a lease ahead, so two workers never render it at once; the sweep retries it once it passes).
    pdf_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    pdf_due_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # The client it belongs to (screening.clients), and the earlier screening its answers were prefilled from.
    client_id: Mapped[int | None] = mapped_column(db.ForeignKey("client.id"), index=True)
    previous_id: Mapped[int | None] = mapped_column(db.ForeignKey("submission.id"))
    # Where it stands for the day of treatment (clients.services.day_state): not_needed, to_confirm, confirmed or
    # redo. Clear, like the outcome: it says when the answers were given, not what they were.
    on_the_day: Mapped[str] = mapped_column(String(16), default="", server_default="")

    def seal_binding(self) -> str:
        """What this row's encrypted values are bound to: its reference and its clear outcome (crypto.binding)."""
        return binding("submission", {"reference": self.reference, "outcome": self.outcome})


class StaffUser(db.Model):
    """A member of staff with their own account; roles are admin, practitioner and desk."""

    __tablename__ = "staff_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(200))
    roles: Mapped[str] = mapped_column(String(64))  # comma-separated: admin,practitioner,desk
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def has_role(self, *roles: str) -> bool:
        """Whether the user holds any of ``roles``."""
        mine = set(self.roles.split(","))
        return any(r in mine for r in roles)


class StaffSession(db.Model):
    """A signed-in staff session, held on the server; the cookie carries only its random token."""

    __tablename__ = "staff_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(db.ForeignKey("staff_user.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class AccountLink(db.Model):
    """A link emailed to a member of staff to set a password: an invitation or a password reset.

    Only the SHA-256 of its random token is stored. It works once (``used_at``), until ``expires_at``; a newer link
    for the same account, or a password set another way, makes it expire at once.
    """

    __tablename__ = "account_link"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(db.ForeignKey("staff_user.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(10))  # invite, reset
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEvent(db.Model):
    """One line of the append-only audit trail: who, what, which submission, when, from where. No health data."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(db.ForeignKey("staff_user.id"), index=True)
    action: Mapped[str] = mapped_column(String(40), index=True)
    submission_id: Mapped[int | None] = mapped_column(db.ForeignKey("submission.id"), index=True)
    detail: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(String(64), default="")


class Review(db.Model):
    """A practitioner's sign-off of one submission. Stored once; never edited (addenda follow it)."""

    __tablename__ = "review"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(db.ForeignKey("submission.id"), unique=True)
    practitioner_id: Mapped[int] = mapped_column(db.ForeignKey("staff_user.id"))
    decision: Mapped[str] = mapped_column(String(32))  # proceed, proceed_with_precautions, defer, decline
    defer_until: Mapped[dt.date | None] = mapped_column(Date)
    note: Mapped[str] = mapped_column(EncryptedText, default="")
    signed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    pdf: Mapped[bytes | None] = mapped_column(EncryptedBytes)  # the signed-off version; the original stays
    pdf_hmac: Mapped[str | None] = mapped_column(String(64))  # keyed, as Submission.pdf_hmac

    def seal_binding(self) -> str:
        return binding("review", {"submission_id": self.submission_id})


class FlagAcknowledgement(db.Model):
    """The practitioner's acknowledgement of one flag, with a note; an override when treating despite it."""

    __tablename__ = "flag_acknowledgement"

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(db.ForeignKey("review.id"), index=True)
    flag_index: Mapped[int] = mapped_column()  # position in the stored result's flags
    flag_id: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(EncryptedText, default="")
    is_override: Mapped[bool] = mapped_column(default=False)

    def seal_binding(self) -> str:
        return binding("flag_acknowledgement", {"review_id": self.review_id, "flag_index": self.flag_index})


class Addendum(db.Model):
    """A dated note added after sign-off."""

    __tablename__ = "addendum"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(db.ForeignKey("submission.id"), index=True)
    author_id: Mapped[int] = mapped_column(db.ForeignKey("staff_user.id"))
    text: Mapped[str] = mapped_column(EncryptedText)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def seal_binding(self) -> str:
        return binding("addendum", {"submission_id": self.submission_id, "author_id": self.author_id,
                                    "created_at": self.created_at})


class Arrival(db.Model):
    """The desk marked a client as arrived (kept apart from the submission, which is never edited)."""

    __tablename__ = "arrival"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(db.ForeignKey("submission.id"), unique=True)
    by_id: Mapped[int] = mapped_column(db.ForeignKey("staff_user.id"))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class KioskSession(db.Model):
    """A tablet turned into a kiosk by a desk user; the browser's cookie holds only its random token."""

    __tablename__ = "kiosk_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    started_by_id: Mapped[int] = mapped_column(db.ForeignKey("staff_user.id"))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_by_id: Mapped[int | None] = mapped_column(db.ForeignKey("staff_user.id"))
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class KeyCanary(db.Model):
    """One row that proves the configured keys are the database's (screening/keycheck.py).

    ``sealed`` is a known text encrypted under the encryption keys; ``index_check`` its blind index under the
    index key. At start-up the app opens it, and refuses to start with keys that do not.
    """

    __tablename__ = "key_canary"

    id: Mapped[int] = mapped_column(primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    index_check: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Outbox(db.Model):
    """One email to send (mail.queue): the whole message encrypted, and how its delivery went.

    ``status`` is queued, sending (claimed by a worker until ``next_attempt_at``), sent or failed; ``last_error``
    is a short reason without any address ("not delivered" on the desk's list).
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)  # random; the Message-ID, and the row's binding
    kind: Mapped[str] = mapped_column(String(40))
    appointment_id: Mapped[int | None] = mapped_column(index=True)
    message: Mapped[bytes] = mapped_column(EncryptedBytes)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_outbox_status_next_attempt", "status", "next_attempt_at"),)

    def seal_binding(self) -> str:
        return binding("outbox", {"uid": self.uid})


# Every encrypted value is bound to its table, column and row (crypto.py): a value copied from another row is refused.
for _model in (Draft, Submission, Review, FlagAcknowledgement, Addendum, Outbox):
    bind_encrypted_columns(_model)
