"""The rules file: its schema (pydantic), its checks against the dictionary, and the compiled rule set."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .. import questions as qd
from .conditions import _UNITS, Pred, _Checker, _leaf_keys, _Lines, _suggest
from .dates import Duration
from .errors import RuleProblem, RulesError


SEVERITIES = ("review", "defer", "do_not_treat")


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
