"""Tool calls: the ``@tool`` decorator and the tool kind of step (:class:`ToolCall`).

``@tool``, ``run.call_tool`` and the framework integrations all use :func:`begin` and
:meth:`ToolCall.ok`/:meth:`ToolCall.fail`, so a tool call has the same span, attributes, metrics, event and
guards whichever way it was made; the life they share with LLM calls is the step engine's
(:mod:`agent_otel.steps`). What is a tool's own: the arguments and result hashes, retries, deadlines,
and a nested ``@tool`` claiming the call an integration opened. This is the hottest path in the SDK
(benchmarks/overhead.py): attributes are set in two batched calls, the metric is recorded from the event
on the pipeline's thread, and nothing here touches the network or the disk.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import threading
import time
import types
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace

from agent_otel import conventions as c
from agent_otel import span_attributes, steps
from agent_otel.hashing import canonical_json, sha, sha_bytes
from agent_otel.steps import Step, active_run, internal_error, is_cancelled, note_failure
from agent_otel.stop import AgentStopped, Flow, StopReason, control_flow, handoff_result
from agent_otel.tool_context import context_parameters

if TYPE_CHECKING:
    from agent_otel.run import Run
    from agent_otel.runtime import Runtime

P = ParamSpec("P")
R = TypeVar("R")

_TOOL_KEY = otel_context.create_key("agent_otel.tool_call")
_COROUTINE = types.CoroutineType
# Whether any tool call was ever made claimable (integrations do): until then an ``@tool`` function does
# not look for a call to claim (the hot path; see _claim).
_claims_seen = False

#: The functions declared ``@tool(side_effects=True)`` (the innermost function: what integrations pass as
#: a framework tool's ``fn``). A framework that calls such a function as its tool opens the step without
#: knowing it writes; :func:`begin` looks here, so the kill switch's ``writes`` scope blocks it too.
_writes: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()
# Its set of references, tested for emptiness instead of the WeakSet (whose __len__ is Python code, and
# which begin() tests at every call): it is never iterated, so the two are empty together.
_write_refs = _writes.data

#: The claimable call an integration opened without making its span current (``attach=False``: CrewAI's
#: hooks run before and after a tool, not around it). An ``@tool`` function the framework then runs in
#: the same context claims it as it claims an attached one: one step, not a step and a nested copy.
_detached: contextvars.ContextVar[ToolCall | None] = contextvars.ContextVar(
    "agent_otel_detached_tool_call", default=None
)


@dataclass(frozen=True, slots=True)
class ToolOptions:
    name: str
    side_effects: bool = False
    timeout_s: float | None = None
    retry: Any = None
    #: gen_ai.tool.description / gen_ai.tool.type (function: runs in the agent's process; extension: an
    #: external service the agent calls, such as an MCP server; datastore).
    description: str | None = None
    type: str = "function"
    #: The span name of the tool's calls (``execute_tool {name}``), made once (a call reads it).
    span_name: str = field(init=False, repr=False, compare=False)
    #: Whether the tool's own attributes at a call's start (name, type, description) are values the SDK's
    #: attribute cleaning leaves as they are (exactly str): then, with agent-otel's own ids, so are all of
    #: a call's start attributes, and agent_otel.span_attributes need not check them per call.
    plain: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "span_name", c.tool_span_name(self.name))
        described = self.description is None or type(self.description) is str
        object.__setattr__(self, "plain", type(self.name) is str and type(self.type) is str and described)


def describe(fn: Callable[..., Any] | None) -> str | None:
    """A function's description for ``gen_ai.tool.description``: the first paragraph of its docstring."""
    doc = inspect.getdoc(fn) if fn is not None else None
    if not doc:
        return None
    first = doc.strip().split("\n\n", 1)[0]
    return " ".join(first.split())[:1024] or None


_options_cache: dict[tuple[Any, ...], ToolOptions] = {}


def tool_options(
    name: str, side_effects: bool = False, timeout_s: float | None = None, retry: Any = None
) -> ToolOptions:
    """Options for ``run.call_tool``, shared between calls of the same tool (they are immutable)."""
    key = (name, side_effects, timeout_s, retry)
    try:
        return _options_cache[key]
    except (KeyError, TypeError):
        options = ToolOptions(name=name, side_effects=side_effects, timeout_s=timeout_s, retry=retry)
    if len(_options_cache) < 4096:
        with contextlib.suppress(TypeError):  # an unhashable retry_on predicate: just not cached
            _options_cache[key] = options
    return options


class ToolCall(Step):
    """One tool call in flight. Created by :func:`begin`; finished exactly once by ok() or fail()."""

    __slots__ = (
        "_claimable",
        "args_redacted",
        "attempts",
        "fn",
        "options",
        "result_json",
        "result_sha",
        "snapshot_json",
    )

    kind = "tool"
    context_key = _TOOL_KEY
    #: Whether the ``@tool`` function that claims this call ends it with its own result or error: a call
    #: its framework reports only through a span, which holds no result (``bridge.BridgedToolCall``).
    ends_with_fn = False

    def __init__(
        self,
        run: Run,
        options: ToolOptions,
        args: Any,
        args_sha: str,
        call_id: str | None,
        fn: Callable[..., Any] | None,
    ) -> None:
        super().__init__(run, call_id, args, args_sha)
        self.options = options
        self.fn = fn
        self.attempts = 1
        self._claimable = False
        self.result_json: bytes | None = None  # canonical JSON of the result (what result_sha hashes)
        self.result_sha: str | None = None
        # What a replay serves, recorded instead of result_json when they differ (set before ok()): an MCP
        # result is hashed over its structured content, and served with its content blocks too.
        self.snapshot_json: bytes | None = None
        self.args_redacted: Any = None  # with store_args: the args cut to the limit and redacted, once

    @property
    def name(self) -> str:
        return self.options.name

    @property
    def claimable(self) -> bool:
        """Whether a nested ``@tool`` function of the same name may use this call instead of its own."""
        return self._claimable

    @claimable.setter
    def claimable(self, value: bool) -> None:
        global _claims_seen
        if value:
            _claims_seen = True
        self._claimable = value

    def span_name(self) -> str:
        return self.options.span_name

    def args_found(self, args: Any) -> None:
        """The arguments of a call begun without them (a framework's span that does not carry them), as
        the ``@tool`` function that claimed it received them."""
        self.args, self.args_sha = args, sha(args)
        rt = self.run.ledger.runtime
        if rt is not None and rt.store_args_hash:
            try:
                self.span.set_attribute(c.TOOL_ARGS_SHA, self.args_sha)
            except Exception as exc:
                internal_error("recording a claimed tool call's arguments", exc)

    def start_span(self, rt: Runtime, parent: Any, start_time_ns: int | None) -> Any:
        """As ``Step.start_span``, telling agent_otel.span_attributes when the attributes are known to be
        plain (the tool's own are, its options say; the run id is unless the caller chose a non-str one;
        the step id and args hash are agent-otel's; a call id or the redacted arguments are checked)."""
        options = self.options
        attributes = self.start_attributes(rt)
        checked = (
            options.plain
            and self.call_id is None
            and rt.redactor is None
            and self.args_sha is not None
            and type(self.run.run_id) is str
        )
        return span_attributes.start_span(
            rt.tracer, options.span_name, parent, self.span_kind, attributes, None, start_time_ns, checked
        )

    def start_attributes(self, rt: Runtime) -> dict[str, Any]:
        options = self.options
        attributes: dict[str, Any] = {
            c.GEN_AI_OPERATION_NAME: c.OP_EXECUTE_TOOL,
            c.GEN_AI_TOOL_NAME: options.name,
            c.GEN_AI_TOOL_TYPE: options.type,
            c.RUN_ID: self.run.run_id,
            c.STEP_ID: self.step_id,
        }
        if rt.store_args_hash:  # off: the unkeyed hash of a guessable argument stays in the process
            attributes[c.TOOL_ARGS_SHA] = self.args_sha
        if options.description:
            attributes[c.GEN_AI_TOOL_DESCRIPTION] = options.description
        if self.call_id is not None:
            attributes[c.GEN_AI_TOOL_CALL_ID] = self.call_id
        if options.side_effects:
            attributes[c.TOOL_SIDE_EFFECTS] = True
        if rt.redactor is not None:
            self.args_redacted, attributes[c.GEN_AI_TOOL_CALL_ARGUMENTS] = rt.redactor.bounded(self.args)
        return attributes

    def ok(self, result: Any) -> None:
        """Finish successfully with ``result`` (hashed, never stored raw unless configured)."""
        if not self.claim_end():
            return
        try:
            self.result_json = raw = canonical_json(result)
            self.result_sha = digest = sha_bytes(raw)
            self._finish(c.STATUS_OK, "", digest, result, None)
        except Exception as exc:
            internal_error("recording a tool result", exc)

    def fail(self, exc: BaseException) -> None:
        """Finish with the exception the tool raised; the caller re-raises it unchanged.

        A cancellation (asyncio's, KeyboardInterrupt, SystemExit) is not the tool failing: the call ends
        ``cancelled``, span status UNSET (as a ``cancelled`` run's), with ``error.type`` naming what
        cancelled it. Its note still lets the agent's own deadline around it end the run ``tool_timeout``.
        Nor is a framework's control flow (agent_otel.stop.Flow): an interrupt ends the call
        ``interrupted``, a handoff ``ok``; a request to the model to try again (``ModelRetry``) is an
        ``error`` of the call that does not make the run's stop ``tool_error``.
        """
        flow = control_flow(exc)
        if flow is Flow.PAUSE:
            return self.interrupted()
        if flow is Flow.HANDOFF:
            return self.ok(handoff_result(exc))
        if not self.claim_end():
            return
        if flow is None:  # (ModelRetry is answered by the model: the call failed, the run did not)
            reason = StopReason.TOOL_TIMEOUT if _is_timeout(exc) else StopReason.TOOL_ERROR
            note_failure(self.run, exc, reason)
        cancelled = steps.is_cancellation(exc)
        try:
            if cancelled:  # the span's status stays UNSET
                self._finish(c.STATUS_CANCELLED, type(exc).__name__, None, None, exc, None)
            else:
                self._finish(c.STATUS_ERROR, type(exc).__name__, None, None, exc, exc)
        except Exception as err:
            internal_error("recording a tool error", err)

    def interrupted(self) -> None:
        """Finish a call that paused the agent for human input (LangGraph ``interrupt()``).

        Neither a result nor an error: ``agent.tool.status`` is ``interrupted``, the span status stays
        UNSET, and the run is not failed by it (the framework resumes the call in a later run).
        """
        if not self.claim_end():
            return
        try:
            self._finish(c.STATUS_INTERRUPTED, "", None, None, None)
        except Exception as exc:
            internal_error("recording an interrupted tool call", exc)

    def retrying(self, exc: BaseException, delay_s: float) -> None:
        """Record a failed attempt that will be retried; the run's retry budget may stop the run here."""
        run = self.run
        with run.ledger.lock:
            run.retries += 1
        try:
            self.span.add_event(
                c.EVENT_RETRY,
                {"attempt": self.attempts, c.ERROR_TYPE: type(exc).__name__, "delay_s": round(delay_s, 4)},
            )
        except Exception as err:
            internal_error("recording a retry", err)
        try:
            self.before_retry()
        except (AgentStopped, steps.Refusal) as stopped:  # a guard stopped the run, or denied the retry
            self.fail(exc)
            raise stopped from exc
        rt = run.ledger.runtime
        if rt is not None:
            rt.metrics.failed_attempt(run.agent, self.options.name, type(exc).__name__, run.run_id)

    def _finish(
        self,
        status: str,
        error_type: str,
        result_sha: str | None,
        result: Any,
        exc: BaseException | None,
        failed: BaseException | None = None,
    ) -> None:
        """``exc`` ended the call (for the policies' hooks); ``failed``, the same when it failed (the span's
        ERROR status: the class and the redacted message), None for a cancellation."""
        rt = self.run.ledger.runtime
        attributes: dict[str, Any] = {c.TOOL_STATUS: status, c.TOOL_ATTEMPTS: self.attempts}
        if result_sha is not None and (rt is None or rt.store_args_hash):
            attributes[c.TOOL_RESULT_SHA] = result_sha
        if exc is not None:
            attributes[c.ERROR_TYPE] = error_type
        redactor = rt.redactor if rt is not None else None
        interrupted = status == c.STATUS_INTERRUPTED
        result_redacted = None
        if redactor is not None and exc is None and not interrupted:
            try:
                result_redacted, attributes[c.GEN_AI_TOOL_CALL_RESULT] = redactor.bounded(result)
            except Exception as err:
                internal_error("recording a tool span's outcome", err)
        # A result's outcome is plain (agent-otel's status, attempt count and hash: str, int, str); an error's
        # type and the redacted values are checked.
        checked = exc is None and redactor is None
        duration_ms, span_ctx = self.end(attributes, failed, None, True, checked)
        if rt is None:
            return
        # Always emitted: the per-tool metrics are recorded from this event on the pipeline's thread.
        event = self.event(  # (positional: no keyword matching per call)
            c.KIND_TOOL_RESULT,
            span_ctx,
            round(duration_ms, 3),
            status,
            error_type or None,
            self.options.name,
            result_sha,
        )
        if self.attempts > 1:
            event["attempts"] = self.attempts
        if redactor is not None:  # the copies the span got: cut to the limit, redacted once
            event["args"] = self.args_redacted
            if exc is None and not interrupted:
                event["result"] = result_redacted
        if interrupted:  # neither a result nor an error: nothing for the policies (a recording) to keep
            rt.pipeline.emit("event", event)
        else:  # the event is queued with what the policies record of the call (its snapshot), in one go
            self.after(result, exc, event)


def _is_timeout(exc: BaseException) -> bool:
    """Ours (ToolTimeout) or the tool's own (socket timeouts, asyncio deadlines): both are "tool_timeout".

    So is a cancellation: the agent's own ``asyncio.timeout`` / ``wait_for`` around the call cancels the
    tool, and the TimeoutError that then leaves the run is raised from this CancelledError, whose note
    decides the run's reason (it read ``tool_error``). A task cancelled outright leaves the run as a
    CancelledError, which the run reads as ``cancelled`` before any note.
    """
    return isinstance(exc, TimeoutError) or is_cancelled(exc)


def writes_declared() -> bool:
    """Whether any ``@tool(side_effects=True)`` function exists: integrations look a framework tool's
    function up only then (one truth test per call otherwise)."""
    return bool(_writes)


def _declared_write(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is a declared write: the function itself, or the ``@tool`` wrapper of one (what
    frameworks that keep the decorated function hand over: a smolagents ``@tool``'s or ``Tool``
    subclass's ``forward``, a LlamaIndex ``FunctionTool``'s ``fn``), bound as a method or not."""
    try:
        if fn in _writes:
            return True
        inner = inspect.unwrap(fn)
        return inner is not fn and inner in _writes
    except (TypeError, ValueError):  # unhashable (a dataclass with __call__), or a __wrapped__ cycle
        return False


def begin(
    run: Run,
    options: ToolOptions,
    args: Any,
    call_id: str | None = None,
    *,
    fn: Callable[..., Any] | None = None,
    attach: bool = True,
    claimable: bool = False,
    start_time_ns: int | None = None,
) -> ToolCall | None:
    """Start a tool call of ``run``: guards first (which may raise AgentStopped), then the span.

    Returns None if telemetry itself failed, in which case the caller just runs the tool. ``attach``
    makes the tool span current (callers that finish the call on another thread pass False);
    ``claimable`` lets a nested ``@tool`` function of the same name use this call instead of a second span;
    ``start_time_ns`` back-dates the span of a call reported after it started (with ``call.back_date``).
    Under replay the call is matched against the recording here: a strict divergence stops the run and an
    unrecorded call raises, before any step or span exists (``agent_otel.replay``); a matched call has
    ``call.replay`` set and must be served, not run.
    """
    if fn is not None and _write_refs and not options.side_effects and _declared_write(fn):
        options = replace(options, side_effects=True)
    call = ToolCall(run, options, args, sha(args), call_id, fn)
    if claimable:
        call.claimable = True
    if not steps.slots_seen():
        begun = steps.begin(call, attach=attach, start_time_ns=start_time_ns)
    else:
        current = trace.get_current_span()
        binding = steps.span_binding(current)  # a framework's tool span waiting for this step (bridge)?
        begun = steps.begin(call, attach=attach, start_time_ns=start_time_ns)
        if binding is not None and begun is not None and binding.fill(run, begun):
            current.set_attribute(c.STEP_ID, begun.step_id)
    if claimable and not attach and begun is not None:
        _detached.set(call)
    return begun  # type: ignore[return-value]


def active_tool_call(context: otel_context.Context | None = None) -> ToolCall | None:
    """The tool call whose span is current in ``context`` (default: the current one), if any.

    Integrations use it to avoid double spans. A framework's tool span that the GenAI span bridge made a
    step of (or a span under it) counts too: it cannot carry the step in the context.
    """
    value = (steps.current_context() if context is None else context).get(_TOOL_KEY)  # get_value inlined
    if isinstance(value, ToolCall):
        return value
    if not steps.steps_bound():  # no span's binding names a step (no bridged step was ever made)
        return None
    binding = steps.span_binding(trace.get_current_span(context))
    step = binding.step if binding is not None else None
    return step if isinstance(step, ToolCall) else None


def call_sync(
    run: Run,
    options: ToolOptions,
    fn: Callable[..., R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    hashed: Any,
    call_id: str | None = None,
) -> R:
    call = begin(run, options, hashed, call_id, fn=fn)
    if call is None:
        return fn(*args, **kwargs)
    if call.replay is not None:
        return call.replay.serve(call)  # the recorded result (or error); fn is not called
    options = call.options
    # timeout_for(call), inlined: a tool with neither a deadline nor retries is called right here.
    timeout_s = call.timeout(options.timeout_s) if run.ledger.hooks.timeout else options.timeout_s or None
    try:
        if timeout_s is None and options.retry is None:
            result = fn(*args, **kwargs)
        else:
            result = _attempt_sync(call, fn, args, kwargs, timeout_s)
    except BaseException as exc:
        call.fail(exc)
        raise
    if type(result) is _COROUTINE:  # a sync callable over async code (a lambda): await its work
        call.detach()  # the caller's context lets go of the span now; the work runs where it is awaited
        never = lambda: call.fail(RuntimeError("the coroutine the tool returned was never awaited"))  # noqa: E731
        run.ledger.hold_open(never)
        return _awaited(call, result, never)  # type: ignore[return-value]
    call.ok(result)
    return result


async def _awaited(call: ToolCall, coro: Awaitable[R], never: Callable[[], None]) -> R:
    """The coroutine a sync tool returned, as the step: it ends when the coroutine's work does, with its
    result or error (it ended at the return, a 0 ms step whose result was the coroutine's repr). Its
    work runs under the tool span; a coroutine never awaited ends the step failed when the run stops."""
    try:
        with trace.use_span(call.span, end_on_exit=False):
            result = await coro
    except BaseException as exc:
        call.fail(exc)
        raise
    finally:
        call.run.ledger.let_go(never)
    call.ok(result)
    return result


async def call_async(
    run: Run,
    options: ToolOptions,
    fn: Callable[..., Awaitable[R]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    hashed: Any,
    call_id: str | None = None,
) -> R:
    call = begin(run, options, hashed, call_id, fn=fn)
    if call is None:
        return await fn(*args, **kwargs)
    if call.replay is not None:
        return call.replay.serve(call)
    try:
        result = await _attempt_async(call, fn, args, kwargs, timeout_for(call))
    except BaseException as exc:
        call.fail(exc)
        raise
    call.ok(result)
    return result


def stream_sync(
    run: Run, options: ToolOptions, fn: Callable[..., Iterator[Any]], args: Any, kwargs: Any, hashed: Any
) -> Iterator[Any]:
    """A generator tool: one step from the first item to the last (or to the consumer closing it), whose
    result is the list of items yielded, hashed, recorded and yielded again by a replay. The step begins
    at the first ``next()``, when the body starts. Timeouts and retries do not apply to a stream. What the
    consumer sends or throws in reaches the generator, and its ``return`` value is this one's, as with
    ``yield from``; a return value other than None is part of the result (:meth:`_Kept.result`), which a
    replay returns again after the items."""
    call = begin(run, options, hashed, fn=fn, attach=False)
    if call is None:
        return (yield from fn(*args, **kwargs))
    if call.replay is not None:
        items, returned = _recorded_stream(call, call.replay.serve(call))
        yield from _served(items)
        return returned
    kept = _Kept()
    end = kept.ender(call)
    run.ledger.hold_open(end)  # a stream left unfinished ends when the run does, not at garbage collection
    stream = fn(*args, **kwargs)
    try:
        try:
            item = next(stream)
            while True:
                kept.add(item)
                try:
                    sent = yield item
                except GeneratorExit:
                    raise
                except BaseException as thrown:  # the consumer's throw(): the generator may handle it
                    item = stream.throw(thrown)
                else:
                    item = next(stream) if sent is None else stream.send(sent)  # what the consumer sends
        except StopIteration as stop:
            value = stop.value
    except GeneratorExit:
        call.ok(kept.result())  # the consumer stopped: the step ends with what it took
        raise
    except BaseException as exc:
        call.fail(exc)
        raise
    finally:
        run.ledger.let_go(end)
        stream.close()
    call.ok(kept.result(value))
    return value


async def stream_async(
    run: Run, options: ToolOptions, fn: Callable[..., AsyncIterator[Any]], args: Any, kwargs: Any, hashed: Any
) -> AsyncIterator[Any]:
    """:func:`stream_sync` for an async generator tool (which has no return value)."""
    call = begin(run, options, hashed, fn=fn, attach=False)
    if call is not None and call.replay is not None:
        for item in _recorded_stream(call, call.replay.serve(call))[0]:
            try:  # as _served: what the consumer sends or throws in is answered with the next item
                yield item
            except GeneratorExit:
                raise
            except BaseException:
                continue
        return
    kept = _Kept()
    end = kept.ender(call) if call is not None else None
    if end is not None:
        run.ledger.hold_open(end)
    else:  # untraced (the run's block was left, or telemetry failed): nothing to keep
        kept.items = None
    stream = fn(*args, **kwargs)
    try:
        try:
            item = await anext(stream)
            while True:
                kept.add(item)
                try:
                    sent = yield item
                except GeneratorExit:
                    raise
                except BaseException as thrown:  # the consumer's athrow(): the generator may handle it
                    item = await stream.athrow(thrown)  # type: ignore[attr-defined]
                else:
                    item = await (anext(stream) if sent is None else stream.asend(sent))  # type: ignore[attr-defined]
        except StopAsyncIteration:
            pass
    except GeneratorExit:
        if call is not None:
            call.ok(kept.result())
        raise
    except BaseException as exc:
        if call is not None:
            call.fail(exc)
        raise
    finally:
        if end is not None:
            run.ledger.let_go(end)
        await stream.aclose()  # type: ignore[attr-defined]
    if call is not None:
        call.ok(kept.result())


# A stream's items are its result only up to here: a tool yielding the lines of a big file must not make
# agent-otel hold them all. Beyond, the result is the count, {"$stream_items": n}, which a replay refuses.
STREAM_KEEP_ITEMS = 10_000
STREAM_KEEP_BYTES = 16 << 20  # estimated: strings and bytes by length, anything else 100 bytes
# The keys of the result of a generator that returned a value: its items, and what it returned.
STREAM_ITEMS = "$items"
STREAM_RETURN = "$return"


class _Kept:
    """The items of a stream, kept for its result while they fit the bounds above; then the count."""

    __slots__ = ("count", "items", "size")

    def __init__(self) -> None:
        self.items: list[Any] | None = []
        self.count = self.size = 0

    def add(self, item: Any) -> None:
        self.count += 1
        if self.items is None:
            return
        self.size += len(item) if isinstance(item, str | bytes) else 100
        if self.count > STREAM_KEEP_ITEMS or self.size > STREAM_KEEP_BYTES:
            self.items = None
        else:
            self.items.append(item)

    def result(self, returned: Any = None) -> Any:
        """The items; with the generator's return value when it returned one other than None:
        ``{"$items": [...], "$return": value}``."""
        if self.items is None:
            return {"$stream_items": self.count}
        if returned is None:
            return self.items
        return {STREAM_ITEMS: self.items, STREAM_RETURN: returned}

    def ender(self, call: ToolCall) -> Callable[[], None]:
        """How the run ends ``call`` if the stream is still open when it stops: with what was taken."""
        return lambda: call.ok(self.result())


def _served(items: list[Any]) -> Iterator[Any]:
    """A replay's stream: the recorded items in order, whatever the consumer sends or throws in (the
    generator answered those with the next item, which is what was recorded; a list iterator would raise
    AttributeError on ``send`` and let a ``throw`` out, where the recorded run went on)."""
    for item in items:
        try:
            yield item
        except GeneratorExit:
            raise
        except BaseException:  # the recorded generator handled it: its next item follows
            continue


def _recorded_stream(call: ToolCall, value: Any) -> tuple[list[Any], Any]:
    """The recorded items of a stream and the generator's return value (None when it returned none)."""
    if isinstance(value, list):
        return value, None
    if isinstance(value, dict) and value.keys() == {STREAM_ITEMS, STREAM_RETURN}:
        items = value[STREAM_ITEMS]
        if isinstance(items, list):
            return items, value[STREAM_RETURN]
    raise TypeError(
        f"the stream of the tool {call.name!r} was not recorded item by item (too long, or recorded by an "
        f"older agent-otel): a replay cannot serve it"
    )


class ToolTimeout(TimeoutError):
    """A tool call exceeded its ``timeout_s``; ``error.type`` on the span is this class's name."""

    def __init__(self, tool: str, timeout_s: float) -> None:
        self.tool = tool
        self.timeout_s = timeout_s
        super().__init__(f"tool {tool!r} timed out after {timeout_s:g}s")


def timeout_for(call: ToolCall) -> float | None:
    """The call's deadline: the tool's ``timeout_s`` or the policies' default; 0 means none (a tool's way
    out of ``guards.tool_timeout_s``)."""
    if call.run.ledger.hooks.timeout:
        return call.timeout(call.options.timeout_s)
    return call.options.timeout_s or None  # what Step.timeout gives when no policy has a say


def _attempt_sync(
    call: ToolCall,
    fn: Callable[..., R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    timeout_s: float | None,
) -> R:
    retry = call.options.retry
    while True:
        try:
            if timeout_s is None:
                return fn(*args, **kwargs)
            return call_with_deadline(fn, args, kwargs, timeout_s, call.options.name)
        except BaseException as exc:
            if retry is None or not retry.should_retry(exc, call.attempts):
                raise
            delay = retry.delay(call.attempts)
            call.retrying(exc, delay)
            time.sleep(delay)
            call.attempts += 1


async def _attempt_async(
    call: ToolCall,
    fn: Callable[..., Awaitable[R]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    timeout_s: float | None,
) -> R:
    import asyncio

    retry = call.options.retry
    while True:
        try:
            if timeout_s is None:
                return await fn(*args, **kwargs)
            try:
                async with asyncio.timeout(timeout_s) as deadline:
                    return await fn(*args, **kwargs)
            except TimeoutError as exc:
                if deadline.expired():  # ours, not a TimeoutError the tool raised itself
                    raise ToolTimeout(call.options.name, timeout_s) from exc
                raise
        except BaseException as exc:
            if retry is None or not retry.should_retry(exc, call.attempts):
                raise
            delay = retry.delay(call.attempts)
            call.retrying(exc, delay)
            await asyncio.sleep(delay)
            call.attempts += 1


def call_with_deadline(
    fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any], timeout_s: float, tool: str
) -> R:
    """Run a sync tool on a daemon thread and give up waiting after ``timeout_s``.

    Python cannot kill a thread: on timeout the tool keeps running in the background until it returns,
    and its result is discarded. The thread is a daemon so a hung tool cannot block interpreter exit.
    The thread runs in a copy of the caller's context, so spans it makes are children of the tool span.
    """
    ctx = contextvars.copy_context()
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["result"] = ctx.run(fn, *args, **kwargs)
        except BaseException as exc:
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name=f"agent-otel-tool-{tool}", daemon=True).start()
    if not done.wait(timeout_s):
        raise ToolTimeout(tool, timeout_s)
    if "error" in box:
        raise box["error"]
    return box["result"]


class _ArgBinder:
    """Maps a call's positional and keyword args to ``{parameter: value}`` without inspect.bind's cost.

    A framework's context parameter (see :mod:`agent_otel.tool_context`) is left out: it is the
    framework's, not the model's, and differs from one run (or turn) to the next.
    """

    __slots__ = ("context", "names", "skip_first", "var_positional")

    def __init__(self, func: Callable[..., Any]) -> None:
        try:
            params = list(inspect.signature(func).parameters.values())
        except (TypeError, ValueError):
            params = []
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        names = [p.name for p in params if p.kind in positional]
        self.skip_first = bool(names) and names[0] in ("self", "cls")
        self.names = tuple(names[1:] if self.skip_first else names)
        self.var_positional = next(
            (p.name for p in params if p.kind is inspect.Parameter.VAR_POSITIONAL), "args"
        )
        self.context = context_parameters(func, params)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if not args:
            # A call by keyword: ``**kwargs`` made a fresh dict for this call already (but the function is
            # called with it: a framework's context is left out of a copy).
            return self._without_context(kwargs) if self.context else kwargs
        if self.skip_first:
            args = args[1:]
        names = self.names
        bound = dict(zip(names, args, strict=False))
        if len(args) > len(names):
            bound[self.var_positional] = list(args[len(names) :])
        if kwargs:
            bound.update(kwargs)
        return self._without_context(bound) if self.context else bound

    def _without_context(self, bound: dict[str, Any]) -> dict[str, Any]:
        context = self.context
        return {name: value for name, value in bound.items() if name not in context}


def _name_of(func: Callable[..., Any]) -> str:
    """A tool's default name: the function's; a ``functools.partial``'s function's; a callable object's
    class name."""
    name = getattr(func, "__name__", None)
    if isinstance(name, str):
        return name
    if isinstance(func, functools.partial):
        return _name_of(func.func)
    return type(func).__name__


def is_async_callable(func: Callable[..., Any]) -> bool:
    """``inspect.iscoroutinefunction``, also true for a callable object whose ``__call__`` is one."""
    if inspect.iscoroutinefunction(func):
        return True
    return not inspect.isroutine(func) and inspect.iscoroutinefunction(type(func).__call__)


def _wraps(fn: Any, func: Callable[..., Any]) -> bool:
    """Whether the framework's ``fn`` wraps ``func``: it kept the ``@tool`` wrapper (a LlamaIndex
    ``FunctionTool``'s function), maybe inside its own (a smolagents ``@tool``'s ``forward``), bound as a
    method or not; a tool renamed by ``@tool(name=...)`` is known by this alone."""
    try:
        return fn is not None and inspect.unwrap(fn, stop=lambda f: f is func) is func
    except ValueError:  # a __wrapped__ cycle
        return False


def _claim(options: ToolOptions, func: Callable[..., Any]) -> ToolCall | None:
    """The call if a framework integration already opened this very tool call (one span, not two)."""
    if not _claims_seen:  # no call was ever claimable: none to claim
        return None
    active = active_tool_call()
    if active is None or not active.claimable:
        active = _detached.get()
        if active is None and steps.steps_bound():
            # A framework's own execute_tool span, current around the function, whose step the bridge or
            # an integration's hook began without making it current (AG2, Google ADK, Strands...).
            binding = steps.context_binding()
            step = binding.step if binding is not None else None
            active = step if isinstance(step, ToolCall) and step.span is trace.get_current_span() else None
        if active is not None and (active.done or active.run is not active_run()):
            return None  # a detached call that ended (or of another run) is nobody's to claim
    if (
        active is not None
        and active.claimable
        and (
            active.fn is func
            or active.name == options.name
            # renamed by @tool(name=...): frameworks name a tool after its function (AG2, ADK, Strands, MCP)
            or active.name == getattr(func, "__name__", None)
            or _wraps(active.fn, func)
        )
    ):
        active.claimable = False
        if options.retry is not None or options.timeout_s is not None:
            # The function's own retry and deadline, which the framework's call knew nothing of: applied
            # here, once, around the function (they were not applied at all).
            active.options = replace(active.options, retry=options.retry, timeout_s=options.timeout_s)
        if options.side_effects and not active.options.side_effects:
            _claimed_write(active)
        return active
    return None


def _claimed_write(call: ToolCall) -> None:
    """A declared write claimed a call its framework opened as a read (the integration could not find the
    function: an MCP server's tool in this process, a framework's own tool class): it is a write from
    now on, and the guards that stop a call *now* (the kill switch, as before a retry) judge it so,
    before the function runs."""
    call.options = replace(call.options, side_effects=True)
    try:
        call.span.set_attribute(c.TOOL_SIDE_EFFECTS, True)
    except Exception as exc:
        internal_error("marking a claimed tool call a write", exc)
    try:
        call.before_retry()
    except (AgentStopped, steps.Refusal) as stopped:  # blocked: the function does not run
        call.fail(stopped)
        raise


def _claimed_args(
    claimed: ToolCall, binder: _ArgBinder, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """A call opened without its arguments (a framework span that does not carry them) gets the
    function's; a replay matches it now (which may stop the run, or refuse the call: the function does
    not run)."""
    if claimed.args_sha is None:
        claimed.args_found(binder.bind(args, kwargs))


def _run_claimed(
    claimed: ToolCall,
    func: Callable[..., R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    binder: _ArgBinder,
) -> R:
    """The function of a call a framework opened: served under replay; else run, under the ``@tool``'s own
    ``retry`` and ``timeout_s`` if it has them (``guards.tool_timeout_s`` is the framework call's, not
    applied a second time here)."""
    _claimed_args(claimed, binder, args, kwargs)
    if claimed.replay is not None:  # an integration opened it; serve it instead of running it
        return claimed.replay.serve(claimed)  # type: ignore[no-any-return]
    options = claimed.options
    if not claimed.ends_with_fn:
        if options.retry is None and options.timeout_s is None:
            return func(*args, **kwargs)
        return _attempt_sync(claimed, func, args, kwargs, options.timeout_s or None)
    try:
        result = _attempt_sync(claimed, func, args, kwargs, options.timeout_s or None)
    except BaseException as exc:
        claimed.fail(exc)
        raise
    claimed.ok(result)
    return result


async def _await_claimed(
    claimed: ToolCall,
    func: Callable[..., Awaitable[R]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    binder: _ArgBinder,
) -> R:
    """:func:`_run_claimed` for a coroutine function."""
    _claimed_args(claimed, binder, args, kwargs)
    if claimed.replay is not None:
        return claimed.replay.serve(claimed)  # type: ignore[no-any-return]
    options = claimed.options
    if not claimed.ends_with_fn:
        if options.retry is None and options.timeout_s is None:
            return await func(*args, **kwargs)
        return await _attempt_async(claimed, func, args, kwargs, options.timeout_s or None)
    try:
        result = await _attempt_async(claimed, func, args, kwargs, options.timeout_s or None)
    except BaseException as exc:
        claimed.fail(exc)
        raise
    claimed.ok(result)
    return result


@overload
def tool(fn: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def tool(
    fn: str | None = None,
    /,
    *,
    name: str | None = None,
    timeout_s: float | None = None,
    retry: Any = None,
    side_effects: bool = False,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def tool(
    fn: Callable[..., Any] | str | None = None,
    /,
    *,
    name: str | None = None,
    timeout_s: float | None = None,
    retry: Any = None,
    side_effects: bool = False,
) -> Any:
    """Make a function a tool: inside a run each call is a child span with hashes, status and metrics.

    Works on sync and async functions, methods and keyword-only signatures. Outside any run the function
    is called as it is. ``side_effects=True`` marks tools that change the world (the kill switch's
    ``writes`` scope blocks exactly these).
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        if isinstance(func, classmethod | staticmethod):  # @tool above @classmethod: wrap what it wraps
            return type(func)(decorate(func.__func__))
        options = ToolOptions(
            name=name or _name_of(func),
            side_effects=side_effects,
            timeout_s=timeout_s,
            retry=retry,
            description=describe(func),
        )
        binder = _ArgBinder(func)
        if side_effects:
            with contextlib.suppress(TypeError, ValueError):  # not weak-referenceable: only ours apply
                _writes.add(inspect.unwrap(func))

        # The wrappers are of the function's own kind (generator, async generator, coroutine function),
        # so what frameworks ask `inspect` about a tool (is it async? does it stream?) stays true. A
        # generator's run is the one its first item is taken in, when its body starts.
        if inspect.isgeneratorfunction(func):

            @functools.wraps(func)
            def stream_wrapper(*args: Any, **kwargs: Any) -> Any:
                run = active_run()
                if run is None:
                    steps.outside_run(options.name)  # executed as is, except during a replay
                    return (yield from func(*args, **kwargs))
                return (yield from stream_sync(run, options, func, args, kwargs, binder.bind(args, kwargs)))

            stream_wrapper.__agent_otel_tool__ = options  # type: ignore[attr-defined]
            return stream_wrapper

        if inspect.isasyncgenfunction(func):

            @functools.wraps(func)
            async def astream_wrapper(*args: Any, **kwargs: Any) -> Any:
                run = active_run()
                if run is None:
                    steps.outside_run(options.name)
                    stream = func(*args, **kwargs)
                else:
                    stream = stream_async(run, options, func, args, kwargs, binder.bind(args, kwargs))
                # ``yield from`` for an async generator (there is none): items out, asend/athrow in.
                try:
                    item = await anext(stream)
                    while True:
                        try:
                            sent = yield item
                        except GeneratorExit:
                            raise
                        except BaseException as exc:
                            item = await stream.athrow(exc)
                        else:
                            item = await (anext(stream) if sent is None else stream.asend(sent))
                except StopAsyncIteration:
                    return
                finally:
                    await stream.aclose()

            astream_wrapper.__agent_otel_tool__ = options  # type: ignore[attr-defined]
            return astream_wrapper

        if is_async_callable(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                run = active_run()
                if run is None:
                    steps.outside_run(options.name)  # executed as is, except during a replay
                    return await func(*args, **kwargs)
                claimed = _claim(options, func)
                if claimed is not None:
                    return await _await_claimed(claimed, func, args, kwargs, binder)
                return await call_async(run, options, func, args, kwargs, binder.bind(args, kwargs))

            async_wrapper.__agent_otel_tool__ = options  # type: ignore[attr-defined]
            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            run = active_run()
            if run is None:
                steps.outside_run(options.name)  # executed as is, except during a replay
                return func(*args, **kwargs)
            claimed = _claim(options, func)
            if claimed is not None:
                return _run_claimed(claimed, func, args, kwargs, binder)
            return call_sync(run, options, func, args, kwargs, binder.bind(args, kwargs))

        wrapper.__agent_otel_tool__ = options  # type: ignore[attr-defined]
        return wrapper

    if isinstance(fn, str):  # @tool("name"), as run("name") takes an agent's
        if name is not None and name != fn:
            raise TypeError(f"tool() got two names: {fn!r} and name={name!r}")
        name, fn = fn, None
    if fn is not None:
        return decorate(fn)
    return decorate
