"""`flask screening backup`: a consistent copy taken while the app keeps writing, that opens as the app's database.

SQLite: the online backup API into DIR/screening-YYYYMMDDTHHMMSSZ.db. PostgreSQL: pg_dump into
DIR/screening-YYYYMMDDTHHMMSSZ.dump, restored with pg_restore into a scratch database named after the
test database (``<dbname>_restore``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url

from screening import audit, create_app, records, services
from screening.crypto import vault
from screening.extensions import db
from screening.models import AuditEvent, Submission
from tests.answers import clear_answers
from tests.web import complete

BACKUP_NAME = re.compile(r"screening-\d{8}T\d{6}Z\.(db|dump)")
KEYS_NOTE = "The encryption keys (SCREENING_ENCRYPTION_KEYS) are NOT in this backup"
WRITER_MAX = 1000  # rows; the writer stops as soon as the backup is done
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
POSTGRESQL_ONLY = pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.skipif(
    not os.environ.get("SCREENING_TEST_DATABASE_URL"), reason="SCREENING_TEST_DATABASE_URL is not set"))],
    indirect=True)


def completed_with_pdfs(app, count=3) -> dict[str, str]:
    """Complete ``count`` real questionnaires, render their PDFs; return {reference: full name}."""
    refs = {}
    for i in range(count):
        name = f"Client Number{'x' * i}"
        refs[complete(app.test_client(), clear_answers(full_name=name))] = name
    with app.app_context():
        for ref in refs:
            services.ensure_pdf(db.session, services.find_submission(db.session, ref), app.config["CLINIC"])
        db.session.remove()
    return refs


class Writer(threading.Thread):
    """Keeps inserting submissions (each with a PDF and an audit event, in one transaction) until stopped.

    ``committed`` lists references in commit order, appended only after each commit returns.
    """

    def __init__(self, app, template: str):
        super().__init__(name="backup-test-writer", daemon=True)
        self.app, self.template = app, template
        self.committed: list[str] = []
        self.stop = threading.Event()
        self.warmed_up = threading.Event()
        self.error: BaseException | None = None

    def run(self):
        try:
            with self.app.app_context():
                base = services.find_submission(db.session, self.template)
                skip = {"id", "reference", "pdf", "pdf_hmac", "submitted_at"}
                fields = {a.key: getattr(base, a.key) for a in inspect(Submission).column_attrs if a.key not in skip}
                while not self.stop.is_set() and len(self.committed) < WRITER_MAX:
                    ref = services.new_reference()
                    pdf = os.urandom(2048)
                    sub = Submission(reference=ref, pdf=pdf, pdf_hmac=vault().pdf_digest(pdf), **fields)
                    db.session.add(sub)
                    db.session.flush()
                    audit.record(db.session, "view_submission", submission_id=sub.id, detail=ref, commit=False)
                    db.session.commit()
                    self.committed.append(ref)
                    if len(self.committed) >= 5:
                        self.warmed_up.set()
                    self.stop.wait(0.002)  # pacing, like clients submitting: not a timing assertion
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
            self.warmed_up.set()


def open_copy(app, url: str):
    """An app on ``url`` with the same settings (and keys) as ``app``; no schema change."""
    settings = {k: v for k, v in app.config.items() if k.isupper()}
    settings["SQLALCHEMY_DATABASE_URI"] = url
    return create_app(settings)


def check_copy(copy_app, before: dict[str, str], writer: Writer) -> int:
    """Every submission committed before the backup started is in the copy, whole; return the writer rows found."""
    with copy_app.app_context():
        stored = {s.reference: s for s in db.session.scalars(select(Submission))}
        missing = [ref for ref in before if ref not in stored]
        assert missing == [], f"{len(missing)} submission(s) committed before the backup are missing"
        for ref, name in before.items():
            sub = stored[ref]
            assert vault().pdf_intact(sub.pdf, sub.pdf_hmac)
            if name is not None:
                assert sub.answers["full_name"] == name and sub.signature_name == name
        # Consistency: the writer's rows in the copy are exactly a prefix of its commits, each with its audit event.
        found = [ref for ref in writer.committed if ref in stored]
        assert found == writer.committed[:len(found)], "the copy holds a gap in the commit order"
        extra = set(stored) - set(before) - set(writer.committed)
        assert extra == set()
        linked = db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "view_submission", AuditEvent.submission_id.is_not(None)))
        assert linked == len(found), "each copied submission has the audit event of its own transaction"
        db.session.remove()
        db.engine.dispose()
    return len(found)


def run_backup_while_writing(app, runner, backup_dir: Path):
    refs = completed_with_pdfs(app)
    writer = Writer(app, next(iter(refs)))
    writer.start()
    try:
        assert writer.warmed_up.wait(60) and writer.error is None, writer.error
        before = {**refs, **{ref: None for ref in list(writer.committed)}}
        result = runner.invoke(args=["screening", "backup", str(backup_dir)])
    finally:
        writer.stop.set()
        writer.join(60)
    assert writer.error is None, writer.error
    return result, before, writer


def only_backup(backup_dir: Path) -> Path:
    files = sorted(backup_dir.iterdir())
    assert len(files) == 1 and BACKUP_NAME.fullmatch(files[0].name), [f.name for f in files]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    return files[0]


@SQLITE_ONLY
def test_a_sqlite_backup_taken_while_writing_opens_as_the_database_with_everything_committed_before_it(
        app, runner, tmp_path):
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    result, before, writer = run_backup_while_writing(app, runner, backup_dir)
    assert result.exit_code == 0, result.output
    copy = only_backup(backup_dir)
    assert f"wrote {copy}" in result.output and KEYS_NOTE in result.output
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
    check_copy(open_copy(app, f"sqlite:///{copy}"), before, writer)


@SQLITE_ONLY
def test_the_app_keeps_sqlite_in_wal_mode_and_a_backup_copies_a_checked_snapshot(app, tmp_path):
    with app.app_context():
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        event_id = audit.record(db.session, "sign_in", detail="committed before the backup").id
        source = records.sqlite_path(db.engine.url)
        backup_dir = tmp_path / "backups"
        backup_dir.mkdir()
        result = records.backup_sqlite(source, backup_dir)
        db.session.remove()
        db.engine.dispose()
    assert result.method == "online" and stat.S_IMODE(result.path.stat().st_mode) == 0o600
    assert result.sha256 == hashlib.sha256(result.path.read_bytes()).hexdigest()
    assert only_backup(backup_dir) == result.path
    with sqlite3.connect(result.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT detail FROM audit_event WHERE id = ?", (event_id,)).fetchall() == [
            ("committed before the backup",)]
    conn.close()


@SQLITE_ONLY
@pytest.mark.parametrize("problem", ["missing", "a file", "read-only"])
def test_a_directory_that_cannot_take_the_backup_is_refused_and_nothing_is_written(app, runner, tmp_path, problem):
    parent = tmp_path / "disk"
    parent.mkdir()
    target = parent / "backups"
    if problem == "a file":
        target.write_text("")
    elif problem == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root can write in a read-only directory")
        target.mkdir()
        target.chmod(0o500)
    result = runner.invoke(args=["screening", "backup", str(target)])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and str(target) in result.output
    assert {"missing": "does not exist", "a file": "is not a directory",
            "read-only": "is not writable"}[problem] in result.output
    if problem == "read-only":
        target.chmod(0o700)
        assert list(target.iterdir()) == []
    else:
        assert sorted(p.name for p in parent.iterdir()) == ([] if problem == "missing" else ["backups"])


# -- PostgreSQL: pg_dump and pg_restore ----------------------------------------------------------------


def scratch_url(url: str) -> str:
    """The scratch database for restores, named after the test database (CI: test_restore)."""
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_restore").render_as_string(hide_password=False)


def _admin_engine(url: str):
    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql+psycopg", database="postgres")
    return create_engine(admin, isolation_level="AUTOCOMMIT")


def recreate_database(url: str, drop_only: bool = False) -> None:
    engine = _admin_engine(url)
    name = make_url(url).database
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            if not drop_only:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()


@POSTGRESQL_ONLY
def test_a_postgresql_dump_taken_while_writing_restores_with_everything_committed_before_it(app, runner, tmp_path):
    if not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        pytest.skip("pg_dump and pg_restore are not installed")
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    result, before, writer = run_backup_while_writing(app, runner, backup_dir)
    assert result.exit_code == 0, result.output
    dump = only_backup(backup_dir)
    assert dump.suffix == ".dump" and KEYS_NOTE in result.output and "pg_restore" in result.output

    restore = scratch_url(os.environ["SCREENING_TEST_DATABASE_URL"])
    recreate_database(restore)
    try:
        plain, env = records.libpq_url(restore)
        done = subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={plain}", str(dump)],
                              env={**os.environ, **env}, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        check_copy(open_copy(app, restore), before, writer)
    finally:
        recreate_database(restore, drop_only=True)


@POSTGRESQL_ONLY
def test_without_pg_dump_the_command_explains_pg_dump_and_pg_restore_and_fails(app, runner, tmp_path):
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    result = runner.invoke(args=["screening", "backup", str(backup_dir)], env={"PATH": str(tmp_path / "empty")})
    assert result.exit_code == 1
    assert "pg_dump is not on the PATH" in result.output
    assert "pg_dump --format=custom" in result.output and "pg_restore --no-owner" in result.output
    assert KEYS_NOTE in result.output
    assert list(backup_dir.iterdir()) == []
