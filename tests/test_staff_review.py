"""The practitioner's side: the submissions list, the record, sign-off, addenda, PDFs and their audit."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from screening.crypto import vault
from screening.extensions import db
from screening.models import Addendum, AuditEvent, FlagAcknowledgement, Review, Submission
from screening.staff.accounts import create_user
from tests.answers import clear_answers
from tests.web import complete, csrf_token

PASSWORD = "correct horse battery"
TODAY = dt.date.today()
TOMORROW = TODAY + dt.timedelta(days=1)
FUTURE = TODAY + dt.timedelta(days=30)
RECENT = (TODAY - dt.timedelta(days=20)).isoformat()

# Isotretinoin stopped 20 days ago (defer) and cold sores (review): two flags, one of them overridable.
DEFER = dict(isotretinoin_last_12m="yes", isotretinoin_current="no", isotretinoin_last_dose_date=RECENT,
             cold_sore_history="yes", cold_sore_frequency="yearly")
REVIEW = dict(cold_sore_history="yes", cold_sore_frequency="yearly")
DO_NOT_TREAT = dict(keloid_history="yes")


def add_user(app, email="prac@clinic.test", roles=("practitioner",), name="Pat Practitioner"):
    with app.app_context():
        return create_user(db.session, email, name, list(roles), PASSWORD).id


def sign_in(app, email="prac@clinic.test", roles=("practitioner",), name="Pat Practitioner"):
    """Create a user and return a test client signed in as them."""
    add_user(app, email, roles, name)
    client = app.test_client()
    page = client.get("/staff/login")
    response = client.post("/staff/login", data={"csrf_token": csrf_token(page.text), "email": email,
                                                 "password": PASSWORD})
    assert response.status_code == 302
    return client


def submit(app, day=TODAY, **changes) -> str:
    """Complete the public questionnaire on a client of its own; return the reference.

    On the appointment day by default: answers given before it wait for the day's confirmation, and a decision to
    treat cannot be signed off until then (tests/test_course.py)."""
    return complete(app.test_client(), clear_answers(appointment_date=day.isoformat(), **changes))


def token(client, url="/staff/submissions") -> str:
    return csrf_token(client.get(url).text)


def row(app, model, **where):
    with app.app_context():
        query = select(model)
        for key, value in where.items():
            query = query.where(getattr(model, key) == value)
        return db.session.scalars(query).all()


def submission_id(app, reference) -> int:
    return row(app, Submission, reference=reference)[0].id


def summary_items(html: str) -> list[tuple[str, str]]:
    block = html.split('class="error-summary"', 1)[1].split("</div>", 1)[0]
    return re.findall(r'<li><a href="#([^"]+)">([^<]+)</a></li>', block)


def text_of(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)


def sign_off(client, reference, **data):
    return client.post(f"/staff/submissions/{reference}/sign-off",
                       data={"csrf_token": token(client, f"/staff/submissions/{reference}"), **data})


# -- the list ---------------------------------------------------------------------------------------


def test_the_list_shows_todays_appointments_by_default_then_any_date(app):
    today = submit(app, TODAY, full_name="Tess Today")
    tomorrow = submit(app, TOMORROW, full_name="Tom Tomorrow", **DEFER)
    client = sign_in(app)
    page = client.get("/staff/submissions")
    assert page.status_code == 200
    assert "Today’s appointments" in page.text
    assert today in page.text and "Tess Today" in page.text
    assert tomorrow not in page.text
    for value in (TOMORROW.isoformat(), f"{TOMORROW.day}/{TOMORROW.month}/{TOMORROW.year}"):
        page = client.get("/staff/submissions", query_string={"date": value})
        assert page.status_code == 200
        assert tomorrow in page.text and today not in page.text
    page = client.get("/staff/submissions?date=any")
    assert today in page.text and tomorrow in page.text and "All submissions" in page.text
    page = client.get("/staff/submissions?date=")
    assert today in page.text and tomorrow in page.text


@pytest.mark.parametrize("query, field, message", [
    ({"date": "31/02/2026"}, "date", "Enter the appointment date as day/month/year"),
    ({"date": "next week"}, "date", "Enter the appointment date as day/month/year"),
    ({"outcome": "MAYBE"}, "outcome", "Choose an outcome from the list"),
    ({"status": "lost"}, "status", "Choose a review status from the list"),
])
def test_a_bad_filter_says_what_is_wrong(app, query, field, message):
    client = sign_in(app)
    page = client.get("/staff/submissions", query_string=query)
    assert page.status_code == 400
    assert "<title>Error:" in page.text and "There is a problem" in page.text
    assert (field, message) in [(href, text[:len(message)]) for href, text in summary_items(page.text)]


def test_badges_show_the_outcome_in_words_as_well_as_colour(app):
    submit(app, TODAY)
    submit(app, TODAY, full_name="Dee Defer", **DEFER)
    submit(app, TODAY, full_name="Rae Review", **REVIEW)
    submit(app, TODAY, full_name="Nat Nottreat", **DO_NOT_TREAT)
    page = sign_in(app).get("/staff/submissions").text
    badges = dict(re.findall(r'class="outcome-badge outcome-(\w+)"><strong>([^<]+)</strong>', page))
    assert badges == {"clear": "CLEAR", "defer": "DEFER", "review": "PRACTITIONER REVIEW",
                      "do_not_treat": "DO NOT TREAT"}
    assert re.search(r"earliest treatment date: \d+ \w+ \d{4}", page), "a deferral shows its earliest date"
    assert page.count('class="status-tag status-new">New<') == 4


def test_search_by_name_date_of_birth_or_reference_is_posted_and_kept_out_of_urls(app):
    ann = submit(app, FUTURE)
    bob = submit(app, TOMORROW, full_name="Bob Other", dob="1985-01-02")
    client = sign_in(app)
    page = client.get("/staff/submissions")
    assert re.search(r'<form method="post" action="/staff/submissions"[^>]*id="search-form"', page.text)
    csrf = csrf_token(page.text)
    # Names are matched through a blind index: each typed word against the start of a word of the name.
    for data in ({"name": "ann exa"}, {"name": "EXAMPLE"}, {"name": "exam"},
                 {"birth_date-day": "27", "birth_date-month": "3", "birth_date-year": "1990"},
                 {"reference": ann.lower().replace("-", " ")}):
        response = client.post("/staff/submissions", data={"csrf_token": csrf, **data})
        assert response.status_code == 200, data  # the results themselves: no redirect to a URL holding them
        assert ann in response.text and bob not in response.text, data
        assert "Search results" in response.text
        assert "Ann" not in response.request.url and "1990" not in response.request.url
        # Nothing typed is lost, and no link on the page carries the search.
        for value in data.values():
            assert f'value="{value}"' in response.text
        assert not re.search(r'href="[^"]*(name=|birth_date|reference=)', response.text)
    response = client.post("/staff/submissions", data={"csrf_token": csrf, "name": "bob",
                                                       "birth_date-day": "2", "birth_date-month": "1",
                                                       "birth_date-year": "1985"})
    assert bob in response.text and ann not in response.text
    # A name in the query string searches nothing.
    page = client.get("/staff/submissions?date=any&name=bob")
    assert ann in page.text and bob in page.text
    # The date filter in force still applies to a search; without one a search looks at every date.
    response = client.post(f"/staff/submissions?date={TOMORROW.isoformat()}", data={"csrf_token": csrf, "name": "oth"})
    assert bob in response.text and ann not in response.text
    response = client.post("/staff/submissions", data={"csrf_token": csrf, "name": "xamp"})
    assert ann not in response.text and "No submissions match" in response.text
    with client.session_transaction() as sess:
        assert not any("bob" in str(v).lower() or "ann" in str(v).lower() for v in sess.values())


@pytest.mark.parametrize("data, field, message", [
    ({}, "name", "Enter a name, a date of birth or a reference to search for"),
    ({"name": "   "}, "name", "Enter a name, a date of birth or a reference to search for"),
    ({"birth_date-day": "31", "birth_date-month": "2", "birth_date-year": "1990"}, "birth_date-day",
     "Enter a real date of birth"),
    ({"birth_date-day": "3", "birth_date-year": "1990"}, "birth_date-day", "The date of birth must include a month"),
    ({"birth_date-day": "3", "birth_date-month": "x", "birth_date-year": "1990"}, "birth_date-day",
     "Enter a real date of birth"),
    ({"name": "a" * 121}, "name", "The name must be 120 characters or fewer"),
    ({"reference": "K" * 21}, "reference", "The reference must be 20 characters or fewer"),
])
def test_a_bad_search_says_what_is_wrong_and_keeps_what_was_typed(app, data, field, message):
    client = sign_in(app)
    response = client.post("/staff/submissions", data={"csrf_token": token(client), **data})
    assert response.status_code == 400
    assert "<title>Error:" in response.text
    assert (field, message) in [(href, text[:len(message)]) for href, text in summary_items(response.text)]
    for value in data.values():
        if value.strip():
            assert f'value="{value}"' in response.text


def test_search_needs_the_csrf_token(app):
    client = sign_in(app)
    assert client.post("/staff/submissions", data={"name": "ann"}).status_code == 400


def test_filter_by_outcome_and_status(app):
    clear = submit(app, TODAY)
    deferred = submit(app, FUTURE, full_name="Dee Defer", **DEFER)
    client = sign_in(app)
    assert sign_off(client, clear, decision="proceed").status_code == 302
    page = client.get("/staff/submissions?date=any&outcome=DEFER").text
    assert deferred in page and clear not in page
    page = client.get("/staff/submissions?date=any&outcome=CLEAR").text
    assert clear in page and deferred not in page
    page = client.get("/staff/submissions?date=any&status=signed_off").text
    assert clear in page and deferred not in page and "Signed off" in page and "Proceed" in page
    page = client.get("/staff/submissions?date=any&status=new").text
    assert deferred in page and clear not in page
    page = client.get("/staff/submissions?date=any&status=new&outcome=CLEAR").text
    assert "No submissions match" in page


def add_copies(app, reference, count, day):
    """Store ``count`` copies of a submission for ``day`` (fast: straight into the database)."""
    with app.app_context():
        source = db.session.scalar(select(Submission).where(Submission.reference == reference))
        for n in range(count):
            db.session.add(Submission(
                reference=f"P{n:03d}-COPY", answers={**source.answers, "full_name": f"Copy {n:03d}"},
                dictionary_version=source.dictionary_version, rules_digest=source.rules_digest,
                result=source.result, outcome=source.outcome, appointment_date=day,
                signature_name=f"Copy {n:03d}", signed_at=source.signed_at, answered_on=source.answered_on,
                name_index=vault().name_index(f"Copy {n:03d}"), dob_index=source.dob_index))
        db.session.commit()


def test_the_list_is_paginated_with_accessible_links(app):
    first = submit(app, TODAY)
    add_copies(app, first, 119, TODAY)
    client = sign_in(app)
    page = client.get("/staff/submissions").text
    assert "120 submissions" in page and "page 1 of 3" in page
    assert page.count("<tr>") == 1 + 50
    assert '<nav class="pagination" aria-label="Pages of results">' in page
    assert 'aria-current="page"><span class="visually-hidden">Page </span>1<' in page
    assert 'href="/staff/submissions?page=2"' in page and "Next page" in page
    page = client.get("/staff/submissions?page=3").text
    assert page.count("<tr>") == 1 + 20 and "Previous page" in page and "Next page" not in page
    assert "showing 101 to 120" in page
    page = client.get("/staff/submissions?page=99").text  # past the end: the last page
    assert "page 3 of 3" in page
    page = client.get("/staff/submissions?page=x").text
    assert "page 1 of 3" in page
    # A search's pages are buttons that POST the search form again: the name never reaches a URL.
    response = client.post("/staff/submissions", data={"csrf_token": token(client), "name": "copy"})
    assert "119 submissions" in response.text
    assert '<button class="page-button" type="submit" form="search-form" name="page" value="2">' in response.text
    response = client.post("/staff/submissions", data={"csrf_token": token(client), "name": "copy", "page": "3"})
    assert "showing 101 to 119" in response.text and response.text.count("<tr>") == 1 + 19


# -- the record --------------------------------------------------------------------------------------


def test_the_record_shows_the_outcome_first_then_every_flag_and_every_answer(app):
    reference = submit(app, TODAY, **DEFER)
    page = sign_in(app).get(f"/staff/submissions/{reference}")
    assert page.status_code == 200
    html = page.text
    with app.app_context():
        result = db.session.scalar(select(Submission).where(Submission.reference == reference)).result
    lifts = dt.date.fromisoformat(result["earliest_date"])
    banner = html.index('class="outcome-banner outcome-defer"')
    assert "Outcome:</span> DEFER</h2>" in html[banner:banner + 300]
    assert banner < html.index('id="flags"') < html.index('id="answers"') < html.index('id="sign-off"')
    assert f"Earliest treatment date: {lifts.day} {lifts:%B %Y}" in html[banner:banner + 600]
    assert "Ann Example" in html and "27 March 1990" in html
    for number, flag in enumerate(result["flags"], 1):
        heading = html.split(f'id="flag-{number - 1}-title">', 1)[1].split("</h3>", 1)[0]
        assert heading.startswith(f"{number}. ") and flag["title"] in heading
        assert flag["id"] not in heading, "a rule id is not words for people: small print below the flag"
        assert f'Rule id: <code>{flag["id"]}</code>' in html
        assert f"({flag['id']})" not in html, "not in running text, nor in the sign-off form's legend"
        assert flag["reason"] in html and flag["action"] in html
    assert "Recommended action" in html and "Answers that raised it" in html and "Raised for" in html
    assert "Roaccutane" in html, "the question that raised the flag"
    assert "Microneedling (pen, stamp or roller)" in html
    # The answers that matter, highlighted, before the rest; the rest folded by section; what was not asked in
    # one line per follow-up group with the answer that left it out.
    answers = html.index('id="answers"')
    assert answers < html.index('id="other-answers"') < html.index("<details") < html.index('id="sign-off"')
    matter = html[answers:html.index('id="other-answers"')]
    assert matter.count('class="answer-row matter-row"') >= 4
    assert "Roaccutane" in matter and 'href="#flag-0-title">Flag 1</a>' in matter
    assert "Are you pregnant" not in matter, "a plain no is not highlighted"
    folded = html[html.index('id="other-answers"'):html.index('id="sign-off"')]
    assert "Are you pregnant" in folded
    assert "Not asked, because “Do you have diabetes (any type)?” was “No”:" in folded
    assert "Not asked: the answer to" not in html
    assert "<title>Screening " + reference in html and "Ann Example –" not in html
    assert f'href="/staff/submissions/{reference}/pdf"' in html
    assert f'href="/staff/submissions/{reference}/pdf?download=1"' in html
    assert "version=signed" not in html, "no signed-off version before a sign-off"
    assert page.headers["Cache-Control"] == "no-store"


def test_a_wrong_reference_answers_like_any_other_missing_one(app):
    reference = submit(app)
    client = sign_in(app)
    first = client.get("/staff/submissions/ZZZZ-ZZZZ")
    second = client.get("/staff/submissions/" + reference[:-1] + ("A" if reference[-1] != "A" else "C"))
    third = client.get("/staff/submissions/not-a-reference")
    assert first.status_code == second.status_code == third.status_code == 404
    assert first.data == second.data == third.data
    pdfs = [client.get(f"/staff/submissions/{ref}/pdf") for ref in ("ZZZZ-ZZZZ", "QQQQ-QQQQ")]
    assert [p.status_code for p in pdfs] == [404, 404] and pdfs[0].data == pdfs[1].data == first.data
    assert client.post("/staff/submissions/ZZZZ-ZZZZ/sign-off",
                       data={"csrf_token": token(client), "decision": "proceed"}).status_code == 404
    assert client.get(f"/staff/submissions/{reference}/pdf?version=signed").status_code == 404
    assert client.get(f"/staff/submissions/{reference}/pdf?version=draft").status_code == 404


def test_the_record_lists_who_has_viewed_it(app):
    reference = submit(app)
    pat = sign_in(app)
    pat.get(f"/staff/submissions/{reference}")
    ada = sign_in(app, "admin@clinic.test", ("admin", "practitioner"), "Ada Admin")
    page = ada.get(f"/staff/submissions/{reference}").text
    viewers = page.split('id="viewers-title"', 1)[1]
    assert "Pat Practitioner —" in viewers and "Ada Admin —" in viewers and "UTC" in viewers
    assert viewers.index("Ada Admin") < viewers.index("Pat Practitioner"), "latest first"


def test_desk_staff_see_none_of_the_practitioner_pages(app):
    reference = submit(app, TODAY)
    desk = sign_in(app, "desk@clinic.test", ("desk",), "Dee Desk")
    csrf = csrf_token(desk.get("/staff/login").text)
    assert desk.get("/staff/submissions").status_code == 403
    assert desk.post("/staff/submissions", data={"csrf_token": csrf, "name": "ann"}).status_code == 403
    assert desk.get(f"/staff/submissions/{reference}").status_code == 403
    assert desk.get(f"/staff/submissions/{reference}/pdf").status_code == 403
    assert desk.get(f"/staff/submissions/{reference}/pdf?download=1").status_code == 403
    assert desk.post(f"/staff/submissions/{reference}/sign-off",
                     data={"csrf_token": csrf, "decision": "proceed"}).status_code == 403
    assert desk.post(f"/staff/submissions/{reference}/addenda",
                     data={"csrf_token": csrf, "text": "x"}).status_code == 403
    assert row(app, Review) == [] and row(app, Addendum) == []
    assert [e.action for e in row(app, AuditEvent) if e.submission_id] == []


def test_an_admin_reads_no_record_unless_also_a_practitioner(app):
    """Least privilege (issue 11 #6): the admin role manages accounts and the audit trail; records are for
    practitioners, and an admin reads them only if the account is a practitioner's too."""
    reference = submit(app, TODAY)
    admin = sign_in(app, "admin@clinic.test", ("admin",), "Ada Admin")
    csrf = csrf_token(admin.get("/staff/login").text)
    for url in ("/staff/submissions", f"/staff/submissions/{reference}", f"/staff/submissions/{reference}/pdf",
                f"/staff/desk/{reference}/pdf"):
        response = admin.get(url)
        assert response.status_code == 403 and "Ann Example" not in response.text, url
    assert admin.post("/staff/submissions", data={"csrf_token": csrf, "name": "ann"}).status_code == 403
    response = admin.post(f"/staff/submissions/{reference}/sign-off", data={"csrf_token": csrf, "decision": "proceed"})
    assert response.status_code == 403 and row(app, Review) == []
    assert [e.action for e in row(app, AuditEvent) if e.submission_id] == []
    both = sign_in(app, "ap@clinic.test", ("admin", "practitioner"), "Ava Both")
    assert both.get(f"/staff/submissions/{reference}").status_code == 200


# -- sign-off -------------------------------------------------------------------------------------------


def test_an_unacknowledged_flag_blocks_sign_off_and_nothing_typed_is_lost(app):
    reference = submit(app, **DEFER)
    client = sign_in(app)
    response = sign_off(client, reference, ack_1="yes", note_1="Aciclovir started", decision="decline",
                        note="Rebook in spring")
    assert response.status_code == 400
    html = response.text
    assert "<title>Error:" in html and "There is a problem" in html
    assert summary_items(html) == [
        ("ack_0-0", "Acknowledge the flag ‘Isotretinoin in the last 6 months’ (isotretinoin)")]
    assert 'id="ack_0-error"' in html
    assert 'value="Aciclovir started"' in html and "Rebook in spring</textarea>" in html
    assert re.search(r'id="ack_1-0"[^>]*checked|checked[^>]*id="ack_1-0"', html)
    assert re.search(r'checked[^>]*value="decline"|value="decline"[^>]*checked', html)
    assert row(app, Review) == [] and row(app, FlagAcknowledgement) == []


def test_proceeding_despite_a_defer_flag_needs_a_note(app):
    reference = submit(app, **DEFER)
    client = sign_in(app)
    response = sign_off(client, reference, ack_0="yes", ack_1="yes", decision="proceed")
    assert response.status_code == 400
    assert summary_items(response.text) == [
        ("note_0", "Give your reason for treating despite the flag ‘Isotretinoin in the last 6 months’ "
                   "(isotretinoin): proceeding overrides it")]
    assert row(app, Review) == []
    # Deferring or declining overrides nothing: no note needed.
    assert sign_off(client, reference, ack_0="yes", ack_1="yes", decision="decline").status_code == 302


def test_an_override_with_its_reason_is_stored_as_an_override(app):
    reference = submit(app, **DEFER)
    client = sign_in(app)
    response = sign_off(client, reference, ack_0="yes", note_0="Dermatologist letter: course was 3 days",
                        ack_1="yes", decision="proceed_with_precautions", note="Antivirals given")
    assert response.status_code == 302 and response.location.endswith(f"/staff/submissions/{reference}#sign-off")
    [review] = row(app, Review)
    assert review.decision == "proceed_with_precautions" and review.note == "Antivirals given"
    acks = sorted(row(app, FlagAcknowledgement), key=lambda a: a.flag_index)
    assert [(a.flag_id, a.is_override, a.note) for a in acks] == [
        ("isotretinoin", True, "Dermatologist letter: course was 3 days"),
        ("herpes_simplex_history", False, ""),
    ]
    page = client.get(f"/staff/submissions/{reference}").text
    assert "Signed off" in page and "Proceed with precautions" in page
    assert 'class="override-tag">Override<' in page and "Dermatologist letter" in page


@pytest.mark.parametrize("parts, message", [
    ({}, "Enter the date to defer until"),
    ({"defer_until-day": "1", "defer_until-year": "2030"}, "The date to defer until must include a month"),
    ({"defer_until-day": "30", "defer_until-month": "2", "defer_until-year": "2030"}, "Enter a real date"),
    ({"defer_until-day": "1", "defer_until-month": "1", "defer_until-year": "20"}, "Enter a real date"),
    ("yesterday", "The date to defer until must be today or later"),
])
def test_a_deferral_needs_a_real_date_today_or_later(app, parts, message):
    reference = submit(app)
    client = sign_in(app)
    if parts == "yesterday":
        day = TODAY - dt.timedelta(days=1)
        parts = {"defer_until-day": str(day.day), "defer_until-month": str(day.month),
                 "defer_until-year": str(day.year)}
    response = sign_off(client, reference, decision="defer", **parts)
    assert response.status_code == 400
    [(href, text)] = summary_items(response.text)
    assert href == "defer_until-day" and text.startswith(message)
    assert row(app, Review) == []


def test_a_deferral_stores_its_date(app):
    reference = submit(app)
    client = sign_in(app)
    response = sign_off(client, reference, decision="defer", **{
        "defer_until-day": str(TODAY.day), "defer_until-month": str(TODAY.month),
        "defer_until-year": str(TODAY.year)})
    assert response.status_code == 302
    assert row(app, Review)[0].defer_until == TODAY


@pytest.mark.parametrize("decision", ["", "maybe"])
def test_a_decision_is_required(app, decision):
    reference = submit(app)
    response = sign_off(sign_in(app), reference, decision=decision)
    assert response.status_code == 400
    assert summary_items(response.text) == [("decision-0", "Select a decision")]


def test_a_clear_submission_is_signed_off_with_just_a_decision_stored_with_who_and_when(app):
    reference = submit(app)
    client = sign_in(app)
    before = dt.datetime.now(dt.timezone.utc)
    response = sign_off(client, reference, decision="proceed")
    assert response.status_code == 302
    [review] = row(app, Review)
    [user] = [e.actor_id for e in row(app, AuditEvent, action="sign_in")]
    assert review.practitioner_id == user and review.submission_id == submission_id(app, reference)
    signed = review.signed_at if review.signed_at.tzinfo else review.signed_at.replace(tzinfo=dt.timezone.utc)
    signed = signed.astimezone(dt.timezone.utc)
    assert before - dt.timedelta(seconds=1) <= signed <= dt.datetime.now(dt.timezone.utc)
    assert row(app, FlagAcknowledgement) == []
    page = client.get(f"/staff/submissions/{reference}").text
    assert "Signed off. The sign-off is saved" in page
    assert "by Pat Practitioner," in page and f"{signed:%H:%M} UTC" in page
    assert 'action="/staff/submissions/' + reference + '/sign-off"' not in page
    assert "Add an addendum" in page


def test_a_second_sign_off_is_refused_with_409_and_changes_nothing(app):
    reference = submit(app, **DEFER)
    client = sign_in(app)
    assert sign_off(client, reference, ack_0="yes", ack_1="yes", decision="decline").status_code == 302
    [before] = [(r.id, r.decision, r.note, r.signed_at) for r in row(app, Review)]
    acks = [(a.id, a.note, a.is_override) for a in row(app, FlagAcknowledgement)]
    other = sign_in(app, "second@clinic.test", name="Sam Second")
    for data in ({"ack_0": "yes", "ack_1": "yes", "note_0": "changed my mind", "decision": "proceed"},
                 {"decision": ""}):
        response = sign_off(other, reference, **data)
        assert response.status_code == 409
        assert "signed off already" in response.text and "cannot be changed" in response.text
    assert [(r.id, r.decision, r.note, r.signed_at) for r in row(app, Review)] == [before]
    assert [(a.id, a.note, a.is_override) for a in row(app, FlagAcknowledgement)] == acks
    assert len(row(app, AuditEvent, action="sign_off")) == 1


def test_sign_off_needs_the_csrf_token(app):
    reference = submit(app)
    client = sign_in(app)
    assert client.post(f"/staff/submissions/{reference}/sign-off", data={"decision": "proceed"}).status_code == 400
    assert row(app, Review) == []


def test_an_addendum_follows_a_sign_off(app):
    reference = submit(app)
    client = sign_in(app)
    url = f"/staff/submissions/{reference}/addenda"
    response = client.post(url, data={"csrf_token": token(client), "text": "Too early"})
    assert response.status_code == 409 and "sign this submission off first" in response.text
    assert sign_off(client, reference, decision="proceed").status_code == 302
    response = client.post(url, data={"csrf_token": token(client), "text": "   "})
    assert response.status_code == 400
    assert summary_items(response.text) == [("text", "Enter the addendum")]
    response = client.post(url, data={"csrf_token": token(client), "text": "x" * 4001})
    assert response.status_code == 400 and "4,000 characters or fewer" in response.text
    response = client.post(url, data={"csrf_token": token(client), "text": "Client phoned: patch test done"})
    assert response.status_code == 302 and response.location.endswith("#addenda")
    [addendum] = row(app, Addendum)
    assert addendum.text == "Client phoned: patch test done"
    assert addendum.submission_id == submission_id(app, reference) and addendum.created_at is not None
    page = client.get(f"/staff/submissions/{reference}").text
    assert "Client phoned: patch test done" in page and "Addendum added." in page


# -- PDFs ----------------------------------------------------------------------------------------------


def test_pdf_inline_and_as_a_download(app):
    reference = submit(app)
    client = sign_in(app)
    inline = client.get(f"/staff/submissions/{reference}/pdf")
    assert inline.status_code == 200 and inline.mimetype == "application/pdf"
    assert inline.data.startswith(b"%PDF")
    assert inline.headers["Content-Disposition"].startswith("inline")
    assert inline.headers["Cache-Control"] == "no-store"
    download = client.get(f"/staff/submissions/{reference}/pdf?download=1")
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert f"screening-{reference}.pdf" in download.headers["Content-Disposition"]
    assert download.headers["Cache-Control"] == "no-store" and download.data == inline.data


def test_the_signed_off_pdf_is_a_new_version_and_the_original_is_unchanged(app):
    reference = submit(app, **DEFER)
    client = sign_in(app)
    original = client.get(f"/staff/submissions/{reference}/pdf").data
    assert client.get(f"/staff/submissions/{reference}/pdf?version=signed").status_code == 404
    response = sign_off(client, reference, ack_0="yes", note_0="Course was 3 days", ack_1="yes",
                        decision="proceed_with_precautions")
    assert response.status_code == 302
    page = client.get(f"/staff/submissions/{reference}").text
    assert f"/staff/submissions/{reference}/pdf?version=signed" in page
    signed = client.get(f"/staff/submissions/{reference}/pdf?version=signed")
    assert signed.status_code == 200 and signed.mimetype == "application/pdf"
    assert "signed-off" in signed.headers["Content-Disposition"]
    assert signed.data.startswith(b"%PDF") and signed.data != original
    text = text_of(signed.data)
    assert "Signed off: Proceed with precautions" in text and "Pat Practitioner" in text and "UTC" in text
    assert "OVERRIDE" in text and "Course was 3 days" in text
    assert "History of cold sores" in text
    assert "Signed off" not in text_of(original)
    again = client.get(f"/staff/submissions/{reference}/pdf?version=signed&download=1")
    assert again.data == signed.data and again.headers["Content-Disposition"].startswith("attachment")
    [stored] = row(app, Submission, reference=reference)
    keys = app.extensions["screening_vault"]
    assert stored.pdf == original and keys.pdf_intact(original, stored.pdf_hmac)
    [review] = row(app, Review)
    assert review.pdf == signed.data and keys.pdf_intact(signed.data, review.pdf_hmac)
    assert review.pdf_hmac != hashlib.sha256(signed.data).hexdigest(), "keyed, not a plain hash"
    assert client.get(f"/staff/submissions/{reference}/pdf").data == original


# -- the audit trail ---------------------------------------------------------------------------------------


def test_each_view_pdf_download_sign_off_and_addendum_is_audited_without_health_data(app):
    reference = submit(app, **DEFER)
    client = sign_in(app)
    client.get(f"/staff/submissions/{reference}")
    client.get(f"/staff/submissions/{reference}/pdf")
    client.get(f"/staff/submissions/{reference}/pdf?download=1")
    sign_off(client, reference, ack_0="yes", note_0="Short course, dermatologist agrees", ack_1="yes",
             decision="proceed")
    client.post(f"/staff/submissions/{reference}/addenda",
                data={"csrf_token": token(client), "text": "Client reports no cold sore this year"})
    client.get(f"/staff/submissions/{reference}/pdf?version=signed")
    client.post("/staff/submissions", data={"csrf_token": token(client), "name": "Ann Example"})
    sid = submission_id(app, reference)
    [actor] = [e.actor_id for e in row(app, AuditEvent, action="sign_in")]
    events = [e for e in row(app, AuditEvent) if e.submission_id == sid]
    actions = [e.action for e in events]
    for action in ("view_submission", "view_pdf", "download_pdf", "sign_off", "addendum"):
        assert action in actions, action
    assert actions.count("view_pdf") == 2 and actions.count("download_pdf") == 1
    assert all(e.actor_id == actor for e in events)
    with app.app_context():
        answers = db.session.get(Submission, sid).answers
        flag_ids = [f["id"] for f in db.session.get(Submission, sid).result["flags"]]
    forbidden = ["Ann", "Example", "1990", "yes", "no ", "isotretinoin", "cold", "Short course", "Client reports",
                 reference, *flag_ids, *[v for v in answers.values() if isinstance(v, str) and len(v) > 3]]
    for event in row(app, AuditEvent):
        for word in forbidden:
            assert word.lower() not in event.detail.lower(), (event.action, event.detail)
    details = {e.action: e.detail for e in events}
    assert re.fullmatch(r"review=\d+", details["sign_off"]) and re.fullmatch(r"addendum=\d+", details["addendum"])


def test_a_search_is_not_audited_or_stored(app):
    submit(app)
    client = sign_in(app)
    before = len(row(app, AuditEvent))
    client.post("/staff/submissions", data={"csrf_token": token(client), "name": "Ann"})
    assert len(row(app, AuditEvent)) == before
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.detail.contains("Ann"))) == 0
