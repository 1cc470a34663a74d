"""LiteLLM: each ``litellm.completion`` / ``litellm.acompletion`` is an LLM step of the current run,
whichever provider LiteLLM routes it to.

The step's provider is LiteLLM's routing (``litellm.get_llm_provider``) named as the GenAI conventions name
providers (``openai``, ``aws.bedrock``, ``gcp.vertex_ai``, ``gcp.gemini``, ``mistral_ai``, ``anthropic``...;
a provider the conventions do not list keeps LiteLLM's name, such as ``ollama``); its model is the model
LiteLLM resolved (``bedrock/anthropic.claude-...`` asks for ``anthropic.claude-...``). Usage comes from the
OpenAI-shaped ``usage`` LiteLLM returns for every provider: ``prompt_tokens`` (LiteLLM already counts cache
reads and writes in it), ``prompt_tokens_details.cached_tokens``, the cache writes
(``cache_creation_input_tokens``), ``completion_tokens`` and their ``reasoning_tokens``. Spend is agent-otel's
price table's (so ``prices:`` overrides apply); for a model the table does not know, LiteLLM's own
``response_cost`` is used, when LiteLLM computed one.

One logical request is one step: while LiteLLM's request is in flight it is the framework call
(:data:`agent_otel.integrations._common.framework_llm`), so the OpenAI client LiteLLM uses underneath for
OpenAI-compatible providers does not record it again, and ``acompletion`` (which runs ``completion`` in a
worker thread) and LiteLLM's own fallbacks and retries stay inside it.

A streamed answer (``stream=True``) stays LiteLLM's ``CustomStreamWrapper``; its step ends when it is
exhausted, closed, fails or is dropped. Its usage is the stream's ``usage`` chunk when the request asks for
one (``stream_options={"include_usage": True}``), else the usage LiteLLM keeps on the last chunk's hidden
parameters (what the provider reported; zero if it reported none). ``litellm.completion`` is patched on the
``litellm`` module: code that did ``from litellm import completion`` before ``setup()`` keeps the original.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from agent_otel.steps import internal_error

from . import Integration, _client, _content
from ._client import Reply, Watch
from ._common import Patcher, as_int, framework_call, usage_value

#: LiteLLM's provider names -> gen_ai.provider.name (the GenAI registry's well-known values).
PROVIDERS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "azure": "azure.ai.openai",
    "azure_text": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "codestral": "mistral_ai",
    "text-completion-codestral": "mistral_ai",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "watsonx": "ibm.watsonx.ai",
    "watsonx_text": "ibm.watsonx.ai",
    "ollama": "ollama",
    "ollama_chat": "ollama",
}


def _route(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[str | None, str | None, Any]:
    """(gen_ai.provider.name, model, base URL) of a completion call, as LiteLLM will route it."""
    model = kwargs.get("model", args[0] if args else None)
    api_base = kwargs.get("api_base") or kwargs.get("base_url")
    if not isinstance(model, str):
        return None, None, api_base
    try:
        get_llm_provider = importlib.import_module("litellm").get_llm_provider
        resolved, provider, _, resolved_base = get_llm_provider(
            model=model, custom_llm_provider=kwargs.get("custom_llm_provider"), api_base=api_base
        )
    except Exception:  # LiteLLM will raise its own error for this call; the step records it
        return None, model, api_base
    return PROVIDERS.get(provider, provider or None), resolved or model, resolved_base or api_base


def _begin(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    if framework_call() is not None:  # a framework (or an outer LiteLLM call) records this request
        return None
    provider, model, server = _route(args, kwargs)
    stream = bool(kwargs.get("stream"))
    messages = kwargs.get("messages", args[1] if len(args) > 1 else None)
    return _client.begin(
        provider,
        model,
        kwargs,
        stream=stream,
        server=server,
        messages=lambda: _content.openai_chat_input(messages),
    )


# --- responses ----------------------------------------------------------------------------------------


def read_usage(reply: Reply, usage: Any) -> None:
    """LiteLLM's OpenAI-shaped usage; ``prompt_tokens`` already includes cache reads and writes."""
    if usage is None:
        return
    reply.input_tokens = as_int(usage_value(usage, "prompt_tokens"))
    reply.output_tokens = as_int(usage_value(usage, "completion_tokens"))
    details = usage_value(usage, "prompt_tokens_details")
    cached = usage_value(details, "cached_tokens")
    if cached is None:
        cached = usage_value(usage, "cache_read_input_tokens")
    reply.cached_input_tokens = as_int(cached)
    written = usage_value(usage, "cache_creation_input_tokens")
    if written is None:
        written = usage_value(details, "cache_creation_tokens")
    reply.cache_write_tokens = as_int(written)
    reply.reasoning_tokens = as_int(usage_value(usage, "completion_tokens_details", "reasoning_tokens"))


def _hidden(obj: Any) -> dict[str, Any]:
    hidden = getattr(obj, "_hidden_params", None)
    return hidden if isinstance(hidden, dict) else {}


def _details(reply: Reply, response: Any) -> None:
    reply.set_id(usage_value(response, "id"))
    reply.set_model(usage_value(response, "model"))
    for choice in usage_value(response, "choices") or ():
        reply.add_reason(usage_value(choice, "finish_reason"))
        message = usage_value(choice, "message") or usage_value(choice, "delta")
        for tool_call in usage_value(message, "tool_calls") or ():
            reply.add_tool_call(usage_value(tool_call, "id"))


def read_response(reply: Reply, response: Any) -> None:
    _details(reply, response)
    read_usage(reply, usage_value(response, "usage"))
    reply_cost(reply, _hidden(response).get("response_cost"))


def reply_cost(reply: Reply, cost: Any) -> None:
    if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
        reply.cost_usd = float(cost)


class _StreamWatch(Watch):
    """Reads LiteLLM's stream chunks; the usage LiteLLM keeps on the last chunk is final only once the
    stream has ended, so it is read again then."""

    __slots__ = ("hidden",)

    def __init__(self, call: Any) -> None:
        super().__init__(call, _feed_chunk)
        self.hidden: dict[str, Any] = {}

    def event(self, event: Any) -> None:
        super().event(event)
        hidden = _hidden(event)
        if hidden:
            self.hidden = hidden

    def end(self) -> None:
        if not self.call.done and not self.reply.input_tokens and not self.reply.output_tokens:
            try:
                read_usage(self.reply, self.hidden.get("usage"))
            except Exception as exc:
                internal_error("reading a LiteLLM stream's usage", exc)
        super().end()


def _feed_chunk(reply: Reply, chunk: Any) -> None:
    _details(reply, chunk)
    usage = usage_value(chunk, "usage")
    if usage is not None:  # stream_options={"include_usage": True}: the usage chunk
        read_usage(reply, usage)


def _complete(call: Any, response: Any) -> Any:
    try:
        if hasattr(type(response), "__next__") and hasattr(type(response), "__anext__"):
            _client.watch_stream(response, _StreamWatch(call))
            return response
        reply = _client.read("a LiteLLM response", lambda r: read_response(r, response))
        _client.finish(call, reply, output=lambda: _content.openai_chat_output(response))
    except Exception as exc:
        internal_error("reading a LiteLLM response", exc)
        if not call.done:
            call.finish()
    return response


# --- the wrappers ---------------------------------------------------------------------------------


def _wrap_completion(original: Any) -> Any:
    @functools.wraps(original)
    def completion(*args: Any, **kwargs: Any) -> Any:
        call = _begin(args, kwargs)
        if call is None:
            return original(*args, **kwargs)
        with _client.sending(call, framework=True):
            response = original(*args, **kwargs)
        return _complete(call, response)

    return completion


def _wrap_acompletion(original: Any) -> Any:
    @functools.wraps(original)
    async def acompletion(*args: Any, **kwargs: Any) -> Any:
        call = _begin(args, kwargs)
        if call is None:
            return await original(*args, **kwargs)
        with _client.sending(call, framework=True):
            response = await original(*args, **kwargs)
        return _complete(call, response)

    return acompletion


#: The stream whose ``__next__`` is running in this context: LiteLLM closes a stream from inside it, at its
#: end and when the provider's stream broke off (before raising the error); that close is not the consumer
#: leaving early, so ``__next__`` ends the step itself (a broken stream is a failed request, not an ok one).
_reading: ContextVar[Any] = ContextVar("agent_otel_litellm_reading", default=None)


def _wrap_close(original: Any) -> Any:
    ends = _client.wrap_close(original)

    @functools.wraps(original)
    def close(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _reading.get() is self:
            return original(self, *args, **kwargs)
        return ends(self, *args, **kwargs)

    return close


def _wrap_aclose(original: Any) -> Any:
    ends = _client.wrap_aclose(original)

    @functools.wraps(original)
    async def aclose(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _reading.get() is self:
            return await original(self, *args, **kwargs)
        return await ends(self, *args, **kwargs)

    return aclose


def _wrap_next(original: Any) -> Any:
    @functools.wraps(original)
    def __next__(self: Any) -> Any:
        watch = _client.watch_of(self)
        if watch is None:
            return original(self)
        reading = _reading.set(self)
        try:
            chunk = original(self)
        except StopIteration:
            watch.end()
            raise
        except BaseException as exc:
            watch.error(exc)
            raise
        finally:
            _reading.reset(reading)
        watch.event(chunk)
        return chunk

    return __next__


def _wrap_anext(original: Any) -> Any:
    @functools.wraps(original)
    async def __anext__(self: Any) -> Any:
        watch = _client.watch_of(self)
        if watch is None:
            return await original(self)
        reading = _reading.set(self)
        try:
            chunk = await original(self)
        except StopAsyncIteration:
            watch.end()
            raise
        except BaseException as exc:
            watch.error(exc)
            raise
        finally:
            _reading.reset(reading)
        watch.event(chunk)
        return chunk

    return __anext__


class LiteLLMIntegration(Integration):
    """Wraps ``litellm.completion`` / ``litellm.acompletion`` and the iteration of LiteLLM's
    ``CustomStreamWrapper`` (only streams of recorded calls are read)."""

    name = "litellm"
    packages = ("litellm",)

    def __init__(self) -> None:
        self._patcher = Patcher()

    def instrument(self) -> None:
        if self._patcher.applied:
            return
        litellm = importlib.import_module("litellm")
        streams = importlib.import_module("litellm.litellm_core_utils.streaming_handler").CustomStreamWrapper
        self._patcher.wrap(litellm, "completion", _wrap_completion)
        self._patcher.wrap(litellm, "acompletion", _wrap_acompletion)
        self._patcher.wrap(streams, "__next__", _wrap_next)
        self._patcher.wrap(streams, "__anext__", _wrap_anext)
        self._patcher.wrap(streams, "close", _wrap_close)
        self._patcher.wrap(streams, "aclose", _wrap_aclose)

    def uninstrument(self) -> None:
        self._patcher.restore()
