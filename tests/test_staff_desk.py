"""The intake desk: today's clients, arrivals, PDFs; and the admin pages are not the desk's."""

import datetime as dt
import re

import pytest
from sqlalchemy import func, select

from screening import services
from screening.extensions import db
from screening.models import Arrival, AuditEvent
from screening.staff import desk
from tests.answers import clear_answers
from tests.staff import add_user, sign_in
from tests.web import csrf_token

TODAY = dt.date.today()


def submit(app, name, day, **changes) -> str:
    """Store a submission for ``name`` with an appointment on ``day``; return its reference."""
    with app.app_context():
        draft, _ = services.start_draft(db.session, dt.timedelta(hours=1))
        draft.answers = clear_answers(full_name=name, appointment_date=day.isoformat(), **changes)
        services.sign(db.session, draft, name)
        return services.submit(db.session, draft, app.extensions["screening_rules"]).reference


def count(app, model, **where):
    with app.app_context():
        query = select(func.count()).select_from(model)
        for key, value in where.items():
            query = query.where(getattr(model, key) == value)
        return db.session.scalar(query)


@pytest.fixture
def desk_client(app, client):
    add_user(app, "desk@clinic.test", ["desk"])
    sign_in(client, "desk@clinic.test")
    return client


def test_desk_lists_todays_clients_only_without_their_outcome(app, desk_client):
    today_ref = submit(app, "Tara Today", TODAY, pregnant="yes")  # an outcome the desk must not see
    tomorrow_ref = submit(app, "Tom Tomorrow", TODAY + dt.timedelta(days=1))
    page = desk_client.get("/staff/desk")
    assert page.status_code == 200
    assert "Tara Today" in page.text and today_ref in page.text
    assert "Tom Tomorrow" not in page.text and tomorrow_ref not in page.text
    assert "Screening received" in page.text
    for outcome in ("DO_NOT_TREAT", "Do not treat", "DEFER", "Defer", "Practitioner review", "CLEAR", "pregnan"):
        assert outcome not in page.text
    assert page.headers["Cache-Control"] == "no-store"


def test_desk_with_no_client_today_says_so(desk_client):
    assert "No client with an appointment today" in desk_client.get("/staff/desk").text


def test_signing_in_as_desk_starts_on_the_desk_page(app, client):
    add_user(app, "desk@clinic.test", ["desk"])
    assert sign_in(client, "desk@clinic.test").location.endswith("/staff/")
    assert client.get("/staff/").location.endswith("/staff/desk")


def test_mark_arrived_once_and_idempotent(app, desk_client):
    reference = submit(app, "Ann Arrival", TODAY)
    page = desk_client.get("/staff/desk")
    assert "Mark arrived" in page.text
    token = csrf_token(page.text)
    for _ in range(2):
        response = desk_client.post(f"/staff/desk/{reference}/arrived", data={"csrf_token": token})
        assert response.status_code == 302 and response.location.endswith(f"/staff/desk#client-{reference}")
    assert count(app, Arrival) == 1, "a second click does not add a second arrival"
    assert count(app, AuditEvent, action="mark_arrived") == 1
    page = desk_client.get("/staff/desk")
    assert re.search(r'class="arrived">Arrived \d\d:\d\d UTC<', page.text)  # the clinic's time, with its zone
    assert "Mark arrived" not in page.text


def test_mark_arrived_needs_csrf(app, desk_client):
    reference = submit(app, "Ann Arrival", TODAY)
    assert desk_client.post(f"/staff/desk/{reference}/arrived").status_code == 400
    assert count(app, Arrival) == 0


def test_the_arrival_service_keeps_one_row(app):
    reference = submit(app, "Ann Arrival", TODAY)
    add_user(app, "desk@clinic.test", ["desk"])
    with app.app_context():
        from screening.models import StaffUser

        user = db.session.scalar(select(StaffUser))
        submission = services.find_submission(db.session, reference)
        assert desk.mark_arrived(db.session, submission, user, "10.0.0.1") is True
        assert desk.mark_arrived(db.session, submission, user, "10.0.0.1") is False
    assert count(app, Arrival) == 1


def test_pdf_opens_inline_for_the_desk_and_is_audited(app, desk_client):
    app.config["DESK_FULL_PDF"] = True  # the clinic lets its desk print full PDFs (off by default)
    reference = submit(app, "Pia Printed", TODAY)
    response = desk_client.get(f"/staff/desk/{reference}/pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf" and response.data.startswith(b"%PDF")
    assert response.headers["Content-Disposition"].startswith("inline")
    assert response.headers["Cache-Control"] == "no-store"
    # The reference may be typed in any case and spacing.
    assert desk_client.get(f"/staff/desk/{reference.lower().replace('-', '')}/pdf").status_code == 200
    with app.app_context():
        events = list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == "print_pdf")))
        submission = services.find_submission(db.session, reference)
    # Two requests within seconds are one opening (a PDF viewer asks again): one event (audit.SAME_OPENING).
    assert len(events) == 1 and all(e.submission_id == submission.id and e.actor_id for e in events)


@pytest.mark.parametrize("reference", ["ZZZZ-ZZZZ", "not-a-reference", "ACDE-FHJK", "TOMORROW"])
def test_wrong_reference_is_the_same_404(app, desk_client, reference):
    tomorrow = submit(app, "Tom Tomorrow", TODAY + dt.timedelta(days=1))
    reference = tomorrow if reference == "TOMORROW" else reference  # not on today's list: not the desk's
    missing = desk_client.get("/staff/desk/ZZZZ-ZZZZ/sheet")
    for url in (f"/staff/desk/{reference}/sheet",):
        response = desk_client.get(url)
        assert response.status_code == 404
        assert response.text == missing.text
    token = csrf_token(desk_client.get("/staff/desk").text)
    assert desk_client.post(f"/staff/desk/{reference}/arrived", data={"csrf_token": token}).status_code == 404
    assert count(app, Arrival) == 0 and count(app, AuditEvent, action="print_desk_sheet") == 0


def test_practitioner_sees_the_desk_but_does_not_act(app, client):
    reference = submit(app, "Ann Arrival", TODAY)
    add_user(app, "prac@clinic.test", ["practitioner"])
    sign_in(client, "prac@clinic.test")
    page = client.get("/staff/desk")
    assert page.status_code == 200 and "Ann Arrival" in page.text
    assert "Mark arrived" not in page.text and "kiosk mode" not in page.text
    token = csrf_token(client.get("/staff/login").text)
    assert client.post(f"/staff/desk/{reference}/arrived", data={"csrf_token": token}).status_code == 403
    assert count(app, Arrival) == 0


def test_desk_cannot_reach_review_or_sign_off(app, desk_client):
    reference = submit(app, "Ann Arrival", TODAY)
    token = csrf_token(desk_client.get("/staff/desk").text)
    for url in ("/staff/submissions", f"/staff/submissions/{reference}", f"/staff/submissions/{reference}/pdf"):
        assert desk_client.get(url).status_code == 403, url
    assert desk_client.post(f"/staff/submissions/{reference}/sign-off",
                            data={"csrf_token": token}).status_code == 403


@pytest.mark.parametrize("role", ["desk", "practitioner"])
def test_admin_pages_are_403_for_desk_and_practitioners(app, client, role):
    add_user(app, f"{role}@clinic.test", [role])
    other = add_user(app, "other@clinic.test", ["desk"])
    sign_in(client, f"{role}@clinic.test")
    assert client.get("/staff/admin/users").status_code == 403
    assert client.get("/staff/admin/audit").status_code == 403
    token = csrf_token(client.get("/staff/login").text)
    assert client.post(f"/staff/admin/users/{other}/deactivate", data={"csrf_token": token}).status_code == 403
    assert count(app, AuditEvent, action="account_deactivated") == 0


def test_admin_lists_accounts_and_deactivates_one(app, client):
    add_user(app, "admin@clinic.test", ["admin"])
    other = add_user(app, "other@clinic.test", ["desk", "practitioner"])
    sign_in(client, "admin@clinic.test")
    page = client.get("/staff/admin/users")
    assert page.status_code == 200
    assert "other@clinic.test" in page.text and "desk, practitioner" in page.text
    # The other person is signed in somewhere; deactivating them ends that session.
    theirs = app.test_client()
    sign_in(theirs, "other@clinic.test")
    response = client.post(f"/staff/admin/users/{other}/deactivate", data={"csrf_token": csrf_token(page.text)})
    assert response.status_code == 302
    page = client.get("/staff/admin/users")
    assert "is deactivated and signed out everywhere" in page.text and "No (deactivated)" in page.text
    assert theirs.get("/staff/desk").status_code == 302
    with app.app_context():
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "account_deactivated"))
    assert event.actor_id is not None and event.detail == f"user={other}" and event.address == "127.0.0.1"


def test_admin_cannot_deactivate_themselves_or_twice(app, client):
    me = add_user(app, "admin@clinic.test", ["admin"])
    other = add_user(app, "other@clinic.test", ["desk"])
    sign_in(client, "admin@clinic.test")
    token = csrf_token(client.get("/staff/admin/users").text)
    response = client.post(f"/staff/admin/users/{me}/deactivate", data={"csrf_token": token})
    assert response.status_code == 400 and "You cannot deactivate your own account" in response.text
    assert "There is a problem" in response.text and response.text.count("<title>Error:") == 1
    assert client.get("/staff/desk").status_code == 200, "still signed in"
    assert client.post(f"/staff/admin/users/{other}/deactivate", data={"csrf_token": token}).status_code == 302
    response = client.post(f"/staff/admin/users/{other}/deactivate", data={"csrf_token": token})
    assert response.status_code == 400 and "already deactivated" in response.text
    assert client.post("/staff/admin/users/9999/deactivate", data={"csrf_token": token}).status_code == 404
    assert count(app, AuditEvent, action="account_deactivated") == 1
