"""OpenAI Agents SDK (``openai-agents``): runs, function tool calls and model calls.

* Runs: ``AgentRunner.run`` (behind ``Runner.run`` and ``Runner.run_sync``) and the streaming loop of
  ``Runner.run_streamed`` become a run named after the starting agent. Handoffs stay in the same run.
  The shared rule applies: inside a user's ``agent_otel.run`` the SDK's steps join that run; an agent
  used as a tool (``agent.as_tool()``) is a sub-agent of the calling run.
* Function tools: every invocation goes through :func:`agent_otel.tools.begin` (guards first), with the
  tool call id of the model and the JSON arguments hashed as an object. Errors the SDK turns into a
  message for the model (its default ``failure_error_function``, and the default tool-timeout message)
  still mark the span ``error`` with the original exception class (``ToolTimeoutError`` for timeouts).
  The SDK's error handling never swallows :class:`AgentStopped`: a denied or looping tool call ends the
  run. The tool span is current while the tool runs, so a function also decorated with
  ``@agent_otel.tool`` records one span.
* Replay: the tool's invocation (argument parsing and the function) is not executed; the SDK invokes a
  copy of the tool whose invocation returns the recorded output (or raises the recorded error), so its
  ``failure_error_function`` turns a recorded error into the same message for the model, and a recorded
  tool timeout is answered as the SDK answers a timeout (``timeout_behavior``). Outputs that were objects
  (not JSON values) are refused; the caller gets that ``ReplayError`` unwrapped, as an AgentStopped.
* Model calls: each call of the agent's ``Model`` (``get_response`` or ``stream_response``, retries
  included) is an LLM step with the usage the SDK reports; requests the OpenAI client makes for it are
  not counted a second time by the ``openai`` integration (which instead adds what the API answered:
  the responding model, response id and finish reasons). The step's ``gen_ai.agent.name`` is the agent
  that made the call (the one handed to, after a handoff), with the ``ModelSettings`` of that agent
  (temperature, top_p, max_tokens...), the response id and the tool call ids the model asked for.
* Approvals: a run that returns ``interruptions`` (tools with ``needs_approval``) ends ``interrupted``; a
  sub-agent's (``as_tool()``) pause ends the tool call that ran it ``interrupted`` (not ``ok``: the SDK
  invokes it again when the run resumes). A run resumed from the ``RunState`` (``Runner.run`` and the
  streaming loop) links to the paused run: by the session, else by the approval call ids it carries (and,
  for an ``as_tool()`` agent the SDK runs again from its own state, the id of the tool call it runs in).
* Handoffs: each handoff is an ``agent.handoff`` event on the run span naming the agent handed from and
  to (``from_agent``, ``to_agent``) and the model's tool call id; the run stays one run.
* Conversation: ``gen_ai.conversation.id`` is ``Runner.run(conversation_id=...)`` (the OpenAI
  Conversations API), else the ``session``'s ``session_id``.

Stop reasons: ``MaxTurnsExceeded`` -> ``max_steps``; input, output and tool guardrail tripwires ->
``policy_denied``; ``ToolTimeoutError`` -> ``tool_timeout``; ``ModelRefusalError``,
``ModelTimeoutError`` and ``ModelBehaviorError`` -> ``model_error``.

The SDK's own tracing is not touched: its trace processors keep exporting unless the user disables them
(``set_tracing_disabled``, ``RunConfig(tracing_disabled=True)``).

The hooks are internal functions of the SDK (``agents.tool._invoke_function_tool_with_metadata``,
``agents.run_internal.run_loop.get_response_with_retry`` / ``stream_response_with_retry``,
``agents.run.start_streaming``): they are the only places where one tool invocation or one model call
is a single awaited call in the run's own task. If a future SDK renames them, ``instrument()`` fails as a
whole and ``setup()`` logs a warning instead of instrumenting half of it.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from typing import Any

from agent_otel import conventions as c
from agent_otel import llm
from agent_otel.genai import guess_provider
from agent_otel.guards import ToolDenied
from agent_otel.llm import LLMCall
from agent_otel.replay import RecordedOutcome, ReplayError
from agent_otel.run import MISSING, FrameworkRun, enter_run, exit_run
from agent_otel.steps import active_run, internal_error, note_failure
from agent_otel.stop import AgentStopped, StopReason
from agent_otel.tools import ToolTimeout, active_tool_call

from . import Integration, _content
from ._common import (
    Patcher,
    Serve,
    Unservable,
    as_int,
    await_or_serve,
    framework_llm,
    model_name,
    parse_json_args,
    pause,
    record_approvals,
    refuse_outside_run,
    reset_framework_llm,
    start_tool,
    token_count,
    usage_value,
)


def _classify(exc: BaseException) -> StopReason | None:
    from agents import exceptions as e

    if isinstance(exc, e.MaxTurnsExceeded):
        return StopReason.MAX_STEPS
    if isinstance(
        exc,
        e.InputGuardrailTripwireTriggered
        | e.OutputGuardrailTripwireTriggered
        | e.ToolInputGuardrailTripwireTriggered
        | e.ToolOutputGuardrailTripwireTriggered,
    ):
        return StopReason.POLICY_DENIED
    if isinstance(exc, e.ToolTimeoutError):
        return StopReason.TOOL_TIMEOUT
    if isinstance(exc, e.ModelRefusalError | e.ModelTimeoutError | e.ModelBehaviorError):
        return StopReason.MODEL_ERROR
    return None


# --- runs -------------------------------------------------------------------------------------------


def _conversation(conversation_id: Any, session: Any) -> str | None:
    """The run's conversation: the Conversations API id, else the session's id."""
    if isinstance(conversation_id, str) and conversation_id:
        return conversation_id
    session_id = getattr(session, "session_id", None)
    return str(session_id) if session_id else None


def _tool_scope() -> str | None:
    """The call id of the SDK function tool call an agent starting now runs in (an ``as_tool()`` agent,
    whose pause the SDK hands to the calling run and which it invokes again on resume), if any. Not a
    tool of your own (``@agent_otel.tool``, ``run.call_tool``) outside the SDK's: a resume there may come
    in another call."""
    if _paused_in_tool.get() is None:
        return None
    call = active_tool_call()
    if call is None or call.run is not active_run():
        return None
    return call.call_id or call.name


def _enter(
    agent: Any, input: Any, conversation_id: str | None = None, state: Any = None, scope: str | None = None
) -> FrameworkRun | None:
    """Enter the run of ``agent``; ``state`` is the ``RunState`` it resumes (``input`` itself for
    ``Runner.run``; the streaming loop is handed the state's original input and the state apart); ``scope``
    the tool call it runs in (:func:`_tool_scope`)."""
    name = getattr(agent, "name", None) or "agent"
    model = getattr(agent, "model", None)
    run_input = input if isinstance(input, str | list) else MISSING
    waiting = _interruptions(state)
    frun = enter_run(
        str(name),
        model=model_name(model) if model is not None else None,
        input=run_input,
        conversation_id=conversation_id,
        resume_key=_resumed_key(waiting, scope) if conversation_id is None else None,
    )
    if frun is not None and state is not None:
        frun.run.paused = None  # resuming inside the same agent-otel run: it is not paused any more
        record_approvals(frun.run, _decisions(state, waiting))
    return frun


def _approval_key(call_ids: list[str], scope: str | None = None) -> str | None:
    """What a run paused for approvals and its resume from the ``RunState`` both name: the call ids
    waiting. The SDK's own human-in-the-loop pattern (``result.to_state()``, approve, ``Runner.run(agent,
    state)``) has no session, so no conversation links the two runs; these ids do. An ``as_tool()`` agent
    pauses on the same ids as the run calling it (the SDK surfaces its approval items there), so its key
    also names the tool call it runs in (``scope``), which the SDK invokes again on resume."""
    if not call_ids:
        return None
    key = "openai_agents approvals " + " ".join(sorted(call_ids))
    return key if scope is None else f"{key} in {scope}"


def _interruptions(state: Any) -> list[Any] | None:
    """The approval items a ``RunState`` resumes (the SDK's copies of them); None: not a resume."""
    if state is None:
        return None
    try:
        return list(state.get_interruptions())
    except Exception as exc:
        internal_error("reading the approvals a RunState resumes", exc)
        return None


def _resumed_key(waiting: list[Any] | None, scope: str | None = None) -> str | None:
    """The approval key of the paused run a ``RunState`` resumes, from its approval items (None: not a
    resume)."""
    if not waiting:
        return None
    ids = [usage_value(i, "raw_item", "call_id") for i in waiting]
    return _approval_key([i for i in ids if isinstance(i, str)], scope)


def _decisions(state: Any, waiting: list[Any] | None) -> list[tuple[Any, Any, bool]]:
    """What the human decided (``state.approve`` / ``state.reject``) about the calls the resumed run waited
    for, as the SDK reads it on resume: ``(call_id, tool_name, approved)``; a call left undecided (the SDK
    pauses on it again) is not in it. Read with the context's ``is_tool_approved``, which changes nothing;
    an ``as_tool()`` agent's call is decided in its own state, so its own resumed run records it."""
    check = getattr(getattr(state, "_context", None), "is_tool_approved", None)
    if not waiting or not callable(check):
        return []
    found: list[tuple[Any, Any, bool]] = []
    try:
        for item in waiting:
            call_id = usage_value(item, "raw_item", "call_id")
            tool = getattr(item, "tool_name", None) or usage_value(item, "raw_item", "name")
            if not isinstance(call_id, str) or not isinstance(tool, str):
                continue
            decided = check(tool, call_id)
            if isinstance(decided, bool):
                found.append((call_id, tool, decided))
    except Exception as exc:
        internal_error("reading the tool approvals a RunState resumes with", exc)
    return found


def _stopped_cause(exc: BaseException) -> AgentStopped | ReplayError | None:
    """The AgentStopped (or a replay's ReplayError: a tool call it refuses) the SDK wrapped (it re-raises
    tool errors as ``UserError(...) from e``)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, AgentStopped | ReplayError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__
    return None


def _approvals(frun: FrameworkRun | None, result: Any, scope: str | None = None) -> None:
    """A run that returns to ask for tool approvals (``needs_approval``) paused for a human: its run ends
    ``interrupted`` with an ``agent.interrupt`` event naming the tool calls waiting for approval."""
    if frun is None:
        return
    try:
        items = list(getattr(result, "interruptions", None) or ())
        if items:
            ids = [i for i in (usage_value(i, "raw_item", "call_id") for i in items) if isinstance(i, str)]
            pause(frun.run, len(items), ids)
            # (a sub-agent's conversation is its caller's, which the caller's pause and resume use)
            if frun.owned and (frun.run.conversation_id is None or scope is not None):
                frun.run.resume_key = _approval_key(ids, scope)  # its resume from the RunState links to it
            paused = _paused_in_tool.get()
            if paused is not None and frun.owned:
                paused.append(frun.run.run_id)  # a sub-agent (``as_tool()``): its tool call paused too
    except Exception as exc:
        internal_error("recording the tool approvals a run waits for", exc)


#: In a function tool's invocation, the run ids of sub-agents (``as_tool()``) that paused in it for a
#: tool approval. A list shared by reference, so a sub-agent run in a task of its own reports there too.
_paused_in_tool: ContextVar[list[str] | None] = ContextVar("agent_otel_agents_paused_in_tool", default=None)


def _make_run(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def run(self: Any, starting_agent: Any, input: Any, *args: Any, **kwargs: Any) -> Any:
        scope = _tool_scope()
        frun = _enter(
            starting_agent,
            input,
            _conversation(kwargs.get("conversation_id"), kwargs.get("session")),
            input if type(input).__name__ == "RunState" else None,
            scope,
        )
        try:
            result = await original(self, starting_agent, input, *args, **kwargs)
        except BaseException as exc:
            exit_run(frun, exc, _classify(exc))
            stopped = _stopped_cause(exc)
            if stopped is not None and stopped is not exc:
                # A guard stopped the run (or a replay refused a tool call): the caller gets AgentStopped
                # (ReplayError), as from any other agent code.
                raise stopped from None
            raise
        _approvals(frun, result, scope)
        exit_run(frun, None)
        return result

    return run


def _stored_error(streamed_result: Any) -> BaseException | None:
    """The terminal error a streamed run leaves for ``stream_events()`` to raise, if any.

    The streaming loop stops at ``max_turns`` (and on a queued input-guardrail tripwire) without
    raising; the SDK builds those exceptions in ``_check_errors()`` when the consumer drains the
    stream. Running that check here, at the end of the loop, stores the very exception instance the
    consumer will receive, so the run's stop reason and the caller's exception agree.
    """
    if streamed_result is None:
        return None
    try:
        check = getattr(streamed_result, "_check_errors", None)
        if callable(check) and getattr(streamed_result, "_stored_exception", None) is None:
            check()
        stored = getattr(streamed_result, "_stored_exception", None)
    except Exception as exc:
        internal_error("reading a streamed run's outcome", exc)
        return None
    return stored if isinstance(stored, BaseException) else None


def _cancelled_after_turn(frun: FrameworkRun | None, streamed_result: Any) -> None:
    """``result.cancel(mode="after_turn")``: the SDK finishes the turn and its loop returns normally, with
    no final output. The caller stopped the run, as with an immediate cancel (the SDK's own rollout
    metadata tells the two cases apart the same way: a final output means the run had completed)."""
    if frun is None or not frun.owned or frun.run.paused is not None:
        return
    try:
        mode = getattr(streamed_result, "_cancel_mode", None)
        if mode in ("after_turn", "immediate") and getattr(streamed_result, "final_output", None) is None:
            frun.run.stop(StopReason.CANCELLED, f"cancel(mode={mode!r})")
    except Exception as exc:
        internal_error("reading a streamed run's cancellation", exc)


def _make_start_streaming(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def start_streaming(*args: Any, **kwargs: Any) -> Any:
        scope = _tool_scope()
        frun = _enter(
            kwargs.get("starting_agent"),
            kwargs.get("starting_input"),
            _conversation(kwargs.get("conversation_id"), kwargs.get("session")),
            # A resume: the loop gets the state's original input, and the state as run_state (which a new
            # run has too, made from its input): only is_resumed_state tells them apart.
            kwargs.get("run_state") if kwargs.get("is_resumed_state") else None,
            scope,
        )
        try:
            result = await original(*args, **kwargs)
        except BaseException as exc:
            exit_run(frun, exc, _classify(exc))
            stopped = _stopped_cause(exc)
            if stopped is not None and stopped is not exc:
                raise stopped from None
            raise
        stored = _stored_error(kwargs.get("streamed_result"))
        if stored is None:
            _approvals(frun, kwargs.get("streamed_result"), scope)
            _cancelled_after_turn(frun, kwargs.get("streamed_result"))
        exit_run(frun, stored, _classify(stored) if stored is not None else None)
        return result

    return start_streaming


# --- tools ------------------------------------------------------------------------------------------


def _tool_fn(function_tool: Any) -> Callable[..., Any] | None:
    try:
        fn = getattr(function_tool, "__wrapped__", None)
    except Exception:
        return None
    if not callable(fn):
        return None
    try:
        return inspect.unwrap(fn)
    except ValueError:
        return fn


def _make_invoke(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def invoke(*args: Any, **kwargs: Any) -> Any:
        run = active_run()
        function_tool = kwargs.get("function_tool")
        context = kwargs.get("context")
        if function_tool is None:
            return await original(*args, **kwargs)
        if run is None:
            refuse_outside_run(str(getattr(function_tool, "name", "") or "tool"))
            return await original(*args, **kwargs)
        try:
            call = start_tool(
                run,
                str(getattr(function_tool, "name", "") or "tool"),
                parse_json_args(kwargs.get("arguments")),
                call_id=getattr(context, "tool_call_id", None),
                fn=_tool_fn(function_tool),
                description=getattr(function_tool, "description", None),
            )
        except ToolDenied as denied:
            return await _refused(function_tool, context, denied)
        if call is None:
            return await original(*args, **kwargs)
        paused: list[str] = []
        token = _paused_in_tool.set(paused)
        try:
            result = await await_or_serve(call, _server(original, args, kwargs), original, *args, **kwargs)
        except BaseException as exc:
            note_failure(run, exc, _classify(exc))
            call.fail(exc)
            raise
        finally:
            _paused_in_tool.reset(token)
        if paused:
            # The agent behind the tool waits for a tool approval: the SDK pauses this run too and invokes
            # the tool again on resume. Neither done nor failed, as a LangGraph tool that interrupts.
            call.interrupted()
        elif getattr(result, "is_sdk_generated_error", False) and not call.done:
            # Not a handled tool error (those were failed by _record_failure): the SDK's default
            # message for a tool that ran past its timeout_seconds.
            call.fail(_timeout_error(function_tool))
        else:
            call.ok(getattr(result, "output", result))
        return result

    return invoke


async def _refused(function_tool: Any, context: Any, denied: ToolDenied) -> Any:
    """``on_deny: raise``: the refusal takes the SDK's path for an error the tool raised, so its
    ``failure_error_function`` tells the model and the agent carries on (raised out of the invocation, the
    SDK ended the run with ``UserError``). A tool without one (``failure_error_function=None``) gets the
    ToolDenied raised, as the SDK raises that tool's own errors."""
    from agents import tool as tool_module

    handler = getattr(tool_module, "maybe_invoke_function_tool_failure_error_function", None)
    invocation_result = getattr(tool_module, "_FunctionToolInvocationResult", None)
    if handler is None or invocation_result is None:
        raise denied
    handler = getattr(handler, "__wrapped__", handler)  # ours fails the active tool call: there is none
    message = await handler(function_tool=function_tool, context=context, error=denied)
    if message is None:
        raise denied
    return invocation_result(message)


def _server(original: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Serve:
    """Serve a replayed function tool call: what ``_invoke_function_tool_with_metadata`` returned."""

    async def serve(recorded: RecordedOutcome) -> Any:
        from agents.exceptions import ToolTimeoutError

        function_tool = kwargs["function_tool"]
        error = recorded.error
        if isinstance(error, ToolTimeoutError):
            return await _timed_out(function_tool, kwargs.get("context"), error)
        if isinstance(error, ToolTimeout):  # agent-otel's own deadline ends the call outside the SDK
            raise error
        served = _serving_copy(function_tool, recorded)
        return await original(*args, **{**kwargs, "function_tool": served})

    return serve


def _serving_copy(function_tool: Any, recorded: RecordedOutcome) -> Any:
    """A copy of the tool whose invocation returns the recorded output or raises the recorded error.

    The SDK's error handling around the invocation stays (a ``function_tool`` wraps its invocation in a
    failure handler that turns an exception into a message for the model), so a recorded error reaches the
    model as the same message, through the same ``failure_error_function``.
    """

    async def body(ctx: Any, input: str) -> Any:
        return recorded.result()

    served = copy.copy(function_tool)  # FunctionTool.__copy__ rebinds the failure handler to the copy
    served.timeout_seconds = None  # nothing runs, so nothing times out (a recorded timeout is served above)
    invoker = served.on_invoke_tool
    if hasattr(invoker, "_invoke_tool_impl"):
        try:
            served.on_invoke_tool = type(invoker)(body, invoker._on_handled_error, function_tool=served)
        except Exception as exc:
            raise Unservable(f"has a failure handler this agent-otel cannot rebuild ({exc})") from None
    else:  # a FunctionTool with its own on_invoke_tool: the SDK adds no error handling around it
        served.on_invoke_tool = body
    return served


async def _timed_out(function_tool: Any, context: Any, error: BaseException) -> Any:
    """What the SDK makes of a tool that ran past ``timeout_seconds``, as configured for the tool."""
    from agents import tool as tool_module

    if function_tool.timeout_behavior == "raise_exception":
        raise error
    invocation_result = getattr(tool_module, "_FunctionToolInvocationResult", None)
    if invocation_result is None:
        raise Unservable(
            "timed out when recorded, and this openai-agents has no invocation result to rebuild"
        )
    handler = function_tool.timeout_error_function
    if handler is None:
        message = tool_module.default_tool_timeout_error_message(
            tool_name=getattr(error, "tool_name", function_tool.name),
            timeout_seconds=getattr(error, "timeout_seconds", function_tool.timeout_seconds),
        )
        return invocation_result(message, is_sdk_generated_error=True)
    result = handler(context, error)
    if inspect.isawaitable(result):
        result = await result
    return invocation_result(result)


def _timeout_error(function_tool: Any) -> BaseException:
    from agents.exceptions import ToolTimeoutError

    try:
        return ToolTimeoutError(
            tool_name=str(function_tool.name), timeout_seconds=float(function_tool.timeout_seconds or 0)
        )
    except Exception:
        return TimeoutError(f"tool {getattr(function_tool, 'name', '?')} timed out")


def _make_failure_function(original: Callable[..., Any]) -> Callable[..., Any]:
    """The SDK's tool-error handler: record the error on the tool span, never swallow AgentStopped."""

    @functools.wraps(original)
    async def handle(*args: Any, **kwargs: Any) -> Any:
        error = kwargs.get("error")
        if isinstance(error, AgentStopped):
            raise error
        call = active_tool_call()
        if call is not None and isinstance(error, BaseException):
            call.fail(error)
        return await original(*args, **kwargs)

    return handle


# --- model calls ------------------------------------------------------------------------------------


#: The turn about to call the model in this task: ``agent`` (the one whose model is called), its resolved
#: ``settings`` (ModelSettings) and the model input after the run's input filter (``filtered``). Set by
#: the two SDK helpers every turn calls before the model, read when the model call begins.
_turn: ContextVar[dict[str, Any] | None] = ContextVar("agent_otel_agents_turn", default=None)


def _note_turn(**values: Any) -> None:
    _turn.set({**(_turn.get() or {}), **values})


def _make_get_model_settings(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def get_model_settings(agent: Any, *args: Any, **kwargs: Any) -> Any:
        settings = original(agent, *args, **kwargs)
        _note_turn(agent=agent, settings=settings)
        return settings

    return get_model_settings


def _make_filter_input(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def maybe_filter_model_input(*args: Any, **kwargs: Any) -> Any:
        filtered = await original(*args, **kwargs)
        _note_turn(filtered=filtered)
        return filtered

    return maybe_filter_model_input


def _model_of(kwargs: dict[str, Any]) -> str:
    model = getattr(kwargs.get("get_retry_advice"), "__self__", None)
    return model_name(model) or (type(model).__name__ if model is not None else "unknown")


def _provider(kwargs: dict[str, Any], model: str) -> str | None:
    instance = getattr(kwargs.get("get_retry_advice"), "__self__", None)
    if type(instance).__module__.startswith("agents.models.openai"):
        return "openai"
    return guess_provider(model)


def _begin_llm(kwargs: dict[str, Any]) -> LLMCall | None:
    run = active_run()
    if run is None:
        return None
    turn = _turn.get() or {}
    settings, filtered = turn.get("settings"), turn.get("filtered")
    name = getattr(turn.get("agent"), "name", None)
    model = _model_of(kwargs)
    try:
        call = llm.begin(
            run,
            model,
            attach=False,
            provider=_provider(kwargs, model),
            defer=True,
            agent_name=name if isinstance(name, str) and name else None,
        )
    except AgentStopped:
        raise
    except Exception as exc:
        internal_error("starting an Agents SDK model step", exc)
        return None
    if call is not None:
        try:
            if settings is not None:
                call.request({k: getattr(settings, k, None) for k, _, _ in c.REQUEST_PARAMETERS})
            if filtered is not None and call.capture_content:
                call.messages(
                    input=_content.responses_input(
                        getattr(filtered, "input", None), getattr(filtered, "instructions", None)
                    )
                )
        except Exception as exc:
            internal_error("reading an Agents SDK model request", exc)
    return call


def _response(call: LLMCall, response_id: Any, output: Any, response_model: Any = None) -> None:
    """The response's id, the tool calls it asked for and why it finished (tool calls, or a message)."""
    try:
        calls = [
            usage_value(item, "call_id")
            for item in output or ()
            if usage_value(item, "type") in ("function_call", "custom_tool_call", "computer_call")
        ]
        reason = "tool_calls" if calls else ("stop" if output else None)
        call.response(
            response_id=response_id,
            tool_call_ids=calls,
            finish_reasons=[reason]
            if reason and c.GEN_AI_RESPONSE_FINISH_REASONS not in call.attributes
            else None,
            response_model=response_model,
        )
        if call.capture_content:
            call.messages(output=_content.responses_output(output, reason))
    except Exception as exc:
        internal_error("reading an Agents SDK model response", exc)


def _tokens(call: LLMCall, usage: Any) -> tuple[int | None, int | None]:
    """Input and output tokens of the SDK's ``Usage``; None when the API reported none. The SDK (and its
    other models: ``LitellmModel``, ``AnyLLMModel``) makes a response without usage ``Usage(requests=1)``,
    0 tokens: the OpenAI client integration saw the response itself (``api_usage``) and tells the two
    apart. Where no client integration saw it (another model, a custom ``Model``), 0 input and 0 output
    tokens is unknown too: no request has no input."""
    if usage is None or call.api_usage is False:
        return None, None
    tokens_in = token_count(usage_value(usage, "input_tokens"))
    tokens_out = token_count(usage_value(usage, "output_tokens"))
    if call.api_usage is None and not tokens_in and not tokens_out:
        return None, None
    return tokens_in, tokens_out


def _finish_llm(call: LLMCall, usage: Any) -> None:
    """The Agents SDK's input tokens include cached ones; the cached part is priced at its discount."""
    call.finish(
        *_tokens(call, usage),
        cached_input_tokens=as_int(usage_value(usage, "input_tokens_details", "cached_tokens")),
        cache_write_tokens=as_int(usage_value(usage, "input_tokens_details", "cache_write_tokens")),
    )


def _make_get_response(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def get_response_with_retry(*args: Any, **kwargs: Any) -> Any:
        call = _begin_llm(kwargs)
        if call is None:
            return await original(*args, **kwargs)
        token = framework_llm.set(call)
        try:
            response = await original(*args, **kwargs)
        except BaseException as exc:
            note_failure(call.run, exc, _classify(exc))
            call.fail(exc)
            raise
        finally:
            reset_framework_llm(token)
        _response(call, getattr(response, "response_id", None), getattr(response, "output", None))
        _finish_llm(call, getattr(response, "usage", None))
        return response

    return get_response_with_retry


def _make_stream_response(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def stream_response_with_retry(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        call = _begin_llm(kwargs)
        if call is None:
            async for event in original(*args, **kwargs):
                yield event
            return
        usage: Any = None
        token = framework_llm.set(call)
        try:
            async for event in original(*args, **kwargs):
                if usage_value(event, "type") in ("response.completed", "response.incomplete"):
                    usage = usage_value(event, "response", "usage") or usage
                    response = usage_value(event, "response")
                    _response(
                        call,
                        usage_value(response, "id"),
                        usage_value(response, "output"),
                        usage_value(response, "model"),
                    )
                yield event
        except GeneratorExit:
            _finish_llm(call, usage)
            raise
        except BaseException as exc:
            note_failure(call.run, exc, _classify(exc))
            call.fail(exc, *_tokens(call, usage))
            raise
        finally:
            reset_framework_llm(token)
        _finish_llm(call, usage)

    return stream_response_with_retry


def _make_execute_handoffs(original: Callable[..., Any]) -> Callable[..., Any]:
    """A handoff: an ``agent.handoff`` event on the run span, naming the agents and the tool call."""

    @functools.wraps(original)
    async def execute_handoffs(*args: Any, **kwargs: Any) -> Any:
        result = await original(*args, **kwargs)
        try:
            run = active_run()
            if run is not None and run.active:
                event: dict[str, Any] = {"from_agent": str(getattr(kwargs.get("public_agent"), "name", "?"))}
                to_agent = getattr(
                    getattr(getattr(result, "next_step", None), "new_agent", None), "name", None
                )
                if isinstance(to_agent, str):
                    event["to_agent"] = to_agent
                handoffs = kwargs.get("run_handoffs") or ()
                call_id = (
                    getattr(getattr(handoffs[0], "tool_call", None), "call_id", None) if handoffs else None
                )
                if isinstance(call_id, str):
                    event[c.GEN_AI_TOOL_CALL_ID] = call_id
                run.span.add_event(c.EVENT_HANDOFF, event)
        except Exception as exc:
            internal_error("recording an Agents SDK handoff", exc)
        return result

    return execute_handoffs


class OpenAIAgentsIntegration(Integration):
    """Wraps the Agents SDK's runner, function-tool invocation and model-call helpers."""

    name = "openai_agents"
    packages = ("agents",)

    def __init__(self) -> None:
        self._patcher = Patcher()

    def available(self) -> bool:
        # "agents" is a generic import name: make sure it is the OpenAI Agents SDK.
        if not super().available():
            return False
        from importlib import metadata

        try:
            metadata.version("openai-agents")
        except metadata.PackageNotFoundError:
            return False
        return True

    def instrument(self) -> None:
        if self._patcher.applied:
            return
        from agents import run as run_module
        from agents import tool as tool_module
        from agents.run_internal import run_loop, tool_execution, turn_resolution

        # Resolve everything before patching anything, so a renamed hook fails the whole integration.
        targets = [
            (run_module.AgentRunner, "run", _make_run),
            (run_module, "start_streaming", _make_start_streaming),
            (tool_module, "_invoke_function_tool_with_metadata", _make_invoke),
            (tool_execution, "_invoke_function_tool_with_metadata", _make_invoke),
            (tool_module, "maybe_invoke_function_tool_failure_error_function", _make_failure_function),
            (tool_execution, "maybe_invoke_function_tool_failure_error_function", _make_failure_function),
            (run_loop, "get_response_with_retry", _make_get_response),
            (run_loop, "stream_response_with_retry", _make_stream_response),
            (run_loop, "get_model_settings", _make_get_model_settings),
            (run_loop, "maybe_filter_model_input", _make_filter_input),
            (turn_resolution, "execute_handoffs", _make_execute_handoffs),
        ]
        for owner, attr, _ in targets:
            if not hasattr(owner, attr):
                raise AttributeError(f"{owner.__name__}.{attr} not found (unsupported openai-agents version)")
        for owner, attr, make in targets:
            self._patcher.wrap(owner, attr, make)

    def uninstrument(self) -> None:
        self._patcher.restore()
