"""LiteLLM's own ``otel`` callback next to agent-otel's LiteLLM integration: one step per request.

LiteLLM's callback runs after the request, on a thread of its own, in the context of the call: with a
span current it writes the request's attributes onto that span (and adds a ``raw_gen_ai_request`` child)
instead of opening a span of its own. With the ``litellm`` integration that span is the request's step
span, which already carries the same usage: the request stays one step with its usage on one span, and the
run's span is left alone.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import agent_otel
from tests.integrations.conftest import Reply, ours, steps
from tests.integrations.test_bridge import FakeLib, run_span
from tests.integrations.test_litellm import MESSAGES, chat_completion

litellm = pytest.importorskip("litellm")


@pytest.fixture
def otel_callback(monkeypatch):
    """LiteLLM's ``otel`` callback for one test: LiteLLM turns it into logger objects in several module
    lists, all of which are put back afterwards, so no other test sees the callback."""
    for name, value in list(vars(litellm).items()):
        if "callback" in name and isinstance(value, list):
            monkeypatch.setattr(litellm, name, list(value))
    litellm.callbacks = ["otel"]
    yield


def complete(fake_api: Any) -> None:
    fake_api.reply(Reply(chat_completion("gpt-4o-mini-2024-07-18", 100, 5)))
    litellm.completion(model="openai/gpt-4o-mini", messages=MESSAGES, api_base=fake_api.base_url, api_key="k")


def wait_for(telemetry: Any, name: str) -> list[Any]:
    """LiteLLM's spans, once its callback thread has written them (bounded)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        spans = telemetry.spans()
        if any(s.name == name for s in spans):
            return spans
        time.sleep(0.05)
    raise AssertionError(f"LiteLLM's {name!r} span never came")


def assert_one_request(telemetry: Any, spans: list[Any], run_id: str) -> None:
    (chat,) = [s for s in ours(spans) if s.name == "chat gpt-4o-mini"]
    assert chat.attributes["agent.run_id"] == run_id and chat.attributes["agent.step_id"] == 1
    with_usage = [s for s in spans if "gen_ai.usage.input_tokens" in s.attributes]
    assert [s.name for s in with_usage] == [
        "chat gpt-4o-mini"
    ]  # LiteLLM wrote its usage onto the step's span
    assert [(e["kind"], e["step_id"]) for e in telemetry.events("llm_result")] == [("llm_result", 1)]


def test_in_a_user_run_the_request_is_one_step(telemetry, instrument, fake_api, otel_callback):
    instrument("litellm")
    with agent_otel.run("app") as run:
        complete(fake_api)
        spans = wait_for(telemetry, "raw_gen_ai_request")
    spans = telemetry.spans()
    assert_one_request(telemetry, spans, run.run_id)
    (root,) = [s for s in ours(spans) if s.name == "invoke_agent app"]
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"  # LiteLLM did not write onto the run
    assert run.result.usage["llm_calls"] == 1 and run.result.usage["input_tokens"] == 100


def test_in_a_bridged_run_the_request_is_one_step(telemetry, instrument, fake_api, otel_callback):
    instrument("litellm")
    lib = FakeLib()
    with lib.agent("bridged"):
        complete(fake_api)
        wait_for(telemetry, "raw_gen_ai_request")
    spans = telemetry.spans()
    root = run_span(spans, "bridged")
    assert_one_request(telemetry, spans, root.attributes["agent.run_id"])
    assert steps(root, spans) == [(1, "chat gpt-4o-mini")]
    assert root.attributes["agent.usage.input_tokens"] == 100


@pytest.fixture
def request_span(otel_callback, monkeypatch):
    """LiteLLM's ``USE_OTEL_LITELLM_REQUEST_SPAN=true``: its callback opens a ``litellm_request`` span of its
    own under the current span (read when each request is logged) instead of writing onto that span."""
    monkeypatch.setenv("USE_OTEL_LITELLM_REQUEST_SPAN", "true")


def test_litellm_request_span_under_the_integrations_step_is_that_request(
    telemetry, instrument, fake_api, request_span
):
    """LiteLLM labels its span a chat request only after starting it: under the integration's request step
    it is that request again (once it counted twice: 2 steps, 200 input tokens, the cost doubled)."""
    instrument("litellm")
    with agent_otel.run("app") as run:
        complete(fake_api)
        spans = wait_for(telemetry, "litellm_request")
    spans = telemetry.spans()
    (step,) = [s for s in ours(spans) if s.name == "chat gpt-4o-mini"]
    (own,) = [s for s in spans if s.name == "litellm_request"]
    assert own.parent.span_id == step.context.span_id
    assert own.attributes["agent.run_id"] == run.run_id and own.attributes["agent.step_id"] == 1
    assert [(e["kind"], e["step_id"]) for e in telemetry.events("llm_result")] == [("llm_result", 1)]
    usage = run.result.usage
    assert (usage["llm_calls"], usage["steps"], usage["input_tokens"]) == (1, 1, 100)
    (root,) = [s for s in ours(spans) if s.name == "invoke_agent app"]
    assert root.attributes["agent.usage.input_tokens"] == 100 and root.attributes["agent.steps"] == 1


def test_litellm_request_span_without_the_integration_is_the_step(telemetry, fake_api, request_span):
    """Callback only: LiteLLM's own span is the request, recognised when it ends, inside the run."""
    with agent_otel.run("app") as run:
        complete(fake_api)
        wait_for(telemetry, "litellm_request")
    (own,) = [s for s in telemetry.spans() if s.name == "litellm_request"]
    assert own.attributes["agent.run_id"] == run.run_id and own.attributes["agent.step_id"] == 1
    assert [(e["kind"], e["step_id"]) for e in telemetry.events("llm_result")] == [("llm_result", 1)]
    assert (run.result.usage["llm_calls"], run.result.usage["input_tokens"]) == (1, 100)
