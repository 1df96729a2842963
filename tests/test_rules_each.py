"""One fire case and at least one near miss for every rule in the shipped rules.yaml,
plus the combination, date, variant, "unsure" and incomplete-answer conventions of the
clinical specification (shared/clinical/contraindications.md, sections 1-4).

The default booking (tests/answers.py) is: appointment 2026-12-01, variant standard,
areas full_face. Dates below are chosen one day either side of a window's end.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
import yaml

from screening import questions as qd
from screening.config import ROOT
from screening.rules import AnswersError, add_months
from tests.answers import clear_answers, evaluate_on_the_day, prepare_on_the_day

D = dt.date


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def run(ruleset, **changes):
    return evaluate_on_the_day(ruleset, clear_answers(**changes))


def ids(result) -> set[str]:
    return {f.id for f in result.flags}


def only_flag(result, rule_id):
    """Return the one flag ``rule_id`` raised (failing if it raised none or several)."""
    found = [f for f in result.flags if f.id == rule_id]
    assert len(found) == 1, f"expected one {rule_id} flag, got {[(f.id, f.severity, f.variants) for f in found]}"
    return found[0]


def item(date, location, type=None, **extra) -> dict:
    out = {"date": date, "location": list(location)}
    if type is not None:
        out["type"] = type
    out.update(extra)
    return out


def iso(current, **kw) -> dict:
    return dict(isotretinoin_last_12m="yes", isotretinoin_current=current, **kw)


def topical(still_using, location=("cheeks",), actives=("retinol",), **kw) -> dict:
    return dict(topical_actives=list(actives), topical_actives_location=list(location),
                topical_actives_still_using=still_using, **kw)


def nsaid(still, **kw) -> dict:
    return dict(treatment_variant=kw.pop("variant", "prp"), nsaid_last_7d="yes", nsaid_still_taking=still, **kw)


def steroid(current, date, variant="prp") -> dict:
    key = "systemic_steroid_planned_end_date" if current == "yes" else "systemic_steroid_last_dose_date"
    return dict(treatment_variant=variant, systemic_steroid_last_14d="yes", systemic_steroid_current=current,
                **{key: date})


def cancer_done(date, **kw) -> dict:
    return dict(cancer_treatment_last_12m="yes", cancer_treatment_end_date=date, **kw)


def vitiligo_active(date) -> dict:
    return dict(vitiligo="yes", vitiligo_active_12m="yes", vitiligo_last_activity_date=date)


def diabetes(control="well_controlled", wound="no", admission="no") -> dict:
    return dict(diabetes="yes", diabetes_control=control, non_healing_wound=wound, diabetes_admission_6m=admission)


def located(question, location, areas=None, variant=None) -> dict:
    """Answer yes to ``question`` with its ``<question>_location`` (and optionally a booking)."""
    special = {"radiotherapy_ever": "radiotherapy_sites", "skin_infection_now": "skin_infection_location",
               "rash_or_eczema_now": "rash_or_eczema_location"}
    loc_id = special.get(question, f"{question}_location")
    assert loc_id in qd.BY_ID and qd.BY_ID[loc_id].asked_when["question"] == question
    out = {question: "yes", loc_id: list(location)}
    if areas is not None:
        out["treatment_areas"] = list(areas)
    if variant is not None:
        out["treatment_variant"] = variant
    return out


def sun(date, location=("full_face",)) -> dict:
    return dict(sun_exposure_14d="yes", sun_exposure_date=date, sun_exposure_location=list(location))


def injectable(date, location=("forehead",), type="botulinum_toxin", **kw) -> dict:
    return dict(injectables_12m="yes", injectables=[item(date, location, type)], **kw)


def with_variant(answers: dict, variant) -> dict:
    if variant is not None:
        answers["treatment_variant"] = variant
    return answers


def procedure(type, date, location=("cheeks",), variant=None, **kw) -> dict:
    return with_variant(dict(procedures_12m="yes", recent_procedures=[item(date, location, type)], **kw), variant)


def microneedled(date, location=("cheeks",), **kw) -> dict:
    return dict(microneedling_3m="yes", last_microneedling=[item(date, location, variant="rf")], **kw)


def surgery(date, location=("cheeks",), variant=None, type="facelift", **kw) -> dict:
    return with_variant(dict(surgery_2y="yes", surgery=[item(date, location, type)], **kw), variant)


def thread_lift(date, location=("cheeks",), variant=None, type="facial_thread_lift", **kw) -> dict:
    return with_variant(dict(thread_lift_2y="yes", thread_lift=[item(date, location, type)], **kw), variant)


def metals(which, variant=None) -> dict:
    return with_variant(dict(metal_allergy="yes", metal_allergy_which=list(which)), variant)


# ---------------------------------------------------------------------------
# 1. Every rule fires ...
# ---------------------------------------------------------------------------

DNT, DEFER, REVIEW = "do_not_treat", "defer", "review"
OPEN = "open"  # expected lifts_on for an open-ended deferral


def fire(rule_id, changes, severity, lifts=None, id=None):
    return pytest.param(rule_id, changes, severity, lifts, id=id or rule_id)


FIRE_CASES = [
    fire("age_under_18", dict(dob="2008-12-02"), DEFER, D(2026, 12, 2), "age-17-turns-18-day-after-appt"),
    fire("pregnancy", dict(pregnant="yes"), DNT, id="pregnant-yes"),
    fire("pregnancy", dict(pregnant="unsure"), DNT, id="pregnant-unsure-counts-as-yes"),
    fire("breastfeeding", dict(breastfeeding="yes"), REVIEW),
    fire("isotretinoin", iso("no", isotretinoin_last_dose_date="2026-06-02"), DEFER, D(2026, 12, 2),
         "isotretinoin-last-dose-6m-ends-day-after-appt"),
    fire("isotretinoin", iso("no", isotretinoin_last_dose_date="2026-06"), DEFER, D(2026, 12, 30),
         "isotretinoin-last-dose-month-only-uses-last-day"),
    fire("isotretinoin", iso("yes", isotretinoin_planned_end_date="2026-12-31"), DEFER, D(2027, 7, 1),
         "isotretinoin-current-planned-end-31dec-plus-6m-is-1jul"),
    fire("isotretinoin", iso("yes", isotretinoin_planned_end_date="unknown"), DEFER, OPEN,
         "isotretinoin-current-end-unknown-open-ended"),
    fire("isotretinoin", iso("unsure"), DEFER, OPEN, "isotretinoin-current-unsure-open-ended"),
    fire("topical_retinoid_or_exfoliant_in_area", topical("no", topical_actives_last_date="2026-11-25"),
         DEFER, D(2026, 12, 2), "topical-last-use-7d-ends-day-after-appt"),
    fire("topical_retinoid_or_exfoliant_in_area", topical("yes"), DEFER, D(2026, 12, 8),
         "topical-still-using-counts-from-appt"),
    fire("topical_retinoid_or_exfoliant_in_area",
         topical("yes", location=("nose",), actives=("prescription_retinoid", "benzoyl_peroxide")),
         DEFER, D(2026, 12, 8), "topical-rx-retinoid-on-nose-full-face-booked"),
    fire("topical_retinoid_or_exfoliant_in_area",
         topical("yes", location=("full_face",), actives=("acid_exfoliant",), treatment_areas=["chin_jawline"]),
         DEFER, D(2026, 12, 8), "topical-full-face-location-overlaps-chin-booking"),
    fire("anticoagulant_or_antiplatelet", dict(anticoagulants="yes"), REVIEW, id="anticoagulant"),
    fire("anticoagulant_or_antiplatelet", dict(antiplatelets="yes"), REVIEW, id="antiplatelet"),
    fire("nsaid_elective_prp", nsaid("no", nsaid_last_dose_date="2026-11-25"), DEFER, D(2026, 12, 2),
         "nsaid-prp-last-dose-7d-ends-day-after-appt"),
    fire("nsaid_elective_prp", nsaid("yes"), DEFER, D(2026, 12, 8), "nsaid-prp-still-taking-counts-from-appt"),
    fire("systemic_corticosteroid_recent_prp", steroid("no", "2026-11-18"), DEFER, D(2026, 12, 2),
         "steroid-prp-last-dose-14d-ends-day-after-appt"),
    fire("systemic_corticosteroid_recent_prp", steroid("yes", "2026-12-10"), DEFER, D(2026, 12, 24),
         "steroid-prp-current-planned-end"),
    fire("systemic_corticosteroid_recent_prp", steroid("yes", "unknown"), DEFER, OPEN,
         "steroid-prp-long-term-no-end-open-ended"),
    fire("immunosuppression", dict(immunosuppressive_meds="yes"), REVIEW, id="immunosuppressive-meds"),
    fire("immunosuppression", dict(immunosuppressive_condition="yes"), REVIEW, id="immunosuppressive-condition"),
    fire("bleeding_disorder", dict(bleeding_disorder="yes"), DNT),
    fire("blood_draw_concern_prp", dict(treatment_variant="prp", fainting_with_blood_tests="yes"), REVIEW,
         id="blood-draw-prp-fainting"),
    fire("blood_draw_concern_prp", dict(treatment_variant="prp", anaemia="yes"), REVIEW, id="blood-draw-prp-anaemia"),
    fire("blood_draw_concern_prp", dict(treatment_variant="prp", low_blood_pressure="yes"), REVIEW,
         id="blood-draw-prp-low-bp"),
    fire("blood_draw_concern_prp", dict(treatment_variant="prp", difficult_venous_access="yes"), REVIEW,
         id="blood-draw-prp-difficult-veins"),
    fire("blood_borne_virus", dict(blood_borne_virus="yes"), REVIEW, id="blood-borne-virus-is-review-not-refusal"),
    fire("active_cancer_treatment", dict(cancer_treatment_current_or_planned="yes"), DNT,
         id="cancer-treatment-current-or-planned"),
    fire("active_cancer_treatment", dict(cancer_active_untreated="yes"), DNT, id="cancer-active-untreated"),
    fire("cancer_treatment_completed_recent", cancer_done("2026-06-02"), DEFER, D(2026, 12, 2),
         "cancer-treatment-ended-6m-ends-day-after-appt"),
    fire("cancer_treatment_completed_recent", cancer_done("2026-06"), DEFER, D(2026, 12, 30),
         "cancer-treatment-ended-month-only-uses-last-day"),
    fire("cancer_history_prp", dict(treatment_variant="prp", cancer_history="yes"), REVIEW),
    fire("radiotherapy_to_area", located("radiotherapy_ever", ["nose"]), REVIEW, id="radiotherapy-nose-full-face"),
    fire("diabetes_controlled", diabetes(), REVIEW, id="diabetes-well-controlled"),
    fire("diabetes_controlled", diabetes("not_sure"), REVIEW, id="diabetes-control-not-sure"),
    fire("diabetes_uncontrolled", diabetes("poorly_controlled"), DNT, id="diabetes-poorly-controlled"),
    fire("diabetes_uncontrolled", diabetes(wound="yes"), DNT, id="diabetes-non-healing-wound"),
    fire("diabetes_uncontrolled", diabetes(admission="yes"), DNT, id="diabetes-admission-6m"),
    fire("scleroderma_or_morphoea", dict(scleroderma_or_morphoea="yes"), DNT),
    fire("autoimmune_connective_tissue_disease", dict(autoimmune_ctd="yes"), REVIEW),
    fire("koebner_prone_dermatosis", dict(psoriasis="yes"), REVIEW, id="koebner-psoriasis"),
    fire("koebner_prone_dermatosis", dict(lichen_planus="yes"), REVIEW, id="koebner-lichen-planus"),
    fire("koebner_prone_dermatosis", dict(vitiligo="yes", vitiligo_active_12m="no"), REVIEW, id="koebner-vitiligo"),
    fire("vitiligo_unstable", vitiligo_active("2025-12-02"), DEFER, D(2026, 12, 2),
         "vitiligo-active-12m-ends-day-after-appt"),
    fire("vitiligo_unstable", vitiligo_active("unknown"), DEFER, OPEN, "vitiligo-active-date-unknown-open-ended"),
    fire("keloid_history", dict(keloid_history="yes"), DNT),
    fire("hypertrophic_scar_history", dict(hypertrophic_scar_history="yes"), REVIEW, id="hypertrophic-scars"),
    fire("hypertrophic_scar_history", dict(poor_wound_healing="yes"), REVIEW, id="poor-wound-healing"),
    fire("acute_illness_or_fever", dict(unwell_today="yes"), DEFER, OPEN, "unwell-today-open-ended"),
    fire("acute_illness_or_fever", dict(systemic_infection_treatment="yes"), DEFER, OPEN,
         "on-antibiotics-open-ended"),
    fire("implanted_electronic_device", dict(treatment_variant="rf", implanted_device="yes"), DNT,
         id="implanted-device-rf"),
    fire("metal_implant_in_area", located("metal_implants", ["chin_jawline"], variant="rf"), DNT,
         id="metal-implant-rf-jaw-full-face"),
    fire("metal_implant_in_area", located("gold_threads", ["cheeks"], variant="rf"), DNT, id="gold-threads-rf"),
    fire("metal_implant_in_area", located("fixed_piercings", ["nose"], variant="rf"), DNT,
         id="fixed-piercing-rf-nose-full-face"),
    fire("permanent_filler_or_implant_in_area", located("permanent_filler", ["cheeks"], variant="rf"), DNT,
         id="permanent-filler-rf-do-not-treat"),
    fire("permanent_filler_or_implant_in_area", located("permanent_filler", ["cheeks"]), REVIEW,
         id="permanent-filler-standard-review"),
    fire("permanent_filler_or_implant_in_area", located("permanent_filler", ["cheeks"], variant="prp"), REVIEW,
         id="permanent-filler-prp-review"),
    fire("permanent_filler_or_implant_in_area", located("facial_implant", ["chin_jawline"], variant="rf"), DNT,
         id="facial-implant-rf-do-not-treat"),
    fire("herpes_simplex_active", dict(cold_sore_now="yes"), DEFER, OPEN, "cold-sore-now-full-face"),
    fire("herpes_simplex_active", dict(cold_sore_now="yes", treatment_areas=["neck", "forehead"]), DEFER, OPEN,
         "cold-sore-now-any-facial-area-booked"),
    fire("herpes_simplex_history", dict(cold_sore_history="yes"), REVIEW, id="cold-sore-history-full-face"),
    fire("active_skin_infection_in_area", located("skin_infection_now", ["nose"]), DEFER, OPEN,
         "skin-infection-nose-full-face"),
    fire("open_wound_in_area", located("open_wound", ["perioral"]), DEFER, OPEN, "open-wound-perioral-full-face"),
    fire("inflammatory_dermatosis_flare_in_area", located("rash_or_eczema_now", ["periorbital"]), DEFER, OPEN,
         "eczema-periorbital-full-face"),
    fire("active_acne_or_rosacea_in_area", located("acne_active", ["cheeks"]), REVIEW, id="acne-cheeks"),
    fire("active_acne_or_rosacea_in_area", located("rosacea_active", ["nose"]), REVIEW, id="rosacea-nose"),
    fire("skin_cancer_or_suspicious_lesion_in_area", located("skin_cancer_or_lesion", ["forehead"]), DNT,
         id="lesion-forehead-full-face"),
    fire("sunburn_or_tanning_in_area", sun("2026-11-18"), DEFER, D(2026, 12, 2), "sun-14d-ends-day-after-appt"),
    fire("sunburn_or_tanning_in_area", sun("2026-11", ["nose"]), DEFER, D(2026, 12, 14),
         "sun-month-only-uses-last-day"),
    fire("pigmentation_risk", dict(fitzpatrick="type_4"), REVIEW, id="fitzpatrick-4"),
    fire("pigmentation_risk", dict(fitzpatrick="type_5"), REVIEW, id="fitzpatrick-5"),
    fire("pigmentation_risk", dict(fitzpatrick="type_6"), REVIEW, id="fitzpatrick-6"),
    fire("pigmentation_risk", dict(fitzpatrick="not_sure"), REVIEW, id="fitzpatrick-not-sure"),
    fire("pigmentation_risk", dict(pih_history="yes"), REVIEW, id="pih-history"),
    fire("pigmentation_risk", dict(melasma="yes"), REVIEW, id="melasma"),
    fire("recent_injectable_in_area", injectable("2026-11-18"), DEFER, D(2026, 12, 2),
         "injectable-14d-ends-day-after-appt"),
    fire("recent_injectable_in_area", injectable("2026-11", type="ha_filler"), DEFER, D(2026, 12, 14),
         "injectable-month-only-uses-last-day"),
    fire("recent_superficial_procedure_in_area", procedure("superficial_peel", "2026-11-18"), DEFER,
         D(2026, 12, 2), "superficial-standard-14d-ends-day-after-appt"),
    fire("recent_superficial_procedure_in_area", procedure("waxing", "2026-11-18", variant="prp"), DEFER,
         D(2026, 12, 2), "superficial-prp-14d"),
    fire("recent_superficial_procedure_in_area", procedure("ipl_bbl", "2026-11-11", variant="rf"), DEFER,
         D(2026, 12, 2), "superficial-rf-21d-ends-day-after-appt"),
    fire("recent_deep_resurfacing_in_area", procedure("ablative_laser", "2026-09-02"), DEFER, D(2026, 12, 2),
         "deep-3m-ends-day-after-appt"),
    fire("recent_deep_resurfacing_in_area", procedure("other", "2026-10-15"), DEFER, D(2027, 1, 15),
         "deep-unnamed-procedure-takes-longer-window"),
    fire("recent_microneedling_in_area", microneedled("2026-11-04"), DEFER, D(2026, 12, 2),
         "microneedling-28d-ends-day-after-appt"),
    fire("recent_surgery_or_thread_lift_in_area", surgery("2026-06-02"), DEFER, D(2026, 12, 2),
         "surgery-standard-6m-ends-day-after-appt"),
    fire("recent_surgery_or_thread_lift_in_area", thread_lift("2026-06-02"), DEFER, D(2026, 12, 2),
         "thread-lift-standard-6m"),
    fire("recent_surgery_or_thread_lift_in_area", surgery("2025-12-02", variant="rf"), DEFER, D(2026, 12, 2),
         "surgery-rf-facial-12m-ends-day-after-appt"),
    fire("recent_surgery_or_thread_lift_in_area", thread_lift("2025-12-02", variant="rf"), DEFER, D(2026, 12, 2),
         "thread-lift-rf-facial-12m"),
    fire("recent_surgery_or_thread_lift_in_area",
         surgery("2026-06-02", location=["neck"], variant="rf", treatment_areas=["neck"]), DEFER, D(2026, 12, 2),
         "surgery-rf-non-facial-6m"),
    fire("topical_anaesthetic_allergy", dict(anaesthetic_allergy="yes"), REVIEW, id="anaesthetic-allergy"),
    fire("topical_anaesthetic_allergy", dict(methaemoglobinaemia_or_g6pd="yes"), REVIEW, id="g6pd"),
    fire("metal_allergy", metals(["nickel"]), REVIEW, id="metal-allergy-nickel-standard"),
    fire("metal_allergy", metals(["stainless_steel"], "prp"), REVIEW, id="metal-allergy-steel-prp"),
    fire("metal_allergy", metals(["cobalt"], "rf"), REVIEW, id="metal-allergy-cobalt-rf"),
    fire("metal_allergy", metals(["chromium"]), REVIEW, id="metal-allergy-chromium"),
    fire("metal_allergy", metals(["not_sure"]), REVIEW, id="metal-allergy-not-sure-which"),
    fire("metal_allergy", metals(["gold"], "rf"), REVIEW, id="metal-allergy-gold-rf"),
    fire("product_allergy_or_prior_reaction", dict(product_allergies="yes"), REVIEW, id="product-allergy"),
    fire("product_allergy_or_prior_reaction", dict(previous_microneedling_reaction="yes"), REVIEW,
         id="previous-microneedling-reaction"),
    fire("unsure_answer", dict(anticoagulants="unsure"), REVIEW, id="unsure-anticoagulants"),
]


@pytest.mark.parametrize("rule_id, changes, severity, lifts", FIRE_CASES)
def test_rule_fires(ruleset, rule_id, changes, severity, lifts):
    answers = clear_answers(**changes)
    result = evaluate_on_the_day(ruleset, answers)
    flag = only_flag(result, rule_id)
    assert flag.severity == severity
    assert flag.variants == (answers["treatment_variant"],)
    if severity == DEFER:
        if lifts == OPEN:
            assert flag.open_ended is True
            assert flag.lifts_on is None
        else:
            assert flag.open_ended is False
            assert flag.lifts_on == lifts
            assert flag.lifts_on > D.fromisoformat(answers["appointment_date"])
    else:
        assert flag.lifts_on is None
        assert flag.open_ended is False
    # The rule's own severity decides the outcome unless something stricter fired too.
    worst = max((f.severity for f in result.flags), key=[REVIEW, DEFER, DNT].index)
    assert result.outcome == {REVIEW: "REVIEW", DEFER: "DEFER", DNT: "DO_NOT_TREAT"}[worst]


def shipped_rule_ids() -> set[str]:
    return {r["id"] for r in yaml.safe_load((ROOT / "rules.yaml").read_text(encoding="utf-8"))["rules"]}


def test_every_shipped_rule_has_a_fire_case(ruleset):
    # A rule added to rules.yaml without a fire case here fails this test.
    assert {p.values[0] for p in FIRE_CASES} == shipped_rule_ids()
    assert {r.id for r in ruleset.rules} == shipped_rule_ids()


# ---------------------------------------------------------------------------
# 1. ... and each has a near miss that does not fire
# ---------------------------------------------------------------------------


def miss(rule_id, changes, id):
    return pytest.param(rule_id, changes, id=id)


NEAR_MISSES = [
    miss("age_under_18", dict(dob="2008-12-01"), "age-18th-birthday-on-appt-day"),
    miss("pregnancy", dict(pregnant="no", breastfeeding="yes"), "not-pregnant-but-breastfeeding"),
    miss("breastfeeding", dict(pregnant="yes", breastfeeding="no"), "pregnant-not-breastfeeding"),
    miss("isotretinoin", iso("no", isotretinoin_last_dose_date="2026-06-01"), "isotretinoin-6m-ends-on-appt"),
    miss("isotretinoin", iso("no", isotretinoin_last_dose_date="2026-05"), "isotretinoin-month-only-ends-on-appt"),
    miss("isotretinoin", dict(isotretinoin_last_12m="unsure"), "isotretinoin-gate-unsure-not-a-deferral"),
    miss("topical_retinoid_or_exfoliant_in_area", topical("no", topical_actives_last_date="2026-11-24"),
         "topical-7d-ends-on-appt"),
    miss("topical_retinoid_or_exfoliant_in_area", topical("yes", location=("neck",)),
         "topical-on-neck-full-face-booked"),
    miss("topical_retinoid_or_exfoliant_in_area", topical("yes", location=("cheeks",), treatment_areas=["neck"]),
         "topical-on-cheeks-neck-booked"),
    miss("topical_retinoid_or_exfoliant_in_area", topical("yes", location=("feet", "hands")),
         "topical-on-feet"),
    miss("anticoagulant_or_antiplatelet", dict(anticoagulants="unsure", antiplatelets="no"),
         "anticoagulant-unsure-is-only-unsure-flag"),
    miss("nsaid_elective_prp", nsaid("yes", variant="standard"), "nsaid-standard"),
    miss("nsaid_elective_prp", nsaid("yes", variant="rf"), "nsaid-rf"),
    miss("nsaid_elective_prp", nsaid("no", nsaid_last_dose_date="2026-11-24"), "nsaid-prp-7d-ends-on-appt"),
    miss("systemic_corticosteroid_recent_prp", steroid("yes", "unknown", variant="rf"), "steroid-rf"),
    miss("systemic_corticosteroid_recent_prp", steroid("yes", "unknown", variant="standard"), "steroid-standard"),
    miss("systemic_corticosteroid_recent_prp", steroid("no", "2026-11-17"), "steroid-prp-14d-ends-on-appt"),
    miss("immunosuppression", dict(immunosuppressive_meds="no", immunosuppressive_meds_details="methotrexate"),
         "immunosuppressive-meds-no-stale-details"),
    miss("bleeding_disorder", dict(anticoagulants="yes", antiplatelets="yes"), "blood-thinners-not-a-disorder"),
    miss("blood_draw_concern_prp", dict(fainting_with_blood_tests="yes", anaemia="yes"), "blood-draw-standard"),
    miss("blood_draw_concern_prp", dict(treatment_variant="rf", low_blood_pressure="yes",
                                        difficult_venous_access="yes"), "blood-draw-rf"),
    miss("blood_borne_virus", dict(immunosuppressive_condition="yes"), "immune-condition-not-bbv"),
    miss("active_cancer_treatment", cancer_done("2026-07-01", cancer_history="yes"), "cancer-treatment-finished"),
    miss("cancer_treatment_completed_recent", cancer_done("2026-06-01"), "cancer-6m-ends-on-appt"),
    miss("cancer_treatment_completed_recent", cancer_done("2026-05-31"), "cancer-31may-plus-6m-is-1dec-appt"),
    miss("cancer_history_prp", dict(cancer_history="yes"), "cancer-history-standard"),
    miss("cancer_history_prp", dict(cancer_history="yes", treatment_variant="rf"), "cancer-history-rf"),
    miss("radiotherapy_to_area", located("radiotherapy_ever", ["decolletage"]), "radiotherapy-chest-full-face"),
    miss("radiotherapy_to_area", located("radiotherapy_ever", ["cheeks"], areas=["neck"]),
         "radiotherapy-cheeks-neck-booked"),
    miss("diabetes_controlled", diabetes("poorly_controlled"), "diabetes-poorly-controlled-not-controlled"),
    miss("diabetes_controlled", diabetes(wound="yes"), "diabetes-with-wound-not-controlled"),
    miss("diabetes_uncontrolled", diabetes(), "diabetes-well-controlled"),
    miss("scleroderma_or_morphoea", dict(autoimmune_ctd="yes"), "ctd-not-scleroderma"),
    miss("autoimmune_connective_tissue_disease", dict(scleroderma_or_morphoea="yes"), "scleroderma-not-ctd"),
    miss("koebner_prone_dermatosis", located("rash_or_eczema_now", ["neck"]), "eczema-elsewhere-not-koebner"),
    miss("vitiligo_unstable", vitiligo_active("2025-12-01"), "vitiligo-12m-ends-on-appt"),
    miss("vitiligo_unstable", dict(vitiligo="yes", vitiligo_active_12m="no"), "vitiligo-stable"),
    miss("keloid_history", dict(hypertrophic_scar_history="yes"), "hypertrophic-not-keloid"),
    miss("hypertrophic_scar_history", dict(keloid_history="yes"), "keloid-not-hypertrophic"),
    miss("acute_illness_or_fever", dict(unwell_today="unsure"), "unwell-unsure-is-only-unsure-flag"),
    miss("implanted_electronic_device", dict(implanted_device="yes"), "implanted-device-standard"),
    miss("implanted_electronic_device", dict(implanted_device="yes", treatment_variant="prp"), "implanted-device-prp"),
    miss("metal_implant_in_area", located("metal_implants", ["chin_jawline"]), "metal-implant-standard"),
    miss("metal_implant_in_area", located("metal_implants", ["chin_jawline"], variant="prp"), "metal-implant-prp"),
    miss("metal_implant_in_area", located("metal_implants", ["hands"], variant="rf"), "metal-hands-rf-full-face"),
    miss("metal_implant_in_area", located("gold_threads", ["cheeks"], areas=["neck"], variant="rf"),
         "gold-threads-cheeks-rf-neck-booked"),
    miss("permanent_filler_or_implant_in_area", located("permanent_filler", ["cheeks"], areas=["neck"],
                                                        variant="rf"), "filler-cheeks-rf-neck-booked"),
    miss("permanent_filler_or_implant_in_area", located("facial_implant", ["chin_jawline"], areas=["forehead"]),
         "implant-chin-forehead-booked"),
    miss("herpes_simplex_active", dict(cold_sore_now="yes", treatment_areas=["neck"]), "cold-sore-now-neck-booked"),
    miss("herpes_simplex_history", dict(cold_sore_history="yes", treatment_areas=["decolletage", "hands"]),
         "cold-sore-history-body-booked"),
    miss("active_skin_infection_in_area", located("skin_infection_now", ["arms"]), "skin-infection-arms"),
    miss("active_skin_infection_in_area", located("skin_infection_now", ["cheeks"], areas=["neck"]),
         "skin-infection-cheeks-neck-booked"),
    miss("open_wound_in_area", located("open_wound", ["hands"]), "open-wound-hands"),
    miss("inflammatory_dermatosis_flare_in_area", located("rash_or_eczema_now", ["lower_legs"]), "eczema-lower-legs"),
    miss("active_acne_or_rosacea_in_area", located("acne_active", ["back"]), "acne-back-full-face"),
    miss("active_acne_or_rosacea_in_area", located("rosacea_active", ["nose"], areas=["neck"]),
         "rosacea-nose-neck-booked"),
    miss("skin_cancer_or_suspicious_lesion_in_area", located("skin_cancer_or_lesion", ["back", "genitals"]),
         "lesion-back"),
    miss("skin_cancer_or_suspicious_lesion_in_area", located("skin_cancer_or_lesion", ["forehead"], areas=["neck"]),
         "lesion-forehead-neck-booked"),
    miss("sunburn_or_tanning_in_area", sun("2026-11-17"), "sun-14d-ends-on-appt"),
    miss("sunburn_or_tanning_in_area", sun("2026-11-28", ["hands"]), "sun-hands-full-face"),
    miss("pigmentation_risk", dict(fitzpatrick="type_3"), "fitzpatrick-3"),
    miss("pigmentation_risk", dict(fitzpatrick="type_1"), "fitzpatrick-1"),
    miss("recent_injectable_in_area", injectable("2026-11-17"), "injectable-14d-ends-on-appt"),
    miss("recent_injectable_in_area", injectable("2026-11-28", ["cheeks"], treatment_areas=["neck"]),
         "injectable-cheeks-neck-booked"),
    miss("recent_superficial_procedure_in_area", procedure("superficial_peel", "2026-11-17"),
         "superficial-standard-14d-ends-on-appt"),
    miss("recent_superficial_procedure_in_area", procedure("ipl_bbl", "2026-11-11"),
         "superficial-standard-same-date-that-rf-defers"),
    miss("recent_superficial_procedure_in_area", procedure("ipl_bbl", "2026-11-10", variant="rf"),
         "superficial-rf-21d-ends-on-appt"),
    miss("recent_superficial_procedure_in_area", procedure("waxing", "2026-11-28", location=("arms",)),
         "superficial-arms-full-face"),
    miss("recent_superficial_procedure_in_area", procedure("ablative_laser", "2026-11-28"),
         "deep-procedure-not-superficial"),
    miss("recent_deep_resurfacing_in_area", procedure("ablative_laser", "2026-09-01"), "deep-3m-ends-on-appt"),
    miss("recent_deep_resurfacing_in_area", procedure("dermaplaning", "2026-11-28"), "superficial-not-deep"),
    miss("recent_deep_resurfacing_in_area", procedure("medium_deep_peel", "2026-11-01", location=("cheeks",),
                                                      treatment_areas=["neck"]), "deep-cheeks-neck-booked"),
    miss("recent_microneedling_in_area", microneedled("2026-11-03"), "microneedling-28d-ends-on-appt"),
    miss("recent_microneedling_in_area", microneedled("2026-11-28", ["neck"]), "microneedling-neck-full-face"),
    miss("recent_surgery_or_thread_lift_in_area", surgery("2026-06-01"), "surgery-standard-6m-ends-on-appt"),
    miss("recent_surgery_or_thread_lift_in_area", surgery("2025-12-02"), "surgery-standard-12m-ago-only-rf-facial-has-12m"),
    miss("recent_surgery_or_thread_lift_in_area", surgery("2025-12-01", variant="rf"),
         "surgery-rf-facial-12m-ends-on-appt"),
    miss("recent_surgery_or_thread_lift_in_area",
         surgery("2026-06-01", location=["neck"], variant="rf", treatment_areas=["neck"]),
         "surgery-rf-non-facial-6m-ends-on-appt"),
    miss("recent_surgery_or_thread_lift_in_area", thread_lift("2026-10-01", ["cheeks"], treatment_areas=["neck"]),
         "thread-lift-cheeks-neck-booked"),
    miss("topical_anaesthetic_allergy", dict(product_allergies="yes"), "product-not-anaesthetic"),
    miss("metal_allergy", metals(["gold"]), "gold-standard"),
    miss("metal_allergy", metals(["gold"], "prp"), "gold-prp"),
    miss("metal_allergy", dict(metal_allergy="no", metal_allergy_which=["nickel"]), "metal-allergy-no-stale-which"),
    miss("product_allergy_or_prior_reaction", dict(anaesthetic_allergy="yes"), "anaesthetic-not-product"),
    miss("unsure_answer", dict(pregnant="unsure"), "pregnant-unsure-not-unsure-flag"),
    miss("unsure_answer", dict(fitzpatrick="not_sure"), "fitzpatrick-not-sure-is-not-yes-no"),
]


def test_every_shipped_rule_has_a_near_miss():
    assert {p.values[0] for p in NEAR_MISSES} == shipped_rule_ids()


@pytest.mark.parametrize("rule_id, changes", NEAR_MISSES)
def test_rule_near_miss_does_not_fire(ruleset, rule_id, changes):
    result = evaluate_on_the_day(ruleset, clear_answers(**changes))
    assert rule_id not in ids(result), [(f.id, f.severity, f.lifts_on) for f in result.flags]


def test_near_misses_leave_related_flags_alone(ruleset):
    # A near miss must not hide the flags that should still fire.
    result = run(ruleset, **vitiligo_active("2025-12-01"))
    assert ids(result) == {"koebner_prone_dermatosis"}
    result = run(ruleset, **nsaid("yes", variant="standard"))
    assert result.outcome == "CLEAR"
    result = run(ruleset, anticoagulants="unsure", antiplatelets="no")
    assert ids(result) == {"unsure_answer"}
    result = run(ruleset, **diabetes("poorly_controlled"))
    assert ids(result) == {"diabetes_uncontrolled"}


# ---------------------------------------------------------------------------
# Area matching (spec 1.3)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "booked, location, fires",
    [
        pytest.param(["full_face"], ["nose"], True, id="full-face-booked-nose-location"),
        pytest.param(["nose"], ["full_face"], True, id="nose-booked-full-face-location"),
        pytest.param(["cheeks", "neck"], ["neck"], True, id="neck-in-mixed-booking"),
        pytest.param(["neck"], ["cheeks"], False, id="neck-booked-cheeks-location"),
        pytest.param(["forehead"], ["chin_jawline"], False, id="different-facial-sub-areas"),
        pytest.param(["full_face"], ["decolletage", "feet"], False, id="full-face-booked-body-location"),
        pytest.param(["periorbital"], ["eyelids"], True, id="eyelids-overlap-periorbital"),
        pytest.param(["full_face"], ["eyelids"], True, id="eyelids-overlap-full-face"),
        pytest.param(["cheeks"], ["ears"], True, id="ears-overlap-cheeks"),
        pytest.param(["forehead"], ["hairline"], True, id="hairline-overlaps-forehead"),
        pytest.param(["scalp"], ["hairline"], True, id="hairline-overlaps-scalp"),
        pytest.param(["decolletage"], ["breasts_chest_wall"], True, id="chest-wall-overlaps-upper-chest"),
        pytest.param(["full_face"], ["ears", "hairline"], True, id="ears-and-hairline-full-face"),
        pytest.param(["nose"], ["ears"], False, id="ears-not-nose"),
        pytest.param(["full_face"], ["lower_legs", "feet", "genitals"], False, id="legs-feet-genitals-not-face"),
    ],
)
def test_in_area_matching(ruleset, booked, location, fires):
    result = run(ruleset, **located("open_wound", location, areas=booked))
    assert ("open_wound_in_area" in ids(result)) is fires


@pytest.mark.parametrize(
    "booked, fires",
    [
        pytest.param(["full_face"], True, id="full-face"),
        pytest.param(["chin_jawline"], True, id="one-facial-sub-area"),
        pytest.param(["neck", "decolletage"], False, id="body-only"),
    ],
)
def test_facial_area_rules_follow_the_booking_not_the_lesion(ruleset, booked, fires):
    result = run(ruleset, cold_sore_now="yes", cold_sore_history="yes", treatment_areas=booked)
    assert ("herpes_simplex_active" in ids(result)) is fires
    assert ("herpes_simplex_history" in ids(result)) is fires


def test_group_rule_uses_latest_lift_of_several_items(ruleset):
    result = run(ruleset, injectables_12m="yes", injectables=[
        item("2026-11-20", ["forehead"], "botulinum_toxin"),
        item("2026-11-28", ["neck"], "ha_filler"),  # not booked: ignored
        item("2026-11-25", ["cheeks"], "skin_booster"),
        item("2026-11-10", ["nose"], "mesotherapy"),  # window over
    ])
    flag = only_flag(result, "recent_injectable_in_area")
    assert flag.lifts_on == D(2026, 12, 9)
    assert [i["type"] for i in flag.because["injectables"]] == ["botulinum_toxin", "skin_booster"]


# ---------------------------------------------------------------------------
# 2. Combination logic (spec 1.1)
# ---------------------------------------------------------------------------


def test_clear_when_nothing_fires(ruleset):
    result = run(ruleset)
    assert (result.outcome, result.earliest_date, result.open_ended, result.flags) == ("CLEAR", None, False, ())


def test_review_only(ruleset):
    result = run(ruleset, breastfeeding="yes", melasma="yes")
    assert result.outcome == "REVIEW"
    assert ids(result) == {"breastfeeding", "pigmentation_risk"}
    assert result.earliest_date is None
    assert result.open_ended is False


def test_defer_beats_review_and_keeps_the_review_flags(ruleset):
    result = run(ruleset, breastfeeding="yes", **injectable("2026-11-25"))
    assert result.outcome == "DEFER"
    assert ids(result) == {"breastfeeding", "recent_injectable_in_area"}
    assert result.earliest_date == D(2026, 12, 9)
    assert result.open_ended is False


def test_do_not_treat_beats_defer_and_review_and_reports_every_flag(ruleset):
    result = run(ruleset, keloid_history="yes", breastfeeding="yes", unwell_today="yes",
                 **injectable("2026-11-25"))
    assert result.outcome == "DO_NOT_TREAT"
    assert ids(result) == {"keloid_history", "breastfeeding", "acute_illness_or_fever", "recent_injectable_in_area"}
    # No overall earliest date for DO NOT TREAT; each deferral keeps its own lift date.
    assert result.earliest_date is None
    assert only_flag(result, "recent_injectable_in_area").lifts_on == D(2026, 12, 9)
    assert only_flag(result, "acute_illness_or_fever").open_ended is True


def test_earliest_date_is_the_latest_dated_deferral(ruleset):
    result = run(
        ruleset,
        **injectable("2026-11-25"),  # 2026-12-09
        **sun("2026-11-30"),  # 2026-12-14
        **iso("no", isotretinoin_last_dose_date="2026-06-10"),  # 2026-12-10
        **microneedled("2026-11-10"),  # 2026-12-08
    )
    assert result.outcome == "DEFER"
    assert result.earliest_date == D(2026, 12, 14)
    assert result.open_ended is False
    lifts = {f.id: f.lifts_on for f in result.flags}
    assert lifts == {
        "recent_injectable_in_area": D(2026, 12, 9),
        "sunburn_or_tanning_in_area": D(2026, 12, 14),
        "isotretinoin": D(2026, 12, 10),
        "recent_microneedling_in_area": D(2026, 12, 8),
    }


def test_open_ended_plus_dated_deferral_is_open_ended_not_before_the_dated_one(ruleset):
    result = run(ruleset, cold_sore_now="yes", **injectable("2026-11-25"), **sun("2026-11-20"))
    assert result.outcome == "DEFER"
    assert result.open_ended is True
    assert result.earliest_date == D(2026, 12, 9)
    assert only_flag(result, "herpes_simplex_active").lifts_on is None


def test_open_ended_only(ruleset):
    result = run(ruleset, unwell_today="yes", **located("open_wound", ["cheeks"]))
    assert result.outcome == "DEFER"
    assert result.open_ended is True
    assert result.earliest_date is None


def test_ended_window_is_not_listed_and_does_not_count(ruleset):
    # The injectable window ends on the appointment day: only the review remains.
    result = run(ruleset, breastfeeding="yes", **injectable("2026-11-17"))
    assert result.outcome == "REVIEW"
    assert ids(result) == {"breastfeeding"}
    assert result.earliest_date is None


def test_many_flags_at_once(ruleset):
    result = run(
        ruleset,
        dob="2009-01-15",
        anticoagulants="yes",
        psoriasis="yes",
        implanted_device="yes",
        cold_sore_history="yes",
        fitzpatrick="type_5",
        melasma="unsure",
        **located("permanent_filler", ["cheeks"]),
        **procedure("ipl_bbl", "2026-11-20", variant="rf"),
        **metals(["gold"]),
    )
    assert result.outcome == "DO_NOT_TREAT"
    assert result.earliest_date is None
    got = {(f.id, f.severity) for f in result.flags}
    assert got == {
        ("age_under_18", DEFER),
        ("anticoagulant_or_antiplatelet", REVIEW),
        ("koebner_prone_dermatosis", REVIEW),
        ("implanted_electronic_device", DNT),
        ("herpes_simplex_history", REVIEW),
        ("pigmentation_risk", REVIEW),
        ("permanent_filler_or_implant_in_area", DNT),
        ("recent_superficial_procedure_in_area", DEFER),
        ("metal_allergy", REVIEW),
        ("unsure_answer", REVIEW),
    }
    assert only_flag(result, "age_under_18").lifts_on == D(2027, 1, 15)
    assert only_flag(result, "recent_superficial_procedure_in_area").lifts_on == D(2026, 12, 11)
    assert dict(only_flag(result, "unsure_answer").because) == {"melasma": "unsure"}


# ---------------------------------------------------------------------------
# 3. Date conventions (spec 1.2)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "start, months, expected",
    [
        pytest.param(D(2026, 8, 31), 6, D(2027, 3, 1), id="31aug-plus-6-is-1mar"),
        pytest.param(D(2027, 5, 31), 6, D(2027, 12, 1), id="31may-plus-6-is-1dec"),
        pytest.param(D(2027, 1, 31), 1, D(2027, 3, 1), id="31jan-plus-1-non-leap"),
        pytest.param(D(2028, 1, 31), 1, D(2028, 3, 1), id="31jan-plus-1-leap"),
        pytest.param(D(2028, 1, 29), 1, D(2028, 2, 29), id="29jan-plus-1-leap-keeps-29feb"),
        pytest.param(D(2027, 1, 29), 1, D(2027, 3, 1), id="29jan-plus-1-non-leap"),
        pytest.param(D(2026, 11, 30), 3, D(2027, 3, 1), id="30nov-plus-3-is-1mar"),
        pytest.param(D(2026, 10, 31), 1, D(2026, 12, 1), id="31oct-plus-1-is-1dec"),
        pytest.param(D(2026, 12, 31), 1, D(2027, 1, 31), id="31dec-plus-1-crosses-year"),
        pytest.param(D(2026, 6, 15), 6, D(2026, 12, 15), id="plain-day"),
        pytest.param(D(2008, 2, 29), 216, D(2026, 3, 1), id="29feb-plus-18-years"),
        pytest.param(D(2008, 2, 29), 240, D(2028, 2, 29), id="29feb-plus-20-years-leap"),
    ],
)
def test_add_months(start, months, expected):
    assert add_months(start, months) == expected


@pytest.mark.parametrize(
    "appointment, lifts",
    [
        pytest.param("2027-02-28", D(2027, 3, 1), id="appt-28feb-defers-to-1mar"),
        pytest.param("2027-03-01", None, id="appt-1mar-nothing"),
    ],
)
def test_isotretinoin_31aug_plus_6_months(ruleset, appointment, lifts):
    result = run(ruleset, appointment_date=appointment, **iso("no", isotretinoin_last_dose_date="2026-08-31"))
    if lifts is None:
        assert result.outcome == "CLEAR"
    else:
        assert result.outcome == "DEFER"
        assert result.earliest_date == lifts
        assert only_flag(result, "isotretinoin").lifts_on == lifts


def test_isotretinoin_month_only_august_is_31aug(ruleset):
    # "2026-08" means 2026-08-31, so 6 months later is 1 March (not 28 Feb or 3 Mar).
    result = run(ruleset, appointment_date="2027-02-28", **iso("no", isotretinoin_last_dose_date="2026-08"))
    assert only_flag(result, "isotretinoin").lifts_on == D(2027, 3, 1)


def test_cancer_31may_plus_6_months_is_1dec(ruleset):
    result = run(ruleset, appointment_date="2026-11-30", **cancer_done("2026-05-31"))
    assert only_flag(result, "cancer_treatment_completed_recent").lifts_on == D(2026, 12, 1)


@pytest.mark.parametrize(
    "month, appointment, lifts",
    [
        pytest.param("2026-11", "2026-12-01", D(2026, 12, 14), id="30-day-month"),
        pytest.param("2028-02", "2028-03-10", D(2028, 3, 14), id="february-leap-year-is-29th"),
        pytest.param("2027-02", "2027-03-10", D(2027, 3, 14), id="february-non-leap-is-28th"),
        pytest.param("2026-12", "2027-01-10", D(2027, 1, 14), id="december-is-31st"),
    ],
)
def test_month_only_event_date_is_last_day_of_month(ruleset, month, appointment, lifts):
    result = run(ruleset, appointment_date=appointment, **injectable(month))
    flag = only_flag(result, "recent_injectable_in_area")
    assert flag.lifts_on == lifts
    assert flag.because["injectables"][0]["date"] == month  # shown as the client gave it


def test_month_only_event_date_last_day_can_end_on_appointment(ruleset):
    # "2026-11" is 30 Nov; + 14 days = 14 Dec: still deferred on 13 Dec ...
    assert "recent_injectable_in_area" in ids(run(ruleset, appointment_date="2026-12-13", **injectable("2026-11")))
    # ... and clear on 14 Dec.
    assert run(ruleset, appointment_date="2026-12-14", **injectable("2026-11")).outcome == "CLEAR"


@pytest.mark.parametrize(
    "dob, appointment, lifts",
    [
        pytest.param("2008-12-01", "2026-12-01", None, id="18th-birthday-on-appt"),
        pytest.param("2008-12-02", "2026-12-01", D(2026, 12, 2), id="18th-birthday-day-after-appt"),
        pytest.param("2008-02-29", "2026-02-28", D(2026, 3, 1), id="29feb-born-not-18-on-28feb"),
        pytest.param("2008-02-29", "2026-03-01", None, id="29feb-born-18-on-1mar"),
        pytest.param("2010-06-15", "2026-12-01", D(2028, 6, 15), id="16-year-old"),
    ],
)
def test_age_under_18(ruleset, dob, appointment, lifts):
    result = run(ruleset, dob=dob, appointment_date=appointment)
    if lifts is None:
        assert "age_under_18" not in ids(result)
        assert result.outcome == "CLEAR"
    else:
        flag = only_flag(result, "age_under_18")
        assert flag.severity == DEFER
        assert flag.lifts_on == lifts
        assert result.earliest_date == lifts


def test_still_using_counts_from_appointment_date(ruleset):
    result = run(ruleset, appointment_date="2027-01-20", **topical("yes"))
    assert only_flag(result, "topical_retinoid_or_exfoliant_in_area").lifts_on == D(2027, 1, 27)
    result = run(ruleset, appointment_date="2027-01-20", **nsaid("yes"))
    assert only_flag(result, "nsaid_elective_prp").lifts_on == D(2027, 1, 27)


# ---------------------------------------------------------------------------
# 4. Variant specifics
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant, severity, outcome",
    [
        pytest.param("rf", DNT, "DO_NOT_TREAT", id="rf"),
        pytest.param("standard", REVIEW, "REVIEW", id="standard"),
        pytest.param("prp", REVIEW, "REVIEW", id="prp"),
    ],
)
def test_rule_28_severity_by_variant(ruleset, variant, severity, outcome):
    result = run(ruleset, **located("facial_implant", ["chin_jawline"], variant=variant))
    assert only_flag(result, "permanent_filler_or_implant_in_area").severity == severity
    assert result.outcome == outcome


@pytest.mark.parametrize(
    "variant, date, lifts",
    [
        pytest.param("standard", "2026-11-18", D(2026, 12, 2), id="standard-14d-fires"),
        pytest.param("standard", "2026-11-17", None, id="standard-14d-ends-on-appt"),
        pytest.param("prp", "2026-11-18", D(2026, 12, 2), id="prp-14d-fires"),
        pytest.param("prp", "2026-11-17", None, id="prp-14d-ends-on-appt"),
        pytest.param("rf", "2026-11-11", D(2026, 12, 2), id="rf-21d-fires"),
        pytest.param("rf", "2026-11-10", None, id="rf-21d-ends-on-appt"),
        pytest.param("rf", "2026-11-17", D(2026, 12, 8), id="rf-21d-where-standard-would-be-clear"),
    ],
)
def test_rule_39_window_by_variant(ruleset, variant, date, lifts):
    result = run(ruleset, **procedure("non_ablative_laser", date, variant=variant))
    if lifts is None:
        assert result.outcome == "CLEAR"
    else:
        assert only_flag(result, "recent_superficial_procedure_in_area").lifts_on == lifts


@pytest.mark.parametrize(
    "variant, booked, location, date, lifts",
    [
        pytest.param("rf", ["full_face"], ["cheeks"], "2026-06-01", D(2027, 6, 1), id="rf-facial-12m"),
        pytest.param("standard", ["full_face"], ["cheeks"], "2026-06-01", None, id="standard-facial-6m-ended"),
        pytest.param("prp", ["full_face"], ["cheeks"], "2026-06-02", D(2026, 12, 2), id="prp-facial-6m"),
        pytest.param("rf", ["neck"], ["neck"], "2026-06-01", None, id="rf-non-facial-6m-ended"),
        pytest.param("rf", ["neck"], ["neck"], "2026-06-02", D(2026, 12, 2), id="rf-non-facial-6m"),
        pytest.param("rf", ["full_face", "neck"], ["neck"], "2026-06-02", D(2026, 12, 2),
                     id="rf-face-booked-but-surgery-on-neck-6m"),
        pytest.param("rf", ["neck"], ["cheeks", "neck"], "2026-06-02", D(2026, 12, 2),
                     id="rf-facial-surgery-but-only-neck-overlaps-6m"),
        pytest.param("rf", ["nose", "neck"], ["full_face", "neck"], "2026-06-02", D(2027, 6, 2),
                     id="rf-overlap-includes-facial-12m"),
    ],
)
def test_rule_42_window_by_variant_and_area(ruleset, variant, booked, location, date, lifts):
    # Types that are not facial by nature: here only the place ticked decides.
    on_face = bool(qd.expand_areas(location) & set(qd.FACIAL_AREAS))
    for answers in (surgery(date, location, variant, treatment_areas=booked, type="excision"),
                    thread_lift(date, location, variant, treatment_areas=booked,
                                type="facial_thread_lift" if on_face else "neck_thread_lift")):
        result = run(ruleset, **answers)
        if lifts is None:
            assert result.outcome == "CLEAR"
        else:
            assert only_flag(result, "recent_surgery_or_thread_lift_in_area").lifts_on == lifts


def test_rule_42_surgery_and_thread_lift_together_take_the_later(ruleset):
    result = run(ruleset, **surgery("2026-06-10"), **thread_lift("2026-07-20"))
    flag = only_flag(result, "recent_surgery_or_thread_lift_in_area")
    assert flag.lifts_on == D(2027, 1, 20)
    assert set(flag.because) >= {"surgery", "thread_lift"}


@pytest.mark.parametrize(
    "variant, fires",
    [pytest.param("rf", True, id="rf"), pytest.param("standard", False, id="standard"),
     pytest.param("prp", False, id="prp")],
)
def test_gold_allergy_only_for_rf(ruleset, variant, fires):
    result = run(ruleset, **metals(["gold"], variant))
    assert ("metal_allergy" in ids(result)) is fires


def test_unknown_variant_evaluates_every_variant_and_strictest_wins(ruleset):
    result = run(ruleset, treatment_variant="unknown", **located("permanent_filler", ["cheeks"]))
    assert result.variant == "unknown"
    assert result.variant_unknown is True
    assert result.variants_evaluated == ("standard", "rf", "prp")
    assert result.outcome == "DO_NOT_TREAT"
    by_severity = {f.severity: f.variants for f in result.flags if f.id == "permanent_filler_or_implant_in_area"}
    assert by_severity == {DNT: ("rf",), REVIEW: ("standard", "prp")}


def test_unknown_variant_prp_only_deferral(ruleset):
    result = run(ruleset, **nsaid("no", variant="unknown", nsaid_last_dose_date="2026-11-28"))
    assert result.outcome == "DEFER"
    assert result.earliest_date == D(2026, 12, 5)
    flag = only_flag(result, "nsaid_elective_prp")
    assert flag.variants == ("prp",)
    assert flag.lifts_on == D(2026, 12, 5)


def test_unknown_variant_takes_the_longest_window(ruleset):
    result = run(ruleset, **procedure("dermaplaning", "2026-11-15", variant="unknown"))
    assert result.outcome == "DEFER"
    assert result.earliest_date == D(2026, 12, 6)  # rf: 21 days
    # standard and prp: 14 days ended on 29 Nov, so only rf (21 days) raises the flag.
    flags = {f.variants: f.lifts_on for f in result.flags if f.id == "recent_superficial_procedure_in_area"}
    assert flags == {("rf",): D(2026, 12, 6)}


def test_unknown_variant_windows_open_for_all_list_each_variant(ruleset):
    result = run(ruleset, **procedure("dermaplaning", "2026-11-25", variant="unknown"))
    flags = {f.variants: f.lifts_on for f in result.flags if f.id == "recent_superficial_procedure_in_area"}
    assert flags == {("standard", "prp"): D(2026, 12, 9), ("rf",): D(2026, 12, 16)}
    assert result.earliest_date == D(2026, 12, 16)


def test_unknown_variant_all_variant_rule_lists_all_three(ruleset):
    result = run(ruleset, anticoagulants="yes", **metals(["gold"], "unknown"))
    assert only_flag(result, "anticoagulant_or_antiplatelet").variants == ("standard", "rf", "prp")
    assert only_flag(result, "metal_allergy").variants == ("rf",)
    assert result.outcome == "REVIEW"


@pytest.mark.parametrize("variant", ["standard", "rf", "prp"])
def test_known_variant_evaluates_only_itself(ruleset, variant):
    result = run(ruleset, treatment_variant=variant, anticoagulants="yes")
    assert result.variants_evaluated == (variant,)
    assert result.variant_unknown is False
    assert only_flag(result, "anticoagulant_or_antiplatelet").variants == (variant,)


# ---------------------------------------------------------------------------
# 5. unsure_answer
# ---------------------------------------------------------------------------


def test_unsure_names_every_unsure_question_except_pregnant(ruleset):
    result = run(ruleset, pregnant="unsure", anticoagulants="unsure", keloid_history="unsure",
                 metal_allergy="unsure", previous_microneedling_reaction="unsure",
                 **iso("unsure"))
    flag = only_flag(result, "unsure_answer")
    assert flag.severity == REVIEW
    assert dict(flag.because) == {
        "anticoagulants": "unsure",
        "keloid_history": "unsure",
        "metal_allergy": "unsure",
        "previous_microneedling_reaction": "unsure",
        "isotretinoin_current": "unsure",
    }
    assert only_flag(result, "pregnancy").severity == DNT
    assert result.outcome == "DO_NOT_TREAT"


def test_pregnant_unsure_alone_is_pregnancy_not_unsure(ruleset):
    result = run(ruleset, pregnant="unsure")
    assert ids(result) == {"pregnancy"}
    assert result.outcome == "DO_NOT_TREAT"


@pytest.mark.parametrize(
    "qid",
    sorted(q.id for q in qd.QUESTIONS if q.type == qd.YES_NO_UNSURE and q.asked_when is None and q.id != "pregnant"),
)
def test_unsure_on_any_top_level_yes_no_question(ruleset, qid):
    result = run(ruleset, **{qid: "unsure"})
    assert dict(only_flag(result, "unsure_answer").because) == {qid: "unsure"}
    assert result.outcome == "REVIEW"


def test_unsure_on_a_follow_up_question(ruleset):
    result = run(ruleset, diabetes="yes", diabetes_control="well_controlled", non_healing_wound="unsure",
                 diabetes_admission_6m="no")
    assert dict(only_flag(result, "unsure_answer").because) == {"non_healing_wound": "unsure"}


def test_stale_unsure_follow_up_is_ignored(ruleset):
    result = run(ruleset, isotretinoin_last_12m="no", isotretinoin_current="unsure")
    assert result.outcome == "CLEAR"


# ---------------------------------------------------------------------------
# 6. Incomplete or wrong answers
# ---------------------------------------------------------------------------


def without(*keys, **changes) -> dict:
    answers = clear_answers(**changes)
    for k in keys:
        del answers[k]
    return answers


@pytest.mark.parametrize(
    "answers, missing",
    [
        pytest.param(without("pregnant"), ["pregnant"], id="pregnant"),
        pytest.param(without("keloid_history", "anticoagulants"), ["anticoagulants", "keloid_history"],
                     id="two-safety-answers"),
        pytest.param(without("dob"), ["dob"], id="dob"),
        pytest.param(without("appointment_date"), ["appointment_date"], id="appointment-date"),
        pytest.param(without("treatment_variant"), ["treatment_variant"], id="variant"),
        pytest.param(without("treatment_areas"), ["treatment_areas"], id="areas"),
        pytest.param(without("fitzpatrick"), ["fitzpatrick"], id="fitzpatrick"),
        pytest.param(clear_answers(pregnant=None), ["pregnant"], id="pregnant-none"),
        pytest.param(clear_answers(pregnant=""), ["pregnant"], id="pregnant-blank"),
        pytest.param(clear_answers(treatment_areas=[]), ["treatment_areas"], id="areas-empty-list"),
        pytest.param(clear_answers(isotretinoin_last_12m="yes"), ["isotretinoin_current"],
                     id="isotretinoin-follow-up"),
        pytest.param(clear_answers(**iso("no")), ["isotretinoin_last_dose_date"], id="isotretinoin-last-dose"),
        pytest.param(clear_answers(**iso("yes")), ["isotretinoin_planned_end_date"], id="isotretinoin-planned-end"),
        pytest.param(clear_answers(topical_actives=["retinol"]),
                     ["topical_actives_location", "topical_actives_still_using"], id="topical-follow-ups"),
        pytest.param(clear_answers(**topical("no")), ["topical_actives_last_date"], id="topical-last-date"),
        pytest.param(clear_answers(nsaid_last_7d="yes"), ["nsaid_still_taking"], id="nsaid-follow-up"),
        pytest.param(clear_answers(systemic_steroid_last_14d="yes"),
                     ["systemic_steroid_current"], id="steroid"),
        pytest.param(clear_answers(systemic_steroid_last_14d="yes", systemic_steroid_current="yes"),
                     ["systemic_steroid_planned_end_date"], id="steroid-planned-end"),
        pytest.param(clear_answers(systemic_steroid_last_14d="yes", systemic_steroid_current="no"),
                     ["systemic_steroid_last_dose_date"], id="steroid-last-dose"),
        pytest.param(clear_answers(cancer_treatment_last_12m="yes"), ["cancer_treatment_end_date"], id="cancer-end"),
        pytest.param(clear_answers(radiotherapy_ever="yes"), ["radiotherapy_sites"], id="radiotherapy-sites"),
        pytest.param(clear_answers(diabetes="yes"),
                     ["diabetes_control", "non_healing_wound", "diabetes_admission_6m"], id="diabetes"),
        pytest.param(clear_answers(vitiligo="yes"), ["vitiligo_active_12m"], id="vitiligo"),
        pytest.param(clear_answers(vitiligo="yes", vitiligo_active_12m="yes"), ["vitiligo_last_activity_date"],
                     id="vitiligo-date"),
        pytest.param(clear_answers(open_wound="yes"), ["open_wound_location"], id="open-wound-location"),
        pytest.param(clear_answers(permanent_filler="yes"), ["permanent_filler_location"], id="filler-location"),
        pytest.param(clear_answers(sun_exposure_14d="yes"), ["sun_exposure_date", "sun_exposure_location"],
                     id="sun"),
        pytest.param(clear_answers(metal_allergy="yes"), ["metal_allergy_which"], id="metal-which"),
        pytest.param(clear_answers(injectables_12m="yes"), ["injectables"], id="injectables-group"),
        pytest.param(clear_answers(surgery_2y="yes", surgery=[]), ["surgery"], id="surgery-empty-group"),
    ],
)
def test_missing_required_answer_is_an_error_never_clear(ruleset, answers, missing):
    with pytest.raises(AnswersError) as info:
        evaluate_on_the_day(ruleset, answers)
    assert sorted(info.value.missing) == sorted(missing)
    for qid in missing:
        assert qid in str(info.value)


def test_optional_details_may_be_left_out(ruleset):
    result = run(ruleset, bleeding_disorder="yes", cold_sore_history="yes", anticoagulants="yes")
    assert result.outcome == "DO_NOT_TREAT"


@pytest.mark.parametrize(
    "changes, qid",
    [
        pytest.param(dict(pregnnt="no"), "pregnnt", id="unknown-id"),
        pytest.param(dict(pregnant=True), "pregnant", id="bool-for-yes-no"),
        pytest.param(dict(pregnant="maybe"), "pregnant", id="yes-no-outside-choices"),
        pytest.param(dict(breastfeeding="unsure"), "breastfeeding", id="unsure-on-yes-no-only"),
        pytest.param(dict(fitzpatrick="type_7"), "fitzpatrick", id="single-outside-choices"),
        pytest.param(dict(treatment_variant="laser"), "treatment_variant", id="variant-outside-choices"),
        pytest.param(dict(treatment_areas="full_face"), "treatment_areas", id="areas-as-string"),
        pytest.param(dict(treatment_areas=["face"]), "treatment_areas", id="area-outside-vocabulary"),
        pytest.param(dict(treatment_areas=["elsewhere"]), "treatment_areas", id="elsewhere-not-bookable"),
        pytest.param(dict(treatment_areas=["neck", "neck"]), "treatment_areas", id="area-twice"),
        pytest.param(dict(topical_actives=["none", "retinol"]), "topical_actives", id="none-with-other"),
        pytest.param(dict(topical_actives=["vitamin_c"]), "topical_actives", id="multi-outside-choices"),
        pytest.param(dict(dob="27/03/1990"), "dob", id="date-wrong-format"),
        pytest.param(dict(dob="1990-03"), "dob", id="dob-month-only-not-allowed"),
        pytest.param(dict(dob="1990-02-30"), "dob", id="date-not-real"),
        pytest.param(dict(dob=19900327), "dob", id="date-as-number"),
        pytest.param(dict(appointment_date="unknown"), "appointment_date", id="appointment-unknown"),
        pytest.param(dict(appointment_date="2026-12"), "appointment_date", id="appointment-month-only"),
        pytest.param(dict(dob="unknown"), "dob", id="unknown-not-allowed-for-date-of-birth"),
        pytest.param(dict(injectables_12m="yes", injectables={"type": "ha_filler"}), "injectables",
                     id="group-not-a-list"),
        pytest.param(dict(injectables_12m="yes", injectables=[{"type": "ha_filler", "date": "2026-11-20"}]),
                     "injectables", id="group-item-missing-location"),
        pytest.param(dict(injectables_12m="yes", injectables=[item("2026-11-20", ["cheeks"], "lip_flip")]),
                     "injectables", id="group-item-type-outside-choices"),
        pytest.param(dict(injectables_12m="yes",
                          injectables=[item("2026-11-20", ["cheeks"], "ha_filler", side="left")]),
                     "injectables", id="group-item-unknown-field"),
        pytest.param(dict(full_name=42), "full_name", id="text-not-a-string"),
    ],
)
def test_wrong_answers_are_errors_naming_the_question(ruleset, changes, qid):
    with pytest.raises(AnswersError) as info:
        evaluate_on_the_day(ruleset, clear_answers(**changes))
    assert any(qid in p for p in info.value.problems), info.value.problems
    assert f"'{qid}'" in str(info.value)


def test_answers_must_be_a_mapping(ruleset):
    with pytest.raises(AnswersError):
        evaluate_on_the_day(ruleset, [("pregnant", "no")])


def test_every_problem_is_reported_at_once(ruleset):
    answers = without("melasma", pregnant="maybe", extra_question="x")
    with pytest.raises(AnswersError) as info:
        evaluate_on_the_day(ruleset, answers)
    assert info.value.missing == ["melasma"]
    text = str(info.value)
    assert "'pregnant'" in text and "'extra_question'" in text


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param(dict(isotretinoin_last_12m="no", isotretinoin_current="yes",
                          isotretinoin_planned_end_date="2027-01-01"), id="isotretinoin"),
        pytest.param(dict(permanent_filler="no", permanent_filler_location=["cheeks"]), id="filler-location"),
        pytest.param(dict(skin_infection_now="no", skin_infection_location=["nose"]), id="skin-infection-location"),
        pytest.param(dict(injectables_12m="no", injectables=[item("2026-11-28", ["cheeks"], "ha_filler")]),
                     id="injectables-group"),
        pytest.param(dict(topical_actives=["none"], topical_actives_location=["cheeks"],
                          topical_actives_still_using="yes"), id="topical"),
        pytest.param(dict(diabetes="no", diabetes_control="poorly_controlled"), id="diabetes-control"),
        pytest.param(dict(vitiligo="yes", vitiligo_active_12m="no", vitiligo_last_activity_date="unknown",
                          psoriasis="no"), id="vitiligo-grandchild"),
    ],
)
def test_stale_follow_up_is_ignored(ruleset, changes):
    result = evaluate_on_the_day(ruleset, clear_answers(**changes))
    prepared = prepare_on_the_day(clear_answers(**changes))
    stale = [k for k in changes if k not in prepared.values]
    assert stale, "the case must contain at least one stale follow-up"
    # Every flag that remains comes from the live answers only.
    live_flags = {"koebner_prone_dermatosis"} if changes.get("vitiligo") == "yes" else set()
    assert ids(result) == live_flags


# ---------------------------------------------------------------------------
# 7. Immutability
# ---------------------------------------------------------------------------


def test_result_and_flags_are_immutable(ruleset):
    result = run(ruleset, **injectable("2026-11-25"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.outcome = "CLEAR"
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.earliest_date = None
    flag = result.flags[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        flag.severity = "review"
    with pytest.raises(TypeError):
        flag.because["injectables"] = []
    assert isinstance(result.flags, tuple)
    assert result.outcome == "DEFER"
