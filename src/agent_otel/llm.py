"""LLM calls: the LLM kind of step, a ``chat {model}`` child span per request, with usage and spend
added to the run (the life it shares with tool calls is the step engine's, :mod:`agent_otel.steps`).

Two ways in: :func:`record` for usage known after the fact (``run.record_llm``), and
:func:`begin`/:class:`LLMCall` for integrations that wrap the request itself (OpenAI and Anthropic clients,
framework chat models) so that the span covers the request and a failure can end the run as
``model_error``.

Input tokens are always *all* input tokens, cached ones included (the OpenTelemetry GenAI meaning of
``gen_ai.usage.input_tokens``), so budgets and ``agent_tokens_per_request`` do not change with caching.
The cache counts are extra detail, part of that total: they only lower (or, for cache writes, raise)
the price of the tokens they cover, and appear as ``gen_ai.usage.cache_read.input_tokens`` /
``gen_ai.usage.cache_creation.input_tokens`` on the ``chat`` span when non-zero.

The ``chat`` span is a CLIENT span with the GenAI attributes the integration knows (provider, request
parameters, response id, model and finish reasons, the tool calls the model asked for, and, only with
``logging.events.capture_content``, the messages, redacted and truncated like ``store_args``). When the
client library emits its own GenAI span for the request (anthropic 2.x, PydanticAI's instrumentation),
that span *is* the request's span (:mod:`agent_otel.native`): agent-otel adds its ids to it and opens no
second span, so the request's usage is on one span only.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from agent_otel import conventions as c
from agent_otel import native, steps
from agent_otel.genai import guess_provider, request_attributes, strings
from agent_otel.redaction import CUT_SLACK, for_config
from agent_otel.steps import Step, check_pending, internal_error, note_failure
from agent_otel.stop import StopReason

if TYPE_CHECKING:
    from agent_otel.run import Run
    from agent_otel.runtime import Runtime


class LLMCall(Step):
    """One LLM request in flight; finished exactly once by :meth:`finish` or :meth:`fail`.

    Its span is agent-otel's own ``chat`` span, or the library's own span of the request once adopted
    (``native``). A call begun with ``defer=True`` has no span until a native span is adopted or the
    call ends (then its own span opens, back-dated to the call's start).
    """

    __slots__ = (
        "_claim",
        "_parent",
        "_start_time_ns",
        "agent_name",
        "api_usage",
        "attributes",
        "bridged",
        "by_run",
        "deferred",
        "held",
        "model",
        "native",
        "provider",
        "taken",
    )

    kind = "llm"
    span_kind = SpanKind.CLIENT

    def __init__(self, run: Run, model: str, call_id: str | None) -> None:
        super().__init__(run, call_id)
        self.model = model
        self.provider: str | None = None
        self.agent_name: str | None = None  # the active agent, when it is not the run's (handoffs)
        self.attributes: dict[str, Any] = {}  # request and response attributes for the span
        self.native: Any = None  # the library's own span of this request, once adopted
        self.deferred = False
        # A step the GenAI span bridge made of a framework's request span: a client integration that
        # records the same request inside that span takes it over (``taken``), so the request is one step.
        self.bridged = False
        self.taken: LLMCall | None = None
        # Whether the API's own response reported usage, when a client integration read it for a framework
        # that reports the usage itself (None: not seen). Some frameworks turn "none reported" into 0 tokens.
        self.api_usage: bool | None = None
        self._parent: Any = None
        self._start_time_ns = time.time_ns()
        self.held: Any = None  # how the run ends this call if it is still open then (end_with_run)
        #: Ended by its run's stop (end_with_run): the usage and spend it recorded then, or True while the
        #: run is ending it. The stream goes on for its reader, and its final usage comes later (late_usage).
        self.by_run: tuple[int, int, float] | bool | None = None
        self._claim = [True]  # popped by the one end that wins (claim_end)

    def claim_end(self) -> bool:
        """Mark the step ended; False if it already was. Atomic: a stream's step may be ended by the run
        stopping on one thread while another thread reads the stream to its end. ``list.pop`` is one
        operation under the GIL (and under the free-threaded build's per-object lock), so exactly one
        of them wins, with no lock taken when there is no race."""
        try:
            self._claim.pop()
        except IndexError:
            return False
        self._done = True
        return True

    def span_name(self) -> str:
        return c.llm_span_name(self.model)

    def start_attributes(self, rt: Runtime) -> dict[str, Any]:
        run = self.run
        attributes: dict[str, Any] = {
            c.GEN_AI_OPERATION_NAME: c.OP_CHAT,
            c.GEN_AI_REQUEST_MODEL: self.model,
            c.RUN_ID: run.run_id,
            c.STEP_ID: self.step_id,
            c.GEN_AI_AGENT_NAME: self.agent_name or run.agent,
        }
        if self.provider:
            attributes[c.GEN_AI_PROVIDER_NAME] = self.provider
        if run.conversation_id is not None:
            attributes[c.GEN_AI_CONVERSATION_ID] = run.conversation_id
        attributes.update(self.attributes)
        return c.with_previous_names(attributes) if c.gen_ai_dup() else attributes

    def start_span(self, rt: Runtime, parent: Any, start_time_ns: int | None) -> Span:
        """A library's request span that is current already is adopted; a deferred call opens none yet."""
        if start_time_ns is not None:
            self._start_time_ns = start_time_ns
        taken = self.taken
        if taken is not None:  # the bridge's step of this request's framework span: this call is it now
            self.step_id = taken.step_id
            taken.span.set_attributes(self.adopt(taken.span))
            binding = steps.span_binding(taken.span)
            if binding is not None:
                binding.step = self
            return taken.span
        enclosing = native.enclosing_chat_span(self.run)
        if enclosing is not None:
            enclosing.set_attributes(self.adopt(enclosing))
            return enclosing
        if self.deferred:
            self._parent = otel_context.get_current() if parent is None else parent
            native.pending.set(self)
            return trace.INVALID_SPAN
        return super().start_span(rt, parent, start_time_ns)

    # --- what the integration knows about the request and its response ----------------------------

    def request(self, params: Mapping[str, Any] | None = None, *, stream: bool | None = None) -> None:
        """Request parameters (``temperature``, ``max_tokens``, ``top_p``... as the request body names
        them); unknown keys and values of the wrong type are ignored."""
        try:
            self.attributes.update(request_attributes(params or {}))
            if stream:
                self.attributes[c.GEN_AI_REQUEST_STREAM] = True
        except Exception as exc:
            internal_error("reading LLM request parameters", exc)

    def response(
        self,
        *,
        response_id: Any = None,
        finish_reasons: Any = None,
        tool_call_ids: Any = None,
        response_model: Any = None,
    ) -> None:
        """What the response said: its id, why it finished, the tool calls it asked for."""
        attributes = self.attributes
        if isinstance(response_id, str) and response_id:
            attributes[c.GEN_AI_RESPONSE_ID] = response_id
        if isinstance(response_model, str) and response_model:
            attributes[c.GEN_AI_RESPONSE_MODEL] = response_model
        reasons = strings(finish_reasons)
        if reasons:
            attributes[c.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
        ids = strings(tool_call_ids)
        if ids:
            attributes[c.LLM_TOOL_CALL_IDS] = ids

    def messages(self, input: Any = None, output: Any = None) -> None:
        """The request's and the response's messages, in the GenAI conventions' JSON form (a list of
        ``{"role": ..., "parts": [...]}``). Kept only with ``logging.events.capture_content``, redacted
        and truncated by the same rules as ``store_args``."""
        rt = self.runtime
        redactor = rt.content if rt is not None else None
        if redactor is None:
            return
        try:
            if input:
                self.attributes[c.GEN_AI_INPUT_MESSAGES] = redactor.to_attribute(input)
            if output:
                self.attributes[c.GEN_AI_OUTPUT_MESSAGES] = redactor.to_attribute(output)
        except Exception as exc:
            internal_error("capturing LLM messages", exc)

    @property
    def capture_content(self) -> bool:
        """Whether :meth:`messages` keeps anything (integrations skip building messages otherwise)."""
        rt = self.runtime
        return rt is not None and rt.content is not None

    def adoptable(self) -> bool:
        """No span yet (deferred) and not ended: a native span of the request may become its span."""
        return not self._done and self.native is None and self.span is trace.INVALID_SPAN

    def adopt(self, span: Any) -> dict[str, Any]:
        """Make ``span``, the library's own span of this request, this step's span.

        Returns the attributes to add to it (the caller sets them, at span start when it can).
        """
        self.native = span
        self.span = span
        extra: dict[str, Any] = {c.STEP_ID: self.step_id}
        if self.agent_name and c.GEN_AI_AGENT_NAME not in (span.attributes or {}):
            extra[c.GEN_AI_AGENT_NAME] = self.agent_name
        return extra

    def end_with_run(self, end: Any) -> None:
        """Have the run call ``end()`` when it stops, should this call still be open then: a stream its
        consumer left unfinished but still holds would otherwise end its step only when the garbage
        collector takes it, after the run's span and stop. The stream itself goes on for its reader."""

        def by_run() -> None:
            self.by_run = True
            end()

        try:
            self.run.ledger.hold_open(by_run)
            self.held = by_run
        except Exception as exc:
            internal_error("holding a streamed LLM step open", exc)

    def _let_go(self) -> None:
        held, self.held = self.held, None
        if held is not None:
            self.run.ledger.let_go(held)

    def finish(
        self,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        *,
        cost_usd: float | None = None,
        response_model: str | None = None,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> None:
        """End the step with its usage; the cache counts are part of ``input_tokens``, not added to it.

        Token counts left None are unknown (a stream without ``include_usage``, a response without usage):
        not 0, which a reader takes for a free request. See :class:`_Usage`.

        A stream its run's stop ended (:meth:`end_with_run`) that is read on to its end finishes again
        with its final usage: what that adds to what the step recorded at the stop is late usage."""
        self._finished(
            _Usage(input_tokens, output_tokens, cached_input_tokens, cache_write_tokens),
            _finite(cost_usd),
            response_model,
        )

    def _finished(self, usage: _Usage, cost_usd: float | None, response_model: str | None) -> None:
        """:meth:`finish` with its arguments made what they are recorded as."""
        if not self.claim_end():
            if isinstance(self.by_run, tuple) and usage.known:
                _late_stream_usage(self, usage, cost_usd, response_model)
            return
        cancelled = None
        if self.held is not None:  # ended by its run: cut short by the cancellation stopping it, if any
            cancelled = self.run.ledger.cancelled
            self._let_go()
        try:
            cost = _complete(self, usage, cost_usd, response_model, cancelled)
            if self.by_run is True:
                self.by_run = (usage.input, usage.output, cost or 0.0)
        except Exception as exc:
            internal_error("recording an LLM result", exc)
        self.after(None, None)  # a budget this usage crossed stops the run at its next step

    def fail(
        self,
        exc: BaseException | str,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        *,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> None:
        """End the step with the error that ended the request (its usage: what it reported before).

        A cancellation (asyncio's, KeyboardInterrupt, SystemExit) is not the provider failing, as for a
        tool call: the step ends ``cancelled``, span status UNSET, ``error.type`` naming what cancelled it,
        and it is left out of the GenAI client metrics' operation duration (neither a provider error nor
        the latency of a completed request). Its note still lets the agent's own deadline around the
        request (a TimeoutError raised from the cancellation) end the run ``model_error``.
        """
        if not self.claim_end():
            return
        if self.held is not None:
            self._let_go()
        if isinstance(exc, BaseException):
            note_failure(self.run, exc, StopReason.MODEL_ERROR)
        try:
            usage = _Usage(input_tokens, output_tokens, cached_input_tokens, cache_write_tokens)
            _complete(self, usage, None, None, exc)
        except Exception as err:
            internal_error("recording an LLM error", err)
        self.after(None, exc)


class _Usage:
    """One request's token counts, made non-negative ints once so that every consumer agrees.

    ``known`` is False when the response reported no usage at all (both counts None): the step then has
    no ``gen_ai.usage.*`` attributes, no token counts in its event, no computed spend, and it is left out
    of token averages and token metrics, where a 0 would read as a free request. A count the response did
    report, 0 included, is known. The run's totals (and so ``max_tokens`` / ``max_cost_usd`` budgets) add
    nothing for an unknown request: its spend is invisible to them, as it is to the provider's own
    figures agent-otel reads.
    """

    __slots__ = ("cache_write", "cached_input", "input", "known", "output")

    def __init__(self, input_tokens: Any, output_tokens: Any, cached_input: Any, cache_write: Any) -> None:
        # Counts that are ints already (nearly always) are taken as they are: what _count and max() make of
        # them, without the calls (this runs per request). ``type() is int``: not a bool, not a subclass.
        if type(input_tokens) is int and type(output_tokens) is int:
            self.known = True
            self.input = input_tokens if input_tokens > 0 else 0
            self.output = output_tokens if output_tokens > 0 else 0
        else:
            input_tokens, output_tokens = _count(input_tokens), _count(output_tokens)
            self.known = input_tokens is not None or output_tokens is not None
            self.input = max(input_tokens or 0, 0)
            self.output = max(output_tokens or 0, 0)
        if type(cached_input) is int and type(cache_write) is int:
            self.cached_input = cached_input if cached_input > 0 else 0
            self.cache_write = cache_write if cache_write > 0 else 0
        else:
            self.cached_input = max(_count(cached_input) or 0, 0)
            self.cache_write = max(_count(cache_write) or 0, 0)


def _count(value: Any) -> int | None:
    """A token count as an int, or None (unknown) for what cannot be one: NaN, an infinity, text that is
    no number. A NaN from the caller's own arithmetic raised ValueError out of ``record_llm`` into the
    agent; telemetry must not, and an unknown count is what such a value says."""
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _finite(number: Any) -> float | None:
    """A reported spend (or duration) as a finite float not below 0, or None: unknown (a spend is then
    computed from the prices, if any).

    A NaN or infinite ``cost_usd`` (0/0 in the caller's price arithmetic) made the run's total NaN, and
    the run store refused the run's end record: the run read ``abandoned`` for ever, its stop reason,
    counts and usage lost. A negative one (a sign slip) was taken as spend: the run showed ``$-1.00`` and
    took it off its spend budget's count. A value that is no number at all is unknown too, rather than
    an error. Like these, a negative value is not warned about: the request is recorded, priced."""
    if number is None:
        return None
    try:
        value = float(number)
    except (TypeError, ValueError, OverflowError):
        return None
    return value + 0.0 if math.isfinite(value) and value >= 0 else None  # + 0.0: -0.0 is 0


def begin(
    run: Run,
    model: str,
    call_id: str | None = None,
    *,
    attach: bool = True,
    start_time_ns: int | None = None,
    checks: bool = True,
    provider: str | None = None,
    defer: bool = False,
    agent_name: str | None = None,
) -> LLMCall | None:
    """Start an LLM step of ``run``; guards run first (unless ``checks`` is off), may raise AgentStopped.

    ``defer`` leaves the span unopened (and the call unattached): a native GenAI span the library starts
    for the request is adopted instead (:mod:`agent_otel.native`), and without one the span opens when
    the call ends. A native request span that is current already (started around this call) is adopted
    at once. ``provider`` is ``gen_ai.provider.name``; ``agent_name`` the agent making the request when it
    is not the run's own (after a handoff).
    """
    call = LLMCall(run, model, call_id)
    call.taken = _take_over(run)
    call.provider = provider
    call.agent_name = agent_name
    call.deferred = defer
    if provider and run.provider is None:
        run.provider = provider
    if run.model is None and model != "unknown":
        run.model = model  # the run's gen_ai.request.model: the model its first request asked for
    return steps.begin(call, checks=checks, attach=attach and not defer, start_time_ns=start_time_ns)  # type: ignore[return-value]


def _take_over(run: Run) -> LLMCall | None:
    """The bridge's step of the framework request span that is current, which a client integration's
    call of the same request replaces (uncounted here, so the checks of the new call see it as one)."""
    if not steps.steps_bound():  # no bridged request step was ever made
        return None
    binding = steps.span_binding(trace.get_current_span())
    step = binding.step if binding is not None else None
    if not isinstance(step, LLMCall) or not step.bridged or step.run is not run or not step.claim_end():
        return None
    with run.ledger.lock:
        run.steps -= 1
        run.llm_calls -= 1
    return step


def _complete(
    call: LLMCall,
    usage: _Usage,
    cost_usd: float | None,
    response_model: str | None,
    error: BaseException | str | None,
) -> float | None:
    """Record the ended request: span, the run's totals, its ``llm_result`` event. Returns its spend."""
    run = call.run
    rt = call.runtime
    input_tokens, output_tokens = usage.input, usage.output
    if call.native is None and call.span is trace.INVALID_SPAN and rt is not None:
        try:  # deferred, and no library span to adopt came: agent-otel's own span, back-dated
            call.span = super(LLMCall, call).start_span(rt, call._parent, call._start_time_ns)
        except Exception as exc:
            internal_error("starting an LLM span", exc)
    if cost_usd is None and rt is not None and usage.known:
        cost_usd = rt.prices.cost(
            response_model or call.model, input_tokens, output_tokens, usage.cached_input, usage.cache_write
        )
    with run.ledger.lock:
        run.input_tokens += input_tokens
        run.output_tokens += output_tokens
        if cost_usd:
            run.cost_usd += cost_usd
        late = run.final_usage is not None  # the run's stop has recorded its totals without this request
    if call.provider and run.provider is None:
        run.provider = call.provider
    error_type = description = None
    status = c.STATUS_OK
    if error is None:
        pass
    elif isinstance(error, BaseException):
        error_type = type(error).__name__
        status = c.STATUS_CANCELLED if steps.is_cancellation(error) else c.STATUS_ERROR
    else:  # a code, or a cancellation named by a span bridged after the fact
        error_type, description = _text_error(str(error), rt)
        status = c.STATUS_CANCELLED if steps.is_cancellation(error_type) else c.STATUS_ERROR
    if call.native is None:
        attributes: dict[str, Any] = (
            {c.GEN_AI_USAGE_INPUT_TOKENS: input_tokens, c.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens}
            if usage.known
            else {}
        )
        # Values all made here (ints, a float, the error's type name) unless the integration gave some
        # (call.attributes) or named the response's model: then the span cleans them as it would.
        checked = response_model is None
        if call.attributes:
            attributes.update(call.attributes)
            checked = False
        if usage.cached_input:
            attributes[c.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cached_input
        if usage.cache_write:
            attributes[c.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = usage.cache_write
        if cost_usd is not None:
            attributes[c.COST_USD] = cost_usd
        if response_model:
            attributes[c.GEN_AI_RESPONSE_MODEL] = response_model
        if error_type is not None:
            attributes[c.ERROR_TYPE] = error_type
        if c.gen_ai_dup():
            attributes = c.with_previous_names(attributes)
        below = getattr(call.span, USAGE_BELOW, None)
        held = _usage_below(below, attributes) if below is not None else None
        if status == c.STATUS_CANCELLED:  # the span's status stays UNSET, as a cancelled tool call's
            duration_ms, span_ctx = call.end(attributes, None, None, held is None, checked)
        else:  # (positional: no keyword matching per request)
            duration_ms, span_ctx = call.end(
                attributes, error, description or error_type, held is None, checked
            )
        if held is not None:
            _UsageAbove(call, below, held)
    else:
        duration_ms, span_ctx = _end_adopted(call, cost_usd)
    if rt is not None:  # always emitted: tokens_per_request is recorded from this event
        model = response_model or call.model
        event_usage: dict[str, Any] = (  # unknown usage: no token counts at all, rather than 0
            {"model": model, "input_tokens": input_tokens, "output_tokens": output_tokens}
            if usage.known
            else {"model": model}
        )
        if usage.cached_input:
            event_usage["cached_input_tokens"] = usage.cached_input
        if usage.cache_write:
            event_usage["cache_write_tokens"] = usage.cache_write
        if cost_usd is not None:
            event_usage["cost_usd"] = cost_usd
        event = call.event(  # (positional: no keyword matching per call)
            c.KIND_LLM_RESULT, span_ctx, round(duration_ms, 3), status, error_type, None, None, event_usage
        )
        # For the GenAI client metrics (agent_otel.metrics); not part of the stored event. A library that
        # records those metrics for the requests it traces itself is not counted twice.
        event["_genai"] = {
            c.GEN_AI_OPERATION_NAME: c.OP_CHAT,
            c.GEN_AI_PROVIDER_NAME: call.provider,
            c.GEN_AI_REQUEST_MODEL: call.model,
            c.GEN_AI_RESPONSE_MODEL: response_model or call.attributes.get(c.GEN_AI_RESPONSE_MODEL),
            c.ERROR_TYPE: error_type,
            "skip": call.native is not None and native.records_metrics(call.native),
        }
        if late and (input_tokens or output_tokens or cost_usd):
            added = _late_usage(run, input_tokens, output_tokens, cost_usd)
            rt.pipeline.emit("event", event, "run_usage", added)
        else:
            rt.pipeline.emit("event", event)
    return cost_usd


def _late_stream_usage(
    call: LLMCall, usage: _Usage, cost_usd: float | None, response_model: str | None
) -> None:
    """A stream its run's stop ended, read on to its end: its final usage (what OpenAI's
    ``include_usage`` chunk, Anthropic's last ``message_delta`` report) beyond what the step recorded at
    the stop goes to the run's totals and, as a ``run_usage`` record naming the step, to the stored run
    row and to the request's stored event (its tokens per request). Its span and event were exported at
    the stop, with the usage known then."""
    recorded = call.by_run
    if not isinstance(recorded, tuple):
        return
    call.by_run = None  # once
    run, rt = call.run, call.runtime
    if cost_usd is None and rt is not None:
        cost_usd = rt.prices.cost(
            response_model or call.model, usage.input, usage.output, usage.cached_input, usage.cache_write
        )
    before_in, before_out, before_usd = recorded
    more_in, more_out = max(usage.input - before_in, 0), max(usage.output - before_out, 0)
    more_usd = max((cost_usd or 0.0) - before_usd, 0.0)
    if not (more_in or more_out or more_usd):
        return
    with run.ledger.lock:
        run.input_tokens += more_in
        run.output_tokens += more_out
        run.cost_usd += more_usd
    if rt is None:
        return
    added = _late_usage(run, more_in, more_out, more_usd)
    added["step_id"] = call.step_id
    request: dict[str, Any] = {
        "model": response_model or call.model,
        "input_tokens": usage.input,
        "output_tokens": usage.output,
    }
    if usage.cached_input:
        request["cached_input_tokens"] = usage.cached_input
    if usage.cache_write:
        request["cache_write_tokens"] = usage.cache_write
    if cost_usd is not None:
        request["cost_usd"] = cost_usd
    added["usage"] = request  # the request's own usage, in place of the one its event was stored with
    rt.pipeline.emit("run_usage", added)


def _late_usage(run: Run, input_tokens: int, output_tokens: int, cost_usd: float | None) -> dict[str, Any]:
    """The record of usage that reached ``run`` after its stop (a request in flight on another thread or
    task when the run stopped): the store adds it to the stopped run's row, and to the spend its
    summaries hold, so that ``runs``, ``show`` and ``stats`` count what the run cost. Its span and the
    ``agent_spend_per_run_usd`` histogram, recorded at the stop, keep the totals of the stop."""
    return {
        "run_id": run.run_id,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost_usd": float(cost_usd or 0.0),
        "ts_ms": time.time_ns() // 1_000_000,
    }


# An error type given as text: a code or a class name (`rate_limit_exceeded`, `ThrottlingException`, `429`).
_ERROR_CODE = re.compile(r"[A-Za-z0-9_.:/\-]{1,64}")


def _text_error(text: str, rt: Any) -> tuple[str, str | None]:
    """``(error.type, status description)`` for ``error=`` given as text. A code is the type; anything else
    (``error=str(exc)``: a message, maybe with secrets in it) would be an unbounded metric label and leave
    raw, so its type is the conventions' ``_OTHER`` and the text, redacted, the span's status description."""
    redactor = for_config(rt.config if rt is not None else None)
    if _ERROR_CODE.fullmatch(text) and redactor.redact_text(text) == text:
        return text, None
    return "_OTHER", redactor.redact_text(text[: redactor.max_chars + CUT_SLACK])[:512]


def _end_adopted(call: LLMCall, cost_usd: float | None) -> tuple[float, Any]:
    """End a step whose span is a library's: its usage and status are the library's own (and so is its
    end); only the spend is added, if the span is still open (a library that ends its span when the
    response is read has closed it)."""
    span = call.span
    duration_ms = (time.perf_counter_ns() - call._start_ns) / 1e6
    token, call._token = call._token, None
    if token is not None:
        otel_context.detach(token)
    if cost_usd is not None and span.is_recording():
        try:
            span.set_attribute(c.COST_USD, cost_usd)
        except Exception as err:
            internal_error("adding spend to a native LLM span", err)
    return duration_ms, span.get_span_context()


#: The attribute of agent-otel's own request span that holds a library's span of the same request started
#: right under it (set by the GenAI span bridge).
USAGE_BELOW = "_agent_otel_usage_below"


def _usage_below(below: Any, attributes: dict[str, Any]) -> dict[str, Any] | None:
    """Leave out of agent-otel's ``chat`` span the ``gen_ai.usage.*`` attributes that ``below``, a library's
    span of the same request under it, ended with: Logfire's OpenAI instrumentation, patched before
    ``setup()``, opens its request span inside agent-otel's, and a backend that sums usage over every span
    counted the request twice. The step, its event, the run's totals and the metrics keep the usage.

    ``below`` still open (a stream: the library's wrapper reads the stream agent-otel observes, so it ends
    after the step) may say its usage only as it ends: agent-otel's usage attributes are taken out and
    returned, and its span waits for the library's (:class:`_UsageAbove`)."""
    if getattr(below, "end_time", None) is None:
        held = {k: attributes.pop(k) for k in [k for k in attributes if k.startswith("gen_ai.usage.")]}
        return held or None
    for key in below.attributes or ():
        if key.startswith("gen_ai.usage."):
            attributes.pop(key, None)
    return None


#: The attribute of a library's request span (``USAGE_BELOW``'s) under which agent-otel's span of the same
#: request waits for it to end, while a step's usage is held back (see _usage_below).
USAGE_ABOVE = "_agent_otel_usage_above"
_held_any = False  # until a span waits, the bridge's span ends look for none


class _UsageAbove:
    """Agent-otel's ``chat`` span of a step that has ended, left open while the library's span of the same
    request below it is: it ends when that one does (with the step's end time), with the held usage
    attributes only if the library's span reported none; at its run's end at the latest."""

    __slots__ = ("end_ns", "held", "ledger", "lock", "span")

    def __init__(self, call: LLMCall, below: Any, held: dict[str, Any]) -> None:
        global _held_any
        self.span, self.held, self.end_ns = call.span, held, time.time_ns()
        self.ledger = call.run.ledger
        self.lock = threading.Lock()
        try:
            setattr(below, USAGE_ABOVE, self)
        except (AttributeError, TypeError):  # not a span that takes marks: end now, usage kept
            self.end(None)
            return
        _held_any = True
        self.ledger.hold_open(self.end)

    def end(self, below: Any = None) -> None:
        """End the span; ``below``: the library's span, now ended (None: it did not end in time)."""
        with self.lock:
            span, self.span = self.span, None
        if span is None:
            return
        if below is not None:
            self.ledger.let_go(self.end)
        try:
            said = below is not None and any(k.startswith("gen_ai.usage.") for k in below.attributes or ())
            if not said:
                span.set_attributes(self.held)
            span.end(end_time=self.end_ns)
        except Exception as exc:
            internal_error("ending an LLM span after the library's", exc)


def usage_above_ends(span: Any) -> None:
    """``span`` (a library's request span) is ending: agent-otel's span above it that waits ends too."""
    if _held_any:
        above = getattr(span, USAGE_ABOVE, None)
        if above is not None:
            above.end(span)


# The provider guessed from each model name record_llm was given (a model names few providers, and
# guess_provider lower-cases and splits the name at every request). Bounded: model names come from callers.
_providers: dict[str, str | None] = {}


def _provider_of(model: str) -> str | None:
    """``guess_provider(model)``, remembered per model name."""
    try:
        return _providers[model]
    except KeyError:
        provider = guess_provider(model)
        if len(_providers) < 1024:
            _providers[model] = provider
        return provider


def record(
    run: Run,
    model: str,
    input_tokens: int | None,
    output_tokens: int | None,
    *,
    cost_usd: float | None = None,
    duration_ms: float | None = None,
    error: BaseException | str | None = None,
    call_id: str | None = None,
    cached_input_tokens: int = 0,
    cache_write_tokens: int = 0,
    provider: str | None = None,
) -> None:
    """Record a finished LLM request (``run.record_llm``); ``duration_ms`` back-dates the span's start.

    The request has already been made (and paid for), so it is recorded first and the checks its step
    gets come after: a guard that stops the run here must not lose that usage. A run that has already
    ended records nothing more.
    """
    if run.result is not None:
        check_pending(run)  # raises, unless the run ended by leaving its block: then nothing to record
        return
    pending = run.ledger.pending
    start_ns = None
    duration_ms = _finite(duration_ms)  # a NaN raised ValueError here, into the agent; < 0 is None too
    if duration_ms is not None:
        start_ns = time.time_ns() - int(duration_ms * 1e6)
    call = begin(
        run,
        model,
        call_id,
        attach=False,
        start_time_ns=start_ns,
        checks=False,
        provider=provider or _provider_of(model),
    )
    if call is not None:
        if duration_ms is not None:
            call.back_date(duration_ms)
        if error is not None:
            call.fail(
                error,
                input_tokens,
                output_tokens,
                cached_input_tokens=cached_input_tokens,
                cache_write_tokens=cache_write_tokens,
            )
        else:  # (what finish() does, without its keyword arguments)
            usage = _Usage(input_tokens, output_tokens, cached_input_tokens, cache_write_tokens)
            call._finished(usage, _finite(cost_usd), None)
    if pending is not None:  # a stop decided before this request: it ends the run now, usage included
        check_pending(run)
    # The checks of the step, judged as it stood before the request when its step was counted; when
    # telemetry is off or failed no step was counted, and the checks are those of a step about to run.
    step = call if call is not None else LLMCall(run, model, call_id)
    step.recorded = call is not None
    steps.policy_checks(step)
