"""Benchmark the submit under load: 20 concurrent clients against gunicorn, timing the final POST.

Run: .venv/bin/python bench/bench_submit.py [--rounds 5] [--clients 20] [--workers 2] [--burst]
                                            [--no-pdf-background]

Creates a fresh SQLite file in a temporary folder, migrates it (``flask --app wsgi db upgrade``),
and starts ``gunicorn -w 2 -b 127.0.0.1:<free port> wsgi:app`` with SCREENING_DATABASE_URL,
SCREENING_SECRET_KEY and SCREENING_PDF_BACKGROUND=1 (the default: each PDF renders in a thread
of the worker after the submit commits; ``--no-pdf-background`` sets 0, to compare). Then, for each round, ``--clients`` threads each
complete the whole questionnaire over HTTP with their own cookie (start, every page GET and
POST, check answers, declaration GET) and POST the declaration; only that final POST (the
submit) is timed. With ``--burst`` the clients wait for one another before submitting, so that
the submits of a round arrive together.

Prints the submit's median and 95th percentile in ms, the throughput, then stops gunicorn (always),
waiting first (up to ``--drain-timeout`` s) for the background PDFs, and checks that every submit
got a 302 to /done and that the database holds exactly one submission per submit.
Target: submit p95 under 50 ms. The machine is shared: quote the medians.
Load goes only to 127.0.0.1, is bounded (rounds x clients questionnaires) and stops by itself.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from _common import ROOT, percentile, typical_answers

from screening import questions as qd  # noqa: E402
from tests.web import csrf_token, page_data  # noqa: E402

TARGET_P95_MS = 50.0
HOST = "127.0.0.1"
BIN = Path(sys.executable).parent
ERROR_SUMMARY = re.compile(r'<li><a href="#[^"]+">([^<]+)</a>')


class Client:
    """One browser: its own cookie jar, a new connection per request (gunicorn's sync workers close it)."""

    def __init__(self, port: int, timings: dict[str, list[float]], lock: threading.Lock):
        self.port = port
        self.cookies: dict[str, str] = {}
        self.timings = timings
        self.lock = lock
        self.requests = 0

    def request(self, method: str, path: str, data: dict | None = None, kind: str | None = None):
        """Send one request; return (status, location, body text, ms)."""
        headers = {"Host": f"{HOST}:{self.port}", "User-Agent": "bench_submit"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if data is not None:
            body = urlencode(data, doseq=True).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection(HOST, self.port, timeout=120)
        try:
            t0 = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            ms = (time.perf_counter() - t0) * 1000
            for header in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(header).items():
                    if morsel.value == "" or morsel["max-age"] == "0" or "1970" in morsel["expires"]:
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
            location = response.getheader("Location") or ""
        finally:
            conn.close()
        self.requests += 1
        if kind:
            with self.lock:
                self.timings.setdefault(kind, []).append(ms)
        return response.status, location, text, ms


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def run_client(port: int, answers: dict, barrier: threading.Barrier | None, timings, lock) -> dict:
    """Complete the questionnaire; return the submit's status, location, time and the reference."""
    c = Client(port, timings, lock)
    status, _, text, _ = c.request("GET", "/", kind="GET /")
    expect(status == 200, f"GET / gave {status}")
    status, location, _, _ = c.request("POST", "/start", {"csrf_token": csrf_token(text), "action": "start"},
                                       kind="POST /start")
    expect(status == 302, f"POST /start gave {status}")
    for page in qd.PAGES:
        status, _, text, _ = c.request("GET", f"/q/{page.id}", kind="GET /q/<page>")
        expect(status == 200, f"GET /q/{page.id} gave {status}")
        status, location, text, _ = c.request(
            "POST", f"/q/{page.id}", {"csrf_token": csrf_token(text), **page_data(page, answers)},
            kind="POST /q/<page>")
        expect(status == 302, f"POST /q/{page.id} gave {status}: {ERROR_SUMMARY.findall(text)}")
    status, _, _, _ = c.request("GET", "/check", kind="GET /check")
    expect(status == 200, f"GET /check gave {status}")
    status, _, text, _ = c.request("GET", "/declaration", kind="GET /declaration")
    expect(status == 200, f"GET /declaration gave {status}")
    form = {"csrf_token": csrf_token(text), "confirm": "y", "signature": answers["full_name"]}
    if barrier is not None:
        barrier.wait(timeout=600)
    status, location, _, submit_ms = c.request("POST", "/declaration", form, kind="POST /declaration (submit)")
    reference = None
    if status == 302 and urlsplit(location).path == "/done":
        _, _, text, _ = c.request("GET", "/done", kind="GET /done")
        match = re.search(r'class="reference">([A-Z0-9-]+)<', text)
        reference = match.group(1) if match else None
    return {"status": status, "location": location, "ms": submit_ms, "reference": reference,
            "requests": c.requests}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_until_up(port: int, proc: subprocess.Popen, timeout: float = 60) -> float:
    """Poll GET / until it answers 200; return the seconds it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode} before answering")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            conn.request("GET", "/")
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer on port {port} within {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> str:
    """Stop the gunicorn we started: SIGTERM to its master, then SIGKILL to its own process group."""
    if proc.poll() is not None:
        return f"had already exited ({proc.returncode})"
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=40)
        return "stopped (SIGTERM)"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group was made for this gunicorn (start_new_session)
        proc.wait(timeout=10)
        return "KILLED (SIGKILL) after 40 s"


def pdf_counts(db_path: Path) -> tuple[int, int]:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30) as con:
        total, rendered = con.execute("SELECT count(*), count(pdf) FROM submission").fetchone()
    return total, rendered


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of concurrent clients (default 5)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients per round (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--burst", action="store_true", help="the clients of a round submit together")
    parser.add_argument("--no-pdf-background", action="store_true",
                        help="SCREENING_PDF_BACKGROUND=0 (PDFs render on first request), to compare")
    parser.add_argument("--drain-timeout", type=float, default=300,
                        help="seconds to wait for the background PDFs before stopping gunicorn (default 300)")
    args = parser.parse_args()
    expected = args.rounds * args.clients

    tmp = tempfile.TemporaryDirectory(prefix="bench-submit-")
    db_path = Path(tmp.name) / "bench.db"
    log_path = Path(tmp.name) / "gunicorn.log"
    env = {**os.environ, "SCREENING_DATABASE_URL": f"sqlite:///{db_path}",
           "SCREENING_SECRET_KEY": "bench-submit-secret",
           "SCREENING_PDF_BACKGROUND": "0" if args.no_pdf_background else "1"}
    migrate = subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    if migrate.returncode != 0:
        print(migrate.stdout, migrate.stderr, sep="\n")
        raise SystemExit("db upgrade failed")

    port = free_port()
    results: list[dict] = []
    errors: list[str] = []
    timings: dict[str, list[float]] = {}
    lock = threading.Lock()
    proc = None
    wall = 0.0
    drain_s = None
    outcome = "not started"
    with open(log_path, "w") as log:
        try:
            proc = subprocess.Popen(
                [str(BIN / "gunicorn"), "-w", str(args.workers), "-b", f"{HOST}:{port}", "wsgi:app"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            up_s = wait_until_up(port, proc)
            print(f"gunicorn -w {args.workers} on {HOST}:{port} answered after {up_s:.1f} s; "
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
                        out = run_client(port, answers, barrier, timings, lock)
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
            t0 = time.monotonic()
            while not args.no_pdf_background and time.monotonic() - t0 < args.drain_timeout:
                total, rendered = pdf_counts(db_path)
                if rendered >= total:
                    drain_s = time.monotonic() - t0
                    break
                time.sleep(1)
        except BaseException:
            outcome = stop(proc) if proc is not None else "never started"
            log.flush()
            print(f"gunicorn {outcome}; the end of its log:\n" + "\n".join(log_path.read_text().splitlines()[-30:]))
            raise
        else:
            outcome = stop(proc)
    log_text = log_path.read_text()

    total, rendered = pdf_counts(db_path)
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as con:
        drafts = con.execute("SELECT count(*) FROM draft").fetchone()[0]
        stored_refs = {row[0] for row in con.execute("SELECT reference FROM submission")}
    tmp.cleanup()

    submits = [x for x in results if "ms" in x]
    ok = [x for x in submits if x["status"] == 302 and urlsplit(x["location"]).path == "/done"]
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
    problems = [line for line in log_text.splitlines()
                if any(w in line for w in ("ERROR", "Traceback", "CRITICAL", "WORKER TIMEOUT", "Error"))]
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
