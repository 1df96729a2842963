"""Kiosk mode: the clinic's tablet shows only the questionnaire, and nothing of the previous client."""

import datetime as dt
import hashlib
import re

import pytest
from sqlalchemy import func, select

from screening import config
from screening import questions as qd
from screening.extensions import db
from screening.kiosk import without_autocomplete
from screening.models import AuditEvent, Draft, KioskSession, StaffSession, Submission
from tests.answers import clear_answers
from tests.staff import PASSWORD, add_user, sign_in
from tests.web import answer_all, csrf_token, page_data, post_page, sign_and_send, start

NAME = "Zelda Quillfeather"
MEDICINE = "Mycophenolixate"
CLIENT = clear_answers(full_name=NAME, email="zelda.q@example.org", phone="07700 900456", dob="1987-11-23",
                       appointment_date=(dt.date.today() + dt.timedelta(days=3)).isoformat(),
                       immunosuppressive_meds="yes", immunosuppressive_meds_details=MEDICINE)
SECRETS = (NAME, "Quillfeather", MEDICINE, "zelda.q@example.org", "900456", "1987", "Mycophenol")


def start_kiosk(app, client, email="desk@clinic.test", roles=("desk",)):
    add_user(app, email, roles)
    sign_in(client, email)
    token = csrf_token(client.get("/staff/desk").text)
    response = client.post("/staff/kiosk/start", data={"csrf_token": token})
    assert response.status_code == 302 and response.location == "/"
    return response


@pytest.fixture
def kiosk(app, client):
    """A test client turned into a kiosk by a desk user."""
    start_kiosk(app, client)
    return client


def reachable_pages(client):
    """Every page a kiosk browser can reach, as a client pressing Back or reload would get them."""
    urls = ["/", "/check", "/declaration", "/done", "/expired", "/kiosk/exit"] + [f"/q/{p.id}" for p in qd.PAGES]
    for url in urls:
        response = client.get(url, follow_redirects=True)
        assert response.status_code == 200, url
        yield url, response.text


def assert_nothing_of(client, *secrets):
    for url, text in reachable_pages(client):
        for secret in secrets:
            assert secret not in text, f"{secret!r} still reachable at {url}"


def rows(app, model):
    with app.app_context():
        return list(db.session.scalars(select(model)))


def age_the_draft(app, seconds):
    with app.app_context():
        draft = db.session.scalar(select(Draft))
        draft.updated_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)
        db.session.commit()


def session_keys(client):
    with client.session_transaction() as sess:
        return {k for k in sess if k not in ("_permanent", "csrf_token")}


# -- starting ------------------------------------------------------------------------


def test_start_ends_the_staff_session_and_keeps_only_the_kiosk_token(app, client):
    add_user(app, "desk@clinic.test", ["desk"])
    sign_in(client, "desk@clinic.test")
    staff_cookie = client.get_cookie("session").value
    token = csrf_token(client.get("/staff/desk").text)
    assert client.post("/staff/kiosk/start", data={"csrf_token": token}).location == "/"
    with client.session_transaction() as sess:
        assert set(sess) <= {"kiosk", "_permanent"} and "kiosk" in sess
        kiosk_token = sess["kiosk"]
    (row,) = rows(app, KioskSession)
    assert row.token_hash == hashlib.sha256(kiosk_token.encode()).hexdigest() and row.ended_at is None
    assert kiosk_token not in row.token_hash
    assert all(s.ended_at is not None for s in rows(app, StaffSession))
    (event,) = [e for e in rows(app, AuditEvent) if e.action == "kiosk_start"]
    assert event.actor_id == row.started_by_id and event.address == "127.0.0.1"
    page = client.get("/")
    assert "This is the clinic’s tablet" in page.text and "Start now" in page.text
    # The old staff cookie, replayed, opens nothing: the staff session ended on the server.
    other = app.test_client()
    other.set_cookie("session", staff_cookie)
    assert "/staff/login" in other.get("/staff/desk").location


def test_a_practitioner_cannot_start_a_kiosk(app, client):
    add_user(app, "prac@clinic.test", ["practitioner"])
    sign_in(client, "prac@clinic.test")
    token = csrf_token(client.get("/staff/desk").text)
    assert client.post("/staff/kiosk/start", data={"csrf_token": token}).status_code == 403
    assert rows(app, KioskSession) == []


def staff_urls(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/staff/"):
            url = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: "1" if "int" in m.group(0) else "ACDE-FHJK", rule.rule)
            yield rule, url


def test_staff_urls_lead_back_to_the_kiosk_start(app, kiosk):
    token = csrf_token(kiosk.get("/").text)
    for rule, url in list(staff_urls(app)) + [(None, "/staff/no-such-page"), (None, "/staff")]:
        responses = [kiosk.get(url)]
        if rule is not None and "POST" in rule.methods:
            responses.append(kiosk.post(url, data={"csrf_token": token, "email": "desk@clinic.test",
                                                    "password": PASSWORD}))
        for response in responses:
            assert response.status_code == 302 and response.location == "/", (url, response.status_code)
    assert session_keys(kiosk) == {"kiosk"}, "signing in is not possible from the kiosk either"
    assert "Staff sign in" not in kiosk.get("/staff/login", follow_redirects=True).text


# -- one client after another -------------------------------------------------------


def test_a_kiosk_submission_is_marked_and_leaves_nothing_behind(app, kiosk):
    start(kiosk)
    answer_all(kiosk, CLIENT)
    assert MEDICINE in kiosk.get("/check").text
    done = sign_and_send(kiosk, NAME)
    assert done.status_code == 200, "the confirmation is the answer to the POST: the reference is never stored"
    reference = re.search(r'class="reference">([A-Z0-9-]+)<', done.text).group(1)
    assert NAME not in done.text and MEDICINE not in done.text
    assert re.search(r'<meta http-equiv="refresh" content="20;url=/">', done.text)
    assert re.search(r'<a class="button" href="/"[^>]*>Finish</a>', done.text)
    (submission,) = rows(app, Submission)
    assert submission.is_kiosk and submission.reference == reference
    assert rows(app, Draft) == []
    assert session_keys(kiosk) == {"kiosk"}
    assert_nothing_of(kiosk, reference, *SECRETS)
    # Reload of the confirmation re-sends the declaration: it finds nothing either.
    again = kiosk.post("/declaration", data={"csrf_token": csrf_token(kiosk.get("/").text), "confirm": "y",
                                             "signature": NAME}, follow_redirects=True)
    assert reference not in again.text and NAME not in again.text
    assert len(rows(app, Submission)) == 1


def test_the_next_client_starts_empty(app, kiosk):
    start(kiosk)
    answer_all(kiosk, CLIENT)
    sign_and_send(kiosk, NAME)
    start(kiosk)
    for page in qd.PAGES[:1]:
        text = kiosk.get(f"/q/{page.id}").text
        assert NAME not in text and "zelda" not in text
    assert len(rows(app, Draft)) == 1 and rows(app, Draft)[0].answers == {}


def test_idle_draft_is_cleared_by_the_server_without_javascript(app, kiosk):
    start(kiosk)
    medicines = qd.page_of("immunosuppressive_meds_details").id
    for page in qd.PAGES:
        assert post_page(kiosk, page.id, page_data(page, CLIENT)).status_code == 302
        if page.id == medicines:
            break
    assert MEDICINE in kiosk.get(f"/q/{medicines}").text
    age_the_draft(app, app.config["KIOSK_IDLE_SECONDS"] + 1)
    response = kiosk.get(f"/q/{qd.PAGES[0].id}")
    assert response.status_code == 302 and response.location == "/?timeout=1"
    assert rows(app, Draft) == [], "the draft is deleted, not only forgotten by the browser"
    assert "answers on this tablet were cleared" in kiosk.get("/?timeout=1").text
    assert session_keys(kiosk) == {"kiosk"}
    assert_nothing_of(kiosk, *SECRETS)


def test_a_late_post_after_the_timeout_saves_nothing(app, kiosk):
    start(kiosk)
    first = qd.PAGES[0]
    page = kiosk.get(f"/q/{first.id}")
    age_the_draft(app, app.config["KIOSK_IDLE_SECONDS"] + 1)
    response = kiosk.post(f"/q/{first.id}", data={"csrf_token": csrf_token(page.text), **page_data(first, CLIENT)})
    assert response.status_code == 302 and response.location == "/?timeout=1"
    assert rows(app, Draft) == []
    assert_nothing_of(kiosk, *SECRETS)


def test_activity_keeps_the_answers(app, kiosk):
    start(kiosk)
    first = qd.PAGES[0]
    post_page(kiosk, first.id, page_data(first, CLIENT))
    age_the_draft(app, app.config["KIOSK_IDLE_SECONDS"] - 10)
    assert NAME in kiosk.get(f"/q/{first.id}").text, "any request restarts the idle clock"
    age_the_draft(app, app.config["KIOSK_IDLE_SECONDS"] - 10)
    token = csrf_token(kiosk.get(f"/q/{first.id}").text)
    age_the_draft(app, app.config["KIOSK_IDLE_SECONDS"] - 10)
    assert kiosk.post("/kiosk/alive", data={"csrf_token": token}).status_code == 204
    age_the_draft(app, app.config["KIOSK_IDLE_SECONDS"] - 10)
    assert NAME in kiosk.get(f"/q/{first.id}").text
    assert len(rows(app, Draft)) == 1


def test_the_idle_ping_after_the_timeout_says_gone(app, kiosk):
    start(kiosk)
    token = csrf_token(kiosk.get(f"/q/{qd.PAGES[0].id}").text)
    age_the_draft(app, app.config["KIOSK_IDLE_SECONDS"] + 1)
    assert kiosk.post("/kiosk/alive", data={"csrf_token": token}).status_code == 410
    assert rows(app, Draft) == []


def test_the_countdown_resets_through_the_server(app, kiosk):
    start(kiosk)
    first = qd.PAGES[0]
    post_page(kiosk, first.id, page_data(first, CLIENT))
    page = kiosk.get(f"/q/{first.id}").text
    # Five minutes by default, the last 60 seconds a visible warning (people look up medicine names).
    assert 'id="kiosk-idle"' in page and 'data-idle-seconds="300"' in page and 'data-warning-seconds="60"' in page
    assert re.search(r'<p id="kiosk-idle-status"[^>]*aria-live="polite"', page)
    assert kiosk.post("/kiosk/reset").status_code == 400, "CSRF"
    response = kiosk.post("/kiosk/reset", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 302 and response.location == "/"
    assert rows(app, Draft) == []
    assert_nothing_of(kiosk, *SECRETS)


def test_no_countdown_without_answers_in_progress(kiosk):
    assert 'id="kiosk-idle"' not in kiosk.get("/").text


def test_the_idle_time_comes_from_the_configuration(app, kiosk):
    assert config.from_environ({"SCREENING_KIOSK_IDLE_SECONDS": "90"})["KIOSK_IDLE_SECONDS"] == 90
    assert config.from_environ({})["KIOSK_IDLE_SECONDS"] == app.config["KIOSK_IDLE_SECONDS"] == 300
    app.config["KIOSK_IDLE_SECONDS"] = 45
    start(kiosk)
    first = qd.PAGES[0]
    page = kiosk.get(f"/q/{first.id}").text
    assert 'data-idle-seconds="45"' in page and 'data-warning-seconds="45"' in page  # never longer than the idle time
    assert "left unused for 45 seconds" in kiosk.get("/").text
    age_the_draft(app, 46)
    assert kiosk.get(f"/q/{first.id}").location == "/?timeout=1"


def test_an_abandoned_kiosk_draft_goes_on_any_kiosk_request(app, kiosk):
    """A tablet restarted mid-questionnaire never sends its cookie again: its draft goes all the same."""
    start(kiosk)
    post_page(kiosk, qd.PAGES[0].id, page_data(qd.PAGES[0], CLIENT))
    kiosk.delete_cookie("session")
    start_kiosk(app, kiosk, email="desk2@clinic.test")
    assert len(rows(app, Draft)) == 1
    age_the_draft(app, app.config["KIOSK_IDLE_SECONDS"] + 1)
    kiosk.get("/")
    assert rows(app, Draft) == []


# -- autofill -------------------------------------------------------------------------


def test_every_field_refuses_autofill_on_the_kiosk(app, kiosk):
    start(kiosk)
    answer_all(kiosk, CLIENT)
    pages = [f"/q/{p.id}" for p in qd.PAGES] + ["/", "/declaration", "/kiosk/exit"]
    for url in pages:
        text = kiosk.get(url).text
        tags = re.findall(r"<(?:input|select|textarea|form)\b[^>]*>", text)
        assert tags, url
        for tag in tags:
            assert re.findall(r'autocomplete="([^"]*)"', tag) == ["off"], (url, tag)


def test_the_public_questionnaire_keeps_autofill(client):
    start(client)
    text = client.get(f"/q/{qd.page_of('full_name').id}").text
    assert 'autocomplete="name"' in text


def test_the_autofill_rewrite():
    html = ('<form method="post"><input type="text" autocomplete="name" id="a"><input id=b autocomplete=email />'
            "<select autocomplete='x'></select><textarea></textarea><inputmode>")
    assert without_autocomplete(html) == (
        '<form method="post" autocomplete="off"><input type="text" id="a" autocomplete="off">'
        '<input id=b autocomplete="off" /><select autocomplete="off"></select><textarea autocomplete="off">'
        "</textarea><inputmode>")


# -- leaving kiosk mode ----------------------------------------------------------------


def exit_with(client, email, password):
    page = client.get("/kiosk/exit")
    assert page.status_code == 200
    return client.post("/kiosk/exit", data={"csrf_token": csrf_token(page.text), "email": email,
                                            "password": password})


def events(app, action):
    return [e for e in rows(app, AuditEvent) if e.action == action]


def test_exit_needs_the_credentials_of_desk_or_admin(app, kiosk):
    add_user(app, "prac@clinic.test", ["practitioner"])
    response = exit_with(kiosk, "desk@clinic.test", "wrong password!!")
    assert response.status_code == 401 and "Email or password is incorrect" in response.text
    assert "wrong password" not in response.text
    response = exit_with(kiosk, "prac@clinic.test", PASSWORD)
    assert response.status_code == 403 and "Only desk or admin staff" in response.text
    response = exit_with(kiosk, "", "")
    assert response.status_code == 400 and "Enter your staff email address" in response.text
    assert kiosk.get("/staff/desk").location == "/", "still a kiosk"
    failed = events(app, "sign_in_failed")
    assert len(failed) == 2 and all(e.detail.endswith(";kiosk_exit") and e.address == "127.0.0.1" for e in failed)
    assert rows(app, KioskSession)[0].ended_at is None


def test_exit_ends_the_kiosk_and_clears_the_browser(app, kiosk):
    start(kiosk)
    post_page(kiosk, qd.PAGES[0].id, page_data(qd.PAGES[0], CLIENT))
    add_user(app, "admin@clinic.test", ["admin"])
    response = exit_with(kiosk, "admin@clinic.test", PASSWORD)
    assert response.status_code == 302 and response.location.startswith("/staff/login")
    with kiosk.session_transaction() as sess:
        # Nothing but the sign-in page's word that kiosk mode ended (tests/test_kiosk.py, below).
        assert set(sess) <= {"_flashes"}
    (row,) = rows(app, KioskSession)
    assert row.ended_at is not None and row.ended_by_id is not None and row.ended_by_id != row.started_by_id
    assert rows(app, Draft) == [], "a client's unfinished answers go with the kiosk"
    (stop,) = events(app, "kiosk_stop")
    assert stop.actor_id == row.ended_by_id and stop.address == "127.0.0.1" and stop.detail == f"kiosk={row.id}"
    # A normal browser again: staff pages ask for sign-in, the kiosk's pages are gone.
    assert "/staff/login" in kiosk.get("/staff/desk").location
    assert kiosk.get("/kiosk/exit").status_code == 404
    assert "This is the clinic’s tablet" not in kiosk.get("/").text


def test_after_kiosk_mode_ends_the_sign_in_page_says_so_once(app, kiosk):
    start(kiosk)
    post_page(kiosk, qd.PAGES[0].id, page_data(qd.PAGES[0], CLIENT))
    response = exit_with(kiosk, "desk@clinic.test", PASSWORD)
    assert response.location == "/staff/login", "no query string: nothing to bookmark or share"
    with kiosk.session_transaction() as sess:
        assert [m for _, m in sess["_flashes"]] == [
            "Kiosk mode has ended on this device. Sign in to use the staff pages, or close the browser."]
    page = kiosk.get("/staff/login")
    assert page.status_code == 200
    notice = re.search(r'<p class="notice" role="status">([^<]*)</p>', page.text)
    assert notice and notice.group(1).startswith("Kiosk mode has ended on this device.")
    assert CLIENT["full_name"] not in page.text
    assert "Kiosk mode has ended" not in kiosk.get("/staff/login").text, "said once, not on every visit"


def test_exit_is_rate_limited_like_sign_in(app, kiosk):
    for _ in range(5):
        assert exit_with(kiosk, "desk@clinic.test", "wrong password!!").status_code == 401
    assert exit_with(kiosk, "desk@clinic.test", PASSWORD).status_code == 429
    assert rows(app, KioskSession)[0].ended_at is None


def test_kiosk_pages_do_not_exist_outside_kiosk_mode(client):
    assert client.get("/kiosk/exit").status_code == 404
    token = csrf_token(client.get("/").text)
    assert client.post("/kiosk/reset", data={"csrf_token": token}).status_code == 404
    assert client.post("/kiosk/alive", data={"csrf_token": token}).status_code == 404


def test_a_kiosk_ended_elsewhere_frees_the_browser_without_staff_access(app, kiosk):
    with app.app_context():
        row = db.session.scalar(select(KioskSession))
        row.ended_at = dt.datetime.now(dt.timezone.utc)
        db.session.commit()
    assert "This is the clinic’s tablet" not in kiosk.get("/").text
    assert "/staff/login" in kiosk.get("/staff/desk").location
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(StaffSession)
                                 .where(StaffSession.ended_at.is_(None))) == 0
