"""The audit trail: every staff action is recorded with who, when (UTC) and from where, and never an answer."""

import datetime as dt
import re

import pytest
from sqlalchemy import select

from screening import audit
from screening import questions as qd
from screening.extensions import db
from screening.models import AuditEvent, StaffSession, StaffUser, Submission
from screening.staff.accounts import create_user
from tests.answers import clear_answers
from tests.web import complete, csrf_token

PASSWORD = "correct horse battery"
ADDRESS = "127.0.0.1"
TODAY = dt.date.today()
NAME = "Ottoline Vanderkamp"
CLIENT = clear_answers(full_name=NAME, email="ottoline.v@example.org", phone="07700 900789", dob="1979-02-14",
                       appointment_date=TODAY.isoformat(), immunosuppressive_meds="yes",
                       immunosuppressive_meds_details="Azathiobrinex 75mg", implanted_device="yes",
                       implanted_device_details="Cochlear implant, left ear")


def add_user(app, email, name, roles):
    with app.app_context():
        return create_user(db.session, email, name, list(roles), PASSWORD).id


def sign_in(client, email, password=PASSWORD):
    page = client.get("/staff/login")
    return client.post("/staff/login", data={"csrf_token": csrf_token(page.text), "email": email,
                                             "password": password})


def token(client):
    return csrf_token(client.get("/staff/login").text)


def all_events(app):
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def as_utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment.astimezone(dt.timezone.utc)


# Choice codes ("yes", "none", "full_face") are the shared vocabulary of every questionnaire, not one client's.
CODES = {c.code for q in qd.QUESTIONS for c in q.choices} | {qd.UNKNOWN}


def secrets_of(answers) -> set[str]:
    """Every answer the client typed, as text, and their identity in the ways it could be written."""
    out: set[str] = set()

    def walk(value):
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str) and value not in CODES:
            out.add(value)

    walk({k: v for k, v in answers.items() if k != "appointment_date"})  # the booking date is today's date
    out.update({NAME, "Ottoline", "Vanderkamp", "ottoline", "1979-02-14", "14/02/1979", "14 February 1979",
                "Azathiobrinex", "Cochlear", "900789"})
    return out


@pytest.fixture
def trail(app):
    """A client's submission, then one of each staff action on it, through the web as people would do them."""
    started = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    ids = {
        "desk": add_user(app, "desk@clinic.test", "Dee Desk", ["desk"]),
        "prac": add_user(app, "prac@clinic.test", "Pat Practitioner", ["practitioner"]),
        "admin": add_user(app, "admin@clinic.test", "Ada Admin", ["admin"]),
        "leaver": add_user(app, "leaver@clinic.test", "Lee Leaver", ["desk"]),
    }
    reference = complete(app.test_client(), CLIENT)

    desk = app.test_client()
    assert sign_in(desk, "desk@clinic.test", "wrong password!!").status_code == 401
    assert sign_in(desk, "desk@clinic.test").status_code == 302
    assert desk.post(f"/staff/desk/{reference}/arrived", data={"csrf_token": token(desk)}).status_code == 302
    assert desk.get(f"/staff/desk/{reference}/sheet").status_code == 200  # the desk prints a desk sheet
    assert desk.post("/staff/logout", data={"csrf_token": token(desk)}).status_code == 302

    prac = app.test_client()
    assert sign_in(prac, "prac@clinic.test").status_code == 302
    record = prac.get(f"/staff/submissions/{reference}")
    assert record.status_code == 200
    assert prac.get(f"/staff/submissions/{reference}/pdf").status_code == 200
    assert prac.get(f"/staff/submissions/{reference}/pdf?download=1").status_code == 200
    with app.app_context():
        flags = db.session.scalar(select(Submission).where(Submission.reference == reference)).result["flags"]
    form = {"csrf_token": token(prac), "decision": "proceed_with_precautions", "note": "Went through it together"}
    for i in range(len(flags)):
        form.update({f"ack_{i}": "yes", f"note_{i}": "Checked and agreed a plan"})
    assert prac.post(f"/staff/submissions/{reference}/sign-off", data=form).status_code == 302
    assert prac.post(f"/staff/submissions/{reference}/addenda",
                     data={"csrf_token": token(prac), "text": "Phoned to confirm"}).status_code == 302
    with app.app_context():  # the practitioner walks away: the next request finds the session idle
        row = db.session.scalar(select(StaffSession).where(StaffSession.user_id == ids["prac"]))
        row.last_seen_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
        db.session.commit()
    assert prac.get("/staff/desk").status_code == 302

    admin = app.test_client()
    assert sign_in(admin, "admin@clinic.test").status_code == 302
    assert admin.post(f"/staff/admin/users/{ids['leaver']}/deactivate",
                      data={"csrf_token": token(admin)}).status_code == 302
    assert admin.post("/staff/kiosk/start", data={"csrf_token": token(admin)}).status_code == 302
    page = admin.get("/kiosk/exit")
    assert admin.post("/kiosk/exit", data={"csrf_token": csrf_token(page.text), "email": "desk@clinic.test",
                                           "password": PASSWORD}).status_code == 302
    return {"ids": ids, "reference": reference, "started": started,
            "ended": dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)}


# What each web action must leave: (action, who did it or None, whether it names the submission).
EXPECTED = [
    ("sign_in_failed", None, False),
    ("sign_in", "desk", False),
    ("mark_arrived", "desk", True),
    ("print_desk_sheet", "desk", True),
    ("sign_out", "desk", False),
    ("sign_in", "prac", False),
    ("view_submission", "prac", True),
    ("view_pdf", "prac", True),
    ("download_pdf", "prac", True),
    ("sign_off", "prac", True),
    ("addendum", "prac", True),
    ("session_expired", None, False),
    ("sign_in", "admin", False),
    ("account_deactivated", "admin", False),
    ("kiosk_start", "admin", False),
    ("kiosk_stop", "desk", False),
]


def test_each_action_is_recorded_with_who_when_and_where(app, trail):
    events = [e for e in all_events(app) if e.action != "account_created"]  # created by the CLI, before
    with app.app_context():
        submission_id = db.session.scalar(select(Submission.id).where(Submission.reference == trail["reference"]))
    got = [(e.action, e.actor_id, e.submission_id) for e in events]
    want = [(action, trail["ids"][who] if who else None, submission_id if names else None)
            for action, who, names in EXPECTED]
    # Viewing a record may be logged more than once (the page after a sign-off shows it again): compare the
    # first of each repeated view, in order.
    seen = []
    for item in got:
        if not (item[0] == "view_submission" and item in seen):
            seen.append(item)
    assert seen == want
    for event in events:
        assert event.address == ADDRESS, event.action
        assert trail["started"] <= as_utc(event.at) <= trail["ended"], (event.action, event.at)
    assert {a for a, _, _ in EXPECTED} | {"account_created"} <= audit.ACTIONS


def test_accounts_made_on_the_server_are_recorded(app, runner):
    assert runner.invoke(args=["screening", "create-user", "new@clinic.test", "--role", "desk"],
                         input=f"{PASSWORD}\n{PASSWORD}\n").exit_code == 0
    assert runner.invoke(args=["screening", "reset-password", "new@clinic.test"],
                         input=f"{PASSWORD}x\n{PASSWORD}x\n").exit_code == 0
    assert runner.invoke(args=["screening", "deactivate-user", "new@clinic.test"]).exit_code == 0
    with app.app_context():
        user_id = db.session.scalar(select(StaffUser.id))
    events = all_events(app)
    assert [e.action for e in events] == ["account_created", "password_reset", "account_deactivated"]
    assert all(f"user={user_id}" in e.detail for e in events)


def test_no_audit_row_holds_an_answer(app, trail):
    with app.app_context():
        stored = db.session.scalar(select(Submission).where(Submission.reference == trail["reference"])).answers
    secrets = secrets_of(stored)
    assert "Azathiobrinex 75mg" in secrets and "ottoline.v@example.org" in secrets
    columns = [c.key for c in AuditEvent.__table__.columns]
    events = all_events(app)
    assert len(events) >= len(EXPECTED)
    for event in events:
        for column in columns:
            text = str(getattr(event, column)).casefold()
            for secret in secrets:
                assert secret.casefold() not in text, (event.action, column, secret)


# -- the admin's audit page -------------------------------------------------------------------


@pytest.fixture
def admin(app, trail):
    client = app.test_client()
    assert sign_in(client, "admin@clinic.test").status_code == 302
    return client


def table_rows(html):
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in html else ""
    return re.findall(r"<tr>(.*?)</tr>", body, re.S)


def test_admin_reads_the_trail_newest_first(app, trail, admin):
    page = admin.get("/staff/admin/audit")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    rows = table_rows(page.text)
    assert "<code>sign_in</code>" in rows[0] and "Ada Admin (admin@clinic.test)" in rows[0]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", rows[0]) and ADDRESS in rows[0]
    arrived = next(r for r in rows if "<code>mark_arrived</code>" in r)
    assert trail["reference"] in arrived and "Dee Desk (desk@clinic.test)" in arrived
    failed = next(r for r in rows if "<code>sign_in_failed</code>" in r)
    assert "No member of staff" in failed
    for secret in secrets_of(CLIENT):
        assert secret not in page.text


def test_admin_filters_by_action_actor_and_date(app, trail, admin):
    rows = table_rows(admin.get("/staff/admin/audit?action=mark_arrived").text)
    assert len(rows) == 1 and "<code>mark_arrived</code>" in rows[0]

    desk_id = trail["ids"]["desk"]
    rows = table_rows(admin.get(f"/staff/admin/audit?actor={desk_id}").text)
    actions = [re.search(r"<code>(\w+)</code>", r).group(1) for r in rows]
    assert actions == ["kiosk_stop", "sign_out", "print_desk_sheet", "mark_arrived", "sign_in"]

    rows = table_rows(admin.get("/staff/admin/audit?actor=none").text)
    assert {re.search(r"<code>(\w+)</code>", r).group(1) for r in rows} == {"sign_in_failed", "session_expired",
                                                                           "account_created"}
    rows = table_rows(admin.get(f"/staff/admin/audit?actor={desk_id}&action=sign_in").text)
    assert len(rows) == 1

    today = dt.datetime.now(dt.timezone.utc).date()
    yesterday = today - dt.timedelta(days=1)
    all_rows = table_rows(admin.get("/staff/admin/audit").text)
    assert len(table_rows(admin.get(f"/staff/admin/audit?date_from={today}&date_to={today}").text)) == len(all_rows)
    page = admin.get(f"/staff/admin/audit?date_to={yesterday}")
    assert page.status_code == 200 and table_rows(page.text) == [] and "0 events" in page.text


@pytest.mark.parametrize("query, message", [
    ("date_from=2026-13-40", "Enter a real date, like 2026-03-15"),
    ("date_to=yesterday", "Enter a real date, like 2026-03-15"),
    ("date_from=2026-03-02&date_to=2026-03-01", "The end date must be the same as or after the start date"),
    ("action=drop_table", "Choose an action from the list"),
    ("actor=9999", "Choose a member of staff from the list"),
    ("page=-1", "The page number must be a whole number, 1 or more"),
])
def test_a_bad_filter_says_what_is_wrong(admin, query, message):
    page = admin.get(f"/staff/admin/audit?{query}")
    assert page.status_code == 400
    assert "<title>Error:" in page.text and "There is a problem" in page.text and message in page.text
    assert "<tbody>" not in page.text


def test_the_trail_is_paginated(app, trail, admin):
    with app.app_context():
        for n in range(120):
            audit.record(db.session, "sign_in_failed", address=f"10.0.0.{n}", commit=False)
        db.session.commit()
    first = admin.get("/staff/admin/audit?action=sign_in_failed")
    assert len(table_rows(first.text)) == 50 and "page 1 of 3" in first.text
    assert "10.0.0.119" in first.text, "newest first"
    assert 'href="/staff/admin/audit?page=2&amp;action=sign_in_failed"' in first.text
    last = admin.get("/staff/admin/audit?action=sign_in_failed&page=3")
    assert len(table_rows(last.text)) == 121 - 100 and "Older events" not in last.text
    beyond = admin.get("/staff/admin/audit?action=sign_in_failed&page=999")
    assert beyond.status_code == 200 and "page 3 of 3" in beyond.text, "a page past the end shows the last"


@pytest.mark.parametrize("role", ["desk", "practitioner"])
def test_desk_and_practitioners_cannot_read_the_trail(app, client, role):
    add_user(app, f"{role}@clinic.test", role.title(), [role])
    sign_in(client, f"{role}@clinic.test")
    assert client.get("/staff/admin/audit").status_code == 403
    assert client.get("/staff/admin/audit?action=sign_in").status_code == 403
