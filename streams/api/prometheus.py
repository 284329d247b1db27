"""Prometheus text exposition for ``GET /metrics`` (names per Prometheus naming practice).

Counters come from the engines and the runtime at scrape time; only delivery latency is
observed as it happens, into a fixed-bucket histogram. Spend per key is exported for the
top ``SPEND_TOP_N`` keys by spend plus one ``other`` series, so label cardinality is bounded
however many keys the worker tracks.
"""

from __future__ import annotations

from typing import Iterable

from streams.api.spend_views import untagged_shares
from streams.api.state import ApiState
from streams.core.histogram import Histogram, labels_text

SPEND_TOP_N = 20
#: unpriced models exported by name (the most frequent); the rest as model=other
UNPRICED_TOP_N = 20


class Exposition:
    """Builds the text format: one HELP/TYPE header per family, then its samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{labels_text(labels)} {value}")

    def histogram(self, name: str, help_text: str, histogram: Histogram) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} histogram")
        self.lines.extend(histogram.samples(name))

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def top_spend(spend: Iterable[tuple[str, float]], n: int = SPEND_TOP_N) -> list[tuple[dict[str, str], float]]:
    """The ``n`` biggest keys by spend, plus ``other`` for the rest (always present)."""
    ranked = sorted(spend, key=lambda item: -item[1])
    samples = [({"key": name}, round(value, 6)) for name, value in ranked[:n]]
    samples.append(({"key": "other"}, round(sum(value for _, value in ranked[n:]), 6)))
    return samples


def unpriced_by_model(runtime: ApiState, n: int = UNPRICED_TOP_N) -> list[tuple[dict[str, str], float]]:
    """Unpriced events per ``provider/model`` over every engine: the ``n`` most frequent plus ``other``."""
    counts: dict[str, int] = {}
    for engine in runtime.engines.engines.values():
        for (provider, model), count in engine.unpriced_models.items():
            name = f"{provider}/{model}"
            counts[name] = counts.get(name, 0) + count
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    samples: list[tuple[dict[str, str], float]] = [({"model": name}, count) for name, count in ranked[:n]]
    samples.append(({"model": "other"}, sum(count for _, count in ranked[n:])))
    return samples


def render(runtime: ApiState) -> str:
    """The worker's metrics, in Prometheus text format."""
    counters = runtime.counters()
    out = Exposition()
    for name, field, help_text in (
        ("spendsentry_events_total", "events", "Usage events accepted."),
        ("spendsentry_events_invalid_total", "invalid", "Messages or array elements rejected (dead-lettered)."),
        ("spendsentry_events_duplicate_total", "duplicates", "Events dropped as duplicate event_id."),
        ("spendsentry_events_unpriced_total", "unpriced", "Events of models missing from the price catalogue."),
        ("spendsentry_events_late_total", "late", "Events whose bucket had already closed."),
        ("spendsentry_buckets_closed_total", "buckets_closed", "Key buckets closed and judged."),
        ("spendsentry_detector_seconds_total", "detector_seconds", "Time spent in detectors."),
    ):
        out.family(name, "counter", help_text, [({}, getattr(counters, field))])
    out.family("spendsentry_unpriced_events_by_model_total", "counter",
               f"Events priced at $0 because their model is missing from the price catalogue, per provider/model "
               f"(top {UNPRICED_TOP_N}, the rest as model=other).", unpriced_by_model(runtime))
    out.family("spendsentry_deadletters_total", "counter", "Records sent to the dead-letter topic.",
               [({}, runtime.deadletters)])
    out.family("spendsentry_consumer_lag_messages", "gauge", "Unprocessed usage messages per partition.",
               [({"partition": str(p)}, lag) for p, lag in sorted(runtime.consumer_lag().items())])
    out.family("spendsentry_agent_restarts_total", "counter", "Agent crashes (each one restarted by Faust's supervisor).",
               [({"agent": name}, n) for name, n in sorted(runtime.health.restarts.items())])
    out.family("spendsentry_partition_seconds_since_progress", "gauge",
               "Seconds since the usage partition's offset last advanced (since assignment if never).",
               [({"partition": str(p)}, round(age, 3)) for p, age in sorted(runtime.progress_ages().items())])
    out.family("spendsentry_keys_folded_total", "counter",
               "Events whose new key was counted under its family's __other__ key (SPENDSENTRY_MAX_KEYS reached).",
               [({}, counters.folded)])
    out.family("spendsentry_events_future_total", "counter",
               "Events dead-lettered for a timestamp beyond SPENDSENTRY_MAX_FUTURE_SECONDS ahead of the clock.",
               [({}, counters.future)])
    out.family("spendsentry_processing_errors_total", "counter",
               "Messages or events whose processing raised an unexpected error (dead-lettered).",
               [({}, counters.errors)])
    out.family("spendsentry_alerts_total", "counter", "Alert state changes emitted.",
               [({"type": t, "severity": sev, "status": st}, n) for (t, sev, st), n in sorted(runtime.alerts_published.items())])
    out.family("spendsentry_deliveries_total", "counter", "Alert deliveries by sink and outcome.",
               [({"sink": sink, "outcome": outcome}, n) for (sink, outcome), n in sorted(runtime.delivery.outcomes.items())])
    out.histogram("spendsentry_delivery_duration_seconds", "Time to deliver one alert to one sink, retries included.",
                  runtime.delivery.latency)
    spend = [(state.name, state.total_cost) for engine in runtime.engines.engines.values() for state in engine.keys.values()]
    out.family("spendsentry_spend_usd_total", "counter",
               f"Spend in USD per key (top {SPEND_TOP_N} keys by spend, the rest as key=other).", top_spend(spend))
    out.family("spendsentry_untagged_spend_share", "gauge",
               "Share of spend missing a SPENDSENTRY_REQUIRED_TAGS dimension over the policy window, per key (top 50).",
               untagged_shares(runtime))
    return out.text()
