"""Staff access control: every staff view names the roles that may use it; anything else is refused."""

from __future__ import annotations

from functools import wraps

from flask import abort, current_app, g, redirect, request, session, url_for

from .. import audit
from ..extensions import db
from .accounts import SessionEnded, resume

PUBLIC_ENDPOINTS = {"staff.login"}
# A forgotten password and the emailed links (staff/people.py) are for people who cannot sign in.
PUBLIC_ENDPOINTS |= {"staff.forgotten_password", "staff.follow_account_link", "staff.choose_password",
                     "staff.password_done"}
# A request the page makes by itself (staff.js asking how long the session has left) carries this header: it
# never renews the idle timer and, signed out, gets a 401 rather than the sign-in page.
AUTOMATIC_HEADER = "X-Screening-Automatic"


def automatic() -> bool:
    """Whether the page's own script sent this request, not the person using it."""
    return request.headers.get(AUTOMATIC_HEADER) == "1" or request.endpoint == "staff.session_status"


def roles(*names: str):
    """Declare which roles may use a staff view (one of them suffices)."""

    def decorate(view):
        view.required_roles = frozenset(names)

        @wraps(view)
        def wrapper(*args, **kwargs):
            return view(*args, **kwargs)

        wrapper.required_roles = view.required_roles
        return wrapper

    return decorate


def load_staff_user() -> None:
    """Resolve the signed-in staff member for this request (g.staff), ending stale sessions."""
    g.staff = None
    g.staff_session = None
    token = session.get("staff")
    if not token:
        return
    try:
        g.staff_session, g.staff = resume(db.session, token, current_app.config["STAFF_IDLE"],
                                          current_app.config["STAFF_LIFETIME"], touch=not automatic())
    except SessionEnded as ended:
        session.pop("staff", None)
        if ended.reason in ("idle", "lifetime"):
            audit.record(db.session, "session_expired", detail=ended.reason, address=request.remote_addr or "")
        g.session_ended = ended.reason


def guard():
    """Refuse every staff request that is not signed in with a role the view declares (deny by default)."""
    load_staff_user()
    endpoint = request.endpoint
    if request.headers.get(AUTOMATIC_HEADER) == "1" and endpoint != "staff.session_status":
        abort(400)  # the page's script asks only how long is left; it never loads (and so views) a page
    if endpoint in PUBLIC_ENDPOINTS or endpoint is None:
        return None
    view = current_app.view_functions.get(endpoint)
    allowed = getattr(view, "required_roles", None)
    if g.staff is None:
        if request.method == "GET" and not automatic():
            return redirect(url_for("staff.login", next=request.path, expired=getattr(g, "session_ended", None)))
        abort(401)
    if not allowed or not g.staff.has_role(*allowed):
        abort(403)
    return None


def check_every_view_declares_roles(app) -> None:
    """Refuse to start if a staff view forgot to declare its roles."""
    for endpoint, view in app.view_functions.items():
        if endpoint.startswith("staff.") and endpoint not in PUBLIC_ENDPOINTS:
            if not getattr(view, "required_roles", None):
                raise RuntimeError(f"staff view {endpoint} does not declare its roles")
