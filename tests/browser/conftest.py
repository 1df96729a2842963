"""Browser tests: the system Chromium, driven by Playwright, against the app served by gunicorn.

Nothing here downloads a browser: Playwright is pointed at /usr/bin/chromium (Debian's ``chromium``
package; SCREENING_TEST_CHROMIUM names another). Without it every browser test is skipped, loudly;
with CI=true a missing browser fails them instead.

Each run serves the app with gunicorn on a free loopback port (the tests bind the socket and hand it
over, so there is no race for the port) from a temporary SQLite database migrated with
``flask db upgrade``, and writes a screenshot of every page it visits, and the PDF's pages as PNG, to
tests/artifacts/browser/ (git-ignored) for a person to look through.

No test sleeps: every wait is for a condition (Playwright's auto-waiting, ``expect``, a navigation,
or the server answering its first request).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from playwright.sync_api import expect, sync_playwright

from screening import questions as qd
from screening.config import ROOT
from tests.web import page_data

CHROMIUM = Path(os.environ.get("SCREENING_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
ARTIFACTS = ROOT / "tests" / "artifacts" / "browser"
AXE = Path(__file__).with_name("axe.min.js")
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
CLINIC = "Test Clinic"
ENCRYPTION_KEY = Fernet.generate_key().decode()  # this run's key: the servers encrypt with it, the tests decrypt

_missing: list[str] = []


def _require(found: bool, what: str) -> None:
    """Skip (or, under CI=true, fail) when something the browser tests need is not installed."""
    if found:
        return
    if what not in _missing:
        _missing.append(what)
    if IN_CI:
        pytest.fail(f"{what}; CI=true, so this is a failure, not a skip", pytrace=False)
    pytest.skip(f"BROWSER TESTS NOT RUN: {what}")


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: a test that drives Chromium (deselect with -m 'not browser')")


def pytest_collection_modifyitems(config, items):
    """Mark every test of this folder ``browser``."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)


def pytest_terminal_summary(terminalreporter):
    """Say at the end of the run, in red, that browser tests did not run and why."""
    for what in _missing:
        verdict = "FAILED (CI=true)" if IN_CI else "skipped"
        terminalreporter.write_sep("!", f"browser tests {verdict}: {what}", red=True, bold=True)


# -- the server ----------------------------------------------------------------------------


@dataclass
class LiveServer:
    """The app served by gunicorn on a loopback port, with its own SQLite database."""

    url: str
    db_path: Path
    env: dict
    log_path: Path

    def log(self) -> str:
        """Return everything the server has written (access log and errors)."""
        return self.log_path.read_text(errors="replace")

    def flask(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        """Run ``flask --app wsgi ARGS`` against this server's database and settings."""
        done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=self.env,
                              input=input, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"flask {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done

    def query(self, sql: str, *params) -> list[tuple]:
        """Run a read-only SQL query on the server's database."""
        with contextlib.closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)) as con:
            return con.execute(sql, params).fetchall()

    def submission(self, reference: str) -> dict | None:
        """Return the stored submission with ``reference`` (answers and result decoded), or None."""
        with contextlib.closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)) as con:
            con.row_factory = sqlite3.Row
            row = con.execute("SELECT * FROM submission WHERE reference = ?", (reference,)).fetchone()
        if row is None:
            return None
        out = dict(row)
        from screening.crypto import binding, unseal

        keys = Fernet(ENCRYPTION_KEY.encode())  # stored encrypted at rest: decrypt as the app does
        row_binding = binding("submission", out)

        def opened(column: str) -> bytes:
            bound_to, value = unseal(keys.decrypt(out[column]))  # each value is bound to its row
            assert bound_to == f"submission|{column}|{row_binding}", bound_to
            return value

        out["answers"] = json.loads(opened("answers"))
        out["result"] = json.loads(opened("result"))
        out["signature_name"] = opened("signature_name").decode()
        return out


def _server_env(db_path: Path, extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCREENING_", "FLASK_"))}
    env.update({
        "SCREENING_DATABASE_URL": f"sqlite:///{db_path}",
        "SCREENING_SECRET_KEY": secrets.token_hex(32),
        "SCREENING_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        "SCREENING_INDEX_KEY": secrets.token_hex(32),
        "SCREENING_CLINIC_NAME": CLINIC,
        "SCREENING_PDF_BACKGROUND": "0",
        # The server's task queue and mail folder beside its database, never the developer's instance/.
        "SCREENING_QUEUE_URL": f"sqlite:///{db_path.parent / 'queue.db'}",
        "SCREENING_MAIL_DIR": str(db_path.parent / "mail"),
        "PYTHONUNBUFFERED": "1",
        # Staff sign in with a password alone here; tests/browser/test_two_factor.py serves the shipped setting.
        "SCREENING_TWO_FACTOR_ROLES": "",
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


# The address in the links an app server emails; a test opens their path on the live server.
MAIL_BASE_URL = "https://screening.clinic.test"


@pytest.fixture(scope="module")
def mail_server():
    """A real SMTP server (aiosmtpd, in this process) for a module's app server, started once: (url, Mailbox)."""
    from tests.conftest import Mailbox, smtp_server

    mailbox = Mailbox()
    with smtp_server(mailbox) as url:
        yield url, mailbox


def sending_mail_to(url: str, sender: str) -> dict[str, str]:
    """The settings of an app server that sends its email at once, from ``sender``, to the SMTP server at ``url``."""
    return {"SCREENING_MAIL_URL": url, "SCREENING_QUEUE_URL": "immediate", "SCREENING_MAIL_FROM": sender,
            "SCREENING_BASE_URL": MAIL_BASE_URL, "SCREENING_MAIL_RETRY_SECONDS": "0.05",
            "SCREENING_MAIL_MAX_ATTEMPTS": "2"}


@contextlib.contextmanager
def live_server_at(folder: Path, host: str = "127.0.0.1", **settings):
    """Migrate a new database in ``folder``, serve the app on a free port until the block ends.

    ``settings`` are extra environment variables, e.g. SCREENING_KIOSK_IDLE_SECONDS="8"; "{port}" in one is the
    server's port. ``host`` is the name the browser uses ("localhost" for passkeys: WebAuthn refuses an IP address).
    """
    folder.mkdir(parents=True, exist_ok=True)
    db_path = folder / "screening.db"
    env = _server_env(db_path, settings)
    migrate = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert migrate.returncode == 0, f"flask db upgrade failed:\n{migrate.stdout}\n{migrate.stderr}"
    # Bind port 0 here and give gunicorn the listening socket: the port is known and cannot be taken.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    env = {k: v.replace("{port}", str(port)) for k, v in env.items()}
    log_path = folder / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"fd://{listener.fileno()}", "--workers", "1",
             "--threads", "8", "--graceful-timeout", "5", "--access-logfile", "-", "--chdir", str(ROOT), "wsgi:app"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, pass_fds=(listener.fileno(),))
    listener.close()
    server = LiveServer(url=f"http://{host}:{port}", db_path=db_path, env=env, log_path=log_path)
    try:
        _wait_until_ready(server, proc)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_until_ready(server: LiveServer, proc: subprocess.Popen, limit: float = 60) -> None:
    """Poll the start page until it answers 200 (the socket queues the request until a worker is up)."""
    deadline = time.monotonic() + limit
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode} before it was ready:\n{server.log()}")
        try:
            with urllib.request.urlopen(server.url + "/", timeout=10) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the server did not answer within {limit:.0f} s:\n{server.log()}")
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.1)  # a pause that ends early if the server dies


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The folder for screenshots (each journey empties its own subfolder when it starts)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """One server for the public journeys."""
    with live_server_at(tmp_path_factory.mktemp("public")) as server:
        yield server


@pytest.fixture(scope="session")
def short_timers_server(tmp_path_factory):
    """A second server whose idle limits are short: staff 9 seconds, kiosk 10 seconds."""
    with live_server_at(tmp_path_factory.mktemp("short-timers"), SCREENING_STAFF_IDLE_MINUTES="0.15",
                        SCREENING_KIOSK_IDLE_SECONDS="10") as server:
        yield server


def _server_errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if "Traceback" in line or '" 500 ' in line]


@pytest.fixture
def server(live_server):
    """The public server; a test fails if the server logged an exception or a 500 while it ran."""
    start = live_server.log_path.stat().st_size
    yield live_server
    with open(live_server.log_path, "rb") as log:
        log.seek(start)
        new = log.read().decode(errors="replace")
    assert not _server_errors(new), f"the server logged errors during this test:\n{new}"


STAFF_PASSWORD = "correct horse battery staple"


@pytest.fixture
def staff_user():
    """Return a function that creates a staff account on a server with the CLI (password on stdin)."""

    def create(server: LiveServer, email: str, role: str, name: str) -> tuple[str, str]:
        server.flask("screening", "create-user", email, "--role", role, "--name", name,
                     input=f"{STAFF_PASSWORD}\n{STAFF_PASSWORD}\n")
        return email, STAFF_PASSWORD

    return create


# -- the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def playwright_driver():
    """Playwright's driver (it ships inside the pip package; no browser is downloaded)."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright_driver):
    """The system Chromium, headless, with a fresh profile."""
    _require(CHROMIUM.exists(), f"no Chromium at {CHROMIUM} (apt-get install chromium, or set "
                                "SCREENING_TEST_CHROMIUM to another Chromium)")
    instance = playwright_driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    yield instance
    instance.close()


@pytest.fixture
def new_context(browser, server):
    """Return a function that opens a fresh browser context on the server, or ``on=`` another one
    (closed after the test).

    Every context fails the test if a page requests another host or throws a JavaScript error.
    """
    contexts, problems = [], []

    def watch(page):
        page.on("pageerror", lambda error: problems.append(f"JavaScript error on {page.url}: {error}"))
        # Anything the app's Content-Security-Policy refuses (an inline style or script, another host) is a bug.
        page.on("console", lambda message: problems.append(f"{page.url}: {message.text}")
                if "Content Security Policy" in message.text else None)

    def make(*, on: LiveServer | None = None, **options):
        origin = (on or server).url
        context = browser.new_context(base_url=origin, **options)
        context.set_default_timeout(15_000)
        context.set_default_navigation_timeout(20_000)
        context.on("request", lambda r: None if r.url.startswith((origin + "/", "data:", "blob:", "about:"))
                   else problems.append(f"request to another host: {r.url}"))
        context.on("page", watch)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
    assert not problems, "\n".join(problems)


# -- checks run on every page --------------------------------------------------------------

_AXE_RUN = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map(n => ({target: n.target.join(' '), html: n.html, summary: n.failureSummary}))}));
}"""


def axe_violations(page) -> list[dict]:
    """Run axe-core (the vendored copy) on the page; return its WCAG 2.0-2.2 A/AA violations.

    The page's context must allow JavaScript: with it off, axe's timers never fire and the run never
    ends. ``Client.look`` checks pages shown without JavaScript on a mirror (see there).
    """
    if not page.evaluate("() => typeof window.axe === 'object'"):
        # Evaluated through the DevTools protocol, which the page's Content-Security-Policy does not govern
        # (a <script> tag added to the page, as add_script_tag does, would be refused by it): the app's
        # policy stays on and is tested by every journey, and no bypass_csp is needed.
        page.evaluate(_axe_source())
    return page.evaluate(_AXE_RUN, AXE_TAGS)


_AXE_SOURCE: list[str] = []


def _axe_source() -> str:
    if not _AXE_SOURCE:
        _AXE_SOURCE.append(AXE.read_text())
    return _AXE_SOURCE[0]


def format_violations(found: list[tuple[str, str, dict]]) -> str:
    """Describe every axe violation: where, rule id, impact, help, and each node's target and HTML."""
    lines = []
    for label, url, v in found:
        lines.append(f"[{label}] {url}\n  {v['id']} ({v['impact']}): {v['help']}\n  {v['helpUrl']}")
        for node in v["nodes"]:
            lines.append(f"    target: {node['target']}\n    html:   {node['html']}\n    {node['summary']}")
    return "\n".join(lines)


_ERROR_STATE = """() => {
  const problems = [];
  const clean = s => s.replace(/\\s+/g, ' ').trim().replace(/^Error:\\s*/, '');
  const summary = document.querySelector('.error-summary');
  if (!summary) return ['the page has no error summary'];
  if (document.activeElement !== summary)
    problems.push('the error summary is not focused on load; focus is on ' + document.activeElement.outerHTML.slice(0, 120));
  const heading = summary.querySelector('h2');
  if (!heading || heading.textContent.trim() !== 'There is a problem') problems.push('the summary is not headed "There is a problem"');
  if (!document.querySelector('main').firstElementChild.isSameNode(summary)) problems.push('the summary is not first in <main>');
  const links = [...summary.querySelectorAll('a')];
  if (!links.length) problems.push('the error summary lists no error');
  for (const a of links) {
    const id = decodeURIComponent(a.hash.slice(1));
    const field = document.getElementById(id);
    if (!field) { problems.push(`summary link ${a.hash} points at nothing`); continue; }
    if (!field.matches('input, select, textarea')) problems.push(`summary link ${a.hash} points at a ${field.tagName}, not a field`);
    const ids = [];
    for (let el = field; el; el = el.parentElement)
      if (el === field || el.tagName === 'FIELDSET')
        ids.push(...(el.getAttribute('aria-describedby') || '').split(/\\s+/).filter(Boolean));
    const messages = ids.map(i => document.getElementById(i))
      .filter(el => el && el.classList.contains('error-message')).map(el => clean(el.textContent));
    if (!messages.includes(clean(a.textContent)))
      problems.push(`#${id} is not described by its message "${clean(a.textContent)}" (aria-describedby: ${ids.join(' ') || 'none'})`);
  }
  for (const m of document.querySelectorAll('.error-message')) {
    if (!links.some(a => clean(a.textContent) === clean(m.textContent)))
      problems.push(`the message "${clean(m.textContent)}" is not in the summary`);
    if (!m.id || !document.querySelector(`[aria-describedby~="${m.id}"]`))
      problems.push(`the message "${clean(m.textContent)}" describes no field`);
  }
  return problems;
}"""

_OVERFLOW = """() => {
  const problems = [];
  const root = document.documentElement, width = root.clientWidth;
  if (root.scrollWidth > width) problems.push(`the page scrolls sideways: ${root.scrollWidth} px wide in ${width} px`);
  const controls = 'input, select, textarea, button, a.button, .back-link, h1, h2, legend, label, p, dt, dd, li';
  for (const el of document.querySelectorAll(controls)) {
    if (!el.checkVisibility() || el.closest('.visually-hidden, .skip-link')) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.left < -1 || r.right > width + 1)
      problems.push(`${el.outerHTML.slice(0, 100)} reaches ${Math.round(r.left)}..${Math.round(r.right)} px, outside 0..${width}`);
  }
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('.visually-hidden') || !el.checkVisibility()) continue;
    const style = getComputedStyle(el);
    if (!el.matches('input, select, textarea') && ['hidden', 'clip'].includes(style.overflowX) && el.scrollWidth > el.clientWidth + 1)
      problems.push(`${el.outerHTML.slice(0, 100)} cuts off its content (${el.scrollWidth} px in ${el.clientWidth} px)`);
  }
  return problems;
}"""

_FOCUS = """([selector, text]) => {
  const el = document.activeElement;
  if (!el || el === document.body || el === document.documentElement)
    return {match: false, visible: false, html: 'nothing (focus is on the body)'};
  const style = getComputedStyle(el);
  const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
  const shadow = style.boxShadow !== 'none';
  const r = el.getBoundingClientRect();
  const onScreen = r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth;
  const match = !!selector && el.matches(selector) &&
    (!text || el.textContent.replace(/\\s+/g, ' ').trim() === text);
  // <main> takes focus only from the skip link and is no control: it needs no indicator.
  return {match, visible: (outline || shadow) && onScreen || el.tagName === 'MAIN', html: el.outerHTML.slice(0, 160)};
}"""


# -- one person in one tab -----------------------------------------------------------------


class Client:
    """A person answering the questionnaire in a browser tab: by touch, by mouse, or by keyboard alone.

    ``look`` runs the checks every page gets (title, axe, layout, error state) and takes a screenshot.
    """

    def __init__(self, page, *, name: str, how: str, shots: Path, js: bool = True, mirror=None):
        assert how in ("touch", "mouse", "keyboard")
        assert js or mirror is not None, "a page without JavaScript needs a mirror page to run axe in"
        self.page, self.name, self.how, self.js = page, name, how, js
        self.mirror = mirror
        self._mirrored: tuple[str, str] = ("", "")
        if mirror is not None:
            mirror.route("**/*", self._serve_mirror)
        self.shots = shots / name
        shutil.rmtree(self.shots, ignore_errors=True)
        self.shots.mkdir(parents=True)
        self.step = 0
        self.violations: list[tuple[str, str, dict]] = []
        self.titles: dict[str, str] = {}  # path -> title, for pages shown without errors
        self.focus_stops = 0
        self.text_size: str | None = None  # e.g. "200%": the root font size set before each look
        self.axe = True  # run axe-core in each look

    # checks

    def look(self, label: str, *, error: bool = False, title: str | None = None) -> None:
        """Check the page now shown and save a screenshot of it.

        The title must be the <h1> (or ``title``), then the clinic, with "Error: " in front on an error.
        """
        page = self.page
        self.step += 1
        if self.text_size:
            page.evaluate("size => { document.documentElement.style.fontSize = size; }", self.text_size)
        # First, so that a page that fails a check below can be seen too.
        page.screenshot(path=self.shots / f"{self.step:02d}-{label}.png", full_page=True)
        heading = title or " ".join(page.locator("h1").inner_text().split())
        shown = page.title()
        assert shown == f"{'Error: ' if error else ''}{heading} – {CLINIC}", (label, shown)
        if error:
            problems = page.evaluate(_ERROR_STATE)
            assert not problems, f"{label}: " + "; ".join(problems)
        else:
            assert page.locator(".error-summary").count() == 0, f"{label}: unexpected errors"
            self.titles.setdefault(urllib.parse.urlsplit(page.url).path, shown)
        problems = page.evaluate(_OVERFLOW)
        assert not problems, f"{label}: " + "; ".join(problems)
        if self.axe:
            self.violations += [(label, page.url, v) for v in axe_violations(self._axe_page())]

    def _axe_page(self):
        """Return the page axe can run in: this one, or for a page shown without JavaScript, a mirror.

        With JavaScript off axe cannot run (its timers never fire), so the same document (the DOM as
        the server sent it, since no script ran) is loaded into a tab of a context with JavaScript on,
        the same viewport and the page's own stylesheets, with the app's scripts refused.
        """
        if self.js:
            return self.page
        url = self.page.url.split("#")[0]
        self._mirrored = (url, self.page.content())
        self.mirror.goto(url)
        return self.mirror

    def _serve_mirror(self, route) -> None:
        request = route.request
        if request.resource_type == "document" and request.url == self._mirrored[0]:
            route.fulfill(status=200, content_type="text/html; charset=utf-8", body=self._mirrored[1])
        elif request.resource_type == "script":
            route.abort()
        else:
            route.continue_()

    def assert_accessible(self, known: dict[tuple[str, str], str] | None = None) -> None:
        """Fail with every axe violation met on the way.

        ``known`` maps (look label, axe rule id) to the reason it is tolerated for now, and where it is to be
        fixed. A known violation that is no longer found fails too, so that the entry is removed.
        """
        known = known or {}
        found = [(label, url, v) for label, url, v in self.violations if (label, v["id"]) not in known]
        gone = set(known) - {(label, v["id"]) for label, _, v in self.violations}
        assert not found, "axe-core found violations:\n" + format_violations(found)
        assert not gone, f"fixed, so remove from the known violations: {sorted(gone)}"

    def assert_titles_distinct(self) -> None:
        """Each page has its own title."""
        seen: dict[str, str] = {}
        for path, title in self.titles.items():
            assert title not in seen, f"{path} and {seen[title]} share the title {title!r}"
            seen[title] = path

    # moving about

    def navigate(self, action) -> None:
        """Run ``action`` (a click, a tap, a key press) and wait for the page it loads."""
        with self.page.expect_navigation():
            action()

    def press(self, key: str) -> dict:
        """Press a key and check that whatever has focus shows it."""
        self.page.keyboard.press(key)
        self.focus_stops += 1
        state = self.page.evaluate(_FOCUS, [None, None])
        assert state["visible"], f"{self.name}: after {key}, no visible focus on {state['html']}"
        return state

    def tab_to(self, selector: str, text: str | None = None, *, backwards: bool = False, limit: int = 200) -> None:
        """Press Tab (or Shift+Tab) until the element matching ``selector`` (and ``text``) has focus."""
        if self.page.evaluate(_FOCUS, [selector, text])["match"]:
            return
        key = "Shift+Tab" if backwards else "Tab"
        stops = []
        for _ in range(limit):
            self.page.keyboard.press(key)
            self.focus_stops += 1
            state = self.page.evaluate(_FOCUS, [selector, text])
            stops.append(state["html"][:70])
            assert state["visible"], (f"{self.name}: no visible focus on {state['html']} (going to {selector} "
                                      f"on {self.page.url}); the stops were:\n" + "\n".join(stops))
            if state["match"]:
                return
        raise AssertionError(f"{self.name}: {key} never reached {selector} {text or ''} on {self.page.url}")

    def focused_id(self) -> str:
        return self.page.evaluate("() => document.activeElement.id")

    def start(self) -> None:
        """Go from the start page to the first question."""
        self.button("Start now")
        expect(self.page).to_have_url(re.compile(r"/q/about-you$"))

    def button(self, name: str) -> None:
        """Use the form's button called ``name`` and wait for the next page."""
        target = self.page.get_by_role("button", name=name, exact=True)
        if self.how == "keyboard":
            self.tab_to("button", name)
            self.navigate(lambda: self.page.keyboard.press("Enter"))
        elif self.how == "touch":
            self.navigate(target.tap)
        else:
            self.navigate(target.click)

    def link(self, name: str) -> None:
        """Follow the link called ``name`` (a new page loads)."""
        target = self.page.get_by_role("link", name=name, exact=True)
        if self.how == "keyboard":
            self.tab_to("a", name)
            self.navigate(lambda: self.page.keyboard.press("Enter"))
        elif self.how == "touch":
            self.navigate(target.tap)
        else:
            self.navigate(target.click)

    def fix_through_summary(self, message: str) -> str:
        """Use the error summary's link for ``message``; check it puts focus on the field; return the field's id."""
        link = self.page.locator(".error-summary a", has_text=message)
        expect(link).to_have_count(1)
        target = link.get_attribute("href").lstrip("#")
        if self.how == "keyboard":
            self.tab_to(".error-summary a", " ".join(link.inner_text().split()))
            self.press("Enter")
        elif self.how == "touch":
            link.tap()
        else:
            link.click()
        expect(self.page.locator(f"[id='{target}']")).to_be_focused()
        return target

    # answering

    def fill(self, page_def: qd.Page, answers: dict) -> None:
        """Answer the questions of ``page_def`` that ``answers`` has, in the order they appear."""
        for q in qd.page_questions(page_def):
            if q.id in answers:
                self.answer(q, q.id, answers[q.id])

    def answer(self, q: qd.Question, name: str, value) -> None:
        if q.type == qd.GROUP:
            for i, item in enumerate(value):
                for f in q.fields:
                    if f.id in item:
                        self.answer(f, f"{name}-{i}-{f.id}", item[f.id])
        elif q.type == qd.DATE:
            self.date(name, value)
        elif q.type == qd.TEXT:
            self.text(name, value)
        elif q.type in (qd.MULTI, qd.AREAS):
            for code in value:
                self.tick(name, code)
        elif q.type == qd.SINGLE and name != q.id:  # a choice inside a repeated group is a <select>
            self.select(name, value)
        else:
            self.radio(name, value)

    def text(self, field_id: str, value: str) -> None:
        box = self.page.locator(f"[id='{field_id}']")
        if box.input_value() == value:
            return
        if self.how == "keyboard":
            self.tab_to(f"[id='{field_id}']")
            self.page.keyboard.press("Control+A")
            self.page.keyboard.type(value)
        else:
            if self.how == "touch":
                box.tap()
            box.fill(value)
        expect(box).to_have_value(value)

    def date(self, name: str, value: str) -> None:
        if value == qd.UNKNOWN:
            self.tick_box(f"{name}-unknown")
            return
        parts = value.split("-")
        filled = {"year": parts[0], "month": str(int(parts[1]))}
        if len(parts) == 3:
            filled["day"] = str(int(parts[2]))
        for part in ("day", "month", "year"):
            if part in filled:
                self.text(f"{name}-{part}", filled[part])

    def radio(self, name: str, code: str) -> None:
        choice = self.page.locator(f"input[type=radio][name='{name}'][value='{code}']")
        if choice.is_checked():
            return
        if self.how == "keyboard":
            # Tab enters the group once; the arrow keys move through it and choose.
            self.tab_to(f"input[type=radio][name='{name}']")
            values = self.page.locator(f"input[type=radio][name='{name}']").evaluate_all("els => els.map(e => e.value)")
            here = values.index(self.page.evaluate("() => document.activeElement.value"))
            there = values.index(code)
            for _ in range(abs(there - here)):
                self.press("ArrowDown" if there > here else "ArrowUp")
            if not choice.is_checked():
                self.press("Space")
        elif self.how == "touch":
            self.page.locator(f"label[for='{choice.get_attribute('id')}']").tap()
        else:
            choice.check()
        expect(choice).to_be_checked()

    def tick(self, name: str, code: str) -> None:
        box = self.page.locator(f"input[type=checkbox][name='{name}'][value='{code}']")
        self._tick(box, f"input[type=checkbox][name='{name}'][value='{code}']")

    def tick_box(self, field_id: str) -> None:
        self._tick(self.page.locator(f"[id='{field_id}']"), f"[id='{field_id}']")

    def _tick(self, box, selector: str) -> None:
        if box.is_checked():
            return
        if self.how == "keyboard":
            self.tab_to(selector)
            self.press("Space")
        elif self.how == "touch":
            self.page.locator(f"label[for='{box.get_attribute('id')}']").tap()
        else:
            box.check()
        expect(box).to_be_checked()

    def select(self, field_id: str, code: str) -> None:
        menu = self.page.locator(f"[id='{field_id}']")
        if self.how == "keyboard":
            self.tab_to(f"[id='{field_id}']")
            options = menu.evaluate("el => [...el.options].map(o => o.value)")
            for _ in range(len(options)):
                if menu.input_value() == code:
                    break
                self.press("ArrowDown")
        else:
            if self.how == "touch":
                menu.tap()
            menu.select_option(code)
        expect(menu).to_have_value(code)


@pytest.fixture
def open_client(new_context, artifacts):
    """Return a function that opens a new tab in a new context and returns a Client for it."""

    def make(name: str, how: str, js: bool = True, on: LiveServer | None = None, **options) -> Client:
        context = new_context(on=on, java_script_enabled=js, **options)
        mirror = None if js else new_context(on=on, **options).new_page()
        return Client(context.new_page(), name=name, how=how, shots=artifacts, js=js, mirror=mirror)

    return make


# -- answers, and drafts made without the browser -------------------------------------------


def journey_answers(*, microneedling: bool = False, **changes) -> dict:
    """A complete set of answers for the journeys: isotretinoin stopped three months ago (a deferral).

    With ``microneedling``, also a session six weeks ago: a repeated group with a menu, a date and areas.
    """
    from tests.answers import clear_answers

    today = dt.date.today()
    answers = clear_answers(
        appointment_date=(today + dt.timedelta(days=30)).isoformat(),
        isotretinoin_last_12m="yes",
        isotretinoin_current="no",
        isotretinoin_last_dose_date=f"{today - dt.timedelta(days=90):%Y-%m}",
    )
    if microneedling:
        answers.update(microneedling_3m="yes", last_microneedling=[
            {"date": (today - dt.timedelta(days=42)).isoformat(), "variant": "standard", "location": ["full_face"]}])
    answers.update(changes)
    return answers


@pytest.fixture
def answers():
    """The journeys' answers (a function: call it with changes)."""
    return journey_answers


_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def _form_post(request, url: str, data: dict, *, form_on: str | None = None):
    """GET the form (at ``form_on``, else ``url``), then POST ``data`` with its CSRF token to ``url``."""
    html = request.get(form_on or url).text()
    token = _CSRF.search(html)
    assert token, f"no CSRF token on {form_on or url}"
    body = urllib.parse.urlencode({"csrf_token": token.group(1), **data}, doseq=True)
    return request.post(url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})


def answer_over_http(request, answers: dict, *, sign: bool = False) -> str | None:
    """Start a draft and answer every page with plain HTTP posts (``request``: a Playwright request
    context, e.g. ``context.request``, which shares the browser's cookies). With ``sign``, also sign and
    send, and return the reference."""
    response = _form_post(request, "/start", {"action": "start"}, form_on="/")
    assert response.ok and response.url.endswith("/q/about-you"), response.url
    for page_def in qd.PAGES:
        response = _form_post(request, f"/q/{page_def.id}", page_data(page_def, answers))
        assert response.ok, (page_def.id, response.status, re.findall(r'<li><a href="#[^"]+">([^<]+)</a>',
                                                                       response.text()))
    assert response.url.endswith("/check"), response.url
    if not sign:
        return None
    response = _form_post(request, "/declaration", {"confirm": "y", "signature": answers["full_name"]})
    assert response.ok and response.url.endswith("/done"), (response.status, response.url)
    match = re.search(r'class="reference">([A-Z0-9-]+)<', response.text())
    assert match, "no reference on the confirmation page"
    return match.group(1)


@pytest.fixture
def over_http():
    """``answer_over_http`` (see there)."""
    return answer_over_http
