"""Practitioner review: the submissions list, the record, sign-off, addenda and the signed-off PDF.

Each use case takes the database session, commits once and raises a named error that the views
catch by name. Audit details hold ids and codes only: never a name, a date of birth, an answer
or a rule id (a rule id says what is wrong with the client).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, defer

from .. import audit
from ..crypto import binding, bound, check_column, open_row, raw, vault
from ..errors import SubmissionNotFound
from ..models import Addendum, AuditEvent, FlagAcknowledgement, Review, StaffUser, Submission, utcnow
from ..pdf import render, report_context
from ..questions import N_
from ..services import ensure_pdf, normalise_reference

PER_PAGE = 50
OUTCOMES = ("DO_NOT_TREAT", "DEFER", "REVIEW", "CLEAR")
STATUSES = ("new", "signed_off")
DECISIONS = ("proceed", "proceed_with_precautions", "defer", "decline")
DECISION_TEXT = {
    "proceed": N_("Proceed"),
    "proceed_with_precautions": N_("Proceed with precautions"),
    "defer": N_("Defer"),
    "decline": N_("Decline"),
}
PROCEEDING = frozenset({"proceed", "proceed_with_precautions"})
# Treating despite a flag of these severities is an override and needs the practitioner's reason.
OVERRIDABLE = frozenset({"defer", "do_not_treat"})
NOTE_MAX = 2000
ADDENDUM_MAX = 4000
VIEWERS_SHOWN = 50


class ReviewError(Exception):
    """Base of the review errors."""


class AlreadySignedOff(ReviewError):
    """The submission has been signed off already; a sign-off is stored once and never edited."""


class NotSignedOff(ReviewError):
    """The submission has no sign-off yet (an addendum or the signed-off PDF needs one)."""


class InvalidReview(ReviewError):
    """The input breaks a rule; ``problems`` lists (field id, message) in page order."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s): {', '.join(key for key, _m in problems)}")


# -- the list -----------------------------------------------------------------------


@dataclass(frozen=True)
class ListQuery:
    """What the list shows: a day (None for any date), filters, a search, a page."""

    day: dt.date | None = None
    outcome: str | None = None
    status: str | None = None
    name: str = ""
    birth_date: dt.date | None = None
    reference: str = ""
    page: int = 1

    @property
    def is_search(self) -> bool:
        """Whether the query holds identifying search terms (kept out of URLs)."""
        return bool(self.name.strip() or self.birth_date or self.reference.strip())


@dataclass(frozen=True)
class ListRow:
    """One submission as the list shows it."""

    reference: str
    name: str
    dob: dt.date | None
    appointment_date: dt.date
    outcome: str
    earliest_date: dt.date | None
    open_ended: bool
    decision: str | None
    signed_at: dt.datetime | None
    readable: bool = True  # False: the row will not decrypt with the configured keys
    pdf_ready: bool = True  # False: the PDF is still being rendered ("PDF pending")

    @property
    def status(self) -> str:
        """``signed_off`` or ``new``."""
        return "signed_off" if self.decision else "new"


@dataclass(frozen=True)
class ListPage:
    """One page of the list and where it sits among the others."""

    rows: list[ListRow]
    total: int
    page: int
    pages: int
    per_page: int

    @property
    def first(self) -> int:
        """The position of the first row shown (1-based; 0 when there is none)."""
        return (self.page - 1) * self.per_page + 1 if self.rows else 0

    @property
    def last(self) -> int:
        """The position of the last row shown."""
        return (self.page - 1) * self.per_page + len(self.rows)

    def window(self, around: int = 2) -> list[int | None]:
        """Return the page numbers to link to: the first, the last and those near this one (None for a gap)."""
        shown = sorted({1, self.pages, *range(max(1, self.page - around), min(self.pages, self.page + around) + 1)})
        out: list[int | None] = []
        for n in shown:
            if out and n - out[-1] > 1:
                out.append(None)
            out.append(n)
        return out


def _conditions(query: ListQuery, counting: bool = False) -> list:
    conditions = []
    if query.day is not None:
        conditions.append(Submission.appointment_date == query.day)
    if query.outcome:
        conditions.append(Submission.outcome == query.outcome)
    if query.reference.strip():
        conditions.append(Submission.reference == normalise_reference(query.reference))
    keys = vault()
    if query.birth_date is not None:
        conditions.append(Submission.dob_index == keys.dob_index(query.birth_date.isoformat()))
    # Names are stored encrypted: each typed word must match a word-start in the name's blind index.
    for entry in keys.name_query(query.name):
        if counting:
            conditions.append(Submission.name_index.contains(entry, autoescape=True))
        else:
            # In a subquery, so that a rare name never walks the table in date order.
            other = aliased(Submission)
            conditions.append(Submission.id.in_(select(other.id).where(other.name_index.contains(entry,
                                                                                                autoescape=True))))
    if query.status == "new":
        conditions.append(Review.id.is_(None))
    elif query.status == "signed_off":
        conditions.append(Review.id.is_not(None))
    return conditions


def list_submissions(session: Session, query: ListQuery, per_page: int = PER_PAGE) -> ListPage:
    """Return one page of submissions matching ``query``, with each one's review status, in two queries.

    A day's list is in name order; names are encrypted, so that day's rows are decrypted and sorted here
    (a clinic sees tens of clients a day). Any other list is in date order and decrypts one page.
    """
    counted = select(func.count()).select_from(Submission)
    if query.status:
        counted = counted.outerjoin(Review, Review.submission_id == Submission.id)
    total = session.scalar(counted.where(*_conditions(query, counting=True))) or 0
    pages = max(1, math.ceil(total / per_page))
    page = min(max(1, query.page), pages)
    rows = select(
        Submission.id, Submission.reference, raw(Submission.answers), Submission.appointment_date, Submission.outcome,
        raw(Submission.result), Review.decision, Review.signed_at, Submission.pdf_hmac.is_not(None).label("pdf_ready"),
    ).outerjoin(Review, Review.submission_id == Submission.id).where(*_conditions(query))
    if query.day is None:
        rows = rows.order_by(Submission.appointment_date.desc(), Submission.id.desc())
        rows = rows.limit(per_page).offset((page - 1) * per_page)
    out = [(r.id, _list_row(r)) for r in session.execute(rows)]
    if query.day is not None:
        out.sort(key=lambda pair: (" ".join(pair[1].name.split()).casefold(), pair[0]))
        out = out[(page - 1) * per_page:page * per_page]
    return ListPage(rows=[row for _id, row in out], total=total, page=page, pages=pages, per_page=per_page)


def _list_row(r) -> ListRow:
    """One row of the list, decrypted here: a row that will not decrypt is shown as such, alone, and logged by id."""
    row_binding = binding("submission", {"reference": r.reference, "outcome": r.outcome})
    answers, answers_ok = open_row(Submission.answers, r.answers_raw, r.id, row_binding)
    result, result_ok = open_row(Submission.result, r.result_raw, r.id, row_binding)
    if not (answers_ok and result_ok):
        return ListRow(reference=r.reference, name="", dob=None, appointment_date=r.appointment_date,
                       outcome=r.outcome, earliest_date=None, open_ended=False, decision=r.decision,
                       signed_at=r.signed_at, readable=False, pdf_ready=bool(r.pdf_ready))
    return ListRow(reference=r.reference, name=answers.get("full_name", ""),
                   dob=dt.date.fromisoformat(answers["dob"]) if answers.get("dob") else None,
                   appointment_date=r.appointment_date, outcome=r.outcome,
                   earliest_date=dt.date.fromisoformat(result["earliest_date"]) if result.get("earliest_date") else None,
                   open_ended=bool(result.get("open_ended")), decision=r.decision, signed_at=r.signed_at,
                   pdf_ready=bool(r.pdf_ready))


# -- one record ------------------------------------------------------------------------


@dataclass
class Record:
    """Everything the submission page shows, as plain data (the report is the PDF's own context)."""

    submission_id: int
    reference: str
    outcome: str
    report: dict[str, Any]
    review: dict[str, Any] | None
    viewers: list[dict[str, Any]] = field(default_factory=list)
    views_total: int = 0


def find(session: Session, reference: str) -> Submission:
    """Return the submission with ``reference`` without loading its PDF; raise SubmissionNotFound."""
    submission = session.scalar(select(Submission).options(defer(Submission.pdf))
                                .where(Submission.reference == normalise_reference(reference)))
    if submission is None:
        raise SubmissionNotFound()
    return submission


def review_data(session: Session, submission_id: int) -> dict[str, Any] | None:
    """Return the sign-off of a submission as plain data (with its acknowledgements and addenda), or None."""
    row = session.execute(
        select(Review.id, Review.submission_id, Review.decision, Review.defer_until, Review.note, Review.signed_at,
               StaffUser.name)
        .join(StaffUser, StaffUser.id == Review.practitioner_id)
        .where(Review.submission_id == submission_id)
    ).first()
    if row is None:
        return None
    check_column(row.note, "review", "note", binding("review", {"submission_id": row.submission_id}))
    acknowledgements = [
        {"flag_index": a.flag_index, "flag_id": a.flag_id, "note": a.note, "is_override": a.is_override}
        for a in session.scalars(select(FlagAcknowledgement).where(FlagAcknowledgement.review_id == row.id)
                                 .order_by(FlagAcknowledgement.flag_index))
    ]
    addenda = [
        {"author": name, "created_at": _aware(at),
         "text": check_column(text, "addendum", "text", binding("addendum", {
             "submission_id": submission_id, "author_id": author_id, "created_at": at}))}
        for text, at, name, author_id in session.execute(
            select(Addendum.text, Addendum.created_at, StaffUser.name, Addendum.author_id)
            .join(StaffUser, StaffUser.id == Addendum.author_id)
            .where(Addendum.submission_id == submission_id).order_by(Addendum.created_at, Addendum.id))
    ]
    return {
        "decision": row.decision,
        "decision_text": DECISION_TEXT[row.decision],
        "defer_until": row.defer_until,
        "note": row.note,
        "practitioner": row.name,
        "signed_at": _aware(row.signed_at),
        "acknowledgements": acknowledgements,
        "addenda": addenda,
    }


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _viewers(session: Session, submission_id: int) -> tuple[list[dict[str, Any]], int]:
    """Return who has viewed the record, one line a person (how many times, first and last), latest first."""
    where = (AuditEvent.submission_id == submission_id, AuditEvent.action == "view_submission")
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(*where)) or 0
    last = func.max(AuditEvent.at)
    rows = session.execute(
        select(StaffUser.name, StaffUser.email, func.count(AuditEvent.id), func.min(AuditEvent.at), last)
        .join(StaffUser, StaffUser.id == AuditEvent.actor_id)
        .where(*where).group_by(StaffUser.id, StaffUser.name, StaffUser.email)
        .order_by(last.desc(), StaffUser.id.desc()).limit(VIEWERS_SHOWN))
    return [{"name": name, "email": email, "times": times, "first": _aware(first), "last": _aware(latest)}
            for name, email, times, first, latest in rows], total


def load_record(session: Session, submission: Submission, clinic: dict) -> Record:
    """Return the page's plain data for a submission (no audit event)."""
    viewers, total = _viewers(session, submission.id)
    return Record(submission_id=submission.id, reference=submission.reference, outcome=submission.outcome,
                  report=report_context(submission, clinic), review=review_data(session, submission.id),
                  viewers=viewers, views_total=total)


def open_record(session: Session, reference: str, clinic: dict, *, actor_id: int, address: str) -> Record:
    """Record that a member of staff viewed a submission, then return what the page shows."""
    submission = find(session, reference)
    audit.record(session, "view_submission", actor_id=actor_id, submission_id=submission.id, address=address)
    return load_record(session, submission, clinic)


# -- sign-off ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SignOffInput:
    """What the practitioner sent: one acknowledgement and note per flag, a decision, a date, a note."""

    acknowledged: tuple[bool, ...]
    flag_notes: tuple[str, ...]
    decision: str
    defer_until: tuple[str, str, str] = ("", "", "")  # day, month, year as typed
    note: str = ""


def _flag_name(flag: dict) -> str:
    return f"‘{flag['title']}’ ({flag['id']})"


def _read_date(parts: tuple[str, str, str], today: dt.date) -> tuple[dt.date | None, str | None]:
    day, month, year = (p.strip() for p in parts)
    if not (day or month or year):
        return None, _("Enter the date to defer until")
    if not (day and month and year):
        missing = [n for n, v in ((_("day"), day), (_("month"), month), (_("year"), year)) if not v]
        return None, _("The date to defer until must include a %(parts)s", parts=_(" and ").join(missing))
    if not (day.isdigit() and month.isdigit() and year.isdigit()) or len(year) != 4:
        return None, _("Enter a real date to defer until, for example 15 3 2027")
    try:
        value = dt.date(int(year), int(month), int(day))
    except ValueError:
        return None, _("Enter a real date to defer until, for example 15 3 2027")
    if value < today:
        return None, _("The date to defer until must be today or later")
    if value > today + dt.timedelta(days=3 * 366):
        return None, _("The date to defer until must be within the next 3 years")
    return value, None


Problems = list[tuple[str, str]]


def check_sign_off(flags: list[dict], data: SignOffInput, today: dt.date) -> tuple[dt.date | None, Problems]:
    """Return the date to defer until and every problem with a sign-off, in page order."""
    problems: list[tuple[str, str]] = []
    proceeding = data.decision in PROCEEDING
    for i, flag in enumerate(flags):
        acknowledged = i < len(data.acknowledged) and data.acknowledged[i]
        note = data.flag_notes[i].strip() if i < len(data.flag_notes) else ""
        if not acknowledged:
            problems.append((f"ack_{i}", _("Acknowledge the flag %(flag)s", flag=_flag_name(flag))))
        if len(note) > NOTE_MAX:
            problems.append((f"note_{i}", _("The note on %(flag)s must be %(n)s characters or fewer",
                                            flag=_flag_name(flag), n=f"{NOTE_MAX:,}")))
        elif proceeding and flag["severity"] in OVERRIDABLE and not note:
            problems.append((f"note_{i}", _("Give your reason for treating despite the flag %(flag)s: "
                                            "proceeding overrides it", flag=_flag_name(flag))))
    defer_until = None
    if data.decision not in DECISIONS:
        problems.append(("decision", _("Select a decision")))
    elif data.decision == "defer":
        defer_until, message = _read_date(data.defer_until, today)
        if message:
            problems.append(("defer_until", message))
    if len(data.note.strip()) > NOTE_MAX:
        problems.append(("note", _("The overall note must be %(n)s characters or fewer", n=f"{NOTE_MAX:,}")))
    return defer_until, problems


def sign_off(session: Session, submission: Submission, practitioner: StaffUser, data: SignOffInput, *,
             today: dt.date, address: str = "") -> Review:
    """Store a practitioner's sign-off and its acknowledgements in one transaction; never a second one."""
    if session.scalar(select(Review.id).where(Review.submission_id == submission.id)) is not None:
        raise AlreadySignedOff()
    flags = list(submission.result["flags"])
    defer_until, problems = check_sign_off(flags, data, today)
    if problems:
        raise InvalidReview(problems)
    review = Review(submission_id=submission.id, practitioner_id=practitioner.id, decision=data.decision,
                    defer_until=defer_until, note=data.note.strip(), signed_at=utcnow())
    session.add(review)
    try:
        session.flush()  # a second practitioner signing at the same moment meets the unique submission_id
    except IntegrityError:
        session.rollback()
        raise AlreadySignedOff() from None
    for i, flag in enumerate(flags):
        session.add(FlagAcknowledgement(
            review_id=review.id, flag_index=i, flag_id=flag["id"], note=data.flag_notes[i].strip(),
            is_override=data.decision in PROCEEDING and flag["severity"] in OVERRIDABLE))
    audit.record(session, "sign_off", actor_id=practitioner.id, submission_id=submission.id,
                 detail=f"review={review.id}", address=address, commit=False)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise AlreadySignedOff() from None
    return review


def add_addendum(session: Session, submission: Submission, author: StaffUser, text: str, *,
                 address: str = "") -> Addendum:
    """Add a dated note to a signed-off submission."""
    if session.scalar(select(Review.id).where(Review.submission_id == submission.id)) is None:
        raise NotSignedOff()
    text = text.strip()
    if not text:
        raise InvalidReview([("text", _("Enter the addendum"))])
    if len(text) > ADDENDUM_MAX:
        raise InvalidReview([("text", _("The addendum must be %(n)s characters or fewer", n=f"{ADDENDUM_MAX:,}"))])
    addendum = Addendum(submission_id=submission.id, author_id=author.id, text=text, created_at=utcnow())
    session.add(addendum)
    session.flush()
    audit.record(session, "addendum", actor_id=author.id, submission_id=submission.id,
                 detail=f"addendum={addendum.id}", address=address, commit=False)
    session.commit()
    return addendum


# -- PDFs ---------------------------------------------------------------------------------


def render_signed_off_pdf(session: Session, submission: Submission, clinic: dict) -> bytes:
    """Return the signed-off version of the PDF, rendering and storing it once; the original is untouched.

    It shows the sign-off and the addenda that exist when it is first rendered; later addenda are on
    the record, not in this version (a stored version never changes).
    """
    review_id = session.scalar(select(Review.id).where(Review.submission_id == submission.id))
    if review_id is None:
        raise NotSignedOff()
    pdf_binding = binding("review", {"submission_id": submission.id})
    stored = check_column(session.scalar(select(Review.pdf).where(Review.id == review_id)), "review", "pdf",
                          pdf_binding)
    if stored is not None:
        return stored
    data = render(report_context(submission, clinic, review=review_data(session, submission.id)))
    # Only the first rendering is kept: two people opening it at once both get the stored bytes.
    session.execute(update(Review).where(Review.id == review_id, Review.pdf.is_(None))
                    .values(pdf=bound(data, "review", "pdf", pdf_binding), pdf_hmac=vault().pdf_digest(data)))
    session.commit()
    return check_column(session.scalar(select(Review.pdf).where(Review.id == review_id)), "review", "pdf",
                        pdf_binding)


def open_pdf(session: Session, reference: str, clinic: dict, *, signed: bool, download: bool, actor_id: int,
             address: str) -> tuple[bytes, str]:
    """Return a submission's PDF (original or signed-off) and its reference, and audit the view or download."""
    submission = find(session, reference)
    data = render_signed_off_pdf(session, submission, clinic) if signed else ensure_pdf(session, submission, clinic)
    audit.record(session, "download_pdf" if download else "view_pdf", actor_id=actor_id,
                 submission_id=submission.id, detail="version=signed" if signed else "version=original",
                 address=address)
    return data, submission.reference
