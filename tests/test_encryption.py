"""Encryption at rest: no trace of health data in the database file or a dump; rotation; blind indexes."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask_migrate import upgrade
from sqlalchemy import select, text

from screening import create_app, services
from screening.config import ConfigError
from screening.crypto import Vault, VaultError, vault
from screening.extensions import db
from screening.models import Addendum, Draft, Review, Submission
from screening.staff.review_services import ListQuery, list_submissions
from tests.answers import clear_answers
from tests.conftest import TEST_KEYS, make_app
from tests.staff import add_user
from tests.staff import sign_in as staff_sign_in
from tests.web import answer_all, complete, csrf_token, start

FUTURE = (dt.date.today() + dt.timedelta(days=30)).isoformat()
# Distinctive values: if any of them is found in the raw storage, something was stored in clear.
NAME = "Quillon Vexmarrow"
MEDICINE = "Zorblaxitrexamab"
NOTE = "Wobblefrandish scar"
ADDENDUM = "Plinkerdoodle follow"
SECRETS = [NAME, MEDICINE, NOTE, ADDENDUM, "Quillon", "Vexmarrow", "1971-05-17"]


def distinctive_answers() -> dict:
    return clear_answers(full_name=NAME, dob="1971-05-17", appointment_date=FUTURE,
                         immunosuppressive_meds="yes", immunosuppressive_meds_details=MEDICINE)


def store_everything(app) -> str:
    """Store a submission with its PDF, a signed-off review with a note and an addendum, and a draft."""
    reference = complete(app.test_client(), distinctive_answers())
    with app.app_context():
        submission = db.session.scalar(select(Submission).where(Submission.reference == reference))
        services.ensure_pdf(db.session, submission, app.config["CLINIC"])
    staff = app.test_client()
    add_user(app, "prac@clinic.test", ("practitioner",))
    staff_sign_in(staff, "prac@clinic.test")
    page = staff.get(f"/staff/submissions/{reference}")
    response = staff.post(f"/staff/submissions/{reference}/sign-off",
                          data={"csrf_token": csrf_token(page.text), "ack_0": "yes", "note_0": NOTE,
                                "decision": "decline", "note": NOTE})
    assert response.status_code == 302, response.text[:2000]
    response = staff.post(f"/staff/submissions/{reference}/addenda",
                          data={"csrf_token": csrf_token(staff.get(f"/staff/submissions/{reference}").text),
                                "text": ADDENDUM})
    assert response.status_code == 302
    draft_client = app.test_client()
    start(draft_client)
    answer_all(draft_client, distinctive_answers())  # a draft in progress holds the same answers
    with app.app_context():
        review = db.session.scalar(select(Review))
        assert review.note == NOTE and db.session.scalar(select(Addendum)).text == ADDENDUM
        assert db.session.scalar(select(Draft)).answers["immunosuppressive_meds_details"] == MEDICINE
        submission = db.session.scalar(select(Submission).where(Submission.reference == reference))
        assert submission.answers["full_name"] == NAME and submission.signature_name == NAME
        assert vault().pdf_intact(submission.pdf, submission.pdf_hmac)
        assert submission.pdf_hmac != hashlib.sha256(submission.pdf).hexdigest(), "keyed, not a plain hash"
    return reference


def assert_no_trace(raw: bytes) -> None:
    lowered = raw.lower()
    for secret in SECRETS:
        for form in (secret.encode(), secret.encode("utf-16-le"), secret.lower().encode()):
            assert form.lower() not in lowered, f"{secret!r} is stored in clear"


def test_no_trace_of_health_data_in_the_raw_sqlite_file(tmp_path):
    path = tmp_path / "raw.db"
    app = make_app(f"sqlite:///{path}")
    reference = store_everything(app)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("raw.db"))
    assert reference.encode() in raw, "the check reads the right file"
    assert_no_trace(raw)


@pytest.mark.skipif(not os.environ.get("SCREENING_TEST_DATABASE_URL"), reason="needs PostgreSQL")
@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="needs pg_dump")
def test_no_trace_of_health_data_in_a_postgresql_dump():
    url = os.environ["SCREENING_TEST_DATABASE_URL"]
    app = make_app(url)
    try:
        reference = store_everything(app)
        dump = subprocess.run(["pg_dump", "--no-owner", url.replace("postgresql+psycopg://", "postgresql://")],
                              capture_output=True, check=True).stdout
        assert reference.encode() in dump, "the dump holds the submission"
        assert_no_trace(dump)
    finally:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def test_altered_ciphertext_is_refused_not_misread(app):
    reference = complete(app.test_client(), distinctive_answers())
    with app.app_context():
        token = db.session.execute(text("SELECT answers FROM submission")).scalar_one()
        altered = bytearray(bytes(token))
        altered[60] ^= 0x01
        db.session.execute(text("UPDATE submission SET answers = :a"), {"a": bytes(altered)})
        db.session.commit()
        db.session.expunge_all()
        with pytest.raises(VaultError, match="cannot be decrypted"):
            db.session.scalar(select(Submission).where(Submission.reference == reference))
        db.session.rollback()


def test_rotate_keys_re_encrypts_everything_under_the_newest_key(database_url, tmp_path):
    old = TEST_KEYS["ENCRYPTION_KEYS"][0]
    new = Fernet.generate_key().decode()
    app = make_app(database_url)
    reference = store_everything(app)
    settings = {k: app.config[k] for k in ("TESTING", "SQLALCHEMY_DATABASE_URI", "SECRET_KEY")}
    new_index = "another-index-key-0123456789abcdefghijkl"
    both = create_app({**settings, "ENCRYPTION_KEYS": [new, old], "INDEX_KEY": new_index})
    result = both.test_cli_runner().invoke(args=["screening", "rotate-keys"])
    assert result.exit_code == 0, result.output
    assert "1 submission" in result.output and "1 review" in result.output and "1 addendum" in result.output
    only_new = create_app({**settings, "ENCRYPTION_KEYS": [new], "INDEX_KEY": new_index})
    with only_new.app_context():
        submission = db.session.scalar(select(Submission).where(Submission.reference == reference))
        assert submission.answers["immunosuppressive_meds_details"] == MEDICINE
        assert vault().pdf_intact(submission.pdf, submission.pdf_hmac), "re-keyed under the new index key"
        assert db.session.scalar(select(Review)).note == NOTE
        assert db.session.scalar(select(Draft)).answers["full_name"] == NAME
        # The blind indexes were rebuilt under the new index key: the search still finds the client.
        found = list_submissions(db.session, ListQuery(name="vexmar", birth_date=dt.date(1971, 5, 17)))
        assert [r.reference for r in found.rows] == [reference]
        raw = db.session.execute(text("SELECT answers FROM submission")).scalar_one()
        assert Fernet(new.encode()).decrypt(bytes(raw))
        db.session.remove()
        db.engine.dispose()
    with pytest.raises(ConfigError, match="SCREENING_ENCRYPTION_KEYS holds none of the keys"):
        create_app({**settings, **TEST_KEYS})  # the key check was re-written under the new keys too
    only_old = create_app({**settings, **TEST_KEYS, "CHECK_KEYS": False})  # past the check, every row refuses too
    with only_old.app_context():
        with pytest.raises(VaultError):
            db.session.scalar(select(Submission))
        db.session.rollback()
        db.session.remove()
        db.drop_all()
        db.engine.dispose()
    for other in (app, both):
        with other.app_context():
            db.engine.dispose()


def test_the_name_search_matches_word_starts_through_the_blind_index(app):
    reference = complete(app.test_client(), clear_answers(full_name="Zoë  O'Brien-Smith", appointment_date=FUTURE))
    other = complete(app.test_client(), clear_answers(full_name="Ann Smithers", appointment_date=FUTURE))
    with app.app_context():
        def found(name):
            return sorted(r.reference for r in list_submissions(db.session, ListQuery(name=name)).rows)

        assert found("smith") == sorted([reference, other])
        assert found("SMITH zoë") == [reference]
        assert found("brien") == [reference] and found("o'brien") == [reference]
        assert found("mith") == [], "a search matches the start of a word, not its middle"
        row = db.session.scalar(select(Submission).where(Submission.reference == reference))
        assert "smith" not in row.name_index and row.dob_index != "1990-03-27"


def test_production_refuses_to_start_without_keys_and_says_which():
    base = {"ENV": "production", "SECRET_KEY": "s" * 32, "SQLALCHEMY_DATABASE_URI": "sqlite://"}
    with pytest.raises(ConfigError, match="SCREENING_ENCRYPTION_KEYS must be set"):
        create_app(base)
    with pytest.raises(ConfigError, match="SCREENING_INDEX_KEY must be set"):
        create_app({**base, "ENCRYPTION_KEYS": TEST_KEYS["ENCRYPTION_KEYS"]})
    with pytest.raises(ConfigError, match="must be Fernet keys"):
        create_app({**base, "ENCRYPTION_KEYS": ["not a key"], "INDEX_KEY": TEST_KEYS["INDEX_KEY"]})


def test_keys_come_from_the_environment(monkeypatch):
    from screening.config import from_environ

    key_a, key_b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings = from_environ({"SCREENING_ENCRYPTION_KEYS": f" {key_a} ,{key_b}", "SCREENING_INDEX_KEY": "i" * 40})
    assert settings["ENCRYPTION_KEYS"] == [key_a, key_b] and settings["INDEX_KEY"] == "i" * 40
    vault = Vault(settings["ENCRYPTION_KEYS"], settings["INDEX_KEY"])
    assert Fernet(key_a.encode()).decrypt(vault.encrypt(b"x")) == b"x", "the first key is the one that encrypts"
    assert vault.decrypt(Fernet(key_b.encode()).encrypt(b"y")) == b"y", "older keys still decrypt"


def test_the_migration_encrypts_what_earlier_versions_stored_in_clear(database_url):
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url, "SECRET_KEY": "t", **TEST_KEYS})
    answers = distinctive_answers()
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        upgrade(revision="0002")
        import json

        with db.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO submission (reference, answers, dictionary_version, rules_digest, result, outcome, "
                "appointment_date, signature_name, signed_at, submitted_at, is_kiosk, search_name, dob, pdf) "
                "VALUES ('ACDE-FHJK', :answers, 'v', 'd', :result, 'REVIEW', :day, :name, :at, :at, false, "
                ":search, :dob, :pdf)"),
                {"answers": json.dumps(answers), "result": json.dumps({"outcome": "REVIEW", "flags": []}),
                 "day": dt.date.today(), "name": NAME, "at": dt.datetime.now(dt.timezone.utc),
                 "search": NAME.casefold(), "dob": dt.date(1971, 5, 17), "pdf": b"%PDF-1.7 test"})
        upgrade()
        submission = db.session.scalar(select(Submission))
        assert submission.answers == answers and submission.signature_name == NAME
        assert submission.pdf == b"%PDF-1.7 test" and submission.result["outcome"] == "REVIEW"
        found = list_submissions(db.session, ListQuery(name="quillon", birth_date=dt.date(1971, 5, 17)))
        assert [r.reference for r in found.rows] == ["ACDE-FHJK"]
        raw = db.session.execute(text("SELECT answers, signature_name FROM submission")).one()
        assert_no_trace(bytes(raw[0]) + bytes(raw[1]))
        db.session.remove()
        db.drop_all()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        db.engine.dispose()


def test_the_development_keys_are_generated_once_into_the_instance_folder(tmp_path):
    from screening.config import finish, from_environ

    first, second = from_environ({}), from_environ({})
    for settings in (first, second):
        settings["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
        finish(settings, str(tmp_path))
    assert first["ENCRYPTION_KEYS"] == second["ENCRYPTION_KEYS"] and first["INDEX_KEY"] == second["INDEX_KEY"]
    assert oct(Path(tmp_path / "encryption_keys").stat().st_mode)[-3:] == "600"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encryption_keys", "index_key", "secret_key"]
