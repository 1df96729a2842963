"""Clinical specification version 2, section 0: one test (or table) per item, firing and not firing.

Default booking (tests/answers.py): appointment 2026-12-01, standard, full face; answers given on the
appointment day unless a test says otherwise.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from screening import questions as qd
from screening.rules import AnswersError, RulesError, evaluate, parse_rules
from tests.answers import clear_answers, evaluate_on_the_day
from tests.test_rules_each import (cancer_done, diabetes, injectable, item, iso, metals, microneedled, nsaid,
                                   procedure, steroid, sun, surgery, thread_lift, topical, vitiligo_active)

D = dt.date
APPOINTMENT = D(2026, 12, 1)


def run(ruleset, **changes):
    return evaluate_on_the_day(ruleset, clear_answers(**changes))


def flags_of(result, rule_id):
    return [f for f in result.flags if f.id == rule_id]


def one(result, rule_id):
    found = flags_of(result, rule_id)
    assert len(found) == 1, [(f.id, f.severity, f.possible) for f in result.flags]
    return found[0]


# ---------------------------------------------------------------------------
# Item 1: vague but truthful answers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("which", [["other"], ["not_sure"], ["other", "gold"]])
@pytest.mark.parametrize("variant", ["standard", "rf", "prp"])
def test_another_metal_or_not_sure_which_raises_metal_allergy_for_every_variant(ruleset, which, variant):
    flag = one(run(ruleset, **metals(which, variant)), "metal_allergy")
    assert flag.severity == "review" and not flag.possible
    assert "Find out which metal" in flag.action
    assert flag.because["metal_allergy_which"] == tuple(which)


# A date the client does not know makes that rule's deferral open-ended: rows 4, 5, 7, 8, 14, 22, 36, 38-42.
UNKNOWN_DATES = [
    pytest.param("isotretinoin", iso("no", isotretinoin_last_dose_date="unknown"), id="4-last-dose"),
    pytest.param("isotretinoin", iso("yes", isotretinoin_planned_end_date="unknown"), id="4-planned-end"),
    pytest.param("topical_retinoid_or_exfoliant_in_area", topical("no", topical_actives_last_date="unknown"),
                 id="5"),
    pytest.param("nsaid_elective_prp", nsaid("no", nsaid_last_dose_date="unknown"), id="7"),
    pytest.param("systemic_corticosteroid_recent_prp", steroid("no", "unknown"), id="8-last-dose"),
    pytest.param("systemic_corticosteroid_recent_prp", steroid("yes", "unknown"), id="8-planned-end"),
    pytest.param("cancer_treatment_completed_recent", cancer_done("unknown"), id="14"),
    pytest.param("vitiligo_unstable", vitiligo_active("unknown"), id="22"),
    pytest.param("sunburn_or_tanning_in_area", sun("unknown"), id="36"),
    pytest.param("recent_injectable_in_area", injectable("unknown"), id="38"),
    pytest.param("recent_superficial_procedure_in_area", procedure("waxing", "unknown"), id="39"),
    pytest.param("recent_deep_resurfacing_in_area", procedure("ablative_laser", "unknown"), id="40"),
    pytest.param("recent_microneedling_in_area", microneedled("unknown"), id="41"),
    pytest.param("recent_surgery_or_thread_lift_in_area", surgery("unknown"), id="42-surgery"),
    pytest.param("recent_surgery_or_thread_lift_in_area", thread_lift("unknown"), id="42-thread-lift"),
]


@pytest.mark.parametrize("rule_id, changes", UNKNOWN_DATES)
def test_a_date_not_known_makes_the_deferral_open_ended(ruleset, rule_id, changes):
    result = run(ruleset, **changes)
    flag = one(result, rule_id)
    assert flag.severity == "defer" and flag.open_ended and flag.lifts_on is None
    assert result.outcome == "DEFER" and result.open_ended


def test_every_date_that_feeds_a_window_offers_i_dont_know(ruleset):
    for rule in ruleset.rules:
        for source in rule.sources:
            q = qd.BY_ID[source.question] if source.question else qd.BY_ID[rule.for_each[0]].field(source.field)
            assert q.exact or (q.unknown_allowed and q.month_allowed), (rule.id, q.id)


@pytest.mark.parametrize("month, appointment, lifts", [
    pytest.param("2028-02", D(2028, 3, 13), D(2028, 3, 14), id="29-february-leap-year"),
    pytest.param("2027-02", D(2027, 3, 13), D(2027, 3, 14), id="28-february"),
    pytest.param("2026-11", D(2026, 12, 13), D(2026, 12, 14), id="30-november"),
    pytest.param("2026-10", D(2026, 11, 13), D(2026, 11, 14), id="31-october"),
])
def test_a_month_only_date_counts_as_the_last_day_of_the_month(ruleset, month, appointment, lifts):
    # Sunburn in the given month: last day + 14 days. Deferred the day before, clear on the day.
    deferred = run(ruleset, appointment_date=appointment.isoformat(), **sun(month))
    assert one(deferred, "sunburn_or_tanning_in_area").lifts_on == lifts
    clear = run(ruleset, appointment_date=lifts.isoformat(), **sun(month))
    assert clear.outcome == "CLEAR"


LOCATION_QUESTIONS = [q for q in qd.QUESTIONS if q.type == qd.AREAS and q.id != "treatment_areas"]


def _located_answers(q: qd.Question, location: list[str], variant="rf") -> dict:
    parent = q.asked_when["question"]
    return clear_answers(treatment_variant=variant, **{parent: "yes", q.id: location})


@pytest.mark.parametrize("q", [q for q in LOCATION_QUESTIONS if q.id != "topical_actives_location"],
                         ids=lambda q: q.id)
def test_somewhere_else_never_makes_an_in_area_rule_vanish(ruleset, q):
    answers = _located_answers(q, ["elsewhere"])
    if q.id == "sun_exposure_location":
        answers["sun_exposure_date"] = "2026-11-28"
    result = evaluate_on_the_day(ruleset, answers)
    possible = [f for f in result.flags if q.id in f.because]
    assert possible, f"{q.id}: somewhere else gave {[f.id for f in result.flags]}"
    for f in possible:
        assert f.possible and f.severity == "review" and f.title.startswith("Possible: ")
        assert f.because[q.id] == ("elsewhere",)
        assert "Ask the client" in f.action


def test_somewhere_else_with_a_matching_place_fires_the_rule_itself(ruleset):
    result = evaluate_on_the_day(ruleset, _located_answers(qd.BY_ID["open_wound_location"], ["cheeks", "elsewhere"]))
    flag = one(result, "open_wound_in_area")
    assert flag.severity == "defer" and not flag.possible


def test_somewhere_else_does_not_flag_what_cannot_apply(ruleset):
    # Metal somewhere on the body matters for RF only: standard microneedling is clear.
    answers = _located_answers(qd.BY_ID["metal_implants_location"], ["elsewhere"], variant="standard")
    assert evaluate_on_the_day(ruleset, answers).outcome == "CLEAR"
    # A window that has ended is gone whatever the place.
    assert run(ruleset, **surgery("2025-01-10", ["elsewhere"], type="excision")).outcome == "CLEAR"


@pytest.mark.parametrize("place, booked", [
    ("eyelids", ["full_face"]), ("eyelids", ["periorbital"]), ("ears", ["cheeks"]), ("hairline", ["forehead"]),
])
def test_places_next_to_treatable_areas_overlap_them(ruleset, place, booked):
    result = run(ruleset, treatment_areas=booked, open_wound="yes", open_wound_location=[place])
    assert one(result, "open_wound_in_area").severity == "defer"


@pytest.mark.parametrize("place", ["lower_legs", "feet", "genitals", "hands", "breasts_chest_wall"])
def test_places_away_from_the_face_do_not_overlap_a_face_booking(ruleset, place):
    assert run(ruleset, open_wound="yes", open_wound_location=[place]).outcome == "CLEAR"


FACIAL_BY_NATURE = ["facelift", "brow_lift", "blepharoplasty", "rhinoplasty", "facial_implant_or_fat_transfer",
                    "other_facial_surgery"]


@pytest.mark.parametrize("type", FACIAL_BY_NATURE)
@pytest.mark.parametrize("variant, lifts", [("rf", D(2027, 9, 1)), ("standard", D(2027, 3, 1)),
                                            ("prp", D(2027, 3, 1))])
def test_surgery_facial_by_nature_counts_for_every_facial_booking(ruleset, type, variant, lifts):
    # The eyelid-surgery client of the issue: three months ago, ticked a place away from the booked area.
    for where in (["elsewhere"], ["neck"], ["back"]):
        result = run(ruleset, **surgery("2026-09-01", where, variant, type=type, treatment_areas=["cheeks"]))
        flag = one(result, "recent_surgery_or_thread_lift_in_area")
        assert (flag.severity, flag.lifts_on, flag.possible) == ("defer", lifts, False), (type, where)


def test_a_facial_thread_lift_counts_for_every_facial_booking_with_rf_12_months(ruleset):
    result = run(ruleset, **thread_lift("2026-09-01", ["neck"], "rf", treatment_areas=["chin_jawline"]))
    assert one(result, "recent_surgery_or_thread_lift_in_area").lifts_on == D(2027, 9, 1)
    result = run(ruleset, **thread_lift("2026-09-01", ["neck"], "rf", type="neck_thread_lift",
                                        treatment_areas=["chin_jawline"]))
    assert result.outcome == "CLEAR"


def test_a_face_or_neck_lift_also_overlaps_the_neck(ruleset):
    # Neck only booked: not facial, so the 6 months of the body, also for RF.
    result = run(ruleset, **surgery("2026-09-01", ["elsewhere"], "rf", type="facelift", treatment_areas=["neck"]))
    assert one(result, "recent_surgery_or_thread_lift_in_area").lifts_on == D(2027, 3, 1)
    result = run(ruleset, **surgery("2026-09-01", ["back"], "rf", type="blepharoplasty", treatment_areas=["neck"]))
    assert result.outcome == "CLEAR"


def test_surgery_not_on_the_face_counts_only_where_it_was(ruleset):
    assert run(ruleset, **surgery("2026-09-01", ["abdomen"], type="caesarean")).outcome == "CLEAR"
    assert run(ruleset, **surgery("2026-09-01", ["abdomen"], type="other")).outcome == "CLEAR"


def test_diabetes_control_not_known_is_never_reported_as_controlled(ruleset):
    result = run(ruleset, **diabetes("not_sure"))
    controlled = one(result, "diabetes_controlled")
    assert "does not know" in controlled.reason and "reported as controlled" not in controlled.reason
    assert controlled.because["diabetes_control"] == "not_sure"
    uncontrolled = one(result, "diabetes_uncontrolled")
    assert uncontrolled.possible and uncontrolled.severity == "review"
    assert uncontrolled.because == {"diabetes_control": "not_sure"}
    assert result.outcome == "REVIEW"


def test_a_procedure_the_client_cannot_name_takes_the_longer_window(ruleset):
    result = run(ruleset, **procedure("other", "2026-10-15", variant="rf"))
    assert one(result, "recent_deep_resurfacing_in_area").lifts_on == D(2027, 1, 15)


# ---------------------------------------------------------------------------
# Item 2: still taking a medicine counts from the planned last dose
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("changes, rule_id, lifts", [
    pytest.param(iso("yes", isotretinoin_planned_end_date="2026-12-31"), "isotretinoin", D(2027, 7, 1),
                 id="isotretinoin-31-dec-plus-6-months"),
    pytest.param(iso("yes", isotretinoin_planned_end_date="2027-08-31"), "isotretinoin", D(2028, 3, 1),
                 id="isotretinoin-31-aug-plus-6-months-is-1-mar-leap"),
    pytest.param(iso("yes", isotretinoin_planned_end_date="2026-12"), "isotretinoin", D(2027, 7, 1),
                 id="isotretinoin-month-only"),
    pytest.param(steroid("yes", "2027-01-31"), "systemic_corticosteroid_recent_prp", D(2027, 2, 14),
                 id="steroid-planned-end-plus-14-days"),
    pytest.param(steroid("yes", "2028-02-29"), "systemic_corticosteroid_recent_prp", D(2028, 3, 14),
                 id="steroid-planned-end-29-february"),
])
def test_a_course_still_being_taken_counts_from_its_planned_last_dose(ruleset, changes, rule_id, lifts):
    flag = one(run(ruleset, **changes), rule_id)
    assert flag.lifts_on == lifts and not flag.open_ended


@pytest.mark.parametrize("changes, rule_id", [
    pytest.param(dict(isotretinoin_last_12m="yes", isotretinoin_current="unsure"), "isotretinoin", id="iso"),
    pytest.param(dict(treatment_variant="prp", systemic_steroid_last_14d="yes", systemic_steroid_current="unsure"),
                 "systemic_corticosteroid_recent_prp", id="steroid"),
])
def test_not_sure_whether_still_taking_is_open_ended(ruleset, changes, rule_id):
    flag = one(run(ruleset, **changes), rule_id)
    assert flag.open_ended


def test_the_steroid_questions_ask_for_the_last_dose_or_the_planned_last_dose():
    last, planned = qd.BY_ID["systemic_steroid_last_dose_date"], qd.BY_ID["systemic_steroid_planned_end_date"]
    assert last.asked_when["value"] == "no" and last.dates == "past" and last.unknown_allowed
    assert planned.asked_when["value"] == "yes" and planned.dates == "future" and planned.unknown_allowed
    assert "planned" in planned.hint.lower() or "prescriber" in planned.hint.lower()
    assert "systemic_steroid_last_or_planned_end_date" not in qd.BY_ID


# ---------------------------------------------------------------------------
# Item 3: implausible answers are refused
# ---------------------------------------------------------------------------

IMPLAUSIBLE = [
    pytest.param(iso("yes", isotretinoin_planned_end_date="2026-11-30"), "isotretinoin_planned_end_date",
                 "course is still being taken", id="isotretinoin-planned-end-past"),
    pytest.param(steroid("yes", "2026-11"), "systemic_steroid_planned_end_date", "course is still being taken",
                 id="steroid-planned-end-month-past"),
    pytest.param(iso("no", isotretinoin_last_dose_date="2026-12-02"), "isotretinoin_last_dose_date",
                 "after the appointment", id="last-dose-after-appointment"),
    pytest.param(injectable("2026-12-02"), "injectables", "after the appointment", id="injection-after-appointment"),
    pytest.param(procedure("waxing", "2027-01"), "recent_procedures", "after the appointment",
                 id="procedure-month-after-appointment"),
    pytest.param(dict(dob="1990-03-27", **surgery("1990-03-26")), "surgery", "before the date of birth",
                 id="surgery-day-before-birth"),
    pytest.param(dict(dob="1990-03-27", **cancer_done("1990-02")), "cancer_treatment_end_date",
                 "before the date of birth", id="month-before-birth-month"),
]


@pytest.mark.parametrize("changes, qid, words", IMPLAUSIBLE)
def test_implausible_answers_are_refused_naming_them(ruleset, changes, qid, words):
    with pytest.raises(AnswersError) as info:
        run(ruleset, **changes)
    assert qid in info.value.questions
    assert any(qid in p and words in p for p in info.value.problems), info.value.problems


def test_an_appointment_before_the_day_of_answering_is_refused(ruleset):
    with pytest.raises(AnswersError) as info:
        evaluate(ruleset, clear_answers(), answered_on=D(2026, 12, 2))
    assert "appointment_date" in info.value.questions
    assert "before the day the answers were given" in str(info.value)


@pytest.mark.parametrize("changes", [
    pytest.param(iso("yes", isotretinoin_planned_end_date="2026-12-01"), id="planned-end-today"),
    pytest.param(iso("yes", isotretinoin_planned_end_date="2026-12"), id="planned-end-this-month"),
    pytest.param(injectable("2026-12-01"), id="injection-on-the-day-of-answering"),
    pytest.param(dict(dob="1990-03-27", **cancer_done("1990-03")), id="month-of-birth"),
])
def test_dates_at_the_edge_are_plausible(ruleset, changes):
    run(ruleset, **changes)  # no AnswersError


def test_a_past_event_after_the_day_of_answering_is_refused(ruleset):
    answers = clear_answers(**injectable("2026-11-28"))
    with pytest.raises(AnswersError, match="after the day the answers were given"):
        evaluate(ruleset, answers, answered_on=D(2026, 11, 20))


# ---------------------------------------------------------------------------
# Item 4: answers know their date
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("days_before, listed, out_of_date", [(0, False, False), (1, True, False),
                                                             (28, True, False), (29, True, True)])
def test_to_confirm_on_the_day_and_out_of_date(ruleset, days_before, listed, out_of_date):
    answers = clear_answers(**sun("2026-11"), open_wound="no")
    answered_on = APPOINTMENT - dt.timedelta(days=days_before)
    answers["sun_exposure_date"] = "unknown"
    result = evaluate(ruleset, answers, answered_on=answered_on)
    assert result.answered_on == answered_on and result.out_of_date is out_of_date
    confirm = {c["question"]: c for c in result.to_confirm_on_the_day}
    if not listed:
        assert confirm == {}
        return
    # Every question about now or the last 28 days or less that was asked, with its wording and answer.
    assert confirm["pregnant"]["wording"] == qd.BY_ID["pregnant"].label and confirm["pregnant"]["answer"] == "no"
    assert confirm["sun_exposure_14d"]["answer"] == "yes"
    assert confirm["sun_exposure_location"]["answer"] == ("full_face",)
    assert {"unwell_today", "cold_sore_now", "open_wound", "topical_actives", "nsaid_last_7d"} <= set(confirm)
    # Lasting facts are not listed; nor are questions that were not asked.
    assert not {"keloid_history", "dob", "diabetes", "metal_implants", "nsaid_still_taking"} & set(confirm)
    as_json = result.to_dict()
    assert as_json["answered_on"] == answered_on.isoformat() and as_json["out_of_date"] is out_of_date
    assert as_json["to_confirm_on_the_day"][0] == {"question": "pregnant", "wording": qd.BY_ID["pregnant"].label,
                                                    "answer": "no"}


def test_the_validity_is_a_setting_in_rules_yaml():
    text = (qd.ARCHIVE.parent.parent / "rules.yaml").read_text(encoding="utf-8")
    assert "valid_for: {days: 28}" in text
    shorter = parse_rules(text.replace("valid_for: {days: 28}", "valid_for: {days: 7}").encode())
    answers = clear_answers()
    assert evaluate(shorter, answers, answered_on=D(2026, 11, 23)).out_of_date is True
    assert evaluate(shorter, answers, answered_on=D(2026, 11, 24)).out_of_date is False
    with pytest.raises(RulesError, match="valid_for"):
        parse_rules(text.replace("valid_for: {days: 28}", "valid_for: {days: -1}").encode())


# ---------------------------------------------------------------------------
# Items 5 and 6: wording of rows 13 and 25
# ---------------------------------------------------------------------------


def test_row_13_asks_without_a_localised_skin_cancer():
    for qid in ("cancer_active_untreated", "cancer_treatment_current_or_planned"):
        hint = qd.BY_ID[qid].hint
        assert "basal cell or squamous cell" in hint and "not spread" in hint, qid
    assert "wherever it is" in qd.BY_ID["cancer_active_untreated"].hint


def test_a_localised_skin_cancer_answered_truthfully_is_row_35_not_row_13(ruleset):
    # The client with a basal cell carcinoma on the cheek answers "no" to row 13's questions, as the hint says.
    result = run(ruleset, skin_cancer_or_lesion="yes", skin_cancer_or_lesion_location=["cheeks"])
    assert {f.id for f in result.flags} == {"skin_cancer_or_suspicious_lesion_in_area"}
    result = run(ruleset, skin_cancer_or_lesion="yes", skin_cancer_or_lesion_location=["back"])
    assert result.outcome == "CLEAR"


def test_row_25_does_not_count_long_term_hiv_hepatitis_or_cold_sore_prevention():
    q = qd.BY_ID["systemic_infection_treatment"]
    assert "infection you have at the moment" in q.label
    for words in ("HIV", "hepatitis", "prevent cold sores"):
        assert words in q.hint


def test_a_client_on_long_term_hiv_medicines_gets_review_never_an_open_ended_deferral(ruleset):
    result = run(ruleset, blood_borne_virus="yes", systemic_infection_treatment="no")
    assert result.outcome == "REVIEW" and not result.open_ended
    result = run(ruleset, cold_sore_history="yes", systemic_infection_treatment="no")
    assert result.outcome == "REVIEW"


# ---------------------------------------------------------------------------
# Items 7 and 8: actions fit the answer; only the answers that raised it
# ---------------------------------------------------------------------------


def test_pregnancy_not_sure_asks_to_confirm_pregnancy_status(ruleset):
    unsure = one(run(ruleset, pregnant="unsure"), "pregnancy")
    assert "pregnancy test" in unsure.action and not unsure.action.startswith("Do not treat; re-screen after")
    assert "not sure" in unsure.reason
    yes = one(run(ruleset, pregnant="yes"), "pregnancy")
    assert yes.action == "Do not treat; re-screen after delivery."


@pytest.mark.parametrize("changes, rule_id, because", [
    pytest.param(dict(treatment_variant="prp", anaemia="yes"), "blood_draw_concern_prp",
                 {"anaemia": "yes", "treatment_variant": "prp"}, id="one-branch-of-four"),
    pytest.param(dict(anticoagulants="yes"), "anticoagulant_or_antiplatelet", {"anticoagulants": "yes"},
                 id="anticoagulant-not-antiplatelet-no"),
    pytest.param(dict(anticoagulants="yes", antiplatelets="yes"), "anticoagulant_or_antiplatelet",
                 {"anticoagulants": "yes", "antiplatelets": "yes"}, id="both-branches"),
    pytest.param(diabetes(), "diabetes_controlled", {"diabetes_control": "well_controlled"},
                 id="not-the-no-answers-under-not"),
    pytest.param(dict(poor_wound_healing="yes"), "hypertrophic_scar_history", {"poor_wound_healing": "yes"},
                 id="row-24-one-branch"),
    pytest.param(dict(open_wound="yes", open_wound_location=["nose"]), "open_wound_in_area",
                 {"open_wound_location": ("nose",), "treatment_areas": ("full_face",)}, id="booking-facts"),
    pytest.param(dict(anticoagulants="unsure", cold_sore_now="unsure"), "unsure_answer",
                 {"anticoagulants": "unsure", "cold_sore_now": "unsure"}, id="unsure-names-each"),
])
def test_answers_that_raised_it_are_only_those_that_made_it_fire(ruleset, changes, rule_id, because):
    assert dict(one(run(ruleset, **changes), rule_id).because) == because


def test_no_flag_ever_lists_a_no_answer(ruleset):
    from tests.test_rules_each import FIRE_CASES

    for param in FIRE_CASES:
        _rule, changes, _sev, _lifts = param.values
        for flag in run(ruleset, **changes).flags:
            for qid, value in flag.because.items():
                assert value != "no", (param.id, flag.id, qid)


# ---------------------------------------------------------------------------
# Item 9: the outcome for each variant
# ---------------------------------------------------------------------------


def test_unknown_variant_gives_the_outcome_for_each_variant(ruleset):
    result = run(ruleset, treatment_variant="unknown", permanent_filler="yes", permanent_filler_location=["cheeks"])
    assert result.outcome == "DO_NOT_TREAT"
    assert dict(result.by_variant) == {"standard": "REVIEW", "rf": "DO_NOT_TREAT", "prp": "REVIEW"}
    assert result.to_dict()["by_variant"] == {"standard": "REVIEW", "rf": "DO_NOT_TREAT", "prp": "REVIEW"}


def test_unknown_variant_by_variant_with_a_prp_deferral(ruleset):
    result = run(ruleset, treatment_variant="unknown", **{k: v for k, v in nsaid("yes").items()
                                                          if k != "treatment_variant"})
    assert dict(result.by_variant) == {"standard": "CLEAR", "rf": "CLEAR", "prp": "DEFER"}


@pytest.mark.parametrize("variant", ["standard", "rf", "prp"])
def test_known_variant_has_one_entry(ruleset, variant):
    assert dict(run(ruleset, treatment_variant=variant).by_variant) == {variant: "CLEAR"}


# ---------------------------------------------------------------------------
# Item 10: row 24 covers slow wound healing
# ---------------------------------------------------------------------------


def test_row_24_covers_a_diabetic_ulcer_that_is_slow_to_heal(ruleset):
    result = run(ruleset, **diabetes(wound="yes"))
    assert {"hypertrophic_scar_history", "diabetes_uncontrolled"} <= {f.id for f in result.flags}
    assert "ulcer" in qd.BY_ID["poor_wound_healing"].label


# ---------------------------------------------------------------------------
# check-rules: a window fed only by a guess is refused
# ---------------------------------------------------------------------------


def test_a_window_fed_by_a_date_without_i_dont_know_is_a_load_error(monkeypatch):
    text = (qd.ARCHIVE.parent.parent / "rules.yaml").read_bytes()
    parse_rules(text)  # fine as shipped
    guessed = dataclasses.replace(qd.BY_ID["sun_exposure_date"], unknown_allowed=False)
    monkeypatch.setitem(qd.BY_ID, "sun_exposure_date", guessed)
    with pytest.raises(RulesError) as info:
        parse_rules(text)
    problems = [p for p in info.value.problems if p.rule_id == "sunburn_or_tanning_in_area"]
    assert problems and "sun_exposure_date" in problems[0].message and "I don't know" in problems[0].message


def test_the_property_cases_of_the_issue_by_hand(ruleset):
    # The eyelid-surgery client: three months ago, "somewhere else", RF on the full face.
    result = run(ruleset, treatment_variant="rf", surgery_2y="yes",
                 surgery=[item("2026-09-01", ["elsewhere"], "blepharoplasty")])
    assert result.outcome == "DEFER" and result.earliest_date == D(2027, 9, 1)
