"""Failed PDFs are tried again, with back-off, by the task queue unasked; a missing PDF shows as pending."""

from __future__ import annotations

import datetime as dt
import time

from sqlalchemy import select, update

from screening import pdf as pdf_module
from screening import services, tasks
from screening.extensions import db
from screening.models import Submission, utcnow
from tests.answers import clear_answers
from tests.conftest import consumer, make_app
from tests.staff import add_user, sign_in
from tests.web import complete

TODAY = dt.date.today()


def _failing_once(monkeypatch) -> dict:
    """Make the next PDF render fail (as during a database outage); later renders work."""
    real = pdf_module.render
    calls = {"n": 0}

    def render(context):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("the database went away mid-render")
        return real(context)

    monkeypatch.setattr(pdf_module, "render", render)
    return calls


def _pdf_stored(app, reference) -> bool:
    with app.app_context():
        try:
            return db.session.scalar(select(Submission.pdf_hmac).where(Submission.reference == reference)) is not None
        finally:
            db.session.remove()


def _make_due(app, submission_id) -> None:
    """Move the PDF's next try to now (as if its back-off had passed)."""
    with app.app_context():
        db.session.execute(update(Submission).where(Submission.id == submission_id).values(pdf_due_at=utcnow()))
        db.session.commit()
        db.session.remove()


def test_a_failing_pdf_backs_off_doubling_up_to_its_cap_then_renders(app, monkeypatch):
    app.config.update(PDF_RETRY_SECONDS=30, PDF_RETRY_MAX_SECONDS=100)
    reference = complete(app.test_client(), clear_answers(full_name="Walt Watcher"))
    with app.app_context():
        submission_id = db.session.scalar(select(Submission.id).where(Submission.reference == reference))
        db.session.remove()

    def broken(context):
        raise RuntimeError("the database went away mid-render")

    monkeypatch.setattr(pdf_module, "render", broken)
    delays = []
    for _ in range(4):
        with app.app_context():
            delays.append(services.render_claimed(db.session, submission_id, app.config))
            assert services.render_claimed(db.session, submission_id, app.config) is None, "not due yet: not tried"
            db.session.remove()
        _make_due(app, submission_id)
    assert delays == [30, 60, 100, 100]
    monkeypatch.undo()
    with app.app_context():
        assert services.render_claimed(db.session, submission_id, app.config) is None
        db.session.remove()
    assert _pdf_stored(app, reference)


def test_two_workers_never_render_the_same_pdf(app, monkeypatch):
    reference = complete(app.test_client(), clear_answers(full_name="Olga Once"))
    calls = []
    real = pdf_module.render
    monkeypatch.setattr(pdf_module, "render", lambda context: calls.append(1) or real(context))
    with app.app_context():
        submission_id = db.session.scalar(select(Submission.id).where(Submission.reference == reference))
        # A second worker's claim while the first holds it (its lease has not ended) does nothing.
        db.session.execute(update(Submission).values(pdf_due_at=utcnow() + services.PDF_LEASE))
        db.session.commit()
        assert services.render_claimed(db.session, submission_id, app.config) is None and calls == []
        db.session.remove()
    _make_due(app, submission_id)  # the first worker died: its lease ended
    with app.app_context():
        assert services.render_claimed(db.session, submission_id, app.config) is None and calls == [1]
        assert services.render_claimed(db.session, submission_id, app.config) is None and calls == [1], "done"
        db.session.remove()
    assert _pdf_stored(app, reference)


def test_a_render_that_fails_once_is_retried_by_a_real_consumer_and_stored(database_url, monkeypatch, tmp_path):
    app = make_app(database_url, PDF_BACKGROUND="queue", QUEUE_URL=f"sqlite:///{tmp_path / 'queue.db'}",
                   PDF_RETRY_SECONDS=0.2, PDF_RETRY_MAX_SECONDS=1)
    try:
        calls = _failing_once(monkeypatch)
        reference = complete(app.test_client(), clear_answers(full_name="Rita Retry"))
        assert calls["n"] == 0, "the submit only queued it"
        with consumer(app):
            deadline = time.monotonic() + 60
            while not _pdf_stored(app, reference):  # nobody asks for it: the retry renders it
                assert time.monotonic() < deadline, "the failed PDF was not tried again within 60 s"
                time.sleep(0.1)
        assert calls["n"] == 2
        with app.app_context():
            row = db.session.scalar(select(Submission).where(Submission.reference == reference))
            assert app.extensions["screening_vault"].pdf_intact(row.pdf, row.pdf_hmac)
            assert row.pdf_attempts == 1
            db.session.remove()
    finally:
        tasks.close(app)
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def test_a_missing_pdf_shows_as_pending_in_the_staff_pages(app):
    app.config["DESK_FULL_PDF"] = True
    reference = complete(app.test_client(), clear_answers(full_name="Penny Pending",
                                                          appointment_date=TODAY.isoformat()))
    add_user(app, "prac@clinic.test", ["practitioner"])
    client = app.test_client()
    sign_in(client, "prac@clinic.test")
    assert "PDF pending" in client.get("/staff/submissions").text
    assert "PDF pending" in client.get("/staff/desk").text
    assert client.get(f"/staff/submissions/{reference}/pdf").status_code == 200  # rendered on this request
    assert "PDF pending" not in client.get("/staff/submissions").text
    assert "PDF pending" not in client.get("/staff/desk").text
