"""Answer sets for tests: a complete, clear client to start from."""

from __future__ import annotations

import datetime as dt

from screening import questions as qd

# The day the test answers were given: the day of their appointment (2026-12-01), so that nothing is left
# to confirm on the day unless a test says otherwise.
ANSWERED_ON = dt.date(2026, 12, 1)


def clear_answers(**changes) -> dict:
    """Return a complete answer set that raises no flag, with ``changes`` applied."""
    answers: dict = {}
    for q in qd.QUESTIONS:
        if q.asked_when is None and q.type in (qd.YES_NO, qd.YES_NO_UNSURE):
            answers[q.id] = "no"
    answers.update(
        full_name="Ann Example",
        dob="1990-03-27",
        email="ann@example.org",
        phone="07700 900123",
        appointment_date="2026-12-01",
        treatment_variant="standard",
        treatment_areas=["full_face"],
        topical_actives=["none"],
        fitzpatrick="type_2",
    )
    answers.update(changes)
    return answers


def answered_on_the_day(answers) -> dt.date:
    """Return the appointment day of ``answers`` (the day they count as given), or ANSWERED_ON."""
    try:
        return dt.date.fromisoformat(answers["appointment_date"])
    except (KeyError, TypeError, ValueError):
        return ANSWERED_ON


def evaluate_on_the_day(ruleset, answers):
    """Evaluate ``answers`` as if given on their appointment day (nothing left to confirm)."""
    from screening.rules import evaluate

    return evaluate(ruleset, answers, answered_on=answered_on_the_day(answers))


def prepare_on_the_day(answers):
    """Prepare ``answers`` as if given on their appointment day."""
    from screening.rules import prepare

    return prepare(answers, answered_on_the_day(answers))
