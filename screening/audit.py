"""The audit trail: append-only records of staff actions. Never an answer, a name or a date of birth."""

from __future__ import annotations

from sqlalchemy.orm import Session

from .models import AuditEvent

ACTIONS = {
    "sign_in", "sign_in_failed", "sign_out", "session_expired",
    "view_submission", "view_pdf", "download_pdf", "print_pdf",
    "sign_off", "addendum", "mark_arrived",
    "account_created", "account_deactivated", "password_reset",
    "kiosk_start", "kiosk_stop",
    "purged", "exported", "erased",  # the command line's record keeping (screening.records); actor None
}


def record(session: Session, action: str, *, actor_id: int | None = None, submission_id: int | None = None,
           detail: str = "", address: str = "", commit: bool = True) -> AuditEvent:
    """Append one audit event (``detail`` holds ids and codes only)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    event = AuditEvent(action=action, actor_id=actor_id, submission_id=submission_id, detail=detail[:200],
                       address=address[:64])
    session.add(event)
    if commit:
        session.commit()
    return event
