"""The task queue: its storage, the submit's enqueue after the commit, the sweep, and a real worker process."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
import time

import pytest
from huey import MemoryHuey, RedisHuey, SqliteHuey
from sqlalchemy import select, update

from screening import config as config_module
from screening import mail, tasks
from screening.config import ROOT
from screening.extensions import db
from screening.models import Outbox, Submission, utcnow
from tests import live
from tests.answers import clear_answers
from tests.conftest import make_app
from tests.web import complete


def _settings(tmp_path, queue_url: str) -> dict:
    settings = {"ENV": "development", "QUEUE_URL": queue_url, "MAIL_URL": "", "MAIL_DIR": "", "MAIL_FROM": "",
                "BASE_URL": "http://127.0.0.1:5000", "MAIL_RETRY_SECONDS": 60, "MAIL_MAX_ATTEMPTS": 8}
    config_module.check_queue_and_mail(settings, tmp_path)
    return settings


def test_the_queue_storage_follows_screening_queue_url(tmp_path):
    class App:
        def __init__(self, config):
            self.config, self.extensions = config, {}

    default = _settings(tmp_path, "")
    assert default["QUEUE_URL"] == f"sqlite:///{tmp_path / 'queue.db'}", "a SQLite file in instance/"
    assert default["MAIL_DIR"] == str(tmp_path / "mail")
    app = App(default)
    queue = tasks.queue_of(app)
    assert isinstance(queue.huey, SqliteHuey) and (tmp_path / "queue.db").exists()
    assert tasks.queue_of(app) is queue, "one queue per app"
    tasks.close(app)
    redis = tasks.make_huey(App(_settings(tmp_path, "redis://127.0.0.1:6379/3")))  # connects on first use
    assert isinstance(redis.huey, RedisHuey)
    assert isinstance(tasks.make_huey(App(_settings(tmp_path, "immediate"))).huey, MemoryHuey)
    with pytest.raises(config_module.ConfigError, match="SCREENING_QUEUE_URL"):
        _settings(tmp_path, "amqp://rabbit")
    with pytest.raises(config_module.ConfigError, match="for tests"):
        config_module.check_queue_and_mail({**_settings(tmp_path, ""), "QUEUE_URL": "immediate",
                                            "ENV": "production", "MAIL_DIR": "x"}, tmp_path)


def test_a_queue_that_fails_does_not_fail_the_submit_and_the_sweep_queues_the_pdf(database_url, tmp_path,
                                                                                   monkeypatch, caplog):
    app = make_app(database_url, PDF_BACKGROUND="queue", QUEUE_URL=f"sqlite:///{tmp_path / 'queue.db'}")
    try:
        def broken(app=None):
            raise OSError("the queue's disk is full")

        monkeypatch.setattr(tasks, "queue_of", broken)
        with caplog.at_level(logging.ERROR):
            reference = complete(app.test_client(), clear_answers(full_name="Quentin Queue"))  # 302 to /done
        assert "could not queue render_pdf" in caplog.text and "Quentin" not in caplog.text
        monkeypatch.undo()
        huey = tasks.queue_of(app).huey
        assert huey.pending_count() == 0
        with app.app_context():
            assert tasks.sweep() == {"pdfs": 0, "mails": 0}, "not yet: its task may still be on its way"
            db.session.execute(update(Submission).values(submitted_at=utcnow() - tasks.GRACE - dt.timedelta(seconds=1)))
            db.session.commit()
            assert tasks.sweep() == {"pdfs": 1, "mails": 0}
        assert huey.pending_count() == 1
        huey.execute(huey.dequeue())
        with app.app_context():
            row = db.session.scalar(select(Submission).where(Submission.reference == reference))
            assert app.extensions["screening_vault"].pdf_intact(row.pdf, row.pdf_hmac)
            db.session.remove()
    finally:
        tasks.close(app)
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def test_the_sweep_queues_a_message_whose_task_was_lost_and_a_stale_claim(database_url, tmp_path):
    app = make_app(database_url, QUEUE_URL=f"sqlite:///{tmp_path / 'queue.db'}", MAIL_DIR=str(tmp_path / "mail"))
    try:
        with app.app_context():
            ids = []
            for n in range(3):
                ids.append(mail.queue(db.session, mail.compose("test", f"client{n}@example.org"), kind="test").id)
            db.session.info.pop("screening_outbox")  # their tasks are lost
            db.session.commit()
            past = utcnow() - tasks.GRACE - dt.timedelta(seconds=1)
            db.session.execute(update(Outbox).where(Outbox.id == ids[0]).values(next_attempt_at=past))
            db.session.execute(update(Outbox).where(Outbox.id == ids[1])
                               .values(status="sending", next_attempt_at=past))  # its worker died mid-send
            db.session.commit()
            assert tasks.sweep() == {"pdfs": 0, "mails": 2}, "the third is fresh: its task may still come"
        huey = tasks.queue_of(app).huey
        while huey.pending_count():
            huey.execute(huey.dequeue())
        with app.app_context():
            statuses = dict(db.session.execute(select(Outbox.id, Outbox.status)).all())
            db.session.remove()
        assert statuses == {ids[0]: "sent", ids[1]: "sent", ids[2]: "queued"}
        assert len(list((tmp_path / "mail").glob("*.eml"))) == 2
    finally:
        tasks.close(app)
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def test_a_worker_process_renders_the_pdf_and_delivers_the_mail_queued_by_the_app(tmp_path, smtp):
    url, mailbox = smtp
    env = live.server_env(f"sqlite:///{tmp_path / 'worker.db'}", SCREENING_MAIL_URL=url,
                          SCREENING_MAIL_FROM="desk@clinic.example")
    app = live.orm_app(env)
    with app.app_context():
        db.create_all()
    try:
        reference = complete(app.test_client(), clear_answers(full_name="Wanda Worker"))  # queues its PDF
        with app.app_context():
            mail.queue(db.session, mail.compose("test", "wanda@example.org"), kind="test")
            db.session.commit()  # queues the message
            db.session.remove()
        tasks.close(app)
        with open(tmp_path / "worker.log", "wb") as log:
            worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "screening", "worker"],
                                      cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
            try:
                deadline = time.monotonic() + 60
                while not (mailbox.messages and live.pdf_counts(app) == (1, 1)):
                    assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                    assert time.monotonic() < deadline, "the worker did not render and send within 60 s"
                    time.sleep(0.1)
            finally:
                live.stop(worker)
        [message] = mailbox.messages
        assert message["To"] == "wanda@example.org"
        with app.app_context():
            row = db.session.scalar(select(Submission).where(Submission.reference == reference))
            assert app.extensions["screening_vault"].pdf_intact(row.pdf, row.pdf_hmac)
            assert db.session.scalar(select(Outbox.status)) == "sent"
            db.session.remove()
        logged = (tmp_path / "worker.log").read_text()
        assert "wanda@example.org" not in logged and "Wanda" not in logged
    finally:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def test_a_registered_periodic_use_case_runs_in_an_app_context(database_url, monkeypatch):
    from flask import current_app

    ran = []
    monkeypatch.setattr(tasks, "_periodic", {})
    tasks.periodic("remind")(lambda: ran.append(current_app.config["CLINIC"]["name"]))
    app = make_app(database_url)
    try:
        queue = tasks.queue_of(app)
        assert sorted(t.name.rsplit(".", 1)[-1] for t in queue.huey.read_periodic(None)) == ["remind", "sweep"]
        queue.remind()  # immediate: runs as it is queued, as the worker would every minute
        assert ran == ["Test Clinic"]
    finally:
        with app.app_context():
            db.drop_all()
            db.engine.dispose()


def test_mail_goes_before_the_pdfs_already_waiting(tmp_path):
    class App:
        def __init__(self, config):
            self.config, self.extensions = config, {}

    queue = tasks.make_huey(App(_settings(tmp_path, "")))
    try:
        for submission_id in (1, 2, 3):
            queue.render_pdf(submission_id)
        queue.send_mail(7)
        assert queue.huey.dequeue().name == "send_mail", "the email first, though queued last"
        assert [queue.huey.dequeue().name for _ in range(3)] == ["render_pdf"] * 3
    finally:
        queue.huey.storage.close()
