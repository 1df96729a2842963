"""The rules file: the shipped rules.yaml, and how broken rules files are rejected.

Every broken file is built as YAML text by taking a valid rule (or the shipped file) and
breaking one thing. The rejection must name the rule, the line of the fault and what is wrong.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import textwrap

import pytest

from screening import questions as qd
from screening.config import ROOT
from screening.rules import RulesError, load_rules, parse_rules
from tests.answers import clear_answers, evaluate_on_the_day

RULES_PATH = ROOT / "rules.yaml"
SHIPPED = RULES_PATH.read_text(encoding="utf-8")

# ---------------------------------------------------------------------------
# The shipped file against the specification (contraindications.md, section 2)
# ---------------------------------------------------------------------------

# Rule table, rows 1-46: id -> severity. "defer (open-ended)" is severity defer.
SPEC_SEVERITY = {
    "age_under_18": "defer",
    "pregnancy": "do_not_treat",
    "breastfeeding": "review",
    "isotretinoin": "defer",
    "topical_retinoid_or_exfoliant_in_area": "defer",
    "anticoagulant_or_antiplatelet": "review",
    "nsaid_elective_prp": "defer",
    "systemic_corticosteroid_recent_prp": "defer",
    "immunosuppression": "review",
    "bleeding_disorder": "do_not_treat",
    "blood_draw_concern_prp": "review",
    "blood_borne_virus": "review",
    "active_cancer_treatment": "do_not_treat",
    "cancer_treatment_completed_recent": "defer",
    "cancer_history_prp": "review",
    "radiotherapy_to_area": "review",
    "diabetes_controlled": "review",
    "diabetes_uncontrolled": "do_not_treat",
    "scleroderma_or_morphoea": "do_not_treat",
    "autoimmune_connective_tissue_disease": "review",
    "koebner_prone_dermatosis": "review",
    "vitiligo_unstable": "defer",
    "keloid_history": "do_not_treat",
    "hypertrophic_scar_history": "review",
    "acute_illness_or_fever": "defer",
    "implanted_electronic_device": "do_not_treat",
    "metal_implant_in_area": "do_not_treat",
    "permanent_filler_or_implant_in_area": "review",  # rf: do_not_treat (an override)
    "herpes_simplex_active": "defer",
    "herpes_simplex_history": "review",
    "active_skin_infection_in_area": "defer",
    "open_wound_in_area": "defer",
    "inflammatory_dermatosis_flare_in_area": "defer",
    "active_acne_or_rosacea_in_area": "review",
    "skin_cancer_or_suspicious_lesion_in_area": "do_not_treat",
    "sunburn_or_tanning_in_area": "defer",
    "pigmentation_risk": "review",
    "recent_injectable_in_area": "defer",
    "recent_superficial_procedure_in_area": "defer",
    "recent_deep_resurfacing_in_area": "defer",
    "recent_microneedling_in_area": "defer",
    "recent_surgery_or_thread_lift_in_area": "defer",
    "topical_anaesthetic_allergy": "review",
    "metal_allergy": "review",
    "product_allergy_or_prior_reaction": "review",
    "unsure_answer": "review",
}
SPEC_IDS = list(SPEC_SEVERITY)

# "Variants" column: rules limited to some variants (all others: all).
SPEC_VARIANTS = {
    "nsaid_elective_prp": {"prp"},
    "systemic_corticosteroid_recent_prp": {"prp"},
    "blood_draw_concern_prp": {"prp"},
    "cancer_history_prp": {"prp"},
    "implanted_electronic_device": {"rf"},
    "metal_implant_in_area": {"rf"},
}
# "defer (open-ended)" rows.
SPEC_OPEN_ENDED = {
    "acute_illness_or_fever",
    "herpes_simplex_active",
    "active_skin_infection_in_area",
    "open_wound_in_area",
    "inflammatory_dermatosis_flare_in_area",
}
# "Window" column for dated deferrals: (amount, unit).
SPEC_WINDOWS = {
    "age_under_18": (18, "years"),
    "isotretinoin": (6, "months"),
    "topical_retinoid_or_exfoliant_in_area": (7, "days"),
    "nsaid_elective_prp": (7, "days"),
    "systemic_corticosteroid_recent_prp": (14, "days"),
    "cancer_treatment_completed_recent": (6, "months"),
    "vitiligo_unstable": (12, "months"),
    "sunburn_or_tanning_in_area": (14, "days"),
    "recent_injectable_in_area": (14, "days"),
    "recent_superficial_procedure_in_area": (14, "days"),
    "recent_deep_resurfacing_in_area": (3, "months"),
    "recent_microneedling_in_area": (28, "days"),
    "recent_surgery_or_thread_lift_in_area": (6, "months"),
}


def test_spec_lists_46_distinct_rules():
    assert len(SPEC_IDS) == 46 == len(set(SPEC_IDS))
    counts = {s: list(SPEC_SEVERITY.values()).count(s) for s in ("do_not_treat", "defer", "review")}
    assert counts == {"do_not_treat": 9, "defer": 18, "review": 19}


def test_shipped_rules_load_against_the_shipped_dictionary(ruleset):
    # load_rules raises RulesError on any fault; the fixture loaded it.
    assert len(ruleset) == 46
    assert ruleset.source == str(RULES_PATH)


def test_shipped_rules_have_exactly_the_spec_ids(ruleset):
    ids = [r.id for r in ruleset.rules]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(SPEC_IDS)


def test_shipped_rules_have_the_spec_severities(ruleset):
    assert {r.id: r.severity for r in ruleset.rules} == SPEC_SEVERITY
    assert ruleset.counts() == {"do_not_treat": 9, "defer": 18, "review": 19}


def test_shipped_rules_have_the_spec_variants(ruleset):
    for r in ruleset.rules:
        assert r.variants == frozenset(SPEC_VARIANTS.get(r.id, qd.VARIANTS)), r.id


def test_permanent_filler_is_do_not_treat_for_rf_only(ruleset):
    rule = next(r for r in ruleset.rules if r.id == "permanent_filler_or_implant_in_area")
    assert [(o.variants, o.severity, o.when) for o in rule.overrides] == [(frozenset({"rf"}), "do_not_treat", None)]
    answers = clear_answers(permanent_filler="yes", permanent_filler_location=["cheeks"])
    for variant, outcome in [("standard", "REVIEW"), ("prp", "REVIEW"), ("rf", "DO_NOT_TREAT")]:
        assert evaluate_on_the_day(ruleset, {**answers, "treatment_variant": variant}).outcome == outcome, variant


def test_shipped_rules_have_the_spec_windows(ruleset):
    by_id = {r.id: r for r in ruleset.rules}
    for rid in SPEC_OPEN_ENDED:
        assert by_id[rid].window_open_ended and by_id[rid].duration is None, rid
    dated = {r.id: (r.duration.amount, r.duration.unit) for r in ruleset.rules if r.duration is not None}
    assert dated == SPEC_WINDOWS
    # Longer windows by variant: rows 39 and 42.
    superficial = by_id["recent_superficial_procedure_in_area"].overrides
    assert [(o.variants, o.duration.amount, o.duration.unit) for o in superficial] == [(frozenset({"rf"}), 21, "days")]
    surgery = by_id["recent_surgery_or_thread_lift_in_area"].overrides
    assert [(o.variants, o.duration.amount, o.duration.unit) for o in surgery] == [(frozenset({"rf"}), 12, "months")]
    assert surgery[0].when is not None  # only on the face


def test_only_defer_rules_have_windows(ruleset):
    for r in ruleset.rules:
        has_window = r.window_open_ended or r.duration is not None
        assert has_window == (r.severity == "defer"), r.id


# ---------------------------------------------------------------------------
# Broken rules files
# ---------------------------------------------------------------------------

REVIEW = textwrap.dedent("""\
    rules:
      - id: sample_review
        title: Sample review
        severity: review
        when: {question: breastfeeding, op: eq, value: "yes"}
        reason: The client is breastfeeding.
        action: Check the device labelling.
        sources: ["R25 [V]"]
    """)

DEFER = textwrap.dedent("""\
    rules:
      - id: sample_defer
        title: Sample deferral
        severity: defer
        when: {question: sun_exposure_14d, op: eq, value: "yes"}
        window: {days: 14, from: sun_exposure_date}
        reason: The client has tanned in the last 14 days.
        action: Defer until 14 days after the last exposure.
        sources: ["R12 [V]"]
    """)

GROUP = textwrap.dedent("""\
    rules:
      - id: sample_group
        title: Sample group rule
        severity: defer
        for_each: injectables
        when: {field: location, op: overlaps_booking}
        window: {days: 14, from: {field: date}}
        reason: An injection was given in the area within 14 days.
        action: Defer until 14 days after the injection.
        sources: ["R30 [P]"]
    """)


def _edit(text: str, old: str, new: str, after: str = "") -> str:
    """Replace the first ``old`` that follows ``after`` in ``text`` (which must contain both)."""
    start = text.index(after) if after else 0
    at = text.index(old, start)
    return text[:at] + new + text[at + len(old):]


def _line_of(text: str, needle: str, after: str = "") -> int:
    """Return the 1-based line of the first ``needle`` that follows ``after``."""
    start = text.index(after) if after else 0
    return text.count("\n", 0, text.index(needle, start)) + 1


@dataclasses.dataclass
class Case:
    """A broken file and the problems it must be rejected with: (rule id, line marker, [words])."""

    text: str
    expected: list[tuple[str, str | int | None, list[str]]]
    after: str = ""  # markers are looked for after this text (the shipped file has many rules)

    def line(self, marker: str | int | None) -> int | None:
        if marker is None or isinstance(marker, int):
            return marker
        return _line_of(self.text, marker, self.after)


def broken(template: str, old: str, new: str, rule: str, at: str, *words: str, more=(), after: str = "") -> Case:
    """Break ``template`` by replacing ``old`` with ``new``; expect ``words`` about ``rule`` on the line of ``at``."""
    return Case(_edit(template, old, new, after), [(rule, at, list(words)), *more], after)


DUPLICATE_IDS = REVIEW + textwrap.indent(textwrap.dedent("""\
    - id: sample_review
      title: Another rule
      severity: review
      when: {question: melasma, op: eq, value: "yes"}
      reason: The client has melasma.
      action: Use conservative settings.
      sources: ["R19 [V]"]
    """), "  ")

CASES = {
    # -- questions, operators and values ------------------------------------------------
    "unknown_question_with_suggestion": broken(
        REVIEW, "question: breastfeeding", "question: breastfeding", "sample_review", "breastfeding",
        "unknown question 'breastfeding'", "did you mean 'breastfeeding'"),
    "unknown_question_in_shipped_file": broken(
        SHIPPED, "question: pregnant,", "question: pregnnt,", "pregnancy", "pregnnt",
        "unknown question 'pregnnt'", "did you mean 'pregnant'", after="id: pregnancy"),
    "within_last_on_yes_no_question": broken(
        REVIEW, 'op: eq, value: "yes"', "op: within_last, value: {days: 7}", "sample_review", "within_last",
        "operator 'within_last' does not fit 'breastfeeding'", "yes_no question", "use one of: eq, in"),
    "overlaps_booking_on_date_question": broken(
        DEFER, '{question: sun_exposure_14d, op: eq, value: "yes"}',
        "{question: sun_exposure_date, op: overlaps_booking}", "sample_defer", "overlaps_booking",
        "operator 'overlaps_booking' does not fit 'sun_exposure_date'", "date question"),
    "unknown_operator_with_suggestion": broken(
        REVIEW, "op: eq", "op: contains", "sample_review", "op: contains",
        "unknown operator 'contains'", "did you mean 'contains_any'"),
    "operator_missing_its_value": broken(
        REVIEW, ', value: "yes"}', "}", "sample_review", "when:", "operator 'eq' needs a value"),
    "operator_that_takes_no_value": broken(
        DEFER, '{question: sun_exposure_14d, op: eq, value: "yes"}',
        "{question: sun_exposure_location, op: overlaps_booking, value: [cheeks]}", "sample_defer",
        "sun_exposure_location", "operator 'overlaps_booking' takes no value"),
    "value_not_a_choice": broken(
        REVIEW, 'value: "yes"', 'value: "maybe"', "sample_review", "maybe",
        "value 'maybe' is not a choice of 'breastfeeding'", "choices: yes, no"),
    "value_not_a_choice_in_list": broken(
        SHIPPED, '- {question: fitzpatrick, op: in, value: [type_4, type_5, type_6, not_sure]}',
        '- {question: fitzpatrick, op: in, value: [type_4, type_5, type_7, not_sure]}',
        "pigmentation_risk", "type_7", "value 'type_7' is not a choice of 'fitzpatrick'",
        "did you mean 'type_", after="id: pigmentation_risk"),
    "bare_yes_on_single_choice_question": broken(
        REVIEW, '{question: breastfeeding, op: eq, value: "yes"}', "{question: fitzpatrick, op: eq, value: yes}",
        "sample_review", "fitzpatrick", "value True is not a choice of 'fitzpatrick'"),
    "age_under_not_a_number": broken(
        REVIEW, '{question: breastfeeding, op: eq, value: "yes"}', '{question: dob, op: age_under, value: "18"}',
        "sample_review", "age_under", "operator 'age_under' needs a whole number of years", "'18'"),
    "condition_not_a_mapping": broken(
        REVIEW, '{question: breastfeeding, op: eq, value: "yes"}', "{any: [breastfeeding]}",
        "sample_review", "any:", "a condition must be a mapping"),
    "unknown_condition_key": broken(
        REVIEW, '{question: breastfeeding, op: eq, value: "yes"}', '{qestion: breastfeeding, op: eq, value: "yes"}',
        "sample_review", "qestion", "unknown condition key", "did you mean 'question'"),
    # -- all / any / not ----------------------------------------------------------------
    "empty_all_list": broken(
        REVIEW, '{question: breastfeeding, op: eq, value: "yes"}', "{all: []}",
        "sample_review", "all: []", "'all' needs a non-empty list of conditions"),
    "not_with_another_key": broken(
        REVIEW, 'when: {question: breastfeeding, op: eq, value: "yes"}',
        'when:\n      not: {question: breastfeeding, op: eq, value: "no"}\n      question: breastfeeding',
        "sample_review", "not:", "'not' must stand alone in its mapping"),
    "any_with_another_key": broken(
        REVIEW, 'when: {question: breastfeeding, op: eq, value: "yes"}',
        'when:\n      any: [{question: breastfeeding, op: eq, value: "yes"}]\n      op: eq',
        "sample_review", "any:", "'any' must stand alone in its mapping"),
    "any_unsure_except_unknown_question": broken(
        SHIPPED, "except: [pregnant]", "except: [pregant]", "unsure_answer", "except:",
        "unknown question 'pregant'", "did you mean 'pregnant'", after="id: unsure_answer"),
    # -- variants -----------------------------------------------------------------------
    "unknown_variant": broken(
        SHIPPED, "variants: [prp]", "variants: [prpp]", "nsaid_elective_prp", "variants:",
        "unknown variant 'prpp'", "did you mean 'prp'", "variants: all, or a list of standard, rf, prp",
        after="id: nsaid_elective_prp"),
    "unknown_variant_in_condition": broken(
        SHIPPED, "- {variant: [rf]}", "- {variant: [radiofrequency]}", "metal_allergy", "radiofrequency",
        "unknown variant 'radiofrequency'", "variants: standard, rf, prp", after="id: metal_allergy"),
    "unknown_variant_in_override": broken(
        SHIPPED, "- variants: [rf]", "- variants: [rff]", "permanent_filler_or_implant_in_area", "[rff]",
        "unknown variant 'rff'", "did you mean 'rf'", after="id: permanent_filler_or_implant_in_area"),
    # -- windows ------------------------------------------------------------------------
    "window_zero": broken(
        DEFER, "days: 14,", "days: 0,", "sample_defer", "window:",
        "window 'days' must be a whole number above 0, not 0"),
    "window_negative": broken(
        SHIPPED, "months: 6", "months: -6", "isotretinoin", "months: -6",
        "window 'months' must be a whole number above 0, not -6", after="id: isotretinoin"),
    "window_not_a_whole_number": broken(
        DEFER, "days: 14,", "days: 1.5,", "sample_defer", "window:", "'window.days'", "integer"),
    "window_two_units": broken(
        DEFER, "{days: 14,", "{days: 14, weeks: 2,", "sample_defer", "window:",
        "window needs exactly one of days, weeks, months, years"),
    "window_without_unit": broken(
        DEFER, "{days: 14, from:", "{from:", "sample_defer", "window:",
        "window needs exactly one of days, weeks, months, years"),
    "window_unknown_unit_with_suggestion": broken(
        DEFER, "days: 14", "dayz: 14", "sample_defer", "window:", "'window.dayz' unknown key", "did you mean 'days'"),
    "window_unknown_unit": broken(
        DEFER, "days: 14", "fortnights: 1", "sample_defer", "window:", "'window.fortnights' unknown key"),
    "window_missing_from": broken(
        DEFER, ", from: sun_exposure_date}", "}", "sample_defer", "window:", "'window.from' is required"),
    "window_from_not_a_date_question": broken(
        DEFER, "from: sun_exposure_date", "from: sun_exposure_14d", "sample_defer", "window:",
        "'sun_exposure_14d' is a yes_no_unsure question, not a date"),
    "window_from_unknown_question": broken(
        DEFER, "from: sun_exposure_date", "from: sun_exposure_dat", "sample_defer", "window:",
        "unknown date question 'sun_exposure_dat'", "did you mean 'sun_exposure_date'"),
    "window_from_list_entry_not_a_date": broken(
        SHIPPED, "date: isotretinoin_planned_end_date", "date: isotretinoin_current", "isotretinoin",
        "- when: {question: isotretinoin_current, op: eq, value: \"yes\"}",
        "'isotretinoin_current' is a yes_no_unsure question, not a date", after="id: isotretinoin"),
    "open_ended_misspelt": broken(
        SHIPPED, "window: open_ended", "window: open-ended", "acute_illness_or_fever", "open-ended",
        "'open_ended'", after="id: acute_illness_or_fever",
        more=[("acute_illness_or_fever", "open-ended", ["dictionary"])]),
    "defer_rule_without_window": broken(
        DEFER, "    window: {days: 14, from: sun_exposure_date}\n", "", "sample_defer", "- id: sample_defer",
        "a defer rule needs a 'window'"),
    "review_rule_with_window": broken(
        REVIEW, "    reason:", "    window: {days: 7, from: nsaid_last_dose_date}\n    reason:", "sample_review",
        "window:", "a review rule takes no 'window'"),
    "window_longer_than_question_looks_back": broken(
        SHIPPED, "days: 7", "days: 14", "nsaid_elective_prp", "days: 14",
        "window of 14 days is longer than question 'nsaid_last_7d' looks back (7 days)",
        after="id: nsaid_elective_prp"),
    "window_in_months_longer_than_lookback": broken(
        SHIPPED, "months: 6,", "months: 13,", "cancer_treatment_completed_recent", "months: 13",
        "window of 13 months is longer than question 'cancer_treatment_last_12m' looks back (12 months)",
        after="id: cancer_treatment_completed_recent"),
    "group_window_longer_than_lookback": broken(
        SHIPPED, "days: 28", "weeks: 14", "recent_microneedling_in_area", "weeks: 14",
        "window of 14 weeks is longer than question 'microneedling_3m' looks back (3 months)",
        after="id: recent_microneedling_in_area"),
    # -- rule keys ----------------------------------------------------------------------
    "duplicate_rule_id": Case(DUPLICATE_IDS, [
        ("sample_review", 9, ["duplicate id", "rule #1 already uses 'sample_review'"])]),
    "duplicate_rule_id_in_shipped_file": broken(
        SHIPPED, "- id: breastfeeding", "- id: pregnancy", "pregnancy", "- id: pregnancy\n    title: Breastfeeding",
        "duplicate id", "already uses 'pregnancy'"),
    "unknown_severity_with_suggestion": broken(
        REVIEW, "severity: review", "severity: reveiw", "sample_review", "severity:",
        "unknown severity 'reveiw'", "did you mean 'review'", "severities: review, defer, do_not_treat"),
    "severity_key_misspelt": broken(
        SHIPPED, "severity: review", "sevrity: review", "breastfeeding", "sevrity",
        "'sevrity' unknown key", "did you mean 'severity'", after="id: breastfeeding",
        more=[("breastfeeding", "id: breastfeeding", ["'severity' is required"])]),
    "missing_reason": broken(
        REVIEW, "    reason: The client is breastfeeding.\n", "", "sample_review", "- id:", "'reason' is required"),
    "missing_action": broken(
        REVIEW, "    action: Check the device labelling.\n", "", "sample_review", "- id:", "'action' is required"),
    "missing_sources": broken(
        REVIEW, '    sources: ["R25 [V]"]\n', "", "sample_review", "- id:", "'sources' is required"),
    "empty_sources": broken(
        REVIEW, 'sources: ["R25 [V]"]', "sources: []", "sample_review", "sources:", "'sources'", "at least 1 item"),
    "blank_reason": broken(
        REVIEW, "reason: The client is breastfeeding.", 'reason: "   "', "sample_review", "reason:",
        "'reason'", "must not be blank"),
    "bad_rule_id": broken(
        REVIEW, "id: sample_review", "id: Sample-Review", "Sample-Review", "- id:", "'id'", "pattern"),
    # A rule that is not a mapping fails the file's shape (pydantic: rules is a list of mappings).
    "rule_not_a_mapping": Case(REVIEW + "  - just a string\n", [
        ("(file)", 9, ["the file must be a mapping with a 'rules' list"])]),
    # -- for_each and fields ------------------------------------------------------------
    "field_without_for_each": broken(
        REVIEW, '{question: breastfeeding, op: eq, value: "yes"}', "{field: location, op: overlaps_booking}",
        "sample_review", "when:", "'field' is only allowed in a rule with 'for_each'"),
    "for_each_not_a_group": broken(
        GROUP, "for_each: injectables", "for_each: injectables_12m", "sample_group", "for_each:",
        "'for_each' must name repeatable group questions, not 'injectables_12m'", "did you mean 'injectables'"),
    "unknown_field_with_suggestion": broken(
        GROUP, "field: location", "field: locaton", "sample_group", "locaton",
        "unknown field 'locaton' of 'injectables'", "did you mean 'location'"),
    "window_from_field_not_a_date": broken(
        GROUP, "from: {field: date}", "from: {field: location}", "sample_group", "window:",
        "'location' is not a date field of 'injectables'"),
    # -- overrides ----------------------------------------------------------------------
    "override_without_severity_or_window": broken(
        SHIPPED, "      - variants: [rf]\n        severity: do_not_treat\n", "      - variants: [rf]\n",
        "permanent_filler_or_implant_in_area", "- variants: [rf]",
        "an override must change 'severity', 'window', 'reason' or 'action'", after="id: permanent_filler_or_implant_in_area"),
    "override_window_without_dated_window": broken(
        SHIPPED, "    window: open_ended\n", "    window: open_ended\n    overrides:\n      - window: {days: 3}\n",
        "acute_illness_or_fever", "- window: {days: 3}", "an override 'window' needs the rule's own dated window",
        after="id: acute_illness_or_fever"),
    "override_unknown_severity": broken(
        SHIPPED, "severity: do_not_treat\n    reason: There is permanent",
        "severity: dnt\n    reason: There is permanent", "permanent_filler_or_implant_in_area", "severity: dnt",
        "'overrides.0.severity'", "unknown severity 'dnt'", after="id: permanent_filler_or_implant_in_area"),
    # -- YAML and file shape ------------------------------------------------------------
    "duplicate_yaml_key_in_rule": broken(
        REVIEW, "    when:", "    severity: do_not_treat\n    when:", "sample_review", "severity: do_not_treat",
        "key 'severity' appears twice in one mapping"),
    "duplicate_yaml_key_in_condition": broken(
        REVIEW, "{question: breastfeeding,", "{question: breastfeeding, question: pregnant,", "sample_review",
        "when:", "key 'question' appears twice in one mapping"),
    "duplicate_yaml_key_in_shipped_file": broken(
        SHIPPED, "    action: Do not treat.\n", "    action: Do not treat.\n    action: Refer.\n",
        "bleeding_disorder", "action: Refer.", "key 'action' appears twice in one mapping",
        after="id: bleeding_disorder"),
    "duplicate_top_level_key": Case("rules: []\n" + REVIEW, [("(file)", 2, ["key 'rules' appears twice"])]),
    "invalid_yaml_bad_indentation": broken(
        REVIEW, "    severity: review", "     severity: review", "(file)", "severity: review",
        "not valid YAML", "mapping values are not allowed here"),
    "invalid_yaml_tab": broken(
        REVIEW, "    reason:", "\treason:", "(file)", "\treason", "not valid YAML", "found character '\\t'"),
    "top_level_is_a_list": Case(textwrap.dedent(REVIEW.replace("rules:\n", "")), [
        ("(file)", 1, ["the file must be a mapping with a 'rules' list"])]),
    "missing_rules_key": Case(REVIEW.replace("rules:", "rule:"), [
        ("(file)", 1, ["the file must be a mapping with a 'rules' list"])]),
    "unknown_top_level_key": Case("version: 2\n" + REVIEW, [
        ("(file)", 1, ["the file must be a mapping with a 'rules' list", "version is not allowed"])]),
    "rules_not_a_list": Case("rules: {id: x}\n", [("(file)", 1, ["the file must be a mapping with a 'rules' list"])]),
    "no_rules": Case("# nothing yet\nrules: []\n", [("(file)", 2, ["the file has no rules"])]),
}


def _matches(problem, rule_id, line, words) -> bool:
    return (problem.rule_id == rule_id and problem.line == line
            and all(w.lower() in problem.message.lower() for w in words))


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_broken_rules_file_is_rejected(case: Case):
    with pytest.raises(RulesError) as info:
        parse_rules(case.text.encode(), "broken.yaml")
    problems = info.value.problems
    expected = [(rule_id, case.line(at), words) for rule_id, at, words in case.expected]
    for rule_id, line, words in expected:
        assert any(_matches(p, rule_id, line, words) for p in problems), (
            f"no problem for rule {rule_id!r} on line {line} with {words}; got {problems}")
    # No stray problems besides the fault itself.
    assert len(problems) == len(expected), problems
    # The error message names the file, line and rule of each problem.
    for p in problems:
        where = f"broken.yaml:{p.line}: " if p.line else "broken.yaml: "
        assert f"{where}rule '{p.rule_id}': {p.message}" in str(info.value)


TWO_RULES = DUPLICATE_IDS.replace("id: sample_review\n    title: Another", "id: sample_other\n    title: Another")


@pytest.mark.parametrize("template", [REVIEW, DEFER, GROUP, TWO_RULES], ids=["review", "defer", "group", "two_rules"])
def test_templates_of_broken_files_are_valid(template):
    """The broken files above are valid but for the one edit each makes."""
    ruleset = parse_rules(template.encode(), "template.yaml")
    assert len(ruleset) == template.count("- id:")


def test_edits_of_the_shipped_file_hit_the_intended_rule():
    """Each edit of the shipped file changes it (the text it replaces exists after its anchor)."""
    for name, case in CASES.items():
        if case.after:
            assert case.text != SHIPPED, name


def test_all_faults_are_reported_not_just_the_first():
    text = textwrap.dedent("""\
        rules:
          - id: first
            title: Two faults in one rule
            severity: defer
            when: {question: sun_exposure_14, op: eq, value: "yes"}
            window: {days: 0, from: sun_exposure_date}
            reason: R.
            action: A.
            sources: ["x"]
          - id: fine
            title: A valid rule
            severity: review
            when: {question: melasma, op: eq, value: "yes"}
            reason: R.
            action: A.
            sources: ["x"]
          - id: third
            title: Bad severity
            severity: deffer
            when: {question: melasma, op: eq, value: "yes"}
            reason: R.
            action: A.
            sources: ["x"]
          - id: fourth
            title: Bad value and bad variant
            severity: review
            variants: [standard, pr]
            when:
              any:
                - {question: melasma, op: eq, value: "maybe"}
                - {question: anaemia, op: within_last, value: {days: 3}}
            reason: R.
            action: A.
            sources: ["x"]
          - id: fine
            title: Duplicate id
            severity: review
            when: {question: melasma, op: eq, value: "yes"}
            reason: R.
            action: A.
            sources: []
        """)
    with pytest.raises(RulesError) as info:
        parse_rules(text.encode(), "many.yaml")
    got = [(p.rule_id, p.line) for p in info.value.problems]
    assert got == [
        ("first", 5),  # unknown question
        ("first", 6),  # window 0
        ("third", 19),  # unknown severity
        ("fourth", 27),  # unknown variant
        ("fourth", 30),  # value not a choice
        ("fourth", 31),  # within_last on a yes/no question
        ("fine", 35),  # duplicate id
        ("fine", 41),  # empty sources
    ]
    messages = [p.message for p in info.value.problems]
    assert "unknown question 'sun_exposure_14'" in messages[0]
    assert "above 0" in messages[1]
    assert "unknown severity 'deffer'" in messages[2]
    assert "unknown variant 'pr'" in messages[3]
    assert "'maybe' is not a choice" in messages[4]
    assert "'within_last' does not fit 'anaemia'" in messages[5]
    assert "duplicate id" in messages[6]
    assert "'sources'" in messages[7]


def test_all_faults_in_the_shipped_file_are_reported():
    text = _edit(SHIPPED, "value: 18", "value: eighteen", after="id: age_under_18")
    text = _edit(text, "op: eq", "op: equals", after="id: keloid_history")
    text = _edit(text, "days: 28", "days: 0", after="id: recent_microneedling_in_area")
    with pytest.raises(RulesError) as info:
        parse_rules(text.encode(), "rules.yaml")
    got = [(p.rule_id, p.line) for p in info.value.problems]
    assert got == [
        ("age_under_18", _line_of(text, "eighteen")),
        ("keloid_history", _line_of(text, "op: equals")),
        ("recent_microneedling_in_area", _line_of(text, "days: 0")),
    ]


def test_load_rules_reports_a_missing_file(tmp_path):
    with pytest.raises(RulesError) as info:
        load_rules(tmp_path / "nope.yaml")
    [problem] = info.value.problems
    assert problem.rule_id == "(file)" and "cannot read the file" in problem.message


def test_not_utf8_is_rejected():
    with pytest.raises(RulesError) as info:
        parse_rules(REVIEW.replace("breastfeeding.", "breastfeeding \xe9.").encode("latin-1"), "latin.yaml")
    assert "not UTF-8" in info.value.problems[0].message


# ---------------------------------------------------------------------------
# Bare YAML yes / no
# ---------------------------------------------------------------------------

BARE = textwrap.dedent("""\
    rules:
      - id: breastfeeding_yes
        title: Bare yes
        severity: review
        when: {question: breastfeeding, op: eq, value: yes}
        reason: R.
        action: A.
        sources: ["x"]
      - id: breastfeeding_no
        title: Bare no
        severity: review
        when: {question: breastfeeding, op: eq, value: no}
        reason: R.
        action: A.
        sources: ["x"]
      - id: pregnant_yes_or_unsure
        title: Bare yes in a list
        severity: do_not_treat
        when: {question: pregnant, op: in, value: [yes, unsure]}
        reason: R.
        action: A.
        sources: ["x"]
      - id: melasma_on
        title: YAML 1.1 'on' is a boolean too
        severity: review
        when: {question: melasma, op: eq, value: on}
        reason: R.
        action: A.
        sources: ["x"]
    """)


def _fired(ruleset, **answers) -> set[str]:
    return {f.id for f in evaluate_on_the_day(ruleset, clear_answers(**answers)).flags}


def test_bare_yes_no_values_mean_yes_and_no():
    ruleset = parse_rules(BARE.encode(), "bare.yaml")
    assert _fired(ruleset) == {"breastfeeding_no"}
    assert _fired(ruleset, breastfeeding="yes") == {"breastfeeding_yes"}
    assert _fired(ruleset, pregnant="yes") == {"breastfeeding_no", "pregnant_yes_or_unsure"}
    assert _fired(ruleset, pregnant="unsure") == {"breastfeeding_no", "pregnant_yes_or_unsure"}
    assert _fired(ruleset, melasma="yes") == {"breastfeeding_no", "melasma_on"}


def test_bare_yes_no_behave_exactly_like_quoted_strings():
    bare = parse_rules(BARE.encode(), "bare.yaml")
    quoted_text = (BARE.replace("value: yes}", 'value: "yes"}').replace("value: no}", 'value: "no"}')
                   .replace("[yes, unsure]", '["yes", "unsure"]').replace("value: on}", 'value: "yes"}'))
    assert quoted_text.count('"yes"') == 3
    quoted = parse_rules(quoted_text.encode(), "quoted.yaml")
    for changes in [{}, {"breastfeeding": "yes"}, {"pregnant": "unsure"}, {"melasma": "yes"}]:
        a = evaluate_on_the_day(bare, clear_answers(**changes)).to_dict()
        b = evaluate_on_the_day(quoted, clear_answers(**changes)).to_dict()
        assert a.pop("rules_digest") != b.pop("rules_digest")
        assert a == b


# ---------------------------------------------------------------------------
# Digest
# ---------------------------------------------------------------------------


def test_digest_is_the_sha256_of_the_file_bytes(ruleset):
    data = RULES_PATH.read_bytes()
    assert ruleset.digest == hashlib.sha256(data).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", ruleset.digest)
    assert parse_rules(data, "x").digest == ruleset.digest
    assert evaluate_on_the_day(ruleset, clear_answers()).rules_digest == ruleset.digest


def test_digest_changes_when_one_byte_changes(tmp_path):
    data = RULES_PATH.read_bytes()
    # One byte of a comment: the rules are the same, the file is not.
    at = data.index(b"# Microneedling")
    changed = data[:at + 2] + b"m" + data[at + 3:]
    assert len(changed) == len(data) and sum(a != b for a, b in zip(data, changed)) == 1
    path = tmp_path / "rules.yaml"
    path.write_bytes(changed)
    ruleset = load_rules(path)
    assert ruleset.digest == hashlib.sha256(changed).hexdigest() != hashlib.sha256(data).hexdigest()
    # A window edited from 6 to 7 months changes it too.
    edited = _edit(SHIPPED, "months: 6", "months: 7", after="id: cancer_treatment_completed_recent").encode()
    assert parse_rules(edited, "x").digest == hashlib.sha256(edited).hexdigest()
    assert parse_rules(edited, "x").digest not in (hashlib.sha256(data).hexdigest(), ruleset.digest)


def test_the_engine_is_pure():
    """No module of the rules package imports Flask, SQLAlchemy or anything of the web app."""
    import ast

    package = ROOT / "screening" / "rules"
    modules = sorted(package.glob("*.py"))
    assert {p.stem for p in modules} >= {"__init__", "answers", "conditions", "dates", "engine", "errors", "schema"}
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in {"flask", "flask_sqlalchemy", "sqlalchemy", "werkzeug", "wtforms"}, \
                    (path.name, name)
                # Of the rest of the product, only the data dictionary (``from .. import questions``).
                assert not name.startswith("..") or name == "..", (path.name, name)
