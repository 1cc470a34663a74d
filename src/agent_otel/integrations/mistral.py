"""Mistral's SDK (``mistralai``): each model request and each turn of an agent is an LLM step.

Requests: ``client.chat.complete`` / ``complete_async`` / ``stream`` / ``stream_async``, the same four of
``client.agents`` (an agent's completion), and the Agents / Conversations API's turns,
``client.beta.conversations.start`` / ``append`` / ``restart``, their ``_async`` twins and their
``_stream`` variants. Each call is one ``chat {model}`` step of the current run, provider ``mistral_ai``,
begun before the request is sent (a guard may stop it: nothing is sent), with the SDK's retries inside it.
Usage is the response's ``usage`` (``prompt_tokens`` / ``completion_tokens``; the cached part, if the API
reports it, in ``prompt_tokens_details.cached_tokens``); a stream's comes with its last chunk (chat) or its
``conversation.response.done`` event (a turn), the API sending it when the stream ends. A turn runs the
agent in Mistral's service: it is one request, with the turn's usage, and its model is the one its
messages name. A streamed step ends when its stream is exhausted, closed (``with`` or ``close()``), breaks
off (failed, with the usage seen until then) or is dropped unread. An exception of the SDK fails the step
and passes through unchanged (``model_error`` if it ends the run).

Server-side tools: a tool the API ran during a turn (web search, code interpreter...: a ``tool.execution``
output, or ``tool.execution.started`` / ``done`` events in a stream) is a tool step of its own after the
turn's step, timed as the API reports it. It has already run, so its step is recorded after the fact,
without guard checks (the run's next step is checked), like a tool step the GenAI span bridge records.

With Mistral's own tracing on (``MISTRAL_SDK_TELEMETRY=global`` or ``configure_telemetry(client,
provider="global")``), the SDK starts its own span for each request, named after the API operation and
labelled a GenAI span only afterwards. The step's span is then that span (adopted when the SDK's tracing
hook starts it, as anthropic's is), so the request is one step and its usage is on one span; the SDK ends
its span before the response reaches the integration, so that end is held until the step has added its
spend. The SDK starts a span per attempt of a request it retries and ends only the last: that one is the
step's. The bridge then records the server-side tools of a turn that is not streamed from the child spans
the SDK makes of them; the integration records only those of streamed turns, of which the SDK makes none.
Without Mistral's tracing (the default), or with its ``dedicated`` provider (another TracerProvider, which
agent-otel leaves alone), the step's span is agent-otel's own ``chat {model}`` span (with content capture
on, with the request's and the response's messages).

Outside any run, and inside an LLM call a framework integration records itself (``_client.begin``),
requests pass through untouched, as with the other client integrations.

The local functions ``mistralai.extra.run`` runs between a conversation's turns are tool steps begun
before they run and served by a replay, never run again: :mod:`agent_otel.integrations._mistral_run`.
"""

from __future__ import annotations

import functools
import importlib
import json
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from agent_otel import conventions as c
from agent_otel import native, steps
from agent_otel.hashing import sha
from agent_otel.llm import LLMCall
from agent_otel.replay import unserved
from agent_otel.steps import active_run, internal_error, span_binding
from agent_otel.tools import ToolCall, ToolOptions

from . import Integration, _client, _content, _mistral_run
from ._client import Reply, Watch
from ._common import Patcher, as_int, parse_json_args, usage_value

PROVIDER = "mistral_ai"
#: Mistral's names of request parameters -> the names agent-otel reads (OpenAI's).
_PARAMS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "max_tokens",
    "random_seed": "seed",
    "stop": "stop",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "n": "n",
    "response_format": "response_format",
}
#: The event of a streamed turn that failed in Mistral's service (its step's ``error.type``).
_TURN_ERROR = "conversation.response.error"
#: A turn's connector usage on its step's span (see connector_usage).
CONNECTOR_TOKENS = "mistral.usage.connector_tokens"
CONNECTORS = "mistral.usage.connectors"
#: Where the SDK's tracing hook keeps a request's span (``mistralai.client._hooks.tracing``).
_SPAN_KEY = "_tracing_span"

#: The request of this context whose span the SDK's tracing hook may start now.
_inflight: ContextVar[Request | None] = ContextVar("agent_otel_mistral_request", default=None)


# --- what a response says ---------------------------------------------------------------------------


def _usage(reply: Reply, usage: Any) -> None:
    if usage is None:
        return
    reply.input_tokens = as_int(usage_value(usage, "prompt_tokens"))
    reply.output_tokens = as_int(usage_value(usage, "completion_tokens"))
    reply.cached_input_tokens = as_int(usage_value(usage, "prompt_tokens_details", "cached_tokens"))


def _choices(reply: Reply, choices: Any, part: str) -> None:
    for choice in choices or ():
        reply.add_reason(usage_value(choice, "finish_reason"))
        for tool_call in usage_value(choice, part, "tool_calls") or ():
            reply.add_tool_call(usage_value(tool_call, "id"))


def read_completion(reply: Reply, body: Any) -> None:
    """A chat / agents completion (``ChatCompletionResponse``), or one chunk of its stream."""
    reply.set_id(usage_value(body, "id"))
    reply.set_model(usage_value(body, "model"))
    _choices(reply, usage_value(body, "choices"), "message")
    _usage(reply, usage_value(body, "usage"))


def _feed_chunk(reply: Reply, event: Any) -> None:
    chunk = usage_value(event, "data")
    reply.set_id(usage_value(chunk, "id"))
    reply.set_model(usage_value(chunk, "model"))
    _choices(reply, usage_value(chunk, "choices"), "delta")
    _usage(reply, usage_value(chunk, "usage"))  # only the last chunk has it


def read_turn(reply: Reply, body: Any) -> None:
    """A turn's ``ConversationResponse``: its usage, and the model its messages name."""
    for output in usage_value(body, "outputs") or ():
        kind = usage_value(output, "type")
        if kind == "message.output":
            reply.set_model(usage_value(output, "model"))
        elif kind == "function.call":
            reply.add_tool_call(usage_value(output, "tool_call_id"))
    _usage(reply, usage_value(body, "usage"))


def _chat_input(messages: Any) -> list[dict[str, Any]]:
    """Content capture: a chat request's messages (dicts or the SDK's models) in the GenAI form."""
    return _content.openai_chat_input(list(messages or ()))


def _turn_input(inputs: Any) -> list[dict[str, Any]]:
    """Content capture: a turn's inputs (text, or message entries) in the GenAI form."""
    if isinstance(inputs, str):
        return [_content.message("user", [_content.text(inputs)])]
    return _content.openai_chat_input([i for i in inputs or () if usage_value(i, "role")])


def _turn_output(body: Any) -> list[dict[str, Any]]:
    """Content capture: the messages of a turn's outputs."""
    return [
        _content.message(usage_value(o, "role") or "assistant", [_content.text(usage_value(o, "content"))])
        for o in usage_value(body, "outputs") or ()
        if usage_value(o, "type") == "message.output" and isinstance(usage_value(o, "content"), str)
    ]


# --- server-side tools ------------------------------------------------------------------------------


class _EndsAt:
    """A span whose ``end()`` ends it at the time the API reported (the rest is the span's own)."""

    __slots__ = ("_end_ns", "_span")

    def __init__(self, span: Any, end_ns: int) -> None:
        self._span = span
        self._end_ns = end_ns

    def end(self, end_time: int | None = None) -> None:
        self._span.end(self._end_ns)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._span, name)


class ServiceToolCall(ToolCall):
    """A tool Mistral's service ran during a turn: recorded after the fact, spanning the API's times."""

    __slots__ = ("end_ns",)

    def __init__(self, run: Any, name: str, args: Any, call_id: str | None, end_ns: int | None) -> None:
        super().__init__(run, ToolOptions(name=name, type="extension"), args, sha(args), call_id, None)
        self.end_ns = end_ns

    def end(
        self,
        attributes: dict[str, Any],
        exc: BaseException | str | None = None,
        description: str | None = None,
        end_span: bool = True,
        checked: bool = False,
    ) -> tuple[float, Any]:
        if self.end_ns is None:
            return super().end(attributes, exc, description, end_span, checked)
        span = self.span
        self.span = _EndsAt(span, self.end_ns)
        try:
            return super().end(attributes, exc, description, end_span, checked)
        finally:
            self.span = span


def _ns(value: Any) -> int | None:
    timestamp = getattr(value, "timestamp", None)
    if timestamp is None:
        return None
    try:
        return int(timestamp() * 1e9)
    except (TypeError, ValueError, OverflowError):
        return None


def record_service_tool(
    run: Any, name: Any, arguments: Any, call_id: Any, info: Any, started: Any, ended: Any
) -> None:
    """One tool execution the API reported, as a tool step (never raises)."""
    try:
        start_ns, end_ns = _ns(started), _ns(ended)
        timed = start_ns is not None and end_ns is not None and end_ns >= start_ns
        call = ServiceToolCall(
            run,
            str(name or "tool"),
            parse_json_args(arguments),
            call_id if isinstance(call_id, str) and call_id else None,
            end_ns if timed else None,
        )
        if steps.begin(call, checks=False, attach=False, start_time_ns=start_ns if timed else None) is None:
            return
        if call.replay is not None:
            unserved(call, "Mistral's service ran it")
        if start_ns is not None and end_ns is not None and timed:
            call.back_date((end_ns - start_ns) / 1e6)
        call.ok(info if info is not None else {})
    except Exception as exc:
        internal_error("recording a tool Mistral's service ran", exc)


def record_handoff(run: Any, from_agent: Any, to_agent: Any) -> None:
    """A handoff the service made during a turn (an ``agent.handoff`` output, or a stream's
    ``agent.handoff.started`` / ``done`` events): an ``agent.handoff`` event on the run span, as for an
    Agents SDK handoff (never raises). The turn stays one step: the service ran both agents."""
    try:
        if run is None or not run.active:
            return
        event = {
            k: str(v) for k, v in (("from_agent", from_agent), ("to_agent", to_agent)) if isinstance(v, str)
        }
        run.span.add_event(c.EVENT_HANDOFF, event)
    except Exception as exc:
        internal_error("recording a Mistral handoff", exc)


def connector_usage(call: LLMCall, usage: Any) -> None:
    """The connectors' part of a turn's usage, as the API reports it, on the step's span (never raises):
    ``mistral.usage.connector_tokens`` (which the API's ``total_tokens`` includes) and
    ``mistral.usage.connectors`` (calls per connector, JSON). Not in the step's tokens or spend: the
    price table has no connector prices."""
    try:
        tokens = usage_value(usage, "connector_tokens")
        connectors = usage_value(usage, "connectors")
        attributes: dict[str, Any] = {}
        if isinstance(tokens, int) and tokens > 0:
            attributes[CONNECTOR_TOKENS] = tokens
        if isinstance(connectors, dict) and connectors:
            attributes[CONNECTORS] = json.dumps(connectors, sort_keys=True, default=str)
        native = call.native  # the SDK's span of the request (its tracing on), still open
        if native is None:
            call.attributes.update(attributes)  # agent-otel's span: set as it ends
        elif attributes and native.is_recording():
            native.set_attributes(attributes)
    except Exception as exc:
        internal_error("reading a Mistral turn's connector usage", exc)


# --- one request in flight --------------------------------------------------------------------------


class Request:
    """One request's step, the SDK's span of it (if its tracing made one we adopted) and what a streamed
    turn said about the tools the service ran."""

    __slots__ = ("call", "handoffs", "held", "native_tools", "started_tools", "turn")

    def __init__(self, call: LLMCall, turn: bool) -> None:
        self.call = call
        self.turn = turn
        self.held: _Held | None = None
        self.native_tools = False  # the SDK's tracing makes spans of the turn's tools (the bridge's steps)
        self.started_tools: dict[str, tuple[Any, Any, Any]] = {}  # id -> (name, arguments, created_at)
        self.handoffs: dict[str, Any] = {}  # a streamed handoff's id -> the agent it started from

    def adopt(self, request: Any) -> None:
        """The SDK's tracing hook started its span of this request: make it the step's span."""
        get = getattr(getattr(request, "extensions", None), "get", None)
        span = get(_SPAN_KEY) if get is not None else None
        binding = span_binding(span) if span is not None else None
        call = self.call
        if binding is None or binding.run is not call.run:  # not a span agent-otel's provider sees
            return
        if call.done or (call.native is None and not call.adoptable()):
            return
        if call.native is not None:
            # The SDK retried: each attempt has a span, and the SDK ends only the last one. That one is the
            # request's; an earlier one keeps the step's ids, and ends if the SDK asked it to.
            self.release()
        attributes = native.run_attributes(call.run, span.attributes or {})
        attributes.update(call.adopt(span))
        self.held = _hold(span)
        self.native_tools = True
        binding.step = call
        span.set_attributes(attributes)

    def release(self, force: bool = False) -> None:
        """Let the SDK's end of the step's span through; ``force``: end it now if the SDK has not asked to
        (a stream dropped unread: the SDK ends its span only when the response is closed, which then
        never happens)."""
        held, self.held = self.held, None
        if held is not None:
            held.release(force)

    def finish(self, reply: Reply, output: Callable[[], list[dict[str, Any]]] | None = None) -> None:
        call = self.call
        if call.model == "unknown" and reply.model:  # an agent's request: the model that answered
            call.model = reply.model
            if call.run.model is None:
                call.run.model = reply.model
        _native_usage(call, reply)
        _client.finish(call, reply, output=output)
        self.release()

    def fail(self, exc: BaseException, reply: Reply | None = None) -> None:
        _client.fail(self.call, exc, reply)
        self.release()


class _Held:
    """The SDK's end of a span, held until the step has ended (:func:`_hold`)."""

    __slots__ = ("asked", "ended", "original", "released")

    def __init__(self, original: Callable[..., None]) -> None:
        self.original = original
        self.released = False
        self.ended = False  # a later end (the SDK's, after release(force=True)) is not a second one
        self.asked: int | None = None

    def end(self, end_time: int | None = None) -> None:
        if self.ended:
            return
        if self.released:
            self.ended = True
            self.original(end_time)
        elif self.asked is None:
            self.asked = end_time if end_time is not None else time.time_ns()

    def release(self, force: bool = False) -> None:
        if self.ended:
            return
        self.released = True
        if self.asked is not None or force:
            self.ended = True
            self.original(self.asked)


def _hold(span: Any) -> _Held | None:
    """Hold the SDK's end of ``span`` until it is released (the step has ended)."""
    held = _Held(span.end)
    try:
        span.end = held.end
    except (AttributeError, TypeError):
        return None
    return held


def _native_usage(call: LLMCall, reply: Reply) -> None:
    """A span of the SDK's without usage (a streamed turn's: the SDK 3.7 reads only chat chunks from a
    stream; a stream closed early) gets the step's, so the request's usage is on its one span."""
    span = call.native
    if span is None:
        return
    try:
        known = reply.input_tokens is not None or reply.output_tokens is not None
        if known and span.is_recording() and c.GEN_AI_USAGE_INPUT_TOKENS not in (span.attributes or {}):
            span.set_attributes(
                {
                    c.GEN_AI_USAGE_INPUT_TOKENS: reply.input_tokens or 0,
                    c.GEN_AI_USAGE_OUTPUT_TOKENS: reply.output_tokens or 0,
                }
            )
    except Exception as exc:
        internal_error("adding usage to Mistral's span", exc)


# --- requests ---------------------------------------------------------------------------------------


def _params(kwargs: dict[str, Any]) -> dict[str, Any]:
    source: Any = kwargs
    args = kwargs.get("completion_args")
    if args is not None:  # a turn's parameters
        source = args if isinstance(args, dict) else getattr(args, "__dict__", {})
    out: dict[str, Any] = {}
    for key, name in _PARAMS.items():
        value = source.get(key) if isinstance(source, dict) else None
        if value is not None and type(value).__name__ != "Unset":  # the SDK's UNSET: not sent
            out[name] = value
    return out


def _server(sdk: Any) -> Any:
    try:
        url, _ = sdk.sdk_configuration.get_server_details()
        return url
    except Exception:
        return None


def _begin(sdk: Any, kwargs: dict[str, Any], turn: bool, stream: bool) -> Request | None:
    """The step of a request about to be sent, or None (no run: pass it through)."""
    if active_run() is None:  # before reading the request: outside a run a request costs nothing more
        return None
    model = kwargs.get("model")
    call = _client.begin(
        PROVIDER,
        model if isinstance(model, str) and model else None,
        _params(kwargs),
        stream=stream,
        server=_server(sdk),
        messages=lambda: _turn_input(kwargs.get("inputs")) if turn else _chat_input(kwargs.get("messages")),
        defer=True,
    )
    if call is None:
        return None
    if turn:
        conversation = kwargs.get("conversation_id")
        if isinstance(conversation, str) and conversation and call.run.conversation_id is None:
            call.attributes[c.GEN_AI_CONVERSATION_ID] = conversation
    return Request(call, turn)


class _Sending:
    """The request is being sent: the SDK's tracing hook may adopt its span; a failure fails the step."""

    __slots__ = ("request", "token")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.token: Any = None

    def __enter__(self) -> None:
        self.token = _inflight.set(self.request)

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        _inflight.reset(self.token)
        if exc is not None:
            self.request.fail(exc)


def _done(request: Request, result: Any) -> None:
    """Finish the step of a response that is not streamed (never raises)."""
    try:
        read = read_turn if request.turn else read_completion
        reply = _client.read("a Mistral response", lambda r: read(r, result))
        if request.turn:
            connector_usage(request.call, usage_value(result, "usage"))
            for output in usage_value(result, "outputs") or ():
                if usage_value(output, "type") == "agent.handoff":
                    record_handoff(
                        request.call.run,
                        usage_value(output, "previous_agent_name"),
                        usage_value(output, "next_agent_name"),
                    )
        request.finish(
            reply, lambda: _turn_output(result) if request.turn else _content.openai_chat_output(result)
        )
        if request.turn and not request.native_tools:
            for output in usage_value(result, "outputs") or ():
                if usage_value(output, "type") == "tool.execution":
                    record_service_tool(
                        request.call.run,
                        usage_value(output, "name"),
                        usage_value(output, "arguments"),
                        usage_value(output, "id"),
                        usage_value(output, "info"),
                        usage_value(output, "created_at"),
                        usage_value(output, "completed_at"),
                    )
    except Exception as exc:
        internal_error("reading a Mistral response", exc)
        request.release()


class _Stream(Watch):
    """A streamed response in flight; a turn's stream also reports the tools the service ran."""

    __slots__ = ("read", "request")

    def __init__(self, request: Request) -> None:
        super().__init__(request.call, _feed_turn_event if request.turn else _feed_chunk)
        self.request = request
        self.read = False

    def event(self, event: Any) -> None:
        self.read = True
        super().event(event)
        if self.request.turn:
            try:
                data = usage_value(event, "data")
                if usage_value(data, "type") == _TURN_ERROR:  # the turn failed in the service
                    self.request.fail(_TURN_ERROR, self.reply)  # type: ignore[arg-type]
                _service_event(self.request, data)
            except Exception as exc:
                internal_error("reading what the service did from a Mistral stream", exc)

    def end(self) -> None:
        if not self.call.done:
            self.request.finish(self.reply)
        self.request.release()

    def error(self, exc: BaseException) -> None:
        if not self.call.done:
            self.request.fail(exc, self.reply)
        self.request.release()

    def dropped(self) -> None:
        """Garbage-collected unclosed: the step ends, and so does the SDK's span of it. The SDK ends its span
        when the response is closed: a stream read from closes it as its generator is collected, one
        dropped unread never does, so that span is ended here."""
        held = None if self.read else self.request.held
        self.end()
        if held is not None:
            held.release(force=True)


def _feed_turn_event(reply: Reply, event: Any) -> None:
    data = usage_value(event, "data")
    kind = usage_value(data, "type")
    if kind == "conversation.response.done":
        _usage(reply, usage_value(data, "usage"))
    elif kind in ("message.output.delta", "tool.execution.started", "function.call.delta"):
        reply.set_model(usage_value(data, "model"))
        reply.add_tool_call(usage_value(data, "tool_call_id"))


def _service_event(request: Request, data: Any) -> None:
    """What a streamed turn says the service did: tools it ran, handoffs, the connectors' usage."""
    kind = usage_value(data, "type")
    if kind == "agent.handoff.started":
        handoff_id = usage_value(data, "id")
        if isinstance(handoff_id, str):
            request.handoffs[handoff_id] = usage_value(data, "previous_agent_name")
    elif kind == "agent.handoff.done":
        from_agent = request.handoffs.pop(usage_value(data, "id"), None)
        record_handoff(request.call.run, from_agent, usage_value(data, "next_agent_name"))
    elif kind == "conversation.response.done":
        connector_usage(request.call, usage_value(data, "usage"))
    elif kind == "tool.execution.started":
        tool_id = usage_value(data, "id")
        if isinstance(tool_id, str):
            request.started_tools[tool_id] = (
                usage_value(data, "name"),
                usage_value(data, "arguments"),
                usage_value(data, "created_at"),
            )
    elif kind == "tool.execution.done":
        tool_id = usage_value(data, "id")
        name, arguments, started = request.started_tools.pop(tool_id, (None, None, None))
        ended = usage_value(data, "created_at")
        record_service_tool(
            request.call.run,
            usage_value(data, "name") or name,
            arguments,
            tool_id,
            usage_value(data, "info"),
            started if started is not None else ended,
            ended,
        )


def _watch(request: Request, stream: Any, is_async: bool) -> Any:
    """Read the SDK's ``EventStream`` as it is consumed; the caller still gets that object."""
    try:
        watch = _Stream(request)
        inner = stream.generator
        stream.generator = _client.aobserve(inner, watch) if is_async else _client.observe(inner, watch)
        _client.watch_stream(stream, watch)
    except Exception as exc:
        internal_error("watching a Mistral stream", exc)
        request.finish(Reply())
    return stream


def _wrap(turn: bool, stream: bool) -> Callable[[Any], Any]:
    def make(original: Any) -> Any:
        @functools.wraps(original)
        def send(self: Any, *args: Any, **kwargs: Any) -> Any:
            request = _begin(self, kwargs, turn, stream)
            if request is None:
                return original(self, *args, **kwargs)
            with _Sending(request):
                result = original(self, *args, **kwargs)
            if stream:
                return _watch(request, result, is_async=False)
            _done(request, result)
            return result

        return send

    return make


def _wrap_async(turn: bool, stream: bool) -> Callable[[Any], Any]:
    def make(original: Any) -> Any:
        @functools.wraps(original)
        async def send(self: Any, *args: Any, **kwargs: Any) -> Any:
            request = _begin(self, kwargs, turn, stream)
            if request is None:
                return await original(self, *args, **kwargs)
            with _Sending(request):
                result = await original(self, *args, **kwargs)
            if stream:
                return _watch(request, result, is_async=True)
            _done(request, result)
            return result

        return send

    return make


def _wrap_before_request(original: Any) -> Any:
    @functools.wraps(original)
    def before_request(self: Any, hook_ctx: Any, request: Any) -> Any:
        result = original(self, hook_ctx, request)
        inflight = _inflight.get()
        if inflight is not None:
            try:
                inflight.adopt(result if hasattr(result, "extensions") else request)
            except Exception as exc:
                internal_error("adopting Mistral's span of a request", exc)
        return result

    return before_request


#: (module, class, [(method, is a turn, is streamed)]) of the SDK's model requests.
_METHODS: tuple[tuple[str, str, tuple[tuple[str, bool, bool], ...]], ...] = (
    ("mistralai.client.chat", "Chat", (("complete", False, False), ("stream", False, True))),
    ("mistralai.client.agents", "Agents", (("complete", False, False), ("stream", False, True))),
    (
        "mistralai.client.conversations",
        "Conversations",
        tuple(
            (f"{verb}{suffix}", True, bool(suffix))
            for verb in ("start", "append", "restart")
            for suffix in ("", "_stream")
        ),
    ),
)


class MistralIntegration(Integration):
    """Wraps the request methods of ``Chat``, ``Agents`` and ``Conversations``, the SDK's event streams'
    ``close`` and its tracing hook's ``before_request`` (to adopt the SDK's span of a request)."""

    name = "mistral"
    packages = ("mistralai.client",)

    def __init__(self) -> None:
        self._patcher = Patcher()

    def instrument(self) -> None:
        if self._patcher.applied:
            return
        for module_name, class_name, methods in _METHODS:
            owner = getattr(importlib.import_module(module_name), class_name)
            for method, turn, stream in methods:
                self._patcher.wrap(owner, method, _wrap(turn, stream))
                self._patcher.wrap(owner, f"{method}_async", _wrap_async(turn, stream))
        conversations = importlib.import_module("mistralai.client.conversations").Conversations
        for method in ("run_async", "run_stream_async"):  # mistralai.extra.run's local functions
            if hasattr(conversations, method):
                self._patcher.wrap(conversations, method, _mistral_run.wrap_run(self._patcher))
        _mistral_run.patch(self._patcher)
        streams = importlib.import_module("mistralai.client.utils.eventstreaming")
        self._patcher.wrap(streams.EventStream, "close", _client.wrap_close)
        self._patcher.wrap(streams.EventStreamAsync, "close", _client.wrap_aclose)
        try:
            hook = importlib.import_module("mistralai.client._hooks.tracing").TracingHook
        except (ImportError, AttributeError):  # no tracing in this SDK version: nothing to adopt
            return
        self._patcher.wrap(hook, "before_request", _wrap_before_request)

    def uninstrument(self) -> None:
        self._patcher.restore()
