"""Mistral's SDK against a fake Mistral API on 127.0.0.1, with the real ``mistralai`` client.

First through the GenAI span bridge: with its tracing on (``MISTRAL_SDK_TELEMETRY=global``), each
request's own span becomes an LLM step of the run it is made in. The SDK starts that span named after the
API operation and labels it a ``chat`` afterwards, so the bridge recognises it when it ends. A turn of the
Agents / Conversations API is one request step with the turn's usage (a run of its own outside any run).
These tests run with the bridge alone and with the mistral integration on too (``traced``): the same steps.

Then the mistral integration (agent_otel.integrations.mistral), with Mistral's tracing off (its default)
and on (``tracing``): one step per request either way, streams included."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import pytest

import agent_otel
from tests.integrations.conftest import Reply, ours, steps, usage_spans

pytest.importorskip("mistralai")

from mistralai.client import Mistral
from opentelemetry.trace import StatusCode

MODEL = "mistral-large-latest"


@pytest.fixture(params=["bridge", "integration"])
def traced(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, instrument: Any) -> None:
    """Mistral's tracing on its global provider (its own opt-in), seen by the bridge alone, or with the
    mistral integration on too (what ``setup()`` does): the same steps either way."""
    monkeypatch.setenv("MISTRAL_SDK_TELEMETRY", "global")
    if request.param == "integration":
        instrument("mistral")


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


def test_without_the_sdks_tracing_the_bridge_alone_records_nothing(telemetry, fake_api, monkeypatch):
    """Mistral's tracing is off by default: the bridge sees no request; the mistral integration (on with
    ``setup()``) records it (test_chat_requests_are_llm_steps_with_usage_cost_and_finish_reasons)."""
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


def two_turns(fake_api: Any) -> Any:
    """A conversation of two turns in a run: the first runs web_search in the service."""
    fake_api.reply(turn([WEB_SEARCH, message("Sunny.")]), turn([message("You're welcome.")], (260, 12)))
    mistral = client(fake_api)
    with agent_otel.run("assistant") as run:
        first = mistral.beta.conversations.start(agent_id="ag_0196", inputs="Weather in Paris?")
        mistral.beta.conversations.append(conversation_id=first.conversation_id, inputs="Thanks")
    return run


def test_a_conversation_turn_in_a_run_is_one_request_step_with_the_turns_usage_and_cost(
    telemetry, fake_api, traced
):
    run = two_turns(fake_api)
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


@pytest.fixture(params=["bridge", "integration", "integration without Mistral's tracing"])
def recorded(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, instrument: Any) -> None:
    """Every way agent-otel records Mistral's requests: the bridge alone (Mistral's tracing on), the
    integration with Mistral's tracing on, the integration alone."""
    if request.param == "integration without Mistral's tracing":
        monkeypatch.delenv("MISTRAL_SDK_TELEMETRY", raising=False)
    else:
        monkeypatch.setenv("MISTRAL_SDK_TELEMETRY", "global")
    if request.param != "bridge":
        instrument("mistral")


def test_restart_and_agents_complete_are_request_steps_too(telemetry, fake_api, recorded):
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
    assert (event["status"], event["usage"].get("input_tokens")) == ("error", None)  # no usage: unknown
    assert run.result.stop_reason == "model_error"


def test_a_turns_cost_counts_against_the_runs_budget(telemetry, fake_api, traced):
    """The turn that goes over the budget has been made: agent-otel records the trigger, and the run's
    next step that agent-otel runs stops it (with the integration, a further request would be stopped
    before it is sent: test_a_guard_stops_the_run_before_the_request_is_sent)."""
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


def test_without_the_integration_a_streamed_turn_is_a_request_step_without_usage(
    telemetry, fake_api, monkeypatch
):
    """Mistral's SDK 3.7 reads only chat chunks from a stream: a streamed conversation turn's span gets no
    usage or model, so the bridge alone counts the request with 0 tokens (README, Mistral's SDK); the
    mistral integration reads the usage from the stream (test_a_streamed_turn_takes_its_usage_from_...)."""
    monkeypatch.setenv("MISTRAL_SDK_TELEMETRY", "global")
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


# --- the mistral integration (agent_otel.integrations.mistral) ----------------------------------------
# With ``setup()`` (here: ``instrument("mistral")``) every request is a step whether Mistral's own tracing
# is off (the default: agent-otel's ``chat`` span) or on (``global``: the SDK's span is the step's span).
# Each test runs with both settings and asserts one step, and one span with usage, per request.


@pytest.fixture(params=["off", "global"])
def tracing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, instrument: Any) -> str:
    """The integration on, with Mistral's own tracing off (its default) or on its global provider."""
    if request.param == "global":
        monkeypatch.setenv("MISTRAL_SDK_TELEMETRY", "global")
    else:
        monkeypatch.delenv("MISTRAL_SDK_TELEMETRY", raising=False)
    assert instrument("mistral") == ["mistral"]
    return str(request.param)


def request_spans(spans: list[Any], run_id: str) -> list[Any]:
    """The span of each request step of the run (agent-otel's, or Mistral's that the step adopted)."""
    found = [s for s in usage_spans(spans) if s.attributes.get("agent.run_id") == run_id]
    return sorted(found, key=lambda s: s.attributes["agent.step_id"])


def step_span(spans: list[Any], event: dict[str, Any]) -> Any:
    """The exported span of a step's event; when its usage is unknown (a stream read partly, dropped), it
    has no ``gen_ai.usage.*`` rather than 0 tokens, and no other span of the run has usage."""
    (span,) = [s for s in spans if s.context.span_id == int(event["span_id"], 16)]
    if "input_tokens" not in event["usage"] and not mistral_spans([span]):  # (Mistral's: its own usage)
        assert not [k for k in span.attributes if k.startswith("gen_ai.usage.")]
        assert request_spans(spans, event["run_id"]) == []
    return span


def chunk(content: str, *, finish: str | None = None, usage: tuple[int, int] | None = None) -> dict[str, Any]:
    """One ``chat.completion.chunk`` of a streamed answer (the last one carries the usage)."""
    data: dict[str, Any] = {
        "id": "cmpl-s",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": MODEL,
        "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": content}, "finish_reason": finish}
        ],
    }
    if usage is not None:
        data["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    return data


def streamed(usage: tuple[int, int] = (9, 4)) -> Reply:
    return Reply(
        stream=[
            (None, chunk("Hel")),
            (None, chunk("lo")),
            (None, chunk("", finish="stop", usage=usage)),
            (None, "[DONE]"),
        ]
    )


HI = [{"role": "user", "content": "hi"}]


def test_chat_requests_are_llm_steps_with_usage_cost_and_finish_reasons(telemetry, fake_api, tracing):
    fake_api.reply(completion("hello"), completion("again", (20, 5)))
    with agent_otel.run("assistant") as run:
        mistral = client(fake_api)
        first = mistral.chat.complete(model=MODEL, messages=HI)
        mistral.chat.complete(model=MODEL, messages=HI, temperature=0.2, max_tokens=50)
    assert first.choices[0].message.content == "hello"
    usage = run.result.usage
    assert (usage["llm_calls"], usage["input_tokens"], usage["output_tokens"]) == (2, 32, 8)
    assert usage["cost_usd"] == pytest.approx((32 * 0.50 + 8 * 1.50) / 1e6)
    spans = telemetry.spans()
    assert [s.name for s in ours(spans) if s.name.startswith("invoke_agent")] == ["invoke_agent assistant"]
    assert steps(ours(spans)[-1], spans) == [(1, f"chat {MODEL}"), (2, f"chat {MODEL}")]
    # One span per request carries its usage and spend: agent-otel's, or Mistral's own when its tracing is on.
    requests = request_spans(spans, run.run_id)
    assert [s.instrumentation_scope.name for s in requests] == 2 * [
        "agent_otel" if tracing == "off" else "mistralai_sdk_tracer"
    ]
    attributes = requests[1].attributes
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (20, 5)
    assert attributes["agent.cost_usd"] == pytest.approx((20 * 0.50 + 5 * 1.50) / 1e6)
    assert attributes["gen_ai.provider.name"] == "mistral_ai"
    assert tuple(attributes["gen_ai.response.finish_reasons"]) == ("stop",)
    assert (attributes["gen_ai.request.temperature"], attributes["gen_ai.request.max_tokens"]) == (0.2, 50)
    events = telemetry.events("llm_result")
    assert [(e["step_id"], e["usage"]["model"], e["status"]) for e in events] == [
        (1, MODEL, "ok"),
        (2, MODEL, "ok"),
    ]
    metrics = telemetry.metrics()
    assert sum(p.count for a, p in metrics["agent.tokens_per_request"] if a["agent"] == "assistant") == 2


def test_an_async_request_is_a_step_of_the_run_it_is_made_in(telemetry, fake_api, tracing):
    fake_api.reply(completion("hello", (7, 2)))

    async def ask() -> Any:
        async with agent_otel.run("assistant") as run:
            await client(fake_api).chat.complete_async(model=MODEL, messages=HI)
        return run

    run = asyncio.run(ask())
    usage = run.result.usage
    assert (usage["llm_calls"], usage["input_tokens"], usage["output_tokens"]) == (1, 7, 2)
    (span,) = request_spans(telemetry.spans(), run.run_id)
    assert span.attributes["agent.step_id"] == 1


def test_a_stream_read_to_its_end_takes_the_usage_of_its_last_chunk(telemetry, fake_api, tracing):
    fake_api.reply(streamed((9, 4)))
    with agent_otel.run("assistant") as run:
        stream = client(fake_api).chat.stream(model=MODEL, messages=HI)
        text = "".join(e.data.choices[0].delta.content for e in stream)
    assert text == "Hello"
    usage = run.result.usage
    assert (usage["llm_calls"], usage["input_tokens"], usage["output_tokens"]) == (1, 9, 4)
    assert usage["cost_usd"] == pytest.approx((9 * 0.50 + 4 * 1.50) / 1e6)
    (span,) = request_spans(telemetry.spans(), run.run_id)
    assert span.attributes["agent.cost_usd"] == usage["cost_usd"]
    assert span.attributes["gen_ai.usage.input_tokens"] == 9
    (event,) = telemetry.events("llm_result")
    assert (event["status"], event["usage"]["model"]) == ("ok", MODEL)


def test_a_stream_used_as_a_context_manager_and_left_early_ends_its_step(telemetry, fake_api, tracing):
    fake_api.reply(streamed())
    with agent_otel.run("assistant") as run:
        with client(fake_api).chat.stream(model=MODEL, messages=HI) as stream:
            first = next(stream)
        # The step ended when the stream was closed, before the run did.
        (event,) = telemetry.events("llm_result")
    assert first.data.choices[0].delta.content == "Hel"
    assert (event["status"], event["usage"].get("input_tokens")) == ("ok", None)  # the usage never came
    assert run.result.usage["llm_calls"] == 1


@pytest.mark.parametrize("read", [0, 1], ids=["unread", "read-from"])
def test_a_stream_abandoned_unclosed_is_still_recorded_and_its_span_exported(
    telemetry, fake_api, tracing, read
):
    """A stream the caller drops (garbage-collected) without reading it to its end or closing it: the step
    ends with the usage seen so far, and its span ends and is exported. With Mistral's tracing on, that is
    the SDK's span, which the SDK ends only when the response is closed, and a stream dropped unread never
    closes it."""
    fake_api.reply(streamed())
    with agent_otel.run("assistant") as run:
        stream = client(fake_api).chat.stream(model=MODEL, messages=HI)
        for _ in range(read):
            next(stream)
        del stream
        gc.collect()
        (event,) = telemetry.events("llm_result")
    assert event["status"] == "ok"
    assert run.result.usage["llm_calls"] == 1
    span = step_span(telemetry.spans(), event)
    assert span.attributes["agent.step_id"] == 1


@pytest.mark.parametrize("read", [0, 1], ids=["unread", "read-from"])
def test_an_async_stream_abandoned_unclosed_is_still_recorded_and_its_span_exported(
    telemetry, fake_api, tracing, read
):
    fake_api.reply(streamed())

    async def ask() -> Any:
        async with agent_otel.run("assistant") as run:
            stream = await client(fake_api).chat.stream_async(model=MODEL, messages=HI)
            for _ in range(read):
                await stream.__anext__()
            del stream
            gc.collect()
        return run

    run = asyncio.run(ask())
    gc.collect()  # (an async generator read from is closed by the event loop's shutdown)
    (event,) = telemetry.events("llm_result")
    assert event["status"] == "ok" and run.result.usage["llm_calls"] == 1
    step_span(telemetry.spans(), event)


def test_an_async_stream_is_a_step_with_its_usage(telemetry, fake_api, tracing):
    fake_api.reply(streamed((11, 3)))

    async def ask() -> tuple[Any, list[str]]:
        async with agent_otel.run("assistant") as run:
            stream = await client(fake_api).chat.stream_async(model=MODEL, messages=HI)
            async with stream:
                parts = [e.data.choices[0].delta.content async for e in stream]
        return run, parts

    run, parts = asyncio.run(ask())
    assert "".join(parts) == "Hello"
    usage = run.result.usage
    assert (usage["llm_calls"], usage["input_tokens"], usage["output_tokens"]) == (1, 11, 3)


def test_an_api_error_fails_the_step_once_and_passes_through_unchanged(telemetry, fake_api, tracing):
    error = {"object": "error", "message": "overloaded", "type": "service_unavailable", "code": "3505"}
    fake_api.reply(Reply(error, status=503))
    with pytest.raises(Exception) as raised, agent_otel.run("assistant") as run:
        client(fake_api).chat.complete(model=MODEL, messages=HI)
    assert type(raised.value).__module__.startswith("mistralai")
    assert raised.value.status_code == 503
    (event,) = telemetry.events("llm_result")
    assert (event["step_id"], event["status"]) == (1, "error")
    assert run.result.stop_reason == "model_error"
    assert run.result.usage["llm_calls"] == 1


def test_a_guard_stops_the_run_before_the_request_is_sent(telemetry, fake_api, tracing):
    fake_api.reply(completion("hello"), completion("again"))
    mistral = client(fake_api)
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        with agent_otel.run("assistant", budget=agent_otel.Budget(max_steps=1)):
            mistral.chat.complete(model=MODEL, messages=HI)
            mistral.chat.complete(model=MODEL, messages=HI)
    assert stopped.value.stop_reason == "max_steps"
    assert len(fake_api.requests) == 1  # the second request was never sent


def test_requests_of_nested_runs_are_steps_of_their_own_run(telemetry, fake_api, tracing):
    fake_api.reply(completion("outer", (10, 1)), completion("inner", (20, 2)))
    mistral = client(fake_api)

    @agent_otel.tool
    def ask_helper(question: str) -> str:
        with agent_otel.run("helper") as inner:
            mistral.chat.complete(model=MODEL, messages=[{"role": "user", "content": question}])
        runs.append(inner)
        return "done"

    runs: list[Any] = []
    with agent_otel.run("assistant") as outer:
        mistral.chat.complete(model=MODEL, messages=HI)
        ask_helper("sub")
    (inner,) = runs
    assert (outer.result.usage["llm_calls"], outer.result.usage["input_tokens"]) == (1, 10)
    assert (inner.result.usage["llm_calls"], inner.result.usage["input_tokens"]) == (1, 20)
    events = telemetry.events("llm_result")
    assert sorted((e["agent"], e["usage"]["input_tokens"]) for e in events) == [
        ("assistant", 10),
        ("helper", 20),
    ]


def test_outside_a_run_a_request_is_left_alone(telemetry, fake_api, tracing):
    fake_api.reply(completion("hello"))
    answer = client(fake_api).chat.complete(model=MODEL, messages=HI)
    assert answer.choices[0].message.content == "hello"
    assert telemetry.events() == []
    assert [s for s in telemetry.spans() if s.instrumentation_scope.name == "agent_otel"] == []


def test_conversation_turns_are_request_steps_with_their_usage_and_the_services_tools(
    telemetry, fake_api, tracing
):
    run = two_turns(fake_api)
    usage = run.result.usage
    assert (usage["llm_calls"], usage["tool_calls"], usage["input_tokens"], usage["output_tokens"]) == (
        2,
        1,
        448,
        67,
    )
    assert usage["cost_usd"] == pytest.approx((448 * 0.50 + 67 * 1.50) / 1e6)
    events = telemetry.events("llm_result")
    assert [(e["step_id"], e["usage"]["model"], e["usage"]["input_tokens"]) for e in events] == [
        (1, AGENT_MODEL, 188),
        (3, AGENT_MODEL, 260),
    ]
    (tool,) = telemetry.events("tool_result")
    assert (tool["step_id"], tool["tool"], tool["status"]) == (2, "web_search", "ok")
    assert tool["duration_ms"] == pytest.approx(1500, abs=50)  # as the API timed it
    assert tool["args_sha"] is not None and tool["result_sha"] is not None
    spans = telemetry.spans()
    assert [s.attributes["gen_ai.usage.input_tokens"] for s in request_spans(spans, run.run_id)] == [188, 260]
    (search,) = [s for s in spans if s.name == "execute_tool web_search"]
    assert (search.end_time - search.start_time) / 1e6 == pytest.approx(1500, abs=1)


HANDOFF = {
    "type": "agent.handoff",
    "object": "entry",
    "previous_agent_id": "ag_0196",
    "previous_agent_name": "triage",
    "next_agent_id": "ag_0197",
    "next_agent_name": "weather",
    "created_at": "2026-11-30T10:00:01.500Z",
    "completed_at": "2026-11-30T10:00:01.510Z",
    "id": "handoff_0196",
}


def test_a_turns_connector_usage_and_handoffs_are_recorded_as_the_api_reports_them(
    telemetry, fake_api, tracing
):
    """The API counts the connectors' tokens in ``total_tokens`` and reports the calls per connector: on
    the step's span, not in its tokens or spend. A handoff between agents in the service is an
    ``agent.handoff`` event on the run span; the turn stays one request step."""
    fake_api.reply(turn([WEB_SEARCH, HANDOFF, message("Sunny.")]))
    with agent_otel.run("assistant") as run:
        client(fake_api).beta.conversations.start(agent_id="ag_0196", inputs="Weather in Paris?")
    usage = run.result.usage
    assert (usage["llm_calls"], usage["tool_calls"], usage["input_tokens"], usage["output_tokens"]) == (
        1,
        1,
        188,
        55,
    )
    assert usage["cost_usd"] == pytest.approx((188 * 0.50 + 55 * 1.50) / 1e6)
    spans = telemetry.spans()
    (step,) = request_spans(spans, run.run_id)
    assert step.attributes["mistral.usage.connector_tokens"] == 3446
    assert json.loads(step.attributes["mistral.usage.connectors"]) == {"web_search": 1}
    (root,) = [s for s in ours(spans) if s.name == "invoke_agent assistant"]
    handoffs = [dict(e.attributes) for e in root.events if e.name == "agent.handoff"]
    assert handoffs == [{"from_agent": "triage", "to_agent": "weather"}]


def test_a_streamed_turns_handoff_and_connector_usage_are_recorded(telemetry, fake_api, tracing):
    done = {
        "type": "conversation.response.done",
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 2,
            "connector_tokens": 120,
            "connectors": {"web_search": 2},
        },
    }
    fake_api.reply(
        Reply(
            stream=[
                (
                    "conversation.response.started",
                    {"type": "conversation.response.started", "conversation_id": "c"},
                ),
                (
                    "agent.handoff.started",
                    {
                        "type": "agent.handoff.started",
                        "id": "h1",
                        "previous_agent_id": "a",
                        "previous_agent_name": "triage",
                    },
                ),
                (
                    "agent.handoff.done",
                    {
                        "type": "agent.handoff.done",
                        "id": "h1",
                        "next_agent_id": "b",
                        "next_agent_name": "weather",
                    },
                ),
                (
                    "message.output.delta",
                    {"type": "message.output.delta", "id": "m", "content": "Hi", **MESSAGE_IDS},
                ),
                ("conversation.response.done", done),
            ]
        )
    )
    with agent_otel.run("assistant") as run:
        with client(fake_api).beta.conversations.start_stream(agent_id="ag_0196", inputs="hi") as stream:
            kinds = [e.event for e in stream]
    assert kinds[1:3] == ["agent.handoff.started", "agent.handoff.done"]  # the caller gets every event
    assert (run.result.usage["llm_calls"], run.result.usage["input_tokens"]) == (1, 10)
    spans = telemetry.spans()
    (step,) = request_spans(spans, run.run_id)
    assert step.attributes["mistral.usage.connector_tokens"] == 120
    (root,) = [s for s in ours(spans) if s.name == "invoke_agent assistant"]
    handoffs = [dict(e.attributes) for e in root.events if e.name == "agent.handoff"]
    assert handoffs == [{"from_agent": "triage", "to_agent": "weather"}]


def turn_events(usage: tuple[int, int] = (10, 2)) -> Reply:
    """A streamed turn: the service runs web_search, then answers; the usage comes with the last event."""
    started = {
        "type": "tool.execution.started",
        "id": "tool_exec_1",
        "name": "web_search",
        "arguments": '{"query": "weather"}',
        "created_at": "2026-11-30T10:00:00.000Z",
    }
    done = {
        "type": "tool.execution.done",
        "id": "tool_exec_1",
        "name": "web_search",
        "info": {"results": 2},
        "created_at": "2026-11-30T10:00:00.800Z",
    }
    end = {
        "type": "conversation.response.done",
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]},
    }
    return Reply(
        stream=[
            (
                "conversation.response.started",
                {"type": "conversation.response.started", "conversation_id": "c"},
            ),
            ("tool.execution.started", started),
            ("tool.execution.done", done),
            (
                "message.output.delta",
                {"type": "message.output.delta", "id": "m", "content": "Hi", **MESSAGE_IDS},
            ),
            ("conversation.response.done", end),
        ]
    )


def test_a_streamed_turn_takes_its_usage_from_the_done_event(telemetry, fake_api, tracing):
    fake_api.reply(turn_events((10, 2)))
    with agent_otel.run("assistant") as run:
        with client(fake_api).beta.conversations.start_stream(agent_id="ag_0196", inputs="hi") as stream:
            kinds = [e.event for e in stream]
    assert kinds[-1] == "conversation.response.done"
    usage = run.result.usage
    assert (usage["llm_calls"], usage["tool_calls"], usage["input_tokens"], usage["output_tokens"]) == (
        1,
        1,
        10,
        2,
    )
    assert usage["cost_usd"] == pytest.approx((10 * 0.50 + 2 * 1.50) / 1e6)
    (event,) = telemetry.events("llm_result")
    assert (event["usage"]["model"], event["status"]) == (AGENT_MODEL, "ok")
    (tool,) = telemetry.events("tool_result")
    assert (tool["tool"], tool["duration_ms"]) == ("web_search", pytest.approx(800, abs=50))
    (span,) = request_spans(telemetry.spans(), run.run_id)  # the turn's usage is on one span
    assert span.attributes["gen_ai.usage.output_tokens"] == 2


def test_a_streamed_turn_dropped_unread_is_a_step_whose_span_is_exported(telemetry, fake_api, tracing):
    """A conversation turn's stream dropped before reading it: the step ends (no usage came) and its span,
    Mistral's with its tracing on, is exported."""
    fake_api.reply(turn_events((10, 2)))
    with agent_otel.run("assistant"):
        stream = client(fake_api).beta.conversations.start_stream(agent_id="ag_0196", inputs="hi")
        del stream
        gc.collect()
    (event,) = telemetry.events("llm_result")
    assert (event["status"], event["usage"].get("input_tokens")) == ("ok", None)  # unknown, not 0
    step_span(telemetry.spans(), event)


def test_an_async_streamed_turn_is_a_step_with_its_usage(telemetry, fake_api, tracing):
    fake_api.reply(turn_events((30, 5)))

    async def ask() -> Any:
        async with agent_otel.run("assistant") as run:
            stream = await client(fake_api).beta.conversations.append_stream_async(
                conversation_id="conv_0196", inputs="hi"
            )
            async for _ in stream:
                pass
        return run

    usage = asyncio.run(ask()).result.usage
    assert (usage["llm_calls"], usage["input_tokens"], usage["output_tokens"]) == (1, 30, 5)


def test_a_turn_that_fails_in_the_service_is_a_failed_step(telemetry, fake_api, tracing):
    failed = {"type": "conversation.response.error", "message": "agent crashed", "code": 500}
    fake_api.reply(Reply(stream=[("conversation.response.error", failed)]))
    with agent_otel.run("assistant"):
        events = list(client(fake_api).beta.conversations.start_stream(agent_id="ag_0196", inputs="hi"))
    assert [e.event for e in events] == ["conversation.response.error"]  # passed through as it came
    (event,) = telemetry.events("llm_result")
    assert (event["status"], event["error"]) == ("error", "conversation.response.error")


def test_setup_does_not_change_what_the_sdk_returns(telemetry, fake_api, tracing):
    replies = (completion("hello"), turn([WEB_SEARCH, message("Sunny.")]), streamed())
    fake_api.reply(*replies)

    def ask() -> tuple[Any, Any, Any]:
        mistral = client(fake_api)
        answer = mistral.chat.complete(model=MODEL, messages=HI)
        turned = mistral.beta.conversations.start(agent_id="ag_0196", inputs="hi")
        stream = mistral.chat.stream(model=MODEL, messages=HI)
        return answer.model_dump(), turned.model_dump(), [e.model_dump() for e in stream]

    with agent_otel.run("assistant"):
        traced = ask()
    agent_otel.shutdown()
    fake_api.reply(*replies)
    assert traced == ask()


def test_an_agent_otel_failure_never_reaches_the_caller(telemetry, fake_api, tracing, monkeypatch):
    from agent_otel.integrations import mistral as integration

    def broken(reply: Any, body: Any) -> None:
        raise RuntimeError("agent-otel bug")

    monkeypatch.setattr(integration, "read_completion", broken)
    fake_api.reply(completion("hello"))
    with agent_otel.run("assistant") as run:
        answer = client(fake_api).chat.complete(model=MODEL, messages=HI)
    assert answer.choices[0].message.content == "hello"
    assert run.result.stop_reason == "completed"
    assert run.result.usage["llm_calls"] == 1


def test_uninstrument_restores_the_sdk(instrument):
    from mistralai.client.chat import Chat
    from mistralai.client.utils.eventstreaming import EventStream

    from agent_otel import integrations

    original = (Chat.complete, Chat.stream_async, EventStream.close)
    instrument("mistral")
    assert Chat.complete is not original[0]
    integrations.uninstrument(["mistral"])
    assert (Chat.complete, Chat.stream_async, EventStream.close) == original


def test_mistralai_extra_run_turns_and_local_functions_are_steps_with_the_integration(
    telemetry, fake_api, tracing
):
    with agent_otel.run("assistant") as run:
        result = ask_with_a_local_function(fake_api)
    assert result.output_as_text == "Sunny in Paris."
    usage = run.result.usage
    assert (usage["llm_calls"], usage["tool_calls"], usage["input_tokens"], usage["output_tokens"]) == (
        2,
        1,
        130,
        25,
    )
    (tool,) = telemetry.events("tool_result")
    assert (tool["step_id"], tool["tool"], tool["status"]) == (2, "get_weather", "ok")
    assert [(e["step_id"], e["usage"]["input_tokens"]) for e in telemetry.events("llm_result")] == [
        (1, 50),
        (3, 80),
    ]


def test_with_content_capture_on_the_steps_span_has_the_messages(
    configured, fake_api, instrument, monkeypatch
):
    """Mistral's tracing off: agent-otel's span carries the messages, redacted like all captured content."""
    monkeypatch.delenv("MISTRAL_SDK_TELEMETRY", raising=False)
    telemetry = configured({"logging": {"events": {"capture_content": True}}})
    instrument("mistral")
    fake_api.reply(completion("hello"), turn([message("Sunny.")]))
    with agent_otel.run("assistant") as run:
        mistral = client(fake_api)
        mistral.chat.complete(model=MODEL, messages=[{"role": "user", "content": "mail bob@example.com"}])
        mistral.beta.conversations.start(agent_id="ag_0196", inputs="Weather?")
    chat, turned = request_spans(telemetry.spans(), run.run_id)
    asked = json.loads(chat.attributes["gen_ai.input.messages"])
    assert asked[0]["role"] == "user" and "bob@example.com" not in json.dumps(asked)
    assert json.loads(chat.attributes["gen_ai.output.messages"])[0]["parts"][0]["content"] == "hello"
    assert json.loads(turned.attributes["gen_ai.input.messages"])[0]["parts"][0]["content"] == "Weather?"
    assert json.loads(turned.attributes["gen_ai.output.messages"])[0]["parts"][0]["content"] == "Sunny."


def test_without_content_capture_the_steps_span_has_no_messages(telemetry, fake_api, instrument, monkeypatch):
    monkeypatch.delenv("MISTRAL_SDK_TELEMETRY", raising=False)
    instrument("mistral")
    fake_api.reply(completion("hello"))
    with agent_otel.run("assistant") as run:
        client(fake_api).chat.complete(model=MODEL, messages=HI)
    (span,) = request_spans(telemetry.spans(), run.run_id)
    assert "gen_ai.input.messages" not in span.attributes
    assert "gen_ai.output.messages" not in span.attributes


def test_a_request_the_sdk_retries_is_one_step_with_the_usage_of_its_last_attempt(
    telemetry, fake_api, tracing
):
    from mistralai.client.utils import BackoffStrategy, RetryConfig

    error = {"object": "error", "message": "overloaded", "type": "service_unavailable", "code": "3505"}
    fake_api.reply(Reply(error, status=503), completion("hello", (15, 2)))
    retries = RetryConfig("backoff", BackoffStrategy(1, 10, 1.1, 5000), False)
    with agent_otel.run("assistant") as run:
        answer = client(fake_api).chat.complete(model=MODEL, messages=HI, retries=retries)
    assert answer.choices[0].message.content == "hello"
    assert len(fake_api.requests) == 2
    usage = run.result.usage
    assert (usage["llm_calls"], usage["input_tokens"], usage["output_tokens"]) == (1, 15, 2)
    (span,) = request_spans(telemetry.spans(), run.run_id)
    assert span.attributes["agent.cost_usd"] == usage["cost_usd"]
    (event,) = telemetry.events("llm_result")
    assert event["status"] == "ok"


def test_an_agents_stream_is_a_step_with_the_usage_of_its_last_chunk(telemetry, fake_api, tracing):
    fake_api.reply(streamed((21, 5)))
    with agent_otel.run("assistant") as run:
        with client(fake_api).agents.stream(agent_id="ag_0196", messages=HI) as stream:
            assert len(list(stream)) == 3
    usage = run.result.usage
    assert (usage["llm_calls"], usage["input_tokens"], usage["output_tokens"]) == (1, 21, 5)
    (event,) = telemetry.events("llm_result")
    assert event["usage"]["model"] == MODEL  # an agent's request names no model: the chunks do
    assert [p for p, _ in fake_api.requests] == ["/v1/agents/completions"]


def test_spans_mistral_sends_to_a_provider_of_its_own_are_left_alone(
    telemetry, fake_api, instrument, monkeypatch
):
    """Mistral's tracing on a TracerProvider of its own (its ``dedicated`` mode, or one the application
    gives it): agent-otel's span is the step's, and the SDK's spans carry nothing of agent-otel's."""
    from mistralai.extra.observability import configure_telemetry
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    monkeypatch.delenv("MISTRAL_SDK_TELEMETRY", raising=False)
    instrument("mistral")
    own = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(own))
    fake_api.reply(completion("hello", (12, 3)))
    mistral = client(fake_api)
    configure_telemetry(mistral, provider=provider, redaction=False)
    with agent_otel.run("assistant") as run:
        mistral.chat.complete(model=MODEL, messages=HI)
    (span,) = request_spans(telemetry.spans(), run.run_id)
    assert span.instrumentation_scope.name == "agent_otel"
    assert span.attributes["gen_ai.usage.input_tokens"] == 12
    (theirs,) = own.get_finished_spans()
    assert theirs.name == f"chat {MODEL}"
    assert not {"agent.run_id", "agent.step_id", "agent.cost_usd"} & set(theirs.attributes)
    provider.shutdown()


def test_cached_prompt_tokens_the_api_reports_are_part_of_the_input(telemetry, fake_api, tracing):
    reply = completion("hello", (100, 3))
    reply.body["usage"]["prompt_tokens_details"] = {"cached_tokens": 60}
    fake_api.reply(reply)
    with agent_otel.run("assistant") as run:
        client(fake_api).chat.complete(model=MODEL, messages=HI)
    (event,) = telemetry.events("llm_result")
    assert (event["usage"]["input_tokens"], event["usage"]["cached_input_tokens"]) == (100, 60)
    # La Plateforme publishes no cached-input discount: cached tokens cost input (the price table).
    assert run.result.usage["cost_usd"] == pytest.approx((100 * 0.50 + 3 * 1.50) / 1e6)


def test_a_streamed_mistralai_extra_run_is_steps_with_the_usage_of_each_turn(telemetry, fake_api, tracing):
    """``run_stream_async``: each model round is a streamed turn (usage from its done event), the local
    function the model asked for a tool step between them."""
    from mistralai.extra.run.context import RunContext

    begun = (
        "conversation.response.started",
        {"type": "conversation.response.started", "conversation_id": "c1"},
    )
    call = {
        "type": "function.call.delta",
        "id": "fc_1",
        "name": "get_weather",
        "tool_call_id": "call_1",
        "arguments": '{"city": "Paris"}',
        **MESSAGE_IDS,
    }
    answer = {"type": "message.output.delta", "id": "m", "content": "Sunny", **MESSAGE_IDS}

    def done(prompt: int, completion: int) -> tuple[str, dict[str, Any]]:
        usage = {"prompt_tokens": prompt, "completion_tokens": completion}
        return ("conversation.response.done", {"type": "conversation.response.done", "usage": usage})

    fake_api.reply(
        Reply(stream=[begun, ("function.call.delta", call), done(50, 5)]),
        Reply(stream=[begun, ("message.output.delta", answer), done(80, 20)]),
    )

    def get_weather(city: str) -> str:
        """The weather in a city.

        Args:
            city: the city's name
        """
        return f"sunny in {city}"

    async def ask() -> list[Any]:
        async with RunContext(model=AGENT_MODEL) as ctx:
            ctx.register_func(get_weather)
            events = await client(fake_api).beta.conversations.run_stream_async(
                run_ctx=ctx, inputs="Weather?"
            )
            return [e async for e in events]

    with agent_otel.run("assistant") as run:
        events = asyncio.run(ask())
    assert type(events[-1]).__name__ == "RunResult"
    usage = run.result.usage
    assert (usage["llm_calls"], usage["tool_calls"], usage["input_tokens"], usage["output_tokens"]) == (
        2,
        1,
        130,
        25,
    )
    steps_seen = [(e["kind"], e["step_id"], e["tool"]) for e in telemetry.events() if e["kind"] != "stop"]
    assert steps_seen == [("llm_result", 1, None), ("tool_result", 2, "get_weather"), ("llm_result", 3, None)]


def test_a_guard_stops_a_mistralai_extra_run_function_before_it_runs(guarded, fake_api, tracing):
    """``mistralai.extra.run`` runs the local functions itself: each call is a tool step begun before the
    function runs, so a denied one does not run, and the stop leaves ``run_async`` as itself."""
    from mistralai.extra.run.context import RunContext

    guarded({"policy": {"deny": {"*": ["send_email"]}}})
    call = {
        "type": "function.call",
        "object": "entry",
        "tool_call_id": "call_1",
        "name": "send_email",
        "arguments": '{"to": "bob@example.com"}',
        "id": "fc_1",
    }
    fake_api.reply(turn([call], (50, 5)), turn([message("Sent.")], (80, 20)))
    sent: list[str] = []

    def send_email(to: str) -> str:
        """Send an e-mail.

        Args:
            to: the address
        """
        sent.append(to)
        return "sent"

    async def ask() -> Any:
        async with RunContext(model=AGENT_MODEL, continue_on_fn_error=True) as ctx:
            ctx.register_func(send_email)
            return await client(fake_api).beta.conversations.run_async(run_ctx=ctx, inputs="Mail Bob")

    with pytest.raises(agent_otel.AgentStopped) as stopped, agent_otel.run("assistant"):
        asyncio.run(ask())
    assert stopped.value.stop_reason == "policy_denied"
    assert sent == []  # the denied function never ran
    assert len(fake_api.requests) == 1  # and nothing was sent after the stop


@pytest.mark.parametrize("leave", [None, "at_the_result", "at_the_tool_call", "dropped"])
def test_outside_a_run_a_streamed_mistralai_extra_run_is_one_run(telemetry, fake_api, tracing, caplog, leave):
    """``run_stream_async`` outside a run of yours: ``run_async`` is one run (the SDK's ``conversation``
    span), but the streamed loop has no such span, so it was no run at all with the SDK's tracing off (no
    stop, the function call unrecorded), and with it on each turn a run of its own (``completed`` even when
    the consumer left in the middle of it) and the function in none. Now one run of its turns and the
    function: ``completed`` at its ``RunResult`` (a consumer that stops there too), ``cancelled`` for a
    consumer that leaves before (closing the stream, or dropping it unclosed), with no warning added."""
    import gc
    import logging

    from mistralai.extra.run.context import RunContext

    caplog.set_level(logging.WARNING)
    begun = (
        "conversation.response.started",
        {"type": "conversation.response.started", "conversation_id": "c1"},
    )
    call = {
        "type": "function.call.delta",
        "id": "fc_1",
        "name": "get_weather",
        "tool_call_id": "call_1",
        "arguments": '{"city": "Paris"}',
        **MESSAGE_IDS,
    }
    answer = {"type": "message.output.delta", "id": "m", "content": "Sunny", **MESSAGE_IDS}

    def done(prompt: int, completion: int) -> tuple[str, dict[str, Any]]:
        usage = {"prompt_tokens": prompt, "completion_tokens": completion}
        return ("conversation.response.done", {"type": "conversation.response.done", "usage": usage})

    fake_api.reply(
        Reply(stream=[begun, ("function.call.delta", call), done(50, 5)]),
        Reply(stream=[begun, ("message.output.delta", answer), done(80, 20)]),
    )
    ran: list[str] = []

    def get_weather(city: str) -> str:
        """The weather in a city.

        Args:
            city: the city's name
        """
        ran.append(city)
        return f"sunny in {city}"

    async def ask() -> list[str]:
        async with RunContext(model=AGENT_MODEL) as ctx:
            ctx.register_func(get_weather)
            events = await client(fake_api).beta.conversations.run_stream_async(
                run_ctx=ctx, inputs="Weather?"
            )
            seen: list[str] = []
            async for event in events:
                seen.append(getattr(event, "event", None) or type(event).__name__)
                if (leave == "at_the_result" and seen[-1] == "RunResult") or (
                    leave in ("at_the_tool_call", "dropped") and seen[-1] == "function.call.delta"
                ):
                    break
            if leave == "dropped":
                del events
                gc.collect()
                await asyncio.sleep(0)  # the loop closes the dropped stream
            elif leave is not None:
                await events.aclose()
            return seen

    seen = asyncio.run(ask())
    assert "ended span" not in caplog.text
    (stop,) = telemetry.events("stop")
    usage = stop["usage"]
    if leave in (None, "at_the_result"):
        assert seen[-1] == "RunResult" and ran == ["Paris"]
        assert (stop["stop_reason"], stop["status"]) == ("completed", "success")
        assert (usage["llm_calls"], usage["tool_calls"], usage["input_tokens"]) == (2, 1, 130)
        expected = [("llm_result", 1, None), ("tool_result", 2, "get_weather"), ("llm_result", 3, None)]
    else:
        assert ran == []  # the function never ran: the loop was left at the model's call
        assert (stop["stop_reason"], stop["status"]) == ("cancelled", "limit")
        expected = [("llm_result", 1, None)]
    steps_seen = [(e["kind"], e["step_id"], e["tool"]) for e in telemetry.events() if e["kind"] != "stop"]
    assert steps_seen == expected
    (run_span,) = [s for s in telemetry.spans() if "agent.stop_reason" in s.attributes]
    assert run_span.attributes["agent.stop_reason"] == stop["stop_reason"]
