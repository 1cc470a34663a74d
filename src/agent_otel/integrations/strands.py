"""Strands Agents: its own GenAI spans through the bridge, and its hooks so that guards act before a tool.

Strands traces every invocation itself (``invoke_agent {name}``, ``execute_event_loop_cycle``, ``chat``,
``execute_tool {tool}``, through the global TracerProvider): the GenAI span bridge
(:mod:`agent_otel.bridge`) makes those spans the run and its steps, with no span of agent-otel's own.
The spans alone lack what guards and replay need (the tool's arguments and result are on them only with
``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``, and a span processor cannot stop a call), so
this integration adds, to every ``Agent`` created after ``setup()``, through Strands' public extension
points:

* a ``BeforeToolCallEvent`` hook that begins the tool step with the model's arguments and tool use id
  (guards run here: a guard that stops the run raises :class:`~agent_otel.AgentStopped`, which reaches
  the caller of ``agent(...)`` / ``invoke_async`` / ``stream_async`` as itself, not wrapped in Strands'
  ``EventLoopException``); the step's span is Strands' ``execute_tool`` span when Strands opens one;
* an ``ExecuteToolStage`` middleware that finishes the step with the tool's result (its ``content``
  blocks: ``agent.tool.result_sha``) or exception while Strands' tool span is still open, and under a
  replay serves the recorded result without running the tool;
* a ``BeforeModelCallEvent`` hook that runs the guards' checks before each model call, and a
  ``BeforeInvocationEvent`` hook that tells the bridge these hooks follow the invocation
  (:func:`agent_otel.bridge.hook_in`); an agent created before ``setup()`` has none, and is seen through
  its spans only.

Stop reasons: besides the span's status (a model error that ends the loop: ``model_error``), the agent
span's ``finish_reason`` says ``limit_turns`` (``max_steps``), ``limit_output_tokens`` /
``limit_total_tokens`` (``budget_exceeded``), ``cancelled`` and ``interrupt`` (``interrupted``). A
``stream_async`` consumer that stops at the ``result`` event (the stream's last item: the invocation is
over) makes Strands end its span as cancelled (``strands.cancellation.type``, the ``GeneratorExit`` of
the closed stream); the run's stop is then the result's own stop reason, not ``cancelled``.

Resumes: Strands has no conversation id, so the invocation answering interrupts (``interruptResponse``
blocks) links to the paused run by the interrupt ids: an agent's (``Agent.stream_async``, behind
``agent(...)`` and ``invoke_async``), and a ``Swarm``'s or ``Graph``'s (their ``stream_async``), whose
run is their own span, not the interrupting agent's.
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any

from opentelemetry import trace

from agent_otel import bridge, native
from agent_otel.guards import ToolDenied
from agent_otel.replay import ReplayError, recorded, unserved
from agent_otel.steps import active_run, internal_error, span_binding
from agent_otel.stop import AgentStopped, StopReason
from agent_otel.tools import ToolCall

from . import Integration
from ._common import Patcher, refuse_outside_run, unwrapping_stream

#: The instrumentation scope of Strands' tracer (``strands.telemetry.tracer``).
SCOPE = "strands.telemetry.tracer"
#: Strands' stop reasons (the agent span's ``finish_reason``) that name an agent-otel stop.
FINISH_STOPS = {
    "limit_turns": StopReason.MAX_STEPS,
    "limit_output_tokens": StopReason.BUDGET_EXCEEDED,
    "limit_total_tokens": StopReason.BUDGET_EXCEEDED,
    "cancelled": StopReason.CANCELLED,
    "interrupt": StopReason.INTERRUPTED,
}
_MAX_OPEN = 4096  # tool steps between their hooks (an interrupted tool never reaches AfterToolCallEvent)


class _Calls:
    """The tool steps in flight, by (agent, tool use id): begun by the before-hook, finished by the
    middleware or the after-hook."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: OrderedDict[tuple[int, str], ToolCall] = OrderedDict()

    def put(self, agent: Any, tool_use_id: str, call: ToolCall) -> None:
        with self._lock:
            self._open[(id(agent), tool_use_id)] = call
            while len(self._open) > _MAX_OPEN:
                self._open.popitem(last=False)

    def get(self, agent: Any, tool_use_id: str) -> ToolCall | None:
        with self._lock:
            return self._open.get((id(agent), tool_use_id))

    def pop(self, agent: Any, tool_use_id: str) -> ToolCall | None:
        with self._lock:
            return self._open.pop((id(agent), tool_use_id), None)


_calls = _Calls()

#: Strands agent spans whose invocation handed its caller the ``result`` event, with that result's stop
#: reason (weak: an entry goes with its span).
_delivered: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_delivered_lock = threading.Lock()


def _tool_use_id(tool_use: Any) -> str:
    return str(tool_use.get("toolUseId") or "") if isinstance(tool_use, dict) else ""


# --- hooks ------------------------------------------------------------------------------------------------


def _before_tool(event: Any) -> None:
    """Begin the tool step (guards first) before Strands runs the tool and opens its span."""
    if event.cancel_tool:  # another hook cancelled it: the tool does not run
        return
    tool_use = event.tool_use
    name = str(tool_use.get("name") or "tool")
    run = active_run()
    if run is None:
        refuse_outside_run(name)
        return
    tool = event.selected_tool
    spec = getattr(tool, "tool_spec", None) or {}
    try:
        call = bridge.begin_tool(
            run,
            name,
            tool_use.get("input"),
            _tool_use_id(tool_use) or None,
            description=spec.get("description") if isinstance(spec, dict) else None,
        )
    except ToolDenied as exc:  # on_deny: raise: Strands cancels the tool and tells the model why
        event.cancel_tool = str(exc)
        return
    except (AgentStopped, ReplayError):
        raise
    except Exception as exc:
        internal_error("starting a Strands tool step", exc)
        return
    if call is None:
        return
    if call.replay is not None:
        _check_servable(call)
    _calls.put(event.agent, _tool_use_id(tool_use), call)


def _check_servable(call: ToolCall) -> None:
    """A replayed call is served by the middleware from its recorded result; an error is refused here."""
    outcome = recorded(call)
    why = None
    if outcome.error is not None:
        why = "raised an error when recorded; Strands turned it into a message this replay cannot rebuild"
    elif outcome.result_type is not None or not isinstance(outcome.value, list):
        why = "recorded a result that is not a list of Strands content blocks"
    if why is not None:
        error = ReplayError(f"tool {call.name!r} {why}; not executing it during a replay")
        unserved(call, why)
        call.fail(error)
        raise error


def _after_tool(event: Any) -> None:
    """Finish a step the middleware did not (a call cancelled, or the tool not found)."""
    call = _calls.pop(event.agent, _tool_use_id(event.tool_use))
    if call is None or call.done:
        return
    _finish(call, event.result, event.exception)


def _before_invocation(event: Any) -> None:
    """This invocation's tools and model calls go through the hooks below (guards can stop them)."""
    try:
        bridge.hook_in()
    except Exception as exc:
        internal_error("hooking into a Strands invocation", exc)


def _before_model(event: Any) -> None:
    run = active_run()
    if run is None:
        return
    model = getattr(event.agent, "model", None)
    config = getattr(model, "config", None)
    model_id = config.get("model_id") if isinstance(config, dict) else None
    try:
        bridge.check_llm(run, model_id if isinstance(model_id, str) else None)
    except AgentStopped:
        raise
    except Exception as exc:
        internal_error("checking a Strands model call", exc)


def _finish(call: ToolCall, result: Any, exception: Any) -> None:
    """End the step from Strands' ``ToolResult`` (its content blocks are what the model receives)."""
    try:
        if isinstance(exception, BaseException):
            call.fail(exception)
        elif isinstance(result, dict) and result.get("status") == "error":
            call.fail(bridge.BridgedError("ToolError"))
        else:
            call.ok(result.get("content") if isinstance(result, dict) else result)
    except Exception as exc:
        internal_error("finishing a Strands tool step", exc)


# --- the middleware around tool execution -------------------------------------------------------------------


async def _execute_tool(context: Any, next_fn: Callable[[Any], AsyncIterator[Any]]) -> AsyncIterator[Any]:
    """Finish the step while Strands' tool span is open; under a replay, answer without running the tool."""
    from strands.types._events import ToolResultEvent

    interrupt_event = getattr(sys.modules.get("strands.types._events"), "ToolInterruptEvent", None)

    call = _calls.get(context.agent, _tool_use_id(context.tool_use))
    if call is not None and call.replay is not None:
        outcome = recorded(call)
        served = {"toolUseId": _tool_use_id(context.tool_use), "status": "success", "content": outcome.value}
        _finish(call, served, None)
        yield ToolResultEvent(served)
        return
    async for event in next_fn(context):
        if call is not None and not call.done:
            if isinstance(event, ToolResultEvent):
                _finish(call, event.tool_result, event.exception)
            elif interrupt_event is not None and isinstance(event, interrupt_event):
                # The tool asked for human input (tool_context.interrupt()): it has no result, and Strands
                # skips the after-hook; the step is interrupted, not a tool that answered.
                call.interrupted()
                _calls.pop(context.agent, _tool_use_id(context.tool_use))
        yield event


# --- instrumenting ------------------------------------------------------------------------------------------


def _classify(span: Any) -> StopReason | None:
    """The stop Strands' agent span names: its finish reason (cancellation, interrupts, its own limits)."""
    if (span.attributes or {}).get("strands.cancellation.type"):
        with _delivered_lock:
            delivered = _delivered.pop(span, None)
        if delivered is None:  # closed before the invocation was over
            return StopReason.CANCELLED
        # The consumer stopped at the result event: the invocation was over, its result says how it ended
        # (None: the bridge reads the span, completed, or interrupted by a tool that paused it).
        return FINISH_STOPS.get(delivered)
    for event in getattr(span, "events", ()) or ():
        reason = (event.attributes or {}).get("finish_reason")
        if isinstance(reason, str) and reason in FINISH_STOPS:
            return FINISH_STOPS[reason]
    return None


def _stream_async(original: Callable[..., Any]) -> Callable[..., Any]:
    """``Agent.stream_async`` as :func:`unwrapping_stream` wraps it, noting on Strands' agent span that its
    ``result`` event reached the caller: a consumer that stops there (``break`` on the result, then the
    stream closed) is not a cancelled invocation, although Strands ends its span as one."""
    streamed = unwrapping_stream(original)

    @functools.wraps(original)
    async def stream_async(self: Any, *args: Any, **kwargs: Any) -> Any:
        key = _resumed_key(_agent_label(self), kwargs.get("prompt", args[0] if args else None))
        inner = streamed(self, *args, **kwargs)
        # Strands starts its agent span when the stream is first read, in the reader's context.
        pending = bridge.resume_next(key) if key is not None else None
        try:
            async for event in inner:
                if pending:
                    pending.clear()
                if isinstance(event, dict) and "result" in event:
                    _note_result(self, event["result"])
                yield event
        finally:
            if pending:
                pending.clear()
            await inner.aclose()  # closes Strands' stream now (a no-op for a stream that ended)

    return stream_async


def _multi_agent_stream(original: Callable[..., Any]) -> Callable[..., Any]:
    """``Swarm.stream_async`` / ``Graph.stream_async`` (behind ``swarm(task)`` and ``invoke_async`` too).

    A swarm or graph whose agent interrupted pauses, and is resumed by invoking it with the
    ``interruptResponse`` blocks. Its run is Strands' ``invoke_swarm`` / ``invoke_graph`` span (its agents'
    spans join it), not an agent's, so the agent's interrupt key (:func:`_note_interrupts`) never named
    it, and the resume was a run unrelated to the paused one. The interrupts the invocation pauses on
    (its ``multiagent_node_interrupt`` events, while its span is still open) now key its run, and the
    invocation answering them hands the same key to the span Strands starts when the stream is first
    read (:func:`agent_otel.bridge.resume_next`)."""

    @functools.wraps(original)
    async def stream_async(self: Any, *args: Any, **kwargs: Any) -> Any:
        label = _multi_agent_label(self)
        key = _resumed_key(label, kwargs.get("task", args[0] if args else None))
        inner = original(self, *args, **kwargs)
        pending = bridge.resume_next(key) if key is not None else None
        paused_on: list[Any] = []
        try:
            async for event in inner:
                if pending:
                    pending.clear()
                if isinstance(event, dict) and event.get("type") == "multiagent_node_interrupt":
                    paused_on.extend(getattr(i, "id", None) for i in event.get("interrupts") or ())
                    _key_multi_agent_pause(label, paused_on)
                yield event
        finally:
            if pending:
                pending.clear()
            await inner.aclose()  # closes Strands' stream now (a no-op for a stream that ended)

    return stream_async


def _key_multi_agent_pause(label: str, ids: list[Any]) -> None:
    """A swarm's or graph's node paused on interrupts: the run of the invocation (the multi-agent span
    the current span belongs to; a swarm inside a graph keys the graph's run, whose own pause event
    comes next and keys it by the graph) is the one the invocation answering them resumes."""
    try:
        binding = span_binding(trace.get_current_span())
        run = binding.run if binding is not None else None
        if run is None or run.conversation_id is not None:
            return
        if native.operation(getattr(run, "native", None)) not in native.MULTI_AGENT_OPERATIONS:
            return  # not Strands' own multi-agent run (your agent_otel.run, say): no resume to link
        run.resume_key = _interrupt_key(label, ids)
    except Exception as exc:
        internal_error("reading the interrupts a Strands swarm or graph paused on", exc)


def _agent_label(agent: Any) -> str:
    return str(getattr(agent, "name", "") or "")


def _multi_agent_label(owner: Any) -> str:
    """A swarm or graph in an interrupt key: its kind and id (it has no name), never an agent's name."""
    return f"{type(owner).__name__.lower()}:{getattr(owner, 'id', '') or ''}"


def _interrupt_key(label: str, ids: list[Any]) -> str | None:
    """What an invocation that paused on interrupts and the invocation answering them both name: the
    agent (or swarm, graph) and the interrupt ids (Strands has no conversation id of its own, so nothing
    else links the two runs)."""
    ids = sorted(i for i in ids if isinstance(i, str) and i)
    return f"strands interrupts {label} " + " ".join(ids) if ids else None


def _resumed_key(label: str, prompt: Any) -> str | None:
    """The interrupt key of the paused invocation ``prompt`` answers (a list of ``interruptResponse``
    blocks; None: not a resume)."""
    if not isinstance(prompt, list) or not prompt:
        return None
    try:
        ids = [
            block["interruptResponse"].get("interruptId")
            for block in prompt
            if isinstance(block, dict) and isinstance(block.get("interruptResponse"), dict)
        ]
        return _interrupt_key(label, ids)
    except Exception as exc:
        internal_error("reading the interrupts a Strands invocation answers", exc)
        return None


def _note_result(agent: Any, result: Any) -> None:
    span = getattr(agent, "trace_span", None)
    if span is None:
        return
    stop_reason = str(getattr(result, "stop_reason", "") or "")
    if stop_reason == "interrupt":
        _note_interrupts(agent, span, result)
    try:
        with _delivered_lock:
            _delivered[span] = stop_reason
    except TypeError:  # a span that cannot be weakly referenced: the close reads as cancelled, as before
        return


def _note_interrupts(agent: Any, span: Any, result: Any) -> None:
    """The invocation paused on interrupts: its run (the agent span's) is the one the invocation answering
    them resumes."""
    try:
        binding = span_binding(span)
        run = binding.run if binding is not None else None
        if run is None or getattr(run, "native", None) is not span or run.conversation_id is not None:
            return
        ids = [getattr(i, "id", None) for i in result.interrupts or ()]
        run.resume_key = _interrupt_key(_agent_label(agent), ids)
    except Exception as exc:
        internal_error("reading the interrupts a Strands invocation paused on", exc)


def _make_init(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        try:
            from strands.hooks import (
                AfterToolCallEvent,
                BeforeInvocationEvent,
                BeforeModelCallEvent,
                BeforeToolCallEvent,
            )
            from strands.middleware import ExecuteToolStage

            self.hooks.add_callback(BeforeInvocationEvent, _before_invocation)
            self.hooks.add_callback(BeforeToolCallEvent, _before_tool)
            self.hooks.add_callback(AfterToolCallEvent, _after_tool)
            self.hooks.add_callback(BeforeModelCallEvent, _before_model)
            self.add_middleware(ExecuteToolStage, _execute_tool)
        except Exception as exc:  # the agent works as before, seen through its spans only
            internal_error("adding agent-otel's hooks to a Strands agent", exc)

    return __init__


class StrandsIntegration(Integration):
    name = "strands"
    packages = ("strands",)

    def __init__(self) -> None:
        self._patcher = Patcher()

    def instrument(self) -> None:
        if self._patcher.applied:
            return
        from strands.agent.agent import Agent

        self._patcher.wrap(Agent, "__init__", _make_init)
        self._patcher.wrap(Agent, "stream_async", _stream_async)
        for module, name in (("strands.multiagent.swarm", "Swarm"), ("strands.multiagent.graph", "Graph")):
            try:
                owner = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError):  # a Strands without it: the rest is instrumented
                continue
            if hasattr(owner, "stream_async"):
                self._patcher.wrap(owner, "stream_async", _multi_agent_stream)
        bridge.register_stops(SCOPE, _classify)

    def uninstrument(self) -> None:
        bridge.register_stops(SCOPE, None)
        self._patcher.restore()
