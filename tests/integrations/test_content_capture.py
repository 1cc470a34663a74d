"""Opt-in content capture: prompts and completions as ``gen_ai.input.messages`` / ``gen_ai.output.messages``.

Off by default; with ``logging.events.capture_content: true`` (or the GenAI instrumentations' standard
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``) the messages are recorded in the conventions'
JSON form, through the same redaction (secret keys, e-mail addresses, API keys...) and size limit
(``redaction.max_chars``) as ``store_args``.
"""

from __future__ import annotations

import json
import warnings

import pytest

import agent_otel
from tests.integrations.conftest import Reply, request_span

SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz012345"


def messages(span, key: str) -> list:
    return json.loads(span.attributes[key])


def test_content_is_not_captured_by_default(telemetry, instrument, fake_api):
    openai = pytest.importorskip("openai")
    from tests.integrations.test_openai_client import completion

    instrument("openai")
    fake_api.reply(Reply(completion()))
    client = openai.OpenAI(base_url=fake_api.base_url + "/v1", api_key="k", max_retries=0)
    with agent_otel.run("quiet") as run:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}])
    attributes = request_span(telemetry.spans(), run.run_id).attributes
    assert "gen_ai.input.messages" not in attributes and "gen_ai.output.messages" not in attributes


def test_openai_messages_are_captured_redacted(configured, instrument, fake_api):
    openai = pytest.importorskip("openai")
    from tests.integrations.test_openai_client import completion

    telemetry = configured({"logging": {"events": {"capture_content": True}}})
    instrument("openai")
    body = completion(content="write to bob@example.com")
    fake_api.reply(Reply(body))
    client = openai.OpenAI(base_url=fake_api.base_url + "/v1", api_key="k", max_retries=0)
    with agent_otel.run("chatty") as run:
        client.chat.completions.create(
            model="gpt-4o",
            messages=[
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": f"my key is api_key={SECRET}, mail alice@example.com"},
            ],
        )
    span = request_span(telemetry.spans(), run.run_id)
    sent = messages(span, "gen_ai.input.messages")
    assert [m["role"] for m in sent] == ["system", "user"]
    assert sent[0]["parts"] == [{"type": "text", "content": "be brief"}]
    text = sent[1]["parts"][0]["content"]
    assert SECRET not in text and "alice@example.com" not in text and "[REDACTED]" in text
    (answer,) = messages(span, "gen_ai.output.messages")
    assert answer["role"] == "assistant" and answer["finish_reason"] == "stop"
    assert "bob@example.com" not in answer["parts"][0]["content"]


def test_captured_content_is_truncated_to_max_chars(configured, instrument, fake_api):
    openai = pytest.importorskip("openai")
    from tests.integrations.test_openai_client import completion

    telemetry = configured({"logging": {"events": {"capture_content": True}}, "redaction": {"max_chars": 64}})
    instrument("openai")
    fake_api.reply(Reply(completion()))
    client = openai.OpenAI(base_url=fake_api.base_url + "/v1", api_key="k", max_retries=0)
    with agent_otel.run("long") as run:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x" * 5000}])
    value = request_span(telemetry.spans(), run.run_id).attributes["gen_ai.input.messages"]
    assert len(value) < 200 and "...[truncated" in value


def test_the_standard_environment_variable_turns_capture_on(monkeypatch, configured, instrument, fake_api):
    anthropic = pytest.importorskip("anthropic")
    from tests.integrations.test_anthropic_client import MODEL, message

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    telemetry = configured({})
    instrument("anthropic")
    fake_api.reply(Reply(message(5, 2)))
    client = anthropic.Anthropic(base_url=fake_api.base_url, api_key="k", max_retries=0, open_telemetry=False)
    with agent_otel.run("claude") as run:
        client.messages.create(
            model=MODEL, max_tokens=10, system="terse", messages=[{"role": "user", "content": "hi"}]
        )
    span = request_span(telemetry.spans(), run.run_id)
    assert [m["role"] for m in messages(span, "gen_ai.input.messages")] == ["system", "user"]
    assert messages(span, "gen_ai.output.messages")[0]["parts"] == [{"type": "text", "content": "hello"}]


def test_langgraph_messages_and_tool_calls_are_captured(configured, instrument):
    pytest.importorskip("langgraph")
    from tests.integrations.test_langgraph import ai, fake, lookup, react

    telemetry = configured({"logging": {"events": {"capture_content": True}}})
    instrument("langchain", "langgraph")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agent = react(fake(ai(calls=[("lookup", {"q": "x"}, "call_1")]), ai("done")), [lookup], name="g")
    agent.invoke({"messages": [("user", "find x")]})
    chats = sorted(
        [s for s in telemetry.spans() if s.name.startswith("chat ")],
        key=lambda s: s.attributes["agent.step_id"],
    )
    first_in = messages(chats[0], "gen_ai.input.messages")
    assert first_in == [{"role": "user", "parts": [{"type": "text", "content": "find x"}]}]
    (first_out,) = messages(chats[0], "gen_ai.output.messages")
    assert first_out["parts"] == [
        {"type": "tool_call", "id": "call_1", "name": "lookup", "arguments": {"q": "x"}}
    ]
    second_in = messages(chats[1], "gen_ai.input.messages")
    assert second_in[-1] == {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "call_1", "response": "X"}],
    }


def test_agents_sdk_and_pydantic_ai_messages_are_captured(configured, instrument):
    pytest.importorskip("agents")
    pytest.importorskip("pydantic_ai")
    from agents import Agent, Runner, set_trace_processors
    from agents.testing import assistant_message

    from tests.integrations.test_openai_agents import Scripted, step
    from tests.integrations.test_pydantic_ai import agent_with_lookup, script, text

    set_trace_processors([])
    telemetry = configured({"logging": {"events": {"capture_content": True}}})
    instrument("openai_agents", "pydantic_ai")
    Runner.run_sync(
        Agent(name="sdk", instructions="be kind", model=Scripted([step(assistant_message("hi!"))])), "hey"
    )
    agent_with_lookup(script(text("pong")), "pyd").run_sync("ping")
    chats = {s.attributes["gen_ai.agent.name"]: s for s in telemetry.spans() if s.name.startswith("chat ")}
    assert messages(chats["sdk"], "gen_ai.input.messages") == [
        {"role": "system", "parts": [{"type": "text", "content": "be kind"}]},
        {"role": "user", "parts": [{"type": "text", "content": "hey"}]},
    ]
    assert messages(chats["sdk"], "gen_ai.output.messages")[0]["parts"] == [
        {"type": "text", "content": "hi!"}
    ]
    assert messages(chats["pyd"], "gen_ai.input.messages") == [
        {"role": "user", "parts": [{"type": "text", "content": "ping"}]}
    ]
    assert messages(chats["pyd"], "gen_ai.output.messages")[0]["parts"] == [
        {"type": "text", "content": "pong"}
    ]
