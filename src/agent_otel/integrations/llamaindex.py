"""LlamaIndex: agent and workflow runs, tool calls and LLM requests, through its instrumentation dispatcher.

agent-otel adds one span handler and one event handler to LlamaIndex's root instrumentation dispatcher
(``llama_index.core.instrumentation.get_dispatcher()``), which every LlamaIndex module reports to:

* Runs: a workflow run (the dispatcher span a ``Workflow.run()`` opens around its steps; agents such as
  ``FunctionAgent``, ``ReActAgent`` and ``AgentWorkflow`` are workflows) is a run named after the agent
  (``name=``; an ``AgentWorkflow`` after its root agent; any other workflow after its class), with the
  user message (or the start event) as ``agent.input_sha``. The run is entered in the workflow's own
  task, so every step, tool and LLM request of it belongs to it; the shared rule applies (inside a user's
  ``agent_otel.run`` the workflow's steps join it, inside a tool call it is a sub-agent).
* LLM requests: each ``chat`` / ``complete`` (sync, async, streaming) of any LlamaIndex LLM is an LLM step,
  from its ``LLMChatStartEvent`` to its ``LLMChatEndEvent`` (or the LLM span's drop, for an error), with the
  usage the response carries (``raw.usage`` as OpenAI or Anthropic name it, or the ``prompt_tokens`` /
  ``completion_tokens`` LlamaIndex's OpenAI LLM copies into ``additional_kwargs``), the provider (from the
  LLM class or the model name), the request's keyword arguments, response id and finish reasons. A chat
  that an LLM implements by calling its own ``complete`` (or ``achat`` calling ``chat``) is one step;
  requests the client library sends for it are not counted again (a GenAI span the client emits itself
  becomes the step's span). An LLM used outside any
  workflow inside a user's ``agent_otel.run`` is recorded too.
* Tool calls of agents: ``BaseWorkflowAgent._call_tool`` (where an agent calls a tool) and
  ``AgentWorkflow._call_tool`` (where a multi-agent workflow calls its agents' tools and handoffs) go through
  :func:`agent_otel.tools.begin` *before* the tool runs, with the model's tool call id (from the
  ``call_tool`` step's ``ToolCall`` event), the tool's keyword arguments and its ``raw_output``. A tool's
  exception, which the agent turns into an error message for the model, marks the step ``error``.
* Guards: a tool step's guards stop the run before the tool runs (the caller's ``await handler`` raises
  AgentStopped). The dispatcher swallows whatever its handlers raise, so an LLM step's guards
  (``max_steps``, budgets, the kill switch) cannot refuse the request itself: the run is stopped when the
  request starts and the agent is stopped when its ``take_step`` returns (FunctionAgent, ReActAgent,
  CodeActAgent) or at its next tool call.
* Replay: a recorded tool call of a ``FunctionTool`` is not executed: the agent gets a ``ToolOutput`` rebuilt
  from the recorded result exactly as ``FunctionTool`` builds it (or the recorded error as the error
  output the agent makes of it). Tools with a ``callback`` and other tool classes are refused.

Stop reasons: ``WorkflowTimeoutError`` -> ``timeout``; "Max iterations ... reached" -> ``max_steps``; a run
cancelled with ``handler.cancel_run()`` -> ``cancelled``; a failed LLM request -> ``model_error``.
Tools called from a custom workflow's own steps (not through an agent) and CodeActAgent's code are not
tool steps; their LLM requests are.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any

from agent_otel import llm
from agent_otel.genai import guess_provider
from agent_otel.llm import LLMCall
from agent_otel.replay import RecordedOutcome
from agent_otel.run import MISSING, FrameworkRun, enter_run, exit_run
from agent_otel.steps import active_run, check_pending, current_run, internal_error, note_failure
from agent_otel.stop import AgentStopped, StopReason

from . import Integration
from ._common import (
    Patcher,
    Serve,
    Unservable,
    await_or_serve,
    framework_call,
    framework_llm,
    refuse_outside_run,
    reset_framework_llm,
    start_tool,
    token_count,
    usage_value,
)

#: The ``ToolCall`` event of the ``call_tool`` step running in this context (for the tool call id).
_tool_event: ContextVar[Any] = ContextVar("agent_otel_llamaindex_tool_event", default=None)
#: Open LLM spans kept to recognise a nested request (``chat`` implemented by ``complete``); bounded.
MAX_OPEN_LLM_SPANS = 4096


def _classify(exc: BaseException) -> StopReason | None:
    from workflows.errors import WorkflowRuntimeError, WorkflowTimeoutError

    if isinstance(exc, WorkflowTimeoutError):
        return StopReason.TIMEOUT
    if isinstance(exc, WorkflowRuntimeError) and str(exc).startswith("Max iterations"):
        return StopReason.MAX_STEPS
    return None


def _run_name(workflow: Any) -> str:
    name = getattr(workflow, "name", None)
    if isinstance(name, str) and name and not isinstance(getattr(type(workflow), "name", None), property):
        return name
    root = getattr(workflow, "root_agent", None)  # AgentWorkflow
    agents = getattr(workflow, "agents", None)
    if isinstance(root, str) and root:
        return root
    if isinstance(agents, dict) and agents:
        return str(next(iter(agents)))
    return type(workflow).__name__


def _run_input(start_event: Any) -> Any:
    if start_event is None:
        return MISSING
    try:
        message = start_event.get("user_msg")
    except Exception:
        message = None
    if message is not None:
        content = getattr(message, "content", message)
        return content if isinstance(content, str) else str(content)
    try:
        return start_event.model_dump(mode="json")
    except Exception:
        return MISSING


def _usage(response: Any) -> tuple[int | None, int | None]:
    """Input and output tokens of a ChatResponse / CompletionResponse, wherever the LLM put them; None
    where it put none (unknown, not 0)."""
    raw = getattr(response, "raw", None)
    usage = usage_value(raw, "usage")
    if usage is not None:
        return (
            token_count(usage_value(usage, "prompt_tokens"), usage_value(usage, "input_tokens")),
            token_count(usage_value(usage, "completion_tokens"), usage_value(usage, "output_tokens")),
        )
    extra = getattr(response, "additional_kwargs", None) or {}
    if isinstance(extra, dict):
        return (
            token_count(extra.get("prompt_tokens"), extra.get("input_tokens")),
            token_count(extra.get("completion_tokens"), extra.get("output_tokens")),
        )
    return None, None


def _response_model(response: Any) -> str | None:
    model = usage_value(getattr(response, "raw", None), "model")
    return model if isinstance(model, str) and model else None


#: ``gen_ai.provider.name`` of LlamaIndex LLM classes (``class_name()``) the model name does not tell.
_PROVIDERS = {
    "OpenAI": "openai",
    "AzureOpenAI": "azure.ai.openai",
    "Anthropic": "anthropic",
    "GoogleGenAI": "gcp.gemini",
    "Gemini": "gcp.gemini",
    "Vertex": "gcp.vertex_ai",
    "Bedrock": "aws.bedrock",
    "BedrockConverse": "aws.bedrock",
    "MistralAI": "mistral_ai",
    "Groq": "groq",
}


def _provider(model_dict: Any, model: str) -> str | None:
    name = model_dict.get("class_name") if isinstance(model_dict, dict) else None
    return _PROVIDERS.get(str(name)) or guess_provider(model)


def _finish_reasons(raw: Any) -> list[str]:
    """Why the response ended, as OpenAI (``choices[].finish_reason``) or Anthropic (``stop_reason``) say."""
    choices = usage_value(raw, "choices")
    if isinstance(choices, list):
        return [r for r in (usage_value(c, "finish_reason") for c in choices) if isinstance(r, str)]
    reason = usage_value(raw, "stop_reason")
    return [reason] if isinstance(reason, str) else []


def _model(model_dict: Any, event: Any) -> str:
    if isinstance(model_dict, dict):
        for key in ("model", "model_name", "model_id", "deployment_name"):
            value = model_dict.get(key)
            if isinstance(value, str) and value and value != "unknown":
                return value
        name = model_dict.get("class_name")
        if isinstance(name, str) and name:
            return name
    return "unknown"


class _LLMStep:
    __slots__ = ("call", "token")

    def __init__(self, call: LLMCall, token: Token[Any]) -> None:
        self.call = call
        self.token = token


def _handler_classes() -> tuple[type, type]:
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.span_handlers import BaseSpanHandler

    class AgentOtelSpanHandler(BaseSpanHandler[Any]):
        """Runs from workflow run spans; failed LLM spans; the tool call id of ``call_tool`` steps."""

        def new_span(self, *args: Any, **kwargs: Any) -> None:
            return None

        def prepare_to_exit_span(self, *args: Any, **kwargs: Any) -> None:
            return None

        def prepare_to_drop_span(self, *args: Any, **kwargs: Any) -> None:
            return None

        def span_enter(
            self, id_: str, bound_args: Any, instance: Any = None, parent_id: str | None = None, **kw: Any
        ) -> None:
            state = _state
            if state is None:
                return
            try:
                state.span_enter(id_, bound_args, instance, parent_id)
            except Exception as exc:
                internal_error("reading a LlamaIndex span", exc)

        def span_exit(
            self, id_: str, bound_args: Any, instance: Any = None, result: Any = None, **kw: Any
        ) -> None:
            state = _state
            if state is not None:
                state.span_end(id_, None, result)

        def span_drop(
            self, id_: str, bound_args: Any, instance: Any = None, err: BaseException | None = None, **kw: Any
        ) -> None:
            state = _state
            if state is not None:
                state.span_end(id_, err, None)

    class AgentOtelEventHandler(BaseEventHandler):
        """LLM steps from the LLM start / end events."""

        @classmethod
        def class_name(cls) -> str:
            return "AgentOtelEventHandler"

        def handle(self, event: Any, **kwargs: Any) -> None:
            state = _state
            if state is None:
                return
            try:
                state.event(event)
            except Exception as exc:
                internal_error("reading a LlamaIndex event", exc)

    return AgentOtelSpanHandler, AgentOtelEventHandler


class _State:
    """What the handlers keep: the runs of open workflow-run spans, open LLM steps, open LLM spans."""

    def __init__(self) -> None:
        from llama_index.core.agent.workflow.workflow_events import ToolCall
        from llama_index.core.base.llms.base import BaseLLM
        from llama_index.core.instrumentation.events import exception as exception_events
        from llama_index.core.instrumentation.events import llm as llm_events
        from workflows import Workflow

        self._workflow = Workflow
        self._llm_class = BaseLLM
        self._tool_call_event = ToolCall
        self._starts = (llm_events.LLMChatStartEvent, llm_events.LLMCompletionStartEvent)
        self._ends = (llm_events.LLMChatEndEvent, llm_events.LLMCompletionEndEvent)
        self._exception = exception_events.ExceptionEvent
        self._lock = threading.Lock()
        self._runs: dict[str, FrameworkRun] = {}
        self._tool_tokens: dict[str, Token[Any]] = {}
        self._llm_parents: dict[str, str | None] = {}  # open LLM span -> its parent span
        self._steps: dict[str, _LLMStep] = {}  # LLM span -> its step

    # --- spans ---------------------------------------------------------------------------------------

    def span_enter(self, id_: str, bound_args: Any, instance: Any, parent_id: str | None) -> None:
        arguments = getattr(bound_args, "arguments", None) or {}
        if isinstance(instance, self._llm_class):
            with self._lock:
                if len(self._llm_parents) < MAX_OPEN_LLM_SPANS:
                    self._llm_parents[id_] = parent_id
            return
        ev = arguments.get("ev")
        if isinstance(ev, self._tool_call_event):  # the call_tool step: its event names the call id
            token = _tool_event.set(ev)
            with self._lock:
                self._tool_tokens[id_] = token
        elif (
            isinstance(instance, self._workflow) and "init_state" in arguments and "start_event" in arguments
        ):
            # the span around a whole workflow run
            frun = enter_run(_run_name(instance), input=_run_input(arguments.get("start_event")))
            if frun is not None:
                with self._lock:
                    self._runs[id_] = frun

    def span_end(self, id_: str, err: BaseException | None, result: Any) -> None:
        with self._lock:
            frun = self._runs.pop(id_, None)
            tool_token = self._tool_tokens.pop(id_, None)
            self._llm_parents.pop(id_, None)
            # A streaming request's span exits when the stream is returned; its end event comes later.
            step = self._steps.pop(id_, None) if err is not None else None
        if tool_token is not None:
            try:
                _tool_event.reset(tool_token)
            except ValueError:
                _tool_event.set(None)
        if step is not None and err is not None:
            self._fail(step, err)
        if frun is None:
            return
        if err is None and result is None and frun.owned:  # cancel_run(): the run span exits with no result
            try:
                frun.run.stop(StopReason.CANCELLED, "the workflow run was cancelled")
            except Exception as exc:
                internal_error("stopping a cancelled LlamaIndex run", exc)
        exit_run(frun, err, _classify(err) if err is not None else None)

    # --- events --------------------------------------------------------------------------------------

    def event(self, event: Any) -> None:
        if isinstance(event, self._starts):
            self._start(event)
        elif isinstance(event, self._ends):
            self._end(event)
        elif isinstance(event, self._exception):
            with self._lock:
                step = self._steps.pop(event.span_id or "", None)
            if step is not None:
                self._fail(step, event.exception)

    def _nested(self, span_id: str | None) -> bool:
        """Whether an enclosing LLM span of this request already has a step (``chat`` via ``complete``)."""
        with self._lock:
            parent = self._llm_parents.get(span_id or "")
            for _ in range(32):
                if parent is None:
                    return False
                if parent in self._steps:
                    return True
                parent = self._llm_parents.get(parent)
        return False

    def _start(self, event: Any) -> None:
        run = active_run()
        span_id = event.span_id
        if run is None or span_id is None or framework_call() is not None or self._nested(span_id):
            return
        model_dict = getattr(event, "model_dict", None)
        model = _model(model_dict, event)
        try:
            # Deferred: a GenAI span the LLM's client emits itself (anthropic 2.x) becomes the step's span.
            call = llm.begin(run, model, attach=False, provider=_provider(model_dict, model), defer=True)
        except AgentStopped:
            return  # the run is stopped; the agent is stopped at its next step (see the module docstring)
        if call is None:
            return
        params = getattr(event, "additional_kwargs", None)
        if isinstance(params, dict):
            call.request(params)
        step = _LLMStep(call, framework_llm.set(call))
        with self._lock:
            self._steps[span_id] = step
        # A stream left unfinished but still referenced reports no end until it is read on or collected:
        # the run ends its step (without usage, which comes with the stream's end) rather than leave it open.
        call.end_with_run(call.finish)

    def _end(self, event: Any) -> None:
        with self._lock:
            step = self._steps.pop(event.span_id or "", None)
        if step is None:
            return
        reset_framework_llm(step.token)
        response = getattr(event, "response", None)
        input_tokens, output_tokens = _usage(response)
        raw = getattr(response, "raw", None)
        step.call.response(response_id=usage_value(raw, "id"), finish_reasons=_finish_reasons(raw))
        step.call.finish(input_tokens, output_tokens, response_model=_response_model(response))

    @staticmethod
    def _fail(step: _LLMStep, err: BaseException) -> None:
        reset_framework_llm(step.token)
        if isinstance(err, GeneratorExit):
            # The consumer stopped reading a streamed answer (``break``, ``aclose()``): LlamaIndex drops
            # the span with GeneratorExit, but the request did not fail.
            step.call.finish()
        else:
            step.call.fail(err)


_state: _State | None = None


# --- tools of agents --------------------------------------------------------------------------------


def _tool_server(tool: Any, tool_input: dict[str, Any]) -> Serve:
    """Serve a replayed tool call: the ``ToolOutput`` ``_call_tool`` returned when it was recorded."""
    from llama_index.core.tools import FunctionTool, ToolOutput

    def serve(recorded: RecordedOutcome) -> Any:
        name = tool.metadata.get_name()
        raw_input = {k: v for k, v in tool_input.items() if k != getattr(tool, "ctx_param_name", None)}
        error = recorded.error
        if error is not None:
            text = str(error)
            return ToolOutput(
                content=text,
                tool_name=name,
                raw_input=raw_input,
                raw_output=text,
                is_error=True,
                exception=error if isinstance(error, Exception) else None,
            )
        if (
            type(tool) is not FunctionTool
            or getattr(tool, "_callback", None)
            or getattr(tool, "_async_callback", None)
        ):
            raise Unservable("is not a plain FunctionTool (its output cannot be rebuilt without running it)")
        value = recorded.value
        return ToolOutput(
            blocks=tool._parse_tool_output(value),
            tool_name=name,
            raw_input={"args": (), "kwargs": raw_input},
            raw_output=value,
        )

    return serve


def _make_call_tool(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def _call_tool(
        self: Any, ctx: Any, tool: Any, tool_input: dict[str, Any], *args: Any, **kwargs: Any
    ) -> Any:
        metadata = getattr(tool, "metadata", None)
        name = str(metadata.get_name() if metadata is not None else "tool")
        run = active_run()
        if run is None:
            refuse_outside_run(name)
            return await original(self, ctx, tool, tool_input, *args, **kwargs)
        ev = _tool_event.get()
        call_id = getattr(ev, "tool_id", None) if getattr(ev, "tool_name", None) == name else None
        description = getattr(metadata, "description", None)
        call = start_tool(
            run,
            name,
            tool_input,
            call_id=call_id or None,
            fn=getattr(tool, "real_fn", None)
            or getattr(tool, "fn", None),  # async: fn is LlamaIndex's wrapper
            description=description,
        )
        if call is None:
            return await original(self, ctx, tool, tool_input, *args, **kwargs)
        try:
            output = await await_or_serve(
                call, _tool_server(tool, tool_input), original, self, ctx, tool, tool_input, *args, **kwargs
            )
        except BaseException as exc:
            note_failure(run, exc, None)
            call.fail(exc)
            raise
        if getattr(output, "is_error", False):
            call.fail(getattr(output, "exception", None) or RuntimeError(str(getattr(output, "content", ""))))
        else:
            call.ok(getattr(output, "raw_output", output))
        return output

    return _call_tool


def _make_take_step(original: Callable[..., Any]) -> Callable[..., Any]:
    """An agent's step: a stop its LLM request's guards decided takes effect when the step returns."""

    @functools.wraps(original)
    async def take_step(self: Any, *args: Any, **kwargs: Any) -> Any:
        run = current_run()
        if run is not None:
            check_pending(run)
        result = await original(self, *args, **kwargs)
        if run is not None:
            check_pending(run)
        return result

    return take_step


class LlamaIndexIntegration(Integration):
    """Adds agent-otel's span and event handlers to LlamaIndex's root dispatcher; wraps agents' tool calls."""

    name = "llamaindex"
    packages = ("llama_index.core",)

    @property
    def triggers(self) -> tuple[str, ...]:
        return ("llama_index.core",)

    def __init__(self) -> None:
        self._patcher = Patcher()
        self._handlers: tuple[Any, Any] | None = None

    def instrument(self) -> None:
        global _state
        if self._handlers is not None or _state is not None:
            return  # instrumented (by this or another instance): the handlers are there once
        from llama_index.core.agent.workflow import (
            base_agent,
            codeact_agent,
            function_agent,
            multi_agent_workflow,
            react_agent,
        )
        from llama_index.core.instrumentation import get_dispatcher

        agent_classes = (function_agent.FunctionAgent, react_agent.ReActAgent, codeact_agent.CodeActAgent)
        # The two places tools are called: an agent's own, and an AgentWorkflow's (it runs its agents'
        # steps itself, tool calls and handoffs included).
        tool_callers = (base_agent.BaseWorkflowAgent, multi_agent_workflow.AgentWorkflow)
        for cls in tool_callers:
            if not inspect.iscoroutinefunction(vars(cls).get("_call_tool")):
                raise AttributeError(
                    f"{cls.__name__}._call_tool not found (unsupported llama-index-core version)"
                )
        for cls in agent_classes:
            if not inspect.iscoroutinefunction(vars(cls).get("take_step")):
                raise AttributeError(
                    f"{cls.__name__}.take_step not found (unsupported llama-index-core version)"
                )
        _state = _State()
        span_class, event_class = _handler_classes()
        handlers = (span_class(), event_class())
        dispatcher = get_dispatcher()
        dispatcher.add_span_handler(handlers[0])
        dispatcher.add_event_handler(handlers[1])
        self._handlers = handlers
        for cls in tool_callers:
            self._patcher.wrap(cls, "_call_tool", _make_call_tool)
        for cls in agent_classes:
            self._patcher.wrap(cls, "take_step", _make_take_step)

    def uninstrument(self) -> None:
        global _state
        handlers, self._handlers = self._handlers, None
        if handlers is not None:
            _state = None
            from llama_index.core.instrumentation import get_dispatcher

            dispatcher = get_dispatcher()
            dispatcher.span_handlers = [h for h in dispatcher.span_handlers if h is not handlers[0]]
            dispatcher.event_handlers = [h for h in dispatcher.event_handlers if h is not handlers[1]]
        self._patcher.restore()
