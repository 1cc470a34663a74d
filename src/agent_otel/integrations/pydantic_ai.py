"""PydanticAI: agent runs, tool calls and model requests, through PydanticAI's own capability hooks.

PydanticAI runs every agent run, model request and tool execution through the ``wrap_run``,
``wrap_model_request`` and ``wrap_tool_execute`` hooks of its capabilities. This integration adds one
capability to every run (by wrapping ``Agent._resolve_run_capabilities``, the one place where ``run``,
``run_sync``, ``run_stream``, ``iter`` and realtime sessions assemble a run's capabilities), so:

* a run (``agent.run``/``run_sync``/``run_stream``/``iter``) is an agent-otel run named after the agent
  (``Agent(name=...)``, else ``"agent"``), with the prompt as ``agent.input_sha`` and the agent's model
  as ``gen_ai.request.model``; inside a user's ``agent_otel.run`` it joins that run, inside a tool call
  it is a sub-agent;
* each model request is an LLM step with PydanticAI's usage for it (``input_tokens``/``output_tokens``)
  and the responding model; the OpenAI/Anthropic client integrations do not count it again;
* each tool execution goes through :func:`agent_otel.tools.begin` (guards first), with the model's
  tool call id and arguments; ``ModelRetry`` raised by a tool marks the span ``error`` and the run goes
  on, as PydanticAI sends the retry prompt back to the model.

Stop reasons: ``UsageLimitExceeded`` (``UsageLimits`` request, token and tool-call limits) ->
``budget_exceeded``; ``RunTimedOut`` -> ``timeout``; model API errors -> ``model_error``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from agent_otel import llm
from agent_otel.run import _MISSING, _internal_error, current_run
from agent_otel.stop import AgentStopped, StopReason

from . import Integration
from ._common import (
    Patcher,
    as_int,
    await_with_timeout,
    enter_run,
    exit_run,
    framework_llm,
    model_name,
    note,
    reset_framework_llm,
    start_tool,
    usage_value,
)


def _classify(exc: BaseException) -> StopReason | None:
    from pydantic_ai import exceptions as e

    if isinstance(exc, e.UsageLimitExceeded):
        return StopReason.BUDGET_EXCEEDED
    run_timed_out = getattr(e, "RunTimedOut", None)
    if run_timed_out is not None and isinstance(exc, run_timed_out):
        return StopReason.TIMEOUT
    return None


def _deadline_passed(ctx: Any) -> bool:
    deadline = getattr(ctx, "deadline", None)
    if not isinstance(deadline, datetime):
        return False
    try:
        return datetime.now(deadline.tzinfo) >= deadline
    except (TypeError, ValueError):
        return False


def _stop(run: Any, reason: StopReason) -> None:
    try:
        run.stop(reason, "the PydanticAI run deadline (timeout=) passed")
    except Exception as exc:
        _internal_error("stopping a timed-out PydanticAI run", exc)


def _capability_class() -> type:
    from pydantic_ai.capabilities import AbstractCapability

    class AgentOtel(AbstractCapability[Any]):
        """Records the run, its model requests and tool executions (added by agent-otel to every run)."""

        # Telemetry only: it contributes no tools or durable operations, so it may be added per run.
        _safe_at_runtime = True

        async def wrap_run(self, ctx: Any, *, handler: Any) -> Any:
            agent = getattr(ctx, "agent", None)
            name = getattr(agent, "name", None) or "agent"
            prompt = getattr(ctx, "prompt", None)
            frun = enter_run(
                str(name),
                model=model_name(getattr(ctx, "model", None)),
                input=prompt if prompt is not None else _MISSING,
            )
            try:
                result = await handler()
            except BaseException as exc:
                reason = _classify(exc)
                if reason is None and _deadline_passed(ctx):
                    # PydanticAI enforces ``timeout=`` by cancelling the run body; the RunTimedOut the
                    # caller gets is raised outside this hook. Cancellation would read "cancelled".
                    reason = StopReason.TIMEOUT
                    if frun is not None and frun.owned:
                        _stop(frun.run, reason)
                exit_run(frun, exc, reason)
                raise
            exit_run(frun, None)
            return result

        async def wrap_model_request(self, ctx: Any, *, request_context: Any, handler: Any) -> Any:
            run = current_run()
            if run is None or run._rt is None:
                return await handler(request_context)
            model = model_name(getattr(request_context, "model", None)) or model_name(
                getattr(ctx, "model", None)
            )
            try:
                call = llm.begin(run, model or "unknown", attach=False)
            except AgentStopped:
                raise
            except Exception as exc:
                _internal_error("starting a PydanticAI model step", exc)
                call = None
            if call is None:
                return await handler(request_context)
            token = framework_llm.set(call)
            try:
                response = await handler(request_context)
            except BaseException as exc:
                note(run, exc, _classify(exc))
                call.fail(exc)
                raise
            finally:
                reset_framework_llm(token)
            usage = getattr(response, "usage", None)
            responder = getattr(response, "model_name", None)
            call.finish(
                as_int(usage_value(usage, "input_tokens")),
                as_int(usage_value(usage, "output_tokens")),
                response_model=responder if isinstance(responder, str) and responder else None,
            )
            return response

        async def wrap_tool_execute(
            self, ctx: Any, *, call: Any, tool_def: Any, args: Any, handler: Any
        ) -> Any:
            run = current_run()
            if run is None or run._rt is None:
                return await handler(args)
            try:
                raw_args = call.args_as_dict()
            except Exception:
                raw_args = args
            tool_call = start_tool(
                run,
                str(getattr(call, "tool_name", None) or getattr(tool_def, "name", "tool")),
                raw_args,
                call_id=getattr(call, "tool_call_id", None),
            )
            if tool_call is None:
                return await handler(args)
            try:
                result = await await_with_timeout(tool_call, handler, args)
            except BaseException as exc:
                note(run, exc, _classify(exc))
                tool_call.fail(exc)
                raise
            tool_call.ok(result)
            return result

    return AgentOtel


def _make_resolve(capability: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        async def _resolve_run_capabilities(self: Any, ctx: Any, *args: Any, **kwargs: Any) -> Any:
            extra = kwargs.get("extra_capabilities")
            if isinstance(extra, list) and capability.enabled:
                try:
                    kwargs["extra_capabilities"] = [capability.instance.for_agent(self), *extra]
                except Exception as exc:
                    _internal_error("adding the PydanticAI capability", exc)
            return await original(self, ctx, *args, **kwargs)

        return _resolve_run_capabilities

    return make


class _Holder:
    def __init__(self, instance: Any) -> None:
        self.instance = instance
        self.enabled = True


class PydanticAIIntegration(Integration):
    """Adds the ``AgentOtel`` capability to every PydanticAI run."""

    name = "pydantic_ai"
    packages = ("pydantic_ai",)

    def __init__(self) -> None:
        self._patcher = Patcher()
        self._holder: _Holder | None = None

    def instrument(self) -> None:
        if self._patcher.applied:
            return
        from pydantic_ai import agent as agent_module

        if not hasattr(agent_module.Agent, "_resolve_run_capabilities"):
            raise AttributeError(
                "Agent._resolve_run_capabilities not found (unsupported pydantic-ai version)"
            )
        self._holder = _Holder(_capability_class()())
        self._patcher.wrap(agent_module.Agent, "_resolve_run_capabilities", _make_resolve(self._holder))

    def uninstrument(self) -> None:
        if self._holder is not None:
            self._holder.enabled = False
            self._holder = None
        self._patcher.restore()
