"""How answers read to people: shared by the check-answers page, the PDF and exports."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from . import clock
from . import questions as qd

OUTCOME_TEXT = {
    "DO_NOT_TREAT": qd.N_("Do not treat"),
    "DEFER": qd.N_("Defer"),
    "REVIEW": qd.N_("Practitioner review"),
    "CLEAR": qd.N_("Clear"),
}
SEVERITY_TEXT = {
    "do_not_treat": qd.N_("Do not treat"),
    "defer": qd.N_("Defer"),
    "review": qd.N_("Review"),
}
VARIANT_TEXT = {c.code: c.label for c in qd.BY_ID["treatment_variant"].choices}
VARIANT_SHORT = {"standard": qd.N_("Standard"), "rf": qd.N_("RF"), "prp": qd.N_("PRP")}  # beside a headline


def format_date(value: Any) -> str:
    """Return a stored date (YYYY-MM-DD, YYYY-MM or unknown) as words: 1 March 2027."""
    if value in (None, ""):
        return ""
    if value == qd.UNKNOWN:
        return "I don't know"
    if isinstance(value, dt.date):
        return f"{value.day} {value:%B %Y}"
    if len(value) == 7:
        return dt.date.fromisoformat(value + "-01").strftime("%B %Y")
    day = dt.date.fromisoformat(value)
    return f"{day.day} {day:%B %Y}"


_DAY_TYPED = re.compile(r"^\s*(\d{1,2})\s*[/. -]\s*(\d{1,2})\s*[/. -]\s*(\d{4})\s*$")


def parse_day(text: str) -> dt.date:
    """Read a date as staff type it in a filter: day/month/year (24/11/2026, 24.11.2026, 24 11 2026) or 2026-11-24.

    Raise ValueError. The same reading for every staff filter (the practitioners' list, the audit trail).
    """
    text = text.strip()
    match = _DAY_TYPED.match(text)
    if match:
        day, month, year = (int(x) for x in match.groups())
        return dt.date(year, month, day)
    return dt.date.fromisoformat(text)


def format_moment(value: dt.datetime | None, tz: dt.tzinfo | None = None) -> str:
    """Return a stored moment in the clinic's time with its zone: 29 March 2026, 01:30 BST (empty for None)."""
    if value is None:
        return ""
    moment = clock.local(value, tz)
    return f"{moment.day} {moment:%B %Y, %H:%M} {clock.zone_name(moment)}"


def format_clock(value: dt.datetime | None, tz: dt.tzinfo | None = None) -> str:
    """Return a stored moment's time of day in the clinic's time with its zone: 14:05 BST (empty for None)."""
    if value is None:
        return ""
    moment = clock.local(value, tz)
    return f"{moment:%H:%M} {clock.zone_name(moment)}"


def format_answer(q: qd.Question, value: Any, translate=lambda s: s) -> str:
    """Return one stored answer as the words the client chose."""
    if value in (None, "", []):
        return translate("Not answered")
    if q.type == qd.DATE:
        return translate(format_date(value)) if value == qd.UNKNOWN else format_date(value)
    if q.type in (qd.YES_NO, qd.YES_NO_UNSURE, qd.SINGLE):
        labels = {c.code: c.label for c in q.choices}
        return translate(labels.get(value, value))
    if q.type in (qd.MULTI, qd.AREAS):
        labels = {c.code: c.label for c in q.choices}
        return ", ".join(translate(labels.get(v, v)) for v in value)
    if q.type == qd.GROUP:
        items = []
        for item in value:
            parts = [format_answer(f, item.get(f.id), translate) for f in q.fields if item.get(f.id)]
            if item.get("source") == "clinic":  # a session from the clinic's record (rule 41), not the client
                parts = [format_answer(q.field(f), item.get(f), translate) for f in ("variant", "date", "location")]
                parts = [translate("Clinic record: %(s)s") % {"s": ", ".join(parts)}]
            items.append("; ".join(parts))
        return " | ".join(items)
    return str(value)


def not_asked_reason(q: qd.Question, answers: dict, translate=lambda s: s,
                     words: qd.Dictionary = qd.CURRENT) -> str:
    """Say why a follow-up was not asked: the answer its parent was given (in the dictionary ``words``)."""
    parent = words.by_id[q.asked_when["question"]]
    given = format_answer(parent, answers.get(parent.id), translate)
    return translate("Not asked: the answer to “%(q)s” was “%(a)s”") % {"q": translate(parent.label), "a": given}
