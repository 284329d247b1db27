"""The share of a service's requests on one model (``ModelShareCusum``): a swap, not a drift."""

from __future__ import annotations

from detectors.mix import ModelShareCusum
from streams.core import state_codec


def feed(mix: ModelShareCusum, share: float, n: float = 20.0, minutes: int = 1, price: float = 0.002,
         sibling_price: float = 0.002) -> float:
    """``minutes`` of ``n`` group requests, ``share`` of them on this model (cost per request ``price``)."""
    s = 0.0
    for _ in range(minutes):
        s, _ = mix.assess(share * n, n)
        mix.learn(share * n, share * n * price, n, share * n * price + (1 - share) * n * sibling_price, s)
    return s


def test_a_sibling_that_gains_most_calls_builds_evidence_and_state_round_trips() -> None:
    cheap = ModelShareCusum()
    feed(cheap, 1.0, minutes=120)
    pricey = ModelShareCusum.sibling_of(cheap)  # the service's history, at share 0
    assert feed(pricey, 0.8, minutes=10, price=0.01) >= pricey.h
    assert pricey.price_ratio(16, 0.16) > 4  # its requests cost 5x what the service's usually do
    restored = state_codec.loads(state_codec.dumps(pricey))
    assert vars(restored) == vars(pricey)


def test_a_model_the_service_mostly_uses_cannot_swap_and_a_slow_drift_is_learned() -> None:
    mostly = ModelShareCusum()
    feed(mostly, 0.9, minutes=120)
    assert feed(mostly, 1.0, minutes=30) == 0.0
    drifting = ModelShareCusum()
    feed(drifting, 0.1, minutes=120)
    assert max(feed(drifting, 0.1 + 0.3 * i / 2880) for i in range(2880)) < drifting.h
