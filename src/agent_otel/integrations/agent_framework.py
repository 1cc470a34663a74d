"""Microsoft Agent Framework (``agent-framework-core``): a hook before every function tool, so that guards
act there and a replay serves the recorded result instead of running the tool.

The framework traces itself: the GenAI span bridge (:mod:`agent_otel.bridge`) makes its ``invoke_agent``
span the run, its ``chat`` spans the LLM steps and its ``execute_tool`` spans the tool steps. Without
``enable_sensitive_data`` those spans carry neither a tool's arguments nor its result, and a span
processor cannot stop a call, so from the spans alone a replay could only let the framework run every tool
again and the guards could only observe. Every function tool the framework calls, with or without function
middleware, goes through ``FunctionTool.invoke(arguments=..., context=..., tool_call_id=...)``, which opens
the framework's span and calls the function; this integration wraps it:

* before the framework opens its span, the step begins with the model's arguments and call id
  (:func:`agent_otel.bridge.begin_tool`; the invocation then follows the hook, so the run is stoppable):
  the guards you configured enforce there, the ones on by default observe (README "Guards"). A stop or a
  policy refusal is raised from ``invoke``; the framework hands it to the model as the tool's error (the
  tool does not run) and ``AgentStopped`` reaches the caller from the next model request, before it is
  sent: ``BaseChatClient.get_response``, the innermost layer of every chat client (inside the
  framework's request span), runs the guards' checks of a model request first (the budgets enforce
  there from the first tool call on);
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
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace

from agent_otel import bridge
from agent_otel.guards import ToolDenied
from agent_otel.replay import RecordedOutcome, ReplayError
from agent_otel.steps import active_run, check_pending, internal_error, span_binding
from agent_otel.stop import AgentStopped
from agent_otel.tools import ToolCall

from . import Integration
from ._common import Patcher, await_or_serve, await_with_timeout, refuse_outside_run

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


def _finish(call: ToolCall, result: Any, exc: BaseException | None) -> None:
    """End the step, unless it has ended (an ``@agent_otel.tool`` function that claimed it, a refusal, or
    the framework's span that ended it)."""
    if call.done:
        return
    try:
        if exc is not None:
            call.fail(exc)
        else:
            call.ok(result)
    except Exception as err:
        internal_error("finishing an Agent Framework tool step", err)


def _parsed(tool: Any, value: Any, skip_parsing: bool) -> Any:
    """A served raw value as ``invoke`` returns the function's: parsed into content, unless skipped."""
    from agent_framework import Content, FunctionTool

    parser = getattr(tool, "result_parser", None)
    if skip_parsing or repr(parser) == "SKIP_PARSING":
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

        name = str(getattr(self, "name", None) or "tool")
        run = active_run()
        if run is None or getattr(self, "declaration_only", False):
            if run is None:
                refuse_outside_run(name)
            return await call_original()
        try:
            bridge.hook_in()
            call = bridge.begin_tool(
                run,
                name,
                _arguments(arguments, context, kwargs),
                tool_call_id,
                description=getattr(self, "description", None) or None,
            )
        except (AgentStopped, ToolDenied, ReplayError):
            raise  # the framework hands it to the model as the tool's error; the tool does not run
        except Exception as exc:
            internal_error("starting an Agent Framework tool step", exc)
            return await call_original()
        if call is None:
            return await call_original()
        try:
            if call.replay is not None:
                value = await await_or_serve(call, _served, _never)
                _finish(call, value, None)
                return _parsed(self, value, skip_parsing)
            token = _calling.set((self, call))
            try:
                result = await await_with_timeout(call, call_original)
            finally:
                _calling.reset(token)
        except BaseException as exc:
            _finish(call, None, exc)
            raise
        if not call.done:  # the function was not called (a middleware answered): its answer is the result
            _finish(call, result, None)
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
            _finish(call, None, exc)
            raise
        _finish(call, value, None)
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


def _served(outcome: RecordedOutcome) -> Any:
    """A replayed tool's recorded return value (its JSON form), or its recorded error raised."""
    return outcome.result()


async def _never(*args: Any, **kwargs: Any) -> Any:  # the serving path never runs the tool
    raise AssertionError("not called under a replay")


class AgentFrameworkIntegration(Integration):
    name = "agent_framework"
    packages = ("agent_framework",)

    def __init__(self) -> None:
        self._patcher = Patcher()

    def instrument(self) -> None:
        if self._patcher.applied:
            return
        from agent_framework import BaseChatClient, FunctionTool

        self._patcher.wrap(FunctionTool, "invoke", _make_invoke)
        self._patcher.wrap(BaseChatClient, "get_response", _make_get_response)
        self._patcher.wrap(FunctionTool, "_invoke_function", _make_invoke_function)

    def uninstrument(self) -> None:
        self._patcher.restore()
