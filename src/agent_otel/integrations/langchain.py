"""LangChain (``langchain-core``): tool calls and chat model calls become steps of the current run.

* Tools: ``BaseTool.run`` / ``BaseTool.arun`` are wrapped, which is where every tool invocation ends up
  (``invoke``, ``ainvoke``, LangGraph's ``ToolNode``, agents). The wrapper goes through
  :func:`agent_otel.tools.begin`, so guards run before the tool and their :class:`AgentStopped` leaves
  the tool as it would leave a ``@agent_otel.tool`` function. The tool span is current while the tool
  runs, so a function that is also decorated with ``@agent_otel.tool`` records one span, not two. Errors
  that LangChain turns into an error message for the model (``handle_tool_error``,
  ``handle_validation_error``) still mark the span ``error`` with the original exception class. The
  args hash is over the tool input without injected arguments (``InjectedState``...); the result hash is
  over what the model receives (the ``ToolMessage`` content).
* Replay: the tool's body (``_run``/``_arun``) is not executed; LangChain runs on a copy of the tool
  whose body returns the recorded content (or raises the recorded error), so input parsing, callbacks,
  ``handle_tool_error`` and the ``ToolMessage`` are LangChain's own, as when the call was recorded.
  Refused: ``response_format="content_and_artifact"`` (the artifact is not recorded) and results that
  were objects rather than message content (a LangGraph ``Command``, a tool called without a call id
  returning an object).
* Chat models and LLMs: a callback handler added to every run callback manager (LangChain's
  ``CallbackManager``/``AsyncCallbackManager``, the same mechanism LangChain's own tracers use, so
  ``invoke``, ``stream``, ``batch`` and their async forms are all seen; not other managers built on
  ``BaseCallbackManager``, such as LangGraph's graph-lifecycle manager, whose events it does not handle)
  opens a ``chat {model}`` step on ``on_chat_model_start``/``on_llm_start`` and closes it with the token
  usage of ``usage_metadata`` (or ``llm_output["token_usage"]``) on ``on_llm_end``. It runs inline and
  lets only :class:`AgentStopped` out, so a budget guard stops the run before the model is called; every
  other failure of its own is swallowed and reported once, and an event it does not know (a newer
  LangChain's) is ignored rather than raised as a missing method. The step has the provider
  (LangChain's ``ls_provider``, mapped to ``gen_ai.provider.name``: ``openai``, ``anthropic``,
  ``gcp.gemini``...), the request parameters of ``invocation_params``, the response id, finish reasons
  and requested tool call ids of the ``AIMessage``, and, with content capture, the messages.

Runs come from the LangGraph integration (``langgraph``) or from the user's own ``agent_otel.run``;
without a current run, LangChain calls are not recorded.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import sys
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any
from uuid import UUID

from agent_otel import llm
from agent_otel.llm import LLMCall
from agent_otel.replay import RecordedOutcome
from agent_otel.steps import active_run, internal_error
from agent_otel.stop import AgentStopped
from agent_otel.tools import ToolCall, active_tool_call

from . import Integration, _content
from ._common import (
    Patcher,
    Unservable,
    as_int,
    await_or_serve,
    call_or_serve,
    framework_llm,
    refuse_outside_run,
    start_tool,
    usage_value,
)

# The tool object whose call is being recorded in this context: ``arun`` falling back to ``run`` (or a
# tool that re-enters itself through ``invoke``) must not open a second span for the same call.
_recording: ContextVar[object | None] = ContextVar("agent_otel_langchain_tool", default=None)


def _tool_args(tool: Any, tool_input: Any) -> Any:
    if isinstance(tool_input, dict):
        try:
            return tool._filter_injected_args(tool_input)
        except Exception:
            return tool_input
    return tool_input


def _tool_fn(tool: Any, prefer_async: bool) -> Callable[..., Any] | None:
    names = ("coroutine", "func") if prefer_async else ("func", "coroutine")
    for name in names:
        fn = getattr(tool, name, None)
        if callable(fn):
            try:
                return inspect.unwrap(fn)
            except ValueError:
                return fn
    return None


def _tool_result(output: Any) -> Any:
    content = getattr(output, "content", None)
    if content is not None and getattr(output, "tool_call_id", None) is not None:
        return content
    return output


def _finish_tool(call: ToolCall, output: Any) -> None:
    # A handled error already failed the call (see _record_handled_error); ok() is then a no-op.
    call.ok(_tool_result(output))


def _tool_name(tool: Any) -> str:
    return str(getattr(tool, "name", "") or type(tool).__name__)


def _begin_tool(tool: Any, tool_input: Any, kwargs: dict[str, Any], prefer_async: bool) -> ToolCall | None:
    if _recording.get() is tool:
        return None
    run = active_run()
    if run is None:
        refuse_outside_run(_tool_name(tool))
        return None
    return start_tool(
        run,
        _tool_name(tool),
        _tool_args(tool, tool_input),
        call_id=kwargs.get("tool_call_id"),
        fn=_tool_fn(tool, prefer_async),
        description=getattr(tool, "description", None),
    )


def _serving_copy(tool: Any, recorded: RecordedOutcome) -> Any:
    """A copy of ``tool`` whose body returns the recorded content or raises the recorded error.

    LangChain's own ``run``/``arun`` on it then parses the input, calls the callbacks, handles the error
    (``handle_tool_error``...) and builds the ``ToolMessage`` as it did when the call was recorded; the
    content recorded is what the body's return becomes in that message, so it comes back unchanged.
    """
    if getattr(tool, "response_format", "content") != "content":
        raise Unservable(f"has response_format={tool.response_format!r}; its artifact is not recorded")

    def body(*args: Any, **kwargs: Any) -> Any:
        return recorded.result()

    async def abody(*args: Any, **kwargs: Any) -> Any:
        return recorded.result()

    served = copy.copy(tool)
    # Instance attributes win over the class's methods; object.__setattr__ skips pydantic's checks.
    object.__setattr__(served, "_run", body)
    object.__setattr__(served, "_arun", abody)
    return served


def _fail(call: ToolCall, exc: BaseException) -> None:
    """LangGraph's control flow raised through a tool is not a tool error: ``interrupt()`` pauses the
    graph (the call is ``interrupted``), a ``Command(graph=PARENT)`` hands over to the parent graph (the
    call returned that command)."""
    errors = sys.modules.get("langgraph.errors")
    if errors is not None and isinstance(exc, errors.GraphInterrupt):
        call.interrupted()
    elif errors is not None and isinstance(exc, errors.GraphBubbleUp):
        call.ok(exc.args[0] if exc.args else None)
    else:
        call.fail(exc)


def _make_run(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def run(self: Any, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
        call = _begin_tool(self, tool_input, kwargs, prefer_async=False)
        if call is None:
            return original(self, tool_input, *args, **kwargs)

        def serve(recorded: RecordedOutcome) -> Any:
            return original(_serving_copy(self, recorded), tool_input, *args, **kwargs)

        token = _recording.set(self)
        try:
            output = call_or_serve(call, serve, original, self, tool_input, *args, **kwargs)
        except BaseException as exc:
            _fail(call, exc)
            raise
        finally:
            _recording.reset(token)
        _finish_tool(call, output)
        return output

    return run


def _make_arun(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def arun(self: Any, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
        call = _begin_tool(self, tool_input, kwargs, prefer_async=True)
        if call is None:
            return await original(self, tool_input, *args, **kwargs)

        async def serve(recorded: RecordedOutcome) -> Any:
            return await original(_serving_copy(self, recorded), tool_input, *args, **kwargs)

        token = _recording.set(self)
        try:
            output = await await_or_serve(call, serve, original, self, tool_input, *args, **kwargs)
        except BaseException as exc:
            _fail(call, exc)
            raise
        finally:
            _recording.reset(token)
        _finish_tool(call, output)
        return output

    return arun


def _record_handled_error(original: Callable[..., Any]) -> Callable[..., Any]:
    """LangChain turns some tool errors into a message for the model; the span still says error."""

    @functools.wraps(original)
    def handle(e: Any, *args: Any, **kwargs: Any) -> Any:
        call = active_tool_call()
        if call is not None and isinstance(e, BaseException):
            call.fail(e)
        return original(e, *args, **kwargs)

    return handle


# --- chat models ------------------------------------------------------------------------------------


def _model_of(serialized: Any, metadata: Any, kwargs: dict[str, Any]) -> str:
    params = kwargs.get("invocation_params") or {}
    for value in (
        (metadata or {}).get("ls_model_name"),
        params.get("model"),
        params.get("model_name"),
        params.get("_type"),
        (serialized or {}).get("name") if isinstance(serialized, dict) else None,
    ):
        if isinstance(value, str) and value:
            return value
    return "unknown"


def _usage(response: Any) -> tuple[int | None, int | None, str | None, int, int]:
    """Sum ``usage_metadata`` over the generations; fall back to ``llm_output["token_usage"]``.

    Returns (input, output, model, cache reads, cache writes); input and output are None when neither
    reports usage (unknown, not 0). LangChain's ``input_tokens`` include the cache counts of
    ``input_token_details``; those are returned apart only to price them.
    """
    input_tokens = output_tokens = cache_read = cache_write = 0
    model: str | None = None
    found = False
    for candidates in getattr(response, "generations", None) or []:
        for gen in candidates:
            message = getattr(gen, "message", None)
            usage = getattr(message, "usage_metadata", None)
            if usage:
                found = True
                input_tokens += as_int(usage_value(usage, "input_tokens"))
                output_tokens += as_int(usage_value(usage, "output_tokens"))
                cache_read += as_int(usage_value(usage, "input_token_details", "cache_read"))
                cache_write += as_int(usage_value(usage, "input_token_details", "cache_creation"))
            meta = getattr(message, "response_metadata", None) or {}
            name = meta.get("model_name") or meta.get("model")
            if isinstance(name, str) and name:
                model = name
    llm_output = getattr(response, "llm_output", None) or {}
    if not found:
        usage = llm_output.get("token_usage") or llm_output.get("usage") or {}
        if not usage:
            name = llm_output.get("model_name") or llm_output.get("model")
            return None, None, model or (name if isinstance(name, str) and name else None), 0, 0
        input_tokens = as_int(usage.get("prompt_tokens", usage.get("input_tokens")))
        output_tokens = as_int(usage.get("completion_tokens", usage.get("output_tokens")))
        cache_read = as_int(usage_value(usage, "prompt_tokens_details", "cached_tokens"))
    if model is None:
        name = llm_output.get("model_name") or llm_output.get("model")
        model = name if isinstance(name, str) and name else None
    return input_tokens, output_tokens, model, cache_read, cache_write


# LangChain's ls_provider -> gen_ai.provider.name, where they differ.
_PROVIDERS = {
    "google_genai": "gcp.gemini",
    "google_vertexai": "gcp.vertex_ai",
    "google_anthropic_vertex": "gcp.vertex_ai",
    "amazon_bedrock": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "mistralai": "mistral_ai",
    "xai": "x_ai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "ibm": "ibm.watsonx.ai",
}


def _provider(metadata: Any, kwargs: dict[str, Any]) -> str | None:
    value = (metadata or {}).get("ls_provider")
    if not isinstance(value, str) or not value:
        return None
    return _PROVIDERS.get(value, value)


def _response_details(response: Any) -> dict[str, Any]:
    """Id, finish reasons and requested tool call ids of the generations' messages."""
    response_id = None
    reasons: list[str] = []
    tool_call_ids: list[str] = []
    for candidates in getattr(response, "generations", None) or []:
        for gen in candidates:
            message = getattr(gen, "message", None)
            meta = getattr(message, "response_metadata", None) or {}
            info = getattr(gen, "generation_info", None) or {}
            rid = meta.get("id")
            if isinstance(rid, str) and rid:
                response_id = response_id or rid
            reason = meta.get("finish_reason") or meta.get("stop_reason") or info.get("finish_reason")
            if isinstance(reason, str) and reason:
                reasons.append(reason)
            for tc in getattr(message, "tool_calls", None) or ():
                tc_id = tc.get("id") if isinstance(tc, dict) else None
                if isinstance(tc_id, str) and tc_id:
                    tool_call_ids.append(tc_id)
    return {"response_id": response_id, "finish_reasons": reasons, "tool_call_ids": tool_call_ids}


def _make_handler_class() -> type:
    from langchain_core.callbacks import BaseCallbackHandler

    class AgentOtelCallbackHandler(BaseCallbackHandler):
        """Records chat model / LLM calls as LLM steps; inline, so guards can stop the call."""

        # LangChain re-raises what a handler raises when raise_error is set: the handler needs that for
        # AgentStopped, so every method below lets nothing else out.
        raise_error = True
        run_inline = True

        # Only model events matter here; LangChain skips this handler for the rest (graphs emit many).
        ignore_chain = True
        ignore_agent = True
        ignore_retriever = True
        ignore_retry = True
        ignore_custom_event = True

        def __init__(self) -> None:
            super().__init__()
            self.enabled = True
            self._calls: dict[UUID, LLMCall] = {}
            #: The mark of each call in flight in its caller's context (``framework_llm``), to take off.
            self._marks: dict[UUID, Token[LLMCall | None]] = {}

        def __getattr__(self, name: str) -> Any:
            # An event this handler has no method for (LangChain calls ``getattr(handler, event)`` for
            # every handler of a manager) is not ours to fail: ignore it.
            if name.startswith("on_"):
                return _ignore
            raise AttributeError(name)

        def _start(
            self, serialized: Any, run_id: UUID, metadata: Any, kwargs: dict[str, Any], messages: Any
        ) -> None:
            if not self.enabled:
                return
            run = active_run()
            if run is None:
                return
            try:
                call = llm.begin(
                    run,
                    _model_of(serialized, metadata, kwargs),
                    str(run_id),
                    attach=False,
                    provider=_provider(metadata, kwargs),
                    defer=True,
                )
                if call is not None:
                    call.request(kwargs.get("invocation_params") or {})
                    if call.capture_content:
                        call.messages(input=messages())
            except AgentStopped:
                raise
            except Exception as exc:
                internal_error("starting a LangChain model step", exc)
                return
            if call is not None:
                self._calls[run_id] = call
                self._marks[run_id] = framework_llm.set(call)
                # A stream left unfinished but still referenced reports neither end nor error until it
                # is read on or collected: the run ends its step (without usage, which LangChain
                # reports only at the stream's end) rather than leave it open past the run.
                call.end_with_run(call.finish)

        def on_chat_model_start(
            self, serialized: Any, messages: Any, *, run_id: UUID, metadata: Any = None, **kwargs: Any
        ) -> None:
            self._start(serialized, run_id, metadata, kwargs, lambda: _content.langchain_input(messages))

        def on_llm_start(
            self, serialized: Any, prompts: Any, *, run_id: UUID, metadata: Any = None, **kwargs: Any
        ) -> None:
            self._start(
                serialized,
                run_id,
                metadata,
                kwargs,
                lambda: [_content.message("user", [_content.text(p)]) for p in prompts or ()],
            )

        def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
            # A streamed answer has begun: the client request underneath was made, and the caller reads
            # the stream in its own context. The mark comes off now, or a request the agent makes while
            # the stream is read, or after it left the stream unfinished, was taken for this call's.
            if self._marks:
                self._unmark(run_id)

        def _unmark(self, run_id: UUID) -> None:
            mark = self._marks.pop(run_id, None)
            if mark is not None and framework_llm.get() is self._calls.get(run_id):
                with contextlib.suppress(ValueError):  # set in another context: not this one's to undo
                    framework_llm.reset(mark)

        def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
            self._unmark(run_id)
            call = self._calls.pop(run_id, None)
            if call is not None:
                self._end(call, response)

        def _end(self, call: LLMCall, response: Any) -> None:
            try:
                input_tokens, output_tokens, model, cache_read, cache_write = _usage(response)
                call.response(**_response_details(response))
                if call.capture_content:
                    call.messages(output=_content.langchain_output(response))
            except Exception as exc:
                internal_error("reading LangChain token usage", exc)
                input_tokens = output_tokens = None
                cache_read = cache_write = 0
                model = None
            call.finish(
                input_tokens,
                output_tokens,
                response_model=model,
                cached_input_tokens=cache_read,
                cache_write_tokens=cache_write,
            )

        def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            self._unmark(run_id)
            call = self._calls.pop(run_id, None)
            if call is None:
                return
            if isinstance(error, GeneratorExit):
                # The consumer stopped reading a stream (``break``, ``aclose()``): LangChain reports it as
                # an error, but the request did not fail; it ends with what was streamed so far.
                self._end(call, kwargs.get("response"))
                return
            call.fail(error)

    return AgentOtelCallbackHandler


def _ignore(*args: Any, **kwargs: Any) -> None:
    return None


def _make_manager_init(handler: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    from langchain_core.callbacks.manager import AsyncCallbackManager, CallbackManager

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            try:
                # Only LangChain's run managers, which dispatch model events to every handler; other
                # managers (LangGraph's graph-lifecycle one) dispatch events this handler is not for.
                if (
                    handler.enabled
                    and isinstance(self, CallbackManager | AsyncCallbackManager)
                    and handler not in self.handlers
                ):
                    self.add_handler(handler, inherit=True)
            except Exception as exc:
                internal_error("adding the LangChain callback handler", exc)

        return __init__

    return make


class LangChainIntegration(Integration):
    """Wraps ``BaseTool.run``/``arun`` and adds a callback handler to every callback manager."""

    name = "langchain"
    packages = ("langchain_core",)

    def __init__(self) -> None:
        self._patcher = Patcher()
        self._handler: Any = None

    def instrument(self) -> None:
        if self._patcher.applied:
            return
        from langchain_core.callbacks import base as callbacks_base
        from langchain_core.tools import base as tools_base

        self._handler = _make_handler_class()()
        p = self._patcher
        p.wrap(tools_base.BaseTool, "run", _make_run)
        p.wrap(tools_base.BaseTool, "arun", _make_arun)
        p.wrap(tools_base, "_handle_tool_error", _record_handled_error)
        p.wrap(tools_base, "_handle_validation_error", _record_handled_error)
        p.wrap(callbacks_base.BaseCallbackManager, "__init__", _make_manager_init(self._handler))

    def uninstrument(self) -> None:
        if self._handler is not None:
            # Callback managers that already hold the handler (long-lived runnables) keep it, inert.
            self._handler.enabled = False
            self._handler = None
        self._patcher.restore()
