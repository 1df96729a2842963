"""The practitioner's PDF as a document read in a minute (issue 12, items 10 to 12).

The outcome and flags first, then what to confirm on the day, then the answers that matter, then the other
answers compactly and the questions not asked in one line per follow-up group; the client's name, date of
birth and reference on every page; rule ids only in small print; a typical report on at most 4 A4 pages,
and no fact of the full report lost: every asked question's wording and answer, and every not-asked
follow-up's wording, are still in the extracted text.
"""

import datetime as dt
import io
import re

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from bench._common import typical_answers
from screening import pdf as pdf_module
from screening import questions as qd
from screening import services
from screening.display import format_answer
from screening.extensions import db
from screening.models import Submission
from screening.rules import asked_ids
from tests.answers import clear_answers
from tests.web import complete

FUTURE = (dt.date.today() + dt.timedelta(days=10)).isoformat()
RECENT = (dt.date.today() - dt.timedelta(days=20)).isoformat()

CASES = {
    "typical": typical_answers(),  # the report bench/bench_pdf.py renders
    "clear": clear_answers(appointment_date=FUTURE),
    "do_not_treat": clear_answers(appointment_date=FUTURE, keloid_history="yes", unwell_today="yes"),
    # Vague answers: "I'm not sure" raises a "Possible: ..." review flag; the treatment is not known.
    "vague": clear_answers(appointment_date=FUTURE, pregnant="unsure", diabetes="yes", diabetes_control="not_sure",
                           non_healing_wound="no", diabetes_admission_6m="no", treatment_variant="unknown"),
}


def squash(text: str) -> str:
    """Text without whitespace: a line may wrap anywhere (after a hyphen too) without losing the fact."""
    return re.sub(r"\s+", "", text)


def pages_of(data: bytes) -> list[str]:
    return [" ".join((page.extract_text() or "").split()) for page in PdfReader(io.BytesIO(data)).pages]


def render(app, client, given):
    reference = complete(client, given)
    with app.app_context(), app.test_request_context():
        row = db.session.scalar(select(Submission).where(Submission.reference == reference))
        data = services.ensure_pdf(db.session, row, app.config["CLINIC"])
        context = pdf_module.report_context(row, app.config["CLINIC"])
        return reference, data, context, dict(row.answers), dict(row.result)


@pytest.mark.parametrize("case", CASES)
def test_no_fact_of_the_full_report_is_lost(app, client, case):
    reference, data, context, answers, result = render(app, client, CASES[case])
    text = squash(" ".join(pages_of(data)))
    words = qd.dictionary(context["dictionary_version"])
    asked = asked_ids(answers, words)
    for qid in asked:
        q = words.by_id[qid]
        assert squash(q.label) in text, f"asked {qid}: its wording"
        assert squash(format_answer(q, answers.get(qid))) in text, f"asked {qid}: its answer"
    not_asked = [q for q in words.questions if q.id not in set(asked)]
    assert not_asked, "the cases leave follow-ups out"
    for q in not_asked:
        assert squash(q.label) in text, f"not asked {q.id}: its wording"
    for flag in result["flags"]:
        for part in (flag["title"], flag["reason"], flag["action"]):
            assert squash(part) in text, flag["id"]
    for fact in ("Test Clinic", context["client_name"], context["dob"], context["appointment_date"],
                 context["areas"], context["signature_name"], context["signed_at"], context["submitted_at"],
                 context["rules_digest"], context["dictionary_version"], reference):
        assert squash(fact) in text, fact


@pytest.mark.parametrize("case", CASES)
def test_every_page_names_the_client_with_date_of_birth_and_reference(app, client, case):
    reference, data, context, _, _ = render(app, client, CASES[case])
    pages = pages_of(data)
    assert len(pages) >= 2, "the check needs a page 2"
    running = f"{context['client_name']} · born {context['dob']} · Reference {reference}"
    for number, page in enumerate(pages, 1):
        assert running in page, f"page {number} does not say whose it is"
        assert f"Page {number} of {len(pages)}" in page


def test_a_typical_report_fits_on_four_pages_in_the_order_a_practitioner_reads(app, client):
    reference, data, context, answers, result = render(app, client, CASES["typical"])
    pages = pages_of(data)
    assert len(pages) <= 4, f"{len(pages)} pages"
    text = " ".join(pages)
    order = [text.index(heading) for heading in ("Outcome: DEFER", "Flags (3)", "To confirm on the day",
                                                  "Answers that matter", "Other answers", "Declaration",
                                                  "Practitioner sign-off")]
    assert order == sorted(order), order
    matter = squash(text[text.index("Answers that matter"):text.index("Other answers")])
    other = squash(text[text.index("Other answers"):text.index("Declaration")])
    words = qd.dictionary(context["dictionary_version"])
    # Every yes, every date and every answer a flag read is highlighted; a plain "no" is not.
    for qid in ("isotretinoin_last_12m", "isotretinoin_last_dose_date", "cold_sore_history", "permanent_filler",
                "permanent_filler_location", "treatment_areas", "injectables"):
        assert squash(words.by_id[qid].label) in matter, qid
    assert squash(words.by_id["pregnant"].label) not in matter and squash(words.by_id["pregnant"].label) in other
    # A follow-up group not asked: one line, right after the answer that left it out, not the question again.
    assert squash("Do you have diabetes (any type)? — No. Not asked:") in other
    assert "Not asked: the answer to" not in text
    # Rule ids only in small print, never in the flag's heading.
    for number, flag in enumerate(result["flags"], 1):
        assert f"{number}. " in text and f"({flag['id']})" not in text.replace(" ", "")
        assert f"Rule id: {flag['id']}" in text


def test_a_clear_result_is_said_in_words_for_people(app, client):
    _, data, _, _, _ = render(app, client, CASES["clear"])
    text = " ".join(pages_of(data))
    assert "No contraindication found in the answers" in text
    assert "No rule fired" not in text and "Rule id" not in text


def test_a_possible_flag_and_a_vague_answer_stand_out(app, client):
    _, data, context, _, result = render(app, client, CASES["vague"])
    text = " ".join(pages_of(data))
    possible = [f for f in result["flags"] if f.get("possible")]
    assert possible, "the case raises a Possible: flag"
    for flag in possible:
        assert flag["title"].startswith("Possible: ") and flag["title"] in text
    assert text.count("Raised by a vague answer: not ruled out, not confirmed") == len(possible)
    matter = text[text.index("Answers that matter"):text.index("Other answers")]
    assert matter.count("(vague: ask)") >= 3, "pregnant unsure, diabetes control not sure, the treatment not known"
    assert "Raised for:" in text, "the treatment was not known: each flag says which variants raised it"


def test_the_context_groups_the_questions_not_asked_by_the_answer_that_left_them_out(app, client):
    _, _, context, answers, _ = render(app, client, CASES["typical"])
    words = qd.dictionary(context["dictionary_version"])
    asked = set(asked_ids(answers, words))
    seen = []
    for section in context["sections"]:
        assert [r["id"] for r in section["rows"]] == [q.id for q in words.questions_in(section["id"])]
        matter = {r["id"] for r in section["matter"]}
        other = {r["id"] for r in section["other"]}
        assert not matter & other and matter | other == {r["id"] for r in section["rows"] if r["asked"]}
        attached = {label for r in section["other"] for label in r.get("not_asked", ())}
        for group in section["not_asked"]:
            assert group["because_id"] in asked
            assert group["because_answer"] == format_answer(words.by_id[group["because_id"]],
                                                            answers.get(group["because_id"]))
            assert group["attached"] == (group["because_id"] in other)
            if group["attached"]:
                assert set(group["questions"]) <= attached
            seen += group["questions"]
        assert section["not_asked_count"] == sum(len(g["questions"]) for g in section["not_asked"])
    assert sorted(seen) == sorted(q.label for q in words.questions if q.id not in asked)
    # A follow-up of a follow-up that was not asked is grouped under the answer that left out its parent.
    group = next(g for s in context["sections"] for g in s["not_asked"] if g["because_id"] == "topical_actives")
    assert len(group["questions"]) >= 2
    assert context["matter_count"] == sum(len(s["matter"]) for s in context["sections"])
    assert [f["number"] for f in context["flags"]] == list(range(1, len(context["flags"]) + 1))
