"""CrewAI: crew kickoffs, its agents' tasks, tool usage and LLM calls, through its event bus and hooks.

* Runs: ``Crew.kickoff`` (and ``kickoff_async``, which runs it in a thread; with ``stream=True`` the
  kickoff CrewAI runs in a thread behind the stream) and ``Crew.akickoff`` are a run
  named after the crew (``Crew(name=...)``, CrewAI's default ``crew``) with the kickoff ``inputs`` as
  ``agent.input_sha``. The shared rule applies: inside a user's ``agent_otel.run`` the crew's steps join it;
  a crew kicked off from a tool is a sub-agent.
* Agents and tasks: CrewAI's event bus reports them; agent-otel reads every event as it is emitted (in the
  emitting thread, before the bus hands it to its listeners' thread pool) and leaves span events on the
  run span: ``crewai.task.started`` / ``crewai.task.completed`` / ``crewai.task.failed`` with the task's
  name and the role of the agent working on it, so an operator sees which agent did what, in which order,
  and which task failed. Tool steps carry the agent's role as ``crewai.agent.role``.
* Tools: a global ``before_tool_call`` hook begins the tool step (guards first) *before* the tool runs; a
  guard's stop blocks the tool (CrewAI hands the agent "blocked by hook") and the agent's next LLM call is
  denied by a ``before_llm_call`` hook, which ends the kickoff: the caller gets the AgentStopped. The
  ``after_tool_call`` hook ends the step with the text the agent gets back (``result_sha`` is over it);
  a ``ToolUsageErrorEvent`` marks it ``error``.
* LLM calls: each ``LLMCallStartedEvent`` / ``LLMCallCompletedEvent`` (or ``LLMCallFailedEvent``) pair is one
  LLM step with the usage CrewAI reports for that request, whichever way CrewAI calls the model (its native
  OpenAI / Anthropic / Gemini / Bedrock providers or LiteLLM), with the provider, the request parameters,
  response id and finish reason; the client integrations do not count the request again (a GenAI span
  the provider's client emits itself becomes the step's span).
* Replay: a recorded tool call is blocked (the tool does not run) and the ``after_tool_call`` hook hands the
  agent the recorded text. A recorded tool error is refused: CrewAI builds its error text itself, so the
  agent could not be given the same text; the tool is blocked, the crew's next LLM call denied, and the
  caller gets ``ReplayError``.

Stop reasons: ``TimeoutError`` of an agent's ``max_execution_time`` -> ``timeout``; a failed LLM call ->
``model_error`` (CrewAI retries a failed task ``max_retry_limit`` times first); a guard's stop -> its reason.
CrewAI's ``max_iter`` is not an exception (CrewAI asks the model for a final answer): the run completes.
Flows (``crewai.flow``) are not runs of their own; the crews they kick off are.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, NoReturn

from agent_otel import llm
from agent_otel.genai import guess_provider
from agent_otel.llm import LLMCall
from agent_otel.replay import RecordedOutcome, ReplayError
from agent_otel.run import MISSING, enter_run, exit_run
from agent_otel.steps import (
    Refusal,
    active_run,
    check_pending,
    internal_error,
    note_failure,
    policy_checks,
)
from agent_otel.stop import AgentStopped, StopReason
from agent_otel.tools import ToolCall, writes_declared

from . import Integration
from ._common import (
    Patcher,
    as_int,
    call_or_serve,
    framework_call,
    framework_llm,
    reset_framework_llm,
    start_tool,
    token_count,
    usage_value,
    wrapped_cause,
)

ROLE = "crewai.agent.role"
TASK = "crewai.task.name"


class LLMCallFailed(Exception):
    """A CrewAI LLM call that failed (its ``LLMCallFailedEvent`` carries only the error's text)."""


class ToolUsageError(Exception):
    """A tool usage CrewAI reported as failed (``ToolUsageErrorEvent`` with the error's text)."""


def _stopped_class() -> type:
    from crewai.hooks import HookAborted

    class Stopped(HookAborted):
        """Raised by agent-otel's before_llm_call hook when the run was stopped; it reaches the caller."""

        def __init__(self, cause: BaseException) -> None:
            super().__init__(reason=f"agent-otel stopped the run: {cause}", source="agent-otel")
            self.cause = cause

    return Stopped


class _State:
    """The LLM steps in flight (by CrewAI call id) and tool steps in flight (by their input dict)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.llm: dict[str, tuple[LLMCall, Any]] = {}
        self.tools: dict[int, tuple[Any, ToolCall, str | None]] = {}
        self.failed_llm: dict[str, str] = {}  # run_id -> text of its last failed LLM call
        self.refused: dict[str, BaseException] = {}  # run_id -> a replay refusal to raise at the end
        self.stopped_class = _stopped_class()


_state: _State | None = None
#: The tool step running in this context (a ToolUsageErrorEvent marks it failed).
_current_tool: ContextVar[ToolCall | None] = ContextVar("agent_otel_crewai_tool", default=None)
_tool_errors: ContextVar[BaseException | None] = ContextVar("agent_otel_crewai_tool_error", default=None)


def _template(obj: Any, attr: str) -> str | None:
    """``obj.attr`` as the developer wrote it. A kickoff writes its ``inputs`` into each agent's role and
    each task's description (``"Answer {email}"`` becomes ``"Answer alice@..."``), keeping the template as
    ``_original_<attr>``; the run's input leaves the process only as ``agent.input_sha``, so a label on a
    span must be the template, not the text the inputs were written into."""
    for value in (getattr(obj, f"_original_{attr}", None), getattr(obj, attr, None)):
        if isinstance(value, str) and value:
            return value
    return None


def _role(agent: Any) -> str | None:
    return _template(agent, "role")


def _task_name(task: Any) -> str | None:
    value = getattr(task, "name", None)  # a name is not interpolated
    if not (isinstance(value, str) and value):
        value = _template(task, "description")
    return value[:256] if value else None


def _label(span: Any, agent: Any, task: Any = None) -> None:
    try:
        role = _role(agent)
        if role:
            span.set_attribute(ROLE, role)
        name = _task_name(task)
        if name:
            span.set_attribute(TASK, name)
    except Exception as exc:
        internal_error("labelling a CrewAI step", exc)


# --- runs -------------------------------------------------------------------------------------------


def _crew_name(crew: Any) -> str:
    name = getattr(crew, "name", None)
    return name if isinstance(name, str) and name else "crew"


def _inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    inputs = kwargs.get("inputs", args[0] if args else None)
    return inputs if inputs is not None else MISSING


def _classify(run: Any, exc: BaseException) -> StopReason | None:
    if isinstance(exc, TimeoutError):
        return StopReason.TIMEOUT
    state = _state
    text = str(exc)
    failed = state.failed_llm.get(run.run_id) if state is not None and run is not None else None
    if failed and text and failed.endswith(text):  # CrewAI reports "<provider> API call failed: <error>"
        return StopReason.MODEL_ERROR
    return None


def _outcome(frun: Any, exc: BaseException) -> BaseException:
    """What the caller gets: the AgentStopped (or replay refusal) behind CrewAI's wrapping, else ``exc``."""
    state = _state
    run = frun.run if frun is not None else None
    if state is not None and run is not None:
        refused = state.refused.pop(run.run_id, None)
        if refused is not None:
            return refused
        stopped = wrapped_cause(exc, state.stopped_class)
        if stopped is not None:
            cause = stopped.cause
            return AgentStopped(run.result) if isinstance(cause, AgentStopped) and run.result else cause
    found = wrapped_cause(exc)
    return found if found is not None else exc


def _leave(frun: Any, exc: BaseException | None) -> BaseException | None:
    run = frun.run if frun is not None else None
    if exc is None:
        exit_run(frun, None)
        return None
    outcome = _outcome(frun, exc)
    exit_run(frun, outcome, _classify(run, exc))
    if _state is not None and run is not None:
        _state.failed_llm.pop(run.run_id, None)
    return outcome


def _reraise(frun: Any, exc: BaseException) -> NoReturn:
    """Leave the run on ``exc``; raise what the caller gets (the AgentStopped behind CrewAI's wrapping)."""
    outcome = _leave(frun, exc)
    if outcome is not None and outcome is not exc:
        raise outcome from None
    raise exc


def _make_kickoff(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def kickoff(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(self, "stream", False) is True:
            # Streaming: kickoff returns at once and runs the crew (kickoff again, not streaming) in a
            # thread while the caller reads the chunks; that inner kickoff is the run.
            return original(self, *args, **kwargs)
        frun = enter_run(_crew_name(self), input=_inputs(args, kwargs))
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            _reraise(frun, exc)
        _leave(frun, None)
        return result

    return kickoff


def _make_akickoff(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def akickoff(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(self, "stream", False) is True:
            return await original(self, *args, **kwargs)
        frun = enter_run(_crew_name(self), input=_inputs(args, kwargs))
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as exc:
            _reraise(frun, exc)
        _leave(frun, None)
        return result

    return akickoff


# --- hooks ------------------------------------------------------------------------------------------


def _tool_function(tool: Any) -> Callable[..., Any] | None:
    """The function of a CrewAI ``@tool`` (its ``func``), so that an ``@agent_otel.tool(side_effects=True)``
    function is a write for the ``writes`` kill switch here too; a ``BaseTool`` subclass has none. The
    hook is handed the agent's ``CrewStructuredTool``, whose ``func`` is the ``Tool``'s bound ``_run``."""
    fn = getattr(tool, "func", None)
    inner = getattr(getattr(fn, "__self__", None), "func", None)
    if callable(inner):
        fn = inner
    if not callable(fn):
        return None
    try:
        return inspect.unwrap(fn)
    except ValueError:  # a __wrapped__ cycle
        return fn


def _before_tool(context: Any) -> bool | None:
    state = _state
    run = active_run()
    if state is None or run is None:
        return None
    tool_input = getattr(context, "tool_input", None)
    try:
        description = getattr(getattr(context, "tool", None), "description", None)
        name = str(getattr(context, "tool_name", "") or "tool")
        fn = _tool_function(getattr(context, "tool", None)) if writes_declared() else None
        call = start_tool(run, name, tool_input, fn=fn, attach=False, description=description)
    except (AgentStopped, Refusal):
        # Blocked: the tool does not run. A stop ends the kickoff at the next LLM call; a ToolDenied
        # (on_deny: raise) leaves the run going, and CrewAI tells the agent the tool was blocked.
        return False
    if call is None:
        return None
    _label(call.span, getattr(context, "agent", None), getattr(context, "task", None))
    served: str | None = None
    if call.replay is not None:
        try:
            served = call_or_serve(call, _serve, _nothing)
        except ReplayError as refusal:
            state.refused[run.run_id] = refusal
            return False
    with state.lock:
        state.tools[id(tool_input)] = (tool_input, call, served)
    _current_tool.set(call)
    _tool_errors.set(None)
    return False if served is not None else None


def _serve(recorded: RecordedOutcome) -> str:
    from ._common import Unservable

    if recorded.error is not None:
        raise Unservable("raised an error when recorded; CrewAI builds the text of a tool error itself")
    value = recorded.value
    if not isinstance(value, str):
        raise Unservable("was recorded as something other than the text CrewAI gives the agent")
    return value


def _nothing() -> None:
    return None


def _after_tool(context: Any) -> str | None:
    state = _state
    if state is None:
        return None
    tool_input = getattr(context, "tool_input", None)
    with state.lock:
        entry = state.tools.pop(id(tool_input), None)
    if entry is None or entry[0] is not tool_input:
        return None
    _, call, served = entry
    _current_tool.set(None)
    if served is not None:
        call.ok(served)
        return served  # the agent gets the recorded text instead of "blocked by hook"
    error = _tool_errors.get()
    _tool_errors.set(None)
    if error is not None:
        call.fail(error)
    else:
        call.ok(getattr(context, "tool_result", None))
    return None


def _before_llm(context: Any) -> None:
    state = _state
    run = active_run()
    if state is None or run is None:
        return
    refused = state.refused.get(run.run_id)
    try:
        if refused is not None:
            raise refused
        check_pending(run)
        model = getattr(getattr(context, "llm", None), "model", None)
        # The guards of the LLM step about to be made, judged before the request (the step itself is
        # recorded from CrewAI's events, when the request starts).
        policy_checks(LLMCall(run, str(model or "unknown"), None))
    except (AgentStopped, ReplayError) as exc:
        raise state.stopped_class(exc) from exc


# --- the event bus ----------------------------------------------------------------------------------


def _observe(source: Any, event: Any) -> None:
    kind = getattr(event, "type", None)
    if kind == "llm_call_started":
        _llm_started(source, event)
    elif kind == "llm_call_completed":
        _llm_ended(event, None)
    elif kind == "llm_call_failed":
        _llm_ended(event, str(getattr(event, "error", "") or "LLM call failed"))
    elif kind == "tool_usage_error":
        error = getattr(event, "error", None)
        _tool_errors.set(error if isinstance(error, BaseException) else ToolUsageError(str(error)))
    elif kind == "tool_usage_finished" and getattr(event, "failure", None) is None:
        _tool_errors.set(None)
    elif kind in ("task_started", "task_completed", "task_failed"):
        _task_event(event, kind)


#: CrewAI's provider names (``LLM.provider``) as ``gen_ai.provider.name``.
_PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini", "bedrock": "aws.bedrock"}
_PROVIDERS.update({"azure": "azure.ai.openai", "mistral": "mistral_ai", "groq": "groq"})


def _llm_started(source: Any, event: Any) -> None:
    state = _state
    run = active_run()
    call_id = getattr(event, "call_id", None)
    if state is None or run is None or not call_id or framework_call() is not None:
        return
    model = str(getattr(event, "model", None) or "unknown")
    provider = _PROVIDERS.get(str(getattr(source, "provider", "") or "")) or guess_provider(model)
    try:
        # The guards of this step ran in the before_llm_call hook. Deferred: a GenAI span the provider's
        # client emits itself (anthropic 2.x) becomes the step's span.
        call = llm.begin(
            run,
            model,
            attach=False,
            checks=False,
            provider=provider,
            defer=True,
            agent_name=_role(getattr(event, "from_agent", None)),
        )
    except AgentStopped:
        return
    if call is None:
        return
    stop = getattr(event, "stop_sequences", None)
    params = {k: getattr(event, k, None) for k in ("temperature", "top_p", "max_tokens", "seed", "n")}
    params.update(stop=stop, frequency_penalty=getattr(event, "frequency_penalty", None))
    params.update(presence_penalty=getattr(event, "presence_penalty", None))
    call.request(params, stream=bool(getattr(event, "stream", False)))
    with state.lock:
        state.llm[call_id] = (call, framework_llm.set(call))


def _llm_ended(event: Any, error: str | None) -> None:
    state = _state
    call_id = getattr(event, "call_id", None)
    if state is None or not call_id:
        return
    with state.lock:
        entry = state.llm.pop(call_id, None)
    if entry is None:
        return
    call, token = entry
    reset_framework_llm(token)
    if error is not None:
        state.failed_llm[call.run.run_id] = error
        failure = LLMCallFailed(error)
        note_failure(call.run, failure, StopReason.MODEL_ERROR)
        call.fail(failure)
        return
    call.response(
        response_id=getattr(event, "response_id", None), finish_reasons=getattr(event, "finish_reason", None)
    )
    usage = getattr(event, "usage", None) or {}  # none reported: unknown, not 0 tokens
    input_tokens = token_count(usage_value(usage, "prompt_tokens"), usage_value(usage, "input_tokens"))
    output_tokens = token_count(usage_value(usage, "completion_tokens"), usage_value(usage, "output_tokens"))
    cached = as_int(
        usage_value(usage, "cached_prompt_tokens") or usage_value(usage, "cache_read_input_tokens")
    )
    call.finish(input_tokens, output_tokens, cached_input_tokens=cached)


def _task_event(event: Any, kind: str) -> None:
    run = active_run()
    if run is None:
        return
    task = getattr(event, "task", None)
    attributes: dict[str, Any] = {}
    name = _task_name(task)
    if name:
        attributes[TASK] = name
    role = _role(getattr(task, "agent", None))
    if role:
        attributes[ROLE] = role
    if kind == "task_failed":
        error_type = getattr(event, "error_type", None)
        attributes["error.type"] = getattr(error_type, "__name__", None) or "error"
    run.span.add_event(f"crewai.{kind.replace('_', '.')}", attributes)


def _make_emit(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def emit(self: Any, source: Any, event: Any) -> Any:
        if _state is not None:
            try:
                _observe(source, event)
            except Exception as exc:
                internal_error("reading a CrewAI event", exc)
        return original(self, source, event)

    return emit


class CrewAIIntegration(Integration):
    """Wraps crew kickoffs and the event bus's ``emit``; registers global tool and LLM hooks."""

    name = "crewai"
    packages = ("crewai",)

    def __init__(self) -> None:
        self._patcher = Patcher()
        self._hooks: list[tuple[Callable[..., Any], Callable[..., Any]]] = []

    def instrument(self) -> None:
        global _state
        if self._patcher.applied or _state is not None:
            return  # instrumented (by this or another instance): the hooks are registered once
        from crewai import crew as crew_module
        from crewai import hooks
        from crewai.events import event_bus

        bus_class = type(event_bus.crewai_event_bus)
        targets = [
            (crew_module.Crew, "kickoff", _make_kickoff),
            (crew_module.Crew, "akickoff", _make_akickoff),
            (bus_class, "emit", _make_emit),
        ]
        for owner, attr, _ in targets:
            if not hasattr(owner, attr):
                raise AttributeError(f"{owner.__name__}.{attr} not found (unsupported crewai version)")
        _state = _State()
        for owner, attr, make in targets:
            self._patcher.wrap(owner, attr, make)
        for register, unregister, hook in (
            (hooks.register_before_tool_call_hook, hooks.unregister_before_tool_call_hook, _before_tool),
            (hooks.register_after_tool_call_hook, hooks.unregister_after_tool_call_hook, _after_tool),
            (hooks.register_before_llm_call_hook, hooks.unregister_before_llm_call_hook, _before_llm),
        ):
            register(hook)
            self._hooks.append((unregister, hook))

    def uninstrument(self) -> None:
        global _state
        hooks, self._hooks = self._hooks, []
        for unregister, hook in hooks:
            try:
                unregister(hook)
            except Exception as exc:
                internal_error("removing a CrewAI hook", exc)
        if self._patcher.applied:
            _state = None
        self._patcher.restore()
