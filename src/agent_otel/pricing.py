"""Turning token usage into spend, so ``agent_spend_per_run_usd`` exists without a billing export.

Prices are USD per million tokens. The built-in table is small and dated on purpose: it covers the
models people start with, and the ``prices:`` config section overrides or extends it per model. A model
with no price contributes tokens but no spend (and ``doctor`` can say so); it never raises.

Prompt caching changes the bill but not the token count: input tokens (``gen_ai.usage.input_tokens``)
always mean *all* input tokens, cached ones included, as the OpenTelemetry GenAI conventions define
them. Only the cost splits them: tokens read from a cache are charged at the model's ``cached_input``
price and tokens written to a cache at its ``cache_write`` price, the rest at ``input``. Charging every
input token at the base price overstated spend several-fold for agents that re-send a long cached
prompt on every step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple


class Price(NamedTuple):
    """USD per million tokens of one model.

    ``cached_input`` is the price of a token read from the provider's prompt cache, ``cache_write``
    of a token written to it. A price the vendor does not publish is the ``input`` price: OpenAI and
    Gemini charge nothing extra to write a cache, and a user's ``prices:`` entry that names no cache
    prices gets the input price for both (the conservative choice: never under-report spend).
    """

    input: float
    output: float
    cached_input: float
    cache_write: float


def _no_write_fee(input_price: float, output: float, cached_input: float) -> Price:
    """OpenAI caches automatically and bills no surcharge for the write; Gemini bills cache storage
    per hour, not per token. Either way a written token costs the input price here."""
    return Price(input_price, output, cached_input, input_price)


def _anthropic(input_price: float, output: float) -> Price:
    """Anthropic bills cache reads at 0.1x and 5-minute cache writes at 1.25x the input price."""
    return Price(input_price, output, round(input_price * 0.1, 6), round(input_price * 1.25, 6))


# List prices as published by the vendors in 2025-2026, USD per 1M tokens:
# (input, output, cached_input, cache_write). 1-hour Anthropic cache writes (2x input) are charged at
# the 5-minute price; the responses do not say which kind of write happened in all SDK versions.
BUILTIN_PRICES: dict[str, Price] = {
    "gpt-4o": _no_write_fee(2.50, 10.00, 1.25),
    "gpt-4o-mini": _no_write_fee(0.15, 0.60, 0.075),
    "gpt-4.1": _no_write_fee(2.00, 8.00, 0.50),
    "gpt-4.1-mini": _no_write_fee(0.40, 1.60, 0.10),
    "gpt-4.1-nano": _no_write_fee(0.10, 0.40, 0.025),
    "gpt-5": _no_write_fee(1.25, 10.00, 0.125),
    "gpt-5-mini": _no_write_fee(0.25, 2.00, 0.025),
    "o3": _no_write_fee(2.00, 8.00, 0.50),
    "o4-mini": _no_write_fee(1.10, 4.40, 0.275),
    "claude-opus-4": _anthropic(15.00, 75.00),
    "claude-sonnet-4": _anthropic(3.00, 15.00),
    "claude-3-5-haiku": _anthropic(0.80, 4.00),
    "claude-haiku-4-5": _anthropic(1.00, 5.00),
    "gemini-2.5-pro": _no_write_fee(1.25, 10.00, 0.125),
    "gemini-2.5-flash": _no_write_fee(0.30, 2.50, 0.03),
    # Gemini (Gemini Developer API and Vertex AI, standard tier; Pro prices are those of prompts up to
    # 200k tokens). The README's Prices section gives the source and date of each.
    "gemini-2.5-flash-lite": _no_write_fee(0.10, 0.40, 0.01),
    "gemini-3-flash": _no_write_fee(0.50, 3.00, 0.05),
    "gemini-3.1-pro": _no_write_fee(2.00, 12.00, 0.20),
    "gemini-3.1-flash-lite": _no_write_fee(0.25, 1.50, 0.025),
    "gemini-3.5-flash": _no_write_fee(1.50, 9.00, 0.15),
    "gemini-3.5-flash-lite": _no_write_fee(0.30, 2.50, 0.03),
    # Mistral AI (La Plateforme); no cached-input discount is published, so cached tokens cost input.
    "mistral-large-2512": _no_write_fee(0.50, 1.50, 0.50),
    "mistral-large-latest": _no_write_fee(0.50, 1.50, 0.50),
}


def _bedrock(price: Price, *model_ids: str, profiles: tuple[str, ...] = ("", "us.")) -> dict[str, Price]:
    """Bedrock on-demand prices by model id, and by the cross-region inference profiles that cost the same
    (``us.`` bills at the source region's price); other geographies differ and are left to ``prices:``."""
    return {profile + model_id: price for model_id in model_ids for profile in profiles}


# Amazon Bedrock, on-demand in us-east-1 (README, Prices). Claude 4.5 models bill a 10% premium on their
# regional profiles over the global one, so both are listed and the bare in-region ids are not.
BUILTIN_PRICES.update(
    {
        **_bedrock(
            _anthropic(3.00, 15.00), "anthropic.claude-sonnet-4-20250514", profiles=("", "us.", "global.")
        ),
        **_bedrock(_anthropic(3.00, 15.00), "anthropic.claude-3-7-sonnet-20250219"),
        **_bedrock(_anthropic(0.80, 4.00), "anthropic.claude-3-5-haiku-20241022"),
        **_bedrock(
            _anthropic(15.00, 75.00),
            "anthropic.claude-opus-4-20250514",
            "anthropic.claude-opus-4-1-20250805",
        ),
        "global.anthropic.claude-sonnet-4-5-20250929": _anthropic(3.00, 15.00),
        "us.anthropic.claude-sonnet-4-5-20250929": _anthropic(3.30, 16.50),
        "global.anthropic.claude-haiku-4-5-20251001": _anthropic(1.00, 5.00),
        "us.anthropic.claude-haiku-4-5-20251001": _anthropic(1.10, 5.50),
        "global.anthropic.claude-opus-4-5-20251101": _anthropic(5.00, 25.00),
        "us.anthropic.claude-opus-4-5-20251101": _anthropic(5.50, 27.50),
        **_bedrock(_no_write_fee(0.72, 0.72, 0.72), "meta.llama3-3-70b-instruct"),
        **_bedrock(_no_write_fee(0.035, 0.14, 0.00875), "amazon.nova-micro"),
        **_bedrock(_no_write_fee(0.06, 0.24, 0.015), "amazon.nova-lite"),
        **_bedrock(_no_write_fee(0.80, 3.20, 0.20), "amazon.nova-pro"),
        **_bedrock(_no_write_fee(2.00, 6.00, 2.00), "mistral.mistral-large-2407", profiles=("",)),
    }
)


def _configured(price: Mapping[str, Any]) -> Price:
    """A ``prices:`` entry; absent (or null) cache prices fall back to the entry's input price."""
    input_price = float(price.get("input") or 0.0)
    cached = price.get("cached_input")
    write = price.get("cache_write")
    return Price(
        input_price,
        float(price.get("output") or 0.0),
        input_price if cached is None else float(cached),
        input_price if write is None else float(write),
    )


class PriceTable:
    """Looks up a model's price; dated model ids (``gpt-4o-2024-08-06``) fall back to their family."""

    def __init__(self, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._prices: dict[str, Price] = dict(BUILTIN_PRICES)
        for model, price in (overrides or {}).items():
            self._prices[model] = _configured(price)
        # Longest prefix first, so gpt-4o-mini-2024 matches gpt-4o-mini rather than gpt-4o.
        self._prefixes = sorted(self._prices, key=len, reverse=True)
        self._cache: dict[str, Price | None] = {}

    def price(self, model: str) -> Price | None:
        try:
            return self._cache[model]
        except KeyError:
            pass
        found = self._prices.get(model)
        if found is None:
            bare = model.split("/")[-1]  # "openai/gpt-4o" as some routers name models
            for prefix in self._prefixes:
                if bare.startswith(prefix):
                    found = self._prices[prefix]
                    break
        if len(self._cache) < 4096:
            self._cache[model] = found
        return found

    def cost(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float | None:
        """Spend of one request; ``input_tokens`` counts all input, the cache counts are part of it.

        The cache counts are clamped to the input total, so a provider's inconsistent report never
        produces a negative uncached remainder (or spend beyond what the tokens can cost).
        """
        try:  # price(), its cache inlined (this runs per request)
            price = self._cache[model]
        except KeyError:
            price = self.price(model)
        if price is None:
            return None
        if type(input_tokens) is int and cached_input_tokens == 0 == cache_write_tokens:
            # No cache tokens (the usual request): the very sum below, term for term, without the int() and
            # clamping calls that only the cache counts need.
            return (
                (input_tokens if input_tokens > 0 else 0) * price.input
                + 0 * price.cached_input
                + 0 * price.cache_write
                + output_tokens * price.output
            ) / 1_000_000
        total = max(int(input_tokens), 0)
        cached = min(max(int(cached_input_tokens), 0), total)
        written = min(max(int(cache_write_tokens), 0), total - cached)
        uncached = total - cached - written
        return (
            uncached * price.input
            + cached * price.cached_input
            + written * price.cache_write
            + output_tokens * price.output
        ) / 1_000_000
