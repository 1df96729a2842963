"""Once a submission is committed the client sees its confirmation, whatever fails afterwards; and a retry of a
declaration whose commit reported an error but was stored lands on that confirmation, not on "expired"."""

from __future__ import annotations

import re

from sqlalchemy import event, func, select

from screening.extensions import db
from screening.models import Draft, Submission
from tests import web
from tests.answers import clear_answers

NAME = "Connie Mitted"


def _ready(client) -> dict:
    web.start(client)
    web.answer_all(client, clear_answers(full_name=NAME))
    assert client.get("/check").status_code == 200
    page = client.get("/declaration")
    return {"csrf_token": web.csrf_token(page.text), "confirm": "y", "signature": NAME}


def _stored(app) -> list[str]:
    with app.app_context():
        try:
            return list(db.session.scalars(select(Submission.reference)))
        finally:
            db.session.remove()


def _drafts(app) -> int:
    with app.app_context():
        try:
            return db.session.scalar(select(func.count()).select_from(Draft))
        finally:
            db.session.remove()


def _reference(html: str) -> str:
    match = re.search(r'class="reference">([A-Z0-9-]+)<', html)
    assert match, "no reference on the page"
    return match.group(1)


def _error(engine):
    return engine.dialect.loaded_dbapi.OperationalError("server closed the connection unexpectedly")


def test_a_database_that_fails_right_after_the_commit_still_confirms(app, client, monkeypatch):
    form = _ready(client)
    with app.app_context():
        engine = db.engine
    state = {"inserted": False, "broken": False}
    real_commit = engine.dialect.do_commit

    def watch(cursor, statement, parameters, context):
        if state["broken"]:
            raise _error(engine)  # every statement after the submission's commit fails
        if statement.lstrip().upper().startswith("INSERT INTO SUBMISSION"):
            state["inserted"] = True

    def commit(dbapi_connection):
        real_commit(dbapi_connection)
        if state["inserted"]:
            state["broken"] = True

    event.listen(engine.dialect, "do_execute", watch)
    monkeypatch.setattr(engine.dialect, "do_commit", commit)
    try:
        response = client.post("/declaration", data=form)
        assert state["broken"], "the fault was injected after the commit"
        assert response.status_code == 302 and response.location.endswith("/done"), response.status_code
        reference = _reference(client.get("/done").text)
        # Sending it again (a second click, Back and send) lands on the same confirmation, still without the database.
        again = client.post("/declaration", data=form)
        assert again.status_code == 302 and again.location.endswith("/done")
        assert _reference(client.get("/done").text) == reference
    finally:
        event.remove(engine.dialect, "do_execute", watch)
        monkeypatch.setattr(engine.dialect, "do_commit", real_commit)
    assert _stored(app) == [reference] and _drafts(app) == 0


def test_a_commit_that_reports_an_error_but_was_stored_is_confirmed_on_retry(app, client, monkeypatch):
    form = _ready(client)
    with app.app_context():
        engine = db.engine
    state = {"inserted": False, "failed": 0}
    real_commit = engine.dialect.do_commit

    def watch(cursor, statement, parameters, context):
        if statement.lstrip().upper().startswith("INSERT INTO SUBMISSION"):
            state["inserted"] = True

    def commit(dbapi_connection):
        real_commit(dbapi_connection)  # the server stores it...
        if state["inserted"] and not state["failed"]:
            state["failed"] += 1
            raise _error(engine)  # ...and the acknowledgement is lost

    event.listen(engine.dialect, "do_execute", watch)
    monkeypatch.setattr(engine.dialect, "do_commit", commit)
    try:
        response = client.post("/declaration", data=form)
    finally:
        event.remove(engine.dialect, "do_execute", watch)
        monkeypatch.setattr(engine.dialect, "do_commit", real_commit)
    assert state["failed"] == 1
    assert response.status_code == 503 and "Your answers have not been sent yet" in response.text
    stored = _stored(app)
    assert len(stored) == 1 and _drafts(app) == 0, "the server had stored it"
    for retry in (client.get("/declaration"), client.post("/declaration", data=form)):
        assert retry.status_code == 302 and retry.location.endswith("/done"), "not 'expired'"
    assert _reference(client.get("/done").text) == stored[0]
    assert _stored(app) == stored, "stored once"
    assert "tried_reference" not in client.get_cookie("session").value  # the cookie was reset at confirmation


def test_an_expired_draft_with_a_reference_that_was_never_stored_is_still_expired(app, client):
    """The reference a failed commit tried is shown only if it exists: a draft that expired shows "expired"."""
    form = _ready(client)
    with client.session_transaction() as s:
        s["tried_reference"] = "ACDE-FHJK"
    with app.app_context():
        db.session.execute(Draft.__table__.delete())
        db.session.commit()
    response = client.post("/declaration", data=form)
    assert response.status_code == 302 and response.location.endswith("/expired")
    assert _stored(app) == []
