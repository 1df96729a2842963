"""Clients across visits (issue 14): matching and merging records, the prefilled re-screening with its changes
marked, and the day-of-treatment confirmation through the invitation link and the desk's tablet."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select

from screening import clock
from screening import questions as qd
from screening.appointments.models import Appointment
from screening.clients import services as clients
from screening.clients.models import Client, DayCheck
from screening.extensions import db
from screening.models import AuditEvent, Draft, Submission
from tests.test_appointments import (DAY, answers_for_booking, app, arrived, book, desk, link_path,  # noqa: F401
                                     mailbox, pass_dob, sent_to)
from tests.staff import sign_in
from tests.web import answer_all, csrf_token, page_data, post_page, sign_and_send

LATER = DAY + dt.timedelta(days=35)


def _invitations(mailbox, address="sio@example.com") -> list:
    return [m for m in sent_to(mailbox, address) if "Your health questions" in m["Subject"]]


def open_invitation(app, mailbox, index=-1):
    """Open the latest invitation as the client: date of birth, then "the booking is right"."""
    client = app.test_client()
    response = pass_dob(client, link_path(_invitations(mailbox)[index]))
    assert response.status_code == 303, response.status_code
    page = client.get("/invitation/booking")
    response = client.post("/invitation/booking", data={"csrf_token": csrf_token(page.text), "facts": "right"})
    return client, response


def screen(app, mailbox, answers, index=-1) -> str:
    """Answer the latest invitation's questionnaire with ``answers``; return the reference."""
    client, _ = open_invitation(app, mailbox, index)
    answer_all(client, answers)
    response = sign_and_send(client, answers["full_name"])
    assert response.status_code == 302 and response.location.endswith("/done")
    return re.search(r'class="reference">([A-Z0-9-]+)<', client.get("/done").text).group(1)


def client_ids(app) -> list[int | None]:
    with app.app_context():
        return [a.client_id for a in db.session.scalars(select(Appointment).order_by(Appointment.id))]


def test_bookings_match_a_client_by_email_and_date_of_birth_never_by_name_alone(app, desk, mailbox):
    book(desk)
    book(desk, date=LATER.isoformat(), email="SIO@example.com ")  # the same person: case and spaces ignored
    book(desk, date_of_birth="1991-03-27")  # the same name, another date of birth: another person
    book(desk, email="new@example.com")  # a new email: a new record, until a practitioner merges them
    first, second, other, new_email = client_ids(app)
    assert first == second and len({first, other, new_email}) == 3


def test_a_practitioner_merges_a_duplicate_found_by_the_desk_and_the_audit_records_it(app, desk, mailbox):
    book(desk)
    book(desk, email="new@example.com", date=LATER.isoformat())
    book(desk, date_of_birth="1991-03-27", email="twin@example.com")
    with app.app_context():
        keep, duplicate, twin = db.session.scalars(select(Client).order_by(Client.id)).all()
        keep_uid, duplicate_uid, twin_uid = keep.uid, duplicate.uid, twin.uid
    found = desk.get("/staff/clients?q=siob").text
    assert found.count('href="/staff/clients/') == 3, "the desk finds all three by name"
    found = desk.get("/staff/clients?q=new@example.com").text
    assert f"/staff/clients/{duplicate_uid}" in found and f"/staff/clients/{keep_uid}" not in found
    page = desk.get(f"/staff/clients/{keep_uid}")
    assert "Merge a duplicate record" not in page.text, "merging is for practitioners"
    assert desk.post(f"/staff/clients/{keep_uid}/merge", data={"csrf_token": csrf_token(page.text),
                                                              "duplicate": duplicate_uid}).status_code == 403

    practitioner = app.test_client()
    sign_in(practitioner, "prac@clinic.test")
    page = practitioner.get(f"/staff/clients/{keep_uid}")
    assert duplicate_uid in page.text and twin_uid not in page.text, "only records with this date of birth offered"
    refused = practitioner.post(f"/staff/clients/{keep_uid}/merge", data={"csrf_token": csrf_token(page.text),
                                                                          "duplicate": twin_uid})
    assert refused.status_code == 409 and "different dates of birth" in refused.text
    missing = practitioner.post(f"/staff/clients/{keep_uid}/merge", data={"csrf_token": csrf_token(page.text)})
    assert missing.status_code == 400 and "Choose the record to merge" in missing.text
    done = practitioner.post(f"/staff/clients/{keep_uid}/merge", data={"csrf_token": csrf_token(page.text),
                                                                       "duplicate": duplicate_uid})
    assert done.status_code == 303
    first, second, twin_row = client_ids(app)
    with app.app_context():
        keep_id = clients.by_uid(db.session, keep_uid).id
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "clients_merged"))
        assert event.detail == f"client {duplicate_uid} merged into {keep_uid}" and event.actor_id is not None
    assert first == second == keep_id and twin_row != keep_id
    assert practitioner.get(f"/staff/clients/{duplicate_uid}").location.endswith(f"/staff/clients/{keep_uid}")


def test_a_walk_in_screening_is_attached_to_a_client_with_clear_messages(app, desk, mailbox):
    from tests.web import complete

    book(desk)
    reference = complete(app.test_client(), answers_for_booking())
    with app.app_context():
        uid = db.session.scalar(select(Client.uid))
    page = desk.get(f"/staff/clients/{uid}")
    empty = desk.post(f"/staff/clients/{uid}/attach", data={"csrf_token": csrf_token(page.text), "reference": ""})
    assert empty.status_code == 400 and "Enter the screening’s reference" in empty.text
    wrong = desk.post(f"/staff/clients/{uid}/attach", data={"csrf_token": csrf_token(page.text),
                                                           "reference": "ZZZZ-ZZZZ"})
    assert wrong.status_code == 400 and "no screening with that reference" in wrong.text
    assert 'value="ZZZZ-ZZZZ"' in wrong.text, "what was typed stays"
    ok = desk.post(f"/staff/clients/{uid}/attach", data={"csrf_token": csrf_token(page.text), "reference": reference})
    assert ok.status_code == 303 and reference in desk.get(f"/staff/clients/{uid}").text
    again = desk.post(f"/staff/clients/{uid}/attach", data={"csrf_token": csrf_token(page.text),
                                                           "reference": reference})
    assert again.status_code == 409 and "already on this client" in again.text


LASTING = dict(keloid_history="no", fitzpatrick="type_4", pih_history="yes", melasma="no", cold_sore_history="yes")


def test_the_second_and_third_screenings_prefill_lasting_answers_only_and_mark_what_changed(app, desk, mailbox):
    book(desk, treatment="standard")
    first = screen(app, mailbox, answers_for_booking(treatment_variant="standard", unwell_today="yes", **LASTING))
    book(desk, date=LATER.isoformat(), treatment="standard")
    client, response = open_invitation(app, mailbox)
    with app.app_context():
        draft = db.session.scalars(select(Draft).order_by(Draft.id.desc())).first()
        carried, pending = dict(draft.answers), clients_pages(draft)
        previous = db.session.scalar(select(Submission).where(Submission.reference == first))
    assert carried["fitzpatrick"] == "type_4" and carried["pih_history"] == "yes"
    assert not set(carried) & qd.ABOUT_NOW, "nothing about now or the last 28 days is prefilled"
    assert "unwell_today" not in carried and "pregnant" not in carried
    assert "skin-type" in pending and "feeling-today" not in pending
    assert carried["appointment_date"] == LATER.isoformat(), "the new booking's facts, not last time's"

    # Each prefilled page says so, and must be seen before the answers can be checked.
    assert "We have filled in this page" not in client.get("/q/pregnancy").text
    answers = answers_for_booking(treatment_variant="standard", appointment_date=LATER.isoformat(),
                                  **{**LASTING, "melasma": "yes"})
    for page in qd.PAGES[:qd.PAGES.index(qd.PAGE_BY_ID["scarring"])]:
        post_page(client, page.id, page_data(page, answers))
    assert "We have filled in this page" in client.get("/q/scarring").text
    detour = client.get("/check")
    assert detour.status_code == 302 and detour.location.endswith("/q/scarring"), "prefilled pages not yet seen"
    answer_all(client, answers)
    check = client.get("/check").text
    assert check.count("Changed since") == 2, "melasma, and feeling unwell (yes then, no now)"
    assert re.search(r"a fever, flu, COVID.*?Changed since", check, re.S)
    assert sign_and_send(client, answers["full_name"]).status_code == 302
    with app.app_context():
        second = db.session.scalars(select(Submission).order_by(Submission.id.desc())).first()
        assert second.previous_id == previous.id and second.client_id == previous.client_id is not None
        changed = clients.changes_of(db.session, second)
        assert changed.questions == {"melasma", "unwell_today"} and changed.since == previous.answered_on
        second_reference = second.reference

    practitioner = app.test_client()
    sign_in(practitioner, "prac@clinic.test")
    record = practitioner.get(f"/staff/submissions/{second_reference}").text
    assert "Changed since the screening of" in record and "filled in from their screening of" in record
    with app.app_context():
        from screening.pdf import report_context

        context = report_context(db.session.get(Submission, second.id), app.config["CLINIC"])
        rows = [r for s in context["sections"] for r in s["rows"] if r.get("changed")]
        assert {r["id"] for r in rows} == {"melasma", "unwell_today"} and context["changed_since"]

    # The third visit starts from the second screening: melasma "yes" is carried now.
    book(desk, date=(LATER + dt.timedelta(days=35)).isoformat(), treatment="standard")
    open_invitation(app, mailbox)
    with app.app_context():
        draft = db.session.scalars(select(Draft).order_by(Draft.id.desc())).first()
        assert draft.answers["melasma"] == "yes" and draft.prefilled_from_id == second.id
    history = practitioner.get(f"/staff/clients/{_client_uid(app)}").text
    assert first in history and second_reference in history and "Changed since the screening before" in history


def clients_pages(draft) -> list[str]:
    return [p for p in draft.pages_to_confirm.split(",") if p]


def _client_uid(app) -> str:
    with app.app_context():
        return db.session.scalar(select(Client.uid).order_by(Client.id))


def test_a_look_back_answered_no_is_asked_again_and_a_yes_keeps_its_events():
    previous = answers_for_booking(microneedling_3m="no", injectables_12m="yes",
                                   injectables=[{"type": "botox", "date": "2026-10", "location": ["forehead"]}])
    carried = clients.lasting_answers(previous)
    assert "microneedling_3m" not in carried, "a 'no' said nothing about the months since"
    if "injectables" in qd.BY_ID:
        assert carried.get("injectables_12m") == "yes"


@pytest.fixture
def on_the_day(monkeypatch):
    """Move the clinic's clock to the appointment day (DAY), at 09:00 UTC."""
    def move(day: dt.date = DAY):
        moment = dt.datetime.combine(day, dt.time(9), tzinfo=dt.timezone.utc)
        monkeypatch.setattr(clock, "now", lambda: moment)
    return move


def test_on_the_day_the_link_asks_only_what_may_have_changed_and_nothing_changed_keeps_the_result(
        app, desk, mailbox, on_the_day):
    book(desk, treatment="standard")
    reference = screen(app, mailbox, answers_for_booking(treatment_variant="standard"))
    with app.app_context():
        submission = db.session.scalar(select(Submission).where(Submission.reference == reference))
        assert submission.on_the_day == "to_confirm" and not clients.may_proceed(db.session, submission)
    before_the_day = app.test_client()
    assert before_the_day.get(link_path(_invitations(mailbox)[0])).status_code == 303
    assert "already sent your answers" in before_the_day.get("/invitation").text, "before the day: nothing to do"

    on_the_day()
    client = app.test_client()
    response = pass_dob(client, link_path(_invitations(mailbox)[0]))
    assert response.status_code == 303 and response.location.endswith("/today")
    page = client.get("/today")
    assert "Is this still true today?" in page.text and "a fever, flu, COVID" in page.text
    assert "keloid" not in page.text.lower(), "only the questions about now"
    missing = client.post("/today", data={"csrf_token": csrf_token(page.text)})
    assert missing.status_code == 400 and "Select whether this is still true today" in missing.text
    items = re.findall(r'name="(still-[a-z0-9_]+)" value="yes"', page.text)
    response = client.post("/today", data={"csrf_token": csrf_token(page.text), **{i: "yes" for i in items}})
    assert response.status_code == 303 and response.location.endswith("/today/done")
    assert "Your answers are confirmed" in client.get("/today/done").text
    with app.app_context():
        submission = db.session.scalar(select(Submission).where(Submission.reference == reference))
        check = db.session.scalar(select(DayCheck))
        assert submission.on_the_day == "confirmed" and clients.may_proceed(db.session, submission)
        assert check.changed == [] and check.outcome_before == submission.outcome == "CLEAR"
        assert submission.answered_on == DAY and not submission.result["to_confirm_on_the_day"]


def test_a_change_on_the_day_reruns_the_rules_keeps_both_versions_and_half_way_applies_nothing(
        app, desk, mailbox, on_the_day):
    book(desk, treatment="standard")
    reference = screen(app, mailbox, answers_for_booking(treatment_variant="standard"))
    on_the_day()
    client = app.test_client()
    pass_dob(client, link_path(_invitations(mailbox)[0]))
    page = client.get("/today")
    items = re.findall(r'name="(still-[a-z0-9_]+)" value="yes"', page.text)
    answers = {i: "yes" for i in items}
    answers["still-cold_sore_now"] = "no"
    response = client.post("/today", data={"csrf_token": csrf_token(page.text), **answers})
    assert response.location.endswith("/today/changes")
    changes = client.get("/today/changes")
    assert changes.status_code == 200 and 'name="cold_sore_now"' in changes.text
    # Closed half-way: nothing is applied.
    with app.app_context():
        submission = db.session.scalar(select(Submission).where(Submission.reference == reference))
        assert submission.on_the_day == "to_confirm" and submission.outcome == "CLEAR"
        assert submission.answers["cold_sore_now"] == "no"
    empty = client.post("/today/changes", data={"csrf_token": csrf_token(changes.text)})
    assert empty.status_code == 400 and "error-summary" in empty.text
    response = client.post("/today/changes", data={"csrf_token": csrf_token(changes.text), "cold_sore_now": "yes"})
    assert response.status_code == 303 and response.location.endswith("/today/done")
    assert "You changed some answers" in client.get("/today/done").text
    with app.app_context():
        submission = db.session.scalar(select(Submission).where(Submission.reference == reference))
        check = db.session.scalar(select(DayCheck))
        assert submission.outcome == "DEFER" and submission.answers["cold_sore_now"] == "yes"
        assert check.outcome_before == "CLEAR" and check.answers_before["cold_sore_now"] == "no"
        assert check.changed == ["cold_sore_now"] and check.result_before["outcome"] == "CLEAR"
        assert submission.signature_name == "Siobhán O'Neill", "every encrypted value still opens"
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "day_confirmed"))
        assert event.detail == "link; 1 answer changed", "how and how much; never which answer or what outcome"
    notices = [m for m in mailbox.messages if m["To"] in ("prac@clinic.test", "other@clinic.test")]
    assert len(notices) == 2, "CLEAR became DEFER on the day: the practitioners hear of it (no name, no outcome)"
    assert all("Siobh" not in m.get_body(("plain",)).get_content() for m in notices)
    assert client.get("/today").status_code == 404, "done: the browser keeps nothing of it"


def test_the_desk_hands_the_tablet_over_and_can_undo_an_arrival(app, desk, mailbox, on_the_day):
    book(desk, treatment="standard")
    reference = screen(app, mailbox, answers_for_booking(treatment_variant="standard"))
    on_the_day()
    sign_in(desk, "desk@clinic.test")  # five days on, yesterday's staff session has ended
    page = desk.get("/staff/desk")
    assert "Not yet confirmed on the day" in page.text
    desk.post(f"/staff/desk/{reference}/arrived", data={"csrf_token": csrf_token(page.text)})
    page = desk.get("/staff/desk")
    assert desk.post(f"/staff/desk/{reference}/not-arrived",
                     data={"csrf_token": csrf_token(page.text)}).status_code == 302
    page = desk.get("/staff/desk")
    assert "Mark arrived" in page.text
    with app.app_context():
        assert db.session.scalar(select(AuditEvent.id).where(AuditEvent.action == "arrival_undone")) is not None
    tablet = desk
    response = tablet.post(f"/staff/desk/{reference}/confirm-here", data={"csrf_token": csrf_token(page.text)})
    assert response.status_code == 302 and response.location.endswith("/today")
    page = tablet.get("/today")
    assert "Is this still true today?" in page.text
    assert tablet.get("/staff/desk").status_code == 302, "the tablet is a kiosk now: no staff pages"
    items = re.findall(r'name="(still-[a-z0-9_]+)" value="yes"', page.text)
    tablet.post("/today", data={"csrf_token": csrf_token(page.text), **{i: "yes" for i in items}})
    assert "hand the tablet back" in tablet.get("/today/done").text
    with app.app_context():
        check = db.session.scalar(select(DayCheck))
        assert check.channel == "kiosk" and check.confirmed_at is not None


def test_an_out_of_date_screening_is_done_again_prefilled(app, desk, mailbox, on_the_day):
    book(desk, treatment="standard", date=LATER.isoformat())
    reference = screen(app, mailbox, answers_for_booking(treatment_variant="standard",
                                                         appointment_date=LATER.isoformat(), **LASTING))
    with app.app_context():
        submission = db.session.scalar(select(Submission).where(Submission.reference == reference))
        assert submission.on_the_day == "redo", "answered 40 days before: out of date"
    on_the_day(LATER - dt.timedelta(days=1))
    client, response = open_invitation(app, mailbox, 0)
    assert "/q/" in response.location
    with app.app_context():
        draft = db.session.scalars(select(Draft).order_by(Draft.id.desc())).first()
        assert draft.prefilled_from_id == submission.id and draft.answers["fitzpatrick"] == "type_4"


def _months_back(day: dt.date, months: int) -> dt.date:
    from screening.rules import add_months

    return add_months(day, -months)


def test_the_next_screening_runs_the_rules_on_its_own_date_a_lifted_deferral_goes_and_a_new_one_comes(
        app, desk, mailbox):
    from tests.test_appointments import TODAY

    first_day, second_day = TODAY + dt.timedelta(days=5), TODAY + dt.timedelta(days=10)
    # Vitiligo last active 12 months before a day between the two appointments: it defers the first one only.
    active = _months_back(TODAY + dt.timedelta(days=7), 12).isoformat()
    vitiligo = dict(vitiligo="yes", vitiligo_active_12m="yes", vitiligo_last_activity_date=active)
    book(desk, treatment="standard", date=first_day.isoformat())
    first = screen(app, mailbox, answers_for_booking(treatment_variant="standard",
                                                     appointment_date=first_day.isoformat(), **vitiligo))
    book(desk, treatment="standard", date=second_day.isoformat())
    client, _ = open_invitation(app, mailbox)
    with app.app_context():
        draft = db.session.scalars(select(Draft).order_by(Draft.id.desc())).first()
        assert {k: draft.answers.get(k) for k in vitiligo} == vitiligo, "the dated event is carried over"
    injected = (TODAY - dt.timedelta(days=2)).isoformat()
    answers = answers_for_booking(treatment_variant="standard", appointment_date=second_day.isoformat(),
                                  injectables_12m="yes", **vitiligo,
                                  injectables=[{"type": "botulinum_toxin", "date": injected,
                                                "location": ["forehead"]}])
    answer_all(client, answers)
    assert sign_and_send(client, answers["full_name"]).status_code == 302
    with app.app_context():
        earlier = db.session.scalar(select(Submission).where(Submission.reference == first))
        later = db.session.scalars(select(Submission).order_by(Submission.id.desc())).first()
        earlier_flags = {f["id"] for f in earlier.result["flags"]}
        later_flags = {f["id"] for f in later.result["flags"]}
    assert "vitiligo_unstable" in earlier_flags and earlier.outcome == "DEFER"
    assert "vitiligo_unstable" not in later_flags, "lifted by the second appointment's date"
    assert "recent_injectable_in_area" in later_flags and later.outcome == "DEFER", "a new one, from new answers"


def test_the_desk_hands_a_tablet_over_for_an_out_of_date_screening_prefilled_and_tied_to_the_booking(
        app, desk, mailbox, on_the_day):
    book(desk, treatment="standard", date=LATER.isoformat())
    reference = screen(app, mailbox, answers_for_booking(treatment_variant="standard",
                                                         appointment_date=LATER.isoformat(), **LASTING))
    on_the_day(LATER)
    sign_in(desk, "desk@clinic.test")
    page = desk.get("/staff/desk")
    assert "Out of date: to be done again" in page.text
    refused = desk.post(f"/staff/desk/{reference}/confirm-here", data={"csrf_token": csrf_token(page.text)})
    assert refused.status_code == 409, "an out-of-date screening is done again, not confirmed"
    response = desk.post(f"/staff/desk/{reference}/redo-here", data={"csrf_token": csrf_token(page.text)})
    assert response.status_code == 302 and "/q/" in response.location
    assert desk.get("/staff/desk").status_code == 302, "the tablet is a kiosk now"
    answers = answers_for_booking(treatment_variant="standard", appointment_date=LATER.isoformat(), **LASTING)
    answer_all(desk, answers)
    sent = sign_and_send(desk, answers["full_name"])
    assert "Your answers have been sent" in sent.get_data(as_text=True), "a kiosk shows the confirmation at once"
    with app.app_context():
        old = db.session.scalar(select(Submission).where(Submission.reference == reference))
        new = db.session.scalars(select(Submission).order_by(Submission.id.desc())).first()
        appointment = db.session.scalar(select(Appointment))
        assert new.id != old.id and appointment.submission_id == new.id and new.previous_id == old.id
        assert new.on_the_day == "not_needed" and new.client_id == old.client_id


def test_a_tablet_left_alone_forgets_the_confirmation_and_applies_nothing(app, desk, mailbox, on_the_day):
    import time

    from screening.clients.dayof import SESSION_KEY

    book(desk, treatment="standard")
    reference = screen(app, mailbox, answers_for_booking(treatment_variant="standard"))
    on_the_day()
    sign_in(desk, "desk@clinic.test")
    page = desk.get("/staff/desk")
    desk.post(f"/staff/desk/{reference}/confirm-here", data={"csrf_token": csrf_token(page.text)})
    assert desk.get("/today").status_code == 200
    with desk.session_transaction() as session:
        session[SESSION_KEY + "_at"] = int(time.time()) - app.config["KIOSK_IDLE_SECONDS"] - 1
    gone = desk.get("/today")
    assert gone.status_code == 404 and "Nothing to confirm here" in gone.text
    with desk.session_transaction() as session:
        assert SESSION_KEY not in session, "the next person at the tablet sees none of it"
    with app.app_context():
        submission = db.session.scalar(select(Submission).where(Submission.reference == reference))
        assert submission.on_the_day == "to_confirm"


def test_erasing_a_screening_takes_its_day_check_and_leaves_the_later_screening_and_the_booking(app, desk, mailbox):
    from screening import records

    book(desk, treatment="standard")
    first = screen(app, mailbox, answers_for_booking(treatment_variant="standard", **LASTING))
    book(desk, date=LATER.isoformat(), treatment="standard")
    second = screen(app, mailbox, answers_for_booking(treatment_variant="standard",
                                                      appointment_date=LATER.isoformat(), **LASTING))
    with app.app_context():
        clients.open_check(db.session, db.session.scalar(select(Submission).where(Submission.reference == first)),
                           "link")
        records.erase(db.session, first, reason="the client asked")
        db.session.commit()
        later = db.session.scalar(select(Submission).where(Submission.reference == second))
        assert later.previous_id is None and later.client_id is not None
        assert db.session.scalar(select(DayCheck.id)) is None
        booked = db.session.scalars(select(Appointment).order_by(Appointment.id)).all()
        assert booked[0].submission_id is None and booked[1].submission_id == later.id
