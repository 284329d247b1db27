"""``spendsentry demo``: the whole path on one machine, end to end.

Broker (reused or started) -> worker process -> signed webhook -> a local receiver that
verifies each signature and prints the alert. Traffic: a few hours of realistic history
replayed fast, then live traffic with a 10x cost burst on one model.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient

from alerts.receiver import WebhookReceiver
from alerts.signing import generate_secret
from schemas.alert import Alert
from schemas.errors import SpendSentryError
from streams.dev import localkafka
from streams.producer import UsageProducer
from streams.dev.traffic import Burst, TrafficGenerator

BURST_MODEL = "gpt-4o"
BURST_FACTOR = 10.0
BURST_SECONDS = 180.0
REPLAY_CHUNK_S = 5.0
#: while it waits for the alert, the demo says what the worker has done this often
PROGRESS_EVERY_S = 15.0
#: how long the worker may take to answer /healthz 200 (topic creation and table recovery take a
#: minute or more on a loaded machine: 120 s was not always enough)
READY_TIMEOUT_S = 300.0
LOG_TAIL_LINES = 20
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {text}", flush=True)


class WorkerNotReady(SpendSentryError):
    """The demo's worker exited or never became ready: the message says what it said and logged."""


async def wait_ready(url: str, worker: subprocess.Popen, log_path: Path, timeout: float = READY_TIMEOUT_S) -> None:
    """Wait until ``/healthz`` answers 200; else raise with what it said last and the worker's log tail."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise WorkerNotReady(f"worker exited with code {worker.returncode}; the end of its log "
                                   f"({log_path}):\n{log_tail(log_path)}")
            try:
                response = await client.get(url)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:1000]}"
            except httpx.HTTPError as exc:
                last = f"no answer ({type(exc).__name__})"
            await asyncio.sleep(0.5)
    raise WorkerNotReady(f"worker not ready after {timeout:.0f}s; {url} said: {last}; the end of its log "
                       f"({log_path}):\n{log_tail(log_path)}")


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a worker log, without its terminal control sequences."""
    try:
        text = ANSI.sub("", path.read_bytes().decode(errors="replace"))
    except OSError as exc:
        return f"(unreadable: {exc})"
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


def progress_line(spend: dict[str, Any], health: dict[str, Any], model: str = BURST_MODEL) -> str:
    """One line of what the worker has done: events counted, buckets closed, the last bucket of
    ``model`` it judged, and why it is unwell if it is (so a stalled demo says where)."""
    counters = spend.get("counters", {})
    line = (f"worker: {counters.get('events', 0):,} events counted, {counters.get('buckets_closed', 0):,} buckets "
            f"closed, {counters.get('late', 0):,} late, {counters.get('deadletters', 0):,} dead letters")
    key = next((k for k in spend.get("keys", []) if k.get("key") == {"model": model}), None)
    last = key and key.get("last_closed")
    if last:
        judged = time.strftime("%H:%M", time.localtime(last["start"]))
        line += (f"; last {model} bucket judged: {judged} ${last['cost_usd']:.2f} "
                 f"(expected ${last['expected_usd']:.2f}, score {last['score']:.2f})")
    else:
        line += f"; no {model} bucket judged yet"
    if health.get("problems"):
        line += f"; UNWELL: {'; '.join(health['problems'])}"
    return line


async def report_progress(base_url: str, every_s: float = PROGRESS_EVERY_S) -> None:
    """Print :func:`progress_line` every ``every_s`` until cancelled."""
    async with httpx.AsyncClient(base_url=base_url, timeout=5.0) as client:
        while True:
            await asyncio.sleep(every_s)
            try:
                spend = (await client.get("/v1/spend")).json()
                health = (await client.get("/healthz")).json()
            except (httpx.HTTPError, ValueError) as exc:
                say(f"worker: no answer from {base_url} ({type(exc).__name__})")
                continue
            say(progress_line(spend, health))


async def delete_topics(bootstrap: str, prefixes: tuple[str, ...]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def burst_start(now: float, after_s: float, bucket_s: float = 60.0) -> float:
    """The first bucket boundary at least ``after_s`` after ``now``.

    A burst that starts late in a minute fills only a sliver of that bucket, which is not yet
    anomalous, and is judged when the next one closes: up to two minutes after it started. On a
    boundary its first bucket is whole and the alert follows that bucket's close (a minute plus
    the allowed lateness), every run."""
    return math.ceil((now + after_s) / bucket_s) * bucket_s


async def run_demo(history_hours: float = 3.0, burst_after_s: float = 45.0, duration_s: float | None = None,
                   exit_after: str | None = None) -> int:
    started_broker = not localkafka.status()["running"]
    say("starting Kafka (reused if already running) ...")
    t0 = time.monotonic()
    bootstrap = await asyncio.to_thread(localkafka.up)
    say(f"Kafka ready at {bootstrap} ({time.monotonic() - t0:.1f}s)")

    run_id = f"demo-{int(time.time())}"
    prefix = f"spendsentry-{run_id}"
    secret = generate_secret()
    done = asyncio.Event()
    burst_started: list[float] = []

    def on_alert(alert: Alert) -> None:
        since = f" +{time.monotonic() - burst_started[0]:.0f}s after burst start" if burst_started else ""
        say(f"WEBHOOK (signature verified) {alert.status.upper()} {alert.severity} "
            f"[{alert.type}] {alert.summary}{since}")
        if alert.key.get("model") == BURST_MODEL and alert.status == exit_after:
            done.set()

    receiver = WebhookReceiver(secret, on_alert=on_alert)
    receiver_url = await receiver.start()
    port = free_port()
    data_dir = Path(".spendsentry") / run_id
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPENDSENTRY_BROKER": f"kafka://{bootstrap}",
        "SPENDSENTRY_WEBHOOK_URLS": receiver_url,
        "SPENDSENTRY_WEBHOOK_SECRET": secret,
        "SPENDSENTRY_TOPIC_PREFIX": prefix,
        "SPENDSENTRY_APP_ID": prefix,
        "SPENDSENTRY_WEB_PORT": str(port),
        "SPENDSENTRY_DATA_DIR": str(data_dir),
        "SPENDSENTRY_WEBHOOK_ALLOWLIST": "127.0.0.1",  # the demo's own receiver
    }
    log_path = data_dir / "worker.log"
    say(f"starting worker (web API http://127.0.0.1:{port}/v1/spend, log {log_path}) ...")
    with open(log_path, "wb") as log_file:
        worker = subprocess.Popen([sys.executable, "-m", "streams.cli.main", "worker", "-l", "warn"], env=env,
                                  stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    progress: asyncio.Task | None = None
    try:
        await wait_ready(f"http://127.0.0.1:{port}/healthz", worker, log_path)
        say(f"worker ready; webhook receiver at {receiver_url}")
        say(f"dashboard: http://127.0.0.1:{port}/ui/  (the burst shows there as it happens)")
        progress = asyncio.create_task(report_progress(f"http://127.0.0.1:{port}"))
        generator = TrafficGenerator(id_prefix=run_id)
        now = float(int(time.time()))
        async with UsageProducer(bootstrap, f"{prefix}.usage") as producer:
            say(f"replaying {history_hours:g}h of multi-model history ...")
            t = now - history_hours * 3600
            while t < now:
                end = min(t + REPLAY_CHUNK_S, now)
                await producer.send_events(generator.events(t, end), batch=100)
                t = end
            say(f"history sent: {producer.sent_events:,} events in {producer.sent_messages:,} messages; live traffic now")
            start = burst_start(now, burst_after_s)
            burst = Burst(BURST_MODEL, start, start + BURST_SECONDS, BURST_FACTOR)
            stop_at = None if duration_s is None else time.monotonic() + duration_s
            while not done.is_set() and (stop_at is None or time.monotonic() < stop_at):
                if t >= burst.start and not burst_started:
                    burst_started.append(time.monotonic())
                    say(f"injecting a {BURST_FACTOR:g}x cost burst on {BURST_MODEL} for {BURST_SECONDS:.0f}s")
                await producer.send_events(generator.second(t, (burst,)), batch=100)
                t += 1.0
                await asyncio.sleep(max(0.0, t - time.time()))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("stopping ...")
    finally:
        if progress is not None:
            progress.cancel()
        worker.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(worker.wait, 30)
        except subprocess.TimeoutExpired:
            worker.kill()
        await receiver.stop()
        await delete_topics(bootstrap, (prefix,))
        if started_broker:
            await asyncio.to_thread(localkafka.down)
        say(f"stopped: {len(receiver.received)} verified webhook(s), {receiver.rejected} rejected")
    return 0 if exit_after is None or done.is_set() else 1
