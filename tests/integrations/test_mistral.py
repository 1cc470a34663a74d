"""Mistral's SDK through the GenAI span bridge: with its tracing on (``MISTRAL_SDK_TELEMETRY=global``),
each request's own span becomes an LLM step of the run it is made in, against a fake Mistral API on
127.0.0.1. The SDK starts that span named after the API operation and labels it a ``chat`` afterwards,
so the bridge recognises it when it ends."""

from __future__ import annotations

from typing import Any

import pytest

import agent_otel
from tests.integrations.conftest import Reply, ours, steps

pytest.importorskip("mistralai")

from mistralai.client import Mistral
from opentelemetry.trace import StatusCode

MODEL = "mistral-large-latest"


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISTRAL_SDK_TELEMETRY", "global")  # the SDK's own opt-in to the global provider


def completion(content: str, usage: tuple[int, int] = (12, 3)) -> Reply:
    return Reply(
        {
            "id": "cmpl-1",
            "object": "chat.completion",
            "created": 1700000000,
            "model": MODEL,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
        }
    )


def client(fake_api: Any) -> Mistral:
    return Mistral(api_key="test", server_url=fake_api.base_url)


def mistral_spans(spans: list[Any]) -> list[Any]:
    return [s for s in spans if s.instrumentation_scope.name == "mistralai_sdk_tracer"]


def test_a_request_in_a_run_is_one_llm_step_on_mistrals_span(telemetry, fake_api, traced):
    fake_api.reply(completion("hello"), completion("again", (20, 5)))
    with agent_otel.run("assistant") as run:
        mistral = client(fake_api)
        for text in ("hi", "more"):
            mistral.chat.complete(model=MODEL, messages=[{"role": "user", "content": text}])
    spans = telemetry.spans()
    assert [s.name for s in ours(spans)] == ["invoke_agent assistant"]  # no second span per request
    root = ours(spans)[0]
    assert steps(root, spans) == [(1, f"chat {MODEL}"), (2, f"chat {MODEL}")]
    first = mistral_spans(spans)[0]
    assert first.attributes["agent.run_id"] == run.run_id and first.attributes["agent.cost_usd"] > 0
    usage = run.result.usage
    assert (usage["llm_calls"], usage["input_tokens"], usage["output_tokens"]) == (2, 32, 8)
    assert root.attributes["gen_ai.provider.name"] == "mistral_ai"
    events = telemetry.events("llm_result")
    assert [(e["step_id"], e["usage"]["model"], e["status"]) for e in events] == [
        (1, MODEL, "ok"),
        (2, MODEL, "ok"),
    ]
    assert all(e["duration_ms"] > 0 for e in events)
    metrics = telemetry.metrics()
    assert sum(p.count for a, p in metrics["agent.tokens_per_request"] if a["agent"] == "assistant") == 2


def test_an_api_error_is_a_failed_step_and_passes_through_unchanged(telemetry, fake_api, traced):
    error = {"object": "error", "message": "overloaded", "type": "service_unavailable", "code": "3505"}
    fake_api.reply(Reply(error, status=503))
    with pytest.raises(Exception) as raised, agent_otel.run("assistant") as run:
        client(fake_api).chat.complete(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert type(raised.value).__module__.startswith("mistralai")  # the SDK's own error, unchanged
    (request,) = mistral_spans(telemetry.spans())
    assert request.status.status_code is StatusCode.ERROR
    (event,) = telemetry.events("llm_result")
    assert event["status"] == "error"
    # The SDK raises after its span ended: the error leaving the run before any other step is the request's.
    assert run.result.stop_reason == "model_error"


def test_a_caught_api_error_does_not_name_a_later_unrelated_failure(telemetry, fake_api, traced):
    error = {"object": "error", "message": "overloaded", "type": "service_unavailable", "code": "3505"}
    fake_api.reply(Reply(error, status=503), completion("hello"))
    mistral = client(fake_api)
    with pytest.raises(ValueError), agent_otel.run("assistant") as run:
        try:
            mistral.chat.complete(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        except Exception:
            pass  # the agent handles it and asks again
        mistral.chat.complete(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        raise ValueError("the agent's own bug")
    assert run.result.stop_reason == "error"


def test_outside_a_run_mistrals_spans_are_left_alone(telemetry, fake_api, traced):
    fake_api.reply(completion("hello"))
    client(fake_api).chat.complete(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    (request,) = mistral_spans(telemetry.spans())
    assert "agent.run_id" not in request.attributes
    assert telemetry.events() == []


def test_without_the_sdks_tracing_nothing_is_recorded_for_it(telemetry, fake_api, monkeypatch):
    """Mistral's tracing is off by default: agent-otel sees no request (the README says to turn it on)."""
    monkeypatch.delenv("MISTRAL_SDK_TELEMETRY", raising=False)
    fake_api.reply(completion("hello"))
    with agent_otel.run("assistant") as run:
        client(fake_api).chat.complete(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert mistral_spans(telemetry.spans()) == []
    assert run.result.usage["llm_calls"] == 0
