"""MCP client (the ``mcp`` package): each ``call_tool`` is a tool call of the current run.

``ClientSession.call_tool`` is wrapped (and ``Client.call_tool``, whose input-required rounds and
header-mismatch resends are one logical call, so they make one span). The span is
``execute_tool {MCP tool name}`` with the arguments hashed as an object and the result hashed over the
tool's ``structured_content`` if it has one, else over its content blocks. A result with
``is_error: true`` (the tool failed and the server told the model so) marks the span ``error`` with
``error.type = MCPToolError``; the exception is not raised, the result goes back to the caller as the
SDK returned it. Protocol errors raised by the SDK fail the span and continue unchanged; the SDK's own
request timeout (``call_tool(..., read_timeout_seconds=)``, an ``MCPError`` with code ``REQUEST_TIMEOUT``)
is a ``tool_timeout``, like any tool's own timeout.

Under replay nothing is sent: the caller gets a ``CallToolResult`` rebuilt from the recording (the
content blocks of the result, the whole ``is_error`` result, which the recorded ``MCPToolError`` keeps,
or the whole result with ``structured_content``, recorded apart from what ``result_sha`` hashes: see
``ToolCall.snapshot_json``). Such a result recorded by an earlier agent-otel, which kept only the
structured content, is refused.

Guards run before the request is sent, so a denied or looping MCP tool call raises
:class:`AgentStopped` instead of reaching the server. A server in this process whose tool is an
``@agent_otel.tool`` function claims the call there; a guard that blocks it in the server (a declared
write under the writes kill switch) makes the server answer with an error result, and the client's
``call_tool`` raises that stop instead of returning the result. When a framework integration already
records the same tool (an agent framework whose tool *is* this MCP tool, under the same name), the MCP
call joins that span rather than opening a nested one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from agent_otel.hashing import canonical_json
from agent_otel.replay import RecordedOutcome
from agent_otel.steps import active_run, check_pending, current_run, internal_error, note_failure
from agent_otel.stop import StopReason
from agent_otel.tools import active_tool_call

from . import Integration
from ._common import Patcher, Unservable, await_or_serve, refuse_outside_run, start_tool

_in_call: ContextVar[bool] = ContextVar("agent_otel_mcp_call", default=False)

#: ``mcp.types.REQUEST_TIMEOUT``; mcp 1.x used HTTP's 408 (``httpx.codes.REQUEST_TIMEOUT``).
_REQUEST_TIMEOUT = (-32001, 408)


class MCPToolError(Exception):
    """The MCP server answered the tool call with ``is_error: true``; recorded, never raised.

    ``result`` is that answer as JSON (the ``CallToolResult`` by alias), kept with the recorded error so
    that a replay hands the caller the same result.
    """

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result


def _result_value(result: Any) -> Any:
    structured = getattr(result, "structured_content", None)
    if structured is None:
        structured = getattr(result, "structuredContent", None)
    if structured is not None:
        return structured
    content = getattr(result, "content", None)
    if isinstance(content, list):
        out = []
        for block in content:
            dump = getattr(block, "model_dump", None)
            out.append(dump(mode="json", exclude_none=True) if callable(dump) else block)
        return out
    return result


def _is_error(result: Any) -> bool:
    return bool(getattr(result, "is_error", False) or getattr(result, "isError", False))


def _error_text(result: Any) -> str:
    for block in getattr(result, "content", None) or []:
        text = getattr(block, "text", None)
        if isinstance(text, str):
            return text[:200]
    return "tool reported an error"


def _as_json(result: Any) -> dict[str, Any] | None:
    dump = getattr(result, "model_dump", None)
    if not callable(dump):
        return None
    value = dump(mode="json", by_alias=True, exclude_none=True)
    return value if isinstance(value, dict) else None


def _serve(recorded: RecordedOutcome) -> Any:
    """The ``CallToolResult`` the server answered when the call was recorded, rebuilt from the recording."""
    from mcp import types

    error = recorded.error
    if isinstance(error, MCPToolError):
        if not isinstance(getattr(error, "result", None), dict):
            raise Unservable("answered is_error when recorded, by an agent-otel that did not keep the result")
        return types.CallToolResult.model_validate(error.result)
    if error is not None:
        raise error
    value = recorded.value
    if isinstance(value, dict) and "structuredContent" in value:  # the whole result (see _record_whole)
        return types.CallToolResult.model_validate(value)
    if not isinstance(value, list):
        raise Unservable(
            "returned structured_content when recorded, by an agent-otel that kept it but not the content "
            "blocks the result had with it"
        )
    return types.CallToolResult.model_validate({"content": value})


def _record_whole(call: Any, result: Any) -> None:
    """A result with structured content is hashed over that content, and recorded whole (its content
    blocks with it), so that a replay hands the caller the same ``CallToolResult``."""
    if getattr(result, "structured_content", None) is None:
        return
    whole = _as_json(result)
    if whole is not None and "structuredContent" in whole:
        whole.pop("_meta", None)  # the server's own metadata is not part of the answer (README)
        call.snapshot_json = canonical_json(whole)


def _timed_out(exc: BaseException) -> bool:
    """The SDK gave up waiting for the answer (``read_timeout_seconds``): it raises its ``MCPError`` with
    code ``REQUEST_TIMEOUT``, not a ``TimeoutError``."""
    if type(exc).__name__ not in ("MCPError", "McpError"):  # McpError: mcp 1.x
        return False
    return getattr(getattr(exc, "error", None), "code", None) in _REQUEST_TIMEOUT


def _joins_framework_call(name: str) -> bool:
    """A framework tool call of the same name is in flight and claimable: use it, no second span."""
    call = active_tool_call()
    if call is not None and call.claimable and call.name == name and call.run is current_run():
        call.claimable = False
        return True
    return False


def _left_behind(call: Any, before: Any) -> bool:
    """Whether the call ended before the server answered: an ``@agent_otel.tool`` function of a server
    in this process claimed it and ended it there, in the server's copy of this context (MCP hands each
    request the sender's context), where leaving the step's span failed. This context still has it
    current, so it is put back as it was before the call (else the next steps would be its children)."""
    if not call.done or trace.get_current_span() is not call.span:
        return False
    otel_context.attach(before)  # what leaving the span here would have done; the token is not needed
    return True


def _make_call_tool(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def call_tool(self: Any, name: str, arguments: Any = None, *args: Any, **kwargs: Any) -> Any:
        run = active_run()
        if run is None:
            refuse_outside_run(str(name))
            return await original(self, name, arguments, *args, **kwargs)
        if _in_call.get() or _joins_framework_call(str(name)):
            return await original(self, name, arguments, *args, **kwargs)
        before = otel_context.get_current()
        call = start_tool(run, str(name), arguments if arguments is not None else {}, tool_type="extension")
        if call is None:
            return await original(self, name, arguments, *args, **kwargs)
        token = _in_call.set(True)
        ended_there = False
        try:
            result = await await_or_serve(call, _serve, original, self, name, arguments, *args, **kwargs)
        except BaseException as exc:
            if _timed_out(exc):
                note_failure(run, exc, StopReason.TOOL_TIMEOUT)  # noted first, so it wins over tool_error
            call.fail(exc)
            raise
        finally:
            _in_call.reset(token)
            ended_there = _left_behind(call, before)
        if ended_there:
            # A guard blocked the call there (a declared write under the writes kill switch); the server
            # turned that stop into an error result. The run stops at this call, as it would had the
            # client's own guards refused it, rather than hand the model the error and go on.
            check_pending(run)
        try:
            if _is_error(result):
                call.fail(MCPToolError(_error_text(result), _as_json(result)))
            else:
                _record_whole(call, result)
                call.ok(_result_value(result))
        except Exception as exc:
            internal_error("recording an MCP tool result", exc)
            call.ok(None)
        return result

    return call_tool


class MCPIntegration(Integration):
    """Wraps ``ClientSession.call_tool`` and ``Client.call_tool``."""

    name = "mcp"
    packages = ("mcp",)

    def __init__(self) -> None:
        self._patcher = Patcher()

    def instrument(self) -> None:
        if self._patcher.applied:
            return
        from mcp.client import session

        self._patcher.wrap(session.ClientSession, "call_tool", _make_call_tool)
        try:
            from mcp.client import client
        except ImportError:  # mcp 1.x has no high-level Client
            return
        if hasattr(client, "Client"):
            self._patcher.wrap(client.Client, "call_tool", _make_call_tool)

    def uninstrument(self) -> None:
        self._patcher.restore()
