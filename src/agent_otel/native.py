"""Native GenAI spans: spans that other libraries emit for the same work agent-otel records.

anthropic (2.x) emits an ``anthropic.messages.create`` CLIENT span per request with ``gen_ai.usage.*``;
PydanticAI with ``instrument=True`` emits ``chat`` and ``execute_tool`` spans; an MCP server emits
``tools/call`` spans with ``gen_ai.operation.name=execute_tool``. If agent-otel also put a ``chat`` span
with usage on the same request, every backend that sums ``gen_ai.usage.*`` over a trace would count the
request twice. The rule: every model request's usage is on exactly one span. When a library emits a
GenAI span for a request agent-otel records, agent-otel *adopts* that span as the request's span (it
adds ``agent.run_id``, ``agent.step_id`` and, where missing, ``gen_ai.conversation.id`` and
``gen_ai.agent.name``) and opens no ``chat`` span of its own; its step, guards, event, run totals and
metrics are unchanged.

Two ways a native span meets an LLM step (:class:`agent_otel.llm.LLMCall`):

* the library starts its span *inside* the step (anthropic's client under agent-otel's request wrapper,
  or under a LangChain / Agents SDK model call): the step was begun with its own span deferred
  (``defer=True``), and :class:`NativeSpans`, a span processor, adopts the native span in ``on_start``;
  if no native span starts, the step opens its own span when it ends, back-dated to its start;
* the library's span is already current when the step begins (PydanticAI's instrumentation capability
  runs outside agent-otel's): :func:`enclosing_chat_span` finds it and the step adopts it at once.

Native ``execute_tool`` spans (PydanticAI's, an in-process MCP server's) stay children of agent-otel's
``execute_tool`` span and get its ``agent.run_id``/``agent.step_id``, so a join on the step sees one tool
call. Any other native GenAI span that starts inside a run gets ``agent.run_id``.

Recognising native GenAI spans is the seed of the GenAI-span bridge (issue 13), which will turn
frameworks' native spans into whole agent-otel runs; everything that knows what a native span looks like
lives here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from agent_otel import conventions as c
from agent_otel.steps import active_run, internal_error

if TYPE_CHECKING:
    from agent_otel.llm import LLMCall

SCOPE = "agent_otel"
#: Operations whose span is one model request.
REQUEST_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
#: Instrumentation scopes that also record the GenAI client metrics for the requests they trace, so
#: agent-otel does not record them a second time for an adopted request.
SCOPES_WITH_METRICS = frozenset({"pydantic-ai"})

#: The LLM step whose span is deferred in this context, waiting for a native span to adopt.
pending: ContextVar[LLMCall | None] = ContextVar("agent_otel_pending_llm", default=None)

_lock = threading.Lock()
_enabled = False


def enable(on: bool) -> None:
    """Turn recognition on (setup) or off (shutdown); the processor stays on the provider, inert."""
    global _enabled
    with _lock:
        _enabled = on


def is_native_genai(span: Any) -> bool:
    """A recording SDK span of another library that says it is a GenAI operation."""
    scope = getattr(span, "instrumentation_scope", None)
    if scope is None or scope.name == SCOPE:
        return False
    attributes = getattr(span, "attributes", None)
    return bool(attributes) and c.GEN_AI_OPERATION_NAME in attributes


def operation(span: Any) -> str | None:
    value = (getattr(span, "attributes", None) or {}).get(c.GEN_AI_OPERATION_NAME)
    return value if isinstance(value, str) else None


def records_metrics(span: Any) -> bool:
    scope = getattr(span, "instrumentation_scope", None)
    return scope is not None and scope.name in SCOPES_WITH_METRICS


def enclosing_chat_span(run: Any) -> Any:
    """The current span if it is a native model-request span of ``run`` no step has adopted yet."""
    if not _enabled:
        return None
    span = trace.get_current_span()
    if not span.is_recording() or not is_native_genai(span) or operation(span) not in REQUEST_OPERATIONS:
        return None
    attributes = span.attributes or {}
    if c.STEP_ID in attributes or attributes.get(c.RUN_ID) != run.run_id:
        return None
    return span


def run_attributes(run: Any, attributes: Any) -> dict[str, Any]:
    """What a native span inside ``run`` gets: the run id, and the conversation and agent where missing."""
    extra: dict[str, Any] = {c.RUN_ID: run.run_id}
    if run.conversation_id is not None and c.GEN_AI_CONVERSATION_ID not in attributes:
        extra[c.GEN_AI_CONVERSATION_ID] = run.conversation_id
    if c.GEN_AI_AGENT_NAME not in attributes:
        extra[c.GEN_AI_AGENT_NAME] = run.agent
    return extra


class NativeSpans:
    """A span processor that adopts native GenAI spans into agent-otel's runs and steps (``on_start``).

    ``active_tool_call`` finds the tool step whose span is current (``agent_otel.tools``, a layer above
    this module, hands it in).
    """

    def __init__(self, active_tool_call: Callable[[], Any]) -> None:
        self._active_tool_call = active_tool_call

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if not _enabled:
            return
        try:
            if not is_native_genai(span):
                return
            run = active_run()
            if run is None:
                return
            attributes = span.attributes or {}
            extra = run_attributes(run, attributes)
            op = operation(span)
            if op in REQUEST_OPERATIONS:
                call = pending.get()
                if call is not None and call.run is run and call.adoptable():
                    extra.update(call.adopt(span))
            elif op == c.OP_EXECUTE_TOOL:
                tool = self._active_tool_call()
                if tool is not None and tool.run is run:
                    extra[c.STEP_ID] = tool.step_id
            span.set_attributes(extra)
        except Exception as exc:  # a span processor must never raise into the code starting a span
            internal_error("recognising a native GenAI span", exc)

    def _on_ending(self, span: Any) -> None:
        pass

    def on_end(self, span: Any) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
