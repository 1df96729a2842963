"""A client across visits, the day-of-treatment confirmation of a screening, and the sessions a clinic records."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Date, DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..crypto import EncryptedJSON, EncryptedText, bind_encrypted_columns
from ..extensions import db
from ..models import utcnow


class Client(db.Model):
    """One person, across their appointments and screenings: identity encrypted and bound to a random uid,
    found by keyed blind indexes of email and date of birth (never by name alone).

    A duplicate merged into another keeps its row with ``merged_into_id`` set, so that links to it still lead
    somewhere and the audit trail's uids stay meaningful.
    """

    __tablename__ = "client"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(EncryptedText)
    dob: Mapped[str] = mapped_column(EncryptedText)  # YYYY-MM-DD
    email: Mapped[str] = mapped_column(EncryptedText, default="")
    name_index: Mapped[str] = mapped_column(Text, default="", index=True)
    dob_index: Mapped[str] = mapped_column(String(32), index=True)
    email_index: Mapped[str] = mapped_column(String(32), default="", index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    merged_into_id: Mapped[int | None] = mapped_column(db.ForeignKey("client.id"))
    merged_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    def seal_binding(self) -> str:
        """What this row's encrypted values are bound to: its random uid."""
        return self.uid


class DayCheck(db.Model):
    """The client confirms, on the appointment day, the answers about "now" they gave earlier.

    While ``confirmed_at`` is empty it is in progress: ``work`` holds what they have said so far and the
    submission is untouched. Confirming applies it in one transaction: the submission then holds the current
    answers and result, and this row keeps the earlier ones (``answers_before``, ``result_before``).
    """

    __tablename__ = "day_check"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    submission_id: Mapped[int] = mapped_column(db.ForeignKey("submission.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # kiosk or link
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    work: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON, default=dict)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    changed: Mapped[list[str] | None] = mapped_column(EncryptedJSON)  # the question ids answered differently
    answers_before: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON)
    result_before: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON)
    outcome_before: Mapped[str | None] = mapped_column(String(16))
    answered_on_before: Mapped[dt.date | None] = mapped_column(Date)

    def seal_binding(self) -> str:
        return self.uid


class TreatmentSession(db.Model):
    """What the practitioner recorded at sign-off: treated that day (variant, areas) or not."""

    __tablename__ = "treatment_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(db.ForeignKey("review.id"), unique=True)
    client_id: Mapped[int | None] = mapped_column(db.ForeignKey("client.id"), index=True)
    on: Mapped[dt.date] = mapped_column(Date)
    treated: Mapped[bool] = mapped_column()
    variant: Mapped[str] = mapped_column(String(16), default="")
    areas: Mapped[str] = mapped_column(String(200), default="")  # comma-separated area codes
    recorded_by_id: Mapped[int] = mapped_column(db.ForeignKey("staff_user.id"))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def area_list(self) -> list[str]:
        """The treated areas as a list of codes."""
        return [a for a in self.areas.split(",") if a]


for _model in (Client, DayCheck):
    bind_encrypted_columns(_model)
