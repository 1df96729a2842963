"""The practitioner's pages: the submissions list, one submission, sign-off, addenda and the PDFs.

Views are thin: read the form, call one use case in ``review_services``, then redirect or render.
Desk staff have their own desk list; they may see none of these pages.
"""

from __future__ import annotations

import datetime as dt
import io

from flask import abort, current_app, flash, g, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_wtf import FlaskForm
from wtforms import Form, FormField, IntegerField, RadioField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import Length, Optional

from .. import clock
from .. import questions as qd
from ..display import OUTCOME_TEXT, SEVERITY_TEXT, format_date, parse_day
from ..errors import SubmissionNotFound
from ..extensions import db
from ..questionnaire.forms import MultiCheckboxField, error_href
from . import review_services as rs
from .access import roles
from .views import bp

# Least privilege: records (answers, outcome, flags, PDFs) are for practitioners. An admin reads them only if they
# are a practitioner too (the roles of one account add up); the admin role alone manages accounts and the audit trail.
READ_ROLES = ("practitioner",)
SIGN_ROLES = ("practitioner",)


def today() -> dt.date:
    """Return the clinic's today (SCREENING_TIME_ZONE: the same clock as the appointment dates)."""
    return clock.today()


def _clinic() -> dict:
    return current_app.config["CLINIC"]


def _address() -> str:
    return request.remote_addr or ""


# -- template helpers (usable by every page, e.g. staff/_outcome.html) ------------------------


@bp.app_template_global()
def outcome_text(outcome: str) -> str:
    """Return an outcome code in words (untranslated; templates translate)."""
    return OUTCOME_TEXT.get(outcome, outcome)


@bp.app_template_global()
def decision_text(decision: str) -> str:
    """Return a sign-off decision code in words (untranslated; templates translate)."""
    return rs.DECISION_TEXT.get(decision, decision)


@bp.app_template_filter("long_date")
def long_date(value) -> str:
    """Format a date (or YYYY-MM-DD) as 15 March 2027; nothing for None."""
    return format_date(value)


# -- forms ----------------------------------------------------------------------------------------


def spec(id: str, type: str, label: str, hint: str = "", text_kind: str = "") -> dict:
    """Describe a staff field for the shared ``field`` macro (it reads a question's id, type, label, hint)."""
    return {"id": id, "type": type, "label": label, "hint": hint, "why": "", "text_kind": text_kind}


class DateParts(Form):
    """Day, month and year boxes."""

    day = StringField(lazy_gettext("Day"), validators=[Optional(), Length(max=2)])
    month = StringField(lazy_gettext("Month"), validators=[Optional(), Length(max=2)])
    year = StringField(lazy_gettext("Year"), validators=[Optional(), Length(max=4)])


OUTCOME_CHOICES = [SelectChoice("", lazy_gettext("Any outcome"))] + [
    SelectChoice(code, lazy_gettext(OUTCOME_TEXT[code])) for code in rs.OUTCOMES]
STATUS_CHOICES = [SelectChoice("", lazy_gettext("Any status")),
                  SelectChoice("new", lazy_gettext("New (not signed off)")),
                  SelectChoice("signed_off", lazy_gettext("Signed off"))]


class FilterForm(FlaskForm):
    """The list's filters. They identify no one, so they travel in the query string (GET, no CSRF)."""

    class Meta:
        csrf = False

    date = StringField(validators=[Optional(), Length(max=20)])
    outcome = SelectField(choices=OUTCOME_CHOICES, validators=[Optional()])
    status = SelectField(choices=STATUS_CHOICES, validators=[Optional()])
    page = IntegerField(validators=[Optional()])


class SearchForm(FlaskForm):
    """Search by name, date of birth or reference: POSTed, so that none of it is in a URL or a log."""

    name = StringField(validators=[Optional(), Length(max=120)])
    birth_date = FormField(DateParts)
    reference = StringField(validators=[Optional(), Length(max=20)])
    page = IntegerField(validators=[Optional()])


FILTER_FIELDS = {
    "date": spec("date", "text", qd.N_("Appointment date"),
                 qd.N_("For example 24/11/2026. Leave it empty for any date.")),
    "outcome": spec("outcome", "single", qd.N_("Outcome")),
    "status": spec("status", "single", qd.N_("Review status")),
}
SEARCH_FIELDS = {
    "name": spec("name", "text", qd.N_("Name"), qd.N_("All or part of the client’s name")),
    "birth_date": spec("birth_date", "date", qd.N_("Date of birth"), qd.N_("For example 27 3 1990")),
    "reference": spec("reference", "text", qd.N_("Reference"), qd.N_("For example K7QM-4TXR")),
}

DECISION_CHOICES = [SelectChoice(code, lazy_gettext(rs.DECISION_TEXT[code])) for code in rs.DECISIONS]
ACK_CHOICE = [SelectChoice("yes", lazy_gettext("I have read this flag and taken it into account"))]
TREATED_CHOICES = [SelectChoice("treated", lazy_gettext("Treated today")),
                   SelectChoice("not_treated", lazy_gettext("Not treated"))]
TREATED_VARIANT_CHOICES = [SelectChoice(c.code, lazy_gettext(c.label))
                           for c in qd.BY_ID["last_microneedling"].field("variant").choices
                           if c.code in rs.TREATED_VARIANTS]
TREATED_AREA_CHOICES = [SelectChoice(c.code, lazy_gettext(c.label)) for c in qd.TREATMENT_AREA_CHOICES]
_SIGN_OFF_FORMS: dict[int, type[FlaskForm]] = {}


def sign_off_form_class(flag_count: int) -> type[FlaskForm]:
    """Return the sign-off form for a submission with ``flag_count`` flags: an acknowledgement and note for each."""
    if flag_count not in _SIGN_OFF_FORMS:
        fields = {}
        for i in range(flag_count):
            fields[f"ack_{i}"] = MultiCheckboxField(choices=ACK_CHOICE, validators=[Optional()])
            fields[f"note_{i}"] = StringField(validators=[Optional()])
        fields["decision"] = RadioField(choices=DECISION_CHOICES, validators=[Optional()])
        fields["defer_until"] = FormField(DateParts)
        fields["treated"] = RadioField(choices=TREATED_CHOICES, validators=[Optional()])
        fields["treated_variant"] = RadioField(choices=TREATED_VARIANT_CHOICES, validators=[Optional()])
        fields["treated_areas"] = MultiCheckboxField(choices=TREATED_AREA_CHOICES, validators=[Optional()])
        fields["note"] = TextAreaField(validators=[Optional()])
        _SIGN_OFF_FORMS[flag_count] = type(f"SignOffForm{flag_count}", (FlaskForm,), fields)
    return _SIGN_OFF_FORMS[flag_count]


class AddendumForm(FlaskForm):
    """A dated note after sign-off."""

    text = TextAreaField(validators=[Optional()])


NEXT_VARIANT_CHOICES = [SelectChoice(c.code, lazy_gettext(c.label))
                        for c in qd.BY_ID["treatment_variant"].choices if c.code in rs.TREATED_VARIANTS]


class NextSessionForm(FlaskForm):
    """The client's next session, booked from the sign-off page."""

    next_date = FormField(DateParts)
    next_time = StringField(validators=[Optional()])
    next_variant = RadioField(choices=NEXT_VARIANT_CHOICES, validators=[Optional()])
    next_areas = MultiCheckboxField(choices=TREATED_AREA_CHOICES, validators=[Optional()])


def next_session_fields(today: dt.date) -> dict:
    """Describe the next-session form's fields for the shared macro; the date's hint suggests 4 to 6 weeks on."""
    early, late = today + dt.timedelta(weeks=4), today + dt.timedelta(weeks=6)
    return {
        "next_date": spec("next_date", "date", qd.N_("Date"),
                          _("Sessions of a course are usually 4 to 6 weeks apart: from %(early)s to %(late)s. "
                            "For example %(d)s %(m)s %(y)s", early=format_date(early), late=format_date(late),
                            d=early.day, m=early.month, y=early.year)),
        "next_time": spec("next_time", "text", qd.N_("Time"), qd.N_("For example 14:30")),
        "next_variant": spec("next_variant", "single", qd.N_("Treatment")),
        "next_areas": spec("next_areas", "areas", qd.N_("Areas"), qd.N_("Choose every area to be treated.")),
    }


def read_next_session(form: NextSessionForm) -> rs.NextSessionInput:
    """Return the next session as typed, as the booking use case takes it (it checks every field)."""
    return rs.NextSessionInput(
        date=tuple(str(form.next_date[p].data or "") for p in ("day", "month", "year")),
        time=str(form.next_time.data or ""), variant=form.next_variant.data or "",
        areas=tuple(form.next_areas.data or ()))


def sign_off_fields(flags: list[dict]) -> dict:
    """Describe the sign-off form's fields for the shared macro."""
    out = {}
    for i, flag in enumerate(flags):
        severity = SEVERITY_TEXT[flag["severity"]]
        # Words for people, numbered as on the record and the PDF; the rule id is in small print on the flag.
        out[f"ack_{i}"] = spec(f"ack_{i}", "multi", f"{flag.get('number', i + 1)}. {_(severity)}: {flag['title']}")
        hint = (_("Needed if you decide to proceed: treating despite this flag is recorded as an override, "
                  "with your note as the reason.") if flag["severity"] in rs.OVERRIDABLE else _("Optional"))
        out[f"note_{i}"] = spec(f"note_{i}", "text", _("Note on ‘%(title)s’", title=flag["title"]), hint)
    out["decision"] = spec("decision", "single", qd.N_("Decision"))
    out["defer_until"] = spec("defer_until", "date", qd.N_("Defer until"),
                              qd.N_("Today or later, for example 15 3 2027"))
    out["treated"] = spec("treated", "single", qd.N_("What was done today"),
                          qd.N_("Recorded on the client’s record: the next screening counts 28 days from a session "
                                "on the same area. A decision to defer or decline records no treatment."))
    out["treated_variant"] = spec("treated_variant", "single", qd.N_("Treatment given"))
    out["treated_areas"] = spec("treated_areas", "areas", qd.N_("Areas treated"),
                                qd.N_("Choose every area you treated."))
    return out


def read_sign_off(form, flag_count: int, booking: dict | None = None) -> rs.SignOffInput:
    """Return what the practitioner sent, as the sign-off use case takes it (it checks every rule).

    The form always sends "what was done today" (it starts on "Treated today" with the booking's treatment); a
    sign-off sent without it at all (by a client older than that question) records the booking's treatment."""
    booking = booking or {}
    if form.treated.raw_data == [] and not form.treated_variant.raw_data and not form.treated_areas.raw_data:
        form.treated.data = "treated"
        form.treated_variant.data = booking.get("variant") or ""
        form.treated_areas.data = list(booking.get("areas") or ())
    return rs.SignOffInput(
        acknowledged=tuple("yes" in (form[f"ack_{i}"].data or []) for i in range(flag_count)),
        flag_notes=tuple(form[f"note_{i}"].data or "" for i in range(flag_count)),
        decision=form.decision.data or "",
        defer_until=tuple(str(form.defer_until[p].data or "") for p in ("day", "month", "year")),
        note=form.note.data or "",
        treated=form.treated.data or "",
        treated_variant=form.treated_variant.data or "",
        treated_areas=tuple(form.treated_areas.data or ()),
    )


def read_day(text: str | None) -> tuple[dt.date | None, str | None]:
    """Read the date filter: (the day, None meaning any date; an error message). No filter means today."""
    if text is None:
        return today(), None
    text = text.strip()
    if text in ("", "any"):
        return None, None
    try:
        return parse_day(text), None
    except ValueError:
        return None, _("Enter the appointment date as day/month/year, for example 24/11/2026")


def read_birth_date(parts: DateParts) -> tuple[dt.date | None, str | None]:
    """Read the date of birth typed in the search: (the date or None, an error message)."""
    day, month, year = (str(parts[p].data or "").strip() for p in ("day", "month", "year"))
    if not (day or month or year):
        return None, None
    if not (day and month and year):
        missing = [n for n, v in ((_("day"), day), (_("month"), month), (_("year"), year)) if not v]
        return None, _("The date of birth must include a %(parts)s", parts=_(" and ").join(missing))
    try:
        if not (day.isdigit() and month.isdigit() and year.isdigit()) or len(year) != 4:
            raise ValueError
        return dt.date(int(year), int(month), int(day)), None
    except ValueError:
        return None, _("Enter a real date of birth, for example 27 3 1990")


def _page_number(text) -> int:
    try:
        return max(1, int(text))
    except (TypeError, ValueError):
        return 1


# -- the list --------------------------------------------------------------------------------------


@bp.route("/submissions", methods=["GET", "POST"])
@roles(*READ_ROLES)
def submissions():
    """List submissions: today's by default, any date, filtered, or found by a search.

    The date, outcome, status and page filters identify no one, so they go in the query string. A
    search by name, date of birth or reference does: the search form POSTs (with CSRF), the server
    keeps nothing of it (not in a URL, a log, a cookie or the session) and answers with the results
    directly (200, no redirect); its page buttons POST the same form again.
    """
    filters, search = FilterForm(request.args), SearchForm()
    searching = request.method == "POST"
    query, errors = read_list_query(filters, search if searching else None)
    if errors:
        summary = [(error_href(search if key in SEARCH_FIELDS else filters, key), message)
                   for key, message in errors.items()]
        return _render_list(filters, search, query, None, searching, errors, summary), 400
    listing = rs.list_submissions(db.session, query)
    return _render_list(filters, search, query, listing, searching, {}, [])


def _render_list(filters, search, query, listing, searching, errors, summary):
    # Links carry only the query-string filters in force, never a search term.
    args = {k: request.args[k] for k in ("date", "outcome", "status") if request.args.get(k) is not None}
    return render_template("staff/submissions.html", filters=filters, search=search, listing=listing,
                           day=query.day, any_date=query.day is None, searching=searching, errors=errors,
                           summary=summary, args=args, today=today(), tomorrow=today() + dt.timedelta(days=1),
                           filter_fields=FILTER_FIELDS, search_fields=SEARCH_FIELDS)


def read_list_query(filters: FilterForm, search: SearchForm | None) -> tuple[rs.ListQuery, dict[str, str]]:
    """Return what the list should show (``search`` is None unless searching) and a message per bad field."""
    errors: dict[str, str] = {}
    date_text = filters.date.data
    if search is not None and date_text is None:
        date_text = "any"  # a search looks at every date unless a date was chosen explicitly
    day, date_error = read_day(date_text)
    if date_error:
        errors["date"] = date_error
    elif date_text is None:
        filters.date.data = f"{day:%d/%m/%Y}"  # show which day the list is of
    outcome = filters.outcome.data or None
    if outcome and outcome not in rs.OUTCOMES:
        errors["outcome"] = _("Choose an outcome from the list")
    status = filters.status.data or None
    if status and status not in rs.STATUSES:
        errors["status"] = _("Choose a review status from the list")
    if search is None:
        return rs.ListQuery(day=day, outcome=outcome, status=status, page=_page_number(filters.page.data)), errors
    birth_date, dob_error = read_birth_date(search.birth_date)
    if dob_error:
        errors["birth_date"] = dob_error
    name = " ".join((search.name.data or "").split())
    reference = (search.reference.data or "").strip()
    if len(name) > 120:
        errors["name"] = _("The name must be 120 characters or fewer")
    if len(reference) > 20:
        errors["reference"] = _("The reference must be 20 characters or fewer")
    if not (name or reference or birth_date or dob_error):
        errors["name"] = _("Enter a name, a date of birth or a reference to search for")
    return rs.ListQuery(day=day, outcome=outcome, status=status, name=name, birth_date=birth_date,
                        reference=reference, page=_page_number(search.page.data)), errors


# -- one submission ---------------------------------------------------------------------------------


def _find_or_404(reference: str):
    try:
        return rs.find(db.session, reference)
    except SubmissionNotFound:
        abort(404)  # the same answer for a mistyped reference as for one that never existed


def _render_record(reference: str, *, status: int = 200, form=None, addendum_form=None, next_form=None,
                   errors=None, notice: str = ""):
    """Show a submission, and record that it was shown (every showing of a record is audited)."""
    try:
        record = rs.open_record(db.session, reference, _clinic(), actor_id=g.staff.id, address=_address())
    except SubmissionNotFound:
        abort(404)
    flags = record.report["flags"]
    errors = errors or {}
    can_sign = g.staff.has_role(*SIGN_ROLES)
    if form is None and record.review is None and can_sign:
        form = sign_off_form_class(len(flags))(formdata=None)
        # What was done today starts as what was booked; the practitioner changes it if they did otherwise.
        form.treated.data = "treated"
        form.treated_variant.data = record.booking["variant"] or None
        form.treated_areas.data = list(record.booking["areas"])
    if form is not None and not record.day["may_proceed"]:
        # Not yet confirmed on the day: only defer and decline are offered (the use case refuses the others too).
        form.decision.choices = [c for c in DECISION_CHOICES if c.value not in rs.PROCEEDING]
    if addendum_form is None and record.review is not None and can_sign:
        addendum_form = AddendumForm(formdata=None)
    if next_form is None and record.review is not None and can_sign:
        # The next session starts as this one: what was done today, else what was booked.
        done = record.review.get("session") or {}
        next_form = NextSessionForm(formdata=None)
        next_form.next_variant.data = (done.get("variant") or record.booking["variant"]) or None
        next_form.next_areas.data = list(done.get("areas") or record.booking["areas"])
    # The form the errors belong to.
    failed = addendum_form if "text" in errors else next_form if any(k.startswith("next_") for k in errors) else form
    summary = [(error_href(failed, key), message) for key, message in errors.items()]
    fields = sign_off_fields(flags)
    children = {"decision": [{"q": fields["defer_until"], "show_values": ["defer"],
                              "when_text": _("Needed when you defer.")}],
                "treated": [{"q": fields["treated_variant"], "show_values": ["treated"],
                             "when_text": _("It starts as what was booked: change it if you did otherwise.")},
                            {"q": fields["treated_areas"], "show_values": ["treated"], "when_text": ""}]}
    if record.day["may_proceed"]:  # what was done today is asked when proceeding (not offered before confirmation)
        children["decision"].append({"q": fields["treated"], "show_values": sorted(rs.PROCEEDING),
                                     "when_text": _("Needed when you proceed.")})
    return render_template("staff/submission.html", record=record, r=record.report, review=record.review,
                           form=form, addendum_form=addendum_form, fields=fields, next_form=next_form,
                           next_fields=next_session_fields(today()),
                           children=children, errors=errors, summary=summary, notice=notice,
                           can_sign=can_sign), status


@bp.get("/submissions/<reference>")
@roles(*READ_ROLES)
def submission(reference: str):
    """Show one submission: the outcome first, then every flag, every answer, the sign-off and who viewed it."""
    return _render_record(reference)


@bp.post("/submissions/<reference>/sign-off")
@roles(*SIGN_ROLES)
def sign_off(reference: str):
    """Sign a submission off: every flag acknowledged, a decision, overrides with their reasons. Once only."""
    submission = _find_or_404(reference)
    flag_count = len(submission.result["flags"])
    form = sign_off_form_class(flag_count)()
    try:
        rs.sign_off(db.session, submission, g.staff, read_sign_off(form, flag_count, rs.booking_of(submission)),
                    today=today(), address=_address())
    except rs.AlreadySignedOff:
        return _render_record(submission.reference, status=409,
                              notice=_("This submission has been signed off already, and a sign-off cannot be "
                                       "changed. Nothing was saved. Add an addendum below if something needs "
                                       "recording."))
    except rs.InvalidReview as exc:
        return _render_record(submission.reference, status=400, form=form, errors=dict(exc.problems))
    flash(_("Signed off. The sign-off is saved and can no longer be changed."))
    return redirect(url_for(".submission", reference=submission.reference, _anchor="sign-off"))


@bp.post("/submissions/<reference>/addenda")
@roles(*SIGN_ROLES)
def addendum(reference: str):
    """Add a dated note to a signed-off submission."""
    submission = _find_or_404(reference)
    form = AddendumForm()
    try:
        rs.add_addendum(db.session, submission, g.staff, form.text.data or "", address=_address())
    except rs.NotSignedOff:
        return _render_record(submission.reference, status=409,
                              notice=_("An addendum follows a sign-off: sign this submission off first. "
                                       "Nothing was saved."))
    except rs.InvalidReview as exc:
        return _render_record(submission.reference, status=400, addendum_form=form, errors=dict(exc.problems))
    flash(_("Addendum added."))
    return redirect(url_for(".submission", reference=submission.reference, _anchor="addenda"))


@bp.post("/submissions/<reference>/next-session")
@roles(*SIGN_ROLES)
def next_session(reference: str):
    """Book the client's next session from a signed-off screening; its invitation follows the reminder schedule."""
    submission = _find_or_404(reference)
    form = NextSessionForm()
    try:
        appointment = rs.book_next_session(db.session, submission, g.staff, read_next_session(form), today=today())
    except rs.NotSignedOff:
        return _render_record(submission.reference, status=409,
                              notice=_("The next session is booked from a signed-off screening: sign this one off "
                                       "first. Nothing was saved."))
    except rs.InvalidReview as exc:
        return _render_record(submission.reference, status=400, next_form=form, errors=dict(exc.problems))
    flash(_("Next session booked: %(d)s at %(t)s. The client’s link to the questions is emailed on the reminder "
            "schedule before it.", d=format_date(appointment.appointment_date),
            t=appointment.appointment_time.strftime("%H:%M")))
    return redirect(url_for(".submission", reference=submission.reference, _anchor="next-session"))


@bp.get("/submissions/<reference>/pdf")
@roles(*READ_ROLES)
def submission_pdf(reference: str):
    """Serve the PDF: inline, or as a download with ?download=1; the signed-off version with ?version=signed."""
    version = request.args.get("version", "original")
    if version not in ("original", "signed"):
        abort(404)
    signed, download = version == "signed", request.args.get("download") == "1"
    try:
        data, reference = rs.open_pdf(db.session, reference, _clinic(), signed=signed, download=download,
                                      actor_id=g.staff.id, address=_address())
    except (SubmissionNotFound, rs.NotSignedOff):
        abort(404)
    name = f"screening-{reference}{'-signed-off' if signed else ''}.pdf"
    response = send_file(io.BytesIO(data), mimetype="application/pdf", as_attachment=download,
                         download_name=name)
    response.headers["Cache-Control"] = "no-store"  # send_file's default would let a browser keep it
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
