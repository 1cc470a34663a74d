"""The step engine: a step's life, once, for tool calls and LLM calls alike.

A *step* is one tool call or one LLM request of a run. Whichever way it is made (``@tool``,
``run.call_tool``, ``run.record_llm``, a framework integration), :func:`begin` and :meth:`Step.end` give
it the same life: the run's pending stop is raised first, then the policies' checks run (a guard may stop
the run here, before anything is recorded), a policy may claim to *serve* the step instead of running it
(a replay), the step gets the next ``agent.step_id`` of its run and a child span of the run, and when it
ends: span status, duration, the unified event, the policies' after-step hooks, and, if it failed, the
note that lets the run's stop name it (``tool_error``, ``model_error``...). :mod:`agent_otel.tools` and
:mod:`agent_otel.llm` are the two kinds of step: they add what differs (the ``@tool`` decorator, retries
and deadlines; usage and spend), not a second copy of the life.

The interface for integrations
------------------------------
An integration turns a framework's invocation into a run and its tool and LLM calls into steps, using
only these public functions (``integrations/_common.py`` wraps a few of them for framework tools)::

    from agent_otel import llm, tools
    from agent_otel.run import enter_run, exit_run
    from agent_otel.steps import active_run, check_pending, internal_error, note_failure

    frun = enter_run(agent, model=model, input=prompt, conversation_id=thread)  # find or start the run
    ...                                                   # (None: telemetry failed, just run the framework)
    exit_run(frun, exc, reason)                           # leave it; stops it if enter_run started it

    run = active_run()                                    # the started run of this context, or None
    call = tools.begin(run, tools.ToolOptions(name), args, call_id=..., attach=..., claimable=...)
    call.ok(result) | call.fail(exc)                      # finish a tool step (exactly once)
    step = llm.begin(run, model, call_id, attach=False, provider="openai", defer=True)
    step.request(params); step.response(response_id=..., finish_reasons=..., tool_call_ids=...)
    step.finish(input_tokens, output_tokens, ...) | step.fail(exc, ...)   # finish an LLM step
    note_failure(run, exc, StopReason.MAX_STEPS)          # why exc ends the run, if the framework knows
    check_pending(run)                                    # raise a stop decided since the last step
    internal_error("what failed", exc)                    # a telemetry failure: logged once, never raised

``defer=True`` lets a library's own GenAI span of the request become the step's span
(:mod:`agent_otel.native`); ``step.messages(input=, output=)`` keeps content only when capture is on.
``tools.begin`` / ``llm.begin`` may raise :class:`~agent_otel.AgentStopped` (a guard stopped the run; let
it propagate) and return None when telemetry itself failed (run the call untraced). A tool step that a
replay serves has ``call.replay`` set: :mod:`agent_otel.replay` (``serve``, ``recorded``) hands out the
recorded outcome, and the framework's tool must not run. ``step.done`` tells whether a step has ended.
A step reported after the fact (a span bridge, ``run.record_llm``) passes ``start_time_ns=`` to ``begin``
and calls ``step.back_date(duration_ms)`` before ending it, so span and duration cover the real call.

Policies
--------
Guards (before a step), replay (instead of a step) and snapshot recording (after a step) plug in as
:class:`Policy` objects: their modules register a factory with :func:`agent_otel.runtime.register_policy`,
each runtime builds its policies from the configuration, and each run asks them for a :class:`RunPolicy`
when it starts. The engine calls only the hooks a run policy overrides, so a policy costs nothing where it
has nothing to do; the engine never imports a policy.

Nothing here touches the network or the disk, and a failure of telemetry is reported once
(:func:`internal_error`) and never reaches the agent: the only exceptions the engine raises into agent
code are the policies' (AgentStopped, a guard's ToolDenied, a replay's refusal).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
import weakref
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, ClassVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from agent_otel import conventions as c
from agent_otel import runtime, span_attributes
from agent_otel.redaction import error_text, record_exception
from agent_otel.runtime import Runtime
from agent_otel.stop import (
    TIME_LIMIT_TYPES,
    AgentStopped,
    Refusal,  # noqa: F401  (defined below Retry's layer; policies import it here)
    StopReason,
    StopResult,
    is_time_limit,
)

if TYPE_CHECKING:
    from agent_otel.run import Run

logger = logging.getLogger("agent_otel")

#: How many failed steps a run remembers to name its stop (the most recent ones).
MAX_TRACKED_FAILURES = 16

_current: ContextVar[Run | None] = ContextVar("agent_otel_run", default=None)


def keep_essential(span: Any, values: dict[str, Any]) -> None:
    """Set the span's essential attributes (``conventions.ESSENTIAL``, from ``values``) again: called as
    the span ends when a span attribute count limit made the SDK drop some (``span.dropped_attributes``).

    The SDK drops the *oldest* attribute for each one over the limit (``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT``,
    ``SpanLimits``), and ``agent.run_id`` and ``gen_ai.operation.name`` are set first: with a limit of 5 a
    run's span kept its counters and lost its run id and stop reason, so Tempo found no trace for the run
    and the collector's sampling did not keep it as a failed run. Set again last, they are the newest
    and the others go. A span no limit touched costs its caller one attribute read."""
    scope = getattr(getattr(span, "instrumentation_scope", None), "name", None)
    own = scope == runtime.SCOPE  # a framework's span (the bridge's): its gen_ai.* are its own to keep
    span.set_attributes(
        {k: values[k] for k in c.ESSENTIAL if values.get(k) is not None and (own or k.startswith("agent."))}
    )


# The context key OpenTelemetry stores the current span under, found through the public API.
(_SPAN_KEY,) = trace.set_span_in_context(trace.INVALID_SPAN, otel_context.Context())


def _context_var() -> ContextVar[Any] | None:
    """The ContextVar OpenTelemetry keeps the current context in, where its runtime context is the default
    one (``OTEL_PYTHON_CONTEXT`` unset). ``otel_context.get_current()`` and ``attach()`` are two Python
    calls each around this variable's ``get()`` and ``set()``; the step engine reads it once per step and
    hands the context to the span's start, where the SDK (three times: the parent span, the sampler, the
    parent's trace state) and the bridge would each have read the current context again. Another runtime
    context goes through the public functions."""
    try:
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

        runtime_context = otel_context._RUNTIME_CONTEXT
        var = runtime_context._current_context  # type: ignore[attr-defined]
    except (ImportError, AttributeError):  # pragma: no cover - another API layout
        return None
    return var if type(runtime_context) is ContextVarsRuntimeContext and type(var) is ContextVar else None


_CONTEXT: ContextVar[Any] | None = _context_var()


def _context_items() -> bool:
    """Whether a SpanContext is the tuple ``(trace_id, span_id, is_remote, trace_flags, trace_state,
    is_valid)`` its properties read (OpenTelemetry's API since 1.0): a step's event then reads the items,
    not three properties."""
    probe = SpanContext(0x1F, 0x2E, False, TraceFlags(TraceFlags.SAMPLED))
    try:
        return (
            isinstance(probe, tuple)
            and len(probe) == 6
            and probe[1] == probe.span_id == 0x2E
            and probe[3] is probe.trace_flags
            and probe[5] is probe.is_valid is True
            and (probe[3] & 1) == 1
            and probe.trace_flags.sampled is True
            and INVALID_SPAN_CONTEXT[5] is INVALID_SPAN_CONTEXT.is_valid is False
        )
    except Exception:  # pragma: no cover - another API layout
        return False


_CONTEXT_ITEMS = _context_items()


def current_context() -> otel_context.Context:
    """``otel_context.get_current()``, read from its ContextVar directly where that is what it does."""
    return _CONTEXT.get() if _CONTEXT is not None else otel_context.get_current()


def attach_span(span: Any) -> Any:
    """``otel_context.attach(trace.set_span_in_context(span))``: make ``span`` the current span of the
    calling context; returns the token for ``otel_context.detach``. With the default runtime context, one
    new Context set on its variable (the public calls copy the context, then make a second one of it)."""
    if _CONTEXT is not None:
        return _CONTEXT.set(otel_context.Context({**_CONTEXT.get(), _SPAN_KEY: span}))
    return otel_context.attach(trace.set_span_in_context(span))


# --- the run of the calling context ------------------------------------------------------------------


def current_run() -> Run | None:
    """The run of the calling context, or None outside any run.

    A framework span the GenAI span bridge made a run of (:mod:`agent_otel.bridge`) cannot set this
    context's run, so while such runs are live the current span's binding, when it has one, wins: it is
    the innermost run (a user's ``run()`` started under a bridged span binds its own span).
    """
    if _bound_refs:
        binding = getattr(trace.get_current_span(), SPAN_BINDING, None)
        if binding is not None:
            return binding.run  # type: ignore[no-any-return]
    return _current.get()


def active_run() -> Run | None:
    """The run of the calling context if it has started (steps can be recorded on it), else None."""
    run = current_run() if _bound_refs else _current.get()  # current_run(), inlined (every tool call)
    return run if run is not None and run.ledger.runtime is not None else None


# --- spans bound to runs (the GenAI span bridge) ------------------------------------------------------

#: The attribute under which a span carries its :class:`SpanBinding` (set on SDK span objects only).
SPAN_BINDING = "_agent_otel_binding"
# Live runs whose spans the bridge binds; while there are none, current_run() reads only the ContextVar.
_bound_runs: weakref.WeakSet[Any] = weakref.WeakSet()
# Its set of references, tested instead of the WeakSet itself: WeakSet.__len__ is Python code, and this
# test runs at every step start. The WeakSet is never iterated, so the set holds no reference pending
# removal and is empty exactly when the WeakSet is.
_bound_refs = _bound_runs.data
# Whether a slot was ever made: until then a tool step's start does not look for one (the hot path).
_slots_seen = False
# Whether any binding was ever given a step: until then no span's binding names a step, so looking for the
# step of the current span (tools.active_tool_call, an LLM call taking over a bridged request) is skipped.
_steps_bound = False


def slots_seen() -> bool:
    """Whether any span was ever a slot (:meth:`SpanBinding.wait`) in this process."""
    return _slots_seen


def steps_bound() -> bool:
    """Whether any span's binding was ever given a step (:attr:`SpanBinding.step`) in this process."""
    return _steps_bound


class SpanBinding:
    """The run a span belongs to, and the step whose span it is (or runs inside), if any.

    The bridge binds every span that starts under a bound span (any library's, agent-otel's own too), so
    the run of the current span is known however deep a library nests its spans and whichever thread
    ends them. ``owner`` is what made the binding (the bridge's state for a span it adopted); ``slot``
    marks a framework's tool span waiting for the tool step an integration's hook begins under it;
    ``hooked`` that an integration hooks into the framework invocation this span is part of.
    """

    __slots__ = ("_step", "hooked", "owner", "run", "slot")

    def __init__(self, run: Run, step: Step | None = None, owner: Any = None, hooked: bool = False) -> None:
        self.run = run
        self._step: Step | None = None
        if step is not None:
            self.step = step
        self.owner = owner
        self.slot = False
        self.hooked = hooked

    @property
    def step(self) -> Step | None:
        return self._step

    @step.setter
    def step(self, step: Step | None) -> None:
        global _steps_bound
        if step is not None:
            _steps_bound = True
        self._step = step

    def wait(self) -> None:
        """Make this span a slot: a framework's tool span whose step an integration's hook begins."""
        global _slots_seen
        self.slot = True
        _slots_seen = True

    def fill(self, run: Run, step: Step) -> bool:
        """``step`` of ``run`` began under this span: if it is a slot waiting for one, the step is its."""
        if self.slot and self.step is None and self.run is run:
            self.step = step
            self.slot = False
            return True
        return False


def span_binding(span: Any) -> SpanBinding | None:
    """The binding of ``span`` (None for unbound spans and spans that cannot carry one)."""
    return getattr(span, SPAN_BINDING, None)


def context_binding(context: Any = None) -> SpanBinding | None:
    """The binding of the span current in ``context`` (None: the calling context), read straight from the
    context: ``trace.get_current_span`` adds an isinstance check against an ABC (about 0.5 us), and the
    bridge asks this at every span start in a run."""
    if context is None:
        context = _CONTEXT.get() if _CONTEXT is not None else otel_context.get_current()
    return getattr(context.get(_SPAN_KEY), SPAN_BINDING, None)


def bind_span(span: Any, binding: SpanBinding) -> None:
    """Bind ``span`` to a run (and step); spans that cannot carry attributes stay unbound, and so does
    ``INVALID_SPAN``: a run's span when tracing is disabled, but also every context's current span when it
    has none, so a binding on it would hand an ended run to any caller outside a run (``bridge.hook_in``).
    """
    if span is trace.INVALID_SPAN:
        return
    try:  # noqa: SIM105  (contextlib.suppress costs ~0.5 us: this runs at every span start in a run)
        setattr(span, SPAN_BINDING, binding)
    except (AttributeError, TypeError):  # INVALID_SPAN, a non-SDK span with slots
        pass


def release_run_span(run: Run) -> None:
    """Take back the binding a run gave its own span (:meth:`Run._open <agent_otel.run.Run>`) once the run
    has left its block. The run holds its span and the binding holds the run: left in place, every run would
    be a reference cycle that only the cyclic garbage collector frees (on the agent's thread, with the
    span's attributes and events). A span started under the run's span after that (a thread that copied the
    context) finds the run through the context, as a span outside any bound span does. A binding the run
    did not make (a framework's span the bridge adopted) stays."""
    span = run.span
    binding = getattr(span, SPAN_BINDING, None)
    if binding is not None and binding.run is run and binding.owner is None and binding.step is None:
        try:  # noqa: SIM105  (contextlib.suppress costs ~0.5 us: this runs at every run's end)
            delattr(span, SPAN_BINDING)
        except AttributeError:
            pass


def track_bound_run(run: Run, live: bool) -> None:
    """A run whose spans are bound starts (``live``) or ends (the bridge's runs, their sub-runs)."""
    if live:
        _bound_runs.add(run)
    else:
        _bound_runs.discard(run)


def bind_run(run: Run | None) -> Token[Run | None]:
    """Make ``run`` the run of the calling context (``Run`` does this on entering its block)."""
    return _current.set(run)


def unbind_run(token: Token[Run | None]) -> bool:
    """Undo :func:`bind_run`; left in another context than it was entered, just clear the run (and
    return False: the caller's other tokens of that context cannot be reset here either)."""
    try:
        _current.reset(token)
    except ValueError:  # exited in another context (a generator or a callback)
        _current.set(None)
        return False
    return True


def is_cancelled(exc: BaseException) -> bool:
    """Whether ``exc`` is asyncio's CancelledError (asyncio is not imported just to ask: if it was never
    imported, this cannot be its CancelledError)."""
    aio = sys.modules.get("asyncio")
    return aio is not None and isinstance(exc, aio.CancelledError)


#: The ``error.type`` of a step that was cancelled rather than failed (a span read after the fact names it).
CANCELLATION_TYPES = (
    frozenset({"CancelledError", "KeyboardInterrupt", "SystemExit", "GeneratorExit"}) | TIME_LIMIT_TYPES
)


def is_cancellation(exc: BaseException | str) -> bool:
    """Whether ``exc`` (an exception, or an error type read from a span) cancelled a step rather than
    failed it: asyncio's cancellation, KeyboardInterrupt, SystemExit, a task queue's time limit (Celery's
    soft one), or a generator closed before its end (GeneratorExit: its consumer went away). A cancelled
    step ends ``cancelled``, not ``error``, whether it is a tool call or an LLM request."""
    if isinstance(exc, str):
        return exc in CANCELLATION_TYPES
    return (
        isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit)
        or is_cancelled(exc)
        or is_time_limit(exc)
    )


# --- telemetry failures ------------------------------------------------------------------------------

_reported: set[str] = set()


def internal_error(what: str, exc: BaseException) -> None:
    """Report an agent-otel failure once per kind and carry on; it must never reach agent code."""
    key = f"{what}:{type(exc).__name__}"
    if key not in _reported:
        _reported.add(key)
        try:
            config = runtime.current().config
        except Exception:  # reporting a failure must not fail: the built-in secret keys, then
            config = None
        logger.warning(
            "agent-otel: error while %s (%s); telemetry continues without it",
            what,
            error_text(exc, config),  # redacted: the failure may quote the value being handled
            exc_info=logger.isEnabledFor(logging.DEBUG),
        )


# --- policies ----------------------------------------------------------------------------------------


class RunPolicy:
    """A policy's part in one run. Override the hooks you need; the engine calls only overridden ones.

    ``before_step`` and ``before_retry`` may raise AgentStopped (or another exception meant for the
    agent); ``serve`` returns what serves the step instead of running it (stored as ``step.replay``), or
    None; ``after_step`` and ``run_stopped`` must not raise (a failure is reported once and ignored).
    ``after_step`` may return records to queue with the step's event, ``(type, payload, ...)`` as
    :meth:`Pipeline.emit <agent_otel.events.Pipeline.emit>` takes them after its first pair (a snapshot),
    or None; it is called for the step kinds in ``after_kinds`` only.
    """

    __slots__ = ()

    #: The kinds of step (``Step.kind``) whose end ``after_step`` is called for.
    after_kinds: ClassVar[tuple[str, ...]] = ("tool", "llm")

    def before_step(self, step: Step) -> None:
        """Before a step gets its step_id and span (also after the fact, ``step.recorded``)."""

    def serve(self, step: Step) -> Any:
        """What serves ``step`` instead of running it, or None to run it."""
        return None

    def after_step(self, step: Step, result: Any, exc: BaseException | str | None) -> tuple[Any, ...] | None:
        """After a step ended with ``result`` or ``exc`` (its span ended; its event is queued after the
        hooks, with the records they return)."""
        return None

    def before_retry(self, step: Step) -> None:
        """Before a failed attempt of a tool step is retried."""

    def step_timeout(self, step: Step, timeout_s: float | None) -> float | None:
        """The deadline of a tool step, given the tool's own ``timeout_s`` (None: none set)."""
        return timeout_s

    def run_stopped(self, result: StopResult) -> None:
        """After the run's single stop was recorded."""


class Policy:
    """A policy of a runtime (built by a factory registered with ``runtime.register_policy``).

    ``order`` sorts a runtime's policies: guards (100) check before a replay (200) serves, and the
    snapshot recorder (300) sees whether a run is a replay.
    """

    order: ClassVar[int] = 0

    def start_run(self, run: Run) -> RunPolicy | None:
        """The policy's state for a run that starts now (before its span exists), or None."""
        return None

    def outside_run(self, tool: str) -> None:
        """A tool was called outside any run (it runs untraced unless this raises)."""


_HOOK_NAMES = ("before_step", "serve", "after_step", "before_retry", "step_timeout", "run_stopped")
# Which of a run's policies override each hook depends only on their classes: worked out once per
# combination of classes, not for every run. The after-step hooks come last, by step kind.
_overrides: dict[tuple[type, ...], tuple[tuple[int, ...], ...]] = {}
_STEP_KINDS = ("tool", "llm")


def _overriding(classes: tuple[type, ...]) -> tuple[tuple[int, ...], ...]:
    found = _overrides.get(classes)
    if found is None:
        found = tuple(
            tuple(i for i, cls in enumerate(classes) if getattr(cls, name) is not getattr(RunPolicy, name))
            for name in _HOOK_NAMES
        )
        found += tuple(tuple(i for i in found[2] if kind in classes[i].after_kinds) for kind in _STEP_KINDS)
        if len(_overrides) < 1024:
            _overrides[classes] = found
    return found


class Hooks:
    """A run's policies, and for each hook the bound methods that override it (hot-path dispatch);
    ``after_by_kind`` maps a step kind to the after-step hooks called for it (``RunPolicy.after_kinds``)."""

    __slots__ = ("after", "after_by_kind", "before", "policies", "retry", "serve", "stop", "timeout")

    def __init__(self, policies: tuple[RunPolicy, ...] = ()) -> None:
        # Built at every run start: a hook no policy overrides (most of them) costs no comprehension.
        self.policies = policies
        before, serve, after, retry, timeout, stop, tool, llm = _overriding(tuple(map(type, policies)))
        self.before = tuple([policies[i].before_step for i in before]) if before else ()
        self.serve = tuple([policies[i].serve for i in serve]) if serve else ()
        self.after = tuple([policies[i].after_step for i in after]) if after else ()
        self.after_by_kind: dict[str, tuple[Any, ...]] = {  # (_STEP_KINDS)
            "tool": tuple([policies[i].after_step for i in tool]) if tool else (),
            "llm": tuple([policies[i].after_step for i in llm]) if llm else (),
        }
        self.retry = tuple([policies[i].before_retry for i in retry]) if retry else ()
        self.timeout = tuple([policies[i].step_timeout for i in timeout]) if timeout else ()
        self.stop = tuple([policies[i].run_stopped for i in stop]) if stop else ()


NO_HOOKS = Hooks()


# --- the engine's state of one run -------------------------------------------------------------------


class Ledger:
    """What the engine keeps for one run: its runtime and policies, the failures that may name its stop,
    and a stop decided for its next step. The run owns one (``run.ledger``); the counters it advances
    (``run.steps``, ``run.tool_calls``, tokens, spend) are the run's public attributes.
    """

    __slots__ = (
        "cancelled",
        "failures",
        "hooks",
        "last_failed",
        "left",
        "lock",
        "open_ends",
        "pending",
        "runtime",
    )

    def __init__(self) -> None:
        self.runtime: Runtime | None = None  # set when the run starts
        self.hooks = NO_HOOKS
        self.cancelled: BaseException | None = None  # while end_open runs: the cancellation ending the run
        self.lock = threading.Lock()
        self.failures: list[tuple[BaseException, StopReason]] = []
        self.pending: StopResult | None = None
        #: A step that failed with no exception to note (a library's span said so after the fact): the
        #: run's step count then, and the reason of an error that leaves the run before its next step.
        self.last_failed: tuple[int, StopReason] | None = None
        #: The run ended by leaving its block (not stopped by a guard or ``run.stop()`` before): a step
        #: made after that (a task or generator that outlived the block) runs untraced, see check_pending.
        self.left = False
        #: How to end the steps still open that may outlive the code that began them (a streaming tool
        #: left unfinished but still referenced): the run ends them when it stops (see hold_open).
        self.open_ends: list[Any] | None = None

    def hold_open(self, end: Any) -> None:
        """Have the run call ``end()`` when it stops, if :meth:`let_go` was not called with it first: a
        step that would otherwise end only when the garbage collector closes its generator, after the
        run's span (a child span ending after its parent) and after the run's stop was counted."""
        with self.lock:
            if self.open_ends is None:
                self.open_ends = []
            self.open_ends.append(end)

    def let_go(self, end: Any) -> None:
        """The step ended by itself: forget its ``end``."""
        with self.lock:
            if self.open_ends:
                with contextlib.suppress(ValueError):
                    self.open_ends.remove(end)

    def end_open(self, cancelled: BaseException | None = None) -> None:
        """End the steps still held open (the run is stopping); a failure is reported, never raised.
        ``cancelled``: the cancellation that stops the run, which cut those steps short too (a framework
        that reports nothing for a model call its task's cancellation interrupted: LangChain's
        ``ainvoke``), so they end ``cancelled`` (see ``LLMCall.finish``)."""
        with self.lock:
            ends, self.open_ends = self.open_ends, None
        self.cancelled = cancelled
        try:
            for end in ends or ():
                try:
                    end()
                except Exception as exc:
                    internal_error("ending a step left open", exc)
        finally:
            self.cancelled = None

    def start(self, run: Run, rt: Runtime) -> None:
        """Ask the runtime's policies for their part in ``run`` (before its span exists)."""
        parts = [p.start_run(run) for p in rt.policies]
        if parts:
            if None in parts:  # (a RunPolicy's __eq__ is identity)
                parts = [p for p in parts if p is not None]
            self.hooks = Hooks(tuple(parts))
        else:
            self.hooks = NO_HOOKS
        self.runtime = rt

    def failure_reason(self, exc: BaseException) -> StopReason | None:
        """The stop reason noted for ``exc`` or an exception it was raised from, if any; for an exception
        group (an ``asyncio.TaskGroup``'s, anyio's), the first of its exceptions that has one."""
        seen: set[int] = set()
        cur: BaseException | None = exc
        while cur is not None and id(cur) not in seen:
            seen.add(id(cur))
            for failed, reason in self.failures:
                if failed is cur:
                    return reason
            if isinstance(cur, BaseExceptionGroup):
                for member in cur.exceptions:
                    reason = self.failure_reason(member)
                    if reason is not None:
                        return reason
            cur = cur.__cause__ or cur.__context__
        return None

    def unnoted_failure(self, steps: int) -> StopReason | None:
        """The reason of a step that failed with no exception noted, if no step began after it."""
        last = self.last_failed
        return last[1] if last is not None and last[0] == steps else None


def note_failure(run: Run | None, exc: BaseException, reason: StopReason | None) -> None:
    """Remember that ``exc`` ends ``run`` with ``reason``, should it leave the run's block.

    Steps note ``tool_error`` / ``tool_timeout`` / ``model_error`` when they fail; an integration that
    knows better (a framework's max-steps error) notes first, since the first note for an exception wins.
    A None run or reason, or an AgentStopped (it carries its own reason), is ignored; never raises.
    """
    if run is None or reason is None or isinstance(exc, AgentStopped):
        return
    try:
        failures = run.ledger.failures
        failures.append((exc, reason))
        if len(failures) > MAX_TRACKED_FAILURES:
            del failures[0]
    except Exception as err:
        internal_error("classifying an error", err)


def defer_stop(run: Run, result: StopResult) -> None:
    """Stop ``run`` with ``result`` before its next step (a budget that usage crossed mid-step)."""
    run.ledger.pending = result


def check_pending(run: Run) -> None:
    """Raise AgentStopped if ``run`` has stopped, or has a stop pending (which is recorded now).

    A run that ended by leaving its block was not stopped: work it started that outlives the block (an
    asyncio task, a generator consumed later, ``record_llm`` after the ``with``) is not refused, since
    without agent-otel it would have run. It returns here, and the caller runs it untraced.
    """
    ledger = run.ledger
    pending = ledger.pending
    if pending is not None:
        raise AgentStopped(run.stop(pending.stop_reason, pending.detail))
    if run.result is not None and not ledger.left:
        raise AgentStopped(run.result)


def outside_run(tool: str) -> None:
    """A tool called outside any run: the policies may refuse it (a replay never runs a tool)."""
    for policy in runtime.current().policies:
        policy.outside_run(tool)


# --- a step ------------------------------------------------------------------------------------------


def _leave(token: Any) -> None:
    """Leave the context a step attached. A step may end in a copy of that context: an ``@agent_otel.tool``
    function of an in-process MCP server claimed the client's call and a guard blocked it, in the copy of
    the client's context MCP hands the server. Leaving is not possible there (OpenTelemetry would log an
    error for it), and not needed: the copy is the server's, and the client's own context leaves the span
    when the call returns (``integrations.mcp_client``)."""
    if type(token) is not Token:  # another runtime context than OpenTelemetry's contextvars one
        otel_context.detach(token)
        return
    try:
        token.var.reset(token)
    except (ValueError, RuntimeError):  # created in a different Context
        return


class Step:
    """One step of a run in flight: begun by :func:`begin`, ended exactly once by :meth:`end`.

    Subclasses (``tools.ToolCall``, ``llm.LLMCall``) give the kind: ``kind``, ``span_kind``,
    :meth:`span_name`, :meth:`start_attributes`, and the public ways to finish that call :meth:`end`.
    """

    __slots__ = (
        "_done",
        "_start_ns",
        "_token",
        "args",
        "args_sha",
        "call_id",
        "recorded",
        "replay",
        "run",
        "span",
        "step_id",
    )

    kind: ClassVar[str] = "step"
    span_kind: ClassVar[SpanKind] = SpanKind.INTERNAL
    #: A context key under which an attached step of this kind is also current (``tools.active_tool_call``).
    context_key: ClassVar[Any] = None

    def __init__(self, run: Run, call_id: str | None, args: Any = None, args_sha: str | None = None) -> None:
        self.run = run
        self.call_id = call_id
        self.args = args
        self.args_sha = args_sha
        self.step_id = 0
        self.recorded = False  # reported after it happened (record_llm): checks judge it as counted
        self.replay: Any = None  # what serves this step instead of running it (a replay), see Policy
        self.span: Span = trace.INVALID_SPAN
        self._token: Any = None
        self._start_ns = time.perf_counter_ns()
        self._done = False

    @property
    def done(self) -> bool:
        """True once the step has ended (ok or failed)."""
        return self._done

    @property
    def runtime(self) -> Runtime | None:
        return self.run.ledger.runtime

    def span_name(self) -> str:
        raise NotImplementedError

    def start_attributes(self, rt: Runtime) -> dict[str, Any]:
        raise NotImplementedError

    def start_span(self, rt: Runtime, parent: Any, start_time_ns: int | None) -> Span:
        """The step's span, started now as a child of ``parent`` (None: the current context). A kind may
        defer it or use another library's span of the same call instead (``agent_otel.llm``)."""
        attributes = self.start_attributes(rt)
        return span_attributes.start_span(
            rt.tracer, self.span_name(), parent, self.span_kind, attributes, None, start_time_ns
        )

    def back_date(self, duration_ms: float) -> None:
        """Measure the step's duration from ``duration_ms`` before now (a request reported afterwards)."""
        self._start_ns = time.perf_counter_ns() - int(duration_ms * 1e6)

    def claim_end(self) -> bool:
        """Mark the step ended; False if it already was (so each outcome is recorded once)."""
        if self._done:
            return False
        self._done = True
        return True

    def detach(self) -> None:
        """Stop being the current span of the context that began the step (it ends elsewhere)."""
        token, self._token = self._token, None
        if token is not None:
            otel_context.detach(token)

    def end(
        self,
        attributes: dict[str, Any],
        exc: BaseException | str | None = None,
        description: str | None = None,
        end_span: bool = True,
        checked: bool = False,
    ) -> tuple[float, Any]:
        """End the span with ``attributes`` (ERROR status with ``description`` when failed with ``exc``;
        without one, ``Class: <redacted message>``) and leave its context. Returns ``(duration_ms, span
        context)`` for the step's event. The exception's message and stack trace leave only redacted.
        ``end_span`` False leaves the span itself open: its ender ends it (``llm``, usage held back).
        ``checked``: the attributes are plain ones (``span_attributes.set_attributes``).
        """
        span = self.span
        duration_ms = (time.perf_counter_ns() - self._start_ns) / 1e6
        try:
            if (
                not span_attributes.set_attributes(span, attributes, checked)
                and getattr(span, "dropped_attributes", 0)
                and self.runtime is not None
            ):
                keep_essential(span, {**self.start_attributes(self.runtime), **attributes})
            if exc is not None:
                if isinstance(exc, BaseException):
                    rt = self.runtime
                    message = record_exception(span, exc, rt.config if rt is not None else None)
                    if description is None:
                        description = f"{type(exc).__name__}: {message}"[:512]
                span.set_status(Status(StatusCode.ERROR, description))
        except Exception as err:  # e.g. an exception whose __str__ raises
            internal_error(f"recording a {self.kind} span's outcome", err)
        try:
            if end_span:
                span.end()
        except Exception as err:  # e.g. a raising span processor of the application
            internal_error(f"ending a {self.kind} span", err)
        token, self._token = self._token, None
        if token is not None:
            if type(token) is Token and token.var is _CONTEXT:  # _leave(token), inline: attached by begin()
                try:  # noqa: SIM105
                    _CONTEXT.reset(token)
                except (ValueError, RuntimeError):  # created in a different Context (see _leave)
                    pass
            else:
                _leave(token)
        return duration_ms, span.get_span_context()

    def event(
        self,
        event_kind: str,
        span_ctx: Any,
        duration_ms: float,
        status: str,
        error: str | None,
        tool: str | None = None,
        result_sha: str | None = None,
        usage: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The step's unified event (``step_id``, ``args_sha`` and the run's ids filled in): the fields of
        ``events.new_event``, in its order, and ``_sampled``, built in one display (this runs per step)."""
        run = self.run
        if _CONTEXT_ITEMS and type(span_ctx) is SpanContext:  # its properties read these items
            span_id = format(span_ctx[1], "016x") if span_ctx[5] else None
            sampled = (span_ctx[3] & 1) == 1  # TraceFlags.sampled
        else:
            span_id = format(span_ctx.span_id, "016x") if span_ctx.is_valid else None
            sampled = span_ctx.trace_flags.sampled
        # Fifteen items: a display of more is compiled to an insert per item, not one presized build.
        event = {
            "run_id": run.run_id,
            "kind": event_kind,
            "ts_ms": int(time.time() * 1000),
            "step_id": self.step_id,
            "tool": tool,
            "args_sha": self.args_sha,
            "result_sha": result_sha,
            "duration_ms": duration_ms,
            "status": status,
            "error": error,
            "stop_reason": None,
            "usage": usage,
            "trace_id": run.trace_id,
            "span_id": span_id,
            "agent": run.agent,
        }
        event["_sampled"] = sampled
        return event

    def after(
        self, result: Any, exc: BaseException | str | None, event: dict[str, Any] | None = None
    ) -> None:
        """Run the policies' after-step hooks; a failing hook is reported, never raised. The step's
        ``event``, if given, is queued then, with the records the hooks returned, in one queue operation."""
        more: tuple[Any, ...] = ()
        for hook in self.run.ledger.hooks.after_by_kind.get(self.kind, ()):
            try:
                records = hook(self, result, exc)
                if records is not None:
                    more += records
            except Exception as err:
                internal_error(f"a policy after a {self.kind} step", err)
        if event is not None or more:
            rt = self.run.ledger.runtime
            if rt is not None:
                if event is not None:
                    rt.pipeline.emit("event", event, *more)
                else:
                    rt.pipeline.emit(*more)

    def before_retry(self) -> None:
        """A failed attempt will be retried: the policies may stop the run here (AgentStopped)."""
        for hook in self.run.ledger.hooks.retry:
            hook(self)

    def timeout(self, timeout_s: float | None) -> float | None:
        """The step's deadline after the policies' say (``guards.tool_timeout_s``); 0 or None: none."""
        for hook in self.run.ledger.hooks.timeout:
            timeout_s = hook(self, timeout_s)
        return timeout_s or None


def policy_checks(step: Step) -> None:
    """The policies' checks of a step (may raise AgentStopped); :func:`begin` runs them after the run's
    pending stop. ``record_llm`` runs them after the fact, with ``step.recorded`` set."""
    for hook in step.run.ledger.hooks.before:
        hook(step)


def begin(
    step: Step,
    *,
    checks: bool = True,
    attach: bool = True,
    start_time_ns: int | None = None,
    serve: bool = True,
) -> Step | None:
    """Start ``step``: checks (unless ``checks`` is off), serving policies, the step_id and the span.

    Returns None when the run has not started or telemetry failed (the caller runs the call untraced);
    a step a policy serves is returned even then, since it must not run. ``attach`` makes the span
    current (callers that end the step on another thread pass False). ``serve=False``: the step's
    arguments are not known yet, so the serving policies are asked later (:func:`serve_late`).
    """
    run = step.run
    ledger = run.ledger
    hooks = ledger.hooks
    if checks:
        if ledger.pending is not None or run.result is not None:
            check_pending(run)
            # The run's block was left: what outlived it runs untraced, as a tool outside any run does,
            # so the same policies apply (a replay never runs a tool: it would send the e-mail again).
            if step.kind == "tool":
                outside_run(step.name)
            return None
        for hook in hooks.before:
            hook(step)
    if serve and hooks.serve:
        serve_late(step)
    rt = ledger.runtime
    if rt is None:
        return None
    try:
        with ledger.lock:
            run.steps += 1
            if step.kind == "tool":
                run.tool_calls += 1
            else:
                run.llm_calls += 1
            step.step_id = run.steps
        # The parent is whatever is current when this run is the current run (a tool span when tools
        # nest), handed to the span's start as it is (see _context_var); a run driven from a thread that
        # did not copy the context still parents to its run span.
        bound = current_run() if _bound_refs else _current.get()  # current_run(), inlined (hot path)
        if bound is not run:
            parent = trace.set_span_in_context(run.span)
        elif _CONTEXT is not None:
            parent = _CONTEXT.get()
        else:
            parent = otel_context.get_current()
        span = step.span = step.start_span(rt, parent, start_time_ns)
        if attach:
            # One new Context holding the span (and the step, for its kind's key): set_span_in_context
            # followed by set_value would copy the context twice.
            values = {**parent, _SPAN_KEY: span}
            if step.context_key is not None:
                values[step.context_key] = step
            context = otel_context.Context(values)
            step._token = _CONTEXT.set(context) if _CONTEXT is not None else otel_context.attach(context)
        if start_time_ns is None:
            step._start_ns = time.perf_counter_ns()
        return step
    except Exception as exc:
        internal_error(f"starting a {step.kind} span", exc)
        return step if step.replay is not None else None


def serve_late(step: Step) -> None:
    """Ask the serving policies (a replay) about ``step``: from :func:`begin`, or later for a step begun
    with ``serve=False``, once its arguments are known (a framework's tool span that does not carry them,
    whose ``@tool`` function got them). A replay may stop the run here (AgentStopped) or refuse the call
    (a Refusal)."""
    for serving in step.run.ledger.hooks.serve:
        served = serving(step)
        if served is not None:
            step.replay = served
            return


__all__ = [
    "CANCELLATION_TYPES",
    "MAX_TRACKED_FAILURES",
    "NO_HOOKS",
    "SPAN_BINDING",
    "Hooks",
    "Ledger",
    "Policy",
    "RunPolicy",
    "SpanBinding",
    "Step",
    "active_run",
    "attach_span",
    "begin",
    "bind_run",
    "bind_span",
    "check_pending",
    "context_binding",
    "current_run",
    "defer_stop",
    "internal_error",
    "is_cancellation",
    "note_failure",
    "outside_run",
    "policy_checks",
    "release_run_span",
    "serve_late",
    "slots_seen",
    "span_binding",
    "steps_bound",
    "track_bound_run",
    "unbind_run",
]
