"""What every integration shares, so that a framework's calls become exactly the manual API's calls.

Integrations use the step engine's public interface only (``agent_otel.steps`` documents it: runs
through ``agent_otel.run.enter_run`` / ``exit_run``, steps through ``tools.begin`` / ``llm.begin``). On
top of it, this module adds what framework integrations share:

* :class:`Patcher` applies wrappers that can be undone exactly, and refuses to wrap twice, so
  ``instrument()`` twice never double counts and ``uninstrument()`` restores the original objects.
* :func:`start_tool` goes through :func:`agent_otel.tools.begin`, so guards run first and may raise
  :class:`~agent_otel.AgentStopped`; every other failure of telemetry is swallowed and reported once.
  :func:`call_with_timeout` / :func:`await_with_timeout` apply ``guards.tool_timeout_s`` to the
  framework's tool exactly as ``@tool`` applies it to a function.
* Replay: :func:`call_or_serve` / :func:`await_or_serve` run the framework's tool, or, when the call is
  replayed, never run it and hand the recorded outcome to the integration's *serve* function, which
  rebuilds what the wrapped framework function returned (or raises what it raised) when the call was
  recorded. The integration then finishes the call as it finishes a live one, so a faithful rebuild
  records the same ``result_sha``. What cannot be rebuilt faithfully is refused with ``ReplayError``
  (the call fails, the tool is not executed): a result recorded as an object (only its JSON form is
  kept), an error whose class is not loaded, or what a serve function declares :class:`Unservable`.
* :data:`framework_llm` marks an LLM call a framework integration has open, so the OpenAI/Anthropic
  client integrations do not record the same request a second time.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any, NoReturn

from opentelemetry import context as otel_context

from agent_otel import conventions as c
from agent_otel.llm import LLMCall
from agent_otel.replay import RecordedOutcome, RecordedToolError, ReplayError, recorded, unserved
from agent_otel.run import Run
from agent_otel.steps import Refusal, active_run, internal_error, outside_run
from agent_otel.stop import AgentStopped
from agent_otel.tools import ToolCall, ToolOptions, ToolTimeout, begin, call_with_deadline, timeout_for

#: Marker attribute on every wrapper we install; its value is the wrapped original.
ORIGINAL_ATTR = "__agent_otel_original__"
_ABSENT: Any = object()


class Patcher:
    """Replaces attributes with wrappers and puts the originals back, in reverse order, exactly.

    ``wrap`` is a no-op when the attribute already is an agent-otel wrapper (another integration
    instance, or a second ``instrument()``), which is what makes instrumenting twice count once.
    """

    def __init__(self) -> None:
        # (owner, attribute, original or _ABSENT if it was inherited, wrapper)
        self._applied: list[tuple[Any, str, Any, Any]] = []

    def wrap(self, owner: Any, attr: str, make: Callable[[Any], Any]) -> None:
        own = vars(owner)
        original = own[attr] if attr in own else getattr(owner, attr)
        if getattr(original, ORIGINAL_ATTR, None) is not None:
            return
        wrapper = make(original)
        setattr(wrapper, ORIGINAL_ATTR, original)
        setattr(owner, attr, wrapper)
        self._applied.append((owner, attr, original if attr in own else _ABSENT, wrapper))

    @property
    def applied(self) -> bool:
        return bool(self._applied)

    def restore(self) -> None:
        applied, self._applied = self._applied, []
        for owner, attr, original, wrapper in reversed(applied):
            # Only undo what is still ours: if someone patched over us, leave their patch alone.
            if vars(owner).get(attr) is not wrapper:
                continue
            if original is _ABSENT:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)


# --- tools ------------------------------------------------------------------------------------------


def start_tool(
    run: Run,
    name: str,
    args: Any,
    *,
    call_id: str | None = None,
    fn: Callable[..., Any] | None = None,
    side_effects: bool = False,
    attach: bool = True,
    description: Any = None,
    tool_type: str = "function",
) -> ToolCall | None:
    """Begin a framework tool call through the manual API's engine; guards may raise AgentStopped.

    The call is claimable: a function that is also decorated with ``@agent_otel.tool`` and runs inside
    this call uses it instead of opening a second span. None means telemetry failed and the caller runs
    the tool as it is, except under replay: a call that could not be matched with the recording (or
    that the replay refuses: UnrecordedToolCall, SnapshotUnavailable) raises, and nothing runs.
    """
    try:
        text = " ".join(description.split())[:1024] if isinstance(description, str) else None
        call = begin(
            run,
            ToolOptions(
                name=name or "tool", side_effects=side_effects, description=text or None, type=tool_type
            ),
            args,
            call_id=call_id,
            fn=fn,
            attach=attach,
            claimable=True,
        )
    except (AgentStopped, Refusal):  # a guard's stop or ToolDenied, a replay's refusal: never run the tool
        raise
    except Exception as exc:
        internal_error("starting a framework tool call", exc)
        call = None
    if call is None and run.is_replay:
        raise ReplayError(f"tool {name!r} could not be matched with the recording; not executing it")
    return call


def refuse_outside_run(name: str) -> None:
    """A framework tool called outside any run is not recorded, so during a replay it never runs."""
    outside_run(name or "tool")


# --- replay -----------------------------------------------------------------------------------------


class Unservable(Exception):
    """Raised by an integration's serve function: this recording cannot be rebuilt as the framework got it."""


#: An integration's serve function: from the recorded outcome of a call (result or error, see
#: :class:`agent_otel.replay.RecordedOutcome`), return (or, async, resolve to) what the wrapped framework
#: function returned when the call was recorded, or raise what it raised, as the framework expects it.
Serve = Callable[[RecordedOutcome], Any]


def refuse(call: ToolCall, why: str, cause: BaseException | None = None) -> NoReturn:
    """A replay never executes a real tool: what cannot be served is refused, so nothing is sent twice."""
    error = ReplayError(f"tool {call.name!r} {why}; not executing it during a replay")
    unserved(call, why)
    call.fail(error)
    raise error from cause


def _refuse_under_replay(call: ToolCall) -> None:
    if call.replay is not None:
        refuse(call, "is executed by the framework and cannot be served from the recording")


def _recorded(call: ToolCall, serve: Serve | None) -> RecordedOutcome:
    """The recorded outcome ``serve`` will rebuild from, or a refusal if it cannot be rebuilt faithfully."""
    if serve is None:
        _refuse_under_replay(call)
    outcome = recorded(call)
    if outcome.result_type is not None:
        refuse(
            call,
            f"returned a {outcome.result_type} when recorded; the recording keeps only its JSON form, "
            "not the object the framework received",
        )
    error = outcome.error
    if isinstance(error, RecordedToolError):
        refuse(
            call,
            f"raised {error.module}.{error.error_type} when recorded, a class this process has not "
            "loaded, so the framework cannot be given that error",
            error,
        )
    return outcome


def begin_hooked_tool(
    name: str, args: Any, call_id: str | None, framework: str, description: str | None = None
) -> ToolCall | None:
    """Begin the step of a tool a framework is about to run, from an integration's hook before it
    (:func:`agent_otel.bridge.begin_tool`: guards first). None: outside any run (refused under a replay)
    or telemetry failed, run the tool as it is. A guard's stop, a policy refusal or a replay's refusal is
    raised: the tool must not run."""
    from agent_otel import bridge
    from agent_otel.guards import ToolDenied

    run = active_run()
    if run is None:
        refuse_outside_run(name)
        return None
    try:
        return bridge.begin_tool(run, name, args, call_id, description=description)
    except (AgentStopped, ToolDenied, ReplayError):
        raise
    except Exception as exc:
        internal_error(f"starting a {framework} tool step", exc)
        return None


def served(outcome: RecordedOutcome) -> Any:
    """The serve function of a tool whose framework takes its return value as it is: the recorded result
    (its JSON form), or the recorded error raised."""
    return outcome.result()


async def never_run(*args: Any, **kwargs: Any) -> Any:
    """The tool function handed to :func:`await_or_serve` on a path that only serves (never called)."""
    raise AssertionError("a replayed tool is served, never run")


def end_tool_step(call: ToolCall, result: Any, exc: BaseException | None, framework: str) -> None:
    """End a framework tool's step with its outcome, unless it has ended (an ``@agent_otel.tool`` function
    that claimed it, a refusal, or the framework's span ending it); never raises."""
    if call.done:
        return
    try:
        if exc is not None:
            call.fail(exc)
        else:
            call.ok(result)
    except Exception as err:
        internal_error(f"finishing a {framework} tool step", err)


def call_or_serve(
    call: ToolCall, serve: Serve | None, fn: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    """Run a sync framework tool (:func:`call_with_timeout`), or, replayed, rebuild what it returned."""
    if call.replay is None:
        return call_with_timeout(call, fn, *args, **kwargs)
    outcome = _recorded(call, serve)
    assert serve is not None
    try:
        return serve(outcome)
    except Unservable as why:
        refuse(call, str(why))


async def await_or_serve(
    call: ToolCall, serve: Serve | None, fn: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    """Await an async framework tool (:func:`await_with_timeout`), or, replayed, rebuild its outcome."""
    if call.replay is None:
        return await await_with_timeout(call, fn, *args, **kwargs)
    outcome = _recorded(call, serve)
    assert serve is not None
    try:
        result = serve(outcome)
        return await result if inspect.isawaitable(result) else result
    except Unservable as why:
        refuse(call, str(why))


def call_with_timeout(call: ToolCall, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a sync framework tool under ``guards.tool_timeout_s``, exactly as ``@tool`` runs its function."""
    _refuse_under_replay(call)
    timeout_s = timeout_for(call)
    if timeout_s is None:
        return fn(*args, **kwargs)
    return call_with_deadline(fn, args, kwargs, timeout_s, call.name)


async def await_with_timeout(call: ToolCall, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Await an async framework tool under ``guards.tool_timeout_s``; expiry raises ``ToolTimeout``."""
    _refuse_under_replay(call)
    timeout_s = timeout_for(call)
    if timeout_s is None:
        return await fn(*args, **kwargs)
    import asyncio

    try:
        async with asyncio.timeout(timeout_s) as deadline:
            return await fn(*args, **kwargs)
    except TimeoutError as exc:
        if deadline.expired():  # ours, not a TimeoutError the tool raised itself
            raise ToolTimeout(call.name, timeout_s) from exc
        raise


def unwrapping_stream(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a framework's async-generator method so that a guard's AgentStopped (or a replay's refusal)
    the framework wrapped reaches the caller as itself."""

    @functools.wraps(original)
    async def stream(self: Any, *args: Any, **kwargs: Any) -> Any:
        inner = original(self, *args, **kwargs)
        try:
            async for event in inner:
                yield event
        except Exception as exc:
            stop = wrapped_cause(exc)
            if stop is None or stop is exc:
                raise
            raise stop from exc
        finally:
            # Closed early by the caller (``aclose()``, a ``break`` then the loop's finalizer): close the
            # framework's stream now, as the caller's ``aclose()`` did without agent-otel, so that its own
            # cleanup (ending its spans, and with them the run) runs now, not whenever the garbage
            # collector finalizes it. (A no-op for a stream that ended.)
            aclose = getattr(inner, "aclose", None)
            if aclose is not None:
                await aclose()

    return stream


def parse_json_args(raw: Any) -> Any:
    """Tool arguments as the model sent them: JSON text becomes the object, anything else stays."""
    if isinstance(raw, str | bytes):
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return raw
    return raw


# --- LLM calls --------------------------------------------------------------------------------------

#: The framework-level LLM call in flight in this context (LangChain chat model, Agents SDK model...).
framework_llm: ContextVar[LLMCall | None] = ContextVar("agent_otel_framework_llm", default=None)


#: The same mark in the OpenTelemetry context, for a framework that sends the request from another task
#: and re-attaches there the OpenTelemetry context it captured where its hook ran (PydanticAI's streams).
_FRAMEWORK_LLM_KEY = otel_context.create_key("agent_otel_framework_llm")


def framework_call() -> LLMCall | None:
    """The framework's LLM call in flight in this context, if any: a client request made now is its."""
    call = framework_llm.get()
    if call is None or call.done:
        call = otel_context.get_value(_FRAMEWORK_LLM_KEY)
    return call if isinstance(call, LLMCall) and not call.done else None


def carry_framework_llm(call: LLMCall) -> object:
    """Put ``call`` in the current OpenTelemetry context too (see :func:`framework_call`); returns the token
    for ``opentelemetry.context.detach``."""
    return otel_context.attach(otel_context.set_value(_FRAMEWORK_LLM_KEY, call))


def reset_framework_llm(token: Any) -> None:
    """Undo ``framework_llm.set``; from another context (an abandoned stream) just clear it."""
    try:
        framework_llm.reset(token)
    except ValueError:
        framework_llm.set(None)


def usage_value(obj: Any, *path: str) -> Any:
    """``obj.a.b`` or ``obj["a"]["b"]``, None where missing: SDK objects and raw JSON alike."""
    cur = obj
    for key in path:
        if cur is None:
            return None
        cur = cur.get(key) if isinstance(cur, dict) else getattr(cur, key, None)
    return cur


def as_int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def token_count(*values: Any) -> int | None:
    """The first of ``values`` a response reported, as an int; None when it reported none of them.

    A count nobody reported is unknown usage, not 0 tokens (which a reader takes for a free request):
    :meth:`agent_otel.llm.LLMCall.finish` leaves a step whose input and output counts are both None
    without ``gen_ai.usage.*``. A reported 0 stays 0.
    """
    for value in values:
        if value is None:
            continue
        try:
            return int(value)
        except (TypeError, ValueError):
            continue
    return None


def model_name(model: Any) -> str | None:
    """A model's name from a string or an SDK model object (``.model``, ``.model_name``)."""
    if isinstance(model, str):
        return model or None
    for attr in ("model_name", "model", "name"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


def wrapped_cause(exc: BaseException, kinds: Any = (AgentStopped, ReplayError)) -> Any:
    """The first exception of ``kinds`` in ``exc``'s chain (``__cause__``, else ``__context__``), or None:
    the AgentStopped or replay refusal a framework wrapped in an exception of its own."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, kinds):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def pause(run: Run, count: int, ids: list[str], *, checkpoint_id: Any = None, status: Any = None) -> None:
    """Record that ``run`` paused for human input (``count`` interrupts or approvals asked for, with
    their ``ids``): it ends ``interrupted`` unless it resumes first, with an ``agent.interrupt`` event."""
    detail: dict[str, Any] = {"interrupts": count}
    if isinstance(checkpoint_id, str) and checkpoint_id:
        detail["checkpoint_id"] = checkpoint_id
    first = run.paused is None
    run.paused = detail
    if not first and not count:
        return
    try:
        event = dict(detail)
        if ids:
            event["interrupt_ids"] = ids
        if isinstance(status, str):
            event["status"] = status
        run.span.add_event(c.EVENT_INTERRUPT, event)
    except Exception as exc:
        internal_error("recording a pause for human input", exc)


def record_approvals(run: Run, decisions: Iterable[tuple[Any, Any, bool]]) -> None:
    """Record on ``run``'s span what a human decided about tool calls a paused run waited for, as the
    framework hands the decisions to the run resuming it: one ``agent.approval`` event per call
    (``gen_ai.tool.call.id``, ``gen_ai.tool.name`` when known, ``agent.approval.decision`` ``approved`` or
    ``rejected``). A rejected call never runs, so it is no tool step and no tool error; without the event
    the resumed run showed nothing of the rejection, and an approval only as the tool running.

    ``decisions`` are ``(call_id, tool_name, approved)``; a call without an id is left out (it names
    nothing the paused run's ``agent.interrupt`` named). The human's reason for a rejection is not
    recorded: it is free text a person wrote about the case (a customer, an account), and the decision is
    what the operator asks for."""
    try:
        for call_id, tool, approved in decisions:
            if not isinstance(call_id, str) or not call_id:
                continue
            event: dict[str, Any] = {c.GEN_AI_TOOL_CALL_ID: call_id}
            if isinstance(tool, str) and tool:
                event[c.GEN_AI_TOOL_NAME] = tool
            event[c.APPROVAL_DECISION] = c.APPROVED if approved else c.REJECTED
            run.span.add_event(c.EVENT_APPROVAL, event)
    except Exception as exc:
        internal_error("recording a human's tool approval", exc)
