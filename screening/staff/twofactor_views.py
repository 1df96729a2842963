"""Two-factor sign-in pages: the second step of sign-in, setting up a first factor, the Security page, the admin's reset.

The logic is in twofactor.py. The second step and the set-up during sign-in are reached with a pending sign-in's
token (``session["two_factor"]``), never with a staff session: they are public endpoints of the staff blueprint
that check the token themselves, and they open nothing else.
"""

from __future__ import annotations

import time

from flask import abort, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import HiddenField, StringField
from wtforms.validators import Length, Optional

from .. import audit
from ..extensions import db
from ..models import StaffUser
from . import throttle, twofactor
from .access import PUBLIC_ENDPOINTS, roles
from .twofactor import TwoFactorError
from .views import ALL_STAFF, bp, complete_sign_in, hold_if_throttled, open_staff_session

# The second step of sign-in and the first set-up check the pending sign-in's token themselves.
SIGN_IN_STEPS = {"staff.second_factor", "staff.passkey_options", "staff.passkey_sign_in", "staff.enrol",
                 "staff.enrol_passkey_options", "staff.enrol_passkey"}
PUBLIC_ENDPOINTS.update(SIGN_IN_STEPS)
# Where a signed-in account that must have a second factor, and has none, may still go (to set one up).
ENROLMENT_OPEN = {"staff.security", "staff.security_totp", "staff.passkey_register_options", "staff.passkey_register",
                  "staff.logout", "staff.session_status", "staff.extend", "staff.recovery_codes"}
REGISTRATION_SECONDS = 300  # a passkey registration's challenge, kept in the signed session, lasts this long


class CodeForm(FlaskForm):
    """A six-digit code from an app, or a recovery code."""

    code = StringField(validators=[Optional(), Length(max=40)])


class PasskeyForm(FlaskForm):
    """A passkey's name, and the browser's answer (JSON, posted by passkey.js)."""

    name = StringField(validators=[Optional(), Length(max=twofactor.MAX_PASSKEY_NAME)])
    credential = HiddenField(validators=[Optional(), Length(max=twofactor.MAX_CREDENTIAL)])


class PasskeyChoiceForm(FlaskForm):
    """One of the signed-in user's passkeys, and a new name for it."""

    passkey = HiddenField(validators=[Optional(), Length(max=12)])
    name = StringField(validators=[Optional(), Length(max=twofactor.MAX_PASSKEY_NAME)])


def _address() -> str:
    return request.remote_addr or ""


@bp.before_request
def enrolment_first():
    """A signed-in account whose role needs a second factor and has none goes to set one up before anything else.

    (Sign-in opens no session before that; this covers a session older than the requirement.)
    """
    user = g.get("staff")
    if user is None or request.endpoint in ENROLMENT_OPEN or request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if twofactor.required(user) and not twofactor.factor_count(db.session, user):
        if request.method == "GET":
            return redirect(url_for("staff.security"))
        abort(403)
    return None


def _pending(purpose: str):
    """(the pending sign-in, its account) of this browser for ``purpose``, or None."""
    return twofactor.load_pending(db.session, session.get("two_factor"), purpose)


def _json_error(message: str, status: int = 400):
    return jsonify(error=message), status


def _start_again():
    session.pop("two_factor", None)
    return redirect(url_for("staff.login", expired="two_factor"))


# -- the second step of sign-in ----------------------------------------------------------------------------------


def _second_factor_page(form, user, errors: dict, status: int):
    summary = [("code", errors["code"])] if errors.get("code") else []
    return render_template("staff/two_factor.html", form=form, errors=errors, summary=summary,
                           has_app=twofactor.confirmed_totp(db.session, user) is not None,
                           has_passkey=bool(twofactor.passkeys(db.session, user))), status


@bp.route("/login/two-factor", methods=["GET", "POST"])
def second_factor():
    """The second step of sign-in: a code from the authenticator app, a recovery code, or a passkey (passkey.js)."""
    found = _pending("verify")
    if found is None:
        return _start_again() if request.method == "GET" else abort(401)
    row, user = found
    form = CodeForm()
    if request.method == "GET" or not form.validate_on_submit():
        return _second_factor_page(form, user, {}, 200 if request.method == "GET" else 400)
    code = form.code.data or ""
    if not code.strip():  # nothing typed: not a guess
        return _second_factor_page(form, user, {"code": _("Enter the code from your authenticator app, or a "
                                                          "recovery code")}, 400)
    who = throttle.attempt(user.email)
    hold_if_throttled(who)
    method = None
    if twofactor.check_totp(db.session, user, code):
        method = "totp"
    elif twofactor.use_recovery_code(db.session, user, code):
        method = "recovery_code"
        left = twofactor.unused_recovery_codes(db.session, user)
        audit.record(db.session, "recovery_code_used", actor_id=user.id, detail=f"left={left}", address=_address(),
                     commit=False)
    if method is None:
        db.session.rollback()
        audit.record(db.session, "two_factor_failed", actor_id=user.id, detail=who.detail("code"), address=_address())
        form.code.data = ""
        message = _("That code is not right. Enter the 6-digit code your authenticator app shows now, or one of "
                    "your recovery codes")
        return _second_factor_page(form, user, {"code": message}, 401)
    twofactor.end_pending(db.session, row)
    if method == "recovery_code":
        session["two_factor_next"] = url_for("staff.security")
    target = open_staff_session(user, method)
    if method == "recovery_code":
        flash(_("You signed in with a recovery code: it cannot be used again. You have %(n)s left. If you have lost "
                "your phone or security key, set up a new one on this page.", n=left))
    return redirect(target)


@bp.post("/login/passkey/options")
def passkey_options():
    """The options for navigator.credentials.get: this account's passkeys and a new challenge (kept on the server)."""
    found = _pending("verify")
    if found is None:
        return _json_error(_("Your sign-in has expired. Start again."), 401)
    row, user = found
    hold_if_throttled(throttle.attempt(user.email))
    if not twofactor.passkeys(db.session, user):
        return _json_error(_("This account has no passkey. Use your authenticator app or a recovery code."))
    options, row.challenge = twofactor.authentication_options(db.session, user)
    db.session.commit()
    return options, 200, {"Content-Type": "application/json"}


@bp.post("/login/passkey")
def passkey_sign_in():
    """Check the passkey's answer to the challenge (used once) and sign in."""
    found = _pending("verify")
    if found is None:
        return _json_error(_("Your sign-in has expired. Start again."), 401)
    row, user = found
    form = PasskeyForm()
    if not form.validate_on_submit():
        return _json_error(_("The browser's answer could not be read. Try again."))
    who = throttle.attempt(user.email)
    hold_if_throttled(who)
    challenge, row.challenge = row.challenge, None
    db.session.commit()  # the challenge is spent whatever the answer
    key = twofactor.check_passkey(db.session, user, form.credential.data, challenge)
    if key is None:
        db.session.rollback()
        audit.record(db.session, "two_factor_failed", actor_id=user.id, detail=who.detail("passkey"),
                     address=_address())
        return _json_error(_("That passkey was not accepted. Try again, or use your authenticator app or a "
                             "recovery code."))
    twofactor.end_pending(db.session, row)
    return jsonify(redirect=open_staff_session(user, "passkey"))


# -- setting up a first second factor, during sign-in ------------------------------------------------------------


def _totp_context(user, form, errors):
    totp = twofactor.start_totp(db.session, user)
    return {"form": form, "errors": errors, "summary": [("code", errors["code"])] if errors.get("code") else [],
            "qr": Markup(twofactor.qr_svg(user, totp.secret, _("QR code to scan with an authenticator app"))),
            "secret": twofactor.spaced(totp.secret), "otpauth": twofactor.provisioning_uri(user, totp.secret),
            "passkey_form": PasskeyForm(), "user": user}


@bp.route("/login/set-up", methods=["GET", "POST"])
def enrol():
    """An account that must have a second factor and has none sets one up before its first staff page."""
    found = _pending("enrol")
    if found is None:
        return _start_again() if request.method == "GET" else abort(401)
    row, user = found
    form = CodeForm()
    if request.method == "GET" or not form.validate_on_submit():
        return render_template("staff/enrol.html", **_totp_context(user, form, {})), (
            200 if request.method == "GET" else 400)
    if not twofactor.confirm_totp(db.session, user, form.code.data or "", address=_address()):
        form.code.data = ""
        errors = {"code": _("That code is not right. Enter the 6-digit code the app shows now.")}
        return render_template("staff/enrol.html", **_totp_context(user, form, errors)), 400
    twofactor.end_pending(db.session, row)
    open_staff_session(user, "totp_set_up")
    return redirect(url_for("staff.recovery_codes", first=1))


@bp.post("/login/set-up/passkey/options")
def enrol_passkey_options():
    """The options for navigator.credentials.create during sign-in's set-up (the challenge kept on the server)."""
    found = _pending("enrol")
    if found is None:
        return _json_error(_("Your sign-in has expired. Start again."), 401)
    row, user = found
    try:
        options, row.challenge = twofactor.registration_options(db.session, user)
    except TwoFactorError as exc:
        return _json_error(str(exc))
    db.session.commit()
    return options, 200, {"Content-Type": "application/json"}


@bp.post("/login/set-up/passkey")
def enrol_passkey():
    """Keep the new passkey, then sign in."""
    found = _pending("enrol")
    if found is None:
        return _json_error(_("Your sign-in has expired. Start again."), 401)
    row, user = found
    form = PasskeyForm()
    if not form.validate_on_submit():
        return _json_error(_("The name or the browser's answer is too long."))
    challenge = row.challenge
    try:
        twofactor.clean_name(form.name.data)  # a wrong name keeps the challenge: the person corrects it
        row.challenge = None
        db.session.commit()
        twofactor.add_passkey(db.session, user, form.credential.data, challenge, form.name.data or "",
                              address=_address())
    except TwoFactorError as exc:
        db.session.rollback()
        return _json_error(str(exc))
    twofactor.end_pending(db.session, row)
    open_staff_session(user, "passkey_set_up")
    return jsonify(redirect=url_for("staff.recovery_codes", first=1))


# -- the Security page of the signed-in member of staff ----------------------------------------------------------


def _security_page(errors: dict | None = None, status: int = 200):
    errors = errors or {}
    user = g.staff
    return render_template("staff/security.html", keys=twofactor.passkeys(db.session, user),
                           app=twofactor.confirmed_totp(db.session, user),
                           codes_left=twofactor.unused_recovery_codes(db.session, user),
                           required=twofactor.required(user), choice=PasskeyChoiceForm(), passkey_form=PasskeyForm(),
                           errors=errors, summary=list(errors.items())), status


@bp.get("/account/security")
@roles(*ALL_STAFF)
def security():
    """The signed-in user's passkeys, authenticator app and recovery codes."""
    return _security_page()


@bp.route("/account/security/app", methods=["GET", "POST"])
@roles(*ALL_STAFF)
def security_totp():
    """Set up an authenticator app, or replace the one set up (the old one works until the new one is confirmed)."""
    form = CodeForm()
    if request.method == "GET" or not form.validate_on_submit():
        return render_template("staff/totp.html", **_totp_context(g.staff, form, {}),
                               replacing=twofactor.confirmed_totp(db.session, g.staff) is not None), (
            200 if request.method == "GET" else 400)
    first = not twofactor.factor_count(db.session, g.staff)
    if not twofactor.confirm_totp(db.session, g.staff, form.code.data or "", address=_address()):
        form.code.data = ""
        errors = {"code": _("That code is not right. Enter the 6-digit code the app shows now.")}
        return render_template("staff/totp.html", **_totp_context(g.staff, form, errors),
                               replacing=twofactor.confirmed_totp(db.session, g.staff) is not None), 400
    if first or not twofactor.unused_recovery_codes(db.session, g.staff):
        return redirect(url_for("staff.recovery_codes", first=1))
    flash(_("Your authenticator app is set up. Its codes now sign you in."))
    return redirect(url_for("staff.security"))


@bp.post("/account/security/app/remove")
@roles(*ALL_STAFF)
def security_totp_remove():
    """Remove the authenticator app (not the last second factor when the role needs one)."""
    try:
        twofactor.remove_totp(db.session, g.staff, address=_address())
    except TwoFactorError as exc:
        return _security_page({"app": str(exc)}, 400)
    flash(_("The authenticator app is removed: its codes no longer sign you in."))
    return redirect(url_for("staff.security"))


def _registration_challenge() -> str | None:
    """Spend the registration challenge kept in the session (signed; it lasts REGISTRATION_SECONDS)."""
    kept = session.pop("passkey_challenge", None)
    if not isinstance(kept, list) or len(kept) != 3 or kept[0] != g.staff.id:
        return None
    if not isinstance(kept[2], (int, float)) or time.time() - kept[2] > REGISTRATION_SECONDS:
        return None
    return kept[1] if isinstance(kept[1], str) else None


@bp.post("/account/security/passkeys/options")
@roles(*ALL_STAFF)
def passkey_register_options():
    """The options for navigator.credentials.create (passkey.js)."""
    try:
        options, challenge = twofactor.registration_options(db.session, g.staff)
    except TwoFactorError as exc:
        return _json_error(str(exc))
    session["passkey_challenge"] = [g.staff.id, challenge, time.time()]
    return options, 200, {"Content-Type": "application/json"}


@bp.post("/account/security/passkeys")
@roles(*ALL_STAFF)
def passkey_register():
    """Keep a new passkey (the browser's answer to the options' challenge, which is used once)."""
    form = PasskeyForm()
    if not form.validate_on_submit():
        return _json_error(_("The name or the browser's answer is too long."))
    first = not twofactor.factor_count(db.session, g.staff)
    try:
        twofactor.clean_name(form.name.data)
        twofactor.add_passkey(db.session, g.staff, form.credential.data, _registration_challenge(),
                              form.name.data or "", address=_address())
    except TwoFactorError as exc:
        db.session.rollback()
        return _json_error(str(exc))
    if first or not twofactor.unused_recovery_codes(db.session, g.staff):
        return jsonify(redirect=url_for("staff.recovery_codes", first=1))
    flash(_("The passkey is added."))
    return jsonify(redirect=url_for("staff.security"))


def _chosen_passkey(form):
    return twofactor.find_passkey(db.session, g.staff, form.passkey.data)


@bp.post("/account/security/passkeys/rename")
@roles(*ALL_STAFF)
def passkey_rename():
    """Give one of your passkeys another name."""
    form = PasskeyChoiceForm()
    if not form.validate_on_submit():
        return _security_page({"passkeys": _("Choose a passkey from the list, and a name of at most %(n)s "
                                             "characters.", n=twofactor.MAX_PASSKEY_NAME)}, 400)
    try:
        key = _chosen_passkey(form)
        twofactor.rename_passkey(db.session, g.staff, key, form.name.data, address=_address())
    except TwoFactorError as exc:
        db.session.rollback()
        key_id = form.passkey.data if (form.passkey.data or "").isdigit() else ""
        return _security_page({f"passkey-{key_id}" if key_id else "passkeys": str(exc)}, 400)
    flash(_("The passkey is renamed."))
    return redirect(url_for("staff.security"))


@bp.post("/account/security/passkeys/remove")
@roles(*ALL_STAFF)
def passkey_remove():
    """Remove one of your passkeys (not the last second factor when the role needs one)."""
    form = PasskeyChoiceForm()
    if not form.validate_on_submit():
        return _security_page({"passkeys": _("Choose a passkey from the list.")}, 400)
    try:
        key = _chosen_passkey(form)
        twofactor.remove_passkey(db.session, g.staff, key, address=_address())
    except TwoFactorError as exc:
        return _security_page({"passkeys": str(exc)}, 400)
    flash(_("The passkey is removed: it no longer signs you in."))
    return redirect(url_for("staff.security"))


@bp.route("/account/security/recovery-codes", methods=["GET", "POST"])
@roles(*ALL_STAFF)
def recovery_codes():
    """Make ten new recovery codes (the old ones stop working) and show them, once."""
    form = FlaskForm()
    first = request.args.get("first") == "1"
    has_factor = bool(twofactor.factor_count(db.session, g.staff))
    if request.method == "GET" or not form.validate_on_submit() or not has_factor:
        status = 200 if request.method == "GET" else 400
        return render_template("staff/recovery_codes.html", form=form, codes=None, first=first, has_factor=has_factor,
                               left=twofactor.unused_recovery_codes(db.session, g.staff)), status
    codes = twofactor.new_recovery_codes(db.session, g.staff, address=_address())
    return render_template("staff/recovery_codes.html", form=form, codes=codes, first=first, has_factor=True,
                           left=len(codes))


# -- an admin resets someone's second factors --------------------------------------------------------------------


@bp.route("/admin/users/<int(max=2147483647):user_id>/two-factor", methods=["GET", "POST"])
@roles("admin")
def reset_two_factor(user_id: int):
    """Remove a member of staff's second factors (a lost phone): a confirmation naming them, then an email to them."""
    user = db.session.get(StaffUser, user_id)
    if user is None:
        abort(404)
    form = FlaskForm()
    counts = {"keys": len(twofactor.passkeys(db.session, user)),
              "app": twofactor.confirmed_totp(db.session, user) is not None,
              "codes": twofactor.unused_recovery_codes(db.session, user)}
    if request.method == "GET" or not form.validate_on_submit():
        return render_template("staff/two_factor_reset.html", person=user, form=form, errors={}, summary=[],
                               **counts), 200 if request.method == "GET" else 400
    try:
        twofactor.reset(db.session, user, by=g.staff, address=_address())
    except TwoFactorError as exc:
        errors = {"confirm": str(exc)}
        return render_template("staff/two_factor_reset.html", person=user, form=form, errors=errors,
                               summary=list(errors.items()), **counts), 400
    flash(_("%(name)s’s second factors are removed and they are signed out. They have been emailed: at their next "
            "sign-in they set up a new one.", name=user.name))
    return redirect(url_for("staff.users"))


from . import twofactor_cli  # noqa: F401 - its command joins `flask screening`

__all__ = ["complete_sign_in"]
