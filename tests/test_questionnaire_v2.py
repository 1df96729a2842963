"""Clinical specification v2 through the web: the form refuses implausible dates beside the field, accepts
"I don't know" and the new places, stores the day of answering, and the staff record and PDF show each
variant's outcome and what to confirm on the day."""

from __future__ import annotations

import datetime as dt
import html
import io
import re

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from screening import questions as qd
from screening import services
from screening.extensions import db
from screening.models import Submission
from tests.answers import clear_answers
from tests.staff import add_user, sign_in
from tests.web import complete, page_data, post_page, start

TODAY = dt.date.today()
SOON = (TODAY + dt.timedelta(days=10)).isoformat()
RECENT = (TODAY - dt.timedelta(days=40)).isoformat()


def answer_until(client, answers: dict, page_id: str) -> None:
    """Answer every page before ``page_id``."""
    for page in qd.PAGES:
        if page.id == page_id:
            return
        assert post_page(client, page.id, page_data(page, answers)).status_code == 302, page.id


def error_beside(page_html: str, field_id: str) -> str:
    match = re.search(rf'<p class="error-message" id="{re.escape(field_id)}-error">(.*?)</p>', page_html, re.S)
    assert match, f"no error beside {field_id}"
    text = html.unescape(re.sub(r"<[^>]+>", "", match.group(1))).strip()
    return text.removeprefix("Error:").strip()  # the visually hidden prefix for screen readers


@pytest.mark.parametrize("changes, page_id, field_id, words", [
    pytest.param(dict(isotretinoin_last_12m="yes", isotretinoin_current="no", isotretinoin_last_dose_date="1989-05"),
                 "isotretinoin", "isotretinoin_last_dose_date", "before your date of birth (27 March 1990)",
                 id="last-dose-before-birth"),
    pytest.param(dict(injectables_12m="yes", injectables=[{"type": "ha_filler", "date": "1990-03-26",
                                                           "location": ["nose"]}]),
                 "injections", "injectables-0-date", "before your date of birth", id="injection-before-birth"),
    pytest.param(dict(isotretinoin_last_12m="yes", isotretinoin_current="yes",
                      isotretinoin_planned_end_date=(TODAY - dt.timedelta(days=3)).isoformat()),
                 "isotretinoin", "isotretinoin_planned_end_date", "still taking cannot be in the past",
                 id="planned-end-past"),
    pytest.param(dict(systemic_steroid_last_14d="yes", systemic_steroid_current="yes",
                      systemic_steroid_planned_end_date=(TODAY - dt.timedelta(days=1)).isoformat()),
                 "other-medicines", "systemic_steroid_planned_end_date", "still taking cannot be in the past",
                 id="steroid-planned-end-past"),
])
def test_the_form_refuses_implausible_dates_beside_the_field(app, changes, page_id, field_id, words):
    client = app.test_client()
    start(client)
    answers = clear_answers(appointment_date=SOON, **changes)
    answer_until(client, answers, page_id)
    page = qd.PAGE_BY_ID[page_id]
    response = post_page(client, page_id, page_data(page, answers))
    assert response.status_code == 400
    assert words in error_beside(response.text, field_id)
    assert response.text.count(words) == 2  # in the error summary too
    assert "<title>Error: " in response.text


def test_dont_know_dates_new_places_and_facial_surgery_through_the_web(app):
    answers = clear_answers(
        appointment_date=SOON, treatment_variant="rf",
        isotretinoin_last_12m="yes", isotretinoin_current="yes", isotretinoin_planned_end_date="unknown",
        open_wound="yes", open_wound_location=["eyelids"],
        surgery_2y="yes", surgery=[{"type": "blepharoplasty", "date": RECENT[:7], "location": ["elsewhere"]}],
        thread_lift_2y="yes", thread_lift=[{"type": "facial_thread_lift", "date": "unknown", "location": ["neck"]}],
        metal_allergy="yes", metal_allergy_which=["other"],
    )
    client = app.test_client()
    reference = complete(client, answers)
    with app.app_context():
        stored = db.session.scalar(select(Submission).where(Submission.reference == reference))
        assert stored.answered_on == dt.datetime.now(dt.timezone.utc).date()
        flags = {f["id"]: f for f in stored.result["flags"]}
        assert stored.result["outcome"] == "DEFER" and stored.result["open_ended"] is True
        assert flags["isotretinoin"]["open_ended"] is True
        assert flags["open_wound_in_area"]["severity"] == "defer"  # eyelids overlap the face
        assert flags["recent_surgery_or_thread_lift_in_area"]["open_ended"] is True  # the thread lift's date
        assert flags["metal_allergy"]["severity"] == "review"
        assert stored.result["answered_on"] == stored.answered_on.isoformat()
        assert {c["question"] for c in stored.result["to_confirm_on_the_day"]} >= {"pregnant", "open_wound"}


def test_the_staff_record_and_pdf_show_each_variant_and_what_to_confirm(app):
    answers = clear_answers(appointment_date=SOON, treatment_variant="unknown", permanent_filler="yes",
                            permanent_filler_location=["cheeks"], cold_sore_now="no")
    reference = complete(app.test_client(), answers)
    add_user(app, "pat@clinic.test", ["practitioner"])
    client = app.test_client()
    sign_in(client, "pat@clinic.test")
    page = html.unescape(re.sub(r"\s+", " ", client.get(f"/staff/submissions/{reference}").text))
    assert "By treatment:" in page
    assert re.search(r"Standard: <strong>PRACTITIONER REVIEW</strong>.*RF: <strong>DO NOT TREAT</strong>.*"
                     r"PRP: <strong>PRACTITIONER REVIEW</strong>", page)
    assert "To confirm on the day" in page and "Not yet confirmed on the day" in page
    assert qd.BY_ID["cold_sore_now"].label in page
    assert "Out of date" not in page  # 10 days before the appointment
    with app.app_context():
        stored = db.session.scalar(select(Submission).where(Submission.reference == reference))
        pdf = services.ensure_pdf(db.session, stored, {"name": "Test Clinic", "accent": "#1d5f8a", "logo": None})
    words = " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "By treatment: Standard: PRACTITIONER REVIEW; RF: DO NOT TREAT; PRP: PRACTITIONER REVIEW" in words
    assert "To confirm on the day" in words and qd.BY_ID["cold_sore_now"].label in words


def test_an_out_of_date_screening_says_so(app):
    later = (TODAY + dt.timedelta(days=29)).isoformat()
    reference = complete(app.test_client(), clear_answers(appointment_date=later))
    add_user(app, "pat@clinic.test", ["practitioner"])
    client = app.test_client()
    sign_in(client, "pat@clinic.test")
    page = client.get(f"/staff/submissions/{reference}").text
    assert "Out of date" in page and "Ask the whole questionnaire again" in page
    assert "By treatment:" not in page  # the variant was known


# -- issue 12, item 1: every message names its question ------------------------------------------------


def test_every_question_and_group_field_has_a_subject_for_its_messages():
    for q in qd.QUESTIONS:
        assert q.subject, q.id
        for f in q.fields:
            assert f.subject and "None" not in f.subject, (q.id, f.id)


def test_an_empty_page_names_each_question_in_its_message(app):
    client = app.test_client()
    start(client)
    answer_until(client, clear_answers(appointment_date=SOON), "blood")
    response = post_page(client, "blood", {})
    assert response.status_code == 400
    page = qd.PAGE_BY_ID["blood"]
    messages = [error_beside(response.text, qid) for qid in page.question_ids]
    assert len(set(messages)) == len(messages) == 5
    for qid, message in zip(page.question_ids, messages):
        assert message == f"Select yes if {qd.BY_ID[qid].subject}"


def test_a_new_question_gets_messages_from_its_subject(app):
    from screening.questionnaire.forms import _missing_message, subject_first

    q = qd.Question("new_date", qd.DATE, "When was the tattoo done?", subject="the date of the tattoo",
                    unknown_allowed=True, month_allowed=True)
    with app.test_request_context():
        assert _missing_message(q) == "Enter the date of the tattoo, or tick ‘I don't know’"
        assert subject_first(q) == "The date of the tattoo"
        assert subject_first(qd.BY_ID["dob"]) == "Date of birth"


# -- issue 12, items 2, 3 and 5: the signature, Back after sending, under 18 ------------------------------


def _sign_as(app, typed: str):
    """Answer everything as Siobhán O'Neill, then sign the declaration typing ``typed``."""
    from tests.web import csrf_token

    client = app.test_client()
    start(client)
    answer_until(client, clear_answers(full_name="Siobhán O'Neill", appointment_date=SOON), "no-such-page")
    client.get("/check")
    page = client.get("/declaration")
    return client.post("/declaration", data={"csrf_token": csrf_token(page.text), "confirm": "y", "signature": typed})


@pytest.mark.parametrize("typed", ["Siobhan O'Neill", "Siobhán O’Neill", "SIOBHAN ONEILL", "siobhán  o‘neill",
                                   "Siobhán O’Neill."])
def test_the_signature_matches_the_name_as_people_read_it(app, typed):
    response = _sign_as(app, typed)
    assert response.status_code == 302 and response.location.endswith("/done")


@pytest.mark.parametrize("typed", ["Siobhan O'Neil", "S O'Neill", "Siobhán"])
def test_a_different_signature_is_refused_saying_which_name_is_expected(app, typed):
    response = _sign_as(app, typed)
    assert response.status_code == 400
    assert error_beside(response.text, "signature") == \
        "Type your full name as you gave it on the first page: Siobhán O'Neill"
    assert f'value="{html.escape(typed, quote=True)}"' in response.text or typed in html.unescape(response.text)


def test_back_after_sending_says_the_answers_were_sent_with_the_reference(app):
    client = app.test_client()
    reference = complete(client, clear_answers(appointment_date=SOON))
    assert "You have already sent your answers" in client.get("/q/allergies", follow_redirects=True).text
    for path in ("/q/allergies", "/declaration", "/check", "/expired"):
        response = client.get(path, follow_redirects=True)
        assert response.status_code == 200
        assert re.search(r"You have already sent your answers|Your answers have been sent", response.text), path
        assert reference in response.text and "There is no questionnaire in progress" not in response.text
    # Starting again for someone else forgets the last confirmation.
    from tests.web import csrf_token

    done = client.get("/expired")
    client.post("/start", data={"csrf_token": csrf_token(done.text), "action": "restart"})
    client.get("/")  # the new draft exists; drop it to see what an expired one says now
    with client.session_transaction() as cookie:
        cookie.pop("draft", None)
    assert "There is no questionnaire in progress" in client.get("/expired").text


def _to_appointment(client, dob: str, appointment: str):
    start(client)
    answers = clear_answers(dob=dob, appointment_date=appointment)
    answer_until(client, answers, "appointment")
    return post_page(client, "appointment", page_data(qd.PAGE_BY_ID["appointment"], answers))


def test_a_client_under_18_on_the_appointment_day_is_told_right_after_the_appointment_page(app):
    appointment = TODAY + dt.timedelta(days=20)
    dob = (appointment.replace(year=appointment.year - 18) + dt.timedelta(days=1)).isoformat()
    client = app.test_client()
    response = _to_appointment(client, dob, appointment.isoformat())
    assert response.status_code == 302 and "/q/under-18" in response.location
    page = client.get(response.location)
    assert "Treatment is for adults" in page.text and "18th birthday" in page.text
    # Carry on: the next page of the questionnaire.
    assert 'href="/q/pregnancy"' in page.text
    # Or stop: the draft is deleted.
    from tests.web import csrf_token

    stopped = client.post("/q/under-18", data={"csrf_token": csrf_token(page.text)})
    assert "Your answers have been deleted" in stopped.text
    assert client.get("/q/pregnancy").location.endswith("/expired")


@pytest.mark.parametrize("days_after_18th", [0, 30])
def test_an_adult_on_the_appointment_day_goes_straight_on(app, days_after_18th):
    appointment = TODAY + dt.timedelta(days=20)
    dob = (appointment.replace(year=appointment.year - 18) - dt.timedelta(days=days_after_18th)).isoformat()
    response = _to_appointment(app.test_client(), dob, appointment.isoformat())
    assert response.location.endswith("/q/pregnancy")


def test_born_on_29_february_turns_18_on_1_march():
    from screening import services

    assert services.eighteenth_birthday_after({"dob": "2008-02-29", "appointment_date": "2026-02-28"}) \
        == dt.date(2026, 3, 1)
    assert services.eighteenth_birthday_after({"dob": "2008-02-29", "appointment_date": "2026-03-01"}) is None


@pytest.mark.parametrize("typed, given", [("Mary Jane Smith", "Mary-Jane Smith"), ("Zoë Brontë", "Zoe Bronte"),
                                          ("ANN EXAMPLE", "ann example")])
def test_names_compare_as_people_read_them(typed, given):
    from screening.questionnaire.forms import same_name

    assert same_name(typed, given)
    assert not same_name("Ann Exampel", "Ann Example") and not same_name("", "")


# -- issue 12, items 6 and 7: the clinic's contact details; the accessibility statement -------------------

CONTACT = {"CLINIC_PHONE": "020 7946 0000", "CLINIC_EMAIL": "desk@clinic.example",
           "CLINIC_ADDRESS": "1 High Street, Leeds LS1 1AA"}


@pytest.fixture
def contact_app(database_url):
    """An app with the clinic's contact details set; its engine closed after the test (no pooled connection
    left for the garbage collector, which would fail a later test with a ResourceWarning)."""
    from screening.extensions import db as database
    from tests.conftest import make_app

    app = make_app(database_url, **CONTACT)
    yield app
    with app.app_context():
        database.session.remove()
        database.drop_all()
        database.engine.dispose()


def test_the_start_and_confirmation_pages_give_the_clinics_contact_details(contact_app):
    app = contact_app
    client = app.test_client()
    start_page = client.get("/").text
    assert 'href="tel:02079460000">020 7946 0000</a>' in start_page
    assert 'href="mailto:desk@clinic.example"' in start_page and "1 High Street, Leeds LS1 1AA" in start_page
    complete(client, clear_answers(appointment_date=SOON))
    done = client.get("/done").text
    assert "020 7946 0000" in done and "desk@clinic.example" in done and "tell Test Clinic" in done


def test_without_contact_details_no_empty_contact_list_is_shown(app):
    assert 'class="list contact"' not in app.test_client().get("/").text


def test_the_accessibility_statement_follows_the_uk_model(contact_app):
    page = html.unescape(contact_app.test_client().get("/accessibility").text)
    for heading in ("How accessible this questionnaire is", "Feedback and contact information",
                    "Enforcement procedure", "Technical information about this questionnaire’s accessibility",
                    "Compliance status", "Non-accessible content", "What we’re doing to improve accessibility",
                    "Preparation of this accessibility statement"):
        assert f">{heading}</h" in page, heading
    assert "partially compliant with the Web Content Accessibility Guidelines version 2.2 AA" in page
    assert "Equality and Human Rights Commission" in page and "Equality Advisory and Support Service" in page
    assert "prepared on 24 November 2026" in page and "last reviewed on 29 November 2026" in page
    assert "020 7946 0000" in page and "desk@clinic.example" in page and "Test Clinic" in page


def test_a_clinic_email_that_is_not_an_address_is_refused(tmp_path):
    from screening.config import ConfigError, finish, from_environ

    settings = from_environ({"SCREENING_CLINIC_EMAIL": "call us"})
    with pytest.raises(ConfigError, match="SCREENING_CLINIC_EMAIL"):
        finish(settings, str(tmp_path))


def test_a_question_page_keeps_what_is_typed_across_a_reload_except_on_a_kiosk(app):
    # The browser keeps the unsent page (static/js/app.js; tests/browser/test_reload.py drives it).
    client = app.test_client()
    start(client)
    page = client.get("/q/about-you").text
    assert 'data-keep="about-you"' in page and "before it was reloaded is back" in page
    from tests.test_kiosk import start_kiosk

    kiosk = app.test_client()
    start_kiosk(app, kiosk)
    start(kiosk)
    assert "data-keep" not in kiosk.get("/q/about-you").text
