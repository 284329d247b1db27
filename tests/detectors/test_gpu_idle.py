"""Idle-GPU waste: sustained low utilization, dollars wasted so far, fractions by their share."""

from __future__ import annotations

import pytest

from detectors.gpu_idle import GpuIdleDetector, detect_idle_gpus
from schemas.gpu import GpuUsageEvent

T0 = 1_795_759_200.0
STEP = 300.0  # 5-minute collection interval


def gpu(ts: float, util: float, *, node: str = "n1", uuid: str = "GPU-0", fraction: float = 1.0,
        mig: str | None = None, team: str = "ml", price: float | None = 7.0) -> GpuUsageEvent:
    return GpuUsageEvent(event_id=f"{node}{uuid}{mig}{ts}", timestamp=ts, interval_s=STEP, cluster="c1", node=node,
                         gpu_model="H100", utilization=util, fraction=fraction, mig_profile=mig, gpu_uuid=uuid,
                         team=team, hourly_price_usd=price)


def test_idle_for_30_minutes_fires_with_dollars_wasted() -> None:
    """A whole idle GPU and an idle 1/7 MIG slice at $7/h: after 30 min, $3.50 + $0.50 wasted, $8/h."""
    detector = GpuIdleDetector()
    fired = []
    for i in range(1, 7):  # intervals ending T0+300 .. T0+1800: 30 minutes of idle
        ts = T0 + i * STEP
        fired += detector.observe(gpu(ts, 0.02))
        fired += detector.observe(gpu(ts, 0.01, uuid="GPU-1", fraction=1 / 7, mig="1g.10gb"))
        fired += detector.observe(gpu(ts, 0.90, uuid="GPU-2"))  # busy: never counted
        if i < 6:
            assert fired == []
    [alert] = fired
    assert alert.type == "gpu_idle" and alert.status == "firing"
    assert alert.key == {"cluster": "c1", "team": "ml", "gpu_model": "H100"}
    # fired on the whole GPU's 6th idle interval, before the slice's: 0.5 h x $7 = $3.50
    assert alert.observed == pytest.approx(3.5) and alert.details["idle_gpus"] == 1.0
    # with the slice's 6th interval folded in: + 0.5 h x 1/7 x $7 = $0.50
    [alert] = detector.snapshot()
    assert alert.observed == pytest.approx(4.0)
    assert alert.details["wasted_usd_per_hour"] == pytest.approx(7.0 + 1.0)
    assert alert.details["idle_gpus"] == pytest.approx(1 + 1 / 7)
    assert alert.details["idle_gpu_hours"] == pytest.approx(0.5 + 0.5 / 7)
    assert alert.severity == "info" and alert.window_start == T0
    # waste keeps growing while idle: 10 more minutes -> +$8/h x 1/6 h
    for i in (7, 8):
        assert detector.observe(gpu(T0 + i * STEP, 0.0)) == []
        detector.observe(gpu(T0 + i * STEP, 0.0, uuid="GPU-1", fraction=1 / 7, mig="1g.10gb"))
    [snap] = detector.snapshot()
    assert snap.observed == pytest.approx(4.0 + 8.0 / 6) and snap.alert_id == alert.alert_id
    # the whole GPU gets busy: still firing for the slice; then the slice too: resolved, same id
    assert detector.observe(gpu(T0 + 9 * STEP, 0.5)) == []
    [still] = detector.snapshot()
    assert still.details["idle_gpus"] == pytest.approx(1 / 7)
    [resolved] = detector.observe(gpu(T0 + 9 * STEP, 0.5, uuid="GPU-1", fraction=1 / 7, mig="1g.10gb"))
    assert resolved.status == "resolved" and resolved.alert_id == alert.alert_id


def test_a_busy_blip_restarts_the_streak() -> None:
    events = [gpu(T0 + i * STEP, 0.0 if i != 4 else 0.2) for i in range(1, 9)]
    assert detect_idle_gpus(events) == []  # idle 3 intervals, busy, idle 4: never 30 min in a row
    assert len(detect_idle_gpus(events, min_idle_minutes=20)) == 1


def test_groups_by_team_and_threshold() -> None:
    events = []
    for i in range(1, 8):
        events.append(gpu(T0 + i * STEP, 0.04, team="ml"))
        events.append(gpu(T0 + i * STEP, 0.04, team="search", node="n2"))
    alerts = detect_idle_gpus(events)
    assert sorted(a.key["team"] for a in alerts) == ["ml", "search"]
    assert detect_idle_gpus(events, threshold=0.03) == []


def test_unpriced_gpus_still_alert_with_zero_dollars() -> None:
    events = [gpu(T0 + i * STEP, 0.0, price=None) for i in range(1, 8)]
    [alert] = detect_idle_gpus(events)
    assert alert.observed == 0.0 and alert.details["unpriced_devices"] == 1
