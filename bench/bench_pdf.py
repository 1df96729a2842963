"""Benchmark the practitioner PDF: time per render, where the time goes, and memory over many renders.

Run: .venv/bin/python bench/bench_pdf.py [--renders 100] [--memory-renders 1000] [--profile]

Stores one typical submission (isotretinoin defer, cold sore history, a filler in the area;
appointment 30 days ahead) through the questionnaire with the Flask test client, on a temporary
SQLite file, then:

  1. renders its PDF ``--renders`` times (``pdf.render(pdf.report_context(...))``, as
     ``services.ensure_pdf`` does) and prints the median and 95th percentile in ms, the median CPU time
     (``time.process_time``, steadier on a shared machine) and the page count;
  2. times the steps of one render separately (context, template, WeasyPrint layout, PDF writing);
  3. renders ``--memory-renders`` more times and prints the resident memory (VmRSS) after 10, 100,
     500 and 1000 renders (after a ``gc.collect()``), to show whether memory stays flat.

Targets: median under 100 ms per render; memory flat: from the 100th render on (the first ones
fill caches) RSS grows by less than 0.2 MB per 100 renders (2 KB a render, the noise of the
allocator). The machine is shared: quote the medians.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import hashlib
import io
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import make_app, percentile, typical_answers

from pypdf import PdfReader  # noqa: E402
from sqlalchemy import select  # noqa: E402

from screening import pdf  # noqa: E402
from screening.extensions import db  # noqa: E402
from screening.models import Submission  # noqa: E402
from tests.web import complete  # noqa: E402

TARGET_MS = 100.0
FLAT_MB_PER_100 = 0.2  # allowed growth per 100 renders after the first 100
CHECKPOINTS = (10, 100, 500, 1000)


def rss_mb() -> float:
    """Resident memory of this process in MB, from /proc/self/status."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def render_steps(context: dict) -> dict[str, float]:
    """Render once, as ``pdf.render`` does, timing each step in ms."""
    from flask import render_template
    from weasyprint import HTML

    clock = time.perf_counter
    fonts, css, fetcher = pdf._resources()
    t0 = clock()
    html = render_template("pdf/report.html", **context)
    t1 = clock()
    document = HTML(string=html, base_url=pdf.STATIC_SCHEME, url_fetcher=fetcher).render(
        stylesheets=[css], font_config=fonts)
    t2 = clock()
    document.write_pdf(pdf_variant=pdf.PDF_VARIANT, pdf_tags=True)
    t3 = clock()
    return {"template (Jinja)": (t1 - t0) * 1000, "layout (WeasyPrint parse, style, layout)": (t2 - t1) * 1000,
            "write_pdf (fonts subset, PDF/A, tags)": (t3 - t2) * 1000}


def profile(work, top: int = 15) -> None:
    """Run ``work`` under cProfile; print the top functions by cumulative and by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    work()
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    total = sum(tt for _, _, tt, _, _ in stats.values())
    print(f"cProfile of one render: {total * 1000:.0f} ms under the profiler")
    for title, key in (("by own time", 2), ("by cumulative time", 3)):
        print(f"  top {top} {title}:")
        print(f"  {'own ms':>8} {'cum ms':>8} {'calls':>9}  function")
        rows = sorted(stats.items(), key=lambda kv: -kv[1][key])[:top]
        for (filename, line, name), (_, calls, tt, ct, _) in rows:
            where = f"{Path(filename).parent.name}/{Path(filename).name}:{line}" if line else "builtin"
            print(f"  {tt * 1000:8.1f} {ct * 1000:8.1f} {calls:9d}  {where} {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=100, help="timed renders (default 100)")
    parser.add_argument("--memory-renders", type=int, default=1000,
                        help="renders for the memory check (default 1000)")
    parser.add_argument("--steps", type=int, default=20, help="renders timed step by step (default 20)")
    parser.add_argument("--profile", action="store_true", help="profile one render (also done when off target)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-pdf-") as tmp:
        app = make_app(Path(tmp) / "bench.db")
        client = app.test_client()
        reference = complete(client, typical_answers())
        with app.app_context(), app.test_request_context():
            row = db.session.scalar(select(Submission).where(Submission.reference == reference))
            clinic = app.config["CLINIC"]
            flags = row.result["flags"]

            def one() -> bytes:
                return pdf.render(pdf.report_context(row, clinic))

            rss_start = rss_mb()
            t0 = time.perf_counter()
            first = one()
            cold_ms = (time.perf_counter() - t0) * 1000
            pages = len(PdfReader(io.BytesIO(first)).pages)
            digest = hashlib.sha256(first).hexdigest()

            times, cpu, same = [], [], True
            gc.collect()
            for _ in range(args.renders):
                t0, c0 = time.perf_counter(), time.process_time()
                data = one()
                times.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
                same = same and hashlib.sha256(data).hexdigest() == digest
            times.sort()
            median, p95 = statistics.median(times), percentile(times, 95)

            context_ms = []
            for _ in range(args.steps):
                t0 = time.perf_counter()
                pdf.report_context(row, clinic)
                context_ms.append((time.perf_counter() - t0) * 1000)
            context = pdf.report_context(row, clinic)
            steps = [render_steps(context) for _ in range(args.steps)]
            step_medians = {"report_context": statistics.median(context_ms)}
            step_medians.update({k: statistics.median(s[k] for s in steps) for k in steps[0]})

            print(f"PDF render benchmark (WeasyPrint {__import__('weasyprint').__version__}, "
                  f"Python {sys.version.split()[0]}, {dt.date.today()})")
            print(f"submission {reference}: outcome {row.outcome}, {len(flags)} flags "
                  f"({', '.join(sorted(f['severity'] + ':' + f['id'] for f in flags))})")
            print(f"PDF: {len(first):,} bytes, {pages} pages; "
                  f"{'identical bytes' if same else 'DIFFERENT bytes'} across {args.renders + 1} renders")
            print()
            print(f"first (cold) render: {cold_ms:.0f} ms; RSS {rss_start:.1f} MB before it")
            print(f"{args.renders} renders, one at a time:  median {median:.1f} ms   p95 {p95:.1f} ms   "
                  f"(min {times[0]:.1f}, max {times[-1]:.1f})")
            # CPU time of this process: steadier than the wall clock when other work shares the cores.
            print(f"CPU time per render (process_time): median {statistics.median(cpu):.1f} ms")
            print()
            print(f"where one render goes (median of {args.steps} each, ms):")
            total = sum(step_medians.values())
            for label, ms in step_medians.items():
                print(f"  {label:42} {ms:8.1f}  {100 * ms / total:5.1f} %")
            print()

            checkpoints = sorted({c for c in CHECKPOINTS if c <= args.memory_renders} | {args.memory_renders})
            readings = []
            gc.collect()
            base = rss_mb()
            print(f"memory over {args.memory_renders} more renders (VmRSS after gc.collect(); "
                  f"{base:.1f} MB before):", flush=True)
            t0 = time.perf_counter()
            for n in range(1, args.memory_renders + 1):
                one()
                if n in checkpoints:
                    gc.collect()
                    readings.append((n, rss_mb()))
                    print(f"  after {n:5d} renders: {readings[-1][1]:7.1f} MB   "
                          f"({time.perf_counter() - t0:.0f} s elapsed)", flush=True)
            # Flat: compare from the 100th render on (the first ones fill caches), per 100 renders.
            after_warm = [(n, mb) for n, mb in readings if n >= 100] or readings
            for (a, mb_a), (b, mb_b) in zip(readings, readings[1:]):
                print(f"  renders {a:4d} to {b:4d}: {mb_b - mb_a:+6.1f} MB = {(mb_b - mb_a) / (b - a) * 100:+.2f} MB "
                      f"per 100 renders ({(mb_b - mb_a) * 1024 / (b - a):+.1f} KB a render)")
            (n0, mb0), (n1, mb1) = after_warm[0], after_warm[-1]
            per_100 = (mb1 - mb0) / (n1 - n0) * 100 if n1 > n0 else 0.0
            flat = per_100 < FLAT_MB_PER_100
            print(f"  growth from render {n0} to {n1}: {mb1 - mb0:+.1f} MB ({per_100:+.2f} MB per 100 renders; "
                  f"at that rate {per_100 * 100:+.0f} MB after 10,000 renders in one worker)")
            print()
            fast = median < TARGET_MS
            print(f"verdict: median {median:.0f} ms vs target < {TARGET_MS:.0f} ms: {'MET' if fast else 'MISSED'} "
                  f"({median / TARGET_MS:.1f}x target); memory {'flat' if flat else 'NOT flat'} "
                  f"({per_100:+.2f} MB per 100 renders, limit {FLAT_MB_PER_100}): {'MET' if flat else 'MISSED'}")

            if args.profile or not fast:
                print()
                profile(one)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
