"""Email: composed from templates, kept encrypted in the outbox, sent through a real SMTP server (aiosmtpd), retried."""

from __future__ import annotations

import email
import email.policy
import logging
import os
import stat
import threading

import pytest
from sqlalchemy import select, text, update

from screening import config as config_module
from screening import mail, tasks
from screening.extensions import db
from screening.models import Outbox, utcnow
from tests.conftest import free_port, make_app

TO = "ann.client@example.org"
BASE = "https://screening.clinic.example"


@pytest.fixture
def mail_app(database_url, smtp, tmp_path):
    """An app sending through the test SMTP server; its tasks wait in a SQLite queue (nothing runs by itself)."""
    url, _ = smtp
    app = make_app(database_url, MAIL_URL=url, MAIL_FROM="desk@clinic.example", BASE_URL=BASE,
                   QUEUE_URL=f"sqlite:///{tmp_path / 'queue.db'}", MAIL_RETRY_SECONDS=60, MAIL_MAX_ATTEMPTS=3)
    yield app
    tasks.close(app)
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


def _queue_one(app, to: str = TO) -> int:
    with app.app_context():
        row = mail.queue(db.session, mail.compose("test", to), kind="test")
        db.session.commit()
        outbox_id = row.id
        db.session.remove()
    return outbox_id


def _deliver(app, outbox_id: int) -> mail.Outcome:
    with app.app_context():
        try:
            return mail.deliver(db.session, outbox_id)
        finally:
            db.session.remove()


def _row(app, outbox_id: int) -> Outbox:
    with app.app_context():
        row = db.session.get(Outbox, outbox_id)
        db.session.expunge(row)
        db.session.remove()
    return row


def _our_log(caplog) -> str:
    """What the app logged (the test's own SMTP server logs every address it sees)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("screening", "huey")))


def _due_now(app, outbox_id: int) -> None:
    with app.app_context():
        db.session.execute(update(Outbox).where(Outbox.id == outbox_id).values(next_attempt_at=utcnow()))
        db.session.commit()
        db.session.remove()


def test_a_queued_message_arrives_with_its_text_and_html_parts_once_the_worker_runs_its_task(mail_app, smtp):
    _, mailbox = smtp
    outbox_id = _queue_one(mail_app)
    huey = tasks.queue_of(mail_app).huey
    assert huey.pending_count() == 1 and mailbox.messages == [], "queued at the commit, not sent by the caller"
    huey.execute(huey.dequeue())  # what the worker does with it
    [message] = mailbox.messages
    assert message["From"] == "Test Clinic <desk@clinic.example>"
    assert message["To"] == TO
    assert message["Subject"] == "Test message from Test Clinic"
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "can send email" in plain and "<html" not in plain
    assert f"{BASE}/" in plain and f'href="{BASE}/"' in html, "links are built from SCREENING_BASE_URL"
    row = _row(mail_app, outbox_id)
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None) and row.sent_at is not None
    with mail_app.app_context():
        stored = db.session.execute(text("SELECT message FROM outbox")).scalar_one()
        db.session.remove()
    assert TO.encode() not in bytes(stored) and b"Test message" not in bytes(stored), "encrypted at rest"
    assert _deliver(mail_app, outbox_id).status == "skipped", "a sent message is never sent again"
    assert len(mailbox.messages) == 1


def test_a_rolled_back_message_is_never_queued(mail_app, smtp):
    with mail_app.app_context():
        mail.queue(db.session, mail.compose("test", TO), kind="test")
        db.session.rollback()
        db.session.commit()
        assert db.session.scalars(select(Outbox)).all() == []
        db.session.remove()
    assert tasks.queue_of(mail_app).huey.pending_count() == 0


def test_a_server_that_is_down_is_retried_with_back_off_then_marked_failed(mail_app, caplog):
    mail_app.config["MAIL_URL"] = f"smtp://127.0.0.1:{free_port()}"  # nothing listens there
    outbox_id = _queue_one(mail_app)
    huey = tasks.queue_of(mail_app).huey
    with caplog.at_level(logging.INFO):
        huey.execute(huey.dequeue())  # the task: a temporary failure is scheduled again
        assert huey.scheduled_count() == 1
        row = _row(mail_app, outbox_id)
        assert (row.status, row.attempts) == ("queued", 1)
        assert row.last_error == "cannot reach the mail server (ConnectionRefusedError)"
        assert _deliver(mail_app, outbox_id).status == "skipped", "not before its back-off has passed"
        _due_now(mail_app, outbox_id)
        second = _deliver(mail_app, outbox_id)
        assert (second.status, second.retry_in) == ("retry", 120), "twice as long the second time"
        _due_now(mail_app, outbox_id)
        assert _deliver(mail_app, outbox_id).status == "failed", "MAIL_MAX_ATTEMPTS=3"
    row = _row(mail_app, outbox_id)
    assert (row.status, row.attempts, row.sent_at) == ("failed", 3, None)
    assert row.last_error == "cannot reach the mail server (ConnectionRefusedError)"
    assert "not delivered after 3 attempt(s)" in _our_log(caplog)
    assert "ann.client" not in _our_log(caplog)


def test_a_temporary_refusal_is_retried_and_then_sent(mail_app, smtp):
    _, mailbox = smtp
    mailbox.replies = ["451 4.3.0 Try again later"]
    outbox_id = _queue_one(mail_app)
    first = _deliver(mail_app, outbox_id)
    assert (first.status, first.retry_in) == ("retry", 60) and first.reason == "451 recipient refused"
    _due_now(mail_app, outbox_id)
    assert _deliver(mail_app, outbox_id).status == "sent"
    assert len(mailbox.messages) == 1 and _row(mail_app, outbox_id).attempts == 2


def test_a_permanent_refusal_fails_at_once_with_a_reason_that_names_no_address(mail_app, smtp, caplog):
    _, mailbox = smtp
    mailbox.replies = [f"550 5.1.1 <{TO}>: no such user here"]
    outbox_id = _queue_one(mail_app)
    with caplog.at_level(logging.INFO):
        outcome = _deliver(mail_app, outbox_id)
    assert outcome.status == "failed"
    row = _row(mail_app, outbox_id)
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "550 recipient refused")
    assert mailbox.messages == []
    assert "not delivered" in _our_log(caplog) and "ann.client" not in _our_log(caplog)


def test_a_5xx_reply_to_the_message_names_no_address_in_its_reason():
    with pytest.raises(mail.PermanentFailure) as caught:
        raise mail.PermanentFailure(mail._short(f"554 5.7.1 <{TO}>: message refused as spam\r\n  (policy)"))
    assert str(caught.value) == "554 5.7.1 <[address]>: message refused as spam (policy)"


def test_two_workers_claiming_the_same_message_send_it_once(mail_app, smtp):
    _, mailbox = smtp
    mailbox.delay = 0.5  # the first worker is still sending when the second tries
    outbox_id = _queue_one(mail_app)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def worker():
        start.wait()
        outcomes.append(_deliver(mail_app, outbox_id).status)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["sent", "skipped"]
    assert len(mailbox.messages) == 1
    assert _row(mail_app, outbox_id).attempts == 1


def test_without_a_mail_server_each_message_is_written_to_the_mail_folder(database_url, tmp_path):
    folder = tmp_path / "mail"
    app = make_app(database_url, MAIL_DIR=str(folder))  # no MAIL_URL; QUEUE_URL=immediate: sent at the commit
    try:
        outbox_id = _queue_one(app)
        [eml] = folder.glob("*.eml")
        assert stat.S_IMODE(os.stat(eml).st_mode) == 0o600
        message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        assert message["To"] == TO and message["Subject"] == "Test message from Test Clinic"
        assert message.get_body(("html",)) is not None
        assert _row(app, outbox_id).status == "sent"
        result = app.test_cli_runner().invoke(args=["screening", "mail-test", "desk@clinic.example"])
        assert result.exit_code == 0 and f"test message written to {folder}" in result.output
        assert len(list(folder.glob("*.eml"))) == 2
    finally:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def test_production_needs_a_mail_server_or_an_explicit_mail_folder(tmp_path):
    settings = {"ENV": "production", "QUEUE_URL": "", "MAIL_URL": "", "MAIL_DIR": "", "MAIL_FROM": "",
                "BASE_URL": BASE, "MAIL_RETRY_SECONDS": 60, "MAIL_MAX_ATTEMPTS": 8}
    with pytest.raises(config_module.ConfigError, match="SCREENING_MAIL_URL must be set in production"):
        config_module.check_queue_and_mail(dict(settings), tmp_path)
    folder = dict(settings, MAIL_DIR=str(tmp_path / "outgoing"))
    config_module.check_queue_and_mail(folder, tmp_path)
    assert folder["MAIL_DIR"] == str(tmp_path / "outgoing")
    with pytest.raises(config_module.ConfigError, match="SCREENING_MAIL_FROM must be set"):
        config_module.check_queue_and_mail(dict(settings, MAIL_URL="smtp://mail.example:587"), tmp_path)
    with pytest.raises(config_module.ConfigError, match=r"smtp://\*\*\*@"):
        config_module.check_queue_and_mail(dict(settings, MAIL_URL="smtp://u:secret@mail.example:587/x/y"), tmp_path)
