"""The GenAI client metrics next to agent-otel's own, and OTEL_SEMCONV_STABILITY_OPT_IN.

``gen_ai.client.token.usage`` (Prometheus ``gen_ai_client_token_usage_*``) and
``gen_ai.client.operation.duration`` (``gen_ai_client_operation_duration_seconds_*``) carry the GenAI
attributes plus ``gen_ai.agent.name``, so a panel can put LLM time next to tool time per agent.
"""

from __future__ import annotations

import pytest

import agent_otel
from agent_otel import conventions as c
from tests.test_conventions import prometheus_name


def test_prometheus_names_of_the_genai_metrics():
    assert prometheus_name(c.M_GEN_AI_TOKEN_USAGE.name, c.M_GEN_AI_TOKEN_USAGE.unit, "histogram") == (
        "gen_ai_client_token_usage"
    )
    duration = c.M_GEN_AI_OPERATION_DURATION
    assert (
        prometheus_name(duration.name, duration.unit, "histogram")
        == "gen_ai_client_operation_duration_seconds"
    )


def test_chat_requests_and_tool_calls_record_the_genai_client_metrics(telemetry):
    @agent_otel.tool
    def lookup(q: str) -> str:
        return q

    @agent_otel.tool
    def broken() -> None:
        raise KeyError("x")

    with agent_otel.run("metered") as run:
        run.record_llm(model="gpt-4o", input_tokens=120, output_tokens=30, duration_ms=250)
        run.record_llm(model="claude-sonnet-4-20250514", input_tokens=7, output_tokens=3, duration_ms=50)
        lookup("a")
        with pytest.raises(KeyError):
            broken()
    metrics = telemetry.metrics()
    tokens = {
        (p["gen_ai.provider.name"], p["gen_ai.request.model"], p["gen_ai.token.type"]): point.sum
        for p, point in metrics["gen_ai.client.token.usage"]
    }
    assert tokens == {
        ("openai", "gpt-4o", "input"): 120,
        ("openai", "gpt-4o", "output"): 30,
        ("anthropic", "claude-sonnet-4-20250514", "input"): 7,
        ("anthropic", "claude-sonnet-4-20250514", "output"): 3,
    }
    for attributes, _ in metrics["gen_ai.client.token.usage"]:
        assert attributes["gen_ai.operation.name"] == "chat" and attributes["gen_ai.agent.name"] == "metered"
    durations = {
        (p["gen_ai.operation.name"], p.get("gen_ai.request.model"), p.get("error.type")): point
        for p, point in metrics["gen_ai.client.operation.duration"]
    }
    assert set(durations) == {
        ("chat", "gpt-4o", None),
        ("chat", "claude-sonnet-4-20250514", None),
        ("execute_tool", None, None),
        ("execute_tool", None, "KeyError"),
    }
    assert durations[("chat", "gpt-4o", None)].sum == pytest.approx(0.25, abs=0.05)  # seconds
    assert all(p["gen_ai.agent.name"] == "metered" for p, _ in metrics["gen_ai.client.operation.duration"])
    # agent-otel's own series are unchanged beside them.
    assert {p["model"] for p, _ in metrics["agent.tokens_per_request"]} == {
        "gpt-4o",
        "claude-sonnet-4-20250514",
    }


def test_semconv_opt_in_dup_also_emits_the_names_the_current_ones_replaced(telemetry, monkeypatch):
    with agent_otel.run("plain") as run:
        run.record_llm(model="gpt-4o", input_tokens=3, output_tokens=1)
    (chat,) = telemetry.spans_named("chat ")
    assert chat.attributes["gen_ai.provider.name"] == "openai"
    assert "gen_ai.system" not in chat.attributes and "gen_ai.usage.prompt_tokens" not in chat.attributes

    telemetry.exporter.clear()
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http, gen_ai/dup")
    with agent_otel.run("dup") as run:
        run.record_llm(model="gpt-4o", input_tokens=3, output_tokens=1)
    spans = telemetry.spans()
    (chat,) = [s for s in spans if s.name.startswith("chat ")]
    assert chat.attributes["gen_ai.system"] == chat.attributes["gen_ai.provider.name"] == "openai"
    assert chat.attributes["gen_ai.usage.prompt_tokens"] == chat.attributes["gen_ai.usage.input_tokens"] == 3
    assert chat.attributes["gen_ai.usage.completion_tokens"] == 1
    (root,) = [s for s in spans if s.name.startswith("invoke_agent")]
    assert root.attributes["gen_ai.system"] == "openai"

    telemetry.exporter.clear()
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    with agent_otel.run("latest") as run:
        run.record_llm(model="gpt-4o", input_tokens=3, output_tokens=1)
    (chat,) = telemetry.spans_named("chat ")
    assert "gen_ai.system" not in chat.attributes

    # Read on every request, set or unset: dup again, then the variable removed from the environment.
    for value in ("gen_ai/dup", None):
        telemetry.exporter.clear()
        if value is None:
            monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN")
        else:
            monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", value)
        with agent_otel.run("again") as run:
            run.record_llm(model="gpt-4o", input_tokens=3, output_tokens=1)
        (chat,) = telemetry.spans_named("chat ")
        assert ("gen_ai.system" in chat.attributes) is (value is not None)


def test_record_llm_takes_the_provider_or_infers_it_from_well_known_model_names(telemetry):
    with agent_otel.run("p") as run:
        run.record_llm(model="my-finetune", input_tokens=1, output_tokens=1, provider="azure.ai.openai")
        run.record_llm(model="gemini-2.0-flash", input_tokens=1, output_tokens=1)
        run.record_llm(model="some-local-model", input_tokens=1, output_tokens=1)
    providers = {s.name: s.attributes.get("gen_ai.provider.name") for s in telemetry.spans_named("chat ")}
    assert providers == {
        "chat my-finetune": "azure.ai.openai",
        "chat gemini-2.0-flash": "gcp.gemini",
        "chat some-local-model": None,  # unknown: left out rather than guessed
    }


def test_a_failed_request_records_its_duration_with_the_error_and_no_tokens(telemetry):
    """Requests of one model and agent, failed and not, in any order: each lands in its own series."""
    with agent_otel.run("metered") as run:
        for error in (None, "RateLimitError", None, "RateLimitError"):
            run.record_llm(model="gpt-4o", input_tokens=10, output_tokens=2, duration_ms=100, error=error)
    metrics = telemetry.metrics()
    durations = {p.get("error.type"): point.count for p, point in metrics["gen_ai.client.operation.duration"]}
    assert durations == {None: 2, "RateLimitError": 2}
    tokens = {p["gen_ai.token.type"]: point.sum for p, point in metrics["gen_ai.client.token.usage"]}
    assert tokens == {"input": 20, "output": 4}
    assert all("error.type" not in p for p, _ in metrics["gen_ai.client.token.usage"])


def test_a_request_without_usage_records_no_token_samples(telemetry):
    """A streamed Chat Completion without ``stream_options.include_usage`` reports no usage: recorded as
    0 input and 0 output tokens, it pulled the token histograms' percentiles to zero."""
    with agent_otel.run("streaming") as run:
        run.record_llm(model="gpt-4o", input_tokens=120, output_tokens=30, duration_ms=250)
        run.record_llm(model="gpt-4o", duration_ms=250)  # usage unknown
    metrics = telemetry.metrics()
    counts = {p["gen_ai.token.type"]: point.count for p, point in metrics["gen_ai.client.token.usage"]}
    assert counts == {"input": 1, "output": 1}
    (duration,) = [
        point.count
        for p, point in metrics["gen_ai.client.operation.duration"]
        if p.get("gen_ai.request.model") == "gpt-4o"
    ]
    assert duration == 2  # the request itself is still counted
