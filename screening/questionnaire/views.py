"""The public questionnaire: start, pages, check answers, declaration, confirmation."""

from __future__ import annotations

import datetime as dt

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from sqlalchemy.exc import OperationalError
from wtforms import BooleanField, StringField
from wtforms.validators import Length, Optional

from .. import clock, current_rules, kiosk, security, services, tasks
from .. import questions as qd
from ..clients import services as clients
from ..display import format_answer
from ..errors import DraftNotFound, IncompleteDraft, NotSigned, SaveFailed
from ..extensions import db, limiter
from ..models import Submission
from ..rules import asked_ids
from .forms import (add_group_row, clean_text, error_href, form_data, implausible_errors, page_form_class, read_page,
                    same_name, unexpected_keys)

bp = Blueprint("questionnaire", __name__)
bp.register_blueprint(kiosk.bp)

PAGE_IDS = [p.id for p in qd.PAGES]
# The accessibility statement's dates: when it was written, and when it was last checked against the service.
STATEMENT_PREPARED = dt.date(2026, 11, 24)
STATEMENT_REVIEWED = dt.date(2026, 11, 29)


def _today() -> dt.date:
    return clock.today()  # the clinic's today (SCREENING_TIME_ZONE)


def _draft():
    """Return the client's live draft, or None."""
    try:
        return services.find_draft(db.session, session.get("draft"))
    except DraftNotFound:
        session.pop("draft", None)
        return None


def _lifetime() -> dt.timedelta:
    return current_app.config["DRAFT_LIFETIME"]


@bp.errorhandler(OperationalError)
def database_unavailable(exc):
    """The database is locked, read-only or out of reach: nothing was saved, the draft is as it was; say so."""
    db.session.rollback()
    # The type only: the message may quote the statement's parameters.
    current_app.logger.error("questionnaire request not saved: database error %s",
                             type(getattr(exc, "orig", None) or exc).__name__)
    return render_template("questionnaire/not_saved.html"), 503


@bp.get("/")
def start():
    """Show what this is, how long it takes and what happens to the answers."""
    template = "kiosk/start.html" if kiosk.active() else "questionnaire/start.html"
    return render_template(template, draft=_draft(), form=FlaskForm())


def _starts_nothing() -> bool:
    """Whether this POST /start creates no draft (a kiosk tablet, or continuing one): no limit applies."""
    return kiosk.active() or (request.form.get("action") != "restart" and _draft() is not None)


@bp.post("/start")
@limiter.limit(lambda: current_app.config["START_LIMIT"], key_func=security.client_key, exempt_when=_starts_nothing)
def begin():
    """Start a new draft (or continue the one in progress)."""
    form = FlaskForm()
    if not form.validate_on_submit():
        abort(400)
    if security.honeypot_filled():
        return security.refuse_quietly()
    draft = _draft()
    if draft is None or request.form.get("action") == "restart":
        if draft is not None:
            db.session.delete(draft)
            db.session.commit()
        draft, token = services.start_draft(db.session, _lifetime(), is_kiosk=kiosk.active())
        kiosk.clear_session()
        session.pop("reference", None)  # a new client's questionnaire: the last one's confirmation is done with
        session["draft"] = token
        return redirect(url_for(".page", page_id=PAGE_IDS[0]))
    return redirect(url_for(".page", page_id=services.next_page(draft) or PAGE_IDS[0]))


@bp.route("/q/<page_id>", methods=["GET", "POST"])
def page(page_id: str):
    """Ask one page of questions; save valid answers and move on."""
    page = qd.PAGE_BY_ID.get(page_id)
    if page is None:
        abort(404)
    draft = _draft()
    if draft is None:
        return redirect(url_for(".expired"))
    answers = dict(draft.answers or {})
    first_gap = services.first_incomplete_page(answers)
    if first_gap and PAGE_IDS.index(page_id) > PAGE_IDS.index(first_gap):
        return redirect(url_for(".page", page_id=first_gap))  # no skipping ahead
    changing = request.args.get("change") == "1"
    form_class = page_form_class(page)
    if request.method == "GET":
        form = form_class(data=form_data(page, answers))
        # A date saved earlier that a later answer made impossible (a date of birth changed after it) is
        # shown with its message: the declaration sends the client back here to correct it.
        return _render_page(page, form, implausible_errors(form, page, answers, _today()), changing, draft)

    form = form_class()
    stray = unexpected_keys(form, request.form.keys())
    if stray:
        return render_template("questionnaire/problem.html", page=page,
                               message=_("This page was sent an answer to a question it does not ask. "
                                         "Nothing was saved. Go back to the page and try again.")), 400
    if not form.validate():
        if "csrf_token" in form.errors:
            abort(400)
    if add_group_row(form, request.form.get("action", "")):
        return _render_page(page, form, {}, changing, draft)
    page_answers, errors = read_page(form, page, answers, _today())
    if errors:
        return _render_page(page, form, errors, changing, draft), 400
    services.save_answers(db.session, draft, page, page_answers, _lifetime())
    index = PAGE_IDS.index(page_id)
    following = "check" if changing or index + 1 == len(PAGE_IDS) else PAGE_IDS[index + 1]
    if "appointment_date" in page_answers and services.eighteenth_birthday_after(draft.answers):
        return redirect(url_for(".under_18", next=following))  # say so now, not after 25 pages
    return _go_to(following, page if changing else None)


def _go_to(following: str, page: qd.Page | None = None):
    """Redirect to the page ``following`` (or "check": then to ``page``'s answers on it, after a change)."""
    if following == "check":
        return redirect(url_for(".check") + (f"#{page.question_ids[0]}" if page else ""))
    return redirect(url_for(".page", page_id=following))


@bp.route("/q/under-18", methods=["GET", "POST"])
def under_18():
    """Tell a client who will be under 18 on the appointment day, and let them stop or go on."""
    draft = _draft()
    if draft is None:
        return redirect(url_for(".expired"))
    form = FlaskForm()
    if request.method == "POST" and not form.validate_on_submit():
        abort(400)
    following = request.args.get("next", "")
    if following != "check" and following not in PAGE_IDS:
        following = services.first_incomplete_page(draft.answers) or "check"
    birthday = services.eighteenth_birthday_after(draft.answers)
    if birthday is None:
        return _go_to(following)  # the dates were changed since: nothing to say, nothing to delete
    if request.method == "POST":
        db.session.delete(draft)
        db.session.commit()
        session.pop("draft", None)
        return render_template("questionnaire/stopped.html")
    return render_template("questionnaire/under_18.html", form=form, birthday=birthday,
                           continue_url=url_for(".check") if following == "check"
                           else url_for(".page", page_id=following))


def _prefilled_on(draft, page: qd.Page) -> dt.date | None:
    """The day of the screening a returning client's page was filled in from, while they have to confirm it."""
    if draft is None or not draft.prefilled_from_id or page.id not in (draft.pages_to_confirm or "").split(","):
        return None
    previous = db.session.get(Submission, draft.prefilled_from_id)
    return previous.answered_on if previous is not None else None


def _render_page(page: qd.Page, form, errors: dict[str, str], changing: bool, draft=None):
    index = PAGE_IDS.index(page.id)
    back = url_for(".check") if changing else (
        url_for(".page", page_id=PAGE_IDS[index - 1]) if index else url_for(".start"))
    summary = [(error_href(form, key), message) for key, message in errors.items()]
    return render_template(
        "questionnaire/page.html",
        page=page,
        form=form,
        questions_by_id=qd.BY_ID,
        children=_children(page),
        errors=errors,
        summary=summary,
        back=back,
        changing=changing,
        step=index + 1,
        steps=len(PAGE_IDS),
        prefilled_on=_prefilled_on(draft, page),
    )


def _children(page: qd.Page) -> dict[str, list[dict]]:
    """Return each question's follow-ups on ``page``, with the answers that reveal them."""
    out: dict[str, list[dict]] = {}
    for q in qd.page_questions(page):
        if q.asked_when is None:
            continue
        parent = qd.BY_ID[q.asked_when["question"]]
        value = q.asked_when.get("value")
        values = value if isinstance(value, list) else [value]
        labels = {c.code: _(c.label) for c in parent.choices}
        if len(values) == 1:
            text = _("Answer this if you answered ‘%(answer)s’ above.", answer=labels[values[0]])
        else:
            text = _("Answer this if you chose any of the options above, other than ‘None of these’.")
        out.setdefault(parent.id, []).append({"q": q, "show_values": values, "when_text": text})
    return out


@bp.get("/logo")
def logo():
    """Serve the clinic's logo from configuration."""
    settings = current_app.config["CLINIC"]
    if not settings["logo"]:
        abort(404)
    response = current_app.response_class(settings["logo"], mimetype=settings["logo_type"])
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


def _complete_draft():
    """Return (draft, answers, None) when every page is answered, else (None, None, a redirect)."""
    draft = _draft()
    if draft is None:
        return None, None, redirect(url_for(".expired"))
    answers = dict(draft.answers or {})
    gap = services.next_page(draft)  # a gap, or a page prefilled from last time not yet confirmed
    if gap:
        return None, None, redirect(url_for(".page", page_id=gap))
    return draft, answers, None


@bp.get("/check")
def check():
    """Show every answer with a Change link."""
    draft, answers, detour = _complete_draft()
    if detour:
        return detour
    asked = set(asked_ids(answers))
    previous = db.session.get(Submission, draft.prefilled_from_id) if draft.prefilled_from_id else None
    changed = clients.changed_since(previous.answers, answers) if previous is not None else set()
    pages = []
    for page in qd.PAGES:
        rows = [
            {"id": q.id, "label": q.label, "answer": format_answer(q, answers.get(q.id), _), "changed": q.id in changed}
            for q in qd.page_questions(page) if q.id in asked
        ]
        pages.append({"page": page, "rows": rows})
    return render_template("questionnaire/check.html", pages=pages,
                           previous_on=previous.answered_on if previous is not None else None)


class DeclarationForm(FlaskForm):
    """The client confirms the answers and signs by typing their full name."""

    confirm = BooleanField()
    signature = StringField(validators=[Optional(), Length(max=120)])


@bp.route("/declaration", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["SUBMIT_LIMIT"], key_func=security.client_key, methods=["POST"],
               exempt_when=kiosk.active, deduct_when=lambda response: g.get("submitted", False))
def declaration():
    """Confirm, sign and submit."""
    draft, answers, detour = _complete_draft()
    if detour:
        return _already_sent() or detour
    form = DeclarationForm()
    if request.method == "GET":
        form.signature.data = draft.signature_name or ""
        form.confirm.data = bool(draft.signature_name)
        return render_template("questionnaire/declaration.html", form=form, errors={}, summary=[])
    if not form.validate():
        abort(400)
    if security.honeypot_filled():
        return security.refuse_quietly()  # the draft stays as it was: not signed, not sent
    errors = {}
    name = clean_text(form.signature.data)
    if not form.confirm.data:
        errors["confirm"] = _("Confirm that your answers are true and complete")
    if not name:
        errors["signature"] = _("Type your full name to sign")
    elif not same_name(name, answers.get("full_name", "")):
        errors["signature"] = _("Type your full name as you gave it on the first page: %(name)s",
                                name=answers.get("full_name", ""))
    if errors:
        summary = [(key, message) for key, message in errors.items()]
        return render_template("questionnaire/declaration.html", form=form, errors=errors, summary=summary), 400
    services.sign(db.session, draft, name)
    try:
        submission = services.submit(db.session, draft, current_rules())
    except IncompleteDraft as exc:
        return redirect(url_for(".page", page_id=exc.page_id))
    except NotSigned:
        return redirect(url_for(".declaration"))
    except SaveFailed as exc:
        if exc.reference:
            # The commit reported an error, but the server may have stored it all the same: a retry that no
            # longer finds the draft looks this reference up (_already_sent). A reference is no health data.
            session["tried_reference"] = exc.reference
        return render_template("questionnaire/not_saved.html"), 503
    # Stored. Set at the commit, without a query: nothing below reads the database, so a database that fails
    # now cannot turn a stored submission into "not sent".
    return _sent(submission.id, submission.reference)


def _sent(submission_id: int | None, reference: str):
    """Confirm a stored submission (and queue its PDF); touches no database."""
    g.submitted = True  # counts towards SUBMIT_LIMIT (a refused or mistyped declaration does not)
    if submission_id is not None and current_app.config["PDF_BACKGROUND"] == "queue":
        tasks.enqueue_pdf(submission_id)  # never raises: a PDF not queued is found by the worker's sweep
    if kiosk.active():
        # Nothing of this client stays in the kiosk's cookie, not even the reference: Back and reload find nothing.
        kiosk.clear_session()
        return render_template("kiosk/done.html", reference=reference)
    csrf_token = session.get("csrf_token")
    session.clear()
    session["reference"] = reference
    if csrf_token:
        session["csrf_token"] = csrf_token  # so that sending the declaration again lands here, not on a 400
    return redirect(url_for(".done"))


def _already_sent():
    """A declaration sent again once its draft is gone: the confirmation when it was stored, else None."""
    if session.get("draft") is not None:
        return None  # a draft in progress (_complete_draft drops a token whose draft is gone)
    if session.get("reference") and not kiosk.active():
        return redirect(url_for(".done"))  # sent already from this browser (a second click, Back then send)
    tried = session.get("tried_reference")
    if tried and services.was_stored(db.session, tried):
        return _sent(None, tried)  # its PDF is rendered by the renderer's sweep
    session.pop("tried_reference", None)
    return None


@bp.get("/done")
def done():
    """Confirm the submission with its reference and nothing else."""
    reference = session.get("reference")
    if not reference:
        return redirect(url_for(".start"))
    return render_template("questionnaire/done.html", reference=reference)


@bp.get("/accessibility")
def accessibility():
    """The accessibility statement, in the structure of the UK public sector model, with the clinic's details."""
    return render_template("questionnaire/accessibility.html", statement_prepared=STATEMENT_PREPARED,
                           statement_reviewed=STATEMENT_REVIEWED)


@bp.get("/expired")
def expired():
    """Explain that there is no questionnaire in progress on this device; after sending, that it was sent."""
    reference = session.get("reference")
    if reference:  # Back after sending: the answers were sent, not lost
        return render_template("questionnaire/done.html", reference=reference, already=True)
    return render_template("questionnaire/expired.html")
