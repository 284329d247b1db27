"""The evaluation suite: ``python -m bench.eval [--candidates a,b] [--seeds 1,2] [--nab] [--throughput]``.

1. Synthetic, labelled spend scenarios (bench/scenario.py) replayed through ``streams.cli.backtest.backtest``
   (the real engine and incident lifecycle) once per detector candidate; alerts scored per anomaly
   kind (recall, detection delay from anomaly start to ``triggered_at``), precision and false alerts
   per model-day over the post-warm-up period.
2. ``--nab``: the NAB corpus through the ``--series`` code path (streams/cli/score_series.py), scored with
   /work/shared/bench/nab_score.py (standard, low-FP, low-FN).
3. ``--throughput``: events/s of ``backtest`` on un-batched traffic (one event per call).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bench.candidates import CANDIDATES, DEFAULT
from bench.scenario import MODELS, Scenario
from bench.score import score
from streams.cli.backtest import backtest
from streams.core.engine import EngineConfig
from streams.core.pricing import PriceCatalogue

CACHE = Path(os.environ.get("SPENDSENTRY_BENCH_CACHE", Path(tempfile.gettempdir()) / "spendsentry-bench"))
NAB_DIR = Path(os.environ.get("SPENDSENTRY_NAB_DIR", "/work/shared/bench/nab"))
NAB_SCORER = Path(os.environ.get("SPENDSENTRY_NAB_SCORER", "/work/shared/bench/nab_score.py"))


def scenario_file(scenario: Scenario) -> tuple[Path, list[dict]]:
    CACHE.mkdir(parents=True, exist_ok=True)
    stem = f"scenario-s{scenario.seed}-d{scenario.days}-w{scenario.warmup_days}-a{scenario.anomalies_per_day}-v1"
    events, labels = CACHE / f"{stem}.jsonl", CACHE / f"{stem}.labels.json"
    if not (events.exists() and labels.exists()):
        anomalies = scenario.schedule()
        tmp = events.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            for e in scenario.events(anomalies):
                fh.write(orjson.dumps(e) + b"\n")
        tmp.rename(events)
        labels.write_text(json.dumps([a.as_dict() for a in anomalies]))
    return events, json.loads(labels.read_text())


def run_candidate(name: str, events: Path) -> tuple[list[dict], float, int]:
    config = EngineConfig(detector_factory=CANDIDATES[name])
    out = io.BytesIO()
    with open(events, "rb") as fh:
        summary = backtest(fh, out, config, PriceCatalogue.bundled(), progress=io.StringIO())
    return [orjson.loads(line) for line in out.getvalue().splitlines()], summary.events_per_s, summary.events


def fmt_s(v: float) -> str:
    return "–" if v != v else f"{v:.0f}"


def eval_candidates(names: list[str], seeds: list[int], verbose: bool = False) -> dict[str, dict]:
    results = {}
    data = []
    for seed in seeds:
        sc = Scenario(seed=seed)
        events, labels = scenario_file(sc)
        data.append((sc, events, labels))
    for name in names:
        alerts_all, labels_all, fps = [], [], []
        agg = {"alerts": 0, "true": 0, "false": 0, "extra": 0, "model_days": 0.0, "kinds": {}, "eps": []}
        for sc, events, labels in data:
            alerts, eps, _ = run_candidate(name, events)
            rep = score(alerts, labels, sc.eval_start, sc.end, len(MODELS))
            agg["alerts"] += rep.alerts
            agg["true"] += rep.true_alerts
            agg["false"] += rep.false_alerts
            agg["extra"] += rep.extra_alerts
            agg["model_days"] += rep.model_days
            agg["eps"].append(eps)
            for kind, k in rep.kinds.items():
                a = agg["kinds"].setdefault(kind, {"n": 0, "caught": 0, "delays": []})
                a["n"] += k["n"]
                a["caught"] += k["caught"]
                a["delays"] += k["delays"]
            fps += rep.false_alert_list
            if verbose:
                for m in rep.missed:
                    print(f"  [{name} s{sc.seed}] missed {m['kind']} on {m['model']} at {time.strftime('%a %H:%M', time.gmtime(m['start']))}", file=sys.stderr)
                for f in rep.false_alert_list:
                    print(f"  [{name} s{sc.seed}] false {f['key']} {f['window_start']} {f['details'].get('reason')}", file=sys.stderr)
        results[name] = agg
    return results


def table(results: dict[str, dict]) -> str:
    from bench.score import pct
    import statistics

    kinds = ["burst5", "burst10", "burst30", "prompt_bloat", "cache_collapse", "model_switch", "ramp"]
    head = ("| detector | " + " | ".join(f"recall {k}" for k in kinds)
            + " | precision | false/model-day | delay burst≥5x med/p90 s | delay ramp med/p90 s | delay cost/req med s | events/s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, r in results.items():
        rec = []
        for k in kinds:
            a = r["kinds"].get(k)
            rec.append(f"{a['caught']}/{a['n']}" if a else "–")
        bursts = sum((r["kinds"].get(k, {"delays": []})["delays"] for k in kinds[:3]), [])
        ramp = r["kinds"].get("ramp", {"delays": []})["delays"]
        cpr = sum((r["kinds"].get(k, {"delays": []})["delays"] for k in ("prompt_bloat", "cache_collapse")), [])
        prec = r["true"] / r["alerts"] if r["alerts"] else 1.0
        med = lambda v: statistics.median(v) if v else float("nan")
        lines.append(
            f"| {name} | " + " | ".join(rec)
            + f" | {prec:.3f} | {r['false'] / r['model_days']:.3f} | {fmt_s(med(bursts))}/{fmt_s(pct(bursts, .9))}"
            f" | {fmt_s(med(ramp))}/{fmt_s(pct(ramp, .9))} | {fmt_s(med(cpr))} | {statistics.mean(r['eps']):,.0f} |")
    return "\n".join(lines)


def run_nab(out_dir: Path) -> str:
    from streams.cli.score_series import score_series_file

    data = NAB_DIR / "data"
    started = time.perf_counter()
    rows = 0
    for path in sorted(data.rglob("*.csv")):
        rel = path.relative_to(data)
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        rows += score_series_file(path, target)
    took = time.perf_counter() - started
    proc = subprocess.run([sys.executable, str(NAB_SCORER), str(out_dir), "--nab-dir", str(NAB_DIR)],
                          capture_output=True, text=True)
    return f"NAB: {rows:,} rows scored in {took:.1f}s ({rows / took:,.0f} rows/s)\n" + proc.stdout + proc.stderr


def throughput(minutes: int = 60) -> str:
    from streams.dev.traffic import TrafficGenerator

    gen = TrafficGenerator(seed=11)
    t0 = 1_795_392_000.0
    lines = [orjson.dumps(e) for e in gen.events(t0, t0 + minutes * 60)]
    best = 0.0
    for _ in range(3):
        summary = backtest(iter(lines), io.BytesIO(), EngineConfig(detector_factory=CANDIDATES[DEFAULT]),
                           PriceCatalogue.bundled(), progress=io.StringIO())
        best = max(best, summary.events_per_s)
    return f"backtest throughput ({DEFAULT}, {len(lines):,} un-batched events, best of 3): {best:,.0f} events/s"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.eval", description=__doc__.splitlines()[0])
    p.add_argument("--candidates", default=",".join(CANDIDATES), help="comma-separated (default: all)")
    p.add_argument("--seeds", default="1,2,3,4", help="scenario seeds (default 1,2,3,4)")
    p.add_argument("--nab", action="store_true", help="also run NAB through the --series path")
    p.add_argument("--nab-only", action="store_true")
    p.add_argument("--nab-out", default=None, help="where to keep NAB result CSVs (default: a temp dir)")
    p.add_argument("--throughput", action="store_true", help="also measure backtest events/s")
    p.add_argument("-v", "--verbose", action="store_true", help="list misses and false alerts")
    args = p.parse_args(argv)
    if not args.nab_only:
        results = eval_candidates(args.candidates.split(","), [int(s) for s in args.seeds.split(",")], args.verbose)
        print(table(results))
    if args.nab or args.nab_only:
        out = Path(args.nab_out) if args.nab_out else Path(tempfile.mkdtemp(prefix="nab-results-"))
        print(run_nab(out))
    if args.throughput:
        print(throughput())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
