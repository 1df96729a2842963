"""The day-of-treatment confirmation (issue 14, "The day of treatment") in Chromium: on the client's phone through
their invitation link, and on the clinic's tablet handed over by the desk.

Each test books today's appointment as the desk does (the "New appointment" form), opens the invitation that
arrives at a real SMTP server (aiosmtpd, in this process) and sends a screening through it. The app runs under
gunicorn in another process, so its clock cannot be moved to the appointment day as tests/test_clients.py does;
instead the screening is made one answered before the day, as the app would have stored it then: the test rewrites
the submission through the app's own ORM (``FORMERLY`` below) with ``answered_on`` three days back and the result
evaluated by the rules for that day (so ``to_confirm_on_the_day`` lists the questions about now), and
``on_the_day`` "to_confirm". Then, on the appointment day:

- the phone, nothing changed: every answer "still true", confirmed; the submission is "confirmed", outcome kept;
- the tablet, something changed: a cold sore now turns CLEAR into DEFER; the desk's list then says "Confirmed on
  the day" and the tablet, a kiosk now, cannot reach the staff pages;
- closed half-way: "No, this has changed", the changes page reached, the page closed: nothing is applied.

/today and /today/changes are checked with axe-core (``Client.look``) on both viewports.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from screening import questions as qd
from screening.config import ROOT
from tests.answers import clear_answers
from tests.browser.conftest import STAFF_PASSWORD, _form_post, _server_errors, live_server_at, sending_mail_to
from tests.browser.test_invitation import CREATE_USERS, LINK, date_of_birth, text_of, wait_for_mail
from tests.conftest import Mailbox
from tests.web import page_data

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
TABLET = {"viewport": {"width": 820, "height": 1180}, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
DESK = "dee.dayof@example.org"
PRACTITIONER = "pia.dayof@example.org"
EARLIER = 3  # days before the appointment the screening is made to have been answered
REFERENCE = re.compile(r'class="reference">([A-Z0-9-]+)<')

# Run in the server's environment: the submission as it would have been stored had it been signed EARLIER days
# before the appointment. The encrypted columns are bound to reference|outcome (screening/crypto.py), so the outcome
# is set first and every encrypted value written again, as screening.clients.services.confirm does.
FORMERLY = """
import datetime as dt, json, sys
from sqlalchemy import select
from sqlalchemy.orm.attributes import flag_modified
from wsgi import app
from screening import current_rules
from screening.clients.services import clinic_sessions_for_submission
from screening.extensions import db
from screening.models import Submission
from screening.rules import evaluate

reference, earlier = sys.argv[1], dt.date.fromisoformat(sys.argv[2])
with app.app_context():
    s = db.session.scalar(select(Submission).where(Submission.reference == reference))
    answers, signature = dict(s.answers), str(s.signature_name)
    sessions = clinic_sessions_for_submission(db.session, s)
    result = evaluate(current_rules(), answers, answered_on=earlier,
                      **({"clinic_sessions": sessions} if sessions else {}))
    s.outcome = result.outcome
    s.answers, s.result, s.signature_name = answers, result.to_dict(), signature
    for column in ("answers", "result", "signature_name"):
        flag_modified(s, column)
    s.answered_on, s.on_the_day = earlier, "to_confirm"
    s.pdf, s.pdf_hmac, s.pdf_rendered_at = None, None, None  # a PDF sealed for the row as it was
    db.session.commit()
    print(json.dumps({"outcome": s.outcome, "to_confirm": [i["question"] for i in s.result["to_confirm_on_the_day"]]}))
"""


# -- the mail server and the app --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def day_server(tmp_path_factory, mail_server):
    """The app under gunicorn, sending mail at once to ``mail_server``; a desk user and a practitioner."""
    url, _ = mail_server
    with live_server_at(tmp_path_factory.mktemp("day-of"), **sending_mail_to(url, "desk@clinic.test")) as server:
        users = [(DESK, "Dee Desk", ["desk"]), (PRACTITIONER, "Pia Prac", ["practitioner"])]
        done = subprocess.run([sys.executable, "-c", CREATE_USERS, json.dumps(users), STAFF_PASSWORD], cwd=ROOT,
                              env=server.env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"creating the staff accounts failed:\n{done.stdout}\n{done.stderr}"
        yield server


@pytest.fixture
def server(day_server):
    """This module's server for the conftest's contexts; a test fails if the server logged an error meanwhile."""
    start = day_server.log_path.stat().st_size
    yield day_server
    with open(day_server.log_path, "rb") as log:
        log.seek(start)
        new = log.read().decode(errors="replace")
    assert not _server_errors(new), f"the server logged errors during this test:\n{new}"


# -- before the day ---------------------------------------------------------------------------------------------


def sign_in(staff) -> None:
    staff.page.goto("/staff/login")
    staff.text("email", DESK)
    staff.text("password", STAFF_PASSWORD)
    staff.button("Sign in")
    expect(staff.page).to_have_url(re.compile(r"/staff/desk$"))


def screened_earlier(server, mailbox: Mailbox, open_client, name: str) -> tuple[str, str, dict]:
    """Book today's appointment for a new client, send a CLEAR screening through the invitation, then make it one
    answered EARLIER days before the day; return (reference, the invitation's path, the stored submission)."""
    today = dt.date.today()
    email = f"{name.lower()}@example.com"
    person = {"full_name": f"{name} O'Neill", "dob": "1990-03-27", "email": email, "phone": "07700 900123"}

    # The desk books with the form (its fields posted as the browser would, with the form's CSRF token).
    desk = open_client(f"day-of-{name.lower()}-booking", "mouse", **DESKTOP)
    desk.axe = False
    sign_in(desk)
    response = _form_post(desk.page.context.request, "/staff/appointments/new", {
        "name": person["full_name"], "date_of_birth": person["dob"], "email": email, "phone": person["phone"],
        "date": today.isoformat(), "time": "23:30", "treatment": "standard", "areas": "full_face",
        "practitioner_email": PRACTITIONER})
    assert response.ok and re.search(r"/staff/appointments/[A-Za-z0-9_-]+$", response.url), response.url
    link = LINK.search(text_of(wait_for_mail(mailbox, email)[0]))
    assert link, "no invitation link"

    # The client opens the link, proves the date of birth, confirms the booking and answers the rest.
    client = open_client(f"day-of-{name.lower()}-screening", "mouse", **DESKTOP)
    client.axe = False
    page = client.page
    page.goto(link.group(1))
    expect(page).to_have_url(re.compile(r"/invitation$"))
    date_of_birth(client, "27", "3", "1990")
    expect(page).to_have_url(re.compile(r"/invitation/booking$"))
    client.radio("facts", "right")
    client.button("Continue")
    expect(page).to_have_url(re.compile(r"/q/[a-z0-9-]+$"))
    answers = clear_answers(**person, appointment_date=today.isoformat(), treatment_variant="standard",
                            treatment_areas=["full_face"])
    assert answers["cold_sore_now"] == "no"
    request, url = page.context.request, page.url
    while (match := re.search(r"/q/([a-z0-9-]+)$", url)) is not None:
        response = _form_post(request, f"/q/{match.group(1)}", page_data(qd.PAGE_BY_ID[match.group(1)], answers))
        assert response.ok and response.url != url, (url, response.status)
        url = response.url
    assert url.endswith("/check"), url
    response = _form_post(request, "/declaration", {"confirm": "y", "signature": person["full_name"]})
    assert response.ok and re.search(r"/done$", response.url), (response.status, response.url)
    reference = REFERENCE.search(response.text()).group(1)
    assert server.submission(reference)["on_the_day"] == "not_needed", "answered on the day itself: nothing to confirm"

    done = subprocess.run([sys.executable, "-c", FORMERLY, reference, (today - dt.timedelta(days=EARLIER)).isoformat()],
                          cwd=ROOT, env=server.env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"backdating the screening failed:\n{done.stdout}\n{done.stderr}"
    backdated = json.loads(done.stdout.strip().splitlines()[-1])
    assert backdated["outcome"] == "CLEAR" and "cold_sore_now" in backdated["to_confirm"], backdated
    stored = server.submission(reference)
    assert stored["on_the_day"] == "to_confirm" and stored["outcome"] == "CLEAR"
    assert stored["answered_on"] == (today - dt.timedelta(days=EARLIER)).isoformat()
    page.context.close()
    desk.page.context.close()
    return reference, link.group(1), stored


def open_on_phone(client, link: str) -> None:
    """The client opens their invitation on the appointment day: the date of birth, then the answers to confirm."""
    page = client.page
    page.goto(link)
    expect(page).to_have_url(re.compile(r"/invitation$"))
    date_of_birth(client, "27", "3", "1990")
    expect(page).to_have_url(re.compile(r"/today$"))


def still_true(client, stored: dict, *, changed: tuple[str, ...] = ()) -> list[str]:
    """On /today, check it lists the questions to confirm with the earlier answers, and answer "Yes, this is still
    true" to each but ``changed`` ("No, this has changed"); return the questions' ids."""
    page = client.page
    expect(page.locator("h1")).to_have_text("Is this still true today?")
    names = page.locator("input[type=radio][name^='still-'][value=yes]").evaluate_all("els => els.map(e => e.name)")
    roots = [n[len("still-"):] for n in names]
    listed = [item["question"] for item in stored["result"]["to_confirm_on_the_day"]]
    assert set(roots) == {qd.root_of(q) for q in listed}, (roots, listed)
    assert "cold_sore_now" in roots and set(changed) <= set(roots)
    expect(page.locator("#q-still-cold_sore_now")).to_contain_text("You answered:")
    expect(page.locator("#q-still-cold_sore_now")).to_contain_text("No")
    for root in roots:
        client.radio(f"still-{root}", "no" if root in changed else "yes")
    return roots


# -- the tests --------------------------------------------------------------------------------------------------


def test_on_a_phone_nothing_changed_confirms_the_answers_and_keeps_the_result(server, mail_server, open_client):
    reference, link, stored = screened_earlier(server, mail_server[1], open_client, "Phone")

    client = open_client("day-of-phone", "touch", **PHONE)
    open_on_phone(client, link)
    client.look("today")
    still_true(client, stored)
    client.button("Continue")
    expect(client.page).to_have_url(re.compile(r"/today/done$"))
    expect(client.page.get_by_role("status")).to_contain_text("Your answers are confirmed for today.")
    expect(client.page.locator("main")).not_to_contain_text("You changed some answers")
    client.look("done")

    after = server.submission(reference)
    assert after["on_the_day"] == "confirmed"
    assert after["outcome"] == stored["outcome"] == "CLEAR"
    assert after["answers"] == stored["answers"], "nothing changed"
    assert after["answered_on"] == dt.date.today().isoformat(), "the answers now describe the appointment day"
    assert not after["result"]["to_confirm_on_the_day"]
    check, = server.query("SELECT channel, confirmed_at, changed FROM day_check WHERE submission_id = ?", after["id"])
    assert check[0] == "link" and check[1] is not None

    client.page.goto(link)
    expect(client.page.locator("h1")).to_have_text("You have already sent your answers")
    client.assert_accessible()


def test_on_the_desk_tablet_a_cold_sore_today_defers_the_treatment(server, mail_server, open_client):
    reference, _, stored = screened_earlier(server, mail_server[1], open_client, "Tablet")

    # The desk, signed in on the tablet, hands it over from "Today's clients".
    tablet = open_client("day-of-tablet", "touch", **TABLET)
    sign_in(tablet)
    row = tablet.page.locator(f"#client-{reference}")
    expect(row).to_contain_text("Not yet confirmed on the day")
    tablet.navigate(row.get_by_role("button", name=re.compile("^Confirm answers on this tablet")).tap)
    expect(tablet.page).to_have_url(re.compile(r"/today$"))
    tablet.look("today")

    still_true(tablet, stored, changed=("cold_sore_now",))
    tablet.button("Continue")
    expect(tablet.page).to_have_url(re.compile(r"/today/changes$"))
    tablet.look("changes")
    tablet.radio("cold_sore_now", "yes")
    tablet.button("Confirm my answers")
    expect(tablet.page).to_have_url(re.compile(r"/today/done$"))
    main = tablet.page.locator("main")
    expect(main).to_contain_text("Your answers are confirmed for today.")
    expect(main).to_contain_text("You changed some answers")
    expect(main).to_contain_text("Please hand the tablet back to the desk.")
    tablet.look("done")

    after = server.submission(reference)
    assert stored["outcome"] == "CLEAR" and after["outcome"] == "DEFER"
    assert after["on_the_day"] == "confirmed" and after["answers"]["cold_sore_now"] == "yes"
    assert after["signature_name"] == "Tablet O'Neill", "every encrypted value still opens"
    check, = server.query("SELECT channel, outcome_before FROM day_check WHERE submission_id = ?", after["id"])
    assert check == ("kiosk", "CLEAR"), "the earlier version is kept"

    # The tablet is a kiosk now: no staff page.
    tablet.page.goto("/staff/desk")
    expect(tablet.page).not_to_have_url(re.compile(r"/staff/"))
    expect(tablet.page.locator("body")).not_to_contain_text("Today’s clients")
    expect(tablet.page.locator("body")).not_to_contain_text("Tablet O'Neill")

    # The desk's own computer shows the state.
    desk = open_client("day-of-tablet-desk", "mouse", **DESKTOP)
    desk.axe = False
    sign_in(desk)
    row = desk.page.locator(f"#client-{reference}")
    expect(row).to_contain_text("Confirmed on the day")
    expect(row).not_to_contain_text("Not yet confirmed")
    expect(row.get_by_role("button", name=re.compile("^Confirm answers on this tablet"))).to_have_count(0)
    tablet.assert_accessible()


def test_a_client_who_closes_the_page_half_way_changes_nothing(server, mail_server, open_client):
    reference, link, stored = screened_earlier(server, mail_server[1], open_client, "Halfway")

    client = open_client("day-of-half-way", "touch", **PHONE)
    open_on_phone(client, link)
    still_true(client, stored, changed=("cold_sore_now",))
    client.button("Continue")
    expect(client.page).to_have_url(re.compile(r"/today/changes$"))
    expect(client.page.locator("h1")).to_have_text("What has changed")
    expect(client.page.locator("input[type=radio][name=cold_sore_now]")).to_have_count(len(
        qd.BY_ID["cold_sore_now"].choices))
    client.look("changes")
    client.radio("cold_sore_now", "yes")  # chosen, never sent
    client.page.close()
    client.page.context.close()

    after = server.submission(reference)
    assert after["on_the_day"] == "to_confirm" and after["outcome"] == stored["outcome"] == "CLEAR"
    assert after["answers"] == stored["answers"] and after["result"] == stored["result"]
    assert after["answered_on"] == stored["answered_on"]
    assert server.query("SELECT count(*) FROM day_check WHERE submission_id = ? AND confirmed_at IS NOT NULL",
                        after["id"]) == [(0,)], "nothing half-applied"

    # The link opened again the same day asks again, from the start.
    again = open_client("day-of-half-way-again", "touch", **PHONE)
    open_on_phone(again, link)
    expect(again.page.locator("h1")).to_have_text("Is this still true today?")
    client.assert_accessible()
    again.assert_accessible()
