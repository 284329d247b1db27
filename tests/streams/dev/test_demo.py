"""While the demo waits for its alert it says what the worker has done, and where it is stuck."""

from __future__ import annotations

from streams.dev.demo import progress_line


def test_progress_names_events_buckets_the_last_judged_bucket_and_problems() -> None:
    spend = {"counters": {"events": 12345, "buckets_closed": 678, "late": 0, "deadletters": 2},
             "keys": [{"key": {"model": "claude"}, "last_closed": None},
                      {"key": {"model": "gpt-4o"},
                       "last_closed": {"start": 0.0, "cost_usd": 12.5, "expected_usd": 1.25, "score": 0.97}}]}
    line = progress_line(spend, {"problems": ["partition 3 has 9 messages waiting and has not advanced for 130s"]})
    assert line.startswith("worker: 12,345 events counted, 678 buckets closed, 0 late, 2 dead letters; last gpt-4o "
                           "bucket judged: ")
    assert "$12.50 (expected $1.25, score 0.97)" in line
    assert line.endswith("; UNWELL: partition 3 has 9 messages waiting and has not advanced for 130s")


def test_progress_before_any_bucket_is_judged() -> None:
    assert progress_line({"counters": {}, "keys": []}, {"problems": []}) == (
        "worker: 0 events counted, 0 buckets closed, 0 late, 0 dead letters; no gpt-4o bucket judged yet")
