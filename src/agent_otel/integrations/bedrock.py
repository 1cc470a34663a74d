"""Amazon Bedrock through boto3 (``bedrock-runtime``): each model request is an LLM step of the current run.

Every call of a botocore client goes through ``BaseClient._make_api_call``; wrapping it and keeping the
``bedrock-runtime`` operations ``Converse``, ``ConverseStream``, ``InvokeModel`` and
``InvokeModelWithResponseStream`` covers every ``boto3.client("bedrock-runtime")`` (and botocore's own
``Stubber``, which answers inside that call). Provider ``aws.bedrock``; the model is the ``modelId`` as sent
(a model id, an inference profile such as ``us.anthropic.claude-...`` or an ARN); the response id is the
AWS request id (Bedrock responses carry no other).

Usage: Converse reports ``inputTokens`` without the prompt cache, so input tokens are ``inputTokens +
cacheReadInputTokens + cacheWriteInputTokens`` (the cache parts priced at the model's cache prices), and
output tokens ``outputTokens``; a ConverseStream reports them on its ``metadata`` event. InvokeModel bodies
differ by model family: usage is read from the body where it has it (Anthropic's ``usage`` with its cache
counts, Nova's ``usage``, Llama's ``prompt_token_count``/``generation_token_count``, Titan's counts), else
from Bedrock's ``X-Amzn-Bedrock-Input-Token-Count`` / ``-Output-Token-Count`` headers, which every model
has. Reading the body means reading it before the caller does: the caller gets a ``StreamingBody`` over the
same bytes. A response stream of InvokeModelWithResponseStream ends with Bedrock's
``amazon-bedrock-invocationMetrics``, which has the counts for every model family.

Streams (the ``stream`` of ConverseStream, the ``body`` of InvokeModelWithResponseStream) stay botocore's
``EventStream`` objects; their step ends when the stream is exhausted, closed, fails, or is dropped.
boto3 has no async client; aiobotocore is not instrumented.
"""

from __future__ import annotations

import functools
import importlib
import io
import json
from typing import Any

from agent_otel.steps import internal_error

from . import Integration, _client, _content
from ._client import Reply, Watch
from ._common import Patcher, as_int, usage_value

PROVIDER = "aws.bedrock"
SERVICE = "bedrock-runtime"
OPERATIONS = ("Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream")


# --- requests ---------------------------------------------------------------------------------------


def _converse_params(params: dict[str, Any]) -> dict[str, Any]:
    config = params.get("inferenceConfig") or {}
    out = {
        "max_tokens": config.get("maxTokens"),
        "temperature": config.get("temperature"),
        "top_p": config.get("topP"),
        "stop_sequences": config.get("stopSequences"),
    }
    extra = params.get("additionalModelRequestFields")
    if isinstance(extra, dict):
        out["top_k"] = extra.get("top_k")
    return out


def _invoke_params(params: dict[str, Any]) -> dict[str, Any]:
    """Request parameters of an InvokeModel body, whichever model family's format it is in."""
    body = params.get("body")
    try:
        data = json.loads(body) if isinstance(body, str | bytes | bytearray) else None
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    nested = data.get("inferenceConfig") or data.get("textGenerationConfig") or {}
    pick = {**data, **nested} if isinstance(nested, dict) else data
    return {
        "max_tokens": _first(
            pick, "max_tokens", "maxTokens", "max_new_tokens", "max_gen_len", "maxTokenCount"
        ),
        "temperature": pick.get("temperature"),
        "top_p": _first(pick, "top_p", "topP"),
        "top_k": _first(pick, "top_k", "topK"),
        "stop_sequences": _first(pick, "stop_sequences", "stopSequences", "stop"),
    }


def _first(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if data.get(key) is not None:
            return data[key]
    return None


def _begin(client: Any, operation: str, params: dict[str, Any]) -> Any:
    model = params.get("modelId")
    converse = operation.startswith("Converse")
    try:
        request = _converse_params(params) if converse else _invoke_params(params)
    except Exception as exc:  # malformed parameters are botocore's to reject, not agent-otel's
        internal_error("reading a Bedrock request", exc)
        request = {}
    stream = operation.endswith("Stream")
    endpoint = getattr(getattr(client, "meta", None), "endpoint_url", None)
    messages = (lambda: _content.converse_input(params)) if converse else None
    return _client.begin(
        PROVIDER, str(model) if model else None, request, stream=stream, server=endpoint, messages=messages
    )


# --- responses ----------------------------------------------------------------------------------------


def _request_id(reply: Reply, response: Any) -> None:
    reply.set_id(usage_value(response, "ResponseMetadata", "RequestId"))


def _converse_usage(reply: Reply, usage: Any) -> None:
    cache_read = as_int(usage_value(usage, "cacheReadInputTokens"))
    cache_write = as_int(usage_value(usage, "cacheWriteInputTokens"))
    reply.input_tokens = as_int(usage_value(usage, "inputTokens")) + cache_read + cache_write
    reply.output_tokens = as_int(usage_value(usage, "outputTokens"))
    reply.cached_input_tokens = cache_read
    reply.cache_write_tokens = cache_write


def read_converse(reply: Reply, response: Any) -> None:
    _request_id(reply, response)
    _converse_usage(reply, usage_value(response, "usage"))
    reply.add_reason(usage_value(response, "stopReason"))
    for block in usage_value(response, "output", "message", "content") or ():
        reply.add_tool_call(usage_value(block, "toolUse", "toolUseId"))


def feed_converse_stream(reply: Reply, event: Any) -> None:
    if not isinstance(event, dict):
        return
    if "metadata" in event:
        _converse_usage(reply, usage_value(event, "metadata", "usage"))
    elif "messageStop" in event:
        reply.add_reason(usage_value(event, "messageStop", "stopReason"))
    elif "contentBlockStart" in event:
        reply.add_tool_call(usage_value(event, "contentBlockStart", "start", "toolUse", "toolUseId"))


def read_invoke_body(reply: Reply, data: Any) -> bool:
    """Usage and details from an InvokeModel body (or one chunk of a response stream) of any family.

    Returns whether the body had usage (else Bedrock's token count headers are used).
    """
    if not isinstance(data, dict):
        return False
    found = False
    metrics = data.get("amazon-bedrock-invocationMetrics")
    if isinstance(metrics, dict):  # the last chunk of every response stream
        # Like Converse's usage and the token count headers, the input count leaves the cache out.
        cache_read = as_int(metrics.get("cacheReadInputTokenCount"))
        cache_write = as_int(metrics.get("cacheWriteInputTokenCount"))
        total = as_int(metrics.get("inputTokenCount")) + cache_read + cache_write
        if reply.input_tokens is None or total >= reply.input_tokens:
            reply.input_tokens = total
            reply.cached_input_tokens, reply.cache_write_tokens = cache_read, cache_write
        reply.output_tokens = as_int(metrics.get("outputTokenCount"))
        found = True
    message = data.get("message") if data.get("type") == "message_start" else data
    usage = usage_value(message, "usage")
    if isinstance(usage, dict) and not isinstance(metrics, dict):
        if "input_tokens" in usage or "output_tokens" in usage:  # Anthropic: input excludes the cache
            cache_read = as_int(usage.get("cache_read_input_tokens"))
            cache_write = as_int(usage.get("cache_creation_input_tokens"))
            if "input_tokens" in usage:
                reply.input_tokens = as_int(usage.get("input_tokens")) + cache_read + cache_write
                reply.cached_input_tokens, reply.cache_write_tokens = cache_read, cache_write
            reply.output_tokens = as_int(usage.get("output_tokens"))
            found = True
        elif "inputTokens" in usage:  # Nova (its cache counts are named ...Count here)
            cache_read = as_int(usage.get("cacheReadInputTokenCount"))
            cache_write = as_int(usage.get("cacheWriteInputTokenCount"))
            reply.input_tokens = as_int(usage.get("inputTokens")) + cache_read + cache_write
            reply.output_tokens = as_int(usage.get("outputTokens"))
            reply.cached_input_tokens, reply.cache_write_tokens = cache_read, cache_write
            found = True
    if "prompt_token_count" in data or "generation_token_count" in data:  # Llama
        reply.input_tokens = as_int(data.get("prompt_token_count")) or reply.input_tokens
        reply.output_tokens = as_int(data.get("generation_token_count")) or reply.output_tokens
        found = True
    if "inputTextTokenCount" in data:  # Titan
        reply.input_tokens = as_int(data.get("inputTextTokenCount"))
        reply.output_tokens = sum(as_int(r.get("tokenCount")) for r in data.get("results") or ())
        found = True
    if data.get("type") == "message" or data.get("type") == "message_start":
        reply.set_id(usage_value(message, "id"))
        reply.set_model(usage_value(message, "model"))
    delta = data.get("delta") if isinstance(data.get("delta"), dict) else {}
    for reason in (data.get("stop_reason"), data.get("stopReason"), delta.get("stop_reason")):
        reply.add_reason(reason)
    for key in ("choices", "outputs", "results"):  # OpenAI-style, Mistral, Titan
        for item in data.get(key) or ():
            if isinstance(item, dict):
                reply.add_reason(
                    item.get("finish_reason") or item.get("stop_reason") or item.get("completionReason")
                )
    for block in data.get("content") or ():
        if isinstance(block, dict) and block.get("type") == "tool_use":
            reply.add_tool_call(block.get("id"))
    start = data.get("content_block")
    if isinstance(start, dict) and start.get("type") == "tool_use":
        reply.add_tool_call(start.get("id"))
    return found


def _header_usage(reply: Reply, response: Any) -> None:
    headers = usage_value(response, "ResponseMetadata", "HTTPHeaders") or {}
    if (
        "x-amzn-bedrock-input-token-count" not in headers
        and "x-amzn-bedrock-output-token-count" not in headers
    ):
        return  # no usage reported: unknown, not 0
    reply.input_tokens = as_int(headers.get("x-amzn-bedrock-input-token-count"))
    reply.output_tokens = as_int(headers.get("x-amzn-bedrock-output-token-count"))
    reply.cached_input_tokens = as_int(headers.get("x-amzn-bedrock-cache-read-input-token-count"))
    reply.cache_write_tokens = as_int(headers.get("x-amzn-bedrock-cache-write-input-token-count"))
    reply.input_tokens += reply.cached_input_tokens + reply.cache_write_tokens


class _Unreadable(io.RawIOBase):
    """The body of a response whose reading failed: the caller's read raises what agent-otel's did."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        raise self.error


def _reread_body(response: dict[str, Any]) -> bytes | None:
    """Read an InvokeModel response body and give the caller a StreamingBody over the same bytes (or,
    if reading it failed, one whose read raises that error, as the caller's own read would have)."""
    body = response.get("body")
    read = getattr(body, "read", None)
    if read is None:
        return None
    streaming = importlib.import_module("botocore.response").StreamingBody
    try:
        data = read()
    except Exception as exc:
        response["body"] = streaming(_Unreadable(exc), None)
        raise
    response["body"] = streaming(io.BytesIO(data), len(data))
    return data if isinstance(data, bytes) else None


def read_invoke(reply: Reply, response: Any, data: bytes | None) -> None:
    _request_id(reply, response)
    body: Any = None
    if data:
        try:
            body = json.loads(data)
        except ValueError:
            body = None
    if not read_invoke_body(reply, body):
        _header_usage(reply, response)


def feed_invoke_stream(reply: Reply, event: Any) -> None:
    raw = usage_value(event, "chunk", "bytes")
    if isinstance(raw, bytes | str):
        read_invoke_body(reply, json.loads(raw))


# --- the wrapper ------------------------------------------------------------------------------------


def _watch_stream(response: Any, key: str, watch: Watch) -> bool:
    stream = response.get(key) if isinstance(response, dict) else None
    if stream is None:
        return False
    _client.watch_stream(stream, watch)
    return True


def _complete(call: Any, operation: str, response: Any) -> None:
    """End the step from a response, or hand its event stream the step to end."""
    try:
        if operation == "ConverseStream":
            watch = Watch(call, feed_converse_stream)
            _request_id(watch.reply, response)
            if _watch_stream(response, "stream", watch):
                return
        elif operation == "InvokeModelWithResponseStream":
            watch = Watch(call, feed_invoke_stream)
            _request_id(watch.reply, response)
            if _watch_stream(response, "body", watch):
                return
        elif operation == "Converse":
            reply = _client.read("a Bedrock Converse response", lambda r: read_converse(r, response))
            _client.finish(call, reply, output=lambda: _content.converse_output(response))
            return
        else:
            try:
                data = _reread_body(response) if isinstance(response, dict) else None
            except Exception as exc:  # the response broke off: the request failed after all
                _client.fail(call, exc)
                return
            reply = _client.read("a Bedrock InvokeModel response", lambda r: read_invoke(r, response, data))
            _client.finish(call, reply)
            return
    except Exception as exc:
        internal_error("reading a Bedrock response", exc)
    if not call.done:
        call.finish()


def _wrap_make_api_call(original: Any) -> Any:
    @functools.wraps(original)
    def _make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        call = None
        if operation_name in OPERATIONS and _service(self) == SERVICE and isinstance(api_params, dict):
            call = _begin(self, operation_name, api_params)
        if call is None:
            return original(self, operation_name, api_params)
        with _client.sending(call):
            response = original(self, operation_name, api_params)
        _complete(call, operation_name, response)
        return response

    return _make_api_call


def _service(client: Any) -> str | None:
    try:
        return client.meta.service_model.service_name
    except Exception:
        return None


def _wrap_iter(original: Any) -> Any:
    @functools.wraps(original)
    def __iter__(self: Any) -> Any:
        watch = _client.watch_of(self)
        events = original(self)
        return events if watch is None else _client.observe(events, watch)

    return __iter__


class BedrockIntegration(Integration):
    """Wraps ``botocore.client.BaseClient._make_api_call`` (bedrock-runtime model operations only) and the
    iteration of botocore's ``EventStream`` (only streams of those operations are read)."""

    name = "bedrock"
    packages = ("botocore",)

    def __init__(self) -> None:
        self._patcher = Patcher()

    def instrument(self) -> None:
        if self._patcher.applied:
            return
        base = importlib.import_module("botocore.client").BaseClient
        event_stream = importlib.import_module("botocore.eventstream").EventStream
        self._patcher.wrap(base, "_make_api_call", _wrap_make_api_call)
        self._patcher.wrap(event_stream, "__iter__", _wrap_iter)
        self._patcher.wrap(event_stream, "close", _client.wrap_close)

    def uninstrument(self) -> None:
        self._patcher.restore()
