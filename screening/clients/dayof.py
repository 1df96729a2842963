"""The day of treatment, for the client: confirm the answers about "now" given earlier, on a clinic tablet (kiosk)
or on their own phone (their invitation link, opened on the appointment day).

The browser's session holds only the check's random uid, set after the date of birth was proved (the link) or by
the desk (the kiosk). What the client says is kept in the check's encrypted row until they confirm; only then is
anything applied, in one transaction: a client who closes the page half-way has changed nothing.
"""

from __future__ import annotations

import time

from flask import Blueprint, abort, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_wtf import FlaskForm

from .. import clock, current_rules, kiosk
from .. import questions as qd
from ..display import format_answer
from ..extensions import db
from ..models import Review, Submission
from ..questionnaire.forms import add_group_row, error_href, form_data, page_form_class, read_page
from . import services

bp = Blueprint("dayof", __name__)
SESSION_KEY = "day_check"


def begin(check_uid: str) -> None:
    """Point this browser at a day check (after the date of birth, or by the desk on a kiosk)."""
    session[SESSION_KEY] = check_uid
    session[SESSION_KEY + "_at"] = int(time.time())


def _finish() -> None:
    session.pop(SESSION_KEY, None)
    session.pop(SESSION_KEY + "_at", None)


def _check():
    """Return (check, submission) of this browser's day check, if it may still be used today."""
    check = services.check_by_uid(db.session, session.get(SESSION_KEY))
    if check is None:
        return None, None
    last = session.get(SESSION_KEY + "_at", 0)
    if kiosk.active() and time.time() - last > kiosk.idle_limit().total_seconds():
        _finish()  # a tablet left alone: the next person sees none of it
        return None, None
    session[SESSION_KEY + "_at"] = int(time.time())  # in use: the idle time counts from now
    submission = db.session.get(Submission, check.submission_id)
    if (submission is None or submission.appointment_date != clock.today()
            or db.session.query(Review.id).filter(Review.submission_id == submission.id).first() is not None):
        _finish()
        return None, None
    return check, submission


class StillTrueForm(FlaskForm):
    """Only the CSRF token: the "still true?" radios are read from the request by question."""


def _earlier(item: services.ToConfirm) -> list[tuple[str, str]]:
    return [(qd.BY_ID[qid].label, format_answer(qd.BY_ID[qid], value, _)) for qid, value in item.answers]


@bp.route("/today", methods=["GET", "POST"])
def confirm():
    """Each answer about "now" given earlier, with "Is this still true today?"."""
    check, submission = _check()
    if check is None:
        return render_template("clients/today_gone.html"), 404
    if check.confirmed_at is not None:
        return redirect(url_for(".done"))
    items = services.to_confirm(submission)
    form = StillTrueForm()
    chosen = {i.root: request.form.get(f"still-{i.root}", "") for i in items} if request.method == "POST" else \
        {i.root: {True: "yes", False: "no"}.get((check.work or {}).get("still_true", {}).get(i.root), "")
         for i in items}
    errors: dict[str, str] = {}
    if request.method == "POST":
        if not form.validate():
            abort(400)
        for item in items:
            if chosen[item.root] not in ("yes", "no"):
                errors[f"still-{item.root}"] = _("Select whether this is still true today")
        if not errors:
            still = {root: value == "yes" for root, value in chosen.items()}
            services.save_still_true(db.session, check, still)
            if all(still.values()):
                return _apply(check)
            return redirect(url_for(".changes"), code=303)
    summary = [(f"{key}-0", message) for key, message in errors.items()]
    return render_template("clients/today.html", form=form, items=[(i, _earlier(i)) for i in items], chosen=chosen,
                           errors=errors, summary=summary, answered_on=check.answered_on_before
                           or submission.answered_on), (400 if errors else 200)


def _changes_page(check) -> qd.Page:
    roots = [root for root, still in (check.work or {}).get("still_true", {}).items()
             if still is False and root in qd.BY_ID]
    ordered = tuple(q.id for q in qd.QUESTIONS if q.id in roots)
    return qd.Page("today-" + "-".join(ordered), "skin_today", qd.N_("What has changed"), ordered)


@bp.route("/today/changes", methods=["GET", "POST"])
def changes():
    """The questions the client said are no longer true, asked again."""
    check, submission = _check()
    if check is None:
        return render_template("clients/today_gone.html"), 404
    page = _changes_page(check)
    if not page.question_ids:
        return redirect(url_for(".confirm"))
    form_class = page_form_class(page)
    errors: dict[str, str] = {}
    if request.method == "GET":
        # Blank at first (the earlier answers are what the client said has changed): each is answered afresh.
        form = form_class(data=form_data(page, (check.work or {}).get("answers", {})))
    else:
        form = form_class()
        if not form.validate() and "csrf_token" in form.errors:
            abort(400)
        if not add_group_row(form, request.form.get("action", "")):
            answers, errors = read_page(form, page, submission.answers, clock.today())
            if not errors:
                services.save_new_answers(db.session, check, answers)
                return _apply(check, page=page, form=form)
    return _render_changes(page, form, errors)


def _render_changes(page: qd.Page, form, errors: dict[str, str]):
    from ..questionnaire.views import _children

    summary = [(error_href(form, key), message) for key, message in errors.items()]
    return render_template("clients/today_changes.html", page=page, form=form, questions_by_id=qd.BY_ID,
                           children=_children(page), errors=errors, summary=summary), (400 if errors else 200)


def _apply(check, page: qd.Page | None = None, form=None):
    from .services import clinic_sessions_for_submission

    submission = db.session.get(Submission, check.submission_id)
    try:
        services.confirm(db.session, check, current_rules(), clock.today(),
                         clinic_sessions=clinic_sessions_for_submission(db.session, submission))
    except services.DayCheckError as exc:
        db.session.rollback()
        if page is None or form is None:
            abort(409)
        errors = {q: _("Check this answer: it cannot be true on the day of your appointment")
                  for q in exc.questions if q in page.question_ids} or \
            {page.question_ids[0]: _("Check these answers: %(why)s", why="; ".join(exc.problems))}
        return _render_changes(page, form, errors)
    return redirect(url_for(".done"), code=303)


@bp.get("/today/done")
def done():
    """Thank the client; on a kiosk, the tablet goes back to the desk."""
    check = services.check_by_uid(db.session, session.get(SESSION_KEY))
    if check is None or check.confirmed_at is None:
        return redirect(url_for(".confirm"))
    _finish()
    return render_template("clients/today_done.html", changed=bool(check.changed), on_kiosk=kiosk.active())

