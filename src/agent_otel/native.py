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
  (``defer=True``), and the bridge's span processor (:mod:`agent_otel.bridge`) adopts the native span in
  ``on_start`` (:data:`pending`);
  if no native span starts, the step opens its own span when it ends, back-dated to its start;
* the library's span is already current when the step begins (PydanticAI's instrumentation capability
  runs outside agent-otel's): :func:`enclosing_chat_span` finds it and the step adopts it at once.

Native ``execute_tool`` spans (PydanticAI's, an in-process MCP server's) stay children of agent-otel's
``execute_tool`` span and get its ``agent.run_id``/``agent.step_id``, so a join on the step sees one tool
call. Any other native GenAI span that starts inside a run gets ``agent.run_id``.

A native GenAI span that no agent-otel step records becomes a run or a step of its own: that is the GenAI
span bridge (:mod:`agent_otel.bridge`). Everything that knows what a native span looks like lives here.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from agent_otel import conventions as c

if TYPE_CHECKING:
    from agent_otel.llm import LLMCall

SCOPE = "agent_otel"
#: Operations whose span is one model request.
REQUEST_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
#: The GenAI registry's well-known ``gen_ai.operation.name`` values. A span names its operation first
#: (``invoke_agent {agent}``, ``chat {model}``, ``execute_tool {tool}``), which is all there is to go by
#: when a library sets its attributes after starting the span (Strands, Google ADK).
OPERATIONS = frozenset(
    {
        *REQUEST_OPERATIONS,
        "embeddings",
        "retrieval",
        "create_agent",
        "invoke_agent",
        "execute_tool",
        "invoke_workflow",
        "plan",
    }
)
#: Operations outside the registry that a library names its spans after: Strands' multi-agent patterns
#: (``invoke_swarm``, ``invoke_graph``: an invocation of several agents, as ``invoke_workflow`` is).
MULTI_AGENT_OPERATIONS = frozenset({"invoke_swarm", "invoke_graph"})
#: Instrumentation scopes that also record the GenAI client metrics for the requests they trace, so
#: agent-otel does not record them a second time for an adopted request.
SCOPES_WITH_METRICS = frozenset({"pydantic-ai", "gcp.vertex.agent", "agent_framework"})

#: The LLM step whose span is deferred in this context, waiting for a native span to adopt.
pending: ContextVar[LLMCall | None] = ContextVar("agent_otel_pending_llm", default=None)

_lock = threading.Lock()
_enabled = False


def enable(on: bool) -> None:
    """Turn recognition on (setup) or off (shutdown); the processor stays on the provider, inert."""
    global _enabled
    with _lock:
        _enabled = on


def enabled() -> bool:
    return _enabled


def is_native_genai(span: Any) -> bool:
    """A recording SDK span of another library that says (or is named as) a GenAI operation."""
    scope = getattr(span, "instrumentation_scope", None)
    if scope is None or scope.name == SCOPE:
        return False
    return operation(span) is not None


def operation(span: Any) -> str | None:
    """The span's ``gen_ai.operation.name``, or the well-known operation its name starts with."""
    value = (getattr(span, "attributes", None) or {}).get(c.GEN_AI_OPERATION_NAME)
    if isinstance(value, str):
        return value
    name = getattr(span, "name", None)
    if isinstance(name, str):
        first = name.split(" ", 1)[0]
        if first in OPERATIONS or first in MULTI_AGENT_OPERATIONS:
            return first
    return None


def late_agent(span: Any) -> bool:
    """A span that a library starts under a name of its own and labels an agent's invocation only
    afterwards, if ever: Mistral's SDK names a request's span after its API operation and labels it from
    the request (``invoke_agent`` for the Agents and Conversations APIs), and wraps the loop of
    ``mistralai.extra.run`` in a ``conversation`` span it never labels."""
    scope = getattr(span, "instrumentation_scope", None)
    name = getattr(span, "name", None)
    if scope is None or scope.name != "mistralai_sdk_tracer" or not isinstance(name, str):
        return False
    if name == "conversation" or "agents_completion" in name or name == "stream_agents":
        return True
    return "conversations" in name and any(a in name for a in ("_start", "_append", "_restart"))


def named(span: Any, op: str) -> str | None:
    """What a span named ``{op} {what}`` names (the agent, tool or model), or None."""
    name = getattr(span, "name", None)
    if isinstance(name, str) and name.startswith(op + " "):
        return name[len(op) + 1 :].strip() or None
    return None


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
