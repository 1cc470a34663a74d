"""``mistralai.extra.run``: the local functions a ``RunContext`` runs between a conversation's turns.

``client.beta.conversations.run_async`` / ``run_stream_async`` with a ``RunContext`` call the functions
registered with ``run_ctx.register_func`` (and the tools of its MCP clients) themselves, one
``create_function_result`` per function call the model asked for. Seen only through the SDK's
``execute_tool`` span, such a call would be recorded after it ran, and a replay could not keep it from
running again: a replayed ``send_email`` would send the e-mail. So each call is a tool step begun here,
before the function runs (guards first; the SDK's span, started next, becomes the step's span), ended with
the function's own return value or exception while that span is open, and under a replay served from the
recording: the SDK gets the recorded value (or the recorded error) from a stand-in for the function and
makes of it what it made of the function's, so the model gets the same answer and the function does not
run. What cannot be served is refused with ``ReplayError``, which reaches the caller as itself (not as
the SDK's ``RunException``, nor as an error message for the model with ``continue_on_fn_error``), and so
is a guard's stop. A call the policy refuses under ``on_deny: raise`` (``ToolDenied``, which the agent is
meant to carry on from) takes the SDK's own error path, as a function that raised it would: with
``continue_on_fn_error`` the model gets the refusal as the function's error result, else the run raises the
SDK's ``RunException`` from it. The function never runs.

``mistralai.extra.run.context`` is imported by the application (it builds the ``RunContext``), not by
``mistralai.client``: it is patched when ``instrument()`` finds it imported, else at the first
``run_async`` / ``run_stream_async``.

Outside a run of yours, ``run_async`` is one run: the SDK wraps its loop in a ``conversation`` span (the
bridge's run), whatever its telemetry setting. ``run_stream_async`` has no such span: its turns and
functions were no run at all (with the SDK's tracing on, each turn a run of its own, ``completed`` even
when its consumer left in the middle of it, and the functions in none). So its stream is made one run
here (named ``agent``, as the bridge names ``run_async``'s; its input the conversation's ``inputs``),
current while the SDK's loop runs, not in the consumer's code between events: ``completed`` once the
loop yielded its ``RunResult`` (a consumer that stops there too), ``cancelled`` if the consumer closes
the stream or drops it before.
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
from collections.abc import Callable
from typing import Any

from agent_otel.guards import ToolDenied
from agent_otel.replay import ReplayError
from agent_otel.run import agent
from agent_otel.steps import current_run, internal_error
from agent_otel.stop import AgentStopped, StopReason
from agent_otel.tools import ToolCall

from ._common import (
    Patcher,
    await_or_serve,
    await_with_timeout,
    begin_hooked_tool,
    call_with_timeout,
    end_tool_step,
    never_run,
    parse_json_args,
    served,
)

FRAMEWORK = "mistralai.extra.run"
_MODULES = ("mistralai.extra.run.context", "mistralai.extra.run.tools")
_lock = threading.Lock()


def _description(run_tool: Any) -> str | None:
    function = getattr(getattr(run_tool, "tool", None), "function", None)
    text = getattr(function, "description", None)
    return text if isinstance(text, str) and text else None


async def _run_live(run_tool: Any, name: str, call: ToolCall, kwargs: dict[str, Any]) -> Any:
    """What the SDK would have done with ``run_tool``, under ``guards.tool_timeout_s``."""
    from mistralai.extra.run.tools import RunCoroutine, RunFunction

    if isinstance(run_tool, RunFunction):
        return call_with_timeout(call, run_tool.callable, **kwargs)
    if isinstance(run_tool, RunCoroutine):
        return await await_with_timeout(call, run_tool.awaitable, **kwargs)
    return await await_with_timeout(call, run_tool.mcp_client.execute_tool, name, kwargs)


def _wrap_function_result(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def create_function_result(
        function_call: Any, run_tool: Any, continue_on_fn_error: bool = False, *args: Any, **kwargs: Any
    ) -> Any:
        from mistralai.extra.run.tools import RunCoroutine

        name = str(getattr(function_call, "name", None) or "tool")
        call_id = getattr(function_call, "tool_call_id", None)
        try:
            call = begin_hooked_tool(
                name,
                parse_json_args(getattr(function_call, "arguments", None)),
                call_id if isinstance(call_id, str) and call_id else None,
                "Mistral",
                _description(run_tool),
            )
        except ToolDenied as denied:  # on_deny: raise: the SDK's own error path, as if the function raised it
            refusal = denied  # (the except clause unbinds its name at its end)

            async def refuse(**arguments: Any) -> Any:
                raise refusal

            stand_in = RunCoroutine(
                name=getattr(run_tool, "name", name), awaitable=refuse, tool=run_tool.tool
            )
            return await original(function_call, stand_in, continue_on_fn_error, *args, **kwargs)
        if call is None:  # outside any run, or telemetry failed: the SDK runs the function as it is
            return await original(function_call, run_tool, continue_on_fn_error, *args, **kwargs)
        refused: list[BaseException] = []

        async def body(**arguments: Any) -> Any:
            try:
                if call.replay is not None:
                    value = await await_or_serve(call, served, never_run)
                else:
                    value = await _run_live(run_tool, name, call, arguments)
            except (AgentStopped, ReplayError) as exc:
                refused.append(exc)  # the SDK would make a tool error of it: raised as itself below
                end_tool_step(call, None, exc, "Mistral")
                raise
            except BaseException as exc:
                end_tool_step(call, None, exc, "Mistral")
                raise
            end_tool_step(call, value, None, "Mistral")
            return value

        stand_in = RunCoroutine(name=getattr(run_tool, "name", name), awaitable=body, tool=run_tool.tool)
        try:
            result = await original(function_call, stand_in, continue_on_fn_error, *args, **kwargs)
        except BaseException as exc:
            end_tool_step(call, None, exc, "Mistral")  # the SDK failed before calling the function
            if refused:
                raise refused[0] from None
            raise
        if refused:
            raise refused[0]
        return result

    return create_function_result


def patch(patcher: Patcher) -> None:
    """Wrap ``create_function_result`` where ``RunContext`` calls it (and in its own module), if
    ``mistralai.extra.run.context`` is imported; idempotent."""
    if _MODULES[0] not in sys.modules:
        return
    with _lock:
        for module_name in _MODULES:
            module = importlib.import_module(module_name)
            if hasattr(module, "create_function_result"):
                patcher.wrap(module, "create_function_result", _wrap_function_result)


def wrap_run(patcher: Patcher) -> Callable[[Any], Any]:
    """``Conversations.run_async`` / ``run_stream_async``: patch the run context's module before the
    first run (the application imported it to build its ``RunContext``); outside a run, make
    ``run_stream_async``'s stream one run (see the module's docstring)."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        streamed = original.__name__ == "run_stream_async"

        @functools.wraps(original)
        async def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                patch(patcher)
            except Exception as exc:
                internal_error("instrumenting mistralai.extra.run", exc)
            result = await original(self, *args, **kwargs)
            if not streamed or current_run() is not None or not hasattr(result, "__anext__"):
                return result
            try:
                return _one_run(result, kwargs.get("inputs", args[1] if len(args) > 1 else None))
            except Exception as exc:
                internal_error("making a run of mistralai.extra.run's stream", exc)
                return result

        return run

    return make


def _one_run(stream: Any, inputs: Any) -> Any:
    """``stream`` (``run_stream_async``'s events, then its ``RunResult``) as one run."""

    @agent("agent")
    async def conversation(inputs: Any) -> Any:
        finished = False
        try:
            async for item in stream:
                finished = type(item).__name__ == "RunResult"
                yield item
        except GeneratorExit:
            if finished:  # the consumer stopped at the RunResult: the loop was over
                run = current_run()
                if run is not None:
                    run.stop(StopReason.COMPLETED)
            raise
        finally:
            await stream.aclose()

    return conversation(inputs)
