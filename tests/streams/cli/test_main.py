"""The ``spendsentry`` command line: what the worker command sets up around Faust."""

from __future__ import annotations

import logging
import re

import pytest

from streams.cli.main import LOG_LEVELS, keep_log_level, main


async def test_the_worker_puts_the_asked_log_level_back_after_faust_start_up() -> None:
    """Faust's worker leaves the root logger at DEBUG (for its spinner) when asked for warn or
    above, so every library debug call built a record: the start-up task restores the level."""
    before = logging.root.level
    try:
        logging.root.setLevel(logging.DEBUG)  # what Faust's Worker.on_setup_root_logger does for -l warn
        await keep_log_level(LOG_LEVELS["warn"])()
        assert not logging.getLogger("aiokafka.producer.producer").isEnabledFor(logging.DEBUG)
        assert logging.root.level == logging.WARNING
    finally:
        logging.root.setLevel(before)


def test_backtest_max_future_seconds_rejects_a_bad_value_with_one_clear_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["backtest", "events.jsonl", "--output", "out.jsonl", "--max-future-seconds", "nan"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--max-future-seconds: 'nan': must be a finite number >= 0" in err and "Traceback" not in err


def test_the_worker_creates_every_topic_it_reads_and_its_tables_changelogs_before_faust_starts(
        monkeypatch, tmp_path) -> None:
    """A changelog Faust created itself could be missing from its first metadata request right
    after a broker start; Faust then ignored it and its recovery never completed (a demo waited
    300 s for a worker that never became ready)."""
    import faust

    from streams.dev import localkafka

    created: dict = {}
    monkeypatch.setattr(localkafka, "ensure_topics", lambda bootstrap, topics, compacted=frozenset(), **kw:
                        created.update(topics=topics, compacted=set(compacted)))
    started: list[set] = []
    monkeypatch.setattr(faust.App, "main", lambda app: started.append(set(created.get("topics", ()))))
    monkeypatch.setenv("SPENDSENTRY_TOPIC_PREFIX", "t")
    monkeypatch.setenv("SPENDSENTRY_APP_ID", "t")
    monkeypatch.setenv("SPENDSENTRY_DATA_DIR", str(tmp_path))
    monkeypatch.setattr("sys.argv", ["spendsentry", "worker"])
    before = logging.root.level
    try:
        assert main(["worker", "-l", "warn"]) == 0
    finally:
        logging.root.setLevel(before)
    changelogs = {name for name in created["topics"] if name.endswith("-changelog")}
    assert {"t-meta-changelog", "t-recent-changelog", "t-delivered-changelog", "t-gpu-changelog"} <= changelogs
    assert created["compacted"] == changelogs
    assert {"t.usage", "t.alerts", "t.deadletter"} <= set(created["topics"])
    assert started and started[0] == set(created["topics"])  # all of them before Faust started


def test_backtest_judges_a_file_with_more_keys_than_one_partition_holds(monkeypatch, tmp_path, capsys) -> None:
    """``spendsentry backtest`` runs one engine for every partition: with MAX_KEYS=2 per partition
    and 8 partitions, 6 models are 6 keys, none folded into __other__."""
    import orjson

    monkeypatch.setenv("SPENDSENTRY_MAX_KEYS", "2")
    monkeypatch.setenv("SPENDSENTRY_GROUP_BY", "model")
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(orjson.dumps({"event_id": f"e{i}", "timestamp": 1_795_000_000 + i, "provider": "openai",
                                                "model": f"m{i}", "cost_usd": 0.01}) for i in range(6)))
    assert main(["backtest", str(events), "--output", str(tmp_path / "out.jsonl")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^keys:\s+6$", out, re.MULTILINE), out
