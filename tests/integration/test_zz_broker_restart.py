"""The broker restarts mid-stream: the worker reconnects and catches up without operator action.

Named to run last: it stops the shared test broker (and always brings it back)."""

from __future__ import annotations

import pytest

from streams.dev import localkafka
from tests.integration.conftest import eventually
from tests.integration.test_pipeline import history, produce

pytestmark = pytest.mark.integration


async def test_worker_catches_up_after_a_broker_restart(make_worker, broker, topic_prefix):
    worker = make_worker().start()
    await worker.ready()
    part1, part2 = history(0, 60), history(60, 120)
    await produce(broker, topic_prefix, part1, batch=50)

    async def counted(n: int) -> bool:
        try:
            spend = await worker.get("/v1/spend")
        except Exception:  # the worker's web API may answer slowly while Kafka is away
            return False
        return sum(k["events"] for k in spend["keys"]) == n

    await eventually(lambda: counted(len(part1)), timeout=120, message="part 1 processed")
    try:
        localkafka.down()
    finally:
        localkafka.up()
    await produce(broker, topic_prefix, part2, batch=50)
    await eventually(lambda: counted(len(part1) + len(part2)), timeout=180,
                     message="every event counted after the broker came back")
    assert worker.process is not None and worker.process.poll() is None  # no operator action: same process
