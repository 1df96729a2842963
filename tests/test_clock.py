"""The clinic's clock (SCREENING_TIME_ZONE): times people read are the clinic's, across summer time; storage UTC."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from screening import clock, create_app, display, services
from screening.config import ConfigError
from screening.extensions import db
from screening.models import AuditEvent, Submission
from tests.answers import clear_answers
from tests.conftest import close_app, make_app
from tests.staff import add_user, sign_in

LONDON = ZoneInfo("Europe/London")
UTC = dt.timezone.utc
# Europe/London in 2026: summer time from 01:00 UTC on Sunday 29 March to 01:00 UTC on Sunday 25 October.
SPRING = dt.date(2026, 3, 29)
AUTUMN = dt.date(2026, 10, 25)
SUMMER_NIGHT = dt.datetime(2026, 7, 14, 23, 30, tzinfo=UTC)  # 00:30 BST on 15 July


def at(*parts) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)


# -- the setting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Europe/Lndon", "Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime",
                                  "Europe/London ", "BST", "+01:00", "Europe/London\x00", "x" * 300])
def test_a_time_zone_that_is_not_an_iana_name_stops_start_up(name):
    with pytest.raises(ConfigError, match="SCREENING_TIME_ZONE must be a time zone name from the IANA database"):
        create_app({"SECRET_KEY": "t", "SQLALCHEMY_DATABASE_URI": "sqlite://", "TIME_ZONE": name})


def test_the_time_zone_is_read_from_the_environment_and_defaults_to_utc():
    from screening.config import from_environ

    assert from_environ({})["TIME_ZONE"] == "UTC"
    assert from_environ({"SCREENING_TIME_ZONE": ""})["TIME_ZONE"] == "UTC"
    assert from_environ({"SCREENING_TIME_ZONE": "Europe/London"})["TIME_ZONE"] == "Europe/London"
    app = create_app({"SECRET_KEY": "t", "SQLALCHEMY_DATABASE_URI": "sqlite://", "TIME_ZONE": "Europe/London"})
    assert app.config["TIME_ZONE_INFO"] == LONDON


def test_the_command_line_says_why_it_will_not_start(tmp_path):
    import subprocess
    import sys

    from tests.conftest import TEST_KEYS

    env = {"PATH": "/usr/bin:/bin", "SCREENING_TIME_ZONE": "Europe/Lodnon", "SCREENING_SECRET_KEY": "t" * 40,
           "SCREENING_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "SCREENING_CHECK_KEYS": "0",
           "SCREENING_ENCRYPTION_KEYS": ",".join(TEST_KEYS["ENCRYPTION_KEYS"]),
           "SCREENING_INDEX_KEY": TEST_KEYS["INDEX_KEY"]}
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "screening", "--help"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "SCREENING_TIME_ZONE must be a time zone name from the IANA database" in result.stderr
    assert "'Europe/Lodnon'" in result.stderr


# -- formatting and days, across the changes to and from summer time -------------------------------


@pytest.mark.parametrize("moment, words", [
    (at(2026, 3, 29, 0, 30), "29 March 2026, 00:30 GMT"),   # before the change
    (at(2026, 3, 29, 1, 30), "29 March 2026, 02:30 BST"),   # after it: an hour ahead
    (at(2026, 7, 14, 23, 30), "15 July 2026, 00:30 BST"),   # a summer night: already the next day
    (at(2026, 10, 25, 0, 30), "25 October 2026, 01:30 BST"),  # 01:30 happens twice on the day back ...
    (at(2026, 10, 25, 1, 30), "25 October 2026, 01:30 GMT"),  # ... the zone tells them apart
    (at(2026, 12, 31, 23, 59), "31 December 2026, 23:59 GMT"),
])
def test_moments_read_in_the_clinics_time_with_the_zone(moment, words):
    assert display.format_moment(moment, LONDON) == words
    assert display.format_clock(moment, LONDON) == words.split(", ")[1]
    assert display.format_moment(moment.replace(tzinfo=None), LONDON) == words, "SQLite gives naive UTC back"
    assert display.format_moment(moment, UTC).endswith(f"{moment:%H:%M} UTC")


def test_a_zone_without_letters_shows_its_offset():
    assert display.format_clock(at(2026, 7, 1, 12, 0), ZoneInfo("America/Sao_Paulo")) == "09:00 UTC-03:00"
    assert display.format_clock(at(2026, 7, 1, 12, 0), ZoneInfo("Asia/Kolkata")) == "17:30 IST"
    assert display.format_clock(at(2026, 7, 1, 12, 0), ZoneInfo("Asia/Kathmandu")) == "17:45 UTC+05:45"
    assert display.format_moment(None, LONDON) == "" and display.format_clock(None, LONDON) == ""


@pytest.mark.parametrize("moment, day", [
    (at(2026, 7, 14, 23, 30), dt.date(2026, 7, 15)),  # 23:30 UTC in summer: the clinic's tomorrow
    (at(2026, 7, 14, 22, 59), dt.date(2026, 7, 14)),
    (at(2026, 1, 14, 23, 30), dt.date(2026, 1, 14)),  # in winter the clinic keeps UTC's day
    (at(2026, 3, 28, 23, 30), dt.date(2026, 3, 28)),  # the night of the change to summer time
    (at(2026, 3, 29, 23, 30), dt.date(2026, 3, 30)),
    (at(2026, 10, 24, 23, 30), dt.date(2026, 10, 25)),  # the night of the change back
    (at(2026, 10, 25, 23, 30), dt.date(2026, 10, 25)),
])
def test_today_is_the_clinics_today(monkeypatch, moment, day):
    monkeypatch.setattr(clock, "now", lambda: moment)
    assert clock.today(LONDON) == day
    assert clock.today(UTC) == moment.date()


def test_a_clinic_day_is_23_or_25_hours_long_across_the_changes():
    assert clock.day_start(SPRING, LONDON) == at(2026, 3, 29, 0, 0)
    assert clock.day_start(SPRING + dt.timedelta(days=1), LONDON) - clock.day_start(SPRING, LONDON) == \
        dt.timedelta(hours=23)
    assert clock.day_start(AUTUMN + dt.timedelta(days=1), LONDON) - clock.day_start(AUTUMN, LONDON) == \
        dt.timedelta(hours=25)
    assert clock.day_start(dt.date(2026, 7, 15), LONDON) == at(2026, 7, 14, 23, 0)


def test_outside_an_app_the_clock_is_utc():
    assert clock.zone() is UTC


# -- the pages -------------------------------------------------------------------------------------


@pytest.fixture
def london(database_url, monkeypatch):
    """An app in Europe/London whose clock reads 23:30 UTC on 14 July 2026: 00:30 BST on the 15th."""
    monkeypatch.setattr(clock, "now", lambda: SUMMER_NIGHT)
    app = make_app(database_url, TIME_ZONE="Europe/London")
    yield app
    close_app(app)


def submit(app, name, day, submitted_at) -> str:
    """Store a submission for ``name`` on appointment ``day``, sent at ``submitted_at`` (UTC); return its reference."""
    with app.app_context():
        draft, _ = services.start_draft(db.session, dt.timedelta(hours=1))
        draft.answers = clear_answers(full_name=name, appointment_date=day.isoformat())
        services.sign(db.session, draft, name)
        draft.signed_at = submitted_at
        submission = services.submit(db.session, draft, app.extensions["screening_rules"])
        submission.submitted_at = submitted_at
        db.session.commit()
        return submission.reference


def test_the_desk_lists_the_clinics_today_with_clinic_times(london):
    tomorrow_utc = submit(london, "Bea Summer", dt.date(2026, 7, 15), at(2026, 7, 14, 22, 5))
    utc_today = submit(london, "Cy Yesterday", dt.date(2026, 7, 14), at(2026, 7, 14, 9, 0))
    client = london.test_client()
    add_user(london, "desk@clinic.test", ["desk"])
    sign_in(client, "desk@clinic.test")
    page = client.get("/staff/desk").text
    assert "15 July 2026" in page
    assert "Bea Summer" in page and tomorrow_utc in page and "23:05 BST" in page
    assert "Cy Yesterday" not in page and utc_today not in page
    day = client.get("/staff/appointments").text
    assert "15 July 2026" in day


def test_the_record_and_the_pdf_show_the_clinics_time(london):
    reference = submit(london, "Dee Night", dt.date(2026, 7, 15), at(2026, 7, 14, 23, 10))
    with london.app_context():
        row = db.session.scalar(select(Submission).where(Submission.reference == reference))
        assert row.answered_on == dt.date(2026, 7, 15), "the answers describe the clinic's day they were signed"
        from screening import pdf

        context = pdf.report_context(row, london.config["CLINIC"])
    assert context["submitted_at"] == "15 July 2026, 00:10 BST" and context["signed_at"] == context["submitted_at"]
    assert context["submitted_iso"] == "2026-07-14T23:10:00Z", "the PDF's metadata stays UTC"
    client = london.test_client()
    add_user(london, "prac@clinic.test", ["practitioner"])
    sign_in(client, "prac@clinic.test")
    page = client.get(f"/staff/submissions/{reference}").text
    assert "15 July 2026, 00:10 BST" in page


def test_the_audit_trail_shows_and_filters_by_the_clinics_days(london):
    admin = london.test_client()
    add_user(london, "admin@clinic.test", ["admin"])
    sign_in(admin, "admin@clinic.test")
    with london.app_context():
        for moment in (at(2026, 7, 14, 22, 59), at(2026, 7, 14, 23, 0)):  # 23:59 on the 14th, 00:00 on the 15th
            db.session.add(AuditEvent(action="sign_out", at=moment, address="10.0.0.9"))
        db.session.commit()
    page = admin.get("/staff/admin/audit?date_from=15/07/2026&date_to=15/07/2026&action=sign_out").text
    assert "15 July 2026, 00:00:00 BST" in page and "23:59:00 BST" not in page
    page = admin.get("/staff/admin/audit?date_from=2026-07-14&date_to=14/07/2026&action=sign_out").text
    assert "14 July 2026, 23:59:00 BST" in page and "00:00:00 BST" not in page


def test_reminders_and_the_days_list_go_by_the_clinics_today(london, monkeypatch):
    from screening.appointments import services as appointment_services

    seen = []
    monkeypatch.setattr(appointment_services, "send_reminders", lambda session, day: seen.append(day) or 0)
    result = london.test_cli_runner().invoke(args=["screening", "send-reminders"])
    assert result.exit_code == 0 and seen == [dt.date(2026, 7, 15)], (result.output, seen)
    client = london.test_client()
    add_user(london, "prac@clinic.test", ["practitioner"])
    sign_in(client, "prac@clinic.test")
    page = client.get("/staff/submissions").text
    assert 'value="15/07/2026"' in page, "the practitioners' list opens on the clinic's today"
