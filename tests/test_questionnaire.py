"""The client's questionnaire through the Flask test client (CSRF on throughout)."""

import base64
import datetime as dt
import json
import re
import zlib
from html import unescape

import pytest
from sqlalchemy import select

from screening import questions as qd
from screening.extensions import db
from screening.models import Draft, Submission
from tests.answers import clear_answers
from tests.web import answer_all, complete, csrf_token, page_data, post_page, sign_and_send, start

FUTURE = (dt.date.today() + dt.timedelta(days=30)).isoformat()


def answers(**changes):
    return clear_answers(appointment_date=FUTURE, **changes)


def summary_links(html):
    return [(h, unescape(t)) for h, t in re.findall(r'<li><a href="#([^"]+)">([^<]+)</a></li>', html)]


def stored(app, reference):
    with app.app_context():
        return db.session.scalar(select(Submission).where(Submission.reference == reference))


# -- whole journeys -----------------------------------------------------------------

JOURNEYS = {
    "clear": (answers(), "CLEAR", []),
    "defer": (
        answers(isotretinoin_last_12m="yes", isotretinoin_current="no",
                isotretinoin_last_dose_date=(dt.date.today() - dt.timedelta(days=10)).isoformat()),
        "DEFER", ["isotretinoin"],
    ),
    "do_not_treat": (
        answers(treatment_variant="rf", implanted_device="yes", implanted_device_details="Pacemaker",
                cold_sore_history="yes"),
        "DO_NOT_TREAT", ["implanted_electronic_device", "herpes_simplex_history"],
    ),
}


@pytest.mark.parametrize("name", JOURNEYS)
def test_whole_journey_stores_the_result(app, client, name):
    given, outcome, flag_ids = JOURNEYS[name]
    reference = complete(client, given)
    assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", reference)
    row = stored(app, reference)
    assert row.outcome == outcome
    assert sorted(f["id"] for f in row.result["flags"]) == sorted(flag_ids)
    assert row.dictionary_version == qd.VERSION
    assert row.rules_digest == app.extensions["screening_rules"].digest
    assert row.signature_name == given["full_name"] and row.signed_at is not None
    assert row.answers["full_name"] == given["full_name"]
    assert row.appointment_date.isoformat() == FUTURE
    with app.app_context():
        assert db.session.scalar(select(Draft)) is None, "the draft is deleted once submitted"


def test_confirmation_page_shows_reference_and_no_health_data(client):
    given = answers(isotretinoin_last_12m="yes", isotretinoin_current="yes",
                    isotretinoin_planned_end_date="unknown")
    reference = complete(client, given)
    page = client.get("/done").text
    assert reference in page
    assert "What happens next" in page
    for secret in ("isotretinoin", "Isotretinoin", given["full_name"], given["email"], "1990", "DEFER"):
        assert secret not in page


def test_variant_unknown_covers_every_variant(app, client):
    given = answers(treatment_variant="unknown", permanent_filler="yes", permanent_filler_location=["cheeks"])
    row = stored(app, complete(client, given))
    assert row.outcome == "DO_NOT_TREAT"
    assert row.result["variant"] == "unknown"
    by_variant = {tuple(f["variants"]): f["severity"] for f in row.result["flags"]}
    assert by_variant == {("rf",): "do_not_treat", ("standard", "prp"): "review"}


# -- drafts -----------------------------------------------------------------------------


def test_answers_survive_reload_and_the_cookie_holds_only_a_token(app, client):
    start(client)
    post_page(client, "about-you", page_data(qd.PAGE_BY_ID["about-you"], answers(full_name="Zed Quux")))
    page = client.get("/q/about-you").text
    assert 'value="Zed Quux"' in page and 'value="27"' in page
    cookie = client.get_cookie("session").value
    compressed = cookie.startswith(".")  # itsdangerous compresses a payload when that makes it shorter
    payload = cookie.lstrip(".").split(".")[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    if compressed:
        decoded = zlib.decompress(decoded)
    assert set(json.loads(decoded)) <= {"draft", "csrf_token", "_permanent"}
    assert b"Zed" not in decoded
    with app.app_context():
        draft = db.session.scalar(select(Draft))
        assert draft.answers["full_name"] == "Zed Quux"
        assert len(draft.token_hash) == 64 and json.loads(decoded)["draft"] not in draft.token_hash


def test_another_device_cannot_reach_the_draft(app, client):
    start(client)
    post_page(client, "about-you", page_data(qd.PAGE_BY_ID["about-you"], answers()))
    other = app.test_client()
    response = other.get("/q/about-you")
    assert response.status_code == 302 and response.location.endswith("/expired")


def test_expired_draft_is_deleted_and_not_shown(app, client):
    start(client)
    post_page(client, "about-you", page_data(qd.PAGE_BY_ID["about-you"], answers()))
    with app.app_context():
        draft = db.session.scalar(select(Draft))
        draft.expires_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
        db.session.commit()
    response = client.get("/q/about-you")
    assert response.location.endswith("/expired")
    with app.app_context():
        assert db.session.scalar(select(Draft)) is None


def test_draft_lifetime_is_configurable(database_url):
    from tests.conftest import make_app

    app = make_app(database_url, DRAFT_LIFETIME_HOURS=2)
    client = app.test_client()
    start(client)
    with app.app_context():
        draft = db.session.scalar(select(Draft))
        created = draft.created_at.replace(tzinfo=dt.timezone.utc) if draft.created_at.tzinfo is None \
            else draft.created_at
        expires = draft.expires_at.replace(tzinfo=dt.timezone.utc) if draft.expires_at.tzinfo is None \
            else draft.expires_at
        assert dt.timedelta(hours=1, minutes=59) < expires - created <= dt.timedelta(hours=2)
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


def _answered_and_signed(app, client) -> dict:
    """Answer every page and put a signature on the draft, as a signed but unsent declaration."""
    given = answers()
    start(client)
    answer_all(client, given)
    with app.app_context():
        draft = db.session.scalar(select(Draft))
        draft.signature_name = given["full_name"]
        draft.signed_at = dt.datetime.now(dt.timezone.utc)
        db.session.commit()
    return given


def test_a_change_after_signing_clears_the_signature(app, client):
    given = _answered_and_signed(app, client)
    assert f'value="{given["full_name"]}"' in client.get("/declaration").text
    post_page(client, "pregnancy", page_data(qd.PAGE_BY_ID["pregnancy"], {**given, "breastfeeding": "yes"}),
              "?change=1")
    with app.app_context():
        draft = db.session.scalar(select(Draft))
        assert draft.signature_name is None and draft.signed_at is None
    assert f'value="{given["full_name"]}"' not in client.get("/declaration").text


def test_saving_the_same_answers_keeps_the_signature(app, client):
    given = _answered_and_signed(app, client)
    post_page(client, "pregnancy", page_data(qd.PAGE_BY_ID["pregnancy"], given), "?change=1")
    with app.app_context():
        assert db.session.scalar(select(Draft)).signature_name == given["full_name"]


# -- check answers and change links ------------------------------------------------------------


def test_check_answers_lists_every_asked_answer_and_change_returns_there(client):
    given = answers(anticoagulants="yes", anticoagulants_which=["warfarin"])
    start(client)
    answer_all(client, given)
    page = client.get("/check").text
    assert "Warfarin" in page and "Ann Example" in page and "27 March 1990" in page
    assert page.count(">Change<") >= len([q for q in qd.QUESTIONS if q.asked_when is None])
    assert "/q/blood-thinners?change=1" in page
    response = post_page(client, "blood-thinners", page_data(qd.PAGE_BY_ID["blood-thinners"], given), "?change=1")
    assert response.status_code == 302 and "/check" in response.location


def test_skipping_ahead_returns_to_the_first_unanswered_page(client):
    start(client)
    post_page(client, "about-you", page_data(qd.PAGE_BY_ID["about-you"], answers()))
    for path in ("/q/allergies", "/check", "/declaration"):
        response = client.get(path)
        assert response.status_code == 302 and response.location.endswith("/q/appointment"), path


def test_declaration_post_before_the_pages_are_done_is_refused(app, client):
    start(client)
    page = client.get("/q/about-you")
    response = client.post("/declaration", data={"csrf_token": csrf_token(page.text), "confirm": "y",
                                                  "signature": "Ann Example"})
    assert response.status_code == 302 and response.location.endswith("/q/about-you")
    with app.app_context():
        assert db.session.scalar(select(Submission)) is None


# -- validation -------------------------------------------------------------------------------------

PAGE_ERRORS = [
    ("missing-radio", "pregnancy", {"breastfeeding": "no"}, "pregnant-0", "Select yes if you are pregnant or could be"),
    ("impossible-date", "about-you", {"dob-day": "31", "dob-month": "2", "dob-year": "1990"}, "dob-day",
     "Date of birth must be a real date"),
    ("dob-in-future", "about-you", {"dob-day": "1", "dob-month": "1", "dob-year": "2999"}, "dob-day",
     "Date of birth must be today or in the past"),
    ("dob-missing-day", "about-you", {"dob-month": "1", "dob-year": "1990"}, "dob-day", "Date of birth must include a day"),
    ("letters-in-date", "about-you", {"dob-day": "aa", "dob-month": "1", "dob-year": "1990"}, "dob-day",
     "Date of birth must be a real date"),
    ("bad-email", "about-you", {"email": "not-an-email"}, "email", "correct format"),
    ("bad-phone", "about-you", {"phone": "call me"}, "phone", "Enter a phone number"),
    ("appointment-in-past", "appointment", {"appointment_date-day": "1", "appointment_date-month": "1",
                                            "appointment_date-year": "2020"}, "appointment_date-day",
     "The date of your appointment must be today or in the future"),
    ("no-area", "appointment", {"treatment_variant": "standard"}, "treatment_areas-0", "Select the areas that will be treated"),
    ("none-with-others", "isotretinoin", {"isotretinoin_last_12m": "no", "topical_actives": ["none", "retinol"]},
     "topical_actives-0", "None of these"),
    ("follow-up-missing", "isotretinoin", {"isotretinoin_last_12m": "yes", "topical_actives": ["none"]},
     "isotretinoin_current-0", "Select yes if you are taking isotretinoin now"),
    ("nested-follow-up-missing", "isotretinoin",
     {"isotretinoin_last_12m": "yes", "isotretinoin_current": "no", "topical_actives": ["none"]},
     "isotretinoin_last_dose_date-day", "Enter the date of your last isotretinoin tablet, or tick ‘I don't know’"),
    ("date-and-unknown", "isotretinoin",
     {"isotretinoin_last_12m": "yes", "isotretinoin_current": "yes", "topical_actives": ["none"],
      "isotretinoin_planned_end_date-unknown": "y", "isotretinoin_planned_end_date-month": "3",
      "isotretinoin_planned_end_date-year": "2027"},
     "isotretinoin_planned_end_date-day", "not both"),
    ("group-row-incomplete", "injections",
     {"injectables_12m": "yes", "injectables-0-type": "botulinum_toxin"}, "injectables-0-date-day",
     "Enter the date of the injection"),
    ("group-empty", "injections", {"injectables_12m": "yes"}, "injectables-0-type",
     "Give the details of at least one injection treatment"),
    ("last-dose-in-future", "other-medicines",
     {"nsaid_last_7d": "yes", "nsaid_still_taking": "no", "nsaid_last_dose_date-day": "1",
      "nsaid_last_dose_date-month": "1", "nsaid_last_dose_date-year": "2999",
      "systemic_steroid_last_14d": "no", "immunosuppressive_meds": "no"},
     "nsaid_last_dose_date-day", "The date of your last painkiller dose must be today or in the past"),
]


def _reach(client, page_id):
    start(client)
    given = answers()
    for page in qd.PAGES:
        if page.id == page_id:
            return
        post_page(client, page.id, page_data(page, given))


@pytest.mark.parametrize("name, page_id, data, target, message", PAGE_ERRORS, ids=[e[0] for e in PAGE_ERRORS])
def test_each_validation_error(client, name, page_id, data, target, message):
    _reach(client, page_id)
    response = post_page(client, page_id, data)
    assert response.status_code == 400
    html = response.text
    assert re.search(r"<title>\s*Error: ", html), "title must start with Error:"
    assert "There is a problem" in html
    links = summary_links(html)
    assert any(href == target and message in text for href, text in links), links
    assert f'id="{target}"' in html, "the summary links to an element on the page"
    assert unescape(html).count(message) >= 2, "the message also stands beside the field"
    assert 'aria-describedby="' in html and "-error" in html
    for key, value in data.items():  # nothing typed is lost
        if isinstance(value, str) and len(value) > 1 and key != "action":
            assert f'value="{value}"' in html, key


def test_follow_up_is_not_required_when_its_parent_says_no(client):
    _reach(client, "isotretinoin")
    response = post_page(client, "isotretinoin", {
        "isotretinoin_last_12m": "no", "topical_actives": ["none"],
        # Stale follow-up boxes a browser without JavaScript still sends: ignored, not errors.
        "isotretinoin_last_dose_date-day": "99",
    })
    assert response.status_code == 302


def test_add_another_row_keeps_what_was_typed(client):
    _reach(client, "injections")
    response = post_page(client, "injections", {"injectables_12m": "yes", "injectables-0-type": "ha_filler",
                                                "action": "add-injectables"})
    assert response.status_code == 200
    assert 'id="injectables-1-type"' in response.text
    assert re.search(r'<option selected value="ha_filler">|<option value="ha_filler" selected>', response.text)


# -- tampering -------------------------------------------------------------------------------------


def test_an_answer_outside_the_choices_is_rejected(app, client):
    _reach(client, "pregnancy")
    response = post_page(client, "pregnancy", {"pregnant": "maybe-later", "breastfeeding": "no"})
    assert response.status_code == 400
    assert ("pregnant-0", "Select one of the options shown") in summary_links(response.text)
    with app.app_context():
        assert "pregnant" not in db.session.scalar(select(Draft)).answers


def test_a_field_from_another_page_is_rejected(app, client):
    _reach(client, "pregnancy")
    response = post_page(client, "pregnancy", {"pregnant": "no", "breastfeeding": "no", "keloid_history": "no"})
    assert response.status_code == 400
    assert "does not ask" in response.text
    with app.app_context():
        assert "keloid_history" not in db.session.scalar(select(Draft)).answers


def test_an_unknown_page_is_404(client):
    start(client)
    assert client.get("/q/not-a-page").status_code == 404


# -- declaration ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("data, target, message", [
    ({"signature": "Ann Example"}, "confirm", "Confirm that your answers"),
    ({"confirm": "y", "signature": ""}, "signature", "Type your full name"),
    ({"confirm": "y", "signature": "Someone Else"}, "signature", "as you gave it"),
])
def test_declaration_errors(app, client, data, target, message):
    start(client)
    answer_all(client, answers())
    page = client.get("/declaration")
    response = client.post("/declaration", data={"csrf_token": csrf_token(page.text), **data})
    assert response.status_code == 400
    assert any(h == target and message in t for h, t in summary_links(response.text))
    with app.app_context():
        assert db.session.scalar(select(Submission)) is None


def test_signature_ignores_case_and_spacing(app, client):
    start(client)
    answer_all(client, answers())
    response = sign_and_send(client, "  ann   EXAMPLE ")
    assert response.location.endswith("/done")


# -- CSRF ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/start", "/q/about-you", "/declaration"])
def test_every_post_needs_a_csrf_token(client, path):
    start(client)
    response = client.post(path, data={"action": "start", "full_name": "X", "confirm": "y", "signature": "X"})
    assert response.status_code == 400


def test_responses_are_not_cached(client):
    start(client)
    assert client.get("/q/about-you").headers["Cache-Control"] == "no-store"


def test_every_page_links_to_the_accessibility_statement(client):
    start(client)
    for path in ("/", "/q/about-you", "/expired", "/accessibility"):
        assert 'href="/accessibility"' in client.get(path).text, path
    statement = client.get("/accessibility").text
    assert "WCAG" in statement and "2.2 AA" in statement
    assert "Non-accessible content" in statement and "axe-core" in statement
