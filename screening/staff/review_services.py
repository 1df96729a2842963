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
from .. import questions as qd
from ..clients import services as clients
from ..clients.models import TreatmentSession
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
TREATED = ("treated", "not_treated")  # what the practitioner records at sign-off
TREATED_VARIANTS = ("standard", "rf", "prp")
TREATMENT_AREAS = tuple(c.code for c in qd.TREATMENT_AREA_CHOICES)
NOT_CONFIRMED = N_("The client has not yet confirmed their answers on the day of treatment: you can defer or "
                   "decline, or sign off after they confirm")


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
    day: dict[str, Any] = field(default_factory=dict)  # the day-of-treatment confirmation (see day_facts)
    booking: dict[str, Any] = field(default_factory=dict)  # the treatment booked: variant and areas, as codes
    next_sessions: list[dict[str, Any]] = field(default_factory=list)  # the client's appointments booked after it
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
    recorded = session.scalar(select(TreatmentSession).where(TreatmentSession.review_id == row.id))
    return {
        "session": session_data(recorded),
        "decision": row.decision,
        "decision_text": DECISION_TEXT[row.decision],
        "defer_until": row.defer_until,
        "note": row.note,
        "practitioner": row.name,
        "signed_at": _aware(row.signed_at),
        "acknowledgements": acknowledgements,
        "addenda": addenda,
    }


def session_data(recorded: TreatmentSession | None) -> dict[str, Any] | None:
    """Return the session recorded at sign-off as plain data, with its words: "Treated today: RF microneedling,
    full face" or "Not treated"; None for a sign-off from before sessions were recorded."""
    if recorded is None:
        return None
    if not recorded.treated:
        return {"treated": False, "on": recorded.on, "variant": "", "areas": [], "text": _("Not treated")}
    variants = {c.code: c.label for c in qd.BY_ID["last_microneedling"].field("variant").choices}
    areas = ", ".join(_(qd.AREA_LABELS.get(a, a)).lower() for a in recorded.area_list)
    text = _("Treated today: %(variant)s, %(areas)s", variant=_(variants.get(recorded.variant, recorded.variant)),
             areas=areas)
    return {"treated": True, "on": recorded.on, "variant": recorded.variant, "areas": recorded.area_list,
            "text": text}


def booking_of(submission: Submission) -> dict[str, Any]:
    """Return the treatment the client was booked for, as codes: the variant ("" if they did not know) and areas."""
    answers = submission.answers or {}
    variant = answers.get("treatment_variant")
    return {"variant": variant if variant in TREATED_VARIANTS else "",
            "areas": [a for a in answers.get("treatment_areas") or [] if a in TREATMENT_AREAS]}


def day_facts(session: Session, submission: Submission) -> dict[str, Any]:
    """Return where the submission stands for the day of treatment, as plain data: the state and its words, and
    once confirmed, when, what changed and the outcome before."""
    state = clients.day_state(session, submission)
    facts: dict[str, Any] = {"state": state, "label": clients.DAY_LABELS.get(state, ""),
                             "may_proceed": clients.may_proceed(session, submission),
                             "confirmed_at": None, "changed": [], "outcome_before": None}
    check = clients.confirmed_check(session, submission.id) if state == clients.CONFIRMED else None
    if check is not None:
        facts.update(confirmed_at=check.confirmed_at, outcome_before=check.outcome_before,
                     changed=[qd.BY_ID[q].label for q in (check.changed or []) if q in qd.BY_ID])
    return facts


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
                  day=day_facts(session, submission), booking=booking_of(submission),
                  next_sessions=next_sessions(session, submission), viewers=viewers,
                  views_total=total)


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
    treated: str = ""  # treated / not_treated: asked when proceeding (defer and decline mean not treated)
    treated_variant: str = ""
    treated_areas: tuple[str, ...] = ()


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


def check_sign_off(flags: list[dict], data: SignOffInput, today: dt.date, *,
                   may_proceed: bool = True) -> tuple[dt.date | None, Problems]:
    """Return the date to defer until and every problem with a sign-off, in page order.

    ``may_proceed`` is False while the client has not confirmed their answers on the day of treatment: a decision
    to treat is refused then (deferring and declining are not)."""
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
    elif proceeding and not may_proceed:
        problems.append(("decision", _(NOT_CONFIRMED)))
    elif data.decision == "defer":
        defer_until, message = _read_date(data.defer_until, today)
        if message:
            problems.append(("defer_until", message))
    if proceeding and may_proceed:
        problems.extend(_check_treated(data))
    if len(data.note.strip()) > NOTE_MAX:
        problems.append(("note", _("The overall note must be %(n)s characters or fewer", n=f"{NOTE_MAX:,}")))
    return defer_until, problems


def _check_treated(data: SignOffInput) -> Problems:
    """Return the problems with what the practitioner recorded as done today (asked when proceeding)."""
    if data.treated not in TREATED:
        return [("treated", _("Select whether you treated the client today"))]
    if data.treated == "not_treated":
        return []
    problems = []
    if data.treated_variant not in TREATED_VARIANTS:
        problems.append(("treated_variant", _("Select the treatment you gave")))
    if not data.treated_areas:
        problems.append(("treated_areas", _("Select the areas you treated")))
    elif any(a not in TREATMENT_AREAS for a in data.treated_areas) or len(set(data.treated_areas)) != len(
            data.treated_areas):
        problems.append(("treated_areas", _("Select the areas you treated from the list")))
    return problems


def sign_off(session: Session, submission: Submission, practitioner: StaffUser, data: SignOffInput, *,
             today: dt.date, address: str = "") -> Review:
    """Store a practitioner's sign-off, its acknowledgements and the session done (or not) today in one
    transaction; never a second one. A decision to treat waits for the day's confirmation."""
    if session.scalar(select(Review.id).where(Review.submission_id == submission.id)) is not None:
        raise AlreadySignedOff()
    flags = list(submission.result["flags"])
    defer_until, problems = check_sign_off(flags, data, today, may_proceed=clients.may_proceed(session, submission))
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
    treated = data.decision in PROCEEDING and data.treated == "treated"  # defer or decline: not treated
    areas = [a for a in TREATMENT_AREAS if a in data.treated_areas] if treated else []  # in the list's order
    session.add(TreatmentSession(review_id=review.id, client_id=submission.client_id, on=today, treated=treated,
                                 variant=data.treated_variant if treated else "", areas=",".join(areas),
                                 recorded_by_id=practitioner.id, recorded_at=review.signed_at))
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


# -- the next session of a course ------------------------------------------------------------------


@dataclass(frozen=True)
class NextSessionInput:
    """The next session as the practitioner typed it: a date (day, month, year), a time, a treatment and areas."""

    date: tuple[str, str, str] = ("", "", "")
    time: str = ""
    variant: str = ""
    areas: tuple[str, ...] = ()


NEXT_FIELDS = {"date": "next_date", "time": "next_time", "treatment": "next_variant", "areas": "next_areas"}


def next_sessions(session: Session, submission: Submission) -> list[dict[str, Any]]:
    """Return the client's appointments booked after this screening's, soonest first (not cancelled)."""
    from ..appointments.models import Appointment

    if submission.client_id is None:
        return []
    rows = session.execute(select(Appointment.appointment_date, Appointment.appointment_time,
                                  Appointment.treatment_variant)
                           .where(Appointment.client_id == submission.client_id, Appointment.cancelled_at.is_(None),
                                  Appointment.appointment_date > submission.appointment_date)
                           .order_by(Appointment.appointment_date, Appointment.appointment_time))
    return [{"date": d, "time": t, "variant": v} for d, t, v in rows]


def _identity(session: Session, submission: Submission) -> dict[str, str]:
    """Return who the client is, for a new booking: from this screening's appointment, else their client record,
    else their answers."""
    from ..appointments.models import Appointment
    from ..clients.models import Client

    appointment = session.scalar(select(Appointment).where(Appointment.submission_id == submission.id))
    if appointment is not None:
        return {"name": appointment.client_name, "date_of_birth": appointment.client_dob,
                "email": appointment.client_email or "", "phone": appointment.client_phone or ""}
    answers = submission.answers or {}
    client = clients.current(session, session.get(Client, submission.client_id)) if submission.client_id else None
    if client is not None:
        return {"name": client.name, "date_of_birth": client.dob, "email": client.email or answers.get("email", ""),
                "phone": answers.get("phone", "")}
    return {"name": answers.get("full_name", ""), "date_of_birth": answers.get("dob", ""),
            "email": answers.get("email", ""), "phone": answers.get("phone", "")}


def _next_date(parts: tuple[str, str, str]) -> tuple[str, str | None]:
    """Return the typed date as YYYY-MM-DD for the booking check, or a message."""
    day, month, year = (p.strip() for p in parts)
    if not (day or month or year):
        return "", _("Enter the date of the next session")
    if not (day and month and year):
        missing = [n for n, v in ((_("day"), day), (_("month"), month), (_("year"), year)) if not v]
        return "", _("The date of the next session must include a %(parts)s", parts=_(" and ").join(missing))
    try:
        if not (day.isdigit() and month.isdigit() and year.isdigit()) or len(year) != 4:
            raise ValueError
        return dt.date(int(year), int(month), int(day)).isoformat(), None
    except ValueError:
        return "", _("Enter a real date for the next session, for example 15 3 2027")


_NEXT_MESSAGES = {
    "date": N_("The date of the next session must be today or later, and within the next two years"),
    "time": N_("Enter the time of the next session as HH:MM, for example 14:30"),
    "treatment": N_("Select the treatment for the next session"),
    "areas": N_("Select the areas for the next session"),
}


def book_next_session(session: Session, submission: Submission, practitioner: StaffUser, data: NextSessionInput, *,
                      today: dt.date) -> Any:
    """Book the client's next session from a signed-off screening, through the one booking use case, tied to the
    same client record. Its invitation waits for the reminder schedule (SCREENING_REMINDER_DAYS before it), unless
    that has passed already. Raise NotSignedOff or InvalidReview (every field at fault, in page order)."""
    from ..appointments import services as appointments
    from ..appointments.booking import check_booking

    if session.scalar(select(Review.id).where(Review.submission_id == submission.id)) is None:
        raise NotSignedOff()
    problems: dict[str, str] = {}
    day, message = _next_date(data.date)
    if message:
        problems["next_date"] = message
    raw = {**_identity(session, submission), "date": day, "time": data.time.strip(), "treatment": data.variant,
           "areas": list(data.areas), "practitioner_email": practitioner.email}
    booking, errors = check_booking(raw, today=today, practitioners=appointments.practitioners(session),
                                    unknown=False)
    for key, text in errors.items():
        target = NEXT_FIELDS.get(key)
        if target is None:  # the client's own details on file do not make a booking: say so, on the date
            problems.setdefault("next_date", _("The client’s details on file cannot be booked (%(why)s): book the "
                                               "next session at the desk", why=text))
        elif target not in problems:
            problems[target] = _(_NEXT_MESSAGES[key])
    if problems:
        raise InvalidReview([(k, problems[k]) for k in ("next_date", "next_time", "next_variant", "next_areas")
                             if k in problems])
    client_id = clients.current(session, session.get(clients.Client, submission.client_id)).id \
        if submission.client_id else None
    if client_id is None:  # a walk-in never tied to a client: tie this screening and its session to one now
        identity = _identity(session, submission)
        client_id = clients.match(session, identity["name"], identity["date_of_birth"], identity["email"]).id
        submission.client_id = client_id
        for recorded in session.scalars(select(TreatmentSession).join(Review, Review.id == TreatmentSession.review_id)
                                        .where(Review.submission_id == submission.id)):
            recorded.client_id = client_id
    appointment, _created = appointments.book(session, booking, source=f"next-session:{practitioner.id}",
                                              actor_id=practitioner.id, client_id=client_id,
                                              invite_now=not appointments.invitation_held(today, booking.date))
    return appointment
