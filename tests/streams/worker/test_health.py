"""The worker says when it is unwell: a crashed agent, a partition with lag that stopped
advancing, a recovery that does not finish turn ``/healthz`` to 503 with the reason, and
``/metrics`` exports agent restarts and the age of each partition's last progress."""

from __future__ import annotations

from typing import Any

import orjson

from streams.app import create_app
from streams.config import Settings
from streams.core.pricing import PriceCatalogue
from streams.worker.health import Health


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def health() -> tuple[Health, Clock]:
    clock = Clock()
    return Health(stall_s=120.0, clock=clock), clock


async def test_a_crash_is_a_problem_until_stall_seconds_passed() -> None:
    """A crash reads as a problem (with the agent, the error and the restart count) for stall_s."""
    monitor, clock = health()
    await monitor.agent_crashed(type("Agent", (), {"name": "process_usage"})(), RecursionError("too deep"))
    assert monitor.problems({}, recovered=True) == [
        "agent process_usage crashed 0s ago (RecursionError: too deep); restarts: 1"]
    clock.now += 119.0
    assert len(monitor.problems({}, recovered=True)) == 1
    clock.now += 1.0
    assert monitor.problems({}, recovered=True) == []
    assert monitor.restarts == {"process_usage": 1}


def test_a_partition_with_lag_that_does_not_advance_is_stalled() -> None:
    """Lag alone is fine (the worker is catching up); lag and no progress for stall_s is not."""
    monitor, clock = health()
    monitor.progressed(0)
    monitor.progressed(1)
    clock.now += 119.0
    monitor.progressed(1)
    assert monitor.problems({0: 5, 1: 5, 2: 0}, recovered=True) == []
    clock.now += 1.0
    assert monitor.problems({0: 5, 1: 5, 2: 0}, recovered=True) == [
        "partition 0 has 5 messages waiting and has not advanced for 120s"]
    assert monitor.problems({0: 0, 1: 5}, recovered=True) == []  # caught up: idle, not stalled


def test_recovery_that_does_not_finish_is_a_problem() -> None:
    monitor, clock = health()
    assert monitor.problems({}, recovered=False) == []
    clock.now += 120.0
    assert monitor.problems({}, recovered=False) == ["table recovery not complete after 120s"]
    assert monitor.problems({}, recovered=True) == []


async def call(app: Any, path: str) -> tuple[int, bytes]:
    response = await app.web.views[path].get(None)
    return response.status, response.body


async def test_a_crashed_agent_turns_healthz_to_503_and_is_counted_in_metrics(tmp_path) -> None:
    """The worker's real agent and pages: Faust reports the agent's exception through its error
    hook (as it does before restarting it), and /healthz answers 503 with the reason."""
    settings = Settings.from_env({"SPENDSENTRY_DATA_DIR": str(tmp_path)})
    app, runtime = create_app(settings, PriceCatalogue.load(settings.prices_file))
    app.tables.recovery.completed.set()
    runtime.consumer_lag = dict  # no broker: no partitions assigned
    status, body = await call(app, "/healthz")
    assert (status, orjson.loads(body)["status"]) == (200, "ok")
    agent = app.agents["process_usage"]
    await agent._on_error(agent, RecursionError("maximum recursion depth exceeded"))
    status, body = await call(app, "/healthz")
    reply = orjson.loads(body)
    assert status == 503, reply
    assert reply["status"] == "unwell"
    assert "RecursionError" in reply["problems"][0] and "process_usage" in reply["problems"][0]
    _, metrics = await call(app, "/metrics")
    assert b'spendsentry_agent_restarts_total{agent="' in metrics and b'process_usage"} 1' in metrics
