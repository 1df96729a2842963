"""Client use cases: match a booking to a client, prefill a returning client's questionnaire, mark what changed,
and the day-of-treatment confirmation of the answers about "now".

Each use case that changes something takes the session; those called by another use case do not commit.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from .. import audit
from .. import questions as qd
from ..crypto import vault
from ..models import Draft, Review, Submission, utcnow
from ..rules import AnswersError, RuleSet, asked_ids, evaluate
from .models import Client, DayCheck, TreatmentSession


# -- matching ----------------------------------------------------------------------------------


def email_index(email: str) -> str:
    """Return the blind index of an email address (case and surrounding spaces ignored); "" for none."""
    email = (email or "").strip().casefold()
    return vault().index("email", email) if email else ""


def current(session: Session, client: Client | None) -> Client | None:
    """Follow merges: return the client record that ``client`` now lives on."""
    seen = 0
    while client is not None and client.merged_into_id is not None and seen < 20:
        client = session.get(Client, client.merged_into_id)
        seen += 1
    return client


def is_uid(value) -> bool:
    """Whether ``value`` has the shape of the random uids of this package's rows (32 lower-case hex digits)."""
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{32}", value) is not None


def by_uid(session: Session, uid: str) -> Client | None:
    """Return the client with this random uid (anything else is no client)."""
    if not is_uid(uid):
        return None
    return session.scalar(select(Client).where(Client.uid == uid))


def match(session: Session, name: str, dob: str, email: str) -> Client:
    """Return the client with this email address and date of birth, or a new one (added, not committed).

    Never by name alone: two people with the same name are two clients unless email and date of birth agree.
    A booking without an email address always makes a new client (the desk merges duplicates)."""
    v = vault()
    dob_key, email_key = v.dob_index(dob), email_index(email)
    found = None
    if email_key:
        found = session.scalar(select(Client).where(Client.email_index == email_key, Client.dob_index == dob_key,
                                                    Client.merged_into_id.is_(None)).order_by(Client.id).limit(1))
    if found is None:
        found = Client(uid=secrets.token_hex(16), created_at=utcnow())
        session.add(found)
    found.name, found.dob, found.email = name, dob, email or ""
    found.name_index, found.dob_index, found.email_index = v.name_index(name), dob_key, email_key
    session.flush()
    return found


def link_appointment(session: Session, appointment) -> Client:
    """Tie an appointment to its client (found by email and date of birth, or new); no commit."""
    client = match(session, appointment.client_name, appointment.client_dob, appointment.client_email)
    appointment.client_id = client.id
    if appointment.submission_id is not None:
        submission = session.get(Submission, appointment.submission_id)
        if submission is not None:
            submission.client_id = client.id
    return client


def search(session: Session, query: str) -> list[Client]:
    """Return the clients whose name (words or word starts), date of birth (YYYY-MM-DD) or email matches."""
    query = (query or "").strip()
    if not query:
        return []
    v = vault()
    stmt = select(Client).where(Client.merged_into_id.is_(None)).order_by(Client.id).limit(50)
    try:
        return list(session.scalars(stmt.where(Client.dob_index == v.dob_index(dt.date.fromisoformat(query)
                                                                               .isoformat()))))
    except ValueError:
        pass
    if "@" in query:
        return list(session.scalars(stmt.where(Client.email_index == email_index(query))))
    terms = v.name_query(query)
    if not terms:
        return []
    return list(session.scalars(stmt.where(*[Client.name_index.contains(t) for t in terms])))


class MergeRefused(Exception):
    """Two records that must not be merged; the message says why."""


def merge(session: Session, keep: Client, duplicate: Client, *, actor_id: int) -> None:
    """Move every appointment, screening and session of ``duplicate`` onto ``keep``; audited. Records with
    different dates of birth are never merged: they are two people."""
    from ..appointments.models import Appointment

    if keep.id == duplicate.id:
        raise MergeRefused("A client record cannot be merged with itself")
    if keep.merged_into_id is not None or duplicate.merged_into_id is not None:
        raise MergeRefused("One of these records has been merged already")
    if keep.dob != duplicate.dob:
        raise MergeRefused("These records have different dates of birth: they are two people, and cannot be merged")
    for model in (Appointment, Submission, TreatmentSession):
        for row in session.scalars(select(model).where(model.client_id == duplicate.id)):
            row.client_id = keep.id
    duplicate.merged_into_id, duplicate.merged_at = keep.id, utcnow()
    audit.record(session, "clients_merged", actor_id=actor_id,
                 detail=f"client {duplicate.uid} merged into {keep.uid}", commit=False)
    session.commit()


def attach_screening(session: Session, client: Client, reference: str, *, actor_id: int) -> Submission:
    """Attach a walk-in screening (by its reference) to ``client``; audited. Raise ValueError with a reason."""
    from ..services import find_submission

    submission = find_submission(session, reference)
    if submission.client_id == client.id:
        raise ValueError("That screening is already on this client's record")
    if submission.client_id is not None:
        raise ValueError("That screening is on another client's record")
    submission.client_id = client.id
    audit.record(session, "screening_attached", actor_id=actor_id, submission_id=submission.id,
                 detail=f"client {client.uid}", commit=False)
    session.commit()
    return submission


# -- prefilled re-screening --------------------------------------------------------------------

BOOKING_AND_IDENTITY = frozenset(qd.BOOKING_IDS) | {"full_name", "dob", "email", "phone"}


def _lasting(q: qd.Question) -> bool:
    return q.is_safety and q.id not in qd.ABOUT_NOW and q.id not in BOOKING_AND_IDENTITY


def lasting_answers(previous: dict[str, Any]) -> dict[str, Any]:
    """Return the answers of an earlier screening that describe lasting facts (conditions, allergies, implants,
    skin type, past events with their dates), to prefill the next one.

    Never a question about now, today or the last 28 days or less. A question that looks back over a period
    ("in the last 3 months") is carried over only when it was answered "yes", with the events and dates given:
    a "no" said nothing about the time since, so it is asked afresh."""
    out: dict[str, Any] = {}
    asked = set(asked_ids(previous))
    dropped: set[str] = set()
    for q in qd.QUESTIONS:
        if q.id not in asked or q.id not in previous:
            continue
        parent = q.asked_when["question"] if q.asked_when else None
        if parent in dropped or not _lasting(q):
            dropped.add(q.id)
            continue
        if q.lookback is not None and previous[q.id] != "yes":
            dropped.add(q.id)
            continue
        out[q.id] = previous[q.id]
    return out


def latest_screening(session: Session, client_id: int | None) -> Submission | None:
    """Return the client's most recent screening."""
    if client_id is None:
        return None
    return session.scalar(select(Submission).where(Submission.client_id == client_id)
                          .order_by(Submission.signed_at.desc(), Submission.id.desc()).limit(1))


def prefill(session: Session, draft: Draft, client_id: int | None) -> Submission | None:
    """Fill a returning client's new draft with the lasting answers of their last screening (no commit); return
    that screening, or None for a first visit. Every page that was filled in waits for the client to confirm it."""
    previous = latest_screening(session, client_id)
    if previous is None:
        return None
    carried = lasting_answers(previous.answers)
    merged = {**carried, **(draft.answers or {})}  # the booking's own facts win over last time's
    draft.answers = merged
    draft.prefilled_from_id = previous.id
    pages = [p.id for p in qd.PAGES if any(q.id in carried for q in qd.page_questions(p))]
    draft.pages_to_confirm = ",".join(pages)
    return previous


def changed_since(previous: dict[str, Any] | None, answers: dict[str, Any]) -> set[str]:
    """Return the ids of the safety questions answered differently from ``previous`` (asked now, or then)."""
    if previous is None:
        return set()
    now, then = set(asked_ids(answers)), set(asked_ids(previous))
    out = set()
    for qid in now | then:
        q = qd.BY_ID.get(qid)
        if q is None or not q.is_safety or qid in qd.BOOKING_IDS:
            continue
        if _normal(answers.get(qid) if qid in now else None) != _normal(previous.get(qid) if qid in then else None):
            out.add(qid)
    return out


def _normal(value):
    if isinstance(value, list):
        return sorted((_normal(v) for v in value), key=repr)
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if v not in (None, "", [])}
    return value


@dataclass(frozen=True)
class Changes:
    """What changed since the screening a submission was prefilled from."""

    since: dt.date | None = None  # the day the earlier screening was answered
    questions: frozenset[str] = field(default_factory=frozenset)


def changes_of(session: Session, submission: Submission) -> Changes:
    """Return which answers of ``submission`` differ from the screening it was prefilled from."""
    if submission.previous_id is None:
        return Changes()
    previous = session.get(Submission, submission.previous_id)
    if previous is None:
        return Changes()
    answers = day_answers_before(session, submission) or submission.answers
    return Changes(previous.answered_on, frozenset(changed_since(previous.answers, answers)))


# -- the day of treatment ----------------------------------------------------------------------

NOT_NEEDED, TO_CONFIRM, CONFIRMED, REDO = "not_needed", "to_confirm", "confirmed", "redo"
DAY_LABELS = {NOT_NEEDED: "", TO_CONFIRM: "Not yet confirmed on the day", CONFIRMED: "Confirmed on the day",
              REDO: "Out of date: to be done again"}


def confirmed_check(session: Session, submission_id: int) -> DayCheck | None:
    """Return the submission's applied day-of confirmation, if any."""
    return session.scalar(select(DayCheck).where(DayCheck.submission_id == submission_id,
                                                 DayCheck.confirmed_at.is_not(None)).limit(1))


def day_answers_before(session: Session, submission: Submission) -> dict[str, Any] | None:
    """Return the answers as given before the day's confirmation changed them (None: none changed)."""
    check = confirmed_check(session, submission.id)
    if check is None or not check.changed:
        return None
    return {**submission.answers, **(check.answers_before or {})}


def day_state(session: Session, submission: Submission) -> str:
    """Where the submission stands for the day of treatment: not needed, to confirm, confirmed, or redo."""
    if submission.on_the_day:
        return submission.on_the_day
    result = submission.result or {}  # stored before the state had a column of its own
    if confirmed_check(session, submission.id) is not None:
        return CONFIRMED
    if result.get("out_of_date"):
        return REDO
    if result.get("to_confirm_on_the_day"):
        return TO_CONFIRM
    return NOT_NEEDED


def still_needed(session: Session, submission: Submission) -> str | None:
    """What the day of treatment still needs of a screening no practitioner has decided on: "confirm" (answers
    about now to confirm), "redo" (out of date: the questionnaire again) or None."""
    if session.scalar(select(Review.id).where(Review.submission_id == submission.id)) is not None:
        return None  # a practitioner has decided: nothing the client says now is applied
    return {REDO: "redo", TO_CONFIRM: "confirm"}.get(day_state(session, submission))


def after_sending(session: Session, appointment, today: dt.date) -> str | None:
    """What an invitation link opened after the screening was sent leads to: "confirm" (on the appointment day),
    "redo" (on or before the day) or None (nothing to do)."""
    submission = session.get(Submission, appointment.submission_id)
    if submission is None or appointment.appointment_date < today:
        return None
    needed = still_needed(session, submission)
    return None if needed == "confirm" and appointment.appointment_date != today else needed


def may_proceed(session: Session, submission: Submission) -> bool:
    """Whether a practitioner may sign off a decision to treat: the day's confirmation is done (or not needed)."""
    return day_state(session, submission) in (NOT_NEEDED, CONFIRMED)


@dataclass(frozen=True)
class ToConfirm:
    """One question (with its follow-ups) the client confirms on the day: its wording and earlier answers."""

    root: str
    wording: str
    answers: tuple[tuple[str, Any], ...]  # (question id, earlier answer), the root first


def to_confirm(submission: Submission) -> list[ToConfirm]:
    """Return the questions to confirm on the day, grouped by the question that asks them on its page."""
    ids = [item["question"] for item in (submission.result or {}).get("to_confirm_on_the_day", [])
           if item.get("question") in qd.BY_ID]
    groups: dict[str, list[str]] = {}
    for qid in ids:
        groups.setdefault(qd.root_of(qid), []).append(qid)
    answers = submission.answers
    out = []
    for root, qids in groups.items():
        if root not in qids:
            qids = [root, *qids]
        out.append(ToConfirm(root, qd.BY_ID[root].label, tuple((q, answers.get(q)) for q in qids
                                                            if q in answers)))
    return out


def open_check(session: Session, submission: Submission, channel: str) -> DayCheck:
    """Return the submission's day check in progress, or start one (committed)."""
    check = session.scalar(select(DayCheck).where(DayCheck.submission_id == submission.id,
                                                  DayCheck.confirmed_at.is_(None)).order_by(DayCheck.id.desc()))
    if check is None:
        check = DayCheck(uid=secrets.token_hex(16), submission_id=submission.id, channel=channel, work={},
                         started_at=utcnow())
        session.add(check)
        session.commit()
    return check


def check_by_uid(session: Session, uid: str | None) -> DayCheck | None:
    """Return a day check by its random uid."""
    if not is_uid(uid):
        return None
    return session.scalar(select(DayCheck).where(DayCheck.uid == uid))


def save_still_true(session: Session, check: DayCheck, still_true: dict[str, bool]) -> None:
    """Keep the client's "still true today?" answers (the submission is untouched until they confirm)."""
    work = dict(check.work or {})
    work["still_true"] = still_true
    work["answers"] = {}  # new answers to changed questions are asked again after a new first step
    check.work = work
    session.commit()


def save_new_answers(session: Session, check: DayCheck, answers: dict[str, Any]) -> None:
    """Keep the client's new answers to the questions they said had changed."""
    work = dict(check.work or {})
    work["answers"] = answers
    check.work = work
    session.commit()


class DayCheckError(Exception):
    """The day's answers cannot be applied; ``problems`` are the engine's reasons, ``questions`` the ids at fault."""

    def __init__(self, problems: list[str], questions: tuple[str, ...] = ()):
        super().__init__("; ".join(problems))
        self.problems, self.questions = problems, questions


def confirm(session: Session, check: DayCheck, ruleset: RuleSet, today: dt.date, *,
            clinic_sessions: tuple = ()) -> Submission:
    """Apply the day's confirmation in one transaction: the rules run again on today's answers (the changed
    ones replaced) with today as the day answered; the submission then holds the current answers and result,
    and the check keeps the earlier ones. Nothing is applied if anything fails."""
    submission = session.get(Submission, check.submission_id)
    work = check.work or {}
    still = work.get("still_true", {})
    new = work.get("answers", {})
    items = to_confirm(submission)
    changed_roots = [i.root for i in items if still.get(i.root) is False]
    before = dict(submission.answers)
    answers = dict(before)
    for root in changed_roots:
        group = [q.id for q in qd.QUESTIONS if qd.root_of(q.id) == root]
        for qid in group:
            answers.pop(qid, None)
        for qid in group:
            if new.get(qid) not in (None, "", []):
                answers[qid] = new[qid]
    try:
        result = evaluate(ruleset, answers, answered_on=today, **({"clinic_sessions": clinic_sessions}
                                                                  if clinic_sessions else {}))
    except AnswersError as exc:
        raise DayCheckError(exc.problems or [f"'{m}' is missing" for m in exc.missing], exc.questions) from None
    asked = set(asked_ids(answers))
    stored = {k: v for k, v in answers.items() if k in asked}
    changed = sorted(changed_since(before, stored))
    check.answers_before = {k: before[k] for k in before if k in qd.ABOUT_NOW or k in changed}
    check.result_before = dict(submission.result)
    check.outcome_before = submission.outcome
    check.answered_on_before = submission.answered_on
    check.changed = changed
    check.confirmed_at = utcnow()
    signature = str(submission.signature_name)
    # The encrypted columns are bound to the reference and the outcome (crypto.py): set the outcome first, then
    # write every encrypted value again, so that each is sealed for the row as it now is.
    submission.outcome = result.outcome
    submission.answers = stored
    submission.result = result.to_dict()
    submission.signature_name = signature
    flag_modified(submission, "signature_name")
    submission.on_the_day = CONFIRMED
    submission.answered_on = today  # the answers now describe the appointment day (the check keeps the earlier day)
    submission.pdf, submission.pdf_hmac, submission.pdf_rendered_at = None, None, None
    submission.pdf_attempts, submission.pdf_due_at = 0, None
    # The detail says how and how much, never which answers or what outcome: admins and the audit export read it.
    audit.record(session, "day_confirmed", submission_id=submission.id,
                 detail=f"{check.channel}; {len(changed)} answer{'' if len(changed) == 1 else 's'} changed",
                 commit=False)
    if result.outcome != check.outcome_before and result.outcome != "CLEAR":
        _tell_practitioners(session, submission)
    session.commit()
    from .. import tasks

    tasks.enqueue_pdf(submission.id)
    return submission


def clinic_sessions_for_submission(session: Session, submission: Submission) -> tuple:
    """Return the sessions the clinic recorded for the submission's client before its appointment (rule 41)."""
    if submission.client_id is None:
        return ()
    return clinic_sessions(session, submission.client_id, submission.appointment_date)


def _tell_practitioners(session: Session, submission: Submission) -> None:
    """Queue the practitioners' notice (no name, no outcome) when the day's answers changed the outcome."""
    from .. import mail
    from ..appointments import services as appointments
    from ..appointments.models import Appointment

    appointment = session.scalar(select(Appointment).where(Appointment.submission_id == submission.id))
    if appointment is None:
        return
    for email in appointments.practitioner_emails(session, appointment):
        mail.queue(session, mail.compose("practitioner", to=email, link=appointments.staff_link()),
                   kind="practitioner", appointment_id=appointment.id)


# -- the client's history ----------------------------------------------------------------------


@dataclass
class Visit:
    """One screening on the client's record, with what followed it."""

    submission: Submission
    day: str
    review: Review | None
    session: TreatmentSession | None
    changed: list[str]  # question labels that differ from the screening before


def history(session: Session, client: Client) -> dict[str, Any]:
    """Return the client's appointments and screenings, oldest first, each screening with its sign-off, the
    session recorded and the questions answered differently from the screening before it."""
    from ..appointments.models import Appointment

    appointments = list(session.scalars(select(Appointment).where(Appointment.client_id == client.id)
                                        .order_by(Appointment.appointment_date, Appointment.appointment_time)))
    ids = [a.submission_id for a in appointments if a.submission_id]
    submissions = list(session.scalars(select(Submission).where(or_(Submission.client_id == client.id,
                                                                    Submission.id.in_(ids or [-1])))
                                       .order_by(Submission.signed_at, Submission.id)))
    visits: list[Visit] = []
    previous = None
    for s in submissions:
        review = session.scalar(select(Review).where(Review.submission_id == s.id))
        recorded = session.scalar(select(TreatmentSession).where(TreatmentSession.review_id == review.id)) \
            if review else None
        changed = sorted(changed_since(previous.answers, s.answers), key=_order) if previous else []
        visits.append(Visit(s, day_state(session, s), review, recorded, [qd.BY_ID[q].label for q in changed]))
        previous = s
    duplicates = [c for c in session.scalars(select(Client).where(Client.dob_index == client.dob_index,
                                                                  Client.id != client.id,
                                                                  Client.merged_into_id.is_(None)))]
    return {"appointments": appointments, "visits": visits, "possible_duplicates": duplicates}


_ORDER = {q.id: i for i, q in enumerate(qd.QUESTIONS)}


def _order(qid: str) -> int:
    return _ORDER.get(qid, len(_ORDER))


# -- the clinic's record of sessions (rule 41) ---------------------------------------------------


def clinic_sessions(session: Session, client_id: int | None, before: dt.date) -> tuple[dict, ...]:
    """Return the sessions the clinic recorded as treated for this client (and the clients merged into it)
    before ``before``, oldest first, as the rules engine takes them: {"on", "variant", "areas"}."""
    if client_id is None:
        return ()
    ids, frontier = {client_id}, {client_id}
    while frontier:  # merges can chain: a duplicate merged into a client that was merged in turn
        frontier = set(session.scalars(select(Client.id).where(Client.merged_into_id.in_(frontier)))) - ids
        ids |= frontier
    rows = session.scalars(select(TreatmentSession).where(TreatmentSession.client_id.in_(ids),
                                                          TreatmentSession.treated.is_(True),
                                                          TreatmentSession.on < before)
                           .order_by(TreatmentSession.on, TreatmentSession.id))
    return tuple({"on": r.on, "variant": r.variant, "areas": r.area_list} for r in rows
                 if r.variant and r.area_list)


def client_of_draft(session: Session, draft: Draft) -> int | None:
    """Return the client a questionnaire's draft belongs to: its appointment's, or the screening it was prefilled
    from; None for a walk-in not yet attached to anyone."""
    from ..appointments.models import Appointment

    client_id = session.scalar(select(Appointment.client_id).where(Appointment.draft_id == draft.id).limit(1))
    if client_id is None and draft.prefilled_from_id is not None:
        client_id = session.scalar(select(Submission.client_id).where(Submission.id == draft.prefilled_from_id))
    return current(session, session.get(Client, client_id)).id if client_id is not None else None
