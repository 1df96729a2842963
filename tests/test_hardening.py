"""Production hardening (issue 11): form bodies only, sign-in limits in the database, database time-outs,
production keys, logs without data, the staff session's countdown, one audit event per PDF opening, kiosk start.

Each test here failed before its fix.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text, update
from sqlalchemy.exc import ProgrammingError

from screening import create_app, services
from screening.config import ROOT, ConfigError
from screening.extensions import db
from screening.models import AuditEvent, StaffSession, StaffUser
from screening.questionnaire.forms import clean_text
from tests.answers import clear_answers
from tests.conftest import TEST_KEYS, make_app
from tests.web import csrf_token

PASSWORD = "correct horse battery"
TODAY = dt.date.today()


def add_user(app, email="prac@clinic.test", roles=("practitioner",), name="Pat Practitioner") -> int:
    from screening.staff.accounts import create_user

    with app.app_context():
        return create_user(db.session, email, name, list(roles), PASSWORD).id


def sign_in(client, email="prac@clinic.test", password=PASSWORD, address="127.0.0.1"):
    page = client.get("/staff/login", environ_base={"REMOTE_ADDR": address})
    return client.post("/staff/login", data={"csrf_token": csrf_token(page.text), "email": email,
                                             "password": password}, environ_base={"REMOTE_ADDR": address})


def events(app, action):
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                       .order_by(AuditEvent.id)))


def submit(app, name="Pia Printed", day=TODAY) -> str:
    with app.app_context():
        draft, _ = services.start_draft(db.session, dt.timedelta(hours=1))
        draft.answers = clear_answers(full_name=name, appointment_date=day.isoformat())
        services.sign(db.session, draft, name)
        return services.submit(db.session, draft, app.extensions["screening_rules"]).reference


# -- form routes take form bodies only (Medium #5, Low #10) -----------------------------------------------


def test_a_json_sign_in_is_refused_with_415_and_never_checks_the_password(app, client):
    add_user(app)
    token = csrf_token(client.get("/staff/login").text)
    # The CSRF token reaches the app (in its header), so only the body's type is refused.
    response = client.post("/staff/login", json={"email": "prac@clinic.test", "password": PASSWORD},
                           headers={"X-CSRFToken": token})
    assert response.status_code == 415
    assert "This page cannot be sent that way" in response.text and "<html" in response.text
    with client.session_transaction() as session:
        assert "staff" not in session
    assert events(app, "sign_in") == [] and events(app, "sign_in_failed") == []


def test_json_cannot_get_round_the_account_lockout(app, client):
    add_user(app)
    for _ in range(5):
        assert sign_in(client, password="wrong password!!").status_code == 401
    token = csrf_token(client.get("/staff/login").text)
    for email in ("prac@clinic.test", ["prac@clinic.test"], {"x": 1}, 7, None):
        response = client.post("/staff/login", json={"email": email, "password": PASSWORD},
                               headers={"X-CSRFToken": token})
        assert response.status_code == 415, email
    assert sign_in(client).status_code == 429


@pytest.mark.parametrize("url", ["/staff/login", "/start", "/declaration", "/q/about-you"])
def test_odd_bodies_never_give_a_500(app, client, url):
    token = csrf_token(client.get("/").text)
    deep = "[" * 20000 + "]" * 20000
    for body, kind in ((deep, "application/json"), ('{"email": 5, "password": [1]}', "application/json"),
                       ("<x/>", "text/xml"), ("email=a", "text/plain")):
        response = client.post(url, data=body, content_type=kind, headers={"X-CSRFToken": token})
        assert response.status_code == 415, (url, kind, response.status_code)


def test_a_file_sent_as_a_text_field_is_refused_not_a_500(app, client):
    add_user(app)
    token = csrf_token(client.get("/staff/login").text)
    response = client.post("/staff/login", data={"csrf_token": token, "email": (io.BytesIO(b"prac"), "e.txt"),
                                                 "password": PASSWORD}, content_type="multipart/form-data")
    assert response.status_code == 400
    # A multipart form without a file is a form like any other.
    response = client.post("/staff/login", data={"csrf_token": token, "email": "prac@clinic.test",
                                                 "password": PASSWORD}, content_type="multipart/form-data")
    assert response.status_code == 302


def test_the_kiosk_exit_takes_only_a_form(app):
    user_id = add_user(app, "desk@clinic.test", ["desk"])
    kiosk = app.test_client()
    with app.app_context():
        from screening.staff.accounts import open_session

        staff_token = open_session(db.session, db.session.get(StaffUser, user_id))
    with kiosk.session_transaction() as session:
        session["staff"] = staff_token
    token = csrf_token(kiosk.get("/staff/desk").text)
    assert kiosk.post("/staff/kiosk/start", data={"csrf_token": token}).status_code == 302
    token = csrf_token(kiosk.get("/kiosk/exit").text)
    response = kiosk.post("/kiosk/exit", json={"email": "desk@clinic.test", "password": PASSWORD},
                          headers={"X-CSRFToken": token})
    assert response.status_code == 415
    assert kiosk.get("/staff/desk").status_code == 302, "still a kiosk"


# What a server such as gunicorn hands over for a chunked body: no Content-Length, the stream ends by itself.
CHUNKED = {"CONTENT_LENGTH": None, "wsgi.input_terminated": True}


def test_a_chunked_body_over_the_limit_is_refused_not_cut_short(app, client):
    add_user(app)
    token = csrf_token(client.get("/staff/login").text)
    small = f"csrf_token={token}&email=prac%40clinic.test&password=correct+horse+battery".encode()
    response = client.post("/staff/login", input_stream=io.BytesIO(small),
                           content_type="application/x-www-form-urlencoded",
                           headers={"Transfer-Encoding": "chunked"}, environ_overrides=CHUNKED)
    assert response.status_code == 302, "a small chunked form is read whole"
    big = small + b"&junk=" + b"a" * (300 * 1024)
    response = client.post("/staff/login", input_stream=io.BytesIO(big),
                           content_type="application/x-www-form-urlencoded",
                           headers={"Transfer-Encoding": "chunked"}, environ_overrides=CHUNKED)
    assert response.status_code == 413 and "What you sent is too large" in response.text


def test_a_unicode_digit_page_number_on_the_audit_page_is_a_400(app, client):
    add_user(app, "admin@clinic.test", ["admin"])
    sign_in(client, "admin@clinic.test")
    for page in ("²", "١", "𝟙"):
        response = client.get("/staff/admin/audit", query_string={"page": page})
        assert response.status_code == 400, page
        assert "whole number" in response.text
    assert client.get("/staff/admin/audit?page=1").status_code == 200


# -- sign-in failures: counted in the database, per account and address (High #1, Low #10) ---------------


def test_failures_are_counted_in_the_database_so_a_new_process_sees_them(app, database_url):
    add_user(app)
    client = app.test_client()
    for _ in range(5):
        assert sign_in(client, password="wrong password!!").status_code == 401
    assert all(e.detail.startswith("account=") and "wrong password" not in e.detail
               for e in events(app, "sign_in_failed"))
    # Another worker, or the app after a restart: a new app on the same database, its memory empty.
    from screening.extensions import limiter

    with app.app_context():
        limiter.reset()
    again = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url, "SECRET_KEY": "test-secret",
                        "PDF_BACKGROUND": False, **TEST_KEYS})
    response = sign_in(again.test_client())
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 800
    with again.app_context():
        db.engine.dispose()


def test_one_person_guessing_does_not_lock_the_account_elsewhere(app):
    add_user(app)
    attacker, clinic = app.test_client(), app.test_client()
    for _ in range(5):
        assert sign_in(attacker, password="wrong password!!", address="203.0.113.9").status_code == 401
    assert sign_in(attacker, address="203.0.113.9").status_code == 429, "the guesser is stopped"
    assert sign_in(clinic, address="198.51.100.20").status_code == 302, "the clinic still signs in"


def test_an_ipv6_guesser_counts_by_its_64(app):
    add_user(app)
    attacker = app.test_client()
    for n in range(5):
        assert sign_in(attacker, password="wrong password!!", address=f"2001:db8:1:2::{n + 1}").status_code == 401
    assert sign_in(attacker, address="2001:db8:1:2::99").status_code == 429


def test_guessing_from_many_addresses_is_bounded_per_account(app):
    add_user(app)
    app.config["STAFF_LOGIN_LIMIT_ACCOUNT_ALL"] = "12 per 15 minutes"
    client = app.test_client()
    for n in range(12):
        assert sign_in(client, password="wrong password!!", address=f"203.0.113.{n // 4 + 1}").status_code == 401
    assert sign_in(client, address="198.51.100.20").status_code == 429


def test_failures_on_a_shared_clinic_address_do_not_lock_out_its_staff(app):
    add_user(app)
    add_user(app, "new@clinic.test", name="New Starter")
    client = app.test_client()
    assert sign_in(client, address="192.0.2.10").status_code == 302  # prac has signed in from the clinic before
    for n in range(20):
        sign_in(app.test_client(), email=f"someone{n}@clinic.test", password="wrong password!!",
                address="192.0.2.10")
    assert sign_in(app.test_client(), address="192.0.2.10").status_code == 302
    assert sign_in(app.test_client(), email="new@clinic.test", address="192.0.2.10").status_code == 429, \
        "an account never used from here is held by the address limit"


def test_the_kiosk_exit_and_the_sign_in_page_share_the_counts(app):
    add_user(app, "desk@clinic.test", ["desk"])
    client = app.test_client()
    for _ in range(5):
        assert sign_in(client, "desk@clinic.test", password="wrong password!!").status_code == 401
    with app.app_context():
        from screening.staff import throttle

        with app.test_request_context(environ_base={"REMOTE_ADDR": "127.0.0.1"}):
            assert throttle.seconds_held(db.session, throttle.attempt("DESK@clinic.test ")) > 0


def test_the_cli_refuses_a_password_the_sign_in_form_could_never_take(app, runner):
    long = "p" * 201
    result = runner.invoke(args=["screening", "create-user", "a@b.test", "--role", "desk"], input=f"{long}\n{long}\n")
    assert result.exit_code == 1 and "at most 200" in result.output
    fits = "p" * 150 + "q" * 50
    result = runner.invoke(args=["screening", "create-user", "a@b.test", "--role", "desk"], input=f"{fits}\n{fits}\n")
    assert result.exit_code == 0, result.output
    assert sign_in(app.test_client(), "a@b.test", password=fits).status_code == 302


# -- names without bidirectional controls (Low #10) ---------------------------------------------------------


def test_bidirectional_controls_are_dropped_from_typed_text_and_staff_names(app):
    assert clean_text("Ann\u202eelpmaxE\u202c Smith") == "AnnelpmaxE Smith"
    assert clean_text("\u2066Zoë\u2069 \u200fO'Brien") == "Zoë O'Brien"
    assert clean_text("שלום Ann") == "שלום Ann", "right-to-left letters themselves are kept"
    add_user(app, "rtl@clinic.test", name="Pat\u202e Smith")
    with app.app_context():
        assert db.session.scalar(select(StaffUser.name).where(StaffUser.email == "rtl@clinic.test")) == "Pat Smith"


def test_the_questionnaire_stores_a_name_without_an_override(app, client):
    from screening import questions as qd
    from tests.web import page_data

    client.post("/start", data={"csrf_token": csrf_token(client.get("/").text), "action": "start"})
    first = qd.PAGES[0]
    answers = clear_answers(full_name="Ann \u202eelpmaxE")
    assert "full_name" in {q.id for q in qd.page_questions(first)}
    page = client.get(f"/q/{first.id}")
    response = client.post(f"/q/{first.id}", data={"csrf_token": csrf_token(page.text), **page_data(first, answers)})
    assert response.status_code == 302
    with client.session_transaction() as session:
        token = session["draft"]
    with app.app_context():
        draft = services.find_draft(db.session, token)
        assert draft.answers["full_name"] == "Ann elpmaxE"


# -- SQLite files are private (Low #10) -----------------------------------------------------------------------


def test_sqlite_database_files_are_created_0600(tmp_path):
    path = tmp_path / "private.db"
    app = make_app(f"sqlite:///{path}")
    with app.app_context():
        db.session.execute(text("SELECT 1"))
        db.session.remove()
    for file in [path, *tmp_path.glob("private.db-*")]:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    loose = tmp_path / "loose.db"
    sqlite3.connect(loose).close()
    loose.chmod(0o644)
    make_app(f"sqlite:///{loose}")
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600, "an existing file is narrowed"


# -- production keys (Low #10) --------------------------------------------------------------------------------


def production(tmp_path, **settings):
    base = {"ENV": "production", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'p.db'}",
            "SECRET_KEY": Fernet.generate_key().decode(), "ENCRYPTION_KEYS": [Fernet.generate_key().decode()],
            "INDEX_KEY": Fernet.generate_key().decode(), "SINGLE_PROCESS": True, "CHECK_KEYS": False,
            "MAIL_DIR": str(tmp_path / "mail")}  # production sends email, or writes it where it is told to
    return create_app({**base, **settings})


def test_production_refuses_weak_short_and_reused_keys(tmp_path):
    assert production(tmp_path).config["ENV"] == "production"
    key = Fernet.generate_key().decode()
    zero = "A" * 43 + "="  # a valid Fernet key: 32 zero bytes
    for settings, message in (({"SECRET_KEY": "x"}, "SCREENING_SECRET_KEY must be at least 32"),
                              ({"SECRET_KEY": "abc" * 20}, "SCREENING_SECRET_KEY must be at least 32"),
                              ({"INDEX_KEY": "short"}, "SCREENING_INDEX_KEY must be at least 32"),
                              ({"ENCRYPTION_KEYS": [zero]}, "key 1 is not random"),
                              ({"ENCRYPTION_KEYS": [key, key]}, "the same key twice"),
                              ({"ENCRYPTION_KEYS": [key], "INDEX_KEY": key}, "use the same key"),
                              ({"SECRET_KEY": key, "INDEX_KEY": key}, "use the same key")):
        with pytest.raises(ConfigError, match=message):
            production(tmp_path, **settings)


def test_production_refuses_per_process_counters_unless_one_process_serves(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="memory://"):
        production(tmp_path, SINGLE_PROCESS=False)
    monkeypatch.setattr(sys, "argv", ["/srv/.venv/bin/gunicorn", "-w", "2", "wsgi:app"])
    with pytest.raises(ConfigError, match="gunicorn runs 2 workers"):
        production(tmp_path)
    monkeypatch.setattr(sys, "argv", ["/srv/.venv/bin/gunicorn", "--workers=1", "wsgi:app"])
    assert production(tmp_path).config["SINGLE_PROCESS"]


def test_a_weak_production_secret_stops_the_import_with_exit_4_and_no_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCREENING_", "FLASK_"))}
    env.update(SCREENING_ENV="production", SCREENING_SECRET_KEY="x", SCREENING_SINGLE_PROCESS="1",
               SCREENING_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
               SCREENING_INDEX_KEY=Fernet.generate_key().decode(),
               SCREENING_DATABASE_URL=f"sqlite:///{tmp_path / 'w.db'}", SCREENING_CHECK_KEYS="0")
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 4, done.stderr
    assert "screening: cannot start: SCREENING_SECRET_KEY must be at least 32" in done.stderr
    assert "Traceback" not in done.stderr


# -- database time-outs: the app's own 503 (Medium #9) ------------------------------------------------------


def test_engine_options_carry_the_time_outs():
    from screening.config import engine_options

    options = engine_options({"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://x@h/db", "DB_POOL_TIMEOUT": 5,
                              "DB_CONNECT_TIMEOUT": 5, "DB_STATEMENT_TIMEOUT": 10,
                              "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"options": "-c lock_timeout=500"}}})
    connect = options["connect_args"]
    assert options["pool_timeout"] == 5 and connect["connect_timeout"] == 5 and options["hide_parameters"]
    assert connect["options"].startswith("-c statement_timeout=10000 -c lock_timeout=10000")
    assert connect["options"].endswith("-c lock_timeout=500"), "a setting given by the caller wins"
    sqlite_options = engine_options({"SQLALCHEMY_DATABASE_URI": "sqlite:///x.db", "DB_POOL_TIMEOUT": 5,
                                     "DB_CONNECT_TIMEOUT": 5, "DB_STATEMENT_TIMEOUT": 3})
    assert sqlite_options["connect_args"] == {"timeout": 3.0}


def test_a_statement_longer_than_the_time_out_is_cancelled_on_postgresql():
    url = os.environ.get("SCREENING_TEST_DATABASE_URL")
    if not url:
        pytest.skip("needs SCREENING_TEST_DATABASE_URL (PostgreSQL)")
    app = make_app(url, DB_STATEMENT_TIMEOUT=1)
    try:
        with app.app_context():
            t0 = time.monotonic()
            with pytest.raises(Exception) as caught:
                db.session.execute(text("SELECT pg_sleep(5)"))
            assert time.monotonic() - t0 < 3
            assert "QueryCanceled" in type(caught.value.orig).__name__
            db.session.rollback()
    finally:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def test_a_locked_database_gives_the_503_page_not_a_hung_worker(database_url):
    """Another connection holds a lock longer than the time-out: the sign-in answers 503 within seconds."""
    app = make_app(database_url, DB_STATEMENT_TIMEOUT=1)
    try:
        add_user(app)
        held, release = threading.Event(), threading.Event()

        def hold_the_lock():
            if database_url.startswith("sqlite"):
                conn = sqlite3.connect(database_url.split("sqlite:///", 1)[1])
                conn.execute("BEGIN IMMEDIATE")  # writers wait (readers do not, in WAL mode)
            else:
                import psycopg

                conn = psycopg.connect(database_url)
                conn.execute("LOCK TABLE audit_event IN ACCESS EXCLUSIVE MODE")
            held.set()
            release.wait(30)
            conn.rollback()
            conn.close()

        holder = threading.Thread(target=hold_the_lock)
        client = app.test_client()
        page = client.get("/staff/login")
        holder.start()
        try:
            assert held.wait(10)
            t0 = time.monotonic()
            response = client.post("/staff/login", data={"csrf_token": csrf_token(page.text),
                                                         "email": "prac@clinic.test", "password": "wrong one!!!!"})
            took = time.monotonic() - t0
        finally:
            release.set()
            holder.join(30)
        assert response.status_code == 503 and took < 5, (response.status_code, took)
        assert "the service is not available right now" in response.text and "<html" in response.text
        assert sign_in(client).status_code == 302, "the next request is served"
    finally:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


# -- no SQL, parameters or values in the logs (Low #10) ---------------------------------------------------

# A database error as the driver would raise it: the statement, its parameters, and a message quoting a value.
SECRET_ERROR = ("SELECT name FROM submission WHERE name = %(name)s", {"name": "Ann Secret"},
                Exception("column Ann Secret does not exist"))


def test_a_staff_page_error_logs_the_type_only(app, client, monkeypatch, caplog):
    add_user(app, "admin@clinic.test", ["admin"])
    sign_in(client, "admin@clinic.test")
    from screening.staff import people_services

    def broken(_session):
        raise ProgrammingError(*SECRET_ERROR)  # (a traceback shows this line: no data on it)

    monkeypatch.setattr(people_services, "list_users", broken)  # the staff accounts page (staff/people.py)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    with caplog.at_level(logging.ERROR):
        response = client.get("/staff/admin/users")
    assert response.status_code == 500
    assert "sqlalchemy.exc.ProgrammingError" in caplog.text and "Traceback" in caplog.text
    assert "SELECT" not in caplog.text and "Ann Secret" not in caplog.text and "does not exist" not in caplog.text


def test_the_renderer_logger_withholds_messages(app, caplog):
    log = logging.getLogger("screening.services")
    with caplog.at_level(logging.ERROR):
        try:
            try:
                raise KeyError(SECRET_ERROR[1]["name"])
            except KeyError as exc:
                raise ProgrammingError(*SECRET_ERROR[:2], exc) from exc
        except ProgrammingError:
            log.exception("PDF rendering failed for submission id %s", 7)
    assert "submission id 7" in caplog.text and "sqlalchemy.exc.ProgrammingError" in caplog.text
    assert "KeyError" in caplog.text and "Traceback" in caplog.text
    assert "Ann Secret" not in caplog.text and "SELECT" not in caplog.text


# -- the staff session's countdown; one event per PDF opening; kiosk start ---------------------------------


def test_the_countdown_asks_without_renewing_and_the_server_decides(app, client):
    add_user(app)
    sign_in(client)
    with app.app_context():
        db.session.execute(update(StaffSession).values(
            last_seen_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)))
        db.session.commit()
    response = client.get("/staff/session/status", headers={"X-Screening-Automatic": "1"})
    assert response.status_code == 200 and 290 <= response.json["idle_seconds_left"] <= 300
    with app.app_context():
        seen = db.session.scalar(select(StaffSession.last_seen_at))
        seen = seen if seen.tzinfo else seen.replace(tzinfo=dt.timezone.utc)
        assert dt.datetime.now(dt.timezone.utc) - seen > dt.timedelta(minutes=9), "not renewed"
    # An automatic request for a page is refused: the script never loads (and so never views) a record.
    assert client.get("/staff/submissions", headers={"X-Screening-Automatic": "1"}).status_code == 400
    with app.app_context():
        db.session.execute(update(StaffSession).values(
            last_seen_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=16)))
        db.session.commit()
    response = client.get("/staff/session/status", headers={"X-Screening-Automatic": "1"})
    assert response.status_code == 401, "ended: the script sends the page to the sign-in page"
    assert [e.detail for e in events(app, "session_expired")] == ["idle"]


def test_the_staff_script_never_reloads_the_page_itself():
    script = (ROOT / "screening" / "static" / "js" / "staff.js").read_text()
    assert "location.reload" not in script and "X-Screening-Automatic" in script


def test_one_pdf_opening_is_one_audit_event(app, client):
    reference = submit(app)
    add_user(app, "both@clinic.test", ["practitioner", "desk"])
    sign_in(client, "both@clinic.test")
    # The browser's PDF viewer asks again at once, and for a later part of the file.
    for _ in range(2):
        assert client.get(f"/staff/submissions/{reference}/pdf").status_code == 200
    client.get(f"/staff/submissions/{reference}/pdf", headers={"Range": "bytes=1000-"})
    assert len(events(app, "view_pdf")) == 1
    for _ in range(2):
        client.get(f"/staff/desk/{reference}/pdf")
    assert len(events(app, "print_pdf")) <= 1
    client.get(f"/staff/submissions/{reference}/pdf?download=1")
    assert len(events(app, "download_pdf")) == 1, "a download is its own opening"
    with app.app_context():
        for event in db.session.scalars(select(AuditEvent)):
            event.at = event.at - dt.timedelta(minutes=1)
        db.session.commit()
    client.get(f"/staff/submissions/{reference}/pdf")
    assert len(events(app, "view_pdf")) == 2, "opened again later: a new event"


def test_starting_kiosk_mode_ends_the_staff_session_and_says_to_close_other_tabs(app, client):
    add_user(app, "desk@clinic.test", ["desk"])
    sign_in(client, "desk@clinic.test")
    page = client.get("/staff/desk")
    assert "First close every other tab" in page.text
    with client.session_transaction() as session:
        staff_token = session["staff"]
    client.post("/staff/kiosk/start", data={"csrf_token": csrf_token(page.text)})
    other_tab = app.test_client()
    with other_tab.session_transaction() as session:
        session["staff"] = staff_token  # what another tab of the browser held before
    assert other_tab.get("/staff/desk").status_code == 302
    with app.app_context():
        assert db.session.scalar(select(StaffSession.ended_at)) is not None


def test_a_rate_limit_store_failing_while_running_does_not_break_the_public_form(app, client, monkeypatch):
    """Redis going away after start-up: the start page works without its limit rather than answering 500."""
    import redis as redis_client

    from screening.extensions import limiter

    def store_gone(*_args, **_kwargs):
        raise redis_client.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(limiter.limiter, "hit", store_gone)
    monkeypatch.setattr(limiter.limiter, "test", store_gone)
    response = client.post("/start", data={"csrf_token": csrf_token(client.get("/").text), "action": "start"})
    assert response.status_code == 302


def test_the_cli_refuses_an_email_the_sign_in_form_could_never_take(app, runner):
    email = "a" * 250 + "@b.test"
    result = runner.invoke(args=["screening", "create-user", email, "--role", "desk"],
                           input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 1 and "at most 254" in result.output
