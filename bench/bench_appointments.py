"""Benchmark what tests/test_scale.py checks, at 500: appointments through the API to the last email and PDF.

Run: .venv/bin/python bench/bench_appointments.py [--appointments 500] [--clients 25] [--api-threads 8]
                                                  [--postgresql URL] [--redis redis://127.0.0.1:6379/12]

Two app servers (two ``gunicorn -w 2`` on two ports, as two machines), two ``flask screening worker`` processes,
PostgreSQL at ``--postgresql`` (default SCREENING_TEST_DATABASE_URL; its tables are DROPPED first and last: use a
database of its own), Redis at ``--redis`` (the queue in that logical database, the rate limits in the next one;
both emptied first and last) and a real SMTP server (aiosmtpd) in this process. ``--appointments`` are created
through the JSON API by ``--api-threads`` concurrent booking-system threads over both servers (every tenth sent
again: a replayed create), then ``--clients`` concurrent clients each open the link from their invitation email,
pass the date of birth, confirm the booking and answer (each request to either server; each client its own address
through X-Forwarded-For). ``send_reminders`` runs every ``--reminder-every`` seconds from a third of the screenings
on, and once after the load (a tenth of the appointments are 1 day out and a tenth 3 days out). The API's and the
public form's rate limits are raised through SCREENING_API_LIMIT, SCREENING_START_LIMIT and SCREENING_SUBMIT_LIMIT.

Prints: the API's throughput and p50/p95 of a create; the screenings' throughput (from the invitation email to
/done) and p50/p95 of the submit; how long after the last submit the last email and the last PDF landed; then the
checks of the test (every email exactly once, every PDF written exactly once, no reminder after a screening was
sent, nothing lost; tests/scale.py). The machine is shared: quote the medians of a few runs.
Load goes only to 127.0.0.1, is bounded in count and time, and stops by itself.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import _common  # noqa: F401 - the repository on sys.path

from tests import scale  # noqa: E402 - the harness (servers, workers, SMTP, clients, checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appointments", type=int, default=500, help="appointments, invitations and screenings "
                                                                      "(default 500)")
    parser.add_argument("--clients", type=int, default=25, help="concurrent clients screening (default 25)")
    parser.add_argument("--api-threads", type=int, default=8, help="concurrent API callers (default 8)")
    parser.add_argument("--postgresql", default=os.environ.get("SCREENING_TEST_DATABASE_URL", ""),
                        help="a PostgreSQL database of its own (its tables are dropped!); default "
                             "SCREENING_TEST_DATABASE_URL")
    parser.add_argument("--redis", default=os.environ.get("SCREENING_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
                        help="redis://HOST:PORT/N: the queue in N, the rate limits in N+1, both emptied "
                             "(default redis://127.0.0.1:6379/12)")
    parser.add_argument("--reminder-every", type=float, default=5.0,
                        help="seconds between send_reminders runs during the load (default 5)")
    parser.add_argument("--timeout", type=float, default=3600,
                        help="seconds for the load, and again for the last email and PDF (default 3600)")
    args = parser.parse_args()
    if not args.postgresql:
        print("bench_appointments: skipped (no --postgresql URL and no SCREENING_TEST_DATABASE_URL: a PostgreSQL "
              "database of its own)")
        return 0

    t0 = time.perf_counter()
    folder = scale.tmp_folder()
    print(f"{args.appointments} appointments, {args.clients} clients, 2 servers x gunicorn -w 2, 2 workers, "
          f"PostgreSQL, Redis {args.redis}", flush=True)
    try:
        run, booked, mailbox = scale.run_scale(
            args.postgresql, args.redis, folder, appointments=args.appointments, clients=args.clients,
            api_threads=args.api_threads, reminder_every=args.reminder_every, time_limit=args.timeout,
            done_timeout=args.timeout,
            progress=lambda message: print(f"  [{time.perf_counter() - t0:5.0f} s] {message}", flush=True))
        for line in scale.summary(run):
            print("  " + line)
        problems = scale.check(run, booked, mailbox)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("  checks: " + ("every email exactly once, every PDF written exactly once, no reminder after a screening,"
                          " nothing lost" if not problems else "FAILED"))
    for problem in problems:
        print(f"    {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
