"""Least privilege at the desk (issue 11 #6): the desk prints a desk sheet with no health data; the full PDF only
where the clinic turns it on; and what the client is told about who sees the answers is true either way."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from screening.extensions import db
from screening.models import AuditEvent
from tests.answers import clear_answers
from tests.staff import add_user, sign_in
from tests.web import complete

TODAY = dt.date.today()
NAME = "Dora Deskworth"
ONLY_PRACTITIONERS = "Only the clinic’s practitioners see them"
DESK_TOO = "The reception desk can also print them"


def _submit(app, **changes) -> str:
    # Pregnant: DO NOT TREAT, with a flag whose words must not reach the desk.
    return complete(app.test_client(), clear_answers(full_name=NAME, dob="1988-07-14",
                                                     appointment_date=TODAY.isoformat(), **changes))


@pytest.fixture
def desk(app):
    add_user(app, "desk@clinic.test", ["desk"])
    client = app.test_client()
    sign_in(client, "desk@clinic.test")
    return client


def _events(app, action) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action))


def test_the_desk_sheet_has_who_and_when_and_no_health_data(app, desk):
    reference = _submit(app, pregnant="yes")
    page = desk.get("/staff/desk")
    assert f'/staff/desk/{reference}/sheet' in page.text and "Open PDF" not in page.text
    sheet = desk.get(f"/staff/desk/{reference}/sheet")
    assert sheet.status_code == 200 and sheet.headers["Cache-Control"] == "no-store"
    text = sheet.text
    for shown in (NAME, "14 July 1988", reference, f"{TODAY.day} {TODAY:%B %Y}", "Submitted", "Not signed off yet"):
        assert shown in text, shown
    for hidden in ("DO_NOT_TREAT", "Do not treat", "DEFER", "Practitioner review", "CLEAR", "regnan", "flag"):
        assert hidden not in text, hidden
    assert _events(app, "print_desk_sheet") == 1


def test_by_default_the_desk_cannot_open_the_full_pdf_and_the_client_is_told_only_practitioners_see_answers(app, desk):
    reference = _submit(app, pregnant="yes")
    assert desk.get(f"/staff/desk/{reference}/pdf").status_code == 403
    assert _events(app, "print_pdf") == 0
    public = app.test_client()
    start = public.get("/").text
    assert ONLY_PRACTITIONERS in start and DESK_TOO not in start
    assert "The reception desk sees your name, date of birth and appointment, not your answers" in start


def test_where_the_clinic_allows_it_the_desk_prints_the_full_pdf_and_the_client_is_told_so(app, desk):
    app.config["DESK_FULL_PDF"] = True
    reference = _submit(app, pregnant="yes")
    page = desk.get("/staff/desk")
    assert "Open PDF" in page.text and "PDF pending" in page.text, "not rendered yet (no background renderer here)"
    response = desk.get(f"/staff/desk/{reference}/pdf")
    assert response.status_code == 200 and response.data.startswith(b"%PDF")
    assert "PDF pending" not in desk.get("/staff/desk").text
    start = app.test_client().get("/").text
    assert DESK_TOO in start and ONLY_PRACTITIONERS not in start


@pytest.mark.parametrize("full_pdf", [False, True])
def test_what_the_client_is_told_matches_what_the_desk_can_open(app, desk, full_pdf):
    """Whatever the setting, the start page's sentence about who sees the answers is true of the desk's access."""
    app.config["DESK_FULL_PDF"] = full_pdf
    reference = _submit(app)
    desk_reads_answers = desk.get(f"/staff/desk/{reference}/pdf").status_code == 200
    with app.test_client() as kiosk_free:
        told = kiosk_free.get("/").text
    assert (ONLY_PRACTITIONERS in told) == (not desk_reads_answers)
    assert (DESK_TOO in told) == desk_reads_answers
    # The desk's other pages hold no answer either way.
    assert "DO_NOT_TREAT" not in desk.get("/staff/desk").text


def test_a_practitioner_at_the_desk_may_open_the_full_pdf(app):
    reference = _submit(app)
    add_user(app, "prac@clinic.test", ["practitioner"])
    client = app.test_client()
    sign_in(client, "prac@clinic.test")
    assert "Open PDF" in client.get("/staff/desk").text
    assert client.get(f"/staff/desk/{reference}/pdf").status_code == 200
