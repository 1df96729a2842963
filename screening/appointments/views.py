"""The staff side of appointments: the desk's day, a new appointment, one appointment, the CSV import."""

from __future__ import annotations

import datetime as dt

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import DateField, EmailField, SelectField, SelectMultipleField, StringField, TelField, TimeField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional
from wtforms.widgets import CheckboxInput, ListWidget

from ..errors import SubmissionNotFound
from ..questionnaire.forms import clean_text
from ..extensions import db
from ..staff.access import roles
from ..staff.desk import ACT_ROLES, VIEW_ROLES, today
from ..staff.views import bp
from . import csv_import, services
from .booking import AREAS, TREATMENTS, check_booking


class AppointmentForm(FlaskForm):
    """The desk's "New appointment" form: the same fields the CSV and the API take."""

    name = StringField("Client’s full name", validators=[Optional()])
    date_of_birth = DateField("Date of birth", validators=[Optional()])
    email = EmailField("Email address", validators=[Optional()],
                       description="The invitation is sent here. Without one, copy the link and send it another way.")
    phone = TelField("Phone number", validators=[Optional()])
    date = DateField("Appointment date", validators=[Optional()])
    time = TimeField("Time", validators=[Optional()])
    treatment = SelectField("Treatment", choices=[SelectChoice("", "Choose one")]
                            + [SelectChoice(k, v) for k, v in TREATMENTS.items()], validators=[Optional()])
    areas = SelectMultipleField("Areas", choices=[SelectChoice(k, v) for k, v in AREAS.items()],
                                validators=[Optional()],
                                widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())
    practitioner_email = SelectField("Practitioner", validators=[Optional()])
    external_id = StringField("Booking system reference (optional)", validators=[Optional()])


def _raw(form: AppointmentForm) -> dict:
    """Return the form's fields as the booking's raw fields (what the CSV and the API send, as text)."""
    def text(field) -> str:
        # A date or time the browser could not parse keeps its typed text, so that the message can say why.
        return (field.raw_data[0] if field.raw_data else "") or ""

    return {"name": text(form.name), "date_of_birth": text(form.date_of_birth), "email": text(form.email),
            "phone": text(form.phone), "date": text(form.date), "time": text(form.time),
            "treatment": text(form.treatment), "areas": form.areas.raw_data or [],
            "practitioner_email": text(form.practitioner_email), "external_id": text(form.external_id)}


def _appointment_or_404(uid: str):
    appointment = services.by_uid(db.session, uid)
    if appointment is None:
        abort(404)
    return appointment


@bp.get("/appointments")
@roles(*VIEW_ROLES)
def appointments():
    """The desk's day: every appointment on a day with where its screening stands; search; not yet screened."""
    try:
        day = dt.date.fromisoformat(request.args.get("day", "")) if request.args.get("day") else today()
    except ValueError:
        day = today()
    query = request.args.get("q", "").strip()[:100]
    not_screened = request.args.get("not_screened") == "1"
    rows = services.day(db.session, day, query=query, not_screened=not_screened)
    return render_template("appointments/day.html", rows=rows, day=day, query=query, not_screened=not_screened,
                           previous=day - dt.timedelta(days=1), following=day + dt.timedelta(days=1),
                           can_act=g.staff.has_role(*ACT_ROLES), form=FlaskForm())


@bp.route("/appointments/new", methods=["GET", "POST"])
@roles(*ACT_ROLES)
def new_appointment():
    """Book an appointment: the client is emailed an invitation at once."""
    practitioners = services.practitioners(db.session)
    form = AppointmentForm()
    form.practitioner_email.choices = ([SelectChoice("", "Any practitioner")]
                                       + [SelectChoice(e, e) for e in sorted(practitioners)])
    errors: dict[str, str] = {}
    if request.method == "POST":
        if not form.validate() and "csrf_token" in form.errors:
            abort(400)
        booking, errors = check_booking(_raw(form), today=today(), practitioners=practitioners)
        if booking is not None:
            try:
                appointment, _created = services.book(db.session, booking, source=f"desk:{g.staff.id}",
                                                      actor_id=g.staff.id)
            except services.BookingConflict:
                errors = {"external_id": "Booking system reference is used by another appointment"}
            else:
                flash("Appointment booked." + (" The invitation is on its way." if booking.email else
                                               " There is no email address: copy the link and send it another way."))
                return redirect(url_for(".appointment", uid=appointment.uid), code=303)
    summary = [(f"{key}-0" if key == "areas" else key, message) for key, message in errors.items()]
    return render_template("appointments/new.html", form=form, errors=errors, summary=summary), (400 if errors else 200)


@bp.get("/appointments/<uid>")
@roles(*VIEW_ROLES)
def appointment(uid: str):
    """One appointment: the booking, where the screening stands, and what the desk can do."""
    a = _appointment_or_404(uid)
    rows = services.day(db.session, a.appointment_date, uid=a.uid)
    return render_template("appointments/appointment.html", a=a, row=rows[0] if rows else None,
                           facts=services.appointment_facts(a), form=FlaskForm(), can_act=g.staff.has_role(*ACT_ROLES),
                           copied=None)


@bp.post("/appointments/<uid>/resend")
@roles(*ACT_ROLES)
def resend(uid: str):
    """Email the invitation again, with a new link."""
    a = _appointment_or_404(uid)
    if not FlaskForm().validate_on_submit():
        abort(400)
    if a.cancelled_at is None and a.submission_id is None and services.resend(db.session, a, actor_id=g.staff.id):
        flash("The invitation was sent again.")
    else:
        flash("Nothing was sent: the appointment is cancelled, already screened, or has no email address.")
    return redirect(url_for(".appointment", uid=uid), code=303)


@bp.post("/appointments/<uid>/link")
@roles(*ACT_ROLES)
def copy_link(uid: str):
    """Show a new link for the desk to send another way (it is shown once, never stored in clear)."""
    a = _appointment_or_404(uid)
    if not FlaskForm().validate_on_submit():
        abort(400)
    if a.cancelled_at is not None or a.submission_id is not None:
        abort(409)
    url = services.copy_link(db.session, a, actor_id=g.staff.id)
    rows = services.day(db.session, a.appointment_date, uid=a.uid)
    response = render_template("appointments/appointment.html", a=a, row=rows[0] if rows else None,
                               facts=services.appointment_facts(a), form=FlaskForm(), can_act=True, copied=url)
    return response, 200, {"Cache-Control": "no-store"}


@bp.post("/appointments/<uid>/unlock")
@roles(*ACT_ROLES)
def unlock(uid: str):
    """Let the client try their date of birth again."""
    a = _appointment_or_404(uid)
    if not FlaskForm().validate_on_submit():
        abort(400)
    services.unlock(db.session, a, actor_id=g.staff.id)
    flash("The link is unlocked.")
    return redirect(url_for(".appointment", uid=uid), code=303)


@bp.post("/appointments/<uid>/cancel")
@roles(*ACT_ROLES)
def cancel(uid: str):
    """Cancel the appointment: its links stop working and no reminder is sent."""
    a = _appointment_or_404(uid)
    if not FlaskForm().validate_on_submit():
        abort(400)
    services.cancel(db.session, a, actor_id=g.staff.id)
    flash("The appointment is cancelled.")
    return redirect(url_for(".appointment", uid=uid), code=303)


@bp.post("/appointments/<uid>/attach")
@roles(*ACT_ROLES)
def attach(uid: str):
    """Attach a screening sent without the invitation (a walk-in, the public link) by its reference."""
    a = _appointment_or_404(uid)
    if not FlaskForm().validate_on_submit():
        abort(400)
    reference = request.form.get("reference", "")[:20]
    try:
        if a.submission_id is not None:
            raise ValueError("This appointment has a screening already")
        services.attach_walk_in(db.session, a, reference, actor_id=g.staff.id)
        flash("The screening is attached.")
    except SubmissionNotFound:
        flash("No screening has that reference. Check it against the client’s confirmation.", "error")
    except ValueError as exc:
        flash(str(exc), "error")
    return redirect(url_for(".appointment", uid=uid), code=303)


class ImportForm(FlaskForm):
    """A CSV file from the clinic's booking system."""

    file = FileField("CSV file")


@bp.route("/appointments/import", methods=["GET", "POST"])
@roles(*ACT_ROLES)
def import_csv():
    """Import appointments from a CSV file: all or nothing; every problem listed by line and column."""
    form = ImportForm()
    problems: list[csv_import.Problem] = []
    if request.method == "POST":
        if not form.validate() and "csrf_token" in form.errors:
            abort(400)
        upload = form.file.data
        data = upload.read(csv_import.MAX_BYTES + 1) if upload else b""
        result = csv_import.import_bytes(db.session, data, today=today(), source=f"csv:{g.staff.id}",
                                         actor_id=g.staff.id)
        if result.problems:
            problems = result.problems
        else:
            flash(f"Imported {result.created} appointment(s); {result.unchanged} were already there.")
            return redirect(url_for(".appointments"), code=303)
    return render_template("appointments/import.html", form=form, problems=problems,
                           columns=csv_import.COLUMNS), (400 if problems else 200)


# -- the API's tokens (admins) ------------------------------------------------------------------------


def _tokens_page(created: str | None = None, error: str = "", status: int = 200):
    from sqlalchemy import select

    from .models import ApiToken

    tokens = db.session.scalars(select(ApiToken).order_by(ApiToken.revoked_at.is_not(None), ApiToken.name)).all()
    response = render_template("appointments/api_tokens.html", tokens=tokens, created=created, error=error,
                               summary=[("name", error)] if error else [], form=FlaskForm())
    return response, status, {"Cache-Control": "no-store"}


@bp.get("/admin/api-tokens")
@roles("admin")
def api_tokens():
    """The booking systems' tokens for the appointments API: create one (shown once), revoke one."""
    return _tokens_page()


@bp.post("/admin/api-tokens")
@roles("admin")
def create_api_token():
    """Create a token for a booking system and show it once."""
    from sqlalchemy import select

    from .api import create_token
    from .models import ApiToken

    if not FlaskForm().validate_on_submit():
        abort(400)
    name = clean_text(request.form.get("name", ""))[:61]
    if not name or len(name) > 60:
        return _tokens_page(error="Enter the booking system’s name, 60 characters or fewer", status=400)
    if db.session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        return _tokens_page(error="A token has that name already: choose another name", status=400)
    return _tokens_page(created=create_token(db.session, name, actor_id=g.staff.id))


@bp.post("/admin/api-tokens/revoke")
@roles("admin")
def revoke_api_token():
    """Revoke a booking system's token: its requests are refused from now on."""
    from .api import revoke_token

    if not FlaskForm().validate_on_submit():
        abort(400)
    name = request.form.get("name", "")[:60]
    # Names are stored as typed text is (clean_text): one that cleaning would change names no token, and must not
    # revoke the token it would become. Nor may it reach PostgreSQL (a NUL is an error there).
    if name and name == clean_text(name) and revoke_token(db.session, name, actor_id=g.staff.id):
        flash(f"The token for {name} is revoked.")
    return redirect(url_for(".api_tokens"), code=303)
