"""The Anthropic SDK's tool runner (``client.beta.messages.tool_runner``): the functions it runs itself.

The tool runner calls the ``@beta_tool`` / ``@beta_async_tool`` functions (and built-in function tools such
as the memory tool) itself, each through ``_run_tool(tool, tool_use)``, and each member of a toolset
through the toolset's ``tool_result(tool_use)``, streamed runners (``stream=True``, ``run_tools_eagerly``)
included. Seen only through the SDK's own ``anthropic.custom_tool_use`` span (when its tracing is on), a
call would be recorded after it ran and a replay could not keep it from running again. So each call is a
tool step begun here, before the function runs (guards first), on the SDK's span when there is one:

* a function tool's step ends with the function's own return value or exception, from a stand-in for the
  tool that the runner calls as it would call the tool; under a replay the stand-in returns the recorded
  value (or raises the recorded error) instead of calling the function, and the runner makes of it the
  ``tool_result`` block it made then (its error text included), so the model gets the same answer;
* a toolset member's step (``tool_result(tool_use)`` of the SDK's toolset classes, which the runner calls
  and an application driving ``messages.create`` itself may call too) ends with the ``tool_result`` block
  the toolset answered, which a replay hands back instead of asking the toolset. A toolset that overrides
  ``tool_result`` itself (the SDK's contract is ``call``) is seen through the SDK's span only.

What cannot be served (another call than the recorded one in lenient mode, a result that was an object,
an error of a class not loaded) is refused with ``ReplayError``, raised to the caller as itself: the
runner would otherwise make a tool error of it and go on asking the model. A guard's stop is raised as
itself too. A call the policy refuses under ``on_deny: raise`` (``ToolDenied``, which the agent is meant
to carry on from) takes the runner's own error path instead, as a tool that raised it would: the model gets
the refusal as the tool's error result, and the function never runs. The runner's span scope is
registered with the bridge (:func:`agent_otel.bridge.register_hooks`), so its tool spans wait for these
hooks instead of becoming steps of their own.

Outside a run of yours, the runner's own span (``anthropic.messages.tool_runner``) is the run. The SDK
sets its status OK when the loop finishes and leaves it unset when the runner is closed (``close()``, or
the garbage collector finalizing a runner its consumer left): closed before the model's last answer (no
answer yet, or one asking for tools the runner never ran), that run is ``cancelled``, not ``completed``.
A runner closed after the final answer (a consumer that stops at it) completed. A streamed runner's item is
the reply's stream: its answer is what the consumer read of it (the stream's snapshot, whose stop reason
comes with the reply's last events), never read further here; a reply cut before its end is no answer.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import Callable
from typing import Any

from opentelemetry.trace import StatusCode

from agent_otel import bridge
from agent_otel.guards import ToolDenied
from agent_otel.replay import ReplayError
from agent_otel.steps import internal_error
from agent_otel.stop import AgentStopped, StopReason
from agent_otel.tools import ToolCall

from ._common import (
    Patcher,
    await_or_serve,
    await_with_timeout,
    begin_hooked_tool,
    call_or_serve,
    end_tool_step,
    never_run,
    served,
)

FRAMEWORK = "Anthropic tool runner"
#: The SDK's tracer scopes: ``com.anthropic.sdk.python``, and the platform clients' (``..._otel_platform``).
SCOPE = "com.anthropic.sdk.python"
SCOPES = (SCOPE, *(f"{SCOPE}.{p}" for p in ("aws", "bedrock", "foundry", "google_cloud", "vertex")))


def _begin(tool_use: Any, description: Any = None) -> ToolCall | None:
    call_id = getattr(tool_use, "id", None)
    return begin_hooked_tool(
        str(getattr(tool_use, "name", None) or "tool"),
        getattr(tool_use, "input", None),
        call_id if isinstance(call_id, str) and call_id else None,
        FRAMEWORK,
        description if isinstance(description, str) and description else None,
    )


class _Denied:
    """What the runner calls in place of a tool the policy refused (``on_deny: raise``): it raises the
    ``ToolDenied``, so the runner answers the model with its own error result for it."""

    def __init__(self, tool: Any, denied: ToolDenied, is_async: bool) -> None:
        self.name = getattr(tool, "name", "tool")
        self.denied = denied
        self.is_async = is_async

    def call(self, input: object) -> Any:
        if self.is_async:
            return self._refuse()  # the runner awaits it
        raise self.denied

    async def _refuse(self) -> Any:
        raise self.denied


def _denied_member_result(tool_use: Any, denied: ToolDenied) -> Any:
    """The ``tool_result`` block a toolset answers for a member whose ``call`` raised ``denied``."""
    try:
        from anthropic.lib.tools._toolsets._runnable import member_error_result
    except ImportError:  # a toolset module without it: the refusal is raised, as before toolsets
        raise denied from None
    return member_error_result(tool_use, denied)


class _StandIn:
    """What the runner calls in place of a tool: the tool itself (timed, its outcome the step's), or,
    under a replay, the recorded outcome."""

    def __init__(self, tool: Any, call: ToolCall, is_async: bool) -> None:
        self.tool = tool
        self.name = getattr(tool, "name", call.name)
        self.step = call
        self.is_async = is_async
        self.refused: BaseException | None = None

    def call(self, input: object) -> Any:
        return self._acall(input) if self.is_async else self._call(input)

    def _call(self, input: object) -> Any:
        call = self.step
        try:
            value = call_or_serve(call, served, self.tool.call, input)
        except BaseException as exc:
            self._failed(exc)
            raise
        end_tool_step(call, value, None, FRAMEWORK)
        return value

    async def _acall(self, input: object) -> Any:
        call = self.step
        try:
            if call.replay is not None:
                value = await await_or_serve(call, served, never_run)
            else:
                value = await await_with_timeout(call, self.tool.call, input)
        except BaseException as exc:
            self._failed(exc)
            raise
        end_tool_step(call, value, None, FRAMEWORK)
        return value

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, (AgentStopped, ReplayError)):
            self.refused = exc  # the runner would make a tool error of it: raised as itself instead
        end_tool_step(self.step, None, exc, FRAMEWORK)

    def outcome(self, result: Any) -> Any:
        if self.refused is not None:
            raise self.refused
        return result


def _make_run_tool(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def _run_tool(self: Any, tool: Any, tool_use: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            call = _begin(tool_use, getattr(tool, "description", None))
        except ToolDenied as denied:
            return original(self, _Denied(tool, denied, is_async=False), tool_use, *args, **kwargs)
        if call is None:
            return original(self, tool, tool_use, *args, **kwargs)
        stand_in = _StandIn(tool, call, is_async=False)
        try:
            result = original(self, stand_in, tool_use, *args, **kwargs)
        except BaseException as exc:
            end_tool_step(call, None, exc, FRAMEWORK)
            raise
        return stand_in.outcome(result)

    return _run_tool


def _make_arun_tool(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def _run_tool(self: Any, tool: Any, tool_use: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            call = _begin(tool_use, getattr(tool, "description", None))
        except ToolDenied as denied:
            return await original(self, _Denied(tool, denied, is_async=True), tool_use, *args, **kwargs)
        if call is None:
            return await original(self, tool, tool_use, *args, **kwargs)
        stand_in = _StandIn(tool, call, is_async=True)
        try:
            result = await original(self, stand_in, tool_use, *args, **kwargs)
        except BaseException as exc:
            end_tool_step(call, None, exc, FRAMEWORK)
            raise
        return stand_in.outcome(result)

    return _run_tool


def _make_member_result(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def tool_result(self: Any, tool_use: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            call = _begin(tool_use)
        except ToolDenied as denied:
            return _denied_member_result(tool_use, denied)
        if call is None:
            return original(self, tool_use, *args, **kwargs)
        try:
            result = call_or_serve(call, served, original, self, tool_use, *args, **kwargs)
        except BaseException as exc:
            end_tool_step(call, None, exc, FRAMEWORK)
            raise
        end_tool_step(call, result, None, FRAMEWORK)
        return result

    return tool_result


def _make_amember_result(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def tool_result(self: Any, tool_use: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            call = _begin(tool_use)
        except ToolDenied as denied:
            return _denied_member_result(tool_use, denied)
        if call is None:
            return await original(self, tool_use, *args, **kwargs)
        try:
            if call.replay is not None:
                result = await await_or_serve(call, served, never_run)
            else:
                result = await await_with_timeout(call, original, self, tool_use, *args, **kwargs)
        except BaseException as exc:
            end_tool_step(call, None, exc, FRAMEWORK)
            raise
        end_tool_step(call, result, None, FRAMEWORK)
        return result

    return tool_result


#: The last answer each runner span's loop handed out (``None``: none yet), by span (weak: with its span).
_answers: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
RUNNER_SPAN = "anthropic.messages.tool_runner"


class _Noting:
    """The runner's ``_handle_request`` context: notes the answer it hands out under the runner's span (the
    runner itself may be gone when its span ends: a runner its consumer left ends when collected)."""

    def __init__(self, manager: Any, span: Any) -> None:
        self._manager = manager
        self._span = span

    def __enter__(self) -> Any:
        item = self._manager.__enter__()
        with contextlib.suppress(TypeError):  # a span that cannot be weakly referenced: read as before
            _answers[self._span] = item
        return item

    def __exit__(self, *exc: Any) -> Any:
        return self._manager.__exit__(*exc)

    async def __aenter__(self) -> Any:  # the async runner's
        item = await self._manager.__aenter__()
        with contextlib.suppress(TypeError):
            _answers[self._span] = item
        return item

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._manager.__aexit__(*exc)


def _make_start_span(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def _start_tool_runner_span(self: Any, *args: Any, **kwargs: Any) -> Any:
        span = original(self, *args, **kwargs)
        if span is not None:
            with contextlib.suppress(TypeError):
                _answers[span] = None
        return span

    return _start_tool_runner_span


def _make_handle_request(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def _handle_request(self: Any, *args: Any, **kwargs: Any) -> Any:
        manager = original(self, *args, **kwargs)
        span = getattr(self, "_tool_runner_span", None)
        return manager if span is None else _Noting(manager, span)

    return _handle_request


def _classify(span: Any) -> StopReason | None:
    """``cancelled`` for a runner span the SDK ended unset (the runner closed) before the last answer."""
    if getattr(span, "name", None) != RUNNER_SPAN or span.status.status_code is not StatusCode.UNSET:
        return None
    try:
        if span not in _answers:  # started before instrumenting: read as before
            return None
        message = _answers.get(span)
        if hasattr(type(message), "current_message_snapshot"):  # a streamed runner's: the reply read so far
            message = _read_so_far(message)
            if message is None or message.stop_reason is None:
                return StopReason.CANCELLED  # closed before the reply's end: no answer yet
        if message is None:  # closed before the first answer
            return StopReason.CANCELLED
        from anthropic.lib.tools._beta_runner import _determine_next_step_from_stop_reason

        stop_reason = getattr(message, "stop_reason", "")
        if stop_reason == "":
            return None
        step = _determine_next_step_from_stop_reason(stop_reason)
        asked = any(getattr(b, "type", None) == "tool_use" for b in getattr(message, "content", None) or ())
        if step == "resume" or (step == "run_tools" and asked):
            return StopReason.CANCELLED  # the turn was to go on: the runner was closed before its end
    except Exception as exc:
        internal_error("reading whether an Anthropic tool runner finished", exc)
    return None


def _read_so_far(stream: Any) -> Any:
    """The message a streamed runner's reply has built from the events its consumer read (its
    ``stop_reason`` comes with the reply's last events), without reading more of it; None before any."""
    try:
        return stream.current_message_snapshot
    except AssertionError:  # not one event read
        return None


def instrument(patcher: Patcher) -> None:
    """Hook the tool runners of this anthropic version, if it has them (no-op before the tool runner)."""
    try:
        from anthropic.lib.tools import _beta_runner as runner
    except ImportError:
        return
    try:
        from anthropic.lib.tools._toolsets import _runnable as toolsets
    except ImportError:  # an anthropic without toolsets
        toolsets = None
    hooks = (
        (getattr(runner, "BaseSyncToolRunner", None), "_run_tool", _make_run_tool),
        (getattr(runner, "BaseAsyncToolRunner", None), "_run_tool", _make_arun_tool),
        (getattr(toolsets, "BetaRunnableToolset", None), "tool_result", _make_member_result),
        (getattr(toolsets, "BetaAsyncRunnableToolset", None), "tool_result", _make_amember_result),
    )
    hooks += (
        (getattr(runner, "BaseToolRunner", None), "_start_tool_runner_span", _make_start_span),
        (getattr(runner, "BetaToolRunner", None), "_handle_request", _make_handle_request),
        (getattr(runner, "BetaAsyncToolRunner", None), "_handle_request", _make_handle_request),
        (getattr(runner, "BetaStreamingToolRunner", None), "_handle_request", _make_handle_request),
        (getattr(runner, "BetaAsyncStreamingToolRunner", None), "_handle_request", _make_handle_request),
    )
    for owner, attr, make in hooks:
        if owner is not None and hasattr(owner, attr):
            patcher.wrap(owner, attr, make)
    for scope in SCOPES:
        bridge.register_hooks(scope)
        bridge.register_stops(scope, _classify)


def uninstrument() -> None:
    for scope in SCOPES:
        bridge.register_hooks(scope, on=False)
        bridge.register_stops(scope, None)
