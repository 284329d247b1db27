"""State records (streams/core/state_codec.py): exact round trips, never pickle, hostile bytes skipped."""

from __future__ import annotations

import pickle

import msgspec
import orjson
import pytest

from detectors.burn_rate import BudgetTracker
from schemas.budget import validate_budget
from streams.core import state_codec
from streams.core.buckets import Bucket
from streams.core.engine import Engine, EngineConfig
from streams.core.gpu_ledger import GpuLedger
from tests.detectors.test_contract import CLASSES, run as run_detector, stream
from tests.streams.core.test_engine import FlatPricer, run, traffic
from tests.streams.core.test_gpu_ledger import gpu

T0 = 1_795_392_000.0
EXECUTED: list[str] = []


class Payload:
    """What an attacker would write: unpickling it calls ``EXECUTED.append``."""

    def __reduce__(self) -> tuple:
        return (EXECUTED.append, ("ran",))


def spend(engine: Engine) -> list[dict]:
    return sorted(engine.spend(), key=lambda row: str(row["key"]))


def round_trip(value: object) -> object:
    blob = state_codec.dumps(value)
    assert blob[:3] == state_codec.HEADER and blob[0] != 0x80
    back = state_codec.loads(blob)
    assert state_codec.dumps(back) == blob  # exact: the restored value re-encodes to the same bytes
    return back


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_detector_round_trips_exactly(cls: type) -> None:
    det, xs = cls(), stream(400)
    run_detector(det, xs[:200])
    clone = round_trip(det)
    assert type(clone) is cls
    assert run_detector(clone, xs[200:]) == run_detector(det, xs[200:])


def test_engine_snapshots_restore_exactly_and_never_pickle() -> None:
    events = list(traffic(50, burst_model="gpt-4o", burst_from=40))
    engine = Engine(EngineConfig(), FlatPricer())
    run(engine, events[: len(events) // 2])
    windows, models = engine.drain_dirty()
    assert windows and models
    assert all(blob.startswith(state_codec.HEADER) for _, blob in windows + models)
    restored = Engine(EngineConfig(), FlatPricer())
    restored.restore(orjson.loads(orjson.dumps(engine.meta())), [b for _, b in windows], [b for _, b in models])
    assert spend(restored) == spend(engine)
    rest = events[len(events) // 2:]
    assert run(restored, rest) == run(engine, rest)
    assert spend(restored) == spend(engine)


def test_budget_tracker_and_gpu_ledger_round_trip() -> None:
    budget = validate_budget({"name": "gpt-4o monthly", "match": {"model": "gpt-4o"}, "period": "month",
                              "amount_usd": 100.0})
    tracker = BudgetTracker(budget)
    for minute in range(10):
        tracker.add(T0 + 60 * minute + 30, 5.0)
        tracker.close_minute(T0 + 60 * minute)
    assert round_trip((7, tracker))[1].state() == tracker.state()
    ledger = GpuLedger()
    for i in range(30):
        ledger.observe(gpu(i, T0 + 60 * i, 0.01))
    assert isinstance(round_trip(ledger), GpuLedger)


HOSTILE = {
    "pickle": pickle.dumps(Payload()),
    "pickle of a tuple": pickle.dumps(({"model": "gpt-4o"}, ())),
    "garbage": b"\x00\xff garbage",
    "empty": b"",
    "header, then garbage": state_codec.HEADER + b"\xc1\xc1",
    "a future version": b"SS\x02" + state_codec.dumps(1)[3:],
}
def nested(depth: int) -> list:
    tree: list = ["l", 1]
    for _ in range(depth):
        tree = ["l", tree]
    return tree


TREES = {
    "os.system": ["o", "os:system"],
    "a class outside the allow list": ["o", "subprocess:Popen", "args", "true"],
    "builtins eval": ["o", "builtins:eval"],
    "a class imported into an allowed module": ["o", "detectors.burn_rate:datetime"],
    "a dunder path": ["o", "detectors.base:Verdict.__init__"],
    "a dunder attribute": ["o", "detectors.base:Verdict", "__class__", 1],
    "unknown tag": ["x", 1],
    "unhashable key": ["d", ["l", 1], 2],
    "River statistic of the wrong size": ["r", "RsEWMean", ["l", 0.5], b"\x00"],
    "River statistic with object arguments": ["r", "RsEWMean", ["l", ["o", "os:system"]], b""],
    "too deep": nested(100),
}


@pytest.mark.parametrize("name", list(HOSTILE) + list(TREES))
def test_hostile_records_are_refused_never_executed(name: str) -> None:
    blob = HOSTILE[name] if name in HOSTILE else state_codec.HEADER + msgspec.msgpack.encode(TREES[name])
    with pytest.raises(state_codec.StateDecodeError):
        state_codec.loads(blob)
    assert EXECUTED == []


def test_engine_restore_skips_and_counts_hostile_snapshots(caplog: pytest.LogCaptureFixture) -> None:
    engine = Engine(EngineConfig(), FlatPricer())
    run(engine, traffic(3))
    windows, models = engine.drain_dirty()
    before = dict(state_codec.SKIPPED)
    bad = [HOSTILE["pickle"], HOSTILE["garbage"], state_codec.dumps("not a snapshot")]
    restored = Engine(EngineConfig(), FlatPricer())
    restored.restore(engine.meta(), bad + [b for _, b in windows], bad + [b for _, b in models])
    assert EXECUTED == []
    assert spend(restored) == spend(engine)
    assert state_codec.SKIPPED["window"] - before.get("window", 0) == 3
    assert state_codec.SKIPPED["model"] - before.get("model", 0) == 3
    assert "starts fresh" in caplog.text


def test_window_records_are_the_generic_encoding_of_the_window_state() -> None:
    key = {"model": "gpt-4o", "service": "bot"}
    state = ({60.0: Bucket(60.0, 1.5, 2, 3, 10, 20, 5, 1, {9, 3, 2**63}), 120.0: Bucket(120.0)}, 1.5, 3, 1, 0)
    assert state_codec.dumps_window(key, *state) == state_codec.dumps((key, state))
    assert state_codec.loads(state_codec.dumps_window(key, *state)) == (key, state)


def test_batches_of_records_round_trip_and_refuse_any_other_shape() -> None:
    windows, models = [("model=a", b"SS\x01w")], [("model=a", b"SS\x01m"), ("model=b", b"")]
    assert state_codec.loads_entries(state_codec.dumps_entries(windows, models)) == (windows, models)
    for bad in (state_codec.dumps((windows, models)), state_codec.ENTRIES_HEADER + b"\x92\x91\x01\x90", b"SE"):
        with pytest.raises(state_codec.StateDecodeError):
            state_codec.loads_entries(bad)
