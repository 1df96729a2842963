"""The audit trail: append-only records of staff actions. Never an answer, a name or a date of birth."""

from __future__ import annotations

import datetime as dt
import re

from flask import has_request_context, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import AuditEvent, utcnow

ACTIONS = {
    "sign_in", "sign_in_failed", "sign_out", "session_expired",
    "view_submission", "view_pdf", "download_pdf", "print_pdf", "print_desk_sheet",
    "sign_off", "addendum", "mark_arrived",
    "account_created", "account_deactivated", "password_reset",
    "kiosk_start", "kiosk_stop",
    # Appointments (screening.appointments): the detail names the appointment's random uid, never the client.
    "appointment_created", "appointment_updated", "appointment_cancelled", "appointments_imported",
    "invitation_resent", "invitation_link_copied", "screening_attached", "api_token_created", "api_token_revoked",
    "purged", "exported", "erased",  # the command line's record keeping (screening.records); actor None
}


# A browser's PDF viewer asks again for a PDF it has just been sent (and may ask for byte ranges of it): one
# opening is one event. A request for a later part of the file (Range: bytes=N- with N > 0) is part of an opening
# already recorded; the same event (who, what, which submission, version, address) again within
# ``SAME_OPENING`` is the same opening.
ONE_OPENING = frozenset({"view_pdf", "download_pdf", "print_pdf"})
SAME_OPENING = dt.timedelta(seconds=10)
_LATER_RANGE = re.compile(r"^\s*bytes\s*=\s*0*[1-9]")


def _same_opening(session: Session, action: str, actor_id, submission_id, detail: str, address: str):
    earlier = session.scalar(
        select(AuditEvent).where(AuditEvent.action == action, AuditEvent.actor_id == actor_id,
                                 AuditEvent.submission_id == submission_id, AuditEvent.detail == detail,
                                 AuditEvent.address == address, AuditEvent.at >= utcnow() - SAME_OPENING)
        .order_by(AuditEvent.id.desc()).limit(1))
    if earlier is not None:
        return earlier
    if has_request_context() and _LATER_RANGE.match(request.headers.get("Range", "")):
        # A later part of a file whose opening is older than SAME_OPENING: still that opening.
        return session.scalar(
            select(AuditEvent).where(AuditEvent.action == action, AuditEvent.actor_id == actor_id,
                                     AuditEvent.submission_id == submission_id)
            .order_by(AuditEvent.id.desc()).limit(1))
    return None


def record(session: Session, action: str, *, actor_id: int | None = None, submission_id: int | None = None,
           detail: str = "", address: str = "", commit: bool = True) -> AuditEvent:
    """Append one audit event (``detail`` holds ids and codes only)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if action in ONE_OPENING:
        earlier = _same_opening(session, action, actor_id, submission_id, detail[:200], address[:64])
        if earlier is not None:
            return earlier
    event = AuditEvent(action=action, actor_id=actor_id, submission_id=submission_id, detail=detail[:200],
                       address=address[:64])
    session.add(event)
    if commit:
        session.commit()
    return event
