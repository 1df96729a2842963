"""Staff accounts and sign-in for tests."""

from __future__ import annotations

from screening.extensions import db
from screening.staff.accounts import create_user
from tests.web import csrf_token

PASSWORD = "correct horse battery"


def add_user(app, email, roles):
    """Create an account named after the email's local part; return its id."""
    with app.app_context():
        return create_user(db.session, email, email.split("@")[0].title(), list(roles), PASSWORD).id


def sign_in(client, email, code=None):
    """Sign in through the login form; the sign-in must succeed.

    An account with a second factor is asked for it next: ``code`` (a code from its app, or a recovery code) is
    given on the second step's page.
    """
    page = client.get("/staff/login")
    response = client.post("/staff/login", data={"csrf_token": csrf_token(page.text), "email": email,
                                                  "password": PASSWORD})
    assert response.status_code == 302
    if code is not None:
        assert response.location.endswith("/staff/login/two-factor"), response.location
        page = client.get(response.location)
        response = client.post(response.location, data={"csrf_token": csrf_token(page.text), "code": code})
        assert response.status_code == 302, response.status_code
    return response


def enrol_totp(app, email) -> str:
    """Give the account of ``email`` a confirmed authenticator app (as its set-up page would); return the secret."""
    import pyotp
    from sqlalchemy import select

    from screening.models import StaffUser
    from screening.staff import twofactor

    with app.app_context(), app.test_request_context():
        user = db.session.scalar(select(StaffUser).where(StaffUser.email == email))
        row = twofactor.start_totp(db.session, user)
        secret = str(row.secret)
        assert twofactor.confirm_totp(db.session, user, pyotp.TOTP(secret).now())
        return secret


def recovery_codes(app, email) -> list[str]:
    """Make the account's ten recovery codes; return them."""
    from sqlalchemy import select

    from screening.models import StaffUser
    from screening.staff import twofactor

    with app.app_context(), app.test_request_context():
        user = db.session.scalar(select(StaffUser).where(StaffUser.email == email))
        return twofactor.new_recovery_codes(db.session, user)
