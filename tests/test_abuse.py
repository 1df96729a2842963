"""Abuse of the public side: oversized posts, rate limits on starting and sending, the honeypot, and guessing
references (a wrong one must answer exactly like a missing one, and no public URL carries an id)."""

from __future__ import annotations

import datetime as dt
import logging
import re

import pytest
from sqlalchemy import func, select

from screening import config, questions as qd, services
from screening.config import ROOT, ConfigError
from screening.extensions import db, limiter
from screening.models import Arrival, AuditEvent, Draft, Submission
from screening.security import HONEYPOT, client_key
from tests.answers import clear_answers
from tests.conftest import make_app
from tests.staff import add_user, sign_in
from tests.web import answer_all, complete, csrf_token, page_data, post_page, sign_and_send, start

TODAY = dt.date.today()
FIRST_PAGE = qd.PAGES[0]
ANSWERS = clear_answers(appointment_date=(TODAY + dt.timedelta(days=7)).isoformat())
NAME = ANSWERS["full_name"]
BIG = "x" * (256 * 1024)


def count(app, model, **where) -> int:
    with app.app_context():
        query = select(func.count()).select_from(model)
        for key, value in where.items():
            query = query.where(getattr(model, key) == value)
        return db.session.scalar(query)


def drafts(app) -> list[Draft]:
    with app.app_context():
        return list(db.session.scalars(select(Draft)))


def post_start(client, action="start", **extra):
    token = csrf_token(client.get("/").text)
    return client.post("/start", data={"csrf_token": token, "action": action, **extra})


def kiosk_client(app, email="desk@clinic.test"):
    """A test client turned into a kiosk tablet by a desk user."""
    client = app.test_client()
    add_user(app, email, ["desk"])
    sign_in(client, email)
    token = csrf_token(client.get("/staff/desk").text)
    assert client.post("/staff/kiosk/start", data={"csrf_token": token}).status_code == 302
    return client


def main_text(html: str) -> str:
    """Return the words of the page's <main>, tags removed."""
    main = re.search(r"<main\b.*?</main>", html, re.DOTALL).group(0)
    return " ".join(re.sub(r"<[^>]+>", " ", main).split())


def assert_page_in_style(response, status: int, title: str) -> None:
    """Fail unless the error is a page of the app: its layout, a title, one h1, a link onwards."""
    assert response.status_code == status
    html = response.text
    assert re.search(rf"<title>{re.escape(title)} – Test Clinic</title>", html), html[:400]
    assert html.count("<h1>") == 1 and f"<h1>{title}</h1>" in html
    assert '<html lang="en">' in html and 'class="site-header"' in html and 'href="#main"' in html
    assert re.search(r'<a class="button" href="/[^"]*">[^<]+</a>', html)


# -- oversized posts -------------------------------------------------------------------------


def test_an_oversized_answer_gets_a_clear_413_page_and_nothing_saved_is_lost(app, client):
    start(client)
    assert post_page(client, FIRST_PAGE.id, page_data(FIRST_PAGE, ANSWERS)).status_code == 302
    second = qd.PAGES[1]
    response = post_page(client, second.id, {**page_data(second, ANSWERS), "extra": BIG})
    assert_page_in_style(response, 413, "What you sent is too large")
    text = main_text(response.text)
    assert "at most 256 KB" in text and "Nothing from it was saved" in text
    assert f'href="/q/{second.id}">Go back to the page</a>' in response.text
    assert BIG[:100] not in response.text
    (draft,) = drafts(app)
    assert draft.answers.get("full_name") == NAME, "the pages saved before are still there"
    assert client.get(f"/q/{second.id}").status_code == 200


@pytest.mark.parametrize("url", ["/start", "/declaration", "/q/about-you", "/staff/login", "/kiosk/reset",
                                 "/staff/submissions"])
def test_every_oversized_post_is_a_413_page(client, url):
    response = client.post(url, data={"csrf_token": "x", "text": BIG})
    assert_page_in_style(response, 413, "What you sent is too large")


def test_a_post_just_under_the_cap_is_read(client):
    token = csrf_token(client.get("/").text)
    response = client.post("/start", data={"csrf_token": token, "action": "start", "padding": "x" * (250 * 1024)})
    assert response.status_code == 302


# -- rate limits -------------------------------------------------------------------------------


def test_limits_come_from_the_environment_and_bad_ones_stop_start_up(tmp_path):
    settings = config.from_environ({})
    assert settings["START_LIMIT"] == "30 per hour" and settings["SUBMIT_LIMIT"] == "20 per hour"
    settings = config.from_environ({"SCREENING_START_LIMIT": "5 per minute", "SCREENING_SUBMIT_LIMIT": "2/hour"})
    assert settings["START_LIMIT"] == "5 per minute" and settings["SUBMIT_LIMIT"] == "2/hour"
    with pytest.raises(ConfigError, match="SUBMIT_LIMIT"):
        make_app(f"sqlite:///{tmp_path / 'x.db'}", SUBMIT_LIMIT="lots")


def test_starting_is_limited_per_address_and_the_draft_in_progress_stays(app, client):
    app.config["START_LIMIT"] = "2 per hour"
    assert post_start(client).status_code == 302
    assert post_page(client, FIRST_PAGE.id, page_data(FIRST_PAGE, ANSWERS)).status_code == 302
    assert post_start(client, "restart").status_code == 302
    assert post_page(client, FIRST_PAGE.id, page_data(FIRST_PAGE, ANSWERS)).status_code == 302
    limited = post_start(client, "restart")
    assert_page_in_style(limited, 429, "Too many questionnaires from this connection")
    text = main_text(limited.text)
    assert "nothing has been lost" in text and "contact the clinic" in text
    assert re.search(r"Wait (59|60) minutes, then try again", text)
    assert 0 < int(limited.headers["Retry-After"]) <= 3601
    (draft,) = drafts(app)
    assert draft.answers.get("full_name") == NAME, "the limit deleted nothing"
    # Continuing the questionnaire in progress starts nothing, so the limit does not apply to it.
    response = post_start(client, "continue")
    assert response.status_code == 302 and response.location.startswith("/q/")
    assert client.get(response.location).status_code == 200
    # Another address is counted on its own.
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    assert post_start(other).status_code == 302
    assert len(drafts(app)) == 2


def test_sending_is_limited_per_address_and_the_answers_wait(app):
    app.config["SUBMIT_LIMIT"] = "1 per hour"
    first = app.test_client()
    start(first)
    answer_all(first, ANSWERS)
    # A mistyped signature is not a submission: it does not count.
    page = first.get("/declaration")
    wrong = first.post("/declaration", data={"csrf_token": csrf_token(page.text), "confirm": "y",
                                             "signature": "Someone Else"})
    assert wrong.status_code == 400
    assert sign_and_send(first, NAME).status_code == 302
    second = app.test_client()
    start(second)
    answer_all(second, ANSWERS)
    limited = sign_and_send(second, NAME)
    assert_page_in_style(limited, 429, "Too many questionnaires from this connection")
    assert 'href="/declaration">Go back to the declaration</a>' in limited.text
    assert count(app, Submission) == 1
    (draft,) = drafts(app)
    assert draft.answers == {**draft.answers, "full_name": NAME} and draft.signature_name is None
    # When the hour is over, the same answers are sent.
    with app.app_context():
        limiter.reset()
    response = sign_and_send(second, NAME)
    assert response.status_code == 302 and response.location.endswith("/done")
    assert count(app, Submission) == 2 and drafts(app) == []


def test_a_kiosk_tablet_is_never_limited(app):
    app.config["START_LIMIT"] = "1 per hour"
    app.config["SUBMIT_LIMIT"] = "1 per hour"
    tablet = kiosk_client(app)
    for n in range(3):
        response = post_start(tablet, "restart")
        assert response.status_code == 302, n
        answer_all(tablet, ANSWERS)
        done = sign_and_send(tablet, NAME)
        assert done.status_code == 200 and 'class="reference"' in done.text, n
    assert count(app, Submission, is_kiosk=True) == 3
    # The same address without the kiosk session is limited as usual.
    phone = app.test_client()
    assert post_start(phone).status_code == 302
    assert post_start(phone, "restart").status_code == 429
    # A phone with no questionnaire in progress is not told that its answers are kept.
    fresh = post_start(app.test_client())
    assert fresh.status_code == 429 and "nothing has been lost" not in fresh.text


def test_an_ipv6_client_is_counted_by_its_64_block(app):
    with app.test_request_context(environ_base={"REMOTE_ADDR": "2001:db8:1:2:aaaa::1"}):
        first = client_key()
    with app.test_request_context(environ_base={"REMOTE_ADDR": "2001:db8:1:2:bbbb::9"}):
        assert client_key() == first == "2001:db8:1:2::/64"
    with app.test_request_context(environ_base={"REMOTE_ADDR": "2001:db8:1:3::1"}):
        assert client_key() != first
    with app.test_request_context(environ_base={"REMOTE_ADDR": "::ffff:192.0.2.1"}):
        assert client_key() == "192.0.2.1"


def test_staff_sign_in_limits_get_a_page_too(app, client):
    add_user(app, "prac@clinic.test", ["practitioner"])
    for _ in range(5):
        page = client.get("/staff/login")
        client.post("/staff/login", data={"csrf_token": csrf_token(page.text), "email": "prac@clinic.test",
                                          "password": "wrong password!!"})
    page = client.get("/staff/login")
    response = client.post("/staff/login", data={"csrf_token": csrf_token(page.text), "email": "prac@clinic.test",
                                                 "password": "wrong password!!"})
    assert_page_in_style(response, 429, "Too many attempts")
    assert "signing in is paused" in main_text(response.text)


# -- the honeypot --------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["start", "declaration"])
def test_the_honeypot_is_out_of_sight_and_out_of_reach(client, page):
    if page == "declaration":
        start(client)
        answer_all(client, ANSWERS)
    html = client.get("/" if page == "start" else "/declaration").text
    box = re.search(r'<div class="visually-hidden hp-field" aria-hidden="true">(.*?)</div>', html, re.DOTALL)
    assert box, "the honeypot's wrapper is hidden from screen readers"
    assert re.search(r'<label for="hp-website">Leave this field empty</label>', box.group(1))
    field = re.search(r"<input [^>]*>", box.group(1)).group(0)
    for attribute in ('id="hp-website"', f'name="{HONEYPOT}"', 'type="text"', 'value=""', 'tabindex="-1"',
                      'autocomplete="off"'):
        assert attribute in field, attribute
    css = (ROOT / "screening" / "static" / "css" / "app.css").read_text()
    rule = re.search(r"\.hp-field \{([^}]*)\}", css).group(1)
    assert "position: absolute" in rule and "left: -10000px" in rule and "display" not in rule


def test_a_filled_honeypot_on_start_stores_nothing_and_logs_no_content(app, client, caplog):
    with caplog.at_level(logging.WARNING):
        response = post_start(client, **{HONEYPOT: "http://cheap-pills.example"})
    assert_page_in_style(response, 400, "Sorry, that did not work")
    assert "Nothing was sent" in main_text(response.text)
    assert "honeypot" not in response.text.lower() and "cheap-pills" not in response.text
    assert drafts(app) == []
    with client.session_transaction() as session:
        assert "draft" not in session
    assert "honeypot: refused a POST to questionnaire.begin" in caplog.text
    assert "cheap-pills" not in caplog.text


def test_a_filled_honeypot_on_the_declaration_sends_nothing_and_keeps_the_draft(app, client, caplog):
    start(client)
    answer_all(client, ANSWERS)
    page = client.get("/declaration")
    with caplog.at_level(logging.WARNING):
        response = client.post("/declaration", data={"csrf_token": csrf_token(page.text), "confirm": "y",
                                                      "signature": NAME, HONEYPOT: "Buy now"})
    assert_page_in_style(response, 400, "Sorry, that did not work")
    assert count(app, Submission) == 0
    (draft,) = drafts(app)
    assert draft.signature_name is None and draft.answers.get("full_name") == NAME
    assert "questionnaire.declaration" in caplog.text
    assert "Buy now" not in caplog.text and NAME not in caplog.text


def test_an_empty_honeypot_as_a_browser_sends_it_changes_nothing(app, client):
    assert post_start(client, **{HONEYPOT: ""}).status_code == 302
    answer_all(client, ANSWERS)
    page = client.get("/declaration")
    response = client.post("/declaration", data={"csrf_token": csrf_token(page.text), "confirm": "y",
                                                  "signature": NAME, HONEYPOT: ""})
    assert response.status_code == 302 and response.location.endswith("/done")


def test_a_filled_honeypot_on_a_kiosk_is_refused_too(app):
    tablet = kiosk_client(app)
    assert post_start(tablet, **{HONEYPOT: "x"}).status_code == 400
    assert drafts(app) == []


# -- guessing references --------------------------------------------------------------------------


def submit_on(app, day: dt.date, name="Rhea Record") -> str:
    """Store a submission with an appointment on ``day``; return its reference."""
    with app.app_context():
        draft, _ = services.start_draft(db.session, dt.timedelta(hours=1))
        draft.answers = clear_answers(full_name=name, appointment_date=day.isoformat())
        services.sign(db.session, draft, name)
        return services.submit(db.session, draft, app.extensions["screening_rules"]).reference


def near_miss(reference: str) -> str:
    """Return a well-formed reference one character away from ``reference``."""
    last = "A" if reference[-1] != "A" else "C"
    return reference[:-1] + last


def comparable(response, *typed: str) -> tuple[int, str | None, bytes]:
    """Return a response as it may be compared: status, location and body without CSRF token or what was typed."""
    body = re.sub(rb'name="csrf_token"([^>]*)value="[^"]*"', rb'name="csrf_token"\1value=""', response.data)
    location = response.headers.get("Location")
    for text in typed:
        body = body.replace(text.encode(), b"TYPED")
        location = location.replace(text, "TYPED") if location else location
    return response.status_code, location, body


@pytest.fixture
def world(app):
    """Staff of each role, a submission for today, one for tomorrow (not the desk's), and references to guess."""
    today = submit_on(app, TODAY)
    tomorrow = submit_on(app, TODAY + dt.timedelta(days=1), name="Tom Tomorrow")
    add_user(app, "prac@clinic.test", ["practitioner"])
    add_user(app, "desk@clinic.test", ["desk"])
    add_user(app, "admin@clinic.test", ["admin"])
    return {"today": today, "tomorrow": tomorrow, "missing": "XXXX-XXXX",
            "wrong": [near_miss(today), near_miss(today).lower(), today.replace("-", "")[:7], today + "A",
                      "not-a-reference"]}


GETS = ["/staff/submissions/{ref}", "/staff/submissions/{ref}/pdf", "/staff/submissions/{ref}/pdf?download=1",
        "/staff/submissions/{ref}/pdf?version=signed", "/staff/desk/{ref}/pdf", "/staff/desk/{ref}/sheet"]
POSTS = ["/staff/submissions/{ref}/sign-off", "/staff/submissions/{ref}/addenda", "/staff/desk/{ref}/arrived"]


@pytest.mark.parametrize("who", ["practitioner", "desk", "admin", "anonymous", "kiosk"])
def test_a_wrong_reference_answers_exactly_like_a_missing_one_everywhere(app, world, who):
    if who == "kiosk":
        client = kiosk_client(app, "tablet-desk@clinic.test")
    else:
        client = app.test_client()
        if who != "anonymous":
            sign_in(client, {"practitioner": "prac", "desk": "desk", "admin": "admin"}[who] + "@clinic.test")
    token = csrf_token(client.get("/").text)
    wrong = world["wrong"] + ([world["tomorrow"]] if who == "desk" else [])
    for template in GETS + POSTS:
        method = "POST" if template in POSTS else "GET"
        data = {"csrf_token": token, "decision": "proceed", "text": "note"} if method == "POST" else None
        missing_url = template.format(ref=world["missing"])
        missing = client.open(missing_url, method=method, data=data)
        for reference in wrong:
            url = template.format(ref=reference)
            response = client.open(url, method=method, data=data)
            assert comparable(response, reference) == comparable(missing, world["missing"]), (who, url)
    # Nothing was recorded about a guess: no view, no arrival.
    assert count(app, Arrival) == 0
    for action in ("view_submission", "view_pdf", "download_pdf", "print_pdf", "sign_off", "addendum"):
        assert count(app, AuditEvent, action=action) == 0, action


def test_a_wrong_reference_searches_exactly_like_a_missing_one(app, world):
    client = app.test_client()
    sign_in(client, "prac@clinic.test")
    token = csrf_token(client.get("/staff/submissions").text)

    def search(reference):
        return client.post("/staff/submissions", data={"csrf_token": token, "reference": reference})

    found = search(world["today"].lower())
    assert found.status_code == 200 and world["today"] in found.text
    missing = search(world["missing"])
    assert missing.status_code == 200 and world["today"] not in missing.text
    for reference in world["wrong"][:4]:
        response = search(reference)
        assert comparable(response, reference) == comparable(missing, world["missing"]), reference


def test_no_public_url_carries_an_id(app, client):
    # The only argument of a public route is a page of the questionnaire (a fixed, public list), with two
    # exceptions that are secrets or need one: an invitation link's random 256-bit token (swapped at once for
    # the session, tests/test_appointments.py), and the booking system's own id in the API (behind a bearer token).
    exceptions = {"static": {"filename"}, "invitation.follow": {"token"}, "api.read": {"external_id"},
                  "api.update": {"external_id"}, "api.cancel": {"external_id"}}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/staff/"):
            continue
        allowed = exceptions.get(rule.endpoint, {"page_id"})
        assert set(rule.arguments) <= allowed, f"{rule.rule} takes {rule.arguments}: no public URL may carry an id"
    assert client.get("/q/1").status_code == 404 and client.get("/q/about-you-2").status_code == 404
    # A whole questionnaire: no URL it visits, and no redirect, carries the reference, a name or a number.
    seen: list[str] = []
    original_open = client.open

    def recording_open(*args, **kwargs):
        response = original_open(*args, **kwargs)
        seen.append(response.request.url)
        if response.location:
            seen.append(response.location)
        return response

    client.open = recording_open
    reference = complete(client, ANSWERS)
    assert seen and all(reference not in url and NAME.split()[0] not in url for url in seen), seen
    assert all(not re.search(r"\d", url.split("?")[0].replace("127.0.0.1", "")) for url in seen), seen
    assert reference in client.get("/done").text, "the reference comes from the session, not the URL"
    # The reference is random: 8 characters of 22, none of them easy to confuse.
    references = {services.new_reference() for _ in range(200)}
    assert len(references) == 200
    assert all(re.fullmatch(r"[ACDEFHJKMNPRTUVWXY3479]{4}-[ACDEFHJKMNPRTUVWXY3479]{4}", r) for r in references)
