"""The audit trail: every staff action is recorded with who, when and from where, and never an answer; admins read
it in words, filter it, and export it as CSV."""

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


def code(row: str) -> str:
    """The action code under an event's words."""
    return re.search(r'<code class="action-code">(\w+)</code>', row).group(1)


def table_rows(html):
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in html else ""
    return re.findall(r"<tr>(.*?)</tr>", body, re.S)


def test_admin_reads_the_trail_newest_first(app, trail, admin):
    page = admin.get("/staff/admin/audit")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    rows = table_rows(page.text)
    assert "Signed in" in rows[0] and code(rows[0]) == "sign_in" and "Ada Admin" in rows[0]
    assert "(admin@clinic.test)" in rows[0]
    assert re.search(r"\d{1,2} \w+ \d{4}, \d\d:\d\d:\d\d UTC", rows[0]) and ADDRESS in rows[0]
    arrived = next(r for r in rows if code(r) == "mark_arrived")
    assert f"Marked {trail['reference']} as arrived" in arrived and "Dee Desk" in arrived
    failed = next(r for r in rows if code(r) == "sign_in_failed")
    assert "No member of staff" in failed and "Sign-in failed for desk@clinic.test" in failed
    for secret in secrets_of(CLIENT):
        assert secret not in page.text


def test_admin_filters_by_action_actor_and_date(app, trail, admin):
    rows = table_rows(admin.get("/staff/admin/audit?action=mark_arrived").text)
    assert len(rows) == 1 and code(rows[0]) == "mark_arrived"

    desk_id = trail["ids"]["desk"]
    rows = table_rows(admin.get(f"/staff/admin/audit?actor={desk_id}").text)
    actions = [code(r) for r in rows]
    # A failed sign-in is the person's whose email it tried.
    assert actions == ["kiosk_stop", "sign_out", "print_desk_sheet", "mark_arrived", "sign_in", "sign_in_failed"]

    rows = table_rows(admin.get("/staff/admin/audit?actor=none").text)
    assert {code(r) for r in rows} == {"sign_in_failed", "session_expired", "account_created"}
    rows = table_rows(admin.get(f"/staff/admin/audit?actor={desk_id}&action=sign_in").text)
    assert len(rows) == 1

    today = dt.datetime.now(dt.timezone.utc).date()
    yesterday = today - dt.timedelta(days=1)
    all_rows = table_rows(admin.get("/staff/admin/audit").text)
    assert len(table_rows(admin.get(f"/staff/admin/audit?date_from={today}&date_to={today}").text)) == len(all_rows)
    page = admin.get(f"/staff/admin/audit?date_to={yesterday}")
    assert page.status_code == 200 and table_rows(page.text) == [] and "0 events" in page.text


@pytest.mark.parametrize("query, message", [
    ("date_from=2026-13-40", "Enter a real date as day/month/year, for example 24/11/2026"),
    ("date_to=yesterday", "Enter a real date as day/month/year, for example 24/11/2026"),
    ("date_from=31/02/2026", "Enter a real date as day/month/year, for example 24/11/2026"),
    ("date_from=2026-03-02&date_to=2026-03-01", "The ‘To’ date must be the same as or after the ‘From’ date"),
    ("date_from=02/03/2026&date_to=1.3.2026", "The ‘To’ date must be the same as or after the ‘From’ date"),
    ("reference=K7QM-4TX", "Enter a reference of 8 letters and numbers, like K7QM-4TXR"),
    ("reference=K7QM-4TXB", "Enter a reference of 8 letters and numbers, like K7QM-4TXR"),  # B is never used
    ("reference=%27%3B+DROP+TABLE", "Enter a reference of 8 letters and numbers, like K7QM-4TXR"),
    ("reference=" + "A" * 300, "That is too long"),
    ("date_from=" + "1" * 300, "That is too long"),
    ("action=" + "a" * 300, "That is too long"),
    ("page=%C2%B2", "The page number must be a whole number, 1 or more"),
    ("action=drop_table", "Choose an action from the list"),
    ("actor=9999", "Choose a member of staff from the list"),
    ("page=-1", "The page number must be a whole number, 1 or more"),
])
def test_a_bad_filter_says_what_is_wrong(lone_admin, query, message):
    page = lone_admin.get(f"/staff/admin/audit?{query}")
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


# -- in words, with names, filters that keep what was typed, and the CSV export (issue 15) ------------------------


def test_every_action_has_words():
    missing = sorted(audit.ACTIONS - audit.ACTION_WORDS.keys())
    assert not missing, f"add words for these actions to screening/audit.py ACTION_WORDS: {missing}"
    assert not audit.ACTION_WORDS.keys() - audit.ACTIONS, "words for an action that is never recorded"
    values = {"reference": "K7QM-4TXR", "user": "Pat (p@x)", "email": "e@x", "appointment": "u", "token": "t",
              "detail": "d"}
    for action, words in [*audit.ACTION_WORDS.items(), *((a, w) for (a, _), w in audit.DETAIL_WORDS.items())]:
        assert "%(" not in words % values and "_" not in words, (action, words)


@pytest.mark.parametrize("action, detail, reference, words", [
    ("view_pdf", "version=original", "K7QM-4TXR", "Opened the PDF of K7QM-4TXR"),
    ("view_pdf", "version=signed", "K7QM-4TXR", "Opened the signed-off PDF of K7QM-4TXR"),
    ("sign_in", "", "", "Signed in"),
    ("sign_in_failed", "account=ab12 net=10.0.0.1;email=pat%40clinic.test;", "", "Sign-in failed for pat@clinic.test"),
    ("sign_in_failed", "account=ab12 net=10.0.0.1;email=a%3Bb%20net%3D1;kiosk_exit", "",
     "Failed to end kiosk mode as a;b net=1"),
    ("sign_in_failed", "account=ab12 net=10.0.0.1;", "", "Sign-in failed for an unknown address"),  # before issue 15
    ("account_deactivated", "user=3", "", "Deactivated the account of Pat Smith (pat@clinic.test)"),
    ("account_deactivated", "user=99", "", "Deactivated the account of account 99"),
    ("erased", "K7QM-4TXR; reason: the client asked", "", "Erased K7QM-4TXR at the client’s request"),
    ("api_token_created", "api token Phorest", "", "Created the booking system token “Phorest”"),
    ("invitation_resent", "appointment abc123", "", "Sent the invitation for appointment abc123 again"),
    ("session_expired", "idle", "", "Signed out automatically: the page was left unused"),
    ("no_such_action", "x", "", "no_such_action"),
])
def test_events_read_in_words(action, detail, reference, words):
    assert audit.describe(action, detail, reference, {3: "Pat Smith (pat@clinic.test)"}) == words


def test_the_trail_reads_in_words_and_names_people(app, trail, admin):
    page = admin.get("/staff/admin/audit").text
    reference = trail["reference"]
    for words in (f"Opened the record of {reference}", f"Opened the PDF of {reference}",
                  f"Downloaded the PDF of {reference}", f"Signed off {reference}", f"Added an addendum to {reference}",
                  f"Printed the desk sheet of {reference}",
                  "Deactivated the account of Lee Leaver (leaver@clinic.test)", "Sign-in failed for desk@clinic.test",
                  "Signed out automatically: the page was left unused",
                  "Started kiosk mode on a device", "Pat Practitioner", "(prac@clinic.test)"):
        assert words in page, words
    assert "user=" not in page and "account=" not in page
    for secret in secrets_of(CLIENT):
        assert secret not in page


def test_a_failed_sign_in_records_the_email_tried_never_the_password(app, client):
    add_user(app, "pat@clinic.test", "Pat", ["practitioner"])
    odd = "eve net=10.0.0.1;x@evil.test"  # spaces, "net=" and ";" cannot pose as another network's count
    for email in ("pat@clinic.test", odd, "long" + "x" * 230 + "@clinic.test"):
        assert sign_in(client, email, "hunter2 wrong password").status_code == 401
    failed = [e for e in all_events(app) if e.action == "sign_in_failed"]
    assert [audit.email_tried(e.detail) for e in failed][:2] == ["pat@clinic.test", odd]
    assert audit.email_tried(failed[2].detail).startswith("longxxx") and len(failed[2].detail) <= 200
    assert " net=10.0.0.1;" not in failed[1].detail
    for event in failed:
        for column in ("detail", "address", "action"):
            assert "hunter2" not in getattr(event, column)


def test_filters_by_reference_and_keeps_them_when_paging(app, trail, admin):
    reference = trail["reference"]
    typed = reference.lower().replace("-", " ")
    page = admin.get(f"/staff/admin/audit?reference={typed}")
    rows = table_rows(page.text)
    assert page.status_code == 200 and rows and all(reference in r for r in rows)
    assert {code(r) for r in rows} >= {"mark_arrived", "view_pdf", "sign_off", "view_submission"}
    assert f'value="{typed}"' in page.text, "the reference as it was typed"
    with app.app_context():
        submission_id = db.session.scalar(select(Submission.id).where(Submission.reference == reference))
        for _ in range(60):
            db.session.add(AuditEvent(action="view_submission", submission_id=submission_id, address=ADDRESS))
        db.session.commit()
    first = admin.get(f"/staff/admin/audit?reference={reference}&date_from=1/1/2020&action=view_submission")
    assert "page 1 of 2" in first.text
    assert (f'href="/staff/admin/audit?page=2&amp;action=view_submission&amp;reference={reference}'
            '&amp;date_from=1/1/2020"') in first.text.replace("%2F", "/")


@pytest.mark.parametrize("query, kept", [
    ("reference=nope&date_from=24/11/2026&action=sign_in", ['value="nope"', 'value="24/11/2026"',
                                                            '<option selected value="sign_in">']),
    ("date_from=40/40/2026&reference=k7qm+4txr", ['value="40/40/2026"', 'value="k7qm 4txr"']),
    ("date_to=%3Cscript%3E", ['value="&lt;script&gt;"']),
])
def test_bad_filters_keep_everything_typed(lone_admin, query, kept):
    page = lone_admin.get(f"/staff/admin/audit?{query}")
    assert page.status_code == 400 and "There is a problem" in page.text and "<script>" not in page.text
    for text in kept:
        assert text in page.text, text
    summary = page.text.split('class="error-summary"', 1)[1].split("</div>", 1)[0]
    for href in re.findall(r'href="#(\w+)"', summary):
        assert f'id="{href}"' in page.text, "each message links to its field"


@pytest.fixture
def lone_admin(app):
    """An admin signed in, on a trail that holds only their own account and sign-in."""
    add_user(app, "admin@clinic.test", "Ada Admin", ["admin"])
    client = app.test_client()
    assert sign_in(client, "admin@clinic.test").status_code == 302
    return client


def read_csv(response):
    import csv
    import io

    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="audit-trail-')
    assert response.headers["Cache-Control"] == "no-store"
    text = response.data.decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


def test_the_export_is_the_filtered_trail_and_is_itself_audited(app, trail, admin):
    before = len(all_events(app))
    page = admin.get("/staff/admin/audit?action=sign_in")
    assert 'href="/staff/admin/audit/export.csv?action=sign_in"' in page.text
    rows = read_csv(admin.get("/staff/admin/audit/export.csv?action=sign_in"))
    assert rows[0] == list(("event", "time (clinic)", "time (UTC)", "member of staff", "email", "what", "action",
                            "reference", "detail", "address"))
    assert len(rows) - 1 == len(table_rows(page.text)) == 4  # desk, prac, admin, and the admin's fixture sign-in
    assert {r[6] for r in rows[1:]} == {"sign_in"} and {r[5] for r in rows[1:]} == {"Signed in"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rows[1][2])
    exported = all_events(app)[before:]
    assert [(e.action, e.actor_id, e.detail) for e in exported] == [
        ("audit_exported", trail["ids"]["admin"], "action=sign_in")]
    everything = read_csv(admin.get("/staff/admin/audit/export.csv"))
    assert "Exported the audit trail as CSV (action=sign_in)" in {r[5] for r in everything}
    text = "\n".join(",".join(r) for r in everything)
    assert "Ada Admin" in text and "admin@clinic.test" in text and trail["reference"] in text
    for secret in secrets_of(CLIENT):
        assert secret not in text


@pytest.mark.parametrize("value, cell", [
    ("=HYPERLINK(\"http://evil.test\",\"x\")", "'=HYPERLINK(\"http://evil.test\",\"x\")"),
    ("+1+2", "'+1+2"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("plain", "plain"), ("K7QM-4TXR", "K7QM-4TXR"), (12, "12"), (None, ""),
])
def test_a_cell_never_starts_a_formula(value, cell):
    from screening.staff.admin import csv_cell

    assert csv_cell(value) == cell


def test_the_export_defuses_formulas_in_every_column(app, lone_admin):
    with app.app_context():
        db.session.add(AuditEvent(action="api_token_created", detail="api token =cmd|' /C calc'!A0",
                                  address="@evil"))
        db.session.add(AuditEvent(action="sign_in_failed", detail="account=a net=n;email=%3Dx%40evil.test;",
                                  address="+1"))
        db.session.commit()
    rows = read_csv(lone_admin.get("/staff/admin/audit/export.csv"))
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
    token = next(r for r in rows if r[6] == "api_token_created")
    assert token[8] == "api token =cmd|' /C calc'!A0" and token[9] == "'@evil"
    failed = next(r for r in rows if r[6] == "sign_in_failed" and r[9] == "'+1")
    assert failed[5] == "Sign-in failed for =x@evil.test"


@pytest.mark.parametrize("query", ["date_from=yesterday", "reference=nope", "actor=9999"])
def test_a_bad_export_filter_says_what_is_wrong_and_exports_nothing(app, lone_admin, query):
    before = len(all_events(app))
    page = lone_admin.get(f"/staff/admin/audit/export.csv?{query}")
    assert page.status_code == 400 and page.mimetype == "text/html" and "There is a problem" in page.text
    assert len(all_events(app)) == before


@pytest.mark.parametrize("role", ["desk", "practitioner"])
def test_only_admins_export_the_trail(app, client, role):
    add_user(app, f"{role}@clinic.test", role.title(), [role])
    sign_in(client, f"{role}@clinic.test")
    assert client.get("/staff/admin/audit/export.csv").status_code == 403
    assert [e.action for e in all_events(app)].count("audit_exported") == 0
    anonymous = app.test_client()
    assert anonymous.get("/staff/admin/audit/export.csv").status_code == 302


def test_who_has_viewed_a_record_lists_each_person_once(app):
    reference = complete(app.test_client(), CLIENT)
    add_user(app, "prac@clinic.test", "Pat Practitioner", ["practitioner"])
    add_user(app, "ada@clinic.test", "Ada Admin", ["admin", "practitioner"])
    pat, ada = app.test_client(), app.test_client()
    assert sign_in(pat, "prac@clinic.test").status_code == 302
    for _ in range(3):
        assert pat.get(f"/staff/submissions/{reference}").status_code == 200
    with app.app_context():  # the first of Pat's views was yesterday
        first = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "view_submission")
                                  .order_by(AuditEvent.id).limit(1))
        first.at = as_utc(first.at) - dt.timedelta(days=1)
        db.session.commit()
        yesterday = f"{first.at.day} {first.at:%B %Y}"
    assert sign_in(ada, "ada@clinic.test").status_code == 302
    page = ada.get(f"/staff/submissions/{reference}").text
    viewers = page.split('id="viewers-title"', 1)[1].split("</section>", 1)[0]
    items = re.findall(r"<li>(.*?)</li>", viewers, re.S)
    assert len(items) == 2, "one line a person, however often they looked"
    assert items[0].startswith("Ada Admin —") and "once," in items[0], "latest first"
    assert items[1].startswith("Pat Practitioner —") and "3 times, first " + yesterday in " ".join(items[1].split())
    assert "Viewed 4 times in all." in viewers
