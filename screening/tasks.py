"""The task queue (Huey): PDFs, email, and a sweep every minute for work whose task was lost.

Each task is a thin call into a use case, inside an app context. The queue's storage is SCREENING_QUEUE_URL: a
SQLite file in ``instance/`` by default (one machine), Redis for several app servers. ``flask --app wsgi screening
worker`` runs the consumer. Enqueueing never raises: whatever is not queued is found by the sweep.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from pathlib import Path
from types import SimpleNamespace

from flask import Flask, current_app
from huey import MemoryHuey, PriorityRedisHuey, SqliteHuey, crontab
from huey.exceptions import RetryTask
from sqlalchemy import func, select

log = logging.getLogger(__name__)

# Work due this long ago and still not done has lost its task (a worker killed, a failed enqueue): the sweep queues it.
GRACE = dt.timedelta(minutes=1)
_lock = threading.Lock()
MAIL_PRIORITY = 10  # Huey runs higher first; PDFs and sweeps have 0
_periodic: dict[str, tuple] = {}  # name -> (use case, schedule): see periodic()


def periodic(name: str, schedule=None):
    """Register ``func()`` to run in the worker every minute (or on ``schedule``, a huey crontab), in an app context."""
    def register(func):
        _periodic[name] = (func, schedule or crontab(minute="*"))
        return func
    return register


def make_huey(app: Flask):
    """Return a Huey instance on the app's queue storage, with every task registered (each runs in ``app``)."""
    url = app.config["QUEUE_URL"]
    if url == "immediate":
        huey = MemoryHuey("screening", immediate=True, results=False)
    elif url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey("screening", filename=str(path), results=False)
    else:
        huey = PriorityRedisHuey("screening", url=url, results=False)  # Redis 5 or later: task priorities

    @huey.task(name="render_pdf")
    def render_pdf(submission_id: int) -> None:
        """Render one submission's PDF; a failure is tried again with back-off."""
        from . import services
        from .extensions import db

        with app.app_context():
            try:
                retry_in = services.render_claimed(db.session, submission_id, app.config)
            finally:
                db.session.remove()
        if retry_in is not None:
            raise RetryTask(delay=retry_in)

    # Before any PDF waiting in the queue: under load a client's confirmation waited up to ~100 s behind renders
    # (bench/bench_appointments.py), and an email takes milliseconds.
    @huey.task(name="send_mail", priority=MAIL_PRIORITY)
    def send_mail(outbox_id: int) -> None:
        """Deliver one outbox message; a temporary failure is tried again with back-off."""
        from . import mail
        from .extensions import db

        with app.app_context():
            try:
                outcome = mail.deliver(db.session, outbox_id)
            finally:
                db.session.remove()
        if outcome.status == "retry":
            raise RetryTask(delay=outcome.retry_in)

    @huey.periodic_task(crontab(minute="*"), name="sweep")
    def sweep_task() -> None:
        """Every minute: queue the PDFs and messages still waiting whose task was lost."""
        with app.app_context():
            sweep(huey_tasks=tasks)

    tasks = SimpleNamespace(huey=huey, render_pdf=render_pdf, send_mail=send_mail, sweep=sweep_task)
    for name, (func, schedule) in _periodic.items():
        setattr(tasks, name, huey.periodic_task(schedule, name=name)(_in_app(app, func)))
    return tasks


def _in_app(app: Flask, func):
    """Wrap a use case to run in ``app``'s context, its session removed after."""
    def run() -> None:
        from .extensions import db

        with app.app_context():
            try:
                func()
            finally:
                db.session.remove()
    run.__name__ = func.__name__
    return run


def queue_of(app: Flask | None = None) -> SimpleNamespace:
    """Return the app's queue (``.huey``) and its tasks (``.render_pdf``, ``.send_mail``, ...), made on first use."""
    app = app or current_app._get_current_object()
    with _lock:
        if "screening_tasks" not in app.extensions:
            app.extensions["screening_tasks"] = make_huey(app)
    return app.extensions["screening_tasks"]


def close(app: Flask) -> None:
    """Close the queue's storage connections (tests, shutdown)."""
    tasks = app.extensions.pop("screening_tasks", None)
    if tasks is not None:
        tasks.huey.storage.close()


def enqueue_pdf(submission_id: int) -> bool:
    """Queue a submission's PDF (after the submit's commit); False if the queue failed (the sweep catches it)."""
    return _enqueue("render_pdf", submission_id)


def enqueue_mail(outbox_id: int) -> bool:
    """Queue an outbox message for sending (after its commit; mail.queue does it); False if the queue failed."""
    return _enqueue("send_mail", outbox_id)


def _enqueue(name: str, row_id: int) -> bool:
    try:
        getattr(queue_of(), name)(row_id)
        return True
    except Exception:  # noqa: BLE001 - the client's request must not fail for the queue: the sweep catches it
        log.exception("could not queue %s for id %s; the sweep will", name, row_id)
        return False


def sweep(huey_tasks: SimpleNamespace | None = None) -> dict[str, int]:
    """Queue every PDF and message that should have been done by now; return how many of each were queued."""
    from .extensions import db
    from .models import Outbox, Submission, utcnow

    tasks = huey_tasks or queue_of()
    cutoff = utcnow() - GRACE
    session = db.session
    try:
        pdfs: list[int] = []
        if current_app.config["PDF_BACKGROUND"] == "queue":
            due = func.coalesce(Submission.pdf_due_at, Submission.submitted_at)
            pdfs = list(session.scalars(select(Submission.id).where(Submission.pdf_hmac.is_(None), due <= cutoff)
                                        .order_by(Submission.id)))
        mails = list(session.scalars(select(Outbox.id).where(Outbox.status.in_(("queued", "sending")),
                                                             Outbox.next_attempt_at <= cutoff).order_by(Outbox.id)))
    finally:
        session.remove()
    for submission_id in pdfs:
        tasks.render_pdf(submission_id)
    for outbox_id in mails:
        tasks.send_mail(outbox_id)
    if pdfs or mails:
        log.info("sweep: queued %s PDF(s) and %s message(s) whose task was lost", len(pdfs), len(mails))
    return {"pdfs": len(pdfs), "mails": len(mails)}


def run_worker(app: Flask, workers: int = 2, *, periodic: bool = True) -> None:
    """Run the consumer until SIGINT (running tasks finish) or SIGTERM; ``periodic``: a sweep now and every minute."""
    consumer = queue_of(app).huey.create_consumer(workers=workers, periodic=periodic, worker_type="thread")
    consumer.run()
