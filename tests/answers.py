"""Answer sets for tests: a complete, clear client to start from."""

from __future__ import annotations

import datetime as dt

from screening import questions as qd

# The day the test answers were given: a few days before their appointment (2026-12-01).
ANSWERED_ON = dt.date(2026, 11, 25)


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
