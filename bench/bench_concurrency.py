"""Benchmark what tests/test_concurrency.py checks: 500 questionnaires from 25 concurrent clients, to the last PDF.

Run: .venv/bin/python bench/bench_concurrency.py [--clients 25] [--total 500] [--workers 2]
                                                 [--pdf-mode queue|0] [--postgresql URL]
                                                 [--databases sqlite,postgresql]

For each database (a fresh SQLite file; and PostgreSQL at ``--postgresql URL``, default
SCREENING_TEST_DATABASE_URL, whose tables are DROPPED first and last: never point it at real data),
migrates it and serves it with ``gunicorn -w 2 wsgi:app`` on a free loopback port. ``--clients``
threads, each one browser with its own cookie jar speaking HTTP, complete ``--total`` questionnaires
between them (the CSRF token of a draft's first page serves all its posts, as in the test), then the
script waits for every PDF (SCREENING_PDF_BACKGROUND=queue: as many ``flask screening worker`` processes as
gunicorn workers render them from the task queue; ``--pdf-mode 0``: none, to compare the submit alone).

Prints per database: throughput in submissions/s over the load, the submit's (POST /declaration)
p50/p95/max, how long after the last submit the last PDF landed, and the same checks as the test
(every submit 302 to /done, exactly one row per submit, unique references, each reference its own
client's, every PDF's SHA-256). The machine is shared: quote the medians of a few runs.
Load goes only to 127.0.0.1, is bounded in count (``--total``) and time, and stops by itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import percentile

from tests import live  # noqa: E402 - the HTTP client, gunicorn and the questionnaire over HTTP


def checks(run: live.Run, total: int) -> list[str]:
    """What went wrong, in the words of the test's assertions (empty: every check passed)."""
    out = []
    if run.load.errors:
        out.append(f"{len(run.load.errors)} clients failed, e.g. {run.load.errors[0]}")
    not_done = [r for r in run.load.results if "error" not in r and not live.submitted(r)]
    if not_done:
        out.append(f"{len(not_done)} submits did not answer 302 to /done: "
                   f"{sorted({(r['status'], r['location']) for r in not_done})}")
    references = [s["reference"] for s in run.stored]
    if len(run.stored) != total:
        out.append(f"{len(run.stored)} submissions stored, not {total}")
    if len(set(references)) != len(references):
        out.append("references are not unique")
    by_reference = {s["reference"]: s for s in run.stored}
    wrong = [r for r in run.load.results if "error" not in r
             and by_reference.get(r["reference"], {}).get("name") != r["name"]]
    if wrong:
        out.append(f"{len(wrong)} references shown do not map to their own client's row")
    if run.drafts:
        out.append(f"{run.drafts} drafts left")
    bad_pdfs = sum(1 for s in run.stored if not (s["has_pdf"] and s["pdf_ok"]))
    if bad_pdfs:
        out.append(f"{bad_pdfs} PDFs missing or not matching their SHA-256")
    if run.log_problems:
        out.append(f"{len(run.log_problems)} error lines in gunicorn's log, e.g. {run.log_problems[0][:200]}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=25, help="concurrent clients (default 25)")
    parser.add_argument("--total", type=int, default=500, help="questionnaires in all (default 500)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--pdf-mode", choices=["queue", "0"], default="queue",
                        help="SCREENING_PDF_BACKGROUND (default queue: worker processes render the PDFs)")
    parser.add_argument("--postgresql", default=os.environ.get("SCREENING_TEST_DATABASE_URL", ""),
                        help="a PostgreSQL test database (its tables are dropped!); default "
                             "SCREENING_TEST_DATABASE_URL")
    parser.add_argument("--databases", default="sqlite,postgresql",
                        help="which to run, comma-separated (default sqlite,postgresql)")
    parser.add_argument("--pdf-timeout", type=float, default=1800,
                        help="seconds to wait for the PDFs after the last submit (default 1800)")
    args = parser.parse_args()

    failed = False
    for database in args.databases.split(","):
        with tempfile.TemporaryDirectory(prefix="bench-concurrency-") as tmp:
            if database == "sqlite":
                url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            elif database == "postgresql":
                if not args.postgresql:
                    print("postgresql: skipped (no --postgresql URL and no SCREENING_TEST_DATABASE_URL)")
                    continue
                url = args.postgresql
            else:
                raise SystemExit(f"unknown database {database!r}")
            print(f"{database}: {args.total} questionnaires from {args.clients} clients, gunicorn -w {args.workers},"
                  f" PDFs: {args.pdf_mode}", flush=True)
            t0 = time.perf_counter()
            run = live.run_concurrency(url, Path(tmp), clients=args.clients, total=args.total,
                                       workers=args.workers, pdf_mode=args.pdf_mode, pdf_timeout=args.pdf_timeout)
            elapsed = time.perf_counter() - t0
        ms = run.load.submit_ms
        done = sum(1 for r in run.load.results if live.submitted(r))
        print(f"  load: {done} submits in {run.load.wall:.1f} s = {done / run.load.wall:.2f} submissions/s")
        if ms:
            print(f"  submit (POST /declaration): p50 {statistics.median(ms):.0f} ms, p95 {percentile(ms, 95):.0f} ms,"
                  f" max {ms[-1]:.0f} ms")
        others = sorted(run.load.timings.get("POST /q/<page>", []))
        if others:
            print(f"  page POST, for context: p50 {statistics.median(others):.0f} ms, p95 {percentile(others, 95):.0f} ms")
        print("  last PDF: " + ("NOT within the timeout" if run.pdf_seconds is None else
                                f"{run.pdf_seconds:.0f} s after the last submit "
                                f"({len(run.stored) / (run.load.wall + run.pdf_seconds):.2f} questionnaires/s "
                                "to the last PDF)"))
        print(f"  whole run (migrate, load, PDFs, checks): {elapsed:.0f} s")
        problems = checks(run, args.total)
        print("  checks: " + ("every submit stored once, references unique and their own, every PDF matches"
                              if not problems else "FAILED"))
        for p in problems:
            print(f"    {p}")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
