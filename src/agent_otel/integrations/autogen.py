"""AutoGen (``autogen-core`` 0.7): a hook before every tool, so that guards act there and a replay serves the
recorded result instead of running the tool.

AutoGen traces itself: the GenAI span bridge (:mod:`agent_otel.bridge`) makes its ``invoke_agent`` span the
run and its ``execute_tool`` spans the tool steps. Its spans carry neither a tool's arguments nor its
result, and a span processor cannot stop a call, so from the spans alone a replay could only let AutoGen
run every tool again (an email sent twice) and the guards could only observe. Every tool AutoGen calls
(an ``AssistantAgent``'s tools through its workbench, handoffs, ``ToolAgent``) goes through
``BaseTool.run_json(args, cancellation_token, call_id)``, which opens AutoGen's span around the tool's
``run``; this integration wraps it:

* AutoGen's runs follow this hook (:func:`agent_otel.bridge.register_hooks`): they are stoppable, and
  their tool steps are begun here, not when their spans start;
* before AutoGen opens its span, the step begins with the model's arguments and call id
  (:func:`agent_otel.bridge.begin_tool`): the guards you configured enforce there, the ones on by
  default observe (README "Guards"). A stop or a policy refusal is raised from ``run_json``; AutoGen
  hands it to the model as the tool's error (the tool does not run), and the stop reaches the caller
  from the next model request made through an instrumented client (``openai``, whose requests are
  checked before they are sent, the first one too);
* AutoGen's span, opened next, becomes that step's span; the step ends with the tool's return value
  (``agent.tool.result_sha``, the replay snapshot) or exception while the span is still open, through a
  per-call copy of the tool whose ``run`` reports back (AutoGen calls ``self.run`` inside its span);
* under a replay it returns the recorded value (or raises the recorded error, which AutoGen hands to the
  model as it did) without calling ``run_json``: the tool does not run. A result that was an object when
  recorded (a pydantic model) or an error whose class this process has not loaded is refused with
  ``ReplayError`` (AutoGen tells the model; the tool does not run either);
* ``guards.tool_timeout_s`` applies to the call.

A *sync* function is AutoGen's ``FunctionTool.run`` handing it to ``loop.run_in_executor``, which (unlike
``asyncio.to_thread``) does not carry the caller's context to the worker thread; for a sync function
decorated with ``@agent_otel.tool`` the executor runs it inside a copy of the caller's context, so it
claims the step (its ``retry=``, ``timeout_s=`` and declared write applied once). Other functions run as
AutoGen runs them (their threads see no context of the caller's, as before). Streaming tools
(``run_json_stream``) are seen through their spans only.

An agent's ``run_stream`` (``autogen_agentchat``'s ``BaseChatAgent``, patched once that module is
imported) closed by its consumer before its ``TaskResult`` (the stream's last item) ends the run
``cancelled``: AutoGen ends its ``invoke_agent`` span normally then (the ``GeneratorExit`` is no
``Exception`` to it), which alone read ``completed`` though the agent never answered.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import inspect
import sys
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace

from agent_otel import bridge
from agent_otel.steps import internal_error, span_binding
from agent_otel.stop import StopReason
from agent_otel.tools import ToolCall

from . import Integration
from ._common import (
    Patcher,
    await_or_serve,
    await_with_timeout,
    begin_hooked_tool,
    end_tool_step,
    never_run,
    served,
)

#: The instrumentation scope of AutoGen's tracer (``autogen_core._telemetry``).
SCOPE = "autogen-core"
#: The module of ``BaseChatAgent`` (``run_stream``), imported by the application, not by autogen_core.
_CHAT_AGENT = "autogen_agentchat.agents._base_chat_agent"


def _is_agent_otel_tool(func: Any) -> bool:
    try:
        inner = inspect.unwrap(func, stop=lambda f: hasattr(f, "__agent_otel_tool__"))
    except ValueError:  # a __wrapped__ cycle
        return False
    return hasattr(inner, "__agent_otel_tool__")


def _make_run(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        func = getattr(self, "_func", None)
        if func is None or inspect.iscoroutinefunction(func) or not _is_agent_otel_tool(func):
            return await original(self, *args, **kwargs)
        # AutoGen's own run, on a shallow copy whose function enters the caller's context on the executor's
        # thread (a fresh copy per call: a Context is entered by one thread at a time).
        carried = copy.copy(self)
        carried._func = functools.partial(contextvars.copy_context().run, func)
        return await original(carried, *args, **kwargs)

    return run


def _reporting(tool: Any, call: ToolCall) -> Any:
    """A per-call copy of ``tool`` whose ``run`` (what ``run_json`` calls inside AutoGen's span) ends the step
    with the tool's outcome while that span is open. None if the tool cannot be copied: the step then ends
    with AutoGen's span, without the result."""
    try:
        reporting = copy.copy(tool)
    except Exception:
        return None
    run = tool.run  # bound to the tool itself: the call is exactly AutoGen's

    async def run_and_report(*args: Any, **kwargs: Any) -> Any:
        try:
            value = await run(*args, **kwargs)
        except BaseException as exc:
            end_tool_step(call, None, exc, "AutoGen")
            raise
        end_tool_step(call, value, None, "AutoGen")
        return value

    try:
        reporting.run = run_and_report
    except Exception:
        return None
    return reporting


def _make_run_json(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def run_json(
        self: Any, args: Mapping[str, Any], cancellation_token: Any, call_id: str | None = None
    ) -> Any:
        name = str(getattr(self, "name", None) or "tool")
        description = getattr(self, "description", None)
        call = begin_hooked_tool(name, dict(args), call_id, "AutoGen", description)
        if call is None:
            return await original(self, args, cancellation_token, call_id)
        try:
            if call.replay is not None:
                result = await await_or_serve(call, served, never_run)
            else:
                tool = _reporting(self, call) or self
                result = await await_with_timeout(call, original, tool, args, cancellation_token, call_id)
        except BaseException as exc:
            end_tool_step(call, None, exc, "AutoGen")
            raise
        end_tool_step(call, result, None, "AutoGen")
        return result

    return run_json


def _make_run_stream(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def run_stream(self: Any, *args: Any, **kwargs: Any) -> Any:
        inner = original(self, *args, **kwargs)
        run: Any = None
        finished = False
        try:
            async for item in inner:
                if run is None:
                    run = _own_run()
                finished = type(item).__name__ == "TaskResult"
                yield item
        except GeneratorExit:
            if not finished and run is not None and run.result is None:
                try:
                    run.stop(StopReason.CANCELLED, "the consumer closed run_stream before its TaskResult")
                except Exception as exc:
                    internal_error("cancelling an AutoGen run", exc)
            raise
        finally:
            await inner.aclose()  # AutoGen's own cleanup now (a no-op for a stream that ended)

    return run_stream


def _own_run() -> Any:
    """The run whose span is AutoGen's ``invoke_agent`` span of this ``run_stream`` (current in the
    consumer's context while the stream is suspended: AutoGen's generator entered it there); None inside
    a run of yours, which the agent's stream does not end."""
    span = trace.get_current_span()
    binding = span_binding(span)
    run = binding.run if binding is not None else None
    return run if run is not None and getattr(run, "native", None) is span else None


class AutoGenIntegration(Integration):
    name = "autogen"
    packages = ("autogen_core",)

    def __init__(self) -> None:
        self._patcher = Patcher()

    @property
    def triggers(self) -> tuple[str, ...]:
        return ("autogen_core", _CHAT_AGENT)

    def instrument(self) -> None:  # (again once autogen_agentchat is imported; each wrap is done once)
        from autogen_core.tools import BaseTool, FunctionTool

        self._patcher.wrap(BaseTool, "run_json", _make_run_json)
        self._patcher.wrap(FunctionTool, "run", _make_run)
        bridge.register_hooks(SCOPE)
        chat_agent = sys.modules.get(_CHAT_AGENT)
        if chat_agent is not None and hasattr(chat_agent, "BaseChatAgent"):
            self._patcher.wrap(chat_agent.BaseChatAgent, "run_stream", _make_run_stream)

    def uninstrument(self) -> None:
        bridge.register_hooks(SCOPE, on=False)
        self._patcher.restore()
