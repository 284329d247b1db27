"""The delivery tables keep what is younger than the retention and what another worker owns."""

from __future__ import annotations

from streams.worker.retention import prune

DAY = 86_400.0
NOW = 1_795_000_000.0


def record(at: float) -> dict:
    return {"alert": {"alert_id": "x", "triggered_at": at - DAY, "status": "resolved"},
            "deliveries": [{"sink": "log", "at": at}]}


def test_entries_older_than_the_cutoff_go_and_younger_ones_stay() -> None:
    recent = {"old": record(NOW - 31 * DAY), "young": record(NOW - 29 * DAY), "theirs": record(NOW - 40 * DAY)}
    delivered = {"old:firing:warning": NOW - 31 * DAY, "young:firing:warning": NOW - DAY,
                 "legacy:firing:warning": True, "young:resolved:warning": True, "theirs:firing:warning": 0.0}
    sent = {"webhook:a|old": {"at": NOW - 31 * DAY}, "webhook:a|young": {"at": NOW - DAY},
            "webhook:a|theirs": {"at": 0.0}}
    removed = prune(recent, delivered, sent, cutoff=NOW - 30 * DAY, owns=lambda alert_id: alert_id != "theirs")
    assert removed == {"recent": 1, "delivered": 2, "sent": 1}
    assert set(recent) == {"young", "theirs"}
    # a legacy slot (no time) goes once its alert's record is gone; one whose record is there stays
    assert set(delivered) == {"young:firing:warning", "young:resolved:warning", "theirs:firing:warning"}
    assert set(sent) == {"webhook:a|young", "webhook:a|theirs"}


def test_a_late_delivery_attempt_keeps_an_old_alert() -> None:
    """Age is the last activity: an alert triggered long ago but retried recently stays."""
    recent = {"a": {"alert": {"triggered_at": NOW - 60 * DAY}, "deliveries": [{"at": NOW - DAY}]}}
    assert prune(recent, {}, {}, cutoff=NOW - 30 * DAY, owns=lambda _: True)["recent"] == 0
