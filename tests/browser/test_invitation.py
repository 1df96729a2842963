"""The whole invitation journey (issue 13) in Chromium, with JavaScript on and with it off.

The desk signs in and books today's appointment with the "New appointment" form; the invitation arrives at a real
SMTP server (aiosmtpd, in this process) and its link is opened in the client's browser; a wrong date of birth is
refused, the right one shows the prefilled booking, which the client confirms; the client answers the rest of the
questionnaire (pregnant: yes, so a practitioner must see it), signs and sends. The confirmation reaches the client and
the notice the practitioner (no name, no reference, no outcome in it). At each step the desk's day
(``/staff/appointments?day=...``) shows the appointment's status: invited, opened, in progress, needs practitioner,
and arrived once the desk marks the client arrived on ``/staff/desk``.

The server is the browser tests' gunicorn (conftest ``live_server_at``) with its own database, mail sent to the
aiosmtpd server and the task queue run at once (SCREENING_QUEUE_URL=immediate, which the config allows outside
production): the same task code as a worker's, without a worker process, so every email has been handed to the SMTP
server by the time the request that sent it has answered. Every new page (the form, the day, the date-of-birth and
booking pages, the already-sent page) is checked with axe-core at the level of the other browser tests.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time

import pytest
from playwright.sync_api import expect

from screening import questions as qd
from screening.config import ROOT
from tests.answers import clear_answers
from tests.browser.conftest import MAIL_BASE_URL, STAFF_PASSWORD, _server_errors, live_server_at, sending_mail_to
from tests.conftest import Mailbox

DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
BASE_URL = MAIL_BASE_URL
CLINIC_PHONE = "020 7946 0000"
DESK = "dee.invitations@example.org"
PRACTITIONERS = ("pia.invitations@example.org", "pat.invitations@example.org")
LINK = re.compile(re.escape(BASE_URL) + r"(/i/[A-Za-z0-9_-]+)")
REFERENCE = re.compile(r"[A-Z0-9]{4}-[A-Z0-9]{4}")


CREATE_USERS = """
import json, sys
from wsgi import app
from screening.extensions import db
from screening.staff.accounts import create_user
with app.app_context():
    for email, name, roles in json.loads(sys.argv[1]):
        create_user(db.session, email, name, roles, sys.argv[2])
"""


# -- the mail server and the app --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def invitation_server(tmp_path_factory, mail_server):
    """The app under gunicorn, sending mail to ``mail_server`` at once; one desk user and two practitioners."""
    url, _ = mail_server
    with live_server_at(tmp_path_factory.mktemp("invitations"), **sending_mail_to(url, "desk@clinic.test"),
                        SCREENING_CLINIC_PHONE=CLINIC_PHONE) as server:
        # The staff accounts, made in one process as ``flask screening create-user`` makes each (the app's own
        # create_user, the password hashed as the CLI hashes it): one interpreter start instead of three.
        users = [(DESK, "Dee Desk", ["desk"]), (PRACTITIONERS[0], "Pia Prac", ["practitioner"]),
                 (PRACTITIONERS[1], "Pat Prac", ["practitioner"])]
        done = subprocess.run([sys.executable, "-c", CREATE_USERS, json.dumps(users), STAFF_PASSWORD], cwd=ROOT,
                              env=server.env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"creating the staff accounts failed:\n{done.stdout}\n{done.stderr}"
        yield server


@pytest.fixture
def server(invitation_server):
    """This module's server for the conftest's contexts (``new_context``, ``open_client``); a test fails if the
    server logged an exception or a 500 while it ran."""
    start = invitation_server.log_path.stat().st_size
    yield invitation_server
    with open(invitation_server.log_path, "rb") as log:
        log.seek(start)
        new = log.read().decode(errors="replace")
    assert not _server_errors(new), f"the server logged errors during this test:\n{new}"


# -- mail -------------------------------------------------------------------------------------------------------


def wait_for_mail(mailbox: Mailbox, to: str, count: int = 1, *, since: int = 0, timeout: float = 10.0) -> list:
    """Return the messages to ``to`` (from the ``since``-th message on) once there are ``count`` (the queue sends at
    once; this only allows for the SMTP server's thread to have stored the last one)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in mailbox.messages[since:] if m["To"] == to]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, (f"{count} message(s) to {to} did not arrive; the server has "
                                             f"{[(m['To'], m['Subject']) for m in mailbox.messages]}")
        time.sleep(0.05)


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def html_of(message) -> str:
    body = message.get_body(("html",))
    assert body is not None, f"{message['Subject']!r}: no HTML alternative"
    return body.get_content()


# Every control in the page's <main> that is smaller than WCAG 2.2's 24 by 24 CSS pixels (2.5.8, Target Size), which
# axe does not measure for form fields: the staff forms' fields once had none of the app's field style (21 px high).
_SMALL_CONTROLS = """() => [...document.querySelectorAll(
    'main input:not([type=hidden]), main select, main textarea, main button')]
  .filter(el => el.checkVisibility())
  .map(el => [el.id || el.name || el.outerHTML.slice(0, 60), el.getBoundingClientRect()])
  .filter(([, r]) => r.width < 24 || r.height < 24)
  .map(([name, r]) => `${name}: ${Math.round(r.width)} x ${Math.round(r.height)} px`)"""


def assert_targets_large_enough(client, label: str) -> None:
    small = client.page.evaluate(_SMALL_CONTROLS)
    assert not small, f"{label}: controls under 24 x 24 px: {small}"


# -- the desk ---------------------------------------------------------------------------------------------------


def sign_in_desk(desk) -> None:
    desk.page.goto("/staff/login")
    desk.text("email", DESK)
    desk.text("password", STAFF_PASSWORD)
    desk.button("Sign in")
    expect(desk.page).to_have_url(re.compile(r"/staff/desk$"))


def status_on_day(desk, uid: str, *, label: str | None = None) -> str:
    """Open the desk's day and return the appointment's status (its ``status-NAME`` class); with ``label``, also
    check the day page (title, layout, axe) under that label."""
    page = desk.page
    page.goto(f"/staff/appointments?day={dt.date.today().isoformat()}")
    if label:
        desk.look(label, title="Appointments")
        assert_targets_large_enough(desk, label)
    classes = page.locator(f"#appointment-{uid} .status").get_attribute("class").split()
    return next(c[len("status-"):] for c in classes if c.startswith("status-"))


def book(desk, client: dict, practitioner: str) -> str:
    """Book today's appointment through the form (first once without the client's name); return its uid."""
    page = desk.page
    page.goto(f"/staff/appointments?day={dt.date.today().isoformat()}")
    desk.link("New appointment")
    expect(page).to_have_url(re.compile(r"/staff/appointments/new$"))
    desk.look("new-appointment")
    assert_targets_large_enough(desk, "new-appointment")
    desk.text("date_of_birth", client["dob"])
    desk.text("email", client["email"])
    desk.text("phone", client["phone"])
    desk.text("date", dt.date.today().isoformat())
    desk.text("time", "23:30")
    desk.select("treatment", "rf")
    desk.tick("areas", "full_face")
    desk.select("practitioner_email", practitioner)
    desk.button("Book and send the invitation")
    expect(page).to_have_url(re.compile(r"/staff/appointments/new$"))
    desk.look("new-appointment-error", error=True)
    assert desk.fix_through_summary("full name") == "name"
    expect(page.locator("#email")).to_have_value(client["email"])  # what was typed is kept
    desk.text("name", client["name"])
    desk.button("Book and send the invitation")
    expect(page).to_have_url(re.compile(r"/staff/appointments/[A-Za-z0-9_-]+$"))
    expect(page.locator("h1")).to_have_text(client["name"])
    expect(page.get_by_role("status")).to_contain_text("The invitation is on its way")
    desk.look("appointment", title="Appointment")
    return page.url.rsplit("/", 1)[1]


# -- the client -------------------------------------------------------------------------------------------------


def date_of_birth(client, day: str, month: str, year: str) -> None:
    client.text("dob-day", day)
    client.text("dob-month", month)
    client.text("dob-year", year)
    client.button("Continue")


def answer_the_rest(client, answers: dict) -> None:
    """Answer each page the questionnaire shows, from where the booking left off, to Check your answers."""
    page = client.page
    while (match := re.search(r"/q/([a-z0-9-]+)$", page.url)) is not None:
        client.fill(qd.PAGE_BY_ID[match.group(1)], answers)
        client.button("Continue")
    expect(page).to_have_url(re.compile(r"/check$"))


def journey(server, mailbox: Mailbox, open_client, *, js: bool, suffix: str, practitioner: str):
    today = dt.date.today()
    person = {"name": f"Siobhán O'Neill {suffix}", "dob": "1990-03-27", "email": f"sio.{suffix.lower()}@example.com",
              "phone": "07700 900123"}
    how = "mouse" if not js else "touch"
    desk = open_client(f"invitation-desk-{suffix.lower()}", "mouse", js=js, **DESKTOP)
    client = open_client(f"invitation-client-{suffix.lower()}", how, js=js, **(PHONE if js else DESKTOP))

    # The desk books; the invitation arrives with a link for this appointment.
    sign_in_desk(desk)
    uid = book(desk, person, practitioner)
    invitation, = wait_for_mail(mailbox, person["email"])
    assert "Your health questions" in invitation["Subject"]
    body = text_of(invitation)
    assert "23:30" in body and "Radiofrequency" in body, body
    assert person["name"] not in body and person["dob"] not in body
    link = LINK.search(body)
    assert link, f"no link to {BASE_URL}/i/... in the invitation:\n{body}"
    assert link.group(0) in html_of(invitation), "the HTML alternative carries the same link"
    assert status_on_day(desk, uid, label="day-invited") == "invited"

    # The client opens it: the date of birth first (a wrong one is refused and costs a try), then the booking.
    page = client.page
    page.goto(link.group(1))
    expect(page).to_have_url(re.compile(r"/invitation$"))  # the token leaves the address bar at once
    client.look("date-of-birth")
    assert_targets_large_enough(client, "date-of-birth")
    expect(page.locator("body")).not_to_contain_text(person["name"])  # nothing of the booking before the check
    date_of_birth(client, "27", "3", "1991")
    expect(page).to_have_url(re.compile(r"/invitation$"))
    expect(page.locator(".error-summary")).to_contain_text("That date of birth does not match the booking")
    expect(page.locator(".error-summary")).to_contain_text("4 tries left")
    client.look("date-of-birth-wrong", error=True, title="Your screening questionnaire")
    assert status_on_day(desk, uid) == "invited", "a wrong date of birth opens nothing"
    date_of_birth(client, "27", "3", "1990")
    expect(page).to_have_url(re.compile(r"/invitation/booking$"))
    client.look("booking")
    assert_targets_large_enough(client, "booking")
    summary = page.locator("dl.summary")
    for shown in (person["name"], "23:30", "Radiofrequency", person["email"], person["phone"]):
        expect(summary).to_contain_text(shown)
    assert status_on_day(desk, uid) == "opened"
    client.radio("facts", "right")
    client.button("Continue")

    # The booking's pages are filled in: the questionnaire starts at the first health question.
    expect(page).to_have_url(re.compile(r"/q/pregnancy$"))
    answers = clear_answers(full_name=person["name"], dob=person["dob"], email=person["email"],
                            phone=person["phone"], appointment_date=today.isoformat(), treatment_variant="rf",
                            treatment_areas=["full_face"], pregnant="yes")
    client.fill(qd.PAGE_BY_ID["pregnancy"], answers)
    client.button("Continue")
    assert status_on_day(desk, uid) == "in_progress"
    client.axe = False  # the questionnaire's own pages are checked by test_journeys
    answer_the_rest(client, answers)
    check = page.locator("main")
    for booked in (person["name"], person["email"], person["phone"]):
        expect(check).to_contain_text(booked)
    client.link("Continue to declaration")
    client.tick_box("confirm")
    client.text("signature", person["name"])
    before = len(mailbox.messages)
    client.button("Sign and send")
    expect(page).to_have_url(re.compile(r"/done(#[a-z_]+)?$"))
    reference = page.locator(".reference").inner_text().strip()
    assert REFERENCE.fullmatch(reference), reference
    stored = server.submission(reference)
    assert stored["outcome"] != "CLEAR" and stored["answers"]["pregnant"] == "yes"
    assert stored["answers"]["full_name"] == person["name"] and stored["answers"]["treatment_variant"] == "rf"
    assert status_on_day(desk, uid, label="day-needs-practitioner") == "needs_practitioner"

    # The confirmation to the client; the notice to the practitioner(s), with nothing of the client in it.
    confirmation = wait_for_mail(mailbox, person["email"], 2)[-1]
    assert reference in confirmation["Subject"]
    text = text_of(confirmation)
    assert "What happens next" in text and CLINIC_PHONE in text and "23:30" in text
    assert not re.search(r"pregnan|DO NOT TREAT|DEFER|REVIEW", text + html_of(confirmation), re.I), "no health data"
    wanted = PRACTITIONERS if practitioner == "" else (practitioner,)
    for address in wanted:
        notice = wait_for_mail(mailbox, address, since=before)
        assert len(notice) == 1, (address, [m["Subject"] for m in notice])
        whole = text_of(notice[0]) + html_of(notice[0]) + str(notice[0]["Subject"])
        assert f"{BASE_URL}/staff/login" in whole
        for secret in (person["name"], "Siobh", "O'Neill", "O&#39;Neill", reference, person["email"], person["dob"]):
            assert secret not in whole, (address, secret)
        assert not re.search(r"DO NOT TREAT|DEFER|REVIEW|pregnan", whole, re.I), "no outcome, no health data"
    others = {m["To"] for m in mailbox.messages[before:]} - set(wanted) - {person["email"]}
    assert not others, f"mail went to {others} too"

    # The link again shows the answers were sent, not a new questionnaire.
    page.goto(link.group(1))
    expect(page.locator("h1")).to_have_text("You have already sent your answers")
    client.axe = True
    client.look("already-sent")

    # The desk marks the client arrived on its "Today's clients" page; the day shows it.
    desk.page.goto("/staff/desk")
    row = desk.page.locator(f"#client-{reference}")
    desk.navigate(row.get_by_role("button", name=re.compile("^Mark arrived")).click)
    expect(desk.page.locator(f"#client-{reference} .arrived")).to_be_visible()
    assert status_on_day(desk, uid, label="day-arrived") == "arrived"

    desk.assert_accessible()
    client.assert_accessible()
    return desk, client


def test_the_invitation_journey_with_javascript(server, mail_server, open_client):
    """A client on a phone (touch); the desk names the practitioner, who alone is told."""
    journey(server, mail_server[1], open_client, js=True, suffix="JS", practitioner=PRACTITIONERS[0])


def test_the_invitation_journey_without_javascript(server, mail_server, open_client):
    """JavaScript off for the desk and the client; no practitioner named, so every practitioner is told."""
    _, client = journey(server, mail_server[1], open_client, js=False, suffix="NoJS", practitioner="")
    assert client.page.evaluate("() => document.documentElement.classList.contains('js')") is False, "no script ran"
