"""Appointments booked by the clinic, and the invitation links sent for them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, DateTime, Index, String, Text, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..crypto import EncryptedText, bind_encrypted_columns
from ..extensions import db
from ..models import utcnow


class Appointment(db.Model):
    """One booked treatment: who (encrypted, searchable by blind index), when, what, and its screening's progress.

    ``uid`` is random: staff URLs carry it instead of the row id, and the encrypted values are bound to it.
    What the desk's day shows as a status is derived from the dates below and the submission's review.
    """

    __tablename__ = "appointment"
    __table_args__ = (Index("ix_appointment_day", "appointment_date", "appointment_time"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    # The booking system's own id (CSV or API), unique: a replayed create finds the same appointment.
    external_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    source: Mapped[str] = mapped_column(String(60))  # "desk:<user id>", "csv:<user id>", "api:<token name>"
    client_name: Mapped[str] = mapped_column(EncryptedText)
    client_dob: Mapped[str] = mapped_column(EncryptedText)  # YYYY-MM-DD
    client_email: Mapped[str] = mapped_column(EncryptedText)
    client_phone: Mapped[str] = mapped_column(EncryptedText, default="")
    name_index: Mapped[str] = mapped_column(Text, default="", index=True)
    dob_index: Mapped[str] = mapped_column(String(32), index=True)
    appointment_date: Mapped[dt.date] = mapped_column(Date)
    appointment_time: Mapped[dt.time] = mapped_column(Time)
    treatment_variant: Mapped[str] = mapped_column(String(16))
    treatment_areas: Mapped[str] = mapped_column(String(200))  # comma-separated area codes
    practitioner_id: Mapped[int | None] = mapped_column(db.ForeignKey("staff_user.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # The client's progress through the invitation.
    opened_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    dob_failures: Mapped[int] = mapped_column(default=0)
    locked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    draft_id: Mapped[int | None] = mapped_column(index=True)  # the draft the invitation started (no key: drafts go)
    submission_id: Mapped[int | None] = mapped_column(db.ForeignKey("submission.id"), unique=True)
    # Booking facts the client said were wrong, or answered differently: comma-separated field names.
    mismatch: Mapped[str] = mapped_column(String(200), default="")
    client_id: Mapped[int | None] = mapped_column(db.ForeignKey("client.id"), index=True)  # screening.clients

    def seal_binding(self) -> str:
        """What this row's encrypted values are bound to (crypto.py): its random uid."""
        return self.uid

    @property
    def areas(self) -> list[str]:
        """The treatment areas as a list of codes."""
        return [a for a in self.treatment_areas.split(",") if a]


class InvitationLink(db.Model):
    """One link sent or copied for an appointment: only the hash of its random token is stored."""

    __tablename__ = "invitation_link"

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(db.ForeignKey("appointment.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(20))  # invitation, reminder, resend, copied
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_on: Mapped[dt.date] = mapped_column(Date)  # valid until the end of this day


bind_encrypted_columns(Appointment)


class ApiToken(db.Model):
    """A booking system's bearer token for the appointments API: only its hash is stored; revoked, never deleted."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ReminderSent(db.Model):
    """A reminder queued for an appointment, so many days before it: unique, so that two workers' schedules
    racing for the same reminder queue it once."""

    __tablename__ = "reminder_sent"
    __table_args__ = (UniqueConstraint("appointment_id", "days_before"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(db.ForeignKey("appointment.id"))
    days_before: Mapped[int] = mapped_column()
    queued_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
