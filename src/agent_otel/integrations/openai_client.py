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

from . import _content
from ._common import as_int, usage_value
from ._stainless import Api, Response, StainlessIntegration, Usage


class OpenAIApi(Api):
    provider = "openai"
    paths = ("/chat/completions", "/responses", "/completions")

    def usage(self, body: Any) -> Usage:
        found = _usage(usage_value(body, "usage"), usage_value(body, "model"))
        _response_details(found.response, body)
        return found

    def stream_usage(self) -> _StreamUsage:
        return _StreamUsage()

    def input_messages(self, path: str, body: Any) -> list[dict[str, Any]]:
        if path.endswith("/responses"):
            return _content.responses_input(body.get("input"), body.get("instructions"))
        if path.endswith("/chat/completions"):
            return _content.openai_chat_input(body.get("messages"))
        prompt = body.get("prompt")
        return [_content.message("user", [_content.text(prompt)])] if prompt else []

    def output_messages(self, path: str, body: Any) -> list[dict[str, Any]]:
        if path.endswith("/responses"):
            reasons = Response()
            _response_details(reasons, body)
            return _content.responses_output(
                usage_value(body, "output"), next(iter(reasons.finish_reasons), None)
            )
        return _content.openai_chat_output(body)


def _response_details(response: Response, body: Any) -> None:
    """Id, finish reasons and requested tool call ids of a Chat Completion, Completion or Response."""
    response_id = usage_value(body, "id")
    if isinstance(response_id, str):
        response.response_id = response_id
    for choice in usage_value(body, "choices") or ():
        response.add_reason(usage_value(choice, "finish_reason"))
        for call in (
            usage_value(choice, "message", "tool_calls") or usage_value(choice, "delta", "tool_calls") or ()
        ):
            response.add_tool_call(usage_value(call, "id"))
    output = usage_value(body, "output")
    if output is not None:  # the Responses API
        calls = [item for item in output or () if usage_value(item, "type") == "function_call"]
        for item in calls:
            response.add_tool_call(usage_value(item, "call_id"))
        status = usage_value(body, "status")
        if status == "incomplete":
            response.add_reason(usage_value(body, "incomplete_details", "reason") or "incomplete")
        elif status == "completed":
            response.add_reason("tool_calls" if calls else "stop")


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
        self.input_tokens: int | None = None  # until a chunk reports usage (include_usage): unknown
        self.output_tokens: int | None = None
        self.model: str | None = None
        self.cached_input_tokens = 0
        self.cache_write_tokens = 0
        self.response = Response()
        self.failure: str | None = None

    def feed(self, event: Any) -> None:
        kind = usage_value(event, "type")
        if kind in ("response.failed", "error"):
            # The Responses API reports a failure mid-stream as an event; the SDK yields it and raises
            # nothing, so the step fails with the error's code (``server_error``, ``rate_limit_exceeded``...).
            code = usage_value(event, "response", "error", "code") or usage_value(event, "code")
            self.failure = code if isinstance(code, str) and code else kind
        response = usage_value(event, "response")
        source = response if response is not None and usage_value(event, "type") else event
        if response is None or usage_value(event, "type") in (
            "response.completed",
            "response.incomplete",
            "response.failed",
        ):
            _response_details(self.response, source)
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
