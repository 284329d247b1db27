"""Incidents across keys and time: a flapping sparse key, a model swap across families, one alert
per cause across a model and its streams."""

from __future__ import annotations

import random

import orjson

from streams.core.engine import Engine, EngineConfig
from streams.core.pricing import PriceCatalogue

T0 = 1_795_392_000.0  # a Monday 00:00 UTC
DAY_MIN = 1440


def event(n: int, ts: float, model: str, service: str, requests: int) -> bytes:
    return orjson.dumps({"event_id": f"e{n}", "timestamp": ts, "provider": "openai", "model": model,
                         "service": service, "input_tokens": 1000 * requests, "output_tokens": 200 * requests,
                         "request_count": requests})


def run(rows: list[tuple[float, str, str, int]]) -> list:
    engine = Engine(EngineConfig(), PriceCatalogue.bundled())
    alerts = []
    for n, (ts, model, service, requests) in enumerate(sorted(rows)):
        engine.ingest(event(n, ts, model, service, requests))
        alerts += engine.drain_alerts()
    engine.flush()
    return alerts + engine.drain_alerts()


def firings(alerts: list) -> list:
    return [a for a in alerts if a.status == "firing" and "escalated_from" not in a.details]


def test_a_flapping_sparse_key_yields_one_incident() -> None:
    rng = random.Random(3)
    rows = []
    for minute in range(2 * DAY_MIN):  # a sparse key: one request every ~3 minutes
        if rng.random() < 0.3:
            rows.append((T0 + 60 * minute + 5, "gpt-4o", "chat", 1))
    start = 2 * DAY_MIN
    for minute in range(start, start + 120):  # two hours of on/off: 2 busy minutes in every 10
        if minute % 10 < 2:
            rows.append((T0 + 60 * minute + 5, "gpt-4o", "chat", 15))
        elif rng.random() < 0.3:
            rows.append((T0 + 60 * minute + 5, "gpt-4o", "chat", 1))
    for minute in range(start + 120, start + 300):
        if rng.random() < 0.3:
            rows.append((T0 + 60 * minute + 5, "gpt-4o", "chat", 1))
    alerts = [a for a in run(rows) if a.window_start >= T0 + 60 * start]
    fired = firings(alerts)
    assert len(fired) == 1, [(a.key, a.window_start, a.details.get("reopened")) for a in alerts]
    assert {a.alert_id for a in alerts} == {fired[0].alert_id}
    assert [a.status for a in alerts].count("resolved") == 1 and alerts[-1].status == "resolved"


def test_a_model_swap_is_one_alert_naming_both_models() -> None:
    rng = random.Random(5)
    rows = []
    swap = 2 * DAY_MIN
    for minute in range(swap + 120):
        ts = T0 + 60 * minute + 5
        rows.append((ts, "gpt-4o", "support", 20 + rng.randint(-3, 3)))
        busy = 200 + rng.randint(-20, 20)
        if minute < swap:
            rows.append((ts, "gpt-4o-mini", "search", busy))
        else:  # the search service moves most of its calls to the pricier sibling
            rows.append((ts, "gpt-4o-mini", "search", busy // 10))
            rows.append((ts, "gpt-4o", "search", busy - busy // 10))
    alerts = firings(a for a in run(rows) if a.window_start >= T0 + 60 * swap)
    assert len(alerts) == 1, [(a.key, a.summary) for a in alerts]
    alert = alerts[0]
    assert alert.key["model"] == "gpt-4o" and alert.details["moved_from"] == ["gpt-4o-mini"]
    assert "gpt-4o-mini" in alert.summary and "to gpt-4o" in alert.summary


def _three_services(burst: set[str], factor: int = 10) -> list:
    """Two days of three services on gpt-4o, then ten minutes in which ``burst`` send ``factor`` x."""
    rng = random.Random(11)
    rows = []
    start = 2 * DAY_MIN
    for minute in range(start + 30):
        ts = T0 + 60 * minute + 5
        for service, base in (("chat", 40), ("search", 30), ("summaries", 25)):
            n = base + rng.randint(-4, 4)
            rows.append((ts, "gpt-4o", service, n * factor if service in burst and start <= minute < start + 10 else n))
    return firings(a for a in run(rows) if a.window_start >= T0 + 60 * start)


def test_a_burst_on_one_stream_is_one_alert_naming_that_stream() -> None:
    alerts = _three_services({"search"})
    assert [a.key for a in alerts] == [{"model": "gpt-4o", "service": "search"}], [(a.key, a.summary) for a in alerts]


def test_a_burst_on_every_stream_of_a_model_is_one_alert_on_the_model_naming_them() -> None:
    alerts = _three_services({"chat", "search", "summaries"})
    assert [a.key for a in alerts] == [{"model": "gpt-4o"}], [(a.key, a.summary) for a in alerts]
    assert alerts[0].details["streams"] == ["chat", "search", "summaries"]
    assert "3 services rose together: chat, search, summaries" in alerts[0].summary


def test_a_storm_on_a_models_main_stream_alerts_from_inside_the_bucket_naming_that_stream() -> None:
    """The model's open bucket reaches the in-bucket threshold first (it counts the small stream's
    events too and is checked before its streams); the stream that carries the storm speaks."""
    rng = random.Random(13)
    rows = []
    start = 2 * DAY_MIN
    for minute in range(start + 30):
        ts = T0 + 60 * minute + 5
        rows.append((ts, "gpt-4o", "tiny", rng.randint(1, 3)))
        if start <= minute < start + 3:  # a 60x retry storm: 30 calls a minute of 80 requests each
            rows += [(ts + 1 + second, "gpt-4o", "chat", 80) for second in range(30)]
        else:
            rows.append((ts, "gpt-4o", "chat", 40 + rng.randint(-4, 4)))
    alerts = firings(a for a in run(rows) if a.window_start >= T0 + 60 * start)
    assert [a.key for a in alerts] == [{"model": "gpt-4o", "service": "chat"}], [(a.key, a.summary) for a in alerts]
    assert alerts[0].details["early"] is True


def test_streams_rising_together_speak_for_themselves_when_another_stream_already_told_its_story() -> None:
    """A small stream's incident is open and announced when three others rise with their model: the
    model stays silent (it would be a second story about the small stream), so the three speak."""
    rng = random.Random(17)
    rows = []
    start = 2 * DAY_MIN
    for minute in range(start + 30):
        ts = T0 + 60 * minute + 5
        tiny = rng.randint(2, 4) * (8 if start - 20 <= minute < start + 20 else 1)
        rows.append((ts, "gpt-4o", "tiny", tiny))
        for service, base in (("chat", 40), ("search", 30), ("summaries", 25)):
            n = base + rng.randint(-4, 4)
            rows.append((ts, "gpt-4o", service, n * 10 if start <= minute < start + 10 else n))
    alerts = firings(a for a in run(rows) if a.window_start >= T0 + 60 * (start - 20))
    assert [a.key.get("service") for a in alerts if a.window_start < T0 + 60 * start] == ["tiny"]
    later = sorted(a.key.get("service", "(model)") for a in alerts if a.window_start >= T0 + 60 * start)
    assert later == ["chat", "search", "summaries"], [(a.key, a.summary) for a in alerts]


def test_a_new_stream_starts_from_its_services_stream_on_another_model() -> None:
    engine = Engine(EngineConfig(), PriceCatalogue.bundled())
    rows = [(T0 + 60 * minute + 5, "gpt-4o-mini", "search", 50) for minute in range(120)]
    rows.append((T0 + 60 * 120 + 5, "gpt-4o", "search", 50))
    rows.append((T0 + 60 * 120 + 5, "gpt-4o", "chat", 50))  # a service with no other model
    for n, (ts, model, service, requests) in enumerate(rows):
        engine.ingest(event(n, ts, model, service, requests))
    engine.flush()
    streams = {k[1]: s for k, s in engine.keys.items() if k[0] == 1}
    assert streams[("gpt-4o", "search")].detector._n >= 100  # the copy (118 closed minutes) and its own
    assert streams[("gpt-4o", "chat")].detector._n == 1


def test_an_incident_on_a_stream_that_goes_silent_resolves() -> None:
    rows = []
    for minute in range(2 * DAY_MIN + 300):
        ts = T0 + 60 * minute + 5
        rows.append((ts, "gpt-4.1", "support", 20))  # keeps event time moving
        if minute < 2 * DAY_MIN:
            rows.append((ts, "gpt-4o-mini", "search", 200))
        elif minute < 2 * DAY_MIN + 60:  # an hour on the pricier model, then the service stops
            rows.append((ts, "gpt-4o", "search", 200))
    alerts = [a for a in run(rows) if a.key == {"model": "gpt-4o", "service": "search"}]
    assert [a.status for a in alerts if "escalated_from" not in a.details] == ["firing", "resolved"], alerts
    assert alerts[-1].window_end <= T0 + 60 * (2 * DAY_MIN + 60 + 90)


def test_a_second_swap_of_a_sparse_service_is_one_alert_naming_both_models() -> None:
    """The share of the service's requests on each model has its own band: the second swap (the
    pricier model's stream already has a history) pages like the first, and names both models."""
    rng = random.Random(7)
    rows = []
    swaps = [(2 * DAY_MIN, 2 * DAY_MIN + 120), (3 * DAY_MIN, 3 * DAY_MIN + 120)]
    for minute in range(3 * DAY_MIN + 180):
        ts = T0 + 60 * minute + 5
        rows.append((ts, "gpt-4.1", "support", 20 + rng.randint(-3, 3)))  # keeps event time moving
        for _ in range(sum(rng.random() < 0.5 for _ in range(4))):  # search: 2 requests a minute
            swapped = any(a <= minute < b for a, b in swaps) and rng.random() < 0.8
            rows.append((ts + rng.random() * 50, "gpt-4o" if swapped else "gpt-4o-mini", "search", 1))
    alerts = firings(a for a in run(rows) if a.window_start >= T0 + 60 * swaps[1][0] - 60)
    assert len(alerts) == 1, [(a.key, a.summary) for a in alerts]
    alert = alerts[0]
    assert alert.key == {"model": "gpt-4o", "service": "search"} and alert.details["moved_from"] == ["gpt-4o-mini"]
    assert "from gpt-4o-mini to gpt-4o" in alert.summary


def test_a_slow_drift_of_a_services_mix_does_not_alert() -> None:
    """A service that moves a growing part of its calls to the pricier sibling over two days (10 %
    -> 40 %) is a drift its share band follows, not a swap."""
    rng = random.Random(11)
    rows = []
    for minute in range(3 * DAY_MIN):
        ts = T0 + 60 * minute + 5
        share = 0.1 + 0.3 * max(0, minute - DAY_MIN) / (2 * DAY_MIN)
        for _ in range(10 + rng.randint(-2, 2)):
            rows.append((ts + rng.random() * 50, "gpt-4o" if rng.random() < share else "gpt-4o-mini", "search", 1))
    assert firings(a for a in run(rows) if a.window_start >= T0 + 60 * DAY_MIN) == []


def _restarted(engine: Engine, strip_price_mix: bool = False) -> Engine:
    """A new engine restored from ``engine``'s snapshots (optionally as written before the price mix)."""
    from streams.core import state_codec

    windows, models = engine.drain_dirty()
    blobs = []
    for _, blob in models:
        key, state = state_codec.loads(blob)
        if strip_price_mix and state[0] is not None and "price_mix" in vars(state[0]):
            del vars(state[0])["price_mix"]
        blobs.append(state_codec.dumps((key, state)))
    restored = Engine(EngineConfig(), PriceCatalogue.bundled())
    restored.restore(engine.meta(), [b for _, b in windows], blobs)
    return restored


def _one_model_service() -> tuple[Engine, int]:
    engine = Engine(EngineConfig(), PriceCatalogue.bundled())
    for n in range(300):
        engine.ingest(event(n, T0 + 60 * n + 5, "gpt-4o-mini", "search", 10))
    return engine, 300


def test_after_a_restart_a_new_sibling_still_starts_from_its_services_history() -> None:
    """The model -> provider map was not restored: until the cheap model's next event (none, in a
    full swap) the new pricier stream started a blank share tracker and could not see the swap."""
    engine, n = _one_model_service()
    engine = _restarted(engine)
    engine.ingest(event(n + 1, T0 + 60 * n + 5, "gpt-4o", "search", 10))
    mix = engine.keys[(1, ("gpt-4o", "search"))].detector.price_mix
    assert mix.n >= mix.warmup and mix.rest == mix.rest  # the service's history, its siblings' price


def test_streams_restored_from_state_before_the_price_mix_get_a_tracker() -> None:
    engine, _ = _one_model_service()
    engine = _restarted(engine, strip_price_mix=True)
    assert engine.keys[(1, ("gpt-4o-mini", "search"))].detector.price_mix is not None
    assert engine.keys[(0, ("gpt-4o-mini",))].detector.price_mix is None  # a model key has no price mix


def test_expected_feedback_on_a_stream_also_closes_its_models_silent_incident() -> None:
    """The stream's alert told the story for its model too: "expected" makes the new level normal on
    both, so neither key stays blind behind an incident nobody sees."""
    rng = random.Random(13)
    start = 2 * DAY_MIN
    rows = [(T0 + 60 * minute + 5, "gpt-4o", "chat", (40 + rng.randint(-4, 4)) * (5 if minute >= start else 1))
            for minute in range(start + 40)]
    engine = Engine(EngineConfig(), PriceCatalogue.bundled())
    alerts = []
    for n, row in enumerate(rows[:start + 4]):
        engine.ingest(event(n, *row))
        alerts += engine.drain_alerts()
    (firing,) = firings(alerts)
    assert firing.key == {"model": "gpt-4o", "service": "chat"}
    model = engine.keys[(0, ("gpt-4o",))]
    assert model.lifecycle.incident is not None and model.lifecycle.incident.silent
    feedback = {"__control__": "feedback", "action": "expected", "alert_id": firing.alert_id, "key": firing.key}
    assert engine.control(feedback, orjson.dumps(feedback)) == []
    (resolved,) = engine.drain_alerts()  # one resolution: the model's incident was never announced
    assert resolved.alert_id == firing.alert_id and resolved.status == "resolved"
    assert model.lifecycle.incident is None
    later = []
    for n, row in enumerate(rows[start + 4:], start=start + 4):
        engine.ingest(event(n, *row))
        later += engine.drain_alerts()
    assert firings(later) == [], [(a.key, a.summary) for a in later]


def test_a_new_stream_looks_at_a_bounded_number_of_its_services_streams() -> None:
    """Borrowing a baseline must cost a new key the same whatever the number of the service's
    streams (a scan of all of them made 100,000 models on one service quadratic)."""
    from streams.core import engine as engine_module

    engine = Engine(EngineConfig(), PriceCatalogue.bundled())
    rows = [(T0 + 60 * minute + 5, f"m{i}", "search", 5) for minute in range(40) for i in range(40)]
    for n, row in enumerate(rows):
        engine.ingest(event(n, *row))
    streams = engine._by_rest[(1, ("search",))]
    seen = []

    class Watched(list):
        def __iter__(self):
            for state in super().__iter__():
                seen.append(state)
                yield state

    engine._by_rest[(1, ("search",))] = Watched(streams)
    engine.ingest(event(len(rows), T0 + 60 * 40 + 5, "gpt-4o", "search", 5))
    assert len(streams) == 40 and 0 < len(seen) <= engine_module.BORROW_SCAN


def test_a_prompt_bloat_inside_a_runaway_loops_incident_is_an_alert_of_its_own() -> None:
    """One incident per cause: the loop's incident is open (requests x8) when the stream's prompts
    grow 4x; on-call hears of the bloat too, in an alert that names the loop's."""
    rng = random.Random(5)
    engine = Engine(EngineConfig(), PriceCatalogue.bundled())
    loop, bloat = 2 * DAY_MIN + 600, 2 * DAY_MIN + 640
    n = 0
    for minute in range(2 * DAY_MIN + 760):
        requests = 30 + rng.randint(-5, 5)
        if loop <= minute < loop + 150:
            requests *= 8
        for _ in range(requests // 10):
            size = 4.0 if minute >= bloat else 1.0
            n += 1
            engine.ingest(orjson.dumps({
                "event_id": f"e{n}", "timestamp": T0 + 60 * minute + rng.uniform(1, 59), "provider": "openai",
                "model": "gpt-4o", "service": "chat", "input_tokens": int(10 * 1000 * size * rng.uniform(0.5, 1.5)),
                "output_tokens": int(10 * 200 * rng.uniform(0.5, 1.5)), "request_count": 10}))
    engine.flush()
    alerts = [a for a in firings(engine.drain_alerts()) if a.window_start >= T0 + 60 * (loop - 5)]
    assert len(alerts) == 2, [(a.key, a.details.get("reason")) for a in alerts]
    first, second = alerts
    assert first.window_start < T0 + 60 * bloat <= second.window_start
    assert second.alert_id != first.alert_id and second.details["concurrent_with"] == first.alert_id
    assert "per request" in second.details["reason"], second.details["reason"]


def test_a_loop_on_a_stream_long_after_its_model_opened_an_incident_is_an_alert_of_its_own() -> None:
    """Two services of a model run at 3x for three hours (one alert, on the model); an hour and a
    half in, a third service loops at 10x: a new story, not part of the model's (tuning seed 45: a
    model's incident open for five hours swallowed a runaway loop on one of its services)."""
    rng = random.Random(23)
    rows = []
    start = 2 * DAY_MIN
    loop = start + 90
    for minute in range(start + 200):
        ts = T0 + 60 * minute + 5
        for service, base in (("chat", 40), ("search", 30), ("summaries", 25)):
            n = base + rng.randint(-4, 4)
            if service != "summaries" and start <= minute < start + 180:
                n *= 3
            elif service == "summaries" and loop <= minute < loop + 10:
                n *= 10
            rows.append((ts, "gpt-4o", service, n))
    alerts = firings(a for a in run(rows) if a.window_start >= T0 + 60 * start)
    assert [a.key for a in alerts] == [{"model": "gpt-4o"}, {"model": "gpt-4o", "service": "summaries"}], \
        [(a.key, a.window_start, a.summary) for a in alerts]
    assert alerts[1].window_start >= T0 + 60 * loop
