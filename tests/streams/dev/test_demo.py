"""While the demo waits for its alert it says what the worker has done, and where it is stuck; a
worker that is not ready says why (what /healthz said, the end of its log)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from schemas.errors import SpendSentryError
from streams.dev.demo import WorkerNotReady, burst_start, progress_line, wait_ready


def test_progress_names_events_buckets_the_last_judged_bucket_and_problems() -> None:
    spend = {"counters": {"events": 12345, "buckets_closed": 678, "late": 0, "deadletters": 2},
             "keys": [{"key": {"model": "claude"}, "last_closed": None},
                      {"key": {"model": "gpt-4o"},
                       "last_closed": {"start": 0.0, "cost_usd": 12.5, "expected_usd": 1.25, "score": 0.97}}]}
    line = progress_line(spend, {"problems": ["partition 3 has 9 messages waiting and has not advanced for 130s"]})
    assert line.startswith("worker: 12,345 events counted, 678 buckets closed, 0 late, 2 dead letters; last gpt-4o "
                           "bucket judged: ")
    assert "$12.50 (expected $1.25, score 0.97)" in line
    assert line.endswith("; UNWELL: partition 3 has 9 messages waiting and has not advanced for 130s")


def test_progress_before_any_bucket_is_judged() -> None:
    assert progress_line({"counters": {}, "keys": []}, {"problems": []}) == (
        "worker: 0 events counted, 0 buckets closed, 0 late, 0 dead letters; no gpt-4o bucket judged yet")


class Running:
    returncode = None

    def poll(self) -> None:
        return None


class Exited:
    returncode = 3

    def poll(self) -> int:
        return 3


def worker_log(tmp_path: Path) -> Path:
    path = tmp_path / "worker.log"
    path.write_bytes(b"\x1b[?25lbanner\n" + b"".join(b"line %d\n" % i for i in range(40))
                     + b"[ERROR] Topic x-sent-changelog not found in cluster metadata\x1b[?25h\n")
    return path


async def test_a_worker_not_ready_says_what_healthz_said_and_the_end_of_its_log(tmp_path) -> None:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "starting", "problems": ["table recovery not complete after 130s"]},
                                 status=503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(WorkerNotReady) as raised:
            await wait_ready(f"http://127.0.0.1:{port}/healthz", Running(), worker_log(tmp_path), timeout=1.0)
    finally:
        await runner.cleanup()
    message = str(raised.value)
    assert isinstance(raised.value, SpendSentryError)  # the command line prints it as one error, no traceback
    assert "503" in message and "table recovery not complete after 130s" in message
    assert message.endswith("line 39\n[ERROR] Topic x-sent-changelog not found in cluster metadata")
    assert "line 20\n" not in message and "\x1b" not in message  # the last 20 lines, no control codes


async def test_a_worker_that_exited_says_so_with_the_end_of_its_log(tmp_path) -> None:
    with pytest.raises(WorkerNotReady, match=r"exited with code 3(.|\n)*line 39\n\[ERROR\] Topic x-sent"):
        await wait_ready("http://127.0.0.1:9/healthz", Exited(), worker_log(tmp_path), timeout=5.0)


def test_the_burst_starts_on_the_first_minute_boundary_after_the_delay() -> None:
    """Its first minute is whole, so it is judged when that minute closes; a burst starting at
    second 50 filled a sixth of its first minute and alerted only after the next (+92 s)."""
    # minute boundaries at 1e9 + 20, + 80, + 140 s
    assert burst_start(1_000_000_005.0, 45.0) == 1_000_000_080.0
    assert burst_start(1_000_000_035.0, 45.0) == 1_000_000_080.0  # exactly on one
    assert burst_start(1_000_000_036.0, 45.0) == 1_000_000_140.0
