"""A wrong key is refused at start-up (issue 11 #4); a row that will not decrypt spoils only its own line."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from screening import create_app
from screening.config import ROOT, ConfigError
from screening.extensions import db
from screening.models import KeyCanary, Submission
from tests import live
from tests.answers import clear_answers
from tests.conftest import TEST_KEYS
from tests.staff import add_user, sign_in
from tests.web import complete

TODAY = dt.date.today()
OTHER_KEY = Fernet.generate_key().decode()


def _settings(app) -> dict:
    return {k: app.config[k] for k in ("TESTING", "SQLALCHEMY_DATABASE_URI", "SECRET_KEY")}


_STARTED: list = []


@pytest.fixture(autouse=True)
def _dispose_started_apps():
    yield
    while _STARTED:
        with _STARTED.pop().app_context():
            db.session.remove()
            db.engine.dispose()


def _restart(app, **keys):
    """Start the app again on ``app``'s database (with other keys); its engine is disposed after the test."""
    settings = {**_settings(app), **TEST_KEYS, **keys}
    started = create_app(settings)
    _STARTED.append(started)
    return started


def test_the_first_start_writes_the_key_check_and_a_start_with_another_key_is_refused(app):
    with app.app_context():
        assert db.session.scalar(select(KeyCanary)) is None  # a fresh schema
    again = _restart(app)  # the first start on this schema writes it
    with again.app_context():
        canary = db.session.scalar(select(KeyCanary))
        assert canary is not None and b"canary" not in bytes(canary.sealed), "stored encrypted"
        db.session.remove()
    _restart(app)  # the same keys: accepted
    with pytest.raises(ConfigError, match="SCREENING_ENCRYPTION_KEYS holds none of the keys this database"):
        _restart(app, ENCRYPTION_KEYS=[OTHER_KEY])
    _restart(app, ENCRYPTION_KEYS=[OTHER_KEY, *TEST_KEYS["ENCRYPTION_KEYS"]])  # a rotation: new first, old after
    with pytest.raises(ConfigError, match="SCREENING_INDEX_KEY is not the key"):
        _restart(app, INDEX_KEY="another-index-key-0123456789abcdefghij")
    _restart(app, INDEX_KEY="another-index-key-0123456789abcdefghij", INDEX_KEY_CHANGED=True)


def test_a_wrong_key_stops_the_app_with_exit_status_4_and_a_clear_message(database_url, tmp_path):
    env = live.server_env(database_url)
    live.reset_database(env)
    try:
        live.migrate(env)  # migration 0005 writes the key check under the run's keys
        done = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, capture_output=True, text=True,
                              env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        wrong = {**env, "SCREENING_ENCRYPTION_KEYS": OTHER_KEY}
        done = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, capture_output=True, text=True,
                              env=wrong, timeout=120)
        assert done.returncode == 4
        assert "screening: cannot start: SCREENING_ENCRYPTION_KEYS holds none of the keys" in done.stderr
        assert "Traceback" not in done.stderr
        assert live.flask_cmd(wrong, "db", "upgrade").returncode == 4, "not even a migration runs with a wrong key"
    finally:
        live.reset_database(env)


def test_a_database_out_of_reach_at_start_up_is_checked_on_the_first_request(app, database_url, monkeypatch):
    if not database_url.startswith("sqlite"):
        # The behaviour does not depend on the database; on PostgreSQL one of the four apps started here leaves a
        # pooled connection that is only closed by the garbage collector (a ResourceWarning in the next test).
        pytest.skip("SQLite only: see the comment")
    from sqlalchemy.exc import OperationalError

    from screening import keycheck

    _restart(app)  # writes the key check
    real = keycheck.check_keys

    def out_of_reach(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(keycheck, "check_keys", out_of_reach)
    late = _restart(app, ENCRYPTION_KEYS=[OTHER_KEY])  # starts: the check is left for the first request
    assert late.extensions["screening_keys_checked"] is False
    monkeypatch.setattr(keycheck, "check_keys", real)  # the database is back
    with late.test_client() as client:  # the block's end ends the request (its connection goes back)
        refused = client.get("/")
    assert refused.status_code == 503, "the wrong key is refused before anything is stored"
    right = _restart(app)
    right.extensions["screening_keys_checked"] = False  # as if it could not check at start-up either
    with right.test_client() as client:
        accepted = client.get("/")
    assert accepted.status_code == 200
    assert right.extensions["screening_keys_checked"] is True


def _two_rows_one_unreadable(app) -> tuple[str, str, int]:
    good = complete(app.test_client(), clear_answers(full_name="Gail Good", appointment_date=TODAY.isoformat()))
    bad = complete(app.test_client(), clear_answers(full_name="Bert Bad", appointment_date=TODAY.isoformat()))
    with app.app_context():
        bad_id = db.session.scalar(select(Submission.id).where(Submission.reference == bad))
        # Stored under a key the app does not hold (as a public form run with a wrong key would have done).
        foreign = Fernet(OTHER_KEY.encode())
        db.session.execute(text("UPDATE submission SET answers = :a, result = :r WHERE id = :i"),
                           {"a": foreign.encrypt(b'{"full_name":"Bert Bad"}'), "r": foreign.encrypt(b"{}"),
                            "i": bad_id})
        db.session.commit()
    return good, bad, bad_id


def test_a_row_that_will_not_decrypt_is_shown_as_such_alone_and_logged_by_id(app, caplog):
    good, bad, bad_id = _two_rows_one_unreadable(app)
    add_user(app, "desk@clinic.test", ["desk"])
    add_user(app, "prac@clinic.test", ["practitioner"])
    desk, prac = app.test_client(), app.test_client()
    sign_in(desk, "desk@clinic.test")
    sign_in(prac, "prac@clinic.test")
    caplog.set_level(logging.ERROR)
    for client, url in ((desk, "/staff/desk"), (prac, "/staff/submissions"), (prac, "/staff/submissions?date=any")):
        page = client.get(url)
        assert page.status_code == 200, url
        assert "Gail Good" in page.text and good in page.text, "the rest of the page works"
        assert "Cannot be read" in page.text and bad in page.text and "Bert Bad" not in page.text
        assert page.text.count("Cannot be read") == 1
    record = prac.get(f"/staff/submissions/{bad}")
    assert record.status_code == 500 and "This record cannot be read" in record.text
    assert desk.get(f"/staff/desk/{bad}/sheet").status_code == 500
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"row id {bad_id} cannot be decrypted" in logged
    assert "Bert" not in logged and "Gail" not in logged


# -- binding to the row (issue 11 #7) ----------------------------------------------------------------------


def _copy_column(app, column: str, source: str, target: str) -> None:
    with app.app_context():
        data = db.session.execute(text(f"SELECT {column} FROM submission WHERE reference = :r"),
                                  {"r": source}).scalar_one()
        db.session.execute(text(f"UPDATE submission SET {column} = :d WHERE reference = :r"),
                           {"d": bytes(data), "r": target})
        db.session.commit()
        db.session.remove()


def test_encrypted_answers_copied_from_another_row_are_refused_not_shown(app):
    ann = complete(app.test_client(), clear_answers(full_name="Ann Original", appointment_date=TODAY.isoformat()))
    bob = complete(app.test_client(), clear_answers(full_name="Bob Target", appointment_date=TODAY.isoformat()))
    _copy_column(app, "answers", ann, bob)  # the same key: only the row binding tells them apart
    add_user(app, "prac@clinic.test", ["practitioner"])
    add_user(app, "desk@clinic.test", ["desk"])
    prac, desk = app.test_client(), app.test_client()
    sign_in(prac, "prac@clinic.test")
    sign_in(desk, "desk@clinic.test")
    for client, url in ((prac, "/staff/submissions"), (desk, "/staff/desk")):
        page = client.get(url).text
        [bobs_row] = [row for row in page.split("<tr")[1:] if bob in row]
        assert "Ann Original" not in bobs_row and "Cannot be read" in bobs_row, "never Ann's data under Bob's reference"
        assert "Ann Original" in page, "Ann's own row still reads"
    record = prac.get(f"/staff/submissions/{bob}")
    assert record.status_code == 500 and "Ann Original" not in record.text
    assert prac.get(f"/staff/submissions/{ann}").status_code == 200
    with app.app_context():
        from screening.crypto import VaultError

        with pytest.raises(VaultError, match="not written for it"):
            db.session.scalar(select(Submission).where(Submission.reference == bob))
        db.session.rollback()
        db.session.remove()


def test_an_edited_clear_outcome_is_detected(app):
    reference = complete(app.test_client(), clear_answers(full_name="Rae Review", appointment_date=TODAY.isoformat(),
                                                          pregnant="yes"))
    with app.app_context():
        assert db.session.scalar(select(Submission.outcome)) != "CLEAR"
        db.session.execute(text("UPDATE submission SET outcome = 'CLEAR'"))
        db.session.commit()
        db.session.remove()
    add_user(app, "prac@clinic.test", ["practitioner"])
    prac = app.test_client()
    sign_in(prac, "prac@clinic.test")
    clear_only = prac.get("/staff/submissions?outcome=CLEAR").text
    assert "Cannot be read" in clear_only and reference in clear_only, "flagged, not listed as a CLEAR client"
    assert "Rae Review" not in clear_only and 'class="outcome' not in clear_only.split(reference, 1)[1].split("</tr>")[0]
    assert prac.get(f"/staff/submissions/{reference}").status_code == 500

