"""Properties of the engine over generated, complete and valid answer sets (hypothesis).

The strategy walks the data dictionary and answers every question, follow-ups included:
``prepare`` prunes the follow-ups that were not asked, so turning a "no" into a "yes" finds the
follow-ups it opens already answered.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from screening import questions as qd
from screening.config import ROOT
from screening.rules import evaluate, evaluate_prepared, load_rules, prepare

# Not the ``ruleset`` fixture: hypothesis prints a failing test's arguments, and the repr of a
# RuleSet is about 30 kB, which hypothesis warns about (an error under this project's
# filterwarnings), hiding the falsifying example.
RULESET = load_rules(ROOT / "rules.yaml")

TODAY = dt.date(2026, 11, 24)
OUTCOMES = ["CLEAR", "REVIEW", "DEFER", "DO_NOT_TREAT"]  # in rising severity

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

YES_NO_TYPES = (qd.YES_NO, qd.YES_NO_UNSURE)
YES_NO_IDS = [q.id for q in qd.QUESTIONS if q.type in YES_NO_TYPES]
UNSURE_IDS = [q.id for q in qd.QUESTIONS if q.type == qd.YES_NO_UNSURE]

# Date questions whose answer lies in the future (a planned last dose), or either side of today.
PLANNED = {"isotretinoin_planned_end_date", "systemic_steroid_planned_end_date"}
TEXTS = {"full_name": "Ann Example", "email": "ann@example.org", "phone": "07700 900123"}


def _lookback_days(q: qd.Question | None) -> int:
    """How far back an event answer can lie: the lookback of the gate that asks it (2 years if none)."""
    while q is not None:
        if q.lookback is not None:
            amount, unit = q.lookback
            return amount * {"days": 1, "weeks": 7, "months": 30, "years": 365}[unit]
        q = qd.BY_ID[q.asked_when["question"]] if q.asked_when else None
    return 730


def _day(offset_days: st.SearchStrategy[int], q: qd.Question) -> st.SearchStrategy[str]:
    """Dates ``offset_days`` from today, sometimes written as the month only where that is allowed."""
    days = offset_days.map(lambda n: (TODAY + dt.timedelta(days=n)).isoformat())
    if q.month_allowed:
        days = st.tuples(days, st.integers(0, 4)).map(lambda t: t[0][:7] if t[1] == 4 else t[0])
    return days


def date_strategy(q: qd.Question, gate: qd.Question | None = None) -> st.SearchStrategy[str]:
    """Realistic answers to date question ``q`` (``gate``: the question that asks a group's items)."""
    if q.id == "dob":
        days = st.dates(dt.date(1940, 1, 1), dt.date(2012, 12, 31)).map(dt.date.isoformat)
    elif q.id == "appointment_date":
        days = st.integers(0, 120).map(lambda n: (TODAY + dt.timedelta(days=n)).isoformat())
    elif q.id in PLANNED:
        days = _day(st.integers(1, 365), q)
    else:
        days = _day(st.integers(-_lookback_days(gate or q), 0), q)
    if q.unknown_allowed:
        days = st.tuples(days, st.integers(0, 5)).map(lambda t: qd.UNKNOWN if t[1] == 5 else t[0])
    return days


def _codes(q: qd.Question) -> list[str]:
    return [c for c in q.choice_codes() if c != qd.NONE]


def strategy_for(q: qd.Question, gate: qd.Question | None = None) -> st.SearchStrategy:
    """Valid answers to a question that is not yes/no (those are chosen by ``answer_sets``)."""
    if q.type == qd.SINGLE:
        return st.sampled_from(q.choice_codes())
    if q.type in (qd.MULTI, qd.AREAS):
        picks = st.lists(st.sampled_from(_codes(q)), min_size=1, max_size=4, unique=True)
        return st.one_of(st.just([qd.NONE]), picks) if qd.NONE in q.choice_codes() else picks
    if q.type == qd.DATE:
        return date_strategy(q, gate)
    if q.type == qd.TEXT:
        return st.just(TEXTS.get(q.id, "Some details."))
    if q.type == qd.GROUP:
        gate = qd.BY_ID[q.asked_when["question"]]
        item = st.fixed_dictionaries({f.id: strategy_for(f, gate) for f in q.fields})
        return st.lists(item, min_size=1, max_size=3)
    raise AssertionError(q.type)


# Built once: drawing from a ready strategy is much cheaper than building one per draw.
STRATEGIES = {q.id: strategy_for(q) for q in qd.QUESTIONS if q.type not in YES_NO_TYPES}


@st.composite
def answer_sets(draw) -> dict:
    """A complete answer set: every question of the dictionary answered, follow-ups included.

    Most yes/no answers are "no": a few drawn questions are "yes" and a few "unsure", so that
    every outcome, CLEAR included, comes up often. Optional questions are sometimes left out.
    """
    yes = draw(st.sets(st.sampled_from(YES_NO_IDS), max_size=5))
    unsure = draw(st.sets(st.sampled_from(UNSURE_IDS), max_size=2))
    answers: dict = {}
    for q in qd.QUESTIONS:
        if q.type in YES_NO_TYPES:
            answers[q.id] = "unsure" if q.id in unsure else "yes" if q.id in yes else "no"
        elif q.required or draw(st.booleans()):
            answers[q.id] = draw(STRATEGIES[q.id])
    return answers


def _rank(result) -> int:
    return OUTCOMES.index(result.outcome)


def test_generated_answer_sets_cover_every_outcome():
    """The generator is not stuck on one outcome (else the properties below prove little)."""
    seen = set()

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(answer_sets())
    def collect(answers):
        seen.add(evaluate(RULESET, answers, answered_on=TODAY).outcome)

    collect()
    assert seen == set(OUTCOMES)


@SETTINGS
@given(answers=answer_sets(), data=st.data())
def test_answering_yes_instead_of_no_never_lowers_the_outcome(answers, data):
    prepared = prepare(answers, TODAY)
    asked_no = [qid for qid in YES_NO_IDS if prepared.values.get(qid) == "no"]
    assume(asked_no)
    qid = data.draw(st.sampled_from(asked_no), label="question turned to yes")
    before = evaluate_prepared(RULESET, prepared)
    after = evaluate(RULESET, {**answers, qid: "yes"}, answered_on=TODAY)  # its follow-ups are already answered
    assert _rank(after) >= _rank(before), (qid, before.outcome, after.outcome)


@SETTINGS
@given(answers=answer_sets(), data=st.data())
def test_result_does_not_depend_on_rule_or_answer_order(answers, data):
    expected = evaluate(RULESET, answers, answered_on=TODAY).to_dict()
    rules = data.draw(st.permutations(RULESET.rules), label="rule order")
    keys = data.draw(st.permutations(list(answers)), label="answer order")
    shuffled_rules = dataclasses.replace(RULESET, rules=tuple(rules))
    shuffled_answers = {k: answers[k] for k in keys}
    assert evaluate(shuffled_rules, answers, answered_on=TODAY).to_dict() == expected
    assert evaluate(RULESET, shuffled_answers, answered_on=TODAY).to_dict() == expected
    assert evaluate(shuffled_rules, shuffled_answers, answered_on=TODAY).to_dict() == expected


@SETTINGS
@given(answers=answer_sets())
def test_an_unsure_answer_is_never_clear(answers):
    prepared = prepare(answers, TODAY)
    unsure = [qid for qid in UNSURE_IDS if prepared.values.get(qid) == "unsure"]
    result = evaluate_prepared(RULESET, prepared)
    if unsure:
        assert result.outcome != "CLEAR"


@SETTINGS
@given(answers=answer_sets(), data=st.data())
def test_each_asked_unsure_answer_reaches_the_practitioner(answers, data):
    """Answering any asked yes/no/unsure question "unsure" gives a result that is not CLEAR and names it."""
    asked = [qid for qid in UNSURE_IDS if qid in prepare(answers, TODAY).values]
    qid = data.draw(st.sampled_from(asked), label="question answered unsure")
    result = evaluate(RULESET, {**answers, qid: "unsure"}, answered_on=TODAY)
    assert result.outcome != "CLEAR"
    flags = {f.id: f for f in result.flags}
    if qid == "pregnant":
        assert flags["pregnancy"].severity == "do_not_treat"
    else:
        assert flags["unsure_answer"].because[qid] == "unsure"
