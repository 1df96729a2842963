"""The clinic's own record of past sessions, beside the client's answers (rule 41 and a built-in review flag).

A session the clinic recorded as done ({"on": date, "variant": standard|rf|prp, "areas": [area codes]}) joins
the items of the ``last_microneedling`` group, so rule 41 (``recent_microneedling_in_area``) reads both and the
later date wins. Where the record and the answers disagree (the clinic recorded a session within the question's
look-back that the client does not mention), a review flag says so: an unknown goes to the practitioner
(clinical spec, row 46's principle). The flag is built in, not a rule of ``rules.yaml``: the file holds the
specification's 46 rules, and this flag is about the record, not about the client's health.
"""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType
from typing import Any, Mapping

from .. import questions as qd
from .dates import Duration

GROUP = "last_microneedling"  # the repeatable group the clinic's sessions join
QUESTION = "microneedling_3m"  # the question whose look-back the record is compared with
SOURCE = "clinic"  # the "source" of a raw item that comes from the clinic's record
MATCH_DAYS = 7  # a session the client lists within this many days of the clinic's is the same one
VARIANTS = ("standard", "rf", "prp")
FLAG_ID = "clinic_record_differs"
FLAG_TITLE = "The clinic's record of microneedling differs from the answers"
FLAG_REASON = ("The clinic recorded a microneedling session in the look-back of the client's answer "
               "that the answers do not mention.")
FLAG_ACTION = ("Check the clinic's record with the client before treating. Deferral windows already count from "
               "the later of the two dates.")

_AREAS = frozenset(c.code for c in qd.TREATMENT_AREA_CHOICES)
_VARIANT_WORDS = {c.code: c.label for c in qd.BY_ID[GROUP].field("variant").choices}


def _words_date(day: dt.date) -> str:
    return f"{day.day} {day:%B %Y}"


def describe(item: Mapping[str, Any]) -> str:
    """Return a clinic session (a raw item) in words: RF microneedling, 3 March 2027, full face."""
    day = item["date"]
    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    areas = ", ".join(qd.AREA_LABELS.get(a, a) for a in item.get("location", ()))
    return f"{_VARIANT_WORDS.get(item.get('variant'), item.get('variant'))}, {_words_date(day)}, {areas.lower()}"


def check(sessions: Any, appointment: dt.date) -> tuple[tuple[Mapping[str, Any], ...], tuple[dict, ...], list[str]]:
    """Return the sessions before the appointment as group items (normalised, raw), oldest first, and problems.

    A session on or after the appointment day is not a past session of this appointment: it is left out."""
    problems: list[str] = []
    kept: list[tuple[dt.date, str, tuple[str, ...]]] = []
    if not isinstance(sessions, (list, tuple)):
        return (), (), ["clinic_sessions must be a list of sessions"]
    for n, s in enumerate(sessions, 1):
        if not isinstance(s, Mapping) or set(s) - {"on", "variant", "areas"}:
            problems.append(f"clinic session {n} must be an object of on, variant, areas")
            continue
        on, variant, areas = s.get("on"), s.get("variant"), s.get("areas")
        if isinstance(on, dt.datetime) or not isinstance(on, dt.date):
            problems.append(f"clinic session {n} 'on' must be a date")
            continue
        if variant not in VARIANTS:
            problems.append(f"clinic session {n} 'variant' {variant!r} is not one of: {', '.join(VARIANTS)}")
            continue
        if (not isinstance(areas, (list, tuple)) or not areas
                or any(not isinstance(a, str) or a not in _AREAS for a in areas)):
            problems.append(f"clinic session {n} 'areas' must be a list of treatment areas")
            continue
        if on < appointment:
            kept.append((on, variant, tuple(dict.fromkeys(areas))))
    kept.sort()
    items = tuple(MappingProxyType({"date": on, "variant": v, "location": frozenset(a)}) for on, v, a in kept)
    raw = tuple({"date": on.isoformat(), "variant": v, "location": list(a), "source": SOURCE} for on, v, a in kept)
    return items, raw, problems


def _mentions(listed: tuple[Mapping[str, Any], ...], on: dt.date) -> bool:
    """Whether a session the client listed can be the clinic's session of ``on``."""
    for item in listed:
        day = item.get("date")
        if not isinstance(day, dt.date):
            return True  # a date not known could be that session: no contradiction to show
        if abs((day - on).days) <= MATCH_DAYS:
            return True
        if (day.year, day.month) == (on.year, on.month) and (day + dt.timedelta(days=1)).day == 1:
            return True  # a month given ("March 2027") is kept as its last day: any day of it matches
    return False


def contradictions(values: Mapping[str, Any], clinic: tuple[Mapping[str, Any], ...], clinic_raw: tuple[dict, ...],
                   answered_on: dt.date) -> tuple[list[int], tuple[str, ...]]:
    """Return the indexes of the clinic's sessions the answers contradict and a plain sentence for each.

    Only sessions before the day of answering and within the question's look-back count: the client could
    not have told of a later one. "I'm not sure" is not a contradiction (it is flagged as unsure already)."""
    answer = values.get(QUESTION)
    if answer not in ("no", "yes"):
        return [], ()
    amount, unit = qd.BY_ID[QUESTION].lookback
    span = Duration(amount, unit)
    listed = values.get(GROUP, ()) if answer == "yes" else ()
    out, sentences = [], []
    for i, item in enumerate(clinic):
        on = item["date"]
        if not (on < answered_on and span.after(on) > answered_on):
            continue
        if answer == "yes" and _mentions(listed, on):
            continue
        out.append(i)
        said = (f"that they have had no microneedling in the last {amount} {unit}" if answer == "no"
                else f"with no session within {MATCH_DAYS} days of it")
        sentences.append(f"The clinic recorded {describe(clinic_raw[i])}; the client answered {said}.")
    return out, tuple(sentences)
