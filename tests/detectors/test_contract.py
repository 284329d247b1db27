"""One contract every detector in detectors/ passes (found by scanning the package)."""

from __future__ import annotations

import copy
import importlib
import inspect
import pickle
import pkgutil
import random

import pytest

import detectors
from detectors.base import Detector, Verdict

T0 = 1_795_392_000.0  # a Monday 00:00 UTC


def implementations() -> list[type]:
    found = []
    for info in pkgutil.iter_modules(detectors.__path__):
        module = importlib.import_module(f"detectors.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and callable(getattr(cls, "score_one", None)) \
                    and callable(getattr(cls, "learn_one", None)) and isinstance(getattr(cls, "name", None), str):
                found.append(cls)
    return found


def stream(n: int, seed: int = 1, sparse: bool = False) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        req = float(rng.random() < 0.3) if sparse else float(rng.randint(20, 40))
        if i in (n - 20, n - 19):
            req *= 10
        out.append({"t": T0 + 60 * i, "cost": req * 0.01 * (0.5 + rng.random()), "requests": req,
                    "input_tokens": req * 1000, "output_tokens": req * 200, "cached_input_tokens": req * 300})
    return out


def run(det, xs) -> list[Verdict]:
    out = []
    for x in xs:
        out.append(det.score_one(x))
        det.learn_one(x)
    return out


CLASSES = implementations()


def test_every_known_detector_is_found() -> None:
    names = {c.__name__ for c in CLASSES}
    assert {"EWSpendDetector", "SeasonalSpendDetector", "HoltWintersSpendDetector", "SeasonalSeriesDetector",
            "LikelihoodSeriesDetector"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_contract(cls: type) -> None:
    assert (cls.__doc__ or "").strip(), "has a docstring"
    det = cls()
    assert isinstance(det, Detector)
    xs = stream(400)
    half = 200
    # x not mutated, score in [0, 1], verdict well-formed
    for x in xs[:half]:
        before = dict(x)
        v = det.score_one(x)
        det.learn_one(x)
        assert x == before
        assert isinstance(v, Verdict) and 0.0 <= v.score <= 1.0 and isinstance(v.expected, float)
    # score_one does not change state
    probe = xs[half]
    assert det.score_one(probe) == det.score_one(probe)
    # pickles to an equal-behaving object
    clone = pickle.loads(pickle.dumps(det))
    assert run(clone, xs[half:]) == run(det, xs[half:])
    # deterministic from scratch
    assert run(cls(), xs) == run(cls(), xs)
    # missing optional features (only t and cost), and sparse keys with empty buckets
    lean = cls()
    for x in stream(300, seed=2, sparse=True):
        v = lean.score_one({"t": x["t"], "cost": x["cost"]})
        lean.learn_one({"t": x["t"], "cost": x["cost"]})
        assert 0.0 <= v.score <= 1.0


#: one instance per series (``backtest --series``), never one per engine key: its long-run window
#: of 2,000 averaged scores is its state
PER_SERIES = {"LikelihoodSeriesDetector"}


@pytest.mark.parametrize("cls", [c for c in CLASSES if c.__name__ not in PER_SERIES], ids=lambda c: c.__name__)
def test_state_is_small(cls: type) -> None:
    det = cls()
    run(det, stream(3000))
    assert len(pickle.dumps(det)) < 10 * 1024
    copy.deepcopy(det)
