"""Staff accounts in the browser: admins invite, change roles, deactivate and reactivate; anyone who has forgotten
their password asks for a reset link; an emailed link (invitation or reset) sets a password.

The use cases and their rules are in staff/people_services.py (the command line calls the same ones). A link's token
is in the URL only on the first request: it is swapped at once for the link's id in the signed session cookie and
the browser is sent on to a URL without it, so it is not in the history, a Referer or a later log line (and
``flask run``'s request log shows ``/staff/link/[token]``: logsafe.py). An unknown, used, expired or superseded link
answers with the same page, byte for byte.
"""

from __future__ import annotations

import time

from flask import abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional
from wtforms.widgets import CheckboxInput, ListWidget

from ..extensions import db, limiter
from ..models import StaffUser
from . import people_services as people
from .access import roles
from .accounts import AccountError
from .passwords import MAX_LENGTH, MIN_LENGTH
from .views import bp

ROLE_CHOICES = [
    SelectChoice("practitioner", "Practitioner: reviews screenings and signs them off"),
    SelectChoice("desk", "Intake desk: today’s clients, arrivals, desk sheets and the kiosk"),
    SelectChoice("admin", "Admin: staff accounts, the audit trail and the booking systems’ API tokens"),
]
LINK_KEY = "account_link"  # the session's key for the link being used (its id, never its token)
# The forgotten-password form answers no sooner than this, whether or not the address has an account, so that
# the time taken does not tell them apart (the work done differs by one insert and a queued message).
RESET_ANSWER_SECONDS = 0.5


def _text(field) -> str:
    return (field.raw_data[0] if field.raw_data else "") or ""


class InviteForm(FlaskForm):
    """Name, email and roles of a new member of staff."""

    name = StringField("Full name", validators=[Optional()])
    email = EmailField("Email address", validators=[Optional()],
                       description="The invitation is sent here; it is also what they sign in with.")
    roles = SelectMultipleField("Roles", choices=ROLE_CHOICES, validators=[Optional()], validate_choice=False,
                                widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())


class RolesForm(FlaskForm):
    """The roles an account holds."""

    roles = SelectMultipleField("Roles", choices=ROLE_CHOICES, validators=[Optional()], validate_choice=False,
                                widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())


class ForgottenForm(FlaskForm):
    """The email address of the account whose password is forgotten."""

    email = EmailField("Email address", validators=[Optional()])


class PasswordForm(FlaskForm):
    """A new password, typed twice (no length limit here: the rules of staff/passwords.py say what is allowed)."""

    password = PasswordField("New password", validators=[Optional()])
    confirm = PasswordField("Type the new password again", validators=[Optional()])


def _csrf_or_400(form: FlaskForm) -> None:
    if not form.validate() and "csrf_token" in form.errors:
        abort(400)


def _user_or_404(user_id: int) -> StaffUser:
    user = db.session.get(StaffUser, user_id)
    if user is None:
        abort(404)
    return user


def _address() -> str:
    return request.remote_addr or ""


# -- admins: the list, inviting, one person's account ------------------------------------------------------


@bp.get("/admin/users")
@roles("admin")
def users():
    """List staff accounts with where each stands; invite someone."""
    return render_template("staff/users.html", users=people.list_users(db.session), is_set_up=people.is_set_up)


@bp.route("/admin/users/invite", methods=["GET", "POST"])
@roles("admin")
def invite_user():
    """Invite a member of staff: they are emailed a link to choose their password."""
    form = InviteForm()
    errors: dict[str, str] = {}
    if request.method == "POST":
        _csrf_or_400(form)
        fields = {"name": _text(form.name), "email": _text(form.email), "roles": form.roles.raw_data or []}
        for key, check in (("name", people.check_name), ("email", people.check_email),
                           ("roles", people.check_roles)):
            try:
                check(fields[key])
            except AccountError as exc:
                errors[key] = str(exc)
        if not errors:
            try:
                user = people.invite(db.session, email=fields["email"], name=fields["name"], roles=fields["roles"],
                                     actor_id=g.staff.id, address=_address())
            except AccountError as exc:
                errors["email"] = str(exc)
            else:
                flash(_("%(name)s is invited: an email with a link to choose a password is on its way to "
                        "%(email)s.", name=user.name, email=user.email))
                return redirect(url_for(".user_account", user_id=user.id), code=303)
    summary = [(f"{key}-0" if key == "roles" else key, message) for key, message in errors.items()]
    return render_template("staff/invite.html", form=form, errors=errors, summary=summary), (400 if errors else 200)


def _account_page(user: StaffUser, errors: dict[str, str] | None = None, form: RolesForm | None = None):
    errors = errors or {}
    if form is None:
        form = RolesForm(formdata=None, roles=user.roles.split(","))
    summary = [(f"{key}-0" if key == "roles" else key, message) for key, message in errors.items()]
    return render_template("staff/user.html", user=user, form=form, errors=errors, summary=summary,
                           is_set_up=people.is_set_up(user), invitation=people.invitation_state(db.session, user),
                           # the two-factor reset (staff/twofactor_views.py), when that part of the app is there
                           can_reset_two_factor="staff.reset_two_factor" in current_app.view_functions), \
        (400 if errors else 200)


# max: a larger number is no account (a 404), and must not reach the database (a 32-bit integer column).
@bp.get("/admin/users/<int(max=2147483647):user_id>")
@roles("admin")
def user_account(user_id: int):
    """One person's account: roles, invitation, deactivate or reactivate."""
    return _account_page(_user_or_404(user_id))


@bp.post("/admin/users/<int(max=2147483647):user_id>/roles")
@roles("admin")
def change_roles(user_id: int):
    """Give an account the roles ticked (never taking away your own admin role or the last admin's)."""
    user = _user_or_404(user_id)
    form = RolesForm()
    _csrf_or_400(form)
    try:
        changed = people.change_roles(db.session, user, form.roles.raw_data or [], by=g.staff, address=_address())
    except AccountError as exc:
        return _account_page(user, {"roles": str(exc)}, form)
    if changed:
        flash(_("%(name)s’s roles are now: %(roles)s.", name=user.name, roles=", ".join(user.roles.split(","))))
    else:
        flash(_("Nothing changed: %(name)s already had those roles.", name=user.name))
    return redirect(url_for(".user_account", user_id=user.id), code=303)


@bp.post("/admin/users/<int(max=2147483647):user_id>/invite")
@roles("admin")
def resend_invite(user_id: int):
    """Email a new invitation link; the one sent before stops working."""
    user = _user_or_404(user_id)
    _csrf_or_400(FlaskForm())
    try:
        people.resend_invitation(db.session, user, actor_id=g.staff.id, address=_address())
    except AccountError as exc:
        return _account_page(user, {"invitation": str(exc)})
    flash(_("A new invitation is on its way to %(email)s. The link sent before no longer works.", email=user.email))
    return redirect(url_for(".user_account", user_id=user.id), code=303)


@bp.route("/admin/users/<int(max=2147483647):user_id>/deactivate", methods=["GET", "POST"])
@roles("admin")
def deactivate(user_id: int):
    """Ask "Deactivate Pat Smith (pat@clinic.example)?"; the POST deactivates (never your own account)."""
    user = _user_or_404(user_id)
    form = FlaskForm()
    errors: dict[str, str] = {}
    if request.method == "POST":
        _csrf_or_400(form)
        try:
            people.deactivate(db.session, user, by=g.staff, address=_address())
        except AccountError as exc:
            errors["confirm"] = str(exc)
        else:
            flash(_("%(email)s is deactivated and signed out everywhere.", email=user.email))
            return redirect(url_for(".users"), code=302)
    summary = [("confirm", message) for message in errors.values()]
    return render_template("staff/deactivate.html", user=user, form=form, errors=errors, summary=summary), \
        (400 if errors else 200)


@bp.post("/admin/users/<int(max=2147483647):user_id>/reactivate")
@roles("admin")
def reactivate(user_id: int):
    """Let a deactivated account sign in again."""
    user = _user_or_404(user_id)
    _csrf_or_400(FlaskForm())
    try:
        people.reactivate(db.session, user, by=g.staff, address=_address())
    except AccountError as exc:
        return _account_page(user, {"reactivate": str(exc)})
    flash(_("%(name)s’s account is active again: they can sign in with their password.", name=user.name))
    return redirect(url_for(".user_account", user_id=user.id), code=303)


# -- anyone: a forgotten password, and the emailed links ---------------------------------------------------


def _reset_limit_key() -> str:
    from ..security import client_key  # (security imports the kiosk, which imports the staff package)

    return "password-reset:" + client_key()


@bp.route("/password/forgotten", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["PASSWORD_RESET_LIMIT"], key_func=_reset_limit_key, methods=["POST"])
def forgotten_password():
    """Ask for a reset link by email: the same answer, in the same time, whether or not the address has an account."""
    form = ForgottenForm()
    errors: dict[str, str] = {}
    if request.method == "POST":
        started = time.monotonic()
        _csrf_or_400(form)
        try:
            email = people.check_email(_text(form.email))
        except AccountError as exc:
            errors["email"] = _("Enter your email address") if not _text(form.email).strip() else str(exc)
        else:
            people.request_reset(db.session, email, address=_address())
            time.sleep(max(0.0, float(current_app.config.get("PASSWORD_RESET_ANSWER_SECONDS", RESET_ANSWER_SECONDS))
                           - (time.monotonic() - started)))
            return render_template("staff/password_sent.html", email=email,
                                   minutes=int(float(current_app.config["PASSWORD_RESET_MINUTES"])))
    summary = [(key, message) for key, message in errors.items()]
    return render_template("staff/forgotten.html", form=form, errors=errors, summary=summary), \
        (400 if errors else 200)


def _gone():
    # The same bytes for an unknown, a used, an expired and a superseded link, and for a deactivated account's.
    return render_template("staff/link_gone.html"), 404


@bp.get("/link/<token>")
@limiter.limit("30 per minute")
def follow_account_link(token: str):
    """Swap an emailed link's token for its id in the session, then go on to a page without the token in its URL."""
    try:
        opened = people.open_link(db.session, token)
    except people.LinkGone:
        session.pop(LINK_KEY, None)
        return _gone()
    session[LINK_KEY] = opened.link_id
    return redirect(url_for(".choose_password"), code=303)


@bp.route("/password/new", methods=["GET", "POST"])
def choose_password():
    """Choose a password through the link just followed (an invitation or a reset)."""
    form = PasswordForm()
    if request.method == "POST":
        _csrf_or_400(form)  # before the link is looked at, as on every form
    try:
        opened = people.open_link_id(db.session, session.get(LINK_KEY))
    except people.LinkGone:
        session.pop(LINK_KEY, None)
        return _gone()
    errors: dict[str, str] = {}
    if request.method == "POST":
        password, confirm = _text(form.password), _text(form.confirm)
        if not password:
            errors["password"] = _("Enter a new password")
        elif password != confirm:
            errors["confirm"] = _("The two passwords are not the same: type the new password again")
        else:
            try:
                people.set_password_by_link(db.session, opened.link_id, password, address=_address())
            except people.LinkGone:
                session.pop(LINK_KEY, None)
                return _gone()
            except AccountError as exc:
                errors["password"] = str(exc)
            else:
                session.pop(LINK_KEY, None)
                return redirect(url_for(".password_done", set_up=1 if opened.purpose == people.INVITE else None),
                                code=303)
    summary = [(key, message) for key, message in errors.items()]
    form.password.data = form.confirm.data = ""  # a password is never sent back in a page
    return render_template("staff/choose_password.html", form=form, errors=errors, summary=summary,
                           user=opened.user, is_invite=opened.purpose == people.INVITE,
                           minimum=MIN_LENGTH, maximum=MAX_LENGTH), (400 if errors else 200)


@bp.get("/password/done")
def password_done():
    """Say that the password is set, and where to sign in."""
    return render_template("staff/password_done.html", set_up=request.args.get("set_up") == "1")
