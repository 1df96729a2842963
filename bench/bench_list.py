"""Benchmark the practitioner's submissions list with 100,000 submissions.

Run: .venv/bin/python bench/bench_list.py [--rows 100000] [--requests 200] [--seed 20261124]

Creates a temporary SQLite database through the app's own schema (its indexes included) and loads
it with plain rows by ``executemany`` (no ORM objects): realistic answers and results, computed by
the rules engine for four kinds of client (clear, review, defer, do not treat), varied names and
dates of birth, appointments spread over 300 days back and 65 ahead (about 270 a day), and a
sign-off for about a third of the past ones. It then signs a practitioner in with the Flask test
client and requests the list page, through the whole stack (staff session, access check, query,
template), ``--requests`` times for each kind of request:

  today          GET  /staff/submissions                      (the default: today's appointments)
  date filter    GET  /staff/submissions?date=<another day>
  name search    POST /staff/submissions  name=<a surname>     (a different surname each time)
  outcome filter GET  /staff/submissions?date=any&outcome=DEFER
  page 20        GET  /staff/submissions?date=any&page=20

and prints the median (p50) and 95th percentile (p95) in milliseconds per request. Target: p95 under
100 ms for each.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import re
import sys
import tempfile
import time
from pathlib import Path

from _common import make_app, percentile, typical_answers

from screening import current_rules  # noqa: E402
from screening.extensions import db  # noqa: E402
from screening.rules import asked_ids, evaluate  # noqa: E402
from screening.crypto import EncryptedJSON, binding, seal, vault  # noqa: E402
from screening.services import REFERENCE_ALPHABET  # noqa: E402
from screening.staff.accounts import create_user  # noqa: E402
from tests.answers import clear_answers  # noqa: E402
from tests.web import csrf_token  # noqa: E402

TARGET_MS = 100.0
PASSWORD = "bench password 1234"
FIRST = ["Ann", "Bob", "Chloe", "David", "Emma", "Farah", "George", "Hana", "Ivan", "Jess", "Kofi", "Lena",
         "Mohammed", "Nina", "Owen", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Vera", "Will", "Yusuf",
         "Zoe", "Aisha", "Ben", "Carys", "Dan", "Elif"]
LAST = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Robinson",
        "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson", "Clarke",
        "Okafor", "Nowak", "Kowalski", "Murphy", "Kelly", "Singh", "Khan", "Ahmed", "Ali", "Campbell",
        "Stewart", "Morris", "Rossi", "Garcia", "Lopez", "Novak", "Fischer", "Schmidt", "Dubois", "Martin",
        "Bernard", "Moreau", "Hughes", "Edwards", "Price", "Lloyd", "Morgan", "Owen", "Rees"]
COLUMNS = ("reference", "answers", "dictionary_version", "rules_digest", "result", "outcome", "appointment_date",
           "signature_name", "signed_at", "answered_on", "submitted_at", "is_kiosk", "name_index", "dob_index")


def kinds(app) -> list[tuple[float, dict, dict]]:
    """Return (share, stored answers, result) for four kinds of client, evaluated by the shipped rules."""
    recent = (dt.date.today() - dt.timedelta(days=20)).isoformat()
    sets = [
        (0.55, clear_answers()),
        (0.25, clear_answers(cold_sore_history="yes", cold_sore_frequency="yearly")),
        (0.15, typical_answers()),
        (0.05, clear_answers(keloid_history="yes", isotretinoin_last_12m="yes", isotretinoin_current="no",
                             isotretinoin_last_dose_date=recent)),
    ]
    out = []
    with app.app_context():
        for share, answers in sets:
            answers["appointment_date"] = (dt.date.today() + dt.timedelta(days=30)).isoformat()
            result = evaluate(current_rules(), answers, answered_on=dt.date.today())
            asked = set(asked_ids(answers))
            out.append((share, {k: v for k, v in answers.items() if k in asked}, result.to_dict()))
    return out


def load(app, count: int, rng: random.Random) -> tuple[float, int]:
    """Insert ``count`` submissions and their sign-offs with executemany; return (seconds, reviews)."""
    started = time.perf_counter()
    today = dt.date.today()
    plans = kinds(app)
    shares = [p[0] for p in plans]
    references: set[str] = set()
    rows, reviews = [], []
    with app.app_context():
        keys = vault()  # stored as the app stores them: encrypted, with blind indexes
    json_of = EncryptedJSON().dump
    for n in range(count):
        _, answers, result = rng.choices(plans, weights=shares)[0]
        while True:
            chars = "".join(rng.choice(REFERENCE_ALPHABET) for _ in range(8))
            reference = f"{chars[:4]}-{chars[4:]}"
            if reference not in references:
                references.add(reference)
                break
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        dob = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(365 * 55))
        appointment = today + dt.timedelta(days=rng.randrange(-300, 66))
        submitted = dt.datetime.combine(appointment - dt.timedelta(days=rng.randrange(1, 20)), dt.time(10, 0))
        stored = dict(answers, full_name=name, dob=dob.isoformat(), appointment_date=appointment.isoformat())
        # Bound to the row as the app binds them (crypto.seal: table, column, reference and outcome).
        bind = binding("submission", {"reference": reference, "outcome": result["outcome"]})
        rows.append((reference, keys.encrypt(seal("submission", "answers", bind, json_of(stored))),
                     result["dictionary_version"], result["rules_digest"],
                     keys.encrypt(seal("submission", "result", bind, json_of(result))), result["outcome"],
                     appointment.isoformat(), keys.encrypt(seal("submission", "signature_name", bind, name.encode())),
                     submitted.isoformat(" "), submitted.date().isoformat(),
                     submitted.isoformat(" "), 0,
                     keys.name_index(name), keys.dob_index(dob.isoformat())))
        if appointment < today and rng.random() < 0.35:
            reviews.append((n + 1, "proceed", keys.encrypt(seal("review", "note", str(n + 1), b"")),
                            (submitted + dt.timedelta(days=1)).isoformat(" ")))
    with app.app_context():
        practitioner_id = create_user(db.session, "bench-prac@clinic.test", "Bench Practitioner",
                                      ["practitioner"], PASSWORD).id
        db.session.remove()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA synchronous=OFF")
            conn.exec_driver_sql(f"INSERT INTO submission ({', '.join(COLUMNS)}) "
                                 f"VALUES ({', '.join('?' for _ in COLUMNS)})", rows)
            conn.exec_driver_sql("INSERT INTO review (submission_id, practitioner_id, decision, note, signed_at) "
                                 f"VALUES (?, {practitioner_id}, ?, ?, ?)", reviews)
        db.engine.dispose()
    return time.perf_counter() - started, len(reviews)


def sign_in(app):
    client = app.test_client()
    page = client.get("/staff/login")
    response = client.post("/staff/login", data={"csrf_token": csrf_token(page.text),
                                                 "email": "bench-prac@clinic.test", "password": PASSWORD})
    assert response.status_code == 302, response.status_code
    return client


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20261124)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="bench-list-") as tmp:
        path = Path(tmp) / "bench.db"
        # Sessions last the whole run: the idle timeout must not end one between two requests.
        # (a password alone: the benchmark measures the list, not the two-factor sign-in)
        app = make_app(path, STAFF_IDLE_MINUTES=600, STAFF_LOGIN_LIMIT_ACCOUNT="1000 per minute", TWO_FACTOR_ROLES="")
        seconds, reviewed = load(app, args.rows, rng)
        size = path.stat().st_size
        print(f"loaded {args.rows:,} submissions ({reviewed:,} signed off) in {seconds:.1f} s; "
              f"database {size / 1e6:.0f} MB")
        client = sign_in(app)
        csrf = csrf_token(client.get("/staff/submissions").text)
        other_day = (dt.date.today() - dt.timedelta(days=7)).isoformat()
        surnames = [s.lower() for s in LAST]

        def today_list():
            return client.get("/staff/submissions")

        def date_filter():
            return client.get(f"/staff/submissions?date={other_day}")

        def name_search():
            return client.post("/staff/submissions", data={"csrf_token": csrf, "name": rng.choice(surnames)})

        def outcome_filter():
            return client.get("/staff/submissions?date=any&outcome=DEFER")

        def page_20():
            return client.get("/staff/submissions?date=any&page=20")

        cases = [("today", today_list), ("date filter", date_filter), ("name search", name_search),
                 ("outcome filter", outcome_filter), ("page 20", page_20)]
        results = []
        for label, request in cases:
            for _ in range(5):  # warm up: templates compiled, SQLite pages cached
                request()
            timings = []
            for _ in range(args.requests):
                started = time.perf_counter_ns()
                response = request()
                timings.append((time.perf_counter_ns() - started) / 1e6)
                assert response.status_code == 200, (label, response.status_code)
            found = re.search(r'id="results-title" class="results-title">([\d,]+) submissions', response.text)
            rows = response.text.count("<tr>") - 1
            timings.sort()
            results.append((label, percentile(timings, 50), percentile(timings, 95), rows,
                            found.group(1) if found else "?"))
        with app.app_context():
            db.engine.dispose()

    print(f"\n{args.requests} requests each, through the Flask test client (session, access check, queries, "
          "template):")
    print(f"  {'request':16} {'p50 ms':>8} {'p95 ms':>8} {'rows shown':>11} {'matching':>10}")
    worst = 0.0
    for label, p50, p95, rows, total in results:
        worst = max(worst, p95)
        print(f"  {label:16} {p50:8.1f} {p95:8.1f} {rows:11d} {total:>10}{'  over' if p95 > TARGET_MS else ''}")
    print(f"\nverdict: worst p95 {worst:.1f} ms vs target < {TARGET_MS:.0f} ms: "
          f"{'MET' if worst < TARGET_MS else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
