"""Web hardening: security headers on every response, the error pages, and the public form's abuse checks.

- Every response gets a Content-Security-Policy without ``unsafe-inline``, ``nosniff``, no framing, a referrer
  policy, HSTS over HTTPS, and ``Cache-Control: no-store`` unless it is a static file or the clinic's logo
  (nothing else may be cached: any page may carry health data). The layout's one inline ``<style>``, the clinic's
  colour, is allowed by its SHA-256 in the policy: it is the same on every page, and a nonce would make every
  page's bytes differ, so that a wrong reference's 404 could no longer be compared with a missing one's. A
  template that needs other inline code has ``csp_nonce``: a nonce made for the response only when a template
  uses it, and only then added to the policy.
- 400, 401, 403, 404, 405, 413, 429 and 500 answer with a page in the app's style. A 404 never repeats the URL
  asked for, so a wrong reference and a missing one get the same bytes.
- The public form's honeypot (``honeypot_filled``, ``refuse_quietly``) and the client-address key of the public
  rate limits (``client_key``).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import math
import secrets
import time

import io

from flask import abort, current_app, g, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.middleware.proxy_fix import ProxyFix

from . import kiosk
from .extensions import limiter
from .questions import PAGES

# Responses that carry no health data and may be cached by the browser.
CACHEABLE_ENDPOINTS = frozenset({"static", "questionnaire.logo"})
ERROR_CODES = (400, 401, 403, 404, 405, 413, 415, 429, 500, 503)
# The only bodies a form of this app sends. Flask-WTF would also read JSON, which lets a client send values that
# are not strings (or a structure 20,000 levels deep) and keys the limits never see: refused with 415.
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
HSTS = "max-age=63072000"  # two years; not includeSubDomains: the clinic's other hosts are not ours to decide
# The name of the honeypot field: a text box people never see; a bot that fills in every field fills it in.
HONEYPOT = "website"
# The public endpoints whose rate limit the 429 page explains to a client rather than to staff.
_PUBLIC_LIMITED = frozenset({"questionnaire.begin", "questionnaire.declaration"})
PAGE_IDS = frozenset(p.id for p in PAGES)


def csp_nonce() -> str:
    """Return this request's nonce for the Content-Security-Policy (made on first use)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce


class _LazyNonce:
    """``csp_nonce`` in templates: the nonce is made, and put in the policy, only if a template prints it."""

    def __str__(self) -> str:
        return csp_nonce()

    __html__ = __str__


def accent_css(accent: str) -> str:
    """Return the layout's inline style: the clinic's colour (config.finish has checked it is #rrggbb)."""
    return f":root {{ --accent: {accent}; }}"


def csp_hash(text: str) -> str:
    """Return the CSP source that allows an inline element whose content is exactly ``text``."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def page_policy(style_hashes: tuple[str, ...] = (), nonce: str | None = None) -> str:
    """Return the Content-Security-Policy of a page: its own files only; inline styles only by hash or nonce."""
    inline = [*style_hashes] + ([f"'nonce-{nonce}'"] if nonce else [])
    script_nonce = f" 'nonce-{nonce}'" if nonce else ""
    return "; ".join((
        "default-src 'self'",
        f"script-src 'self'{script_nonce}",
        " ".join(["style-src 'self'", *inline]),
        "img-src 'self'",  # the logo is served by /logo; no page needs data: images (the PDF's are server-side)
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ))


# A PDF is shown by the browser's own viewer, which Chromium draws with an <embed> and inline styles in a page
# it makes up around the document: ``object-src 'none'`` or ``default-src`` would show a blocked plugin instead
# of the report. A PDF runs none of our code, so its policy keeps only what still applies to it.
PDF_POLICY = "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def set_headers(response):
    """Add the security headers to ``response``."""
    headers = response.headers
    if response.mimetype == "application/pdf":
        headers["Content-Security-Policy"] = PDF_POLICY
    else:
        headers["Content-Security-Policy"] = page_policy(current_app.extensions["screening_style_hashes"],
                                                         g.get("csp_nonce"))
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    # No Referer at all, not even to ourselves. Flask-WTF's HTTPS Referer check is therefore off
    # (WTF_CSRF_SSL_STRICT, config.finish): the CSRF token and the SameSite session cookie protect every POST.
    headers["Referrer-Policy"] = "no-referrer"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    if request.is_secure:
        headers["Strict-Transport-Security"] = HSTS
    if request.endpoint not in CACHEABLE_ENDPOINTS:
        headers["Cache-Control"] = "no-store"
    return response


def client_key() -> str:
    """Return the rate-limit key of the client's address: an IPv6 address counts by its /64 (one household)."""
    address = request.remote_addr or ""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address or "unknown"
    if parsed.version == 6:
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


# -- the honeypot --------------------------------------------------------------------------


def honeypot_filled() -> bool:
    """Whether the form's hidden "Leave this field empty" box was filled in (by a bot, not a person)."""
    return bool(request.form.get(HONEYPOT, "").strip())


def refuse_quietly():
    """Answer a filled-in honeypot: store nothing, log the fact (never what was posted), show a generic page."""
    current_app.logger.warning("honeypot: refused a POST to %s from %s (kiosk: %s)", request.endpoint,
                               request.remote_addr or "-", "yes" if kiosk.active() else "no")
    href, text = back_link(400)
    return render_template("errors/refused.html", back=href, back_text=text), 400


# -- error pages ---------------------------------------------------------------------------


def _is_staff_page() -> bool:
    return (request.path == "/staff" or request.path.startswith("/staff/")) and not kiosk.active()


def back_link(code: int) -> tuple[str, str]:
    """Return where an error page sends the reader, and the link's words.

    After a refused form (400, 413, 429), back to the page of the form when it has one; after a 404 or 405, to
    a start page, never to the address asked for (so that no part of it is repeated on the page).
    """
    if code == 401:
        return url_for("staff.login"), _("Sign in")
    if code in (400, 413, 415, 429):
        if request.endpoint == "questionnaire.declaration":
            return url_for("questionnaire.declaration"), _("Go back to the declaration")
        if request.endpoint == "questionnaire.page" and (request.view_args or {}).get("page_id") in PAGE_IDS:
            return url_for("questionnaire.page", page_id=request.view_args["page_id"]), _("Go back to the page")
        if request.endpoint == "staff.login":
            return url_for("staff.login"), _("Go back to sign in")
        if request.endpoint == "staff.forgotten_password":
            return url_for("staff.login"), _("Go back to sign in")
    if _is_staff_page():
        return url_for("staff.home"), _("Go to the staff home page")
    return url_for("questionnaire.start"), _("Go to the start page")


def _seconds_to_wait() -> int:
    """Return how many seconds until the limit that was hit lets the client in again (at least 1)."""
    if g.get("retry_after"):
        return int(g.retry_after)  # a paused staff sign-in (staff/throttle.py)
    current = limiter.current_limit
    if current is None:
        return 3600
    return max(1, math.ceil(current.reset_at - time.time()))


def _error_text(code: int) -> tuple[str, list[str]]:
    """Return the title and paragraphs of the error page for ``code``."""
    if code == 415:
        return _("This page cannot be sent that way"), [
            _("The forms of this service send what is typed in them as a web form, and this was sent another "
              "way. Nothing from it was saved."),
            _("Go back, reload the page and use its form."),
        ]
    if code == 503:
        return _("Sorry, the service is not available right now"), [
            _("Nothing from this request was changed. Anything saved before is still there."),
            _("Try again in a minute. If it goes on, contact the clinic."),
        ]
    if code == 413:
        return _("What you sent is too large"), [
            _("A page can send at most %(size)s KB at once, and this was more.",
              size=current_app.config["MAX_CONTENT_LENGTH"] // 1024),
            _("Nothing from it was saved. Anything you saved before is still there."),
            _("Go back, shorten what you typed, and try again."),
        ]
    if code == 429:
        minutes = max(1, round(_seconds_to_wait() / 60))
        wait = ngettext("Wait %(num)s minute, then try again.", "Wait %(num)s minutes, then try again.", minutes)
        if request.endpoint in _PUBLIC_LIMITED:
            kept = [_("Your answers are still saved on this device: nothing has been lost.")] \
                if session.get("draft") else []
            return _("Too many questionnaires from this connection"), [
                _("To protect the service, only a limited number of questionnaires can be started or sent "
                  "from one internet connection in an hour, and this connection has reached it."),
                *kept,
                wait + " " + _("If you need help, contact the clinic."),
            ]
        if request.endpoint == "staff.forgotten_password":
            return _("Too many requests for a new password"), [
                _("For security, only a few password reset emails can be asked for from one connection in a "
                  "while, and this connection has reached it. A link already sent still works."), wait]
        return _("Too many attempts"), [
            _("For security, signing in is paused after several attempts that did not succeed."), wait]
    if code == 404:
        return _("Page not found"), [
            _("If you typed the web address, check it is correct."),
            _("If you pasted the web address, check you copied the entire address."),
        ]
    if code == 405:
        return _("This page cannot be opened that way"), [_("Use the buttons and links on the pages.")]
    if code == 401:
        return _("You are signed out"), [_("Sign in again to continue.")]
    if code == 403:
        return _("You cannot use this page"), [
            _("Your account does not have access to it. Ask an admin if you need it.")]
    if code == 500:
        return _("Sorry, there is a problem with the service"), [
            _("Try again in a few minutes."),
            _("If you were answering the questionnaire, the answers you saved before are still there."),
        ]
    # 400: most often a form whose security token has expired, or that was sent twice.
    return _("Sorry, that did not work"), [
        _("This can happen when a page has been open for a long time, or after using the browser’s Back button."),
        _("Go back, reload the page and try again."),
    ]


def render_error(error: HTTPException):
    """Render an HTTP error as a page in the app's style, with the same status (JSON problem details for the API)."""
    code = error.code if error.code in ERROR_CODES else 500
    if request.path.startswith("/api/"):
        from .appointments.api import problem

        response = problem(code, getattr(error, "description", "") if code < 500 else "")
        if code == 429:
            response.headers["Retry-After"] = str(_seconds_to_wait())
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response
    title, paragraphs = _error_text(code)
    back, back_text = back_link(code)
    response = current_app.make_response(
        (render_template("errors/error.html", code=code, title=title, paragraphs=paragraphs, back=back,
                         back_text=back_text), code))
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    if code == 429:
        response.headers["Retry-After"] = str(_seconds_to_wait())
    return response


# -- request bodies ------------------------------------------------------------------------


FILE_ENDPOINTS = frozenset({"staff.import_csv"})


def only_form_bodies():
    """Refuse (415) a POST whose body is not a form: forms, limits and CSRF read form fields only."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    if request.environ.get("screening.body_too_large"):
        abort(413)
    has_body = bool(request.content_length) or request.mimetype != ""
    if request.path.startswith("/api/"):  # the booking systems' JSON API (appointments/api.py): JSON only
        if has_body and request.mimetype != "application/json":
            abort(415)
        return None
    if has_body and request.mimetype not in FORM_TYPES:
        abort(415)
    if request.mimetype == "multipart/form-data" and request.files and request.endpoint not in FILE_ENDPOINTS:
        abort(400)  # only the CSV import takes a file: elsewhere a text field sent as a file is refused, not read
    return None


class ChunkedBodyLimit:
    """WSGI middleware: a chunked body (no Content-Length) longer than the limit is refused, not cut short.

    Werkzeug checks MAX_CONTENT_LENGTH against Content-Length; a body sent in chunks has none, and the server
    hands it over as it came. Up to the limit it is read here and passed on with its length; one byte more and
    the request is marked, so that ``only_form_bodies`` answers 413 before anything reads it.
    """

    def __init__(self, wsgi_app, limit: int):
        self.wsgi_app = wsgi_app
        self.limit = limit

    def __call__(self, environ, start_response):
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not environ.get("CONTENT_LENGTH"):
            body = environ["wsgi.input"].read(self.limit + 1)
            if len(body) > self.limit:
                environ["screening.body_too_large"] = True
                body = b""
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            environ.pop("wsgi.input_terminated", None)
        return self.wsgi_app(environ, start_response)


def database_unavailable(exc):
    """A database that does not answer in time (or at all): roll back, log the type only, answer the 503 page."""
    try:
        from .extensions import db

        db.session.rollback()
    except Exception:  # noqa: BLE001 - the connection may be gone; the pool replaces it
        pass
    current_app.logger.error("%s %s not served: database error %s", request.method, request.endpoint,
                             type(getattr(exc, "orig", None) or exc).__name__)
    return render_error(_ServiceUnavailable())


class _ServiceUnavailable(HTTPException):
    code = 503


# -- wiring --------------------------------------------------------------------------------


def init_app(app) -> None:
    """Add the headers to every response, the nonce to every template, and the error pages."""
    proxies = int(app.config.get("PROXY_COUNT", 0))
    if proxies > 0:
        # Behind a reverse proxy, the client's address and scheme come from its X-Forwarded-For/-Proto headers,
        # trusted from exactly this many proxies: the rate limits count clients, and HSTS needs to know HTTPS.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)
    css = accent_css(app.config["CLINIC"]["accent"])
    app.extensions["screening_style_hashes"] = (csp_hash(css),)
    # Checked before anything else reads the request (CSRF included).
    app.wsgi_app = ChunkedBodyLimit(app.wsgi_app, int(app.config["MAX_CONTENT_LENGTH"]))
    app.before_request_funcs.setdefault(None, []).insert(0, only_form_bodies)
    app.register_error_handler(OperationalError, database_unavailable)
    app.register_error_handler(PoolTimeout, database_unavailable)
    app.after_request(set_headers)
    app.context_processor(lambda: {"csp_nonce": _LazyNonce(), "accent_css": css})
    for code in ERROR_CODES:
        app.register_error_handler(code, render_error)
