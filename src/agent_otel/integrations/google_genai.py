"""Google Gen AI SDK (``google-genai``): each Gemini request is an LLM step, each function the SDK calls
automatically is a tool step.

Requests: every model call of the SDK goes through its API client's ``request`` / ``request_streamed`` /
``async_request`` / ``async_request_streamed`` (``google.genai._api_client.BaseApiClient``), with the SDK's
retries inside. Wrapping those four and keeping the ``:generateContent`` / ``:streamGenerateContent`` posts
covers ``client.models.generate_content(_stream)``, their ``client.aio`` twins and chats
(``client.chats`` / ``client.aio.chats``) alike, on the Gemini Developer API (provider ``gcp.gemini``) and on
Vertex AI (``gcp.vertex_ai``). Each HTTP request the SDK makes for a call is one step: a call with
automatic function calling or automatic continuation makes several requests, and each is billed.

Usage (``usageMetadata``): input tokens are ``promptTokenCount`` (which already includes the cached
``cachedContentTokenCount``) plus ``toolUsePromptTokenCount`` (the results of built-in tools the API ran,
billed as input); output tokens are ``candidatesTokenCount`` plus ``thoughtsTokenCount`` (Gemini bills
thinking as output), so input + output is the API's ``totalTokenCount``. The cached part is priced at the
model's cached-input price; the thinking part is also reported as ``gen_ai.usage.reasoning.output_tokens``.
A stream reports cumulative usage on its chunks; the last one counts.

Automatic function calling: the SDK runs the Python functions passed as ``tools`` itself, through
``_extra_utils.invoke_function_from_dict_args(_async)``. Each such call is a tool step (name: the function's
``__name__``, arguments: the ones the model sent), begun before the function runs, so guards can stop it;
a replay serves the recorded result instead of running the function. The SDK turns a function's exception
into an ``{"error": ...}`` answer to the model, and still does: the tool step fails, the run goes on. A
guard's stop (or a replay's refusal) is not handed to the model: it leaves ``generate_content`` as it does
in every other integration.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from agent_otel.replay import ReplayError
from agent_otel.steps import active_run
from agent_otel.stop import AgentStopped

from . import Integration, _client, _content
from ._client import Reply, Watch
from ._common import (
    Patcher,
    as_int,
    await_or_serve,
    call_or_serve,
    refuse_outside_run,
    served,
    start_tool,
    usage_value,
)

_GENERATE = (":generateContent", ":streamGenerateContent")


# --- requests ---------------------------------------------------------------------------------------


def _target(client: Any, method: Any, path: Any) -> tuple[str, str] | None:
    """(provider, model) if this is a generateContent request, else None (pass it through)."""
    if str(method).lower() != "post" or not isinstance(path, str):
        return None
    resource, sep, verb = path.partition(":")
    if not sep or not (":" + verb).startswith(_GENERATE):
        return None
    model = resource.rsplit("/", 1)[-1] or "unknown"
    provider = "gcp.vertex_ai" if getattr(client, "vertexai", False) else "gcp.gemini"
    return provider, model


# generationConfig field -> the request parameter name agent-otel reads (OpenAI's naming).
_PARAMS = {
    "temperature": "temperature",
    "topP": "top_p",
    "topK": "top_k",
    "maxOutputTokens": "max_tokens",
    "seed": "seed",
    "stopSequences": "stop_sequences",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
}


def _params(request: Any) -> dict[str, Any]:
    config = usage_value(request, "generationConfig") or usage_value(request, "generation_config") or {}
    if not isinstance(config, dict):
        return {}
    out: dict[str, Any] = {}
    for key, name in _PARAMS.items():
        value = config.get(key)
        if value is None:  # the SDK's own dict form names them in snake_case
            value = config.get(name if name != "max_tokens" else "max_output_tokens")
        if value is not None:
            out[name] = value
    return out


def _begin(client: Any, method: Any, path: Any, request: Any, stream: bool) -> Any:
    target = _target(client, method, path)
    if target is None:
        return None
    provider, model = target
    return _client.begin(
        provider,
        model,
        _params(request),
        stream=stream,
        server=_base_url(client),
        messages=lambda: _content.gemini_input(request),
    )


def _base_url(client: Any) -> Any:
    try:
        return client.get_read_only_http_options().get("base_url")
    except Exception:
        return None


def read_body(reply: Reply, body: Any) -> None:
    """Fill ``reply`` from one GenerateContentResponse (a whole response or one stream chunk)."""
    data = json.loads(body) if isinstance(body, str | bytes) else body
    if not isinstance(data, dict):
        return
    usage = data.get("usageMetadata")
    if isinstance(usage, dict):  # cumulative in a stream: the latest chunk's counts replace earlier ones
        prompt = as_int(usage.get("promptTokenCount")) + as_int(usage.get("toolUsePromptTokenCount"))
        thoughts = as_int(usage.get("thoughtsTokenCount"))
        reply.input_tokens = prompt
        reply.output_tokens = as_int(usage.get("candidatesTokenCount")) + thoughts
        reply.cached_input_tokens = as_int(usage.get("cachedContentTokenCount"))
        reply.reasoning_tokens = thoughts
    reply.set_model(data.get("modelVersion"))
    reply.set_id(data.get("responseId"))
    for candidate in data.get("candidates") or ():
        reply.add_reason(usage_value(candidate, "finishReason"))
        for part in usage_value(candidate, "content", "parts") or ():
            reply.add_tool_call(usage_value(part, "functionCall", "id"))


def _feed(reply: Reply, chunk: Any) -> None:
    read_body(reply, getattr(chunk, "body", None))


def _finish_response(call: Any, response: Any) -> None:
    reply = _client.read("a Gemini response", lambda r: read_body(r, response.body))
    _client.finish(call, reply, output=lambda: _content.gemini_output(json.loads(response.body)))


def _wrap_request(original: Any) -> Any:
    @functools.wraps(original)
    def request(self: Any, http_method: Any, path: Any, request_dict: Any, *args: Any, **kwargs: Any) -> Any:
        call = _begin(self, http_method, path, request_dict, stream=False)
        if call is None:
            return original(self, http_method, path, request_dict, *args, **kwargs)
        with _client.sending(call):
            response = original(self, http_method, path, request_dict, *args, **kwargs)
        _finish_response(call, response)
        return response

    return request


def _wrap_async_request(original: Any) -> Any:
    @functools.wraps(original)
    async def async_request(
        self: Any, http_method: Any, path: Any, request_dict: Any, *args: Any, **kwargs: Any
    ) -> Any:
        call = _begin(self, http_method, path, request_dict, stream=False)
        if call is None:
            return await original(self, http_method, path, request_dict, *args, **kwargs)
        with _client.sending(call):
            response = await original(self, http_method, path, request_dict, *args, **kwargs)
        _finish_response(call, response)
        return response

    return async_request


def _wrap_request_streamed(original: Any) -> Any:
    """``request_streamed`` is a generator: the request is sent when it is first iterated, so the step
    begins then (a guard's stop is raised there), and its span is current while each chunk is read."""

    @functools.wraps(original)
    def request_streamed(
        self: Any, http_method: Any, path: Any, request_dict: Any, *args: Any, **kwargs: Any
    ) -> Any:
        call = _begin(self, http_method, path, request_dict, stream=True)
        chunks = original(self, http_method, path, request_dict, *args, **kwargs)
        yield from chunks if call is None else _client.observe(chunks, Watch(call, _feed))

    return request_streamed


def _wrap_async_request_streamed(original: Any) -> Any:
    @functools.wraps(original)
    async def async_request_streamed(
        self: Any, http_method: Any, path: Any, request_dict: Any, *args: Any, **kwargs: Any
    ) -> Any:
        call = _begin(self, http_method, path, request_dict, stream=True)
        if call is None:
            return await original(self, http_method, path, request_dict, *args, **kwargs)
        with _client.sending(call):
            chunks = await original(self, http_method, path, request_dict, *args, **kwargs)
        watch = Watch(call, _feed)
        observed = _client.aobserve(chunks, watch)
        watch.on_drop(observed)
        return observed

    return async_request_streamed


# --- automatic function calling ---------------------------------------------------------------------

#: Stops raised by agent-otel inside the SDK's function calls, which the SDK would hand to the model as an
#: error message; the wrapper of ``get_function_response_parts`` raises them once the SDK returns.
_stops: ContextVar[list[BaseException] | None] = ContextVar("agent_otel_genai_stops", default=None)


def _stash(exc: BaseException) -> None:
    stops = _stops.get()
    if stops is not None:
        stops.append(exc)


#: The (function name, call id) of each function call of the response whose functions the SDK is calling,
#: in order: the SDK hands the function its arguments only, so its step takes the id from here.
_call_ids: ContextVar[list[tuple[str, str]] | None] = ContextVar("agent_otel_genai_call_ids", default=None)


def _ids_of(response: Any) -> list[tuple[str, str]]:
    try:
        parts = response.candidates[0].content.parts or []
        calls = [part.function_call for part in parts if getattr(part, "function_call", None) is not None]
        return [(str(call.name), str(call.id)) for call in calls if call.id]
    except Exception:  # no candidates, no content: the SDK calls nothing either
        return []


def _call_id(name: str) -> str | None:
    ids = _call_ids.get()
    for i, (called, call_id) in enumerate(ids or ()):
        if called == name:
            del ids[i]  # type: ignore[union-attr]
            return call_id
    return None


def _tool_call(function: Any, args: Any) -> Any:
    """Begin the tool step of one automatic function call, or None (untraced)."""
    name = getattr(function, "__name__", None) or "tool"
    run = active_run()
    if run is None:
        refuse_outside_run(name)
        return None
    try:
        return start_tool(run, name, args if args is not None else {}, call_id=_call_id(name), fn=function)
    except (AgentStopped, ReplayError) as exc:
        _stash(exc)
        raise


@contextlib.contextmanager
def _noting(errors: list[BaseException]) -> Iterator[None]:
    """Around the function itself: keep its own exception (the SDK wraps it); a replay's refusal is
    stashed to be raised once the SDK returns."""
    try:
        yield
    except ReplayError as exc:
        _stash(exc)
        raise
    except BaseException as exc:
        errors.append(exc)
        raise


def _end_tool(call: Any, errors: list[BaseException], exc: BaseException | None, result: Any = None) -> None:
    if call.done:
        return
    if exc is None:
        call.ok(result)
    else:
        call.fail(errors[0] if errors else exc)  # the function's own error, not the SDK's wrapper of it


def _wrap_invoke(original: Any) -> Any:
    @functools.wraps(original)
    def invoke_function_from_dict_args(args: Any, function_to_invoke: Any) -> Any:
        call = _tool_call(function_to_invoke, args)
        if call is None:
            return original(args, function_to_invoke)
        errors: list[BaseException] = []

        @functools.wraps(function_to_invoke)  # the SDK reads its signature and type hints to convert args
        def run_function(**kwargs: Any) -> Any:
            with _noting(errors):
                return call_or_serve(call, served, function_to_invoke, **kwargs)

        try:
            result = original(args, run_function)
        except BaseException as exc:
            _end_tool(call, errors, exc)
            raise
        _end_tool(call, errors, None, result)
        return result

    return invoke_function_from_dict_args


def _wrap_invoke_async(original: Any) -> Any:
    @functools.wraps(original)
    async def invoke_function_from_dict_args_async(args: Any, function_to_invoke: Any) -> Any:
        call = _tool_call(function_to_invoke, args)
        if call is None:
            return await original(args, function_to_invoke)
        errors: list[BaseException] = []

        @functools.wraps(function_to_invoke)
        async def run_function(**kwargs: Any) -> Any:
            with _noting(errors):
                return await await_or_serve(call, served, function_to_invoke, **kwargs)

        try:
            result = await original(args, run_function)
        except BaseException as exc:
            _end_tool(call, errors, exc)
            raise
        _end_tool(call, errors, None, result)
        return result

    return invoke_function_from_dict_args_async


def _raise_stop(stops: list[BaseException]) -> None:
    if stops:
        raise stops[0]


def _wrap_response_parts(original: Any) -> Any:
    @functools.wraps(original)
    def get_function_response_parts(*args: Any, **kwargs: Any) -> Any:
        token = _stops.set([])
        ids = _call_ids.set(_ids_of(args[0] if args else kwargs.get("response")))
        try:
            parts = original(*args, **kwargs)
            _raise_stop(_stops.get() or [])
            return parts
        finally:
            _call_ids.reset(ids)
            _stops.reset(token)

    return get_function_response_parts


def _wrap_response_parts_async(original: Any) -> Any:
    @functools.wraps(original)
    async def get_function_response_parts_async(*args: Any, **kwargs: Any) -> Any:
        token = _stops.set([])
        ids = _call_ids.set(_ids_of(args[0] if args else kwargs.get("response")))
        try:
            parts = await original(*args, **kwargs)
            _raise_stop(_stops.get() or [])
            return parts
        finally:
            _call_ids.reset(ids)
            _stops.reset(token)

    return get_function_response_parts_async


class GoogleGenAIIntegration(Integration):
    """Wraps ``google.genai._api_client.BaseApiClient``'s four request methods and the SDK's automatic
    function calling helpers in ``google.genai._extra_utils``."""

    name = "google_genai"
    packages = ("google.genai",)

    def __init__(self) -> None:
        self._patcher = Patcher()

    def instrument(self) -> None:
        if self._patcher.applied:
            return
        api_client = importlib.import_module("google.genai._api_client").BaseApiClient
        extra = importlib.import_module("google.genai._extra_utils")
        wraps: list[tuple[Any, str, Callable[[Any], Any]]] = [
            (api_client, "request", _wrap_request),
            (api_client, "async_request", _wrap_async_request),
            (api_client, "request_streamed", _wrap_request_streamed),
            (api_client, "async_request_streamed", _wrap_async_request_streamed),
            (extra, "invoke_function_from_dict_args", _wrap_invoke),
            (extra, "invoke_function_from_dict_args_async", _wrap_invoke_async),
            (extra, "get_function_response_parts", _wrap_response_parts),
            (extra, "get_function_response_parts_async", _wrap_response_parts_async),
        ]
        for owner, attr, make in wraps:
            self._patcher.wrap(owner, attr, make)

    def uninstrument(self) -> None:
        self._patcher.restore()
