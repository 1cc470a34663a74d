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
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from agent_otel import conventions as c
from agent_otel import steps
from agent_otel.steps import Step, check_pending, internal_error, note_failure
from agent_otel.stop import AgentStopped, StopReason

if TYPE_CHECKING:
    from agent_otel.run import Run
    from agent_otel.runtime import Runtime


class LLMCall(Step):
    """One LLM request in flight; finished exactly once by :meth:`finish` or :meth:`fail`."""

    __slots__ = ("model",)

    kind = "llm"

    def __init__(self, run: Run, model: str, call_id: str | None) -> None:
        super().__init__(run, call_id)
        self.model = model

    def span_name(self) -> str:
        return c.llm_span_name(self.model)

    def start_attributes(self, rt: Runtime) -> dict[str, Any]:
        return {
            c.GEN_AI_OPERATION_NAME: c.OP_CHAT,
            c.GEN_AI_REQUEST_MODEL: self.model,
            c.RUN_ID: self.run.run_id,
            c.STEP_ID: self.step_id,
        }

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
        if not self.claim_end():
            return
        try:
            usage = _Usage(input_tokens, output_tokens, cached_input_tokens, cache_write_tokens)
            _complete(self, usage, cost_usd, response_model, None)
        except Exception as exc:
            internal_error("recording an LLM result", exc)
        self.after(None, None)  # a budget this usage crossed stops the run at its next step

    def fail(
        self,
        exc: BaseException | str,
        input_tokens: int = 0,
        output_tokens: int = 0,
        *,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> None:
        if not self.claim_end():
            return
        if isinstance(exc, BaseException):
            note_failure(self.run, exc, StopReason.MODEL_ERROR)
        try:
            usage = _Usage(input_tokens, output_tokens, cached_input_tokens, cache_write_tokens)
            _complete(self, usage, None, None, exc)
        except Exception as err:
            internal_error("recording an LLM error", err)
        self.after(None, exc)


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
    call = LLMCall(run, model, call_id)
    return steps.begin(call, checks=checks, attach=attach, start_time_ns=start_time_ns)  # type: ignore[return-value]


def _complete(
    call: LLMCall,
    usage: _Usage,
    cost_usd: float | None,
    response_model: str | None,
    error: BaseException | str | None,
) -> None:
    run = call.run
    rt = call.runtime
    input_tokens, output_tokens = usage.input, usage.output
    if cost_usd is None and rt is not None:
        cost_usd = rt.prices.cost(
            response_model or call.model, input_tokens, output_tokens, usage.cached_input, usage.cache_write
        )
    with run.ledger.lock:
        run.input_tokens += input_tokens
        run.output_tokens += output_tokens
        if cost_usd:
            run.cost_usd += cost_usd
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
    duration_ms, span_ctx = call.end(attributes, error, error_type)
    if rt is not None:  # always emitted: tokens_per_request is recorded from this event
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
        event = call.event(
            c.KIND_LLM_RESULT,
            span_ctx,
            round(duration_ms, 3),
            c.STATUS_ERROR if error is not None else c.STATUS_OK,
            error_type,
            usage=event_usage,
        )
        rt.pipeline.emit("event", event)


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
    pending = run.ledger.pending
    start_ns = None
    if duration_ms is not None and duration_ms >= 0:
        start_ns = time.time_ns() - int(duration_ms * 1e6)
    call = begin(run, model, call_id, attach=False, start_time_ns=start_ns, checks=False)
    if call is not None:
        if duration_ms is not None:
            call.back_date(duration_ms)
        cache = {"cached_input_tokens": cached_input_tokens, "cache_write_tokens": cache_write_tokens}
        if error is not None:
            call.fail(error, input_tokens, output_tokens, **cache)
        else:
            call.finish(input_tokens, output_tokens, cost_usd=cost_usd, **cache)
    if pending is not None:  # a stop decided before this request: it ends the run now, usage included
        check_pending(run)
    # The checks of the step, judged as it stood before the request when its step was counted; when
    # telemetry is off or failed no step was counted, and the checks are those of a step about to run.
    step = call if call is not None else LLMCall(run, model, call_id)
    step.recorded = call is not None
    steps.policy_checks(step)
