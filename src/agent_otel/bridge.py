"""The GenAI span bridge: agent-otel runs from the OpenTelemetry GenAI spans frameworks emit themselves.

Strands Agents, Google ADK, PydanticAI, Microsoft Agent Framework, AutoGen/AG2, Mistral's SDK, LiteLLM's
``otel`` callback, anthropic and MCP trace their own work through the global TracerProvider, with the
GenAI conventions' operations: ``invoke_agent``, ``chat`` / ``generate_content`` / ``text_completion``,
``execute_tool``. :class:`Bridge` is one span processor (added by ``setup()``) that recognises those
spans by their operation (``gen_ai.operation.name``, or the operation their name starts with: several
libraries set attributes only after starting a span), whoever emitted them, and makes them agent-otel
runs and steps, through the same engine as the manual API, so they get the run store, events, metrics,
stop reasons and guards:

* an ``invoke_agent`` span outside any run *is* a run (:class:`BridgedRun`; inside a run's tool call, a
  sub-agent); inside a run it joins it (the framework's own run totals are dropped from its span, and
  its pause for human input, by the framework's reading, pauses the run). So does an ``invoke_workflow``
  span (ADK's ``Runner`` call), and Strands' ``invoke_swarm`` / ``invoke_graph``: the agents it invokes,
  one after another when one transfers to the next, join its run. No second run span is opened: the
  framework's span carries ``agent.run_id``, the stop and the run's totals (its own ``gen_ai.usage.*``
  totals are moved to ``agent.usage.*``, so a backend summing usage over spans counts each request once);
* a request span inside a run *is* an LLM step (usage, response model, provider and finish reasons
  read from the span when it ends). A client integration that records the same request inside it (the
  OpenAI, Anthropic, google-genai... clients) takes the step over (:mod:`agent_otel.llm`): one step;
* an ``invoke_agent`` span of a remote agent (``server.address``: the agent runs in a service) that its
  library labels only after starting it (Mistral's Agents and Conversations API) *is* one request step
  inside a run: the service reports the invocation's usage, and no request span of its own comes; its
  ``chat`` spans (the invocation's messages) are that step's. Outside any run it is a run whose span is
  also that step's (known by its name when it starts: :func:`agent_otel.native.late_agent`);
* an ``execute_tool`` span inside a run *is* a tool step: ``agent.tool.args_sha`` / ``result_sha`` from
  ``gen_ai.tool.call.arguments`` / ``result`` when the library puts them on the span (most do so only
  with their content capture on), status and ``error.type`` from the span;
* the run's stop reason comes from the span's status, its exception events and the framework's own
  exception classes and finish reasons (:func:`register_stops`), or from the step whose failure ended it.

``agent.run_id`` and ``agent.step_id`` are set when a span starts. What is known only at its end (the
step's outcome, the run's stop) is recorded just before the framework ends its span: the bridge wraps
that one span object's ``end``, so the span is still writable then. Every span that starts under a bound
span is bound to the same run (:class:`agent_otel.steps.SpanBinding`), so ``agent_otel.current_run()``,
``@agent_otel.tool`` and the other integrations find the bridged run in the framework's callbacks, its
threads (with the OpenTelemetry context) and nested libraries.

Guards: a span starts after the framework decided to make the call, and a span processor must not raise,
so from spans alone agent-otel cannot stop a step: there every guard observes (``Run.stoppable``). An
integration whose framework has a hook before its tools and model calls (Strands, Google ADK) says so at
the start of each invocation it hooks into (:func:`hook_in`): that run is stoppable, and the integration
records the steps in those hooks (:func:`begin_tool`, :func:`check_llm`), where a guard can stop them and
a replay can serve them.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, StatusCode

from agent_otel import conventions as c
from agent_otel import native, runtime
from agent_otel.genai import guess_provider, strings
from agent_otel.guards import ToolDenied
from agent_otel.hashing import sha
from agent_otel.llm import USAGE_BELOW, LLMCall, usage_above_ends
from agent_otel.replay import not_compared, unserved
from agent_otel.run import Run
from agent_otel.steps import (
    SPAN_BINDING,
    Policy,
    Refusal,
    RunPolicy,
    SpanBinding,
    Step,
    active_run,
    bind_span,
    check_pending,
    context_binding,
    internal_error,
    is_cancellation,
    policy_checks,
    serve_late,
    span_binding,
    track_bound_run,
)
from agent_otel.stop import AgentStopped, StopReason
from agent_otel.tools import ToolCall, ToolOptions, active_tool_call

#: Exception classes (``exception.type`` / ``error.type`` of a run span) whose stop reason is known.
EXCEPTION_STOPS: dict[str, StopReason] = {
    # Google ADK: the run's max_llm_calls was reached.
    "LlmCallsLimitExceededError": StopReason.MAX_STEPS,
    # Strands Agents: the model's context or output limit, the provider throttling.
    "ContextWindowOverflowException": StopReason.MODEL_ERROR,
    "MaxTokensReachedException": StopReason.MODEL_ERROR,
    "ModelThrottledException": StopReason.MODEL_ERROR,
    # PydanticAI: its usage limits and run timeout.
    "UsageLimitExceeded": StopReason.BUDGET_EXCEEDED,
    "RunTimedOut": StopReason.TIMEOUT,
    # Any framework: cancellation.
    "CancelledError": StopReason.CANCELLED,
    "KeyboardInterrupt": StopReason.CANCELLED,
}
#: AG2's tracer (its ``TelemetryMiddleware``), whose request spans name the cache counts its own way.
AG2_SCOPE = "opentelemetry.instrumentation.ag2"
#: The GenAI ``gen_ai.usage.*`` keys a framework may put on its agent span as the run's totals.
_USAGE_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.completion_tokens",
    "gen_ai.usage.total_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.cache_write_input_tokens",
)

#: Frameworks that end every request span they start, a stream's included, whenever their consumer lets
#: go of it: the Agent Framework (a weakref finalizer ends the span of a stream that was never read to its
#: end, in whatever order the garbage collector takes the streams). The run's stop ends such a span's step,
#: never the span itself.
_ENDS_OWN_SPANS = frozenset({"agent_framework"})
# Stop classifiers of integrations, by instrumentation scope (register_stops).
_classifiers: dict[str, Callable[[Any], StopReason | None]] = {}
#: A tool step an integration's hook began before the framework started the tool's span (Strands).
_pending_tool: ContextVar[BridgedToolCall | None] = ContextVar("agent_otel_pending_tool", default=None)


#: A resume key (``Run.resume_key``) an integration read from a framework invocation's input (the answers
#: to a pause) before the framework starts its agent span, with what to record on the resuming run: the
#: first run the bridge starts in this context takes it, and empties the list, so an agent started later
#: inside that invocation does not.
_resume_next: ContextVar[list[tuple[str, Callable[[Run], None] | None]] | None] = ContextVar(
    "agent_otel_resume_next", default=None
)


def resume_next(key: str, then: Callable[[Run], None] | None = None) -> list[Any]:
    """The next run the bridge starts in this context resumes the paused run ``key`` names (the key the
    paused run's integration set as its ``resume_key``): it links to it (``agent.resume_of``), as a
    conversation's resume does; ``then(run)`` records on it what the answers say (the human's decisions),
    on the run it joins if the invocation is part of a run already. Call it before the framework starts
    its agent span; returns the pending key's holder, which the caller clears when the invocation has
    started (a list: emptied, not reset, since a framework's stream may be read on in another context
    than the one that set it)."""
    holder: list[tuple[str, Callable[[Run], None] | None]] = [(key, then)]
    _resume_next.set(holder)
    return holder


def _resumed(then: Callable[[Run], None] | None, run: Run | None) -> None:
    if then is None or run is None:
        return
    try:
        then(run)
    except Exception as exc:  # a span processor must never raise into the code starting a span
        internal_error("recording what resumed a paused run", exc)


def register_stops(scope: str, classify: Callable[[Any], StopReason | None] | None) -> None:
    """How an integration reads a run's stop from its framework's agent span (None: forget it).

    ``classify(span)`` sees the span just before it ends (its status, attributes and events) and returns
    the stop reason, or None to leave it to the generic rules.
    """
    if classify is None:
        _classifiers.pop(scope, None)
    else:
        _classifiers[scope] = classify


# --- what the bridge makes of a framework's spans ------------------------------------------------------


class BridgedRun(Run):
    """A run whose span is a framework's ``invoke_agent`` span (the bridge starts and stops it)."""

    def __init__(self, agent: str, span: Span, conversation_id: str | None, model: str | None) -> None:
        super().__init__(agent, model=model, conversation_id=conversation_id)
        self.native = span
        self.framework = True
        self.stoppable = False  # until a hook of the framework's integration says otherwise
        self.error_type: str | None = None
        self.last_step: tuple[int, StopReason | None] = (0, None)  # (step_id, its failure) of the last end

    def _open_span(
        self, rt: runtime.Runtime, attributes: dict[str, Any], parent_ctx: Any, links: Any
    ) -> Span:
        _merge(self.native, attributes)
        for link in links or ():  # the paused run this one resumes (not the ambient span: the parent)
            if link.attributes and c.RUN_ID in link.attributes:
                self.native.add_link(link.context, link.attributes)
        return self.native

    def _end_span(
        self, span: Span, reason: StopReason, exc: BaseException | None, rt: runtime.Runtime
    ) -> None:
        # The framework ends its span (right after this, when the bridge stops the run) and has set its
        # status; a status it left unset is set from the stop.
        if _status(span) is StatusCode.UNSET:
            if reason.stop_class == "failure":
                span.set_status(trace.Status(StatusCode.ERROR, reason.value))
            elif reason.stop_class == "success":
                span.set_status(trace.Status(StatusCode.OK))

    def _error_type(self, exc: BaseException | None, reason: StopReason | None) -> str | None:
        if exc is not None:
            return super()._error_type(exc, reason)
        return None if reason is StopReason.COMPLETED else self.error_type

    def begin(self, parent: Run | None) -> None:
        """Start the run now that its span started (a sub-agent of ``parent``); nothing becomes current."""
        self._open(parent)

    def end(self, reason: StopReason, error_type: str | None) -> None:
        """Stop the run as its span ends (the span's own exception, if any, is ``error_type``)."""
        self.error_type = error_type
        self._finish(reason, None)


class BridgedToolCall(ToolCall):
    """A tool step whose span is a framework's ``execute_tool`` span, or will be (``deferred``: an
    integration's hook began it before the framework started the span)."""

    __slots__ = (
        "checked",
        "deferred",
        "ends_with_fn",
        "native",
        "refused",
        "span_ms",
        "start_time_ns",
        "unmatched",
    )

    def __init__(self, run: Run, options: ToolOptions, args: Any, call_id: str | None) -> None:
        super().__init__(run, options, args, sha(args), call_id, None)
        self.native: Any = None
        self.deferred = False
        self.checked = True
        self.ends_with_fn = False  # begun from its span alone: a claiming @tool function's outcome ends it
        self.unmatched = False  # begun before its arguments were known: a replay matches it later
        self.claimable = True  # an @agent_otel.tool function the framework calls is this call
        self.refused = False  # a policy refused it (ToolDenied): its framework span is not a step
        self.start_time_ns = time.time_ns()
        self.span_ms: float | None = None  # the span's own duration, when its library ends it at a time

    def start_span(self, rt: runtime.Runtime, parent: Any, start_time_ns: int | None) -> Span:
        if self.native is not None:
            _merge(self.native, self.start_attributes(rt))
            return self.native  # type: ignore[no-any-return]
        if self.deferred:
            _pending_tool.set(self)
            return trace.INVALID_SPAN
        return super().start_span(rt, parent, start_time_ns)

    def adopt(self, span: Any) -> None:
        """Make ``span``, the framework's span of this call, the step's span."""
        self.native = self.span = span
        rt = self.runtime
        if rt is not None:
            _merge(span, self.start_attributes(rt))

    def end(
        self,
        attributes: dict[str, Any],
        exc: BaseException | str | None = None,
        description: str | None = None,
        end_span: bool = True,
        checked: bool = False,
    ) -> tuple[float, Any]:
        span = self.native
        if span is None:
            if _pending_tool.get() is self:
                _pending_tool.set(None)
            if self.span is trace.INVALID_SPAN and self.runtime is not None:
                # No framework span came (the hook served or cancelled the call): one of our own.
                try:
                    self.span = super().start_span(self.runtime, None, self.start_time_ns)
                except Exception as err:
                    internal_error("starting a tool span", err)
            return super().end(attributes, exc, description, end_span, checked)
        duration_ms = self.span_ms
        if duration_ms is None:
            duration_ms = (time.perf_counter_ns() - self._start_ns) / 1e6
        try:
            if span.is_recording():
                _merge(span, attributes)
                if exc is not None and _status(span) is StatusCode.UNSET:
                    why = description or attributes.get(c.ERROR_TYPE)
                    span.set_status(trace.Status(StatusCode.ERROR, why))
        except Exception as err:
            internal_error("recording a framework tool span's outcome", err)
        return duration_ms, span.get_span_context()

    def args_found(self, args: Any) -> None:
        super().args_found(args)
        if not self.checked:  # the checks waited for the arguments: they come before the function runs
            self.checked = True
            policy_checks(self)
        self.match()

    def match(self) -> None:
        """Match the call against a replay's recording, if that waited for its arguments."""
        if self.unmatched:
            self.unmatched = False
            serve_late(self)

    def outcome(self, error_type: str | None) -> None:
        """Finish from the span alone: failed with ``error_type``, or ok with a result the span does not
        hold (a framework's content capture is off)."""
        if not self.claim_end():
            return
        try:
            if error_type is not None:  # a cancellation is not the tool failing (tools.ToolCall.fail)
                failure = BridgedError(error_type)
                if is_cancellation(error_type):
                    self._finish(c.STATUS_CANCELLED, error_type, None, None, failure)
                else:
                    self._finish(c.STATUS_ERROR, error_type, None, None, failure, failure)
            else:
                self._finish(c.STATUS_OK, "", None, None, None)
        except Exception as err:
            internal_error("recording a framework tool call", err)


class BridgedError(Exception):
    """A step failure read from a framework's span (its exception object is not at hand)."""

    def __init__(self, error_type: str) -> None:
        super().__init__(error_type)
        self.error_type = error_type


class BridgedLLMCall(LLMCall):
    """A model request whose span is a framework's request span."""

    __slots__ = ()

    def start_span(self, rt: runtime.Runtime, parent: Any, start_time_ns: int | None) -> Span:
        span = self.native
        span.set_attributes(self.adopt(span))
        return span  # type: ignore[no-any-return]


def _failure_reason(step: Step, exc: Any) -> StopReason | None:
    if exc is None:
        return None
    if step.kind == "llm":
        return StopReason.MODEL_ERROR
    name = exc.error_type if isinstance(exc, BridgedError) else type(exc).__name__
    return StopReason.TOOL_TIMEOUT if "Timeout" in str(name) else StopReason.TOOL_ERROR


class _Last(RunPolicy):
    """Remembers the last step of a bridged run that ended and its failure, which may name the stop."""

    __slots__ = ("run",)

    def __init__(self, run: BridgedRun) -> None:
        self.run = run

    def after_step(self, step: Step, result: Any, exc: BaseException | str | None) -> None:
        self.run.last_step = (step.step_id, _failure_reason(step, exc))


class _LastStep(Policy):
    order = 400

    def start_run(self, run: Run) -> RunPolicy | None:
        return _Last(run) if isinstance(run, BridgedRun) else None


runtime.register_policy("bridge", lambda config, pipeline: _LastStep())


# --- the span processor ---------------------------------------------------------------------------------


class Bridge:
    """The span processor that binds spans to runs and makes framework GenAI spans runs and steps.

    Added once per TracerProvider by ``setup()``, before the exporters' processors, so that what it sets
    at a span's start and end is exported. It never raises (a failure is reported once).
    """

    #: It is given the spans recorded only for runs in traces the application's sampler drops
    #: (agent_otel.sampling), which the application's processors are not.
    sees_recorded_for_runs = True

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if not native.enabled():
            return
        try:
            parent = context_binding(parent_context)
            # The scope is looked at once: agent-otel's own spans (most spans in a run) are never GenAI
            # spans of another library, nor foreign (see native.is_native_genai), nor a late agent (a
            # library's: native.late_agent), so they are only bound, under a bound span.
            scope = getattr(span, "instrumentation_scope", None)
            if scope is None or scope.name == native.SCOPE:
                if parent is not None:  # bind_span(), inline: a started span is never INVALID_SPAN
                    binding = SpanBinding(parent.run, parent.step, hooked=parent.hooked)
                    try:  # noqa: SIM105
                        setattr(span, SPAN_BINDING, binding)
                    except (AttributeError, TypeError):  # a non-SDK span with slots
                        pass
                return
            op = native.operation(span)
            if op is not None:
                _genai(span, op, parent, trace.get_current_span(parent_context), parent_context)
            elif parent is not None:
                binding = SpanBinding(parent.run, parent.step, hooked=parent.hooked)
                bind_span(span, binding)
                # A library may say only later that the span is a GenAI request (Mistral's SDK starts it
                # named after the API operation and labels it from the request): checked at its end.
                # Under a request step's span it can only be that request again (LiteLLM's own
                # `litellm_request` span under the litellm integration's): joined to it, not counted.
                enclosing = _request_step_id(parent, trace.get_current_span(parent_context))
                _watch(span, binding, _UNLABELLED if enclosing is None else _InRequest(enclosing))
            elif native.late_agent(span) and active_run() is None:
                # An agent invocation, outside any run, that its library labels only later (Mistral's
                # conversation turn, or the loop of mistralai.extra.run): a run, as it would be labelled.
                _start_run(span, None, _UNLABELLED)
        except Exception as exc:  # a span processor must never raise into the code starting a span
            internal_error("recognising a GenAI span", exc)

    #: An LLM span of agent-otel's may wait for the span ending to end (agent_otel.llm): the function itself,
    #: called by the processor list with the span (one call per span, not two).
    _on_ending = staticmethod(usage_above_ends)

    def on_end(self, span: Any) -> None:
        pass

    on_end._agent_otel_does_nothing = True  # type: ignore[attr-defined]  # skipped by agent_otel.sampling

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


#: The operations whose span, outside any run, is a run: an agent's invocation, and an invocation of
#: several agents (a workflow, a Strands swarm or graph).
_INVOCATIONS = frozenset({c.OP_INVOKE_AGENT, c.OP_INVOKE_WORKFLOW, *native.MULTI_AGENT_OPERATIONS})


def _genai(span: Any, op: str, parent: SpanBinding | None, parent_span: Any, parent_context: Any) -> None:
    """A GenAI span of another library starts: a run, a step, or a span of a run or step it belongs to."""
    run = parent.run if parent is not None else active_run()
    if run is not None and run.ledger.runtime is None:
        run = None
    tool = active_tool_call(parent_context) if run is not None else None
    # The invocation an integration saw answer a pause (resume_next) takes its key, whether it is a run or
    # joins one: an agent it invokes later is not the resume.
    pending = _resume_next.get() if op in _INVOCATIONS else None
    resume_key, then = pending.pop() if pending else (None, None)
    if op in _INVOCATIONS and (run is None or (tool is not None and tool.run is run)):
        # A run, or a sub-agent of the run whose tool runs it. A workflow's invocation is the run, and
        # the agents it invokes join it: an agent that transfers to another (ADK's transfer_to_agent)
        # ends its span before the next starts, and one call of the caller is one run.
        _resumed(then, _start_run(span, run, op=op, resume_key=resume_key))
        return
    if run is None:
        return
    _resumed(then, run)
    if (
        parent is not None
        and parent.owner is _UNLABELLED
        and not isinstance(parent.step, LLMCall)
        and _remote_agent(parent_span)
    ):
        # A remote agent's invocation whose outputs come as spans of their own (Mistral's conversation
        # turn): the invocation is the request step, begun now so that its outputs belong to it.
        _late_request(parent_span, run, parent)
    attributes = span.attributes or {}
    extra = native.run_attributes(run, attributes)
    hooked = (parent is not None and parent.hooked) or _hooked(span)
    binding = SpanBinding(run, parent.step if parent is not None else None, hooked=hooked)
    if op == c.OP_INVOKE_AGENT and not _remote_agent(span):
        _watch(span, binding, _JOINED)  # an agent's span in a run: its totals and its pause, at its end
    elif op in native.REQUEST_OPERATIONS:
        pending = native.pending.get()
        enclosing = _request_step_id(parent, parent_span)
        if pending is not None and pending.run is run and pending.adoptable():
            extra.update(pending.adopt(span))  # a client integration's request, deferred for this span
            binding.step = pending
        elif enclosing is not None:
            extra[c.STEP_ID] = enclosing  # the same request, one level down (a client under a framework)
            step = parent.step if parent is not None else None
            if _scope(parent_span) == native.SCOPE:  # right under agent-otel's own request span
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(parent_span, USAGE_BELOW, span)  # its usage is said once (llm._usage_below)
            if isinstance(step, BridgedLLMCall) and step.model == "unknown":  # an agent's: its model's
                step.model = str(
                    attributes.get(c.GEN_AI_REQUEST_MODEL) or native.named(span, op) or "unknown"
                )
                if run.model is None and step.model != "unknown":
                    run.model = step.model
        else:
            _watch(span, binding)
            # AG2's hook runs inside its request span (agent-otel's middleware is the innermost): the
            # checks run as the span starts, and the hook raises the stop they decide before the request.
            checks = not hooked or _scope(span) == AG2_SCOPE
            binding.step = _begin_llm(run, span, attributes, checks=checks)
    elif op == c.OP_EXECUTE_TOOL:
        pending_tool = _pending_tool.get()
        if (
            pending_tool is not None
            and pending_tool.refused
            and pending_tool.run is run
            and (attributes.get(c.GEN_AI_TOOL_NAME) or native.named(span, op)) == pending_tool.name
        ):
            _pending_tool.set(None)  # the framework's span of the call the hook refused: no step, no checks
        elif (
            pending_tool is not None
            and pending_tool.run is run
            and pending_tool.native is None
            and not pending_tool.done
            and (attributes.get(c.GEN_AI_TOOL_NAME) or native.named(span, op)) == pending_tool.name
        ):
            _pending_tool.set(None)  # a hook began this call just before the framework started its span
            pending_tool.adopt(span)
            binding.step = pending_tool
            _watch(span, binding)
        elif tool is not None and tool.run is run:
            extra[c.STEP_ID] = tool.step_id  # a library's span of a tool step in flight (MCP under a tool)
            binding.step = tool
        else:
            _watch(span, binding)
            if hooked:  # the integration's hook begins the step (begin_tool), else the span's end
                binding.wait()
            else:
                binding.step = _begin_tool(run, span, attributes)
    span.set_attributes(extra)
    bind_span(span, binding)


def _request_step_id(parent: SpanBinding | None, parent_span: Any) -> int | None:
    """The step id of the request step the parent span records, if it records one."""
    if parent is not None and isinstance(parent.step, LLMCall):
        return parent.step.step_id
    attributes = getattr(parent_span, "attributes", None) or {}
    if attributes.get(c.GEN_AI_OPERATION_NAME) in native.REQUEST_OPERATIONS:
        value = attributes.get(c.STEP_ID)
        return value if isinstance(value, int) else None
    return None


#: Instrumentation scopes of frameworks whose integration hooks into every invocation.
_hooked_scopes: set[str] = set()


def register_hooks(scope: str, on: bool = True) -> None:
    """An integration hooks into every invocation of the framework whose tracer is ``scope`` (PydanticAI's
    capability): its runs are stoppable, its tool steps are begun by the integration's hook and its model
    calls checked there, not when their spans start. An integration that hooks into some invocations only
    (objects created before ``setup()`` have no hooks) calls :func:`hook_in` from each instead."""
    if on:
        _hooked_scopes.add(scope)
    else:
        _hooked_scopes.discard(scope)


def _hooked(span: Any) -> bool:
    scope = getattr(span, "instrumentation_scope", None)
    return scope is not None and scope.name in _hooked_scopes


def _merge(span: Any, attributes: dict[str, Any]) -> None:
    """Add agent-otel's attributes to a framework's span: ``agent.*`` always, ``gen_ai.*`` only where the
    framework has not set its own value."""
    existing = span.attributes or {}
    span.set_attributes(
        {
            k: v
            for k, v in attributes.items()
            if v is not None and (k.startswith("agent.") or k not in existing)
        }
    )


def _status(span: Any) -> StatusCode:
    status = getattr(span, "status", None)
    return getattr(status, "status_code", StatusCode.UNSET)


# --- starting runs and steps --------------------------------------------------------------------------------


def _start_run(
    span: Any,
    parent: Run | None,
    owner: _Watched | None = None,
    op: str = c.OP_INVOKE_AGENT,
    resume_key: str | None = None,
) -> BridgedRun:
    attributes = span.attributes or {}
    name = (
        attributes.get(c.GEN_AI_AGENT_NAME)
        or native.named(span, op)
        or ("agent" if op == c.OP_INVOKE_AGENT else op.removeprefix("invoke_"))  # "swarm", "workflow"
    )
    conversation = attributes.get(c.GEN_AI_CONVERSATION_ID)
    model = attributes.get(c.GEN_AI_REQUEST_MODEL)
    run = BridgedRun(
        str(name),
        span,
        str(conversation) if conversation else None,
        model if isinstance(model, str) and model else None,
    )
    run.stoppable = _hooked(span)
    run.resume_key = resume_key
    binding = SpanBinding(run, None, hooked=run.stoppable)
    bind_span(span, binding)  # before the run starts: spans its policies start belong to it
    run.begin(parent)
    track_bound_run(run, True)
    _watch(span, binding, owner or _WATCHED)
    bind_span(span, binding)
    return run


def _begin_llm(run: Run, span: Any, attributes: Any, checks: bool) -> BridgedLLMCall | None:
    op = native.operation(span)
    model = attributes.get(c.GEN_AI_REQUEST_MODEL) or (
        native.named(span, op) if op in native.REQUEST_OPERATIONS else None  # not an agent's name
    )
    call = BridgedLLMCall(run, str(model or "unknown"), None)
    call.bridged = True
    call.native = call.span = span
    provider = attributes.get(c.GEN_AI_PROVIDER_NAME)
    call.provider = provider if isinstance(provider, str) else None
    if run.model is None and call.model != "unknown":
        run.model = call.model
    try:
        begun = _step_begin(call, checks=checks)
    except Exception as exc:  # a guard's AgentStopped cannot reach the framework from a span's start
        if not _is_stop(exc):
            internal_error("checking a framework model call", exc)
        return None
    if begun is not None:
        if _scope(span) in _ENDS_OWN_SPANS:
            # The framework ends this span itself, a dropped stream's too (the Agent Framework's weakref
            # finalizer), maybe after the run's span: ending it here as well ended it twice (the SDK's
            # "Calling end() on an ended span"). The step ends with the run; the span when its owner says.
            begun.end_with_run(lambda: begun.done or not span.is_recording() or _end_llm(span, begun))
        else:
            # A framework that never ends its request span (Strands' stream closed by its consumer
            # mid-request): the span ends, and the step with it, when the run stops (before the run's span).
            begun.end_with_run(lambda: begun.done or not span.is_recording() or span.end())
    return begun  # type: ignore[no-any-return]


def _begin_tool(run: Run, span: Any, attributes: Any, checks: bool | None = None) -> BridgedToolCall | None:
    name = attributes.get(c.GEN_AI_TOOL_NAME) or native.named(span, c.OP_EXECUTE_TOOL) or "tool"
    args, known = _span_json(attributes, c.GEN_AI_TOOL_CALL_ARGUMENTS)
    call_id = attributes.get(c.GEN_AI_TOOL_CALL_ID)
    call = BridgedToolCall(run, _options(str(name), attributes), args, str(call_id) if call_id else None)
    call.native = call.span = span
    call.ends_with_fn = True
    if not known:
        call.args_sha = None  # not on the span (yet): no hash rather than the hash of nothing
        # A replay matches the call when its arguments come: from the @agent_otel.tool function that
        # claims it, else from the span's end.
        call.unmatched = True
    # The checks (which only observe here) need the arguments: without them at the start, at the end.
    call.checked = known or checks is not None
    try:
        return _step_begin(call, checks=known if checks is None else checks, serve=known)  # type: ignore[no-any-return]
    except Exception as exc:
        if not _is_stop(exc):
            internal_error("checking a framework tool call", exc)
        return None


def _step_begin(call: Step, checks: bool, serve: bool = True) -> Any:
    from agent_otel.steps import begin

    return begin(call, checks=checks, attach=False, serve=serve)


def _is_stop(exc: BaseException) -> bool:
    from agent_otel.stop import AgentStopped

    return isinstance(exc, AgentStopped)


def _options(name: str, attributes: Any) -> ToolOptions:
    description = attributes.get(c.GEN_AI_TOOL_DESCRIPTION)
    return ToolOptions(name=name, description=description if isinstance(description, str) else None)


def _span_json(attributes: Any, key: str) -> tuple[Any, bool]:
    """A JSON attribute of the span (arguments, a result) as what it encodes; (None, False) if absent."""
    raw = attributes.get(key)
    if raw is None:
        return None, False
    if isinstance(raw, str):
        try:
            return json.loads(raw), True
        except ValueError:
            return raw, True
    return raw, True


# --- the end of a framework span --------------------------------------------------------------------------


class _Watched:
    """Marks a binding whose span's end the bridge records (its ``end`` is wrapped)."""

    __slots__ = ()


_WATCHED = _Watched()
#: ... a library's span that was not a GenAI span when it started (it may say so by its end).
_UNLABELLED = _Watched()


class _InRequest(_Watched):
    """... such a span under the span of request step ``step_id``: if it says it is a request, it is that
    request recorded once more (a provider library's span under a client integration's), not a step."""

    __slots__ = ("step_id",)

    def __init__(self, step_id: int) -> None:
        self.step_id = step_id


#: ... an agent's span that joined a run (a user's, or a workflow's of which the agent is one).
_JOINED = _Watched()


def _watch(span: Any, binding: SpanBinding, owner: _Watched = _WATCHED) -> None:
    """Record the span's step or run just before the framework ends the span (while it is writable)."""
    if isinstance(binding.owner, _Watched):
        return
    binding.owner = owner
    original = span.end

    def end(end_time: int | None = None) -> None:
        try:
            if span.is_recording():
                _ending(span, binding, end_time)
        except Exception as exc:
            internal_error("recording the end of a framework span", exc)
        original(end_time)

    try:
        span.end = end
    except (AttributeError, TypeError):  # a span class with slots: its start is all the bridge records
        binding.owner = None


def _ending(span: Any, binding: SpanBinding, end_time: int | None = None) -> None:
    run = binding.run
    step = binding.step
    if isinstance(run, BridgedRun) and run.native is span:
        if binding.owner is _UNLABELLED and run.ledger.runtime is not None and _remote_agent(span):
            # A remote agent's invocation that is a run: its usage is the run's one request's.
            if not isinstance(step, BridgedLLMCall):
                step = _late_request(span, run, binding)
            if step is not None and not step.done:
                _timed(step, span, end_time)
                _end_llm(span, step)
        _end_run(span, run, keep_usage=isinstance(step, BridgedLLMCall))
    elif binding.owner is _JOINED:
        _end_joined(span, run)
    elif isinstance(step, BridgedLLMCall) and step.native is span:  # (not a span of another library in it)
        if not step.done:
            _timed(step, span, end_time)
            _end_llm(span, step)
    elif isinstance(step, BridgedToolCall) and step.native is span:
        if step.call_id and (span.attributes or {}).get(c.GEN_AI_TOOL_CALL_ID) != step.call_id:
            # The id the framework's hook gave the step: ADK, whose tool raised (a guard's stop, too), sets
            # "<not specified>" there, knowing the id only from the tool's response.
            span.set_attribute(c.GEN_AI_TOOL_CALL_ID, step.call_id)
        if not step.done:
            _timed(step, span, end_time)
            _end_tool(span, step)
    elif step is None and binding.slot and run.ledger.runtime is not None:
        # A hooked framework's tool span whose hook never came: the step, after the fact (unchecked).
        late = _begin_tool(run, span, span.attributes or {}, checks=False)
        if late is not None:
            binding.step = late
            _end_tool(span, late)
    elif binding.owner is _UNLABELLED and run.ledger.runtime is not None and not isinstance(step, LLMCall):
        _labelled_late(span, run, binding, end_time)
    elif isinstance(binding.owner, _InRequest) and native.operation(span) in native.REQUEST_OPERATIONS:
        extra = native.run_attributes(run, span.attributes or {})
        extra[c.STEP_ID] = binding.owner.step_id
        span.set_attributes(extra)


def _labelled_late(span: Any, run: Run, binding: SpanBinding, end_time: int | None = None) -> None:
    """A library's span that became a GenAI request or tool call after it started: its step, after the
    fact (its checks observe only: the call has been made). A request inside a step's own request span
    is that request (see _genai), so only spans outside an LLM step get here."""
    attributes = span.attributes or {}
    op = native.operation(span)
    request = op in native.REQUEST_OPERATIONS or _remote_agent(span)
    if c.STEP_ID in attributes or (not request and op != c.OP_EXECUTE_TOOL):
        return
    if request:
        llm = _late_request(span, run, binding)
        if llm is not None:
            _timed(llm, span, end_time)
            _end_llm(span, llm)
            if _error_type(span) is not None:
                # The library raises its error after its span ended, with nothing that ties the two: an
                # error leaving the run before its next step is this request's (model_error).
                run.ledger.last_failed = (run.steps, StopReason.MODEL_ERROR)
    else:
        span.set_attributes(native.run_attributes(run, attributes))
        tool = _begin_tool(run, span, attributes, checks=False)
        if tool is not None:
            tool.back_date(_age_ms(span))
            _timed(tool, span, end_time)
            binding.step = tool
            _end_tool(span, tool)


def _remote_agent(span: Any) -> bool:
    """An agent invocation over a remote service (the conventions' ``invoke_agent`` CLIENT span, with the
    service's ``server.address``): its model requests are made in the service, so no request span of
    them comes, only the usage the service reports for the whole invocation (Mistral's Agents and
    Conversations APIs). Inside a run that is one request, the invocation's step."""
    attributes = span.attributes or {}
    return native.operation(span) == c.OP_INVOKE_AGENT and c.SERVER_ADDRESS in attributes


def _late_request(span: Any, run: Run, binding: SpanBinding) -> BridgedLLMCall | None:
    """Begin the request step of a span labelled a request (or a remote agent's invocation) after it
    started, back-dated to its start; it ends with the span."""
    attributes = span.attributes or {}
    span.set_attributes(native.run_attributes(run, attributes))
    llm = _begin_llm(run, span, attributes, checks=False)
    if llm is not None:
        llm.back_date(_age_ms(span))  # the request took the span's time, not the moment it was recognised
        binding.step = llm
    return llm


def _age_ms(span: Any, end_time: int | None = None) -> float:
    """How long the span has been open (until ``end_time``, when its library gives the end)."""
    started = getattr(span, "start_time", None)
    ended = time.time_ns() if end_time is None else end_time
    return max((ended - started) / 1e6, 0.0) if isinstance(started, int) else 0.0


def _timed(step: Step, span: Any, end_time: int | None) -> None:
    """A library that ends its span at a time of its own (Mistral's server-side tool executions, with the
    times the API reports) gives the step that duration, not the moment the span was ended."""
    if end_time is not None:
        duration_ms = _age_ms(span, end_time)
        step.back_date(duration_ms)
        if isinstance(step, BridgedToolCall):
            step.span_ms = duration_ms  # exactly the span's: the event and the span agree


def _end_llm(span: Any, call: BridgedLLMCall) -> None:
    attributes = span.attributes or {}
    model = attributes.get(c.GEN_AI_REQUEST_MODEL)
    if isinstance(model, str) and model and call.model == "unknown":
        call.model = model
        if call.run.model is None:
            call.run.model = model
    provider = attributes.get(c.GEN_AI_PROVIDER_NAME) or attributes.get("gen_ai.system")
    if not call.provider:
        call.provider = provider if isinstance(provider, str) else guess_provider(call.model)
    if call.provider and call.run.provider is None:
        call.run.provider = call.provider
    response_model = attributes.get(c.GEN_AI_RESPONSE_MODEL)
    reasons = strings(attributes.get(c.GEN_AI_RESPONSE_FINISH_REASONS))
    usage = {
        "input_tokens": _int(attributes.get(c.GEN_AI_USAGE_INPUT_TOKENS)),
        "output_tokens": _int(attributes.get(c.GEN_AI_USAGE_OUTPUT_TOKENS)),
        "cached_input_tokens": _int(attributes.get(c.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)),
        "cache_write_tokens": _int(attributes.get(c.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)),
    }
    if _scope(span) == AG2_SCOPE:
        # AG2 names the cache counts without the convention's dot; its OpenAI client's input tokens
        # include them, as the convention's do.
        usage["cached_input_tokens"] = usage["cached_input_tokens"] or _int(
            attributes.get("gen_ai.usage.cache_read_input_tokens")
        )
        usage["cache_write_tokens"] = usage["cache_write_tokens"] or _int(
            attributes.get("gen_ai.usage.cache_creation_input_tokens")
        )
    del reasons  # on the framework's span already
    if c.GEN_AI_USAGE_INPUT_TOKENS not in attributes and c.GEN_AI_USAGE_OUTPUT_TOKENS not in attributes:
        usage["input_tokens"] = usage["output_tokens"] = None  # no usage on the span: unknown, not 0
    error = _error_type(span)
    if error is not None:
        call.fail(error, **usage)
    else:
        call.finish(response_model=response_model if isinstance(response_model, str) else None, **usage)


def _end_tool(span: Any, call: BridgedToolCall) -> None:
    attributes = span.attributes or {}
    args, known = _span_json(attributes, c.GEN_AI_TOOL_CALL_ARGUMENTS)
    if known and call.args is None:
        call.args, call.args_sha = args, sha(args)
        if call.runtime is None or call.runtime.store_args_hash:
            span.set_attribute(c.TOOL_ARGS_SHA, call.args_sha)
    if not call.checked:  # the checks waited for the arguments, if the span has any (they observe here)
        call.checked = True
        try:
            policy_checks(call)
        except Exception as exc:
            if not _is_stop(exc):
                internal_error("checking a framework tool call", exc)
    if call.unmatched and call.args_sha is None:
        call.unmatched = False
        not_compared(
            call,
            "its arguments are not on the framework's span (nor were they recorded); the framework ran it",
        )
    with contextlib.suppress(AgentStopped, Refusal):
        call.match()  # the replay's report: the framework ran the call (the run observes here)
    if call.replay is not None and not call.done:  # matched, but no @agent_otel.tool function served it
        unserved(call, "the framework ran it: agent-otel sees its tools only through their spans")
    error = _error_type(span)
    result, has_result = _span_json(attributes, c.GEN_AI_TOOL_CALL_RESULT)
    if error is None and has_result:
        call.ok(result)
    else:
        call.outcome(error)


def _error_type(span: Any) -> str | None:
    """The failure a framework span reports: ERROR status, with ``error.type`` or its exception's class."""
    attributes = span.attributes or {}
    exception = None
    for event in getattr(span, "events", ()) or ():
        if event.name == "exception":
            exception = (event.attributes or {}).get("exception.type")
    if _status(span) is not StatusCode.ERROR and exception is None:
        return None
    error = attributes.get(c.ERROR_TYPE) or exception
    return str(error).rsplit(".", 1)[-1] if error else "error"


def _end_run(span: Any, run: BridgedRun, keep_usage: bool = False) -> None:
    track_bound_run(run, False)
    if run.result is not None:  # stopped already (a guard, in a hook): its stop is on the span
        return
    attributes = span.attributes or {}
    conversation = attributes.get(c.GEN_AI_CONVERSATION_ID)
    if conversation and run.conversation_id is None:
        run.conversation_id = str(conversation)
    model = attributes.get(c.GEN_AI_REQUEST_MODEL)
    if isinstance(model, str) and model and run.model is None:
        run.model = model
    # The framework's own run totals in gen_ai.usage.* would count every request twice in a backend that
    # sums usage over spans; the run's totals are agent.usage.* (set by the stop).
    if not keep_usage:  # (kept when they are the usage of the request step whose span the run's is)
        _drop_attributes(span, _USAGE_KEYS)
    reason = _classify(span, run)
    run.end(reason, _error_type(span) if reason.stop_class == "failure" else None)


def _end_joined(span: Any, run: Run) -> None:
    """An agent's span inside a run ends: its own run totals in ``gen_ai.usage.*`` go (the run's are on
    the run's span), and an agent that paused for human input (its framework's reading) pauses the run."""
    _drop_attributes(span, _USAGE_KEYS)
    classify = _classifiers.get(_scope(span) or "")
    if classify is not None and run.paused is None and classify(span) is StopReason.INTERRUPTED:
        run.paused = {"interrupts": 0}


def _scope(span: Any) -> str | None:
    return getattr(getattr(span, "instrumentation_scope", None), "name", None)


def _classify(span: Any, run: BridgedRun) -> StopReason:
    classify = _classifiers.get(_scope(span) or "")
    if classify is not None:
        try:
            reason = classify(span)
        except Exception as exc:
            internal_error("reading a framework's stop", exc)
            reason = None
        if reason is not None:
            return reason
    error = _error_type(span)
    if error is None:
        return StopReason.INTERRUPTED if run.paused is not None else StopReason.COMPLETED
    for failure, noted in reversed(run.ledger.failures):  # an integration noted what its exception means
        if type(failure).__name__ == error:
            return noted
    known = EXCEPTION_STOPS.get(error)
    if known is not None:
        return known
    step_id, failure = run.last_step
    if failure is not None and step_id == run.steps:  # the run failed right after this step failed
        return failure
    return StopReason.ERROR


def _drop_attributes(span: Any, keys: tuple[str, ...]) -> None:
    """Remove attributes from a span that has not ended (the SDK's span keeps them in a mutable mapping
    until then; the API has no way to remove one)."""
    mapping = getattr(span, "_attributes", None)
    if mapping is None:
        return
    for key in keys:
        try:
            if key in mapping:
                del mapping[key]
        except Exception:  # another SDK: the attribute stays
            return


def _int(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


# --- what an integration with hooks into a framework uses -----------------------------------------------


def hook_in() -> Run | None:
    """A framework invocation the caller's hooks follow: call it from a hook the framework runs inside its
    agent span, before the invocation's first model call (Strands' ``BeforeInvocationEvent``, ADK's
    ``before_agent_callback``). From then on that invocation's tool steps are begun by the hooks
    (:func:`begin_tool`), its model calls checked there (:func:`check_llm`), and a run the bridge made of it
    is stoppable. Returns the run (None outside any)."""
    binding = span_binding(trace.get_current_span())
    if binding is None:
        return active_run()
    binding.hooked = True
    if isinstance(binding.run, BridgedRun):
        binding.run.stoppable = True
    return binding.run  # type: ignore[no-any-return]


def begin_tool(
    run: Run,
    name: str,
    args: Any,
    call_id: str | None = None,
    *,
    description: str | None = None,
    tool_type: str = "function",
) -> ToolCall | None:
    """Begin a tool step in a framework's hook that runs before the tool (guards may raise AgentStopped).

    The step's span is the framework's ``execute_tool`` span: the one that is current (a hook that runs
    inside it, Google ADK) or the next one started in this context (a hook that runs before it, Strands);
    without one, its own span. ``call.replay`` set: serve the recorded outcome, do not run the tool.
    Returns None when telemetry failed (run the tool as it is).
    """
    options = ToolOptions(name=name or "tool", description=description, type=tool_type)
    call = BridgedToolCall(run, options, args, call_id)
    current = trace.get_current_span()
    binding = span_binding(current)
    if binding is not None and binding.run is run and binding.slot and binding.step is None:
        call.native = call.span = current
        binding.fill(run, call)  # the hook came: whatever the guards say, no step after the fact
    else:
        call.deferred = True
    from agent_otel.steps import begin

    begun = None
    try:
        begun = begin(call, attach=False)
        return begun  # type: ignore[return-value]
    except ToolDenied:
        # on_deny: raise: an integration may hand the refusal to the framework's own error path, which
        # may start its span of the call next: that span is the refused call's, not one to check again
        # (a second trigger for one call, and a warning about a failed check).
        call.refused = True
        raise
    finally:
        if begun is None:  # stopped by a guard, refused, or telemetry failed: no step to record
            call.claim_end()
            if call.deferred:
                _pending_tool.set(call if call.refused else None)


def check_llm(run: Run, model: str | None = None) -> None:
    """The checks of a model call a framework is about to make (a hook before it): may raise AgentStopped."""
    if run.ledger.pending is not None or run.result is not None:
        check_pending(run)
    policy_checks(LLMCall(run, model or "unknown", None))


__all__ = [
    "EXCEPTION_STOPS",
    "Bridge",
    "BridgedError",
    "BridgedLLMCall",
    "BridgedRun",
    "BridgedToolCall",
    "begin_tool",
    "check_llm",
    "hook_in",
    "register_hooks",
    "register_stops",
]
