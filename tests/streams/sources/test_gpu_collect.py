"""dcgm-exporter scrapes (both Hostname spellings, MIG) and NVML reads -> GPU usage events."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from schemas.errors import ConfigError, SchemaError
from schemas.gpu import validate_gpu
from streams.sources.gpu_collect import (Attribution, dcgm_events, mig_fraction, nvml_events, parse_price_per_hour,
                                          parse_prometheus)

# dcgm-exporter 4.x default counters on node 1 ("Hostname" label), a MIG-partitioned H100 and a
# plain one on node 2 (the "hostname" label of dcgm-exporter main).
DCGM_SAMPLE = """\
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-6f1d2c3e-0001",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-1",DCGM_FI_DRIVER_VERSION="550.54.15",container="vllm",namespace="inference",pod="vllm-0"} 87
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-6f1d2c3e-0002",pci_bus_id="00000000:2A:00.0",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-1",DCGM_FI_DRIVER_VERSION="550.54.15"} 0
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-aa00-0000",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",hostname="gpu-node-2",DCGM_FI_DRIVER_VERSION="570.124.06"} 12
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-aa00-0001",pci_bus_id="00000000:2A:00.0",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",hostname="gpu-node-2",DCGM_FI_DRIVER_VERSION="570.124.06"} 3
# HELP DCGM_FI_DEV_FB_FREE Framebuffer memory free (in MiB).
# TYPE DCGM_FI_DEV_FB_FREE gauge
DCGM_FI_DEV_FB_FREE{gpu="0",UUID="GPU-6f1d2c3e-0001",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-1",DCGM_FI_DRIVER_VERSION="550.54.15",container="vllm",namespace="inference",pod="vllm-0"} 4000
DCGM_FI_DEV_FB_FREE{gpu="1",UUID="GPU-6f1d2c3e-0002",pci_bus_id="00000000:2A:00.0",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-1",DCGM_FI_DRIVER_VERSION="550.54.15"} 81000
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-6f1d2c3e-0001",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-1",DCGM_FI_DRIVER_VERSION="550.54.15",container="vllm",namespace="inference",pod="vllm-0"} 77000
DCGM_FI_DEV_FB_USED{gpu="1",UUID="GPU-6f1d2c3e-0002",pci_bus_id="00000000:2A:00.0",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-1",DCGM_FI_DRIVER_VERSION="550.54.15"} 0
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-aa00-0000",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",GPU_I_PROFILE="1g.10gb",GPU_I_ID="9",hostname="gpu-node-2",DCGM_FI_DRIVER_VERSION="570.124.06",namespace="research",pod="nb-1"} 512
# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-6f1d2c3e-0001",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-1",DCGM_FI_DRIVER_VERSION="550.54.15",container="vllm",namespace="inference",pod="vllm-0"} 612.503
# HELP DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION Total energy consumption since boot (in mJ).
# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="0",UUID="GPU-6f1d2c3e-0001",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-1",DCGM_FI_DRIVER_VERSION="550.54.15",container="vllm",namespace="inference",pod="vllm-0"} 3.0129e+11
# HELP DCGM_FI_PROF_GR_ENGINE_ACTIVE Ratio of time the graphics engine is active.
# TYPE DCGM_FI_PROF_GR_ENGINE_ACTIVE gauge
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="0",UUID="GPU-6f1d2c3e-0001",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-1",DCGM_FI_DRIVER_VERSION="550.54.15",container="vllm",namespace="inference",pod="vllm-0"} 0.823411
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="1",UUID="GPU-6f1d2c3e-0002",pci_bus_id="00000000:2A:00.0",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-1",DCGM_FI_DRIVER_VERSION="550.54.15"} 0.000000
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="0",UUID="GPU-aa00-0000",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",GPU_I_PROFILE="1g.10gb",GPU_I_ID="9",hostname="gpu-node-2",DCGM_FI_DRIVER_VERSION="570.124.06",namespace="research",pod="nb-1"} 0.010000
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="0",UUID="GPU-aa00-0000",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",GPU_I_PROFILE="3g.40gb",GPU_I_ID="2",hostname="gpu-node-2",DCGM_FI_DRIVER_VERSION="570.124.06",namespace="inference",pod="tgi-2"} 0.500000
"""


def test_parse_prometheus_text() -> None:
    samples = parse_prometheus(DCGM_SAMPLE)
    assert len(samples) == 15
    first = samples[0]
    assert first.name == "DCGM_FI_DEV_GPU_UTIL" and first.value == 87.0
    assert first.labels["Hostname"] == "gpu-node-1" and first.labels["modelName"] == "NVIDIA H100 80GB HBM3"
    energy = [s for s in samples if s.name == "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"][0]
    assert energy.value == 3.0129e11
    escaped = parse_prometheus('m{a="x\\"y",b="1"} 2 1700000000000\n')
    assert escaped[0].labels == {"a": 'x"y', "b": "1"} and escaped[0].value == 2.0
    with pytest.raises(SchemaError, match="line 1"):
        parse_prometheus("this is not a metric line at all{\n")


def test_dcgm_events_per_gpu_and_mig_slice() -> None:
    """GR_ENGINE_ACTIVE wins over GPU_UTIL; MIG slices count by their share; both hostname spellings."""
    attribution = Attribution(cluster="c1", team="ml", price_per_hour=7.0, purchase_option="reserved")
    events = dcgm_events(parse_prometheus(DCGM_SAMPLE), timestamp=1_795_759_200.0, interval_s=60.0,
                         attribution=attribution)
    by = {(e.node, e.gpu_index, e.mig_profile): e for e in events}
    assert set(by) == {("gpu-node-1", 0, None), ("gpu-node-1", 1, None), ("gpu-node-2", 0, "1g.10gb"),
                       ("gpu-node-2", 0, "3g.40gb"), ("gpu-node-2", 1, None)}  # node-2 GPU 0 parent dropped
    busy = by[("gpu-node-1", 0, None)]
    assert busy.utilization == pytest.approx(0.823411)
    assert busy.memory_used_bytes == 77000 * 1024 * 1024 and busy.memory_total_bytes == 81000 * 1024 * 1024
    assert busy.tags == {"pod": "vllm-0", "namespace": "inference", "container": "vllm", "pci_bus_id": "00000000:18:00.0"}
    assert by[("gpu-node-1", 1, None)].utilization == 0.0
    small = by[("gpu-node-2", 0, "1g.10gb")]
    assert small.fraction == pytest.approx(1 / 7) and small.utilization == pytest.approx(0.01)
    assert small.tags["gpu_instance_id"] == "9" and small.tags["namespace"] == "research"
    assert by[("gpu-node-2", 0, "3g.40gb")].fraction == pytest.approx(3 / 7)
    assert by[("gpu-node-2", 1, None)].utilization == pytest.approx(0.03)  # no PROF metric: GPU_UTIL / 100
    # $7/h per whole GPU for 60 s: a 1g.10gb slice costs 7/7/60 = $0.01666...
    assert small.cost_usd == pytest.approx(7.0 / 7 / 60)
    assert all(e.purchase_option == "reserved" and e.team == "ml" and e.cluster == "c1" for e in events)
    # the wire form round-trips through validation
    assert validate_gpu(json.loads(json.dumps(small.to_dict()))) == small


def test_mig_fraction() -> None:
    assert mig_fraction("1g.10gb", "NVIDIA H100 80GB HBM3") == pytest.approx(1 / 7)
    assert mig_fraction("2g.20gb+me", "NVIDIA A100-SXM4-80GB") == pytest.approx(2 / 7)
    assert mig_fraction("7g.80gb") == 1.0
    assert mig_fraction("1g.6gb", "NVIDIA A30") == 0.25
    with pytest.raises(SchemaError):
        mig_fraction("all")


def test_nvml_events_with_a_fake_nvml() -> None:
    fake = SimpleNamespace(
        nvmlDeviceGetCount=lambda: 1, nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda h: b"NVIDIA L4", nvmlDeviceGetUUID=lambda h: "GPU-l4-0",
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=42, memory=10),
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(used=1 << 30, total=24 << 30, free=23 << 30),
    )
    [event] = nvml_events(timestamp=1_795_759_200.0, interval_s=30.0, node="n1", nvml=fake,
                          attribution=Attribution(price_per_hour=0.8))
    assert (event.gpu_model, event.utilization, event.gpu_uuid, event.node) == ("NVIDIA L4", 0.42, "GPU-l4-0", "n1")
    assert event.memory_total_bytes == 24 << 30


def test_nvml_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_pynvml(name, *args, **kwargs):
        if name == "pynvml":
            raise ImportError("no pynvml")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pynvml)
    with pytest.raises(ConfigError, match="nvidia-ml-py"):
        nvml_events(timestamp=1_795_759_200.0, interval_s=30.0)


def test_collect_gpu_once_stdout_from_dcgm(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from streams.cli import main as cli
    from streams.sources import gpu_collect

    monkeypatch.setattr(gpu_collect, "scrape_dcgm", lambda url, timeout=10.0: DCGM_SAMPLE)
    code = cli.main(["collect-gpu", "--dcgm-url", "http://n1:9400/metrics", "--once", "--stdout",
                     "--cluster", "c1", "--team", "ml", "--price-per-hour", "7", "--purchase-option", "spot"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and len(lines) == 5
    assert {line["purchase_option"] for line in lines} == {"spot"}


MIG_SCRAPE = """\
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="0",UUID="GPU-m0",modelName="NVIDIA H100 80GB HBM3",GPU_I_PROFILE="1c.3g.40gb",GPU_I_ID="2",Hostname="n1"} 0.5
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="0",UUID="GPU-m0",modelName="NVIDIA H100 80GB HBM3",GPU_I_PROFILE="weird",GPU_I_ID="3",Hostname="n1"} 0.5
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="1",UUID="GPU-a1",modelName="NVIDIA A100-SXM4-80GB",Hostname="n1"} 0.2
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="2",UUID="GPU-l2",modelName="NVIDIA L4",Hostname="n1"} 0.2
"""


def test_a_compute_instance_profile_does_not_abort_the_scrape() -> None:
    """``1c.3g.40gb`` (a compute instance in a 3g GPU instance) is 1/7 of the GPU; a profile that
    cannot be read skips only its own series, the rest of the node is still collected."""
    assert mig_fraction("1c.3g.40gb", "NVIDIA H100") == pytest.approx(1 / 7)
    assert mig_fraction("2c.4g.40gb", "NVIDIA A30") == pytest.approx(2 / 4)
    events = dcgm_events(parse_prometheus(MIG_SCRAPE), timestamp=1_795_759_200.0, interval_s=60.0)
    assert [(e.gpu_uuid, e.mig_profile) for e in events] == [("GPU-a1", None), ("GPU-l2", None),
                                                             ("GPU-m0", "1c.3g.40gb")]


def test_price_per_hour_per_gpu_model() -> None:
    """``--price-per-hour H100=7,A100=3,0.8``: each GPU model its own price, a default for the rest."""
    default, by_model = parse_price_per_hour("H100=7, A100=3, 0.8")
    assert (default, by_model) == (0.8, {"H100": 7.0, "A100": 3.0})
    assert parse_price_per_hour("2.5") == (2.5, {})
    attribution = Attribution(price_per_hour=default, prices_by_model=tuple(by_model.items()))
    events = dcgm_events(parse_prometheus(MIG_SCRAPE), timestamp=1_795_759_200.0, interval_s=3600.0,
                         attribution=attribution)
    assert {e.gpu_uuid: e.hourly_price_usd for e in events} == {"GPU-a1": 3.0, "GPU-l2": 0.8, "GPU-m0": 7.0}
    with pytest.raises(ConfigError, match="H100=x"):
        parse_price_per_hour("H100=x")
