"""Appointments at scale (issue 13, "Scale"): shared by tests/test_scale.py and bench/bench_appointments.py.

Two app servers (two ``gunicorn -w 2`` on two ports, as two machines would run them), two ``flask screening worker``
processes, PostgreSQL and Redis (the task queue and the rate limits), and a real SMTP server (aiosmtpd) in this
process that keeps every message it receives. Then:

1. ``appointments`` are created through the JSON API by concurrent booking-system threads, spread over both
   servers; every tenth create is sent again (a replayed create: 200, the same appointment, no second invitation);
2. each client, a thread with its own cookie jar and its own address (X-Forwarded-For through
   SCREENING_PROXY_COUNT=1, so the per-address limits count clients as behind a real proxy), waits for its
   invitation at the SMTP server, opens the link from the email, passes the date of birth, confirms the booking,
   answers and sends; each request goes to either server (a load balancer without sticky sessions);
3. meanwhile, from a third of the screenings on, ``send_reminders`` runs every few seconds in this process (as a
   third machine's schedule would) for the appointments 1 and 3 days out, and once more after the load (it must
   then queue nothing);
4. when every outbox message is sent and every PDF stored, ``check`` compares what the SMTP server received with
   the outbox, the appointments and the submissions.

PDF renders are counted by a trigger on the database (each UPDATE that writes a submission's ``pdf`` adds a row to
``scale_pdf_writes``), so the workers run unmodified. The database's tables are dropped first and last: use a
database of its own. Traffic goes only to 127.0.0.1, bounded in count and time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from screening import questions as qd
from screening.config import ROOT
from tests import live
from tests.answers import clear_answers
from tests.web import csrf_token, page_data

PRACTITIONERS = ("prac1@clinic.test", "prac2@clinic.test")
LINK = re.compile(r"https?://\S+?(/i/[A-Za-z0-9_-]+)")
REFERENCE_IN_SUBJECT = re.compile(r"reference ([A-Z0-9]{4}-[A-Z0-9]{4})")
TRIGGER_SQL = (
    "CREATE TABLE scale_pdf_writes (submission_id integer NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())",
    "CREATE FUNCTION scale_pdf_write() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN INSERT INTO scale_pdf_writes (submission_id) VALUES (NEW.id); RETURN NEW; END $$",
    "CREATE TRIGGER scale_pdf_write AFTER UPDATE OF pdf ON submission FOR EACH ROW"
    " WHEN (NEW.pdf IS NOT NULL AND NEW.pdf IS DISTINCT FROM OLD.pdf) EXECUTE FUNCTION scale_pdf_write()")
DROP_TRIGGER_SQL = ("DROP TRIGGER IF EXISTS scale_pdf_write ON submission", "DROP FUNCTION IF EXISTS scale_pdf_write()",
                    "DROP TABLE IF EXISTS scale_pdf_writes")


# -- the SMTP server -------------------------------------------------------------------------


@dataclass
class Received:
    at: float  # time.time() when DATA was accepted
    to: tuple[str, ...]
    message_id: str
    subject: str
    text: str


class CountingMailbox:
    """An aiosmtpd handler keeping each message's recipients, Message-ID, subject and plain text."""

    def __init__(self):
        self.messages: list[Received] = []
        self.lock = threading.Lock()
        self.by_recipient: dict[str, list[Received]] = defaultdict(list)

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(("plain",))
        got = Received(at=time.time(), to=tuple(a.lower() for a in envelope.rcpt_tos),
                       message_id=str(message["Message-ID"]), subject=str(message["Subject"]),
                       text=body.get_content() if body is not None else "")
        with self.lock:
            self.messages.append(got)
            for address in got.to:
                self.by_recipient[address].append(got)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return list(self.by_recipient.get(address.lower(), ()))

    def last_at(self) -> float | None:
        with self.lock:
            return max((m.at for m in self.messages), default=None)


@contextlib.contextmanager
def smtp_server():
    """A real SMTP server on a free loopback port in this process: yield (its smtp:// URL, its CountingMailbox)."""
    mailbox = CountingMailbox()
    with live.smtp_server(mailbox) as url:
        yield url, mailbox


# -- HTTP ------------------------------------------------------------------------------------


class SpreadClient(live.Client):
    """One browser behind a load balancer: each request goes to the next server; its own address (X-Forwarded-For)."""

    def __init__(self, ports: list[int], address: str, timings: dict, lock: threading.Lock, start: int = 0):
        super().__init__(ports[0], timings, lock, agent="tests.scale")
        self.ports = ports
        self.address = address
        self.turn = start

    def target(self) -> tuple[int, dict[str, str]]:
        """The next server in turn, and this client's own address."""
        port = self.ports[self.turn % len(self.ports)]
        self.turn += 1
        return port, {"X-Forwarded-For": self.address}


# -- the appointments ------------------------------------------------------------------------


def _letters(i: int) -> str:
    out = ""
    i += 26 * 26  # at least three letters
    while i:
        i, r = divmod(i, 26)
        out = "abcdefghijklmnopqrstuvwxyz"[r] + out
    return out.capitalize()


@dataclass(frozen=True)
class Booked:
    """Appointment ``i`` of the run: what the booking system sends and how its client will answer."""

    i: int
    today: dt.date

    @property
    def external_id(self) -> str:
        return f"SCALE-{self.i:05d}"

    @property
    def name(self) -> str:
        return f"Scale {_letters(self.i)}"

    @property
    def email(self) -> str:
        return f"client{self.i:05d}@example.test"

    @property
    def dob(self) -> dt.date:
        return dt.date(1960, 1, 1) + dt.timedelta(days=37 * self.i % 12000)

    @property
    def date(self) -> dt.date:
        # A tenth 1 day out and a tenth 3 days out (the reminders' days), the rest spread over the next weeks.
        days = {0: 1, 1: 3}.get(self.i % 10, 5 + self.i % 20)
        return self.today + dt.timedelta(days=days)

    @property
    def practitioner(self) -> str | None:
        return PRACTITIONERS[0] if self.i % 2 == 0 else None  # else every practitioner hears

    @property
    def needs_practitioner(self) -> bool:
        return self.i % 3 == 0  # a history of cold sores: review

    def api_body(self) -> dict:
        body = {"external_id": self.external_id, "name": self.name, "date_of_birth": self.dob.isoformat(),
                "email": self.email, "phone": "07700 900123", "date": self.date.isoformat(),
                "time": f"{9 + self.i % 8:02d}:{30 * (self.i % 2):02d}", "treatment": "standard",
                "areas": ["full_face"]}
        if self.practitioner:
            body["practitioner_email"] = self.practitioner
        return body

    def answers(self) -> dict:
        extra = {"cold_sore_history": "yes", "cold_sore_frequency": "yearly"} if self.needs_practitioner else {}
        return clear_answers(full_name=self.name, dob=self.dob.isoformat(), email=self.email, phone="07700 900123",
                             appointment_date=self.date.isoformat(), treatment_variant="standard",
                             treatment_areas=["full_face"], **extra)


def client_address(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Run:
    """What one run did and saw."""

    appointments: int
    api: list[dict] = field(default_factory=list)
    clients: list[dict] = field(default_factory=list)
    timings: dict[str, list[float]] = field(default_factory=dict)
    api_wall: float = 0.0
    load_wall: float = 0.0
    last_submit_at: float = 0.0  # time.time()
    mail_seconds: float | None = None  # last email after the last submit
    pdf_seconds: float | None = None  # last PDF after the last submit
    reminders_during: int = 0
    reminders_after: int | None = None
    facts: dict = field(default_factory=dict)  # read back from the database
    problems: list[str] = field(default_factory=list)
    log_problems: list[str] = field(default_factory=list)
    whole: float = 0.0

    @property
    def submit_ms(self) -> list[float]:
        return sorted(self.timings.get("submit", []))

    @property
    def create_ms(self) -> list[float]:
        return sorted(self.timings.get("api create", []))


def scale_env(database_url: str, smtp_url: str, queue_url: str, limits_url: str, **extra) -> dict:
    """The servers' and workers' environment: PostgreSQL, Redis for the queue and the limits, SMTP, raised limits."""
    return live.server_env(
        database_url, SCREENING_QUEUE_URL=queue_url, SCREENING_RATELIMIT_STORAGE_URI=limits_url,
        SCREENING_MAIL_URL=smtp_url, SCREENING_MAIL_FROM="desk@clinic.test",
        SCREENING_BASE_URL="https://screening.clinic.test", SCREENING_PROXY_COUNT="1",
        SCREENING_API_LIMIT="100000 per minute", SCREENING_START_LIMIT="100000 per hour",
        SCREENING_SUBMIT_LIMIT="100000 per hour", SCREENING_REMINDER_DAYS="3,1", **extra)


def _prepare(env: dict) -> str:
    """An empty, migrated database with the render-counting trigger, two practitioners and an API token."""
    from screening.appointments.api import create_token
    from screening.extensions import db
    from screening.models import StaffUser

    live.reset_database(env)
    live.migrate(env)
    app = live.orm_app(env)
    with app.app_context():
        with db.engine.begin() as conn:
            for statement in DROP_TRIGGER_SQL + TRIGGER_SQL:
                conn.exec_driver_sql(statement)
        for address in PRACTITIONERS:  # they never sign in here: no password (hashing one takes a second)
            db.session.add(StaffUser(email=address, name="Pat Practitioner", password_hash="!", roles="practitioner"))
        db.session.commit()
        token = create_token(db.session, "scale booking system")
        db.session.remove()
        db.engine.dispose()
    return token


def _cleanup(env: dict) -> None:
    from screening.extensions import db

    app = live.orm_app(env, CHECK_KEYS=False)
    with app.app_context():
        for statement in DROP_TRIGGER_SQL:
            with contextlib.suppress(Exception), db.engine.begin() as conn:  # a table not made: nothing to drop
                conn.exec_driver_sql(statement)
        db.engine.dispose()
    live.reset_database(env)


def _threads(count: int, target, *args) -> None:
    threads = [threading.Thread(target=target, args=(n, *args), name=f"scale-{target.__name__}-{n}")
               for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@contextlib.contextmanager
def serve_all(env: dict, log_paths: list[Path], *, workers: int = 2):
    """``gunicorn -w WORKERS wsgi:app`` once per log path (two machines), started and stopped together; yield the
    ports. Each runs in a process group of its own, SIGKILLed if it has not stopped 40 s after SIGTERM."""
    procs: list[subprocess.Popen] = []
    ports: list[int] = []
    try:
        for log_path in log_paths:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind((live.HOST, 0))
            listener.listen(128)
            ports.append(listener.getsockname()[1])
            with open(log_path, "wb") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"fd://{listener.fileno()}",
                     "wsgi:app"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                    pass_fds=(listener.fileno(),), start_new_session=True))
            listener.close()
        for port, proc in zip(ports, procs):
            live.wait_until_up(port, proc)
        yield ports
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 40
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def create_appointments(run: Run, ports: list[int], token: str, booked: list[Booked], threads: int) -> None:
    """POST every appointment (and every tenth again) through the API from ``threads`` booking-system threads."""
    lock = threading.Lock()
    jobs = iter([(b, False) for b in booked] + [(b, True) for b in booked if b.i % 10 == 5])
    t0 = time.perf_counter()

    def work(n: int) -> None:
        c = SpreadClient(ports, "192.0.2.1", run.timings, lock, start=n)
        while True:
            with lock:
                job = next(jobs, None)
            if job is None:
                return
            b, replay = job
            try:
                status, location, text, _ = c.request("POST", "/api/v1/appointments", json_body=b.api_body(),
                                                      headers={"Authorization": f"Bearer {token}"},
                                                      kind="api replay" if replay else "api create")
                out = {"i": b.i, "replay": replay, "status": status, "location": location}
                if status >= 300:
                    out["body"] = text[:300]
            except Exception as exc:  # noqa: BLE001 - count and report every failure
                out = {"i": b.i, "replay": replay, "error": f"{type(exc).__name__}: {exc}"}
            with lock:
                run.api.append(out)

    _threads(threads, work)
    run.api_wall = time.perf_counter() - t0


def screen(c: SpreadClient, b: Booked, mailbox: CountingMailbox, wait: float) -> dict:
    """Client ``b``: the link from their email, date of birth, the booking's facts, every page, the declaration."""
    deadline = time.monotonic() + wait
    invitation = None
    while invitation is None:
        invitation = next((m for m in mailbox.to(b.email) if "/i/" in m.text), None)
        if invitation is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"no invitation for {b.email} within {wait:.0f} s")
            time.sleep(0.2)
    path = LINK.search(invitation.text).group(1)
    status, location, _, _ = c.request("GET", path, kind="open link")
    live.expect(status == 303 and urlsplit(location).path == "/invitation", f"GET /i/... gave {status} {location}")
    status, _, text, _ = c.request("GET", "/invitation")
    live.expect(status == 200, f"GET /invitation gave {status}")
    status, location, text, _ = c.request("POST", "/invitation", {
        "csrf_token": csrf_token(text), "dob-day": str(b.dob.day), "dob-month": str(b.dob.month),
        "dob-year": str(b.dob.year)}, kind="date of birth")
    live.expect(status == 303 and urlsplit(location).path == "/invitation/booking",
                f"POST /invitation gave {status} {location}")
    status, _, text, _ = c.request("GET", "/invitation/booking")
    live.expect(status == 200 and b.name in text, f"GET /invitation/booking gave {status}")
    token = csrf_token(text)
    status, location, _, _ = c.request("POST", "/invitation/booking", {"csrf_token": token, "facts": "right"})
    live.expect(status == 302 and urlsplit(location).path.startswith("/q/"),
                f"POST /invitation/booking gave {status} {location}")
    first = urlsplit(location).path.rsplit("/", 1)[1]
    answers = b.answers()
    ids = [p.id for p in qd.PAGES]
    for page in qd.PAGES[ids.index(first) if first in ids else 0:]:
        status, _, text, _ = c.request("POST", f"/q/{page.id}", {"csrf_token": token, **page_data(page, answers)},
                                       kind="page")
        live.expect(status == 302, f"POST /q/{page.id} gave {status}: {live.ERROR_SUMMARY.findall(text)}")
    status, _, text, _ = c.request("GET", "/declaration")
    live.expect(status == 200, f"GET /declaration gave {status}")
    status, location, _, ms = c.request("POST", "/declaration", {"csrf_token": csrf_token(text), "confirm": "y",
                                                                 "signature": b.name}, kind="submit")
    out = {"i": b.i, "status": status, "location": location, "ms": ms, "at": time.time()}
    if status == 302 and urlsplit(location).path == "/done":
        _, _, text, _ = c.request("GET", "/done")
        match = live.REFERENCE.search(text)
        out["reference"] = match.group(1) if match else None
    return out


def screen_all(run: Run, ports: list[int], booked: list[Booked], mailbox: CountingMailbox, clients: int,
               time_limit: float, max_errors: int = 10) -> None:
    """``clients`` threads screen every booked client; nothing new starts after ``time_limit`` s or ``max_errors``."""
    lock = threading.Lock()
    jobs = iter(booked)
    t0 = time.perf_counter()

    def work(n: int) -> None:
        while True:
            with lock:
                if time.perf_counter() - t0 > time_limit or sum("error" in r for r in run.clients) >= max_errors:
                    return
                b = next(jobs, None)
            if b is None:
                return
            c = SpreadClient(ports, client_address(b.i), run.timings, lock, start=b.i)
            try:
                out = screen(c, b, mailbox, wait=max(5.0, time_limit - (time.perf_counter() - t0)))
            except Exception as exc:  # noqa: BLE001 - count and report every failure
                out = {"i": b.i, "error": f"client {b.i}: {type(exc).__name__}: {exc}"}
            with lock:
                run.clients.append(out)

    _threads(clients, work)
    run.load_wall = time.perf_counter() - t0
    run.last_submit_at = max((r["at"] for r in run.clients if "at" in r), default=time.time())


class Reminders(threading.Thread):
    """``send_reminders`` every ``every`` seconds in this process until stopped (a third machine's schedule)."""

    def __init__(self, app, every: float, begin=lambda: True):
        super().__init__(name="scale-reminders", daemon=True)
        self.app, self.every, self.begin = app, every, begin
        self.stopping = threading.Event()
        self.queued = 0
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.begin() and not self.stopping.wait(0.2):
            pass
        while not self.stopping.wait(self.every):
            try:
                self.queued += run_reminders(self.app)
            except Exception as exc:  # noqa: BLE001 - reported by the checks
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=60)


def run_reminders(app) -> int:
    from screening.appointments.services import send_reminders
    from screening.extensions import db

    with app.app_context():
        try:
            return send_reminders(db.session, dt.date.today())
        finally:
            db.session.remove()


def _done(app) -> tuple[int, int, int]:
    """(outbox messages not yet sent or failed, submissions without a PDF, submissions)."""
    from sqlalchemy import func, select

    from screening.extensions import db
    from screening.models import Outbox, Submission

    with app.app_context():
        try:
            pending = db.session.scalar(select(func.count()).where(Outbox.status.in_(("queued", "sending"))))
            no_pdf = db.session.scalar(select(func.count()).where(Submission.pdf_hmac.is_(None)))
            total = db.session.scalar(select(func.count()).select_from(Submission))
        finally:
            db.session.remove()
    return pending, no_pdf, total


def wait_until_done(run: Run, app, mailbox: CountingMailbox, timeout: float) -> None:
    """Poll until every outbox message is sent and every PDF stored (then a short pause for any late duplicate)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        pending, no_pdf, _ = _done(app)
        if not pending and not no_pdf:
            time.sleep(1)  # a message or render sent twice would arrive now
            break
        time.sleep(0.5)
    else:
        run.problems.append(f"outbox or PDFs still pending {timeout:.0f} s after the load: {_done(app)}")
    last_mail = mailbox.last_at()
    run.mail_seconds = None if last_mail is None else last_mail - run.last_submit_at


def read_back(app) -> dict:
    """Everything the checks need, read through the ORM (the outbox's messages decrypted for their Message-ID)."""
    from sqlalchemy import func, select, text

    from screening.appointments.models import Appointment, ReminderSent
    from screening.extensions import db
    from screening.models import Draft, Outbox, Submission

    facts: dict = {}
    with app.app_context():
        try:
            s = db.session
            facts["appointments"] = [
                {"id": a.id, "external_id": a.external_id, "email": a.client_email, "submission_id": a.submission_id,
                 "practitioner_id": a.practitioner_id, "draft_id": a.draft_id}
                for a in s.scalars(select(Appointment).order_by(Appointment.id))]
            facts["submissions"] = {}
            vault = app.extensions["screening_vault"]
            for sub in s.scalars(select(Submission).order_by(Submission.id)):
                facts["submissions"][sub.id] = {
                    "reference": sub.reference, "outcome": sub.outcome, "name": sub.answers.get("full_name"),
                    "submitted_at": sub.submitted_at, "pdf_ok": sub.pdf is not None and vault.pdf_intact(sub.pdf,
                                                                                                       sub.pdf_hmac),
                    "pdf_attempts": sub.pdf_attempts, "pdf_rendered_at": sub.pdf_rendered_at}
                s.expunge(sub)
            facts["outbox"] = []
            for row in s.scalars(select(Outbox).order_by(Outbox.id)):
                message = email.message_from_bytes(bytes(row.message), policy=email.policy.default)
                facts["outbox"].append({"id": row.id, "kind": row.kind, "appointment_id": row.appointment_id,
                                        "status": row.status, "attempts": row.attempts, "created_at": row.created_at,
                                        "message_id": str(message["Message-ID"]), "to": str(message["To"]).lower()})
                s.expunge(row)
            facts["reminders_sent"] = [(r.appointment_id, r.days_before) for r in s.scalars(select(ReminderSent))]
            facts["pdf_writes"] = [tuple(r) for r in s.execute(text("SELECT submission_id, at FROM scale_pdf_writes"))]
            facts["drafts"] = s.scalar(select(func.count()).select_from(Draft))
            facts["practitioner_ids"] = dict(s.execute(text("SELECT email, id FROM staff_user")).all())
        finally:
            db.session.remove()
    return facts


def check(run: Run, booked: list[Booked], mailbox: CountingMailbox) -> list[str]:
    """Every property of the issue: each email exactly once, each PDF exactly once, no reminder after a screening
    was sent, nothing lost. Return what went wrong (empty: everything held)."""
    out = list(run.problems)
    n = len(booked)
    f = run.facts
    # The API: every create 201, every replay 200, nothing else.
    api_errors = [r for r in run.api if "error" in r or r["status"] != (200 if r["replay"] else 201)]
    if api_errors:
        out.append(f"{len(api_errors)} API calls did not answer 201 (create) / 200 (replay), e.g. {api_errors[:3]}")
    # The clients: every one submitted, each shown its own reference.
    failed = [r for r in run.clients if "error" in r or r.get("status") != 302 or not r.get("reference")]
    if failed or len(run.clients) != n:
        out.append(f"{len(run.clients)} of {n} clients finished; {len(failed)} failed, e.g. "
                   f"{[r.get('error') or (r.get('status'), r.get('location')) for r in failed[:3]]}")
    # Nothing lost: n appointments, n submissions, each appointment linked to its own, no draft left.
    appointments = f["appointments"]
    subs = f["submissions"]
    if len(appointments) != n:
        out.append(f"{len(appointments)} appointments stored, not {n} (replays must not add any)")
    if len(subs) != n:
        out.append(f"{len(subs)} submissions stored, not {n}")
    unlinked = [a["external_id"] for a in appointments if a["submission_id"] not in subs]
    if unlinked:
        out.append(f"{len(unlinked)} appointments not linked to a submission, e.g. {unlinked[:5]}")
    linked = Counter(a["submission_id"] for a in appointments if a["submission_id"])
    if any(c > 1 for c in linked.values()):
        out.append("a submission is linked to more than one appointment")
    by_external = {a["external_id"]: a for a in appointments}
    shown = {r["i"]: r.get("reference") for r in run.clients}
    shown_at = {r["i"]: r["at"] for r in run.clients if r.get("reference")}
    wrong_owner = []
    for b in booked:
        a = by_external.get(b.external_id)
        sub = subs.get(a["submission_id"]) if a else None
        if sub is None or sub["name"] != b.name or sub["reference"] != shown.get(b.i):
            wrong_owner.append(b.external_id)
    if wrong_owner:
        out.append(f"{len(wrong_owner)} appointments whose submission is not their client's (or not the reference "
                   f"shown), e.g. {wrong_owner[:5]}")
    if f["drafts"]:
        out.append(f"{f['drafts']} drafts left")
    # Email: the outbox holds exactly what is expected, each row sent, each Message-ID received exactly once.
    outbox = f["outbox"]
    not_sent = [r for r in outbox if r["status"] != "sent"]
    if not_sent:
        out.append(f"{len(not_sent)} outbox messages not sent: {Counter(r['status'] for r in not_sent)}")
    received = Counter(m.message_id for m in mailbox.messages)
    twice = {mid: c for mid, c in received.items() if c > 1}
    if twice:
        out.append(f"{len(twice)} messages received more than once (e.g. {list(twice.items())[:3]})")
    expected_ids = {r["message_id"] for r in outbox}
    stray = set(received) - expected_ids
    missing = expected_ids - set(received)
    if stray:
        out.append(f"{len(stray)} messages received that the outbox does not hold")
    if missing:
        out.append(f"{len(missing)} outbox messages never received")
    kinds = defaultdict(Counter)  # appointment id -> kind -> rows
    for r in outbox:
        kinds[r["appointment_id"]][r["kind"]] += 1
    reminders_by_appointment = Counter(a for a, _ in f["reminders_sent"])
    practitioner_ids = {v: k for k, v in f["practitioner_ids"].items()}
    bad_mail = []
    expected_notices: Counter = Counter()
    for a in appointments:
        k = kinds[a["id"]]
        sub = subs.get(a["submission_id"])
        notices = 0
        if sub is not None and sub["outcome"] != "CLEAR":
            targets = [practitioner_ids[a["practitioner_id"]]] if a["practitioner_id"] else list(PRACTITIONERS)
            expected_notices.update(targets)
            notices = len(targets)
        want = {"invitation": 1, "confirmation": 1 if sub else 0, "practitioner": notices,
                "reminder": reminders_by_appointment[a["id"]]}
        if {kind: c for kind, c in k.items() if c} != {kind: c for kind, c in want.items() if c}:
            bad_mail.append((a["external_id"], dict(k), want))
            continue
        got = Counter()
        for m in mailbox.to(a["email"]):
            got["confirmation" if REFERENCE_IN_SUBJECT.search(m.subject) else
                "reminder" if m.subject.startswith("Reminder") else "invitation"] += 1
        if got != Counter({kind: c for kind, c in want.items() if c and kind != "practitioner"}):
            bad_mail.append((a["external_id"], dict(got), want))
            continue
        confirmation = next(m for m in mailbox.to(a["email"]) if REFERENCE_IN_SUBJECT.search(m.subject))
        if sub is None or REFERENCE_IN_SUBJECT.search(confirmation.subject).group(1) != sub["reference"]:
            bad_mail.append((a["external_id"], "confirmation names another reference", None))
    if bad_mail:
        out.append(f"{len(bad_mail)} appointments without exactly the expected emails, e.g. {bad_mail[:3]}")
    got_notices = Counter({p: len(mailbox.to(p)) for p in PRACTITIONERS})
    if got_notices != expected_notices:
        out.append(f"practitioner notices received {dict(got_notices)}, expected {dict(expected_notices)}")
    # Reminders: at most one per appointment and day, none queued once the screening was in, none after the load.
    reminder_pairs = Counter(f["reminders_sent"])
    if any(c > 1 for c in reminder_pairs.values()):
        out.append("a reminder was recorded twice for the same appointment and day")
    # A reminder composed after its client saw /done (the screening committed) was committed after it: too late.
    # (submitted_at is no guide: it is set before the submit's commit, which may wait for a reminder's.)
    seen_done = {b.external_id: shown_at[b.i] for b in booked if b.i in shown_at}
    done_at = {a["id"]: seen_done[a["external_id"]] for a in appointments if a["external_id"] in seen_done}
    late = [r["id"] for r in outbox if r["kind"] == "reminder" and r["appointment_id"] in done_at
            and r["created_at"].timestamp() > done_at[r["appointment_id"]]]
    if late:
        out.append(f"{len(late)} reminders queued after the screening was sent (outbox ids {late[:5]})")
    if run.reminders_after:
        out.append(f"send_reminders after the load queued {run.reminders_after} reminders (every screening was in)")
    # PDFs: every submission's PDF stored exactly once, and intact.
    writes = Counter(s for s, _ in f["pdf_writes"])
    not_once = {s: writes.get(s, 0) for s in subs if writes.get(s, 0) != 1}
    if not_once:
        out.append(f"{len(not_once)} PDFs not written exactly once: {dict(list(not_once.items())[:5])}")
    broken = [s["reference"] for s in subs.values() if not s["pdf_ok"]]
    if broken:
        out.append(f"{len(broken)} PDFs missing or not matching their keyed digest")
    failed_renders = sum(s["pdf_attempts"] for s in subs.values())
    if failed_renders:
        out.append(f"{failed_renders} failed PDF renders (pdf_attempts)")
    if run.log_problems:
        out.append(f"{len(run.log_problems)} error lines in the servers' and workers' logs, e.g. "
                   f"{run.log_problems[:3]}")
    return out


def run_scale(database_url: str, redis_url: str, folder: Path, *, appointments: int, clients: int,
              api_threads: int = 8, reminder_every: float = 3.0, time_limit: float = 1800,
              done_timeout: float = 1800, progress=None) -> tuple[Run, list[Booked], CountingMailbox]:
    """The whole run (see the module's docstring); the servers and workers are stopped whatever happens.

    ``redis_url`` is redis://HOST:PORT/N: the queue uses database N and the rate limits database N+1 (both
    emptied first and last).
    """
    import redis

    say = progress or (lambda *_: None)
    base, _, number = redis_url.rstrip("/").rpartition("/")
    queue_url, limits_url = f"{base}/{int(number)}", f"{base}/{int(number) + 1}"
    stores = [redis.Redis.from_url(u) for u in (queue_url, limits_url)]
    for store in stores:
        store.flushdb()
    run = Run(appointments=appointments)
    today = dt.date.today()
    booked = [Booked(i, today) for i in range(appointments)]
    t_whole = time.perf_counter()
    with smtp_server() as (smtp_url, mailbox):
        env = scale_env(database_url, smtp_url, queue_url, limits_url)
        try:
            token = _prepare(env)
            app = live.orm_app(env)
            logs = [folder / "gunicorn-a.log", folder / "gunicorn-b.log", folder / "workers.log"]
            try:
                with serve_all(env, logs[:2], workers=2) as ports, live.worker_processes(env, logs[2], 2):
                    say(f"servers on {ports}, 2 workers; creating {appointments} appointments through the API")
                    create_appointments(run, ports, token, booked, api_threads)
                    say(f"created in {run.api_wall:.1f} s; {clients} clients screening")
                    # From a third of the screenings on: some clients due a reminder have sent theirs already,
                    # others send theirs while the reminders are being queued.
                    reminders = Reminders(app, reminder_every, begin=lambda: len(run.clients) >= appointments / 3)
                    reminders.start()
                    try:
                        screen_all(run, ports, booked, mailbox, clients, time_limit)
                    finally:
                        reminders.stop()
                    run.reminders_during = reminders.queued
                    run.problems += [f"send_reminders failed: {e}" for e in reminders.errors[:3]]
                    run.reminders_after = run_reminders(app)
                    say(f"screened in {run.load_wall:.1f} s ({run.reminders_during} reminders queued during); "
                        "waiting for the last email and PDF")
                    wait_until_done(run, app, mailbox, done_timeout)
                run.log_problems = [f"{p.name}: {line}" for p in logs for line in p.read_text(errors="replace")
                                    .splitlines() if any(w in line for w in ("ERROR", "Traceback", "CRITICAL",
                                                                              "WORKER TIMEOUT"))]
                run.facts = read_back(app)
                rendered = [s["pdf_rendered_at"] for s in run.facts["submissions"].values() if s["pdf_rendered_at"]]
                if rendered:
                    run.pdf_seconds = max(rendered).timestamp() - run.last_submit_at
            finally:
                with app.app_context():
                    from screening.extensions import db

                    db.session.remove()
                    db.engine.dispose()
        finally:
            _cleanup(env)
            for store in stores:
                store.flushdb()
                store.close()
    run.whole = time.perf_counter() - t_whole
    return run, booked, mailbox


def summary(run: Run) -> list[str]:
    """The figures, one per line."""
    lines = []
    done = sum(1 for r in run.clients if r.get("reference"))
    lines.append(f"{run.appointments} appointments through the API in {run.api_wall:.1f} s "
                 f"({run.appointments / run.api_wall:.1f}/s)" if run.api_wall else "no API run")
    ms = run.create_ms
    if ms:
        lines.append(f"API create: p50 {statistics.median(ms):.0f} ms, p95 {live.percentile(ms, 95):.0f} ms, "
                     f"max {ms[-1]:.0f} ms")
    if run.load_wall:
        lines.append(f"screenings: {done} submitted in {run.load_wall:.1f} s ({done / run.load_wall:.2f}/s), "
                     f"from the invitation email to /done")
    ms = run.submit_ms
    if ms:
        lines.append(f"submit (POST /declaration): p50 {statistics.median(ms):.0f} ms, "
                     f"p95 {live.percentile(ms, 95):.0f} ms, max {ms[-1]:.0f} ms")
    pages = sorted(run.timings.get("page", []))
    if pages:
        lines.append(f"page POST, for context: p50 {statistics.median(pages):.0f} ms, "
                     f"p95 {live.percentile(pages, 95):.0f} ms")
    fmt = (lambda s: "not within the timeout" if s is None else f"{s:.1f} s after the last submit")
    lines.append(f"last email: {fmt(run.mail_seconds)}; last PDF: {fmt(run.pdf_seconds)}")
    outbox = run.facts.get("outbox", [])
    lines.append(f"emails: {len(outbox)} ({dict(Counter(r['kind'] for r in outbox))}); send_reminders here queued "
                 f"{run.reminders_during} during the load and {run.reminders_after} after it (the workers' own "
                 "schedule, every 10 minutes, may queue the others)")
    lines.append(f"whole run (migrate, servers, load, last email and PDF, checks): {run.whole:.0f} s")
    return lines


def tmp_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="screening-scale-"))
