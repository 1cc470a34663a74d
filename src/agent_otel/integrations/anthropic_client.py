"""Anthropic Python client: each Messages request is an LLM step (``chat {model}``) of the current run.

Covered: ``messages.create`` (plain and ``stream=True``), ``messages.stream()``, ``messages.parse``
and the beta Messages API, sync and async. Input tokens follow the OpenTelemetry GenAI convention and
include cache reads and cache writes (``input_tokens + cache_creation_input_tokens +
cache_read_input_tokens``); in a stream they come from ``message_start`` and the output tokens from the
last ``message_delta``. The cache reads and writes are also passed on separately, because Anthropic
bills them at 0.1x and 1.25x the input price: counted as plain input they would overstate spend.

anthropic 2.x emits its own ``anthropic.messages.create`` CLIENT span for every request (with
``gen_ai.usage.*``) unless its tracing is off (``ANTHROPIC_OPEN_TELEMETRY=false`` or the client's
``open_telemetry`` option): agent-otel then adopts that span as the step's span instead of adding a
second ``chat`` span (see :mod:`agent_otel.native`).

The functions the SDK's tool runner runs itself (``@beta_tool``, toolset members) are tool steps begun
before they run and served by a replay, never run again: :mod:`agent_otel.integrations._anthropic_tools`.
"""

from __future__ import annotations

from typing import Any

from . import _anthropic_tools, _content
from ._common import as_int, usage_value
from ._stainless import Api, Response, StainlessIntegration, Usage


def _input_tokens(usage: Any) -> tuple[int, int, int]:
    """(all input tokens, cache reads, cache writes); Anthropic's ``input_tokens`` excludes the cache."""
    cache_read = as_int(usage_value(usage, "cache_read_input_tokens"))
    cache_write = as_int(usage_value(usage, "cache_creation_input_tokens"))
    return as_int(usage_value(usage, "input_tokens")) + cache_read + cache_write, cache_read, cache_write


def _tool_uses(response: Response, blocks: Any) -> None:
    for block in blocks or ():
        if usage_value(block, "type") in ("tool_use", "server_tool_use", "mcp_tool_use"):
            response.add_tool_call(usage_value(block, "id"))


class AnthropicApi(Api):
    provider = "anthropic"
    paths = ("/v1/messages",)

    def usage(self, body: Any) -> Usage:
        usage = usage_value(body, "usage")
        model = usage_value(body, "model")
        input_tokens, cache_read, cache_write = _input_tokens(usage)
        response = Response()
        response.response_id = usage_value(body, "id")
        response.add_reason(usage_value(body, "stop_reason"))
        _tool_uses(response, usage_value(body, "content"))
        if usage is None:  # no usage in the response: unknown, not 0
            return Usage(model=model if isinstance(model, str) else None, response=response)
        return Usage(
            input_tokens,
            as_int(usage_value(usage, "output_tokens")),
            model if isinstance(model, str) else None,
            cache_read,
            cache_write,
            response,
        )

    def stream_usage(self) -> _StreamUsage:
        return _StreamUsage()

    def input_messages(self, path: str, body: Any) -> list[dict[str, Any]]:
        return _content.anthropic_input(body)

    def output_messages(self, path: str, body: Any) -> list[dict[str, Any]]:
        return _content.anthropic_output(body)


class _StreamUsage:
    def __init__(self) -> None:
        self.input_tokens: int | None = None  # until message_start reports usage: unknown
        self.output_tokens: int | None = None
        self.model: str | None = None
        self.cached_input_tokens = 0
        self.cache_write_tokens = 0
        self.response = Response()
        self.failure: str | None = None  # an error event makes the SDK raise: the step fails with it

    def feed(self, event: Any) -> None:
        kind = usage_value(event, "type")
        if kind == "content_block_start":
            _tool_uses(self.response, [usage_value(event, "content_block")])
        elif kind == "message_start":
            message = usage_value(event, "message")
            response_id = usage_value(message, "id")
            if isinstance(response_id, str):
                self.response.response_id = response_id
            model = usage_value(message, "model")
            if isinstance(model, str) and model:
                self.model = model
            usage = usage_value(message, "usage")
            self.input_tokens, self.cached_input_tokens, self.cache_write_tokens = _input_tokens(usage)
            self.output_tokens = as_int(usage_value(usage, "output_tokens"))
        elif kind == "message_delta":
            self.response.add_reason(usage_value(event, "delta", "stop_reason"))
            usage = usage_value(event, "usage")
            # message_delta counts are cumulative; newer API versions repeat the input counts too.
            if usage_value(usage, "output_tokens") is not None:
                self.output_tokens = as_int(usage_value(usage, "output_tokens"))
            if usage_value(usage, "input_tokens") is not None:
                input_tokens, cache_read, cache_write = _input_tokens(usage)
                if self.input_tokens is None or input_tokens >= self.input_tokens:
                    self.input_tokens = input_tokens
                    self.cached_input_tokens = cache_read
                    self.cache_write_tokens = cache_write


class AnthropicIntegration(StainlessIntegration):
    """Wraps ``anthropic._base_client`` ``SyncAPIClient.request`` / ``AsyncAPIClient.request``."""

    name = "anthropic"
    packages = ("anthropic",)
    api = AnthropicApi

    def instrument(self) -> None:
        super().instrument()
        _anthropic_tools.instrument(self._patcher)  # the tool runner's own calls of the application's tools

    def uninstrument(self) -> None:
        _anthropic_tools.uninstrument()
        super().uninstrument()
