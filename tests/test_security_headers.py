"""Security headers and cookie flags on every route of the app, for every kind of visitor, and on the error pages.

The routes are read from ``app.url_map``: a new route is requested here without anyone listing it, with every
method it accepts, as an anonymous client, a client with answers in progress, each staff role and a kiosk
tablet. A route whose URL takes an argument this file has no sample for fails the test until one is added.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re

import pytest
from flask import render_template_string, url_for

from screening import questions as qd
from screening import services
from screening.extensions import db
from screening.security import HSTS, PDF_POLICY
from tests.answers import clear_answers
from tests.conftest import make_app
from tests.staff import add_user, sign_in
from tests.web import csrf_token

TODAY = dt.date.today()
SKIPPED_METHODS = {"HEAD", "OPTIONS"}
# Asked last by each visitor, in this order: these end or replace the session the other requests need.
SESSION_ENDERS = ("questionnaire.begin", "staff.logout", "staff.kiosk_start", "questionnaire.kiosk.exit")
# What each visitor must reach (200), so that the headers are checked on real pages, not only on redirects.
REACHES = {
    "anonymous": {("questionnaire.start", "GET"), ("staff.login", "GET")},
    "client": {("questionnaire.page", "GET"), ("questionnaire.start", "GET")},
    "desk": {("staff.desk", "GET"), ("staff.desk_sheet_page", "GET")},
    "practitioner": {("staff.submission", "GET"), ("staff.submission_pdf", "GET"), ("staff.submissions", "GET")},
    "admin": {("staff.users", "GET"), ("staff.audit_trail", "GET"), ("staff.desk_sheet_page", "GET")},
    "kiosk": {("questionnaire.kiosk.exit", "GET"), ("questionnaire.start", "GET")},
}
CACHEABLE = {"static", "questionnaire.logo"}
REQUIRED_DIRECTIVES = ("default-src 'self'", "script-src 'self'", "object-src 'none'", "base-uri 'none'",
                       "form-action 'self'", "frame-ancestors 'none'")
NONCE = re.compile(r"'nonce-([A-Za-z0-9_-]{16,})'")
STYLE = re.compile(r"<style\b([^>]*)>(.*?)</style>", re.IGNORECASE | re.DOTALL)
VISITORS = ("anonymous", "client", "desk", "practitioner", "admin", "kiosk")


def submit_today(app, name="Tess Today") -> str:
    """Store a submission with an appointment today; return its reference."""
    with app.app_context():
        draft, _ = services.start_draft(db.session, dt.timedelta(hours=1))
        draft.answers = clear_answers(full_name=name, appointment_date=TODAY.isoformat())
        services.sign(db.session, draft, name)
        return services.submit(db.session, draft, app.extensions["screening_rules"]).reference


def samples(app) -> dict:
    """Return a value for each URL argument of the app's routes (a real one wherever it names a record)."""
    uid = book_today(app)
    return {"page_id": qd.PAGES[0].id, "reference": submit_today(app), "filename": "css/app.css",
            "user_id": add_user(app, "leaver@clinic.test", ["desk"]), "uid": uid,
            "client_uid": client_of(app, uid), "token": "x" * 43, "external_id": "BK-1"}


def client_of(app, appointment_uid: str) -> str:
    """Return the uid of the client record an appointment is tied to."""
    from screening.appointments import services
    from screening.clients.models import Client

    with app.app_context():
        return db.session.get(Client, services.by_uid(db.session, appointment_uid).client_id).uid


def book_today(app) -> str:
    """Book an appointment for today; return its uid."""
    from screening.appointments import services
    from screening.appointments.booking import Booking

    with app.app_context():
        booking = Booking(name="Hedda Headers", date_of_birth=dt.date(1990, 3, 27), email="hedda@example.com",
                          phone="", date=dt.date.today(), time=dt.time(9, 0), treatment="standard",
                          areas=("full_face",))
        return services.book(db.session, booking, source="test")[0].uid


def visitor(app, kind: str):
    """Return a test client as ``kind``: not signed in, mid-questionnaire, a staff role, or a kiosk tablet."""
    client = app.test_client()
    if kind in ("desk", "practitioner", "admin"):
        add_user(app, f"{kind}@clinic.test", [kind])
        sign_in(client, f"{kind}@clinic.test")
    elif kind == "kiosk":
        add_user(app, "kiosk-desk@clinic.test", ["desk"])
        sign_in(client, "kiosk-desk@clinic.test")
        token = csrf_token(client.get("/staff/desk").text)
        assert client.post("/staff/kiosk/start", data={"csrf_token": token}).status_code == 302
    elif kind == "client":
        token = csrf_token(client.get("/").text)
        assert client.post("/start", data={"csrf_token": token, "action": "start"}).status_code == 302
    return client


def every_request(app, values: dict) -> list[tuple[str, str, str]]:
    """Return (endpoint, method, url) for every route and method of the app, session enders last."""
    out = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            missing = [arg for arg in rule.arguments if arg not in values]
            assert not missing, f"{rule.rule}: add a sample value for {missing} to samples() in this file"
            url = url_for(rule.endpoint, **{arg: values[arg] for arg in rule.arguments})
            for method in sorted(rule.methods - SKIPPED_METHODS):
                out.append((rule.endpoint, method, url))
    return sorted(out, key=lambda r: (r[0] in SESSION_ENDERS, SESSION_ENDERS.index(r[0]) if r[0] in SESSION_ENDERS
                                      else 0, r[0], r[1]))


def assert_hardened(response, label: str, *, endpoint: str | None = None, secure: bool = False,
                    production: bool = False) -> None:
    """Fail unless ``response`` carries every security header and its cookies every flag."""
    headers = response.headers
    policy = headers.get("Content-Security-Policy", "")
    assert policy, f"{label}: no Content-Security-Policy"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, f"{label}: {policy}"
    if response.mimetype == "application/pdf":
        assert policy == PDF_POLICY, f"{label}: {policy}"
    else:
        for directive in REQUIRED_DIRECTIVES:
            assert directive in policy.split("; "), f"{label}: {directive} missing from {policy}"
        assert "data:" not in policy and "*" not in policy and "http" not in policy, f"{label}: {policy}"
    assert headers.get("X-Content-Type-Options") == "nosniff", label
    assert headers.get("X-Frame-Options") == "DENY", label
    assert headers.get("Referrer-Policy") == "no-referrer", label
    if secure:
        assert headers.get("Strict-Transport-Security") == HSTS, label
    else:
        assert "Strict-Transport-Security" not in headers, f"{label}: HSTS over plain HTTP"
    if endpoint not in CACHEABLE:
        assert headers.get("Cache-Control") == "no-store", f"{label}: Cache-Control {headers.get('Cache-Control')}"
    for cookie in headers.getlist("Set-Cookie"):
        flags = [part.strip().lower() for part in cookie.split(";")[1:]]
        assert "httponly" in flags and "samesite=lax" in flags, f"{label}: {cookie}"
        assert ("secure" in flags) == production, f"{label}: {cookie}"
        if production:
            assert cookie.startswith("__Host-") and "path=/" in flags and not any(
                f.startswith("domain=") for f in flags), f"{label}: {cookie}"
    if response.mimetype == "text/html":
        assert_no_inline_code(response.get_data(as_text=True), policy, label)


def assert_no_inline_code(html: str, policy: str, label: str) -> None:
    """Fail if the page has code its policy would block: inline scripts, styles not allowed, handlers."""
    nonce = NONCE.search(policy)
    for tag in re.findall(r"<script\b[^>]*>", html, re.IGNORECASE):
        assert re.search(r"\ssrc=\"/static/", tag), f"{label}: inline script {tag}"
    for attributes, content in STYLE.findall(html):
        digest = base64.b64encode(hashlib.sha256(content.encode()).digest()).decode()
        allowed = f"'sha256-{digest}'" in policy or (nonce and f'nonce="{nonce.group(1)}"' in attributes)
        assert allowed, f"{label}: an inline <style> the policy does not allow: {content[:80]}"
    for tag in re.findall(r"<[a-z][^>]*>", html, re.IGNORECASE):
        assert not re.search(r"\sstyle\s*=", tag, re.IGNORECASE), f"{label}: style attribute in {tag}"
        assert not re.search(r"\son[a-z]+\s*=", tag, re.IGNORECASE), f"{label}: event handler in {tag}"
        assert "javascript:" not in tag.lower(), f"{label}: javascript: URL in {tag}"


@pytest.mark.parametrize("kind", VISITORS)
def test_every_route_answers_with_the_security_headers(app, kind, monkeypatch):
    # The headers do not depend on the PDF's content: a stand-in saves a WeasyPrint render per visitor.
    monkeypatch.setattr("screening.pdf.render", lambda context: b"%PDF-1.7\n%stand-in\n")
    values = samples(app)
    client = visitor(app, kind)
    seen, reached = set(), set()
    for endpoint, method, url in every_request(app, values):
        # A valid CSRF token, so that each POST reaches its view (some views start a new session).
        data = {"csrf_token": csrf_token(client.get("/").text)} if method == "POST" else None
        with client.open(url, method=method, data=data) as response:
            assert_hardened(response, f"{kind} {method} {url} -> {response.status_code}", endpoint=endpoint)
            if response.status_code == 200:
                reached.add((endpoint, method))
        seen.add(endpoint)
    assert seen == {rule.endpoint for rule in app.url_map.iter_rules()}
    assert REACHES[kind] <= reached, REACHES[kind] - reached


def test_the_pdfs_have_their_own_policy(app):
    reference = samples(app)["reference"]
    client = visitor(app, "practitioner")
    for url in (f"/staff/submissions/{reference}/pdf", f"/staff/submissions/{reference}/pdf?download=1"):
        response = client.get(url)
        assert response.status_code == 200 and response.mimetype == "application/pdf"
        assert_hardened(response, url, endpoint="staff.submission_pdf")


def test_a_page_is_the_same_bytes_every_time(client):
    # The layout's style is allowed by its hash, so no per-response nonce changes a page: a wrong reference's
    # 404 can be compared byte for byte with a missing one's.
    # (The start page's CSRF token is signed with the second it was made in: two requests either side of a
    # second differ there, and only there.)
    def bytes_of(response) -> bytes:
        return re.sub(rb'(name="csrf_token"[^>]*value=")[^"]+', rb"\1", response.data)

    for url in ("/", "/accessibility", "/no-such-page"):
        first, second = client.get(url), client.get(url)
        assert bytes_of(first) == bytes_of(second) and "nonce" not in first.text
        assert first.headers["Content-Security-Policy"] == second.headers["Content-Security-Policy"]
        assert not NONCE.search(first.headers["Content-Security-Policy"])


def test_a_template_that_uses_the_nonce_gets_a_new_one_in_its_policy(app):
    app.add_url_rule("/nonce-demo", "nonce_demo", lambda: render_template_string(
        '<style nonce="{{ csp_nonce }}">p { margin: 0; }</style><script nonce="{{ csp_nonce }}">void 0;</script>'))
    client = app.test_client()
    nonces = []
    for _ in range(2):
        response = client.get("/nonce-demo")
        policy = response.headers["Content-Security-Policy"]
        nonce = NONCE.search(policy).group(1)
        assert response.text.count(f'nonce="{nonce}"') == 2
        assert f"script-src 'self' 'nonce-{nonce}'" in policy and "unsafe-inline" not in policy
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


def test_static_files_may_be_cached_but_pages_may_not(client):
    with client.get("/static/css/app.css") as response:
        assert response.status_code == 200 and response.headers["Cache-Control"] != "no-store"
    assert client.get("/accessibility").headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("case", ["404", "405", "413", "400", "honeypot"])
def test_error_pages_carry_the_headers_too(client, case):
    token = csrf_token(client.get("/").text)
    if case == "404":
        response, status = client.get("/no-such-page"), 404
    elif case == "405":
        response, status = client.get("/start"), 405
        assert response.headers["Allow"]
    elif case == "413":
        response, status = client.post("/start", data={"csrf_token": token, "action": "start",
                                                        "x": "a" * (256 * 1024)}), 413
    elif case == "400":
        response, status = client.post("/start", data={"action": "start"}), 400
    else:
        response, status = client.post("/start", data={"csrf_token": token, "action": "start",
                                                        "website": "http://spam.example"}), 400
    assert response.status_code == status
    assert_hardened(response, case)
    assert "<h1>" in response.text and "Test Clinic" in response.text  # a page in the app's style


@pytest.fixture
def configured(database_url):
    """Return a function that makes an app with extra settings (its tables dropped after the test)."""
    apps = []

    def make(**settings):
        apps.append(make_app(database_url, **settings))
        return apps[-1]

    yield make
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def test_a_rate_limited_answer_carries_the_headers(configured):
    app = configured(START_LIMIT="1 per hour")
    client = app.test_client()
    for expected in (302, 429):
        token = csrf_token(client.get("/").text)
        response = client.post("/start", data={"csrf_token": token, "action": "restart"})
        assert response.status_code == expected
    assert_hardened(response, "429")
    assert int(response.headers["Retry-After"]) > 0


def test_over_https_in_production_hsts_and_secure_host_only_cookies(configured):
    # Production refuses a short secret key and per-process rate-limit counters unless one process serves.
    client = configured(ENV="production", SECRET_KEY="7dR2kQ9vXz4mL1pN8sB3cF6hJ0wT5yUe", SINGLE_PROCESS=True).test_client()
    base = "https://clinic.example"
    response = client.get("/", base_url=base)
    assert_hardened(response, "start over https", secure=True, production=True)
    # A POST over HTTPS carries no Referer (Referrer-Policy: no-referrer): the CSRF token is what counts.
    token = csrf_token(response.text)
    response = client.post("/start", base_url=base, data={"csrf_token": "wrong"})
    assert response.status_code == 400
    response = client.post("/start", base_url=base, data={"csrf_token": token, "action": "start"})
    assert response.status_code == 302
    assert_hardened(response, "start POST over https", secure=True, production=True)
    page = client.get(response.location, base_url=base)
    assert page.status_code == 200, "the Secure cookie came back over HTTPS"
    assert client.get("/q/nope", base_url=base).status_code == 404


def test_over_plain_http_there_is_no_hsts(client):
    assert "Strict-Transport-Security" not in client.get("/").headers


def test_behind_a_trusted_proxy_the_forwarded_scheme_counts(configured):
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    behind = configured(PROXY_COUNT=1).test_client().get("/", headers=forwarded)
    assert behind.headers["Strict-Transport-Security"] == HSTS
    # Without a trusted proxy, the same headers change nothing.
    assert "Strict-Transport-Security" not in configured().test_client().get("/", headers=forwarded).headers


@pytest.mark.parametrize("html", [
    "<script>alert(1)</script>",
    '<script src="https://cdn.example/x.js"></script>',
    "<style>p { color: red; }</style>",
    '<p style="color: red">x</p>',
    '<button onclick="go()">Go</button>',
    '<a href="javascript:go()">Go</a>',
])
def test_the_page_check_catches_inline_code(html):
    policy = "default-src 'self'; style-src 'self' 'sha256-NtsTvzuzYx1Lm8GjGxhOUhmgIGxF66WFRUOQUJSmzR4='"
    assert_no_inline_code("<style>:root { --accent: #1d5f8a; }</style>", policy, "allowed by its hash")
    with pytest.raises(AssertionError):
        assert_no_inline_code(html, policy, "planted")
