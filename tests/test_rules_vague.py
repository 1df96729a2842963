"""The vague-answer property (clinical specification v2, section 0, item 1), over the whole dictionary.

For every rule in the shipped rules.yaml, start from each profile that fires it (the fire cases of
tests/test_rules_each.py), then replace each answer the rule reads by every vague but truthful
alternative the dictionary offers for it: "I'm not sure", "another ...", "somewhere else", "I don't
know" for a date, a month instead of a day. The result must never be CLEAR, and must still fire the
rule or raise a flag that names the question.
"""

from __future__ import annotations

import copy

import pytest

from screening import questions as qd
from screening.rules import AnswersError, evaluate
from tests.answers import ANSWERED_ON, clear_answers
from tests.test_rules_each import FIRE_CASES


def is_vague(choice: qd.Choice) -> bool:
    return choice.vague


def alternatives(q: qd.Question, value):
    """Yield (label, replacement) for every vague but truthful alternative to ``value``."""
    if q.type in (qd.YES_NO_UNSURE, qd.SINGLE):
        for c in q.choices:
            if is_vague(c) and c.code != value:
                yield c.code, c.code
    elif q.type in (qd.MULTI, qd.AREAS):
        for c in q.choices:
            if is_vague(c) and [c.code] != value:
                yield c.code, [c.code]
    elif q.type == qd.DATE:
        if q.unknown_allowed and value != qd.UNKNOWN:
            yield "unknown", qd.UNKNOWN
        if q.month_allowed and isinstance(value, str) and len(value) == 10:
            yield "month-only", value[:7]
    elif q.type == qd.GROUP:
        for i, item in enumerate(value):
            for f in q.fields:
                if f.id in item:
                    for label, alt in alternatives(f, item[f.id]):
                        items = copy.deepcopy(value)
                        items[i][f.id] = alt
                        yield f"item {i + 1} {f.id} {label}", items


def read_by(rule) -> set[str]:
    """Return the ids of the questions a rule reads: its conditions, its dates, its groups."""
    out = {key for kind, key in rule.leaf_keys if kind == "question"}
    out |= {s.question for s in rule.sources if s.question}
    out |= set(rule.for_each)
    return out


def cases(ruleset):
    by_id = {r.id: r for r in ruleset.rules}
    for param in FIRE_CASES:
        rule_id, changes, _severity, _lifts = param.values
        answers = clear_answers(**changes)
        for qid in sorted(read_by(by_id[rule_id])):
            if qid not in answers or qid in qd.BOOKING_IDS and qid != "treatment_variant":
                continue
            for label, alt in alternatives(qd.BY_ID[qid], answers[qid]):
                yield f"{param.id}/{qid}={label}", rule_id, qid, dict(answers, **{qid: alt})


def names(flag, qid) -> bool:
    return qid in flag.because


def test_the_vague_answer_property_holds_for_every_rule(ruleset):
    failures = []
    checked = 0
    for case_id, rule_id, qid, answers in cases(ruleset):
        checked += 1
        try:
            result = evaluate(ruleset, answers, answered_on=ANSWERED_ON)
        except AnswersError as exc:
            failures.append(f"{case_id}: refused as an answer error: {exc}")
            continue
        if result.outcome == "CLEAR":
            failures.append(f"{case_id}: CLEAR")
        elif not any(f.id == rule_id or names(f, qid) for f in result.flags):
            failures.append(f"{case_id}: {rule_id} gone and no flag names {qid}: "
                            f"{[(f.id, sorted(f.because)) for f in result.flags]}")
    assert checked > 150  # the property really ran over the dictionary
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("changes", [
    pytest.param(dict(metal_allergy="yes", metal_allergy_which=["other"]), id="another-metal"),
    pytest.param(dict(surgery_2y="yes", surgery=[{"type": "blepharoplasty", "date": "2026-09-01",
                                                  "location": ["elsewhere"]}]), id="eyelid-surgery-somewhere-else"),
    pytest.param(dict(isotretinoin_last_12m="yes", isotretinoin_current="yes",
                      isotretinoin_planned_end_date="unknown"), id="isotretinoin-now-end-unknown"),
])
@pytest.mark.parametrize("variant", ["rf", "standard", "prp"])
def test_the_truthful_clients_of_the_issue_are_never_clear(ruleset, changes, variant):
    answers = clear_answers(treatment_variant=variant, **changes)
    assert evaluate(ruleset, answers, answered_on=ANSWERED_ON).outcome != "CLEAR"
