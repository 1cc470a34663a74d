"""OpenAI Python client: each model request is an LLM step (``chat {model}``) of the current run.

Covered: Chat Completions, Responses and legacy Completions, sync and async, plain and streamed (the
``stream()`` helpers too), on ``OpenAI``/``AsyncOpenAI`` and the Azure clients built on them. Usage comes
from the response's ``usage`` (``prompt_tokens``/``completion_tokens`` or ``input_tokens``/
``output_tokens``); cost from agent-otel's price table for the responding model. The input count
includes cached prompt tokens; the cached part (``prompt_tokens_details.cached_tokens`` or
``input_tokens_details.cached_tokens``) is passed on separately so that it is charged at the model's
discounted cached-input price rather than the full one; so is ``cache_write_tokens`` where newer API
versions report it (priced at the model's ``cache_write`` price, the input price unless configured).
A streamed Chat Completion reports usage only if the request asks for it
(``stream_options={"include_usage": True}``); agent-otel does not change requests, so without it the
step records zero tokens.
"""

from __future__ import annotations

from typing import Any

from ._common import as_int, usage_value
from ._stainless import Api, StainlessIntegration, Usage


class OpenAIApi(Api):
    paths = ("/chat/completions", "/responses", "/completions")

    def usage(self, body: Any) -> Usage:
        return _usage(usage_value(body, "usage"), usage_value(body, "model"))

    def stream_usage(self) -> _StreamUsage:
        return _StreamUsage()


def _usage(usage: Any, model: Any) -> Usage:
    """Chat Completions name the counts prompt/completion tokens, the Responses API input/output."""
    if usage is None:
        return Usage(model=model if isinstance(model, str) else None)
    input_tokens = usage_value(usage, "input_tokens")
    if input_tokens is None:
        input_tokens = usage_value(usage, "prompt_tokens")
    output_tokens = usage_value(usage, "output_tokens")
    if output_tokens is None:
        output_tokens = usage_value(usage, "completion_tokens")
    details = usage_value(usage, "input_tokens_details")
    if details is None:
        details = usage_value(usage, "prompt_tokens_details")
    return Usage(
        as_int(input_tokens),
        as_int(output_tokens),
        model if isinstance(model, str) else None,
        as_int(usage_value(details, "cached_tokens")),
        as_int(usage_value(details, "cache_write_tokens")),
    )


class _StreamUsage:
    """Chat Completions chunks carry ``usage`` on the last chunk (when asked); Responses events carry
    the final response, with usage, on ``response.completed`` / ``response.incomplete`` / ``failed``."""

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.model: str | None = None
        self.cached_input_tokens = 0
        self.cache_write_tokens = 0

    def feed(self, event: Any) -> None:
        response = usage_value(event, "response")
        source = response if response is not None and usage_value(event, "type") else event
        model = usage_value(source, "model")
        if isinstance(model, str) and model:
            self.model = model
        usage = usage_value(source, "usage")
        if usage is not None:
            found = _usage(usage, model)
            self.input_tokens, self.output_tokens = found.input_tokens, found.output_tokens
            self.cached_input_tokens = found.cached_input_tokens
            self.cache_write_tokens = found.cache_write_tokens


class OpenAIIntegration(StainlessIntegration):
    """Wraps ``openai._base_client`` ``SyncAPIClient.request`` / ``AsyncAPIClient.request``."""

    name = "openai"
    packages = ("openai",)
    api = OpenAIApi
