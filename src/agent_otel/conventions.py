"""Every name that leaves the process: span names, attribute keys, metric names, event kinds.

Dashboards, alert rules, the run store and users' queries all depend on these strings, so they live in
one module and nowhere else. Where the OpenTelemetry semantic conventions define a key and have not
deprecated it we use their constant, so a change upstream shows up here as one diff.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _gen_ai
from opentelemetry.semconv.attributes import deployment_attributes as _deployment
from opentelemetry.semconv.attributes import error_attributes as _error
from opentelemetry.semconv.attributes import service_attributes as _service

# --- operations and span names -------------------------------------------------------------------

OP_INVOKE_AGENT: Final = "invoke_agent"
OP_EXECUTE_TOOL: Final = "execute_tool"
OP_CHAT: Final = "chat"


def run_span_name(agent: str) -> str:
    return f"{OP_INVOKE_AGENT} {agent}"


def tool_span_name(tool: str) -> str:
    return f"{OP_EXECUTE_TOOL} {tool}"


def llm_span_name(model: str) -> str:
    return f"{OP_CHAT} {model}"


# --- span attributes (DESIGN.md "Spans") -----------------------------------------------------------

GEN_AI_OPERATION_NAME: Final = _gen_ai.GEN_AI_OPERATION_NAME
GEN_AI_AGENT_NAME: Final = _gen_ai.GEN_AI_AGENT_NAME
GEN_AI_TOOL_NAME: Final = _gen_ai.GEN_AI_TOOL_NAME
GEN_AI_TOOL_CALL_ID: Final = _gen_ai.GEN_AI_TOOL_CALL_ID
GEN_AI_TOOL_CALL_ARGUMENTS: Final = _gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS
GEN_AI_TOOL_CALL_RESULT: Final = _gen_ai.GEN_AI_TOOL_CALL_RESULT
GEN_AI_REQUEST_MODEL: Final = _gen_ai.GEN_AI_REQUEST_MODEL
GEN_AI_USAGE_INPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_INPUT_TOKENS
GEN_AI_USAGE_OUTPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
# Spelled out: the semantic-conventions package this project supports (>=0.51b0) predates them.
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
ERROR_TYPE: Final = _error.ERROR_TYPE
SERVICE_NAME: Final = _service.SERVICE_NAME
SERVICE_VERSION: Final = _service.SERVICE_VERSION
DEPLOYMENT_ENVIRONMENT: Final = _deployment.DEPLOYMENT_ENVIRONMENT_NAME

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
# true on the run span of a run its metrics' exemplars link to: the bundled collector keeps that trace
RUN_EXEMPLAR: Final = "agent.exemplar"

# Resource attribute naming the SDK that produced the telemetry (next to the OTel SDK's own).
AGENT_OTEL_VERSION: Final = "agent_otel.version"

# --- span events -----------------------------------------------------------------------------------

EVENT_STOP: Final = "agent.stop"
EVENT_GUARD: Final = "agent.guard"
EVENT_RETRY: Final = "agent.tool.retry"

# --- values ----------------------------------------------------------------------------------------

STATUS_OK: Final = "ok"
STATUS_ERROR: Final = "error"

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
_COUNT_BUCKETS: Final = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200)
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
_USD_BUCKETS: Final = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

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
    "Spans, events and metric batches agent-otel dropped because a buffer was full or export failed.",
    "agent_otel_telemetry_dropped_total",
    ("signal", "reason"),
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
