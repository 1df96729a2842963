"""A course of sessions (issue 14): the clinic's record of past sessions beside the client's answers (rule 41),
the session the practitioner records at sign-off, sign-off refused for "proceed" until the day's confirmation,
and booking the next session from the sign-off page."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from screening import questions as qd
from screening.appointments import services as appointments
from screening.appointments.models import Appointment
from screening.clients import services as clients
from screening.clients.models import TreatmentSession
from screening.display import format_answer
from screening.extensions import db
from screening.models import AuditEvent, Review, Submission
from screening.rules import AnswersError, evaluate
from tests.answers import clear_answers
from tests.staff import sign_in
from tests.test_appointments import (answers_for_booking, app, book, desk, link_path, mailbox,  # noqa: F401
                                     pass_dob, sent_to)
from tests.web import answer_all, csrf_token, sign_and_send

APPOINTMENT = dt.date(2027, 3, 31)


def run(ruleset, sessions=(), answered_on=APPOINTMENT, **changes):
    answers = clear_answers(**{"appointment_date": APPOINTMENT.isoformat(), "treatment_variant": "rf",
                               "treatment_areas": ["full_face"], **changes})
    return evaluate(ruleset, answers, answered_on=answered_on, clinic_sessions=sessions)


def session(days_before: int, variant="rf", areas=("full_face",)) -> dict:
    return {"on": APPOINTMENT - dt.timedelta(days=days_before), "variant": variant, "areas": list(areas)}


def flag(result, rule_id):
    found = [f for f in result.flags if f.id == rule_id]
    assert len(found) == 1, [f.id for f in result.flags]
    return found[0]


def listed(days_before: int, location=("full_face",)) -> dict:
    """The client's own answer: microneedled ``days_before`` the appointment."""
    return dict(microneedling_3m="yes", last_microneedling=[
        {"date": (APPOINTMENT - dt.timedelta(days=days_before)).isoformat(), "variant": "rf",
         "location": list(location)}])


# -- the engine ---------------------------------------------------------------------------------


def test_a_session_20_days_before_defers_with_the_clinic_record_shown(ruleset):
    result = run(ruleset, [session(20)], **listed(20))
    assert result.outcome == "DEFER"
    rule41 = flag(result, "recent_microneedling_in_area")
    assert rule41.lifts_on == APPOINTMENT + dt.timedelta(days=8)  # 20 days ago + 28 days
    sources = [item.get("source") for item in rule41.because["last_microneedling"]]
    assert sources == [None, "clinic"]  # the client's answer and the clinic's record, both shown
    assert "clinic_record_differs" not in {f.id for f in result.flags}  # they agree (the same day)
    assert result.to_dict()["clinic_record"] == [
        {"date": "2027-03-11", "variant": "rf", "location": ["full_face"], "source": "clinic"}]


def test_the_clinic_record_is_stricter_than_the_answer(ruleset):
    # The client says 40 days ago (lifted); the clinic recorded 10 days ago: the later date wins.
    result = run(ruleset, [session(10)], **listed(40))
    assert flag(result, "recent_microneedling_in_area").lifts_on == APPOINTMENT + dt.timedelta(days=18)
    # ...and the client's answer mentions no session within 7 days of the clinic's: shown to the practitioner.
    differs = flag(result, "clinic_record_differs")
    assert differs.severity == "review"
    assert result.contradictions == (
        "The clinic recorded RF microneedling, 21 March 2027, whole face; the client answered with no session "
        "within 7 days of it.",)


def test_the_answer_is_stricter_than_the_clinic_record(ruleset):
    # The clinic recorded 50 days ago (lifted); the client had another session elsewhere 5 days ago.
    result = run(ruleset, [session(50)], **listed(5))
    rule41 = flag(result, "recent_microneedling_in_area")
    assert rule41.lifts_on == APPOINTMENT + dt.timedelta(days=23)
    assert [i.get("source") for i in rule41.because["last_microneedling"]] == [None]  # only the item that fired
    assert {f.id for f in result.flags} >= {"clinic_record_differs"}  # 50 days ago: not within 7 days of 5


def test_a_client_who_says_no_is_contradicted_and_deferred(ruleset):
    result = run(ruleset, [session(20)])  # the client answered "no" to microneedling in the last 3 months
    assert result.outcome == "DEFER"
    assert flag(result, "recent_microneedling_in_area").lifts_on == APPOINTMENT + dt.timedelta(days=8)
    differs = flag(result, "clinic_record_differs")
    assert differs.because["microneedling_3m"] == "no"
    assert [i["source"] for i in differs.because["last_microneedling"]] == ["clinic"]
    assert result.contradictions == (
        "The clinic recorded RF microneedling, 11 March 2027, whole face; the client answered that they have had "
        "no microneedling in the last 3 months.",)
    data = result.to_dict()
    assert data["contradictions"] == list(result.contradictions)
    # How the practitioner reads it (the staff record and the PDF format the same way).
    text = format_answer(qd.BY_ID["last_microneedling"], data["flags"][-1]["because"]["last_microneedling"])
    assert text == "Clinic record: RF microneedling, 11 March 2027, Whole face"


def test_a_session_outside_the_area_defers_nothing_but_still_contradicts_no(ruleset):
    result = run(ruleset, [session(20, areas=("neck",))])
    assert "recent_microneedling_in_area" not in {f.id for f in result.flags}
    assert result.outcome == "REVIEW"
    assert flag(result, "clinic_record_differs")


def test_sessions_on_or_after_the_appointment_are_ignored(ruleset):
    result = run(ruleset, [session(0), session(-7)])
    assert result.outcome == "CLEAR"
    assert result.clinic_record == () and result.contradictions == ()


def test_a_session_after_the_answers_were_given_is_no_contradiction(ruleset):
    # Answered 25 days before; the clinic treated 20 days before the appointment: counted, not contradicted.
    result = run(ruleset, [session(20)], answered_on=APPOINTMENT - dt.timedelta(days=25))
    assert flag(result, "recent_microneedling_in_area")
    assert "clinic_record_differs" not in {f.id for f in result.flags}


def test_a_session_older_than_the_look_back_is_no_contradiction(ruleset):
    result = run(ruleset, [session(120)])
    assert result.outcome == "CLEAR" and result.contradictions == ()


def test_unsure_is_not_a_contradiction(ruleset):
    result = run(ruleset, [session(60)], microneedling_3m="unsure")
    assert "clinic_record_differs" not in {f.id for f in result.flags}


def test_a_month_answer_matches_a_session_in_that_month(ruleset):
    result = run(ruleset, [session(50)], microneedling_3m="yes", last_microneedling=[
        {"date": "2027-02", "variant": "rf", "location": ["full_face"]}])
    assert result.contradictions == ()


def test_without_clinic_sessions_the_result_is_as_before(ruleset):
    plain = evaluate(ruleset, clear_answers(), answered_on=dt.date(2026, 12, 1))
    assert plain.clinic_record == () and plain.contradictions == ()
    assert plain.to_dict()["clinic_record"] == [] and plain.to_dict()["contradictions"] == []


def test_every_variant_screened_carries_the_record_flag_once(ruleset):
    result = run(ruleset, [session(20)], treatment_variant="unknown")
    assert flag(result, "clinic_record_differs").variants == ("standard", "rf", "prp")


@pytest.mark.parametrize("bad, message", [
    ([{"on": "2027-03-01", "variant": "rf", "areas": ["cheeks"]}], "'on' must be a date"),
    ([{"on": dt.date(2027, 3, 1), "variant": "laser", "areas": ["cheeks"]}], "'variant'"),
    ([{"on": dt.date(2027, 3, 1), "variant": "rf", "areas": []}], "'areas'"),
    ([{"on": dt.date(2027, 3, 1), "variant": "rf", "areas": ["elbow"]}], "'areas'"),
    ([{"on": dt.date(2027, 3, 1), "variant": "rf", "areas": ["cheeks"], "who": "x"}], "must be an object"),
    ("2027-03-01", "must be a list"),
])
def test_bad_clinic_sessions_are_refused_by_name(ruleset, bad, message):
    with pytest.raises(AnswersError) as caught:
        run(ruleset, bad)
    assert message in str(caught.value)


# -- the web: sign-off records the session; proceed waits for the day's confirmation ---------------

TODAY = dt.date.today()


def screen(app, mailbox, answers) -> str:
    """Answer the latest invitation's questionnaire (date of birth, "the booking is right", every page)."""
    invitations = [m for m in sent_to(mailbox, "sio@example.com") if "Your health questions" in m["Subject"]]
    client = app.test_client()
    assert pass_dob(client, link_path(invitations[-1])).status_code == 303
    page = client.get("/invitation/booking")
    client.post("/invitation/booking", data={"csrf_token": csrf_token(page.text), "facts": "right"})
    answer_all(client, answers)
    response = sign_and_send(client, answers["full_name"])
    assert response.status_code == 302 and response.location.endswith("/done"), response.status_code
    return re.search(r'class="reference">([A-Z0-9-]+)<', client.get("/done").text).group(1)


def practitioner(app):
    client = app.test_client()
    sign_in(client, "prac@clinic.test")
    return client


def sign_off(client, reference, **data):
    page = client.get(f"/staff/submissions/{reference}")
    return client.post(f"/staff/submissions/{reference}/sign-off",
                       data={"csrf_token": csrf_token(page.text), **data})


def recorded(app) -> list[TreatmentSession]:
    with app.app_context():
        rows = list(db.session.scalars(select(TreatmentSession).order_by(TreatmentSession.id)))
        db.session.expunge_all()
        return rows


def screened_today(app, desk, mailbox, **changes) -> str:
    """Book for today and screen today: nothing to confirm on the day."""
    book(desk, date=TODAY.isoformat(), treatment="rf")
    return screen(app, mailbox, answers_for_booking(appointment_date=TODAY.isoformat(), **changes))


def test_the_sign_off_form_starts_from_the_booking_and_records_the_session(app, desk, mailbox):
    reference = screened_today(app, desk, mailbox)
    prac = practitioner(app)
    page = prac.get(f"/staff/submissions/{reference}").text
    assert "What was done today" in page
    assert checked(page, "treated") == ["treated"], "it starts on Treated today"
    assert checked(page, "treated_variant") == ["rf"] and checked(page, "treated_areas") == ["full_face"]
    response = sign_off(prac, reference, decision="proceed", treated="treated", treated_variant="rf",
                        treated_areas=["cheeks", "forehead"])
    assert response.status_code == 302
    [row] = recorded(app)
    assert (row.treated, row.variant, row.area_list, row.on) == (True, "rf", ["forehead", "cheeks"], TODAY)
    with app.app_context():
        submission = db.session.scalar(select(Submission).where(Submission.reference == reference))
        review = db.session.scalar(select(Review).where(Review.submission_id == submission.id))
        assert row.client_id == submission.client_id is not None and row.review_id == review.id
    page = prac.get(f"/staff/submissions/{reference}").text
    assert "Treated today: RF microneedling, forehead, cheeks" in page
    pdf = prac.get(f"/staff/submissions/{reference}/pdf?version=signed")
    assert "Treated today: RF microneedling, forehead, cheeks" in pdf_text(pdf.data)


def checked(html: str, name: str) -> list[str]:
    """Return the values of the ticked boxes or chosen radios named ``name``."""
    inputs = re.findall(rf'<input[^>]*name="{name}"[^>]*>', html)
    return [re.search(r'value="([^"]*)"', i).group(1) for i in inputs if " checked" in i]


def pdf_text(data: bytes) -> str:
    return " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(data)).pages)


@pytest.mark.parametrize("decision, extra", [
    ("proceed", {"treated": "not_treated", "treated_variant": "rf", "treated_areas": ["neck"]}),
    ("decline", {"treated": "treated", "treated_variant": "rf", "treated_areas": ["neck"]}),
    ("defer", {"defer_until-day": "1", "defer_until-month": "1", "defer_until-year": str(TODAY.year + 1)}),
])
def test_not_treated_is_recorded_and_defer_or_decline_mean_not_treated(app, desk, mailbox, decision, extra):
    reference = screened_today(app, desk, mailbox)
    prac = practitioner(app)
    assert sign_off(prac, reference, decision=decision, **extra).status_code == 302
    [row] = recorded(app)
    assert (row.treated, row.variant, row.area_list) == (False, "", [])
    assert "Not treated" in prac.get(f"/staff/submissions/{reference}").text


@pytest.mark.parametrize("data, field, message", [
    ({"treated": "maybe"}, "treated", "Select whether you treated the client today"),
    ({"treated_variant": "rf", "treated_areas": ["neck"]}, "treated", "Select whether you treated the client today"),
    ({"treated": "treated", "treated_areas": ["neck"]}, "treated_variant", "Select the treatment you gave"),
    ({"treated": "treated", "treated_variant": "laser", "treated_areas": ["neck"]}, "treated_variant",
     "Select the treatment you gave"),
    ({"treated": "treated", "treated_variant": "rf"}, "treated_areas", "Select the areas you treated"),
    ({"treated": "treated", "treated_variant": "rf", "treated_areas": ["neck", "elbow"]}, "treated_areas",
     "Select the areas you treated from the list"),
])
def test_what_was_done_is_checked_with_clear_messages_and_nothing_typed_is_lost(app, desk, mailbox, data, field,
                                                                                 message):
    reference = screened_today(app, desk, mailbox)
    prac = practitioner(app)
    response = sign_off(prac, reference, decision="proceed", note="Kept note", **data)
    assert response.status_code == 400
    assert f'href="#{field}' in response.text and message in response.text
    assert "Kept note" in response.text  # nothing typed is lost
    assert checked(response.text, "treated_areas") == [a for a in data.get("treated_areas", []) if a != "elbow"]
    assert recorded(app) == []


def test_proceed_is_refused_until_the_client_confirms_on_the_day(app, desk, mailbox):
    later = TODAY + dt.timedelta(days=5)
    book(desk, date=later.isoformat(), treatment="rf")
    reference = screen(app, mailbox, answers_for_booking(appointment_date=later.isoformat()))
    prac = practitioner(app)
    page = prac.get(f"/staff/submissions/{reference}").text
    assert "Not yet confirmed on the day" in page and "Proceed is not available" in page
    assert 'value="proceed"' not in page and 'value="defer"' in page and 'value="decline"' in page
    assert "Not yet confirmed on the day" in pdf_text(prac.get(f"/staff/submissions/{reference}/pdf").data)
    for decision in ("proceed", "proceed_with_precautions"):
        response = sign_off(prac, reference, decision=decision, note="Typed note")
        assert response.status_code == 400
        assert "The client has not yet confirmed their answers on the day of treatment" in response.text
        assert "Typed note" in response.text
    assert recorded(app) == []

    # The client confirms (nothing changed): proceed is offered, and signed off.
    with app.app_context():
        from screening import current_rules

        submission = db.session.scalar(select(Submission).where(Submission.reference == reference))
        check = clients.open_check(db.session, submission, "link")
        clients.save_still_true(db.session, check, {item.root: True for item in clients.to_confirm(submission)})
        clients.confirm(db.session, check, current_rules(), TODAY)
    page = prac.get(f"/staff/submissions/{reference}").text
    assert "Confirmed on the day at" in page and 'value="proceed"' in page
    assert "Confirmed on the day at" in pdf_text(prac.get(f"/staff/submissions/{reference}/pdf").data)
    assert sign_off(prac, reference, decision="proceed", treated="treated", treated_variant="rf",
                    treated_areas=["full_face"]).status_code == 302
    assert [r.treated for r in recorded(app)] == [True]


@pytest.mark.parametrize("decision", ["defer", "decline"])
def test_defer_and_decline_are_allowed_before_the_confirmation(app, desk, mailbox, decision):
    later = TODAY + dt.timedelta(days=5)
    book(desk, date=later.isoformat(), treatment="rf")
    reference = screen(app, mailbox, answers_for_booking(appointment_date=later.isoformat()))
    extra = {"defer_until-day": str(later.day), "defer_until-month": str(later.month),
             "defer_until-year": str(later.year)} if decision == "defer" else {}
    assert sign_off(practitioner(app), reference, decision=decision, **extra).status_code == 302
    assert [r.treated for r in recorded(app)] == [False]


def test_the_recorded_session_feeds_the_next_screening_end_to_end(app, desk, mailbox):
    first = screened_today(app, desk, mailbox)
    prac = practitioner(app)
    assert sign_off(prac, first, decision="proceed", treated="treated", treated_variant="rf",
                    treated_areas=["full_face"]).status_code == 302
    nxt = TODAY + dt.timedelta(days=20)
    book(desk, date=nxt.isoformat(), treatment="rf")
    # The client says no microneedling in the last 3 months; the clinic treated the whole face today.
    second = screen(app, mailbox, answers_for_booking(appointment_date=nxt.isoformat(), microneedling_3m="no"))
    with app.app_context():
        submission = db.session.scalar(select(Submission).where(Submission.reference == second))
        result = submission.result
    assert result["outcome"] == "DEFER"
    [rule41] = [f for f in result["flags"] if f["id"] == "recent_microneedling_in_area"]
    assert rule41["lifts_on"] == (TODAY + dt.timedelta(days=28)).isoformat()
    assert rule41["because"]["last_microneedling"][0]["source"] == "clinic"
    assert result["clinic_record"][0]["date"] == TODAY.isoformat()
    page = prac.get(f"/staff/submissions/{second}").text
    shown = f"Clinic record: RF microneedling, {TODAY.day} {TODAY:%B %Y}, Whole face"
    assert shown in page
    assert shown in pdf_text(prac.get(f"/staff/submissions/{second}/pdf").data)
    with app.app_context():
        assert clients.clinic_sessions(db.session, submission.client_id, nxt) == (
            {"on": TODAY, "variant": "rf", "areas": ["full_face"]},)
        assert clients.clinic_sessions(db.session, submission.client_id, TODAY) == ()
    assert not [e for e in _audit(app) if "full_face" in (e.detail or "")], "no health data in the audit trail"


def _audit(app) -> list[AuditEvent]:
    with app.app_context():
        rows = list(db.session.scalars(select(AuditEvent)))
        db.session.expunge_all()
        return rows


# -- booking the next session from the sign-off page -------------------------------------------------


def signed_off_today(app, desk, mailbox):
    reference = screened_today(app, desk, mailbox)
    prac = practitioner(app)
    assert sign_off(prac, reference, decision="proceed", treated="treated", treated_variant="rf",
                    treated_areas=["cheeks"]).status_code == 302
    return reference, prac


def book_next(prac, reference, day: dt.date | None = None, **data):
    page = prac.get(f"/staff/submissions/{reference}")
    form = {"csrf_token": csrf_token(page.text), "next_time": "14:30", "next_variant": "rf",
            "next_areas": ["cheeks"]}
    if day is not None:
        form.update({"next_date-day": str(day.day), "next_date-month": str(day.month),
                     "next_date-year": str(day.year)})
    form.update(data)
    return prac.post(f"/staff/submissions/{reference}/next-session", data=form)


def appointments_of(app) -> list[Appointment]:
    with app.app_context():
        rows = list(db.session.scalars(select(Appointment).order_by(Appointment.id)))
        db.session.expunge_all()
        return rows


def invitations(mailbox) -> list:
    return [m for m in sent_to(mailbox, "sio@example.com") if "Your health questions" in m["Subject"]]


def test_the_next_session_is_booked_for_the_same_client_and_invited_on_the_reminder_schedule(app, desk, mailbox):
    reference, prac = signed_off_today(app, desk, mailbox)
    page = prac.get(f"/staff/submissions/{reference}").text
    assert "Book the next session" in page and "4 to 6 weeks apart" in page
    assert checked(page, "next_variant") == ["rf"] and checked(page, "next_areas") == ["cheeks"], \
        "it starts as the session just recorded"
    sent_before = len(invitations(mailbox))
    nxt = TODAY + dt.timedelta(days=35)
    response = book_next(prac, reference, nxt)
    assert response.status_code == 302 and response.location.endswith("#next-session")
    page = prac.get(response.location).text
    assert "Next session booked" in page and f"{nxt.day} {nxt:%B %Y} at 14:30" in page
    first, second = appointments_of(app)
    assert second.client_id == first.client_id is not None
    assert (second.appointment_date, second.treatment_variant, second.areas) == (nxt, "rf", ["cheeks"])
    assert second.source.startswith("next-session:") and second.practitioner_id is not None
    assert len(invitations(mailbox)) == sent_before, "not sent at once: on the reminder schedule"
    [created] = [e for e in _audit(app) if e.action == "appointment_created" and second.uid in (e.detail or "")]
    assert created.actor_id == int(second.source.split(":")[1]) and "next-session" in created.detail

    # The reminder schedule sends the first link, as an invitation, SCREENING_REMINDER_DAYS (3) before.
    with app.app_context():
        assert appointments.send_reminders(db.session, nxt - dt.timedelta(days=4)) == 0
        assert appointments.send_reminders(db.session, nxt - dt.timedelta(days=3)) == 1
    assert len(invitations(mailbox)) == sent_before + 1
    client = app.test_client()
    assert pass_dob(client, link_path(invitations(mailbox)[-1])).status_code == 303, "the link works"
    with app.app_context():  # the day before: a reminder this time
        assert appointments.send_reminders(db.session, nxt - dt.timedelta(days=1)) == 1
    assert sent_to(mailbox, "sio@example.com")[-1]["Subject"].startswith("Reminder:")


def test_a_next_session_too_soon_for_the_schedule_is_invited_at_once(app, desk, mailbox):
    reference, prac = signed_off_today(app, desk, mailbox)
    sent_before = len(invitations(mailbox))
    assert book_next(prac, reference, TODAY).status_code == 302  # today: no reminder day is left
    assert len(invitations(mailbox)) == sent_before + 1


@pytest.mark.parametrize("data, field, message", [
    ({"next_date-day": "", "next_date-month": "", "next_date-year": ""}, "next_date-day",
     "Enter the date of the next session"),
    ({"next_date-day": "3", "next_date-month": "", "next_date-year": "2027"}, "next_date-day",
     "must include a month"),
    ({"next_date-day": "31", "next_date-month": "2", "next_date-year": "2027"}, "next_date-day",
     "Enter a real date for the next session"),
    ({"next_date-day": "1", "next_date-month": "1", "next_date-year": "2020"}, "next_date-day",
     "must be today or later"),
    ({"next_time": ""}, "next_time", "Enter the time of the next session as HH:MM"),
    ({"next_time": "25:99"}, "next_time", "Enter the time of the next session as HH:MM"),
    ({"next_variant": ""}, "next_variant", "Select the treatment for the next session"),
    ({"next_variant": "laser"}, "next_variant", "Select the treatment for the next session"),
    ({"next_areas": []}, "next_areas", "Select the areas for the next session"),
    ({"next_areas": ["cheeks", "elbow"]}, "next_areas", "Select the areas for the next session"),
])
def test_bad_input_on_every_next_session_field_has_a_clear_message_and_nothing_is_lost(app, desk, mailbox, data,
                                                                                        field, message):
    reference, prac = signed_off_today(app, desk, mailbox)
    before = len(appointments_of(app))
    response = book_next(prac, reference, TODAY + dt.timedelta(days=30), **data)
    assert response.status_code == 400
    assert f'href="#{field}' in response.text and message in response.text
    assert len(appointments_of(app)) == before
    posted = {**{"next_time": "14:30", "next_variant": "rf", "next_areas": ["cheeks"]}, **data}
    assert f'value="{posted["next_time"]}"' in response.text if posted["next_time"] else True
    assert checked(response.text, "next_areas") == [a for a in posted["next_areas"] if a != "elbow"]
    assert checked(response.text, "next_variant") == ([posted["next_variant"]] if posted["next_variant"] in
                                                      ("standard", "rf", "prp") else [])


def test_the_next_session_needs_a_sign_off_first(app, desk, mailbox):
    reference = screened_today(app, desk, mailbox)
    prac = practitioner(app)
    assert "Book the next session" not in prac.get(f"/staff/submissions/{reference}").text
    response = book_next(prac, reference, TODAY + dt.timedelta(days=30))
    assert response.status_code == 409 and "sign this one off first" in response.text
    assert len(appointments_of(app)) == 1


def test_erasing_a_screening_removes_the_session_recorded_at_its_sign_off(app):
    from screening import records
    from tests.web import complete

    # A walk-in (erasing a screening its appointment points to fails on PostgreSQL: a gap of issue 13's, apart).
    reference = complete(app.test_client(), clear_answers(appointment_date=TODAY.isoformat()))
    assert sign_off(practitioner(app), reference, decision="proceed", treated="treated", treated_variant="rf",
                    treated_areas=["cheeks"]).status_code == 302
    assert len(recorded(app)) == 1
    with app.app_context():
        records.erase(db.session, reference, reason="Client asked")
    assert recorded(app) == []
