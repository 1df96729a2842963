"""Backups, retention and the client's rights: backup, purge, export and erase.

Each use case takes the database session (or the database URL, for backups) and raises a named
error that the command line catches by name. Nothing here writes health data to a log or to the
audit trail: an audit detail holds a reference and, at most, an operator's short reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from . import audit
from .appointments.models import Appointment
from .clients.models import DayCheck, TreatmentSession
from .crypto import binding, check_column
from .errors import SubmissionNotFound
from .models import Addendum, Arrival, AuditEvent, FlagAcknowledgement, Review, Submission, utcnow
from .services import ensure_pdf, normalise_reference


# An operator's reason for an export or an erasure goes into the audit detail (200 characters) after
# the reference: "K7QM-4TXR; reason: ...". It must never hold health data.
REASON_MAX = 180
KEYS_NOTE = ("The encryption keys (SCREENING_ENCRYPTION_KEYS) are NOT in this backup, nor is SCREENING_INDEX_KEY. "
             "Keep a copy of them separately and safely (not next to the backup): without them the encrypted "
             "answers, names and PDFs in the backup cannot be read and search by name or date of birth fails; "
             "whoever holds both the backup and the keys can read everything.")
PURGE_BATCH = 500


class RecordsError(Exception):
    """Base of this module's errors; the message is fit to show the operator."""


class BackupError(RecordsError):
    """The backup could not be made; nothing was left in the target directory."""


class PgDumpMissing(BackupError):
    """The database is PostgreSQL and pg_dump is not on the PATH."""


class TooRecent(RecordsError):
    """A purge date later than today minus the retention period, without --force."""

    def __init__(self, before: dt.date, cutoff: dt.date, years: int):
        self.before, self.cutoff, self.years = before, cutoff, years
        super().__init__(
            f"--before {before.isoformat()} is later than today minus the retention period "
            f"({years} years: {cutoff.isoformat()}); submissions made since then must still be kept. "
            f"Use --before {cutoff.isoformat()} or earlier, or add --force if you are sure "
            f"(for example, the clinic's retention period is shorter than SCREENING_RETENTION_YEARS)."
        )


class InvalidReason(RecordsError):
    """The operator's reason is too long."""


class ExportError(RecordsError):
    """The export could not be written; nothing was left in the target directory."""


def _stamp(now: dt.datetime | None) -> str:
    return (now or utcnow()).astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _writable_dir(directory: Path, error: type[RecordsError]) -> Path:
    if not directory.exists():
        raise error(f"{directory} does not exist; create it first (on the backup disk, not by accident "
                    "on this one)")
    if not directory.is_dir():
        raise error(f"{directory} is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise error(f"{directory} is not writable by this user; nothing was written")
    return directory


# -- backups ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BackupResult:
    """A finished backup: where it is, its size and SHA-256, and how it was made."""

    path: Path
    size: int
    sha256: str
    method: str  # "online" (SQLite's online backup) or "pg_dump"


def sqlite_path(url: str | URL) -> Path | None:
    """Return the database file of a SQLite URL, or None for another database or an in-memory one."""
    url = make_url(url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def backup(url: str | URL, directory: str | Path, *, now: dt.datetime | None = None) -> BackupResult:
    """Back up the database at ``url`` into ``directory`` (SQLite: online backup; PostgreSQL: pg_dump)."""
    url = make_url(url)
    directory = _writable_dir(Path(directory), BackupError)
    if url.get_backend_name() == "postgresql":
        return backup_postgresql(url, directory, now=now)
    path = sqlite_path(url)
    if path is None:
        raise BackupError("only a SQLite database file or a PostgreSQL database can be backed up, "
                          f"not {url.render_as_string(hide_password=True)}")
    return backup_sqlite(path, directory, now=now)


def backup_sqlite(source: str | Path, directory: str | Path, *, now: dt.datetime | None = None) -> BackupResult:
    """Copy a live SQLite database into ``directory/screening-YYYYMMDDTHHMMSSZ.db`` (mode 0600).

    SQLite's online backup API copies a consistent snapshot while the app keeps writing. The copy goes
    to a temporary name in ``directory``, is checked (``PRAGMA integrity_check``), synced and renamed in
    one atomic step: a failure leaves nothing behind.
    """
    source = Path(source)
    directory = _writable_dir(Path(directory), BackupError)
    if not source.is_file():
        raise BackupError(f"the database file {source} does not exist")
    final = directory / f"screening-{_stamp(now)}.db"
    if final.exists():
        raise BackupError(f"{final} already exists; try again in a second")
    try:
        fd, temp_name = tempfile.mkstemp(prefix=".screening-", suffix=".db.partial", dir=directory)  # mode 0600
    except OSError as exc:
        raise BackupError(f"cannot write in {directory}: {exc.strerror}; nothing was written") from None
    os.close(fd)
    temp = Path(temp_name)
    try:
        with closing(sqlite3.connect(source, timeout=30)) as src, closing(sqlite3.connect(temp)) as dst:
            # The app keeps SQLite in WAL mode: one step reads one consistent snapshot and never blocks
            # writers. (A database in rollback-journal mode is copied the same way, holding writers off
            # until the copy is done.)
            src.backup(dst, pages=-1)
            check = dst.execute("PRAGMA integrity_check").fetchall()
            if check != [("ok",)]:
                raise BackupError(f"the copy failed its integrity check: {check[:3]}")
        with open(temp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, final)
        _fsync_dir(directory)
    except BaseException as exc:
        for leftover in (temp, Path(f"{temp}-journal"), Path(f"{temp}-wal"), Path(f"{temp}-shm")):
            leftover.unlink(missing_ok=True)
        if isinstance(exc, sqlite3.Error):
            raise BackupError(f"the backup failed: {exc}; nothing was written") from None
        if isinstance(exc, OSError):
            raise BackupError(f"cannot write in {directory}: {exc.strerror}; nothing was written") from None
        raise
    return BackupResult(path=final, size=final.stat().st_size, sha256=_sha256_file(final), method="online")


def libpq_url(url: str | URL) -> tuple[str, dict[str, str]]:
    """Return a PostgreSQL URL for libpq tools (no driver, no password) and the environment for the password."""
    url = make_url(url)
    plain = URL.create("postgresql", username=url.username, host=url.host, port=url.port,
                       database=url.database, query=url.query)
    env = {"PGPASSWORD": url.password} if url.password else {}
    return plain.render_as_string(hide_password=False), env


def pg_dump_instructions(url: str | URL, directory: str | Path = "BACKUP_DIR") -> str:
    """The documented pg_dump and pg_restore commands for this database (no password shown)."""
    plain, _env = libpq_url(url)
    restore = make_url(plain).set(database="NEW_EMPTY_DB").render_as_string(hide_password=False)
    return (
        "Back up PostgreSQL with pg_dump (a consistent snapshot, taken while the app runs):\n"
        f"  pg_dump --format=custom --compress=1 --file={directory}/screening-$(date -u +%Y%m%dT%H%M%SZ).dump "
        f"'{plain}'\n"
        "Restore into a new, empty database:\n"
        "  createdb NEW_EMPTY_DB\n"
        f"  pg_restore --no-owner --exit-on-error --dbname='{restore}' FILE.dump\n"
        "The password, if any, comes from PGPASSWORD or ~/.pgpass."
    )


def backup_postgresql(url: str | URL, directory: str | Path, *, now: dt.datetime | None = None,
                      pg_dump: str | None = None) -> BackupResult:
    """Run ``pg_dump --format=custom --compress=1`` into ``directory/screening-YYYYMMDDTHHMMSSZ.dump`` (mode 0600).

    Level 1: the health data is encrypted, so harder compression only undoes the hex text of bytea
    columns, which level 1 does too (1,000 records of 100 KB: 6 s and 137 MB against 45 s and 126 MB).

    pg_dump reads one snapshot, so the dump is consistent while the app runs. It writes to a
    temporary name that is renamed once pg_dump has succeeded. Raises PgDumpMissing when pg_dump is
    not installed (the message says how to run it).
    """
    directory = _writable_dir(Path(directory), BackupError)
    pg_dump = pg_dump or shutil.which("pg_dump")
    if not pg_dump:
        raise PgDumpMissing("pg_dump is not on the PATH, so no backup was made.\n"
                            + pg_dump_instructions(url, directory))
    final = directory / f"screening-{_stamp(now)}.dump"
    if final.exists():
        raise BackupError(f"{final} already exists; try again in a second")
    try:
        fd, temp_name = tempfile.mkstemp(prefix=".screening-", suffix=".dump.partial", dir=directory)
    except OSError as exc:
        raise BackupError(f"cannot write in {directory}: {exc.strerror}; nothing was written") from None
    os.close(fd)
    temp = Path(temp_name)
    plain, env = libpq_url(url)
    try:
        done = subprocess.run([pg_dump, "--format=custom", "--compress=1", f"--file={temp}", f"--dbname={plain}"],
                              env={**os.environ, **env}, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BackupError(f"pg_dump failed (exit {done.returncode}): {done.stderr.strip()[:500]}; "
                              "nothing was written")
        with open(temp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, final)
        _fsync_dir(directory)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return BackupResult(path=final, size=final.stat().st_size, sha256=_sha256_file(final), method="pg_dump")


# -- retention ----------------------------------------------------------------------------------


def today() -> dt.date:
    """Today's date in UTC (submission times are stored in UTC)."""
    return utcnow().date()


def retention_cutoff(day: dt.date, years: int) -> dt.date:
    """Return ``day`` minus ``years`` calendar years (29 February becomes 28 February, keeping a day longer)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def check_before(before: dt.date, cutoff: dt.date, years: int, *, force: bool = False) -> None:
    """Refuse (TooRecent) a purge date later than the retention cut-off unless ``force``."""
    if before > cutoff and not force:
        raise TooRecent(before, cutoff, years)


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A submission a purge would delete: only its reference and when it was submitted."""

    id: int
    reference: str
    submitted_at: dt.datetime


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)


def purge_candidates(session: Session, before: dt.date) -> list[Candidate]:
    """Return the submissions submitted before ``before`` (00:00 UTC), oldest first, without their data."""
    rows = session.execute(
        select(Submission.id, Submission.reference, Submission.submitted_at)
        .where(Submission.submitted_at < _midnight(before)).order_by(Submission.submitted_at, Submission.id))
    return [Candidate(id=i, reference=ref, submitted_at=_aware(at)) for i, ref, at in rows]


@dataclasses.dataclass
class Deleted:
    """What a purge or an erasure deleted (and the audit events it detached from the submissions)."""

    submissions: int = 0
    reviews: int = 0
    acknowledgements: int = 0
    addenda: int = 0
    arrivals: int = 0
    audit_events_detached: int = 0

    def add(self, other: "Deleted") -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def describe(self) -> str:
        return (f"{self.submissions} submission(s), {self.reviews} review(s), {self.acknowledgements} "
                f"acknowledgement(s), {self.addenda} addendum/addenda, {self.arrivals} arrival(s); "
                f"{self.audit_events_detached} audit event(s) kept with their submission link cleared")


def _delete_submissions(session: Session, rows: list[tuple[int, str]], action: str,
                        reason: str = "") -> tuple[Deleted, set[int]]:
    """Delete submissions and everything attached, in the caller's transaction; audit one event each.

    The audit trail is append-only: events about these submissions stay, their link is set to NULL.
    Returns the counts and the ids deleted (one erased meanwhile is skipped).
    """
    # PostgreSQL: lock the rows first, so that an addendum or an arrival racing this waits and then fails
    # on the missing submission instead of slipping in between the deletes below.
    present = set(session.scalars(select(Submission.id).where(Submission.id.in_([i for i, _r in rows]))
                                  .with_for_update()))
    rows = [(i, ref) for i, ref in rows if i in present]
    ids = [i for i, _ref in rows]
    reviews = select(Review.id).where(Review.submission_id.in_(ids)).scalar_subquery()
    out = Deleted()
    out.acknowledgements = session.execute(
        delete(FlagAcknowledgement).where(FlagAcknowledgement.review_id.in_(reviews)),
        execution_options={"synchronize_session": False}).rowcount
    # The session recorded at sign-off goes with its sign-off (the clinic's record of it is part of this screening).
    session.execute(delete(TreatmentSession).where(TreatmentSession.review_id.in_(reviews)),
                    execution_options={"synchronize_session": False})
    for model, name in ((Review, "reviews"), (Addendum, "addenda"), (Arrival, "arrivals")):
        setattr(out, name, session.execute(delete(model).where(model.submission_id.in_(ids)),
                                           execution_options={"synchronize_session": False}).rowcount)
    # The day's confirmation holds the earlier answers: it goes too. A later screening prefilled from this one, and
    # the appointment it answered, stay, without the link to it.
    session.execute(delete(DayCheck).where(DayCheck.submission_id.in_(ids)),
                    execution_options={"synchronize_session": False})
    session.execute(update(Submission).where(Submission.previous_id.in_(ids)).values(previous_id=None),
                    execution_options={"synchronize_session": False})
    session.execute(update(Appointment).where(Appointment.submission_id.in_(ids)).values(submission_id=None),
                    execution_options={"synchronize_session": False})
    out.audit_events_detached = session.execute(
        update(AuditEvent).where(AuditEvent.submission_id.in_(ids)).values(submission_id=None),
        execution_options={"synchronize_session": False}).rowcount
    out.submissions = session.execute(delete(Submission).where(Submission.id.in_(ids)),
                                      execution_options={"synchronize_session": False}).rowcount
    for _id, reference in rows:
        audit.record(session, action, detail=_detail(reference, reason), commit=False)
    return out, present


def purge(session: Session, before: dt.date, *, batch: int = PURGE_BATCH) -> tuple[list[Candidate], Deleted]:
    """Delete every submission submitted before ``before`` and everything attached; one ``purged`` event each.

    Commits once per batch of ``batch`` submissions (each batch is all or nothing).
    """
    candidates = purge_candidates(session, before)
    total, gone = Deleted(), set()
    for start in range(0, len(candidates), batch):
        chunk = candidates[start:start + batch]
        deleted, ids = _delete_submissions(session, [(c.id, c.reference) for c in chunk], "purged")
        session.commit()
        total.add(deleted)
        gone |= ids
    session.expire_all()
    return [c for c in candidates if c.id in gone], total


# -- the client's rights: export and erasure ---------------------------------------------------------


def clean_reason(reason: str | None) -> str:
    """Return an operator's reason on one line; raise InvalidReason when it is too long for the audit trail."""
    text = " ".join((reason or "").split())
    if len(text) > REASON_MAX:
        raise InvalidReason(f"the reason must be {REASON_MAX} characters or fewer (it has {len(text)}); "
                            "it goes into the audit trail, so it must not hold health data")
    return text


def _detail(reference: str, reason: str = "") -> str:
    return f"{reference}; reason: {reason}" if reason else reference


def find_reference(session: Session, reference: str) -> str:
    """Return the stored form of ``reference`` (any case or spacing) without loading the record; or raise."""
    stored = session.scalar(select(Submission.reference)
                            .where(Submission.reference == normalise_reference(reference)))
    if stored is None:
        raise SubmissionNotFound()
    return stored


def _find(session: Session, reference: str) -> Submission:
    submission = session.scalar(select(Submission).where(Submission.reference == normalise_reference(reference)))
    if submission is None:
        raise SubmissionNotFound()
    return submission


def erase(session: Session, reference: str, *, reason: str = "") -> tuple[str, Deleted]:
    """Delete one client's submission and everything attached (as a purge does); audit one ``erased`` event."""
    reason = clean_reason(reason)
    row = session.execute(select(Submission.id, Submission.reference)
                          .where(Submission.reference == normalise_reference(reference))).first()
    if row is None:
        raise SubmissionNotFound()
    deleted, ids = _delete_submissions(session, [(row.id, row.reference)], "erased", reason)
    if not ids:
        session.rollback()
        raise SubmissionNotFound()
    session.commit()
    session.expire_all()
    return row.reference, deleted


def _iso(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return _aware(value).astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def record_data(session: Session, submission: Submission) -> dict[str, Any]:
    """Return a submission and everything attached to it as plain data (dates as ISO 8601 text)."""
    from .staff.review_services import review_data

    review = review_data(session, submission.id)
    # The export's checksums are plain SHA-256 of the files written beside record.json, for the recipient to check
    # them; the database keeps only keyed digests (a plain hash of a reproducible PDF would say who it is).
    review_pdf = session.execute(select(Review.pdf).where(Review.submission_id == submission.id)).first()
    if review_pdf is not None:
        check_column(review_pdf[0], "review", "pdf", binding("review", {"submission_id": submission.id}))
    arrived = session.scalar(select(Arrival.at).where(Arrival.submission_id == submission.id))
    if review is not None:
        review = dict(review)
        review.pop("decision_text", None)
        review["signed_off_pdf_sha256"] = _sha256(review_pdf[0] if review_pdf else None)
    return {
        "format": "screening-record/1",
        "reference": submission.reference,
        "submitted_at": _aware(submission.submitted_at),
        "signature": {"name": submission.signature_name, "signed_at": _aware(submission.signed_at)},
        "appointment_date": submission.appointment_date,
        "kiosk": submission.is_kiosk,
        "dictionary_version": submission.dictionary_version,
        "rules_digest": submission.rules_digest,
        "answers": submission.answers,
        "outcome": submission.outcome,
        "result": submission.result,
        "pdf_sha256": _sha256(submission.pdf),
        "review": review,
        "arrived_at": _aware(arrived),
    }


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """Where an export was written and the files in it."""

    reference: str
    path: Path
    files: tuple[str, ...]


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def export(session: Session, reference: str, directory: str | Path, clinic: dict, *,
           reason: str = "", now: dt.datetime | None = None) -> ExportResult:
    """Write ``directory/<REFERENCE>/`` with record.json, submission.pdf and, if signed off, signed-off.pdf.

    Renders the original PDF if it is missing. The folder is written under a temporary name and
    renamed when complete (folder 0700, files 0600). Audits one ``exported`` event.
    """
    reason = clean_reason(reason)
    submission = _find(session, reference)
    directory = Path(directory)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create {directory}: {exc.strerror}") from None
    _writable_dir(directory, ExportError)
    target = directory / submission.reference
    if target.exists():
        raise ExportError(f"{target} already exists; move it away or choose another directory")
    pdf = ensure_pdf(session, submission, clinic)
    data = record_data(session, submission)
    data["exported_at"] = now or utcnow()
    signed = check_column(session.scalar(select(Review.pdf).where(Review.submission_id == submission.id)),
                          "review", "pdf", binding("review", {"submission_id": submission.id}))
    try:
        temp = Path(tempfile.mkdtemp(prefix=f".{submission.reference}-", suffix=".partial", dir=directory))
    except OSError as exc:
        raise ExportError(f"cannot write in {directory}: {exc.strerror}; nothing was written") from None
    files = ["record.json", "submission.pdf"] + (["signed-off.pdf"] if signed is not None else [])
    try:
        text = json.dumps(data, default=_iso, ensure_ascii=False, indent=2, sort_keys=False) + "\n"
        _write_private(temp / "record.json", text.encode("utf-8"))
        _write_private(temp / "submission.pdf", pdf)
        if signed is not None:
            _write_private(temp / "signed-off.pdf", signed)
        audit.record(session, "exported", submission_id=submission.id, detail=_detail(submission.reference, reason),
                     commit=False)
        os.rename(temp, target)
    except BaseException as exc:
        session.rollback()
        shutil.rmtree(temp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise ExportError(f"cannot write the export in {directory}: {exc.strerror}; nothing was left "
                              "there") from None
        raise
    try:
        session.commit()  # no export without its audit event
    except BaseException:
        session.rollback()
        shutil.rmtree(target, ignore_errors=True)
        raise
    _fsync_dir(directory)
    return ExportResult(reference=submission.reference, path=target, files=tuple(files))
