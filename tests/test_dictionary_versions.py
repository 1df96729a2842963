"""Older submissions keep their own answers, version and result, and still display and render after an
upgrade (clinical specification v2, issue 10 item 10); every dictionary version is archived."""

from __future__ import annotations

import datetime as dt
import io
import json

from flask_migrate import upgrade
from pypdf import PdfReader
from sqlalchemy import select, text

from screening import create_app, services
from screening import questions as qd
from screening.extensions import db
from screening.models import Submission
from tests.conftest import TEST_KEYS
from tests.staff import add_user, sign_in

V1 = "dd-1a40360548df"  # the dictionary of clinical specification version 1
SIGNED_AT = dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.timezone.utc)

# Answers as version 1 asked them: a steroid date that was "last or planned", surgery "Other surgery".
V1_ANSWERS = {
    "full_name": "Vera Oldform", "dob": "1980-02-29", "email": "vera@example.org", "phone": "07700 900123",
    "appointment_date": "2026-12-10", "treatment_variant": "prp", "treatment_areas": ["full_face"],
    "pregnant": "no", "breastfeeding": "no", "isotretinoin_last_12m": "no", "topical_actives": ["none"],
    "anticoagulants": "no", "antiplatelets": "no", "nsaid_last_7d": "no",
    "systemic_steroid_last_14d": "yes", "systemic_steroid_current": "yes",
    "systemic_steroid_last_or_planned_end_date": "2026-12-20",
    "surgery_2y": "yes", "surgery": [{"type": "other", "date": "2026-07-01", "location": ["cheeks"]}],
    "fitzpatrick": "type_2",
}
V1_RESULT = {
    "outcome": "DEFER", "earliest_date": "2027-01-03", "open_ended": False,
    "flags": [
        {"id": "systemic_corticosteroid_recent_prp", "title": "Steroid tablets or injection in the last 14 days (PRP)",
         "severity": "defer",
         "reason": "The client has taken systemic corticosteroids within 14 days of PRP treatment.",
         "action": "Defer PRP until 14 days after the last dose; re-screen if the course has no end date.",
         "lifts_on": "2027-01-03", "open_ended": False,
         "because": {"systemic_steroid_last_14d": "yes", "systemic_steroid_current": "yes",
                     "systemic_steroid_last_or_planned_end_date": "2026-12-20", "treatment_variant": "prp"},
         "variants": ["prp"], "sources": ["R24 [P]"]},
        {"id": "recent_surgery_or_thread_lift_in_area", "title": "Recent surgery or thread lift in the area",
         "severity": "defer", "reason": "The treatment area has had surgery with an incision or sutures.",
         "action": "Defer until 6 months after the procedure.", "lifts_on": "2027-01-01", "open_ended": False,
         "because": {"surgery": [{"type": "other", "date": "2026-07-01", "location": ["cheeks"]}]},
         "variants": ["prp"], "sources": ["R12 [V]"]},
    ],
    "rules_digest": "0" * 64, "dictionary_version": V1, "variant": "prp", "variants_evaluated": ["prp"],
}


def _reset(app):
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")


def test_a_stored_version_1_submission_opens_displays_and_renders_after_the_upgrade(database_url):
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url, "SECRET_KEY": "t",
                      "PDF_BACKGROUND": False, "CLINIC_NAME": "Test Clinic", "TWO_FACTOR_ROLES": "",
                      **TEST_KEYS})  # a password-only sign-in, as the conftest's apps (tests/test_two_factor.py)
    _reset(app)
    with app.app_context():
        upgrade(revision="0002")  # a database as version 1 left it, rows in clear (0003 encrypts them)
        with db.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO submission (reference, answers, dictionary_version, rules_digest, result, outcome, "
                "appointment_date, signature_name, signed_at, submitted_at, is_kiosk, search_name, dob, pdf) "
                "VALUES ('VOLD-2345', :answers, :version, :digest, :result, 'DEFER', :day, :name, :at, :at, false, "
                "'vera oldform', :dob, NULL)"),
                {"answers": json.dumps(V1_ANSWERS), "version": V1, "digest": "0" * 64,
                 "result": json.dumps(V1_RESULT), "day": dt.date(2026, 12, 10), "name": "Vera Oldform",
                 "at": SIGNED_AT, "dob": dt.date(1980, 2, 29)})
        upgrade()
        stored = db.session.scalar(select(Submission))
        assert stored.answered_on == dt.date(2026, 11, 20)  # filled from the day it was signed
        assert stored.dictionary_version == V1 and stored.answers == V1_ANSWERS
        assert stored.result == V1_RESULT  # never re-evaluated under the new rules
        pdf = services.ensure_pdf(db.session, stored, {"name": "Test Clinic", "accent": "#1d5f8a", "logo": None})
        db.session.remove()
    words = " ".join(" ".join((p.extract_text() or "").split()) for p in PdfReader(io.BytesIO(pdf)).pages)
    old_steroid = "When was, or when will be, your last dose?"
    for expected in ("VOLD-2345", "Vera Oldform", old_steroid, "20 December 2026", "Other surgery",
                     "Steroid tablets or injection in the last 14 days (PRP)", "3 January 2027"):
        assert expected in words, expected
    assert "Other surgery, not on the face" not in words  # the wording of version 1, not today's
    assert "To confirm on the day" not in words and "By treatment" not in words  # v1 results have neither

    add_user(app, "pat@clinic.test", ["practitioner"])
    client = app.test_client()
    sign_in(client, "pat@clinic.test")
    page = client.get("/staff/submissions/VOLD-2345")
    assert page.status_code == 200
    assert old_steroid in page.text and "Vera Oldform" in page.text
    assert client.get("/staff/submissions/VOLD-2345/pdf").status_code == 200
    _reset(app)
    with app.app_context():
        db.engine.dispose()


def test_the_current_dictionary_is_archived_as_it_is():
    # A change to questions.py changes VERSION; archive the new version beside the old ones
    # (python -c "from screening import questions as qd; ..." as in the README) so stored answers keep it.
    path = qd.ARCHIVE / f"{qd.VERSION}.json"
    assert path.is_file(), f"archive {qd.VERSION}: see the README's 'Changing the questions'"
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(json.dumps(qd.as_plain()))


def test_every_archived_dictionary_loads_and_keeps_its_questions():
    versions = sorted(p.stem for p in qd.ARCHIVE.glob("dd-*.json"))
    assert V1 in versions and qd.VERSION in versions
    for version in versions:
        words = qd.dictionary(version)
        assert words.version == version
        assert {"dob", "appointment_date", "treatment_variant", "treatment_areas"} <= set(words.by_id)
        assert all(q.section in {s.id for s in words.sections} for q in words.questions)
    old = qd.dictionary(V1)
    assert "systemic_steroid_last_or_planned_end_date" in old.by_id
    assert old.by_id["surgery"].field("type").choices[-1].label == "Other surgery"
    assert qd.dictionary("dd-not-archived") is qd.CURRENT
