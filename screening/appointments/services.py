"""Appointment use cases: book, change, cancel, invite, open an invitation, attach a screening, the desk's day.

Each takes the session and commits once. The desk's form, the CSV import and the JSON API all call ``book``.
Messages are queued in the outbox in the same transaction as the change that causes them (screening.mail) and
sent by the task queue after the commit: the client and the desk never wait for an email.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

from flask import current_app
from huey import crontab
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import audit, clock, mail, tasks
from .. import questions as qd
from .. import services as screening_services
from ..crypto import open_row, raw, vault
from ..models import Arrival, Draft, Outbox, Review, StaffUser, Submission, utcnow
from ..clients import services as clients
from ..clients.models import Client
from ..questionnaire.forms import name_key
from .booking import TREATMENTS, Booking
from .models import Appointment, InvitationLink, ReminderSent

MAX_DOB_TRIES = 5


class BookingConflict(Exception):
    """A create with a booking system's id that is already used for a different booking."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def practitioners(session: Session) -> dict[str, int]:
    """Return each active practitioner's email (lower case) and id."""
    rows = session.execute(select(StaffUser.email, StaffUser.id, StaffUser.roles).where(StaffUser.is_active))
    return {email.lower(): uid for email, uid, roles in rows if "practitioner" in roles.split(",")}


def _apply(appointment: Appointment, booking: Booking) -> None:
    v = vault()
    appointment.client_name = booking.name
    appointment.client_dob = booking.date_of_birth.isoformat()
    appointment.client_email = booking.email
    appointment.client_phone = booking.phone
    appointment.name_index = v.name_index(booking.name)
    appointment.dob_index = v.dob_index(booking.date_of_birth.isoformat())
    appointment.appointment_date = booking.date
    appointment.appointment_time = booking.time
    appointment.treatment_variant = booking.treatment
    appointment.treatment_areas = ",".join(booking.areas)
    appointment.practitioner_id = booking.practitioner_id
    appointment.updated_at = utcnow()


def same_booking(appointment: Appointment, booking: Booking) -> bool:
    """Whether ``appointment`` already holds exactly ``booking`` (a replayed create)."""
    return (appointment.client_name == booking.name and appointment.client_dob == booking.date_of_birth.isoformat()
            and appointment.client_email == booking.email and appointment.client_phone == booking.phone
            and appointment.appointment_date == booking.date and appointment.appointment_time == booking.time
            and appointment.treatment_variant == booking.treatment and appointment.areas == list(booking.areas)
            and appointment.practitioner_id == booking.practitioner_id)


def by_external_id(session: Session, external_id: str) -> Appointment | None:
    """Return the appointment a booking system knows by ``external_id``."""
    return session.scalar(select(Appointment).where(Appointment.external_id == external_id))


def by_uid(session: Session, uid: str) -> Appointment | None:
    """Return the appointment with this random uid (32 hex digits; anything else is no appointment)."""
    if not re.fullmatch(r"[0-9a-f]{32}", uid or ""):
        return None
    return session.scalar(select(Appointment).where(Appointment.uid == uid))


def add(session: Session, booking: Booking, *, source: str, actor_id: int | None = None, invite_now: bool = True,
        client_id: int | None = None) -> Appointment:
    """Add an appointment and its invitation to the session (no commit: ``book`` and the CSV import commit).

    ``invite_now=False`` holds the invitation: the reminder schedule sends the first link (``send_reminders``).
    ``client_id`` ties it to a known client record (the next session of a course) instead of matching one."""
    appointment = Appointment(uid=secrets.token_hex(16), external_id=booking.external_id, source=source,
                              created_at=utcnow())
    _apply(appointment, booking)
    session.add(appointment)
    session.flush()
    if client_id is not None:
        appointment.client_id = client_id
    else:
        clients.link_appointment(session, appointment)
    if invite_now:
        invite(session, appointment, "invitation")
    audit.record(session, "appointment_created", actor_id=actor_id, detail=f"appointment {appointment.uid} "
                 f"({source.split(':')[0]})", commit=False)
    return appointment


def book(session: Session, booking: Booking, *, source: str, actor_id: int | None = None, invite_now: bool = True,
         client_id: int | None = None) -> tuple[Appointment, bool]:
    """Create the appointment and send its invitation (or hold it for the reminder schedule: see ``add``); return
    (it, True). A replayed create (same booking system id, same booking) returns (the existing one, False); the
    same id with another booking raises BookingConflict."""
    if booking.external_id:
        existing = by_external_id(session, booking.external_id)
        if existing is not None:
            if existing.cancelled_at is None and same_booking(existing, booking):
                return existing, False
            raise BookingConflict(booking.external_id)
    appointment = add(session, booking, source=source, actor_id=actor_id, invite_now=invite_now, client_id=client_id)
    session.commit()
    return appointment, True


def change(session: Session, appointment: Appointment, booking: Booking, *, actor_id: int | None = None,
           source: str = "") -> bool:
    """Change a booking; its links then last until the end of the new day. Return whether anything changed."""
    if same_booking(appointment, booking):
        return False
    identity = (appointment.client_dob, appointment.client_email)
    _apply(appointment, booking)
    if identity != (appointment.client_dob, appointment.client_email) or appointment.client_id is None:
        clients.link_appointment(session, appointment)  # another person's details: find (or make) their record
    for link in session.scalars(select(InvitationLink).where(InvitationLink.appointment_id == appointment.id)):
        link.expires_on = _expires_on(appointment)
    audit.record(session, "appointment_updated", actor_id=actor_id, detail=f"appointment {appointment.uid} {source}",
                 commit=False)
    session.commit()
    return True


def cancel(session: Session, appointment: Appointment, *, actor_id: int | None = None) -> bool:
    """Cancel an appointment: its links stop working and no reminder follows. Return False if it already was."""
    if appointment.cancelled_at is not None:
        return False
    appointment.cancelled_at = utcnow()
    audit.record(session, "appointment_cancelled", actor_id=actor_id, detail=f"appointment {appointment.uid}",
                 commit=False)
    session.commit()
    return True


# -- invitations ------------------------------------------------------------------------------


def _expires_on(appointment: Appointment) -> dt.date:
    return appointment.appointment_date + dt.timedelta(days=int(current_app.config["INVITATION_GRACE_DAYS"]))


def new_link(session: Session, appointment: Appointment, purpose: str) -> str:
    """Store a new link for ``appointment`` (only its hash); return the URL to send. No commit."""
    token = secrets.token_urlsafe(32)
    session.add(InvitationLink(appointment_id=appointment.id, token_hash=_hash(token), purpose=purpose,
                               expires_on=_expires_on(appointment)))
    return link_url(token)


def link_url(token: str) -> str:
    """Return the full URL of an invitation link (on SCREENING_BASE_URL, for emails)."""
    return mail.link("invitation.follow", token=token)


def invite(session: Session, appointment: Appointment, purpose: str) -> bool:
    """Queue an invitation (or reminder) email with a new link; False when the client has no email. No commit."""
    if not appointment.client_email:
        return False
    url = new_link(session, appointment, purpose)
    message = mail.compose(purpose if purpose in ("invitation", "reminder") else "invitation",
                           to=appointment.client_email, link=url, appointment=appointment_facts(appointment),
                           valid_until=_expires_on(appointment))
    mail.queue(session, message, kind=purpose, appointment_id=appointment.id)
    return True


def resend(session: Session, appointment: Appointment, *, actor_id: int) -> bool:
    """Send the invitation again with a new link (the old ones keep working)."""
    sent = invite(session, appointment, "resend")
    if sent:
        audit.record(session, "invitation_resent", actor_id=actor_id, detail=f"appointment {appointment.uid}",
                     commit=False)
        session.commit()
    return sent


def copy_link(session: Session, appointment: Appointment, *, actor_id: int) -> str:
    """Return a new link for the desk to send another way (text message, in person)."""
    url = new_link(session, appointment, "copied")
    audit.record(session, "invitation_link_copied", actor_id=actor_id, detail=f"appointment {appointment.uid}",
                 commit=False)
    session.commit()
    return url


@dataclass(frozen=True)
class Opened:
    """What an invitation link leads to: ``state`` is ok, locked, sent or gone (unknown, expired, cancelled)."""

    state: str
    appointment: Appointment | None = None
    link_id: int | None = None


def open_link(session: Session, token: str, today: dt.date) -> Opened:
    """Return where the link ``token`` stands. Unknown, expired and cancelled links are all just "gone"."""
    if not token or len(token) > 100:
        return Opened("gone")
    link = session.scalar(select(InvitationLink).where(InvitationLink.token_hash == _hash(token)))
    return _state(session, link, today)


def open_link_id(session: Session, link_id: int | None, today: dt.date) -> Opened:
    """As ``open_link``, for the link id kept in the client's session after the first visit."""
    link = session.get(InvitationLink, link_id) if isinstance(link_id, int) else None
    return _state(session, link, today)


def _state(session: Session, link: InvitationLink | None, today: dt.date) -> Opened:
    if link is None:
        return Opened("gone")
    appointment = session.get(Appointment, link.appointment_id)
    if appointment.submission_id is not None:
        if appointment.cancelled_at is None and link.expires_on >= today and appointment.locked_at is None:
            after = clients.after_sending(session, appointment, today)
            if after is not None:  # the day's confirmation, or an out-of-date screening to do again
                return Opened(after, appointment, link.id)
        return Opened("sent", appointment, link.id)
    if appointment.cancelled_at is not None or link.expires_on < today:
        return Opened("gone")
    if appointment.locked_at is not None:
        return Opened("locked", appointment, link.id)
    return Opened("ok", appointment, link.id)


def check_dob(session: Session, appointment: Appointment, dob: dt.date) -> bool:
    """Whether ``dob`` is the client's; a wrong one counts, and MAX_DOB_TRIES wrong ones lock the appointment's
    links (the desk sees it and can unlock)."""
    if dob.isoformat() == appointment.client_dob:
        return True
    appointment.dob_failures += 1
    if appointment.dob_failures >= MAX_DOB_TRIES:
        appointment.locked_at = utcnow()
    session.commit()
    return False


def unlock(session: Session, appointment: Appointment, *, actor_id: int) -> None:
    """Let the client try their date of birth again (the desk has checked who they are)."""
    appointment.locked_at = None
    appointment.dob_failures = 0
    audit.record(session, "appointment_updated", actor_id=actor_id, detail=f"appointment {appointment.uid} unlocked",
                 commit=False)
    session.commit()


def booking_answers(appointment: Appointment) -> dict:
    """Return the questionnaire's answers the booking already knows (the client confirms or corrects them)."""
    answers = {"full_name": appointment.client_name, "dob": appointment.client_dob,
               "appointment_date": appointment.appointment_date.isoformat(),
               "treatment_variant": appointment.treatment_variant, "treatment_areas": appointment.areas}
    if appointment.client_email:
        answers["email"] = appointment.client_email
    if appointment.client_phone:
        answers["phone"] = appointment.client_phone
    return answers


def start_screening(session: Session, appointment: Appointment, lifetime: dt.timedelta) -> str:
    """Start (or restart) the appointment's questionnaire with the booking's facts; return the draft's token."""
    if appointment.draft_id is not None:
        old = session.get(Draft, appointment.draft_id)
        if old is not None:
            session.delete(old)
    draft, token = screening_services.start_draft(session, lifetime)
    draft.answers = booking_answers(appointment)
    if appointment.client_id is None:
        clients.link_appointment(session, appointment)
    clients.prefill(session, draft, appointment.client_id)  # a returning client: last time's lasting answers
    appointment.draft_id = draft.id
    appointment.opened_at = appointment.opened_at or utcnow()
    appointment.dob_failures = 0
    session.commit()
    return token


def resume_screening(session: Session, appointment: Appointment) -> bool:
    """Whether the appointment's draft is still there to go on with."""
    return appointment.draft_id is not None and session.get(Draft, appointment.draft_id) is not None


def disputed(session: Session, appointment: Appointment) -> None:
    """Record that the client said the booking's facts are wrong (they correct them in the questionnaire)."""
    marks = set(filter(None, appointment.mismatch.split(",")))
    marks.add("client")
    appointment.mismatch = ",".join(sorted(marks))
    session.commit()


def appointment_facts(appointment: Appointment) -> dict:
    """Return what an email or page may say about the appointment: when and what, never the client's answers."""
    return {"date": appointment.appointment_date, "time": appointment.appointment_time,
            "treatment": TREATMENTS.get(appointment.treatment_variant, appointment.treatment_variant),
            "areas": [qd.AREA_LABELS.get(a, a) for a in appointment.areas]}


# -- the screening arrives ---------------------------------------------------------------------


def differences(appointment: Appointment, answers: dict) -> list[str]:
    """Return the booking facts the client's answers differ from (name as people read it)."""
    out = []
    if name_key(answers.get("full_name", "")) != name_key(appointment.client_name):
        out.append("name")
    if answers.get("dob") != appointment.client_dob:
        out.append("date_of_birth")
    if answers.get("appointment_date") != appointment.appointment_date.isoformat():
        out.append("date")
    if answers.get("treatment_variant") != appointment.treatment_variant:
        out.append("treatment")
    if sorted(answers.get("treatment_areas") or []) != sorted(appointment.areas):
        out.append("areas")
    return out


def on_submitted(session: Session, *, draft: Draft, submission: Submission, answers: dict) -> None:
    """Attach a screening started from an invitation to its appointment and queue its emails (no commit)."""
    appointment = session.scalar(select(Appointment).where(Appointment.draft_id == draft.id))
    if appointment is None:
        return
    attach(session, appointment, submission, answers)


def attach(session: Session, appointment: Appointment, submission: Submission, answers: dict) -> None:
    """Link ``submission`` to ``appointment``; queue the client's confirmation and the practitioners' notice."""
    appointment.submission_id = submission.id
    appointment.draft_id = None
    submission.client_id = appointment.client_id
    marks = set(filter(None, appointment.mismatch.split(","))) | set(differences(appointment, answers))
    appointment.mismatch = ",".join(sorted(marks))
    if appointment.client_email:
        message = mail.compose("confirmation", to=appointment.client_email, reference=submission.reference,
                               appointment=appointment_facts(appointment))
        mail.queue(session, message, kind="confirmation", appointment_id=appointment.id)
    if submission.outcome != "CLEAR":
        for email in practitioner_emails(session, appointment):
            mail.queue(session, mail.compose("practitioner", to=email, link=staff_link()), kind="practitioner",
                       appointment_id=appointment.id)


def practitioner_emails(session: Session, appointment: Appointment) -> list[str]:
    """Return who hears that a screening needs a practitioner: the appointment's, or every active one."""
    if appointment.practitioner_id is not None:
        user = session.get(StaffUser, appointment.practitioner_id)
        if user is not None and user.is_active:
            return [user.email]
    rows = session.execute(select(StaffUser.email, StaffUser.roles).where(StaffUser.is_active))
    return sorted(email for email, roles in rows if "practitioner" in roles.split(","))


def staff_link() -> str:
    """Return the staff sign-in page's full URL (the practitioner's email carries no name and no outcome)."""
    return mail.link("staff.login")


def attach_walk_in(session: Session, appointment: Appointment, reference: str, *, actor_id: int) -> None:
    """Attach a screening sent from the clinic's public link (a walk-in) to ``appointment``."""
    submission = screening_services.find_submission(session, reference)
    if session.scalar(select(Appointment.id).where(Appointment.submission_id == submission.id)) is not None:
        raise ValueError("That screening is attached to another appointment already")
    appointment.submission_id = submission.id
    submission.client_id = submission.client_id or appointment.client_id
    appointment.mismatch = ",".join(sorted(set(filter(None, appointment.mismatch.split(",")))
                                           | set(differences(appointment, submission.answers))))
    audit.record(session, "screening_attached", actor_id=actor_id, submission_id=submission.id,
                 detail=f"appointment {appointment.uid}", commit=False)
    session.commit()


# -- the desk's day ---------------------------------------------------------------------------

STATUS_LABELS = {
    "cancelled": "Cancelled", "no_email": "No email address", "not_delivered": "Invitation not delivered",
    "invited": "Invited", "locked": "Link locked", "opened": "Opened", "in_progress": "In progress",
    "screened": "Screened", "needs_practitioner": "Needs practitioner", "arrived": "Arrived",
    "signed_off": "Signed off",
}
NOT_YET_SCREENED = {"no_email", "not_delivered", "invited", "locked", "opened", "in_progress"}


@dataclass(frozen=True)
class DayRow:
    """One appointment on the desk's day: who, when, what, where the screening stands. No answers, no flags."""

    uid: str
    date: dt.date
    time: dt.time
    name: str
    dob: str
    treatment: str
    status: str
    reference: str | None
    mismatch: tuple[str, ...]
    mail_problem: str
    readable: bool = True
    on_the_day: str = ""  # the day-of-treatment confirmation (clients.services.day_state): to_confirm, confirmed, ...
    client_uid: str | None = None

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]


def _status(a, draft_answers: int, outcome: str | None, reviewed: bool, arrived: bool, mail_status: str) -> str:
    if a.cancelled_at is not None:
        return "cancelled"
    if a.submission_id is not None:
        if reviewed:
            return "signed_off"
        if arrived:
            return "arrived"
        return "screened" if outcome == "CLEAR" else "needs_practitioner"
    if a.locked_at is not None:
        return "locked"
    if a.draft_id is not None and draft_answers:
        return "in_progress"
    if a.opened_at is not None:
        return "opened"
    if mail_status == "failed":
        return "not_delivered"
    if not a.has_email:
        return "no_email"
    return "invited"


def day(session: Session, day: dt.date, *, query: str = "", not_screened: bool = False,
        uid: str | None = None) -> list[DayRow]:
    """Return the appointments on ``day`` (or, with ``query``, any day's that match a name or a date of birth;
    with ``uid``, that one appointment's row)."""
    stmt = (select(Appointment.id, Appointment.uid, Appointment.appointment_time, Appointment.appointment_date,
                   raw(Appointment.client_name), raw(Appointment.client_dob), raw(Appointment.client_email),
                   Appointment.treatment_variant, Appointment.cancelled_at, Appointment.submission_id,
                   Appointment.locked_at, Appointment.opened_at, Appointment.draft_id, Appointment.mismatch,
                   Submission.reference, Submission.outcome, Submission.on_the_day, Client.uid.label("client_uid"),
                   Review.id.label("review_id"),
                   Arrival.id.label("arrival_id"), Draft.updated_at, Draft.created_at)
            .outerjoin(Submission, Submission.id == Appointment.submission_id)
            .outerjoin(Review, Review.submission_id == Appointment.submission_id)
            .outerjoin(Arrival, Arrival.submission_id == Appointment.submission_id)
            .outerjoin(Draft, Draft.id == Appointment.draft_id)
            .outerjoin(Client, Client.id == Appointment.client_id)
            .order_by(Appointment.appointment_date, Appointment.appointment_time, Appointment.id))
    filters = [Appointment.uid == uid] if uid else search_filters(query)
    stmt = stmt.where(*filters) if filters else stmt.where(Appointment.appointment_date == day)
    rows = session.execute(stmt).all()
    failures = invitation_failures(session, [r.id for r in rows])
    out = []
    for r in rows:
        name, ok1 = open_row(Appointment.client_name, r.client_name_raw, r.id, r.uid)
        dob, ok2 = open_row(Appointment.client_dob, r.client_dob_raw, r.id, r.uid)
        email, ok3 = open_row(Appointment.client_email, r.client_email_raw, r.id, r.uid)
        progressed = r.updated_at is not None and r.created_at is not None and r.updated_at > r.created_at
        state = _Row(r.cancelled_at, r.submission_id, r.locked_at, r.opened_at, r.draft_id if r.updated_at else None,
                     bool(email))
        status = _status(state, progressed, r.outcome, r.review_id is not None, r.arrival_id is not None,
                         "failed" if r.id in failures else "")
        if not_screened and status not in NOT_YET_SCREENED:
            continue
        out.append(DayRow(uid=r.uid, date=r.appointment_date, time=r.appointment_time, name=name or "", dob=dob or "",
                          treatment=TREATMENTS.get(r.treatment_variant, r.treatment_variant), status=status,
                          reference=r.reference, mismatch=tuple(filter(None, r.mismatch.split(","))),
                          mail_problem=failures.get(r.id, ""), readable=ok1 and ok2 and ok3,
                          on_the_day="" if r.review_id else (r.on_the_day or ""), client_uid=r.client_uid))
    return out


INVITING = ("invitation", "reminder", "resend")  # the emails that carry a link


def invitation_failures(session: Session, appointment_ids: list[int]) -> dict[int, str]:
    """Return, for each appointment whose latest invitation email could not be delivered, the reason."""
    if not appointment_ids:
        return {}
    latest = (select(func.max(Outbox.id)).where(Outbox.appointment_id.in_(appointment_ids),
                                                Outbox.kind.in_(INVITING))
              .group_by(Outbox.appointment_id))
    rows = session.execute(select(Outbox.appointment_id, Outbox.last_error)
                           .where(Outbox.id.in_(latest), Outbox.status == "failed"))
    return {appointment_id: error or "unknown reason" for appointment_id, error in rows}


@dataclass(frozen=True)
class _Row:
    cancelled_at: dt.datetime | None
    submission_id: int | None
    locked_at: dt.datetime | None
    opened_at: dt.datetime | None
    draft_id: int | None
    has_email: bool


def search_filters(query: str) -> list:
    """Return the WHERE clauses for a search by name (words or word starts) or date of birth (YYYY-MM-DD)."""
    query = (query or "").strip()
    if not query:
        return []
    v = vault()
    try:
        return [Appointment.dob_index == v.dob_index(dt.date.fromisoformat(query).isoformat())]
    except ValueError:
        pass
    terms = v.name_query(query)
    if not terms:
        return [Appointment.id == -1]
    return [Appointment.name_index.contains(term) for term in terms]


def count_on(session: Session, day: dt.date) -> int:
    """Return how many appointments are booked on ``day`` (cancelled ones excluded)."""
    return session.scalar(select(func.count(Appointment.id)).where(Appointment.appointment_date == day,
                                                                  Appointment.cancelled_at.is_(None)))


def _on_draft_submitted(session: Session, *, draft: Draft, submission: Submission, answers: dict) -> None:
    on_submitted(session, draft=draft, submission=submission, answers=answers)


screening_services.draft_submitted.connect(_on_draft_submitted)


# -- reminders ---------------------------------------------------------------------------------


def invitation_held(today: dt.date, day: dt.date) -> bool:
    """Whether an appointment on ``day`` booked ``today`` can wait for the reminder schedule to send its first link:
    a reminder day (SCREENING_REMINDER_DAYS before it) is still to come. Otherwise the invitation goes at once."""
    return any(d > 0 and day - dt.timedelta(days=d) >= today for d in current_app.config["REMINDER_DAYS"])


def due_reminders(session: Session, today: dt.date) -> list[tuple[int, int]]:
    """Return (appointment id, days before) of every reminder due today and not yet queued."""
    days = [d for d in current_app.config["REMINDER_DAYS"] if d > 0]
    if not days:
        return []
    dates = {today + dt.timedelta(days=d): d for d in days}
    rows = session.execute(select(Appointment.id, Appointment.appointment_date)
                           .where(Appointment.appointment_date.in_(list(dates)), Appointment.cancelled_at.is_(None),
                                  Appointment.submission_id.is_(None))
                           .order_by(Appointment.id)).all()
    sent = set(session.execute(select(ReminderSent.appointment_id, ReminderSent.days_before)
                               .where(ReminderSent.appointment_id.in_([r.id for r in rows]))).all()) if rows else set()
    return [(r.id, dates[r.appointment_date]) for r in rows if (r.id, dates[r.appointment_date]) not in sent]


def send_reminders(session: Session, today: dt.date) -> int:
    """Queue each reminder due today (SCREENING_REMINDER_DAYS before the appointment) until the screening is sent;
    return how many. Each is queued once, even with several workers running this at the same time."""
    queued = 0
    for appointment_id, days in due_reminders(session, today):
        # Locked until the commit, and read again: a submit that attached the screening first is seen (its
        # transaction is waited for), and one that comes second waits for this reminder to be queued. Without the
        # lock, a screening sent between this read and the commit still got its reminder, after its confirmation.
        appointment = session.get(Appointment, appointment_id, with_for_update=True, populate_existing=True)
        if appointment is None or appointment.submission_id is not None or appointment.cancelled_at is not None:
            continue
        session.add(ReminderSent(appointment_id=appointment_id, days_before=days))
        try:
            session.flush()  # the unique (appointment, days) row: a second worker stops here
        except IntegrityError:
            session.rollback()
            continue
        if appointment.client_email:
            # An invitation held for the schedule (the next session of a course): its first link is the invitation.
            first = session.scalar(select(InvitationLink.id).where(InvitationLink.appointment_id == appointment.id)
                                   .limit(1)) is None
            invite(session, appointment, "invitation" if first else "reminder")
        session.commit()
        queued += 1
    return queued


@tasks.periodic("reminders", crontab(minute="*/10"))
def _reminders_task() -> None:
    """In the worker, every ten minutes: queue the reminders due today."""
    from ..extensions import db

    try:
        send_reminders(db.session, clock.today())
    finally:
        db.session.remove()
