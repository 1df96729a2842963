"""The app under gunicorn, and clients speaking real HTTP to it: shared by tests and ``bench/`` scripts.

- ``server_env`` / ``migrate`` / ``serve``: a migrated database and ``gunicorn -w N wsgi:app`` on a free
  loopback port (the listening socket is bound here and handed over, so the port cannot be taken),
  stopped when the block ends (SIGTERM, then SIGKILL to its own process group).
- ``Client``: one browser, with its own cookie jar, over ``http.client`` (a new connection per request:
  gunicorn's sync workers close it).
- ``complete_questionnaire``: start, answer every page, sign and submit; the final POST is timed.
- ``run_load``: many clients in threads completing questionnaires until a count is reached.
- ``orm_app``: an app on the server's database and keys, to read what it stored through the ORM.

Traffic goes only to 127.0.0.1, in loops bounded in count and time.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import http.client
import json
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from screening import questions as qd
from screening.config import ROOT
from tests.answers import clear_answers
from tests.web import csrf_token, page_data

HOST = "127.0.0.1"
ERROR_SUMMARY = re.compile(r'<li><a href="#[^"]+">([^<]+)</a>')
REFERENCE = re.compile(r'class="reference">([A-Z0-9-]+)<')


# -- the server ---------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nobody listens on (at the moment of asking)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def smtp_server(handler):
    """Run a real SMTP server (aiosmtpd) with ``handler`` on a free loopback port in this process; yield its URL."""
    import asyncio

    from aiosmtpd.controller import Controller

    port = free_port()
    loop = asyncio.new_event_loop()  # ours, so that it is closed (a loop left open is a ResourceWarning)
    controller = Controller(handler, hostname=HOST, port=port, loop=loop, server_hostname="localhost")
    controller.start()
    try:
        yield f"smtp://{HOST}:{port}"
    finally:
        controller.stop()
        loop.close()


def server_env(database_url: str, **extra: str) -> dict:
    """The environment for the app's processes: this one's, less any SCREENING_/FLASK_ setting, plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCREENING_", "FLASK_"))}
    # A task queue and a mail folder of this run only (never the developer's instance/queue.db and instance/mail).
    folder = tempfile.mkdtemp(prefix="screening-live-")
    env.update({"SCREENING_DATABASE_URL": database_url, "SCREENING_SECRET_KEY": secrets.token_hex(32),
                "SCREENING_QUEUE_URL": f"sqlite:///{folder}/queue.db", "SCREENING_MAIL_DIR": f"{folder}/mail",
                # Keys of this run only (a Fernet key is 32 random bytes, URL-safe base64).
                "SCREENING_ENCRYPTION_KEYS": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
                "SCREENING_INDEX_KEY": secrets.token_hex(32),
                "SCREENING_PDF_BACKGROUND": "queue", "PYTHONUNBUFFERED": "1",
                # Every simulated client comes from 127.0.0.1: lift the per-address limits on the public form.
                "SCREENING_START_LIMIT": "100000 per hour", "SCREENING_SUBMIT_LIMIT": "100000 per hour"})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def flask_cmd(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``flask --app wsgi ARGS`` with ``env``; return the finished process (not checked)."""
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def migrate(env: dict) -> None:
    """``flask --app wsgi db upgrade`` on the environment's database; raise if it fails."""
    done = flask_cmd(env, "db", "upgrade", timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"flask db upgrade failed:\n{done.stdout}\n{done.stderr}")


def orm_app(env: dict, **settings):
    """An app on the same database and keys as the server started with ``env`` (read the ORM through it)."""
    from screening import create_app
    from screening.config import from_environ

    return create_app({**from_environ(env), "TESTING": True, **settings})


def reset_database(env: dict) -> None:
    """Drop every table of the environment's database, Alembic's too (a shared PostgreSQL test database)."""
    from screening.extensions import db

    app = orm_app(env, CHECK_KEYS=False)  # the database may hold another run's key canary
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        db.session.remove()
        db.engine.dispose()


@dataclass
class Server:
    """A running gunicorn: its port, process and log file."""

    port: int
    proc: subprocess.Popen
    log_path: Path
    outcome: str = "running"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_problems(self) -> list[str]:
        """The lines of the log that report an error."""
        return [line for line in self.log().splitlines()
                if any(w in line for w in ("ERROR", "Traceback", "CRITICAL", "WORKER TIMEOUT", "Error"))]


def wait_until_up(port: int, proc: subprocess.Popen, timeout: float = 60) -> float:
    """Poll GET / until it answers 200; return the seconds it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode} before answering")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=10)
            conn.request("GET", "/")
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return time.monotonic() - t0
        except OSError:
            pass
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.2)  # a pause that ends early if gunicorn dies
    raise RuntimeError(f"gunicorn did not answer on port {port} within {timeout:.0f} s")


def stop(proc: subprocess.Popen, timeout: float = 40) -> str:
    """Stop a gunicorn we started: SIGTERM to its master, then SIGKILL to its own process group."""
    if proc.poll() is not None:
        return f"had already exited ({proc.returncode})"
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
        return "stopped (SIGTERM)"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group was made for this gunicorn (start_new_session)
        proc.wait(timeout=10)
        return f"KILLED (SIGKILL) after {timeout:.0f} s"


@contextlib.contextmanager
def serve(env: dict, log_path: Path, *, workers: int = 2, extra_args: tuple[str, ...] = ()):
    """Serve ``wsgi:app`` with ``gunicorn -w WORKERS`` on a free loopback port until the block ends."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((HOST, 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"fd://{listener.fileno()}",
             *extra_args, "wsgi:app"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, pass_fds=(listener.fileno(),),
            start_new_session=True)
    listener.close()
    server = Server(port=port, proc=proc, log_path=log_path)
    try:
        wait_until_up(port, proc)
        yield server
    finally:
        server.outcome = stop(proc)


# -- clients ------------------------------------------------------------------------------


class Client:
    """One browser: its own cookie jar, a new connection per request (gunicorn's sync workers close it).

    With ``timings`` (and its ``lock``), each request sent with a ``kind`` adds its milliseconds there.
    """

    def __init__(self, port: int, timings: dict[str, list[float]] | None = None,
                 lock: threading.Lock | None = None, agent: str = "tests.live"):
        self.port = port
        self.cookies: dict[str, str] = {}
        self.timings = timings
        self.lock = lock or threading.Lock()
        self.agent = agent
        self.requests = 0

    def target(self) -> tuple[int, dict[str, str]]:
        """Return the port this request goes to and headers to add (tests/scale.py spreads requests over servers)."""
        return self.port, {}

    def request(self, method: str, path: str, data: dict | None = None, kind: str | None = None,
                json_body: dict | None = None, headers: dict | None = None):
        """Send one request (a form ``data``, or a ``json_body``); return (status, location, body text, ms)."""
        port, extra = self.target()
        headers = {"Host": f"{HOST}:{port}", "User-Agent": self.agent, **extra, **(headers or {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if data is not None:
            body = urlencode(data, doseq=True).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection(HOST, port, timeout=120)
        try:
            t0 = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            ms = (time.perf_counter() - t0) * 1000
            for header in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(header).items():
                    if morsel.value == "" or morsel["max-age"] == "0" or "1970" in morsel["expires"]:
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
            location = response.getheader("Location") or ""
        finally:
            conn.close()
        self.requests += 1
        if kind and self.timings is not None:
            with self.lock:
                self.timings.setdefault(kind, []).append(ms)
        return response.status, location, text, ms


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def load_answers(name: str) -> dict:
    """A complete answer set that raises a review flag (cold sores), the appointment 30 days ahead."""
    appointment = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    return clear_answers(full_name=name, appointment_date=appointment, cold_sore_history="yes",
                         cold_sore_frequency="yearly")


def complete_questionnaire(c: Client, answers: dict, *, get_each_page: bool = True,
                           barrier: threading.Barrier | None = None) -> dict:
    """Complete the questionnaire over HTTP; return the submit's status, location, ms and the reference.

    With ``get_each_page`` every page is fetched before it is posted, as a browser does (and check
    answers and the declaration are opened); without it the CSRF token of the first page serves
    every post of the draft (the token lives as long as the session), which halves the requests.
    With ``barrier`` the clients wait for one another just before the submit.
    """
    status, _, text, _ = c.request("GET", "/", kind="GET /")
    expect(status == 200, f"GET / gave {status}")
    status, _, _, _ = c.request("POST", "/start", {"csrf_token": csrf_token(text), "action": "start"},
                                kind="POST /start")
    expect(status == 302, f"POST /start gave {status}")
    token = None
    for page in qd.PAGES:
        if get_each_page or token is None:
            status, _, text, _ = c.request("GET", f"/q/{page.id}", kind="GET /q/<page>")
            expect(status == 200, f"GET /q/{page.id} gave {status}")
            token = csrf_token(text)
        status, _, text, _ = c.request("POST", f"/q/{page.id}", {"csrf_token": token, **page_data(page, answers)},
                                       kind="POST /q/<page>")
        expect(status == 302, f"POST /q/{page.id} gave {status}: {ERROR_SUMMARY.findall(text)}")
    if get_each_page:
        status, _, _, _ = c.request("GET", "/check", kind="GET /check")
        expect(status == 200, f"GET /check gave {status}")
        status, _, text, _ = c.request("GET", "/declaration", kind="GET /declaration")
        expect(status == 200, f"GET /declaration gave {status}")
        token = csrf_token(text)
    form = {"csrf_token": token, "confirm": "y", "signature": answers["full_name"]}
    if barrier is not None:
        barrier.wait(timeout=600)
    status, location, _, submit_ms = c.request("POST", "/declaration", form, kind="POST /declaration (submit)")
    reference = None
    if status == 302 and urlsplit(location).path == "/done":
        _, _, text, _ = c.request("GET", "/done", kind="GET /done")
        match = REFERENCE.search(text)
        reference = match.group(1) if match else None
    return {"status": status, "location": location, "ms": submit_ms, "reference": reference,
            "requests": c.requests}


def submitted(result: dict) -> bool:
    """Whether the submit answered 302 to /done."""
    return result.get("status") == 302 and urlsplit(result.get("location", "")).path == "/done"


@dataclass
class Load:
    """What ``run_load`` saw: one result per questionnaire, the wall time and per-kind request times."""

    results: list[dict] = field(default_factory=list)
    wall: float = 0.0
    timings: dict[str, list[float]] = field(default_factory=dict)

    @property
    def errors(self) -> list[str]:
        return [r["error"] for r in self.results if "error" in r]

    @property
    def submit_ms(self) -> list[float]:
        return sorted(r["ms"] for r in self.results if "ms" in r)


def run_load(port: int, *, clients: int, total: int, answers_for=None, get_each_page: bool = False,
             time_limit: float = 1800, max_errors: int = 10) -> Load:
    """``clients`` threads, each one browser with its own cookie jar, complete ``total`` questionnaires.

    Each thread takes the next questionnaire number until ``total`` are taken; questionnaire ``i`` is
    answered with ``answers_for(i)`` (default: ``load_answers`` with a name unique to ``i``). Nothing new
    starts after ``time_limit`` seconds or ``max_errors`` failures, so the load always stops by itself.
    """
    answers_for = answers_for or (lambda i: load_answers(f"Load Client {i:05d}"))
    load = Load()
    lock = threading.Lock()
    taken = iter(range(total))
    t0 = time.perf_counter()

    def next_job() -> int | None:
        with lock:
            if time.perf_counter() - t0 > time_limit or len(load.errors) >= max_errors:
                return None
            return next(taken, None)

    def work(n: int) -> None:
        c = Client(port, load.timings, lock, agent=f"tests.live client {n}")
        while (i := next_job()) is not None:
            answers = answers_for(i)
            try:
                out = complete_questionnaire(c, answers, get_each_page=get_each_page)
            except Exception as exc:  # noqa: BLE001 - count and report every failure
                out = {"error": f"questionnaire {i} (client {n}): {type(exc).__name__}: {exc}"}
            out.update(index=i, client=n, name=answers["full_name"])
            with lock:
                load.results.append(out)

    threads = [threading.Thread(target=work, args=(n,), name=f"load-client-{n}") for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    load.wall = time.perf_counter() - t0
    return load


@dataclass
class Run:
    """One load run from start to the last PDF: the load, when the last PDF landed, what was stored."""

    database: str
    load: Load
    pdf_seconds: float | None  # after the last submit; None: not all within the timeout
    stored: list[dict]
    drafts: int
    log_problems: list[str]
    renderer_output: str = ""


@contextlib.contextmanager
def worker_processes(env: dict, log_path: Path, count: int = 1):
    """Run ``count`` ``flask screening worker`` processes (one task at a time each) for the block; yield them."""
    procs: list[subprocess.Popen] = []
    with open(log_path, "wb") as log:
        try:
            for n in range(count):
                extra = [] if n == 0 else ["--no-periodic"]  # one sweep is enough
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "flask", "--app", "wsgi", "screening", "worker", "-w", "1", *extra],
                    cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            yield procs
        finally:
            for proc in procs:
                stop(proc)


def run_concurrency(database_url: str, folder: Path, *, clients: int, total: int, workers: int = 2,
                    pdf_mode: str = "queue", pdf_timeout: float = 1200, get_each_page: bool = False) -> Run:
    """Migrate an emptied database, serve it with gunicorn, run the load, wait for every PDF, read it all back.

    ``pdf_mode`` is SCREENING_PDF_BACKGROUND; with ``queue`` as many ``flask screening worker`` processes as
    gunicorn workers run beside gunicorn (as two machines would). The database is emptied again at the end (a
    shared PostgreSQL test database must be left as found).
    """
    env = server_env(database_url, SCREENING_PDF_BACKGROUND=pdf_mode)
    reset_database(env)
    migrate(env)
    app = orm_app(env)
    renderer = None
    try:
        with serve(env, folder / "gunicorn.log", workers=workers) as server, \
                worker_processes(env, folder / "worker.log", workers if pdf_mode == "queue" else 0) as renderer:
            load = run_load(server.port, clients=clients, total=total, get_each_page=get_each_page)
            pdf_seconds = wait_for_pdfs(app, pdf_timeout)
        stored = stored_submissions(app)
        drafts = draft_count(app)
        with app.app_context():
            from screening.extensions import db

            db.engine.dispose()
    finally:
        reset_database(env)
    return Run(database=database_url.split(":")[0], load=load, pdf_seconds=pdf_seconds, stored=stored,
               drafts=drafts, log_problems=server.log_problems(),
               renderer_output=(folder / "worker.log").read_text(errors="replace") if renderer else "")


def summary(run: Run, clients: int) -> str:
    """One line of figures: throughput, the submit's p50/p95/max, when the last PDF landed."""
    ms = run.load.submit_ms
    if not ms:
        return f"{run.database}: no submit completed"
    return (f"{run.database}: {len(ms)} submits from {clients} clients in {run.load.wall:.0f} s "
            f"({len(ms) / run.load.wall:.2f} submissions/s); submit p50 {statistics.median(ms):.0f} ms, "
            f"p95 {percentile(ms, 95):.0f} ms, max {ms[-1]:.0f} ms; every PDF "
            + ("NOT within the timeout" if run.pdf_seconds is None
               else f"{run.pdf_seconds:.0f} s after the last submit"))


# -- what the server stored ------------------------------------------------------------------


def pdf_counts(app) -> tuple[int, int]:
    """(submissions, submissions with a PDF) in the app's database."""
    from sqlalchemy import func, select

    from screening.extensions import db
    from screening.models import Submission

    with app.app_context():
        try:
            total = db.session.scalar(select(func.count()).select_from(Submission))
            rendered = db.session.scalar(select(func.count()).where(Submission.pdf_hmac.is_not(None)))
        finally:
            db.session.remove()  # end the read at once: on SQLite an open read holds off the writers
    return total, rendered


def wait_for_pdfs(app, timeout: float, poll: float = 1.0) -> float | None:
    """Poll until every submission has its PDF; return the seconds it took, or None after ``timeout``."""
    t0 = time.monotonic()
    while True:
        total, rendered = pdf_counts(app)
        if rendered >= total:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            return None
        time.sleep(poll)


def stored_submissions(app) -> list[dict]:
    """Every stored submission, read through the ORM: reference, name, and whether its PDF matches its keyed digest."""
    from sqlalchemy import select

    from screening.extensions import db
    from screening.models import Submission

    out = []
    with app.app_context():
        try:
            for s in db.session.scalars(select(Submission).order_by(Submission.id)):
                out.append({"reference": s.reference, "name": s.answers.get("full_name"),
                            "signature": s.signature_name, "has_pdf": s.pdf is not None,
                            "pdf_ok": app.extensions["screening_vault"].pdf_intact(s.pdf, s.pdf_hmac)})
                db.session.expunge(s)  # one PDF in memory at a time
        finally:
            db.session.remove()
    return out


def draft_count(app) -> int:
    from sqlalchemy import func, select

    from screening.extensions import db
    from screening.models import Draft

    with app.app_context():
        try:
            return db.session.scalar(select(func.count()).select_from(Draft))
        finally:
            db.session.remove()


def percentile(sorted_values: list, p: float) -> float:
    """The ``p`` percentile (nearest rank) of already sorted values."""
    return sorted_values[min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))]
