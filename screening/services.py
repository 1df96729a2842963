"""Use cases: drafts, signing, submitting, PDFs (rendered by tasks.render_pdf). Each takes the session and commits."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from typing import Any

from blinker import Namespace
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from . import clock
from . import questions as qd
from .crypto import vault
from .errors import DraftNotFound, IncompleteDraft, NotSigned, SaveFailed, SubmissionNotFound
from .models import Draft, Review, Submission, utcnow
from .rules import AnswersError, RuleSet, evaluate

log = logging.getLogger(__name__)
# Sent inside the submit's transaction, before its commit (sender: the session; draft, submission, answers): what
# started the draft (an appointment's invitation) listens and adds its changes, and this module knows none of it.
draft_submitted = Namespace().signal("draft-submitted")

# Letters and digits that cannot be mistaken for one another when read aloud or handwritten.
REFERENCE_ALPHABET = "ACDEFHJKMNPRTUVWXY3479"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_reference() -> str:
    """Return a random reference such as ``K7QM-4TXR`` (22^8, about 5e10, possibilities)."""
    chars = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(8))
    return f"{chars[:4]}-{chars[4:]}"


def normalise_reference(text: str) -> str:
    """Return a reference as stored, whatever case or spacing it was typed with."""
    chars = "".join(c for c in text.upper() if c.isalnum())
    return f"{chars[:4]}-{chars[4:]}" if len(chars) == 8 else chars


# -- drafts ----------------------------------------------------------------------


def start_draft(session: Session, lifetime: dt.timedelta, *, is_kiosk: bool = False) -> tuple[Draft, str]:
    """Create an empty draft; return it and the random token for the client's cookie."""
    now = utcnow()
    session.execute(delete(Draft).where(Draft.expires_at < now))
    token = secrets.token_urlsafe(32)
    draft = Draft(token_hash=_hash(token), answers={}, is_kiosk=is_kiosk, created_at=now, updated_at=now,
                  expires_at=now + lifetime)
    session.add(draft)
    session.commit()
    return draft, token


def find_draft(session: Session, token: str | None) -> Draft:
    """Return the live draft for ``token``; an expired one is deleted. Raise DraftNotFound."""
    if not token:
        raise DraftNotFound()
    draft = session.scalar(select(Draft).where(Draft.token_hash == _hash(token)))
    if draft is None:
        raise DraftNotFound()
    expires = draft.expires_at if draft.expires_at.tzinfo else draft.expires_at.replace(tzinfo=dt.timezone.utc)
    if expires <= utcnow():
        session.delete(draft)
        session.commit()
        raise DraftNotFound()
    return draft


def save_answers(session: Session, draft: Draft, page: qd.Page, answers: dict[str, Any],
                 lifetime: dt.timedelta) -> None:
    """Store one page's answers in the draft; a change after signing clears the signature."""
    merged = dict(draft.answers or {})
    ids = [q.id for q in qd.page_questions(page)]
    before = {i: merged.get(i) for i in ids}
    for i in ids:
        if answers.get(i) in (None, "", []):
            merged.pop(i, None)
        else:
            merged[i] = answers[i]
    if any(before[i] != merged.get(i) for i in ids):
        draft.signature_name = None
        draft.signed_at = None
    draft.answers = merged
    if page.id in (draft.pages_to_confirm or "").split(","):  # a prefilled page, now seen and sent
        draft.pages_to_confirm = ",".join(p for p in draft.pages_to_confirm.split(",") if p and p != page.id)
    draft.updated_at = utcnow()
    draft.expires_at = draft.updated_at + lifetime
    session.commit()


def first_incomplete_page(answers: dict[str, Any]) -> str | None:
    """Return the id of the first page with a required answer missing, or None when complete."""
    from .rules import asked_ids

    for qid in asked_ids(answers):
        q = qd.BY_ID[qid]
        if q.required and answers.get(qid) in (None, "", []):
            return qd.page_of(qid).id
    return None


def next_page(draft: Draft) -> str | None:
    """Return the first page the client must still see: one with a required answer missing, or a page prefilled
    from their last screening that they have not yet confirmed or changed; None when there is none."""
    pending = [p for p in (draft.pages_to_confirm or "").split(",") if p in qd.PAGE_BY_ID]
    gap = first_incomplete_page(draft.answers or {})
    order = [p.id for p in qd.PAGES]
    candidates = [p for p in (gap, *pending) if p]
    return min(candidates, key=order.index) if candidates else None


def eighteenth_birthday_after(answers: dict[str, Any]) -> dt.date | None:
    """Return the client's 18th birthday if it falls after the appointment date, else None."""
    from .rules import add_months

    try:
        dob = dt.date.fromisoformat(answers["dob"])
        appointment = dt.date.fromisoformat(answers["appointment_date"])
    except (KeyError, TypeError, ValueError):
        return None
    birthday = add_months(dob, 18 * 12)  # 29 February: 1 March in a year without one
    return birthday if birthday > appointment else None


def sign(session: Session, draft: Draft, name: str) -> None:
    """Record the typed signature on the draft."""
    draft.signature_name = name.strip()
    draft.signed_at = utcnow()
    session.commit()


# -- submitting -------------------------------------------------------------------


def submit(session: Session, draft: Draft, ruleset: RuleSet) -> Submission:
    """Evaluate the signed draft and store answers, result and signature in one transaction."""
    if not draft.signature_name or not draft.signed_at:
        raise NotSigned()
    answers = dict(draft.answers or {})
    answered_on = clock.local(draft.signed_at).date()  # the clinic's day the client signed
    try:
        result = evaluate(ruleset, answers, answered_on=answered_on,
                          clinic_sessions=_clinic_sessions(session, draft, answers))
    except AnswersError as exc:
        # A missing answer, or a date that cannot be true (an appointment now past, an event after it):
        # back to the first page at fault, where the form says what is wrong.
        pages = [qd.page_of(qid).id for qid in exc.questions if qid in qd.BY_ID]
        page = first_incomplete_page(answers) or (pages[0] if pages else qd.PAGES[0].id)
        raise IncompleteDraft(page, exc.missing or exc.problems) from None
    from .rules import asked_ids

    asked = set(asked_ids(answers))
    stored = {k: v for k, v in answers.items() if k in asked}
    indexes = vault().search_indexes(answers)  # the staff search's blind indexes of name and date of birth
    for attempt in range(5):
        submission = Submission(
            reference=new_reference(),
            answers=stored,
            dictionary_version=result.dictionary_version,
            rules_digest=result.rules_digest,
            result=result.to_dict(),
            outcome=result.outcome,
            appointment_date=result_date(answers["appointment_date"]),
            signature_name=draft.signature_name,
            signed_at=draft.signed_at,
            answered_on=answered_on,
            is_kiosk=draft.is_kiosk,
            previous_id=draft.prefilled_from_id,
            on_the_day=day_state_of(result),
            **indexes,
        )
        session.add(submission)
        try:
            session.flush()
            draft_submitted.send(session, draft=draft, submission=submission, answers=stored)
            session.delete(draft)
            session.flush()
            # What the caller needs after the commit is taken now: once committed, reading an expired
            # attribute is a new query, and a database that fails then must not turn "stored" into "not sent".
            submission_id, reference = submission.id, submission.reference
            session.commit()
        except IntegrityError:
            session.rollback()  # a reference collision: draw another
            continue
        except OperationalError as exc:
            session.rollback()
            log.error("submission not stored: database error %s", type(exc.orig).__name__)
            # The commit itself may have failed after the server stored it (a connection lost at that moment):
            # the caller keeps the reference tried, and a retry finds it (see was_stored).
            raise SaveFailed(submission.reference) from None
        set_committed_value(submission, "id", submission_id)
        set_committed_value(submission, "reference", reference)
        return submission
    raise SaveFailed()


def _clinic_sessions(session: Session, draft: Draft, answers: dict[str, Any]) -> tuple[dict, ...]:
    """Return the sessions the clinic recorded for the draft's client before its appointment (rule 41 reads them
    beside the client's answers); none for a walk-in not tied to a client, or an appointment date not yet valid."""
    from .clients.services import client_of_draft, clinic_sessions

    try:
        appointment = dt.date.fromisoformat(str(answers.get("appointment_date")))
    except ValueError:
        return ()  # the engine says what is wrong with the date
    return clinic_sessions(session, client_of_draft(session, draft), appointment)


def day_state_of(result) -> str:
    """Return where a new result stands for the day of treatment: redo (out of date), to_confirm or not_needed."""
    if result.out_of_date:
        return "redo"
    return "to_confirm" if result.to_confirm_on_the_day else "not_needed"


def was_stored(session: Session, reference: str | None) -> bool:
    """Whether a submission with ``reference`` exists (a submit whose commit reported an error may have stored it)."""
    if not reference:
        return False
    return session.scalar(select(Submission.id).where(Submission.reference == reference)) is not None


def result_date(value: str) -> dt.date:
    """Return a stored YYYY-MM-DD answer as a date."""
    return dt.date.fromisoformat(value)


# -- PDFs ---------------------------------------------------------------------------


def find_submission(session: Session, reference: str) -> Submission:
    """Return the submission with ``reference``; raise SubmissionNotFound."""
    submission = session.scalar(select(Submission).where(Submission.reference == normalise_reference(reference)))
    if submission is None:
        raise SubmissionNotFound()
    return submission


def ensure_pdf(session: Session, submission: Submission, clinic: dict) -> bytes:
    """Return the submission's PDF, rendering and storing it first if it is missing."""
    if submission.pdf is not None:
        return submission.pdf
    from .pdf import render, report_context

    data = render(report_context(submission, clinic))
    submission.pdf = data
    submission.pdf_hmac = vault().pdf_digest(data)  # keyed: a plain hash of a reproducible PDF says who it is
    submission.pdf_rendered_at = utcnow()
    session.commit()
    return data


def pending_pdf_id(session: Session, *, skip: set[int] | frozenset[int] = frozenset()) -> int | None:
    """Return the id of the newest submission still waiting for its PDF, or None.

    On PostgreSQL the row stays locked (``SKIP LOCKED``) until the caller commits, so that several
    renderers never take the same submission; SQLite has one writer at a time anyway.
    """
    query = select(Submission.id).where(Submission.pdf_hmac.is_(None)).order_by(Submission.id.desc()).limit(1)
    if skip:
        query = query.where(Submission.id.not_in(skip))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.scalar(query)


def render_pending(session: Session, clinic: dict, *, failed: set[int] | None = None) -> int:
    """Render every PDF still missing (``render-pdfs``); return how many rendered. Ids that fail go into ``failed``.

    A PDF and its keyed digest are stored in one transaction, so a process killed mid-render leaves the
    submission pending, never half-written, and the next run renders it.
    """
    rendered = 0
    failed = set() if failed is None else failed
    while (submission_id := pending_pdf_id(session, skip=failed)) is not None:
        try:
            ensure_pdf(session, session.get(Submission, submission_id), clinic)
            rendered += 1
        except Exception:  # noqa: BLE001 - log every failure; the PDF is tried again
            session.rollback()
            failed.add(submission_id)
            log.exception("PDF rendering failed for submission id %s; it will render on the next run or request",
                          submission_id)
    session.rollback()
    return rendered


# A worker that claimed a PDF owns it this long; after that (a worker killed mid-render) the sweep tries it again.
PDF_LEASE = dt.timedelta(minutes=5)


def render_claimed(session: Session, submission_id: int, config) -> float | None:
    """Claim a submission's missing PDF, render and store it (the PDF task).

    Returns None when done (or nothing to do: rendered already, or claimed by another worker until its lease
    ends), else the seconds until the next try: PDF_RETRY_SECONDS, twice as long after each failure, at most
    PDF_RETRY_MAX_SECONDS. The claim is one UPDATE on the row, so two workers never render the same PDF.
    """
    now = utcnow()
    claimed = session.execute(
        update(Submission)
        .where(Submission.id == submission_id, Submission.pdf_hmac.is_(None),
               or_(Submission.pdf_due_at.is_(None), Submission.pdf_due_at <= now))
        .values(pdf_due_at=now + PDF_LEASE)
        .execution_options(synchronize_session=False)).rowcount
    session.commit()
    if claimed != 1:
        return None
    try:
        ensure_pdf(session, session.get(Submission, submission_id), config["CLINIC"])
        return None
    except Exception:  # noqa: BLE001 - log every failure; the PDF is tried again
        session.rollback()
        attempts = (session.scalar(select(Submission.pdf_attempts).where(Submission.id == submission_id)) or 0) + 1
        delay = min(float(config["PDF_RETRY_SECONDS"]) * 2 ** (attempts - 1), float(config["PDF_RETRY_MAX_SECONDS"]))
        session.execute(update(Submission).where(Submission.id == submission_id)
                        .values(pdf_attempts=attempts, pdf_due_at=utcnow() + dt.timedelta(seconds=delay))
                        .execution_options(synchronize_session=False))
        session.commit()
        log.exception("PDF rendering failed for submission id %s; trying again in %.0f s", submission_id, delay)
        return delay


# -- keys ------------------------------------------------------------------------------


def rotate_keys(session: Session, batch: int = 100) -> dict[str, int]:
    """Re-encrypt every encrypted value under the newest key and recompute the blind indexes.

    Works through each table in batches of ``batch`` rows, one commit per batch: safe to run while the
    app serves clients, and to run again after an interruption. Returns the rows rewritten per table.
    """
    from sqlalchemy.orm.attributes import flag_modified

    from .crypto import _Encrypted
    from .extensions import db

    keys = vault()
    counts: dict[str, int] = {}
    for mapper in sorted(db.Model.registry.mappers, key=lambda m: m.class_.__name__):
        model = mapper.class_
        columns = [c.key for c in mapper.columns if isinstance(c.type, _Encrypted)]
        if not columns:
            continue
        last, done = 0, 0
        while True:
            rows = session.scalars(select(model).where(model.id > last).order_by(model.id).limit(batch)).all()
            if not rows:
                break
            for row in rows:
                for column in columns:
                    if getattr(row, column) is not None:
                        flag_modified(row, column)  # written again, so encrypted under the newest key
                if model is Submission:
                    for column, value in keys.search_indexes(row.answers).items():
                        setattr(row, column, value)
                if model in (Submission, Review) and row.pdf is not None:
                    row.pdf_hmac = keys.pdf_digest(row.pdf)  # under the current index key
            last, done = rows[-1].id, done + len(rows)
            session.commit()
            session.expunge_all()
        counts[model.__tablename__] = done
    # The key canary last: once it is under the newest keys, a start with only the new keys is accepted.
    from .keycheck import CANARY_ID, canary_values
    from .models import KeyCanary

    session.execute(update(KeyCanary).where(KeyCanary.id == CANARY_ID).values(**canary_values(keys)))
    session.commit()
    return counts
