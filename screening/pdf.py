"""The practitioner's PDF: plain data from a stored submission, rendered by WeasyPrint.

One FontConfiguration and one parsed stylesheet serve every render in the process
(a new one per render leaks memory). The URL fetcher allows only ``data:`` URIs and
the app's own static files: a submission can never make the renderer reach elsewhere.
"""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import threading
import mimetypes
import os
from pathlib import Path
from typing import Any

from flask import render_template

from . import clock
from . import questions as qd
from .display import (OUTCOME_TEXT, SEVERITY_TEXT, VARIANT_SHORT, VARIANT_TEXT, format_answer, format_date,
                      format_moment, not_asked_reason)
from .rules import asked_ids

STATIC = Path(__file__).resolve().parent / "static"
STATIC_SCHEME = "app-static:"
PDF_VARIANT = "pdf/a-3u"  # archival (PDF/A-3, Unicode text); tagged on top with pdf_tags=True


class BlockedURL(ValueError):
    """The PDF asked for a resource outside data: URIs and the app's static files."""


def _fetcher_class():
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class StaticOnlyFetcher(URLFetcher):
        """Fetch ``data:`` URIs and ``app-static:`` files; refuse everything else."""

        def fetch(self, url, headers=None):
            if url.startswith("data:"):
                return super().fetch(url, headers)  # decoded in-process by urllib's DataHandler
            if url.startswith(STATIC_SCHEME):
                path = (STATIC / url[len(STATIC_SCHEME):].lstrip("/")).resolve()
                if path.is_relative_to(STATIC) and path.is_file():
                    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                    return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": mime})
            raise BlockedURL(f"blocked URL in PDF: {url[:80]}")

    return StaticOnlyFetcher


# fontTools stamps each font subset with the current time unless this is set: fix it, so that
# the same record always renders to the same bytes.
os.environ.setdefault("SOURCE_DATE_EPOCH", "0")

_lock = threading.Lock()
_shared: dict[str, Any] = {}
atexit.register(_shared.clear)  # release the FontConfiguration before the interpreter tears down


def _resources():
    """Return the process's FontConfiguration and parsed stylesheet, made once."""
    with _lock:
        if not _shared:
            from weasyprint import CSS
            from weasyprint.text.fonts import FontConfiguration

            fetcher = _fetcher_class()()
            fonts = FontConfiguration()
            css = CSS(filename=str(STATIC / "css" / "pdf.css"), url_fetcher=fetcher, font_config=fonts,
                      base_url=STATIC_SCHEME + "css/")
            _shared.update(fonts=fonts, css=css, fetcher=fetcher)
        return _shared["fonts"], _shared["css"], _shared["fetcher"]


def report_context(submission, clinic: dict, review: dict | None = None) -> dict:
    """Return everything the PDF shows, as plain data taken from the stored record.

    ``review`` is a sign-off as plain data (see ``staff.review_services.review_data``); with it the
    context gains a ``signoff`` key and the PDF becomes the signed-off version. Without it the
    context, and so the PDF, is exactly the original.
    """
    answers = dict(submission.answers)
    result = dict(submission.result)
    words = qd.dictionary(submission.dictionary_version)  # the questions as this client was asked them
    flags = []
    read_by: dict[str, list[int]] = {}  # question id -> the numbers of the flags whose "because" lists it
    for number, f in enumerate(result["flags"], 1):
        because = []
        for qid, value in f["because"].items():
            q = words.by_id.get(qid) or qd.BY_ID[qid]
            because.append({"question": q.label, "answer": format_answer(q, value)})
            read_by.setdefault(qid, []).append(number)
        flags.append({
            "id": f["id"], "number": number, "title": f["title"], "severity": f["severity"],
            "severity_text": SEVERITY_TEXT[f["severity"]], "reason": f["reason"], "action": f["action"],
            "lifts_on": format_date(f["lifts_on"]) if f["lifts_on"] else "",
            "open_ended": f["open_ended"], "because": because,
            "variants": ", ".join(VARIANT_TEXT[v] for v in f["variants"]),
            "possible": f.get("possible", False),
        })
    since, changed = _changes(submission)
    sections, matter_count = _answer_sections(words, answers, read_by, changed)
    # Spec v2: the outcome for each variant when the variant was not known, and what to confirm on the day.
    # Results stored before v2 have neither; they show as they always did.
    by_variant = result.get("by_variant") or {}
    answered_on = result.get("answered_on")
    to_confirm = []
    for item in result.get("to_confirm_on_the_day") or ():
        q = words.by_id.get(item["question"]) or qd.BY_ID.get(item["question"])
        to_confirm.append({"question": item["wording"],
                           "answer": format_answer(q, item["answer"]) if q else str(item["answer"])})
    areas = words.by_id["treatment_areas"]
    context = {
        "clinic_name": clinic["name"],
        "reference": submission.reference,
        "client_name": answers.get("full_name", ""),
        "dob": format_date(answers.get("dob")),
        "appointment_date": format_date(answers.get("appointment_date")),
        "variant": VARIANT_TEXT[answers.get("treatment_variant")],
        "variant_unknown": answers.get("treatment_variant") == qd.VARIANT_UNKNOWN,
        "areas": format_answer(areas, answers.get("treatment_areas")),
        "outcome": result["outcome"],
        "outcome_text": OUTCOME_TEXT[result["outcome"]],
        "earliest_date": format_date(result["earliest_date"]) if result["earliest_date"] else "",
        "open_ended": result["open_ended"],
        "flags": flags,
        "sections": sections,
        "matter_count": matter_count,
        "signature_name": submission.signature_name,
        "signed_at": format_moment(submission.signed_at),
        "submitted_at": format_moment(submission.submitted_at),
        "submitted_iso": _iso(submission.submitted_at),  # the PDF's metadata dates (UTC)
        "rules_digest": submission.rules_digest,
        "dictionary_version": submission.dictionary_version,
        "is_kiosk": submission.is_kiosk,
        "by_variant": [{"variant": VARIANT_SHORT[v], "outcome": by_variant[v], "outcome_text": OUTCOME_TEXT[by_variant[v]]}
                       for v in qd.VARIANTS if v in by_variant] if len(by_variant) > 1 else [],
        "answered_on": format_date(answered_on) if answered_on else "",
        "to_confirm": to_confirm,
        "out_of_date": bool(result.get("out_of_date")),
        # The clinic's own record of past sessions that rule 41 read, and where it differs from the answers.
        "clinic_record": [format_answer(qd.BY_ID["last_microneedling"], [item])
                          for item in result.get("clinic_record") or ()],
        "contradictions": list(result.get("contradictions") or ()),
        "day": _day(submission),
        "changed_since": since,  # the day of the screening this one was prefilled from ("" for a first one)
    }
    if review is not None:
        context["signoff"] = _signoff(review, flags)
    return context


def _day(submission) -> dict:
    """Return where the submission stands for the day of treatment: "Not yet confirmed on the day", or when it
    was confirmed. The confirmation is part of the stored record, and applying one clears the stored PDF, so a
    PDF always shows the record as it is."""
    if getattr(submission, "id", None) is None:
        return {"state": "", "text": ""}
    from .clients import services as clients
    from .extensions import db

    state = clients.day_state(db.session, submission)
    text = clients.DAY_LABELS.get(state, "")
    if state == clients.CONFIRMED:
        check = clients.confirmed_check(db.session, submission.id)
        if check is not None:
            text = f"Confirmed on the day at {format_moment(check.confirmed_at)}"
    return {"state": state, "text": text}


def _matters(q: qd.Question, value: Any, flagged: bool) -> tuple[bool, bool]:
    """Return (does the answer matter to a practitioner, is it vague) for one asked question.

    An answer matters when a flag read it, or it says more than "no": every "yes", every vague answer
    ("I'm not sure", "another one", "somewhere else", a date not known), every date, every choice other
    than "none of these" and every detail typed for a follow-up. Identity and contact details do not.
    """
    codes = value if isinstance(value, list) else [value]
    vague = value == qd.UNKNOWN or any(c.vague and c.code in codes for c in q.choices)
    if flagged or vague:
        return True, vague
    if value in (None, "", []):
        return False, False
    if q.type == qd.DATE or q.type == qd.GROUP:
        return True, False
    if q.type in (qd.YES_NO, qd.YES_NO_UNSURE):
        return value != "no", False
    if q.type in (qd.MULTI, qd.AREAS):
        return codes != [qd.NONE], False
    # A single choice or free text: what a follow-up adds matters; a top-level choice (treatment, skin
    # type) and the client's own details show with the other answers unless a flag read them.
    return q.asked_when is not None, False


def _changes(submission) -> tuple[str, frozenset[str]]:
    """Return (the day of the screening ``submission`` was prefilled from, the answers that differ from it)."""
    if not getattr(submission, "previous_id", None):
        return "", frozenset()
    from .clients.services import changes_of
    from .extensions import db

    changes = changes_of(db.session, submission)
    return (format_date(changes.since) if changes.since else ""), changes.questions


def _answer_sections(words: qd.Dictionary, answers: dict, read_by: dict[str, list[int]],
                     changed: frozenset[str] = frozenset()) -> tuple[list, int]:
    """Return the answers by section, each split three ways, and how many answers matter.

    ``rows``: every question in order (as before: ``question``, ``answer``, ``asked``); ``matter``: the
    asked questions whose answer matters (with the numbers of the flags that read it and whether it is
    vague); ``other``: the rest of the asked ones; ``not_asked``: the follow-ups not asked, one group
    per answer that left them out (the nearest asked question above them), in the dictionary's order.
    A group whose answer is in ``other`` is ``attached``: that row's ``not_asked`` lists its questions.
    """
    asked = set(asked_ids(answers, words))
    sections, matter_count = [], 0
    for section in words.sections:
        rows, matter, other, groups = [], [], [], {}
        for q in words.questions_in(section.id):
            if q.id not in asked:
                rows.append({"id": q.id, "question": q.label, "answer": not_asked_reason(q, answers, words=words),
                             "asked": False})
                parent = words.by_id[q.asked_when["question"]]
                while parent.id not in asked and parent.asked_when is not None:
                    parent = words.by_id[parent.asked_when["question"]]
                group = groups.get(parent.id)
                if group is None:
                    group = groups[parent.id] = {
                        "because_id": parent.id, "attached": False, "because_question": parent.label,
                        "because_answer": format_answer(parent, answers.get(parent.id)),
                        "questions": []}
                group["questions"].append(q.label)
                continue
            value = answers.get(q.id)
            row = {"id": q.id, "question": q.label, "answer": format_answer(q, value), "asked": True,
                   "changed": q.id in changed}
            rows.append(row)
            numbers = read_by.get(q.id, [])
            important, vague = _matters(q, value, bool(numbers))
            if important:
                matter.append({**row, "flags": numbers, "vague": vague})
            else:
                other.append(row)
        # A group left out by an answer listed with the other answers of the section reads best right after
        # that answer ("… — No. Not asked: Which one?"); the rest keep a line of their own with the reason.
        by_id = {row["id"]: row for row in other}
        for parent_id, group in groups.items():
            if parent_id in by_id:
                by_id[parent_id]["not_asked"] = group["questions"]
                group["attached"] = True
        matter_count += len(matter)
        sections.append({"id": section.id, "title": section.title, "rows": rows, "matter": matter,
                         "other": other, "not_asked": list(groups.values()),
                         "not_asked_count": sum(len(g["questions"]) for g in groups.values())})
    return sections, matter_count


def _signoff(review: dict, flags: list[dict]) -> dict:
    """Return a sign-off as the PDF shows it: decision, each acknowledgement, who and when, addenda."""
    acknowledgements = []
    for ack in review["acknowledgements"]:
        flag = flags[ack["flag_index"]] if ack["flag_index"] < len(flags) else {"title": "", "severity_text": ""}
        acknowledgements.append({"id": ack["flag_id"], "title": flag["title"], "severity_text": flag["severity_text"],
                                 "note": ack["note"], "is_override": ack["is_override"]})
    recorded = review.get("session")
    return {
        "session_text": recorded["text"] if recorded else "",
        "decision": review["decision"],
        "decision_text": review["decision_text"],
        "defer_until": format_date(review["defer_until"]) if review["defer_until"] else "",
        "note": review["note"],
        "practitioner": review["practitioner"],
        "signed_at": format_moment(review["signed_at"]),
        "signed_iso": _iso(review["signed_at"]),
        "acknowledgements": acknowledgements,
        "addenda": [{"author": a["author"], "created_at": format_moment(a["created_at"]), "text": a["text"]}
                    for a in review["addenda"]],
    }


def _iso(value: dt.datetime) -> str:
    """Return a stored moment as the PDF metadata's UTC date, to the minute (the same on every render)."""
    return clock.aware(value).astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:00Z")


def render(context: dict) -> bytes:
    """Render the report to PDF bytes; the same context always gives the same bytes."""
    from weasyprint import HTML

    fonts, css, fetcher = _resources()
    html = render_template("pdf/report.html", **context)
    document = HTML(string=html, base_url=STATIC_SCHEME, url_fetcher=fetcher).render(
        stylesheets=[css], font_config=fonts)
    # Fixed metadata from the record, so that a re-render is byte-identical.
    moment = context["submitted_iso"]
    document.metadata.created = moment
    document.metadata.modified = moment
    document.metadata.title = f"Screening {context['reference']}"
    if "signoff" in context:  # the signed-off version: modified when it was signed off
        document.metadata.modified = context["signoff"]["signed_iso"]
        document.metadata.title += " (signed off)"
    document.metadata.authors = [context["clinic_name"]]
    identifier = hashlib.sha256(context["reference"].encode()).hexdigest()[:32].encode()
    return document.write_pdf(pdf_variant=PDF_VARIANT, pdf_tags=True, pdf_identifier=identifier)
