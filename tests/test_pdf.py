"""The practitioner PDF: contents, determinism, archival tagging, failure handling, the CLI."""

import datetime as dt
import io
import logging

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from screening import pdf as pdf_module
from screening import questions as qd
from screening import services
from screening.crypto import vault
from screening.display import format_answer
from screening.extensions import db
from screening.models import Submission
from screening.rules import asked_ids
from tests.answers import clear_answers
from tests.web import complete

FUTURE = (dt.date.today() + dt.timedelta(days=30)).isoformat()
RECENT = (dt.date.today() - dt.timedelta(days=20)).isoformat()


def text_of(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)


def submission(app, reference):
    return db.session.scalar(select(Submission).where(Submission.reference == reference))


CASES = {
    "clear": (clear_answers(appointment_date=FUTURE), "CLEAR"),
    "defer": (clear_answers(appointment_date=FUTURE, isotretinoin_last_12m="yes", isotretinoin_current="no",
                            isotretinoin_last_dose_date=RECENT, cold_sore_history="yes",
                            injectables_12m="yes",
                            injectables=[{"type": "ha_filler", "date": RECENT, "location": ["cheeks"]}]),
              "DEFER"),
    "do_not_treat": (clear_answers(appointment_date=FUTURE, keloid_history="yes", unwell_today="yes"),
                     "DO NOT TREAT"),
}


@pytest.mark.parametrize("case", CASES)
def test_pdf_holds_outcome_flags_answers_reference_and_page_numbers(app, client, case):
    given, banner = CASES[case]
    reference = complete(client, given)
    with app.app_context(), app.test_request_context():
        row = submission(app, reference)
        data = services.ensure_pdf(db.session, row, app.config["CLINIC"])
        text = text_of(data)
        assert data.startswith(b"%PDF")
        assert f"Outcome: {banner}" in text
        assert reference in text
        assert "Test Clinic" in text and given["full_name"] in text and "27 March 1990" in text
        for flag in row.result["flags"]:
            assert f"({flag['id']})" in text.replace(" _", "_").replace("_ ", "_") or flag["title"] in text
            assert flag["reason"][:40] in text
        answers = row.answers
        for qid in asked_ids(answers):
            q = qd.BY_ID[qid]
            shown = format_answer(q, answers.get(qid))
            assert " ".join(shown.split())[:30] in text, qid
        pages = len(PdfReader(io.BytesIO(data)).pages)
        for n in range(1, pages + 1):
            assert f"Page {n} of {pages}" in text
        assert "Not asked" in text
        assert row.rules_digest in text.replace(" ", "") or row.rules_digest[:16] in text
        assert vault().pdf_intact(data, row.pdf_hmac)


def test_same_record_renders_identical_bytes(app, client):
    reference = complete(client, CASES["defer"][0])
    with app.app_context(), app.test_request_context():
        row = submission(app, reference)
        context = pdf_module.report_context(row, app.config["CLINIC"])
        first = pdf_module.render(context)
        second = pdf_module.render(pdf_module.report_context(row, app.config["CLINIC"]))
        assert first == second


def test_pdf_is_archival_and_tagged(app, client):
    reference = complete(client, CASES["defer"][0])
    with app.app_context(), app.test_request_context():
        data = services.ensure_pdf(db.session, submission(app, reference), app.config["CLINIC"])
    reader = PdfReader(io.BytesIO(data))
    root = reader.trailer["/Root"]
    assert "/StructTreeRoot" in root, "tagged: a structure tree"
    assert bool(root["/MarkInfo"]["/Marked"]) is True
    assert root["/Lang"] == "en"
    xmp = root["/Metadata"].get_object().get_data()
    assert b"pdfaid:part" in xmp and b"3" in xmp
    assert reader.metadata.title == f"Screening {reference}"


def test_the_fetcher_allows_only_data_and_static(app):
    fetcher = pdf_module._fetcher_class()()
    font = fetcher.fetch("app-static:fonts/DejaVuSans.ttf")
    assert font.read()[:4] == b"\x00\x01\x00\x00"
    assert fetcher.fetch("data:text/plain;base64,aGk=").read() == b"hi"
    for url in ("file:///etc/passwd", "http://127.0.0.1/", "https://example.org/x.png",
                "app-static:../../../etc/passwd", "app-static:../config.py"):
        with pytest.raises(pdf_module.BlockedURL):
            fetcher.fetch(url)


def test_submit_only_queues_the_pdf_and_a_failed_render_keeps_the_submission(database_url, monkeypatch, caplog,
                                                                             tmp_path):
    from screening import tasks
    from tests.conftest import make_app

    app = make_app(database_url, PDF_BACKGROUND=True, QUEUE_URL=f"sqlite:///{tmp_path / 'queue.db'}")
    client = app.test_client()

    def broken(context):
        raise RuntimeError("renderer down")

    monkeypatch.setattr(pdf_module, "render", broken)
    reference = complete(client, CASES["clear"][0])
    huey = tasks.queue_of(app).huey
    with app.app_context():
        assert submission(app, reference).pdf is None, "the submit renders nothing itself"
        db.session.remove()
    assert huey.pending_count() == 1, "the PDF waits in the queue for the worker"
    with caplog.at_level(logging.ERROR):
        huey.execute(huey.dequeue())  # what the worker does with it
    assert "PDF rendering failed" in caplog.text
    assert reference not in caplog.text and "Ann Example" not in caplog.text
    assert huey.scheduled_count() == 1, "tried again later"
    monkeypatch.undo()
    runner = app.test_cli_runner()
    with app.app_context():
        row = submission(app, reference)
        assert row is not None and row.outcome == "CLEAR" and row.pdf is None
    out = str(tmp_path / "report.pdf")
    result = runner.invoke(args=["screening", "pdf", reference.lower(), "-o", out])
    assert result.exit_code == 0, result.output
    with open(out, "rb") as fh:
        assert fh.read(4) == b"%PDF"
    with app.app_context():
        row = submission(app, reference)
        assert vault().pdf_intact(row.pdf, row.pdf_hmac)
        db.session.remove()
        db.drop_all()
        db.engine.dispose()
    tasks.close(app)


def test_the_queued_pdf_task_stores_the_pdf(database_url):
    from tests.conftest import make_app

    app = make_app(database_url, PDF_BACKGROUND=True)  # QUEUE_URL=immediate: the task runs as it is queued
    reference = complete(app.test_client(), CASES["clear"][0])
    with app.app_context():
        row = submission(app, reference)
        assert row.pdf is not None and row.pdf.startswith(b"%PDF")
        assert vault().pdf_intact(row.pdf, row.pdf_hmac)
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


def test_pdf_cli_unknown_reference(runner, tmp_path):
    result = runner.invoke(args=["screening", "pdf", "ZZZZ-ZZZZ", "-o", str(tmp_path / "x.pdf")])
    assert result.exit_code == 1
    assert "no submission" in result.output


def test_no_public_route_serves_pdfs_or_submissions(app):
    """Outside the signed-in staff area there are only the questionnaire's own pages, the invitation's (a link, the
    date-of-birth check, the booking to confirm), the day-of-treatment confirmation (reached only after the date of
    birth or by the desk: it shows the questions about now and the client's own earlier answers to them, never a
    PDF, an outcome or a flag) and the booking systems' API behind its bearer token."""
    rules = sorted(str(r) for r in app.url_map.iter_rules() if not str(r).startswith("/staff/"))
    assert rules == sorted(["/", "/start", "/q/<page_id>", "/q/under-18", "/check", "/declaration", "/done",
                            "/expired", "/logo", "/static/<path:filename>", "/kiosk/exit", "/kiosk/reset",
                            "/kiosk/alive", "/accessibility", "/i/<token>", "/invitation", "/invitation/booking",
                            "/today", "/today/changes", "/today/done",
                            "/api/v1/appointments", "/api/v1/appointments/<external_id>",
                            "/api/v1/appointments/<external_id>", "/api/v1/appointments/<external_id>",
                            "/api/v1/openapi.json"])


def test_render_pdfs_renders_every_missing_pdf_and_reports_failures(app, runner, monkeypatch):
    client = app.test_client()
    references = [complete(client, CASES[case][0]) for case in ("clear", "defer")]
    with app.app_context():
        assert all(submission(app, r).pdf is None for r in references)
        broken_id = submission(app, references[0]).id
    real = pdf_module.render

    def fails_for_first(context):
        if context["reference"] == references[0]:
            raise RuntimeError("renderer down")
        return real(context)

    monkeypatch.setattr(pdf_module, "render", fails_for_first)
    result = runner.invoke(args=["screening", "render-pdfs"])
    assert result.exit_code == 1 and "rendered 1 PDF(s); 1 failed" in result.output
    with app.app_context():
        assert submission(app, references[0]).pdf is None
        assert submission(app, references[1]).pdf_hmac is not None
    monkeypatch.undo()
    result = runner.invoke(args=["screening", "render-pdfs"])
    assert result.exit_code == 0 and "rendered 1 PDF(s)" in result.output
    with app.app_context():
        row = db.session.get(Submission, broken_id)
        assert vault().pdf_intact(row.pdf, row.pdf_hmac)
    assert runner.invoke(args=["screening", "render-pdfs"]).output.strip() == "rendered 0 PDF(s)"


def test_the_sweep_renders_the_pdfs_whose_task_was_lost(database_url):
    from sqlalchemy import update

    from screening import create_app, tasks
    from screening.models import utcnow
    from tests.conftest import make_app

    left = make_app(database_url)  # queues nothing: stands for a process killed before it queued the PDF
    reference = complete(left.test_client(), CASES["clear"][0])
    same = ("TESTING", "SQLALCHEMY_DATABASE_URI", "SECRET_KEY", "ENCRYPTION_KEYS", "INDEX_KEY", "QUEUE_URL")
    worker = create_app({**{k: left.config[k] for k in same}, "PDF_BACKGROUND": "queue"})  # tasks run at once
    with worker.app_context():
        assert tasks.sweep() == {"pdfs": 0, "mails": 0}, "a PDF submitted just now still has its task"
        db.session.execute(update(Submission).values(submitted_at=utcnow() - tasks.GRACE - dt.timedelta(seconds=1)))
        db.session.commit()
        assert tasks.sweep() == {"pdfs": 1, "mails": 0}
        row = submission(worker, reference)
        assert vault().pdf_intact(row.pdf, row.pdf_hmac)
        assert tasks.sweep() == {"pdfs": 0, "mails": 0}
        db.session.remove()
        db.drop_all()
        db.engine.dispose()
    with left.app_context():
        db.engine.dispose()