"""A course of sessions (issue 14): the clinic's record of past sessions beside the client's answers (rule 41),
the session the practitioner records at sign-off, sign-off refused for "proceed" until the day's confirmation,
and booking the next session from the sign-off page."""

from __future__ import annotations

import datetime as dt

import pytest

from screening import questions as qd
from screening.display import format_answer
from screening.rules import AnswersError, evaluate
from tests.answers import clear_answers

APPOINTMENT = dt.date(2027, 3, 31)


def run(ruleset, sessions=(), answered_on=APPOINTMENT, **changes):
    answers = clear_answers(**{"appointment_date": APPOINTMENT.isoformat(), "treatment_variant": "rf",
                               "treatment_areas": ["full_face"], **changes})
    return evaluate(ruleset, answers, answered_on=answered_on, clinic_sessions=sessions)


def session(days_before: int, variant="rf", areas=("full_face",)) -> dict:
    return {"on": APPOINTMENT - dt.timedelta(days=days_before), "variant": variant, "areas": list(areas)}


def flag(result, rule_id):
    found = [f for f in result.flags if f.id == rule_id]
    assert len(found) == 1, [f.id for f in result.flags]
    return found[0]


def listed(days_before: int, location=("full_face",)) -> dict:
    """The client's own answer: microneedled ``days_before`` the appointment."""
    return dict(microneedling_3m="yes", last_microneedling=[
        {"date": (APPOINTMENT - dt.timedelta(days=days_before)).isoformat(), "variant": "rf",
         "location": list(location)}])


# -- the engine ---------------------------------------------------------------------------------


def test_a_session_20_days_before_defers_with_the_clinic_record_shown(ruleset):
    result = run(ruleset, [session(20)], **listed(20))
    assert result.outcome == "DEFER"
    rule41 = flag(result, "recent_microneedling_in_area")
    assert rule41.lifts_on == APPOINTMENT + dt.timedelta(days=8)  # 20 days ago + 28 days
    sources = [item.get("source") for item in rule41.because["last_microneedling"]]
    assert sources == [None, "clinic"]  # the client's answer and the clinic's record, both shown
    assert "clinic_record_differs" not in {f.id for f in result.flags}  # they agree (the same day)
    assert result.to_dict()["clinic_record"] == [
        {"date": "2027-03-11", "variant": "rf", "location": ["full_face"], "source": "clinic"}]


def test_the_clinic_record_is_stricter_than_the_answer(ruleset):
    # The client says 40 days ago (lifted); the clinic recorded 10 days ago: the later date wins.
    result = run(ruleset, [session(10)], **listed(40))
    assert flag(result, "recent_microneedling_in_area").lifts_on == APPOINTMENT + dt.timedelta(days=18)
    # ...and the client's answer mentions no session within 7 days of the clinic's: shown to the practitioner.
    differs = flag(result, "clinic_record_differs")
    assert differs.severity == "review"
    assert result.contradictions == (
        "The clinic recorded RF microneedling, 21 March 2027, whole face; the client answered with no session "
        "within 7 days of it.",)


def test_the_answer_is_stricter_than_the_clinic_record(ruleset):
    # The clinic recorded 50 days ago (lifted); the client had another session elsewhere 5 days ago.
    result = run(ruleset, [session(50)], **listed(5))
    rule41 = flag(result, "recent_microneedling_in_area")
    assert rule41.lifts_on == APPOINTMENT + dt.timedelta(days=23)
    assert [i.get("source") for i in rule41.because["last_microneedling"]] == [None]  # only the item that fired
    assert {f.id for f in result.flags} >= {"clinic_record_differs"}  # 50 days ago: not within 7 days of 5


def test_a_client_who_says_no_is_contradicted_and_deferred(ruleset):
    result = run(ruleset, [session(20)])  # the client answered "no" to microneedling in the last 3 months
    assert result.outcome == "DEFER"
    assert flag(result, "recent_microneedling_in_area").lifts_on == APPOINTMENT + dt.timedelta(days=8)
    differs = flag(result, "clinic_record_differs")
    assert differs.because["microneedling_3m"] == "no"
    assert [i["source"] for i in differs.because["last_microneedling"]] == ["clinic"]
    assert result.contradictions == (
        "The clinic recorded RF microneedling, 11 March 2027, whole face; the client answered that they have had "
        "no microneedling in the last 3 months.",)
    data = result.to_dict()
    assert data["contradictions"] == list(result.contradictions)
    # How the practitioner reads it (the staff record and the PDF format the same way).
    text = format_answer(qd.BY_ID["last_microneedling"], data["flags"][-1]["because"]["last_microneedling"])
    assert text == "Clinic record: RF microneedling, 11 March 2027, Whole face"


def test_a_session_outside_the_area_defers_nothing_but_still_contradicts_no(ruleset):
    result = run(ruleset, [session(20, areas=("neck",))])
    assert "recent_microneedling_in_area" not in {f.id for f in result.flags}
    assert result.outcome == "REVIEW"
    assert flag(result, "clinic_record_differs")


def test_sessions_on_or_after_the_appointment_are_ignored(ruleset):
    result = run(ruleset, [session(0), session(-7)])
    assert result.outcome == "CLEAR"
    assert result.clinic_record == () and result.contradictions == ()


def test_a_session_after_the_answers_were_given_is_no_contradiction(ruleset):
    # Answered 25 days before; the clinic treated 20 days before the appointment: counted, not contradicted.
    result = run(ruleset, [session(20)], answered_on=APPOINTMENT - dt.timedelta(days=25))
    assert flag(result, "recent_microneedling_in_area")
    assert "clinic_record_differs" not in {f.id for f in result.flags}


def test_a_session_older_than_the_look_back_is_no_contradiction(ruleset):
    result = run(ruleset, [session(120)])
    assert result.outcome == "CLEAR" and result.contradictions == ()


def test_unsure_is_not_a_contradiction(ruleset):
    result = run(ruleset, [session(60)], microneedling_3m="unsure")
    assert "clinic_record_differs" not in {f.id for f in result.flags}


def test_a_month_answer_matches_a_session_in_that_month(ruleset):
    result = run(ruleset, [session(50)], microneedling_3m="yes", last_microneedling=[
        {"date": "2027-02", "variant": "rf", "location": ["full_face"]}])
    assert result.contradictions == ()


def test_without_clinic_sessions_the_result_is_as_before(ruleset):
    plain = evaluate(ruleset, clear_answers(), answered_on=dt.date(2026, 12, 1))
    assert plain.clinic_record == () and plain.contradictions == ()
    assert plain.to_dict()["clinic_record"] == [] and plain.to_dict()["contradictions"] == []


def test_every_variant_screened_carries_the_record_flag_once(ruleset):
    result = run(ruleset, [session(20)], treatment_variant="unknown")
    assert flag(result, "clinic_record_differs").variants == ("standard", "rf", "prp")


@pytest.mark.parametrize("bad, message", [
    ([{"on": "2027-03-01", "variant": "rf", "areas": ["cheeks"]}], "'on' must be a date"),
    ([{"on": dt.date(2027, 3, 1), "variant": "laser", "areas": ["cheeks"]}], "'variant'"),
    ([{"on": dt.date(2027, 3, 1), "variant": "rf", "areas": []}], "'areas'"),
    ([{"on": dt.date(2027, 3, 1), "variant": "rf", "areas": ["elbow"]}], "'areas'"),
    ([{"on": dt.date(2027, 3, 1), "variant": "rf", "areas": ["cheeks"], "who": "x"}], "must be an object"),
    ("2027-03-01", "must be a list"),
])
def test_bad_clinic_sessions_are_refused_by_name(ruleset, bad, message):
    with pytest.raises(AnswersError) as caught:
        run(ruleset, bad)
    assert message in str(caught.value)
