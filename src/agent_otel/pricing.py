"""Turning token usage into spend, so ``agent_spend_per_run_usd`` exists without a billing export.

Prices are USD per million tokens. The built-in table is small and dated on purpose: it covers the
models people start with, and the ``prices:`` config section overrides or extends it per model. A model
with no price contributes tokens but no spend (and ``doctor`` can say so); it never raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# USD per 1M tokens (input, output), list prices as published by the vendors in 2025-2026.
BUILTIN_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "o3": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
    "claude-opus-4": (15.00, 75.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
}


class PriceTable:
    """Looks up a model's price; dated model ids (``gpt-4o-2024-08-06``) fall back to their family."""

    def __init__(self, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._prices = dict(BUILTIN_PRICES)
        for model, price in (overrides or {}).items():
            self._prices[model] = (float(price.get("input", 0.0)), float(price.get("output", 0.0)))
        # Longest prefix first, so gpt-4o-mini-2024 matches gpt-4o-mini rather than gpt-4o.
        self._prefixes = sorted(self._prices, key=len, reverse=True)
        self._cache: dict[str, tuple[float, float] | None] = {}

    def price(self, model: str) -> tuple[float, float] | None:
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

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        price = self.price(model)
        if price is None:
            return None
        return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000
