"""Staff accounts in the browser (issue 15): invitations, roles, deactivate and reactivate, a forgotten password, the
password rules, and the command line applying the same use cases and rules as the web."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import time

import pytest
from sqlalchemy import select, text, update

from screening.extensions import db
from screening.models import AccountLink, AuditEvent, Outbox, StaffSession, StaffUser, utcnow
from screening.staff import passwords
from screening.staff.accounts import MAX_PASSWORD
from screening.staff.views import LoginForm
from tests.conftest import close_app, make_app
from tests.staff import PASSWORD, add_user, sign_in
from tests.web import CSRF, csrf_token

NEW_PASSWORD = "plum orchard lantern seven"
LINK = re.compile(r"http://screening\.clinic\.example/staff/link/([A-Za-z0-9_-]+)")


@pytest.fixture
def mailbox(smtp):
    url, box = smtp
    box.url = url
    return box


@pytest.fixture
def app(database_url, mailbox):
    app = make_app(database_url, MAIL_URL=mailbox.url, MAIL_FROM="screening@clinic.example",
                   BASE_URL="http://screening.clinic.example", MAIL_RETRY_SECONDS=0.01, MAIL_MAX_ATTEMPTS=2,
                   PASSWORD_RESET_ANSWER_SECONDS=0.05, TIME_ZONE="Europe/London")
    add_user(app, "boss@clinic.test", ["admin"])
    yield app
    close_app(app)


@pytest.fixture
def admin(app):
    client = app.test_client()
    sign_in(client, "boss@clinic.test")
    return client


def to(box, address: str) -> list:
    return [m for m in box.messages if m["To"] == address]


def body(message) -> str:
    return message.get_body(("plain",)).get_content()


def link_token(message) -> str:
    match = LINK.search(body(message))
    assert match, body(message)
    assert match.group(0) in message.get_body(("html",)).get_content()
    return match.group(1)


def user_id(app, email: str) -> int:
    with app.app_context():
        return db.session.scalar(select(StaffUser.id).where(StaffUser.email == email))


def events(app, action: str | None = None) -> list[AuditEvent]:
    with app.app_context():
        query = select(AuditEvent).order_by(AuditEvent.id)
        if action:
            query = query.where(AuditEvent.action == action)
        found = list(db.session.scalars(query))
        for event in found:
            db.session.expunge(event)
        return found


def login(client, email: str, password: str):
    page = client.get("/staff/login")
    return client.post("/staff/login", data={"csrf_token": csrf_token(page.text), "email": email,
                                              "password": password})


def post(client, url: str, data: dict | None = None, page: str | None = None):
    """POST ``data`` to ``url`` with the CSRF token of ``page`` (``url`` itself by default)."""
    token = csrf_token(client.get(page or url).text)
    return client.post(url, data={"csrf_token": token, **(data or {})})


def invite(admin, name="Pat Smith", email="pat@clinic.example", roles=("practitioner",)):
    return post(admin, "/staff/admin/users/invite", {"name": name, "email": email, "roles": list(roles)})


def follow(client, token: str):
    """Open an emailed link: the token is swapped for the session at once, and the page has no token in its URL."""
    return client.get(f"/staff/link/{token}")


def choose(client, password: str, confirm: str | None = None):
    return post(client, "/staff/password/new", {"password": password,
                                                "confirm": password if confirm is None else confirm})


def without_csrf(html: str) -> str:
    return CSRF.sub('name="csrf_token" value=""', html)


# -- the password rules -----------------------------------------------------------------------------------------


def test_the_shipped_list_is_djangos_and_the_test_password_is_not_on_it():
    listed = passwords.common_passwords()
    assert len(listed) > 19_000 and "password" in listed and "qwerty123456" in listed
    digest = hashlib.sha256(passwords.COMMON_PASSWORDS.read_bytes()).hexdigest()
    assert digest in (passwords.COMMON_PASSWORDS.parent / "README.md").read_text(), "the note names the file's digest"
    for used in (PASSWORD, NEW_PASSWORD):
        assert passwords.problem(used) is None


@pytest.mark.parametrize("password, message", [
    ("", "at least 12"),
    ("elevenchars", "at least 12"),
    ("x" * 201, "at most 200"),
    ("qwerty123456", passwords.ON_THE_LIST),
    ("QWERTY123456", passwords.ON_THE_LIST),  # compared without regard to case
    ("  1q2w3e4r5t6y  ", passwords.ON_THE_LIST),
    ("aaaaaaaaaaaaaaaa", "one character repeated"),
    ("123456789012345", "one character repeated or a run"),
    ("abcdefghijklmnop", "one character repeated or a run"),
    ("pat@clinic.example", "not be your email address"),
    ("PAT@clinic.example", "not be your email address"),
])
def test_a_password_that_breaks_a_rule_is_refused_saying_why(password, message):
    assert message in passwords.problem(password, "pat@clinic.example")


@pytest.mark.parametrize("password", ["twelve chars", "Tr0ub4dor&3x", "x" * 150 + "y" * 50, "日本語のパスフレーズです長い",
                                      "no digits or capitals at all"])
def test_no_composition_rules_and_a_long_maximum(password):
    assert passwords.problem(password, "pat@clinic.example") is None


def test_the_maximum_is_at_least_64_and_exactly_what_the_sign_in_form_takes(app):
    assert passwords.MAX_LENGTH >= 64 and passwords.MIN_LENGTH >= 8
    with app.test_request_context():
        [limit] = [v for v in LoginForm().password.validators if hasattr(v, "max")]
    assert limit.max == passwords.MAX_LENGTH == MAX_PASSWORD


# -- invitations ------------------------------------------------------------------------------------------------


def test_an_invited_member_of_staff_sets_a_password_through_the_link_and_signs_in(app, admin, mailbox):
    response = invite(admin)
    assert response.status_code == 303
    page = admin.get(response.location)
    assert "Pat Smith is invited" in page.text and "Invited, not set up yet" in page.text
    [message] = to(mailbox, "pat@clinic.example")
    assert message["Subject"] == "Your staff account at Test Clinic"
    token = link_token(message)
    assert "72 hours" not in body(message) and re.search(r"until \d+ \w+ \d{4}, \d\d:\d\d (GMT|BST)", body(message))
    # Not set up yet: no password signs in, the generic answer.
    assert login(app.test_client(), "pat@clinic.example", "").status_code in (400, 401)
    assert login(app.test_client(), "pat@clinic.example", NEW_PASSWORD).status_code == 401

    pat = app.test_client()
    response = follow(pat, token)
    assert response.status_code == 303 and response.location == "/staff/password/new", "the token leaves the URL"
    page = pat.get("/staff/password/new")
    assert page.status_code == 200 and "Set up your account" in page.text and "pat@clinic.example" in page.text
    assert token not in page.text
    response = choose(pat, NEW_PASSWORD)
    assert response.status_code == 303 and response.location.startswith("/staff/password/done")
    assert "Your account is ready" in pat.get(response.location).text
    assert login(app.test_client(), "pat@clinic.example", NEW_PASSWORD).status_code == 302
    assert [e.action for e in events(app) if e.action.startswith("account")] == ["account_created", "account_invited",
                                                                                 "account_set_up"]
    invited = events(app, "account_invited")[0]
    pat_id = user_id(app, "pat@clinic.example")
    assert invited.detail == f"user={pat_id} roles=practitioner" and invited.actor_id == user_id(app, "boss@clinic.test")
    assert events(app, "account_set_up")[0].actor_id == pat_id
    assert len(to(mailbox, "pat@clinic.example")) == 1, "no 'password changed' notice for the first password"
    # Used once: the same link answers as an unknown one does.
    gone = follow(app.test_client(), token)
    assert gone.status_code == 404 and gone.data == follow(app.test_client(), "x" * 43).data


def test_only_the_hash_of_a_link_is_stored(app, admin, mailbox):
    invite(admin)
    token = link_token(to(mailbox, "pat@clinic.example")[0])
    with app.app_context():
        row = db.session.scalar(select(AccountLink))
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() and row.purpose == "invite"
        dumped = " ".join(str(v) for r in db.session.execute(text("SELECT * FROM account_link")) for v in r)
        assert token not in dumped
        assert token.encode() not in b"".join(bytes(m) for m in db.session.scalars(select(Outbox.message)))


def test_a_resent_invitation_makes_the_old_link_stop_working(app, admin, mailbox):
    invite(admin)
    pat = user_id(app, "pat@clinic.example")
    first = link_token(to(mailbox, "pat@clinic.example")[0])
    response = post(admin, f"/staff/admin/users/{pat}/invite", page=f"/staff/admin/users/{pat}")
    assert response.status_code == 303
    assert "The link sent before no longer works" in admin.get(response.location).text
    second = link_token(to(mailbox, "pat@clinic.example")[1])
    assert follow(app.test_client(), first).status_code == 404
    client = app.test_client()
    assert follow(client, second).status_code == 303 and choose(client, NEW_PASSWORD).status_code == 303
    assert [e.detail for e in events(app, "account_invite_resent")] == [f"user={pat}"]
    # Set up: nothing to resend any more.
    response = post(admin, f"/staff/admin/users/{pat}/invite", page=f"/staff/admin/users/{pat}")
    assert response.status_code == 400 and "has set up their account already" in response.text


def test_an_expired_used_superseded_or_unknown_link_gets_the_same_page(app, admin, mailbox):
    invite(admin)
    pat = user_id(app, "pat@clinic.example")
    expired = link_token(to(mailbox, "pat@clinic.example")[0])
    with app.app_context():
        db.session.execute(update(AccountLink).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
        db.session.commit()
    page = admin.get(f"/staff/admin/users/{pat}")
    assert "has expired" in page.text
    answers = [follow(app.test_client(), expired), follow(app.test_client(), "x" * 43),
               follow(app.test_client(), "a" * 101), follow(app.test_client(), "%00")]
    post(admin, f"/staff/admin/users/{pat}/invite", page=f"/staff/admin/users/{pat}")
    fresh = link_token(to(mailbox, "pat@clinic.example")[1])
    client = app.test_client()
    follow(client, fresh)
    choose(client, NEW_PASSWORD)
    answers.append(follow(app.test_client(), fresh))  # used
    assert {a.status_code for a in answers} == {404}
    assert len({a.data for a in answers}) == 1 and "This link no longer works" in answers[0].text
    # Without a link in the session, the password page is the same page.
    assert app.test_client().get("/staff/password/new").data == answers[0].data


def test_a_link_opened_then_left_past_its_expiry_no_longer_sets_a_password(app, admin, mailbox):
    invite(admin)
    client = app.test_client()
    follow(client, link_token(to(mailbox, "pat@clinic.example")[0]))
    token = csrf_token(client.get("/staff/password/new").text)
    with app.app_context():
        db.session.execute(update(AccountLink).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
        db.session.commit()
    response = client.post("/staff/password/new", data={"csrf_token": token, "password": NEW_PASSWORD,
                                                        "confirm": NEW_PASSWORD})
    assert response.status_code == 404 and "This link no longer works" in response.text
    with app.app_context():
        assert db.session.scalar(select(StaffUser.password_hash).where(StaffUser.email == "pat@clinic.example")) == ""


def test_the_invitation_lasts_the_configured_hours(database_url, mailbox):
    app = make_app(database_url, MAIL_URL=mailbox.url, STAFF_INVITE_HOURS=2)
    try:
        add_user(app, "boss@clinic.test", ["admin"])
        client = app.test_client()
        sign_in(client, "boss@clinic.test")
        invite(client)
        with app.app_context():
            row = db.session.scalar(select(AccountLink))
            lifetime = row.expires_at - row.created_at
        assert lifetime == dt.timedelta(hours=2)
    finally:
        close_app(app)


@pytest.mark.parametrize("changes, field, message", [
    ({"name": ""}, "name", "Enter the person&#39;s full name"),
    ({"name": "\u202e\x00 "}, "name", "Enter the person&#39;s full name"),
    ({"name": "N" * 121}, "name", "at most 120 characters"),
    ({"email": ""}, "email", "Enter the person&#39;s email address"),
    ({"email": "pat at clinic"}, "email", "in the correct format"),
    ({"email": "pat@clinic"}, "email", "in the correct format"),
    ({"email": "p" * 250 + "@b.test"}, "email", "at most 254"),
    ({"email": "BOSS@clinic.test"}, "email", "An account for boss@clinic.test exists already"),
    ({"roles": []}, "roles", "Choose at least one role"),
    ({"roles": ["owner"]}, "roles", "Roles must be among"),
])
def test_the_invitation_form_names_each_problem_and_keeps_what_was_typed(app, admin, mailbox, changes, field,
                                                                         message):
    data = {"name": "Pat Smith", "email": "pat@clinic.example", "roles": ["desk"], **changes}
    response = post(admin, "/staff/admin/users/invite", data)
    assert response.status_code == 400 and message in response.text
    assert "There is a problem" in response.text and "<title>Error:" in response.text
    href = "roles-0" if field == "roles" else field
    assert f'href="#{href}"' in response.text and f'id="{href}"' in response.text
    if field != "name":
        assert 'value="Pat Smith"' in response.text
    if field != "email":
        assert 'value="pat@clinic.example"' in response.text
    if field != "roles":
        assert re.search(r'<input checked[^>]*value="desk"', response.text)
    assert len(events(app, "account_invited")) == 0 and to(mailbox, "pat@clinic.example") == []


# -- roles, deactivate, reactivate ------------------------------------------------------------------------------


def test_an_admin_changes_roles_but_never_their_own_admin_role(app, admin):
    other = add_user(app, "other@clinic.test", ["desk"])
    me = user_id(app, "boss@clinic.test")
    response = post(admin, f"/staff/admin/users/{other}/roles", {"roles": ["desk", "practitioner"]},
                    page=f"/staff/admin/users/{other}")
    assert response.status_code == 303 and "roles are now: desk, practitioner" in admin.get(response.location).text
    [event] = events(app, "account_roles_changed")
    assert event.detail == f"user={other} roles=desk,practitioner was=desk" and event.actor_id == me
    response = post(admin, f"/staff/admin/users/{me}/roles", {"roles": ["desk"]}, page=f"/staff/admin/users/{me}")
    assert response.status_code == 400 and "You cannot remove your own admin role" in response.text
    assert "There is a problem" in response.text and 'href="#roles-0"' in response.text
    assert re.search(r'<input checked[^>]*value="desk"', response.text), "the ticks as posted are kept"
    for roles, message in (([], "Choose at least one role"), (["admin", "root"], "Roles must be among")):
        response = post(admin, f"/staff/admin/users/{other}/roles", {"roles": roles},
                        page=f"/staff/admin/users/{other}")
        assert response.status_code == 400 and message in response.text
    with app.app_context():
        assert db.session.get(StaffUser, me).roles == "admin"
    assert len(events(app, "account_roles_changed")) == 1


def test_deactivating_asks_first_naming_the_person_then_ends_their_sessions(app, admin):
    pat = add_user(app, "pat@clinic.example", ["practitioner"])
    with app.app_context():
        db.session.get(StaffUser, pat).name = "Pat Smith"
        db.session.commit()
    theirs = app.test_client()
    sign_in(theirs, "pat@clinic.example")
    page = admin.get(f"/staff/admin/users/{pat}/deactivate")
    assert page.status_code == 200 and "Deactivate Pat Smith (pat@clinic.example)?" in page.text
    assert len(events(app, "account_deactivated")) == 0, "opening the question changes nothing"
    response = admin.post(f"/staff/admin/users/{pat}/deactivate", data={"csrf_token": csrf_token(page.text)})
    assert response.status_code == 302
    assert "No (deactivated)" in admin.get("/staff/admin/users").text
    assert theirs.get("/staff/submissions").status_code == 302, "signed out everywhere"
    assert login(app.test_client(), "pat@clinic.example", PASSWORD).status_code == 401
    with app.app_context():
        assert db.session.scalar(select(StaffSession.ended_at).where(StaffSession.user_id == pat)) is not None
    # Reactivated: the same password signs in again.
    page = admin.get(f"/staff/admin/users/{pat}")
    assert "Reactivate this account" in page.text
    response = admin.post(f"/staff/admin/users/{pat}/reactivate", data={"csrf_token": csrf_token(page.text)})
    assert response.status_code == 303 and "active again" in admin.get(response.location).text
    assert login(app.test_client(), "pat@clinic.example", PASSWORD).status_code == 302
    response = post(admin, f"/staff/admin/users/{pat}/reactivate", page=f"/staff/admin/users/{pat}")
    assert response.status_code == 400 and "is active already" in response.text
    assert [e.detail for e in events(app, "account_reactivated")] == [f"user={pat}"]
    assert events(app, "account_reactivated")[0].actor_id == user_id(app, "boss@clinic.test")


def test_deactivating_ends_outstanding_links_and_a_deactivated_account_gets_no_reset(app, admin, mailbox):
    invite(admin)
    pat = user_id(app, "pat@clinic.example")
    token = link_token(to(mailbox, "pat@clinic.example")[0])
    assert post(admin, f"/staff/admin/users/{pat}/deactivate").status_code == 302
    assert follow(app.test_client(), token).status_code == 404
    post(app.test_client(), "/staff/password/forgotten", {"email": "pat@clinic.example"})
    assert len(to(mailbox, "pat@clinic.example")) == 1


def test_the_last_active_admin_stays_an_admin(app, runner):
    result = runner.invoke(args=["screening", "deactivate-user", "boss@clinic.test"])
    assert result.exit_code == 1 and "is the last active admin" in result.output
    # An invited admin who has not set up their account does not count.
    with app.app_context():
        from screening.staff import people_services

        people_services.invite(db.session, email="new.admin@clinic.test", name="New Admin", roles=["admin"])
        boss = db.session.scalar(select(StaffUser).where(StaffUser.email == "boss@clinic.test"))
        with pytest.raises(people_services.AccountError, match="last active admin"):
            people_services.change_roles(db.session, boss, ["desk"])
    add_user(app, "second@clinic.test", ["admin"])
    assert runner.invoke(args=["screening", "deactivate-user", "boss@clinic.test"]).exit_code == 0
    result = runner.invoke(args=["screening", "deactivate-user", "second@clinic.test"])
    assert result.exit_code == 1 and "last active admin" in result.output


def test_an_admin_cannot_deactivate_themselves(app, admin):
    me = user_id(app, "boss@clinic.test")
    assert "Deactivate this account" not in admin.get(f"/staff/admin/users/{me}").text
    response = post(admin, f"/staff/admin/users/{me}/deactivate")
    assert response.status_code == 400 and "You cannot deactivate your own account" in response.text
    assert 'href="#confirm"' in response.text
    assert admin.get("/staff/admin/users").status_code == 200


def test_unknown_accounts_are_404(admin):
    for url in ("/staff/admin/users/999", "/staff/admin/users/999/deactivate", "/staff/admin/users/2147483648"):
        assert admin.get(url).status_code == 404
    for url in ("/staff/admin/users/999/roles", "/staff/admin/users/999/invite", "/staff/admin/users/999/reactivate"):
        assert post(admin, url, page="/staff/admin/users").status_code == 404


# -- a forgotten password ---------------------------------------------------------------------------------------


def test_the_sign_in_page_links_to_the_forgotten_password_page(client):
    page = client.get("/staff/login")
    assert 'href="/staff/password/forgotten">Forgotten your password?' in page.text


def test_a_forgotten_password_gets_the_same_answer_whether_or_not_the_account_exists(app, mailbox):
    add_user(app, "pat@clinic.example", ["desk"])
    answers = {}
    for email in ("pat@clinic.example", "nobody@clinic.example"):
        client = app.test_client()
        started = time.monotonic()
        response = post(client, "/staff/password/forgotten", {"email": email})
        answers[email] = (response, time.monotonic() - started)
    (known, known_time), (unknown, unknown_time) = answers.values()
    assert known.status_code == unknown.status_code == 200
    assert sorted(known.headers.keys()) == sorted(unknown.headers.keys())
    assert without_csrf(known.text).replace("pat@clinic.example", "EMAIL") == \
        without_csrf(unknown.text).replace("nobody@clinic.example", "EMAIL")
    assert "Check your email" in known.text
    assert min(known_time, unknown_time) >= 0.05, "both answer no sooner than the floor"
    assert len(to(mailbox, "pat@clinic.example")) == 1 and to(mailbox, "nobody@clinic.example") == []
    assert [m["To"] for m in mailbox.messages] == ["pat@clinic.example"], "no mail to an unknown address"
    [event] = events(app, "password_reset_requested")
    assert event.detail == f"user={user_id(app, 'pat@clinic.example')}"


def test_the_forgotten_password_answer_is_byte_identical_apart_from_the_address_typed(app, mailbox):
    """With the same address typed: one account, then (deactivated) none: the bytes are the same."""
    pat = add_user(app, "pat@clinic.example", ["desk"])
    first = post(app.test_client(), "/staff/password/forgotten", {"email": "pat@clinic.example"})
    with app.app_context():
        db.session.get(StaffUser, pat).is_active = False
        db.session.commit()
    second = post(app.test_client(), "/staff/password/forgotten", {"email": "pat@clinic.example"})
    assert without_csrf(first.text) == without_csrf(second.text)
    assert len(to(mailbox, "pat@clinic.example")) == 1


def test_a_reset_link_sets_a_new_password_and_ends_every_session(app, mailbox):
    add_user(app, "pat@clinic.example", ["desk"])
    elsewhere = app.test_client()
    sign_in(elsewhere, "pat@clinic.example")
    assert elsewhere.get("/staff/desk").status_code == 200
    post(app.test_client(), "/staff/password/forgotten", {"email": "PAT@clinic.example "})
    post(app.test_client(), "/staff/password/forgotten", {"email": "pat@clinic.example"})
    older, newer = (link_token(m) for m in to(mailbox, "pat@clinic.example"))
    [message, _] = to(mailbox, "pat@clinic.example")
    assert message["Subject"] == "Choose a new password for Test Clinic"
    client = app.test_client()
    assert follow(client, older).status_code == 404, "the newer link replaced it"
    assert follow(client, newer).status_code == 303
    page = client.get("/staff/password/new")
    assert "Choose a new password" in page.text and "pat@clinic.example" in page.text
    response = choose(client, NEW_PASSWORD)
    assert response.status_code == 303 and "Your password is changed" in client.get(response.location).text
    assert elsewhere.get("/staff/desk").status_code == 302, "the session elsewhere has ended"
    assert login(app.test_client(), "pat@clinic.example", PASSWORD).status_code == 401
    assert login(app.test_client(), "pat@clinic.example", NEW_PASSWORD).status_code == 302
    assert follow(app.test_client(), newer).status_code == 404, "used once"
    notice = to(mailbox, "pat@clinic.example")[-1]
    assert notice["Subject"] == "Your password at Test Clinic was changed"
    assert "http://screening.clinic.example/staff/password/forgotten" in body(notice)
    pat = user_id(app, "pat@clinic.example")
    assert [e.detail for e in events(app, "password_reset")] == [f"user={pat}"]
    assert events(app, "password_reset")[0].actor_id == pat


def test_a_password_set_makes_every_other_outstanding_link_stop_working(app, mailbox):
    add_user(app, "pat@clinic.example", ["desk"])
    post(app.test_client(), "/staff/password/forgotten", {"email": "pat@clinic.example"})
    client, other = app.test_client(), app.test_client()
    token = link_token(to(mailbox, "pat@clinic.example")[0])
    follow(client, token)
    follow(other, token)  # the same link opened in a second browser
    other_token = csrf_token(other.get("/staff/password/new").text)
    assert choose(client, NEW_PASSWORD).status_code == 303
    response = other.post("/staff/password/new", data={"csrf_token": other_token, "password": "another long one",
                                                       "confirm": "another long one"})
    assert response.status_code == 404 and "This link no longer works" in response.text
    assert login(app.test_client(), "pat@clinic.example", NEW_PASSWORD).status_code == 302


@pytest.mark.parametrize("password, confirm, field, message", [
    ("", "", "password", "Enter a new password"),
    ("plum orchard lantern seven", "plum orchard lantern", "confirm", "The two passwords are not the same"),
    ("short pass", "short pass", "password", "at least 12 characters"),
    ("x" * 201 + "yz", "x" * 201 + "yz", "password", "at most 200 characters"),
    ("Password1234", "Password1234", "password", "This password is on a list of common or leaked passwords"),
    ("pat@clinic.example", "pat@clinic.example", "password", "must not be your email address"),
    ("zzzzzzzzzzzzzzz", "zzzzzzzzzzzzzzz", "password", "one character repeated"),
])
def test_the_new_password_form_says_what_is_wrong_and_never_shows_a_password_back(app, mailbox, password, confirm,
                                                                                   field, message):
    add_user(app, "pat@clinic.example", ["desk"])
    post(app.test_client(), "/staff/password/forgotten", {"email": "pat@clinic.example"})
    client = app.test_client()
    follow(client, link_token(to(mailbox, "pat@clinic.example")[0]))
    response = choose(client, password, confirm)
    assert response.status_code == 400 and message in response.text.replace("&#39;", "'")
    assert "There is a problem" in response.text and f'href="#{field}"' in response.text
    if password and "@" not in password:
        assert password not in response.text and confirm not in response.text
    assert not re.search(r'type="password"[^>]*value="[^"]', response.text)
    # The link still works for a better try.
    assert choose(client, NEW_PASSWORD).status_code == 303


def test_the_form_takes_the_longest_password_the_rules_allow(app, mailbox):
    add_user(app, "pat@clinic.example", ["desk"])
    post(app.test_client(), "/staff/password/forgotten", {"email": "pat@clinic.example"})
    client = app.test_client()
    follow(client, link_token(to(mailbox, "pat@clinic.example")[0]))
    longest = ("plum orchard lantern seven " * 10)[:passwords.MAX_LENGTH]
    assert choose(client, longest).status_code == 303
    assert login(app.test_client(), "pat@clinic.example", longest).status_code == 302


@pytest.mark.parametrize("email, message", [
    ("", "Enter your email address"),
    ("   ", "Enter your email address"),
    ("pat at clinic", "in the correct format"),
    ("a" * 250 + "@b.test", "at most 254"),
    ("pat\x00@clinic.example", "in the correct format"),
])
def test_the_forgotten_password_form_refuses_what_is_not_an_address(app, mailbox, email, message):
    response = post(app.test_client(), "/staff/password/forgotten", {"email": email})
    assert response.status_code == 400 and message in response.text
    assert "There is a problem" in response.text and 'href="#email"' in response.text
    if email.strip() and "\x00" not in email:
        assert f'value="{email}"' in response.text, "what was typed is kept"
    assert mailbox.messages == []


def test_the_forgotten_password_form_is_limited_per_network_and_per_account(database_url, mailbox):
    app = make_app(database_url, MAIL_URL=mailbox.url, PASSWORD_RESET_LIMIT="4 per hour",
                   PASSWORD_RESET_ANSWER_SECONDS=0)
    try:
        add_user(app, "pat@clinic.example", ["desk"])
        client = app.test_client()
        answers = [post(client, "/staff/password/forgotten", {"email": "pat@clinic.example"}).status_code
                   for _ in range(5)]
        assert answers == [200, 200, 200, 200, 429]
        held = post(client, "/staff/password/forgotten", {"email": "pat@clinic.example"})
        assert "Too many requests for a new password" in held.text and int(held.headers["Retry-After"]) > 0
        assert len(to(mailbox, "pat@clinic.example")) == 3, "at most 3 reset emails an hour to one account"
        # From another network the form still answers, and still sends nothing more to that account.
        other = app.test_client()
        response = other.post("/staff/password/forgotten", environ_base={"REMOTE_ADDR": "198.51.100.7"},
                              data={"csrf_token": csrf_token(other.get("/staff/password/forgotten").text),
                                    "email": "pat@clinic.example"})
        assert response.status_code == 200 and len(to(mailbox, "pat@clinic.example")) == 3
        assert client.get("/staff/password/forgotten").status_code == 200, "the page itself is not limited"
    finally:
        close_app(app)


def test_an_invited_account_can_also_be_set_up_through_a_forgotten_password(app, admin, mailbox):
    invite(admin)
    post(app.test_client(), "/staff/password/forgotten", {"email": "pat@clinic.example"})
    invitation, reset = to(mailbox, "pat@clinic.example")
    client = app.test_client()
    follow(client, link_token(reset))
    assert choose(client, NEW_PASSWORD).status_code == 303
    assert follow(app.test_client(), link_token(invitation)).status_code == 404
    assert login(app.test_client(), "pat@clinic.example", NEW_PASSWORD).status_code == 302


def test_the_request_log_hides_a_staff_link_token(caplog):
    from screening.logsafe import HideInvitationTokens

    record = logging.LogRecord("werkzeug", logging.INFO, "", 0, '%s - - "%s" %s', (
        "127.0.0.1", "GET /staff/link/AbC-123_xyz HTTP/1.1", "303"), None)
    HideInvitationTokens().filter(record)
    assert record.getMessage() == '127.0.0.1 - - "GET /staff/link/[token] HTTP/1.1" 303'


# -- the command line agrees with the web -----------------------------------------------------------------------


def test_the_command_line_applies_the_same_password_rules_and_audit(app, runner, mailbox):
    common = "Password1234"
    result = runner.invoke(args=["screening", "create-user", "new@clinic.test", "--role", "desk"],
                           input=f"{common}\n{common}\n")
    assert result.exit_code == 1 and passwords.ON_THE_LIST in result.output
    add_user(app, "pat@clinic.example", ["desk"])
    result = runner.invoke(args=["screening", "reset-password", "pat@clinic.example"], input=f"{common}\n{common}\n")
    assert result.exit_code == 1 and passwords.ON_THE_LIST in result.output
    result = runner.invoke(args=["screening", "reset-password", "pat@clinic.example"],
                           input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert [e.detail for e in events(app, "password_reset")] == [f"user={user_id(app, 'pat@clinic.example')}"]
    assert to(mailbox, "pat@clinic.example")[-1]["Subject"] == "Your password at Test Clinic was changed"
    assert login(app.test_client(), "pat@clinic.example", NEW_PASSWORD).status_code == 302


def test_the_command_line_invites_deactivates_and_reactivates_like_the_web(app, runner, mailbox):
    result = runner.invoke(args=["screening", "invite-user", "pat@clinic.example", "--role", "desk",
                                 "--name", "Pat Smith"])
    assert result.exit_code == 0, result.output
    assert link_token(to(mailbox, "pat@clinic.example")[0])
    result = runner.invoke(args=["screening", "invite-user", "pat@clinic.example", "--role", "desk", "--name", "P"])
    assert result.exit_code == 1 and "exists already" in result.output
    assert runner.invoke(args=["screening", "deactivate-user", "pat@clinic.example"]).exit_code == 0
    result = runner.invoke(args=["screening", "deactivate-user", "pat@clinic.example"])
    assert result.exit_code == 1 and "already deactivated" in result.output
    assert runner.invoke(args=["screening", "reactivate-user", "pat@clinic.example"]).exit_code == 0
    result = runner.invoke(args=["screening", "reactivate-user", "pat@clinic.example"])
    assert result.exit_code == 1 and "is active already" in result.output
    result = runner.invoke(args=["screening", "reactivate-user", "nobody@clinic.example"])
    assert result.exit_code == 1 and "no account for nobody@clinic.example" in result.output
    actions = [(e.action, e.actor_id) for e in events(app) if e.action != "account_created"]
    assert actions == [("account_invited", None), ("account_deactivated", None), ("account_reactivated", None)]
