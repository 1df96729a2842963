"""The intake desk: today's clients, arrivals, PDFs to print, and turning a tablet into a kiosk."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

from flask import abort, current_app, g, redirect, render_template, request, send_file, session, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import audit, kiosk, services
from ..errors import SubmissionNotFound
from ..extensions import db
from ..models import Arrival, StaffUser, Submission
from .access import roles
from .views import bp

# Practitioners may look at the desk list and open a PDF from it; only the desk (and admins) act on it.
VIEW_ROLES = ("desk", "admin", "practitioner")
ACT_ROLES = ("desk", "admin")


def today() -> dt.date:
    """Return the clinic's today (the same clock as the questionnaire's appointment dates)."""
    return dt.date.today()


# -- reads and use cases ---------------------------------------------------------------


@dataclass(frozen=True)
class DeskRow:
    """One client expected today, as the desk sees them: no answers and no outcome."""

    reference: str
    name: str
    submitted_at: dt.datetime
    arrived_at: dt.datetime | None


def todays_clients(session: Session, day: dt.date) -> list[DeskRow]:
    """Return the clients whose appointment is on ``day``, earliest submission first."""
    rows = session.execute(
        select(Submission.reference, Submission.answers, Submission.submitted_at, Arrival.at)
        .outerjoin(Arrival, Arrival.submission_id == Submission.id)
        .where(Submission.appointment_date == day)
        .order_by(Submission.submitted_at, Submission.id)
    )
    return [DeskRow(reference, (answers or {}).get("full_name", ""), submitted_at, arrived_at)
            for reference, answers, submitted_at, arrived_at in rows]


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


def pdf_to_print(session: Session, submission: Submission, clinic: dict, by: StaffUser, address: str) -> bytes:
    """Return the submission's PDF (rendered first if missing) and record that the desk opened it."""
    data = services.ensure_pdf(session, submission, clinic)
    audit.record(session, "print_pdf", actor_id=by.id, submission_id=submission.id, address=address)
    return data


# -- views ---------------------------------------------------------------------------------


def _todays_or_404(reference: str) -> Submission:
    try:
        return find_todays(db.session, reference, today())
    except SubmissionNotFound:
        abort(404)


@bp.get("/desk")
@roles(*VIEW_ROLES)
def desk():
    """List today's clients with their arrival and a PDF link."""
    # The outcome (DO NOT TREAT, DEFER, ...) is health information the desk does not need to do its job: it
    # greets clients, marks arrivals and prints the PDF for the practitioner, who reads the outcome and talks
    # it through with the client. So the desk sees only that the screening was received.
    return render_template("staff/desk.html", clients=todays_clients(db.session, today()), day=today(),
                           form=FlaskForm(), can_act=g.staff.has_role(*ACT_ROLES), kiosk_idle=kiosk.idle_words())


@bp.post("/desk/<reference>/arrived")
@roles(*ACT_ROLES)
def arrived(reference: str):
    """Mark a client as arrived (a second click changes nothing)."""
    submission = _todays_or_404(reference)
    mark_arrived(db.session, submission, g.staff, request.remote_addr or "")
    return redirect(url_for(".desk") + f"#client-{submission.reference}")


@bp.get("/desk/<reference>/pdf")
@roles(*VIEW_ROLES)
def desk_pdf(reference: str):
    """Open a client's PDF in the browser, to print for the practitioner."""
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
    token = kiosk.start(db.session, g.staff, g.staff_session, request.remote_addr or "")
    session.clear()
    session.permanent = True
    session["kiosk"] = token
    return redirect(url_for("questionnaire.start"))
