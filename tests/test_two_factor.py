"""Two-factor sign-in (issue 15): who must have a second factor, authenticator-app codes (TOTP), recovery codes,
the pending sign-in that reaches no staff page, throttling, the Security page and the admin's reset.

Passkeys are registered and used in a real browser (tests/browser/test_two_factor.py); their server side's refusals
are tested here.
"""

from __future__ import annotations

import datetime as dt
import re
from unittest import mock

import pyotp
import pytest
from sqlalchemy import select, text

from screening.config import from_environ
from screening.extensions import db
from screening.models import AuditEvent, StaffUser
from screening.staff import twofactor
from screening.staff.twofactor_views import SIGN_IN_STEPS
from tests.conftest import close_app, make_app
from tests.staff import PASSWORD, add_user, enrol_totp, recovery_codes, sign_in
from tests.test_staff_access import ACCESS, ANON, matches, staff_rules, url_for_rule, world  # noqa: F401 - a fixture
from tests.web import csrf_token

SHIPPED = {"TWO_FACTOR_ROLES": "admin,practitioner"}


@pytest.fixture
def app(database_url):
    """The app as shipped: admins and practitioners must have a second factor."""
    app = make_app(database_url, **SHIPPED)
    yield app
    close_app(app)


def events(app, action):
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                       .order_by(AuditEvent.id)))


def password_step(client, email, password=PASSWORD):
    page = client.get("/staff/login")
    return client.post("/staff/login", data={"csrf_token": csrf_token(page.text), "email": email,
                                              "password": password})


def post_code(client, code, url="/staff/login/two-factor"):
    page = client.get(url)
    return client.post(url, data={"csrf_token": csrf_token(page.text), "code": code})


def code_at(secret, moment):
    return pyotp.TOTP(secret).at(moment)


def signed_in(client) -> bool:
    with client.session_transaction() as session:
        return "staff" in session


# -- the requirement ---------------------------------------------------------------------------------------------


def test_the_shipped_default_requires_admins_and_practitioners(app):
    assert from_environ({})["TWO_FACTOR_ROLES"] == "admin,practitioner"
    assert app.config["TWO_FACTOR_ROLES"] == ("admin", "practitioner")


@pytest.mark.parametrize("roles", ["admin", "practitioner", "desk"])
def test_who_must_enrol_follows_the_setting(database_url, roles):
    for setting, required in (("admin,practitioner", roles != "desk"), ("admin,practitioner,desk", True),
                              ("", False)):
        app = make_app(database_url, TWO_FACTOR_ROLES=setting)
        try:
            add_user(app, "person@clinic.test", [roles])
            response = password_step(app.test_client(), "person@clinic.test")
            assert response.status_code == 302
            if required:
                assert response.location.endswith("/staff/login/set-up"), (setting, roles)
            else:
                assert "/staff/login/" not in response.location, (setting, roles)
        finally:
            close_app(app)


def test_a_bad_setting_is_refused(database_url):
    from screening.config import ConfigError

    with pytest.raises(ConfigError, match="SCREENING_TWO_FACTOR_ROLES"):
        make_app(database_url, TWO_FACTOR_ROLES="admin,nurse")


def test_with_the_shipped_setting_a_password_alone_reaches_no_staff_route(app, world):  # noqa: F811 - the fixture
    """The requirement as shipped, every route of tests/test_staff_access.py's table: a practitioner or admin who has
    given only their password (no second factor set up, or one set up and not given) reaches none of them."""
    add_user(app, "enrolled@clinic.test", ["admin", "practitioner"])
    enrol_totp(app, "enrolled@clinic.test")
    for email, step in (("practitioner@clinic.test", "/staff/login/set-up"),
                        ("admin@clinic.test", "/staff/login/set-up"),
                        ("enrolled@clinic.test", "/staff/login/two-factor")):
        client = app.test_client()
        response = password_step(client, email)
        assert response.status_code == 302 and response.location.endswith(step), email
        assert not signed_in(client)
        token = csrf_token(client.get(step).text)
        for endpoint, (method, expected) in ACCESS.items():
            if endpoint == "staff.login" or endpoint in SIGN_IN_STEPS:
                continue
            url = url_for_rule(next(r for r in staff_rules(app) if r.endpoint == endpoint), world)
            response = client.get(url) if method == "GET" else client.post(url, data={"csrf_token": token})
            assert matches(response, expected[ANON]), (email, endpoint, response.status_code)  # as if signed out
            assert "Rhoda Access" not in response.text
        assert not signed_in(client)
        assert client.get(step).status_code == 200  # the pending sign-in itself was untouched


# -- enrolment during sign-in (TOTP) -----------------------------------------------------------------------------


def test_enrolment_with_an_app_then_recovery_codes_then_sign_in_with_a_code(app):
    add_user(app, "prac@clinic.test", ["practitioner"])
    client = app.test_client()
    response = password_step(client, "prac@clinic.test")
    assert response.location.endswith("/staff/login/set-up")
    assert client.get("/staff/submissions").status_code == 302  # nothing before the set-up is done
    page = client.get("/staff/login/set-up")
    assert page.status_code == 200
    assert "<svg" in page.text and "Content-Security-Policy" in page.headers
    assert "data:" not in page.headers["Content-Security-Policy"]
    assert 'href="otpauth://totp/' in page.text  # setting up on the phone itself: the app opens the key
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page.text).group(1).replace(" ", "")
    response = client.post("/staff/login/set-up", data={"csrf_token": csrf_token(page.text), "code": "000000"})
    assert response.status_code == 400 and "That code is not right" in response.text
    assert 'href="#code"' in response.text  # the error summary links to the field
    response = client.post("/staff/login/set-up", data={"csrf_token": csrf_token(page.text),
                                                         "code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302 and "recovery-codes" in response.location
    assert signed_in(client)
    page = client.get(response.location)
    assert "Make new recovery codes" in page.text
    shown = client.post(response.location, data={"csrf_token": csrf_token(page.text)})
    codes = re.findall(r"<code>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</code>", shown.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert codes[0] not in client.get("/staff/account/security/recovery-codes").text  # shown once
    with app.app_context():
        user = db.session.scalar(select(StaffUser).where(StaffUser.email == "prac@clinic.test"))
        row = twofactor.confirmed_totp(db.session, user)
        raw = bytes(db.session.execute(text("SELECT secret FROM totp_credential")).scalar_one())
        assert secret.encode() not in raw  # encrypted at rest
        assert row.last_step > 0
    assert [e.action for e in events(app, "totp_added")] == ["totp_added"]
    assert len(events(app, "recovery_codes_created")) == 1
    # a later sign-in asks for the code; the code of the next step (not yet used) signs in
    other = app.test_client()
    assert password_step(other, "prac@clinic.test").location.endswith("/staff/login/two-factor")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    response = post_code(other, code_at(secret, later))
    assert response.status_code == 302 and signed_in(other)
    assert other.get("/staff/submissions").status_code == 200
    assert [e for e in events(app, "sign_in") if e.detail == "method=totp"]


def test_a_wrong_code_and_a_replayed_code_are_refused(database_url):
    app = make_app(database_url, **SHIPPED, STAFF_LOGIN_LIMIT_ACCOUNT="100 per 15 minutes")
    try:
        wrong_and_replayed(app)
    finally:
        close_app(app)


def wrong_and_replayed(app):
    add_user(app, "prac@clinic.test", ["practitioner"])
    secret = enrol_totp(app, "prac@clinic.test")  # its set-up used the current step
    client = app.test_client()
    password_step(client, "prac@clinic.test")
    now = dt.datetime.now(dt.UTC)
    assert post_code(client, " ").status_code == 400  # nothing typed: asked again, not counted
    for wrong in ("123456" if code_at(secret, now) != "123456" else "654321", "12345", "1234567", "abcdef"):
        response = post_code(client, wrong)
        assert response.status_code == 401, wrong
        assert "That code is not right" in response.text and not signed_in(client)
    response = post_code(client, code_at(secret, now))  # the set-up's own code: replayed
    assert response.status_code == 401 and not signed_in(client)
    later = now + dt.timedelta(seconds=30)
    assert post_code(client, code_at(secret, later)).status_code == 302  # the next step works once
    again = app.test_client()
    password_step(again, "prac@clinic.test")
    assert post_code(again, code_at(secret, later)).status_code == 401  # and only once
    old = now - dt.timedelta(seconds=30)
    assert post_code(again, code_at(secret, old)).status_code == 401  # nor an earlier step
    assert len(events(app, "two_factor_failed")) == 7


def test_a_code_two_steps_away_is_refused(app):
    add_user(app, "prac@clinic.test", ["practitioner"])
    secret = enrol_totp(app, "prac@clinic.test")
    client = app.test_client()
    password_step(client, "prac@clinic.test")
    far = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=95)
    assert post_code(client, code_at(secret, far)).status_code == 401


# -- recovery codes ----------------------------------------------------------------------------------------------


def test_a_recovery_code_works_once_only_and_new_ones_kill_the_old(app):
    add_user(app, "admin@clinic.test", ["admin"])
    enrol_totp(app, "admin@clinic.test")
    codes = recovery_codes(app, "admin@clinic.test")
    client = app.test_client()
    response = sign_in(client, "admin@clinic.test", code=codes[0].upper().replace("-", " "))  # typed loosely
    assert response.location.endswith("/staff/account/security")
    assert "You have 9 left" in client.get(response.location).text
    [used] = events(app, "recovery_code_used")
    assert used.detail == "left=9"
    again = app.test_client()
    password_step(again, "admin@clinic.test")
    assert post_code(again, codes[0]).status_code == 401
    assert post_code(again, codes[1]).status_code == 302
    fresh = recovery_codes(app, "admin@clinic.test")
    third = app.test_client()
    password_step(third, "admin@clinic.test")
    assert post_code(third, codes[2]).status_code == 401  # the old ones are dead
    assert post_code(third, fresh[0]).status_code == 302


def test_regenerating_from_the_security_page(app):
    add_user(app, "admin@clinic.test", ["admin"])
    enrol_totp(app, "admin@clinic.test")
    codes = recovery_codes(app, "admin@clinic.test")
    client = app.test_client()
    sign_in(client, "admin@clinic.test", code=codes[0])
    page = client.get("/staff/account/security/recovery-codes")
    assert "You have 9 unused recovery codes" in page.text
    shown = client.post("/staff/account/security/recovery-codes", data={"csrf_token": csrf_token(page.text)})
    new = re.findall(r"<code>([a-z2-9-]{14})</code>", shown.text)
    assert len(new) == 10 and not set(new) & set(codes)
    other = app.test_client()
    password_step(other, "admin@clinic.test")
    assert post_code(other, codes[1]).status_code == 401
    assert post_code(other, new[5]).status_code == 302


# -- throttling --------------------------------------------------------------------------------------------------


def test_wrong_second_factors_are_throttled_like_passwords(database_url):
    app = make_app(database_url, **SHIPPED, STAFF_LOGIN_LIMIT_ACCOUNT="3 per 15 minutes")
    try:
        add_user(app, "prac@clinic.test", ["practitioner"])
        secret = enrol_totp(app, "prac@clinic.test")
        client = app.test_client()
        password_step(client, "prac@clinic.test")
        for _ in range(3):
            assert post_code(client, "000000").status_code == 401
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
        response = post_code(client, code_at(secret, later))
        assert response.status_code == 429 and response.headers["Retry-After"]
        assert not signed_in(client)
        # the password step of the same account is held too: the failures count in the same windows
        assert password_step(app.test_client(), "prac@clinic.test").status_code == 429
    finally:
        close_app(app)


# -- the pending sign-in -----------------------------------------------------------------------------------------


def test_the_pending_sign_in_expires_and_is_single_use(app):
    add_user(app, "prac@clinic.test", ["practitioner"])
    secret = enrol_totp(app, "prac@clinic.test")
    client = app.test_client()
    password_step(client, "prac@clinic.test")
    with client.session_transaction() as session:
        stolen = session["two_factor"]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    assert post_code(client, code_at(secret, later)).status_code == 302
    replay = app.test_client()
    with replay.session_transaction() as session:
        session["two_factor"] = stolen
    assert replay.get("/staff/login/two-factor").status_code == 302  # to the sign-in page: it is spent
    # and one left too long expires
    waiting = app.test_client()
    password_step(waiting, "prac@clinic.test")
    future = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=twofactor.PENDING_MINUTES + 1)
    with mock.patch("screening.staff.twofactor.utcnow", return_value=future):
        response = waiting.get("/staff/login/two-factor")
    assert response.status_code == 302 and "/staff/login" in response.location
    with app.app_context():
        assert db.session.scalar(select(twofactor.PendingSignIn)) is None


def test_a_deactivated_account_cannot_finish_its_second_step(app):
    user_id = add_user(app, "prac@clinic.test", ["practitioner"])
    secret = enrol_totp(app, "prac@clinic.test")
    client = app.test_client()
    password_step(client, "prac@clinic.test")
    token = csrf_token(client.get("/staff/login/two-factor").text)
    with app.app_context():
        db.session.get(StaffUser, user_id).is_active = False
        db.session.commit()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    response = client.post("/staff/login/two-factor", data={"csrf_token": token, "code": code_at(secret, later)})
    assert response.status_code == 401
    assert not signed_in(client)
    assert "/staff/login" in client.get("/staff/login/two-factor").location


def test_an_old_session_without_a_second_factor_goes_to_set_one_up(app):
    """A session opened before the requirement (or by a tool) reaches only the Security page until it is done."""
    from screening.staff.accounts import open_session

    user_id = add_user(app, "prac@clinic.test", ["practitioner"])
    with app.app_context():
        token = open_session(db.session, db.session.get(StaffUser, user_id))
    client = app.test_client()
    with client.session_transaction() as session:
        session["staff"] = token
    response = client.get("/staff/submissions")
    assert response.status_code == 302 and response.location.endswith("/staff/account/security")
    assert client.get("/staff/account/security").status_code == 200
    assert client.get("/staff/account/security/app").status_code == 200


# -- the Security page -------------------------------------------------------------------------------------------


def test_the_security_page_sets_up_replaces_and_removes_an_app(database_url):
    app = make_app(database_url, TWO_FACTOR_ROLES="admin,practitioner")
    try:
        add_user(app, "desk@clinic.test", ["desk"])  # not required: may add and remove freely
        client = app.test_client()
        sign_in(client, "desk@clinic.test")
        page = client.get("/staff/account/security")
        assert "No authenticator app is set up" in page.text
        setup = client.get("/staff/account/security/app")
        secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', setup.text).group(1).replace(" ", "")
        response = client.post("/staff/account/security/app", data={"csrf_token": csrf_token(setup.text),
                                                                       "code": pyotp.TOTP(secret).now()})
        assert response.status_code == 302 and "recovery-codes" in response.location  # the first factor
        page = client.get("/staff/account/security")
        assert "Replace it" in page.text
        # the desk account now has a factor: it is asked for it
        other = app.test_client()
        assert password_step(other, "desk@clinic.test").location.endswith("/staff/login/two-factor")
        response = client.post("/staff/account/security/app/remove", data={"csrf_token": csrf_token(page.text)})
        assert response.status_code == 302
        assert "/staff/login/" not in password_step(app.test_client(), "desk@clinic.test").location
        assert [e.action for e in events(app, "totp_removed")] == ["totp_removed"]
    finally:
        close_app(app)


def test_the_last_factor_of_a_required_role_cannot_be_removed(app):
    add_user(app, "prac@clinic.test", ["practitioner"])
    enrol_totp(app, "prac@clinic.test")
    codes = recovery_codes(app, "prac@clinic.test")
    client = app.test_client()
    sign_in(client, "prac@clinic.test", code=codes[0])
    page = client.get("/staff/account/security")
    response = client.post("/staff/account/security/app/remove", data={"csrf_token": csrf_token(page.text)})
    assert response.status_code == 400 and "This is your only second factor" in response.text
    with app.app_context():
        assert db.session.scalar(select(twofactor.TotpCredential)) is not None


def test_passkey_forms_refuse_bad_input_without_a_500(app):
    add_user(app, "prac@clinic.test", ["practitioner"])
    enrol_totp(app, "prac@clinic.test")
    codes = recovery_codes(app, "prac@clinic.test")
    client = app.test_client()
    sign_in(client, "prac@clinic.test", code=codes[0])
    token = csrf_token(client.get("/staff/account/security").text)
    options = client.post("/staff/account/security/passkeys/options", data={"csrf_token": token})
    assert options.status_code == 200 and options.json["challenge"] and options.json["rp"]["id"] == "127.0.0.1"
    for credential in ("", "{", "[]", '{"id": "x", "rawId": "x", "response": {}, "type": "public-key"}', "x" * 30000):
        response = client.post("/staff/account/security/passkeys",
                               data={"csrf_token": token, "name": "Laptop", "credential": credential})
        assert response.status_code == 400 and response.json["error"], credential[:20]
    response = client.post("/staff/account/security/passkeys", data={"csrf_token": token, "name": "",
                                                                      "credential": "{}"})
    assert "Give the passkey a name" in response.json["error"]
    for passkey in ("", "1", "x", "99999999999999"):
        response = client.post("/staff/account/security/passkeys/remove", data={"csrf_token": token,
                                                                                 "passkey": passkey})
        assert response.status_code == 400 and "Choose a passkey" in response.text
        response = client.post("/staff/account/security/passkeys/rename", data={"csrf_token": token,
                                                                                 "passkey": passkey, "name": "x"})
        assert response.status_code == 400


def test_another_persons_passkey_cannot_be_renamed_or_removed(app):
    add_user(app, "prac@clinic.test", ["practitioner"])
    other_id = add_user(app, "other@clinic.test", ["desk"])
    with app.app_context():
        db.session.add(twofactor.Passkey(user_id=other_id, credential_id="abc", public_key=b"k", name="Theirs"))
        db.session.commit()
        key_id = db.session.scalar(select(twofactor.Passkey.id))
    enrol_totp(app, "prac@clinic.test")
    codes = recovery_codes(app, "prac@clinic.test")
    client = app.test_client()
    sign_in(client, "prac@clinic.test", code=codes[0])
    token = csrf_token(client.get("/staff/account/security").text)
    for action in ("remove", "rename"):
        response = client.post(f"/staff/account/security/passkeys/{action}",
                               data={"csrf_token": token, "passkey": str(key_id), "name": "Mine"})
        assert response.status_code == 400
    with app.app_context():
        assert db.session.get(twofactor.Passkey, key_id).name == "Theirs"


def test_a_passkey_sign_in_refuses_a_made_up_answer_and_spends_the_challenge(app):
    user_id = add_user(app, "prac@clinic.test", ["practitioner"])
    with app.app_context():
        db.session.add(twofactor.Passkey(user_id=user_id, credential_id="abc", public_key=b"k", name="Phone"))
        db.session.commit()
    client = app.test_client()
    assert password_step(client, "prac@clinic.test").location.endswith("/staff/login/two-factor")
    token = csrf_token(client.get("/staff/login/two-factor").text)
    options = client.post("/staff/login/passkey/options", data={"csrf_token": token})
    assert options.status_code == 200 and options.json["allowCredentials"][0]["id"] == "abc"
    with app.app_context():
        assert db.session.scalar(select(twofactor.PendingSignIn.challenge))
    made_up = '{"id": "abc", "rawId": "abc", "type": "public-key", "response": {"clientDataJSON": "e30", ' \
              '"authenticatorData": "AA", "signature": "AA"}}'
    response = client.post("/staff/login/passkey", data={"csrf_token": token, "credential": made_up})
    assert response.status_code == 400 and "not accepted" in response.json["error"]
    with app.app_context():
        assert db.session.scalar(select(twofactor.PendingSignIn.challenge)) is None  # used once
    assert not signed_in(client)
    assert events(app, "two_factor_failed")


# -- an admin resets a lost second factor ------------------------------------------------------------------------


def test_an_admin_resets_a_lost_second_factor_audited_and_emailed(database_url, smtp):
    url, mailbox = smtp
    app = make_app(database_url, **SHIPPED, MAIL_URL=url)
    try:
        add_user(app, "boss@clinic.test", ["admin"])
        prac_id = add_user(app, "prac@clinic.test", ["practitioner"])
        enrol_totp(app, "boss@clinic.test")
        boss_codes = recovery_codes(app, "boss@clinic.test")
        enrol_totp(app, "prac@clinic.test")
        prac_codes = recovery_codes(app, "prac@clinic.test")
        prac = app.test_client()
        sign_in(prac, "prac@clinic.test", code=prac_codes[0])
        admin = app.test_client()
        sign_in(admin, "boss@clinic.test", code=boss_codes[0])
        page = admin.get(f"/staff/admin/users/{prac_id}/two-factor")
        assert page.status_code == 200 and "Prac" in page.text and "prac@clinic.test" in page.text
        assert admin.post(f"/staff/admin/users/{prac_id}/two-factor").status_code == 400  # no CSRF token
        response = admin.post(f"/staff/admin/users/{prac_id}/two-factor", data={"csrf_token": csrf_token(page.text)})
        assert response.status_code == 302 and response.location.endswith("/staff/admin/users")
        assert prac.get("/staff/submissions").status_code == 302  # signed out everywhere
        with app.app_context():
            for model in (twofactor.TotpCredential, twofactor.Passkey, twofactor.RecoveryCode):
                assert db.session.scalar(select(model).where(model.user_id == prac_id)) is None
        [event] = events(app, "two_factor_reset")
        assert event.detail == f"user={prac_id}" and event.actor_id is not None
        [message] = mailbox.messages
        assert message["To"] == "prac@clinic.test" and "reset" in message["Subject"]
        assert "/staff/login" in message.get_body(("plain",)).get_content()
        # the next sign-in goes through the set-up again; old recovery codes are gone
        again = app.test_client()
        assert password_step(again, "prac@clinic.test").location.endswith("/staff/login/set-up")
        # an admin cannot reset their own here, and a missing account is a 404
        boss_id = events(app, "two_factor_reset")[0].actor_id
        response = admin.post(f"/staff/admin/users/{boss_id}/two-factor", data={"csrf_token": csrf_token(page.text)})
        assert response.status_code == 400
        assert admin.get("/staff/admin/users/999999/two-factor").status_code == 404
    finally:
        close_app(app)


def test_only_admins_reset(app):
    prac_id = add_user(app, "prac@clinic.test", ["practitioner"])
    enrol_totp(app, "prac@clinic.test")
    codes = recovery_codes(app, "prac@clinic.test")
    client = app.test_client()
    sign_in(client, "prac@clinic.test", code=codes[0])
    assert client.get(f"/staff/admin/users/{prac_id}/two-factor").status_code == 403


def test_audit_events_name_no_code_or_secret(app):
    add_user(app, "prac@clinic.test", ["practitioner"])
    secret = enrol_totp(app, "prac@clinic.test")
    codes = recovery_codes(app, "prac@clinic.test")
    client = app.test_client()
    password_step(client, "prac@clinic.test")
    post_code(client, "999999")
    post_code(client, codes[3])
    with app.app_context():
        details = " ".join(e.detail for e in db.session.scalars(select(AuditEvent)))
    assert secret not in details and codes[3] not in details and "999999" not in details


def test_the_command_line_resets_a_lost_second_factor_too(app):
    """The only admin who lost their phone and their recovery codes: no admin is left to reset it in the browser."""
    user_id = add_user(app, "boss@clinic.test", ["admin"])
    enrol_totp(app, "boss@clinic.test")
    recovery_codes(app, "boss@clinic.test")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["screening", "reset-two-factor", "Boss@Clinic.test"])
    assert result.exit_code == 0, result.output
    assert "second factors removed for boss@clinic.test" in result.output
    with app.app_context():
        for model in (twofactor.TotpCredential, twofactor.RecoveryCode):
            assert db.session.scalar(select(model).where(model.user_id == user_id)) is None
    [event] = events(app, "two_factor_reset")
    assert event.actor_id is None and event.detail == f"user={user_id}"
    assert password_step(app.test_client(), "boss@clinic.test").location.endswith("/staff/login/set-up")
    result = runner.invoke(args=["screening", "reset-two-factor", "nobody@clinic.test"])
    assert result.exit_code == 1 and "no account" in result.output


def test_the_audit_trail_says_each_step_in_words(app):
    add_user(app, "boss@clinic.test", ["admin"])
    secret = enrol_totp(app, "boss@clinic.test")
    client = app.test_client()
    password_step(client, "boss@clinic.test")
    post_code(client, "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    assert post_code(client, code_at(secret, later)).status_code == 302
    page = client.get("/staff/admin/audit").text
    for words in ("Signed in with an authenticator app’s code", "Password accepted; asked for the second factor",
                  "Second factor refused for boss@clinic.test: a wrong code", "Added an authenticator app"):
        assert words in page, words
