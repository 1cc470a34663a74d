"""PydanticAI: agent runs, tool calls and model requests, through PydanticAI's own capability hooks.

PydanticAI runs every agent run, model request and tool execution through the ``wrap_run``,
``wrap_model_request`` and ``wrap_tool_execute`` hooks of its capabilities. This integration adds one
capability to every run (by wrapping ``Agent._resolve_run_capabilities``, the one place where ``run``,
``run_sync``, ``run_stream``, ``iter`` and realtime sessions assemble a run's capabilities), so:

* a run (``agent.run``/``run_sync``/``run_stream``/``iter``) is an agent-otel run named after the agent
  (``Agent(name=...)``, else ``"agent"``), with the prompt as ``agent.input_sha`` and the agent's model
  as ``gen_ai.request.model``; inside a user's ``agent_otel.run`` it joins that run, inside a tool call
  it is a sub-agent;
* each model request is an LLM step with PydanticAI's usage for it (``input_tokens``/``output_tokens``),
  the responding model, the provider (``Model.system``), the request's ``model_settings`` (temperature,
  max_tokens, top_p...), the provider's response id, the finish reason and the tool call ids of the
  response; the OpenAI/Anthropic client integrations do not count it again;
* ``gen_ai.conversation.id`` is PydanticAI's ``conversation_id`` of the run (``agent.run(conversation_id=
  ...)``, or the one the ``message_history`` carries; PydanticAI makes a new one for a run without);
* with ``instrument=True`` (PydanticAI's own OpenTelemetry spans), PydanticAI's ``chat`` span of a request
  is the step's span: agent-otel adds its ids to it and opens no second one (agent_otel.native), and
  does not record the GenAI client metrics PydanticAI records itself;
* each tool execution goes through :func:`agent_otel.tools.begin` (guards first), with the model's
  tool call id and arguments; ``ModelRetry`` raised by a tool marks the span ``error`` and the run goes
  on, as PydanticAI sends the retry prompt back to the model.
* a run given ``deferred_tool_results`` (the answers to a paused run's ``DeferredToolRequests``) has an
  ``agent.approval`` event per call a human approved or denied (``True`` / ``ToolApproved``, ``False`` /
  ``ToolDenied``); a denied call never runs, so it is no tool step;
* under replay, a tool execution is not run: the hook returns the recorded result (PydanticAI counts the
  tool call in its usage as for a tool that returned), raises the recorded error, and turns a recorded
  retry (``ToolRetryError``) or failure (``ToolFailedError``) back into the ``ModelRetry`` /
  ``ToolFailed`` the tool raised, so PydanticAI charges the retry budget and answers the model exactly
  as it did. Results that were objects (not JSON values) are refused.

Stop reasons: ``UsageLimitExceeded`` (``UsageLimits`` request, token and tool-call limits) ->
``budget_exceeded``; ``RunTimedOut`` -> ``timeout``; model API errors and ``UnexpectedModelBehavior``
(output retries exhausted, a content filter, a cut-off tool call) -> ``model_error``; a function tool's
``ModelRetry`` past its retries (also ``UnexpectedModelBehavior``) -> ``tool_error``, from its failed step.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from datetime import datetime
from typing import Any

from opentelemetry import context as otel_context

from agent_otel import bridge, llm, tools
from agent_otel.genai import guess_provider
from agent_otel.replay import RecordedOutcome
from agent_otel.run import MISSING, FrameworkRun, enter_run, exit_run
from agent_otel.steps import active_run, internal_error, note_failure
from agent_otel.stop import AgentStopped, StopReason
from agent_otel.tools import ToolCall

from . import Integration, _content
from ._common import (
    Patcher,
    Serve,
    Unservable,
    as_int,
    await_or_serve,
    carry_framework_llm,
    framework_llm,
    model_name,
    pause,
    record_approvals,
    refuse_outside_run,
    reset_framework_llm,
    start_tool,
    token_count,
    usage_value,
)

#: The instrumentation scope of PydanticAI's own spans (``instrument=True``), which the bridge adopts.
NATIVE_SCOPE = "pydantic-ai"


def _classify(exc: BaseException) -> StopReason | None:
    from pydantic_ai import exceptions as e

    if isinstance(exc, e.UsageLimitExceeded):
        return StopReason.BUDGET_EXCEEDED
    run_timed_out = getattr(e, "RunTimedOut", None)
    if run_timed_out is not None and isinstance(exc, run_timed_out):
        return StopReason.TIMEOUT
    if isinstance(exc, e.UnexpectedModelBehavior):
        # PydanticAI's verdict that the model ended the run: its output failed validation past the output
        # retries (an output validator's or output function's ``ModelRetry``), a content filter, a cut-off
        # tool call (``ContentFilterError``, ``IncompleteToolCall``).
        # The Agents SDK's ``ModelBehaviorError`` / ``ModelRefusalError`` are ``model_error`` too; read as
        # ``error`` it looked like a bug in the agent's own code on the stop-reason dashboard.
        return StopReason.MODEL_ERROR
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
        internal_error("stopping a timed-out PydanticAI run", exc)


def _deferred(frun: FrameworkRun | None, result: Any) -> None:
    """A run whose output is ``DeferredToolRequests`` (tools that need approval or run elsewhere) paused
    for a human or another system: it ends ``interrupted``, naming the tool calls it waits for."""
    if frun is None:
        return
    try:
        output = getattr(result, "output", None)
        if type(output).__name__ != "DeferredToolRequests":
            return
        waiting = [*(getattr(output, "calls", None) or ()), *(getattr(output, "approvals", None) or ())]
        if waiting:
            ids = [getattr(part, "tool_call_id", None) for part in waiting]
            pause(frun.run, len(waiting), [i for i in ids if isinstance(i, str)])
    except Exception as exc:
        internal_error("recording the tool calls a PydanticAI run waits for", exc)


def _decided(node: Any) -> None:
    """A run given ``deferred_tool_results`` starts at the response whose calls waited, with the results
    by call id (``CallToolsNode.tool_call_results``): what the human decided about each call that needed
    approval (``True`` / ``ToolApproved``, ``False`` / ``ToolDenied``) is an ``agent.approval`` event on
    the run's span. A denied call never runs (PydanticAI answers the model with the denial), so the
    resumed run showed nothing of it. Results of external calls are no decision and are left out."""
    run = active_run()
    if run is None:
        return
    try:
        from pydantic_ai import ToolApproved, ToolDenied

        response = getattr(node, "model_response", None)
        names = {
            getattr(part, "tool_call_id", None): getattr(part, "tool_name", None)
            for part in getattr(response, "tool_calls", None) or ()
        }
        order = list(names)  # the order the model asked for the calls, as the pause named them
        decisions = sorted(
            (
                (call_id, names.get(call_id), isinstance(result, ToolApproved))
                for call_id, result in node.tool_call_results.items()
                if isinstance(result, ToolApproved | ToolDenied)
            ),
            key=lambda d: order.index(d[0]) if d[0] in order else len(order),
        )
    except Exception as exc:
        internal_error("reading the tool approvals a PydanticAI run is given", exc)
        return
    record_approvals(run, decisions)


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
            conversation = getattr(ctx, "conversation_id", None)
            frun = enter_run(
                str(name),
                model=model_name(getattr(ctx, "model", None)),
                input=prompt if prompt is not None else MISSING,
                conversation_id=conversation if isinstance(conversation, str) and conversation else None,
            )
            if frun is not None and not frun.owned:
                frun.run.paused = None  # the agent goes on in your run: a pause before it is over
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
            _deferred(frun, result)
            exit_run(frun, None)
            return result

        async def before_node_run(self, ctx: Any, *, node: Any) -> Any:
            if getattr(node, "tool_call_results", None):  # the first node of a run given deferred results
                _decided(node)
            return node

        async def wrap_model_request(self, ctx: Any, *, request_context: Any, handler: Any) -> Any:
            run = active_run()
            if run is None:
                return await handler(request_context)
            model_obj = getattr(request_context, "model", None) or getattr(ctx, "model", None)
            model = model_name(getattr(request_context, "model", None)) or model_name(
                getattr(ctx, "model", None)
            )
            try:
                call = llm.begin(
                    run,
                    model or "unknown",
                    attach=False,
                    provider=_provider(model_obj, model),
                    defer=True,
                )
                if call is not None:
                    call.request(
                        getattr(request_context, "model_settings", None) or {},
                        stream=bool(getattr(request_context, "streaming", False)),
                    )
                    if call.capture_content:
                        call.messages(
                            input=_content.pydantic_ai_input(getattr(request_context, "messages", None))
                        )
            except AgentStopped:
                raise
            except Exception as exc:
                internal_error("starting a PydanticAI model step", exc)
                call = None
            if call is None:
                return await handler(request_context)
            token = framework_llm.set(call)
            # A streamed request is sent from the task that consumes the stream, in the OpenTelemetry
            # context PydanticAI captured here: the mark travels in it, so the client counts it once.
            carried = carry_framework_llm(call)
            try:
                response = await handler(request_context)
            except BaseException as exc:
                note_failure(run, exc, _classify(exc))
                call.fail(exc, **_billed(request_context))
                raise
            finally:
                otel_context.detach(carried)
                reset_framework_llm(token)
            usage = getattr(response, "usage", None)
            responder = getattr(response, "model_name", None)
            _response(call, response)
            # PydanticAI's input_tokens include the cache counts, which are passed on for pricing. A
            # response without usage is counted in unmeasured_requests, its tokens 0: unknown, not 0.
            measured = not usage_value(usage, "unmeasured_requests")
            call.finish(
                token_count(usage_value(usage, "input_tokens")) if measured else None,
                token_count(usage_value(usage, "output_tokens")) if measured else None,
                response_model=responder if isinstance(responder, str) and responder else None,
                cached_input_tokens=as_int(usage_value(usage, "cache_read_tokens")),
                cache_write_tokens=as_int(usage_value(usage, "cache_write_tokens")),
            )
            return response

        async def wrap_tool_execute(
            self, ctx: Any, *, call: Any, tool_def: Any, args: Any, handler: Any
        ) -> Any:
            run = active_run()
            name = str(getattr(call, "tool_name", None) or getattr(tool_def, "name", "tool"))
            if run is None:
                refuse_outside_run(name)
                return await handler(args)
            try:
                raw_args = call.args_as_dict()
            except Exception:
                raw_args = args
            tool_call = start_tool(
                run,
                name,
                raw_args,
                call_id=getattr(call, "tool_call_id", None),
                fn=_function_of(ctx, name) if tools.writes_declared() else None,
                description=getattr(tool_def, "description", None),
            )
            if tool_call is None:
                return await handler(args)
            try:
                result = await await_or_serve(tool_call, _server(ctx, tool_call), handler, args)
            except BaseException as exc:
                reason = _classify(exc)
                if reason is not StopReason.MODEL_ERROR:  # a tool past its retries failed: tool_error
                    note_failure(run, exc, reason)
                tool_call.fail(exc)
                raise
            tool_call.ok(result)
            return result

    return AgentOtel


def _function_of(ctx: Any, name: str) -> Callable[..., Any] | None:
    """The Python function behind a function-toolset tool, so that an ``@agent_otel.tool(side_effects=True)``
    function is known as a write (the ``writes`` kill switch) when PydanticAI calls it: the hook is handed
    only the tool's definition. Found through the run step's tool manager (``tools[name]``, unwrapped to
    its function toolset's tool, then that toolset's ``tools`` under its own name for it, which a
    ``prepare`` function may have changed for the model); a tool of any other toolset (MCP, a prefixed
    or wrapped one) gives None, and is then a read, as other frameworks' tools are."""
    try:
        tool = (ctx.tool_manager.tools or {}).get(name)
        for _ in range(8):  # the agent's CombinedToolset wraps each tool of its toolsets
            if (inner := getattr(tool, "source_tool", None)) is None:
                break
            tool = inner
        held = getattr(getattr(tool, "toolset", None), "tools", None)
        if not isinstance(held, dict):
            return None
        fn = getattr(held.get(getattr(tool, "original_name", None) or name), "function", None)
        return inspect.unwrap(fn) if callable(fn) else None
    except Exception:  # a PydanticAI whose internals moved: the tool is a read, as before
        return None


def _billed(request_context: Any) -> dict[str, Any]:
    """The usage PydanticAI counted for a request that did not return a response to this hook.

    A ``run_stream`` whose consumer stops the stream by raising (an output validator's ``ModelRetry``,
    which streaming cannot retry: ``UnexpectedModelBehavior``; a ``UsageLimits`` token limit crossed
    mid-stream) cancels the request's task after the model answered: PydanticAI still counts the
    response's usage in the run's, and leaves it on the request context for its own ``chat`` span
    (``_unrejected_usage_responses``, which its Instrumentation capability reads). Without it the step
    had no tokens and the run's usage and cost undercounted PydanticAI's. Empty where this PydanticAI
    has no such record, or none was billed.
    """
    try:
        responses = getattr(request_context, "_unrejected_usage_responses", None)
        if not responses:
            return {}
        usages = [getattr(r, "usage", None) for r in responses]
        usages = [u for u in usages if u is not None and not usage_value(u, "unmeasured_requests")]
        if not usages:  # no usage reported: unknown, not 0 tokens
            return {}
        return {
            "input_tokens": sum(token_count(usage_value(u, "input_tokens")) or 0 for u in usages),
            "output_tokens": sum(token_count(usage_value(u, "output_tokens")) or 0 for u in usages),
            "cached_input_tokens": sum(as_int(usage_value(u, "cache_read_tokens")) for u in usages),
            "cache_write_tokens": sum(as_int(usage_value(u, "cache_write_tokens")) for u in usages),
        }
    except Exception as exc:
        internal_error("reading the usage PydanticAI counted for a request", exc)
        return {}


def _provider(model: Any, name: str | None) -> str | None:
    """``Model.system`` (PydanticAI's own gen_ai.system value: openai, anthropic, google-gla...)."""
    try:
        system = getattr(model, "system", None)
    except Exception:
        system = None
    if isinstance(system, str) and system:
        return _SYSTEMS.get(system, system)
    return guess_provider(name)


# PydanticAI's Model.system -> gen_ai.provider.name, where they differ.
_SYSTEMS = {"google-gla": "gcp.gemini", "google-vertex": "gcp.vertex_ai", "bedrock": "aws.bedrock"}


def _response(call: Any, response: Any) -> None:
    try:
        ids = [
            part.tool_call_id
            for part in getattr(response, "parts", None) or ()
            if getattr(part, "part_kind", None) == "tool-call"
        ]
        reason = getattr(response, "finish_reason", None)
        call.response(
            response_id=getattr(response, "provider_response_id", None),
            finish_reasons=[reason] if isinstance(reason, str) else None,
            tool_call_ids=ids,
        )
        if call.capture_content:
            call.messages(output=_content.pydantic_ai_output(response))
    except Exception as exc:
        internal_error("reading a PydanticAI model response", exc)


def _server(ctx: Any, tool_call: ToolCall) -> Serve:
    """Serve a replayed tool execution: what the hook's ``handler`` returned or raised when recorded."""

    def serve(recorded: RecordedOutcome) -> Any:
        error = recorded.error
        if error is None:
            _count_tool_call(ctx)
            return recorded.value
        raised = _raised_by_tool(error)
        if raised is not None:
            tool_call.fail(error)  # the span says what the recording says (ToolRetryError...)
            raise raised
        raise error

    return serve


def _raised_by_tool(error: BaseException) -> BaseException | None:
    """The ``ModelRetry`` / ``ToolFailed`` a recorded ``ToolRetryError`` / ``ToolFailedError`` wraps.

    PydanticAI wraps them when the tool raises them, after charging the tool's retry budget; raised from
    this hook they are wrapped the same way, with the same accounting. None for any other error.
    """
    from pydantic_ai import exceptions as e

    if isinstance(error, e.ToolRetryError):
        part = getattr(error, "tool_retry", None)
        retry = part.get("retry") if isinstance(part, dict) else None
        if isinstance(retry, dict) and retry.get("cause") == "model_retry" and isinstance(part, dict):
            content = part.get("content")
            if isinstance(content, str):
                return e.ModelRetry(content)
        raise Unservable("raised a ToolRetryError that was not a ModelRetry of the tool when recorded")
    if isinstance(error, e.ToolFailedError):
        part = getattr(error, "tool_failed", None)
        content = part.get("content") if isinstance(part, dict) else None
        if isinstance(content, str):
            return e.ToolFailed(content)
        raise Unservable("raised a ToolFailedError without a message when recorded")
    return None


def _count_tool_call(ctx: Any) -> None:
    """PydanticAI counts a tool call in the run's usage when the tool returns; a served call returns too."""
    usage = getattr(ctx, "usage", None)
    if usage is None:
        return
    try:
        from pydantic_ai import _usage_attribution

        _usage_attribution.record_tool_call(usage)
    except (ImportError, AttributeError):
        usage.tool_calls += 1


def _make_resolve(capability: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        async def _resolve_run_capabilities(self: Any, ctx: Any, *args: Any, **kwargs: Any) -> Any:
            extra = kwargs.get("extra_capabilities")
            if isinstance(extra, list) and capability.enabled:
                try:
                    kwargs["extra_capabilities"] = [capability.instance.for_agent(self), *extra]
                except Exception as exc:
                    internal_error("adding the PydanticAI capability", exc)
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
        bridge.register_hooks(NATIVE_SCOPE)  # its instrumentation's spans: steps come from the hooks

    def uninstrument(self) -> None:
        bridge.register_hooks(NATIVE_SCOPE, on=False)
        if self._holder is not None:
            self._holder.enabled = False
            self._holder = None
        self._patcher.restore()
