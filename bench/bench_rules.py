"""Benchmark the rules engine: time per evaluation, and time to load and check rules.yaml.

Run: .venv/bin/python bench/bench_rules.py [--sets 3000] [--passes 5] [--seed 20261124] [--profile]

Builds varied, complete and valid answer sets (seeded ``random``; the same kind of generator as
tests/test_rules_properties.py), then times, one evaluation at a time with ``perf_counter_ns``:

  (a) ``evaluate_prepared`` on answers already checked by ``prepare``;
  (b) ``evaluate``: checking the answers and evaluating them.

Each pass times every answer set once; the figures are the median, over the passes, of each
pass's median and 95th percentile. The target is under 50 µs per evaluation on one core.
"""

from __future__ import annotations

import argparse
import cProfile
import collections
import datetime as dt
import gc
import pstats
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from screening import questions as qd  # noqa: E402
from screening.rules import evaluate, evaluate_prepared, load_rules, prepare  # noqa: E402

TARGET_US = 50.0
TODAY = dt.date(2026, 11, 24)
YES_NO_TYPES = (qd.YES_NO, qd.YES_NO_UNSURE)
YES_NO_IDS = [q.id for q in qd.QUESTIONS if q.type in YES_NO_TYPES]
UNSURE_IDS = [q.id for q in qd.QUESTIONS if q.type == qd.YES_NO_UNSURE]
PLANNED = {"isotretinoin_planned_end_date", "systemic_steroid_planned_end_date"}
TEXTS = {"full_name": "Ann Example", "email": "ann@example.org", "phone": "07700 900123"}


def lookback_days(q: qd.Question | None) -> int:
    """How far back an event answer can lie: the lookback of the gate that asks it (2 years if none)."""
    while q is not None:
        if q.lookback is not None:
            amount, unit = q.lookback
            return amount * {"days": 1, "weeks": 7, "months": 30, "years": 365}[unit]
        q = qd.BY_ID[q.asked_when["question"]] if q.asked_when else None
    return 730


def date_answer(rnd: random.Random, q: qd.Question, gate: qd.Question | None = None) -> str:
    """A realistic answer to date question ``q`` (``gate``: the question that asks a group's items)."""
    if q.unknown_allowed and rnd.random() < 1 / 6:
        return qd.UNKNOWN
    if q.id == "dob":
        return (dt.date(1940, 1, 1) + dt.timedelta(days=rnd.randint(0, 26662))).isoformat()  # to 2012-12-31
    if q.id == "appointment_date":
        return (TODAY + dt.timedelta(days=rnd.randint(0, 120))).isoformat()
    if q.id in PLANNED:
        offset = rnd.randint(1, 365)
    else:
        offset = -rnd.randint(0, lookback_days(gate or q))
    day = (TODAY + dt.timedelta(days=offset)).isoformat()
    return day[:7] if q.month_allowed and rnd.random() < 0.2 else day


def answer(rnd: random.Random, q: qd.Question, gate: qd.Question | None = None):
    """A valid answer to a question that is not yes/no."""
    if q.type == qd.SINGLE:
        return rnd.choice(q.choice_codes())
    if q.type in (qd.MULTI, qd.AREAS):
        codes = [c for c in q.choice_codes() if c != qd.NONE]
        if qd.NONE in q.choice_codes() and rnd.random() < 0.5:
            return [qd.NONE]
        return rnd.sample(codes, rnd.randint(1, min(4, len(codes))))
    if q.type == qd.DATE:
        return date_answer(rnd, q, gate)
    if q.type == qd.TEXT:
        return TEXTS.get(q.id, "Some details.")
    if q.type == qd.GROUP:
        gate = qd.BY_ID[q.asked_when["question"]]
        return [{f.id: answer(rnd, f, gate) for f in q.fields} for _ in range(rnd.randint(1, 3))]
    raise AssertionError(q.type)


def answer_set(rnd: random.Random) -> dict:
    """A complete answer set, follow-ups included (``prepare`` prunes those not asked).

    A few yes/no questions are "yes" and a few "unsure"; the rest "no".
    """
    yes = set(rnd.sample(YES_NO_IDS, rnd.randint(0, 5)))
    unsure = set(rnd.sample(UNSURE_IDS, rnd.randint(0, 2)))
    out: dict = {}
    for q in qd.QUESTIONS:
        if q.type in YES_NO_TYPES:
            out[q.id] = "unsure" if q.id in unsure else "yes" if q.id in yes else "no"
        elif q.required or rnd.random() < 0.5:
            out[q.id] = answer(rnd, q)
    return out


def percentile(sorted_values: list[int], p: float) -> float:
    """The ``p`` percentile (nearest rank) of already sorted values."""
    return sorted_values[min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))]


def time_pass(fn, ruleset, inputs) -> tuple[float, float]:
    """Time ``fn(ruleset, x)`` once for each input; return (median, p95) in microseconds."""
    clock = time.perf_counter_ns
    times = []
    gc.collect()
    for x in inputs:
        t0 = clock()
        fn(ruleset, x)
        times.append(clock() - t0)
    times.sort()
    return statistics.median(times) / 1000, percentile(times, 95) / 1000


def profile(title: str, work, top: int = 12) -> None:
    """Run ``work`` under cProfile and print where the time goes, by each function's own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    work()
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    total = sum(tt for _, _, tt, _, _ in stats.values())
    print(f"cProfile of {title}: {total * 1000:.0f} ms under the profiler; top {top} by own time")
    print(f"  {'own %':>6} {'own ms':>8} {'cum ms':>8} {'calls':>9}  function")
    rows = sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]
    for (filename, line, name), (_, calls, tt, ct, _) in rows:
        where = f"{Path(filename).name}:{line}" if line else "builtin"
        print(f"  {100 * tt / total:6.1f} {tt * 1000:8.1f} {ct * 1000:8.1f} {calls:9d}  {where} {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=3000, help="answer sets (default 3000)")
    parser.add_argument("--passes", type=int, default=5, help="timed passes over all sets (default 5)")
    parser.add_argument("--loads", type=int, default=50, help="loads of rules.yaml to time (default 50)")
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--profile", action="store_true", help="also profile one pass of evaluate with cProfile")
    args = parser.parse_args()

    rules_path = ROOT / "rules.yaml"
    ruleset = load_rules(rules_path)
    rnd = random.Random(args.seed)
    answers = [answer_set(rnd) for _ in range(args.sets)]
    prepared = [prepare(a, TODAY) for a in answers]  # raises if the generator made an invalid set
    results = [evaluate_prepared(ruleset, p) for p in prepared]  # also a warm-up
    outcomes = collections.Counter(r.outcome for r in results)
    flags = statistics.mean(len(r.flags) for r in results)
    unknown = sum(p.variant == qd.VARIANT_UNKNOWN for p in prepared)

    timed = {}
    for label, fn, inputs in [("evaluate_prepared (a)", evaluate_prepared, prepared),
                              ("evaluate, with checking (b)",
                               lambda rs, a: evaluate(rs, a, answered_on=TODAY), answers)]:
        passes = [time_pass(fn, ruleset, inputs) for _ in range(args.passes)]
        timed[label] = (statistics.median(m for m, _ in passes), statistics.median(p for _, p in passes))
    # A client who does not know the variant is evaluated for all three: about three times the work.
    split = {}
    for label, keep in [("  (a), variant known", lambda p: p.variant != qd.VARIANT_UNKNOWN),
                        ("  (a), variant unknown", lambda p: p.variant == qd.VARIANT_UNKNOWN)]:
        subset = [p for p in prepared if keep(p)]
        passes = [time_pass(evaluate_prepared, ruleset, subset) for _ in range(args.passes)]
        split[label] = (statistics.median(m for m, _ in passes), statistics.median(p for _, p in passes))

    loads = []
    for _ in range(args.loads):
        t0 = time.perf_counter_ns()
        load_rules(rules_path)
        loads.append(time.perf_counter_ns() - t0)

    print(f"rules engine benchmark: {len(ruleset)} rules, dictionary {qd.VERSION}, Python {sys.version.split()[0]}")
    print(f"{args.sets} answer sets (seed {args.seed}): "
          + ", ".join(f"{k} {outcomes[k]}" for k in ("CLEAR", "REVIEW", "DEFER", "DO_NOT_TREAT"))
          + f"; {flags:.1f} flags on average; variant unknown in {unknown}")
    print(f"median of {args.passes} passes, one evaluation at a time:")
    print()
    print(f"  {'':32} {'median µs':>10} {'p95 µs':>10}")
    for label, (median, p95) in [*timed.items(), *split.items()]:
        print(f"  {label:32} {median:10.1f} {p95:10.1f}")
    print(f"  {'load_rules(rules.yaml), ms':32} {statistics.median(loads) / 1e6:10.2f} "
          f"{percentile(sorted(loads), 95) / 1e6:10.2f}   (over {args.loads} loads)")
    print()
    worst = max(m for m, _ in timed.values())
    verdict = "met" if worst < TARGET_US else "NOT met"
    print(f"target: under {TARGET_US:.0f} µs per evaluation (median): {verdict} (worst median {worst:.1f} µs)")

    if args.profile or worst >= TARGET_US:
        print()
        profile("evaluate_prepared (a), one pass", lambda: [evaluate_prepared(ruleset, p) for p in prepared])
        print()
        profile("prepare (checking: (b) minus (a)), one pass", lambda: [prepare(a, TODAY) for a in answers])
    return 0


if __name__ == "__main__":
    sys.exit(main())
