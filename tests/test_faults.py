"""Faults lose nothing: a locked, unreachable or read-only database at the submit, a worker killed
mid-PDF, an unwritable PDF target, and a broken rules file at start-up.

Each runs on SQLite and, when SCREENING_TEST_DATABASE_URL is set, on PostgreSQL (except where a fault
exists on one of them only).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import event, select

from screening.config import ROOT
from screening.extensions import db
from screening.models import Draft, Submission
from tests import live, web
from tests.answers import clear_answers

NOT_SAVED = "Your answers have not been sent yet"
NAME = "Fay Ultman"


@contextlib.contextmanager
def _empty_database(url: str):
    """An app (and the environment of its command-line processes) on an empty database; PDFs on request."""
    env = live.server_env(url, SCREENING_PDF_BACKGROUND="0")
    app = _app(env)
    with app.app_context():
        db.drop_all()
        db.create_all()
    try:
        yield app, env
    finally:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


@pytest.fixture
def setup(database_url):
    with _empty_database(database_url) as app_env:
        yield app_env


@pytest.fixture
def sqlite_setup(tmp_path):
    with _empty_database(f"sqlite:///{tmp_path / 'test.db'}") as app_env:
        yield app_env


@pytest.fixture
def postgresql_setup():
    url = os.environ.get("SCREENING_TEST_DATABASE_URL")
    if not url:
        pytest.skip("needs PostgreSQL: set SCREENING_TEST_DATABASE_URL")
    with _empty_database(url) as app_env:
        yield app_env


def _app(env: dict, *, fail_fast: bool = False):
    """An app with the settings of ``env``; with ``fail_fast``, a locked database fails in half a second."""
    if not fail_fast:
        return live.orm_app(env)
    if env["SCREENING_DATABASE_URL"].startswith("sqlite"):
        engine = {"connect_args": {"timeout": 0.5}}
    else:
        engine = {"connect_args": {"options": "-c lock_timeout=500"}}
    return live.orm_app(env, SQLALCHEMY_ENGINE_OPTIONS=engine)


def _ready_to_submit(client, name: str = NAME) -> dict:
    """Answer every page and open the declaration; return the declaration's form, signed."""
    web.start(client)
    web.answer_all(client, clear_answers(full_name=name))
    assert client.get("/check").status_code == 200
    page = client.get("/declaration")
    return {"csrf_token": web.csrf_token(page.text), "confirm": "y", "signature": name}


def _drafts(app) -> list[dict]:
    with app.app_context():
        try:
            return [{"answers": d.answers, "signature_name": d.signature_name, "signed_at": d.signed_at}
                    for d in db.session.scalars(select(Draft))]
        finally:
            db.session.remove()


def _submissions(app) -> list[Submission]:
    with app.app_context():
        try:
            rows = list(db.session.scalars(select(Submission)))
            for row in rows:
                row.answers, row.pdf  # noqa: B018 - load (and decrypt) before the session ends
            db.session.expunge_all()
            return rows
        finally:
            db.session.remove()


def _assert_not_saved(response) -> None:
    assert response.status_code == 503
    assert NOT_SAVED in response.text
    assert 'href="/declaration"' in response.text, "the page offers to try again"


def _assert_retry_stores_one(client, app, form: dict) -> None:
    """Sending the same declaration again stores exactly one submission and shows its reference."""
    response = client.post("/declaration", data=form)
    assert response.status_code == 302 and response.location.endswith("/done")
    stored = _submissions(app)
    assert [(s.signature_name, s.answers["full_name"]) for s in stored] == [(NAME, NAME)]
    assert f'class="reference">{stored[0].reference}<' in client.get("/done").text
    assert _drafts(app) == []


# -- the database fails during the final submit ---------------------------------------------------


def test_a_locked_database_at_the_submit_keeps_the_draft_and_a_retry_stores_it_once(setup):
    app, env = setup
    served = _app(env, fail_fast=True)  # serves the client; ``app`` reads what was stored
    client = served.test_client()
    form = _ready_to_submit(client)
    before = _drafts(app)
    url = env["SCREENING_DATABASE_URL"]
    if url.startswith("sqlite"):
        # Another connection holds the whole file (as a backup or a migration may): not even a read gets in.
        holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
    else:
        import psycopg

        # Another transaction holds the submission table: the draft can be signed, the submission not stored.
        holder = psycopg.connect(url)
        holder.execute("LOCK TABLE submission IN EXCLUSIVE MODE")
    try:
        _assert_not_saved(client.post("/declaration", data=form))
    finally:
        holder.rollback()
        holder.close()

    assert _submissions(app) == []
    after = _drafts(app)
    assert len(after) == 1 and after[0]["answers"] == before[0]["answers"], "the draft is intact"
    if url.startswith("sqlite"):
        assert after == before  # nothing could be written, not even the signature
    else:
        assert after[0]["signature_name"] == NAME and after[0]["signed_at"] is not None
    _assert_retry_stores_one(client, app, form)
    with served.app_context():
        db.engine.dispose()


def test_a_failed_commit_of_the_submission_keeps_the_signed_draft(setup):
    """The insert of the submission fails (a full disk, a dropped connection): the signed draft stays."""
    app, _ = setup
    client = app.test_client()
    form = _ready_to_submit(client)
    before = _drafts(app)
    with app.app_context():
        engine = db.engine

    def refuse(cursor, statement, parameters, context):
        # In place of the driver's execute: the driver's own error, as the disk or the server would raise it.
        if statement.lstrip().upper().startswith("INSERT INTO SUBMISSION"):
            raise engine.dialect.loaded_dbapi.OperationalError("database or disk is full")

    event.listen(engine.dialect, "do_execute", refuse)
    try:
        _assert_not_saved(client.post("/declaration", data=form))
    finally:
        event.remove(engine.dialect, "do_execute", refuse)

    assert _submissions(app) == []
    after = _drafts(app)
    assert len(after) == 1 and after[0]["answers"] == before[0]["answers"]
    assert after[0]["signature_name"] == NAME and after[0]["signed_at"] is not None, "the signature is kept"
    assert f'value="{NAME}"' in client.get("/declaration").text, "and shown again on the declaration"
    _assert_retry_stores_one(client, app, form)


def test_a_lost_database_connection_at_the_submit_keeps_the_draft(postgresql_setup):
    """PostgreSQL ends every connection of the app (a restart, a failover): the submit says not saved."""
    import psycopg

    app, env = postgresql_setup
    url = env["SCREENING_DATABASE_URL"]

    client = app.test_client()
    form = _ready_to_submit(client)
    before = _drafts(app)
    with psycopg.connect(url, autocommit=True) as admin:
        ended = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()[0]
    assert ended >= 1, "the app had a pooled connection to lose"

    _assert_not_saved(client.post("/declaration", data=form))
    assert _submissions(app) == []
    assert _drafts(app) == before
    _assert_retry_stores_one(client, app, form)


def test_a_read_only_database_at_the_submit_keeps_the_draft(sqlite_setup):
    """The SQLite file cannot be written (opened read-only, as on a read-only disk): the submit says not saved."""
    app, env = sqlite_setup
    url = env["SCREENING_DATABASE_URL"]
    client = app.test_client()
    form = _ready_to_submit(client)
    before = _drafts(app)
    path = url.removeprefix("sqlite:///")
    read_only = _app({**env, "SCREENING_DATABASE_URL": f"sqlite:///file:{path}?mode=ro&uri=true"})
    browser = read_only.test_client()
    browser.set_cookie("session", client.get_cookie("session").value)  # the same browser, the same draft

    _assert_not_saved(browser.post("/declaration", data=form))
    with read_only.app_context():
        db.engine.dispose()
    assert _submissions(app) == []
    assert _drafts(app) == before
    _assert_retry_stores_one(client, app, form)


# -- PDFs ------------------------------------------------------------------------------------------------


def _render_pdfs(env: dict, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "screening", "render-pdfs", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)


def _pdf_state(app) -> list[tuple[bool, bool]]:
    """Per submission: (has a PDF, the PDF matches its stored keyed digest); a half-written row has one without the other."""
    with app.app_context():
        try:
            rows = db.session.execute(select(Submission.pdf, Submission.pdf_hmac)).all()
        finally:
            db.session.remove()
    return [(pdf is not None or sha is not None,
             app.extensions["screening_vault"].pdf_intact(pdf, sha)) for pdf, sha in rows]


def test_pdfs_lost_to_a_killed_worker_are_rendered_by_the_next_run(setup):
    app, env = setup
    from screening import tasks

    client = app.test_client()
    count = 8
    for i in range(count):
        web.complete(client, clear_answers(full_name=f"Render Client {i}"))
    assert _pdf_state(app) == [(False, False)] * count
    with app.app_context():
        for submission_id in db.session.scalars(select(Submission.id)).all():
            assert tasks.queue_of(app).render_pdf(submission_id) is None  # into the worker's queue (SQLite storage)
        db.session.remove()
    tasks.close(app)

    worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "screening", "worker", "-w", "1",
                               "--no-periodic"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while sum(has for has, _ in _pdf_state(app)) == 0:
            assert worker.poll() is None, worker.stdout.read()
            assert time.monotonic() < deadline, "no PDF rendered within 180 s"
            time.sleep(0.05)
        os.killpg(worker.pid, signal.SIGKILL)  # mid-way through the next PDF
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
        worker.stdout.close()

    state = _pdf_state(app)
    rendered = sum(has for has, _ in state)
    assert 1 <= rendered < count, f"kill -9 came too late to interrupt the worker ({rendered} of {count})"
    assert all(has == ok for has, ok in state), "a PDF is stored whole, with its SHA-256, or not at all"

    again = _render_pdfs(env)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    assert f"rendered {count - rendered} PDF(s)" in out
    assert _pdf_state(app) == [(True, True)] * count


def _one_submission(app) -> str:
    return web.complete(app.test_client(), clear_answers(full_name=NAME))


def test_the_pdf_command_into_a_missing_folder_says_so_and_writes_nothing(setup, tmp_path):
    app, _ = setup
    reference = _one_submission(app)
    target = tmp_path / "missing" / "report.pdf"
    result = app.test_cli_runner().invoke(args=["screening", "pdf", reference, "-o", str(target)])
    assert result.exit_code == 1
    assert f"error: cannot write {target}: No such file or directory" in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert not target.parent.exists()


def test_the_pdf_command_on_a_full_disk_leaves_no_partial_file(setup, tmp_path, monkeypatch):
    app, _ = setup
    reference = _one_submission(app)
    folder = tmp_path / "reports"
    folder.mkdir()
    target = folder / "report.pdf"
    target.write_bytes(b"the previous report")

    real_fsync = os.fsync

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    result = app.test_cli_runner().invoke(args=["screening", "pdf", reference, "-o", str(target)])
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert result.exit_code == 1
    assert f"error: cannot write {target}: No space left on device; nothing was written" in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["report.pdf"], "no temporary file is left behind"
    assert target.read_bytes() == b"the previous report", "the previous file is untouched"

    result = app.test_cli_runner().invoke(args=["screening", "pdf", reference, "-o", str(target)])
    assert result.exit_code == 0, result.output
    data = target.read_bytes()
    assert data.startswith(b"%PDF-")
    assert [(s.pdf, s.pdf_hmac) for s in _submissions(app)] == [(data, app.extensions["screening_vault"].pdf_digest(data))]
    assert sorted(p.name for p in folder.iterdir()) == ["report.pdf"]


# -- a broken rules file at start-up ------------------------------------------------------------------------

SHIPPED = (ROOT / "rules.yaml").read_text(encoding="utf-8")
BROKEN = {
    # a YAML syntax error: the closing brace of a condition is missing
    # (the line reported is the next one, where the parser finds a key instead of the brace)
    "yaml": ('when: {question: breastfeeding, op: eq, value: "yes"}',
             'when: {question: breastfeeding, op: eq, value: "yes"',
             "breastfeeding", "reason: The client is breastfeeding", "not valid YAML (in rule 'breastfeeding')"),
    # a rule that asks about a question the dictionary does not have
    "unknown_question": ('when: {question: breastfeeding, op: eq, value: "yes"}',
                         'when: {question: breastfeding, op: eq, value: "yes"}',
                         "breastfeeding", "question: breastfeding", "unknown question 'breastfeding'"),
}


def _broken_rules(tmp_path: Path, kind: str) -> tuple[Path, int, str, str]:
    """Write a broken copy of rules.yaml; return its path, the line at fault, the rule id and the message."""
    old, new, rule, at, message = BROKEN[kind]
    assert SHIPPED.count(old) == 1
    text = SHIPPED.replace(old, new)
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    line = next(n for n, line in enumerate(text.splitlines(), 1) if at in line)
    return path, line, rule, message


def _start_up_env(tmp_path: Path, rules: Path) -> dict:
    return live.server_env(f"sqlite:///{tmp_path / 'never.db'}", SCREENING_RULES_PATH=str(rules))


@pytest.mark.parametrize("kind", BROKEN)
def test_a_broken_rules_file_stops_the_app_being_imported(tmp_path, kind):
    rules, line, rule, message = _broken_rules(tmp_path, kind)
    done = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=_start_up_env(tmp_path, rules),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "screening: cannot start, the rules file has 1 problem(s)" in done.stderr
    assert f"{rules}:{line}: rule '" in done.stderr and f"rule '{rule}'" in done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("kind", BROKEN)
def test_a_broken_rules_file_stops_gunicorn(tmp_path, kind):
    """gunicorn's master stops ("App failed to load") instead of booting failing workers for ever.

    The app exits 4, gunicorn's "app failed to load"; the master then exits 4 too, or 1 when both workers
    fail at the same moment (gunicorn reaps the second while halting, a race of its own).
    """
    rules, line, rule, message = _broken_rules(tmp_path, kind)
    with contextlib.ExitStack() as stack:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-b", "127.0.0.1:0", "wsgi:app"],
                                cwd=ROOT, env=_start_up_env(tmp_path, rules), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        stack.callback(lambda: proc.poll() is None and os.killpg(proc.pid, signal.SIGKILL))
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            pytest.fail(f"gunicorn kept running with a broken rules file:\n{out[-3000:]}")
    assert proc.returncode in (1, 4), out[-3000:]
    assert "App failed to load" in out
    assert f"{rules}:{line}: rule '" in out and f"rule '{rule}'" in out and message in out
