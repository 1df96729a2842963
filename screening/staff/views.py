"""Staff sign-in, sign-out and session upkeep. Other staff views live beside this module."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, current_app, g, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import Length, Optional

from .. import audit
from ..extensions import db
from . import throttle, twofactor
from .access import guard, roles
from ..models import utcnow
from .accounts import MAX_EMAIL, MAX_PASSWORD, authenticate, end_session, open_session

bp = Blueprint("staff", __name__, url_prefix="/staff")
bp.before_request(guard)

ALL_STAFF = ("admin", "practitioner", "desk")


class LoginForm(FlaskForm):
    """Email and password."""

    email = EmailField(validators=[Optional(), Length(max=MAX_EMAIL)])
    password = PasswordField(validators=[Optional(), Length(max=MAX_PASSWORD)])


def _safe_next(target: str | None) -> str | None:
    # isprintable: a newline would split the Location header (a 500), and no staff URL has a control character.
    if target and target.startswith("/staff/") and not target.startswith("//") and target.isprintable():
        return target
    return None


def hold_if_throttled(who: throttle.Attempt) -> None:
    """Answer 429 (with Retry-After) when failed sign-ins for this account or network have reached a limit."""
    wait = throttle.seconds_held(db.session, who)
    if wait:
        g.retry_after = wait
        abort(429)


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in with email and password (failures are limited: staff/throttle.py)."""
    form = LoginForm()
    expired = request.args.get("expired")
    if request.method == "GET" or not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("staff/login.html", form=form, errors={}, expired=expired), status
    # The limits are keyed on the validated form value, never on a raw field of the request.
    who = throttle.attempt(form.email.data or "")
    hold_if_throttled(who)
    user = authenticate(db.session, form.email.data or "", form.password.data or "")
    address = request.remote_addr or ""
    if user is None:
        audit.record(db.session, "sign_in_failed", detail=who.detail(), address=address)
        errors = {"email": _("Email or password is incorrect")}
        form.password.data = ""
        return render_template("staff/login.html", form=form, errors=errors,
                               summary=[("email", errors["email"])]), 401
    step = twofactor.next_step(db.session, user)
    if step is not None:
        # The password was right; no staff session yet: only the second step's pages open with this token.
        token = twofactor.start_pending(db.session, user, step)
        audit.record(db.session, "two_factor_asked", actor_id=user.id, detail=step, address=address)
        session.clear()
        session["two_factor"] = token
        if _safe_next(request.args.get("next")):
            session["two_factor_next"] = _safe_next(request.args.get("next"))
        return redirect(url_for("staff.second_factor" if step == "verify" else "staff.enrol"))
    return complete_sign_in(user, _safe_next(request.args.get("next")), "password")


def open_staff_session(user, method: str) -> str:
    """Open the staff session of ``user`` (password and, where needed, second factor checked); return where to go."""
    next_url = _safe_next(session.get("two_factor_next"))
    token = open_session(db.session, user)
    session.clear()  # a fresh session: nothing from before sign-in carries over
    session["staff"] = token
    audit.record(db.session, "sign_in", actor_id=user.id, detail=f"method={method}",
                 address=request.remote_addr or "")
    return next_url or url_for("staff.home")


def complete_sign_in(user, next_url: str | None, method: str):
    """Sign ``user`` in and go on to ``next_url`` (or their home page)."""
    if next_url:
        session["two_factor_next"] = next_url
    return redirect(open_staff_session(user, method))


@bp.post("/logout")
@roles(*ALL_STAFF)
def logout():
    """Sign out: end the session on the server and forget the cookie."""
    end_session(db.session, g.staff_session)
    audit.record(db.session, "sign_out", actor_id=g.staff.id, address=request.remote_addr or "")
    session.clear()
    return redirect(url_for("staff.login", signed_out=1))


@bp.post("/session/extend")
@roles(*ALL_STAFF)
def extend():
    """Stay signed in: restart the idle timer now."""
    g.staff_session.last_seen_at = utcnow()
    db.session.commit()
    if request.accept_mimetypes.best == "application/json":
        return jsonify(idle_seconds=int(current_app.config["STAFF_IDLE"].total_seconds()))
    return redirect(_safe_next(request.form.get("next")) or url_for("staff.home"))


@bp.get("/session/status")
@roles(*ALL_STAFF)
def session_status():
    """How long the session has before the idle time-out: the page's countdown asks; nothing is renewed."""
    seen = g.staff_session.last_seen_at
    seen = seen if seen.tzinfo else seen.replace(tzinfo=dt.timezone.utc)
    left = current_app.config["STAFF_IDLE"] - (utcnow() - seen)
    return jsonify(idle_seconds_left=max(0, int(left.total_seconds())))


@bp.get("/")
@roles(*ALL_STAFF)
def home():
    """Send each person to the page their role starts on."""
    for endpoint, needed in current_app.config["STAFF_HOMES"]:
        if g.staff.has_role(needed) and endpoint in current_app.view_functions:
            return redirect(url_for(endpoint))
    return render_template("staff/home.html")


from . import review  # noqa
from . import desk, admin, people  # noqa: E402,F401
from . import twofactor_views  # noqa: E402,F401
