"""LLM calls: a ``chat {model}`` child span per request, with usage and spend added to the run.

Two ways in: :func:`record` for usage known after the fact (``run.record_llm``), and
:func:`begin`/:class:`LLMCall` for integrations that wrap the request itself (OpenAI and Anthropic clients,
framework chat models) so that the span covers the request and a failure can end the run as
``model_error``.

Input tokens are always *all* input tokens, cached ones included (the OpenTelemetry GenAI meaning of
``gen_ai.usage.input_tokens``), so budgets and ``agent_tokens_per_request`` do not change with caching.
The cache counts are extra detail, part of that total: they only lower (or, for cache writes, raise)
the price of the tokens they cover, and appear as ``gen_ai.usage.cache_read.input_tokens`` /
``gen_ai.usage.cache_creation.input_tokens`` on the ``chat`` span when non-zero.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from agent_otel import conventions as c
from agent_otel.events import new_event
from agent_otel.redaction import record_exception
from agent_otel.run import Run, _current, _internal_error
from agent_otel.stop import AgentStopped, StopReason


class LLMCall:
    """One LLM request in flight; finished exactly once by :meth:`finish` or :meth:`fail`."""

    __slots__ = ("_done", "_start_ns", "_token", "call_id", "model", "run", "span", "step_id")

    def __init__(self, run: Run, model: str, step_id: int, call_id: str | None) -> None:
        self.run = run
        self.model = model
        self.step_id = step_id
        self.call_id = call_id
        self.span: Span = trace.INVALID_SPAN
        self._token: Any = None
        self._start_ns = time.perf_counter_ns()
        self._done = False

    def finish(
        self,
        input_tokens: int = 0,
        output_tokens: int = 0,
        *,
        cost_usd: float | None = None,
        response_model: str | None = None,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> None:
        """End the step with its usage; the cache counts are part of ``input_tokens``, not added to it."""
        if self._done:
            return
        self._done = True
        try:
            usage = _Usage(input_tokens, output_tokens, cached_input_tokens, cache_write_tokens)
            _complete(self, usage, cost_usd, response_model, None)
        except Exception as exc:
            _internal_error("recording an LLM result", exc)
        _after_usage(self.run)

    def fail(
        self,
        exc: BaseException | str,
        input_tokens: int = 0,
        output_tokens: int = 0,
        *,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> None:
        if self._done:
            return
        self._done = True
        if isinstance(exc, BaseException) and not isinstance(exc, AgentStopped):
            self.run._note_failure(exc, StopReason.MODEL_ERROR)
        try:
            usage = _Usage(input_tokens, output_tokens, cached_input_tokens, cache_write_tokens)
            _complete(self, usage, None, None, exc)
        except Exception as err:
            _internal_error("recording an LLM error", err)


class _Usage:
    """One request's token counts, made non-negative ints once so that every consumer agrees."""

    __slots__ = ("cache_write", "cached_input", "input", "output")

    def __init__(self, input_tokens: Any, output_tokens: Any, cached_input: Any, cache_write: Any) -> None:
        self.input = max(int(input_tokens or 0), 0)
        self.output = max(int(output_tokens or 0), 0)
        self.cached_input = max(int(cached_input or 0), 0)
        self.cache_write = max(int(cache_write or 0), 0)


def begin(
    run: Run,
    model: str,
    call_id: str | None = None,
    *,
    attach: bool = True,
    start_time_ns: int | None = None,
    checks: bool = True,
) -> LLMCall | None:
    """Start an LLM step of ``run``; guards run first (unless ``checks`` is off), may raise AgentStopped."""
    if checks:
        run._check_pending()
        guards = run._guards
        if guards is not None:
            guards.before_llm(run, model)
    rt = run._rt
    if rt is None:
        return None
    try:
        step_id = run._next_step(tool=False)
        call = LLMCall(run, model, step_id, call_id)
        attributes: dict[str, Any] = {
            c.GEN_AI_OPERATION_NAME: c.OP_CHAT,
            c.GEN_AI_REQUEST_MODEL: model,
            c.RUN_ID: run.run_id,
            c.STEP_ID: step_id,
        }
        parent = None if _current.get() is run else trace.set_span_in_context(run.span)
        call.span = rt.tracer.start_span(
            c.llm_span_name(model), context=parent, attributes=attributes, start_time=start_time_ns
        )
        if attach:
            call._token = otel_context.attach(trace.set_span_in_context(call.span, parent))
        return call
    except Exception as exc:
        _internal_error("starting an LLM span", exc)
        return None


def _complete(
    call: LLMCall,
    usage: _Usage,
    cost_usd: float | None,
    response_model: str | None,
    error: BaseException | str | None,
) -> None:
    run = call.run
    rt = run._rt
    input_tokens, output_tokens = usage.input, usage.output
    if cost_usd is None and rt is not None:
        cost_usd = rt.prices.cost(
            response_model or call.model, input_tokens, output_tokens, usage.cached_input, usage.cache_write
        )
    with run._lock:
        run.input_tokens += input_tokens
        run.output_tokens += output_tokens
        if cost_usd:
            run.cost_usd += cost_usd
    duration_ms = (time.perf_counter_ns() - call._start_ns) / 1e6
    span = call.span
    attributes: dict[str, Any] = {
        c.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        c.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
    }
    if usage.cached_input:
        attributes[c.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cached_input
    if usage.cache_write:
        attributes[c.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = usage.cache_write
    if cost_usd is not None:
        attributes[c.COST_USD] = cost_usd
    if response_model:
        attributes["gen_ai.response.model"] = response_model
    error_type = None
    if error is not None:
        error_type = type(error).__name__ if isinstance(error, BaseException) else str(error)
        attributes[c.ERROR_TYPE] = error_type
    try:
        span.set_attributes(attributes)
        if error is not None:
            if isinstance(error, BaseException):  # redacted: the message may hold secrets
                record_exception(span, error, rt.config if rt is not None else None)
            span.set_status(Status(StatusCode.ERROR, error_type))
        span.end()
    except Exception as err:  # e.g. a raising span processor of the application
        _internal_error("ending an LLM span", err)
    token, call._token = call._token, None
    if token is not None:
        otel_context.detach(token)
    if rt is not None:  # always emitted: tokens_per_request is recorded from this event
        span_ctx = span.get_span_context()
        event_usage: dict[str, Any] = {
            "model": response_model or call.model,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
        }
        if usage.cached_input:
            event_usage["cached_input_tokens"] = usage.cached_input
        if usage.cache_write:
            event_usage["cache_write_tokens"] = usage.cache_write
        if cost_usd is not None:
            event_usage["cost_usd"] = cost_usd
        event = new_event(
            c.KIND_LLM_RESULT,
            run.run_id,
            run.agent,
            run.trace_id,
            format(span_ctx.span_id, "016x") if span_ctx.is_valid else None,
            step_id=call.step_id,
            duration_ms=round(duration_ms, 3),
            status=c.STATUS_ERROR if error is not None else c.STATUS_OK,
            error=error_type,
            usage=event_usage,
        )
        event["_sampled"] = span_ctx.trace_flags.sampled
        rt.pipeline.emit("event", event)


def _after_usage(run: Run) -> None:
    guards = run._guards
    if guards is not None:
        try:
            guards.after_usage(run)
        except Exception as exc:
            _internal_error("checking budgets after LLM usage", exc)


def record(
    run: Run,
    model: str,
    input_tokens: int,
    output_tokens: int,
    *,
    cost_usd: float | None = None,
    duration_ms: float | None = None,
    error: BaseException | str | None = None,
    call_id: str | None = None,
    cached_input_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> None:
    """Record a finished LLM request (``run.record_llm``); ``duration_ms`` back-dates the span's start.

    The request has already been made (and paid for), so it is recorded first and the checks its step
    gets come after: a guard that stops the run here must not lose that usage. A run that has already
    ended records nothing more.
    """
    if run.result is not None:
        raise AgentStopped(run.result)
    pending = run._pending
    start_ns = None
    if duration_ms is not None and duration_ms >= 0:
        start_ns = time.time_ns() - int(duration_ms * 1e6)
    call = begin(run, model, call_id, attach=False, start_time_ns=start_ns, checks=False)
    if call is not None:
        if duration_ms is not None:
            call._start_ns = time.perf_counter_ns() - int(duration_ms * 1e6)
        cache = {"cached_input_tokens": cached_input_tokens, "cache_write_tokens": cache_write_tokens}
        if error is not None:
            call.fail(error, input_tokens, output_tokens, **cache)
        else:
            call.finish(input_tokens, output_tokens, cost_usd=cost_usd, **cache)
    if pending is not None:  # a stop decided before this request: it ends the run now, usage included
        run._check_pending()
    guards = run._guards
    if guards is not None:
        if call is not None:
            guards.after_recorded_llm(run)
        else:  # telemetry is off or failed: no step was counted for the request
            guards.before_llm(run, model)
