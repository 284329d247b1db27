"""Score a backtest's alerts against the scenario's labelled anomalies."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


#: a firing alert counts for an anomaly on its key when its window starts in
#: [start - 1 bucket, end + GRACE): the tail of an anomaly still belongs to it.
GRACE_S = 600.0


@dataclass
class Report:
    kinds: dict[str, dict] = field(default_factory=dict)
    alerts: int = 0
    true_alerts: int = 0
    false_alerts: int = 0
    extra_alerts: int = 0  # second and later firings within one anomaly
    escalations: int = 0  # firing re-sends of an open incident at a higher severity (not counted as alerts)
    model_days: float = 0.0
    false_alert_list: list[dict] = field(default_factory=list)
    missed: list[dict] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.true_alerts / self.alerts if self.alerts else 1.0

    @property
    def false_per_model_day(self) -> float:
        return self.false_alerts / self.model_days if self.model_days else 0.0


def _ts(value) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    from datetime import datetime

    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def score(alerts: list[dict], anomalies: list[dict], eval_start: float, end: float, n_keys: int,
          bucket_s: float = 60.0) -> Report:
    """Per-kind recall and delay, precision, false alerts per model-day (firing alerts only).

    Every firing counts, a re-fire after a resolve (a reopened incident too) included; only an
    escalation (``details.escalated_from``: the same open incident at a higher severity) is not a
    new alert. An alert on a key with a ``service`` matches only anomalies of that service (or of
    the whole model); one without matches any anomaly of its model.
    """
    report = Report(model_days=n_keys * (end - eval_start) / 86400.0)
    by_model: dict[str, list[dict]] = {}
    for a in anomalies:
        by_model.setdefault(a["model"], []).append(a)
    first: dict[int, float] = {}
    for alert in alerts:
        if alert.get("status") != "firing":
            continue
        ws = _ts(alert["window_start"])
        if ws < eval_start:
            continue
        if alert.get("details", {}).get("escalated_from"):
            report.escalations += 1  # the open incident re-sent at a higher severity: not a new alert
            continue
        report.alerts += 1
        model = alert["key"].get("model", "")
        service = alert["key"].get("service")
        hit = None
        for a in by_model.get(model, []):
            if service is not None and a.get("service") and a["service"] != service:
                continue
            if a["start"] - bucket_s <= ws < a["end"] + GRACE_S:
                hit = a
                break
        if hit is None:
            report.false_alerts += 1
            report.false_alert_list.append(alert)
            continue
        report.true_alerts += 1
        key = id(hit)
        if key in first:
            report.extra_alerts += 1
        else:
            first[key] = _ts(alert["triggered_at"]) - hit["start"]
    for a in anomalies:
        k = report.kinds.setdefault(a["kind"], {"n": 0, "caught": 0, "delays": []})
        k["n"] += 1
        if id(a) in first:
            k["caught"] += 1
            k["delays"].append(first[id(a)])
        else:
            report.missed.append(a)
    for k in report.kinds.values():
        k["recall"] = k["caught"] / k["n"] if k["n"] else float("nan")
        k["median_delay_s"] = statistics.median(k["delays"]) if k["delays"] else float("nan")
        k["p90_delay_s"] = pct(k["delays"], 0.9)
    return report
