"""Price catalogue: bundled data, (provider, model) resolution, per-event cost, operator overrides."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from schemas.errors import ConfigError
from schemas.usage import UsageEvent
from streams.core.pricing import ModelPrice, PriceCatalogue, canonical_provider


@pytest.fixture(scope="module")
def cat() -> PriceCatalogue:
    return PriceCatalogue.bundled()


def event(provider: str, model: str, **tokens: int) -> UsageEvent:
    return UsageEvent("evt-1", 1_767_225_600.0, provider, model, **tokens)


def write(tmp_path: Path, data: object, name: str = "prices.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


# -- bundled catalogue ----------------------------------------------------------------------------

def test_bundled_catalogue_is_dated_and_covers_five_providers(cat: PriceCatalogue) -> None:
    date.fromisoformat(cat.as_of)
    assert "LiteLLM" in cat.source
    assert len(cat) >= 40
    families = Counter()
    for key in cat.keys():
        provider = cat.get(key).provider
        family = {"bedrock_converse": "bedrock", "vertex_ai-language-models": "google", "vertex_ai": "google",
                  "gemini": "google"}.get(provider, provider)
        families[family] += 1
    for family in ("openai", "anthropic", "google", "bedrock", "azure"):
        assert families[family] >= 8, families
    # every bundled entry has a date and sane per-token prices
    for key in cat.keys():
        price = cat.get(key)
        assert price.effective_from == cat.as_of
        assert 0 < price.input < 1e-3 and 0 <= price.output < 1e-3, key


def test_bundled_file_is_litellm_format() -> None:
    path = Path(__file__).resolve().parents[3] / "streams" / "core" / "prices" / "catalogue.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    meta = data.pop("_spendsentry")
    assert meta["as_of"] and meta["source"]
    for key, entry in data.items():
        assert {"litellm_provider", "mode", "input_cost_per_token", "output_cost_per_token"} <= entry.keys(), key


def test_known_prices_match_litellm(cat: PriceCatalogue) -> None:
    gpt4o = cat.get("gpt-4o")
    assert (gpt4o.input, gpt4o.output, gpt4o.cache_read) == (2.5e-06, 1e-05, 1.25e-06)
    sonnet = cat.get("claude-sonnet-4-5")
    assert (sonnet.input, sonnet.output, sonnet.cache_read, sonnet.cache_write) == (3e-06, 1.5e-05, 3e-07, 3.75e-06)


# -- cost -----------------------------------------------------------------------------------------

def test_openai_cost_with_cached_input(cat: PriceCatalogue) -> None:
    # 1M input of which 200k cached reads, 500k output, gpt-4o:
    # 800k * 2.5e-6 + 200k * 1.25e-6 + 500k * 1e-5 = 2.00 + 0.25 + 5.00
    ev = event("openai", "gpt-4o", input_tokens=1_000_000, cached_input_tokens=200_000, output_tokens=500_000)
    assert cat.cost(ev) == pytest.approx(7.25)


def test_anthropic_cache_write_and_read(cat: PriceCatalogue) -> None:
    # claude-sonnet-4-5: in 3e-6, cache read 3e-7, cache write 3.75e-6, out 1.5e-5.
    # 100k input = 20k plain + 60k cache reads + 20k cache writes; 10k output:
    # 20k*3e-6 + 60k*3e-7 + 20k*3.75e-6 + 10k*1.5e-5 = 0.06 + 0.018 + 0.075 + 0.15
    ev = event("anthropic", "claude-sonnet-4-5-20250929", input_tokens=100_000, cached_input_tokens=60_000,
               cache_creation_input_tokens=20_000, output_tokens=10_000)
    assert cat.cost(ev) == pytest.approx(0.303)


def test_reasoning_tokens_default_to_output_price(cat: PriceCatalogue) -> None:
    # o3: in 2e-6, out 8e-6, no separate reasoning price: 1000*2e-6 + 5000*8e-6 (4000 of them reasoning)
    ev = event("openai", "o3", input_tokens=1_000, output_tokens=5_000, reasoning_tokens=4_000)
    assert cat.cost(ev) == pytest.approx(0.042)


def test_missing_cache_prices_fall_back_to_input_price(cat: PriceCatalogue) -> None:
    # gpt-4o-2024-05-13 has no cache read price; gpt-4o has no cache write price.
    old = cat.get("gpt-4o-2024-05-13")
    assert old.cache_read == old.input == 5e-06
    assert cat.get("gpt-4o").cache_write == 2.5e-06
    ev = event("openai", "gpt-4o-2024-05-13", input_tokens=1_000, cached_input_tokens=1_000)
    assert cat.cost(ev) == pytest.approx(1_000 * 5e-06)


def test_cache_counts_above_input_do_not_go_negative(cat: PriceCatalogue) -> None:
    # cached + cache_creation > input (a producer counting them apart): uncached is clamped at 0
    ev = event("anthropic", "claude-sonnet-4-5", input_tokens=100, cached_input_tokens=100,
               cache_creation_input_tokens=100)
    assert cat.cost(ev) == pytest.approx(100 * 3e-07 + 100 * 3.75e-06)


def test_zero_tokens_cost_zero(cat: PriceCatalogue) -> None:
    assert cat.cost(event("openai", "gpt-4o-mini")) == 0.0


def test_producer_cost_is_kept(cat: PriceCatalogue) -> None:
    ev = event("openai", "gpt-4o", input_tokens=1_000_000)
    ev.cost_usd = 0.5
    assert cat.cost(ev) == 0.5
    ev = event("acme", "in-house-llm", input_tokens=1_000)
    ev.cost_usd = 0.01
    assert cat.cost(ev) == 0.01


def test_unknown_model_is_unpriced(cat: PriceCatalogue) -> None:
    assert cat.cost(event("openai", "gpt-9000", input_tokens=10)) is None
    assert cat.cost(event("acme", "in-house-llm", input_tokens=10)) is None
    assert cat.lookup("openai", "gpt-9000") is None
    # a model of another provider is not borrowed
    assert cat.lookup("anthropic", "gpt-4o") is None
    assert cat.lookup("openai", "claude-sonnet-4-5") is None


# -- resolution -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("provider", "model", "key"),
    [
        ("openai", "gpt-4o", "gpt-4o"),
        ("OpenAI", "GPT-4o", "gpt-4o"),
        ("openai", "gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),  # dated key present: kept
        ("openai", "o3-2025-04-16", "o3"),  # dated suffix stripped
        ("openai", "gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("openai", "gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("openai", "openai/gpt-5", "gpt-5"),
        ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929"),
        ("anthropic", "claude-3-5-haiku-20241022", "claude-3-5-haiku-20241022"),
        ("anthropic", "claude-opus-4-7-20990101", "claude-opus-4-7"),
        ("google", "gemini-2.5-pro", "gemini/gemini-2.5-pro"),
        ("gemini", "models/gemini-2.5-flash", "gemini/gemini-2.5-flash"),
        ("gcp.gemini", "gemini-2.0-flash-001", "gemini/gemini-2.0-flash"),
        ("gcp.vertex_ai", "gemini-2.5-flash", "gemini-2.5-flash"),
        ("vertex_ai", "gemini-2.0-flash", "vertex_ai/gemini-2.0-flash"),
        ("aws.bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
        ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("aws.bedrock", "eu.anthropic.claude-3-7-sonnet-20250219-v1:0", "anthropic.claude-3-7-sonnet-20250219-v1:0"),
        ("aws.bedrock", "amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0"),
        ("aws.bedrock", "meta.llama3-3-70b-instruct-v1:0", "meta.llama3-3-70b-instruct-v1:0"),
        ("azure", "gpt-4o", "azure/gpt-4o"),
        ("azure.ai.openai", "gpt-4.1-2025-04-14", "azure/gpt-4.1"),
        ("azure_openai", "o4-mini", "azure/o4-mini"),
        ("azure", "gpt-6.1-sol", "gpt-6.1-sol"),  # no azure entry: OpenAI list price
    ],
)
def test_resolution(cat: PriceCatalogue, provider: str, model: str, key: str) -> None:
    price = cat.lookup(provider, model)
    assert price is not None, (provider, model)
    assert price.key == key


def test_bedrock_regional_profile_keeps_its_own_price(cat: PriceCatalogue) -> None:
    us = cat.lookup("aws.bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    base = cat.lookup("aws.bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert us.input == pytest.approx(base.input * 1.1)


def test_canonical_provider() -> None:
    assert canonical_provider("aws.bedrock") == "bedrock"
    assert canonical_provider("gcp.vertex_ai") == "vertex_ai"
    assert canonical_provider("Azure.AI.OpenAI") == "azure"
    assert canonical_provider("mistral_ai") == "mistral_ai"


def test_resolution_is_cached(cat: PriceCatalogue) -> None:
    fresh = PriceCatalogue.bundled()
    first = fresh.lookup("aws.bedrock", "us.anthropic.claude-3-7-sonnet-20250219-v1:0")
    assert fresh._cache["aws.bedrock"]["us.anthropic.claude-3-7-sonnet-20250219-v1:0"] is first
    fresh._prices.clear()  # a second lookup must not resolve again
    assert fresh.lookup("aws.bedrock", "us.anthropic.claude-3-7-sonnet-20250219-v1:0") is first
    assert fresh.lookup("openai", "nope") is None
    assert fresh._cache["openai"]["nope"] is None


# -- operator override ----------------------------------------------------------------------------

def test_override_replaces_a_price_and_adds_models(tmp_path: Path) -> None:
    path = write(tmp_path, {
        "_spendsentry": {"as_of": "2027-01-01"},
        "gpt-4o": {"litellm_provider": "openai", "mode": "chat",
                   "input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06},
        "acme/in-house-llm": {"litellm_provider": "acme", "mode": "chat", "effective_from": "2026-12-15",
                              "input_cost_per_token": 1e-07, "output_cost_per_token": 2e-07,
                              "output_cost_per_reasoning_token": 1e-06},
        "dall-e-9": {"litellm_provider": "openai", "mode": "image_generation", "output_cost_per_image": 0.04},
    })
    bundled = PriceCatalogue.bundled()
    cat = PriceCatalogue.load(path)
    assert len(cat) == len(bundled) + 1  # image model skipped, gpt-4o replaced
    assert cat.as_of == bundled.as_of and str(path) in " ".join(cat.sources)
    gpt4o = cat.lookup("openai", "gpt-4o")
    # whole entry replaced: no cache read price any more, so cached input costs the input price
    assert (gpt4o.input, gpt4o.output, gpt4o.cache_read, gpt4o.effective_from) == (2e-06, 8e-06, 2e-06, "2027-01-01")
    # dated: an event in 2027 gets the new price, one before it the bundled price it replaced
    ev_2027 = UsageEvent("e", 1_798_761_600.0, "openai", "gpt-4o", input_tokens=1_000, output_tokens=1_000)
    assert cat.cost(ev_2027) == pytest.approx(0.01)  # 1000*2e-6 + 1000*8e-6
    assert cat.cost(event("openai", "gpt-4o", input_tokens=1_000, output_tokens=1_000)) == pytest.approx(0.0125)
    assert [p.effective_from for p in cat.versions("gpt-4o")] == [bundled.as_of, "2027-01-01"]
    # the new model, with a reasoning price of its own:
    # 1000*1e-7 + (3000-2000)*2e-7 + 2000*1e-6 = 0.0001 + 0.0002 + 0.002
    ev = event("acme", "in-house-llm", input_tokens=1_000, output_tokens=3_000, reasoning_tokens=2_000)
    assert cat.cost(ev) == pytest.approx(0.0023)
    assert cat.lookup("acme", "in-house-llm").effective_from == "2026-12-15"
    # untouched bundled entries keep their price and date
    assert cat.lookup("anthropic", "claude-sonnet-4-5") == bundled.lookup("anthropic", "claude-sonnet-4-5")


def test_override_without_date_uses_file_date(tmp_path: Path) -> None:
    path = write(tmp_path, {"acme/x": {"litellm_provider": "acme", "input_cost_per_token": 1e-06}})
    price = PriceCatalogue.load(path).lookup("acme", "x")
    assert price.output == 0.0
    date.fromisoformat(price.effective_from)


def test_override_alias_of(tmp_path: Path) -> None:
    path = write(tmp_path, {"my-default-model": {"alias_of": "claude-sonnet-4-5"}})
    cat = PriceCatalogue.load(path)
    assert cat.get("my-default-model") == cat.get("claude-sonnet-4-5")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "top level must be a JSON object"),
        ({"gpt-4o": "cheap"}, "entry 'gpt-4o': must be an object"),
        ({"gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": "2.5e-6"}},
         "entry 'gpt-4o': input_cost_per_token must be a number"),
        ({"gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": -1e-6}}, "entry 'gpt-4o'"),
        ({"gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": 2.5}}, "per-1M prices"),
        ({"x/y": {"input_cost_per_token": 1e-6}}, "entry 'x/y': litellm_provider"),
        ({"x/y": {"litellm_provider": "x", "input_cost_per_token": 1e-6, "effective_from": "soon"}},
         "entry 'x/y': effective_from"),
        ({"x/y": {"alias_of": "no-such-model"}}, "entry 'x/y': alias_of 'no-such-model'"),
    ],
)
def test_broken_override_raises_config_error(tmp_path: Path, content: object, fragment: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ConfigError) as info:
        PriceCatalogue.load(path)
    assert str(path) in str(info.value)
    assert fragment in str(info.value)


def test_missing_override_file_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(ConfigError, match="absent.json"):
        PriceCatalogue.load(path)


def test_model_price_is_immutable(cat: PriceCatalogue) -> None:
    price = cat.get("gpt-4o")
    assert isinstance(price, ModelPrice)
    with pytest.raises(AttributeError):
        price.input = 0.0  # type: ignore[misc]


# -- service tiers, long context, dated versions ---------------------------------------------------

def tiered(provider: str, model: str, tier: str | None = None, ts: float = 1_767_225_600.0, **tokens: int) -> UsageEvent:
    ev = UsageEvent("evt-t", ts, provider, model, **tokens)
    ev.service_tier = tier
    return ev


def test_batch_tier_prices_anthropic_cache_and_output(cat: PriceCatalogue) -> None:
    # claude-sonnet-4-5 batch: in 1.5e-6, out 7.5e-6, cache read 1.5e-7, cache write 1.875e-6.
    # 100k input = 20k plain + 60k reads + 20k writes, 10k output:
    # 20k*1.5e-6 + 60k*1.5e-7 + 20k*1.875e-6 + 10k*7.5e-6 = 0.03 + 0.009 + 0.0375 + 0.075
    ev = tiered("anthropic", "claude-sonnet-4-5", "batch", input_tokens=100_000, cached_input_tokens=60_000,
                cache_creation_input_tokens=20_000, output_tokens=10_000)
    assert cat.cost(ev) == pytest.approx(0.1515)


def test_priority_and_flex_tiers(cat: PriceCatalogue) -> None:
    # gpt-4o priority: in 4.25e-6, cache read 2.125e-6, out 1.7e-5.
    # 10k in (4k cached), 1k out: 6k*4.25e-6 + 4k*2.125e-6 + 1k*1.7e-5 = 0.0255 + 0.0085 + 0.017
    ev = tiered("openai", "gpt-4o", "priority", input_tokens=10_000, cached_input_tokens=4_000, output_tokens=1_000)
    assert cat.cost(ev) == pytest.approx(0.051)
    # gpt-5 flex: in 6.25e-7, cache read 6.25e-8, out 5e-6 (reasoning at the output price):
    # 8k*6.25e-7 + 2k*6.25e-8 + 3k*5e-6 = 0.005 + 0.000125 + 0.015
    ev = tiered("openai", "gpt-5", "flex", input_tokens=10_000, cached_input_tokens=2_000, output_tokens=3_000,
                reasoning_tokens=2_500)
    assert cat.cost(ev) == pytest.approx(0.020125)


def test_tier_without_its_own_price_costs_the_standard_price(cat: PriceCatalogue) -> None:
    # gpt-4o has no flex price: 1000*2.5e-6 + 1000*1e-5
    ev = tiered("openai", "gpt-4o", "flex", input_tokens=1_000, output_tokens=1_000)
    assert cat.cost(ev) == pytest.approx(0.0125)
    # gpt-4o batch has no cache-read batch price: the standard cache read price (1.25e-6) is used.
    # 1000 cached * 1.25e-6 + 1000 plain * 1.25e-6 (batch input)
    ev = tiered("openai", "gpt-4o", "batch", input_tokens=2_000, cached_input_tokens=1_000)
    assert cat.cost(ev) == pytest.approx(0.0025)


def test_long_context_tier_applies_per_request(cat: PriceCatalogue) -> None:
    # gemini-2.5-pro: <=200k: in 1.25e-6, out 1e-5; >200k: in 2.5e-6, cache read 2.5e-7, out 1.5e-5.
    short = tiered("gemini", "gemini-2.5-pro", input_tokens=200_000, output_tokens=1_000)
    assert cat.cost(short) == pytest.approx(200_000 * 1.25e-6 + 1_000 * 1e-5)  # 0.26: exactly 200k is not above
    long = tiered("gemini", "gemini-2.5-pro", input_tokens=250_000, cached_input_tokens=50_000, output_tokens=1_000)
    # 200k*2.5e-6 + 50k*2.5e-7 + 1k*1.5e-5 = 0.5 + 0.0125 + 0.015
    assert cat.cost(long) == pytest.approx(0.5275)
    # the same tokens as 2 requests of 125k each: standard tier.
    # 200k*1.25e-6 + 50k*1.25e-7 + 1k*1e-5 = 0.25 + 0.00625 + 0.01
    two = tiered("gemini", "gemini-2.5-pro", input_tokens=250_000, cached_input_tokens=50_000, output_tokens=1_000)
    two.request_count = 2
    assert cat.cost(two) == pytest.approx(0.26625)
    # long context + priority: in 4.5e-6, out 2.7e-5: 300k*4.5e-6 + 2k*2.7e-5 = 1.35 + 0.054
    prio = tiered("gemini", "gemini-2.5-pro", "priority", input_tokens=300_000, output_tokens=2_000)
    assert cat.cost(prio) == pytest.approx(1.404)


def test_long_context_272k_and_bedrock_200k(cat: PriceCatalogue) -> None:
    # gpt-5.4 above 272k: in 5e-6, out 2.25e-5; batch above 272k: in 2.5e-6, out 1.125e-5
    ev = tiered("openai", "gpt-5.4", input_tokens=300_000, output_tokens=1_000)
    assert cat.cost(ev) == pytest.approx(300_000 * 5e-6 + 1_000 * 2.25e-5)  # 1.5225
    ev = tiered("openai", "gpt-5.4", "batch", input_tokens=300_000, output_tokens=1_000)
    assert cat.cost(ev) == pytest.approx(300_000 * 2.5e-6 + 1_000 * 1.125e-5)  # 0.76125
    # Bedrock Sonnet 4.5 above 200k: cache write 7.5e-6, cache read 6e-7, in 6e-6, out 2.25e-5
    ev = tiered("aws.bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0", input_tokens=210_000,
                cached_input_tokens=100_000, cache_creation_input_tokens=10_000, output_tokens=1_000)
    # 100k*6e-6 + 100k*6e-7 + 10k*7.5e-6 + 1k*2.25e-5 = 0.6 + 0.06 + 0.075 + 0.0225
    assert cat.cost(ev) == pytest.approx(0.7575)


def test_rates_parsed_from_litellm_fields(cat: PriceCatalogue) -> None:
    price = cat.get("gemini/gemini-2.5-pro")
    assert set(price.tiers) == {"batch", "priority", "flex"}
    assert [thr for thr, _ in price.long_context] == [200_000]
    assert price.rates("priority", 100) == (2.25e-06, 1.8e-05, 2.25e-07, 2.25e-06, 1.8e-05)
    assert cat.get("gpt-4o").long_context == ()


def test_dated_versions_pick_the_price_in_force(tmp_path: Path) -> None:
    path = write(tmp_path, {
        "acme/llm": {"litellm_provider": "acme", "effective_from": "2026-01-01",
                     "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
                     "versions": [{"effective_from": "2026-06-01", "input_cost_per_token": 5e-07},
                                  {"effective_from": "2026-09-01", "input_cost_per_token": 2.5e-07,
                                   "output_cost_per_token": 1e-06}]},
    })
    cat = PriceCatalogue.load(path)
    jan, jul, oct_ = 1_767_225_600.0 + 86_400 * 10, 1_782_864_000.0, 1_791_000_000.0  # 2026-01-11, 07-01, 10-03
    def cost(ts: float) -> float:
        return cat.cost(UsageEvent("e", ts, "acme", "llm", input_tokens=1_000_000, output_tokens=1_000_000))
    assert cost(jan) == pytest.approx(1.0 + 2.0)
    assert cost(jul) == pytest.approx(0.5 + 2.0)  # output price inherited from the entry
    assert cost(oct_) == pytest.approx(0.25 + 1.0)
    assert cost(1_700_000_000.0) == pytest.approx(3.0)  # before the first version: the first
    assert cat.lookup("acme", "llm").effective_from == "2026-09-01"
    assert cat.lookup("acme", "llm", at=jul).effective_from == "2026-06-01"
    assert cat.get("acme/llm", at=jan).input == 1e-06


def test_later_file_replaces_versions_dated_on_or_after_it(tmp_path: Path) -> None:
    first = write(tmp_path, {"acme/llm": {"litellm_provider": "acme", "input_cost_per_token": 1e-06,
                                          "effective_from": "2026-01-01",
                                          "versions": [{"effective_from": "2026-09-01", "input_cost_per_token": 3e-06}]}},
                  "a.json")
    second = write(tmp_path, {"acme/llm": {"litellm_provider": "acme", "input_cost_per_token": 2e-06,
                                           "effective_from": "2026-06-01"}}, "b.json")
    cat = PriceCatalogue.load([first, second])
    assert [(p.effective_from, p.input) for p in cat.versions("acme/llm")] == [("2026-01-01", 1e-06),
                                                                             ("2026-06-01", 2e-06)]


def test_cost_is_fast_with_versions(tmp_path: Path) -> None:
    import time
    path = write(tmp_path, {"gpt-4o": {"litellm_provider": "openai", "effective_from": "2027-01-01",
                                       "input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06}})
    cat = PriceCatalogue.load(path)
    ev = tiered("openai", "gpt-4o", input_tokens=1_000, output_tokens=100)
    cat.cost(ev)
    start = time.perf_counter()
    for _ in range(20_000):
        cat.cost(ev)
    assert (time.perf_counter() - start) / 20_000 < 20e-6  # generous: ~1 us on a laptop


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "claude-sonnet-4-20250514"])
def test_direct_anthropic_sonnet_4_long_context_rate(model: str) -> None:
    """Above 200k input tokens Anthropic charges 2x input and 1.5x output: a 250k request with 1k
    output costs $1.5225, not $0.765."""
    from schemas.usage import validate_usage

    cat = PriceCatalogue.bundled()
    event = validate_usage({"event_id": "e", "timestamp": 1_795_000_000, "provider": "anthropic", "model": model,
                            "input_tokens": 250_000, "output_tokens": 1_000})
    assert cat.cost(event) == pytest.approx(250_000 * 6e-6 + 1_000 * 22.5e-6)
    short = validate_usage({"event_id": "e", "timestamp": 1_795_000_000, "provider": "anthropic", "model": model,
                            "input_tokens": 200_000, "output_tokens": 1_000})
    assert cat.cost(short) == pytest.approx(200_000 * 3e-6 + 1_000 * 15e-6)


@pytest.mark.parametrize("provider, model, base", [
    ("anthropic", "claude-sonnet-4-5", 3e-6),
    ("anthropic", "claude-opus-4-5", 5e-6),
    ("aws.bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0", 3e-6),
])
def test_one_hour_cache_writes_cost_twice_the_base_input(provider: str, model: str, base: float) -> None:
    """1-hour cache writes are 2x base input, 5-minute ones 1.25x; they were all priced at 1.25x."""
    from schemas.usage import validate_usage

    cat = PriceCatalogue.bundled()
    event = validate_usage({"event_id": "e", "timestamp": 1_795_000_000, "provider": provider, "model": model,
                            "input_tokens": 3_000, "cache_creation_input_tokens": 3_000,
                            "cache_creation_1h_input_tokens": 1_000})
    assert cat.cost(event) == pytest.approx(2_000 * base * 1.25 + 1_000 * base * 2)


def test_the_anthropic_body_splits_one_hour_cache_writes() -> None:
    from streams.sources.normalize import normalize_payload

    body = {"id": "msg_1", "type": "message", "model": "claude-sonnet-4-5",
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 3000,
                      "cache_read_input_tokens": 0,
                      "cache_creation": {"ephemeral_5m_input_tokens": 2000, "ephemeral_1h_input_tokens": 1000}}}
    [event] = normalize_payload("anthropic", {"timestamp": 1_795_000_000, "response": body}, PriceCatalogue.bundled())
    assert event["cache_creation_1h_input_tokens"] == 1000
    assert event["cost_usd"] == pytest.approx(10 * 3e-6 + 2000 * 3.75e-6 + 1000 * 6e-6 + 5 * 15e-6)
