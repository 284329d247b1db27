"""Token pricing: a dated, bundled LiteLLM-format price catalogue and the per-event cost.

The catalogue (``prices/catalogue.json``) uses LiteLLM's ``model_prices_and_context_window.json``
format, USD per token. An operator may merge their own files in the same format over it (a whole
LiteLLM file works too: entries without per-token prices, such as image models, are skipped).

Token fields follow OpenTelemetry GenAI semantics (see :mod:`schemas.usage`): ``input_tokens``
includes cache reads and writes, ``reasoning_tokens`` is part of ``output_tokens``.

What is priced per event:

* **Service tiers.** ``service_tier`` ``batch``/``priority``/``flex`` uses LiteLLM's
  ``*_batches``/``*_priority``/``*_flex`` prices; a tier the entry does not price costs the
  standard price. A tier price missing for one field (e.g. no ``cache_read_input_token_cost_batches``)
  falls back to that field's standard price.
* **Long-context tiers.** ``*_above_<N>k_tokens`` prices (N x 1000 tokens) apply to the whole
  event when its input per request (``input_tokens / request_count``) is above N x 1000, as the
  providers bill a long prompt (every token of the request at the higher rate). With several
  thresholds the highest one exceeded wins. Lookup order for a field: long+tier, long, tier,
  standard.
* **Cache** reads and writes at their own prices (missing ones cost the input price of the same
  tier); reasoning tokens at ``output_cost_per_reasoning_token`` (else the output price).
* **Dated prices.** Every entry has an ``effective_from`` date (UTC midnight). A model keeps a
  sorted list of versions and an event is priced by the version in force at its timestamp
  (events before the first version get the first). An operator file adds versions: its entry is in
  force from its ``effective_from`` (else the file's ``_spendsentry.as_of``, else its modification
  date) and replaces the versions of earlier files dated on or after it. An entry may also carry
  ``"versions": [{"effective_from": ..., <price fields>}, ...]``, each overlaying the entry.

Pure Python; :meth:`PriceCatalogue.cost` runs per event on the hot path, so model resolution is
done once per (provider, model) pair and cached (a single-version model caches its price, a
multi-version one its timeline, searched by bisection).
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from schemas.errors import ConfigError
from schemas.usage import UsageEvent

__all__ = ["ModelPrice", "PriceCatalogue", "Rates", "canonical_provider"]

META_KEY = "_spendsentry"
_BUNDLED_NAME = "catalogue.json"
#: Far above any real price (o1-pro output is 6e-4 USD/token); catches per-1M prices written per token.
MAX_PRICE_PER_TOKEN = 0.01
#: Bound on the resolution cache, so a flood of distinct unknown model names cannot grow it forever.
MAX_RESOLUTION_CACHE = 262_144

_PRICE_FIELDS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "output_cost_per_reasoning_token",
)
#: ``<price field>[_above_<N>k_tokens][_batches|_priority|_flex]``; other LiteLLM variants
#: (``_above_1hr`` cache writes, audio, ``_ultrafast``...) are not token prices we apply.
_TIERED_FIELD = re.compile(
    r"^(" + "|".join(_PRICE_FIELDS) + r")(?:_above_(\d+)k_tokens)?(?:_(batches|priority|flex))?$"
)
_TIER_SUFFIX = {"batches": "batch", "priority": "priority", "flex": "flex"}
SERVICE_TIERS = ("default", "batch", "priority", "flex")

# Provider names as producers send them (OTel ``gen_ai.provider.name`` values, LiteLLM names, common
# spellings) -> the canonical name used below.
_PROVIDER_ALIASES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "gemini",
    "gemini": "gemini",
    "gcp.gemini": "gemini",
    "gcp.gen_ai": "gemini",
    "google_ai_studio": "gemini",
    "vertex_ai": "vertex_ai",
    "vertex": "vertex_ai",
    "vertexai": "vertex_ai",
    "gcp.vertex_ai": "vertex_ai",
    "google_vertex": "vertex_ai",
    "bedrock": "bedrock",
    "aws.bedrock": "bedrock",
    "aws_bedrock": "bedrock",
    "amazon_bedrock": "bedrock",
    "bedrock_converse": "bedrock",
    "azure": "azure",
    "azure.ai.openai": "azure",
    "azure_openai": "azure",
    "azure-openai": "azure",
}


def _is_google(litellm_provider: str) -> bool:
    return litellm_provider == "gemini" or litellm_provider.startswith("vertex_ai")


# canonical provider -> (key prefixes to try in order, test on an entry's litellm_provider).
# Azure falls back to the OpenAI list price when no ``azure/...`` entry exists (same list prices).
_RULES: dict[str, tuple[tuple[str, ...], Callable[[str], bool]]] = {
    "openai": (("", "openai/"), lambda p: p in ("openai", "text-completion-openai")),
    "anthropic": (("", "anthropic/"), lambda p: p == "anthropic"),
    "gemini": (("gemini/", "", "vertex_ai/"), _is_google),
    "vertex_ai": (("", "vertex_ai/", "gemini/"), _is_google),
    "bedrock": (("", "bedrock/", "bedrock_converse/"), lambda p: p in ("bedrock", "bedrock_converse")),
    "azure": (("azure/", "", "openai/"), lambda p: p in ("azure", "openai", "text-completion-openai")),
}

# Bedrock cross-region inference profiles: ``us.anthropic.claude-...`` -> ``anthropic.claude-...``.
_REGION_PREFIX = re.compile(r"^(?:us|eu|apac|au|jp|ca|global|us-gov)\.(?=[a-z0-9-]+\.)")
# Dated / versioned snapshots: -2024-08-06, -20250929, @20251001, -0125, -001, -09-2025.
_DATED_SUFFIX = re.compile(r"(?:-\d{4}-\d{2}-\d{2}|[-@]\d{8}|-\d{3,4}|-\d{2}-\d{4})$")

_MISS = object()


def canonical_provider(provider: str) -> str:
    """The canonical provider name for ``provider`` (``aws.bedrock`` -> ``bedrock``); unknown ones lower-cased."""
    low = provider.strip().lower()
    return _PROVIDER_ALIASES.get(low, low)


#: (input, output, cache read, cache write, reasoning) USD per token.
Rates = tuple[float, float, float, float, float]


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One dated version of a catalogue entry, USD per token, with the LiteLLM fallbacks applied.

    ``input`` ... ``reasoning`` are the standard-tier prices. ``tiers`` holds the rates of the
    service tiers the entry prices (``batch``, ``priority``, ``flex``); ``long_context`` holds
    ``(threshold_tokens, {tier: rates})`` pairs, highest threshold first (tier ``default``
    always present).
    """

    key: str
    provider: str
    input: float
    output: float
    cache_read: float
    cache_write: float
    reasoning: float
    effective_from: str
    tiers: dict[str, Rates] = field(default_factory=dict, hash=False)
    long_context: tuple[tuple[int, dict[str, Rates]], ...] = ()
    #: 1-hour cache writes (LiteLLM ``cache_creation_input_token_cost_above_1hr``); None: the 5-minute price
    cache_write_1h: float | None = None

    @property
    def standard(self) -> Rates:
        return (self.input, self.output, self.cache_read, self.cache_write, self.reasoning)

    @property
    def effective_ts(self) -> float:
        """``effective_from`` as epoch seconds (UTC midnight)."""
        return _date_ts(self.effective_from)

    def rates(self, service_tier: str | None = None, input_per_request: float = 0.0) -> Rates:
        """The rates for a request of ``input_per_request`` input tokens in ``service_tier``."""
        for threshold, by_tier in self.long_context:
            if input_per_request > threshold:
                return by_tier.get(service_tier or "default") or by_tier["default"]
        if service_tier and service_tier != "default":
            tiered = self.tiers.get(service_tier)
            if tiered is not None:
                return tiered
        return self.standard

    def cost(self, event: UsageEvent) -> float:
        """USD cost of ``event`` at this version's prices (ignores ``event.cost_usd``)."""
        tier = event.service_tier
        if self.long_context or (self.tiers and tier and tier != "default"):
            inp, out, read, write, reasoning_price = self.rates(tier, event.input_tokens / (event.request_count or 1))
        else:
            inp, out, read, write, reasoning_price = (self.input, self.output, self.cache_read,
                                                      self.cache_write, self.reasoning)
        cached = event.cached_input_tokens
        created = event.cache_creation_input_tokens
        reasoning = event.reasoning_tokens
        uncached = event.input_tokens - cached - created
        if uncached < 0:
            uncached = 0
        cost = (uncached * inp + cached * read + created * write
                + (event.output_tokens - reasoning) * out + reasoning * reasoning_price)
        hour = event.cache_creation_1h_input_tokens
        if hour and self.cache_write_1h is not None and self.input:
            # the 1-hour premium over the 5-minute write, scaled like the input price of the tier applied
            cost += hour * (self.cache_write_1h / self.input * inp - write)
        return cost


class _Timeline:
    """The dated versions of one model, oldest first, searched by event time."""

    __slots__ = ("starts", "prices")

    def __init__(self, prices: Sequence[ModelPrice]) -> None:
        self.prices = list(prices)
        self.starts = [p.effective_ts for p in self.prices]

    def at(self, ts: float) -> ModelPrice:
        i = bisect_right(self.starts, ts) - 1
        return self.prices[i if i > 0 else 0]


@lru_cache(maxsize=4096)
def _date_ts(day: str) -> float:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), timezone.utc).timestamp()


@lru_cache(maxsize=1)
def _bundled_raw() -> tuple[dict[str, Any], dict[str, Any]]:
    ref = resources.files("streams.core").joinpath("prices", _BUNDLED_NAME)
    return _parse_text(ref.read_text(encoding="utf-8"), f"bundled {_BUNDLED_NAME}")


def _parse_text(text: str, where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a LiteLLM-format document into (spendsentry metadata, raw entries)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"price file {where}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"price file {where}: top level must be a JSON object of model entries")
    meta = data.get(META_KEY) or {}
    if not isinstance(meta, dict):
        raise ConfigError(f"price file {where}: entry {META_KEY!r}: must be an object")
    entries = {k: v for k, v in data.items() if not k.startswith("_") and k != "sample_spec"}
    return meta, entries


def _check_date(value: Any, where: str, key: str, field: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"price file {where}: entry {key!r}: {field} must be a YYYY-MM-DD string")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"price file {where}: entry {key!r}: {field} must be a YYYY-MM-DD date (got {value!r})") from None
    if len(value) != 10:
        raise ConfigError(f"price file {where}: entry {key!r}: {field} must be a YYYY-MM-DD date (got {value!r})")
    return value


def _price_value(value: Any, where: str, key: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"price file {where}: entry {key!r}: {name} must be a number (got {value!r})")
    if not 0 <= value <= MAX_PRICE_PER_TOKEN:
        raise ConfigError(
            f"price file {where}: entry {key!r}: {name} must be between 0 and {MAX_PRICE_PER_TOKEN} "
            f"USD per token (got {value!r}; per-1M prices must be divided by 1e6)"
        )
    return float(value)


def _build(key: str, entry: Any, where: str, default_from: str) -> list[ModelPrice] | str | None:
    """The dated versions of an entry, the target key of an ``alias_of`` entry, or None for a non-token entry."""
    if not isinstance(entry, dict):
        raise ConfigError(f"price file {where}: entry {key!r}: must be an object")
    alias = entry.get("alias_of")
    if alias is not None:
        if not isinstance(alias, str) or not alias:
            raise ConfigError(f"price file {where}: entry {key!r}: alias_of must be a model key")
        return alias
    extra = entry.get("versions")
    if extra is None:
        return _build_one(key, entry, where, default_from)
    if not isinstance(extra, list) or not all(isinstance(v, dict) for v in extra):
        raise ConfigError(f"price file {where}: entry {key!r}: versions must be a list of objects")
    base = {k: v for k, v in entry.items() if k != "versions"}
    out: dict[str, ModelPrice] = {}
    for item in [base, *({**base, **v} for v in extra)]:
        if item is not base and "effective_from" not in item:
            raise ConfigError(f"price file {where}: entry {key!r}: every item of versions needs effective_from")
        built = _build_one(key, item, where, default_from)
        if built:
            out[built[0].effective_from] = built[0]
    return [out[d] for d in sorted(out)] or None


def _build_one(key: str, entry: dict[str, Any], where: str, default_from: str) -> list[ModelPrice] | None:
    # (field, threshold or 0, tier or "default") -> price
    raw: dict[tuple[str, int, str], float] = {}
    thresholds: set[int] = set()
    tiers: set[str] = set()
    for name, value in entry.items():
        match = _TIERED_FIELD.match(name)
        if match is None or value is None:
            continue
        base, above, suffix = match.groups()
        thr = int(above) * 1000 if above else 0
        tier = _TIER_SUFFIX[suffix] if suffix else "default"
        raw[(base, thr, tier)] = _price_value(value, where, key, name)
        if thr:
            thresholds.add(thr)
        if tier != "default":
            tiers.add(tier)
    if ("input_cost_per_token", 0, "default") not in raw and ("output_cost_per_token", 0, "default") not in raw:
        return None  # priced per image / second / call: not a token model
    provider = entry.get("litellm_provider")
    if not isinstance(provider, str) or not provider:
        raise ConfigError(f"price file {where}: entry {key!r}: litellm_provider must be a non-empty string")
    effective = entry.get("effective_from")
    effective = default_from if effective is None else _check_date(effective, where, key, "effective_from")

    def pick(name: str, thr: int, tier: str) -> float | None:
        chain = [(thr, tier), (thr, "default"), (0, tier), (0, "default")] if thr else [(0, tier), (0, "default")]
        for t, s in chain:
            value = raw.get((name, t, s))
            if value is not None:
                return value
        return None

    def rates(thr: int, tier: str) -> Rates:
        inp = pick("input_cost_per_token", thr, tier) or 0.0
        out = pick("output_cost_per_token", thr, tier) or 0.0
        read = pick("cache_read_input_token_cost", thr, tier)
        write = pick("cache_creation_input_token_cost", thr, tier)
        reasoning = pick("output_cost_per_reasoning_token", thr, tier)
        return (inp, out, inp if read is None else read, inp if write is None else write,
                out if reasoning is None else reasoning)

    std = rates(0, "default")
    all_tiers = ("default", *sorted(tiers))
    hour = entry.get("cache_creation_input_token_cost_above_1hr")
    return [ModelPrice(
        cache_write_1h=None if hour is None else _price_value(hour, where, key, "cache_creation_input_token_cost_above_1hr"),
        key=key, provider=provider, input=std[0], output=std[1], cache_read=std[2], cache_write=std[3],
        reasoning=std[4], effective_from=effective,
        tiers={t: rates(0, t) for t in sorted(tiers)},
        long_context=tuple((thr, {t: rates(thr, t) for t in all_tiers}) for thr in sorted(thresholds, reverse=True)),
    )]


def _merge_versions(old: list[ModelPrice], new: list[ModelPrice]) -> list[ModelPrice]:
    """A later file's versions replace the earlier ones dated on or after its first version."""
    cut = new[0].effective_from
    kept = [p for p in old if p.effective_from < cut]
    return kept + new


class PriceCatalogue:
    """Model prices keyed by LiteLLM model key, with (provider, model) resolution and per-event cost.

    ``as_of`` is the date of the bundled catalogue; each :class:`ModelPrice` carries its own
    ``effective_from`` (an override entry without one gets its file's ``_spendsentry.as_of``,
    else the file's modification date). ``get``/``lookup`` return the newest version unless
    ``at`` (epoch seconds) is given; :meth:`cost` always prices at the event's timestamp.
    """

    __slots__ = ("as_of", "source", "sources", "_prices", "_versions", "_cache")

    def __init__(self, prices: dict[str, ModelPrice] | dict[str, list[ModelPrice]], *, as_of: str, source: str,
                 sources: tuple[str, ...] = ()) -> None:
        self.as_of = as_of
        self.source = source
        self.sources = sources or (source,)
        versions: dict[str, list[ModelPrice]] = {
            k: (list(v) if isinstance(v, list) else [v]) for k, v in prices.items()
        }
        self._versions = versions
        self._prices = {k: v[-1] for k, v in versions.items()}  # newest version per key
        # provider (as sent) -> model (as sent) -> ModelPrice (one version), _Timeline, or None (unknown)
        self._cache: dict[str, dict[str, ModelPrice | _Timeline | None]] = {}

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def bundled(cls) -> PriceCatalogue:
        """The catalogue shipped with spendsentry."""
        return cls.load(None)

    @classmethod
    def load(cls, override: Path | str | Iterable[Path | str] | None = None) -> PriceCatalogue:
        """The bundled catalogue, with the operator's LiteLLM-format file(s) merged over it, in order.

        An override entry adds a dated version of its key (whole entries, not field by field),
        replacing the versions of earlier files dated on or after it. Raises
        :class:`ConfigError` naming the file and the entry when an override is unusable.
        """
        meta, raw = _bundled_raw()
        bundled_where = f"bundled {_BUNDLED_NAME}"
        as_of = _check_date(meta.get("as_of"), bundled_where, META_KEY, "as_of")
        source = str(meta.get("source", "bundled"))
        sources = [f"{bundled_where} (as of {as_of})"]
        layers: list[tuple[str, str, dict[str, Any]]] = [(bundled_where, as_of, raw)]
        if override is None:
            paths: list[Path] = []
        elif isinstance(override, (str, Path)):
            paths = [Path(override)]
        else:
            paths = [Path(p) for p in override]
        for path in paths:
            try:
                text = path.read_text(encoding="utf-8")
                mtime = path.stat().st_mtime
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"price file {path}: cannot read: {exc}") from None
            o_meta, o_raw = _parse_text(text, str(path))
            if o_meta.get("as_of") is not None:
                o_from = _check_date(o_meta["as_of"], str(path), META_KEY, "as_of")
            else:
                o_from = datetime.fromtimestamp(mtime, timezone.utc).date().isoformat()
            layers.append((str(path), o_from, o_raw))
            sources.append(f"{path} (as of {o_from})")
        versions: dict[str, list[ModelPrice]] = {}
        aliases: dict[str, tuple[str, str]] = {}  # key -> (target, where)
        dropped: set[str] = set()  # keys whose newest entry is not a token model
        for where, default_from, entries in layers:
            for key, entry in entries.items():
                built = _build(key, entry, where, default_from)
                if isinstance(built, list):
                    versions[key] = _merge_versions(versions[key], built) if key in versions else built
                    aliases.pop(key, None)
                    dropped.discard(key)
                elif isinstance(built, str):
                    aliases[key] = (built, where)
                    versions.pop(key, None)
                    dropped.discard(key)
                else:
                    versions.pop(key, None)
                    aliases.pop(key, None)
                    dropped.add(key)
        for key, (target, where) in aliases.items():
            seen = {key}
            while target in aliases and target not in seen:  # alias of an alias
                seen.add(target)
                target = aliases[target][0]
            if target in versions:
                versions[key] = versions[target]
            elif target not in dropped or target in seen:
                raise ConfigError(f"price file {where}: entry {key!r}: alias_of {target!r} names no model entry")
            # else: alias of a non-token entry (image model...): skipped like its target
        return cls(versions, as_of=as_of, source=source, sources=tuple(sources))

    # -- queries ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._prices)

    def __contains__(self, key: object) -> bool:
        return key in self._prices

    def get(self, key: str, at: float | None = None) -> ModelPrice | None:
        """The entry under an exact LiteLLM key (no provider resolution): newest, or in force at ``at``."""
        if at is None:
            return self._prices.get(key)
        versions = self._versions.get(key)
        return None if versions is None else _Timeline(versions).at(at)

    def versions(self, key: str) -> list[ModelPrice]:
        """Every dated version of an exact key, oldest first."""
        return list(self._versions.get(key, ()))

    def keys(self) -> list[str]:
        return list(self._prices)

    def lookup(self, provider: str, model: str, at: float | None = None) -> ModelPrice | None:
        """Price of ``model`` as sent by ``provider`` (newest version, or the one in force at ``at``);
        None when the catalogue does not know it."""
        by_model = self._cache.get(provider)
        hit: Any = _MISS if by_model is None else by_model.get(model, _MISS)
        if hit is _MISS:
            hit = self._resolve_and_cache(provider, model)
        if type(hit) is _Timeline:
            return hit.prices[-1] if at is None else hit.at(at)
        return hit

    def cost(self, event: UsageEvent) -> float | None:
        """USD cost of ``event`` at the prices in force at its timestamp; None when its model is unpriced.

        An event that already carries ``cost_usd`` is not priced here: its producer cost is
        returned unchanged.
        """
        if event.cost_usd is not None:
            return event.cost_usd
        by_model = self._cache.get(event.provider)
        price: Any = _MISS if by_model is None else by_model.get(event.model, _MISS)
        if price is _MISS:
            price = self._resolve_and_cache(event.provider, event.model)
        if price is None:
            return None
        if type(price) is _Timeline:
            price = price.at(event.timestamp)
        return price.cost(event)


    # -- resolution ---------------------------------------------------------------------------
    def _resolve_and_cache(self, provider: str, model: str) -> ModelPrice | _Timeline | None:
        key = self._resolve(provider, model)
        price: ModelPrice | _Timeline | None = None
        if key is not None:
            versions = self._versions[key]
            price = versions[0] if len(versions) == 1 else _Timeline(versions)
        cache = self._cache
        if sum(len(m) for m in cache.values()) >= MAX_RESOLUTION_CACHE:
            cache.clear()
        cache.setdefault(provider, {})[model] = price
        return price

    def _resolve(self, provider: str, model: str) -> str | None:
        """The catalogue key that prices ``model`` as sent by ``provider``."""
        canon = canonical_provider(provider)
        rule = _RULES.get(canon)
        if rule is None:
            prefixes: tuple[str, ...] = (canon + "/", "")

            def accepts(litellm_provider: str) -> bool:
                return litellm_provider == canon
        else:
            prefixes, accepts = rule
        names = _name_forms(model.strip(), prefixes)
        variants: list[str] = list(names)
        for name in names:
            regional = _REGION_PREFIX.sub("", name)
            undated = _DATED_SUFFIX.sub("", name)
            both = _DATED_SUFFIX.sub("", regional)
            for v in (regional, undated, both):
                if v not in variants:
                    variants.append(v)
        prices = self._prices
        for name in variants:
            for prefix in prefixes:
                price = prices.get(prefix + name)
                if price is not None and accepts(price.provider):
                    return prefix + name
        return None


def _name_forms(model: str, prefixes: tuple[str, ...]) -> list[str]:
    """The model name as sent, lower-cased, and without a ``models/`` or provider key prefix."""
    forms = [model]
    low = model.lower()
    if low != model:
        forms.append(low)
    for form in list(forms):
        if form.startswith("models/"):  # Gemini API resource names
            forms.append(form[7:])
        for prefix in prefixes:
            if prefix and form.startswith(prefix) and form[len(prefix):] not in forms:
                forms.append(form[len(prefix):])
    return forms
