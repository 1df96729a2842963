"""Benchmark the submit under load: 20 concurrent clients against gunicorn, timing the final POST.

Run: .venv/bin/python bench/bench_submit.py [--rounds 5] [--clients 20] [--workers 2] [--burst]
                                            [--pdf-mode queue|0] [--no-pdf-background]

Creates a fresh SQLite file in a temporary folder, migrates it (``flask --app wsgi db upgrade``),
and starts ``gunicorn -w 2 wsgi:app`` on a free loopback port with SCREENING_DATABASE_URL, the keys
and SCREENING_PDF_BACKGROUND=queue (the default: each PDF is queued after the submit commits and rendered
by a ``flask screening worker`` process beside gunicorn; ``--no-pdf-background``, the same as
``--pdf-mode 0``, renders none, to compare). Then, for each round,
``--clients`` threads each complete the whole questionnaire over HTTP with their own cookie (start,
every page GET and POST, check answers, declaration GET) and POST the declaration; only that final
POST (the submit) is timed. The HTTP client, gunicorn and the questionnaire over HTTP are shared
with the tests (``tests/live.py``). With ``--burst`` the clients wait for one another before submitting, so that
the submits of a round arrive together.

Prints the submit's median and 95th percentile in ms, the throughput, then stops gunicorn (always),
waiting first (up to ``--drain-timeout`` s) for the background PDFs, and checks that every submit
got a 302 to /done and that the database holds exactly one submission per submit.
Target: submit p95 under 50 ms. The machine is shared: quote the medians.
Load goes only to 127.0.0.1, is bounded (rounds x clients questionnaires) and stops by itself.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import percentile, typical_answers

from tests import live  # noqa: E402 - the HTTP client, gunicorn and the questionnaire over HTTP

TARGET_P95_MS = 50.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of concurrent clients (default 5)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients per round (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--burst", action="store_true", help="the clients of a round submit together")
    parser.add_argument("--pdf-mode", choices=["queue", "0"], default="queue",
                        help="SCREENING_PDF_BACKGROUND (default queue: a worker process renders the PDFs)")
    parser.add_argument("--no-pdf-background", action="store_true",
                        help="SCREENING_PDF_BACKGROUND=0 (PDFs render on first request), to compare")
    parser.add_argument("--drain-timeout", type=float, default=300,
                        help="seconds to wait for the background PDFs before stopping gunicorn (default 300)")
    args = parser.parse_args()
    if args.no_pdf_background:
        args.pdf_mode = "0"
    expected = args.rounds * args.clients

    tmp = tempfile.TemporaryDirectory(prefix="bench-submit-")
    db_path = Path(tmp.name) / "bench.db"
    log_path = Path(tmp.name) / "gunicorn.log"
    env = live.server_env(f"sqlite:///{db_path}", SCREENING_PDF_BACKGROUND=args.pdf_mode)
    live.migrate(env)
    app = live.orm_app(env)

    results: list[dict] = []
    errors: list[str] = []
    timings: dict[str, list[float]] = {}
    lock = threading.Lock()
    wall = 0.0
    drain_s = None
    server = None
    try:
        with live.serve(env, log_path, workers=args.workers) as server, \
                live.worker_processes(env, Path(tmp.name) / "worker.log", 1 if args.pdf_mode == "queue" else 0):
            print(f"gunicorn -w {args.workers} on {server.url}; "
                  f"{args.rounds} rounds of {args.clients} concurrent clients"
                  f"{', submitting together (--burst)' if args.burst else ''}; "
                  f"SCREENING_PDF_BACKGROUND={env['SCREENING_PDF_BACKGROUND']}", flush=True)
            base = typical_answers()
            for r in range(args.rounds):
                barrier = threading.Barrier(args.clients) if args.burst else None
                round_results: list[dict] = []

                def work(i: int, r: int = r, barrier=barrier, round_results=round_results) -> None:
                    answers = {**base, "full_name": f"Bench Client R{r}N{i}"}
                    try:
                        client = live.Client(server.port, timings, lock, agent="bench_submit")
                        out = live.complete_questionnaire(client, answers, barrier=barrier)
                    except Exception as exc:  # noqa: BLE001 - count and report every failure
                        if barrier is not None:
                            barrier.abort()
                        out = {"status": None, "error": f"round {r} client {i}: {type(exc).__name__}: {exc}"}
                    with lock:
                        round_results.append(out)

                threads = [threading.Thread(target=work, args=(i,)) for i in range(args.clients)]
                t0 = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                spent = time.perf_counter() - t0
                wall += spent
                results.extend(round_results)
                errors.extend(x["error"] for x in round_results if "error" in x)
                ms = sorted(x["ms"] for x in round_results if "ms" in x)
                print(f"  round {r + 1}: {spent:5.1f} s, submit median "
                      f"{statistics.median(ms) if ms else float('nan'):6.1f} ms, "
                      f"max {ms[-1] if ms else float('nan'):6.1f} ms, "
                      f"{sum(1 for x in round_results if 'error' in x)} failed", flush=True)
            # Let the background renders finish, so that stopping does not kill them half-way.
            if args.pdf_mode != "0":
                drain_s = live.wait_for_pdfs(app, args.drain_timeout)
    except BaseException:
        if server is not None:
            print(f"gunicorn {server.outcome}; the end of its log:\n"
                  + "\n".join(server.log().splitlines()[-30:]))
        raise
    outcome = server.outcome

    total, rendered = live.pdf_counts(app)
    drafts = live.draft_count(app)
    stored_refs = {s["reference"] for s in live.stored_submissions(app)}
    problems = server.log_problems()
    tmp.cleanup()

    submits = [x for x in results if "ms" in x]
    ok = [x for x in submits if live.submitted(x)]
    bad = [x for x in submits if x not in ok]
    refs = {x["reference"] for x in ok if x["reference"]}
    ms = sorted(x["ms"] for x in submits)
    requests = sum(x.get("requests", 0) for x in results)

    print()
    print(f"submit (POST /declaration) latency over {len(ms)} submits, ms:")
    if ms:
        print(f"  median {statistics.median(ms):.1f}   p95 {percentile(ms, 95):.1f}   "
              f"min {ms[0]:.1f}   max {ms[-1]:.1f}")
    print("other requests, for context (ms):")
    print(f"  {'':30} {'count':>6} {'median':>8} {'p95':>8}")
    for kind, values in sorted(timings.items()):
        values = sorted(values)
        print(f"  {kind:30} {len(values):6d} {statistics.median(values):8.1f} {percentile(values, 95):8.1f}")
    if wall:
        print(f"throughput: {len(ok) / wall:.2f} completed questionnaires/s (submits/s), "
              f"{requests / wall:.0f} HTTP requests/s ({requests} requests in {wall:.1f} s of rounds)")
    print()
    print(f"checks (gunicorn {outcome}):")
    print(f"  submits answered 302 -> /done: {len(ok)} of {expected}"
          + (f"; others: {sorted({(x['status'], x['location']) for x in bad})}" if bad else ""))
    print(f"  clients that failed before or at the submit: {len(errors)}")
    for e in errors[:5]:
        print(f"    {e}")
    print(f"  submissions stored: {total} (expected {len(ok)}: {'OK' if total == len(ok) == expected else 'MISMATCH'});"
          f" references shown and stored match: {'OK' if refs == stored_refs else 'MISMATCH'}; drafts left: {drafts}")
    if not args.no_pdf_background:
        print(f"  PDFs rendered in the background: {rendered} of {total}"
              + (f", the last {drain_s:.1f} s after the last round ended" if drain_s is not None else
                 f" (not all within {args.drain_timeout:.0f} s)"))
    print(f"  gunicorn log: {len(problems)} error lines" + ("" if not problems else ":"))
    for line in problems[:10]:
        print(f"    {line[:200]}")

    p95 = percentile(ms, 95) if ms else float("inf")
    passed = p95 < TARGET_P95_MS
    sound = total == len(ok) == expected and not errors and refs == stored_refs
    print()
    print(f"verdict: submit p95 {p95:.1f} ms vs target < {TARGET_P95_MS:.0f} ms: {'MET' if passed else 'MISSED'}"
          f" (median {statistics.median(ms) if ms else float('nan'):.1f} ms); "
          f"every submit stored once: {'YES' if sound else 'NO'}")
    return 0 if sound else 1


if __name__ == "__main__":
    sys.exit(main())
