"""AG2 (``import ag2``): its own GenAI spans through the bridge, and a middleware so that guards act before
a tool runs and before a model request is sent.

AG2 traces the agents given its ``TelemetryMiddleware`` itself (``invoke_agent {name}``, ``chat``,
``execute_tool {tool}``): the GenAI span bridge (:mod:`agent_otel.bridge`) makes those spans the run and
its steps. A span processor cannot stop a call, so this integration adds one AG2 middleware to every turn
of every ``Agent`` (``Agent._drive_scope``'s ``additional_middleware``, after the agent's and the call's
own, so it is the innermost: AG2's spans are open around it, and a retrying middleware passes each attempt
through it). It changes nothing while no guard fires and no replay runs:

* ``on_turn``, inside AG2's ``invoke_agent`` span when the agent has ``TelemetryMiddleware``, tells the
  bridge this invocation's steps go through the hooks below (:func:`agent_otel.bridge.hook_in`), so a
  run made of AG2's spans is stoppable: the guards you configured enforce there, the ones on by default
  observe (README "Guards");
* ``on_tool_execution`` begins the tool step with the model's arguments and call id before the tool
  runs (guards first). AG2 turns any exception of a tool's middleware into the tool's error result, so a
  guard's :class:`~agent_otel.AgentStopped` (or ``ToolDenied`` with ``on_deny: raise``) keeps the tool
  from running and AG2 hands the refusal to the model; the stop then reaches the caller from the next
  ``on_llm_call``, before that request is sent. Under a replay it answers with the recorded result and
  the tool does not run. The step ends here with the tool's result (``agent.tool.result_sha``, rendered
  as AG2 renders it for the model) or error, on AG2's ``execute_tool`` span or, for an agent without
  ``TelemetryMiddleware`` inside a run of yours, on a span of agent-otel's own; so its arguments and
  result have hashes whether AG2's content capture is on or not;
* ``on_llm_call`` runs the guards' checks (and raises a stop decided since the last step) before each
  model request.

Outside any run (an agent without ``TelemetryMiddleware``, not in a run of yours) the middleware does
nothing.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from opentelemetry import trace

from agent_otel import bridge
from agent_otel.guards import ToolDenied
from agent_otel.llm import LLMCall
from agent_otel.replay import ReplayError, recorded, unserved
from agent_otel.steps import active_run, check_pending, internal_error, span_binding
from agent_otel.stop import AgentStopped
from agent_otel.tools import ToolCall

from . import Integration
from ._common import Patcher, refuse_outside_run


def _arguments(event: Any) -> Any:
    """The tool call's arguments as the model sent them (parsed JSON, as the bridge reads AG2's span)."""
    raw = getattr(event, "arguments", None)
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw or "{}")
    except ValueError:
        return raw


def _rendered(result: Any) -> Any:
    """What the model gets from a tool result, as AG2's span renders it (text parts joined, data as JSON),
    parsed back from JSON when it is JSON: the same value the bridge hashes from AG2's span."""
    parts = getattr(getattr(result, "result", None), "parts", None) or ()
    texts = []
    for part in parts:
        if isinstance(getattr(part, "content", None), str):
            texts.append(part.content)
        elif hasattr(part, "data"):
            texts.append(json.dumps(part.data, default=repr))
    text = "\n".join(texts)
    try:
        return json.loads(text)
    except ValueError:
        return text


def _serve(call: ToolCall, event: Any) -> Any:
    """The recorded result of a replayed call, as the ``ToolResultEvent`` AG2 gives the model instead of
    running the tool; what cannot be given back as AG2 got it is refused (the tool does not run either)."""
    from ag2.events import ToolResultEvent

    outcome = recorded(call)
    why = None
    if outcome.error is not None:
        why = "raised an error when recorded; AG2 turned it into a message this replay cannot rebuild"
    elif outcome.result_type is not None:
        why = "recorded a result that is not what AG2 gave the model"
    if why is not None:
        error = ReplayError(f"tool {call.name!r} {why}; not executing it during a replay")
        unserved(call, why)
        call.fail(error)
        raise error
    return ToolResultEvent.from_call(event, outcome.value)


def _finish(call: ToolCall, result: Any, exc: BaseException | None) -> None:
    """End the step with what the model gets (AG2's span, if any, is still open: the outcome goes on it)."""
    if call.done:
        return
    try:
        error = exc if exc is not None else getattr(result, "error", None)
        if isinstance(error, BaseException):
            call.fail(error)
        else:
            call.ok(_rendered(result))
    except Exception as err:
        internal_error("finishing an AG2 tool step", err)


def _in_ag2_span() -> bool:
    """Whether the current span is one of AG2's (its ``TelemetryMiddleware`` is on for this turn)."""
    scope = getattr(trace.get_current_span(), "instrumentation_scope", None)
    return getattr(scope, "name", None) == bridge.AG2_SCOPE


def _middleware_class() -> type:
    from ag2.middleware import BaseMiddleware

    class AgentOtelMiddleware(BaseMiddleware):  # type: ignore[misc]
        """agent-otel's hooks into an AG2 turn: tool steps and guards before the tool, checks before the
        model request."""

        async def on_turn(self, call_next: Any, event: Any, context: Any) -> Any:
            if _in_ag2_span():  # AG2's invoke_agent span: its steps go through these hooks
                try:
                    bridge.hook_in()
                except Exception as exc:
                    internal_error("hooking into an AG2 turn", exc)
            return await call_next(event, context)

        async def on_tool_execution(self, call_next: Any, event: Any, context: Any) -> Any:
            name = str(getattr(event, "name", None) or "tool")
            run = active_run()
            if run is None:
                refuse_outside_run(name)
                return await call_next(event, context)
            try:
                call = bridge.begin_tool(run, name, _arguments(event), getattr(event, "id", None))
            except (AgentStopped, ToolDenied, ReplayError):
                raise  # AG2 makes it the tool's error result; the tool does not run
            except Exception as exc:
                internal_error("starting an AG2 tool step", exc)
                return await call_next(event, context)
            if call is None:
                return await call_next(event, context)
            if call.replay is not None:
                served = _serve(call, event)
                _finish(call, served, None)
                return served
            try:
                result = await call_next(event, context)
            except BaseException as exc:
                _finish(call, None, exc)
                raise
            _finish(call, result, None)
            return result

        async def on_llm_call(self, call_next: Any, events: Any, context: Any) -> Any:
            run = active_run()
            if run is not None:
                try:
                    binding = span_binding(trace.get_current_span())
                    if binding is not None and isinstance(binding.step, LLMCall):
                        check_pending(run)  # AG2's request span, a step the bridge checked as it started
                    else:
                        bridge.check_llm(run)
                except AgentStopped:
                    raise
                except Exception as exc:
                    internal_error("checking an AG2 model request", exc)
            return await call_next(events, context)

    return AgentOtelMiddleware


def _make_drive_scope(factory: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def _drive_scope(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                kwargs["additional_middleware"] = (*kwargs.get("additional_middleware", ()), factory)
            except Exception as exc:  # the turn runs as it would without agent-otel
                internal_error("adding agent-otel's middleware to an AG2 turn", exc)
            return original(self, *args, **kwargs)

        return _drive_scope

    return make


class AG2Integration(Integration):
    name = "ag2"
    packages = ("ag2",)

    def __init__(self) -> None:
        self._patcher = Patcher()

    def instrument(self) -> None:
        if self._patcher.applied:
            return
        from ag2.agent import Agent
        from ag2.middleware import Middleware

        self._patcher.wrap(Agent, "_drive_scope", _make_drive_scope(Middleware(_middleware_class())))

    def uninstrument(self) -> None:
        self._patcher.restore()
