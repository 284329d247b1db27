"""GPU collectors: dcgm-exporter ``/metrics`` scrapes and local NVML reads -> GPU usage events.

* :func:`parse_prometheus` parses the Prometheus text exposition format (what dcgm-exporter serves).
* :func:`dcgm_events` turns one scrape into :class:`schemas.gpu.GpuUsageEvent` records: one per
  GPU, or per MIG instance (``GPU_I_PROFILE``/``GPU_I_ID`` labels; ``1g.10gb`` on a 7-slice GPU is
  ``fraction = 1/7``). Utilization is ``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` (0..1) where exported,
  else ``DCGM_FI_DEV_GPU_UTIL / 100``. Both the ``Hostname`` label (dcgm-exporter <= 4.x) and
  ``hostname`` (renamed on main, May 2026) are read. When a GPU has MIG instance series, its
  whole-GPU series (if any) is dropped so the GPU is not billed twice.
* :func:`nvml_events` reads the local GPUs through NVML (``pip install spendsentry[gpu]``, i.e.
  ``nvidia-ml-py``; imported lazily). MIG instances are not broken out there: a MIG-enabled GPU
  counts as one whole GPU.

The Kafka loop (:func:`run_collector`) sends one JSON message per event to ``<prefix>.gpu``,
keyed ``cluster|node``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from schemas.errors import ConfigError, SchemaError
from schemas.gpu import GpuUsageEvent, validate_gpu

log = logging.getLogger(__name__)

__all__ = ["parse_price_per_hour", "Sample", "parse_prometheus", "dcgm_events", "nvml_events", "mig_fraction", "scrape_dcgm",
           "Attribution", "run_collector"]

MIB = 1024 * 1024
#: Compute slices of a MIG-capable GPU (A100, A30 has 4, H100, H200, B200: 7).
_MIG_SLICES = {"A30": 4}
_DEFAULT_SLICES = 7

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def _unescape(text: str) -> str:
    return text.replace("\\\\", "\0").replace('\\"', '"').replace("\\n", "\n").replace("\0", "\\")


def parse_prometheus(text: str) -> list[Sample]:
    """Samples of a Prometheus text-format exposition (comments and ``# HELP``/``# TYPE`` skipped).

    Raises :class:`SchemaError` naming the line for a line that is not a sample.
    """
    samples = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise SchemaError(f"metrics line {number}: not a Prometheus sample: {line[:120]!r}")
        name, label_text, value_text, _ts = match.groups()
        labels: dict[str, str] = {}
        if label_text:
            pos = 0
            while pos < len(label_text):
                lm = _LABEL.match(label_text, pos)
                if lm is None:
                    if label_text[pos:].strip(" ,") == "":
                        break
                    raise SchemaError(f"metrics line {number}: bad labels: {label_text[:120]!r}")
                labels[lm.group(1)] = _unescape(lm.group(2))
                pos = lm.end()
        try:
            value = float(value_text)
        except ValueError:
            raise SchemaError(f"metrics line {number}: bad value {value_text!r}") from None
        samples.append(Sample(name, labels, value))
    return samples


def mig_fraction(profile: str, gpu_model: str = "") -> float:
    """Share of the GPU a MIG profile holds: ``1g.10gb`` on a 7-slice GPU is 1/7, ``3g.40gb`` 3/7,
    ``7g.80gb`` 1. A compute-instance profile ``<C>c.<G>g.<M>gb`` holds C of the GPU instance's
    G slices (``1c.3g.40gb`` is 1/7). Media/extension suffixes (``1g.10gb+me``) are ignored."""
    match = re.match(r"^(?:(\d+)c\.)?(\d+)g\.", profile.strip())
    if match is None:
        raise SchemaError(f"MIG profile {profile!r}: expected <N>g.<M>gb or <C>c.<N>g.<M>gb")
    compute, gpu_slices = match.groups()
    slices = next((n for key, n in _MIG_SLICES.items() if key in gpu_model), _DEFAULT_SLICES)
    held = min(int(compute), int(gpu_slices)) if compute else int(gpu_slices)
    return min(1.0, held / slices)


def parse_price_per_hour(text: str) -> tuple[float | None, dict[str, float]]:
    """``--price-per-hour``: one USD price for every GPU (``2.5``), or one per GPU model
    (``H100=7,A100=3``; a model matches when its name contains the key, e.g. ``NVIDIA H100 80GB HBM3``),
    optionally with a default for the rest (``H100=7,2``). Raises :class:`ConfigError` naming the bad part."""
    default: float | None = None
    by_model: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, price_text = part.rpartition("=")
        try:
            price = float(price_text)
        except ValueError:
            price = math.nan
        if not math.isfinite(price) or price < 0:
            raise ConfigError(f"--price-per-hour {text!r}: {part!r}: the price must be a non-negative number of USD "
                              "per GPU-hour (e.g. 2.5, or H100=7,A100=3)")
        if sep and not name.strip():
            raise ConfigError(f"--price-per-hour {text!r}: {part!r}: name the GPU model before '='")
        if sep:
            by_model[name.strip()] = price
        elif default is not None:
            raise ConfigError(f"--price-per-hour {text!r}: give at most one price without a GPU model")
        else:
            default = price
    if default is None and not by_model:
        raise ConfigError(f"--price-per-hour {text!r}: give a price (e.g. 2.5, or H100=7,A100=3)")
    return default, by_model


@dataclass(frozen=True, slots=True)
class Attribution:
    """Options every collected event carries (``--cluster``, ``--team``, ``--price-per-hour``...)."""

    cluster: str = "default"
    team: str | None = None
    service: str | None = None
    model: str | None = None
    price_per_hour: float | None = None
    purchase_option: str = "on_demand"
    #: GPU model name part -> USD per GPU-hour (``--price-per-hour H100=7,A100=3``); the longest
    #: matching name wins, ``price_per_hour`` prices the rest
    prices_by_model: tuple[tuple[str, float], ...] = ()

    def price_for(self, gpu_model: str) -> float | None:
        """The hourly price of a GPU of ``gpu_model`` (case-insensitive name match)."""
        name = gpu_model.lower()
        matches = [(len(key), price) for key, price in self.prices_by_model if key.lower() in name]
        return max(matches)[1] if matches else self.price_per_hour


def _event_id(*parts: object) -> str:
    return "gpu_" + hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:24]


def dcgm_events(samples: Iterable[Sample], *, timestamp: float, interval_s: float,
                attribution: Attribution = Attribution()) -> list[GpuUsageEvent]:
    """One :class:`GpuUsageEvent` per GPU or MIG instance in a dcgm-exporter scrape."""
    series: dict[tuple[str, str, str], dict[str, Any]] = {}
    for sample in samples:
        if not sample.name.startswith("DCGM_FI_"):
            continue
        labels = sample.labels
        host = labels.get("Hostname") or labels.get("hostname") or ""
        gpu = labels.get("UUID") or labels.get("gpu") or labels.get("device") or ""
        instance = labels.get("GPU_I_ID", "")
        entry = series.setdefault((host, gpu, instance), {"labels": dict(labels), "metrics": {}})
        entry["metrics"][sample.name] = sample.value
    with_mig = {(host, gpu) for host, gpu, inst in series if inst != ""}
    events = []
    for (host, gpu, instance), entry in sorted(series.items()):
        if instance == "" and (host, gpu) in with_mig:
            continue  # the parent of MIG instances: billed through its slices
        labels, metrics = entry["labels"], entry["metrics"]
        if "DCGM_FI_PROF_GR_ENGINE_ACTIVE" in metrics:
            util = metrics["DCGM_FI_PROF_GR_ENGINE_ACTIVE"]
        elif "DCGM_FI_DEV_GPU_UTIL" in metrics:
            util = metrics["DCGM_FI_DEV_GPU_UTIL"] / 100.0
        else:
            continue  # no utilization metric for this series
        util = min(1.0, max(0.0, util)) if math.isfinite(util) else 0.0
        model_name = labels.get("modelName") or "unknown"
        profile = labels.get("GPU_I_PROFILE") or None
        try:
            fraction = mig_fraction(profile, model_name) if profile and instance != "" else 1.0
        except SchemaError as exc:
            log.warning("skipping GPU %s instance %s on %s: %s", gpu, instance, host or "unknown", exc)
            continue
        used = metrics.get("DCGM_FI_DEV_FB_USED")
        free = metrics.get("DCGM_FI_DEV_FB_FREE")
        reserved = metrics.get("DCGM_FI_DEV_FB_RESERVED", 0.0)
        tags = {k: labels[k] for k in ("pod", "namespace", "container") if labels.get(k)}
        if instance != "":
            tags["gpu_instance_id"] = instance
        if labels.get("pci_bus_id"):
            tags["pci_bus_id"] = labels["pci_bus_id"]
        gpu_index = labels.get("gpu")
        data: dict[str, Any] = {
            "event_id": _event_id(attribution.cluster, host, gpu, instance, timestamp),
            "timestamp": timestamp, "interval_s": interval_s, "cluster": attribution.cluster,
            "node": host or "unknown", "gpu_model": model_name, "gpu_count": 1, "fraction": fraction,
            "purchase_option": attribution.purchase_option, "hourly_price_usd": attribution.price_for(model_name),
            "utilization": util, "gpu_uuid": labels.get("UUID") or None,
            "gpu_index": int(gpu_index) if gpu_index and gpu_index.isdigit() else None,
            "mig_profile": profile if instance != "" else None,
            "team": attribution.team, "service": attribution.service, "model": attribution.model,
            "tags": tags or None,
        }
        if used is not None:
            data["memory_used_bytes"] = int(used * MIB)
            if free is not None:
                data["memory_total_bytes"] = int((used + free + reserved) * MIB)
        events.append(validate_gpu({k: v for k, v in data.items() if v is not None}))
    return events


def scrape_dcgm(url: str, timeout: float = 10.0) -> str:
    """The text of a dcgm-exporter ``/metrics`` endpoint."""
    import httpx

    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ConfigError(f"--dcgm-url {url}: cannot scrape: {exc}") from None
    if response.status_code != 200:
        raise ConfigError(f"--dcgm-url {url}: HTTP {response.status_code}")
    return response.text


def _load_nvml() -> Any:
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        raise ConfigError("NVML is not available: install the GPU extra (pip install 'spendsentry[gpu]', "
                          "i.e. nvidia-ml-py) on a GPU node, or scrape dcgm-exporter with --dcgm-url") from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise ConfigError(f"NVML could not start ({exc}): no NVIDIA driver on this machine? "
                          "Use --dcgm-url to scrape a dcgm-exporter instead") from None
    return pynvml


def nvml_events(*, timestamp: float, interval_s: float, attribution: Attribution = Attribution(),
                node: str | None = None, nvml: Any = None) -> list[GpuUsageEvent]:
    """One event per local GPU through NVML (``nvml`` is injectable for tests)."""
    nv = nvml or _load_nvml()
    host = node or socket.gethostname()
    events = []
    try:
        for index in range(nv.nvmlDeviceGetCount()):
            handle = nv.nvmlDeviceGetHandleByIndex(index)
            name = nv.nvmlDeviceGetName(handle)
            uuid = nv.nvmlDeviceGetUUID(handle)
            name = name.decode() if isinstance(name, bytes) else name
            uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
            util = nv.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0
            mem = nv.nvmlDeviceGetMemoryInfo(handle)
            events.append(validate_gpu({k: v for k, v in {
                "event_id": _event_id(attribution.cluster, host, uuid, "", timestamp),
                "timestamp": timestamp, "interval_s": interval_s, "cluster": attribution.cluster, "node": host,
                "gpu_model": name, "utilization": min(1.0, max(0.0, util)), "gpu_uuid": uuid, "gpu_index": index,
                "memory_used_bytes": int(mem.used), "memory_total_bytes": int(mem.total),
                "purchase_option": attribution.purchase_option, "hourly_price_usd": attribution.price_for(name),
                "team": attribution.team, "service": attribution.service, "model": attribution.model,
            }.items() if v is not None}))
    finally:
        if nvml is None:
            try:
                nv.nvmlShutdown()
            except Exception:  # noqa: BLE001 - shutting down is best effort
                pass
    return events


def collect_once(*, dcgm_url: str | None, interval_s: float, attribution: Attribution,
                 now: Callable[[], float] = time.time) -> list[GpuUsageEvent]:
    ts = now()
    if dcgm_url:
        return dcgm_events(parse_prometheus(scrape_dcgm(dcgm_url)), timestamp=ts, interval_s=interval_s,
                           attribution=attribution)
    return nvml_events(timestamp=ts, interval_s=interval_s, attribution=attribution)


async def run_collector(settings: Any, *, dcgm_url: str | None, interval_s: float, attribution: Attribution,
                        iterations: int | None = None) -> int:
    """Scrape every ``interval_s`` and send the events to ``<prefix>.gpu``; returns events sent."""
    import orjson
    from aiokafka import AIOKafkaProducer

    security = getattr(settings, "kafka_security", None)
    options = security.client_options() if security is not None else {}
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks=1, linger_ms=5, **options)
    topic = f"{settings.topic_prefix}.gpu"
    sent = 0
    await producer.start()
    try:
        done = 0
        while iterations is None or done < iterations:
            started = time.monotonic()
            events = await asyncio.to_thread(collect_once, dcgm_url=dcgm_url, interval_s=interval_s,
                                             attribution=attribution)
            futures = [await producer.send(topic, orjson.dumps(e.to_dict()), key=f"{e.cluster}|{e.node}".encode())
                       for e in events]
            await asyncio.gather(*futures)
            sent += len(events)
            done += 1
            if iterations is None or done < iterations:
                await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - started)))
    finally:
        await producer.stop()
    return sent
