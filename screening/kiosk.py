"""Kiosk mode: a clinic tablet that shows only the questionnaire until a member of staff ends it.

A desk user starts it from the staff area (``staff/desk.py``). From then on the browser's cookie holds only the
kiosk's random token (and, while a client is answering, their draft's token). ``enforce`` runs before every
request of the app: it keeps a kiosk browser inside the questionnaire, and deletes a client's draft left idle
longer than ``KIOSK_IDLE_SECONDS``, whether or not the page's JavaScript is running. Leaving kiosk mode takes the
email and password of an active desk or admin account.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_wtf import FlaskForm
from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from wtforms import EmailField, PasswordField
from wtforms.validators import Length, Optional

from . import audit, services
from .errors import DraftNotFound
from .extensions import db
from .models import Draft, KioskSession, StaffSession, StaffUser, utcnow
from .staff import throttle
from .staff.accounts import MAX_EMAIL, MAX_PASSWORD, authenticate

# Registered inside the questionnaire blueprint, so its endpoints are ``questionnaire.kiosk.*``.
bp = Blueprint("kiosk", __name__, url_prefix="/kiosk")

EXIT_ROLES = ("desk", "admin")
WARNING_SECONDS = 60  # the visible countdown before an idle reset: time to read it and answer

# What a kiosk browser may reach: the questionnaire and the kiosk's own pages. Anything else (the staff
# area above all) sends it back to the start page.
ALLOWED_ENDPOINTS = frozenset({
    "static", "questionnaire.start", "questionnaire.begin", "questionnaire.page", "questionnaire.check",
    "questionnaire.declaration", "questionnaire.done", "questionnaire.expired", "questionnaire.logo",
    "questionnaire.kiosk.exit", "questionnaire.kiosk.reset", "questionnaire.kiosk.alive",
    "dayof.confirm", "dayof.changes", "dayof.done",  # the day-of-treatment confirmation the desk handed over
})
# Requests that neither count as a client's activity nor clear an idle draft.
_PASSIVE_ENDPOINTS = frozenset({"static", "questionnaire.logo"})


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


# -- use cases -----------------------------------------------------------------------


def start(session: Session, user: StaffUser, staff_session: StaffSession, address: str) -> str:
    """Turn this browser into a kiosk: end the staff session, open a kiosk session; return its token."""
    token = secrets.token_urlsafe(32)
    row = KioskSession(token_hash=_hash(token), started_by_id=user.id)
    session.add(row)
    staff_session.ended_at = utcnow()
    session.flush()
    audit.record(session, "kiosk_start", actor_id=user.id, detail=f"kiosk={row.id}", address=address,
                 commit=False)
    session.commit()
    return token


def find(session: Session, token: str | None) -> KioskSession | None:
    """Return the live kiosk session for ``token``, or None."""
    if not token:
        return None
    row = session.scalar(select(KioskSession).where(KioskSession.token_hash == _hash(token)))
    if row is None or row.ended_at is not None:
        return None
    return row


def stop(session: Session, row: KioskSession, user: StaffUser, draft: Draft | None, address: str) -> None:
    """End a kiosk session (and delete any client's draft still open on it)."""
    row.ended_at = utcnow()
    row.ended_by_id = user.id
    if draft is not None:
        session.delete(draft)
    audit.record(session, "kiosk_stop", actor_id=user.id, detail=f"kiosk={row.id}", address=address,
                 commit=False)
    session.commit()


def is_idle(draft: Draft, idle: dt.timedelta, now: dt.datetime) -> bool:
    """Whether a kiosk draft has seen no request for longer than ``idle``."""
    return now - _aware(draft.updated_at) > idle


def clear_draft(session: Session, draft: Draft) -> None:
    """Delete a client's draft from the kiosk."""
    session.delete(draft)
    session.commit()


def keep_alive(session: Session, draft: Draft | None, idle: dt.timedelta, now: dt.datetime) -> bool:
    """Restart ``draft``'s idle clock, or delete it if idle too long; return whether it was deleted.

    Every other kiosk draft idle too long goes too, such as one whose tablet was restarted mid-questionnaire
    and will never send its cookie again.
    """
    cleared = draft is not None and is_idle(draft, idle, now)
    if cleared:
        session.delete(draft)
    elif draft is not None:
        # On a kiosk draft, updated_at is the time of the client's last request, not only of the last saved
        # answer: someone reading a long page or typing a long answer must not lose it.
        draft.updated_at = now
    session.execute(delete(Draft).where(Draft.is_kiosk.is_(True), Draft.updated_at < now - idle)
                    .execution_options(synchronize_session=False))
    session.commit()
    return cleared


# -- the browser's state -------------------------------------------------------------


def active() -> bool:
    """Whether this request comes from a browser in kiosk mode."""
    return g.get("kiosk") is not None


def idle_limit() -> dt.timedelta:
    """Return how long a kiosk draft may sit unused."""
    return dt.timedelta(seconds=int(current_app.config["KIOSK_IDLE_SECONDS"]))


def clear_session() -> None:
    """Forget everything in the browser's session except, in kiosk mode, the kiosk token itself."""
    token = session.get("kiosk") if active() else None
    session.clear()
    session.permanent = True
    if token:
        session["kiosk"] = token


def _current_draft() -> Draft | None:
    try:
        return services.find_draft(db.session, session.get("draft"))
    except DraftNotFound:
        session.pop("draft", None)
        return None


def _is_staff_path(path: str) -> bool:
    return path == "/staff" or path.startswith("/staff/")


@bp.before_app_request
def enforce():
    """Keep a kiosk browser inside the questionnaire and clear a client's answers left idle too long."""
    g.kiosk = None
    g.kiosk_draft = None
    if request.endpoint == "static":
        return None
    token = session.get("kiosk")
    if not token:
        return None
    row = find(db.session, token)
    if row is None:
        # Ended elsewhere: the browser keeps nothing of it (it holds no staff session either).
        session.clear()
        return None
    g.kiosk = row
    endpoint = request.endpoint
    if _is_staff_path(request.path) or (endpoint is not None and endpoint not in ALLOWED_ENDPOINTS):
        return redirect(url_for("questionnaire.start"))
    if endpoint is None or endpoint in _PASSIVE_ENDPOINTS:
        return None
    draft = _current_draft()
    if keep_alive(db.session, draft, idle_limit(), utcnow()):
        session.pop("draft", None)  # the rest of a kiosk's session is its token and the CSRF token
        if endpoint in ("questionnaire.kiosk.exit", "questionnaire.kiosk.alive"):
            return None
        return redirect(url_for("questionnaire.start", timeout=1))
    g.kiosk_draft = draft
    return None


_TAG = re.compile(r"<(input|select|textarea|form)\b([^>]*?)(\s*/?)>", re.IGNORECASE)
# One attribute, its value whole: "autocomplete=" typed into a field's value is part of that value, not an attribute.
_ATTRIBUTE = re.compile(r"""\s+([^\s"'>/=]+)(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'>]+))?""")


def without_autocomplete(html: str) -> str:
    """Return ``html`` with autocomplete="off" on every form and form field."""

    def fix(match: re.Match) -> str:
        attrs = _ATTRIBUTE.sub(lambda attr: "" if attr.group(1).lower() == "autocomplete" else attr.group(0),
                               match.group(2))
        return f'<{match.group(1)}{attrs} autocomplete="off"{match.group(3)}>'

    return _TAG.sub(fix, html)


@bp.after_app_request
def refuse_autofill(response):
    """On the shared tablet, no field may offer to fill in what the previous client typed."""
    # The public pages and their one field macro ask for autofill (name, email, birthday), which helps people
    # on their own phones. Rewriting the kiosk's HTML here, in one place, covers every field of every page,
    # including fields added later, without a kiosk branch in each template.
    if g.get("kiosk") is not None and response.mimetype == "text/html" and not response.direct_passthrough:
        response.set_data(without_autocomplete(response.get_data(as_text=True)))
    return response


@bp.app_context_processor
def kiosk_context():
    """Tell the layout whether to show the kiosk banner and the idle countdown."""
    if g.get("kiosk") is None:
        return {"kiosk_mode": False}
    return {
        "kiosk_mode": True,
        "kiosk_countdown": g.get("kiosk_draft") is not None,
        "kiosk_idle_seconds": int(idle_limit().total_seconds()),
        "kiosk_warning_seconds": min(WARNING_SECONDS, int(idle_limit().total_seconds())),
        "kiosk_idle_words": idle_words(),
    }


def idle_words() -> str:
    """Return the kiosk's idle time in words: "2 minutes"."""
    return _idle_words(int(idle_limit().total_seconds()))


def _idle_words(seconds: int) -> str:
    if seconds % 60 == 0:
        return ngettext("%(num)s minute", "%(num)s minutes", seconds // 60)
    return ngettext("%(num)s second", "%(num)s seconds", seconds)


# -- views ---------------------------------------------------------------------------


class ExitForm(FlaskForm):
    """The email and password of a desk or admin account."""

    email = EmailField(validators=[Optional(), Length(max=MAX_EMAIL)])
    password = PasswordField(validators=[Optional(), Length(max=MAX_PASSWORD)])


def _require_kiosk() -> None:
    if not active():
        abort(404)


@bp.route("/exit", methods=["GET", "POST"], endpoint="exit")
def leave():
    """Leave kiosk mode with the credentials of a desk or admin account (failures count as failed sign-ins)."""
    _require_kiosk()
    form = ExitForm()
    if request.method == "GET":
        return render_template("kiosk/exit.html", form=form, errors={}, summary=[])
    if not form.validate():
        abort(400)
    address = request.remote_addr or ""
    errors: dict[str, str] = {}
    if not form.email.data or not form.password.data:
        if not form.email.data:
            errors["email"] = _("Enter your staff email address")
        if not form.password.data:
            errors["password"] = _("Enter your password")
        return render_template("kiosk/exit.html", form=form, errors=errors, summary=list(errors.items())), 400
    # Keyed on the validated form value; the same counts as the staff sign-in page (staff/throttle.py).
    who = throttle.attempt(form.email.data)
    wait = throttle.seconds_held(db.session, who)
    if wait:
        g.retry_after = wait
        abort(429)
    user = authenticate(db.session, form.email.data, form.password.data)
    if user is None or not user.has_role(*EXIT_ROLES):
        audit.record(db.session, "sign_in_failed", actor_id=user.id if user else None,
                     detail=who.detail("kiosk_exit"), address=address)
        form.password.data = ""
        if user is None:
            errors["email"] = _("Email or password is incorrect")
            status = 401
        else:
            errors["email"] = _("Only desk or admin staff can end kiosk mode")
            status = 403
        return render_template("kiosk/exit.html", form=form, errors=errors, summary=list(errors.items())), status
    stop(db.session, g.kiosk, user, _current_draft(), address)
    session.clear()
    g.kiosk = None
    # Said on the sign-in page, so the desk knows the tablet is an ordinary browser again (in the new session's
    # cookie: no query string, nothing about the client).
    flash(_("Kiosk mode has ended on this device. Sign in to use the staff pages, or close the browser."))
    return redirect(url_for("staff.login"))


@bp.post("/reset")
def reset():
    """Clear the client's answers (the idle countdown ran out, or they chose to start again)."""
    _require_kiosk()
    form = FlaskForm()
    if not form.validate_on_submit():
        abort(400)
    draft = _current_draft()
    if draft is not None:
        clear_draft(db.session, draft)
    clear_session()
    return redirect(url_for("questionnaire.start"))


@bp.post("/alive")
def alive():
    """Restart the idle clock while the client is active on a page (``enforce`` has done it)."""
    _require_kiosk()
    form = FlaskForm()
    if not form.validate_on_submit():
        abort(400)
    if g.get("kiosk_draft") is None:
        return "", 410  # the answers were cleared already: the page goes back to the start
    return "", 204
