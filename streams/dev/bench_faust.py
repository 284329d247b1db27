"""Ceiling for ``spendsentry bench``: a bare Faust agent that only decodes (orjson) each message.

Run as its own process (``python -m streams.dev.bench_faust BOOTSTRAP TOPIC APP_ID EVENTS``) so its
event loop and memory are not shared with the bench; prints one JSON line
``{"events": n, "seconds": s, "eps": n/s}`` measured from the first message decoded to the last.
The app runs in-process (``app.start()``) with the web server disabled and its own app id.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time

import orjson


async def run(bootstrap: str, topic_name: str, app_id: str, expected: int, timeout: float = 300.0) -> dict:
    import faust

    with tempfile.TemporaryDirectory(prefix="ssbench-faust-") as datadir:
        app = faust.App(app_id, broker=f"kafka://{bootstrap}", store="memory://", web_enabled=False,
                        topic_disable_leader=True, consumer_auto_offset_reset="earliest", datadir=datadir,
                        processing_guarantee="at_least_once")
        topic = app.topic(topic_name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
        state = {"n": 0, "events": 0, "first": 0.0, "last": 0.0}
        done = asyncio.Event()

        @app.agent(topic)
        async def decode(stream):  # noqa: ANN001 - the bare ceiling: decode, count, nothing else
            async for value in stream:
                data = orjson.loads(value)
                if not state["n"]:
                    state["first"] = time.perf_counter()
                state["n"] += 1
                state["events"] += len(data) if type(data) is list else 1
                if state["n"] >= expected:
                    state["last"] = time.perf_counter()
                    done.set()

        app.finalize()
        await app.start()
        try:
            await asyncio.wait_for(done.wait(), timeout)
        finally:
            await app.stop()
    seconds = max(state["last"] - state["first"], 1e-9)
    return {"messages": state["n"], "events": state["events"], "seconds": seconds, "eps": state["events"] / seconds}


def main(argv: list[str]) -> int:
    bootstrap, topic, app_id, expected = argv[0], argv[1], argv[2], int(argv[3])
    result = asyncio.run(run(bootstrap, topic, app_id, expected))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
