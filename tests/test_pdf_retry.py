"""Failed PDFs are tried again, with back-off, without anyone asking (issue 11 #8); a missing PDF shows as pending."""

from __future__ import annotations

import datetime as dt
import time

from sqlalchemy import select

from screening import pdf as pdf_module
from screening import services
from screening.extensions import db
from screening.models import Submission
from tests.answers import clear_answers
from tests.conftest import make_app
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


def test_the_backoff_doubles_up_to_its_cap():
    now = [100.0]
    backoff = services.Backoff(base=30, cap=100, clock=lambda: now[0])
    assert [backoff.failed(7) for _ in range(4)] == [30, 60, 100, 100]
    assert backoff.waiting() == {7}
    now[0] += 100
    assert backoff.waiting() == set()
    backoff.succeeded(7)
    assert backoff.failed(7) == 30, "a success starts the count again"


def test_a_render_that_fails_once_is_retried_by_the_renderer_thread_and_stored(database_url, monkeypatch):
    app = make_app(database_url, PDF_BACKGROUND="thread", PDF_RETRY_SECONDS=0.3, PDF_RETRY_MAX_SECONDS=1)
    try:
        calls = _failing_once(monkeypatch)
        reference = complete(app.test_client(), clear_answers(full_name="Rita Retry"))
        services.wait_for_pdfs()  # the queued render ran, and failed
        assert calls["n"] >= 1
        deadline = time.monotonic() + 60
        while not _pdf_stored(app, reference):  # nobody asks for it: the renderer's sweep renders it
            assert time.monotonic() < deadline, "the failed PDF was not tried again within 60 s"
            time.sleep(0.1)
        assert calls["n"] == 2
        with app.app_context():
            row = db.session.scalar(select(Submission).where(Submission.reference == reference))
            assert app.extensions["screening_vault"].pdf_intact(row.pdf, row.pdf_hmac)
            db.session.remove()
    finally:
        services.stop_sweeping()
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def test_the_watching_renderer_tries_a_failed_pdf_again_once_its_backoff_has_passed(app, monkeypatch):
    calls = _failing_once(monkeypatch)
    reference = complete(app.test_client(), clear_answers(full_name="Walt Watcher"))
    now = [0.0]
    backoff = services.Backoff(base=30, cap=900, clock=lambda: now[0])
    with app.app_context():
        failed: set[int] = set()
        assert services.render_pending(db.session, app.config["CLINIC"], failed=failed, backoff=backoff) == 0
        assert len(failed) == 1 and calls["n"] == 1
        now[0] += 10
        assert services.render_pending(db.session, app.config["CLINIC"], backoff=backoff) == 0, "not yet due"
        now[0] += 25
        assert services.render_pending(db.session, app.config["CLINIC"], backoff=backoff) == 1
        db.session.remove()
    assert _pdf_stored(app, reference)


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
