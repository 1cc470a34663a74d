"""Microsoft Agent Framework (``agent-framework-core``): a hook before every function tool, so that guards
act there and a replay serves the recorded result instead of running the tool.

The framework traces itself: the GenAI span bridge (:mod:`agent_otel.bridge`) makes its ``invoke_agent``
span the run, its ``chat`` spans the LLM steps and its ``execute_tool`` spans the tool steps. Without
``enable_sensitive_data`` those spans carry neither a tool's arguments nor its result, and a span
processor cannot stop a call, so from the spans alone a replay could only let the framework run every tool
again and the guards could only observe. Every function tool the framework calls, with or without function
middleware, goes through ``FunctionTool.invoke(arguments=..., context=..., tool_call_id=...)``, which opens
the framework's span and calls the function; this integration wraps it:

* the framework's runs follow these hooks (:func:`agent_otel.bridge.register_hooks`): they are
  stoppable, their tool steps are begun here and their model requests checked here, not when their
  spans start;
* before the framework opens its span, the step begins with the model's arguments and call id
  (:func:`agent_otel.bridge.begin_tool`):
  the guards you configured enforce there, the ones on by default observe (README "Guards"). A stop or a
  policy refusal is raised from ``invoke``; the framework hands it to the model as the tool's error (the
  tool does not run) and ``AgentStopped`` reaches the caller from the next model request, before it is
  sent: ``BaseChatClient.get_response``, the innermost layer of every chat client (inside the
  framework's request span), runs the guards' checks of a model request first;
* the framework's span, opened next, becomes that step's span; the step ends with the function's raw
  return value (``agent.tool.result_sha``, the replay snapshot: what an ``@agent_otel.tool`` function
  records too) or exception while the span is still open, from ``FunctionTool._invoke_function`` (the
  framework's own call of the function, which a context variable ties to this call);
* under a replay it returns the recorded value as ``invoke`` returns a result (through the tool's
  ``result_parser`` or ``FunctionTool.parse_result``, or raw with ``skip_parsing``), or raises the
  recorded error, which the framework hands to the model as it did; the tool does not run. A result that
  was an object when recorded, or an error whose class this process has not loaded, is refused with
  ``ReplayError`` (the framework tells the model; the tool does not run either);
* ``guards.tool_timeout_s`` applies to the call.

Human in the loop: a tool with ``approval_mode="always_require"`` (or a hosted tool's approval) makes the
framework end the agent run with the model's call unanswered, its ``function_approval_request`` in the
response's ``user_input_requests``; that run paused for a human (``interrupted``, an ``agent.interrupt``
event naming the call ids), it did not complete. The framework's agent span reads the response
(``observability._get_response_attributes``) and records it on the span (``_capture_response``) just
before it ends, in the same context: the first wrapper notes the requests, the second pauses the span's
run. The run given the answers (``to_function_approval_response()`` in the next ``agent.run``) links to
it by the agent and the call ids (``Run.resume_key``): a local session has no conversation id. A wrapper
of ``AgentTelemetryLayer._trace_agent_invocation`` reads them from the input before the framework starts
its agent span (:func:`agent_otel.bridge.resume_next`), with the human's decisions, which become an
``agent.approval`` event per call on that run's span (``approved``, or ``rejected``: a call the framework
then never invokes, answering the model that the user rejected it).

A streamed run (``agent.run(stream=True)``) its consumer leaves before the stream's end did not finish:
the framework ends its agent span with its status unset either way, from the stream's cleanup when the
stream is closed (``async with`` left by a ``break``, ``close()``) or from a weakref finalizer when it is
collected, and the bridge read ``completed``. The agent span of a run that finished has its response
recorded (``_capture_response``) by the framework's own cleanup, not while a ``ResponseStream.close()``
cuts the stream short: such a run, with no error and no pause, ends ``cancelled``. That is a fact of the
run itself, so it holds whichever of the framework's finalizers the collector runs first.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import StatusCode

from agent_otel import bridge, native
from agent_otel import conventions as c
from agent_otel.steps import active_run, check_pending, internal_error, span_binding
from agent_otel.stop import AgentStopped, StopReason
from agent_otel.tools import ToolCall

from . import Integration
from ._common import (
    Patcher,
    await_or_serve,
    await_with_timeout,
    begin_hooked_tool,
    end_tool_step,
    never_run,
    pause,
    record_approvals,
    served,
)

#: The instrumentation scope of the framework's tracer (``agent_framework.observability.get_tracer``).
SCOPE = "agent_framework"
#: The tool and step of the ``invoke`` in progress in this task: its ``_invoke_function`` ends that step.
_calling: ContextVar[tuple[Any, ToolCall] | None] = ContextVar("agent_otel_af_calling", default=None)


def _arguments(arguments: Any, context: Any, kwargs: Mapping[str, Any]) -> Any:
    """The call's arguments as ``invoke`` takes them: ``arguments=``, else direct keywords, else the
    invocation context's."""
    source = arguments
    if source is None and kwargs:
        source = kwargs
    if source is None and context is not None:
        source = getattr(context, "arguments", None)
    if source is None:
        return {}
    dump = getattr(source, "model_dump", None)
    if callable(dump):
        return dump(exclude_unset=True)
    if isinstance(source, Mapping):
        return dict(source)
    return source


def _parsed(tool: Any, value: Any, skip_parsing: bool) -> Any:
    """A served raw value as ``invoke`` returns the function's: parsed into content, unless skipped."""
    from agent_framework import SKIP_PARSING, Content, FunctionTool

    parser = getattr(tool, "result_parser", None)
    if skip_parsing or parser is SKIP_PARSING:
        return value
    parsed = parser(value) if callable(parser) else FunctionTool.parse_result(value)
    return [Content.from_text(parsed)] if isinstance(parsed, str) else parsed


def _make_invoke(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def invoke(
        self: Any,
        *,
        arguments: Any = None,
        context: Any = None,
        tool_call_id: str | None = None,
        skip_parsing: bool = False,
        **kwargs: Any,
    ) -> Any:
        def call_original() -> Any:
            return original(
                self,
                arguments=arguments,
                context=context,
                tool_call_id=tool_call_id,
                skip_parsing=skip_parsing,
                **kwargs,
            )

        if getattr(self, "declaration_only", False):
            return await call_original()
        name = str(getattr(self, "name", None) or "tool")
        args = _arguments(arguments, context, kwargs)
        description = getattr(self, "description", None) or None
        call = begin_hooked_tool(name, args, tool_call_id, "Agent Framework", description)
        if call is None:
            return await call_original()
        try:
            if call.replay is not None:
                value = await await_or_serve(call, served, never_run)
                end_tool_step(call, value, None, "Agent Framework")
                return _parsed(self, value, skip_parsing)
            token = _calling.set((self, call))
            try:
                result = await await_with_timeout(call, call_original)
            finally:
                _calling.reset(token)
        except BaseException as exc:
            end_tool_step(call, None, exc, "Agent Framework")
            raise
        if not call.done:  # the function was not called (a middleware answered): its answer is the result
            end_tool_step(call, result, None, "Agent Framework")
        return result

    return invoke


def _make_invoke_function(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def _invoke_function(self: Any, call_kwargs: Mapping[str, Any]) -> Any:
        calling = _calling.get()
        if calling is None or calling[0] is not self:
            return await original(self, call_kwargs)
        call = calling[1]
        try:
            value = await original(self, call_kwargs)
        except BaseException as exc:
            end_tool_step(call, None, exc, "Agent Framework")
            raise
        end_tool_step(call, value, None, "Agent Framework")
        return value

    return _invoke_function


def _make_get_response(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def get_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        run = active_run()
        if run is not None and run.stoppable:
            try:
                binding = span_binding(trace.get_current_span())
                if binding is not None and binding.hooked:  # its request span waits for these checks
                    bridge.check_llm(run)
                else:  # checked as its span started: raise a stop decided since
                    check_pending(run)
            except AgentStopped:
                raise  # before the request is sent; it reaches the caller of agent.run()
            except Exception as exc:
                internal_error("checking an Agent Framework model request", exc)
        return original(self, *args, **kwargs)

    return get_response


#: The approval requests of the agent response whose span attributes are being read (``id`` of the
#: attributes dict the framework passes on to ``_capture_response``, and the requests' call ids).
_requests: ContextVar[tuple[int, list[str]] | None] = ContextVar("agent_otel_af_requests", default=None)


def _make_response_attributes(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def _get_response_attributes(*args: Any, **kwargs: Any) -> Any:
        # Any signature passes through: a private function's parameters may change in any release.
        found = original(*args, **kwargs)
        try:
            from agent_framework import AgentResponse

            response = kwargs.get("response", args[1] if len(args) > 1 else None)
            requests = response.user_input_requests if isinstance(response, AgentResponse) else None
            if requests:
                _requests.set((id(found), [_request_id(r) for r in requests]))
        except Exception as exc:
            internal_error("reading an Agent Framework response's approval requests", exc)
        return found

    return _get_response_attributes


def _request_id(request: Any) -> str:
    call = getattr(request, "function_call", None)
    return str(getattr(call, "call_id", None) or getattr(request, "id", None) or "")


#: Set while a ``ResponseStream.close()`` cuts a stream short (before its end): the cleanup it runs
#: records the agent's response, but the agent did not finish.
_closing_early: ContextVar[bool] = ContextVar("agent_otel_af_closing_early", default=False)
#: The runs whose agent span had its response recorded by the framework's cleanup: True if they finished,
#: False if a ``close()`` cut their stream short.
_answered: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _make_close(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def close(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Not consumed yet and no error given: the consumer (or a stream above it) stops reading early. A
        # release without ``_consumed`` reads as consumed: nothing is cut short then.
        exc = kwargs.get("exc", args[0] if args else None)
        if exc is not None or getattr(self, "_consumed", True):
            return await original(self, *args, **kwargs)
        token = _closing_early.set(True)
        try:
            return await original(self, *args, **kwargs)
        finally:
            _closing_early.reset(token)

    return close


def _note_answer(span: Any) -> None:
    """The framework records an agent span's response: the run finished, unless its stream is being cut
    short."""
    binding = span_binding(span)
    run = binding.run if binding is not None else None
    if run is not None and getattr(run, "native", None) is span:
        _answered[run] = not _closing_early.get()


def _stop(span: Any) -> StopReason | None:
    """The stop of an agent span that ends without an error or a pause: ``cancelled`` if its stream was
    left before the agent finished (no response recorded, or recorded as the stream was cut short)."""
    binding = span_binding(span)
    run = binding.run if binding is not None else None
    if run is None or getattr(run, "native", None) is not span or native.operation(span) != c.OP_INVOKE_AGENT:
        return None
    status = getattr(getattr(span, "status", None), "status_code", None)
    events = getattr(span, "events", ()) or ()
    failed = status is StatusCode.ERROR or any(e.name == "exception" for e in events)
    if failed or run.paused is not None or _answered.get(run, False):
        return None
    return StopReason.CANCELLED


def _make_capture_response(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def _capture_response(*args: Any, **kwargs: Any) -> Any:
        try:
            _note_answer(kwargs.get("span", args[0] if args else None))
        except Exception as exc:
            internal_error("reading an Agent Framework run's end", exc)
        noted = _requests.get()
        if noted is not None:
            try:
                span, attributes = kwargs.get("span"), kwargs.get("attributes")
                if id(attributes) == noted[0]:
                    _requests.set(None)
                    binding = span_binding(span)
                    run = binding.run if binding is not None else None
                    if run is not None and getattr(run, "native", None) is span and run.result is None:
                        ids = sorted(i for i in noted[1] if i)
                        pause(run, len(noted[1]), ids)  # the run's span: its run waits for a human
                        if run.conversation_id is None:
                            run.resume_key = _approval_key(run.agent, ids)  # the answering run links to it
            except Exception as exc:
                internal_error("pausing an Agent Framework run for approval", exc)
        return original(*args, **kwargs)

    return _capture_response


def _approval_key(agent: str, call_ids: list[str]) -> str | None:
    """What a run paused for approvals and the run given the answers both name: the agent and the call
    ids. The framework's own human-in-the-loop pattern (the request and its
    ``to_function_approval_response()`` sent in the next ``agent.run``) needs no session, and a local
    session has no conversation id: nothing else links the two runs."""
    ids = sorted(i for i in call_ids if i)
    return f"agent_framework approvals {c.nfc(agent)} " + " ".join(ids) if ids else None


def _answers(agent: Any, messages: Any) -> tuple[str | None, list[tuple[Any, Any, bool]]]:
    """The approval key of the paused run whose approval requests ``messages`` answer (None: none), and
    the decisions they carry: ``(call_id, tool_name, approved)`` per ``function_approval_response``,
    approved only when ``approved`` is ``True``, as the framework reads it (anything else rejects the
    call: the framework answers the model "rejected by user" and never invokes the tool)."""
    from agent_framework import Content, Message

    items = messages if isinstance(messages, list | tuple) else [messages]
    responses = []
    for item in items:
        contents = item.contents if isinstance(item, Message) else [item] if isinstance(item, Content) else ()
        responses.extend(
            x for x in contents or () if getattr(x, "type", None) == "function_approval_response"
        )
    name = getattr(agent, "name", None) or getattr(agent, "id", None) or "agent"
    decisions = [
        (
            _request_id(x),
            getattr(getattr(x, "function_call", None), "name", None),
            getattr(x, "approved", None) is True,
        )
        for x in responses
    ]
    return _approval_key(str(name), [_request_id(x) for x in responses]), decisions


def _make_trace_invocation(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def _trace_agent_invocation(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            key, decisions = _answers(self, kwargs.get("messages"))
        except Exception as exc:
            internal_error("reading the approvals an Agent Framework run answers", exc)
            key, decisions = None, []
        if key is None:
            return original(self, *args, **kwargs)

        def then(run: Any) -> None:
            record_approvals(run, decisions)  # on the run given the answers (or the run it is part of)

        if kwargs.get("stream"):
            # The framework starts a streamed run's agent span right here, in the caller's context.
            pending = bridge.resume_next(key, then)
            try:
                return original(self, *args, **kwargs)
            finally:
                pending.clear()
        return _resumed(original(self, *args, **kwargs), key, then)

    return _trace_agent_invocation


async def _resumed(invocation: Any, key: str, then: Callable[[Any], None]) -> Any:
    """Await the framework's run, whose agent span starts in the awaiting context, as the resume ``key``
    names; ``then`` records the decisions on it."""
    pending = bridge.resume_next(key, then)
    try:
        return await invocation
    finally:
        pending.clear()


class AgentFrameworkIntegration(Integration):
    name = "agent_framework"
    packages = ("agent_framework",)

    def __init__(self) -> None:
        self._patcher = Patcher()

    def instrument(self) -> None:
        if self._patcher.applied:
            return
        from agent_framework import BaseChatClient, FunctionTool, ResponseStream, observability

        self._patcher.wrap(FunctionTool, "invoke", _make_invoke)
        # Private functions (a run waiting for approval, a stream left before its end): where a release
        # lacks them, such runs read completed again, and nothing else of the integration is lost.
        if hasattr(observability, "_get_response_attributes") and hasattr(observability, "_capture_response"):
            self._patcher.wrap(observability, "_get_response_attributes", _make_response_attributes)
            self._patcher.wrap(observability, "_capture_response", _make_capture_response)
            self._patcher.wrap(ResponseStream, "close", _make_close)
            bridge.register_stops(SCOPE, _stop)
        if hasattr(observability.AgentTelemetryLayer, "_trace_agent_invocation"):
            # (private too: where a release lacks it, a run given approvals is not linked to the paused run)
            self._patcher.wrap(
                observability.AgentTelemetryLayer, "_trace_agent_invocation", _make_trace_invocation
            )
        self._patcher.wrap(BaseChatClient, "get_response", _make_get_response)
        self._patcher.wrap(FunctionTool, "_invoke_function", _make_invoke_function)
        bridge.register_hooks(SCOPE)

    def uninstrument(self) -> None:
        bridge.register_hooks(SCOPE, on=False)
        bridge.register_stops(SCOPE, None)
        self._patcher.restore()
