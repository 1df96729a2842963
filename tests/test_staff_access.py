"""Every /staff/ URL, tried as each kind of person: the expected answer is written down for each.

A new /staff/ route without a line in ACCESS fails ``test_every_staff_route_is_in_the_table``: whoever adds
a staff page must decide here who may use it.
"""

import datetime as dt
import re

import pytest

from screening import services
from screening.appointments import services as appointments
from screening.appointments.booking import Booking
from screening.clients.models import Client
from screening.extensions import db
from screening.staff.accounts import create_user
from tests.answers import clear_answers
from tests.web import csrf_token

PASSWORD = "correct horse battery"
ANON, DESK, PRAC, ADMIN = "anonymous", "desk", "practitioner", "admin"
ROLES = (ANON, DESK, PRAC, ADMIN)

LOGIN = "to sign-in"  # a GET from someone not signed in: 302 to the sign-in page
DENIED = 403
RAN = (400, 409)  # allowed: the view ran and refused an empty form (sign-off, addendum)


def table(method, anonymous, desk, practitioner, admin):
    return method, {ANON: anonymous, DESK: desk, PRAC: practitioner, ADMIN: admin}


# endpoint: (method tried, expected answer for anonymous, desk, practitioner, admin). A GET route is tried
# with GET; a POST-only route with POST and a valid CSRF token (so a refusal is about access, not CSRF).
ACCESS = {
    # sign-in and the session
    "staff.login": table("GET", 200, 200, 200, 200),
    "staff.logout": table("POST", 401, 302, 302, 302),
    "staff.extend": table("POST", 401, 302, 302, 302),
    "staff.session_status": table("GET", 401, 200, 200, 200),  # asked by staff.js: JSON, never a redirect
    "staff.home": table("GET", LOGIN, 302, 302, 302),
    # the intake desk (practitioners may look, not act); the desk prints a desk sheet (no health data), and the
    # full PDF only where SCREENING_DESK_FULL_PDF allows it (tests/test_least_privilege.py)
    "staff.desk": table("GET", LOGIN, 200, 200, 200),
    "staff.arrived": table("POST", 401, 302, DENIED, 302),
    "staff.desk_sheet_page": table("GET", LOGIN, 200, 200, 200),
    "staff.desk_pdf": table("GET", LOGIN, DENIED, 200, DENIED),
    "staff.kiosk_start": table("POST", 401, 302, DENIED, 302),
    # undo an arrival (none yet: back to the desk all the same); hand the tablet over for the day's confirmation
    # (today's sample was answered on its day: nothing to confirm, 409)
    "staff.not_arrived": table("POST", 401, 302, DENIED, 302),
    "staff.confirm_here": table("POST", 401, 409, DENIED, 409),
    "staff.redo_here": table("POST", 401, 409, DENIED, 409),
    # clients across visits (screening/clients/views.py): everyone on staff finds a client and attaches a walk-in
    # (an empty form is refused: 400); only a practitioner merges (no duplicate chosen: 400)
    "staff.clients": table("GET", LOGIN, 200, 200, 200),
    "staff.client": table("GET", LOGIN, 200, 200, 200),
    "staff.attach_to_client": table("POST", 401, 400, 400, 400),
    "staff.merge": table("POST", 401, DENIED, 400, DENIED),
    # admin pages
    "staff.users": table("GET", LOGIN, DENIED, DENIED, 200),
    # staff accounts (screening/staff/people.py): admins only. The spare account is set up and active, so an empty
    # roles form, a resent invitation and a reactivation are refused (400): access was granted all the same.
    "staff.invite_user": table("GET", LOGIN, DENIED, DENIED, 200),
    "staff.user_account": table("GET", LOGIN, DENIED, DENIED, 200),
    "staff.change_roles": table("POST", 401, DENIED, DENIED, 400),
    "staff.resend_invite": table("POST", 401, DENIED, DENIED, 400),
    "staff.deactivate": table("GET", LOGIN, DENIED, DENIED, 200),  # the question; its POST deactivates
    "staff.reactivate": table("POST", 401, DENIED, DENIED, 400),
    # a forgotten password and the emailed links: for anyone (no link in the session: the "no longer works" page)
    "staff.forgotten_password": table("GET", 200, 200, 200, 200),
    "staff.follow_account_link": table("GET", 404, 404, 404, 404),
    "staff.choose_password": table("GET", 404, 404, 404, 404),
    "staff.password_done": table("GET", 200, 200, 200, 200),
    "staff.audit_trail": table("GET", LOGIN, DENIED, DENIED, 200),
    "staff.audit_export": table("GET", LOGIN, DENIED, DENIED, 200),  # the CSV for a compliance officer
    # two-factor sign-in (screening/staff/twofactor_views.py): the second step and the first set-up open only with a
    # pending sign-in (a right password), never with a staff session; everyone on staff has a Security page; an admin
    # resets someone else's second factors (the spare account's: 302). Without a pending sign-in the two steps send
    # everyone to the sign-in page (302), with nothing to come back to (no next=).
    "staff.second_factor": table("GET", (302,), (302,), (302,), (302,)),
    "staff.passkey_options": table("POST", 401, 401, 401, 401),
    "staff.passkey_sign_in": table("POST", 401, 401, 401, 401),
    "staff.enrol": table("GET", (302,), (302,), (302,), (302,)),
    "staff.enrol_passkey_options": table("POST", 401, 401, 401, 401),
    "staff.enrol_passkey": table("POST", 401, 401, 401, 401),
    "staff.security": table("GET", LOGIN, 200, 200, 200),
    "staff.security_totp": table("GET", LOGIN, 200, 200, 200),
    "staff.security_totp_remove": table("POST", 401, 400, 400, 400),
    "staff.passkey_register_options": table("POST", 401, 200, 200, 200),
    "staff.passkey_register": table("POST", 401, 400, 400, 400),
    "staff.passkey_rename": table("POST", 401, 400, 400, 400),
    "staff.passkey_remove": table("POST", 401, 400, 400, 400),
    "staff.recovery_codes": table("GET", LOGIN, 200, 200, 200),
    "staff.reset_two_factor": table("GET", LOGIN, DENIED, DENIED, 200),
    # the practitioner's review (screening/staff/review.py): records are for practitioners only (an admin reads
    # them only if also a practitioner); only a practitioner signs
    "staff.submissions": table("GET", LOGIN, DENIED, 200, DENIED),
    "staff.submission": table("GET", LOGIN, DENIED, 200, DENIED),
    "staff.submission_pdf": table("GET", LOGIN, DENIED, 200, DENIED),
    "staff.sign_off": table("POST", 401, DENIED, RAN, DENIED),
    "staff.addendum": table("POST", 401, DENIED, RAN, DENIED),
    "staff.next_session": table("POST", 401, DENIED, RAN, DENIED),
    # appointments (screening/appointments/views.py): everyone on staff sees the day (no health data); the desk and
    # admins book, resend, unlock, cancel, attach and import. After one role cancels the sample appointment, a
    # new link for it is refused (409): access was granted all the same.
    "staff.appointments": table("GET", LOGIN, 200, 200, 200),
    "staff.appointment": table("GET", LOGIN, 200, 200, 200),
    "staff.new_appointment": table("GET", LOGIN, 200, DENIED, 200),
    "staff.import_csv": table("GET", LOGIN, 200, DENIED, 200),
    "staff.resend": table("POST", 401, 303, DENIED, 303),
    "staff.copy_link": table("POST", 401, (200, 409), DENIED, (200, 409)),
    "staff.unlock": table("POST", 401, 303, DENIED, 303),
    "staff.cancel": table("POST", 401, 303, DENIED, 303),
    "staff.attach": table("POST", 401, 303, DENIED, 303),
    # the booking systems' API tokens: admins only (an empty form is refused: no name)
    "staff.api_tokens": table("GET", LOGIN, DENIED, DENIED, 200),
    "staff.create_api_token": table("POST", 401, DENIED, DENIED, 400),
    "staff.revoke_api_token": table("POST", 401, DENIED, DENIED, 303),
}


def staff_rules(app):
    return [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/staff/")]


@pytest.fixture
def world(app):
    """One account per role, a spare account to deactivate, and a submission for today."""
    with app.app_context():
        ids = {role: create_user(db.session, f"{role}@clinic.test", role.title(), [role], PASSWORD).id
               for role in (DESK, PRAC, ADMIN)}
        ids["spare"] = create_user(db.session, "spare@clinic.test", "Spare", ["desk"], PASSWORD).id
        draft, _ = services.start_draft(db.session, dt.timedelta(hours=1))
        draft.answers = clear_answers(appointment_date=dt.date.today().isoformat(), full_name="Rhoda Access")
        services.sign(db.session, draft, "Rhoda Access")
        reference = services.submit(db.session, draft, app.extensions["screening_rules"]).reference
        booking = Booking(name="Rhoda Access", date_of_birth=dt.date(1990, 3, 27), email="rhoda@example.com",
                          phone="", date=dt.date.today(), time=dt.time(10, 0), treatment="standard",
                          areas=("full_face",))
        appointment = appointments.book(db.session, booking, source="test")[0]
        uid, client_uid = appointment.uid, db.session.get(Client, appointment.client_id).uid
    return {"reference": reference, "user_id": ids["spare"], "uid": uid, "client_uid": client_uid}


def url_for_rule(rule, world) -> str:
    values = {"reference": world["reference"], "user_id": world["user_id"], "uid": world["uid"],
              "client_uid": world["client_uid"], "token": "x" * 43}
    missing = set(rule.arguments) - set(values)
    assert not missing, f"{rule.rule}: give test_staff_access.py a sample value for {sorted(missing)}"
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: str(values[m.group(1)]), rule.rule)


def client_as(app, role):
    client = app.test_client()
    page = client.get("/staff/login")
    if role != ANON:
        response = client.post("/staff/login", data={"csrf_token": csrf_token(page.text),
                                                      "email": f"{role}@clinic.test", "password": PASSWORD})
        assert response.status_code == 302, role
    return client


def answer(client, method, url):
    if method == "GET":
        return client.get(url)
    token = csrf_token(client.get("/staff/login").text)
    return client.post(url, data={"csrf_token": token})


def matches(response, expected) -> bool:
    if expected == LOGIN:
        return response.status_code == 302 and "/staff/login" in response.location
    if isinstance(expected, tuple):
        return response.status_code in expected
    return response.status_code == expected


def test_every_staff_route_is_in_the_table(app):
    in_app = {rule.endpoint for rule in staff_rules(app)}
    assert in_app - set(ACCESS) == set(), "a /staff/ route has no line in ACCESS: decide who may use it"
    assert set(ACCESS) - in_app == set(), "ACCESS names a route that no longer exists"


def test_the_table_tries_each_route_the_way_it_is_used(app):
    for rule in staff_rules(app):
        method, _ = ACCESS[rule.endpoint]
        if "GET" in rule.methods:
            assert method == "GET", rule.endpoint
        else:
            assert method == "POST" and "POST" in rule.methods, rule.endpoint


@pytest.mark.parametrize("endpoint", sorted(ACCESS))
def test_each_role_gets_the_expected_answer(app, world, endpoint):
    rule = next((r for r in staff_rules(app) if r.endpoint == endpoint), None)
    assert rule is not None, f"{endpoint} is in ACCESS but not in the app"
    method, expected = ACCESS[endpoint]
    url = url_for_rule(rule, world)
    wrong = {}
    for role in ROLES:  # admin last: its deactivation and arrival must not change what the others see
        response = answer(client_as(app, role), method, url)
        if not matches(response, expected[role]):
            wrong[role] = (response.status_code, expected[role])
        if expected[role] in (DENIED, 401, LOGIN):
            assert "Rhoda Access" not in response.text, role
    assert not wrong, f"{method} {url}: (got, expected) by role: {wrong}"


def test_anonymous_gets_go_to_sign_in_with_the_page_to_return_to(app, world):
    client = app.test_client()
    for endpoint, (_method, expected) in ACCESS.items():
        if expected[ANON] != LOGIN:
            continue
        url = url_for_rule(next(r for r in staff_rules(app) if r.endpoint == endpoint), world)
        response = client.get(url)
        assert matches(response, LOGIN), endpoint
        assert "next=" in response.location


def test_a_post_without_csrf_is_refused_before_anything_else(app, world):
    client = client_as(app, ADMIN)
    for endpoint, (method, _) in ACCESS.items():
        if method == "POST":
            url = url_for_rule(next(r for r in staff_rules(app) if r.endpoint == endpoint), world)
            assert client.post(url).status_code == 400, endpoint
