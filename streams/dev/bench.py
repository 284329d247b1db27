"""``spendsentry bench``: throughput ceilings, worker throughput, alert latency, backtest and memory.

Every figure comes from one run on one machine against the local broker (started or reused), so
the ratios are meaningful even on a shared machine. Stages:

1. **data**: usage events of about 300 bytes (``make_events``), keys = distinct models (all priced:
   dated snapshots of one catalogue model), event time advancing so buckets close.
2. **ceilings** on the same pre-produced messages: raw aiokafka ``getmany`` + ``orjson.loads``
   (one event per message, and 100 per message), and a bare Faust agent that only decodes
   (:mod:`streams.dev.bench_faust`, own process, own app id, web disabled).
3. **worker**: a real ``spendsentry worker`` process started on a topic already holding the
   events; its progress is read from its own ``meta`` table changelog (one record per partition
   and batch, carrying the last source offset, timestamped by the worker when it persisted), so
   the bench does not load the worker while measuring. Throughput = messages processed between
   the first and the last snapshot x events per message (sustained, as the ceilings are timed
   from the first message to the last). One event per message and 100 per message (arrays
   grouped by the partition of their key), with 1k and 100k keys; the batched 1k-key data set
   holds 1M events, so it lasts long enough to measure.
4. **alert latency**: a worker posting signed webhooks to :class:`alerts.receiver.WebhookReceiver`;
   35 minutes of history warm the burst keys, then live traffic runs at a fixed rate (event
   time = wall clock + a fixed skew of under a minute, chosen so the bursts start on a bucket
   boundary) and 30x bursts on distinct keys: latency = first burst event sent -> verified webhook
   received (the in-bucket fast path). Bursts that start 40 s into their minute are too late for
   the fast path and alert when the bucket closes: latency = the producer's event time passing
   bucket end + allowed lateness -> webhook.
5. **hostile keys**: a worker with default settings fed 200,000 events, each with its own garbage
   (unpriced) model and service name (a new key in both default families), then 1,000 ordinary
   events that must be counted too: its peak RSS
   (``rss_mb_garbage_keys``) and the events folded into ``__other__`` past ``SPENDSENTRY_MAX_KEYS``.
6. **backtest**: ``streams.cli.backtest.backtest`` over a pre-generated file in a child process
   (10k and 100k active keys); events/s and the child's peak RSS (``VmHWM``); and once more at
   10k keys with event time running at a large platform's rate (30k events/s), where a key
   closes a bucket every ~180 events instead of every 10; then the same events twice, timestamps
   as RFC 3339 strings and as epoch seconds (``ratio_ts``: what the producer's format costs).
   ``ratio_keys`` is the batched worker at 100k keys over 1k keys.

The last line is machine-readable (see :data:`SUMMARY_FIELDS`). Every topic the run creates
starts with one run token (``ssbench-<hex>``) and is deleted at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import orjson

PARTITIONS = 8
BATCH = 100
T0 = 1_790_000_000.0  # event time of the throughput data sets (2026-09-21, minute aligned)
SUMMARY_FIELDS = ("worker_eps", "worker_eps_single", "raw_eps", "faust_eps", "ratio_raw", "ratio_faust",
                  "alert_p50_s", "alert_p99_s", "backtest_eps", "rss_mb_100k_keys",
                  "worker_eps_100k", "ratio_keys", "backtest_eps_rfc3339", "backtest_eps_epoch", "ratio_ts",
                  "rss_mb_garbage_keys", "keys_folded")


@dataclass
class Options:
    events: int = 200_000
    #: events of the batched data sets at 1k keys (100 per message: 200k events are only 2,000
    #: messages, about a second of work, too short to measure a sustained rate)
    batched_events: int = 1_000_000
    keys_small: int = 1_000
    keys_large: int = 100_000
    batch: int = BATCH
    bursts: int = 10
    close_bursts: int = 5
    background_eps: float = 300.0
    backtest_events: int = 500_000
    backtest_keys: tuple[int, ...] = (10_000, 100_000)
    #: event-time rate of the extra backtest run at the first key count: a large platform's
    #: traffic (tens of thousands of events/s), where a key closes a bucket every ~180 events, not 10
    backtest_platform_eps: float = 30_000.0
    #: distinct garbage model and service names fed to a worker, and its ``SPENDSENTRY_MAX_KEYS`` (None: default)
    garbage_keys: int = 200_000
    garbage_max_keys: int | None = None
    #: seconds of live traffic before the bursts (history is processed meanwhile)
    lead_s: float = 12.0
    quick: bool = False
    bootstrap: str | None = None

    @classmethod
    def quick_options(cls, events: int | None = None) -> Options:
        return cls(events=events or 5_000, batched_events=events or 5_000, keys_small=200, keys_large=0, bursts=1, close_bursts=0,
                   background_eps=50.0, backtest_events=20_000, backtest_keys=(5_000,), lead_s=6.0, quick=True,
                   garbage_keys=2_000, garbage_max_keys=100)


@dataclass
class Results:
    lines: list[str] = field(default_factory=list)
    figures: dict[str, float | None] = field(default_factory=dict)

    started: float = field(default_factory=time.monotonic)

    def say(self, text: str) -> None:
        """Print a progress line, prefixed with the seconds since the run started."""
        text = f"[{time.monotonic() - self.started:5.1f}s] {text}"
        self.lines.append(text)
        print(text, flush=True)


# ------------------------------------------------------------------------------------ data
def model_name(k: int, base: str = "gpt-4o-mini") -> str:
    """A distinct, priced model name per key: a dated snapshot of ``base`` (the catalogue resolves it)."""
    return f"{base}-{20250000 + k:08d}"


def make_events(n: int, keys: int, seed: int = 1, t0: float = T0, per_key_interval_s: float = 6.0) -> list[dict]:
    """``n`` events of about 300 bytes over ``keys`` distinct models, every key active, in time order.

    Each key sees about one event per ``per_key_interval_s`` of event time, so buckets close as
    the data advances (1k keys: a minute per 10k events).
    """
    rng = random.Random(seed)
    step = per_key_interval_s / keys
    stride = 2_654_435_761 % keys or 1
    while math.gcd(stride, keys) != 1:
        stride += 1
    out = []
    for i in range(n):
        k = (i * stride) % keys
        inp = rng.randint(200, 4000)
        out.append({
            "event_id": f"b{seed}-{i:09d}", "timestamp": round(t0 + i * step, 3), "provider": "openai",
            "model": model_name(k), "input_tokens": inp, "cached_input_tokens": inp // 4,
            "output_tokens": rng.randint(50, 800), "operation": "chat", "service": "support-bot", "team": "cx",
            "environment": "prod", "pipeline_stage": "generate", "experiment": "baseline-a",
        })
    return out


def messages(events: list[dict], batch: int, partitions: int = PARTITIONS) -> list[tuple[int, bytes | None, bytes]]:
    """(partition, key, value) per message: one event each, or JSON arrays of up to ``batch``
    events that share a partition (every event of a model still lands on its model's partition)."""
    from streams.worker.consumer import key_partition

    if batch <= 1:
        out = []
        for event in events:
            key = event["model"].encode()
            out.append((key_partition(key, partitions), key, orjson.dumps(event)))
        return out
    by_partition: dict[int, list[dict]] = defaultdict(list)
    for event in events:
        by_partition[key_partition(event["model"].encode(), partitions)].append(event)
    out = []
    for partition, group in sorted(by_partition.items()):
        for i in range(0, len(group), batch):
            out.append((partition, None, orjson.dumps(group[i:i + batch])))
    return out


def batched_messages(n: int, keys: int, batch: int, seed: int, chunk: int = 100_000) -> list[tuple[int, bytes | None, bytes]]:
    """:func:`messages` of ``n`` events made ``chunk`` at a time (only the bytes are kept), event
    time running on from chunk to chunk."""
    out: list[tuple[int, bytes | None, bytes]] = []
    step = 6.0 / keys  # make_events' default interval per key, spread over the keys
    for first in range(0, n, chunk):
        size = min(chunk, n - first)
        out += messages(make_events(size, keys, seed=seed * 1000 + first // chunk, t0=T0 + first * step), batch)
    return out


# ------------------------------------------------------------------------------------ kafka helpers
async def create_topics(bootstrap: str, names: list[str], partitions: int = PARTITIONS) -> None:
    from streams.dev.localkafka import ensure_topics_async

    await ensure_topics_async(bootstrap, {name: partitions for name in names})


async def delete_topics(bootstrap: str, token: str) -> list[str]:
    """Delete every topic whose name starts with ``token`` (the run's topics and changelogs)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(token)]
        if doomed:
            await admin.delete_topics(doomed, timeout_ms=15000)
        return doomed
    finally:
        await admin.close()


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The end offset of every partition of ``topic``."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def produce(bootstrap: str, topic: str, msgs: list[tuple[int, bytes | None, bytes]]) -> float:
    """Send messages to explicit partitions; returns messages/s."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=512 * 1024, acks=1,
                                max_request_size=8 * 1024 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        futures = []
        for partition, key, value in msgs:
            futures.append(await producer.send(topic, value=value, key=key, partition=partition))
            if len(futures) >= 20_000:
                await asyncio.gather(*futures)
                futures = []
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(msgs) / max(time.perf_counter() - started, 1e-9)


async def raw_ceiling(bootstrap: str, topic: str, expected_messages: int, timeout: float = 120.0) -> dict[str, float]:
    """aiokafka ``getmany`` + ``orjson.loads``: events/s from the first batch received to the last."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None, max_partition_fetch_bytes=8 * 1024 * 1024,
                                fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    loads = orjson.loads
    n = events = 0
    first = last = 0.0
    deadline = time.monotonic() + timeout
    try:
        while n < expected_messages and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            for records in batches.values():
                if not first:
                    first = time.perf_counter()
                for record in records:
                    data = loads(record.value)
                    events += len(data) if type(data) is list else 1
                n += len(records)
            last = time.perf_counter()
    finally:
        await consumer.stop()
    seconds = max(last - first, 1e-9)
    return {"messages": n, "events": events, "seconds": seconds, "eps": events / seconds, "mps": n / seconds}


def faust_ceiling(bootstrap: str, topic: str, app_id: str, expected_messages: int, timeout: float = 300.0) -> dict:
    proc = subprocess.run([sys.executable, "-m", "streams.dev.bench_faust", bootstrap, topic, app_id, str(expected_messages)],
                          capture_output=True, timeout=timeout, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"bare Faust agent failed:\n{proc.stderr[-3000:]}")
    return orjson.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------ worker
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WorkerProcess:
    """A real ``spendsentry worker`` with its own topic prefix and app id."""

    def __init__(self, bootstrap: str, prefix: str, workdir: Path, **env: str) -> None:
        self.prefix = prefix
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{prefix}.log"
        self.env = {**os.environ, "SPENDSENTRY_BROKER": f"kafka://{bootstrap}", "SPENDSENTRY_TOPIC_PREFIX": prefix,
                    "SPENDSENTRY_APP_ID": prefix, "SPENDSENTRY_WEB_PORT": str(self.port),
                    "SPENDSENTRY_PARTITIONS": str(PARTITIONS), "SPENDSENTRY_DATA_DIR": str(workdir / prefix), **env}
        self.process: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "streams.cli.main", "worker", "-l", os.environ.get("SSBENCH_WORKER_LOG", "warn")], env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    async def ready(self, timeout: float = 90.0, interval: float = 0.2) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    raise RuntimeError(f"worker exited:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return
                await asyncio.sleep(interval)
        raise RuntimeError(f"worker not ready in {timeout}s:\n{self.log_tail()}")

    async def metric(self, name: str) -> float | None:
        import httpx

        async with httpx.AsyncClient(timeout=10.0) as client:
            text = (await client.get(f"{self.url}/metrics")).text
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def peak_rss_mb(self) -> float | None:
        if self.process is None:
            return None
        return _vm_hwm_mb(self.process.pid)

    def stop(self, sig: int = signal.SIGKILL) -> None:
        """Kill the worker (default SIGKILL: a clean Faust shutdown takes seconds and the run's
        consumer groups and topics are thrown away anyway)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-3000:]
        return ""


def _vm_hwm_mb(pid: int | str = "self") -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


async def worker_throughput(bootstrap: str, prefix: str, workdir: Path, msgs: list, events: int,
                            timeout: float = 600.0, keep: bool = False, worker: WorkerProcess | None = None,
                            **env: str) -> dict[str, Any]:
    """Pre-produce ``msgs`` to ``<prefix>.usage``, start a worker, follow its meta changelog.

    With ``worker`` (``--quick`` only: a worker cold start costs seconds per table), the running
    worker is fed instead: the time counts from the first message sent.
    """
    from aiokafka import AIOKafkaConsumer

    if worker is not None:
        prefix = worker.prefix
    usage = f"{prefix}.usage"
    await create_topics(bootstrap, [usage, f"{prefix}.alerts", f"{prefix}.deadletter"])
    ends_before = await end_offsets(bootstrap, usage)
    t_ready = time.time()
    await produce(bootstrap, usage, msgs)
    ends = await end_offsets(bootstrap, usage)
    total = len(msgs)
    if worker is None:
        worker = WorkerProcess(bootstrap, prefix, workdir, **env).start()
        await worker.ready(interval=0.05)
        t_ready = time.time()  # recovery done: the worker starts on the backlog now
    changelog = f"{prefix}-meta-changelog"
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
                                group_id=None, metadata_max_age_ms=500)
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        while changelog not in await consumer.topics():  # the worker creates it at start
            if time.monotonic() > deadline or worker.process.poll() is not None:
                raise RuntimeError(f"no {changelog}:\n{worker.log_tail()}")
            await asyncio.sleep(0.2)
        consumer.subscribe([changelog])
        offsets: dict[int, int] = {}
        progress: list[tuple[float, int]] = []  # (worker's snapshot time, messages processed)
        while True:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                for record in records:
                    if b"|" in record.key or record.value is None:
                        continue  # a delta or image chunk (or its tombstone), not a partition's meta record
                    partition = int(record.key)
                    offset = orjson.loads(record.value)["offset"]
                    if offset >= ends_before.get(partition, 0) and offset > offsets.get(partition, -1):
                        offsets[partition] = offset
                        progress.append((record.timestamp / 1000.0, sum(o + 1 - ends_before.get(p, 0)
                                                                         for p, o in offsets.items())))
            if all(offsets.get(p, -1) >= end - 1 for p, end in ends.items() if end > ends_before.get(p, 0)):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker processed {progress[-1][1] if progress else 0}/{total} messages "
                                   f"in {timeout}s:\n{worker.log_tail()}")
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker exited:\n{worker.log_tail()}")
        progress.sort()
        (t_first, n_first), (t_last, n_last) = progress[0], progress[-1]
        per_message = events / total
        done = progress[-1][0]
        # from ready to the snapshot that holds the last message (includes the first take window);
        # cross-check: between the first and the last snapshot (needs many batches to mean much)
        seconds = max(done - min(t_ready, t_first), 1e-3)
        between = (n_last - n_first) * per_message / max(t_last - t_first, 1e-3)
        counted = await worker.metric("spendsentry_events_total")
        # sustained = between snapshots, as the ceilings are timed from the first to the last message;
        # from ready only when too few snapshots (a tiny --quick run)
        sustained = between if len(progress) >= 5 and t_last > t_first else events / seconds
        result = {"messages": total, "events": events, "seconds": seconds, "snapshots": len(progress),
                  "eps": sustained, "eps_from_ready": events / seconds, "counted": counted,
                  "rss_mb": worker.peak_rss_mb(), "worker": worker if keep else None}
        return result
    finally:
        await consumer.stop()
        if not keep:
            worker.stop()


# ------------------------------------------------------------------------------------ hostile keys
def garbage_events(n: int, seed: int = 7, t0: float = T0) -> list[dict]:
    """``n`` events, each with its own garbage model and service name (random characters, 1-64
    long, never priced): a misconfigured client or an attacker inventing a key per event, in every
    default key family."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@ éß漢🙂"
    return [{"event_id": f"g{seed}-{i:09d}", "timestamp": round(t0 + i * 0.01, 3), "provider": "openai",
             "model": "".join(rng.choices(alphabet, k=rng.randint(1, 64))) + f"#{i}",
             "service": "".join(rng.choices(alphabet, k=rng.randint(1, 64))),
             "input_tokens": rng.randint(1, 4000), "output_tokens": rng.randint(1, 800)} for i in range(n)]


async def hostile_keys(bootstrap: str, prefix: str, workdir: Path, n: int, max_keys: int | None) -> dict[str, Any]:
    """A worker with default settings (``max_keys``: ``SPENDSENTRY_MAX_KEYS``, None for the default)
    fed ``n`` distinct garbage model and service names, 100 events per message; then 1,000 ordinary events
    must be counted too (alive and counting). Peak RSS, keys folded into ``__other__``."""
    env = {} if max_keys is None else {"SPENDSENTRY_MAX_KEYS": str(max_keys)}
    r = await worker_throughput(bootstrap, prefix, workdir, messages(garbage_events(n), BATCH), n, keep=True, **env)
    worker = r["worker"]
    try:
        folded = await worker.metric("spendsentry_keys_folded_total")
        usage = f"{prefix}.usage"
        await produce(bootstrap, usage, messages(make_events(1_000, 10, seed=9, t0=T0 + n * 0.01 + 60), BATCH))
        deadline = time.monotonic() + 120
        while (counted := await worker.metric("spendsentry_events_total") or 0) < n + 1_000:
            if time.monotonic() > deadline or worker.process.poll() is not None:
                raise RuntimeError(f"after {n:,} garbage keys the worker counted {counted:,.0f} of "
                                   f"{n + 1_000:,} events:\n{worker.log_tail()}")
            await asyncio.sleep(0.5)
        return {"eps": r["eps"], "counted": counted, "folded": folded, "rss_mb": worker.peak_rss_mb()}
    finally:
        worker.stop()


# ------------------------------------------------------------------------------------ alert latency
def _pricey(j: int) -> str:
    return model_name(j, "gpt-4o")  # $2.50 / $10 per 1M tokens: a warm key spends ~$2/min


def _live_event(rng: random.Random, model: str, ts: float, n: int) -> dict:
    inp = int(rng.lognormvariate(math.log(4000), 0.3))
    return {"event_id": f"live-{model}-{n}", "timestamp": round(ts, 3), "provider": "openai", "model": model,
            "input_tokens": inp, "cached_input_tokens": inp // 4, "output_tokens": int(rng.lognormvariate(math.log(800), 0.3)),
            # a service per model: one service on hundreds of models would make each new model's stream
            # start from that service's detector on another model and page as a move to a pricier one
            "service": f"svc-{model}", "team": "cx", "environment": "prod"}


async def alert_latency(bootstrap: str, prefix: str, workdir: Path, opts: Options, say: Callable[[str], None],
                        worker: WorkerProcess | None = None, receiver: Any = None) -> dict[str, Any]:
    """Warm burst keys with history, run background traffic, fire 30x bursts, time the webhooks."""
    from aiokafka import AIOKafkaProducer

    from alerts.receiver import WebhookReceiver
    from alerts.signing import generate_secret

    arrivals: dict[str, float] = {}

    def on_alert(alert: Any) -> None:
        if alert.status != "firing":
            return
        now = time.time()
        # alerts that reach the delivery agent together may be grouped: one webhook, its members listed
        for member in (alert.details or {}).get("members") or [{"key": alert.key}]:
            arrivals.setdefault(member.get("key", {}).get("model", ""), now)

    own_receiver = receiver is None
    if own_receiver:
        receiver = WebhookReceiver(generate_secret())
        await receiver.start()
    receiver.on_alert = on_alert
    own_worker = worker is None
    base_rate = 2.0  # events/s per burst key: ~$2.5/min expected
    fast_keys = [_pricey(j) for j in range(opts.bursts)]
    close_keys = [_pricey(1000 + j) for j in range(opts.close_bursts)]
    background_keys = [model_name(500_000 + j) for j in range(200)]
    lead, history_min = opts.lead_s, 35
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks=1, max_request_size=8 * 1024 * 1024)
    try:
        if own_worker:
            await create_topics(bootstrap, [f"{prefix}.usage", f"{prefix}.alerts", f"{prefix}.deadletter"])
            worker = WorkerProcess(bootstrap, prefix, workdir, **webhook_env(receiver)).start()
            await worker.ready()
        await producer.start()
        topic = f"{worker.prefix}.usage"
        # event time = wall + skew, so that the burst minute B starts `lead` seconds from now
        now = time.time()
        burst_minute = math.ceil((now + lead) / 60.0) * 60.0
        skew = burst_minute - (now + lead)
        live_start = now + skew
        rng = random.Random(11)
        history = []
        for key in fast_keys + close_keys:
            t = live_start - history_min * 60
            n = 0
            while t < live_start:
                t += rng.expovariate(base_rate)
                n += 1
                history.append(_live_event(rng, key, min(t, live_start - 0.001), -n))
        history.sort(key=lambda e: e["timestamp"])
        for partition, _, value in messages(history, opts.batch):
            await producer.send(topic, value=value, partition=partition)
        await producer.flush()
        bursts: dict[str, tuple[float, float]] = {}  # key -> (event-time start, end)
        for j, key in enumerate(fast_keys):
            bursts[key] = (burst_minute + 0.5 + 0.2 * j, burst_minute + 15.5 + 0.2 * j)
        for j, key in enumerate(close_keys):
            bursts[key] = (burst_minute + 40.0 + 0.2 * j, burst_minute + 60.0)
        first_sent: dict[str, float] = {}
        close_at = burst_minute + 60.0 + 10.0  # the burst minute closes once event time passes this
        close_wall: float | None = None
        end_evt = burst_minute + (80.0 if close_keys else 20.0)
        credit: dict[str, float] = defaultdict(float)
        counter = 0
        sent_background = 0
        tick = 0.05
        last = time.time()
        say(f"alert latency: {len(history):,} history events on {len(bursts)} burst keys; background "
            f"{opts.background_eps:.0f} ev/s; bursts start {burst_minute - skew - time.time():.0f}s from now")
        while True:
            wall = time.time()
            evt = wall + skew
            if evt >= close_at and close_wall is None:
                close_wall = wall
            if evt >= end_evt:
                break
            dt, last = wall - last, wall
            sends = []
            credit["__bg__"] += opts.background_eps * dt
            while credit["__bg__"] >= 1:
                credit["__bg__"] -= 1
                key = background_keys[rng.randrange(len(background_keys))]
                sends.append(_live_event(rng, key, evt, counter))
                counter += 1
                sent_background += 1
            for key, (start, stop) in bursts.items():
                rate = base_rate * (30.0 if start <= evt < stop else 1.0)
                credit[key] += rate * dt
                while credit[key] >= 1:
                    credit[key] -= 1
                    sends.append(_live_event(rng, key, evt, counter))
                    counter += 1
                    if start <= evt < stop and key not in first_sent:
                        first_sent[key] = wall
            for event in sends:
                await producer.send(topic, value=orjson.dumps(event), key=event["model"].encode())
            all_in = all(k in arrivals for k in bursts)
            if all_in and evt >= max(s for s, _ in bursts.values()) + 1:
                break
            await asyncio.sleep(tick)
        # wait (a little) for stragglers
        deadline = time.time() + 15
        while not all(k in arrivals for k in bursts) and time.time() < deadline:
            await asyncio.sleep(0.1)
        fast = sorted(arrivals[k] - first_sent[k] for k in fast_keys if k in arrivals and k in first_sent)
        close = sorted(arrivals[k] - close_wall for k in close_keys if k in arrivals and close_wall is not None)
        return {"fast": fast, "close": close, "missed": [k for k in bursts if k not in arrivals],
                "background_events": sent_background, "skew_s": skew, "rejected": receiver.rejected}
    finally:
        await producer.stop()
        if own_worker and worker is not None:
            worker.stop()
        if own_receiver:
            await receiver.stop()


def webhook_env(receiver: Any) -> dict[str, str]:
    """Worker settings that send signed webhooks to the local receiver (loopback allow-listed)."""
    return {"SPENDSENTRY_WEBHOOK_URLS": receiver.url, "SPENDSENTRY_WEBHOOK_SECRET": receiver.secret,
            "SPENDSENTRY_WEBHOOK_ALLOWLIST": "127.0.0.1"}


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


# ------------------------------------------------------------------------------------ backtest
def write_events_file(path: Path, n: int, keys: int, seed: int, per_key_interval_s: float = 6.0,
                      rfc3339: bool = False) -> None:
    """The events of :func:`make_events`, one per line; ``rfc3339``: timestamps as RFC 3339 strings
    with ``Z`` and milliseconds (the same instants), as many producers write them."""
    from schemas.alert import rfc3339 as as_text

    with open(path, "wb") as handle:
        for event in make_events(n, keys, seed=seed, per_key_interval_s=per_key_interval_s):
            if rfc3339:
                event["timestamp"] = as_text(round(event["timestamp"], 3))
            handle.write(orjson.dumps(event) + b"\n")


def backtest_child(path: str) -> dict[str, Any]:
    """In a fresh process: backtest a file; events/s, keys and peak RSS (VmHWM)."""
    import io

    from streams.cli.backtest import backtest
    from streams.config import Settings
    from streams.core.pricing import PriceCatalogue
    from streams.worker.gc_tuning import tune_gc
    from streams.producer import read_lines

    settings = Settings.from_env()
    pricer = PriceCatalogue.load(settings.prices_file)
    tune_gc()  # as `spendsentry backtest` does
    summary = backtest(read_lines(path), io.BytesIO(), settings.backtest_engine_config(), pricer, progress=io.StringIO())
    import resource

    return {"events": summary.events, "keys": summary.keys, "eps": summary.events_per_s, "seconds": summary.seconds,
            "alerts": sum(summary.alerts.values()), "rss_mb": _vm_hwm_mb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_backtest_child(path: Path, timeout: float = 600.0) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "streams.dev.bench", "--backtest-child", str(path)],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"backtest child failed:\n{proc.stderr[-3000:]}")
    return orjson.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------ the run
def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "nan"
    return f"{value:.{digits}f}"


def summary_line(figures: dict[str, float | None]) -> str:
    digits = {"ratio_raw": 3, "ratio_faust": 3, "alert_p50_s": 3, "alert_p99_s": 3, "rss_mb_100k_keys": 1,
              "ratio_keys": 3, "ratio_ts": 3, "rss_mb_garbage_keys": 1}
    return " ".join(f"{name}={_fmt(figures.get(name), digits.get(name, 0))}" for name in SUMMARY_FIELDS)


async def run_bench(opts: Options) -> Results:
    from streams.dev import localkafka

    res = Results()
    bootstrap = opts.bootstrap or await asyncio.to_thread(localkafka.up)
    token = f"ssbench-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    res.say(f"spendsentry bench: broker {bootstrap}, run {token}, {os.cpu_count()} CPUs, "
            f"{opts.events:,} events per data set{' (quick)' if opts.quick else ''}")
    fig = res.figures
    with tempfile.TemporaryDirectory(prefix="ssbench-") as tmp:
        workdir = Path(tmp)
        try:
            # -- data
            small = make_events(opts.events, opts.keys_small, seed=1)
            size = sum(len(orjson.dumps(e)) for e in small[:2000]) / min(2000, len(small))
            single = messages(small, 1)
            batched = batched_messages(opts.batched_events, opts.keys_small, opts.batch, seed=1)
            res.say(f"data: {len(small):,} events, {opts.keys_small:,} keys, {size:.0f} B/event, as {len(single):,} "
                    f"single messages; {opts.batched_events:,} events as {len(batched):,} batched ({opts.batch}/message)")
            # -- ceilings
            raw_topic, raw_batched_topic = f"{token}-raw-single", f"{token}-raw-batched"
            await create_topics(bootstrap, [raw_topic, raw_batched_topic])
            mps = await produce(bootstrap, raw_topic, single)
            await produce(bootstrap, raw_batched_topic, batched)
            res.say(f"producer (aiokafka send+gather, one event per message): {mps:,.0f} msg/s")
            raw = await raw_ceiling(bootstrap, raw_topic, len(single))
            raw_b = await raw_ceiling(bootstrap, raw_batched_topic, len(batched))
            fig["raw_eps"] = raw["eps"]
            res.say(f"ceiling raw aiokafka getmany+orjson, 1 event/msg:   {raw['eps']:>11,.0f} events/s")
            res.say(f"ceiling raw aiokafka getmany+orjson, {opts.batch} events/msg: {raw_b['eps']:>11,.0f} events/s "
                    f"({raw_b['mps']:,.0f} msg/s)")
            faust = await asyncio.to_thread(faust_ceiling, bootstrap, raw_topic, f"{token}-faust", len(single))
            fig["faust_eps"] = faust["eps"]
            res.say(f"ceiling bare Faust agent (decode only), 1 event/msg: {faust['eps']:>10,.0f} events/s")
            # -- worker throughput
            runs = [("single", 1, opts.keys_small, single, opts.events),
                    ("batched", opts.batch, opts.keys_small, batched, opts.batched_events)]
            if opts.keys_large:
                large = make_events(opts.events, opts.keys_large, seed=2)
                runs += [("single", 1, opts.keys_large, messages(large, 1), opts.events),
                         ("batched", opts.batch, opts.keys_large, messages(large, opts.batch), opts.events)]
                del large
            latency_worker = None
            receiver = None
            if opts.quick:  # one worker less: the last throughput worker also serves the latency stage
                from alerts.receiver import WebhookReceiver
                from alerts.signing import generate_secret

                receiver = WebhookReceiver(generate_secret())
                await receiver.start()
            if opts.quick:  # one worker fed the single, then the batched data (later event time, new ids)
                runs[1] = ("batched", opts.batch, opts.keys_small,
                           messages(make_events(opts.events, opts.keys_small, seed=5, t0=T0 + 86400), opts.batch),
                           opts.events)
            for i, (kind, per_msg, keys, msgs, n_events) in enumerate(runs):
                env = webhook_env(receiver) if receiver else {}
                r = await worker_throughput(bootstrap, f"{token}-w{i}", workdir, msgs, n_events, keep=opts.quick,
                                            worker=latency_worker, **env)
                if opts.quick:
                    latency_worker = r["worker"]
                name = f"worker_{kind}_{keys}"
                fig[name] = r["eps"]
                res.say(f"worker {kind:>7} ({per_msg:>3} events/msg, {keys:>7,} keys): {r['eps']:>9,.0f} events/s "
                        f"sustained (first to last of {r['snapshots']} snapshots; {r['eps_from_ready']:,.0f}/s over "
                        f"{r['seconds']:.2f}s from ready), {n_events:,} events, counted {_fmt(r['counted'])}, "
                        f"peak RSS {_fmt(r['rss_mb'])} MB")
            fig["worker_eps"] = fig.get(f"worker_batched_{opts.keys_small}")
            fig["worker_eps_single"] = fig.get(f"worker_single_{opts.keys_small}")
            fig["worker_eps_100k"] = fig.get(f"worker_batched_{opts.keys_large}")
            if fig["worker_eps_100k"] and fig["worker_eps"]:
                fig["ratio_keys"] = fig["worker_eps_100k"] / fig["worker_eps"]
            if fig["worker_eps"] and fig["raw_eps"]:
                fig["ratio_raw"] = fig["worker_eps"] / fig["raw_eps"]
            if fig["worker_eps_single"] and fig["faust_eps"]:
                fig["ratio_faust"] = fig["worker_eps_single"] / fig["faust_eps"]
            res.say(f"ratios: worker batched / raw = {_fmt(fig.get('ratio_raw'), 3)}; "
                    f"worker single / bare Faust = {_fmt(fig.get('ratio_faust'), 3)}")
            # -- alert latency
            try:
                lat = await alert_latency(bootstrap, f"{token}-lat", workdir, opts, res.say,
                                          worker=latency_worker, receiver=receiver)
            finally:
                if latency_worker is not None:
                    latency_worker.stop()
                if receiver is not None:
                    await receiver.stop()
            fast, close = lat["fast"], lat["close"]
            fig["alert_p50_s"], fig["alert_p99_s"] = percentile(fast, 50), percentile(fast, 99)
            res.say(f"alert latency, 30x burst first event -> signed webhook (fast path), n={len(fast)}: "
                    f"p50 {_fmt(percentile(fast, 50), 2)}s p95 {_fmt(percentile(fast, 95), 2)}s "
                    f"p99 {_fmt(percentile(fast, 99), 2)}s max {_fmt(max(fast) if fast else None, 2)}s")
            if opts.close_bursts:
                res.say(f"alert latency, bucket close -> signed webhook (detector at close), n={len(close)}: "
                        f"p50 {_fmt(percentile(close, 50), 2)}s p95 {_fmt(percentile(close, 95), 2)}s "
                        f"p99 {_fmt(percentile(close, 99), 2)}s")
            res.say(f"  ({lat['background_events']:,} background events during the run; producer clock skew "
                    f"{lat['skew_s']:.1f}s; missed {len(lat['missed'])}; bad signatures {lat['rejected']})")
            # -- hostile keys
            r = await hostile_keys(bootstrap, f"{token}-garbage", workdir, opts.garbage_keys, opts.garbage_max_keys)
            fig["rss_mb_garbage_keys"], fig["keys_folded"] = r["rss_mb"], r["folded"]
            res.say(f"worker fed {opts.garbage_keys:,} distinct garbage model and service names: {r['eps']:,.0f} events/s, "
                    f"{_fmt(r['folded'])} events folded into __other__, peak RSS {_fmt(r['rss_mb'])} MB; "
                    f"then counting ({_fmt(r['counted'])} events in all)")
            # -- backtest
            for keys in opts.backtest_keys:
                path = workdir / f"backtest-{keys}.jsonl"
                write_events_file(path, opts.backtest_events, keys, seed=3)
                r = await asyncio.to_thread(run_backtest_child, path)
                fig[f"backtest_eps_{keys}"], fig[f"rss_mb_{keys}"] = r["eps"], r["rss_mb"]
                res.say(f"backtest {r['events']:,} events, {r['keys']:>7,} active keys: {r['eps']:>9,.0f} events/s, "
                        f"peak RSS {r['rss_mb']:.0f} MB (child process VmHWM)")
                path.unlink()
            keys = opts.backtest_keys[0]
            path = workdir / "backtest-platform.jsonl"
            write_events_file(path, opts.backtest_events, keys, seed=3, per_key_interval_s=keys / opts.backtest_platform_eps)
            r = await asyncio.to_thread(run_backtest_child, path)
            fig["backtest_eps_platform"] = r["eps"]
            res.say(f"backtest {r['events']:,} events, {r['keys']:>7,} active keys at {opts.backtest_platform_eps:,.0f} "
                    f"events/s of event time: {r['eps']:>9,.0f} events/s")
            path.unlink()
            for fmt in ("rfc3339", "epoch"):  # the same events, timestamps in each format, back to back
                path = workdir / f"backtest-{fmt}.jsonl"
                write_events_file(path, opts.backtest_events, keys, seed=4, rfc3339=fmt == "rfc3339")
                r = await asyncio.to_thread(run_backtest_child, path)
                fig[f"backtest_eps_{fmt}"] = r["eps"]
                res.say(f"backtest {r['events']:,} events, {r['keys']:>7,} active keys, {fmt} timestamps: "
                        f"{r['eps']:>9,.0f} events/s")
                path.unlink()
            if fig["backtest_eps_rfc3339"] and fig["backtest_eps_epoch"]:
                fig["ratio_ts"] = fig["backtest_eps_rfc3339"] / fig["backtest_eps_epoch"]
            fig["backtest_eps"] = fig.get(f"backtest_eps_{opts.backtest_keys[0]}")
            fig["rss_mb_100k_keys"] = fig.get(f"rss_mb_{opts.backtest_keys[-1]}")
        finally:
            deleted = await delete_topics(bootstrap, token)
            res.say(f"cleanup: deleted {len(deleted)} topics starting with {token}; took {time.monotonic() - started:.0f}s in all")
    print(summary_line(fig), flush=True)  # the last line, machine-readable, unprefixed
    return res


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--backtest-child"]:
        print(orjson.dumps(backtest_child(argv[1])).decode(), flush=True)
        return 0
    import argparse

    parser = argparse.ArgumentParser(prog="spendsentry bench")
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_arguments(parser: Any) -> None:
    parser.add_argument("--events", type=int, default=None, help="events per data set (default 200,000; quick 5,000)")
    parser.add_argument("--quick", action="store_true", help="a tiny run (seconds): fewer events and keys, one burst")
    parser.add_argument("--bursts", type=int, default=None, help="30x bursts timed by the latency stage (default 10)")


def run(args: Any) -> int:
    import logging

    for name in ("aiokafka", "faust", "mode"):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("aiokafka.cluster").setLevel(logging.CRITICAL)  # "topic not found" while topics are new
    opts = Options.quick_options(args.events) if args.quick else Options()
    if not args.quick and args.events:
        opts.events = args.events
    if args.bursts:
        opts.bursts = args.bursts
    asyncio.run(run_bench(opts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
