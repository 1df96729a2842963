"""Evaluation: every rule against prepared answers, for each variant; the flags combined into an outcome."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from .. import questions as qd
from . import clinic as clinic_record
from .answers import Prepared, prepare
from .conditions import _Ctx
from .schema import SEVERITIES, Rule, RuleSet, _Override


RANK = {"clear": 0, "review": 1, "defer": 2, "do_not_treat": 3}


OUTCOME_OF = {"clear": "CLEAR", "review": "REVIEW", "defer": "DEFER", "do_not_treat": "DO_NOT_TREAT"}


OUTCOME_RANK = {OUTCOME_OF[k]: v for k, v in RANK.items()}


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
    # The clinic's record of sessions before the appointment that the rules read (raw items, "source": "clinic"),
    # and each disagreement between it and the answers, in plain words (no client identity).
    clinic_record: tuple[Mapping[str, Any], ...] = ()
    contradictions: tuple[str, ...] = ()

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
            "clinic_record": [_thaw(item) for item in self.clinic_record],
            "contradictions": list(self.contradictions),
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
        out.setdefault(group, []).append(prepared.group_raw(group)[i])
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
        # The clinic's record of past sessions joins the client's own items (clinic.GROUP): the later date wins.
        items = [((g, i), item) for g in rule.for_each for i, item in enumerate(prepared.group_items(g))]
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
    contradicted, sentences = clinic_record.contradictions(prepared.values, prepared.clinic, prepared.clinic_raw,
                                                           prepared.answered_on)
    if contradicted:
        merged[(clinic_record.FLAG_ID,)] = _record_flag(prepared, contradicted, tuple(variants))
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
        clinic_record=_freeze(list(prepared.clinic_raw)),
        contradictions=sentences,
    )


def _record_flag(prepared: Prepared, contradicted: list[int], variants: tuple[str, ...]) -> Flag:
    """Return the review flag for answers the clinic's record contradicts: the answer, the sessions the client
    listed, and the clinic's sessions they do not mention."""
    raw, group = prepared.raw, clinic_record.GROUP
    because: dict[str, Any] = {clinic_record.QUESTION: raw[clinic_record.QUESTION]}
    because[group] = list(raw.get(group, ())) + [prepared.clinic_raw[i] for i in contradicted]
    return Flag(id=clinic_record.FLAG_ID, title=clinic_record.FLAG_TITLE, severity="review",
                reason=clinic_record.FLAG_REASON, action=clinic_record.FLAG_ACTION, lifts_on=None, open_ended=False,
                because=_freeze(because), variants=variants)


def evaluate(ruleset: RuleSet, answers: Mapping[str, Any], *, answered_on: dt.date,
             clinic_sessions: Any = ()) -> Result:
    """Check ``answers`` (booking included), given on ``answered_on``, and evaluate them with the sessions the
    clinic recorded as done (``clinic_sessions``: {"on", "variant", "areas"} each); raise AnswersError if they
    are incomplete or implausible."""
    return evaluate_prepared(ruleset, prepare(answers, answered_on, clinic_sessions))
