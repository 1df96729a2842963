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
    # Accounts in the browser (screening/staff/people_services.py): the detail names the account by its id.
    "account_invited", "account_invite_resent", "account_set_up", "account_roles_changed", "account_reactivated",
    "password_reset_requested",
    "kiosk_start", "kiosk_stop",
    # Two-factor sign-in (screening/staff/twofactor.py): the detail names a kind (totp, passkey) or a passkey's id.
    "two_factor_asked", "two_factor_failed", "recovery_code_used", "totp_added", "totp_removed", "passkey_added",
    "passkey_renamed", "passkey_removed", "recovery_codes_created", "two_factor_reset",
    # Appointments (screening.appointments): the detail names the appointment's random uid, never the client.
    "appointment_created", "appointment_updated", "appointment_cancelled", "appointments_imported",
    "invitation_resent", "invitation_link_copied", "screening_attached", "api_token_created", "api_token_revoked",
    # Clients across visits (screening.clients): details name uids, never the client.
    "clients_merged", "day_confirmed", "arrival_undone",
    "purged", "exported", "erased",  # the command line's record keeping (screening.records); actor None
    "audit_exported",  # an admin exported the audit trail as CSV (staff/admin.py); the detail names the filters
}


# Every action in words, for the audit page and its export. Placeholders: %(reference)s (the event's submission),
# %(user)s (the account a "user=N" detail names, by name and email), %(email)s (the address a failed sign-in
# tried), %(appointment)s, %(token)s, %(detail)s. tests/test_audit.py checks that every action in ACTIONS has words.
ACTION_WORDS = {
    "sign_in": "Signed in",
    "sign_in_failed": "Sign-in failed for %(email)s",
    "sign_out": "Signed out",
    "session_expired": "Signed out automatically: %(detail)s",
    "view_submission": "Opened the record of %(reference)s",
    "view_pdf": "Opened the PDF of %(reference)s",
    "download_pdf": "Downloaded the PDF of %(reference)s",
    "print_pdf": "Opened the PDF of %(reference)s at the desk",
    "print_desk_sheet": "Printed the desk sheet of %(reference)s",
    "sign_off": "Signed off %(reference)s",
    "addendum": "Added an addendum to %(reference)s",
    "mark_arrived": "Marked %(reference)s as arrived",
    "account_created": "Created the account of %(user)s",
    "account_deactivated": "Deactivated the account of %(user)s",
    "password_reset": "Reset the password of %(user)s",
    "account_invited": "Invited %(user)s",
    "account_invite_resent": "Sent the invitation to %(user)s again",
    "account_set_up": "Set up the account of %(user)s",
    "account_roles_changed": "Changed the roles of %(user)s",
    "account_reactivated": "Reactivated the account of %(user)s",
    "password_reset_requested": "Asked for a password reset link",
    "kiosk_start": "Started kiosk mode on a device",
    "kiosk_stop": "Ended kiosk mode on a device",
    "two_factor_asked": "Password accepted; asked for the second factor",
    "two_factor_failed": "Second factor refused",
    "recovery_code_used": "Signed in with a recovery code",
    "totp_added": "Added an authenticator app",
    "totp_removed": "Removed the authenticator app",
    "passkey_added": "Added a passkey",
    "passkey_renamed": "Renamed a passkey",
    "passkey_removed": "Removed a passkey",
    "recovery_codes_created": "Made new recovery codes",
    "two_factor_reset": "Reset the second factor of %(user)s",
    "appointment_created": "Booked appointment %(appointment)s",
    "appointment_updated": "Changed appointment %(appointment)s",
    "appointment_cancelled": "Cancelled appointment %(appointment)s",
    "appointments_imported": "Imported appointments from a file (%(detail)s)",
    "invitation_resent": "Sent the invitation for appointment %(appointment)s again",
    "invitation_link_copied": "Made a new invitation link for appointment %(appointment)s",
    "screening_attached": "Attached %(reference)s to appointment %(appointment)s",
    "api_token_created": "Created the booking system token “%(token)s”",
    "api_token_revoked": "Revoked the booking system token “%(token)s”",
    "purged": "Deleted %(reference)s at the end of its retention period",
    "exported": "Exported %(reference)s for the client",
    "erased": "Erased %(reference)s at the client’s request",
    "audit_exported": "Exported the audit trail as CSV (%(detail)s)",
    "clients_merged": "Merged two client records (%(detail)s)",
    "day_confirmed": "The client confirmed %(reference)s on the day (%(detail)s)",
    "arrival_undone": "Took back the arrival of %(reference)s",
}
# More exact words for some details.
DETAIL_WORDS = {
    ("sign_in_failed", "kiosk_exit"): "Failed to end kiosk mode as %(email)s",
    ("view_pdf", "version=signed"): "Opened the signed-off PDF of %(reference)s",
    ("download_pdf", "version=signed"): "Downloaded the signed-off PDF of %(reference)s",
    ("session_expired", "idle"): "Signed out automatically: the page was left unused",
    ("session_expired", "lifetime"): "Signed out automatically: the session reached its time limit",
    ("session_expired", "inactive"): "Signed out automatically: the account was deactivated",
    ("sign_in", "method=totp"): "Signed in with an authenticator app’s code",
    ("sign_in", "method=passkey"): "Signed in with a passkey",
    ("sign_in", "method=recovery_code"): "Signed in with a recovery code",
    ("sign_in", "method=totp_set_up"): "Signed in after setting up an authenticator app",
    ("sign_in", "method=passkey_set_up"): "Signed in after setting up a passkey",
    ("two_factor_asked", "enrol"): "Password accepted; asked to set up a second factor",
    ("two_factor_failed", "code"): "Second factor refused for %(email)s: a wrong code",
    ("two_factor_failed", "passkey"): "Second factor refused for %(email)s: a passkey not accepted",
}
# Actions about a record whose link to it may have been cleared (a purge, an erasure): the detail starts with
# the reference.
REFERENCE_IN_DETAIL = frozenset({"purged", "exported", "erased"})
SIGN_IN_EMAIL_MAX = 100  # characters of the email tried that a failed sign-in's detail keeps


def detail_field(detail: str, key: str) -> str | None:
    """Return the value of ``key=value`` in an event's detail (values end at a space or a semicolon)."""
    match = re.search(rf"(?:^|[\s;]){re.escape(key)}=([^\s;]*)", detail or "")
    return match.group(1) if match else None


def email_tried(detail: str) -> str:
    """Return the email address a failed sign-in tried, as its detail records it ("" when it does not)."""
    from urllib.parse import unquote

    return unquote(detail_field(detail, "email") or "")


def describe(action: str, detail: str, reference: str, people: dict[int, str], translate=lambda s: s) -> str:
    """Return one event in words: "Opened the PDF of K7QM-4TXR"; ``people`` maps account ids to "Name (email)"."""
    if reference == "" and action in REFERENCE_IN_DETAIL:
        reference = (detail or "").split(";")[0].strip()
    words = None
    for (known, marker), text in DETAIL_WORDS.items():
        if known == action and (detail == marker or (detail or "").endswith(";" + marker)
                                or marker in (detail or "").split()):
            words = text
    words = words or ACTION_WORDS.get(action)
    if words is None:
        return action  # an action added without words: tests/test_audit.py names it
    user = detail_field(detail, "user")
    appointment = re.search(r"appointment (\S+)", detail or "")
    token = re.search(r"api token (.*)$", detail or "")
    values = {
        "reference": reference or translate("a record"),
        "user": people.get(int(user), translate("account %(id)s") % {"id": user}) if user and user.isdigit()
        else translate("an account"),
        "email": email_tried(detail) or translate("an unknown address"),
        "appointment": appointment.group(1) if appointment else "",
        "token": token.group(1) if token else "",
        "detail": detail or "",
    }
    return translate(words) % values

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
