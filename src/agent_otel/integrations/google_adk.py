"""Google ADK: its own GenAI spans through the bridge, and a plugin so that guards act before a tool runs.

ADK traces every invocation itself (``invoke_workflow {root}``, ``invoke_agent {name}``, ``generate_content
{model}``, ``execute_tool {tool}``, through the global TracerProvider): the GenAI span bridge
(:mod:`agent_otel.bridge`) makes the ``invoke_workflow`` span (one ``Runner`` call) the run, the
``invoke_agent`` spans in it (sub-agents transferred to too) part of it and the others its steps, with
no span of agent-otel's own. The spans alone lack what guards and replay need (ADK sets a tool's arguments and
result on its span only with content capture on, and only when the tool has finished), so this
integration adds one ADK plugin to every ``Runner`` created after ``setup()`` (the first of its plugins):

* ``before_tool_callback``, which ADK runs inside its ``execute_tool`` span before the tool: the tool step
  begins there with the model's arguments and function call id, and the guards run (a guard that stops
  the run raises :class:`~agent_otel.AgentStopped`, which reaches the caller of ``Runner.run_async`` /
  ``run`` as itself, not as the ``RuntimeError`` ADK wraps plugin errors in); under a replay it answers
  with the recorded result, so ADK does not run the tool;
* ``after_tool_callback`` / ``on_tool_error_callback``: the step ends with the tool's result
  (``agent.tool.result_sha``) or exception, while ADK's span is still open;
* ``before_model_callback``: the guards' checks before each model call; ``before_agent_callback`` tells
  the bridge these callbacks follow the invocation (:func:`agent_otel.bridge.hook_in`). A runner created
  before ``setup()`` has no plugin, and its agents are seen through their spans only.

Stop reasons: ``LlmCallsLimitExceededError`` (``RunConfig.max_llm_calls``) -> ``max_steps``; the consumer
closing ``run_async``'s (or ``run``'s) event stream before the end -> ``cancelled`` (ADK ends its spans
normally), but not one that stops at the final response of an LLM agent that nothing runs after (ADK's
own samples ``break`` there: the invocation is over); an invocation ADK pauses on a long-running tool
call -> ``interrupted`` (``after_run_callback``); a model error that ends the invocation ->
``model_error``; a tool exception that ADK raises to the caller -> ``tool_error``.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from agent_otel import bridge
from agent_otel import conventions as c
from agent_otel.guards import ToolDenied
from agent_otel.replay import ReplayError, recorded, unserved
from agent_otel.run import Run
from agent_otel.steps import active_run, internal_error
from agent_otel.stop import AgentStopped, StopReason
from agent_otel.tools import ToolCall, active_tool_call

from . import Integration
from ._common import Patcher, pause, refuse_outside_run, unwrapping_stream

PLUGIN_NAME = "agent_otel"
#: The instrumentation scope of ADK's tracer (``google.adk.telemetry.tracing``).
SCOPE = "gcp.vertex.agent"


def _plugin_class() -> type:
    from google.adk.plugins.base_plugin import BasePlugin

    class AgentOtelPlugin(BasePlugin):  # type: ignore[misc]
        """agent-otel's hooks into ADK: tool steps and guards before the tool, checks before the model."""

        def __init__(self) -> None:
            super().__init__(name=PLUGIN_NAME)

        async def before_agent_callback(self, *, agent: Any, callback_context: Any) -> Any:
            try:  # inside ADK's agent span: this invocation's steps go through the callbacks below
                run = bridge.hook_in()
                invocation = getattr(callback_context, "invocation_id", None)
                if run is not None and isinstance(invocation, str):
                    _remember(invocation, run)
            except Exception as exc:
                internal_error("hooking into an ADK invocation", exc)
            return None

        async def before_tool_callback(self, *, tool: Any, tool_args: Any, tool_context: Any) -> Any:
            name = str(getattr(tool, "name", None) or "tool")
            run = active_run()
            if run is None:
                refuse_outside_run(name)
                return None
            description = getattr(tool, "description", None)
            try:
                call = bridge.begin_tool(
                    run,
                    name,
                    dict(tool_args) if isinstance(tool_args, dict) else tool_args,
                    getattr(tool_context, "function_call_id", None),
                    description=description if isinstance(description, str) else None,
                )
            except ToolDenied as exc:  # on_deny: raise: the tool is refused, the model is told why
                return {"error": str(exc)}
            except (AgentStopped, ReplayError):
                raise
            except Exception as exc:
                internal_error("starting an ADK tool step", exc)
                return None
            if call is None or call.replay is None:
                return None
            return _serve(call)

        async def after_tool_callback(
            self, *, tool: Any, tool_args: Any, tool_context: Any, result: Any
        ) -> Any:
            call = _open_call()
            if call is not None:
                try:
                    call.ok(result)
                except Exception as exc:
                    internal_error("finishing an ADK tool step", exc)
            return None

        async def on_tool_error_callback(
            self, *, tool: Any, tool_args: Any, tool_context: Any, error: Exception
        ) -> Any:
            call = _open_call()
            if call is not None:
                call.fail(error)
            return None

        async def after_run_callback(self, *, invocation_context: Any) -> None:
            try:  # still inside ADK's workflow span, whose end stops the run
                _paused_for_input(invocation_context)
            except Exception as exc:
                internal_error("reading whether an ADK invocation paused", exc)

        async def before_model_callback(self, *, callback_context: Any, llm_request: Any) -> Any:
            run = active_run()
            if run is None:
                return None
            model = getattr(llm_request, "model", None)
            try:
                bridge.check_llm(run, model if isinstance(model, str) else None)
            except AgentStopped:
                raise
            except Exception as exc:
                internal_error("checking an ADK model call", exc)
            return None

    return AgentOtelPlugin


def _paused_for_input(ctx: Any) -> None:
    """An invocation that ended on a long-running tool call (``LongRunningFunctionTool`` returning None,
    an ``adk_request_input``...) paused for a human, by ADK's own test (``should_pause_invocation``): its
    run ends ``interrupted``, naming the calls it waits for. The client's answer is a new invocation of the
    same session, whose run links to this one."""
    run = active_run()
    should_pause = getattr(ctx, "should_pause_invocation", None)
    if run is None or not run.active or not callable(should_pause):
        return
    invocation = getattr(ctx, "invocation_id", None)
    events = getattr(getattr(ctx, "session", None), "events", None) or ()
    mine = [e for e in events if getattr(e, "invocation_id", None) == invocation]
    if mine and should_pause(mine[-1]):
        ids = sorted(i for i in getattr(mine[-1], "long_running_tool_ids", None) or () if isinstance(i, str))
        pause(run, max(len(ids), 1), ids)


#: The run of each ADK invocation in flight (by invocation id), so that a consumer closing the event
#: stream early can cancel it: ADK ends its spans normally then, which would read ``completed``.
_invocations: OrderedDict[str, Run] = OrderedDict()
_invocations_lock = threading.Lock()
_MAX_INVOCATIONS = 1024


def _remember(invocation: str, run: Run) -> None:
    with _invocations_lock:
        _invocations.setdefault(invocation, run)
        while len(_invocations) > _MAX_INVOCATIONS:
            _invocations.popitem(last=False)


def _make_run_async(original: Callable[..., Any]) -> Callable[..., Any]:
    """``Runner.run_async`` whose consumer closing the stream before the end cancels the invocation's run;
    a guard's stop wrapped by ADK reaches the caller as itself (:func:`unwrapping_stream`)."""
    stream = unwrapping_stream(original)

    @functools.wraps(original)
    async def run_async(self: Any, *args: Any, **kwargs: Any) -> Any:
        invocation: str | None = None
        last: Any = None
        try:
            async for event in stream(self, *args, **kwargs):
                found = getattr(event, "invocation_id", None)
                if isinstance(found, str):
                    invocation = found
                last = event
                yield event
        except GeneratorExit:
            with _invocations_lock:
                run = _invocations.pop(invocation, None) if invocation else None
            if run is not None and run.result is None:
                try:
                    _closed(self, run, last)
                except Exception as exc:
                    internal_error("cancelling an ADK invocation", exc)
            raise
        finally:
            if invocation is not None:  # ended either way: forget its run
                with _invocations_lock:
                    _invocations.pop(invocation, None)

    return run_async


def _make_run(original: Callable[..., Any]) -> Callable[..., Any]:
    """``Runner.run`` (the sync form: ``run_async`` in a thread of its own) whose consumer stopping before
    the end makes the invocation's run end ``cancelled``. ADK then cancels its thread's task, which ends
    the invocation normally (its after-run callbacks run): alone, that read ``completed`` though the agent
    never finished."""

    @functools.wraps(original)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        inner = original(self, *args, **kwargs)
        invocation: str | None = None
        last: Any = None
        try:
            for event in inner:
                found = getattr(event, "invocation_id", None)
                if isinstance(found, str):
                    invocation = found
                last = event
                yield event
        except GeneratorExit:
            with _invocations_lock:  # (the invocation's thread is still running it: its run is open)
                found_run = _invocations.get(invocation) if invocation else None
            try:
                if found_run is not None and found_run.result is None and not _ends_invocation(self, last):
                    # Not stopped now: ADK's thread goes on until its task sees the cancellation (a tool
                    # call in flight still runs, as it does without agent-otel), then ends its spans.
                    _cancel_at_end(found_run)
            except Exception as exc:
                internal_error("cancelling an ADK invocation", exc)
            raise
        finally:
            inner.close()  # ADK's own cleanup now: it cancels the invocation's task and joins its thread

    return run


#: Runs whose consumer left a sync ``Runner.run`` early: they end ``cancelled`` when ADK ends their span.
_closed_early: OrderedDict[str, None] = OrderedDict()


def _cancel_at_end(run: Run) -> None:
    with _invocations_lock:
        _closed_early[run.run_id] = None
        while len(_closed_early) > _MAX_INVOCATIONS:
            _closed_early.popitem(last=False)


def _classify(span: Any) -> StopReason | None:
    """``cancelled`` for the run of an invocation whose sync consumer left early (ADK ends it normally)."""
    run_id = (span.attributes or {}).get(c.RUN_ID)
    with _invocations_lock:
        return StopReason.CANCELLED if run_id in _closed_early else None


def _closed(runner: Any, run: Run, last: Any) -> None:
    """The consumer closed the event stream of ``run``'s invocation: cancelled, unless ``last``, the event
    it stopped at, ended the invocation; then ADK, which still ends it as usual (its after-run callbacks,
    its spans), ends the run as it would have: completed, or interrupted by a long-running tool call."""
    if not _ends_invocation(runner, last):
        run.stop(StopReason.CANCELLED, "the consumer closed ADK's event stream before the end")


def _ends_invocation(runner: Any, event: Any) -> bool:
    """Whether nothing follows ``event`` in its invocation: the final response (ADK's
    ``is_final_response()``) of an LLM agent with no workflow agent above it (a ``SequentialAgent`` or
    ``LoopAgent`` runs another agent after one's final response; an LLM agent's sub-agent that it
    transferred to ends the invocation as the agent itself would)."""
    is_final = getattr(event, "is_final_response", None)
    if not callable(is_final) or not is_final():
        return False
    from google.adk.agents import LlmAgent

    root = getattr(runner, "agent", None)
    find = getattr(root, "find_agent", None)
    agent = find(getattr(event, "author", None) or "") if callable(find) else None
    if agent is None:
        return False
    while agent is not None:
        if not isinstance(agent, LlmAgent):
            return False
        agent = agent.parent_agent
    return True


def _open_call() -> ToolCall | None:
    """The tool step of the ADK tool span that is current, if it has not ended."""
    call = active_tool_call()
    return call if call is not None and not call.done else None


def _serve(call: ToolCall) -> Any:
    """The recorded response of a replayed call, which ADK then gives the model instead of running the
    tool (a before-tool callback's answer); what cannot be given back as ADK got it is refused."""
    outcome = recorded(call)
    why = None
    if outcome.error is not None:
        why = "raised an error when recorded; ADK turned it into a response this replay cannot rebuild"
    elif outcome.result_type is not None or not isinstance(outcome.value, dict):
        why = "recorded a result that is not the dict ADK gives the model"
    if why is not None:
        error = ReplayError(f"tool {call.name!r} {why}; not executing it during a replay")
        unserved(call, why)
        call.fail(error)
        raise error
    call.ok(outcome.value)
    return outcome.value


def _make_init(plugin: Any) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def make(original: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(original)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            try:
                if all(getattr(p, "name", None) != PLUGIN_NAME for p in self.plugins):
                    self.plugins.insert(0, plugin)  # first: guards check before other plugins answer
            except Exception as exc:  # the runner works as before, seen through its spans only
                internal_error("adding agent-otel's plugin to an ADK runner", exc)

        return __init__

    return make


class GoogleADKIntegration(Integration):
    name = "google_adk"
    packages = ("google.adk",)

    def __init__(self) -> None:
        self._patcher = Patcher()

    def instrument(self) -> None:
        if self._patcher.applied:
            return
        from google.adk.plugins.plugin_manager import PluginManager
        from google.adk.runners import Runner

        self._patcher.wrap(PluginManager, "__init__", _make_init(_plugin_class()()))
        self._patcher.wrap(Runner, "run_async", _make_run_async)
        self._patcher.wrap(Runner, "run", _make_run)
        bridge.register_stops(SCOPE, _classify)

    def uninstrument(self) -> None:
        bridge.register_stops(SCOPE, None)
        self._patcher.restore()
