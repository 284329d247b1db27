"""The seasonal detector's recurring-spike memory: a nightly job is learned, a runaway loop that
paged is not masked by itself the next day, and memory state written before that rule restores."""

from __future__ import annotations

import random

import pytest

from detectors.seasonal import SeasonalSpendDetector
from streams.core import state_codec
from tests.detectors.test_behaviour import feed, minute

DAY_MIN = 1440
LOOP = 14 * 60  # 14:00-14:30 UTC


def _loop_days(days: list[int], first: float = 600.0) -> tuple[SeasonalSpendDetector, dict[int, list]]:
    """A key with two calm days, then a 10x loop at 14:00 for 30 min on each of ``days`` (its first
    minute at ``first`` requests); the verdicts of each loop."""
    rng = random.Random(21)
    det = SeasonalSpendDetector()
    loops: dict[int, list] = {}
    for day in range(max(days) + 1):
        for i in range(day * DAY_MIN, (day + 1) * DAY_MIN):
            in_loop = day in days and LOOP <= i % DAY_MIN < LOOP + 30
            rate = (first if i % DAY_MIN == LOOP else 600.0) if in_loop else 60.0
            verdicts = feed(det, [minute(i, rng, rate=rate)])
            if in_loop:
                loops.setdefault(day, []).append(verdicts[0])
    return det, loops


@pytest.mark.parametrize("first", [600.0, 150.0], ids=["whole-minute", "first-minute-partial"])
def test_a_loop_that_paged_pages_again_when_it_recurs_the_next_day(first: float) -> None:
    """Also when the loop starts mid-minute: its first bucket (2.5x, remembered, no page) must not
    make the record one that masks."""
    _, loops = _loop_days([2, 3, 4], first)
    assert loops[2][0].anomalous == (first == 600.0) and loops[2][1].anomalous
    assert any(v.anomalous for v in loops[3][:2]), loops[3][:2]  # its own memory must not mask it
    assert not any("recurring spike" in (v.reason or "") for v in loops[3])
    assert not any(v.anomalous for v in loops[4])  # seen on two days: now a daily job


def test_memory_round_trips_and_a_record_written_before_the_rule_still_masks() -> None:
    det, _ = _loop_days([2])
    rec = next(iter(det._mem.values()))
    assert len(rec) == 6 and rec[5] > rec[0]  # the loop paged: it does not mask yet
    clone = state_codec.loads(state_codec.dumps(det))
    assert clone._mem == det._mem
    t = rec[0] + 86400.0
    assert clone._memory(t, 1.0) == 1.0
    for r in clone._mem.values():
        del r[5:]  # as written before "masks from" existed
    assert clone._memory(t, 1.0) > 5.0


def test_a_loop_that_pages_only_after_minutes_of_rising_pages_again_the_next_day() -> None:
    """A loop at 3x for nine minutes (remembered as spikes, no page) and then 10x pages from its
    tenth minute; its earlier minutes' records belong to the same spike and must not mask its
    recurrence the next day."""
    rng = random.Random(22)
    det = SeasonalSpendDetector()
    loops: dict[int, list] = {}
    for i in range(4 * DAY_MIN):
        day, m = divmod(i, DAY_MIN)
        in_loop = day in (2, 3) and LOOP <= m < LOOP + 30
        rate = (180.0 if m < LOOP + 9 else 600.0) if in_loop else 60.0
        verdicts = feed(det, [minute(i, rng, rate=rate)])
        if in_loop:
            loops.setdefault(day, []).append(verdicts[0])
    assert not any(v.anomalous for v in loops[2][:9]) and loops[2][9].anomalous
    assert all(v.expected < 1.0 for v in loops[3][:10])  # 0.68: not the 3x of the ramp's record
    assert loops[3][9].anomalous and "recurring spike" not in loops[3][9].reason


def test_a_nightly_job_in_the_keys_first_half_hour_is_remembered() -> None:
    """A key born at 00:00 whose nightly job runs at 00:18-00:30 (6x): the first night is in the
    key's first 30 buckets (its warm-up), which used to remember nothing, so the second night paged
    as new. A spike is remembered once the key's cost per request is known (10 buckets)."""
    rng = random.Random(23)
    det = SeasonalSpendDetector()
    nights: dict[int, list] = {}
    for i in range(2 * DAY_MIN):
        day, m = divmod(i, DAY_MIN)
        verdicts = feed(det, [minute(i, rng, rate=360.0 if 18 <= m < 30 else 60.0)])
        if 18 <= m < 30:
            nights.setdefault(day, []).append(verdicts[0])
    assert det._mem
    assert not any(v.anomalous for v in nights[1]), [v.reason for v in nights[1]]
