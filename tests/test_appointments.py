"""Appointments and invitations through the web (issue 13): the desk books, the client is emailed a link, proves
their date of birth, confirms the booking and answers; the desk's day follows each step.

Mail goes through a real SMTP server in the test process (the conftest's smtp fixture); the queue runs each task at once
(QUEUE_URL=immediate: the same task code, no worker process).
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from jinja2 import meta

from screening import questions as qd
from screening.appointments import services
from screening.appointments.models import Appointment, InvitationLink
from screening.extensions import db
from screening.models import Outbox
from tests.answers import clear_answers
from tests.conftest import close_app, make_app
from tests.staff import add_user, sign_in
from tests.web import answer_all, csrf_token, page_data, post_page, sign_and_send

TODAY = dt.date.today()
DAY = TODAY + dt.timedelta(days=5)
LINK = re.compile(r"https?://\S+?(/i/[A-Za-z0-9_-]+)")


@pytest.fixture
def mailbox(smtp):
    url, box = smtp
    box.url = url
    return box


def arrived(box, count: int) -> list:
    """The messages the SMTP server has received: at least ``count`` (the queue runs each task at once)."""
    assert len(box.messages) >= count, [m["Subject"] for m in box.messages]
    return list(box.messages)


def sent_to(box, address: str) -> list:
    return [m for m in box.messages if m["To"] == address]


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


@pytest.fixture
def app(database_url, mailbox):
    app = make_app(database_url, QUEUE_URL="immediate", MAIL_URL=mailbox.url, MAIL_FROM="desk@clinic.test",
                   MAIL_RETRY_SECONDS=0.01, MAIL_MAX_ATTEMPTS=2, CLINIC_PHONE="020 7946 0000")
    add_user(app, "desk@clinic.test", ["desk"])
    add_user(app, "prac@clinic.test", ["practitioner"])
    add_user(app, "other@clinic.test", ["practitioner"])
    yield app
    close_app(app)


@pytest.fixture
def desk(app):
    client = app.test_client()
    sign_in(client, "desk@clinic.test")
    return client


def booking_form(**changes) -> dict:
    data = {"name": "Siobhán O'Neill", "date_of_birth": "1990-03-27", "email": "sio@example.com",
            "phone": "07700 900123", "date": DAY.isoformat(), "time": "14:30", "treatment": "rf",
            "areas": ["full_face"], "practitioner_email": "", "external_id": ""}
    data.update(changes)
    return data


def book(desk, **changes) -> str:
    """Book through the desk's form; return the new appointment's uid."""
    page = desk.get("/staff/appointments/new")
    response = desk.post("/staff/appointments/new",
                         data={"csrf_token": csrf_token(page.text), **booking_form(**changes)})
    assert response.status_code == 303, re.findall(r'class="error-message"[^>]*>.*?</span>\s*([^<]+)', response.text)
    return response.location.rsplit("/", 1)[1]


def link_path(message) -> str:
    return LINK.search(text_of(message)).group(1)


def status_on_desk(desk, uid: str, day: dt.date = DAY) -> str:
    page = desk.get(f"/staff/appointments?day={day.isoformat()}").text
    row = re.search(rf'id="appointment-{uid}".*?</tr>', page, re.S).group(0)
    return re.search(r'class="status status-(\w+)"', row).group(1)


def pass_dob(client, path: str, dob=("27", "3", "1990")):
    assert client.get(path).status_code == 303
    page = client.get("/invitation")
    return client.post("/invitation", data={"csrf_token": csrf_token(page.text), "dob-day": dob[0],
                                            "dob-month": dob[1], "dob-year": dob[2]})


def answers_for_booking(**changes) -> dict:
    booked = dict(full_name="Siobhán O'Neill", email="sio@example.com", phone="07700 900123",
                  appointment_date=DAY.isoformat(), treatment_variant="rf", treatment_areas=["full_face"])
    return clear_answers(**{**booked, **changes})


def test_the_whole_invitation_journey_and_the_desks_day(app, desk, mailbox):
    uid = book(desk)
    invitation = arrived(mailbox, 1)[0]
    assert invitation["To"] == "sio@example.com" and "Your health questions" in invitation["Subject"]
    assert invitation.get_body(("html",)) is not None, "plain text with an HTML alternative"
    assert "14:30" in text_of(invitation) and "Radiofrequency" in text_of(invitation)
    assert status_on_desk(desk, uid) == "invited"

    client = app.test_client()
    response = pass_dob(client, link_path(invitation))
    assert response.status_code == 303 and response.location.endswith("/invitation/booking")
    assert status_on_desk(desk, uid) == "opened"
    page = client.get("/invitation/booking")
    assert "Siobhán O&#39;Neill" in page.text and "14:30" in page.text
    response = client.post("/invitation/booking", data={"csrf_token": csrf_token(page.text), "facts": "right"})
    assert response.location.endswith("/q/pregnancy"), "the booking's pages are filled in already"
    answers = answers_for_booking(pregnant="yes")
    assert post_page(client, "pregnancy", page_data(qd.PAGE_BY_ID["pregnancy"], answers)).status_code == 302
    assert status_on_desk(desk, uid) == "in_progress"
    answer_all(client, answers)
    response = sign_and_send(client, "Siobhan O’Neill")
    assert response.status_code == 302 and response.location.endswith("/done")
    assert status_on_desk(desk, uid) == "needs_practitioner"

    messages = arrived(mailbox, 4)
    confirmation = sent_to(mailbox, "sio@example.com")[-1]
    reference = re.search(r"reference ([A-Z0-9]{4}-[A-Z0-9]{4})", confirmation["Subject"]).group(1)
    assert "What happens next" in text_of(confirmation) and "020 7946 0000" in text_of(confirmation)
    notices = [m for m in messages if m["To"] in ("prac@clinic.test", "other@clinic.test")]
    assert sorted(m["To"] for m in notices) == ["other@clinic.test", "prac@clinic.test"], "no practitioner set: all"
    for notice in notices:
        body = text_of(notice)
        assert "/staff/login" in body and "Siobh" not in body and reference not in body
        assert not re.search(r"DO NOT TREAT|DEFER|REVIEW|pregnan", body, re.I), "no outcome, no health data"

    # The link again: the confirmation, not a new questionnaire.
    again = app.test_client()
    assert again.get(link_path(invitation)).status_code == 303
    assert "You have already sent your answers" in again.get("/invitation").text



def test_a_clear_screening_tells_no_practitioner_then_arrival_and_sign_off_show_on_the_day(app, desk, mailbox):
    from tests.test_staff_review import sign_off

    uid = book(desk, practitioner_email="prac@clinic.test", date=TODAY.isoformat())
    client = app.test_client()
    pass_dob(client, link_path(arrived(mailbox, 1)[0]))
    page = client.get("/invitation/booking")
    client.post("/invitation/booking", data={"csrf_token": csrf_token(page.text), "facts": "right"})
    answer_all(client, answers_for_booking(appointment_date=TODAY.isoformat()))
    assert sign_and_send(client, "Siobhán O'Neill").status_code == 302
    assert status_on_desk(desk, uid, TODAY) == "screened"
    assert [m["To"] for m in arrived(mailbox, 2)] == ["sio@example.com", "sio@example.com"]
    reference = re.search(r"reference ([A-Z0-9]{4}-[A-Z0-9]{4})", mailbox.messages[1]["Subject"]).group(1)
    page = desk.get("/staff/desk")
    desk.post(f"/staff/desk/{reference}/arrived", data={"csrf_token": csrf_token(page.text)})
    assert status_on_desk(desk, uid, TODAY) == "arrived"
    practitioner = app.test_client()
    sign_in(practitioner, "prac@clinic.test")
    assert sign_off(practitioner, reference, decision="proceed").status_code == 302
    assert status_on_desk(desk, uid, TODAY) == "signed_off"


def test_a_booking_the_client_says_is_wrong_shows_on_the_desk_with_what_changed(app, desk, mailbox):
    uid = book(desk)
    client = app.test_client()
    pass_dob(client, link_path(arrived(mailbox, 1)[0]))
    page = client.get("/invitation/booking")
    response = client.post("/invitation/booking", data={"csrf_token": csrf_token(page.text), "facts": "wrong"})
    assert status_on_desk(desk, uid) == "opened"
    assert response.location.endswith("/q/about-you")
    answer_all(client, answers_for_booking(treatment_variant="standard"))
    sign_and_send(client, "Siobhán O'Neill")
    day = desk.get(f"/staff/appointments?day={DAY.isoformat()}").text
    assert "Booking details differ: client, treatment" in day


def test_the_booking_page_needs_an_answer(app, desk, mailbox):
    book(desk)
    client = app.test_client()
    pass_dob(client, link_path(arrived(mailbox, 1)[0]))
    page = client.get("/invitation/booking")
    response = client.post("/invitation/booking", data={"csrf_token": csrf_token(page.text)})
    assert response.status_code == 400 and "Select yes if these details are right" in response.text


def test_unknown_expired_and_cancelled_links_answer_the_same_bytes(app, desk, mailbox):
    uid = book(desk)
    path = link_path(arrived(mailbox, 1)[0])
    client = app.test_client()
    unknown = client.get("/i/" + "x" * 43)
    assert unknown.status_code == 404 and "This link does not work" in unknown.text
    assert "What to do next" in unknown.text and "Answer the questionnaire without the link" in unknown.text
    with app.app_context():
        link = db.session.query(InvitationLink).one()
        link.expires_on = TODAY - dt.timedelta(days=1)
        db.session.commit()
    expired = app.test_client().get(path)
    assert (expired.status_code, expired.data) == (unknown.status_code, unknown.data)
    with app.app_context():
        link = db.session.query(InvitationLink).one()
        link.expires_on = DAY
        db.session.commit()
    page = desk.get(f"/staff/appointments/{uid}")
    desk.post(f"/staff/appointments/{uid}/cancel", data={"csrf_token": csrf_token(page.text)})
    cancelled = app.test_client().get(path)
    assert (cancelled.status_code, cancelled.data) == (unknown.status_code, unknown.data)
    assert status_on_desk(desk, uid) == "cancelled"


def test_wrong_dates_of_birth_lock_the_link_until_the_desk_unlocks_it(app, desk, mailbox):
    uid = book(desk)
    path = link_path(arrived(mailbox, 1)[0])
    client = app.test_client()
    for tries_left in (4, 3, 2, 1):
        response = pass_dob(client, path, ("1", "1", "1991"))
        assert response.status_code == 400 and f"{tries_left} tries left" in response.text
    response = pass_dob(client, path, ("1", "1", "1991"))
    assert response.status_code == 403 and "This link is locked" in response.text
    other = app.test_client()
    assert other.get(path).status_code == 303
    locked = other.get("/invitation")
    assert locked.status_code == 403 and "This link is locked" in locked.text, "not even the right date opens it"
    assert status_on_desk(desk, uid) == "locked"
    page = desk.get(f"/staff/appointments/{uid}")
    desk.post(f"/staff/appointments/{uid}/unlock", data={"csrf_token": csrf_token(page.text)})
    response = pass_dob(app.test_client(), path)
    assert response.status_code == 303 and response.location.endswith("/invitation/booking")


@pytest.mark.parametrize("dob, message", [
    (("", "", ""), "Enter your date of birth"),
    (("31", "2", "1990"), "Date of birth must be a real date"),
    (("", "3", "1990"), "must include a day"),
])
def test_a_date_of_birth_that_is_not_a_date_says_so_and_costs_no_try(app, desk, mailbox, dob, message):
    book(desk)
    response = pass_dob(app.test_client(), link_path(arrived(mailbox, 1)[0]), dob)
    assert response.status_code == 400 and message in response.text
    with app.app_context():
        assert db.session.query(Appointment).one().dob_failures == 0


def test_resend_and_copy_a_link_each_make_a_new_link_and_the_old_one_still_works(app, desk, mailbox):
    uid = book(desk)
    first = link_path(arrived(mailbox, 1)[0])
    page = desk.get(f"/staff/appointments/{uid}")
    desk.post(f"/staff/appointments/{uid}/resend", data={"csrf_token": csrf_token(page.text)})
    second = link_path(arrived(mailbox, 2)[1])
    response = desk.post(f"/staff/appointments/{uid}/link", data={"csrf_token": csrf_token(page.text)})
    copied = LINK.search(response.text).group(1)
    assert response.headers["Cache-Control"] == "no-store"
    assert len({first, second, copied}) == 3
    for path in (first, second, copied):
        assert pass_dob(app.test_client(), path).status_code == 303
    with app.app_context():
        tokens = [path.rsplit("/", 1)[1] for path in (first, second, copied)]
        stored = [h for (h,) in db.session.query(InvitationLink.token_hash)]
        assert not set(tokens) & set(stored), "only the hashes are stored"


def test_an_undeliverable_invitation_shows_on_the_desk_with_the_reason(app, desk, mailbox):
    mailbox.replies = ["550 5.1.1 mailbox unavailable"]
    uid = book(desk, email="nobody@example.com")
    assert status_on_desk(desk, uid) == "not_delivered"
    day = desk.get(f"/staff/appointments?day={DAY.isoformat()}").text
    assert "Not delivered: 550 recipient refused" in day
    assert "nobody@example.com" not in day.split("Not delivered")[1][:80], "the reason names no address"


def test_the_smtp_server_down_is_retried_then_shown_as_not_delivered(database_url, tmp_path):
    from tests.conftest import free_port

    app = make_app(database_url, QUEUE_URL="immediate", MAIL_URL=f"smtp://127.0.0.1:{free_port()}",
                   MAIL_RETRY_SECONDS=0.01, MAIL_MAX_ATTEMPTS=2, MAIL_TIMEOUT=2)
    try:
        add_user(app, "desk@clinic.test", ["desk"])
        desk = app.test_client()
        sign_in(desk, "desk@clinic.test")
        uid = book(desk)
        with app.app_context():
            row = db.session.query(Outbox).one()
            assert (row.status, row.attempts) in (("queued", 1), ("failed", 2))
            from screening import mail

            row.next_attempt_at = row.next_attempt_at - dt.timedelta(hours=1)
            db.session.commit()
            mail.deliver(db.session, row.id)
            row = db.session.query(Outbox).one()
            assert row.status == "failed" and "cannot reach the mail server" in row.last_error
        assert status_on_desk(desk, uid) == "not_delivered"
    finally:
        close_app(app)


def test_a_walk_in_screening_can_be_attached_to_an_appointment(app, desk, mailbox):
    from tests.web import complete

    uid = book(desk, email="")
    assert status_on_desk(desk, uid) == "no_email"
    reference = complete(app.test_client(), answers_for_booking(email="walkin@example.com"))
    page = desk.get(f"/staff/appointments/{uid}")
    desk.post(f"/staff/appointments/{uid}/attach", data={"csrf_token": csrf_token(page.text), "reference": reference})
    assert status_on_desk(desk, uid) == "screened"
    response = desk.get(f"/staff/appointments/{uid}")
    assert reference in response.text


def test_the_desk_searches_any_day_by_name_or_date_of_birth_and_filters_not_yet_screened(app, desk, mailbox):
    a = book(desk)
    b = book(desk, name="Ann Example", date_of_birth="1985-01-02", date=(DAY + dt.timedelta(days=3)).isoformat())
    found = desk.get("/staff/appointments?q=siob").text
    assert f"appointment-{a}" in found and f"appointment-{b}" not in found
    found = desk.get("/staff/appointments?q=1985-01-02").text
    assert f"appointment-{b}" in found and f"appointment-{a}" not in found
    with app.app_context():
        appointment = services.by_uid(db.session, a)
        appointment.submission_id = None
    assert f"appointment-{a}" in desk.get(f"/staff/appointments?day={DAY.isoformat()}&not_screened=1").text


@pytest.mark.parametrize("changes, field, message", [
    ({"name": ""}, "name", "Enter the client&#39;s full name"),
    ({"date_of_birth": ""}, "date_of_birth", "Enter the client&#39;s date of birth"),
    ({"date": (TODAY - dt.timedelta(days=1)).isoformat()}, "date", "Appointment date must be today or in the future"),
    ({"time": ""}, "time", "Enter the time of the appointment"),
    ({"treatment": ""}, "treatment", "Select the treatment booked"),
    ({"areas": []}, "areas", "Select at least one area to be treated"),
    ({"email": "not-an-address"}, "email", "Email address must be in the correct format"),
])
def test_the_new_appointment_form_names_each_field_and_keeps_what_was_typed(desk, changes, field, message):
    page = desk.get("/staff/appointments/new")
    response = desk.post("/staff/appointments/new", data={"csrf_token": csrf_token(page.text),
                                                          **booking_form(**changes)})
    assert response.status_code == 400 and message in response.text
    assert "There is a problem" in response.text
    if field != "name":
        assert 'value="Siobhán O&#39;Neill"' in response.text, "what was typed is kept"


def test_every_email_template_uses_only_what_carries_no_health_data(app, desk):
    """Each template may use only the clinic, links, the appointment's when and what, and the reference."""
    # Staff emails (an account's second factor reset) may name members of staff: never a client.
    allowed = {"clinic", "link", "appointment", "reference", "valid_until", "subject", "base_url", "_",
               "staff_name", "admin_name"}
    loader = app.jinja_env.loader
    names = [n for n in loader.list_templates() if n.startswith("mail/")]
    assert {"mail/invitation.txt", "mail/reminder.txt", "mail/confirmation.txt", "mail/practitioner.txt"} <= set(names)
    for name in names:
        source = loader.get_source(app.jinja_env, name)[0]
        used = meta.find_undeclared_variables(app.jinja_env.parse(source))
        assert used <= allowed, (name, used - allowed)
    uid = book(desk)
    with app.app_context():  # what the templates' "appointment" holds: when and what, nothing of the client
        assert set(services.appointment_facts(services.by_uid(db.session, uid))) == {"date", "time", "treatment",
                                                                                     "areas"}


# -- reminders ----------------------------------------------------------------------------------------------


def test_reminders_go_on_their_days_once_and_never_after_the_screening(app, desk, mailbox):
    from sqlalchemy.orm import Session

    # Ann sends her screening (no reminder), Cal's appointment is cancelled (none), Lee's is in 10 days (none yet).
    book(desk, date=(TODAY + dt.timedelta(days=3)).isoformat())  # reminded: 3 days before
    book(desk, name="Ann Example", email="ann@example.org", date=(TODAY + dt.timedelta(days=3)).isoformat())
    cancelled = book(desk, name="Cal Cancel", email="cal@example.org", date=(TODAY + dt.timedelta(days=1)).isoformat())
    book(desk, name="Lee Later", email="lee@example.org", date=(TODAY + dt.timedelta(days=10)).isoformat())
    page = desk.get(f"/staff/appointments/{cancelled}")
    desk.post(f"/staff/appointments/{cancelled}/cancel", data={"csrf_token": csrf_token(page.text)})
    client = app.test_client()
    pass_dob(client, link_path(sent_to(mailbox, "ann@example.org")[0]))
    page = client.get("/invitation/booking")
    client.post("/invitation/booking", data={"csrf_token": csrf_token(page.text), "facts": "right"})
    answer_all(client, answers_for_booking(full_name="Ann Example", email="ann@example.org",
                                           appointment_date=(TODAY + dt.timedelta(days=3)).isoformat()))
    sign_and_send(client, "Ann Example")
    before = len(mailbox.messages)
    with app.app_context():
        # Two workers' schedules at the same moment, each in its own session: one reminder.
        first, second = Session(db.engine), Session(db.engine)
        due = services.due_reminders(first, TODAY)
        assert [d for _, d in due] == [3], due
        assert services.send_reminders(first, TODAY) == 1
        assert services.send_reminders(second, TODAY) == 0
        first.close(), second.close()
        assert services.send_reminders(db.session, TODAY) == 0, "once"
    reminders = mailbox.messages[before:]
    assert [m["To"] for m in reminders] == ["sio@example.com"]
    assert reminders[0]["Subject"].startswith("Reminder")
    assert pass_dob(app.test_client(), link_path(reminders[0])).status_code == 303, "its link works"


def test_the_worker_schedule_includes_the_reminders(app):
    from screening import tasks

    assert "reminders" in tasks._periodic


# -- the CSV import -----------------------------------------------------------------------------------------

HEADER = "external_id,name,date_of_birth,email,phone,date,time,treatment,areas,practitioner_email\n"


def csv_row(external_id="PH-1", name="Ann Example", dob="1990-03-27", email="ann@example.org", phone="",
            date=None, time="10:00", treatment="standard", areas="full_face;neck", practitioner="") -> str:
    date = date or DAY.isoformat()
    return f"{external_id},{name},{dob},{email},{phone},{date},{time},{treatment},{areas},{practitioner}\n"


def import_csv(desk, data: bytes):
    page = desk.get("/staff/appointments/import")
    from io import BytesIO

    return desk.post("/staff/appointments/import", data={"csrf_token": csrf_token(page.text),
                                                         "file": (BytesIO(data), "bookings.csv")},
                     content_type="multipart/form-data")


def test_a_good_csv_imports_every_row_and_the_same_file_again_changes_nothing(app, desk, mailbox):
    data = (HEADER + csv_row() + csv_row("PH-2", "Bea Booked", areas="cheeks") + "\n").encode()
    response = import_csv(desk, data)
    assert response.status_code == 303, response.text
    assert len(mailbox.messages) == 2
    response = import_csv(desk, data)
    assert response.status_code == 303 and len(mailbox.messages) == 2
    with app.app_context():
        assert db.session.query(Appointment).count() == 2
    assert "2 were already there" in desk.get("/staff/appointments").text


@pytest.mark.parametrize("data, problems", [
    (b"", [(0, "", "The file is empty")]),
    (b"\xff\xfe\x00n\x00a", [(0, "", "not UTF-8")]),
    ((HEADER.replace("areas", "area")).encode(), [(1, "area", "is not a column"), (1, "areas", "is missing")]),
    (HEADER.encode(), [(0, "", "no appointments")]),
    ((HEADER + csv_row(dob="27/03/1990")).encode(), [(2, "date_of_birth", "YYYY-MM-DD")]),
    ((HEADER + csv_row(date="2020-01-01")).encode(), [(2, "date", "today or in the future")]),
    ((HEADER + csv_row(time="9am")).encode(), [(2, "time", "HH:MM")]),
    ((HEADER + csv_row(treatment="laser")).encode(), [(2, "treatment", "must be one of")]),
    ((HEADER + csv_row(areas="face;kneecaps")).encode(), [(2, "areas", "Unknown area")]),
    ((HEADER + csv_row(email="ann-at-example")).encode(), [(2, "email", "correct format")]),
    ((HEADER + csv_row(practitioner="nobody@clinic.test")).encode(),
     [(2, "practitioner_email", "active practitioner")]),
    ((HEADER + csv_row(name="")).encode(), [(2, "name", "full name")]),
    ((HEADER + csv_row() + csv_row()).encode(), [(3, "external_id", "same external_id is on line 2")]),
    ((HEADER + csv_row().rstrip("\n") + ",extra\n").encode(), [(2, "", "more values")]),
    ((HEADER + csv_row() + csv_row("PH-2", dob="") + csv_row("PH-3", time="")).encode(),
     [(3, "date_of_birth", "date of birth"), (4, "time", "time of the appointment")]),
])
def test_a_csv_with_any_bad_row_imports_nothing_and_lists_every_problem(app, desk, mailbox, data, problems):
    response = import_csv(desk, data)
    assert response.status_code == 400
    assert "Nothing was imported" in response.text
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", response.text)
    assert len(rows) == len(problems), rows
    for (line, column, text), (want_line, want_column, want_text) in zip(rows, problems):
        assert line == (str(want_line) if want_line else "the file") and column == want_column, (line, column)
        assert want_text in text.replace("&#39;", "'").replace("&#x27;", "'"), text
    with app.app_context():
        assert db.session.query(Appointment).count() == 0 and not mailbox.messages


def test_the_cli_imports_a_csv_all_or_nothing(app, tmp_path):
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text(HEADER + csv_row())
    bad.write_text(HEADER + csv_row("PH-9") + csv_row("PH-10", treatment="laser"))
    result = app.test_cli_runner().invoke(args=["screening", "import-appointments", str(bad)])
    assert result.exit_code == 1 and "line 3, column treatment" in result.output
    assert "nothing was imported" in result.output
    result = app.test_cli_runner().invoke(args=["screening", "import-appointments", str(good)])
    assert result.exit_code == 0 and "imported 1 appointment(s)" in result.output


def test_the_development_servers_request_log_hides_an_invitation_links_token(app, caplog):
    import logging

    token = "AbC-def_123" * 4
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        logging.getLogger("werkzeug").info('127.0.0.1 - - "%s" %s %s', f"GET /i/{token} HTTP/1.1", "303", "-")
    assert token not in caplog.text and "/i/[token]" in caplog.text
