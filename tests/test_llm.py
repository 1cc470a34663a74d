"""LLM calls: usage, spend from the price table or explicitly, and the run's totals."""

from __future__ import annotations

import pytest

import agent_otel
from agent_otel import conventions as c
from agent_otel.pricing import PriceTable


def test_usage_and_spend_add_up_on_the_run(telemetry):
    with agent_otel.run("a", model="gpt-4o") as run:
        run.record_llm(input_tokens=1000, output_tokens=100)  # model from the run
        run.record_llm(model="gpt-4o-mini-2024-07-18", input_tokens=2000, output_tokens=500)
        run.record_llm(model="in-house-llm", input_tokens=10, output_tokens=5)  # no price known
        run.record_llm(model="in-house-llm", input_tokens=1, output_tokens=1, cost_usd=0.25)
    expected = (1000 * 2.5 + 100 * 10) / 1e6 + (2000 * 0.15 + 500 * 0.6) / 1e6 + 0.25
    assert run.cost_usd == pytest.approx(expected)
    assert run.input_tokens == 3011 and run.output_tokens == 606 and run.llm_calls == 4
    assert run.result.usage["total_tokens"] == 3617
    spans = sorted(telemetry.spans_named("chat"), key=lambda s: s.attributes[c.STEP_ID])
    assert [s.name for s in spans] == [
        "chat gpt-4o",
        "chat gpt-4o-mini-2024-07-18",
        "chat in-house-llm",
        "chat in-house-llm",
    ]
    assert c.COST_USD not in spans[2].attributes
    assert spans[3].attributes[c.COST_USD] == 0.25
    tokens = telemetry.metrics()["agent.tokens_per_request"]
    by_model = {attrs["model"]: p for attrs, p in tokens}
    assert by_model["gpt-4o"].sum == 1100 and by_model["in-house-llm"].count == 2
    (stop,) = telemetry.events("stop")
    assert stop["usage"]["cost_usd"] == pytest.approx(expected)
    llm_events = telemetry.events("llm_result")
    assert [e["usage"]["input_tokens"] for e in llm_events] == [1000, 2000, 10, 1]


def test_duration_back_dates_the_span(telemetry):
    with agent_otel.run("a") as run:
        run.record_llm(model="gpt-4o", input_tokens=1, output_tokens=1, duration_ms=1500)
    (span,) = telemetry.spans_named("chat")
    assert (span.end_time - span.start_time) / 1e6 == pytest.approx(1500, abs=50)


def test_config_prices_override_the_builtin_table():
    table = PriceTable({"gpt-4o": {"input": 1.0, "output": 1.0}, "my-model": {"input": 3.0, "output": 0.0}})
    assert table.cost("gpt-4o", 1_000_000, 1_000_000) == 2.0
    assert table.cost("my-model-v2", 1_000_000, 0) == 3.0
    assert table.cost("openai/gpt-4.1-mini", 1_000_000, 0) == 0.4
    assert table.cost("unknown", 5, 5) is None
