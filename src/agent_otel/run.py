"""A run: one agent invocation, its root span, its counters, and its single stop.

The run is found through a ContextVar (:func:`current_run`), so sync code, asyncio tasks, threads
started with a copied context and nested sub-agents each see their own run; a thread started without the
context sees none. Everything the run records about itself happens at start and at stop; its steps live
in the step engine (:mod:`agent_otel.steps`, with the two kinds :mod:`agent_otel.tools` and
:mod:`agent_otel.llm`), which keeps its per-run state in ``run.ledger``. :func:`enter_run` and
:func:`exit_run` are how integrations find or start the run of a framework invocation.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import random
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from contextvars import Token
from typing import Any, ParamSpec, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode

from agent_otel import conventions as c
from agent_otel import runtime, span_attributes
from agent_otel.events import new_event
from agent_otel.hashing import canonical_json, sha_bytes
from agent_otel.llm import record
from agent_otel.redaction import record_exception, redacted_message
from agent_otel.steps import (
    Ledger,
    SpanBinding,
    active_run,
    attach_span,
    bind_run,
    bind_span,
    current_run,
    internal_error,
    is_cancellation,
    is_cancelled,
    keep_essential,
    note_failure,
    release_run_span,
    unbind_run,
)
from agent_otel.stop import (
    HARD_TIME_LIMIT_DETAIL,
    STOP_CLASS,
    AgentStopped,
    Flow,
    StopReason,
    StopResult,
    control_flow,
    is_hard_time_limit,
    is_time_limit,
)
from agent_otel.tool_context import context_parameters
from agent_otel.tools import (
    active_tool_call,
    call_async,
    call_sync,
    is_async_callable,
    stream_async,
    stream_sync,
    tool_options,
)

logger = logging.getLogger("agent_otel")

P = ParamSpec("P")
R = TypeVar("R")

#: The default of ``input=``: no input given (None is an input).
MISSING: Any = object()

# The last paused (interrupted) run of each conversation in this process: the next run of the conversation
# is its resume and links to it. Bounded: a conversation paused and never resumed is forgotten eventually.
_paused: OrderedDict[str, tuple[SpanContext, str]] = OrderedDict()
_paused_lock = threading.Lock()
#: The runs started and not yet stopped, for :func:`end_open_runs` (weak: a run its process abandons, in a
#: daemon thread or a generator never finished, is not kept alive by this).
_open_runs: weakref.WeakSet[Run] = weakref.WeakSet()
_MAX_PAUSED = 4096
#: A successful run's span status (one object: the SDK keeps a span's Status as given, never changes it).
_STATUS_OK = Status(StatusCode.OK)


def _hex_ids(span: Span) -> tuple[str | None, str | None]:
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


class Run:
    """One agent run; use as ``with agent_otel.run(...) as run`` or ``async with``.

    Leaving the block stops the run exactly once: ``completed`` on normal exit (``interrupted`` if the
    agent paused for human input and did not resume in the block), the reason carried by an
    :class:`AgentStopped`, ``cancelled`` on cancellation or KeyboardInterrupt, ``tool_error`` /
    ``tool_timeout`` / ``model_error`` when the exception came out of a tool or LLM call of this run, and
    ``error`` otherwise. Exceptions always continue to the caller unchanged.
    """

    # What every run starts with, as class attributes: a run sets only what differs (about 30 attribute
    # stores fewer at every run start). Each is set on the instance when it changes; none is mutable.
    #: Where there is no conversation id of its own: a framework's key for what this run pauses on and
    #: its resume names (the Agents SDK's approval call ids, carried by the RunState it resumes from), so
    #: the resume links to the paused run (agent.resume_of) as a conversation's does. Looked up before
    #: the conversation (a sub-agent shares its caller's). Never exported.
    resume_key: str | None = None
    #: The input's canonical JSON, what ``input_sha`` hashes (the snapshot recorder stores these bytes).
    input_json: bytes | None = None
    input_sha: str | None = None
    provider: str | None = None  # gen_ai.provider.name, once an LLM request says it
    # Set by an integration when the agent paused for a human (LangGraph interrupt()): leaving the
    # run then means "interrupted", not "completed". A resume in the same run clears it.
    paused: dict[str, Any] | None = None
    # True for runs an integration started around a framework (not the user's agent_otel.run):
    # guards the user did not configure only observe in them (agent_otel.guards).
    framework = False
    # False for a run the GenAI span bridge follows only through a framework's spans, with no hook
    # before a step where a guard could stop it: guards observe there (agent_otel.guards).
    stoppable = True
    is_replay = False  # set by a replay policy: not traffic, so no agent_* series
    parent: Run | None = None
    parent_run_id: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    span: Span = trace.INVALID_SPAN
    result: StopResult | None = None
    steps = 0
    tool_calls = 0
    llm_calls = 0
    retries = 0
    input_tokens = 0
    output_tokens = 0
    cost_usd = 0.0
    #: (input tokens, output tokens, spend) as the run's stop recorded them: what an LLM request that
    #: ends after the stop adds is recorded apart, as late usage (llm._complete, "run_usage" records).
    final_usage: tuple[int, int, float] | None = None
    created_at_ms = 0
    _deadline_ms: int | None = None
    _start_ns = 0
    _start_wall_ns = 0
    _duration_ms = 0.0
    _ended = False
    _rt: runtime.Runtime | None = None
    _tokens: tuple[Token[Context], Token[Run | None]] | None = None
    _ended_ambient: SpanContext | None = None  # the span of a run ended elsewhere, see _start

    def __init__(
        self,
        agent: str,
        *,
        model: str | None = None,
        prompt_version: str | None = None,
        tools_version: str | None = None,
        input: Any = MISSING,
        budget: Any = None,
        run_id: str | None = None,
        replay_of: str | None = None,
        conversation_id: str | None = None,
    ) -> None:
        if not isinstance(agent, str) or not agent:
            raise ValueError("agent_otel.run() needs a non-empty agent name")
        self.agent = c.nfc(agent)  # one agent however its name's accents are encoded
        self.run_id = run_id or new_run_id()
        self.model = model
        self.prompt_version = None if prompt_version is None else str(prompt_version)
        self.tools_version = None if tools_version is None else str(tools_version)
        if input is MISSING:
            self.input = None
        else:
            self.input = input
            self.input_json = canonical_json(input)
            self.input_sha = sha_bytes(self.input_json)
        self.budget = budget
        self.replay_of = replay_of
        self.conversation_id = None if conversation_id is None else str(conversation_id)
        self._lock = threading.Lock()
        #: The step engine's state of this run: its policies, failures and a pending stop (steps.Ledger).
        self.ledger = Ledger()

    # --- lifecycle ------------------------------------------------------------------------------------

    def __enter__(self) -> Run:
        self._start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        self._exit(exc)

    async def __aenter__(self) -> Run:
        self._start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        self._exit(exc)

    def _start(self) -> None:
        parent = current_run()
        # A run whose block was left in another context (a framework's completion callback on another
        # thread) is still current here, where it was entered: it is no parent of this run, nor is its
        # span the ambient span or this run's parent span (it was parent, trace and budget of the next
        # run). Its own parent, if still going, is.
        while parent is not None and parent.ledger.left:
            self._ended_ambient = self._ended_ambient or parent.span.get_span_context()
            parent = parent.parent
        self._open(parent)
        self._attach()

    def _attach(self) -> None:
        """Make the run (and its span) current in the calling context."""
        span = self.span
        if span is trace.INVALID_SPAN:
            token = otel_context.attach(otel_context.get_current())
        else:
            token = attach_span(span)
        self._tokens = (token, bind_run(self))

    def _detach(self) -> None:
        """Leave the calling context as it was before :meth:`_attach` (the run goes on)."""
        tokens, self._tokens = self._tokens, None
        # Left in another context than it was entered (an async fixture's setup and teardown, a run
        # handed to a callback), the span's context was never attached here: OpenTelemetry's detach
        # would log "Failed to detach context" with a traceback on the application's stderr.
        if tokens is not None and unbind_run(tokens[1]):
            otel_context.detach(tokens[0])

    def _open(self, parent: Run | None) -> None:
        """Start the run as a run of its own (a sub-agent of ``parent``): its span, policies and first
        store record; making it the current run is :meth:`_start`'s part."""
        if self._rt is not None:
            raise RuntimeError(f"run {self.run_id} was already started; create a new run() per invocation")
        rt = self._rt = runtime.current()
        self.parent = parent
        if self.parent is not None:
            self.parent_run_id = self.parent.run_id
            if self.conversation_id is None:
                self.conversation_id = self.parent.conversation_id  # a sub-agent: the same conversation
        # The resume key first: a sub-agent's conversation is its caller's, whose own pause and resume use it.
        resumes = _take_pause(self.resume_key) or _take_pause(self.conversation_id)
        # Both clocks at once: the span starts at this wall time and lasts what the store and the latency
        # histogram say (the time agent-otel takes opening and closing it is the run's, on all three).
        self._start_wall_ns = time.time_ns()
        self._start_ns = time.perf_counter_ns()
        self.created_at_ms = self._start_wall_ns // 1_000_000
        # The run's deadline (its budget's max_duration_s over the configured one) lets a reader of the
        # store tell a run whose process it cannot check from one that is still going.
        limit = getattr(self.budget, "max_duration_s", None)
        if limit is None:
            limit = _configured_max_duration(rt.config)
        if limit is not None:
            self._deadline_ms = self.created_at_ms + int(limit * 1000)
        # A sub-agent is stopped by the deadline of a run above it too (agent_otel.guards), so its row
        # says so when that comes first (the parent's is already the earliest of those above it).
        above = None if parent is None or parent.ledger.left else parent._deadline_ms
        if above is not None and (self._deadline_ms is None or above < self._deadline_ms):
            self._deadline_ms = above
        self.ledger.start(self, rt)  # the policies' part: a replay sets replay_of and is_replay here
        if self.is_replay:
            rt.metrics.exclude_run(self.run_id)
        attributes: dict[str, Any] = {
            c.GEN_AI_OPERATION_NAME: c.OP_INVOKE_AGENT,
            c.GEN_AI_AGENT_NAME: self.agent,
            c.RUN_ID: self.run_id,
        }
        for key, value in (
            (c.GEN_AI_REQUEST_MODEL, self.model),
            (c.PROMPT_VERSION, self.prompt_version),
            (c.TOOLS_VERSION, self.tools_version),
            (c.INPUT_SHA, self.input_sha if rt.store_args_hash else None),
            (c.REPLAY_OF, self.replay_of),
            (c.GEN_AI_CONVERSATION_ID, self.conversation_id),
            (c.RESUME_OF, resumes[1] if resumes else None),
        ):
            if value is not None:
                attributes[key] = value
        try:
            if self.parent is not None:
                # A sub-agent: a child of whatever is current (often the parent's tool span).
                attributes[c.PARENT_RUN_ID] = self.parent_run_id
                parent_ctx: Context | None = None
                if self._ended_ambient is not None:  # (what is current is a run ended elsewhere)
                    parent_ctx = trace.set_span_in_context(self.parent.span)
                links: list[Link] | None = None
            else:
                # A run is a new trace; an ambient span (an HTTP request, a job) becomes a link.
                ambient = trace.get_current_span().get_span_context()
                parent_ctx = Context()
                links = [Link(ambient)] if ambient.is_valid and ambient != self._ended_ambient else None
            if resumes is not None:
                # The resume of a paused run of this conversation links to it (it is another trace).
                links = [*(links or ()), Link(resumes[0], {c.RUN_ID: resumes[1]})]
            self.span = self._open_span(rt, attributes, parent_ctx, links)
            self.trace_id, self.span_id = _hex_ids(self.span)
            if not self.is_replay and rt.metrics.run_started(self.agent, self.span):
                self.span.set_attribute(c.RUN_EXEMPLAR, True)
                self._exemplar = True
            # Spans the bridge binds under this run's span belong to this run, not to an enclosing one.
            bind_span(self.span, SpanBinding(self))
        except Exception as exc:  # telemetry must not stop the agent from running
            internal_error("starting the run span", exc)
            self.span = trace.INVALID_SPAN
        self._emit_run_record(ended=False)
        _open_runs.add(self)

    def _open_span(
        self, rt: runtime.Runtime, attributes: dict[str, Any], parent_ctx: Context | None, links: Any
    ) -> Span:
        """The run's span (a subclass may adopt a framework's span instead, agent_otel.bridge)."""
        return span_attributes.start_span(
            rt.tracer,
            c.run_span_name(self.agent),
            parent_ctx,
            SpanKind.INTERNAL,
            attributes,
            links,
            self._start_wall_ns,
        )

    def _exit(self, exc: BaseException | None) -> None:
        try:
            if self.result is None:
                self.ledger.left = True  # set first: a step that finds the stop finds this too
                self._finish(self._reason_for(exc), exc, self._detail_for(exc))
        finally:
            self._detach()
            release_run_span(self)  # no reference cycle left: the run is freed when its last user lets go

    def _reason_for(self, exc: BaseException | None) -> StopReason:
        if exc is None:
            return StopReason.INTERRUPTED if self.paused is not None else StopReason.COMPLETED
        if isinstance(exc, AgentStopped):
            return exc.result.stop_reason
        if is_hard_time_limit(exc):  # a Celery task's hard limit: billiard's SIGTERM, as SystemExit
            return StopReason.TIMEOUT
        if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit) or is_cancelled(exc):
            return StopReason.CANCELLED
        if is_time_limit(exc):  # the task queue's deadline for the task (Celery's soft time limit)
            return StopReason.TIMEOUT
        noted = self.ledger.failure_reason(exc)
        if noted is not None:
            return noted
        flow = control_flow(exc)
        if flow is Flow.PAUSE:  # the agent waits for a human: its resume is the next run
            return StopReason.INTERRUPTED
        if flow is not None:  # a handoff, or feedback for the model: the run did its part
            return StopReason.COMPLETED
        return self.ledger.unnoted_failure(self.steps) or StopReason.ERROR

    def _detail_for(self, exc: BaseException | None) -> str | None:
        """A sub-agent's stop that ends this run too says so: the reason is the sub-agent's, not a limit
        of this run's (whose guards left no trigger)."""
        if isinstance(exc, AgentStopped) and exc.result.run_id != self.run_id:
            child = exc.result
            why = f": {child.detail}" if child.detail else ""
            return f"sub-agent run {child.run_id} stopped ({child.stop_reason.value}){why}"
        if exc is not None and is_time_limit(exc):  # (not the run's own max_duration_s)
            return f"the task's time limit ({type(exc).__name__})"
        if is_hard_time_limit(exc):
            return HARD_TIME_LIMIT_DETAIL
        return None

    def __call__(self, fn: Any) -> Any:
        """``@agent_otel.run(...)`` over a function: a run is one invocation (entered once), so it cannot
        decorate a function called many times; say so instead of Python's "'Run' object is not callable"."""
        raise TypeError(
            f"agent_otel.run({self.agent!r}) is one run, used as `with` or `async with`; to make each call "
            f"of a function a run, decorate it with @agent_otel.agent({self.agent!r}, ...)"
        )

    # --- public API -----------------------------------------------------------------------------------

    def stop(self, reason: str | StopReason = StopReason.COMPLETED, detail: str | None = None) -> StopResult:
        """Stop the run now with ``reason`` (from the taxonomy) and return the :class:`StopResult`.

        Idempotent: the first stop wins and later calls return the same result.
        """
        parsed = StopReason.parse(reason)
        if self.result is not None:
            return self.result
        if self._rt is None:
            raise RuntimeError("run.stop() called on a run that was never started")
        return self._finish(parsed, None, detail)

    def call_tool(
        self,
        name: str,
        fn: Callable[..., Any],
        args: Any = None,
        *,
        call_id: str | None = None,
        side_effects: bool = False,
        timeout_s: float | None = None,
        retry: Any = None,
    ) -> Any:
        """Call ``fn`` as tool ``name`` of this run: ``fn(**args)`` for a mapping, ``fn(*args)`` for a
        list or tuple, ``fn(args)`` otherwise, ``fn()`` for None. Coroutine functions return an awaitable.
        """
        if args is None:
            call_args: tuple[Any, ...] = ()
            call_kwargs: dict[str, Any] = {}
            hashed: Any = {}
        elif isinstance(args, dict):
            call_args, call_kwargs, hashed = (), args, args
        elif isinstance(args, list | tuple):
            call_args, call_kwargs, hashed = tuple(args), {}, list(args)
        else:
            call_args, call_kwargs, hashed = (args,), {}, args
        options = tool_options(name, side_effects, timeout_s, retry)
        if inspect.isgeneratorfunction(fn):  # a stream: one step over its items, as with @tool
            return stream_sync(self, options, fn, call_args, call_kwargs, hashed)
        if inspect.isasyncgenfunction(fn):
            return stream_async(self, options, fn, call_args, call_kwargs, hashed)
        if is_async_callable(fn):
            return call_async(self, options, fn, call_args, call_kwargs, hashed, call_id)
        return call_sync(self, options, fn, call_args, call_kwargs, hashed, call_id)

    def record_llm(
        self,
        model: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        *,
        cost_usd: float | None = None,
        duration_ms: float | None = None,
        error: BaseException | str | None = None,
        call_id: str | None = None,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
        provider: str | None = None,
    ) -> None:
        """Record one LLM request of this run (a ``chat {model}`` span, usage and spend).

        ``cost_usd`` overrides the price table; ``duration_ms`` back-dates the span's start; ``error``
        marks the request failed (an exception object also lets the run's stop say ``model_error``).
        ``cached_input_tokens`` / ``cache_write_tokens`` are the part of ``input_tokens`` read from /
        written to the provider's prompt cache; they are priced at the model's cache prices, because
        charging them at the full input price overstates spend. ``input_tokens`` stays the total.
        ``provider`` is ``gen_ai.provider.name`` (``openai``, ``anthropic``, ``gcp.gemini``...); without it
        the provider is inferred from well-known model name prefixes (``gpt-``, ``claude-``...).
        Token counts left out (None) are unknown, not 0: the request has no ``gen_ai.usage.*`` and no
        computed spend, and token averages leave it out.
        """
        record(
            self,
            model or self.model or "unknown",
            input_tokens,
            output_tokens,
            cost_usd=cost_usd,
            duration_ms=duration_ms,
            error=error,
            call_id=call_id,
            cached_input_tokens=cached_input_tokens,
            cache_write_tokens=cache_write_tokens,
            provider=provider,
        )

    @property
    def usage(self) -> dict[str, Any]:
        if self._ended or not self._start_ns:
            duration_ms = self._duration_ms
        else:
            duration_ms = (time.perf_counter_ns() - self._start_ns) / 1e6
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "cost_usd": round(self.cost_usd, 8),
            "tool_calls": self.tool_calls,
            "llm_calls": self.llm_calls,
            "steps": self.steps,
            "retries": self.retries,
            "duration_ms": round(duration_ms, 3),
        }

    @property
    def active(self) -> bool:
        return self._rt is not None and self.result is None

    def __repr__(self) -> str:
        state = self.result.stop_reason.value if self.result else ("running" if self._rt else "new")
        return f"<Run {self.agent} {self.run_id} {state}>"

    # --- the single stop -----------------------------------------------------------------------------

    def _finish(self, reason: StopReason, exc: BaseException | None, detail: str | None = None) -> StopResult:
        if self.ledger.open_ends and self.result is None:
            # streams left unfinished end before the run does (cancelled, if a cancellation stops it)
            self.ledger.end_open(exc if exc is not None and is_cancellation(exc) else None)
        with self._lock:
            if self.result is not None:
                return self.result
            self._duration_ms = (time.perf_counter_ns() - self._start_ns) / 1e6
            self._ended = True
            with self.ledger.lock:  # what a request ending from now on adds is late (llm._complete)
                self.final_usage = (self.input_tokens, self.output_tokens, self.cost_usd)
                usage = self.usage
            self.result = result = StopResult(reason, self.run_id, usage, detail)
        input_tokens, output_tokens, cost_usd = self.final_usage
        _open_runs.discard(self)
        rt = self._rt or runtime.current()
        span = self.span
        value, stop_class = reason._value_, STOP_CLASS[reason]  # (.value and .stop_class: Python properties)
        try:
            attributes: dict[str, Any] = {
                c.STOP_REASON: value,
                c.TOOL_CALLS: self.tool_calls,
                c.STEPS: self.steps,
                c.USAGE_INPUT_TOKENS: input_tokens,
                c.USAGE_OUTPUT_TOKENS: output_tokens,
                c.COST_USD: cost_usd,
            }
            if self.model is not None:
                attributes[c.GEN_AI_REQUEST_MODEL] = self.model  # set at start, or by the first request
            if self.provider is not None:
                attributes[c.GEN_AI_PROVIDER_NAME] = self.provider
                if c.gen_ai_dup():
                    attributes = c.with_previous_names(attributes)
            error_type = self._error_type(exc, reason)
            if error_type:
                attributes[c.ERROR_TYPE] = error_type
            span_attributes.set_attributes(span, attributes)
            if getattr(span, "dropped_attributes", 0):  # a span attribute limit: keep what runs are found by
                keep_essential(span, self._essential(attributes))
            event_attrs: dict[str, Any] = {c.STOP_REASON: value, "stop_class": stop_class}
            if detail:  # the caller's StopResult keeps it whole; what leaves the process is redacted
                event_attrs["detail"] = redacted_message(detail, rt.config)
            elif reason is StopReason.INTERRUPTED and self.paused:
                event_attrs.update(self.paused)
            span_attributes.add_event(span, c.EVENT_STOP, event_attrs)
            self._end_span(span, reason, exc, rt)
        except Exception as err:
            internal_error("recording the stop", err)
        # The run's metrics are recorded from this event on the pipeline's thread (MetricsSink), like the
        # steps': the SDK's histogram path costs the agent nothing there. A replay's are not (not traffic).
        event = new_event(  # (positional: no keyword matching)
            c.KIND_STOP,
            self.run_id,
            self.agent,
            self.trace_id,
            self.span_id,
            None,
            None,
            None,
            None,
            round(self._duration_ms, 3),
            stop_class,
            self._error_type(exc, None),
            value,
            result.usage,
        )
        event["_sampled"] = span.get_span_context().trace_flags.sampled
        pause_key = self.resume_key or self.conversation_id
        if reason is StopReason.INTERRUPTED and pause_key is not None:
            span_context = span.get_span_context()
            if span_context.is_valid:
                _remember_pause(pause_key, span_context, self.run_id)
        record = self._run_record(ended=True)
        if record is None:
            rt.pipeline.emit("event", event)
        else:  # the stop event and the run's final row, in one queue operation
            rt.pipeline.emit("event", event, "run", record)
        for on_stop in self.ledger.hooks.stop:
            try:
                on_stop(result)
            except Exception as err:
                internal_error("closing the run's policies", err)
        return result

    def _essential(self, attributes: dict[str, Any]) -> dict[str, Any]:
        """The values of the span's essential attributes (``keep_essential``), its stop's among them."""
        return {
            c.GEN_AI_OPERATION_NAME: c.OP_INVOKE_AGENT,
            c.GEN_AI_AGENT_NAME: self.agent,
            c.RUN_ID: self.run_id,
            c.RUN_EXEMPLAR: getattr(self, "_exemplar", None),
            **attributes,
        }

    def _error_type(self, exc: BaseException | None, reason: StopReason | None) -> str | None:
        """``error.type`` of the stop (the span's with ``reason``, the stop event's without)."""
        if exc is None or isinstance(exc, AgentStopped) or reason is StopReason.COMPLETED:
            return None
        if reason in (None, StopReason.INTERRUPTED) and control_flow(exc) is not None:
            return None  # a pause is not an error
        return type(exc).__name__

    def _end_span(
        self, span: Span, reason: StopReason, exc: BaseException | None, rt: runtime.Runtime
    ) -> None:
        """Set the run span's status from the stop and end it (a framework's span: see agent_otel.bridge)."""
        stop_class = STOP_CLASS[reason]
        if stop_class == "failure":
            if exc is not None and not isinstance(exc, AgentStopped):
                record_exception(span, exc, rt.config)  # redacted: the message may hold secrets
            span.set_status(Status(StatusCode.ERROR, reason._value_))
        elif stop_class == "success":
            span.set_status(_STATUS_OK)
        span.end(end_time=self._start_wall_ns + round(self._duration_ms * 1e6))

    def _emit_run_record(self, ended: bool) -> None:
        record = self._run_record(ended)
        if record is not None:
            self._rt.pipeline.emit("run", record)  # type: ignore[union-attr]

    def _run_record(self, ended: bool) -> dict[str, Any] | None:
        """The run's row for the store (None when no pipeline would take it)."""
        rt = self._rt
        if rt is None or not rt.pipeline.active:
            return None
        result = self.result if ended else None
        if result is None:
            status = "running"
            stop_reason = ended_at_ms = duration_ms = None
        else:
            reason = result.stop_reason
            status, stop_reason = STOP_CLASS[reason], reason._value_
            ended_at_ms = self.created_at_ms + int(self._duration_ms)
            duration_ms = round(self._duration_ms, 3)
        record: dict[str, Any] = {
            "run_id": self.run_id,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "agent": self.agent,
            "parent_run_id": self.parent_run_id,
            "created_at_ms": self.created_at_ms,
            "model": self.model,
            "prompt_version": self.prompt_version,
            "tools_version": self.tools_version,
            "input_sha": self.input_sha,
            "service": rt.service,
            "replay_of": self.replay_of,
            "conversation_id": self.conversation_id,
            "status": status,
            "stop_reason": stop_reason,
            "ended_at_ms": ended_at_ms,
            "duration_ms": duration_ms,
        }
        if self._deadline_ms is not None:
            record["deadline_ms"] = self._deadline_ms
        if result is not None:  # (the keys in the order record.update() gave them)
            input_tokens, output_tokens, cost_usd = self.final_usage or (0, 0, 0.0)
            record["tool_calls"] = self.tool_calls
            record["steps"] = self.steps
            record["llm_calls"] = self.llm_calls
            record["retries"] = self.retries
            record["input_tokens"] = input_tokens
            record["output_tokens"] = output_tokens
            record["cost_usd"] = cost_usd
            record["detail"] = result.detail
        return record


# uuid4().hex without building a UUID: 122 random bits with the version (4) and variant bits set.
_UUID4_MASK = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID4_BITS = (4 << 76) | (0x8000 << 48)
# The bits come from a generator of our own, seeded from os.urandom and reseeded in a forked child: run ids
# need to be unique, not secret, and os.urandom releases the GIL at every run start (a background thread
# waiting for it, such as the event pipeline's, then takes it, and the agent waits for it back). Not the
# random module's shared generator: an application that calls random.seed() would repeat its run ids.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def end_open_runs(detail: str, reason: StopReason = StopReason.CANCELLED) -> None:
    """Stop every run still open ``cancelled`` (or ``reason``: ``timeout`` when a Celery task's hard time
    limit is what ends the process) with ``detail``: the process is being ended on purpose
    (SIGTERM, which agent-otel's handler turns into a flush and the default disposition). As an
    application's own handler calling ``sys.exit()`` would have it: the same stop reason, the run span
    exported and the stop counted, instead of a row left ``running`` that reads ``abandoned`` (what
    SIGKILL or a crash leave, about which nothing is known). Innermost runs first (a sub-agent before its
    parent). The steps in progress stay unended: they never finished. Called on agent-otel's flush thread
    while the thread that runs the agent is interrupted (or busy in C): a run that thread was stopping
    itself, holding its lock, is left to it."""
    runs: list[Run] = []
    for _ in range(3):  # (another thread may start or stop a run meanwhile)
        try:
            runs = list(_open_runs)
            break
        except RuntimeError:
            continue
    for r in sorted(runs, key=lambda r: r._start_ns, reverse=True):
        if r.result is not None or not r._lock.acquire(timeout=0.05):
            continue
        r._lock.release()
        try:
            r.ledger.left = True  # a step the agent makes after this runs untraced, as after its block
            r._finish(reason, None, detail)
        except Exception as exc:
            internal_error("stopping a run at SIGTERM", exc)


# The configuration whose guards.budget.max_duration_s was read last, and that value: a Config is immutable,
# so every run of one runtime reads the same (Config.get splits and walks the key: ~60 bytecodes a run).
_max_duration: tuple[Any, Any] = (None, None)


def _configured_max_duration(config: Any) -> Any:
    """``config.get("guards.budget.max_duration_s")``, read once per configuration."""
    global _max_duration
    read_from, limit = _max_duration
    if read_from is not config:
        limit = config.get("guards.budget.max_duration_s")
        _max_duration = (config, limit)
    return limit


def new_run_id() -> str:
    """A new run id: a random UUID (version 4) as 32 hex digits."""
    return f"{(_ids.getrandbits(128) & _UUID4_MASK) | _UUID4_BITS:032x}"


def _remember_pause(conversation_id: str, span_context: SpanContext, run_id: str) -> None:
    with _paused_lock:
        _paused[conversation_id] = (span_context, run_id)
        _paused.move_to_end(conversation_id)
        while len(_paused) > _MAX_PAUSED:
            _paused.popitem(last=False)


def _take_pause(conversation_id: str | None) -> tuple[SpanContext, str] | None:
    """The paused run this conversation's new run resumes (forgotten once taken)."""
    if conversation_id is None:
        return None
    with _paused_lock:
        return _paused.pop(conversation_id, None)


def run(
    agent: str,
    *,
    model: str | None = None,
    prompt_version: str | None = None,
    tools_version: str | None = None,
    input: Any = MISSING,
    budget: Any = None,
    run_id: str | None = None,
    conversation_id: str | None = None,
) -> Run:
    """Start describing one agent run; enter it with ``with`` or ``async with``.

    ``conversation_id`` is the application's id of the conversation (thread, session) the run belongs to,
    recorded as ``gen_ai.conversation.id``; runs of one conversation share it.
    """
    return Run(
        agent,
        model=model,
        prompt_version=prompt_version,
        tools_version=tools_version,
        input=input,
        budget=budget,
        run_id=run_id,
        conversation_id=conversation_id,
    )


def _bound_input(
    sig: inspect.Signature | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    context: frozenset[str] = frozenset(),
) -> Any:
    """``context``: parameters a framework fills with its own context (a LangGraph node's
    ``config: RunnableConfig``): not what the agent was asked (see agent_otel.tool_context)."""
    if sig is None:
        return {"args": list(args), "kwargs": kwargs}
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError:
        return {"args": list(args), "kwargs": kwargs}
    arguments = dict(bound.arguments)
    arguments.pop("self", None)
    arguments.pop("cls", None)
    for name in context:
        arguments.pop(name, None)
    if len(arguments) == 1:
        return next(iter(arguments.values()))
    return arguments


@overload
def agent(fn: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def agent(
    fn: str | None = None,
    /,
    *,
    name: str | None = None,
    model: str | None = None,
    prompt_version: str | None = None,
    tools_version: str | None = None,
    budget: Any = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def agent(
    fn: Callable[..., Any] | str | None = None,
    /,
    *,
    name: str | None = None,
    model: str | None = None,
    prompt_version: str | None = None,
    tools_version: str | None = None,
    budget: Any = None,
) -> Any:
    """Decorator form of :func:`run`: each call of the function is one run.

    The run's input is the call's arguments (a single argument as itself, several as a mapping by
    parameter name), so ``input_sha`` and replay see what the agent was asked.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        agent_name = name or func.__name__
        try:
            sig: inspect.Signature | None = inspect.signature(func)
        except (TypeError, ValueError):
            sig = None
        context = context_parameters(func, list(sig.parameters.values())) if sig is not None else frozenset()

        def make_run(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Run:
            return Run(
                agent_name,
                model=model,
                prompt_version=prompt_version,
                tools_version=tools_version,
                input=_bound_input(sig, args, kwargs, context),
                budget=budget,
            )

        # A streaming agent (a generator) is one run from its first item to its last, or to the consumer
        # closing it (``cancelled``: a client that went away). The run is current while the agent's body
        # runs, not in the consumer's code between items.
        if inspect.isgeneratorfunction(func):

            @functools.wraps(func)
            def stream_wrapper(*args: Any, **kwargs: Any) -> Any:
                run = make_run(args, kwargs)
                run._start()
                stream = func(*args, **kwargs)
                error: BaseException | None = None
                try:
                    item = next(stream)
                    while True:
                        run._detach()
                        try:
                            sent = yield item
                        except GeneratorExit:
                            raise
                        except BaseException as exc:
                            run._attach()
                            item = stream.throw(exc)
                        else:
                            run._attach()
                            item = stream.send(sent)
                except StopIteration as stop:
                    return stop.value
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    if run._tokens is None:
                        run._attach()
                    try:
                        stream.close()
                    finally:
                        run._exit(error)

            return stream_wrapper

        if inspect.isasyncgenfunction(func):

            @functools.wraps(func)
            async def astream_wrapper(*args: Any, **kwargs: Any) -> Any:
                run = make_run(args, kwargs)
                run._start()
                stream = func(*args, **kwargs)
                error: BaseException | None = None
                try:
                    item = await anext(stream)
                    while True:
                        run._detach()
                        try:
                            sent = yield item
                        except GeneratorExit:
                            raise
                        except BaseException as exc:
                            run._attach()
                            item = await stream.athrow(exc)
                        else:
                            run._attach()
                            item = await (anext(stream) if sent is None else stream.asend(sent))
                except StopAsyncIteration:
                    return
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    if run._tokens is None:
                        run._attach()
                    try:
                        await stream.aclose()
                    finally:
                        run._exit(error)

            return astream_wrapper

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with make_run(args, kwargs):
                    return await func(*args, **kwargs)

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with make_run(args, kwargs):
                return func(*args, **kwargs)

        return wrapper

    if isinstance(fn, str):  # @agent("name"), as run("name") takes an agent's
        if name is not None and name != fn:
            raise TypeError(f"agent() got two names: {fn!r} and name={name!r}")
        name, fn = fn, None
    if fn is not None:
        return decorate(fn)
    return decorate


# --- framework invocations (integrations) -----------------------------------------------------------


class FrameworkRun:
    """The agent-otel run one framework invocation belongs to; ``owned`` if :func:`enter_run` started it."""

    __slots__ = ("owned", "run")

    def __init__(self, run: Run, owned: bool) -> None:
        self.run = run
        self.owned = owned


def enter_run(
    agent: str,
    *,
    model: str | None = None,
    input: Any = MISSING,
    conversation_id: str | None = None,
    resume_key: str | None = None,
) -> FrameworkRun | None:
    """Find or start the run a framework invocation belongs to; None if telemetry failed.

    The rule is the same for every framework: inside a user's own ``agent_otel.run`` the framework's
    calls become steps of that run (the user's budget and stop reason apply); inside a *tool call* of a
    run (an agent used as a tool) the framework run becomes a sub-agent; otherwise it is a new run.
    ``conversation_id`` is the framework's thread / session / conversation id (``gen_ai.conversation.id``);
    a user's run without one takes it; ``resume_key`` (see ``Run.resume_key``) links a resume where there is
    none. A run started here is a framework run (``Run.framework``): guards
    the user did not configure only observe in it (agent_otel.guards).
    """
    try:
        current = active_run()
        if current is not None:
            call = active_tool_call()
            if call is None or call.run is not current:
                if conversation_id and current.conversation_id is None:
                    current.conversation_id = str(conversation_id)
                    current.span.set_attribute(c.GEN_AI_CONVERSATION_ID, current.conversation_id)
                return FrameworkRun(current, owned=False)
        run = Run(agent or "agent", model=model, input=input, conversation_id=conversation_id or None)
        run.resume_key = resume_key or None
        run.framework = True
        run._start()
        return FrameworkRun(run, owned=True)
    except Exception as exc:
        internal_error("starting a framework run", exc)
        return None


def exit_run(frun: FrameworkRun | None, exc: BaseException | None, reason: StopReason | None = None) -> None:
    """Leave a framework run: note ``reason`` for ``exc`` (if given), and stop the run if we started it."""
    if frun is None:
        return
    if exc is not None:
        note_failure(frun.run, exc, reason)
    if not frun.owned:
        return
    try:
        frun.run._exit(exc)
    except Exception as err:
        internal_error("stopping a framework run", err)


__all__ = [
    "MISSING",
    "FrameworkRun",
    "Run",
    "agent",
    "current_run",
    "end_open_runs",
    "enter_run",
    "exit_run",
    "run",
]
