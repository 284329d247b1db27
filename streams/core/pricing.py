"""Token pricing: a dated, bundled LiteLLM-format price catalogue and the per-event cost.

The catalogue (``prices/catalogue.json``) uses LiteLLM's ``model_prices_and_context_window.json``
format, USD per token. An operator may merge their own file in the same format over it (a whole
LiteLLM file works too: entries without per-token prices, such as image models, are skipped).

Token fields follow OpenTelemetry GenAI semantics (see :mod:`schemas.usage`): ``input_tokens``
includes cache reads and writes, ``reasoning_tokens`` is part of ``output_tokens``. Tiered
(``*_above_200k_tokens``), batch, flex and priority prices are not modelled: events may aggregate
several requests, so a per-request tier cannot be applied to their totals.

Pure Python; :meth:`PriceCatalogue.cost` runs per event on the hot path, so model resolution is
done once per (provider, model) pair and cached.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from schemas.errors import ConfigError
from schemas.usage import UsageEvent

__all__ = ["ModelPrice", "PriceCatalogue", "canonical_provider"]

META_KEY = "_spendsentry"
_BUNDLED_NAME = "catalogue.json"
#: Far above any real price (o1-pro output is 6e-4 USD/token); catches per-1M prices written per token.
MAX_PRICE_PER_TOKEN = 0.01
#: Bound on the resolution cache, so a flood of distinct unknown model names cannot grow it forever.
MAX_RESOLUTION_CACHE = 65_536

_PRICE_FIELDS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "output_cost_per_reasoning_token",
)

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


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Prices of one catalogue entry, USD per token, with the LiteLLM fallbacks already applied."""

    key: str
    provider: str
    input: float
    output: float
    cache_read: float
    cache_write: float
    reasoning: float
    effective_from: str


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
    return value


def _build(key: str, entry: Any, where: str, default_from: str) -> ModelPrice | str | None:
    """A :class:`ModelPrice`, the target key of an ``alias_of`` entry, or None for a non-token entry."""
    if not isinstance(entry, dict):
        raise ConfigError(f"price file {where}: entry {key!r}: must be an object")
    alias = entry.get("alias_of")
    if alias is not None:
        if not isinstance(alias, str) or not alias:
            raise ConfigError(f"price file {where}: entry {key!r}: alias_of must be a model key")
        return alias
    prices: dict[str, float | None] = {}
    for name in _PRICE_FIELDS:
        value = entry.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"price file {where}: entry {key!r}: {name} must be a number (got {value!r})")
            if not 0 <= value <= MAX_PRICE_PER_TOKEN:
                raise ConfigError(
                    f"price file {where}: entry {key!r}: {name} must be between 0 and {MAX_PRICE_PER_TOKEN} "
                    f"USD per token (got {value!r}; per-1M prices must be divided by 1e6)"
                )
            value = float(value)
        prices[name] = value
    inp, out = prices["input_cost_per_token"], prices["output_cost_per_token"]
    if inp is None and out is None:
        return None  # priced per image / second / call: not a token model
    provider = entry.get("litellm_provider")
    if not isinstance(provider, str) or not provider:
        raise ConfigError(f"price file {where}: entry {key!r}: litellm_provider must be a non-empty string")
    effective = entry.get("effective_from")
    effective = default_from if effective is None else _check_date(effective, where, key, "effective_from")
    inp = inp or 0.0
    out = out or 0.0
    read, write, reasoning = (prices["cache_read_input_token_cost"], prices["cache_creation_input_token_cost"],
                              prices["output_cost_per_reasoning_token"])
    return ModelPrice(
        key=key,
        provider=provider,
        input=inp,
        output=out,
        cache_read=inp if read is None else read,
        cache_write=inp if write is None else write,
        reasoning=out if reasoning is None else reasoning,
        effective_from=effective,
    )


class PriceCatalogue:
    """Model prices keyed by LiteLLM model key, with (provider, model) resolution and per-event cost.

    ``as_of`` is the date of the bundled catalogue; each :class:`ModelPrice` carries its own
    ``effective_from`` (an override entry without one gets its file's ``_spendsentry.as_of``,
    else the file's modification date).
    """

    __slots__ = ("as_of", "source", "sources", "_prices", "_cache")

    def __init__(self, prices: dict[str, ModelPrice], *, as_of: str, source: str, sources: tuple[str, ...] = ()) -> None:
        self.as_of = as_of
        self.source = source
        self.sources = sources or (source,)
        self._prices = prices
        # provider (as sent) -> model (as sent) -> ModelPrice or None (known unknown)
        self._cache: dict[str, dict[str, ModelPrice | None]] = {}

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def bundled(cls) -> PriceCatalogue:
        """The catalogue shipped with spendsentry."""
        return cls.load(None)

    @classmethod
    def load(cls, override: Path | str | None = None) -> PriceCatalogue:
        """The bundled catalogue, with the operator's LiteLLM-format file merged over it.

        Override entries replace bundled entries by key (whole entries, not field by field).
        Raises :class:`ConfigError` naming the file and the entry when the override is unusable.
        """
        meta, raw = _bundled_raw()
        as_of = _check_date(meta.get("as_of"), f"bundled {_BUNDLED_NAME}", META_KEY, "as_of")
        source = str(meta.get("source", "bundled"))
        defaults = dict.fromkeys(raw, as_of)
        merged = dict(raw)
        sources = [f"bundled {_BUNDLED_NAME} (as of {as_of})"]
        if override is not None:
            path = Path(override)
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
            merged.update(o_raw)
            defaults.update(dict.fromkeys(o_raw, o_from))
            wheres = dict.fromkeys(o_raw, str(path))
            sources.append(f"{path} (as of {o_from})")
        else:
            wheres = {}
        prices: dict[str, ModelPrice] = {}
        aliases: dict[str, str] = {}
        for key, entry in merged.items():
            where = wheres.get(key, f"bundled {_BUNDLED_NAME}")
            built = _build(key, entry, where, defaults[key])
            if isinstance(built, ModelPrice):
                prices[key] = built
            elif isinstance(built, str):
                aliases[key] = built
        for key, target in aliases.items():
            seen = {key}
            while target in aliases and target not in seen:  # alias of an alias
                seen.add(target)
                target = aliases[target]
            if target in prices:
                prices[key] = prices[target]
            elif target not in merged or target in seen:
                where = wheres.get(key, f"bundled {_BUNDLED_NAME}")
                raise ConfigError(f"price file {where}: entry {key!r}: alias_of {target!r} names no model entry")
            # else: alias of a non-token entry (image model...): skipped like its target
        return cls(prices, as_of=as_of, source=source, sources=tuple(sources))

    # -- queries ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._prices)

    def __contains__(self, key: object) -> bool:
        return key in self._prices

    def get(self, key: str) -> ModelPrice | None:
        """The entry under an exact LiteLLM key (no provider resolution)."""
        return self._prices.get(key)

    def keys(self) -> list[str]:
        return list(self._prices)

    def lookup(self, provider: str, model: str) -> ModelPrice | None:
        """Price of ``model`` as sent by ``provider``, or None when the catalogue does not know it."""
        by_model = self._cache.get(provider)
        if by_model is not None:
            hit = by_model.get(model, _MISS)
            if hit is not _MISS:
                return hit  # type: ignore[return-value]
        return self._resolve_and_cache(provider, model)

    def cost(self, event: UsageEvent) -> float | None:
        """USD cost of ``event``; None when its model is unpriced.

        An event that already carries ``cost_usd`` is not priced here: its producer cost is
        returned unchanged.
        """
        if event.cost_usd is not None:
            return event.cost_usd
        by_model = self._cache.get(event.provider)
        price = _MISS if by_model is None else by_model.get(event.model, _MISS)
        if price is _MISS:
            price = self._resolve_and_cache(event.provider, event.model)
        if price is None:
            return None
        cached = event.cached_input_tokens
        created = event.cache_creation_input_tokens
        reasoning = event.reasoning_tokens
        uncached = event.input_tokens - cached - created
        if uncached < 0:
            uncached = 0
        return (
            uncached * price.input
            + cached * price.cache_read
            + created * price.cache_write
            + (event.output_tokens - reasoning) * price.output
            + reasoning * price.reasoning
        )

    # -- resolution ---------------------------------------------------------------------------
    def _resolve_and_cache(self, provider: str, model: str) -> ModelPrice | None:
        price = self._resolve(provider, model)
        cache = self._cache
        if sum(len(m) for m in cache.values()) >= MAX_RESOLUTION_CACHE:
            cache.clear()
        cache.setdefault(provider, {})[model] = price
        return price

    def _resolve(self, provider: str, model: str) -> ModelPrice | None:
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
                    return price
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
