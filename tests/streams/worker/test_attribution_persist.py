"""Attribution settings from the environment; segments and bill state survive a restart."""

from __future__ import annotations

import orjson
import pytest

from schemas.errors import ConfigError
from streams.config import Settings
from streams.worker.partition_engines import PartitionEngines
from tests.support import ChangelogTable

T0 = 1_795_000_000.0 - 1_795_000_000.0 % 3600


def test_settings_from_env() -> None:
    settings = Settings.from_env({"SPENDSENTRY_REQUIRED_TAGS": "team,tags.cost_center",
                                  "SPENDSENTRY_UNTAGGED_MAX_SHARE": "0.2", "SPENDSENTRY_GPU_IDLE_MINUTES": "10"})
    config = settings.engine_config().attribution
    assert config.policy.required == ("team", "tags.cost_center") and config.policy.max_share == 0.2
    assert config.dims[-1] == "tags.cost_center" and settings.gpu_idle_minutes == 10
    assert settings.gpu_topic == "spendsentry.gpu"
    with pytest.raises(ConfigError, match="SPENDSENTRY_REQUIRED_TAGS: unknown dimension 'colour'"):
        Settings.from_env({"SPENDSENTRY_REQUIRED_TAGS": "colour"})
    with pytest.raises(ConfigError, match="SPENDSENTRY_UNTAGGED_MAX_SHARE"):
        Settings.from_env({"SPENDSENTRY_UNTAGGED_MAX_SHARE": "5"})


def test_segments_and_bills_restore_after_restart() -> None:
    config = Settings.from_env({"SPENDSENTRY_REQUIRED_TAGS": "team"}).engine_config()
    tables = [ChangelogTable() for _ in range(2)]
    engines = PartitionEngines(config, None, tables[0], segments=tables[1])  # type: ignore[arg-type]
    engine = engines.get(0)
    engine.ingest(orjson.dumps([
        {"event_id": "a", "timestamp": T0 + 1, "provider": "p", "model": "m", "cost_usd": 2.0, "team": "x"},
        {"event_id": "b", "timestamp": T0 + 61, "provider": "p", "model": "m", "cost_usd": 3.0},
        {"event_id": "focus_c", "timestamp": T0, "provider": "AWS", "model": "S", "service": "S", "cost_usd": 9.0,
         "tags": {"charge_period_end": "2026-11-19T00:00:00Z"}},
    ]))
    engines.offsets[0] = 7
    engines.persist(0)
    restarted = PartitionEngines(config, None, tables[0], segments=tables[1])  # type: ignore[arg-type]
    again = restarted.get(0)
    assert {s: {k[4]: v for k, v in rows.items()} for s, rows in again.segments.buckets.items()} == {
        T0: {"x": [2.0, 0, 1, 1]}, T0 + 60: {None: [3.0, 0, 1, 1]}}
    assert again.bills is not None and again.bills.view()[0]["total_cost_usd"] == 9.0
