"""No submission lost or doubled under load: 500 questionnaires from 25 concurrent clients against gunicorn.

Each client is a thread with its own cookie jar speaking real HTTP to ``gunicorn -w 2 wsgi:app`` on a
migrated database (a fresh SQLite file, and PostgreSQL when SCREENING_TEST_DATABASE_URL is set). PDFs
are queued and rendered by two ``flask screening worker`` processes beside gunicorn (as two machines would). ``bench/bench_concurrency.py``
runs the same load and records its figures; nothing here is timed.
"""

from __future__ import annotations

from collections import Counter

from tests import live

CLIENTS = 25
TOTAL = 500
PDF_TIMEOUT = 1200  # seconds for the background renderers to finish after the last submit


def test_500_submissions_from_25_concurrent_clients_are_each_stored_once_with_a_pdf(database_url, tmp_path,
                                                                                     capsys):
    run = live.run_concurrency(database_url, tmp_path, clients=CLIENTS, total=TOTAL, pdf_mode="queue",
                               pdf_timeout=PDF_TIMEOUT)
    with capsys.disabled():
        print(f"\n[concurrency] {live.summary(run, CLIENTS)}")

    load = run.load
    assert load.errors == []
    assert len(load.results) == TOTAL
    not_done = Counter((r["status"], r["location"]) for r in load.results if not live.submitted(r))
    assert not_done == Counter(), "every submit answers 302 to /done"
    assert len(run.stored) == TOTAL, "exactly one stored submission per submit"
    references = [s["reference"] for s in run.stored]
    assert len(set(references)) == TOTAL, "references are unique"
    by_reference = {s["reference"]: s for s in run.stored}
    for r in load.results:
        row = by_reference.get(r["reference"])
        assert row is not None, f"the reference shown to {r['name']} is not stored"
        assert row["name"] == row["signature"] == r["name"], "a reference maps to its own client's answers"
    assert sorted(r["reference"] for r in load.results) == sorted(references)
    assert run.drafts == 0, "each submit removed its draft"
    assert run.pdf_seconds is not None, f"PDFs still missing {PDF_TIMEOUT} s after the last submit"
    assert all(s["has_pdf"] and s["pdf_ok"] for s in run.stored), "every PDF rendered and matches its SHA-256"
    assert run.log_problems == [], run.log_problems[:10]
