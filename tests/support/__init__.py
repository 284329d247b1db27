"""Shared test helpers: an alert factory, a recording sleep, an in-memory changelog table, and
(in ``slack_api``) a Slack look-alike server."""

from __future__ import annotations

import socket
from dataclasses import replace
from typing import Any

from schemas.alert import Alert, alert_id_for

_START = 1795759200.0  # 2026-11-27T06:00:00Z


def make_alert(status: str = "firing", **overrides: Any) -> Alert:
    """A realistic cost-spike alert; the resolved twin of the default shares its ``alert_id``."""
    key = overrides.pop("key", {"model": "gpt-4o", "team": "cx"})
    alert = Alert(
        alert_id=alert_id_for("cost_spike", key, _START),
        type="cost_spike",
        status="firing",
        severity="warning",
        key=key,
        window_start=_START,
        window_end=_START + 300,
        triggered_at=_START + 300,
        observed=12.5,
        expected=1.25,
        score=0.9876,
        summary="gpt-4o spend $12.50 vs $1.25 expected (10.0x) in 06:00–06:05 UTC",
        details={"detector": "hst", "requests": 10},
    )
    if status == "resolved":
        alert = replace(alert, status="resolved", window_end=_START + 1200, triggered_at=_START + 1200,
                        observed=1.3, summary="resolved: gpt-4o spend back to $1.30",
                        details={"detector": "hst", "peak_observed": 14.0})
    return replace(alert, **overrides)


class SleepRecorder:
    """An injectable ``sleep`` that returns at once and remembers what it was asked to wait."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def dead_port() -> int:
    """A localhost port with nothing listening on it (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChangelogTable:
    """What :class:`streams.worker.partition_engines.PartitionEngines` needs of a Faust table:
    ``data`` and a changelog send, recorded in ``sent`` (``None`` values are tombstones)."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.sent: list[tuple[int, bytes, bytes | None]] = []

    def send_changelog(self, partition: int, key: bytes, value: bytes | None) -> None:
        self.sent.append((partition, key, value))

    def recovered(self, records: int | None = None) -> ChangelogTable:
        """The table a restarted worker reads back from the first ``records`` changelog records (all
        by default): a kill after any write, the later ones never sent."""
        table = ChangelogTable()
        for _, key, value in self.sent[:records]:
            if value is None:
                table.data.pop(key, None)
            else:
                table.data[key] = value
        return table
