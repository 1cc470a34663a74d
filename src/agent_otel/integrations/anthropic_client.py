"""Anthropic Python client: each Messages request is an LLM step (``chat {model}``) of the current run.

Covered: ``messages.create`` (plain and ``stream=True``), ``messages.stream()``, ``messages.parse``
and the beta Messages API, sync and async. Input tokens follow the OpenTelemetry GenAI convention and
include cache reads and cache writes (``input_tokens + cache_creation_input_tokens +
cache_read_input_tokens``); in a stream they come from ``message_start`` and the output tokens from the
last ``message_delta``. The cache reads and writes are also passed on separately, because Anthropic
bills them at 0.1x and 1.25x the input price: counted as plain input they would overstate spend.
"""

from __future__ import annotations

from typing import Any

from ._common import as_int, usage_value
from ._stainless import Api, StainlessIntegration, Usage


def _input_tokens(usage: Any) -> tuple[int, int, int]:
    """(all input tokens, cache reads, cache writes); Anthropic's ``input_tokens`` excludes the cache."""
    cache_read = as_int(usage_value(usage, "cache_read_input_tokens"))
    cache_write = as_int(usage_value(usage, "cache_creation_input_tokens"))
    return as_int(usage_value(usage, "input_tokens")) + cache_read + cache_write, cache_read, cache_write


class AnthropicApi(Api):
    paths = ("/v1/messages",)

    def usage(self, body: Any) -> Usage:
        usage = usage_value(body, "usage")
        model = usage_value(body, "model")
        input_tokens, cache_read, cache_write = _input_tokens(usage)
        return Usage(
            input_tokens,
            as_int(usage_value(usage, "output_tokens")),
            model if isinstance(model, str) else None,
            cache_read,
            cache_write,
        )

    def stream_usage(self) -> _StreamUsage:
        return _StreamUsage()


class _StreamUsage:
    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.model: str | None = None
        self.cached_input_tokens = 0
        self.cache_write_tokens = 0

    def feed(self, event: Any) -> None:
        kind = usage_value(event, "type")
        if kind == "message_start":
            message = usage_value(event, "message")
            model = usage_value(message, "model")
            if isinstance(model, str) and model:
                self.model = model
            usage = usage_value(message, "usage")
            self.input_tokens, self.cached_input_tokens, self.cache_write_tokens = _input_tokens(usage)
            self.output_tokens = as_int(usage_value(usage, "output_tokens"))
        elif kind == "message_delta":
            usage = usage_value(event, "usage")
            # message_delta counts are cumulative; newer API versions repeat the input counts too.
            if usage_value(usage, "output_tokens") is not None:
                self.output_tokens = as_int(usage_value(usage, "output_tokens"))
            if usage_value(usage, "input_tokens") is not None:
                input_tokens, cache_read, cache_write = _input_tokens(usage)
                if input_tokens >= self.input_tokens:
                    self.input_tokens = input_tokens
                    self.cached_input_tokens = cache_read
                    self.cache_write_tokens = cache_write


class AnthropicIntegration(StainlessIntegration):
    """Wraps ``anthropic._base_client`` ``SyncAPIClient.request`` / ``AsyncAPIClient.request``."""

    name = "anthropic"
    packages = ("anthropic",)
    api = AnthropicApi
