"""The client's side of an invitation: open the link, prove the date of birth, check the booking, then the
questionnaire with the booking's facts filled in.

The link's token is in the URL only on the first request: it is swapped at once for the link's id in the
signed session cookie and the browser is sent to a URL without it (so it is not in the history, a Referer or a
later log line). Unknown, expired and cancelled links answer with the same page, byte for byte.
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, current_app, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from wtforms import FormField, RadioField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional

from .. import clock
from .. import questions as qd
from .. import services as screening_services
from ..extensions import db, limiter
from ..clients import dayof
from ..clients import services as clients
from ..models import Draft, Submission
from ..questionnaire.forms import _date_form, _read_date, error_href
from . import services
from .services import MAX_DOB_TRIES

bp = Blueprint("invitation", __name__)
DOB = qd.BY_ID["dob"]


def _today() -> dt.date:
    return clock.today()  # the clinic's today (SCREENING_TIME_ZONE)


class DobForm(FlaskForm):
    """The client's date of birth, asked before anything of the booking is shown."""

    dob = FormField(_date_form(DOB), label=DOB.label)


class BookingForm(FlaskForm):
    """Whether the booking's facts are right."""

    facts = RadioField(choices=[SelectChoice("right", "Yes, these are right"),
                                SelectChoice("wrong", "No, something is wrong")],
                       validators=[Optional()])


def _gone():
    # The same bytes for an unknown, an expired and a cancelled link: the page says what to do next.
    return render_template("appointments/link_gone.html"), 404


def _opened() -> services.Opened:
    return services.open_link_id(db.session, session.get("invitation"), _today())


@bp.get("/i/<token>")
@limiter.limit("30 per minute")
def follow(token: str):
    """Swap the link's token for its id in the session, then show the page without the token in the URL."""
    opened = services.open_link(db.session, token, _today())
    if opened.state == "gone":
        session.pop("invitation", None)
        return _gone()
    for key in ("draft", "reference", "invitation_passed"):  # another client's questionnaire stays out of this one
        session.pop(key, None)
    session["invitation"] = opened.link_id
    return redirect(url_for(".check_dob"), code=303)


@bp.route("/invitation", methods=["GET", "POST"])
def check_dob():
    """Ask for the date of birth; the right one starts the questionnaire, wrong ones lock the link."""
    opened = _opened()
    if opened.state == "gone":
        return _gone()
    if opened.state == "sent":
        return render_template("appointments/link_sent.html")
    if opened.state == "locked":
        return render_template("appointments/link_locked.html"), 403
    appointment = opened.appointment
    confirming = opened.state == "confirm"  # the appointment day: confirm the answers about now
    if (not confirming and session.get("invitation_passed") == opened.link_id
            and services.resume_screening(db.session, appointment)):
        return redirect(url_for(".booking"))
    form = DobForm()
    errors: dict[str, str] = {}
    if request.method == "POST":
        if not form.validate() and "csrf_token" in form.errors:
            abort(400)
        value, problem = _read_date(DOB, form.dob, _today())
        if problem or value is None or len(value) != 10:
            errors["dob"] = problem or _("Enter your date of birth")
        elif not services.check_dob(db.session, appointment, dt.date.fromisoformat(value)):
            if appointment.locked_at is not None:
                return render_template("appointments/link_locked.html"), 403
            left = MAX_DOB_TRIES - appointment.dob_failures
            errors["dob"] = _("That date of birth does not match the booking. Check it and try again "
                              "(%(n)s tries left before the link is locked)", n=left)
        elif confirming:
            submission = db.session.get(Submission, appointment.submission_id)
            dayof.begin(clients.open_check(db.session, submission, "link").uid)
            return redirect(url_for("dayof.confirm"), code=303)
        else:
            session["draft"] = services.start_screening(db.session, appointment, current_app.config["DRAFT_LIFETIME"])
            session["invitation_passed"] = opened.link_id
            return redirect(url_for(".booking"), code=303)
    summary = [(error_href(form, key), message) for key, message in errors.items()]
    return render_template("appointments/check_dob.html", form=form, q=DOB, errors=errors, summary=summary,
                           confirming=confirming), (400 if errors else 200)


@bp.route("/invitation/booking", methods=["GET", "POST"])
def booking():
    """Show the booking's facts; the client says whether they are right, then answers the health questions."""
    opened = _opened()
    if opened.state not in ("ok", "redo") or session.get("invitation_passed") != opened.link_id:
        return redirect(url_for(".check_dob"))
    appointment = opened.appointment
    if not services.resume_screening(db.session, appointment):
        session.pop("invitation_passed", None)
        return redirect(url_for(".check_dob"))
    form = BookingForm()
    errors: dict[str, str] = {}
    if request.method == "POST":
        if not form.validate() and "csrf_token" in form.errors:
            abort(400)
        if form.facts.data == "right":
            answers = services.booking_answers(appointment)
            draft = db.session.get(Draft, appointment.draft_id)
            following = screening_services.next_page(draft) or "pregnancy"
            if screening_services.eighteenth_birthday_after(answers):
                return redirect(url_for("questionnaire.under_18", next=following))
            return redirect(url_for("questionnaire.page", page_id=following))
        if form.facts.data == "wrong":
            services.disputed(db.session, appointment)
            return redirect(url_for("questionnaire.page", page_id="about-you"))
        errors["facts"] = _("Select yes if these details are right")
    summary = [("facts-0", errors["facts"])] if errors else []
    return render_template("appointments/check_booking.html", form=form, errors=errors, summary=summary,
                           facts=services.appointment_facts(appointment), name=appointment.client_name,
                           email=appointment.client_email, phone=appointment.client_phone), (400 if errors else 200)
