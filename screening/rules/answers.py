"""Answers: checked against the dictionary, pruned to the questions asked, normalised; dates that cannot
be true refused (clinical specification v2, 0.3)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from .. import questions as qd
from . import clinic as clinic_record
from .conditions import _CHOICE_TYPES, Pred, _Checker, _Ctx, _Lines, _suggest
from .dates import _span, parse_answer_date
from .errors import AnswersError, RuleProblem, RulesError


@dataclass(frozen=True)
class Prepared:
    """Answers checked against the dictionary and pruned to the questions actually asked."""

    values: Mapping[str, Any]  # normalised: codes, frozensets, dates, tuples of item dicts
    raw: Mapping[str, Any]  # JSON-ready: what the client answered, for explanations
    appointment: dt.date
    variant: str  # standard / rf / prp / unknown
    booked: frozenset[str]  # booked areas, full_face expanded
    answered_on: dt.date  # the day the client gave the answers
    # The clinic's record of past sessions before the appointment, as items of clinic.GROUP (oldest first).
    clinic: tuple[Mapping[str, Any], ...] = ()
    clinic_raw: tuple[Mapping[str, Any], ...] = ()  # the same, JSON-ready, each with "source": "clinic"

    def group_items(self, group: str) -> tuple[Mapping[str, Any], ...]:
        """Return a group's items: the client's, then (for the microneedling group) the clinic's."""
        items = self.values.get(group, ())
        return items + self.clinic if group == clinic_record.GROUP and self.clinic else items

    def group_raw(self, group: str) -> list[Any]:
        """Return a group's items as JSON-ready data, in the order of ``group_items``."""
        items = list(self.raw.get(group, ()))
        return items + list(self.clinic_raw) if group == clinic_record.GROUP else items

    @property
    def booked_facial(self) -> bool:
        """Whether any booked area is on the face."""
        return not self.booked.isdisjoint(qd.FACIAL_AREAS)


def _compile_asked_when(dictionary: qd.Dictionary = qd.CURRENT) -> dict[str, Pred]:
    problems: list[RuleProblem] = []
    lines = _Lines(None, problems)
    out = {}
    for q in dictionary.questions:
        if q.asked_when is not None:
            chk = _Checker(f"question {q.id}", lines, (), problems, by_id=dictionary.by_id)
            out[q.id] = chk.condition(q.asked_when, ())
    if problems:
        raise RulesError("screening/questions.py", problems)
    return out


ASKED_WHEN: dict[str, Pred] = _compile_asked_when()


_ASKED_WHEN_OF: dict[str, dict[str, Pred]] = {qd.VERSION: ASKED_WHEN}


_CODES: dict[int, frozenset[str]] = {}


def _codes(q: qd.Question) -> frozenset[str]:
    """Return a question's choice codes as a set, computed once per question."""
    codes = _CODES.get(id(q))
    if codes is None:
        codes = _CODES[id(q)] = frozenset(q.choice_codes())
    return codes


def _check_value(q: qd.Question, value: Any) -> tuple[Any, Any]:
    """Return (normalised, JSON-ready) forms of one answer; raise ValueError with a plain message."""
    t = q.type
    if t in _CHOICE_TYPES:
        if not isinstance(value, str) or value not in _codes(q):
            raise ValueError(f"{value!r} is not one of: {', '.join(q.choice_codes())}")
        return value, value
    if t in (qd.MULTI, qd.AREAS):
        if isinstance(value, str):
            raise ValueError("must be a list of choices, e.g. [\"" + q.choice_codes()[0] + "\"]")
        if not isinstance(value, (list, tuple)):
            raise ValueError("must be a list of choices")
        codes = _codes(q)
        bad = [v for v in value if not isinstance(v, str) or v not in codes]
        if bad:
            raise ValueError(f"{bad[0]!r} is not one of: {', '.join(q.choice_codes())}")
        if len(set(value)) != len(value):
            raise ValueError("lists a choice twice")
        if qd.NONE in value and len(value) > 1:
            raise ValueError("'none' cannot be chosen with other choices")
        return frozenset(value), list(value)
    if t == qd.DATE:
        day = parse_answer_date(value, q)
        # As given: a month stays a month ("2026-06") in the answers that raised a flag.
        return day, value if isinstance(value, str) else day.isoformat()
    if t == qd.TEXT:
        if not isinstance(value, str):
            raise ValueError("must be text")
        return value.strip(), value.strip()
    if t == qd.GROUP:
        if not isinstance(value, (list, tuple)):
            raise ValueError("must be a list of items, each an object of " + ", ".join(f.id for f in q.fields))
        items, plain = [], []
        for n, item in enumerate(value, 1):
            if not isinstance(item, Mapping):
                raise ValueError(f"item {n} must be an object of " + ", ".join(f.id for f in q.fields))
            unknown = [k for k in item if k not in {f.id for f in q.fields}]
            if unknown:
                raise ValueError(f"item {n} has unknown field '{unknown[0]}'"
                                 f"{_suggest(unknown[0], [f.id for f in q.fields])}")
            norm, raw = {}, {}
            for f in q.fields:
                if item.get(f.id) in (None, "", []):
                    if f.required:
                        raise ValueError(f"item {n} is missing '{f.id}'")
                    continue
                try:
                    norm[f.id], raw[f.id] = _check_value(f, item[f.id])
                except ValueError as exc:
                    raise ValueError(f"item {n} '{f.id}' {exc}") from None
            items.append(MappingProxyType(norm))
            plain.append(raw)
        return tuple(items), plain
    raise AssertionError(t)  # pragma: no cover


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == ()


def implausible_dates(answers: Mapping[str, Any], answered_on: dt.date) -> list[tuple[str, int | None, str, str]]:
    """Return the dates that cannot be true (clinical specification v2, 0.3) as
    (question id, item index or None, kind, date as given). Kinds: ``appointment_past``,
    ``after_answered`` (a past event after the day of answering), ``after_appointment``,
    ``before_birth``, ``planned_end_past`` (a course still being taken that ended in the past).

    Reads answers as stored (YYYY-MM-DD / YYYY-MM strings); answers that do not parse are left to
    the other checks."""
    out: list[tuple[str, int | None, str, str]] = []

    def span(value, q):
        try:
            return _span(value, q)
        except ValueError:
            return None

    appt = span(answers.get("appointment_date"), qd.BY_ID["appointment_date"])
    dob = span(answers.get("dob"), qd.BY_ID["dob"])
    if appt and appt[0] < answered_on:
        out.append(("appointment_date", None, "appointment_past", str(answers["appointment_date"])))

    def check(qid: str, index: int | None, q: qd.Question, value: Any) -> None:
        days = span(value, q)
        if days is None or q.exact:
            return
        first, last = days
        if q.dates == "future":
            if last < answered_on:
                out.append((qid, index, "planned_end_past", str(value)))
        elif appt and first > appt[0]:
            out.append((qid, index, "after_appointment", str(value)))
        elif q.dates == "past" and first > answered_on:
            out.append((qid, index, "after_answered", str(value)))
        if dob and last < dob[0]:
            out.append((qid, index, "before_birth", str(value)))

    for q in qd.QUESTIONS:
        value = answers.get(q.id)
        if q.type == qd.DATE:
            check(q.id, None, q, value)
        elif q.type == qd.GROUP and isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    for f in q.fields:
                        if f.type == qd.DATE:
                            check(q.id, i, f, item.get(f.id))
    return out


_IMPLAUSIBLE = {
    "appointment_past": "is before the day the answers were given ({answered_on})",
    "after_answered": "is after the day the answers were given ({answered_on}): a past event cannot be",
    "after_appointment": "is after the appointment ({appointment}): a past event cannot be",
    "before_birth": "is before the date of birth ({dob})",
    "planned_end_past": "is in the past (answers given on {answered_on}), but the course is still being taken",
}


def prepare(answers: Mapping[str, Any], answered_on: dt.date, clinic_sessions: Any = ()) -> Prepared:
    """Check answers against the dictionary and prune those not asked; raise AnswersError.

    ``answered_on`` is the day the client gave the answers: dates are checked against it.
    ``clinic_sessions`` are the sessions the clinic recorded as done (see ``clinic.check``); those on or after
    the appointment are left out."""
    if not isinstance(answers, Mapping):
        raise AnswersError(["answers must be an object mapping question ids to answers"], [])
    problems: list[str] = []
    missing: list[str] = []
    for key in answers:
        if key not in qd.BY_ID:
            problems.append(f"unknown question '{key}'{_suggest(key, qd.BY_ID)}")
    values: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    faulty: set[str] = set()
    # Parents come before their follow-ups in the dictionary, so one pass decides what was asked.
    probe = _Ctx.__new__(_Ctx)
    probe.values, probe.item, probe.trace = values, None, None
    for q in qd.QUESTIONS:
        cond = q.asked_when
        if cond is not None:
            parent = cond.get("question")
            if parent in faulty:
                faulty.add(q.id)
                continue
            if ASKED_WHEN[q.id](probe) is not True:
                continue  # not asked: any answer given is stale and ignored
        value = answers.get(q.id)
        if _blank(value):
            if q.required:
                missing.append(q.id)
                faulty.add(q.id)
            continue
        try:
            values[q.id], raw[q.id] = _check_value(q, value)
        except ValueError as exc:
            problems.append(f"'{q.id}' {exc}")
            faulty.add(q.id)
    if problems or missing:
        raise AnswersError(problems, missing, tuple(dict.fromkeys([*missing, *faulty])))
    wrong = implausible_dates(raw, answered_on)
    if wrong:
        facts = {"answered_on": answered_on.isoformat(), "appointment": raw.get("appointment_date"),
                 "dob": raw.get("dob")}
        lines = [f"'{qid}'{f' item {i + 1} date' if i is not None else ''} {value} "
                 + _IMPLAUSIBLE[kind].format(**facts) for qid, i, kind, value in wrong]
        raise AnswersError(lines, [], tuple(dict.fromkeys(qid for qid, *_ in wrong)))
    clinic, clinic_raw, clinic_problems = clinic_record.check(clinic_sessions, values["appointment_date"])
    if clinic_problems:
        raise AnswersError(clinic_problems, [])
    return Prepared(
        values=MappingProxyType(values),
        raw=MappingProxyType(raw),
        appointment=values["appointment_date"],
        variant=values["treatment_variant"],
        booked=qd.expand_areas(values["treatment_areas"]),
        answered_on=answered_on,
        clinic=clinic,
        clinic_raw=clinic_raw,
    )


def asked_ids(answers: Mapping[str, Any], dictionary: qd.Dictionary = qd.CURRENT) -> list[str]:
    """Return, in order, the ids of the questions asked given ``answers`` (follow-ups whose parent allows),
    in the dictionary the answers were given with."""
    conditions = _ASKED_WHEN_OF.get(dictionary.version)
    if conditions is None:
        conditions = _ASKED_WHEN_OF[dictionary.version] = _compile_asked_when(dictionary)
    probe = _Ctx.__new__(_Ctx)
    probe.values, probe.item, probe.trace = answers, None, None
    asked: set[str] = set()
    out = []
    for q in dictionary.questions:
        if q.asked_when is not None:
            if q.asked_when["question"] not in asked or conditions[q.id](probe) is not True:
                continue
        asked.add(q.id)
        out.append(q.id)
    return out
