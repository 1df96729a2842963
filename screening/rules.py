"""The rules engine: load ``rules.yaml``, check it against the data dictionary, evaluate answers.

Pure: no Flask, no database. Conditions are data (``all`` / ``any`` / ``not`` over
``question`` / ``op`` / ``value`` leaves) compiled once, at load, into closures.
Nothing from the file is ever executed.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Literal, Mapping, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import questions as qd

# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleProblem:
    """One fault in a rules file: which rule, which line, what is wrong."""

    rule_id: str
    line: int | None
    message: str

    def format(self, source: str) -> str:
        """Return the problem as ``source:line: rule 'id': message``."""
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: rule '{self.rule_id}': {self.message}"


class RulesError(Exception):
    """The rules file cannot be used; ``problems`` lists every fault found."""

    def __init__(self, source: str, problems: list[RuleProblem]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(p.format(source) for p in problems))


class AnswersError(ValueError):
    """The answers cannot be evaluated: wrong ids or types, implausible dates, or required answers missing."""

    def __init__(self, problems: list[str], missing: list[str], questions: tuple[str, ...] = ()):
        self.problems = problems
        self.missing = missing
        self.questions = tuple(questions) or tuple(missing)  # the questions at fault, for the form
        lines = list(problems)
        if missing:
            lines.append("missing required answers: " + ", ".join(missing))
        super().__init__("\n".join(lines))


# ---------------------------------------------------------------------------
# Dates
# ---------------------------------------------------------------------------


def add_months(day: dt.date, months: int) -> dt.date:
    """Add calendar months; a day the target month lacks becomes the 1st of the next month."""
    total = day.year * 12 + (day.month - 1) + months
    year, month = divmod(total, 12)
    month += 1
    if day.day <= calendar.monthrange(year, month)[1]:
        return dt.date(year, month, day.day)
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return dt.date(year, month, 1)


@dataclass(frozen=True)
class Duration:
    """A length of time in one unit: days, weeks, months or years."""

    amount: int
    unit: str

    def after(self, day: dt.date) -> dt.date:
        """Return the first date on which this duration has passed since ``day``."""
        if self.unit == "days":
            return day + dt.timedelta(days=self.amount)
        if self.unit == "weeks":
            return day + dt.timedelta(weeks=self.amount)
        if self.unit == "months":
            return add_months(day, self.amount)
        return add_months(day, 12 * self.amount)

    def max_days(self) -> int:
        """Return the longest this duration can be, in days."""
        per = {"days": 1, "weeks": 7, "months": 31, "years": 366}[self.unit]
        return self.amount * per

    def min_days(self) -> int:
        """Return the shortest this duration can be, in days."""
        per = {"days": 1, "weeks": 7, "months": 28, "years": 365}[self.unit]
        return self.amount * per

    def __str__(self) -> str:
        unit = self.unit[:-1] if self.amount == 1 else self.unit
        return f"{self.amount} {unit}"


_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_MONTH = re.compile(r"^\d{4}-\d{2}$")


def parse_answer_date(value: Any, question: qd.Question) -> dt.date | str:
    """Return a date answer as a date (or ``unknown``); raise ValueError with a plain message."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a date written YYYY-MM-DD")
    if value == qd.UNKNOWN:
        if question.unknown_allowed:
            return qd.UNKNOWN
        raise ValueError("cannot be 'unknown'")
    if _ISO_DAY.match(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"'{value}' is not a real date") from None
    if _ISO_MONTH.match(value) and question.month_allowed:
        year, month = int(value[:4]), int(value[5:])
        if not 1 <= month <= 12 or year < 1:
            raise ValueError(f"'{value}' is not a real month")
        # Only the month is known: take its last day (the conservative choice).
        return dt.date(year, month, calendar.monthrange(year, month)[1])
    form = "YYYY-MM-DD or YYYY-MM" if question.month_allowed else "YYYY-MM-DD"
    raise ValueError(f"must be a date written {form}")


# ---------------------------------------------------------------------------
# Severities and outcomes
# ---------------------------------------------------------------------------

SEVERITIES = ("review", "defer", "do_not_treat")
RANK = {"clear": 0, "review": 1, "defer": 2, "do_not_treat": 3}
OUTCOME_OF = {"clear": "CLEAR", "review": "REVIEW", "defer": "DEFER", "do_not_treat": "DO_NOT_TREAT"}
OUTCOME_RANK = {OUTCOME_OF[k]: v for k, v in RANK.items()}

# ---------------------------------------------------------------------------
# Prepared answers: validated, pruned to what was asked, normalised
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """Answers checked against the dictionary and pruned to the questions actually asked."""

    values: Mapping[str, Any]  # normalised: codes, frozensets, dates, tuples of item dicts
    raw: Mapping[str, Any]  # JSON-ready: what the client answered, for explanations
    appointment: dt.date
    variant: str  # standard / rf / prp / unknown
    booked: frozenset[str]  # booked areas, full_face expanded
    answered_on: dt.date  # the day the client gave the answers

    @property
    def booked_facial(self) -> bool:
        """Whether any booked area is on the face."""
        return not self.booked.isdisjoint(qd.FACIAL_AREAS)


class _Ctx:
    """What a compiled condition reads: the prepared answers, the variant, and the current item.

    ``trace``, when a list, collects ("question" | "field", id, True | MAYBE) for each leaf that made
    the condition true or possible: the answers that raised a flag.
    """

    __slots__ = ("values", "variant", "booked", "appointment", "item", "trace")

    def __init__(self, prepared: Prepared, variant: str, item: Mapping[str, Any] | None = None):
        self.values = prepared.values
        self.variant = variant
        self.booked = prepared.booked
        self.appointment = prepared.appointment
        self.item = item
        self.trace = None


# A condition is true, false, or MAYBE: a vague answer ("I'm not sure which", "another ...",
# "somewhere else", a date not known) leaves it open. Combined by Kleene's three-valued logic.
MAYBE = None
Pred = Callable[[_Ctx], "bool | None"]

# ---------------------------------------------------------------------------
# Conditions: checking and compiling
# ---------------------------------------------------------------------------

_NO_VALUE = object()
_CHOICE_TYPES = (qd.YES_NO, qd.YES_NO_UNSURE, qd.SINGLE)
_UNITS = ("days", "weeks", "months", "years")

# op -> (question types it fits, kind of value it takes)
OPS: dict[str, tuple[tuple[str, ...], str]] = {
    "eq": (_CHOICE_TYPES, "code"),
    "in": (_CHOICE_TYPES, "codes"),
    "contains_any": ((qd.MULTI, qd.AREAS), "codes"),
    "overlaps_booking": ((qd.AREAS,), "none"),
    "overlaps_booking_on_face": ((qd.AREAS,), "none"),
    "includes_facial": ((qd.AREAS,), "none"),
    "within_last": ((qd.DATE,), "duration"),
    "age_under": ((qd.DATE,), "years"),
    "is_unknown": ((qd.DATE,), "none"),
    "answered": (qd.TYPES, "none"),
}


def _suggest(name: str, options) -> str:
    close = difflib.get_close_matches(str(name), list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class _Checker:
    """Checks one rule's conditions against the dictionary and compiles them."""

    def __init__(self, rule_id: str, lines: "_Lines", base: tuple, problems: list[RuleProblem],
                 group: qd.Question | None = None, by_id: Mapping[str, qd.Question] = qd.BY_ID):
        self.rule_id = rule_id
        self.lines = lines
        self.base = base
        self.problems = problems
        self.group = group
        self.by_id = by_id

    def fail(self, path: tuple, message: str) -> None:
        self.problems.append(RuleProblem(self.rule_id, self.lines.line(self.base + path), message))

    # -- durations and values ------------------------------------------------

    def duration(self, raw: Any, path: tuple, what: str = "window") -> Duration | None:
        if not isinstance(raw, Mapping):
            self.fail(path, f"{what} must be one of {', '.join(_UNITS)} with a whole number, e.g. {{months: 6}}")
            return None
        units = [k for k in raw if k in _UNITS]
        other = [k for k in raw if k not in _UNITS]
        if other:
            self.fail(path, f"{what} has unknown key '{other[0]}'{_suggest(other[0], _UNITS)}")
            return None
        if len(units) != 1:
            self.fail(path, f"{what} needs exactly one of {', '.join(_UNITS)}")
            return None
        amount = raw[units[0]]
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            self.fail(path, f"{what} '{units[0]}' must be a whole number above 0, not {amount!r}")
            return None
        return Duration(amount, units[0])

    def _code(self, q: qd.Question, value: Any, path: tuple) -> str | None:
        if isinstance(value, bool) and q.type in (qd.YES_NO, qd.YES_NO_UNSURE):
            value = "yes" if value else "no"  # YAML 1.1 reads a bare yes/no as a boolean
        codes = q.choice_codes()
        if not isinstance(value, str) or value not in codes:
            self.fail(path, f"value {value!r} is not a choice of '{q.id}'{_suggest(value, codes)}; "
                            f"choices: {', '.join(codes)}")
            return None
        return value

    # -- conditions ------------------------------------------------------------

    def condition(self, raw: Any, path: tuple) -> Pred | None:
        """Check one condition node and return its compiled predicate (None if faulty)."""
        if not isinstance(raw, Mapping) or not raw:
            self.fail(path, "a condition must be a mapping such as {question: ..., op: ..., value: ...}")
            return None
        keys = set(raw)
        if keys & {"all", "any"}:
            if len(keys) != 1:
                self.fail(path, f"'{next(iter(keys & {'all', 'any'}))}' must stand alone in its mapping")
                return None
            kind = next(iter(keys))
            items = raw[kind]
            if not isinstance(items, list) or not items:
                self.fail(path + (kind,), f"'{kind}' needs a non-empty list of conditions")
                return None
            parts = [self.condition(c, path + (kind, i)) for i, c in enumerate(items)]
            if any(p is None for p in parts):
                return None
            return (_all if kind == "all" else _any)(tuple(parts))
        if "not" in keys:
            if len(keys) != 1:
                self.fail(path, "'not' must stand alone in its mapping")
                return None
            inner = self.condition(raw["not"], path + ("not",))
            return None if inner is None else _not(inner)
        if "variant" in keys:
            return self._variant_leaf(raw, path)
        if "any_unsure" in keys:
            return self._unsure_leaf(raw, path)
        if "question" in keys or "field" in keys:
            return self._leaf(raw, path)
        # Name a key that is not a condition key ('op' and 'value' are, beside 'question').
        name = sorted(keys - {"op", "value"} or keys)[0]
        self.fail(path, f"unknown condition key '{name}'"
                        f"{_suggest(name, ['all', 'any', 'not', 'question', 'field', 'variant', 'any_unsure'])}")
        return None

    def _variant_leaf(self, raw: Mapping, path: tuple) -> Pred | None:
        if set(raw) != {"variant"}:
            self.fail(path, "'variant' must stand alone in its mapping")
            return None
        codes = raw["variant"]
        if isinstance(codes, str):
            codes = [codes]
        if not isinstance(codes, list) or not codes:
            self.fail(path + ("variant",), "'variant' needs a list of variants")
            return None
        bad = [c for c in codes if c not in qd.VARIANTS]
        if bad:
            self.fail(path + ("variant",), f"unknown variant '{bad[0]}'{_suggest(bad[0], qd.VARIANTS)}; "
                                           f"variants: {', '.join(qd.VARIANTS)}")
            return None
        wanted = frozenset(codes)

        def variant(ctx: _Ctx) -> bool:
            if ctx.variant in wanted:
                if ctx.trace is not None:
                    ctx.trace.append(("question", "treatment_variant", True))
                return True
            return False
        return variant

    def _unsure_leaf(self, raw: Mapping, path: tuple) -> Pred | None:
        spec = raw["any_unsure"]
        if set(raw) != {"any_unsure"} or not isinstance(spec, Mapping) or set(spec) - {"except"}:
            self.fail(path, "'any_unsure' takes only {except: [question ids]}")
            return None
        excluded = spec.get("except", []) or []
        for i, qid in enumerate(excluded):
            if qid not in qd.BY_ID:
                self.fail(path + ("any_unsure", "except", i),
                          f"unknown question '{qid}'{_suggest(qid, qd.BY_ID)}")
                return None
        ids = tuple(q.id for q in qd.QUESTIONS if q.type == qd.YES_NO_UNSURE and q.id not in excluded)

        def unsure(ctx: _Ctx) -> bool:
            values = ctx.values
            if ctx.trace is None:
                return any(values.get(i) == "unsure" for i in ids)
            found = [i for i in ids if values.get(i) == "unsure"]
            ctx.trace.extend(("question", i, True) for i in found)
            return bool(found)
        return unsure

    def _leaf(self, raw: Mapping, path: tuple) -> Pred | None:
        extra = set(raw) - {"question", "field", "op", "value"}
        if extra:
            name = sorted(extra)[0]
            self.fail(path, f"unknown key '{name}' in a condition{_suggest(name, ['question', 'field', 'op', 'value'])}")
            return None
        if "question" in raw and "field" in raw:
            self.fail(path, "a condition names a 'question' or a 'field', not both")
            return None
        if "field" in raw:
            if self.group is None:
                self.fail(path, "'field' is only allowed in a rule with 'for_each'")
                return None
            name = raw["field"]
            names = [f.id for f in self.group.fields]
            if name not in names:
                self.fail(path + ("field",), f"unknown field '{name}' of '{self.group.id}'{_suggest(name, names)}")
                return None
            q = self.group.field(name)
        else:
            qid = raw["question"]
            if not isinstance(qid, str) or qid not in self.by_id:
                self.fail(path + ("question",), f"unknown question '{qid}'{_suggest(qid, self.by_id)}")
                return None
            q = self.by_id[qid]
        op = raw.get("op")
        if op not in OPS:
            self.fail(path + ("op",) if "op" in raw else path,
                      f"unknown operator {op!r}{_suggest(op, OPS)}; operators: {', '.join(OPS)}")
            return None
        types, kind = OPS[op]
        if q.type not in types:
            fitting = [o for o, (t, _) in OPS.items() if q.type in t]
            self.fail(path + ("op",), f"operator '{op}' does not fit '{q.id}', a {q.type} question; "
                                      f"use one of: {', '.join(fitting)}")
            return None
        value = raw.get("value", _NO_VALUE)
        vpath = path + ("value",)
        if kind == "none":
            if value is not _NO_VALUE:
                self.fail(vpath, f"operator '{op}' takes no value")
                return None
        elif value is _NO_VALUE:
            self.fail(path, f"operator '{op}' needs a value")
            return None
        if kind == "code":
            value = self._code(q, value, vpath)
            if value is None:
                return None
        elif kind == "codes":
            if not isinstance(value, list) or not value:
                self.fail(vpath, f"operator '{op}' needs a non-empty list of choices")
                return None
            codes = [self._code(q, v, vpath) for v in value]
            if any(c is None for c in codes):
                return None
            value = frozenset(codes)
        elif kind == "duration":
            value = self.duration(value, vpath, what=f"'{op}'")
            if value is None:
                return None
        elif kind == "years":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 150:
                self.fail(vpath, f"operator 'age_under' needs a whole number of years, not {value!r}")
                return None
        return _compile_leaf("field" in raw, q, op, value)


def _all(preds: tuple[Pred, ...]) -> Pred:
    """True if every part is true; false if any is false; otherwise MAYBE."""
    def all_(ctx: _Ctx):
        trace = ctx.trace
        mark = len(trace) if trace is not None else 0
        maybe = False
        for p in preds:
            v = p(ctx)
            if v is False:
                if trace is not None:
                    del trace[mark:]
                return False
            if v is MAYBE:
                maybe = True
        return MAYBE if maybe else True
    return all_


def _any(preds: tuple[Pred, ...]) -> Pred:
    """True if any part is true; false if every part is false; otherwise MAYBE.

    When tracing, every part is evaluated and only the parts that were true (or, if none was, the
    parts that were MAYBE) keep their answers: the branches of an ``any`` that raised the flag."""
    def any_(ctx: _Ctx):
        if ctx.trace is None:
            maybe = False
            for p in preds:
                v = p(ctx)
                if v is True:
                    return True
                if v is MAYBE:
                    maybe = True
            return MAYBE if maybe else False
        outer, kept = ctx.trace, {True: [], MAYBE: []}
        for p in preds:
            ctx.trace = []
            v = p(ctx)
            if v is not False:
                kept[v].extend(ctx.trace)
        ctx.trace = outer
        if kept[True]:
            outer.extend(kept[True])
            return True
        outer.extend(kept[MAYBE])
        return MAYBE if kept[MAYBE] else False
    return any_


def _not(inner: Pred) -> Pred:
    """The opposite; MAYBE stays MAYBE. Answers under a ``not`` never raise a flag (they were "no"),
    except a vague one that left it open."""
    def not_(ctx: _Ctx):
        mark = len(ctx.trace) if ctx.trace is not None else 0
        v = inner(ctx)
        if ctx.trace is not None:
            ctx.trace[mark:] = [e for e in ctx.trace[mark:] if e[2] is MAYBE] if v is MAYBE else []
        return MAYBE if v is MAYBE else not v
    return not_


_FACIAL = frozenset(qd.FACIAL_AREAS)


def _compile_leaf(is_field: bool, q: qd.Question, op: str, value: Any) -> Pred:
    """Return the predicate for one checked leaf: True, False, or MAYBE where a vague answer leaves it open."""
    key = q.id
    # "I'm not sure" on a yes/no question is the 'unsure_answer' rule's (row 46), not a MAYBE here.
    vague = frozenset(c.code for c in q.choices if c.vague and not (q.type == qd.YES_NO_UNSURE and c.code == "unsure"))

    # Each test takes the answer and the context, and says True, False or MAYBE.
    if op in ("eq", "in"):
        wanted = frozenset([value]) if op == "eq" else value

        def test(v, ctx: _Ctx):
            return True if v in wanted else MAYBE if v in vague else False
    elif op == "contains_any":
        def test(v, ctx: _Ctx):
            if not v:
                return False
            return True if not value.isdisjoint(v) else MAYBE if not vague.isdisjoint(v) else False
    elif op == "overlaps_booking":
        def test(v, ctx: _Ctx):
            if not v:
                return False
            return True if not qd.expand_areas(v).isdisjoint(ctx.booked) else MAYBE if qd.ELSEWHERE in v else False
    elif op == "overlaps_booking_on_face":
        def test(v, ctx: _Ctx):
            if not v:
                return False
            if not (qd.expand_areas(v) & ctx.booked).isdisjoint(_FACIAL):
                return True
            return MAYBE if qd.ELSEWHERE in v and not ctx.booked.isdisjoint(_FACIAL) else False
    elif op == "includes_facial":
        def test(v, ctx: _Ctx):
            if not v:
                return False
            return True if not qd.expand_areas(v).isdisjoint(_FACIAL) else MAYBE if qd.ELSEWHERE in v else False
    elif op in ("within_last", "age_under"):
        span = value if op == "within_last" else Duration(value, "years")

        def test(v, ctx: _Ctx):
            if v == qd.UNKNOWN:
                return MAYBE
            return isinstance(v, dt.date) and span.after(v) > ctx.appointment
    elif op == "is_unknown":
        def test(v, ctx: _Ctx):
            return v == qd.UNKNOWN
    elif op == "answered":
        def test(v, ctx: _Ctx):
            return v not in (None, "", (), frozenset())
    else:  # pragma: no cover - OPS and this function list the same operators
        raise AssertionError(op)

    entry = ("field" if is_field else "question", key)
    booking = op in ("overlaps_booking", "overlaps_booking_on_face")

    def note(ctx: _Ctx, r) -> None:
        ctx.trace.append((*entry, r))
        if booking:
            ctx.trace.append(("question", "treatment_areas", True))

    if op in ("eq", "in") and not is_field:  # most leaves: inlined, one call fewer on the hot path
        def leaf(ctx: _Ctx):
            v = ctx.values.get(key)
            r = True if v in wanted else MAYBE if v in vague else False
            if r is not False and ctx.trace is not None:
                note(ctx, r)
            return r
    elif is_field:
        def leaf(ctx: _Ctx):
            r = test(ctx.item.get(key), ctx)
            if r is not False and ctx.trace is not None:
                note(ctx, r)
            return r
    else:
        def leaf(ctx: _Ctx):
            r = test(ctx.values.get(key), ctx)
            if r is not False and ctx.trace is not None:
                note(ctx, r)
            return r
    return leaf


def _leaf_keys(raw: Any, out: list[tuple[str, str]]) -> None:
    """Collect ("question"|"field", id) for every leaf of a checked condition."""
    if not isinstance(raw, Mapping):
        return
    for kind in ("all", "any"):
        if kind in raw:
            for c in raw[kind]:
                _leaf_keys(c, out)
    if "not" in raw:
        _leaf_keys(raw["not"], out)
    if "question" in raw:
        out.append(("question", raw["question"]))
    if "field" in raw:
        out.append(("field", raw["field"]))
    if "variant" in raw:
        out.append(("question", "treatment_variant"))
    if "any_unsure" in raw:
        out.append(("unsure", ",".join(raw["any_unsure"].get("except", []) or [])))
    if raw.get("op") in ("overlaps_booking", "overlaps_booking_on_face"):
        out.append(("question", "treatment_areas"))


# ---------------------------------------------------------------------------
# The rules file schema (pydantic) and the compiled rule set
# ---------------------------------------------------------------------------


class _DateSourceModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    when: dict | None = None
    date: Union[str, dict]


class _WindowModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    days: int | None = None
    weeks: int | None = None
    months: int | None = None
    years: int | None = None
    from_: Union[str, dict, list] = Field(alias="from")


class _OverrideModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    variants: list[str] | None = None
    when: dict | None = None
    severity: Literal["do_not_treat", "defer", "review"] | None = None
    window: dict | None = None
    reason: str | None = None
    action: str | None = None

    @field_validator("reason", "action")
    @classmethod
    def _one_line(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be blank")
        return None if v is None else " ".join(v.split())


class _RuleModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = Field(min_length=1)
    severity: Literal["do_not_treat", "defer", "review"]
    variants: Union[Literal["all"], list[str]] = "all"
    for_each: Union[str, list[str], None] = None
    when: dict
    window: Union[Literal["open_ended"], dict, None] = None
    reason: str = Field(min_length=1)
    action: str = Field(min_length=1)
    sources: list[str] = Field(min_length=1)
    overrides: list[_OverrideModel] = []

    @field_validator("reason", "action", "title")
    @classmethod
    def _one_line(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return " ".join(v.split())


class _FileModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    valid_for: dict | None = None
    rules: list[dict]


# How long a screening stays valid before the appointment when rules.yaml does not say (spec v2, 0.4).
DEFAULT_VALID_FOR = Duration(28, "days")


@dataclass(frozen=True)
class _DateSource:
    when: Pred | None
    question: str | None  # a top-level date question, or None for an item field
    field: str | None


@dataclass(frozen=True)
class _Override:
    variants: frozenset[str] | None
    when: Pred | None
    severity: str | None
    duration: Duration | None
    reason: str | None = None
    action: str | None = None


@dataclass(frozen=True)
class Rule:
    """One compiled rule."""

    id: str
    title: str
    severity: str
    variants: frozenset[str]
    for_each: tuple[str, ...]
    when: Pred
    window_open_ended: bool
    duration: Duration | None
    sources: tuple[_DateSource, ...]
    overrides: tuple[_Override, ...]
    reason: str
    action: str
    references: tuple[str, ...]
    leaf_keys: tuple[tuple[str, str], ...]
    line: int | None


class _Lines:
    """Maps a path in the YAML document to its line number."""

    def __init__(self, root: yaml.Node | None, problems: list[RuleProblem]):
        self.map: dict[tuple, int] = {}
        self.problems = problems
        self.ids: dict[int, str] = {}  # rule index -> its id, to name the rule in a problem
        if root is not None:
            self._walk(root, ())

    def _walk(self, node: yaml.Node, path: tuple) -> None:
        self.map[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            if len(path) == 2 and path[0] == "rules":
                for key, value in node.value:  # the last 'id' wins, as in the loaded document
                    if key.value == "id" and value.tag == "tag:yaml.org,2002:str":
                        self.ids[path[1]] = value.value
            seen = set()
            for key, value in node.value:
                name = key.value
                if name in seen:
                    self.problems.append(RuleProblem(self._rule_at(path), key.start_mark.line + 1,
                                                     f"key '{name}' appears twice in one mapping"))
                seen.add(name)
                self._walk(value, path + (name,))
                self.map.setdefault(path + (name,), key.start_mark.line + 1)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, path + (i,))

    def _rule_at(self, path: tuple) -> str:
        if len(path) >= 2 and path[0] == "rules":
            return self.ids.get(path[1], f"#{path[1] + 1}")
        return "(file)"

    def line(self, path: tuple) -> int | None:
        """Return the line of ``path``, or of its nearest ancestor that exists."""
        path = tuple(path)
        while path:
            if path in self.map:
                return self.map[path]
            path = path[:-1]
        return self.map.get(())


@dataclass(frozen=True)
class RuleSet:
    """A checked, compiled rules file and the digest of its bytes."""

    rules: tuple[Rule, ...]
    digest: str
    source: str
    valid_for: Duration = DEFAULT_VALID_FOR  # answers older than this before the appointment are out of date

    def __len__(self) -> int:
        return len(self.rules)

    def counts(self) -> dict[str, int]:
        """Return how many rules there are of each severity."""
        out = {s: 0 for s in SEVERITIES}
        for r in self.rules:
            out[r.severity] += 1
        return out


def _lookback(qid: str) -> tuple[str, Duration] | None:
    """Return how far back the question (or the gate that asks it) looks, if that is limited."""
    seen = set()
    while qid and qid not in seen:
        seen.add(qid)
        q = qd.BY_ID[qid]
        if q.lookback is not None:
            return q.id, Duration(*q.lookback)
        qid = (q.asked_when or {}).get("question")
    return None


def _fits(window: Duration, lookback: Duration) -> bool:
    """Whether every event that ``window`` can still count lies inside ``lookback``."""
    months = {"months": 1, "years": 12}
    if window.unit in months and lookback.unit in months:
        return window.amount * months[window.unit] <= lookback.amount * months[lookback.unit]
    return window.max_days() <= lookback.min_days()


def _compile_rule(raw: Any, index: int, lines: _Lines, problems: list[RuleProblem]) -> Rule | None:
    """Check one rule mapping and return it compiled (None if it has faults)."""
    base = ("rules", index)
    rule_id = raw.get("id") if isinstance(raw, Mapping) and isinstance(raw.get("id"), str) else f"#{index + 1}"
    before = len(problems)
    if not isinstance(raw, Mapping):
        problems.append(RuleProblem(rule_id, lines.line(base), "a rule must be a mapping of id, severity, when ..."))
        return None
    try:
        model = _RuleModel.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            field_name = ".".join(str(p) for p in loc) or "rule"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                allowed = list(_RuleModel.model_fields) if len(loc) == 1 else []
                msg = f"unknown key{_suggest(loc[-1], allowed)}"
            elif err["type"] == "missing":
                msg = "is required"
            elif err["type"] == "literal_error" and loc and loc[-1] == "severity":
                msg = f"unknown severity {err.get('input')!r}{_suggest(err.get('input'), SEVERITIES)}; " \
                      f"severities: {', '.join(SEVERITIES)}"
            problems.append(RuleProblem(rule_id, lines.line(base + loc), f"'{field_name}' {msg}"))
        return None

    group = None
    if model.for_each is not None:
        group = _merged_group(model.for_each, rule_id, lines.line(base + ("for_each",)), problems)
        if group is None:
            return None
    chk = _Checker(rule_id, lines, base, problems, group)

    if model.variants == "all":
        variants = frozenset(qd.VARIANTS)
    else:
        bad = [v for v in model.variants if v not in qd.VARIANTS]
        if bad or not model.variants:
            chk.fail(("variants",), f"unknown variant '{bad[0] if bad else ''}'"
                                    f"{_suggest(bad[0], qd.VARIANTS) if bad else ''}; "
                                    f"variants: all, or a list of {', '.join(qd.VARIANTS)}")
        variants = frozenset(model.variants)

    when = chk.condition(raw["when"], ("when",))

    # Window.
    sources: list[_DateSource] = []
    duration = None
    open_ended = False
    window = raw.get("window")
    if model.severity == "defer" or any(o.severity == "defer" for o in model.overrides):
        if window is None:
            chk.fail((), "a defer rule needs a 'window': a duration with 'from', or open_ended")
    elif window is not None:
        chk.fail(("window",), f"a {model.severity} rule takes no 'window'")
    if window == "open_ended":
        open_ended = True
    elif isinstance(window, Mapping):
        try:
            wmodel = _WindowModel.model_validate(window)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple("from" if p == "from_" else p for p in err["loc"])
                msg = "is required" if err["type"] == "missing" else (
                    f"unknown key{_suggest(loc[-1], _UNITS + ('from',))}" if err["type"] == "extra_forbidden"
                    else err["msg"])
                chk.fail(("window",) + loc, f"'window.{'.'.join(map(str, loc))}' {msg}")
            wmodel = None
        if wmodel is not None:
            duration = chk.duration({k: v for k, v in window.items() if k != "from"}, ("window",))
            raw_from = window["from"]
            items = raw_from if isinstance(raw_from, list) else [{"date": raw_from}]
            if not items:
                chk.fail(("window", "from"), "'from' needs at least one date")
            for i, item in enumerate(items):
                ipath = ("window", "from", i) if isinstance(raw_from, list) else ("window", "from")
                src = _date_source(chk, item, ipath, group)
                if src is not None:
                    sources.append(src)

    overrides = []
    for i, o in enumerate(model.overrides):
        opath = ("overrides", i)
        ov_variants = None
        if o.variants is not None:
            bad = [v for v in o.variants if v not in qd.VARIANTS]
            if bad:
                chk.fail(opath + ("variants",), f"unknown variant '{bad[0]}'{_suggest(bad[0], qd.VARIANTS)}")
            ov_variants = frozenset(o.variants)
        ov_when = chk.condition(o.when, opath + ("when",)) if o.when is not None else None
        ov_duration = chk.duration(o.window, opath + ("window",)) if o.window is not None else None
        if o.window is not None and not sources:
            chk.fail(opath + ("window",), "an override 'window' needs the rule's own dated window")
        if o.severity is None and o.window is None and o.reason is None and o.action is None:
            chk.fail(opath, "an override must change 'severity', 'window', 'reason' or 'action'")
        overrides.append(_Override(ov_variants, ov_when, o.severity, ov_duration, o.reason, o.action))

    # A window fed by a date the client may not know must accept "I don't know" (an open-ended deferral):
    # a rule that can only be fed a guess is refused.
    for i, s in enumerate(sources):
        dq = qd.BY_ID[s.question] if s.question else group.field(s.field)
        if not dq.exact and not dq.unknown_allowed:
            name = s.question or f"{group.id}.{s.field}"
            chk.fail(("window", "from"), f"window counts from '{name}', which has no \"I don't know\" answer: "
                                         f"a client who does not know the date could only guess; give the "
                                         f"question unknown_allowed in the dictionary")

    # A window must not reach further back than the question that feeds it asks about.
    for d in [duration] + [o.duration for o in overrides]:
        for s in sources if d is not None else ():
            for qid in [s.question] if s.question else group.id.split("+"):
                found = _lookback(qid)
                if found and not _fits(d, found[1]):
                    chk.fail(("window",), f"window of {d} is longer than question '{found[0]}' looks back "
                                          f"({found[1]}): a longer window needs a question that asks further back")

    if len(problems) > before or when is None:
        return None
    keys: list[tuple[str, str]] = []
    _leaf_keys(raw["when"], keys)
    for o in model.overrides:
        _leaf_keys(o.when, keys)
    if isinstance(window, Mapping) and isinstance(window.get("from"), list):
        for item in window["from"]:
            _leaf_keys(item.get("when"), keys)
    return Rule(
        id=model.id,
        title=model.title,
        severity=model.severity,
        variants=variants,
        for_each=tuple(group.id.split("+")) if group else (),
        when=when,
        window_open_ended=open_ended,
        duration=duration,
        sources=tuple(sources),
        overrides=tuple(overrides),
        reason=model.reason,
        action=model.action,
        references=tuple(model.sources),
        leaf_keys=tuple(dict.fromkeys(keys)),
        line=lines.line(base),
    )


def _merged_group(for_each: str | list[str], rule_id: str, line: int | None,
                  problems: list[RuleProblem]) -> qd.Question | None:
    """Return one group whose fields are those shared by every group named in ``for_each``."""
    names = [for_each] if isinstance(for_each, str) else list(for_each)
    groups = [q.id for q in qd.QUESTIONS if q.type == qd.GROUP]
    if not names:
        problems.append(RuleProblem(rule_id, line, "'for_each' needs at least one repeatable group"))
        return None
    for name in names:
        if name not in groups:
            problems.append(RuleProblem(rule_id, line, f"'for_each' must name repeatable group questions, "
                                                       f"not '{name}'{_suggest(name, groups)}"))
            return None
    first = qd.BY_ID[names[0]]
    shared = []
    for f in first.fields:
        same = [g for n in names for g in qd.BY_ID[n].fields if g.id == f.id and g.type == f.type]
        if len(same) == len(names):  # a field every group has; its choices are those of any of them
            choices = tuple({c.code: c for g in same for c in g.choices}.values())
            shared.append(dataclasses.replace(f, choices=choices))
    return qd.Question("+".join(names), qd.GROUP, first.label, fields=tuple(shared))


def _date_source(chk: _Checker, item: Any, path: tuple, group: qd.Question | None) -> _DateSource | None:
    """Check one entry of a window's ``from`` list."""
    if not isinstance(item, Mapping) or "date" not in item or set(item) - {"date", "when"}:
        chk.fail(path, "each 'from' entry is {date: question id} with an optional 'when'")
        return None
    when = chk.condition(item["when"], path + ("when",)) if item.get("when") is not None else None
    ref = item["date"]
    if isinstance(ref, Mapping) and set(ref) == {"field"}:
        if group is None:
            chk.fail(path, "a date 'field' is only allowed in a rule with 'for_each'")
            return None
        names = [f.id for f in group.fields]
        if ref["field"] not in names or group.field(ref["field"]).type != qd.DATE:
            dates = [f.id for f in group.fields if f.type == qd.DATE]
            chk.fail(path, f"'{ref['field']}' is not a date field of '{group.id}'{_suggest(ref['field'], dates)}")
            return None
        return _DateSource(when, None, ref["field"])
    if not isinstance(ref, str) or ref not in qd.BY_ID:
        chk.fail(path, f"unknown date question '{ref}'{_suggest(ref, qd.BY_ID)}")
        return None
    if qd.BY_ID[ref].type != qd.DATE:
        chk.fail(path, f"'{ref}' is a {qd.BY_ID[ref].type} question, not a date")
        return None
    if item.get("when") is not None and when is None:
        return None
    return _DateSource(when, ref, None)


def _rule_at(text: str, exc: yaml.YAMLError) -> str | None:
    """The id of the rule a YAML syntax error is in: the last ``- id:`` above the error or, in an unclosed
    ``{...}`` or ``[...]`` (whose error may show in the next rule), above where it was opened."""
    marks = [getattr(exc, "problem_mark", None)]
    if "flow" in (getattr(exc, "context", None) or ""):
        marks.insert(0, getattr(exc, "context_mark", None))
    for mark in marks:
        if mark is not None:
            for line in reversed(text.splitlines()[:mark.line + 1]):
                found = re.match(r"\s*-\s+id:\s*['\"]?([\w.-]+)", line)
                if found:
                    return found.group(1)
    return None


def parse_rules(data: bytes, source: str = "rules.yaml") -> RuleSet:
    """Check and compile a rules file's bytes; raise RulesError listing every fault."""
    problems: list[RuleProblem] = []
    try:
        text = data.decode("utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)  # the node tree, for line numbers
        doc = yaml.safe_load(text)
    except UnicodeDecodeError as exc:
        raise RulesError(source, [RuleProblem("(file)", None, f"not UTF-8 text: {exc}")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        rule = _rule_at(text, exc)
        where = f" (in rule '{rule}')" if rule else ""
        raise RulesError(source, [RuleProblem("(file)", line, f"not valid YAML{where}: {problem}")]) from None
    lines = _Lines(root, problems)
    try:
        _FileModel.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise RulesError(source, [RuleProblem("(file)", lines.line(tuple(first["loc"])),
                                              "the file must be a mapping with a 'rules' list"
                                              + (f" ({first['loc'][0]!s} is not allowed)"
                                                 if first["type"] == "extra_forbidden" else ""))]) from None
    valid_for = DEFAULT_VALID_FOR
    if doc.get("valid_for") is not None:
        chk = _Checker("(file)", lines, (), problems)
        valid_for = chk.duration(doc["valid_for"], ("valid_for",), what="'valid_for'") or DEFAULT_VALID_FOR
    compiled: list[Rule] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(doc["rules"]):
        rule = _compile_rule(raw, i, lines, problems)
        rid = raw.get("id") if isinstance(raw, Mapping) else None
        if isinstance(rid, str):
            if rid in seen:
                problems.append(RuleProblem(rid, lines.line(("rules", i, "id")),
                                            f"duplicate id: rule #{seen[rid] + 1} already uses '{rid}'"))
            seen.setdefault(rid, i)
        if rule is not None:
            compiled.append(rule)
    if not doc["rules"]:
        problems.append(RuleProblem("(file)", lines.line(("rules",)), "the file has no rules"))
    if problems:
        problems.sort(key=lambda p: (p.line or 0))
        raise RulesError(source, problems)
    return RuleSet(rules=tuple(compiled), digest=hashlib.sha256(data).hexdigest(), source=source,
                   valid_for=valid_for)


def load_rules(path: str | Path) -> RuleSet:
    """Read, check and compile the rules file at ``path``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RulesError(str(path), [RuleProblem("(file)", None, f"cannot read the file: {exc.strerror}")]) from None
    return parse_rules(data, str(path))


# ---------------------------------------------------------------------------
# The dictionary's follow-up conditions, compiled with the same checker
# ---------------------------------------------------------------------------


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

# ---------------------------------------------------------------------------
# Answers: check, prune, normalise
# ---------------------------------------------------------------------------


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


def _span(value: Any, q: qd.Question) -> tuple[dt.date, dt.date] | None:
    """Return the first and last day a date answer can mean (a month: its first and last day)."""
    if isinstance(value, str) and _ISO_MONTH.match(value):
        last = parse_answer_date(value, q)
        return last.replace(day=1), last
    if isinstance(value, dt.date):
        return value, value
    if isinstance(value, str) and _ISO_DAY.match(value):
        day = dt.date.fromisoformat(value)
        return day, day
    return None


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


def prepare(answers: Mapping[str, Any], answered_on: dt.date) -> Prepared:
    """Check answers against the dictionary and prune those not asked; raise AnswersError.

    ``answered_on`` is the day the client gave the answers: dates are checked against it."""
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
    booking = dict(appointment=None, variant=None, booked=frozenset())
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
    return Prepared(
        values=MappingProxyType(values),
        raw=MappingProxyType(raw),
        appointment=values["appointment_date"],
        variant=values["treatment_variant"],
        booked=qd.expand_areas(values["treatment_areas"]),
        answered_on=answered_on,
    )


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class Flag:
    """One rule that fired: what, how severe, why, what to do, and when it lifts.

    ``possible`` marks a flag raised because a vague answer leaves the rule open: it is a review,
    whatever the rule's own severity, and its answers name the question to settle with the client."""

    id: str
    title: str
    severity: str
    reason: str
    action: str
    lifts_on: dt.date | None
    open_ended: bool
    because: Mapping[str, Any]
    variants: tuple[str, ...]
    references: tuple[str, ...] = ()
    possible: bool = False

    def to_dict(self) -> dict:
        """Return the flag as JSON-ready data."""
        return {
            "id": self.id,
            "title": self.title,
            "severity": self.severity,
            "reason": self.reason,
            "action": self.action,
            "lifts_on": self.lifts_on.isoformat() if self.lifts_on else None,
            "open_ended": self.open_ended,
            "because": _thaw(self.because),
            "variants": list(self.variants),
            "sources": list(self.references),
            "possible": self.possible,
        }


@dataclass(frozen=True)
class Result:
    """The screening outcome for one set of answers."""

    outcome: str
    earliest_date: dt.date | None
    open_ended: bool
    flags: tuple[Flag, ...]
    rules_digest: str
    dictionary_version: str
    variant: str
    variants_evaluated: tuple[str, ...]
    by_variant: Mapping[str, str] = field(default_factory=dict)  # the outcome for each variant evaluated
    answered_on: dt.date | None = None
    # Questions about now or the last 28 days or less, answered before the appointment day.
    to_confirm_on_the_day: tuple[Mapping[str, Any], ...] = ()
    out_of_date: bool = False  # answered longer before the appointment than the rules' valid_for

    @property
    def variant_unknown(self) -> bool:
        """Whether the client did not know which variant was booked."""
        return self.variant == qd.VARIANT_UNKNOWN

    def to_dict(self) -> dict:
        """Return the result as JSON-ready data."""
        return {
            "outcome": self.outcome,
            "by_variant": dict(self.by_variant),  # beside the headline: each variant's outcome
            "earliest_date": self.earliest_date.isoformat() if self.earliest_date else None,
            "open_ended": self.open_ended,
            "flags": [f.to_dict() for f in self.flags],
            "rules_digest": self.rules_digest,
            "dictionary_version": self.dictionary_version,
            "variant": self.variant,
            "variants_evaluated": list(self.variants_evaluated),
            "answered_on": self.answered_on.isoformat() if self.answered_on else None,
            "to_confirm_on_the_day": [_thaw(item) for item in self.to_confirm_on_the_day],
            "out_of_date": self.out_of_date,
        }


def _because(rule: Rule, prepared: Prepared, trace: list, items: list[tuple[str, int]],
             date_qids: set[str]) -> Mapping[str, Any]:
    """Return the answers that raised a rule, keyed by question id: the leaves that were true (or left
    open by a vague answer), the items that fired, the dates the window counts from, and the booking
    facts the rule needed. Never the answers that were "no"."""
    out: dict[str, Any] = {}
    raw = prepared.raw
    for kind, key, _value in trace:
        if kind == "question" and key in raw:
            out[key] = raw[key]
    for group, i in items:
        out.setdefault(group, []).append(raw[group][i])
    for qid in sorted(date_qids):
        if qid in raw:
            out[qid] = raw[qid]
    if rule.variants != frozenset(qd.VARIANTS):
        out["treatment_variant"] = raw["treatment_variant"]
    return _freeze(out)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


@dataclass
class _Hit:
    """One way a rule fired: for a whole answer set, or for one item of a repeatable group."""

    index: tuple[str, int] | None
    item: Mapping[str, Any] | None
    definite: bool
    severity: str
    lift: dt.date | None
    open_ended: bool
    date_qid: str | None
    wording: _Override | None


def _hit(rule: Rule, ctx: _Ctx, variant: str, index, item, v=False) -> _Hit | None:
    """Return how ``rule`` fires for ``item`` (``v``: its condition, if known), or None (not at all, or its
    window has ended)."""
    ctx.item = item
    if v is False:
        v = rule.when(ctx)
    if v is False:
        return None
    sev, duration, wording = rule.severity, rule.duration, None
    for o in rule.overrides:
        # A vague answer in an override's condition applies the override: the shipped overrides are stricter.
        if (o.variants is None or variant in o.variants) and (o.when is None or o.when(ctx) is not False):
            sev, duration = o.severity or sev, o.duration or duration
            wording = o if (o.reason or o.action) else None
            break
    lift, open_ended, qid = None, False, None
    if sev == "defer":
        if rule.window_open_ended:
            open_ended = True
        else:
            start, qid = _start_date(rule, ctx)
            if start is None:
                open_ended = True  # no date can be computed from the answers
            else:
                lift = duration.after(start)
                if lift <= ctx.appointment:
                    return None  # the window has ended by the appointment: not a flag
    return _Hit(index, item, v is True, sev, lift, open_ended, qid, wording)


def _fire(rule: Rule, prepared: Prepared, variant: str, ctx: _Ctx) -> Flag | None:
    """Evaluate one rule for one variant; return its flag, or None if it does not fire."""
    if variant not in rule.variants:
        return None
    if rule.for_each:
        items = [((g, i), item) for g in rule.for_each for i, item in enumerate(prepared.values.get(g, ()))]
        if not items:
            return None
    else:
        ctx.item = None
        v = rule.when(ctx)
        if v is False:
            return None  # the common case: most rules do not fire
        items = [(None, None, v)]
    hits = [h for h in (_hit(rule, ctx, variant, *i) for i in items) if h is not None]
    definite = [h for h in hits if h.definite]
    chosen = definite or hits
    if not chosen:
        return None
    possible = not definite
    severity = max((h.severity for h in chosen), key=RANK.__getitem__)
    defers = [h for h in chosen if h.severity == "defer"]
    lifts = [h.lift for h in defers if h.lift]
    # The answers that raised it: the same conditions again, tracing their true (or open) leaves.
    ctx.trace = []
    for h in chosen:
        ctx.item = h.item
        rule.when(ctx)
    trace, ctx.trace = ctx.trace, None
    because = _because(rule, prepared, trace, [h.index for h in chosen if h.index is not None],
                       {h.date_qid for h in chosen if h.date_qid})
    wording = next((h.wording for h in chosen if h.wording and h.severity == severity), None)
    reason = (wording and wording.reason) or rule.reason
    action = (wording and wording.action) or rule.action
    if possible:
        return Flag(
            id=rule.id,
            title=f"Possible: {rule.title}",
            severity="review",
            reason=f"Not ruled out: an answer was not specific enough to tell whether {_lower_first(reason)}",
            action=f"Ask the client about the answers shown before treatment. If it applies: {_lower_first(action)}",
            lifts_on=None,
            open_ended=False,
            because=because,
            variants=(variant,),
            references=rule.references,
            possible=True,
        )
    return Flag(
        id=rule.id,
        title=rule.title,
        severity=severity,
        reason=reason,
        action=action,
        lifts_on=max(lifts) if severity == "defer" and lifts else None,
        open_ended=severity == "defer" and any(h.open_ended for h in defers),
        because=because,
        variants=(variant,),
        references=rule.references,
    )


def _start_date(rule: Rule, ctx: _Ctx) -> tuple[dt.date | None, str | None]:
    """Return the event date a deferral counts from (None: open-ended) and its question id."""
    for src in rule.sources:
        if src.when is not None and src.when(ctx) is False:
            continue
        value = ctx.item.get(src.field) if src.field else ctx.values.get(src.question)
        if value is None:
            continue  # that question was not asked: try the next source
        if value == qd.UNKNOWN:
            return None, src.question
        return value, src.question
    return None, None


def _combine(flags) -> tuple[str, dt.date | None, bool]:
    worst = max((RANK[f.severity] for f in flags), default=0)
    outcome = OUTCOME_OF[SEVERITIES[worst - 1]] if worst else "CLEAR"
    defers = [f for f in flags if f.severity == "defer"]
    open_ended = any(f.open_ended for f in defers)
    dated = [f.lifts_on for f in defers if f.lifts_on]
    earliest = max(dated) if outcome == "DEFER" and dated else None
    return outcome, earliest, open_ended


_ABOUT_NOW = tuple((q.id, q.label) for q in qd.QUESTIONS if q.id in qd.ABOUT_NOW)  # in the order asked


def _to_confirm(prepared: Prepared) -> tuple[Mapping[str, Any], ...]:
    """Return the answers about now or the last 28 days or less, with their wording, to confirm on the day."""
    if prepared.answered_on >= prepared.appointment:
        return ()
    raw = prepared.raw
    return tuple(MappingProxyType({"question": qid, "wording": label,  # no groups among them: a list at most
                                   "answer": tuple(raw[qid]) if isinstance(raw[qid], list) else raw[qid]})
                 for qid, label in _ABOUT_NOW if qid in raw)


def evaluate_prepared(ruleset: RuleSet, prepared: Prepared) -> Result:
    """Evaluate checked answers against every rule and combine the flags."""
    variants = qd.VARIANTS if prepared.variant == qd.VARIANT_UNKNOWN else (prepared.variant,)
    merged: dict[tuple, Flag] = {}
    several = len(variants) > 1
    for variant in variants:
        ctx = _Ctx(prepared, variant)
        for rule in ruleset.rules:
            flag = _fire(rule, prepared, variant, ctx)
            if flag is None:
                continue
            # With one variant every flag stands alone; with several, identical flags merge.
            key = (flag.id, flag.severity, flag.lifts_on, flag.open_ended, flag.possible, flag.reason,
                   json.dumps(_thaw(flag.because), sort_keys=True)) if several else (flag.id,)
            if key in merged:
                old = merged[key]
                merged[key] = dataclasses.replace(old, variants=old.variants + (variant,))
            else:
                merged[key] = flag
    flags = sorted(merged.values(), key=lambda f: (-RANK[f.severity], f.id, f.variants))
    outcome, earliest, open_ended = _combine(flags)
    by_variant = {v: _combine([f for f in flags if v in f.variants])[0] for v in variants}
    return Result(
        outcome=outcome,
        earliest_date=earliest,
        open_ended=open_ended,
        flags=tuple(flags),
        rules_digest=ruleset.digest,
        dictionary_version=qd.VERSION,
        variant=prepared.variant,
        variants_evaluated=tuple(variants),
        by_variant=MappingProxyType(by_variant),
        answered_on=prepared.answered_on,
        to_confirm_on_the_day=_to_confirm(prepared),
        out_of_date=ruleset.valid_for.after(prepared.answered_on) < prepared.appointment,
    )


def evaluate(ruleset: RuleSet, answers: Mapping[str, Any], *, answered_on: dt.date) -> Result:
    """Check ``answers`` (booking included), given on ``answered_on``, and evaluate them; raise AnswersError
    if they are incomplete or implausible."""
    return evaluate_prepared(ruleset, prepare(answers, answered_on))


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
