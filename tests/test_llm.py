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


def test_a_negative_cost_is_unknown_and_the_price_table_gives_the_spend(telemetry):
    """A negative ``cost_usd`` (a refund or a sign slip in the caller's arithmetic) was taken as spend:
    the run showed ``$-1.00`` and lowered its spend budget's count. Like a NaN, it is no spend a request
    can have: unknown, so the price table prices the request, and a model without a price adds nothing."""
    with agent_otel.run("a", model="gpt-4o") as run:
        run.record_llm(model="gpt-4o", input_tokens=1000, output_tokens=100, cost_usd=-1.0)
        run.record_llm(model="in-house-llm", input_tokens=10, output_tokens=5, cost_usd=-0.5)
    expected = (1000 * 2.5 + 100 * 10) / 1e6
    assert run.cost_usd == pytest.approx(expected)
    spans = sorted(telemetry.spans_named("chat"), key=lambda s: s.attributes[c.STEP_ID])
    assert spans[0].attributes[c.COST_USD] == pytest.approx(expected)
    assert c.COST_USD not in spans[1].attributes
    (stop,) = telemetry.events("stop")
    assert stop["usage"]["cost_usd"] == pytest.approx(expected)
    assert [e["usage"].get("cost_usd") for e in telemetry.events("llm_result")] == [
        pytest.approx(expected),
        None,
    ]


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


def test_cache_prices_builtin_and_configured():
    table = PriceTable(
        {
            "my-model": {"input": 2.0, "output": 0.0},  # no cache prices: both are the input price
            "my-cached": {"input": 2.0, "output": 0.0, "cached_input": 0.5, "cache_write": 3.0},
            "gpt-4o": {"input": 2.5, "output": 10.0},  # an override without them loses the discount
        }
    )
    # all input tokens (1M), of which 600k read from and 200k written to the cache
    assert table.cost("my-model", 1_000_000, 0, 600_000, 200_000) == pytest.approx(2.0)
    assert table.cost("my-cached", 1_000_000, 0, 600_000, 200_000) == pytest.approx(0.4 + 0.3 + 0.6)
    assert table.cost("gpt-4o", 1_000_000, 0, 1_000_000) == pytest.approx(2.5)
    builtin = PriceTable()
    assert builtin.cost("gpt-4o-2024-08-06", 1_000_000, 0, 1_000_000) == pytest.approx(1.25)
    assert builtin.cost("gpt-4o", 1_000_000, 0, 0, 1_000_000) == pytest.approx(2.5)  # OpenAI: no write fee
    assert builtin.cost("claude-sonnet-4-5", 1_000_000, 0, 1_000_000) == pytest.approx(0.3)
    assert builtin.cost("claude-sonnet-4", 1_000_000, 0, 0, 1_000_000) == pytest.approx(3.75)
    # inconsistent counts are clamped to the input total instead of going negative
    assert builtin.cost("gpt-4o", 100, 0, 500) == pytest.approx(100 * 1.25 / 1e6)


def test_record_llm_prices_cached_tokens_and_keeps_input_as_the_total(telemetry):
    with agent_otel.run("a", model="claude-sonnet-4") as run:
        run.record_llm(input_tokens=1000, output_tokens=10, cached_input_tokens=900, cache_write_tokens=50)
    # 50 * 3.00 + 900 * 0.30 + 50 * 3.75 + 10 * 15.00 = 757.5 USD per 1M tokens
    assert run.cost_usd == pytest.approx(757.5 / 1e6)
    assert run.input_tokens == 1000
    (span,) = telemetry.spans_named("chat")
    assert span.attributes[c.GEN_AI_USAGE_INPUT_TOKENS] == 1000
    assert span.attributes[c.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 900
    assert span.attributes[c.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == 50
    (event,) = telemetry.events("llm_result")
    assert event["usage"]["cached_input_tokens"] == 900 and event["usage"]["cache_write_tokens"] == 50
