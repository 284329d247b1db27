"""Prometheus exposition: histogram semantics, bounded spend cardinality."""

from __future__ import annotations

from streams.api.prometheus import Exposition, top_spend
from streams.core.histogram import Histogram


def test_histogram_is_cumulative_with_sum_and_count() -> None:
    histogram = Histogram(buckets=(0.1, 1.0))
    for value in (0.05, 0.5, 0.5, 3.0):
        histogram.observe(value, sink="webhook-0")
    out = Exposition()
    out.histogram("x_duration_seconds", "help", histogram)
    text = out.text()
    assert 'x_duration_seconds_bucket{sink="webhook-0",le="0.1"} 1' in text
    assert 'x_duration_seconds_bucket{sink="webhook-0",le="1.0"} 3' in text
    assert 'x_duration_seconds_bucket{sink="webhook-0",le="+Inf"} 4' in text
    assert 'x_duration_seconds_count{sink="webhook-0"} 4' in text
    assert 'x_duration_seconds_sum{sink="webhook-0"} 4.05' in text
    assert "# TYPE x_duration_seconds histogram" in text


def test_spend_labels_are_bounded_top_n_plus_other() -> None:
    spend = [(f"model=m{i}", float(i)) for i in range(100)]
    samples = top_spend(spend, n=3)
    assert samples == [({"key": "model=m99"}, 99.0), ({"key": "model=m98"}, 98.0), ({"key": "model=m97"}, 97.0),
                       ({"key": "other"}, float(sum(range(97))))]


def test_label_values_are_escaped() -> None:
    out = Exposition()
    out.family("x_total", "counter", "help", [({"key": 'a"b\\c'}, 1)])
    assert 'x_total{key="a\\"b\\\\c"} 1' in out.text()


def test_unpriced_events_are_counted_per_model_with_bounded_labels() -> None:
    from collections import Counter
    from types import SimpleNamespace

    from streams.api.prometheus import unpriced_by_model

    engines = [SimpleNamespace(unpriced_models=Counter({("openai", f"ft-{i}"): i + 1 for i in range(25)})),
               SimpleNamespace(unpriced_models=Counter({("openai", "ft-24"): 5}))]
    runtime = SimpleNamespace(engines=SimpleNamespace(engines=dict(enumerate(engines))))
    samples = unpriced_by_model(runtime)  # type: ignore[arg-type]
    assert samples[0] == ({"model": "openai/ft-24"}, 30)
    assert len(samples) == 21 and samples[-1] == ({"model": "other"}, sum(range(1, 6)))
