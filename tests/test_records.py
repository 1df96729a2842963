"""Retention and the client's rights: `flask screening purge`, `export` and `erase`, and their audit trail."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import stat

import pytest
from sqlalchemy import func, select

from screening import audit, current_rules, records, services
from screening.config import ConfigError, finish, from_environ
from screening.extensions import db
from screening.models import Addendum, Arrival, AuditEvent, Draft, FlagAcknowledgement, Review, StaffUser, Submission
from screening.staff import desk, review_services
from screening.staff.accounts import create_user
from tests.answers import clear_answers
from tests.staff import sign_in
from tests.web import complete

PASSWORD = "correct horse battery"
# Cold sores once a year: one PRACTITIONER REVIEW flag, so a sign-off has an acknowledgement.
REVIEW = dict(cold_sore_history="yes", cold_sore_frequency="yearly")


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)


def cutoff(years: int = 8) -> dt.date:
    return records.retention_cutoff(records.today(), years)


def add_submission(app, submitted_at: dt.datetime | None = None, name: str = "Ann Example", **changes) -> str:
    """Store a signed submission through the submit use case (no web round trip); return its reference."""
    with app.app_context():
        now = dt.datetime.now(dt.timezone.utc)
        draft = Draft(token_hash=secrets.token_hex(32), answers=clear_answers(full_name=name, **changes),
                      signature_name=name, signed_at=now, expires_at=now + dt.timedelta(hours=1))
        db.session.add(draft)
        db.session.commit()
        submission = services.submit(db.session, draft, current_rules())
        if submitted_at is not None:
            submission.submitted_at = submitted_at
            db.session.commit()
        reference = submission.reference
        db.session.remove()
    return reference


def staff(app) -> int:
    with app.app_context():
        user = db.session.scalar(select(StaffUser).where(StaffUser.email == "pat@clinic.test"))
        if user is None:
            user = create_user(db.session, "pat@clinic.test", "Pat Practitioner", ["practitioner", "desk", "admin"],
                               PASSWORD)
        user_id = user.id
        db.session.remove()
    return user_id


def attach_everything(app, reference: str, *, signed_pdf: bool = False) -> None:
    """Sign off (acknowledging every flag), add an addendum, mark arrived and view it: rows and audit events."""
    user_id = staff(app)
    with app.app_context():
        user = db.session.get(StaffUser, user_id)
        submission = services.find_submission(db.session, reference)
        flags = submission.result["flags"]
        data = review_services.SignOffInput(acknowledged=(True,) * len(flags), flag_notes=("Seen",) * len(flags),
                                            decision="decline", note="Patch test first")  # proceed waits for the day
        review_services.sign_off(db.session, submission, user, data, today=records.today())
        review_services.add_addendum(db.session, submission, user, "Client phoned: patch test done")
        desk.mark_arrived(db.session, submission, user, "127.0.0.1")
        audit.record(db.session, "view_submission", actor_id=user_id, submission_id=submission.id)
        if signed_pdf:
            review_services.render_signed_off_pdf(db.session, submission, app.config["CLINIC"])
        db.session.remove()


def counts(app, reference: str | None = None) -> dict:
    """Rows per table (attached rows of ``reference`` only, when given)."""
    with app.app_context():
        query = select(func.count(Submission.id))
        sid = None
        if reference:
            query = query.where(Submission.reference == reference)
            sid = db.session.scalar(select(Submission.id).where(Submission.reference == reference))
        out = {"submissions": db.session.scalar(query)}
        for model in (Review, Addendum, Arrival):
            query = select(func.count(model.id))
            if reference:
                query = query.where(model.submission_id == sid)
            out[model.__tablename__] = db.session.scalar(query)
        query = select(func.count(FlagAcknowledgement.id))
        if reference:
            query = query.join(Review, Review.id == FlagAcknowledgement.review_id).where(Review.submission_id == sid)
        out["flag_acknowledgement"] = db.session.scalar(query)
        db.session.remove()
    return out


def references(app) -> set[str]:
    with app.app_context():
        out = set(db.session.scalars(select(Submission.reference)))
        db.session.remove()
    return out


def events(app, **where) -> list[AuditEvent]:
    with app.app_context():
        query = select(AuditEvent).order_by(AuditEvent.id)
        for key, value in where.items():
            query = query.where(getattr(AuditEvent, key) == value)
        rows = db.session.scalars(query).all()
        db.session.expunge_all()
        db.session.remove()
    return rows


def event_ids_of(app, reference: str) -> list[int]:
    with app.app_context():
        sid = db.session.scalar(select(Submission.id).where(Submission.reference == reference))
        ids = list(db.session.scalars(select(AuditEvent.id).where(AuditEvent.submission_id == sid)))
        db.session.remove()
    return ids


@pytest.fixture
def aged(app):
    """Four submissions around the 8-year cut-off: 12 years old, a minute before it, a minute after it, today."""
    line = midnight(cutoff())
    refs = {
        "ancient": add_submission(app, line - dt.timedelta(days=4 * 365), name="Old Client", **REVIEW),
        "just_expired": add_submission(app, line - dt.timedelta(minutes=1), name="Edge Client"),
        "just_kept": add_submission(app, line + dt.timedelta(minutes=1), name="Kept Client"),
        "today": add_submission(app, name="New Client", **REVIEW),
    }
    attach_everything(app, refs["ancient"])
    attach_everything(app, refs["today"])
    return refs


def run(runner, *args, input=None):
    return runner.invoke(args=["screening", *args], input=input)


# -- purge ------------------------------------------------------------------------------------------


def test_a_dry_run_lists_references_and_dates_and_deletes_nothing(app, runner, aged):
    before = counts(app)
    trail = len(events(app))
    result = run(runner, "purge")
    assert result.exit_code == 0, result.output
    assert f"Retention period: 8 years. Submissions submitted before {cutoff().isoformat()}" in result.output
    listed = {line.split()[0]: line.split()[2] for line in result.output.splitlines() if line.startswith("  ")}
    with app.app_context():
        dates = dict(db.session.execute(select(Submission.reference, Submission.submitted_at)).all())
    assert listed == {aged[k]: f"{dates[aged[k]]:%Y-%m-%d}" for k in ("ancient", "just_expired")}
    assert "2 submission(s) would be deleted" in result.output and "Dry run: nothing was deleted" in result.output
    for health_data in ("Old Client", "Edge Client", "1990-03-27", "CLEAR", "REVIEW"):
        assert health_data not in result.output
    assert counts(app) == before and references(app) == set(aged.values())
    assert len(events(app)) == trail


def test_yes_deletes_exactly_the_older_submissions_and_what_is_attached_keeping_their_audit_events(app, runner, aged):
    ancient_events = event_ids_of(app, aged["ancient"])
    today_events = event_ids_of(app, aged["today"])
    assert len(ancient_events) == 4  # sign-off, addendum, arrival, view
    before = counts(app)

    # An explicit date: only what was submitted before it.
    day = (midnight(cutoff()) - dt.timedelta(days=365)).date()
    result = run(runner, "purge", "--before", day.isoformat(), "--yes")
    assert result.exit_code == 0, result.output
    assert references(app) == {aged["just_expired"], aged["just_kept"], aged["today"]}
    assert "deleted 1 submission(s), 1 review(s), 1 acknowledgement(s), 1 addendum/addenda, 1 arrival(s); " \
           "4 audit event(s) kept" in result.output

    # The default: today minus the retention period.
    result = run(runner, "purge", "--yes")
    assert result.exit_code == 0, result.output
    assert f"  {aged['just_expired']}  submitted " in result.output
    assert references(app) == {aged["just_kept"], aged["today"]}
    after = counts(app)
    assert after["submissions"] == before["submissions"] - 2
    for table in ("review", "addendum", "arrival", "flag_acknowledgement"):
        assert after[table] == before[table] - 1, table
    assert counts(app, aged["today"]) == {"submissions": 1, "review": 1, "addendum": 1, "arrival": 1,
                                          "flag_acknowledgement": 1}

    # The audit trail keeps every event; those about purged submissions lose only their link.
    kept = {e.id: e for e in events(app)}
    assert all(kept[i].submission_id is None for i in ancient_events)
    assert all(kept[i].submission_id is not None for i in today_events)
    purged = events(app, action="purged")
    assert [(e.detail, e.actor_id, e.submission_id) for e in purged] == [
        (aged["ancient"], None, None), (aged["just_expired"], None, None)]

    result = run(runner, "purge", "--yes")
    assert result.exit_code == 0 and "deleted 0 submission(s)" in result.output


def test_a_date_later_than_the_retention_period_allows_is_refused_unless_forced(app, runner, aged):
    before = counts(app)
    too_recent = records.today().isoformat()
    result = run(runner, "purge", "--before", too_recent, "--yes")
    assert result.exit_code == 1
    assert (f"error: --before {too_recent} is later than today minus the retention period (8 years: "
            f"{cutoff().isoformat()})") in result.output
    assert "--force" in result.output
    assert counts(app) == before

    result = run(runner, "purge", "--before", (records.today() + dt.timedelta(days=1)).isoformat(), "--force", "--yes")
    assert result.exit_code == 0, result.output
    assert references(app) == set()
    assert len(events(app, action="purged")) == 4


def test_the_retention_period_comes_from_the_setting(app, runner, aged):
    app.config["RETENTION_YEARS"] = 15
    result = run(runner, "purge")
    assert result.exit_code == 0, result.output
    assert f"before {cutoff(15).isoformat()}" in result.output and "0 submission(s) would be deleted" in result.output
    result = run(runner, "purge", "--before", cutoff(8).isoformat())
    assert result.exit_code == 1 and "(15 years: " in result.output


def test_a_large_purge_commits_in_batches_and_audits_each_submission(app):
    old = [add_submission(app, midnight(cutoff()) - dt.timedelta(days=i + 1)) for i in range(3)]
    keep = add_submission(app)
    with app.app_context():
        deleted, total = records.purge(db.session, cutoff(), batch=2)
        db.session.remove()
    assert [c.reference for c in deleted] == old[::-1] and total.submissions == 3
    assert references(app) == {keep}
    assert sorted(e.detail for e in events(app, action="purged")) == sorted(old)


def test_retention_years_defaults_to_8_and_must_be_above_zero(tmp_path):
    assert from_environ({})["RETENTION_YEARS"] == 8
    assert from_environ({"SCREENING_RETENTION_YEARS": "10"})["RETENTION_YEARS"] == 10
    settings = from_environ({"SCREENING_RETENTION_YEARS": "0", "SCREENING_SECRET_KEY": "x"})
    with pytest.raises(ConfigError, match="SCREENING_RETENTION_YEARS must be above 0"):
        finish(settings, str(tmp_path))


def test_the_cut_off_is_the_same_day_years_earlier_and_28_february_for_29_february():
    assert records.retention_cutoff(dt.date(2026, 11, 24), 8) == dt.date(2018, 11, 24)
    assert records.retention_cutoff(dt.date(2028, 2, 29), 8) == dt.date(2020, 2, 29)
    assert records.retention_cutoff(dt.date(2028, 2, 29), 7) == dt.date(2021, 2, 28)


# -- erase ---------------------------------------------------------------------------------------------


def test_erase_asks_first_then_removes_everything_attached_and_keeps_the_audit_trail(app, runner):
    reference = add_submission(app, **REVIEW)
    other = add_submission(app, name="Other Client", **REVIEW)
    attach_everything(app, reference)
    attach_everything(app, other)
    own_events = event_ids_of(app, reference)
    other_before = counts(app, other)

    result = run(runner, "erase", reference, input="n\n")
    assert result.exit_code == 1 and f"Erase submission {reference}" in result.output
    assert references(app) == {reference, other}

    reason = "Client asked by email on 3 March"
    result = run(runner, "erase", reference.lower().replace("-", " "), "--reason", reason, input="y\n")
    assert result.exit_code == 0, result.output
    assert f"erased {reference}: 1 submission(s), 1 review(s), 1 acknowledgement(s)" in result.output
    assert references(app) == {other}
    assert counts(app, other) == other_before
    assert counts(app)["review"] == counts(app)["addendum"] == counts(app)["arrival"] == 1
    assert counts(app)["flag_acknowledgement"] == 1
    kept = {e.id: e for e in events(app)}
    assert own_events and all(kept[i].submission_id is None for i in own_events)
    [erased] = events(app, action="erased")
    assert (erased.detail, erased.actor_id, erased.submission_id) == (f"{reference}; reason: {reason}", None, None)

    # The audit trail's filter knows the new action.
    admin = app.test_client()
    sign_in(admin, "pat@clinic.test")
    page = admin.get("/staff/admin/audit?action=erased")
    assert page.status_code == 200 and f"Erased {reference} at the client’s request" in page.text


def test_erase_with_yes_does_not_ask_and_a_long_reason_is_refused(app, runner):
    reference = add_submission(app)
    result = run(runner, "erase", reference, "--yes", "--reason", "x" * (records.REASON_MAX + 1))
    assert result.exit_code == 1 and f"{records.REASON_MAX} characters or fewer" in result.output
    assert references(app) == {reference}
    result = run(runner, "erase", reference, "--yes")
    assert result.exit_code == 0 and "Erase submission" not in result.output
    assert references(app) == set()
    assert [e.detail for e in events(app, action="erased")] == [reference]


# -- export ----------------------------------------------------------------------------------------------


def test_export_writes_the_record_as_json_and_its_pdfs(app, runner, tmp_path):
    reference = complete(app.test_client(), clear_answers(full_name="Zoë Exportée", **REVIEW))
    attach_everything(app, reference, signed_pdf=True)
    with app.app_context():
        submission = services.find_submission(db.session, reference)
        assert submission.pdf is None  # not rendered yet: the export renders it
        stored = {"answers": submission.answers, "result": submission.result, "signature": submission.signature_name,
                  "id": submission.id}
        db.session.remove()

    out = tmp_path / "requests"
    result = run(runner, "export", reference, "-o", str(out), "--reason", "Subject access request")
    assert result.exit_code == 0, result.output
    folder = out / reference
    assert sorted(p.name for p in out.iterdir()) == [reference]
    assert sorted(p.name for p in folder.iterdir()) == ["record.json", "signed-off.pdf", "submission.pdf"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o600}

    data = json.loads((folder / "record.json").read_text(encoding="utf-8"))
    assert data["reference"] == reference
    assert data["answers"] == stored["answers"] and data["answers"]["full_name"] == "Zoë Exportée"
    assert data["result"] == stored["result"] and data["outcome"] == "REVIEW"
    assert data["signature"]["name"] == stored["signature"]
    assert dt.datetime.fromisoformat(data["signature"]["signed_at"]).tzinfo is not None
    assert data["appointment_date"] == stored["answers"]["appointment_date"]
    review = data["review"]
    assert review["decision"] == "decline" and review["note"] == "Patch test first"
    assert review["practitioner"] == "Pat Practitioner"
    assert [a["flag_id"] for a in review["acknowledgements"]] == [f["id"] for f in stored["result"]["flags"]]
    assert [a["text"] for a in review["addenda"]] == ["Client phoned: patch test done"]
    assert data["arrived_at"] is not None

    with app.app_context():
        pdf, pdf_hmac = db.session.execute(select(Submission.pdf, Submission.pdf_hmac)
                                           .where(Submission.reference == reference)).one()
        signed, signed_hmac = db.session.execute(select(Review.pdf, Review.pdf_hmac)).one()
        db.session.remove()
    # The export carries plain SHA-256 checksums of the files it wrote; the database, keyed digests only.
    assert (folder / "submission.pdf").read_bytes() == pdf and (folder / "signed-off.pdf").read_bytes() == signed
    assert hashlib.sha256(pdf).hexdigest() == data["pdf_sha256"] != pdf_hmac
    assert app.extensions["screening_vault"].pdf_intact(pdf, pdf_hmac)
    assert (folder / "submission.pdf").read_bytes().startswith(b"%PDF-")
    assert hashlib.sha256(signed).hexdigest() == review["signed_off_pdf_sha256"] != signed_hmac
    assert app.extensions["screening_vault"].pdf_intact(signed, signed_hmac)

    [exported] = events(app, action="exported")
    assert (exported.detail, exported.actor_id, exported.submission_id) == (
        f"{reference}; reason: Subject access request", None, stored["id"])

    # A second export into the same folder is refused and changes nothing.
    result = run(runner, "export", reference, "-o", str(out))
    assert result.exit_code == 1 and "already exists" in result.output
    assert sorted(p.name for p in out.iterdir()) == [reference]
    assert len(events(app, action="exported")) == 1


def test_an_unreviewed_submission_exports_without_a_signed_off_pdf(app, runner, tmp_path):
    reference = add_submission(app)
    result = run(runner, "export", reference, "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    folder = tmp_path / reference
    assert sorted(p.name for p in folder.iterdir()) == ["record.json", "submission.pdf"]
    data = json.loads((folder / "record.json").read_text(encoding="utf-8"))
    assert data["review"] is None and data["arrived_at"] is None and data["outcome"] == "CLEAR"


@pytest.mark.parametrize("command", [("export", "-o", "{tmp}"), ("erase", "--yes")], ids=["export", "erase"])
def test_an_unknown_reference_is_named_and_fails(app, runner, tmp_path, command):
    keep = add_submission(app)
    name, *rest = command
    result = run(runner, name, "ZZZZ-ZZZZ", *[arg.format(tmp=tmp_path / "out") for arg in rest])
    assert result.exit_code == 1
    assert "error: no submission has the reference 'ZZZZ-ZZZZ'" in result.output
    assert references(app) == {keep}
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    assert events(app) == []


def test_the_record_actions_are_audit_actions():
    assert {"purged", "exported", "erased"} <= audit.ACTIONS
