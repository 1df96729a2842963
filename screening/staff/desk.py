"""The intake desk: today's clients, arrivals, PDFs to print, and turning a tablet into a kiosk."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

from flask import abort, current_app, g, redirect, render_template, request, send_file, session, url_for
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import audit, clock, kiosk, services
from .. import questions as qd
from ..crypto import VaultError, binding, open_row, raw
from ..errors import SubmissionNotFound
from ..extensions import db
from ..models import Arrival, Draft, Review, StaffUser, Submission
from .access import roles
from .views import bp

# Practitioners may look at the desk list and open the full PDF from it; only the desk (and admins) act on it.
VIEW_ROLES = ("desk", "admin", "practitioner")
ACT_ROLES = ("desk", "admin")


def today() -> dt.date:
    """Return the clinic's today (SCREENING_TIME_ZONE: the same clock as the appointment dates)."""
    return clock.today()


# -- reads and use cases ---------------------------------------------------------------


@dataclass(frozen=True)
class DeskRow:
    """One client expected today, as the desk sees them: no answers and no outcome."""

    reference: str
    name: str
    submitted_at: dt.datetime
    arrived_at: dt.datetime | None
    readable: bool = True  # False: the row will not decrypt with the configured keys (shown as such, alone)
    pdf_ready: bool = True  # False: the PDF is still being rendered ("PDF pending")
    on_the_day: str = ""  # the day-of-treatment confirmation: to_confirm, confirmed, redo or not_needed
    signed_off: bool = False


def todays_clients(session: Session, day: dt.date) -> list[DeskRow]:
    """Return the clients whose appointment is on ``day``, earliest submission first."""
    rows = session.execute(
        select(Submission.id, Submission.reference, raw(Submission.answers), Submission.submitted_at, Arrival.at,
               Submission.pdf_hmac.is_not(None), Submission.outcome, Submission.on_the_day, Review.id)
        .outerjoin(Arrival, Arrival.submission_id == Submission.id)
        .outerjoin(Review, Review.submission_id == Submission.id)
        .where(Submission.appointment_date == day)
        .order_by(Submission.submitted_at, Submission.id)
    )
    out = []
    for submission_id, reference, sealed, submitted_at, arrived_at, pdf_ready, outcome, on_the_day, review in rows:
        # The outcome is read only to check the row's binding (crypto.binding); the desk never shows it.
        answers, readable = open_row(Submission.answers, sealed, submission_id,
                                     binding("submission", {"reference": reference, "outcome": outcome}))
        out.append(DeskRow(reference, (answers or {}).get("full_name", ""), submitted_at, arrived_at, readable,
                           bool(pdf_ready), on_the_day or "", review is not None))
    return out


def find_todays(session: Session, reference: str, day: dt.date) -> Submission:
    """Return today's submission with ``reference``; raise SubmissionNotFound for any other."""
    # The desk works from today's list only: a reference for another day answers exactly like an unknown one.
    submission = services.find_submission(session, reference)
    if submission.appointment_date != day:
        raise SubmissionNotFound()
    return submission


def mark_arrived(session: Session, submission: Submission, by: StaffUser, address: str) -> bool:
    """Record that the client has arrived; return False when they were marked already."""
    if session.scalar(select(Arrival.id).where(Arrival.submission_id == submission.id)) is not None:
        return False
    session.add(Arrival(submission_id=submission.id, by_id=by.id))
    audit.record(session, "mark_arrived", actor_id=by.id, submission_id=submission.id, address=address,
                 commit=False)
    try:
        session.commit()
    except IntegrityError:  # a second click raced the first: the unique submission_id kept one row
        session.rollback()
        return False
    return True


def undo_arrival(session: Session, submission: Submission, by: StaffUser, address: str) -> bool:
    """Take back a "Mark arrived" made by mistake (audited); return False when there was none."""
    row = session.scalar(select(Arrival).where(Arrival.submission_id == submission.id))
    if row is None:
        return False
    session.delete(row)
    audit.record(session, "arrival_undone", actor_id=by.id, submission_id=submission.id, address=address,
                 commit=False)
    session.commit()
    return True


def pdf_to_print(session: Session, submission: Submission, clinic: dict, by: StaffUser, address: str) -> bytes:
    """Return the submission's PDF (rendered first if missing) and record that the desk opened it."""
    data = services.ensure_pdf(session, submission, clinic)
    audit.record(session, "print_pdf", actor_id=by.id, submission_id=submission.id, address=address)
    return data


def may_open_full_pdf(user: StaffUser) -> bool:
    """Whether ``user`` may open the practitioner's full PDF from the desk (answers, outcome, flags).

    Practitioners may. Desk staff and admins only when the clinic has turned SCREENING_DESK_FULL_PDF on (and the
    client-facing pages then say so): least privilege, the desk otherwise prints the desk sheet.
    """
    return user.has_role("practitioner") or bool(current_app.config["DESK_FULL_PDF"])


@dataclass(frozen=True)
class DeskSheet:
    """What the desk prints for an appointment: who, when, and where the screening stands. No health data:
    no answers, no outcome, no flags, no decision."""

    reference: str
    name: str
    dob: str | None
    appointment_date: dt.date
    submitted_at: dt.datetime
    signed_off: bool
    arrived_at: dt.datetime | None


def desk_sheet(session: Session, reference: str, day: dt.date, by: StaffUser, address: str) -> DeskSheet:
    """Return today's desk sheet for ``reference`` and audit it; raise SubmissionNotFound, or VaultError for a row
    that will not decrypt."""
    row = session.execute(
        select(Submission.id, Submission.reference, raw(Submission.answers), Submission.appointment_date,
               Submission.submitted_at, Review.id.label("review_id"), Arrival.at.label("arrived_at"),
               Submission.outcome)
        .outerjoin(Review, Review.submission_id == Submission.id)
        .outerjoin(Arrival, Arrival.submission_id == Submission.id)
        .where(Submission.reference == services.normalise_reference(reference))
    ).first()
    if row is None or row.appointment_date != day:
        raise SubmissionNotFound()
    answers, readable = open_row(Submission.answers, row.answers_raw, row.id,
                                 binding("submission", {"reference": row.reference, "outcome": row.outcome}))
    if not readable:
        raise VaultError("this record cannot be decrypted with the configured keys")
    audit.record(session, "print_desk_sheet", actor_id=by.id, submission_id=row.id, address=address)
    return DeskSheet(reference=row.reference, name=answers.get("full_name", ""), dob=answers.get("dob"),
                     appointment_date=row.appointment_date, submitted_at=row.submitted_at,
                     signed_off=row.review_id is not None, arrived_at=row.arrived_at)


# -- views ---------------------------------------------------------------------------------


def _todays_or_404(reference: str) -> Submission:
    try:
        return find_todays(db.session, reference, today())
    except SubmissionNotFound:
        abort(404)


@bp.errorhandler(VaultError)
def unreadable(exc):
    """A record that will not decrypt with the configured keys: say so; the log has the row id (open_row), never data."""
    current_app.logger.error("a staff page met a record that cannot be decrypted (%s)", request.endpoint)
    return render_template("errors/error.html", title=_("This record cannot be read"),
                           paragraphs=[_("It will not decrypt with the keys the app is configured with. "
                                         "Tell the person who manages the keys; the rest of the records are not affected.")],
                           back=url_for(".home"), back_text=_("Back to the staff home page")), 500


@bp.get("/desk")
@roles(*VIEW_ROLES)
def desk():
    """List today's clients with their arrival and a PDF link."""
    # The outcome (DO NOT TREAT, DEFER, ...) is health information the desk does not need to do its job: it
    # greets clients, marks arrivals and prints the PDF for the practitioner, who reads the outcome and talks
    # it through with the client. So the desk sees only that the screening was received.
    return render_template("staff/desk.html", clients=todays_clients(db.session, today()), day=today(),
                           form=FlaskForm(), can_act=g.staff.has_role(*ACT_ROLES), kiosk_idle=kiosk.idle_words(),
                           full_pdf=may_open_full_pdf(g.staff))


@bp.post("/desk/<reference>/arrived")
@roles(*ACT_ROLES)
def arrived(reference: str):
    """Mark a client as arrived (a second click changes nothing)."""
    submission = _todays_or_404(reference)
    mark_arrived(db.session, submission, g.staff, request.remote_addr or "")
    return redirect(url_for(".desk") + f"#client-{submission.reference}")


@bp.post("/desk/<reference>/not-arrived")
@roles(*ACT_ROLES)
def not_arrived(reference: str):
    """Undo "Mark arrived" (a mis-click, or the wrong client)."""
    submission = _todays_or_404(reference)
    undo_arrival(db.session, submission, g.staff, request.remote_addr or "")
    return redirect(url_for(".desk") + f"#client-{submission.reference}")


@bp.post("/desk/<reference>/confirm-here")
@roles(*ACT_ROLES)
def confirm_here(reference: str):
    """Hand this tablet to the client to confirm their answers about now: kiosk mode, on that confirmation."""
    from ..clients import dayof
    from ..clients import services as clients

    submission = _todays_or_404(reference)
    if clients.still_needed(db.session, submission) != "confirm":
        abort(409)
    check = clients.open_check(db.session, submission, "kiosk")
    _become_kiosk()
    dayof.begin(check.uid)
    return redirect(url_for("dayof.confirm"))


@bp.post("/desk/<reference>/redo-here")
@roles(*ACT_ROLES)
def redo_here(reference: str):
    """Hand this tablet to a client whose screening is out of date: the questionnaire again, in kiosk mode,
    prefilled with their lasting answers and tied to their appointment."""
    from ..appointments import services as appointments
    from ..appointments.models import Appointment
    from ..clients import services as clients

    submission = _todays_or_404(reference)
    appointment = db.session.scalar(select(Appointment).where(Appointment.submission_id == submission.id))
    if appointment is None or clients.still_needed(db.session, submission) != "redo":
        abort(409)
    draft_token = appointments.start_screening(db.session, appointment, current_app.config["DRAFT_LIFETIME"])
    _become_kiosk()
    session["draft"] = draft_token
    draft = db.session.get(Draft, appointment.draft_id)
    return redirect(url_for("questionnaire.page", page_id=services.next_page(draft) or qd.PAGES[0].id))


@bp.get("/desk/<reference>/sheet")
@roles(*VIEW_ROLES)
def desk_sheet_page(reference: str):
    """Show today's desk sheet for a client, to print: no health data."""
    try:
        sheet = desk_sheet(db.session, reference, today(), g.staff, request.remote_addr or "")
    except SubmissionNotFound:
        abort(404)
    return render_template("staff/desk_sheet.html", sheet=sheet)


@bp.get("/desk/<reference>/pdf")
@roles(*VIEW_ROLES)
def desk_pdf(reference: str):
    """Open a client's full PDF in the browser: practitioners, or the desk where the clinic allows it."""
    if not may_open_full_pdf(g.staff):
        abort(403)
    submission = _todays_or_404(reference)
    data = pdf_to_print(db.session, submission, current_app.config["CLINIC"], g.staff, request.remote_addr or "")
    response = send_file(io.BytesIO(data), mimetype="application/pdf", as_attachment=False,
                         download_name=f"screening-{submission.reference}.pdf")
    response.headers["Cache-Control"] = "no-store"  # send_file sets its own caching; this is health data
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.post("/kiosk/start")
@roles(*ACT_ROLES)
def kiosk_start():
    """Turn this device into a kiosk for clients: staff are signed out on it until kiosk mode ends."""
    _become_kiosk()
    return redirect(url_for("questionnaire.start"))


def _become_kiosk() -> None:
    """Make this browser a kiosk: its staff session ends, and its cookie keeps only the kiosk's token."""
    token = kiosk.start(db.session, g.staff, g.staff_session, request.remote_addr or "")
    session.clear()
    session.permanent = True
    session["kiosk"] = token
