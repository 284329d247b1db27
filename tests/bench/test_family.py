"""The scenario family's holidays and next-day recurrences: where they fall, what traffic they make,
and that they leave a seed's fleet and original anomalies as they were."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.family import DAY, HOUR, T0, Family
from bench.score import score

SEEDS = range(1, 31)


def _requests(family: Family, stream, anomalies, lo: float, hi: float) -> int:
    return sum(e["request_count"] for e in family.events([stream], anomalies) if lo <= e["timestamp"] < hi)


def _office_hours(stream, day: int) -> tuple[float, float]:
    """10:00-17:00 local time on ``day`` of the run, in UTC seconds."""
    return T0 + day * DAY + (10 - stream.tz_h) * HOUR, T0 + day * DAY + (17 - stream.tz_h) * HOUR


def test_half_the_seeds_have_a_friday_or_monday_holiday() -> None:
    days = [Family(seed).holiday() for seed in SEEDS]
    assert set(days) == {-1, 1, 4}
    assert 8 <= days.count(-1) <= 22


def test_a_business_stream_runs_at_weekend_level_on_its_holiday() -> None:
    seed = next(s for s in SEEDS if Family(s).holiday() == 1)
    family = Family(seed, days=3)
    stream = replace(next(s for s in family.fleet() if s.profile == "business"), rate=5.0, job_hour=-1.0)
    workday = _requests(family, stream, [], *_office_hours(stream, 0))
    holiday = _requests(family, stream, [], *_office_hours(stream, 1))
    saturday = _requests(family, stream, [], *_office_hours(stream, 2))
    assert holiday < 0.4 * workday
    assert 0.6 < holiday / saturday < 1.6


def test_without_a_holiday_the_friday_is_a_workday() -> None:
    seed = next(s for s in SEEDS if Family(s).holiday() == -1)
    family = Family(seed, days=2)
    stream = replace(next(s for s in family.fleet() if s.profile == "business"), rate=5.0, job_hour=-1.0)
    thursday = _requests(family, stream, [], *_office_hours(stream, 0))
    friday = _requests(family, stream, [], *_office_hours(stream, 1))
    assert 0.6 < friday / thursday < 1.6


@pytest.mark.parametrize("seed", SEEDS)
def test_recurrences_leave_the_original_schedule_as_it_was(seed: int) -> None:
    streams = Family(seed).fleet()
    assert Family(seed, recur_p=0.0).fleet() == streams
    anomalies = Family(seed).schedule(streams)
    assert [a for a in anomalies if not a.recurrence] == Family(seed, recur_p=0.0).schedule(streams)


def test_a_recurrence_starts_one_day_after_its_original_on_the_same_stream() -> None:
    recurrences = 0
    kinds = set()
    for seed in SEEDS:
        family = Family(seed)
        anomalies = family.schedule(family.fleet())
        for a in anomalies:
            if not a.recurrence:
                continue
            recurrences += 1
            kinds.add(a.kind)
            original = [o for o in anomalies if not o.recurrence and o.start == a.start - DAY]
            assert len(original) == 1
            o = original[0]
            assert (o.kind, o.model, o.service, o.source, o.end) == (a.kind, a.model, a.service, a.source, a.end - DAY)
            assert 0.75 * o.magnitude <= a.magnitude <= 1.3 * o.magnitude
            assert a.end <= family.end
    assert recurrences >= 30 and {"runaway_loop", "retry_storm"} <= kinds


def test_a_recurring_burst_is_in_the_traffic_on_both_days_and_scored_on_its_own() -> None:
    seed, family, burst = next(
        (s, f, a) for s in SEEDS for f in [Family(s)] for a in f.schedule(f.fleet())
        if a.recurrence and a.kind == "retry_storm")
    stream = next(s for s in family.fleet() if s.service == burst.service)
    anomalies = [a for a in family.schedule(family.fleet()) if a.service == stream.service]
    original = next(a for a in anomalies if a.start == burst.start - DAY)
    for a in (original, burst):
        during = _requests(family, stream, anomalies, a.start, a.end)
        before = _requests(family, stream, anomalies, a.start - 2 * HOUR, a.start - 2 * HOUR + (a.end - a.start))
        assert during > 5 * max(before, 1), (seed, a)
    # an alert on the second day catches the recurrence only
    alert = {"status": "firing", "window_start": burst.start, "triggered_at": burst.start + 60,
             "key": {"model": burst.model, "service": burst.service}, "details": {}}
    report = score([alert], [a.as_dict() for a in anomalies], family.eval_start, family.end, 1)
    assert [m["start"] for m in report.missed if m["kind"] == "retry_storm"] == [original.start]
