"""Admin pages: the audit trail, every event in words, filtered, paged and exported as CSV for a compliance officer.

(Staff accounts are in staff/people.py.)

Times are the clinic's (SCREENING_TIME_ZONE), and so are the days the date filters name. No event holds health data,
so neither does the page or the export.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass

from flask import Response, g, render_template, request
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session
from wtforms import SelectChoice, SelectField, StringField
from wtforms.validators import Optional

from .. import audit, clock, display
from ..extensions import db
from ..models import AuditEvent, StaffUser, Submission
from ..services import REFERENCE_ALPHABET, normalise_reference
from .access import roles
from .views import bp

PER_PAGE = 50
NO_ACTOR = "none"  # the person filter's value for events without a member of staff (failed sign-ins, expiries)
EXPORT_BATCH = 1000
FILTER_NAMES = ("actor", "action", "reference", "date_from", "date_to")
FILTER_LIMITS = {"actor": 12, "action": 40, "reference": 20, "date_from": 20, "date_to": 20, "page": 6}
# OWASP "CSV injection": a spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class AuditFilters:
    """What the audit trail is narrowed to (all optional)."""

    action: str | None = None
    actor: int | str | None = None  # a staff account's id, or NO_ACTOR
    actor_email: str | None = None  # that account's email: its failed sign-ins name it
    reference: str | None = None
    date_from: dt.date | None = None  # the clinic's days, both included
    date_to: dt.date | None = None


@dataclass(frozen=True)
class AuditRow:
    """One audit event as people read it."""

    id: int
    at: dt.datetime  # UTC, as stored
    when: str  # the clinic's time, with its zone
    name: str
    email: str
    action: str
    words: str
    reference: str
    detail: str
    address: str


@dataclass(frozen=True)
class AuditPage:
    """One page of the audit trail, newest first."""

    rows: list[AuditRow]
    page: int
    pages: int
    total: int


def when_text(moment: dt.datetime) -> str:
    """Return an event's moment in the clinic's time, to the second: 29 March 2026, 02:30:05 BST."""
    moment = clock.local(moment)
    return f"{moment.day} {moment:%B %Y, %H:%M:%S} {clock.zone_name(moment)}"


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _where(filters: AuditFilters) -> list:
    where = []
    if filters.action:
        where.append(AuditEvent.action == filters.action)
    if filters.actor == NO_ACTOR:
        where.append(AuditEvent.actor_id.is_(None))
    elif filters.actor is not None:
        mine = AuditEvent.actor_id == filters.actor
        if filters.actor_email:
            # A failed sign-in has no member of staff, only the email tried: it is theirs if it names their email.
            from .throttle import _quoted_email

            tried = f"%;email={_like_escaped(_quoted_email(filters.actor_email))};%"
            mine = or_(mine, and_(AuditEvent.action == "sign_in_failed", AuditEvent.actor_id.is_(None),
                                  AuditEvent.detail.like(tried, escape="\\")))
        where.append(mine)
    if filters.reference:
        # A purge or an erasure clears the event's link to the record; its detail starts with the reference.
        linked = select(Submission.id).where(Submission.reference == filters.reference).scalar_subquery()
        where.append(or_(AuditEvent.submission_id == linked,
                         and_(AuditEvent.action.in_(audit.REFERENCE_IN_DETAIL),
                              AuditEvent.detail.like(f"{filters.reference}%"))))
    if filters.date_from:
        where.append(AuditEvent.at >= clock.day_start(filters.date_from))
    if filters.date_to:
        where.append(AuditEvent.at < clock.day_start(filters.date_to + dt.timedelta(days=1)))
    return where


def _people(session: Session) -> dict[int, str]:
    return {user_id: f"{name} ({email})" for user_id, name, email in
            session.execute(select(StaffUser.id, StaffUser.name, StaffUser.email))}


def _rows(session: Session, query, people: dict[int, str], translate) -> Iterator[AuditRow]:
    for event, name, email, reference in session.execute(query):
        yield AuditRow(id=event.id, at=clock.aware(event.at), when=when_text(event.at), name=name or "",
                       email=email or "", action=event.action,
                       words=audit.describe(event.action, event.detail, reference or "", people, translate),
                       reference=reference or "", detail=event.detail, address=event.address)


def _select(where: list):
    return (select(AuditEvent, StaffUser.name, StaffUser.email, Submission.reference)
            .outerjoin(StaffUser, StaffUser.id == AuditEvent.actor_id)
            .outerjoin(Submission, Submission.id == AuditEvent.submission_id)
            .where(*where)
            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()))


def audit_page(session: Session, filters: AuditFilters, page: int, per_page: int = PER_PAGE,
               translate=lambda s: s) -> AuditPage:
    """Return one page of the events matching ``filters``, newest first."""
    where = _where(filters)
    total = session.scalar(select(func.count(AuditEvent.id)).where(*where)) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    query = _select(where).limit(per_page).offset((page - 1) * per_page)
    return AuditPage(rows=list(_rows(session, query, _people(session), translate)), page=page, pages=pages,
                     total=total)


def csv_cell(value) -> str:
    """Return a value for a CSV cell that no spreadsheet will run as a formula (OWASP: a leading quote)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


CSV_COLUMNS = ("event", "time (clinic)", "time (UTC)", "member of staff", "email", "what", "action", "reference",
               "detail", "address")


def _filters_detail(filters: AuditFilters) -> str:
    parts = [f"{name}={value}" for name, value in (
        ("action", filters.action), ("actor", filters.actor), ("reference", filters.reference),
        ("from", filters.date_from), ("to", filters.date_to)) if value]
    return " ".join(parts) or "everything"


def export_csv(session: Session, filters: AuditFilters, *, actor_id: int, address: str,
               translate=lambda s: s) -> tuple[bytes, int]:
    """Record the export, then return every event matching ``filters`` as CSV (UTF-8, newest first) and its count.

    The export is an event of its own, committed before anything is read: what was taken is on the trail even if
    the download fails.
    """
    audit.record(session, "audit_exported", actor_id=actor_id, detail=_filters_detail(filters), address=address)
    people = _people(session)
    out = io.StringIO()
    out.write("\ufeff")  # a byte-order mark: spreadsheets then read the file as UTF-8
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    query = _select(_where(filters)).execution_options(yield_per=EXPORT_BATCH)
    for row in _rows(session, query, people, translate):
        count += 1
        writer.writerow([csv_cell(v) for v in (
            row.id, row.when, row.at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), row.name,
            row.email, row.words, row.action, row.reference, row.detail, row.address)])
    return out.getvalue().encode("utf-8"), count


# -- reading the filters ------------------------------------------------------------------------


class AuditFilterForm(FlaskForm):
    """The audit trail's filters, read from the query string (they name no client's health)."""

    class Meta:
        csrf = False  # a GET that changes nothing

    actor = SelectField(validators=[Optional()], validate_choice=False)
    action = SelectField(validators=[Optional()], validate_choice=False)
    reference = StringField(validators=[Optional()])
    date_from = StringField(validators=[Optional()])
    date_to = StringField(validators=[Optional()])
    page = StringField(validators=[Optional()])


FILTER_LABELS = {
    "actor": "Member of staff", "action": "Action", "reference": "Reference",
    "date_from": "From", "date_to": "To",
}


def _reference(text: str) -> str | None:
    """Return a typed reference as stored, or None when it cannot be one."""
    reference = normalise_reference(text)
    chars = reference.replace("-", "")
    if len(chars) != 8 or any(c not in REFERENCE_ALPHABET for c in chars):
        return None
    return reference


def read_filters(form: AuditFilterForm, users: list[StaffUser]) -> tuple[AuditFilters, int, dict[str, str]]:
    """Return the filters and the page asked for, and a message for each bad one (the typed text stays in ``form``)."""
    errors: dict[str, str] = {}
    for name, limit in FILTER_LIMITS.items():
        if len(form[name].data or "") > limit:
            errors[name] = _("That is too long: choose or type a shorter value")
    action = (form.action.data or "").strip() or None
    if action and "action" not in errors and action not in audit.ACTIONS:
        errors["action"] = _("Choose an action from the list")
    actor: int | str | None = (form.actor.data or "").strip() or None
    actor_email = None
    if actor and actor != NO_ACTOR and "actor" not in errors:
        by_id = {str(u.id): u for u in users}
        if actor not in by_id:
            errors["actor"] = _("Choose a member of staff from the list")
            actor = None
        else:
            actor, actor_email = by_id[actor].id, by_id[actor].email
    reference = None
    if (form.reference.data or "").strip() and "reference" not in errors:
        reference = _reference(form.reference.data)
        if reference is None:
            errors["reference"] = _("Enter a reference of 8 letters and numbers, like K7QM-4TXR")
    dates: dict[str, dt.date | None] = {"date_from": None, "date_to": None}
    for name in dates:
        text = (form[name].data or "").strip()
        if text and name not in errors:
            try:
                dates[name] = display.parse_day(text)
            except ValueError:
                errors[name] = _("Enter a real date as day/month/year, for example 24/11/2026")
    if dates["date_from"] and dates["date_to"] and dates["date_from"] > dates["date_to"]:
        errors["date_to"] = _("The ‘To’ date must be the same as or after the ‘From’ date")
    page = 1
    text = (form.page.data or "").strip()
    if text and "page" not in errors:
        # isascii: "²" and other Unicode digits pass isdigit() but not int().
        if text.isascii() and text.isdigit() and int(text) >= 1:
            page = int(text)
        else:
            errors["page"] = _("The page number must be a whole number, 1 or more")
    return AuditFilters(action, actor, actor_email, reference, dates["date_from"], dates["date_to"]), page, errors


def _filter_form(staff: list[StaffUser]) -> AuditFilterForm:
    form = AuditFilterForm(request.args)
    words = {a: _(audit.ACTION_WORDS.get(a, a)).replace("%(reference)s", "…").replace("%(user)s", "…")
             .replace("%(email)s", "…").replace("%(appointment)s", "…").replace("%(token)s", "…")
             .replace(" (%(detail)s)", "").replace(": %(detail)s", "").replace("%(detail)s", "…")
             for a in audit.ACTIONS}
    form.action.choices = [SelectChoice("", _("Any action"))] + [
        SelectChoice(a, f"{words[a]} ({a})") for a in sorted(audit.ACTIONS, key=lambda a: words[a].lower())]
    form.actor.choices = ([SelectChoice("", _("Anyone")), SelectChoice(NO_ACTOR, _("No member of staff"))]
                          + [SelectChoice(str(u.id), f"{u.name} ({u.email})") for u in staff])
    return form


# -- views --------------------------------------------------------------------------------------


def _staff(session: Session) -> list[StaffUser]:
    return list(session.scalars(select(StaffUser).order_by(StaffUser.name, StaffUser.email)))


def _kept_args() -> dict[str, str]:
    """The filters in force, for the pages' and the export's links (typed text as it was typed)."""
    return {k: request.args[k] for k in FILTER_NAMES if request.args.get(k)}


def _render_errors(form, errors):
    summary = [(key, message) for key, message in errors.items()]
    return render_template("staff/audit.html", form=form, result=None, errors=errors, summary=summary,
                           args=_kept_args(), zone=str(clock.zone())), 400


@bp.get("/admin/audit")
@roles("admin")
def audit_trail():
    """Show the audit trail, newest first, filtered by person, action, reference and the clinic's dates."""
    staff = _staff(db.session)
    form = _filter_form(staff)
    filters, page, errors = read_filters(form, staff)
    if errors:
        return _render_errors(form, errors)
    result = audit_page(db.session, filters, page, translate=_)
    return render_template("staff/audit.html", form=form, result=result, errors={}, summary=[], args=_kept_args(),
                           zone=str(clock.zone()))


@bp.get("/admin/audit/export.csv")
@roles("admin")
def audit_export():
    """Download every event the filters match as CSV, for a compliance officer; the export is itself audited."""
    staff = _staff(db.session)
    form = _filter_form(staff)
    filters, _page, errors = read_filters(form, staff)
    if errors:
        return _render_errors(form, errors)
    data, _count = export_csv(db.session, filters, actor_id=g.staff.id, address=request.remote_addr or "",
                              translate=_)
    stamp = clock.local(clock.now()).strftime("%Y%m%d-%H%M")
    response = Response(data, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="audit-trail-{stamp}.csv"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
