"""Appointments at scale, CI size (issue 13, "Scale"): two app servers, two workers, PostgreSQL and Redis.

30 appointments through the JSON API (spread over both servers), 30 invitations to a real SMTP server, 30 clients
who open the link from their email, pass the date of birth, confirm the booking and answer; reminders run during
and after the load. Every email arrives exactly once, every PDF is written exactly once, no reminder follows a
screening, nothing is lost (tests/scale.py has the harness; bench/bench_appointments.py runs it at 500 and times it).

Needs SCREENING_TEST_DATABASE_URL (a PostgreSQL database whose tables are DROPPED) and a Redis at
SCREENING_TEST_REDIS_URL (default redis://127.0.0.1:6379/5: the queue there, the rate limits in the next database,
both emptied). Without either it is skipped with a loud reason, except under CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest
import redis

from tests import scale

APPOINTMENTS = 30
CLIENTS = 10
REDIS_URL = os.environ.get("SCREENING_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")


def missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(reason + " - under CI this is a failure, not a skip")
    pytest.skip(reason)


@pytest.fixture
def services():
    """(PostgreSQL URL, Redis URL); skip (or fail under CI) when either is not there."""
    database_url = os.environ.get("SCREENING_TEST_DATABASE_URL", "")
    if not database_url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        missing("NO POSTGRESQL (SCREENING_TEST_DATABASE_URL unset): appointments at scale (two servers, two workers, "
                "exactly-once email and PDFs) were NOT tested")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        missing(f"NO REDIS at {REDIS_URL} ({type(exc).__name__}): appointments at scale (two servers, two workers, "
                "exactly-once email and PDFs) were NOT tested")
    finally:
        client.close()
    return database_url, REDIS_URL


def test_appointments_through_two_servers_and_two_workers_email_and_render_each_exactly_once(services, tmp_path,
                                                                                             capsys):
    database_url, redis_url = services
    run, booked, mailbox = scale.run_scale(database_url, redis_url, tmp_path, appointments=APPOINTMENTS,
                                           clients=CLIENTS, api_threads=4, reminder_every=1.0, time_limit=300,
                                           done_timeout=300)
    with capsys.disabled():
        print("\n[scale] " + "\n[scale] ".join(scale.summary(run)))
    assert scale.check(run, booked, mailbox) == []
    assert len(run.facts["submissions"]) == APPOINTMENTS
    assert sum(r["kind"] == "invitation" for r in run.facts["outbox"]) == APPOINTMENTS
    assert sum(r["kind"] == "confirmation" for r in run.facts["outbox"]) == APPOINTMENTS
    assert any(r["kind"] == "practitioner" for r in run.facts["outbox"]), "some screenings need a practitioner"


def fabricated_run():
    """A run of one appointment where everything held, made up without servers (to test the checks themselves)."""
    b = scale.Booked(0, dt.date.today())
    at = dt.datetime.now(dt.timezone.utc)
    run = scale.Run(appointments=1, api=[{"i": 0, "replay": False, "status": 201}],
                    clients=[{"i": 0, "status": 302, "reference": "AAAA-BBBB", "at": time.time()}], reminders_after=0)
    run.facts = {
        "appointments": [{"id": 1, "external_id": b.external_id, "email": b.email, "submission_id": 7,
                          "practitioner_id": 3, "draft_id": None}],
        "submissions": {7: {"reference": "AAAA-BBBB", "outcome": "REVIEW", "name": b.name, "submitted_at": at,
                            "pdf_ok": True, "pdf_attempts": 0, "pdf_rendered_at": at}},
        "outbox": [{"id": n, "kind": kind, "appointment_id": 1, "status": "sent", "attempts": 1,
                    "created_at": at, "message_id": f"<{n}@clinic.test>", "to": to}
                   for n, kind, to in ((1, "invitation", b.email), (2, "confirmation", b.email),
                                       (3, "practitioner", scale.PRACTITIONERS[0]))],
        "reminders_sent": [], "pdf_writes": [(7, at)], "drafts": 0, "practitioner_ids": {scale.PRACTITIONERS[0]: 3}}
    box = scale.CountingMailbox()
    for n, subject, to in ((1, "Your health questions", b.email), (2, "We have your answers: reference AAAA-BBBB",
                                                                    b.email),
                           (3, "A screening needs a practitioner", scale.PRACTITIONERS[0])):
        got = scale.Received(at=time.time(), to=(to,), message_id=f"<{n}@clinic.test>", subject=subject, text="")
        box.messages.append(got)
        box.by_recipient[to].append(got)
    return run, [b], box


def test_the_checks_pass_a_clean_run_and_catch_a_message_sent_twice_a_second_render_and_a_late_reminder():
    run, booked, box = fabricated_run()
    assert scale.check(run, booked, box) == []

    run, booked, box = fabricated_run()
    box.messages.append(box.messages[1])
    box.by_recipient[booked[0].email].append(box.messages[1])
    assert any("received more than once" in p for p in scale.check(run, booked, box))

    run, booked, box = fabricated_run()
    run.facts["pdf_writes"].append(run.facts["pdf_writes"][0])
    assert any("PDFs not written exactly once" in p for p in scale.check(run, booked, box))

    run, booked, box = fabricated_run()
    late = dt.datetime.fromtimestamp(run.clients[0]["at"] + 1, dt.timezone.utc)
    run.facts["outbox"].append({"id": 4, "kind": "reminder", "appointment_id": 1, "status": "sent", "attempts": 1,
                                "created_at": late, "message_id": "<4@clinic.test>", "to": booked[0].email})
    run.facts["reminders_sent"].append((1, 1))
    problems = scale.check(run, booked, box)
    assert any("reminders queued after the screening" in p for p in problems)
    assert any("never received" in p for p in problems)

    run, booked, box = fabricated_run()
    run.facts["appointments"][0]["submission_id"] = None
    assert any("not linked" in p for p in scale.check(run, booked, box))
