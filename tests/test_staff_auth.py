"""Staff accounts, sign-in, lockout, sessions and the audit of each."""

import datetime as dt

import pytest
from sqlalchemy import select

from screening.extensions import db
from screening.models import AuditEvent, StaffSession, StaffUser
from screening.staff.accounts import create_user
from tests.web import csrf_token

PASSWORD = "correct horse battery"


def add_user(app, email="prac@clinic.test", roles=("practitioner",), password=PASSWORD):
    with app.app_context():
        return create_user(db.session, email, "Pat Practitioner", list(roles), password).id


def sign_in(client, email="prac@clinic.test", password=PASSWORD):
    page = client.get("/staff/login")
    return client.post("/staff/login", data={"csrf_token": csrf_token(page.text), "email": email,
                                             "password": password})


def events(app, action=None):
    with app.app_context():
        query = select(AuditEvent).order_by(AuditEvent.id)
        if action:
            query = query.where(AuditEvent.action == action)
        return list(db.session.scalars(query))


def test_cli_creates_a_user_asking_for_the_password(app, runner):
    result = runner.invoke(args=["screening", "create-user", "Desk@Clinic.test", "--role", "desk", "--role",
                                 "admin", "--name", "Dee"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    with app.app_context():
        user = db.session.scalar(select(StaffUser))
        assert user.email == "desk@clinic.test" and user.roles == "admin,desk"
        assert user.password_hash.startswith("$argon2id$")
    assert [e.action for e in events(app)] == ["account_created"]


def test_cli_refuses_a_short_password_and_a_duplicate(app, runner):
    result = runner.invoke(args=["screening", "create-user", "a@b.test", "--role", "desk"], input="short\nshort\n")
    assert result.exit_code == 1 and "at least 12" in result.output
    add_user(app, "a@b.test")
    result = runner.invoke(args=["screening", "create-user", "a@b.test", "--role", "desk"],
                           input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 1 and "exists already" in result.output


def test_sign_in_out_and_the_session_ends_on_the_server(app, client):
    add_user(app)
    response = sign_in(client)
    assert response.status_code == 302
    assert client.get("/staff/").status_code in (200, 302)
    page = client.get("/staff/")
    token = csrf_token(client.get("/staff/login").text) if "csrf_token" not in page.text else csrf_token(page.text)
    cookie = client.get_cookie("session").value
    response = client.post("/staff/logout", data={"csrf_token": token})
    assert response.status_code == 302
    with app.app_context():
        assert all(s.ended_at is not None for s in db.session.scalars(select(StaffSession)))
    # Replaying the old cookie does not bring the session back.
    client.set_cookie("session", cookie)
    assert client.get("/staff/").status_code == 302
    assert [e.action for e in events(app)] == ["account_created", "sign_in", "sign_out"]


@pytest.mark.parametrize("email, password", [("prac@clinic.test", "wrong password!!"),
                                             ("nobody@clinic.test", PASSWORD)])
def test_failed_sign_in_says_the_same_thing_either_way(app, client, email, password):
    add_user(app)
    response = sign_in(client, email, password)
    assert response.status_code == 401
    assert "Email or password is incorrect" in response.text
    assert password not in response.text
    failed = events(app, "sign_in_failed")
    # The audit trail names the email tried (issue 15), never the password.
    assert len(failed) == 1 and f"email={email};" in failed[0].detail and password not in failed[0].detail


def test_a_deactivated_account_cannot_sign_in(app, client, runner):
    add_user(app)
    assert runner.invoke(args=["screening", "deactivate-user", "prac@clinic.test"]).exit_code == 0
    assert sign_in(client).status_code == 401


def test_lockout_after_repeated_failures_on_one_account(app, client):
    add_user(app)
    for _ in range(5):
        assert sign_in(client, password="wrong password!!").status_code == 401
    assert sign_in(client).status_code == 429, "even the right password is refused while locked"
    other = app.test_client()
    assert sign_in(other, password="wrong password!!").status_code == 429, "per account, not per browser"


def test_lockout_per_address(app, client):
    add_user(app)
    for n in range(20):
        sign_in(client, email=f"someone{n}@clinic.test", password="wrong password!!")
    assert sign_in(client).status_code == 429


def test_sign_in_starts_a_fresh_session(app, client):
    add_user(app)
    client.get("/")
    with client.session_transaction() as sess:
        sess["planted"] = "x"
    sign_in(client)
    with client.session_transaction() as sess:
        assert "planted" not in sess and "staff" in sess


def test_idle_timeout_and_absolute_lifetime(app, client):
    add_user(app)
    sign_in(client)
    with app.app_context():
        row = db.session.scalar(select(StaffSession))
        row.last_seen_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=16)
        db.session.commit()
    response = client.get("/staff/")
    assert response.status_code == 302 and "expired=idle" in response.location
    assert [e.detail for e in events(app, "session_expired")] == ["idle"]
    sign_in(client)
    with app.app_context():
        row = db.session.scalars(select(StaffSession).order_by(StaffSession.id.desc())).first()
        row.created_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=13)
        db.session.commit()
    response = client.get("/staff/")
    assert response.status_code == 302 and "expired=lifetime" in response.location


def test_stay_signed_in_restarts_the_idle_timer(app, client):
    add_user(app)
    sign_in(client)
    with app.app_context():
        row = db.session.scalar(select(StaffSession))
        row.last_seen_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=14)
        db.session.commit()
    token = csrf_token(client.get("/staff/login").text)
    response = client.post("/staff/session/extend", data={"csrf_token": token},
                           headers={"Accept": "application/json"})
    assert response.status_code == 200 and response.json["idle_seconds"] == 900
    with app.app_context():
        row = db.session.scalar(select(StaffSession))
        seen = row.last_seen_at.replace(tzinfo=dt.timezone.utc) if row.last_seen_at.tzinfo is None \
            else row.last_seen_at
        assert dt.datetime.now(dt.timezone.utc) - seen < dt.timedelta(minutes=1)


def test_open_redirect_after_sign_in_is_refused(app, client):
    add_user(app)
    page = client.get("/staff/login?next=//evil.example/")
    response = client.post("/staff/login?next=//evil.example/",
                           data={"csrf_token": csrf_token(page.text), "email": "prac@clinic.test",
                                 "password": PASSWORD})
    assert response.status_code == 302 and "evil" not in response.location
