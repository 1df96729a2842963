"""Staff sign-in, sign-out and session upkeep. Other staff views live beside this module."""

from __future__ import annotations

import hashlib

from flask import Blueprint, current_app, g, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import Length, Optional

from .. import audit
from ..extensions import db, limiter
from .access import guard, roles
from ..models import utcnow
from .accounts import authenticate, end_session, normalise_email, open_session

bp = Blueprint("staff", __name__, url_prefix="/staff")
bp.before_request(guard)

ALL_STAFF = ("admin", "practitioner", "desk")


class LoginForm(FlaskForm):
    """Email and password."""

    email = EmailField(validators=[Optional(), Length(max=254)])
    password = PasswordField(validators=[Optional(), Length(max=200)])


def _account_key() -> str:
    email = normalise_email(request.form.get("email", ""))
    return "account:" + hashlib.sha256(email.encode()).hexdigest()


def _failed(response) -> bool:
    return response.status_code == 401


def _safe_next(target: str | None) -> str | None:
    # isprintable: a newline would split the Location header (a 500), and no staff URL has a control character.
    if target and target.startswith("/staff/") and not target.startswith("//") and target.isprintable():
        return target
    return None


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["STAFF_LOGIN_LIMIT_ADDRESS"], methods=["POST"], deduct_when=_failed)
@limiter.limit(lambda: current_app.config["STAFF_LOGIN_LIMIT_ACCOUNT"], methods=["POST"], deduct_when=_failed,
               key_func=_account_key)
def login():
    """Sign in with email and password."""
    form = LoginForm()
    expired = request.args.get("expired")
    if request.method == "GET" or not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("staff/login.html", form=form, errors={}, expired=expired), status
    user = authenticate(db.session, form.email.data or "", form.password.data or "")
    address = request.remote_addr or ""
    if user is None:
        audit.record(db.session, "sign_in_failed", address=address)
        errors = {"email": _("Email or password is incorrect")}
        form.password.data = ""
        return render_template("staff/login.html", form=form, errors=errors,
                               summary=[("email", errors["email"])]), 401
    token = open_session(db.session, user)
    session.clear()  # a fresh session: nothing from before sign-in carries over
    session["staff"] = token
    audit.record(db.session, "sign_in", actor_id=user.id, address=address)
    return redirect(_safe_next(request.args.get("next")) or url_for("staff.home"))


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


@bp.get("/")
@roles(*ALL_STAFF)
def home():
    """Send each person to the page their role starts on."""
    for endpoint, needed in current_app.config["STAFF_HOMES"]:
        if g.staff.has_role(needed) and endpoint in current_app.view_functions:
            return redirect(url_for(endpoint))
    return render_template("staff/home.html")


from . import review  # noqa
from . import desk, admin  # noqa: E402,F401
