"""Synthetic runs in exactly the record format the SDK emits, written through the real store sink.

Tests that need runs at chosen times, durations or counts (drift, stats, gc, the seed's SQL) build them
here; ``test_seed_records_match_the_sdk`` keeps the format honest against records a real run emits.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from agent_otel.stop import StopReason
from agent_otel.store import StoreSink, Target

HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def now_ms() -> int:
    return int(time.time() * 1000)


def run_records(
    created_at_ms: int,
    *,
    agent: str = "support-agent",
    tool_calls: int = 4,
    duration_ms: float = 1000.0,
    llm_calls: int = 2,
    tokens_per_request: int = 1000,
    cost_usd: float = 0.01,
    stop_reason: str = "completed",
    failing: tuple[str, str] | None = None,
    model: str = "gpt-4o",
    run_id: str | None = None,
    conversation_id: str | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """Start record, tool and LLM events, stop event and end record of one run."""
    run_id = run_id or uuid.uuid4().hex
    trace_id = uuid.uuid4().hex
    span_id = uuid.uuid4().hex[:16]
    reason = StopReason(stop_reason)
    base = {
        "run_id": run_id,
        "trace_id": trace_id,
        "span_id": span_id,
        "agent": agent,
        "parent_run_id": None,
        "created_at_ms": created_at_ms,
        "model": model,
        "prompt_version": "v12",
        "tools_version": "3",
        "input_sha": "0" * 24,
        "service": "test",
        "replay_of": None,
        "conversation_id": conversation_id,
        "status": "running",
        "stop_reason": None,
        "ended_at_ms": None,
        "duration_ms": None,
    }
    records: list[tuple[str, dict[str, Any]]] = [("run", dict(base))]
    step = 0
    input_tokens = output_tokens = 0
    each = duration_ms / max(tool_calls + llm_calls, 1)

    def event(kind: str, **fields: Any) -> dict[str, Any]:
        e = {
            "run_id": run_id,
            "kind": kind,
            "ts_ms": created_at_ms + int(each * step),
            "step_id": step,
            "tool": None,
            "args_sha": None,
            "result_sha": None,
            "duration_ms": each,
            "status": "ok",
            "error": None,
            "stop_reason": None,
            "usage": None,
            "trace_id": trace_id,
            "span_id": uuid.uuid4().hex[:16],
            "agent": agent,
        }
        e.update(fields)
        return e

    for i in range(llm_calls):
        step += 1
        inp = tokens_per_request - 100
        input_tokens += inp
        output_tokens += 100
        usage = {"model": model, "input_tokens": inp, "output_tokens": 100, "cost_usd": cost_usd / llm_calls}
        records.append(("event", event("llm_result", usage=usage)))
        del i
    for i in range(tool_calls):
        step += 1
        fields: dict[str, Any] = {"tool": "search", "args_sha": f"{i:024x}", "result_sha": f"{i + 1:024x}"}
        if failing is not None and i == tool_calls - 1:
            fields.update(tool=failing[0], status="error", error=failing[1], result_sha=None)
        records.append(("event", event("tool_result", **fields)))
    usage = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "cost_usd": cost_usd,
        "tool_calls": tool_calls,
        "llm_calls": llm_calls,
        "steps": step,
        "retries": 0,
        "duration_ms": duration_ms,
    }
    stop = event("stop", step_id=None, stop_reason=reason.value, status=reason.stop_class, usage=usage)
    stop["ts_ms"] = created_at_ms + int(duration_ms)
    stop["duration_ms"] = duration_ms
    records.append(("event", stop))
    end = dict(base)
    end.update(
        status=reason.stop_class,
        stop_reason=reason.value,
        ended_at_ms=created_at_ms + int(duration_ms),
        duration_ms=duration_ms,
        tool_calls=tool_calls,
        steps=step,
        llm_calls=llm_calls,
        retries=0,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost_usd,
        detail=None,
    )
    records.append(("run", end))
    return records


def write(location: str, records: list[tuple[str, dict[str, Any]]]) -> None:
    """Write records through the real sink into the store at ``location`` (path or URL)."""
    kind = "postgresql" if location.startswith("postgresql://") else "sqlite"
    if kind == "sqlite":
        os.makedirs(os.path.dirname(location), exist_ok=True)  # as a user's deployment would have it
    sink = StoreSink(Target(kind, location), {"logs_days": 0, "tool_snapshot_days": 0})
    try:
        sink.write(records)
        assert sink.error is None, f"seeding failed: {sink.error}"
    finally:
        sink.close()
