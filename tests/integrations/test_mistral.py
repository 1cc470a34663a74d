"""Mistral's SDK through the GenAI span bridge: with its tracing on (``MISTRAL_SDK_TELEMETRY=global``),
each request's own span becomes an LLM step of the run it is made in, against a fake Mistral API on
127.0.0.1. The SDK starts that span named after the API operation and labels it a ``chat`` afterwards,
so the bridge recognises it when it ends. A turn of the Agents / Conversations API is one request step
with the turn's usage (a run of its own outside any run); see the section below."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import agent_otel
from tests.integrations.conftest import Reply, ours, steps, usage_spans

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


# --- Mistral's Agents and Conversations APIs ----------------------------------------------------------
# A conversation turn (``beta.conversations.start/append/restart``) runs the agent in Mistral's service:
# the SDK's span of the request is labelled ``invoke_agent`` from the request, gets the whole turn's usage
# from the response, and gets a child span per output: ``chat <model>`` per message (no usage) and
# ``execute_tool <name>`` per server-side tool execution (with the API's times).

AGENT_MODEL = "mistral-large-2512"  # what the API answers as the model of an agent's messages


def turn(outputs: list[dict[str, Any]], usage: tuple[int, int] = (188, 55), status: int = 200) -> Reply:
    """A ``conversation.response`` as the API sends it (total_tokens includes the connectors' tokens)."""
    return Reply(
        {
            "object": "conversation.response",
            "conversation_id": "conv_0196",
            "outputs": outputs,
            "usage": {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": sum(usage) + 3446,
                "connector_tokens": 3446,
                "connectors": {"web_search": 1},
            },
        },
        status=status,
    )


def message(text: str, created: str = "10:00:01.600", completed: str = "10:00:02.000") -> dict[str, Any]:
    return {
        "type": "message.output",
        "object": "entry",
        "role": "assistant",
        "content": text,
        "agent_id": "ag_0196",
        "model": AGENT_MODEL,
        "created_at": f"2026-11-30T{created}Z",
        "completed_at": f"2026-11-30T{completed}Z",
        "id": "msg_0196",
    }


WEB_SEARCH = {
    "type": "tool.execution",
    "object": "entry",
    "name": "web_search",
    "arguments": '{"query": "weather in Paris"}',
    "created_at": "2026-11-30T10:00:00.000Z",
    "completed_at": "2026-11-30T10:00:01.500Z",
    "id": "tool_exec_0196",
    "info": {"results": 3},
}


def test_a_conversation_turn_in_a_run_is_one_request_step_with_the_turns_usage_and_cost(
    telemetry, fake_api, traced
):
    fake_api.reply(turn([WEB_SEARCH, message("Sunny.")]), turn([message("You're welcome.")], (260, 12)))
    mistral = client(fake_api)
    with agent_otel.run("assistant") as run:
        first = mistral.beta.conversations.start(agent_id="ag_0196", inputs="Weather in Paris?")
        mistral.beta.conversations.append(conversation_id=first.conversation_id, inputs="Thanks")
    usage = run.result.usage
    assert (usage["llm_calls"], usage["input_tokens"], usage["output_tokens"]) == (2, 448, 67)
    assert usage["cost_usd"] == pytest.approx((448 * 0.50 + 67 * 1.50) / 1e6)
    assert usage["tool_calls"] == 1
    spans = telemetry.spans()
    root = ours(spans)[0]
    assert [s.name for s in ours(spans)] == ["invoke_agent assistant"]
    # Each turn's usage is on one span, the turn's; its message is that request, not another one.
    assert steps(root, spans) == [
        (1, f"chat {AGENT_MODEL}"),
        (1, "invoke_agent"),
        (2, "execute_tool web_search"),
        (3, f"chat {AGENT_MODEL}"),
        (3, "invoke_agent"),
    ]
    assert [(s.name, s.attributes["gen_ai.usage.input_tokens"]) for s in usage_spans(spans)] == [
        ("invoke_agent", 188),
        ("invoke_agent", 260),
    ]
    events = telemetry.events("llm_result")
    assert [(e["step_id"], e["usage"]["model"], e["usage"]["input_tokens"]) for e in events] == [
        (1, AGENT_MODEL, 188),
        (3, AGENT_MODEL, 260),
    ]
    assert all(e["usage"]["cost_usd"] > 0 for e in events)
    # The server-side tool execution is a tool step, timed as the API reports it (1.5 s), not as the
    # instant the SDK made its span.
    (tool,) = telemetry.events("tool_result")
    assert (tool["tool"], tool["status"], tool["duration_ms"]) == (
        "web_search",
        "ok",
        1500.0,
    )
    assert tool["args_sha"] is not None and tool["result_sha"] is not None
    metrics = telemetry.metrics()
    assert sum(p.count for a, p in metrics["agent.tokens_per_request"] if a["agent"] == "assistant") == 2


def test_restart_and_agents_complete_are_request_steps_too(telemetry, fake_api, traced):
    fake_api.reply(turn([message("Again.")], (40, 4)), completion("From the agent.", (30, 6)))
    mistral = client(fake_api)
    with agent_otel.run("assistant") as run:
        mistral.beta.conversations.restart(conversation_id="conv_0196", from_entry_id="msg_0", inputs="Redo")
        answer = mistral.agents.complete(agent_id="ag_0196", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "From the agent."
    usage = run.result.usage
    assert (usage["llm_calls"], usage["input_tokens"], usage["output_tokens"]) == (2, 70, 10)
    events = telemetry.events("llm_result")
    # agents.complete answers with the model (priced); a restarted turn's model is its message's.
    assert [(e["usage"]["model"], e["usage"]["cost_usd"] > 0) for e in events] == [
        (AGENT_MODEL, True),
        (MODEL, True),
    ]
    assert [p for p, _ in fake_api.requests] == [
        "/v1/conversations/conv_0196/restart",
        "/v1/agents/completions",
    ]


def test_a_failed_turn_is_a_failed_request_step_and_the_sdks_error_passes_through(
    telemetry, fake_api, traced
):
    error = {"object": "error", "message": "agent not found", "type": "invalid_request_error", "code": "3000"}
    fake_api.reply(Reply(error, status=404))
    with pytest.raises(Exception) as raised, agent_otel.run("assistant") as run:
        client(fake_api).beta.conversations.start(agent_id="ag_missing", inputs="hi")
    assert type(raised.value).__module__.startswith("mistralai")
    (event,) = telemetry.events("llm_result")
    assert (event["status"], event["usage"]["input_tokens"]) == ("error", 0)
    assert run.result.stop_reason == "model_error"


def test_a_turns_cost_counts_against_the_runs_budget(telemetry, fake_api, traced):
    """Mistral's SDK has no hook before its request, so agent-otel cannot stop a turn; it records the
    trigger, and the run's next step that agent-otel runs stops it."""
    fake_api.reply(turn([message("Long answer.")], (100_000, 10)))

    @agent_otel.tool
    def lookup(q: str) -> str:
        return q

    with pytest.raises(agent_otel.AgentStopped) as stopped:
        with agent_otel.run("assistant", budget=agent_otel.Budget(max_cost_usd=0.01)):
            client(fake_api).beta.conversations.start(agent_id="ag_0196", inputs="hi")
            lookup("next")
    assert stopped.value.stop_reason == "budget_exceeded"
    assert telemetry.events("tool_result") == []  # the tool never ran


def ask_with_a_local_function(fake_api: Any) -> Any:
    """``mistralai.extra.run``: the model asks for a local function (turn 1), the SDK runs it and sends
    its result (turn 2), which the model answers."""
    from mistralai.extra.run.context import RunContext

    call = {
        "type": "function.call",
        "object": "entry",
        "tool_call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
        "id": "fc_1",
    }
    fake_api.reply(turn([call], (50, 5)), turn([message("Sunny in Paris.")], (80, 20)))

    def get_weather(city: str) -> str:
        """The weather in a city.

        Args:
            city: the city's name
        """
        return f"sunny in {city}"

    async def ask() -> Any:
        async with RunContext(model=AGENT_MODEL) as ctx:
            ctx.register_func(get_weather)
            return await client(fake_api).beta.conversations.run_async(
                run_ctx=ctx, inputs="Weather in Paris?"
            )

    return asyncio.run(ask())


def test_a_local_function_run_by_mistralai_extra_run_is_a_tool_step_between_the_turns(
    telemetry, fake_api, traced
):
    with agent_otel.run("assistant") as run:
        result = ask_with_a_local_function(fake_api)
    assert result.output_as_text == "Sunny in Paris."
    spans = telemetry.spans()
    assert steps(ours(spans)[0], spans) == [
        (1, "invoke_agent"),
        (2, "execute_tool get_weather"),
        (3, f"chat {AGENT_MODEL}"),
        (3, "invoke_agent"),
    ]
    usage = run.result.usage
    assert (usage["llm_calls"], usage["tool_calls"], usage["input_tokens"], usage["output_tokens"]) == (
        2,
        1,
        130,
        25,
    )
    (tool,) = telemetry.events("tool_result")
    assert (tool["tool"], tool["status"]) == ("get_weather", "ok") and tool["result_sha"] is not None


def test_setup_does_not_change_what_a_turn_returns(telemetry, fake_api, traced):
    reply = turn([WEB_SEARCH, message("Sunny.")])
    fake_api.reply(reply, reply)
    with agent_otel.run("assistant"):
        answer = client(fake_api).beta.conversations.start(agent_id="ag_0196", inputs="hi")
    alone = client(fake_api).beta.conversations.start(agent_id="ag_0196", inputs="hi")  # a run of its own
    agent_otel.shutdown()
    fake_api.reply(reply)
    plain = client(fake_api).beta.conversations.start(agent_id="ag_0196", inputs="hi")
    assert answer.model_dump() == plain.model_dump() == alone.model_dump()
    assert [o.type for o in answer.outputs] == ["tool.execution", "message.output"]
    assert (answer.usage.prompt_tokens, answer.usage.total_tokens) == (188, 188 + 55 + 3446)


def test_outside_a_run_a_conversation_turn_is_a_run_with_its_usage_on_one_span(telemetry, fake_api, traced):
    fake_api.reply(turn([WEB_SEARCH, message("Sunny.")]))
    answer = client(fake_api).beta.conversations.start(agent_id="ag_0196", inputs="Weather in Paris?")
    assert answer.outputs[-1].content == "Sunny."
    spans = telemetry.spans()
    assert ours(spans) == []  # the run's span is Mistral's own
    (run_span,) = [s for s in mistral_spans(spans) if s.name == "invoke_agent"]
    assert run_span.parent is None
    attributes = run_span.attributes
    assert (attributes["agent.stop_reason"], attributes["gen_ai.conversation.id"]) == (
        "completed",
        "conv_0196",
    )
    # The run's one request is the turn: its usage stays on the span, once, and is the run's total.
    assert (attributes["gen_ai.usage.input_tokens"], attributes["agent.usage.input_tokens"]) == (188, 188)
    assert [s.name for s in usage_spans(spans)] == ["invoke_agent"]
    assert steps(run_span, spans) == [
        (1, f"chat {AGENT_MODEL}"),
        (1, "invoke_agent"),
        (2, "execute_tool web_search"),
    ]
    # Content as Mistral's SDK writes it (its redaction is for its `dedicated` mode only; README).
    assert "Weather in Paris?" in attributes["gen_ai.input.messages"]
    (search,) = [s for s in spans if s.name == "execute_tool web_search"]
    assert search.attributes["gen_ai.tool.call.arguments"] == WEB_SEARCH["arguments"]
    (stop,) = telemetry.events("stop")
    assert (stop["agent"], stop["stop_reason"]) == ("agent", "completed")
    usage = stop["usage"]
    assert (usage["llm_calls"], usage["tool_calls"], usage["input_tokens"], usage["output_tokens"]) == (
        1,
        1,
        188,
        55,
    )
    assert usage["cost_usd"] == pytest.approx((188 * 0.50 + 55 * 1.50) / 1e6)


def test_outside_a_run_a_failed_turn_is_a_run_that_ends_with_model_error(telemetry, fake_api, traced):
    error = {"object": "error", "message": "agent not found", "type": "invalid_request_error", "code": "3000"}
    fake_api.reply(Reply(error, status=404))
    with pytest.raises(Exception) as raised:
        client(fake_api).beta.conversations.append(conversation_id="conv_0196", inputs="hi")
    assert type(raised.value).__module__.startswith("mistralai")
    (stop,) = telemetry.events("stop")
    assert (stop["stop_reason"], stop["error"]) == ("model_error", "invalid_request_error")
    (event,) = telemetry.events("llm_result")
    assert event["status"] == "error"


def test_outside_a_run_mistralai_extra_run_is_one_run_of_its_turns_and_local_functions(
    telemetry, fake_api, traced
):
    assert ask_with_a_local_function(fake_api).output_as_text == "Sunny in Paris."
    (stop,) = telemetry.events("stop")
    usage = stop["usage"]
    assert (stop["stop_reason"], usage["llm_calls"], usage["tool_calls"], usage["input_tokens"]) == (
        "completed",
        2,
        1,
        130,
    )
    spans = telemetry.spans()
    (run_span,) = [s for s in spans if s.name == "conversation"]
    assert "gen_ai.usage.input_tokens" not in run_span.attributes  # usage only on the turns' spans
    assert [s.name for s in usage_spans(spans)] == ["invoke_agent", "invoke_agent"]
    assert steps(run_span, spans) == [
        (1, "invoke_agent"),
        (2, "execute_tool get_weather"),
        (3, f"chat {AGENT_MODEL}"),
        (3, "invoke_agent"),
    ]


def test_outside_a_run_agents_complete_is_a_run_too(telemetry, fake_api, traced):
    fake_api.reply(completion("From the agent.", (30, 6)))
    client(fake_api).agents.complete(agent_id="ag_0196", messages=[{"role": "user", "content": "hi"}])
    (stop,) = telemetry.events("stop")
    usage = stop["usage"]
    assert (stop["stop_reason"], usage["llm_calls"], usage["input_tokens"], usage["output_tokens"]) == (
        "completed",
        1,
        30,
        6,
    )
    assert usage["cost_usd"] == pytest.approx((30 * 0.50 + 6 * 1.50) / 1e6)


MESSAGE_IDS = {"output_index": 0, "content_index": 0, "model": AGENT_MODEL, "role": "assistant"}


def test_a_streamed_turn_is_a_request_step_without_usage(telemetry, fake_api, traced):
    """Mistral's SDK 3.7 reads only chat chunks from a stream: a streamed conversation turn's span gets no
    usage or model, so its step counts the request with 0 tokens (README, Mistral's SDK)."""
    done = {"type": "conversation.response.done", "usage": {"prompt_tokens": 10, "completion_tokens": 2}}
    events = [
        ("conversation.response.started", {"type": "conversation.response.started", "conversation_id": "c"}),
        ("message.output.delta", {"type": "message.output.delta", "id": "m", "content": "Hi", **MESSAGE_IDS}),
        ("conversation.response.done", {**done, "created_at": "2026-11-30T10:00:01Z"}),
    ]
    fake_api.reply(Reply(stream=events))
    with agent_otel.run("assistant") as run:
        with client(fake_api).beta.conversations.start_stream(agent_id="ag_0196", inputs="hi") as stream:
            assert [e.event for e in stream][-1] == "conversation.response.done"
    usage = run.result.usage
    assert (usage["llm_calls"], usage["input_tokens"], usage["output_tokens"]) == (1, 0, 0)
    (event,) = telemetry.events("llm_result")
    assert (event["usage"]["model"], event["status"]) == ("unknown", "ok")
