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

import datetime as dt
import io
import json
import re
import unicodedata
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from pypdf import PdfReader
from sqlalchemy import delete, func, select, update

from screening import current_rules, services
from screening import questions as qd
from screening.questionnaire.forms import same_name
from screening.extensions import db
from screening.models import (
    Addendum,
    Arrival,
    Draft,
    FlagAcknowledgement,
    KioskSession,
    Review,
    StaffSession,
    StaffUser,
    Submission,
)
from screening.staff import review_services as rs
from screening.staff.accounts import create_user, open_session
from tests.answers import clear_answers
from tests.conftest import make_app
from tests.fuzz_strategies import (
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
          "START_LIMIT": "100000 per hour", "SUBMIT_LIMIT": "100000 per hour"}

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
    "staff.logout": "test_fuzz_staff_session",
    "staff.extend": "test_fuzz_staff_session",
    "staff.submissions": "test_fuzz_staff_list_and_search",
    "staff.sign_off": "test_fuzz_sign_off",
    "staff.addendum": "test_fuzz_addendum",
    "staff.arrived": "test_fuzz_desk",
    "staff.kiosk_start": "test_fuzz_desk",
    "staff.deactivate": "test_fuzz_admin_users",
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
    if decision == "defer":
        day = TODAY + dt.timedelta(days=draw(st.integers(-3, 1200)))
        pairs += [("defer_until-day", str(day.day)), ("defer_until-month", str(day.month)),
                  ("defer_until-year", str(day.year))]
    names = [n for i in range(flags) for n in (f"ack_{i}", f"note_{i}")] + [
        "decision", "note", "defer_until-day", "defer_until-month", "defer_until-year", "ack_9", "note_9"]
    return mutate(draw, pairs, names, ["yes", "no", *rs.DECISIONS], [])


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
    check(client.get(f"/staff/submissions/{reference}"), "record after sign-off")
    with app.app_context():  # undo, for the next example
        db.session.execute(delete(FlagAcknowledgement).where(FlagAcknowledgement.review_id == review.id))
        db.session.execute(delete(Review).where(Review.id == review.id))
        db.session.commit()


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


# -- query strings on every page -----------------------------------------------------------------------

QUERY_NAMES = ["date", "outcome", "status", "page", "action", "actor", "date_from", "date_to", "next", "expired",
               "change", "version", "download", "timeout", "signed_out", "reference", "name"]


def get_urls(app, staff) -> list[str]:
    """One URL for each GET route (staff ones with real references), and some odd paths."""
    args = {"page_id": qd.PAGES[0].id, "reference": staff["today"], "user_id": staff["user_id"]}
    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        if rule.endpoint == "questionnaire.logo":
            continue  # no logo configured: a plain 404
        urls.append(rule.build({a: args[a] for a in rule.arguments})[1])
    return sorted(urls) + ["/q/%ED%A0%80", "/staff/submissions/%3Cscript%3E", "/q/%00", "/staff/desk/%FF/pdf"]


@fuzz(40)
@given(data=st.data())
def test_fuzz_query_strings(app, staff, data):
    if "pdf" not in staff:  # render each PDF once, so that the examples serve stored ones
        for reference in (staff["today"], staff["signed"]):
            assert staff["client"].get(f"/staff/submissions/{reference}/pdf").status_code == 200
        staff["pdf"] = True
        staff["public"] = app.test_client()
        new_draft(app, staff["public"], BASE)
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
        "staff.arrived": (staff, f"/staff/desk/{reference}/arrived"),
        "staff.kiosk_start": (staff, "/staff/kiosk/start"),
        "staff.deactivate": (staff, f"/staff/admin/users/{other}/deactivate"),
    }
    assert set(urls) == set(FUZZED)
    data = {"action": "restart", "confirm": "y", "signature": NAME, "email": "boss@clinic.test",
            "password": PASSWORD, "decision": "decline", "ack_0": "yes", "text": "note", "name": "Ann",
            **page_data(qd.PAGES[0], BASE)}
    with app.app_context():
        tables = [Draft, Submission, Review, Addendum, Arrival, KioskSession]
        before = {m.__name__: db.session.scalar(select(func.count()).select_from(m)) for m in tables}
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
