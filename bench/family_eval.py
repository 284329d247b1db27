"""The randomized evaluation: ``python -m bench.family_eval --set tuning|test [--seeds N] [--skip K] [-v]``.

Each seed of :mod:`bench.family` (a fresh fleet and anomaly schedule) is generated, replayed through
``streams.cli.backtest.backtest`` with the default :class:`EngineConfig` (the real engine, families
and incident lifecycle) and scored by :func:`bench.score.score` over the days after the warm-up.
Tuning seeds are for choosing defaults; test seeds (a disjoint range) are what the docs report.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from multiprocessing import Pool

import orjson

from bench.family import BURSTS, KINDS, TEST_SEEDS, TUNING_SEEDS, Family
from bench.score import Report, pct, score
from streams.cli.backtest import backtest
from streams.core.engine import EngineConfig
from streams.core.pricing import PriceCatalogue


def run_seed(seed: int) -> Report:
    """One seed's report; its ``kinds`` has one more entry, ``recurrence``: the next-day recurrences
    of every kind (each also counted under its own kind)."""
    family = Family(seed)
    streams = family.fleet()
    anomalies = family.schedule(streams)
    lines = (orjson.dumps(e) for e in family.events(streams, anomalies))
    out = io.BytesIO()
    backtest(lines, out, EngineConfig(), PriceCatalogue.bundled(), progress=io.StringIO())
    alerts = [orjson.loads(line) for line in out.getvalue().splitlines()]
    alerts = [a for a in alerts if a.get("type") == "cost_spike"]
    report = score(alerts, [a.as_dict() for a in anomalies], family.eval_start, family.end, family.n_models(streams))
    n = sum(a.recurrence for a in anomalies)
    report.kinds["recurrence"] = {"n": n, "caught": n - sum(m["recurrence"] for m in report.missed)}
    return report


def summarize(reports: list[Report]) -> dict:
    kinds: dict[str, dict] = {k: {"n": 0, "caught": 0, "delays": []} for k in KINDS}
    for r in reports:
        for kind, k in r.kinds.items():
            if kind not in kinds:
                continue
            kinds[kind]["n"] += k["n"]
            kinds[kind]["caught"] += k["caught"]
            kinds[kind]["delays"] += k["delays"]
    alerts = sum(r.alerts for r in reports)
    true = sum(r.true_alerts for r in reports)
    days = sum(r.model_days for r in reports)
    bursts = [d for k in BURSTS for d in kinds[k]["delays"]]
    slow = [d for k in KINDS if k not in BURSTS for d in kinds[k]["delays"]]
    return {
        "kinds": kinds, "alerts": alerts, "true": true, "false": sum(r.false_alerts for r in reports),
        "extra": sum(r.extra_alerts for r in reports), "escalations": sum(r.escalations for r in reports),
        "precision": true / alerts if alerts else 1.0, "model_days": days,
        "false_per_model_day": sum(r.false_alerts for r in reports) / days if days else 0.0,
        "burst_delay_s": statistics.median(bursts) if bursts else float("nan"),
        "slow_delay_s": statistics.median(slow) if slow else float("nan"),
        "slow_p90_s": pct(slow, 0.9),
        "recurrences": (sum(r.kinds["recurrence"]["caught"] for r in reports),
                        sum(r.kinds["recurrence"]["n"] for r in reports)),
    }


def table(s: dict) -> str:
    head = "| " + " | ".join(KINDS) + " | precision | false / model-day | delay bursts med | delay slow kinds med (p90) |"
    row = ("| " + " | ".join(f"{k['caught']}/{k['n']}" for k in s["kinds"].values())
           + f" | {s['precision']:.3f} | {s['false_per_model_day']:.3f} | {s['burst_delay_s']:.0f} s"
           + f" | {s['slow_delay_s'] / 60:.1f} min ({s['slow_p90_s'] / 60:.0f}) |")
    return "\n".join([head, "|" + "---|" * (len(KINDS) + 4), row,
                      f"alerts {s['alerts']} (true {s['true']}, of which repeat {s['extra']}; false {s['false']}),"
                      f" escalations {s['escalations']}, {s['model_days']:.0f} model-days;"
                      f" next-day recurrences caught {s['recurrences'][0]}/{s['recurrences'][1]}"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.family_eval", description=__doc__.splitlines()[0])
    p.add_argument("--set", choices=("tuning", "test"), default="tuning")
    p.add_argument("--seeds", type=int, default=10, help="how many seeds of the set (default 10)")
    p.add_argument("--skip", type=int, default=0, help="start after this many seeds of the set (default 0)")
    p.add_argument("--jobs", type=int, default=2, help="processes (default 2)")
    p.add_argument("-v", "--verbose", action="store_true", help="list misses and false alerts")
    args = p.parse_args(argv)
    seeds = list(TUNING_SEEDS if args.set == "tuning" else TEST_SEEDS)[args.skip: args.skip + args.seeds]
    started = time.perf_counter()
    with Pool(args.jobs) as pool:
        reports = pool.map(run_seed, seeds)
    if args.verbose:
        for seed, r in zip(seeds, reports):
            for m in r.missed:
                again = " (recurrence)" if m["recurrence"] else ""
                print(f"s{seed} missed {m['kind']}{again} {m['model']}/{m['service']} x{m['magnitude']}"
                      f" {time.strftime('%a %H:%M', time.gmtime(m['start']))}", file=sys.stderr)
            for f in r.false_alert_list:
                print(f"s{seed} false {f['key']} {f['window_start']} {f['details'].get('reason')}", file=sys.stderr)
    print(f"{args.set} seeds {seeds[0]}-{seeds[-1]} ({time.perf_counter() - started:.0f} s)")
    print(table(summarize(reports)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
