"""Admin pages: the audit trail (staff accounts are in staff/people.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import render_template, request
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from wtforms import SelectChoice, SelectField, StringField
from wtforms.validators import Length, Optional

from .. import audit
from ..extensions import db
from ..models import AuditEvent, StaffUser, Submission
from .access import roles
from .people_services import list_users
from .views import bp

PER_PAGE = 50
NO_ACTOR = "none"  # the actor filter's value for events without a staff member (failed sign-ins, expiries)


# -- the audit trail -----------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    """What the audit page is narrowed to (all optional)."""

    action: str | None = None
    actor: int | str | None = None  # a staff user's id, or NO_ACTOR
    date_from: dt.date | None = None
    date_to: dt.date | None = None


@dataclass(frozen=True)
class AuditRow:
    """One audit event as the page shows it."""

    id: int
    at: str
    actor: str
    action: str
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


def _utc_text(moment: dt.datetime) -> str:
    moment = moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment.astimezone(dt.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)


def audit_page(session: Session, filters: AuditFilters, page: int, per_page: int = PER_PAGE) -> AuditPage:
    """Return one page of audit events matching ``filters``, newest first."""
    where = []
    if filters.action:
        where.append(AuditEvent.action == filters.action)
    if filters.actor == NO_ACTOR:
        where.append(AuditEvent.actor_id.is_(None))
    elif filters.actor is not None:
        where.append(AuditEvent.actor_id == filters.actor)
    if filters.date_from:
        where.append(AuditEvent.at >= _midnight(filters.date_from))
    if filters.date_to:
        where.append(AuditEvent.at < _midnight(filters.date_to + dt.timedelta(days=1)))
    total = session.scalar(select(func.count(AuditEvent.id)).where(*where)) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    result = session.execute(
        select(AuditEvent, StaffUser.name, StaffUser.email, Submission.reference)
        .outerjoin(StaffUser, StaffUser.id == AuditEvent.actor_id)
        .outerjoin(Submission, Submission.id == AuditEvent.submission_id)
        .where(*where)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    rows = [AuditRow(id=event.id, at=_utc_text(event.at),
                     actor=f"{name} ({email})" if email else "",
                     action=event.action, reference=reference or "", detail=event.detail, address=event.address)
            for event, name, email, reference in result]
    return AuditPage(rows=rows, page=page, pages=pages, total=total)


class AuditFilterForm(FlaskForm):
    """The audit page's filters, read from the query string (they name no client)."""

    class Meta:
        csrf = False  # a GET that changes nothing

    action = SelectField(validators=[Optional()], validate_choice=False)
    actor = SelectField(validators=[Optional()], validate_choice=False)
    date_from = StringField(validators=[Optional(), Length(max=10)])
    date_to = StringField(validators=[Optional(), Length(max=10)])
    page = StringField(validators=[Optional(), Length(max=6)])


def _read_date(text: str | None) -> dt.date | None:
    """Return a YYYY-MM-DD date; raise ValueError."""
    if not text:
        return None
    return dt.date.fromisoformat(text.strip())


def read_filters(form: AuditFilterForm, users: list[StaffUser]) -> tuple[AuditFilters, int, dict[str, str]]:
    """Return the filters and page asked for, and a message for each bad one."""
    errors: dict[str, str] = {}
    action = form.action.data or None
    if action and action not in audit.ACTIONS:
        errors["action"] = _("Choose an action from the list")
        action = None
    actor: int | str | None = form.actor.data or None
    if actor and actor != NO_ACTOR:
        ids = {str(u.id): u.id for u in users}
        if actor not in ids:
            errors["actor"] = _("Choose a member of staff from the list")
            actor = None
        else:
            actor = ids[actor]
    dates: dict[str, dt.date | None] = {}
    for name in ("date_from", "date_to"):
        try:
            dates[name] = _read_date(form[name].data)
        except ValueError:
            errors[name] = _("Enter a real date, like 2026-03-15")
            dates[name] = None
    if dates["date_from"] and dates["date_to"] and dates["date_from"] > dates["date_to"]:
        errors["date_to"] = _("The end date must be the same as or after the start date")
    page = 1
    if form.page.data:
        # isascii: "²" and other Unicode digits pass isdigit() but not int().
        if form.page.data.isascii() and form.page.data.isdigit() and int(form.page.data) >= 1:
            page = int(form.page.data)
        else:
            errors["page"] = _("The page number must be a whole number, 1 or more")
    return AuditFilters(action, actor, dates["date_from"], dates["date_to"]), page, errors


# -- views ----------------------------------------------------------------------------


@bp.get("/admin/audit")
@roles("admin")
def audit_trail():
    """Show the audit trail, newest first, filtered by action, member of staff and date."""
    staff = list_users(db.session)
    form = AuditFilterForm(request.args)
    form.action.choices = [SelectChoice("", _("Any action"))] + [SelectChoice(a, a) for a in sorted(audit.ACTIONS)]
    form.actor.choices = ([SelectChoice("", _("Anyone")), SelectChoice(NO_ACTOR, _("No member of staff"))]
                          + [SelectChoice(str(u.id), f"{u.name} ({u.email})") for u in staff])
    filters, page, errors = read_filters(form, staff)
    if errors:
        summary = [(key, message) for key, message in errors.items()]
        return render_template("staff/audit.html", form=form, result=None, errors=errors, summary=summary), 400
    result = audit_page(db.session, filters, page)
    args = {k: request.args[k] for k in ("action", "actor", "date_from", "date_to") if request.args.get(k)}
    return render_template("staff/audit.html", form=form, result=result, errors={}, summary=[], args=args)
