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


def sign_in(client, email):
    """Sign in through the login form; the sign-in must succeed."""
    page = client.get("/staff/login")
    response = client.post("/staff/login", data={"csrf_token": csrf_token(page.text), "email": email,
                                                  "password": PASSWORD})
    assert response.status_code == 302
    return response
