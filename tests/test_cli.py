"""The ``flask screening ...`` commands, run through Flask's CLI test runner."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import pytest

from screening import create_app
from screening import questions as qd
from screening.config import ROOT
from tests.answers import clear_answers

EXAMPLES = ROOT / "examples"
RULES_PATH = ROOT / "rules.yaml"


@pytest.fixture(scope="module")
def app():
    return create_app({"RULES_PATH": str(RULES_PATH)})


@pytest.fixture
def run(app):
    runner = app.test_cli_runner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(args=["screening", *args], input=input)

    return invoke


ANSWERED_ON = "2026-11-29"  # the examples' answers were given then, two days before their appointment


def _evaluate_ok(run, *args, input=None) -> dict:
    result = run("evaluate", "--answered-on", ANSWERED_ON, *args, input=input)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return json.loads(result.stdout)


# ---------------------------------------------------------------------------
# check-rules
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("args", [(), (str(RULES_PATH),)], ids=["default", "path"])
def test_check_rules_passes_the_shipped_file_with_a_one_line_summary(run, args):
    result = run("check-rules", *args)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    digest = hashlib.sha256(RULES_PATH.read_bytes()).hexdigest()
    assert lines[0] == (f"{RULES_PATH}: OK, 46 rules (9 do_not_treat, 18 defer, 19 review), "
                        f"dictionary {qd.VERSION}, sha256 {digest[:16]}")


def test_check_rules_lists_every_error_of_a_broken_file(run, tmp_path):
    text = RULES_PATH.read_text(encoding="utf-8")
    broken = text
    for old, new in [('value: ["yes", "unsure"]', 'value: ["yes", "perhaps"]'),
                     ("severity: review\n    when: {question: breastfeeding",
                      "severity: reveiw\n    when: {question: breastfeeding"),
                     ("when: {question: keloid_history,", "when: {question: keloid,")]:
        assert broken.count(old) == 1, old
        broken = broken.replace(old, new)
    path = tmp_path / "rules.yaml"
    path.write_text(broken, encoding="utf-8")
    lines = broken.splitlines()

    def line_of(needle: str) -> int:
        return next(n for n, line in enumerate(lines, 1) if needle in line)

    result = run("check-rules", str(path))
    assert result.exit_code == 1
    assert result.stdout == ""
    err = result.stderr.splitlines()
    assert err[0] == f"{path}: 3 problem(s):"
    assert err[1:] == [
        f"  {path}:{line_of('perhaps')}: rule 'pregnancy': value 'perhaps' is not a choice of 'pregnant'; "
        "choices: yes, no, unsure",
        f"  {path}:{line_of('reveiw')}: rule 'breastfeeding': 'severity' unknown severity 'reveiw' "
        "(did you mean 'review'?); severities: review, defer, do_not_treat",
        f"  {path}:{line_of('question: keloid,')}: rule 'keloid_history': unknown question 'keloid' "
        "(did you mean 'keloid_history'?)",
    ]


def test_check_rules_reports_invalid_yaml_and_a_missing_file(run, tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - id: x\n   title: y\n", encoding="utf-8")
    result = run("check-rules", str(path))
    assert result.exit_code == 1
    assert f"{path}:3: rule '(file)': not valid YAML" in result.stderr

    result = run("check-rules", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 1
    assert "cannot read the file" in result.stderr


# ---------------------------------------------------------------------------
# questions
# ---------------------------------------------------------------------------


def test_questions_as_text_lists_every_question(run):
    result = run("questions")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"Data dictionary {qd.VERSION}: {len(qd.QUESTIONS)} questions"
    listed = [m.group(1) for line in lines if (m := re.match(r"^  (\w+) \[", line))]
    assert listed == [q.id for s in qd.SECTIONS for q in qd.questions_in(s.id)]
    assert sorted(listed) == sorted(q.id for q in qd.QUESTIONS)
    assert "  isotretinoin_current [yes_no_unsure, required, asked when isotretinoin_last_12m eq yes]" in lines
    for section in qd.SECTIONS:
        assert f"== {section.title} ({section.id})" in lines


def test_questions_as_json_has_every_question_and_the_version(run):
    result = run("questions", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["version"] == qd.VERSION
    assert [q["id"] for q in data["questions"]] == [q.id for q in qd.QUESTIONS]
    by_id = {q["id"]: q for q in data["questions"]}
    assert by_id["pregnant"]["type"] == "yes_no_unsure"
    assert [c["code"] for c in by_id["treatment_variant"]["choices"]] == ["standard", "rf", "prp", "unknown"]
    assert [f["id"] for f in by_id["injectables"]["fields"]] == ["type", "date", "location"]
    assert by_id["nsaid_last_7d"]["lookback"] == [7, "days"]


def test_questions_rejects_an_unknown_format(run):
    result = run("questions", "--format", "yaml")
    assert result.exit_code == 2
    assert "'yaml' is not one of 'text', 'json'" in result.stderr


# ---------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------

FLAG_KEYS = {"id", "severity", "reason", "action", "lifts_on", "because"}


def _flags(out: dict) -> dict:
    return {(f["id"], f["severity"]): f for f in out["flags"]}


def test_evaluate_clear_example(run):
    out = _evaluate_ok(run, str(EXAMPLES / "clear.json"))
    assert {"outcome", "earliest_date", "open_ended", "flags", "rules_digest"} <= set(out)
    assert out["outcome"] == "CLEAR"
    assert out["earliest_date"] is None and out["open_ended"] is False
    assert out["flags"] == []
    assert out["rules_digest"] == hashlib.sha256(RULES_PATH.read_bytes()).hexdigest()


def test_evaluate_defer_example(run):
    out = _evaluate_ok(run, str(EXAMPLES / "defer.json"))
    assert out["outcome"] == "DEFER"
    assert out["earliest_date"] == "2027-03-01"  # 2026-08-31 + 6 months: the 1st of the next month
    assert out["open_ended"] is False
    flags = _flags(out)
    assert set(flags) == {("isotretinoin", "defer"), ("herpes_simplex_history", "review")}
    iso = flags["isotretinoin", "defer"]
    assert FLAG_KEYS <= set(iso)
    assert iso["lifts_on"] == "2027-03-01"
    # Only the answers that made it fire (spec v2, 0.8): not "taking it now? no".
    assert iso["because"] == {"isotretinoin_last_12m": "yes", "isotretinoin_last_dose_date": "2026-08-31"}
    assert iso["reason"] and iso["action"]
    assert flags["herpes_simplex_history", "review"]["lifts_on"] is None


def test_evaluate_do_not_treat_example(run):
    out = _evaluate_ok(run, str(EXAMPLES / "do_not_treat.json"))
    assert out["outcome"] == "DO_NOT_TREAT"
    assert out["earliest_date"] is None  # no overall date for DO NOT TREAT, even with a deferral
    flags = _flags(out)
    assert set(flags) == {("implanted_electronic_device", "do_not_treat"), ("acute_illness_or_fever", "defer")}
    assert flags["implanted_electronic_device", "do_not_treat"]["because"] == {
        "implanted_device": "yes", "treatment_variant": "rf"}
    fever = flags["acute_illness_or_fever", "defer"]
    assert fever["lifts_on"] is None and fever["open_ended"] is True
    assert [f["severity"] for f in out["flags"]] == ["do_not_treat", "defer"]  # worst first


def test_evaluate_variant_unknown_example_checks_every_variant(run):
    out = _evaluate_ok(run, str(EXAMPLES / "variant_unknown.json"))
    assert out["outcome"] == "DO_NOT_TREAT"
    assert out["variants_evaluated"] == ["standard", "rf", "prp"]
    flags = _flags(out)
    assert flags["permanent_filler_or_implant_in_area", "do_not_treat"]["variants"] == ["rf"]
    assert flags["permanent_filler_or_implant_in_area", "review"]["variants"] == ["standard", "prp"]
    assert flags["nsaid_elective_prp", "defer"]["lifts_on"] == "2026-12-05"


def test_evaluate_vague_answers_example_is_never_clear(run):
    out = _evaluate_ok(run, str(EXAMPLES / "vague_answers.json"))
    flags = {f["id"]: f for f in out["flags"]}
    # Eyelid surgery in September, "somewhere else": facial by nature, RF on the face: 12 months from 30 Sep.
    assert out["outcome"] == "DEFER" and out["earliest_date"] == "2027-09-30"
    assert flags["recent_surgery_or_thread_lift_in_area"]["lifts_on"] == "2027-09-30"
    assert flags["metal_allergy"]["because"] == {"metal_allergy_which": ["other"]}  # "another metal"
    wound = flags["open_wound_in_area"]  # "somewhere else": not ruled out, so the practitioner asks
    assert wound["possible"] is True and wound["severity"] == "review"
    assert wound["because"]["open_wound_location"] == ["elsewhere"]


@pytest.mark.parametrize("name", ["clear", "defer", "do_not_treat", "variant_unknown", "vague_answers"])
def test_evaluate_from_stdin_matches_the_file(run, name):
    path = EXAMPLES / f"{name}.json"
    assert _evaluate_ok(run, "-", input=path.read_text(encoding="utf-8")) == _evaluate_ok(run, str(path))


def test_evaluate_output_is_pretty_json(run):
    result = run("evaluate", "--answered-on", ANSWERED_ON, str(EXAMPLES / "defer.json"))
    assert result.stdout.startswith('{\n  "outcome": "DEFER",\n  "by_variant": {\n    "standard": "DEFER"\n  },\n')


def _evaluate_error(run, text: str, answered_on: str = ANSWERED_ON) -> list[str]:
    result = run("evaluate", "--answered-on", answered_on, "-", input=text)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""  # no result is printed for answers that cannot be evaluated
    return result.stderr.splitlines()


def test_evaluate_rejects_bad_json(run):
    err = _evaluate_error(run, '{"pregnant": "no",\n "dob": }')
    assert err == ["error: not valid JSON: Expecting value at line 2, column 9"]


def test_evaluate_rejects_answers_that_are_not_an_object(run):
    err = _evaluate_error(run, '["pregnant", "no"]')
    assert "  answers must be an object mapping question ids to answers" in err


def test_evaluate_names_each_unknown_question(run):
    answers = clear_answers(pregnnt="no", favourite_colour="blue")
    err = _evaluate_error(run, json.dumps(answers))
    assert err == [
        "error: the answers cannot be evaluated:",
        "  unknown question 'pregnnt' (did you mean 'pregnant'?)",
        "  unknown question 'favourite_colour'",
    ]


def test_evaluate_names_each_wrong_type(run):
    answers = clear_answers(
        pregnant="maybe",
        treatment_areas="full_face",
        dob="27/03/1990",
        appointment_date="2026-02-30",
        topical_actives=["none", "retinol"],
        injectables_12m="yes",
        injectables=[{"type": "botox", "date": "2026-11-01", "location": ["cheeks"]}],
    )
    err = _evaluate_error(run, json.dumps(answers))
    assert err[0] == "error: the answers cannot be evaluated:"
    assert sorted(err[1:]) == sorted([
        "  'dob' must be a date written YYYY-MM-DD",
        "  'appointment_date' '2026-02-30' is not a real date",
        "  'treatment_areas' must be a list of choices, e.g. [\"full_face\"]",
        "  'pregnant' 'maybe' is not one of: yes, no, unsure",
        "  'topical_actives' 'none' cannot be chosen with other choices",
        "  'injectables' item 1 'type' 'botox' is not one of: botulinum_toxin, ha_filler, biostimulator, "
        "skin_booster, mesotherapy",
    ])


def test_evaluate_names_each_missing_required_answer(run):
    answers = clear_answers(isotretinoin_last_12m="yes", metal_allergy="yes")
    for qid in ("pregnant", "fitzpatrick", "appointment_date"):
        del answers[qid]
    err = _evaluate_error(run, json.dumps(answers))
    assert err == [
        "error: the answers cannot be evaluated:",
        "  missing required answers: appointment_date, pregnant, isotretinoin_current, fitzpatrick, "
        "metal_allergy_which",
    ]


def test_evaluate_reports_problems_and_missing_answers_together(run):
    answers = clear_answers(pregnnt="no", breastfeeding="unsure")
    del answers["dob"]
    err = _evaluate_error(run, json.dumps(answers))
    assert err == [
        "error: the answers cannot be evaluated:",
        "  unknown question 'pregnnt' (did you mean 'pregnant'?)",
        "  'breastfeeding' 'unsure' is not one of: yes, no",
        "  missing required answers: dob",
    ]


def test_evaluate_takes_the_day_the_answers_were_given(run):
    out = _evaluate_ok(run, str(EXAMPLES / "clear.json"))  # given 2026-11-29, appointment 2026-12-01
    assert out["answered_on"] == ANSWERED_ON and out["out_of_date"] is False
    confirm = {c["question"]: c for c in out["to_confirm_on_the_day"]}
    assert confirm["pregnant"] == {"question": "pregnant", "wording": qd.BY_ID["pregnant"].label, "answer": "no"}
    assert "keloid_history" not in confirm
    on_the_day = run("evaluate", "--answered-on", "2026-12-01", str(EXAMPLES / "clear.json"))
    assert json.loads(on_the_day.stdout)["to_confirm_on_the_day"] == []
    early = run("evaluate", "--answered-on", "2026-11-02", str(EXAMPLES / "clear.json"))
    assert json.loads(early.stdout)["out_of_date"] is True  # 29 days before


def test_evaluate_answered_on_defaults_to_today(run):
    soon = (dt.date.today() + dt.timedelta(days=3)).isoformat()
    result = run("evaluate", "-", input=json.dumps(clear_answers(appointment_date=soon)))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["answered_on"] == dt.date.today().isoformat()


def test_evaluate_refuses_a_bad_answered_on(run):
    result = run("evaluate", "--answered-on", "29/11/2026", str(EXAMPLES / "clear.json"))
    assert result.exit_code == 2 and "answered-on" in result.stderr


@pytest.mark.parametrize("changes, message", [
    (dict(isotretinoin_last_12m="yes", isotretinoin_current="yes", isotretinoin_planned_end_date="2026-11-01"),
     "  'isotretinoin_planned_end_date' 2026-11-01 is in the past (answers given on 2026-11-29), "
     "but the course is still being taken"),
    (dict(injectables_12m="yes", injectables=[{"type": "ha_filler", "date": "2026-12-05", "location": ["nose"]}]),
     "  'injectables' item 1 date 2026-12-05 is after the appointment (2026-12-01): a past event cannot be"),
    (dict(dob="1990-03-27", surgery_2y="yes",
          surgery=[{"type": "excision", "date": "1989-01-01", "location": ["back"]}]),
     "  'surgery' item 1 date 1989-01-01 is before the date of birth (1990-03-27)"),
    (dict(appointment_date="2026-11-28"),
     "  'appointment_date' 2026-11-28 is before the day the answers were given (2026-11-29)"),
])
def test_evaluate_refuses_implausible_answers_naming_them(run, changes, message):
    err = _evaluate_error(run, json.dumps(clear_answers(**changes)))
    assert err == ["error: the answers cannot be evaluated:", message]


def test_evaluate_missing_file_is_a_usage_error(run, tmp_path):
    result = run("evaluate", str(tmp_path / "nope.json"))
    assert result.exit_code == 2
    assert "No such file or directory" in result.stderr
