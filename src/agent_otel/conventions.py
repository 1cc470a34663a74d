"""Every name that leaves the process: span names, attribute keys, metric names, event kinds.

Dashboards, alert rules, the run store and users' queries all depend on these strings, so they live in
one module and nowhere else. Where the OpenTelemetry semantic conventions define a key we use its name
(the stable ones through opentelemetry-semantic-conventions' constants, the GenAI ones as the current
GenAI registry spells them), so a change upstream shows up here as one diff.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from opentelemetry.semconv.attributes import deployment_attributes as _deployment
from opentelemetry.semconv.attributes import error_attributes as _error
from opentelemetry.semconv.attributes import server_attributes as _server
from opentelemetry.semconv.attributes import service_attributes as _service

# --- operations and span names -------------------------------------------------------------------

OP_INVOKE_AGENT: Final = "invoke_agent"
#: A library's span of one invocation of a workflow of agents (Google ADK's ``invoke_workflow {root}``).
OP_INVOKE_WORKFLOW: Final = "invoke_workflow"
OP_EXECUTE_TOOL: Final = "execute_tool"
OP_CHAT: Final = "chat"


def nfc(name: str) -> str:
    """An agent name in Unicode NFC: "café" typed on one host (é, one code point) and read from a macOS
    file name or another library (e and a combining accent, NFD) look the same wherever a user sees them,
    so they are one agent in every label, row and guard rule."""
    return name if name.isascii() else unicodedata.normalize("NFC", name)


def run_span_name(agent: str) -> str:
    return f"{OP_INVOKE_AGENT} {agent}"


def tool_span_name(tool: str) -> str:
    return f"{OP_EXECUTE_TOOL} {tool}"


def llm_span_name(model: str) -> str:
    return f"{OP_CHAT} {model}"


# --- span attributes (DESIGN.md "Spans") -----------------------------------------------------------
#
# The gen_ai.* keys are spelled out from the GenAI registry of semantic-conventions-genai (a copy is in
# shared/semconv/gen-ai/registry.yaml; tests/integrations/test_semconv.py checks every key agent-otel
# emits against it). The gen_ai_attributes module of opentelemetry-semantic-conventions is not used: its
# GenAI names are all marked "Moved" to that repository.

GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_DESCRIPTION: Final = "gen_ai.tool.description"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
GEN_AI_OUTPUT_TYPE: Final = "gen_ai.output.type"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
ERROR_TYPE: Final = _error.ERROR_TYPE
SERVER_ADDRESS: Final = _server.SERVER_ADDRESS
SERVER_PORT: Final = _server.SERVER_PORT
SERVICE_NAME: Final = _service.SERVICE_NAME
SERVICE_VERSION: Final = _service.SERVICE_VERSION
DEPLOYMENT_ENVIRONMENT: Final = _deployment.DEPLOYMENT_ENVIRONMENT_NAME

# Request parameters read from a request body (OpenAI / Anthropic / framework settings), by field name.
REQUEST_PARAMETERS: Final = (
    ("temperature", GEN_AI_REQUEST_TEMPERATURE, float),
    ("max_tokens", GEN_AI_REQUEST_MAX_TOKENS, int),
    ("max_completion_tokens", GEN_AI_REQUEST_MAX_TOKENS, int),
    ("max_output_tokens", GEN_AI_REQUEST_MAX_TOKENS, int),
    ("top_p", GEN_AI_REQUEST_TOP_P, float),
    ("top_k", GEN_AI_REQUEST_TOP_K, int),
    ("seed", GEN_AI_REQUEST_SEED, int),
    ("frequency_penalty", GEN_AI_REQUEST_FREQUENCY_PENALTY, float),
    ("presence_penalty", GEN_AI_REQUEST_PRESENCE_PENALTY, float),
)

# --- OTEL_SEMCONV_STABILITY_OPT_IN ------------------------------------------------------------------
#
# agent-otel emits the current GenAI names (gen_ai.provider.name, gen_ai.usage.input_tokens ...); it never
# emitted their predecessors, so ``gen_ai_latest_experimental`` (the opt-in value the GenAI conventions
# define) is what it does anyway. ``gen_ai/dup`` additionally emits the names these replaced, for a backend
# that still reads them, as the ``http/dup`` and ``database/dup`` opt-ins do for those conventions.

SEMCONV_OPT_IN_ENV: Final = "OTEL_SEMCONV_STABILITY_OPT_IN"
SEMCONV_GEN_AI_DUP: Final = "gen_ai/dup"
#: current name -> the deprecated name it replaced (emitted as well only with ``gen_ai/dup``).
GEN_AI_PREVIOUS_NAMES: Final = {
    GEN_AI_PROVIDER_NAME: "gen_ai.system",
    GEN_AI_USAGE_INPUT_TOKENS: "gen_ai.usage.prompt_tokens",
    GEN_AI_USAGE_OUTPUT_TOKENS: "gen_ai.usage.completion_tokens",
}


def env_reader(name: str) -> Callable[[], str | None]:
    """``os.environ.get(name)`` for a variable read on every step or request (the kill switch's, the
    GenAI opt-in). ``os.environ.get`` goes through
    ``Mapping.get`` and a KeyError when the variable is unset (about 1 us); the mapping's own dict of
    encoded names answers the same in a dict lookup. Where ``os.environ`` is not CPython's ``_Environ``,
    the plain lookup is used."""
    try:
        key = os.environ.encodekey(name)  # type: ignore[attr-defined]
        decode = os.environ.decodevalue  # type: ignore[attr-defined]
        os.environ._data.get(key)  # type: ignore[attr-defined]
    except Exception:
        return lambda: os.environ.get(name)

    def read() -> str | None:
        raw = os.environ._data.get(key)  # type: ignore[attr-defined]  # os.environ may be replaced: no alias
        return None if raw is None else decode(raw)

    return read


_dup_parsed: tuple[str, bool] = ("", False)  # the last value of the variable and its answer
_read_opt_in = env_reader(SEMCONV_OPT_IN_ENV)


def gen_ai_dup(env: dict[str, str] | None = None) -> bool:
    """Whether ``OTEL_SEMCONV_STABILITY_OPT_IN`` asks for the previous GenAI names next to the current."""
    global _dup_parsed
    value = (_read_opt_in() if env is None else env.get(SEMCONV_OPT_IN_ENV)) or ""
    last, answer = _dup_parsed
    if value != last:  # read on every request (it may change), parsed when it does
        answer = SEMCONV_GEN_AI_DUP in {token.strip().lower() for token in value.split(",")}
        _dup_parsed = (value, answer)
    return answer


def with_previous_names(attributes: dict[str, object]) -> dict[str, object]:
    """``attributes`` plus the deprecated name of every key that has one (for ``gen_ai/dup``)."""
    extra = {GEN_AI_PREVIOUS_NAMES[k]: v for k, v in attributes.items() if k in GEN_AI_PREVIOUS_NAMES}
    return {**attributes, **extra} if extra else attributes


RUN_ID: Final = "agent.run_id"
PARENT_RUN_ID: Final = "agent.parent_run_id"
STEP_ID: Final = "agent.step_id"
TOOL_ARGS_SHA: Final = "agent.tool.args_sha"
TOOL_RESULT_SHA: Final = "agent.tool.result_sha"
TOOL_STATUS: Final = "agent.tool.status"
TOOL_ATTEMPTS: Final = "agent.tool.attempts"
TOOL_SIDE_EFFECTS: Final = "agent.tool.side_effects"
STOP_REASON: Final = "agent.stop_reason"
TOOL_CALLS: Final = "agent.tool_calls"
STEPS: Final = "agent.steps"
PROMPT_VERSION: Final = "agent.prompt_version"
TOOLS_VERSION: Final = "agent.tools_version"
COST_USD: Final = "agent.cost_usd"
INPUT_SHA: Final = "agent.input_sha"
REPLAY_OF: Final = "agent.replay_of"
# The run's token totals: not gen_ai.usage.*, which belongs on the span of each request only, so that a
# backend summing gen_ai.usage.* over a trace counts every request once.
USAGE_INPUT_TOKENS: Final = "agent.usage.input_tokens"
USAGE_OUTPUT_TOKENS: Final = "agent.usage.output_tokens"
# The run this one resumes (a paused run of the same conversation); the span also links to it.
RESUME_OF: Final = "agent.resume_of"
# On an agent.approval event: the human's decision, APPROVED or REJECTED (a closed set).
APPROVAL_DECISION: Final = "agent.approval.decision"
# Tool call ids the model asked for in its response (on the chat span).
LLM_TOOL_CALL_IDS: Final = "agent.llm.tool_call_ids"
# true on the run span of a run its metrics' exemplars link to: the bundled collector keeps that trace
RUN_EXEMPLAR: Final = "agent.exemplar"

# What Tempo searches, the dashboards and the bundled collector's sampling find agent-otel's spans by, the
# most important last: under a span attribute count limit they are set again as a span ends, so that the
# SDK's eviction of the oldest attributes takes others (agent_otel.steps.keep_essential).
ESSENTIAL: Final = (
    GEN_AI_REQUEST_MODEL,
    GEN_AI_TOOL_NAME,
    GEN_AI_AGENT_NAME,
    RUN_EXEMPLAR,
    STEP_ID,
    GEN_AI_OPERATION_NAME,
    STOP_REASON,
    RUN_ID,
)

# Resource attribute naming the SDK that produced the telemetry (next to the OTel SDK's own).
AGENT_OTEL_VERSION: Final = "agent_otel.version"

# --- span events -----------------------------------------------------------------------------------

EVENT_STOP: Final = "agent.stop"
EVENT_GUARD: Final = "agent.guard"
EVENT_RETRY: Final = "agent.tool.retry"
EVENT_INTERRUPT: Final = "agent.interrupt"
# What a human decided about a tool call a paused run waited for, on the run given the decision.
EVENT_APPROVAL: Final = "agent.approval"
EVENT_HANDOFF: Final = "agent.handoff"

# --- values ----------------------------------------------------------------------------------------

STATUS_OK: Final = "ok"
STATUS_ERROR: Final = "error"
STATUS_INTERRUPTED: Final = "interrupted"  # a tool call that paused the agent for human input
STATUS_CANCELLED: Final = "cancelled"  # a tool call cancelled (asyncio, KeyboardInterrupt, SystemExit)
APPROVED: Final = "approved"  # agent.approval.decision: the call may run
REJECTED: Final = "rejected"  # agent.approval.decision: the call does not run; the model is told

# --- unified event kinds (DESIGN.md "Unified event schema") ----------------------------------------

KIND_TOOL_RESULT: Final = "tool_result"
KIND_LLM_RESULT: Final = "llm_result"
KIND_STOP: Final = "stop"

# --- metrics ---------------------------------------------------------------------------------------
#
# The Prometheus names in DESIGN.md are the contract. The OTLP -> Prometheus translation (OpenTelemetry
# spec, "Prometheus and OpenMetrics Compatibility") replaces "." with "_", appends the unit as a suffix
# unless the name already carries it, maps "ms" to "milliseconds", drops units written as {annotations},
# and appends "_total" to monotonic sums. So a unit of "ms" would turn agent.run.latency_ms into
# agent_run_latency_ms_milliseconds. The contract names already carry their unit ("_ms", "_usd"), so
# their OTel unit is an annotation such as "{ms}": it documents the unit and adds no suffix.
# tests/test_conventions.py checks every name below against an implementation of those rules.


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    kind: str  # "counter" | "histogram" | "observable_counter"
    unit: str
    description: str
    prometheus: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()


# Bucket boundaries chosen for agents, not web requests: tool calls are tens of milliseconds to minutes,
# runs are seconds to many minutes, a run makes 1 to ~100 tool calls.
_MS_BUCKETS: Final = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000, 300000)
_RUN_MS_BUCKETS: Final = (
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
    20000,
    30000,
    60000,
    120000,
    300000,
    600000,
    1800000,
)
# 0 is a bound of its own where 0 is common (runs that call no tool, spend nothing): in the first bucket
# of (0, 1] Prometheus' histogram_quantile interpolates, and runs of 0 tool calls read as a p95 of 0.95.
_COUNT_BUCKETS: Final = (0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200)
_TOKEN_BUCKETS: Final = (
    50,
    100,
    250,
    500,
    1000,
    2000,
    4000,
    8000,
    16000,
    32000,
    64000,
    128000,
    256000,
    1000000,
)
_USD_BUCKETS: Final = (
    0,
    0.0001,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
)

M_STOP: Final = MetricSpec(
    "agent.stop",
    "counter",
    "{run}",
    "Runs ended, by stop reason.",
    "agent_stop_total",
    ("agent", "stop_reason"),
)
M_TOOL_CALLS: Final = MetricSpec(
    "agent.tool_calls",
    "histogram",
    "{call}",
    "Tool calls per run.",
    "agent_tool_calls",
    ("agent",),
    _COUNT_BUCKETS,
)
M_RUN_LATENCY: Final = MetricSpec(
    "agent.run.latency_ms",
    "histogram",
    "{ms}",
    "Run duration in milliseconds.",
    "agent_run_latency_ms",
    ("agent", "stop_reason"),
    _RUN_MS_BUCKETS,
)
M_TOKENS_PER_REQUEST: Final = MetricSpec(
    "agent.tokens_per_request",
    "histogram",
    "{token}",
    "Input plus output tokens per LLM request.",
    "agent_tokens_per_request",
    ("agent", "model"),
    _TOKEN_BUCKETS,
)
M_SPEND_PER_RUN: Final = MetricSpec(
    "agent.spend_per_run_usd",
    "histogram",
    "{USD}",
    "Spend per run in US dollars.",
    "agent_spend_per_run_usd",
    ("agent",),
    _USD_BUCKETS,
)
M_TOOL_DURATION: Final = MetricSpec(
    "agent.tool.duration_ms",
    "histogram",
    "{ms}",
    "Tool call duration in milliseconds.",
    "agent_tool_duration_ms",
    ("agent", "tool", "status"),
    _MS_BUCKETS,
)
M_TOOL_INVOCATIONS: Final = MetricSpec(
    "agent.tool.invocations",
    "counter",
    "{call}",
    "Tool calls, by status and error class.",
    "agent_tool_invocations_total",
    ("agent", "tool", "status", "error_type"),
)
M_TOOL_RETRIES: Final = MetricSpec(
    "agent.tool.retries",
    "counter",
    "{retry}",
    "Tool call retries.",
    "agent_tool_retries_total",
    ("agent", "tool"),
)
M_TOOL_FAILED_ATTEMPTS: Final = MetricSpec(
    "agent.tool.failed_attempts",
    "counter",
    "{attempt}",
    "Tool attempts that raised, retried ones included, by error class.",
    "agent_tool_failed_attempts_total",
    ("agent", "tool", "error_type"),
)
M_GUARD_TRIGGERS: Final = MetricSpec(
    "agent.guard.triggers",
    "counter",
    "{trigger}",
    "Guard triggers (budgets, loops, policy, kill switch).",
    "agent_guard_triggers_total",
    ("agent", "guard"),
)
M_DROPPED: Final = MetricSpec(
    "agent_otel.telemetry.dropped",
    "observable_counter",
    "{item}",
    "Spans, metric batches, event records and store records that did not reach their destination.",
    "agent_otel_telemetry_dropped_total",
    ("signal", "reason"),
)

# The GenAI client metrics of the semantic conventions (shared/semconv/gen-ai/metrics.yaml), recorded next
# to agent-otel's own with the GenAI attributes plus gen_ai.agent.name, so that a panel can split LLM time
# from tool time per agent. Their buckets are the conventions' advisory ones.
_GENAI_TOKEN_BUCKETS: Final = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
)
_GENAI_SECONDS_BUCKETS: Final = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
M_GEN_AI_TOKEN_USAGE: Final = MetricSpec(
    "gen_ai.client.token.usage",
    "histogram",
    "{token}",
    "Number of input and output tokens used.",
    "gen_ai_client_token_usage",
    (
        GEN_AI_OPERATION_NAME,
        GEN_AI_PROVIDER_NAME,
        GEN_AI_REQUEST_MODEL,
        GEN_AI_RESPONSE_MODEL,
        GEN_AI_TOKEN_TYPE,
        GEN_AI_AGENT_NAME,
    ),
    _GENAI_TOKEN_BUCKETS,
)
M_GEN_AI_OPERATION_DURATION: Final = MetricSpec(
    "gen_ai.client.operation.duration",
    "histogram",
    "s",
    "GenAI operation duration (chat requests and tool executions).",
    "gen_ai_client_operation_duration_seconds",
    (
        GEN_AI_OPERATION_NAME,
        GEN_AI_PROVIDER_NAME,
        GEN_AI_REQUEST_MODEL,
        GEN_AI_RESPONSE_MODEL,
        GEN_AI_AGENT_NAME,
        ERROR_TYPE,
    ),
    _GENAI_SECONDS_BUCKETS,
)

METRICS: Final = (
    M_STOP,
    M_TOOL_CALLS,
    M_RUN_LATENCY,
    M_TOKENS_PER_REQUEST,
    M_SPEND_PER_RUN,
    M_TOOL_DURATION,
    M_TOOL_INVOCATIONS,
    M_TOOL_RETRIES,
    M_TOOL_FAILED_ATTEMPTS,
    M_GUARD_TRIGGERS,
    M_DROPPED,
    M_GEN_AI_TOKEN_USAGE,
    M_GEN_AI_OPERATION_DURATION,
)

# Label keys on metrics. They are bounded: agent and tool names come from code, stop_reason from a
# closed set, error_type from exception class names.
L_AGENT: Final = "agent"
L_TOOL: Final = "tool"
L_STATUS: Final = "status"
L_ERROR_TYPE: Final = "error_type"
L_STOP_REASON: Final = "stop_reason"
L_MODEL: Final = "model"
L_GUARD: Final = "guard"
