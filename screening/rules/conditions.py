"""Conditions: checked against the dictionary and compiled, once, into three-valued predicates.

Conditions are data (``all`` / ``any`` / ``not`` over ``question`` / ``op`` / ``value`` leaves); nothing from a
file is ever executed. A predicate answers True, False or MAYBE (a vague answer leaves it open).
"""

from __future__ import annotations

import datetime as dt
import difflib
from typing import TYPE_CHECKING, Any, Callable, Mapping

import yaml

from .. import questions as qd
from .dates import Duration
from .errors import RuleProblem

if TYPE_CHECKING:
    from .answers import Prepared


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
