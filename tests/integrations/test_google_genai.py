"""The Google Gen AI SDK (google-genai) against a fake Gemini API on 127.0.0.1 (JSON and SSE)."""

from __future__ import annotations

import asyncio
import gc
import json

import pytest

import agent_otel
from agent_otel.hashing import sha
from tests.integrations.conftest import Reply, by_name, children, one, ours, steps, stop_event

genai = pytest.importorskip("google.genai")
from google.genai import errors, types  # noqa: E402

MODEL = "gemini-2.5-flash"
# gemini-2.5-flash list prices, USD per 1M tokens: input, output (thinking included), cached input.
# Written out rather than read from agent_otel.pricing so that the test checks the table.
INPUT, OUTPUT, CACHED = 0.30, 2.50, 0.03


def usage(prompt: int, candidates: int, cached: int = 0, thoughts: int = 0, tool_use: int = 0) -> dict:
    out = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts + tool_use,
    }
    if cached:
        out["cachedContentTokenCount"] = cached
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    if tool_use:
        out["toolUsePromptTokenCount"] = tool_use
    return out


def answer(text: str = "hello", meta: dict | None = None, finish: str | None = "STOP", rid: str = "resp-1"):
    candidate: dict = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    body: dict = {"candidates": [candidate], "modelVersion": f"{MODEL}-001", "responseId": rid}
    if meta is not None:
        body["usageMetadata"] = meta
    return body


def function_call(name: str, args: dict, call_id: str | None = None) -> dict:
    call: dict = {"name": name, "args": args}
    if call_id:
        call["id"] = call_id
    return {
        "candidates": [
            {"content": {"role": "model", "parts": [{"functionCall": call}]}, "finishReason": "STOP"}
        ],
        "usageMetadata": usage(20, 5),
        "modelVersion": f"{MODEL}-001",
        "responseId": "resp-call",
    }


_CLIENTS: list[genai.Client] = []


def port(api) -> int:
    return int(api.base_url.rsplit(":", 1)[1])


def client(api, **kw) -> genai.Client:
    """A client for the fake API, kept alive for the test (a dropped Client closes its HTTP client)."""
    options = types.HttpOptions(base_url=api.base_url, retry_options=types.HttpRetryOptions(attempts=1))
    made = genai.Client(api_key="test-key", http_options=options, **kw)
    _CLIENTS.append(made)
    return made


def test_generate_content_is_one_chat_step_with_usage_cost_and_response(telemetry, instrument, fake_api):
    instrument("google_genai")
    fake_api.reply(Reply(answer(meta=usage(1000, 100, cached=400, thoughts=50))))
    config = types.GenerateContentConfig(temperature=0.2, max_output_tokens=256, top_p=0.9, top_k=40)
    with agent_otel.run("gemini-agent", conversation_id="conv-g") as run:
        response = client(fake_api).models.generate_content(model=MODEL, contents="hi", config=config)
    assert response.text == "hello"
    path, body = fake_api.requests[0]
    assert path.endswith(f"/models/{MODEL}:generateContent")
    assert body["generationConfig"]["temperature"] == 0.2
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent gemini-agent")
    chat = one(spans, f"chat {MODEL}")
    assert children(root, spans) == [chat]
    assert chat.kind.name == "CLIENT"
    a = chat.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "gcp.gemini"
    assert (a["gen_ai.agent.name"], a["gen_ai.conversation.id"]) == ("gemini-agent", "conv-g")
    assert a["gen_ai.request.model"] == MODEL
    assert a["gen_ai.response.model"] == f"{MODEL}-001"
    assert a["gen_ai.response.id"] == "resp-1"
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("STOP",)
    assert (a["gen_ai.request.temperature"], a["gen_ai.request.max_tokens"]) == (0.2, 256)
    assert (a["gen_ai.request.top_p"], a["gen_ai.request.top_k"]) == (0.9, 40)
    assert (a["server.address"], a["server.port"]) == ("127.0.0.1", port(fake_api))
    # Input: the prompt, its cached part included; output: the answer plus the thinking (billed as output).
    assert a["gen_ai.usage.input_tokens"] == 1000
    assert a["gen_ai.usage.cache_read.input_tokens"] == 400
    assert a["gen_ai.usage.output_tokens"] == 150
    assert a["gen_ai.usage.reasoning.output_tokens"] == 50
    expected = (600 * INPUT + 400 * CACHED + 150 * OUTPUT) / 1e6
    assert a["agent.cost_usd"] == pytest.approx(expected)
    assert (a["agent.run_id"], a["agent.step_id"]) == (run.run_id, 1)
    assert root.attributes["agent.cost_usd"] == pytest.approx(expected)
    assert run.result.usage["llm_calls"] == 1 and run.result.stop_reason == "completed"
    (event,) = telemetry.events("llm_result")
    assert event["usage"]["input_tokens"] == 1000 and event["usage"]["output_tokens"] == 150
    assert event["usage"]["cached_input_tokens"] == 400
    assert event["step_id"] == 1 and event["status"] == "ok"
    metrics = telemetry.metrics()
    points = metrics["agent.tokens_per_request"]
    assert [(p[0]["model"], p[1].sum) for p in points] == [(f"{MODEL}-001", 1150)]
    tokens = {
        (p["gen_ai.provider.name"], p["gen_ai.response.model"], p["gen_ai.token.type"]): point.sum
        for p, point in metrics["gen_ai.client.token.usage"]
    }
    assert tokens == {
        ("gcp.gemini", f"{MODEL}-001", "input"): 1000,
        ("gcp.gemini", f"{MODEL}-001", "output"): 150,
    }


def test_tool_use_prompt_tokens_count_as_input(telemetry, instrument, fake_api):
    instrument("google_genai")
    fake_api.reply(Reply(answer(meta=usage(100, 10, tool_use=30))))
    with agent_otel.run("gemini-search"):
        client(fake_api).models.generate_content(model=MODEL, contents="search")
    chat = one(ours(telemetry.spans()), f"chat {MODEL}")
    assert chat.attributes["gen_ai.usage.input_tokens"] == 130
    assert chat.attributes["gen_ai.usage.output_tokens"] == 10


def sse(*chunks: dict) -> Reply:
    return Reply(stream=[(None, chunk) for chunk in chunks])


STREAM = (
    answer("Hel", meta=usage(12, 1), finish=None, rid="resp-s"),
    answer("lo", meta=usage(12, 2), finish=None, rid="resp-s"),
    answer(" there", meta=usage(12, 7, thoughts=3), rid="resp-s"),
)


def test_stream_counts_the_last_cumulative_usage(telemetry, instrument, fake_api):
    instrument("google_genai")
    fake_api.reply(sse(*STREAM))
    with agent_otel.run("gemini-stream") as run:
        stream = client(fake_api).models.generate_content_stream(model=MODEL, contents="x")
        text = "".join(chunk.text for chunk in stream)
    assert text == "Hello there"
    assert fake_api.requests[0][0].endswith(f"/models/{MODEL}:streamGenerateContent?alt=sse")
    chat = one(ours(telemetry.spans()), f"chat {MODEL}")
    a = chat.attributes
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (12, 10)
    assert a["gen_ai.request.stream"] is True
    assert a["gen_ai.response.id"] == "resp-s"
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("STOP",)
    assert run.result.usage["input_tokens"] == 12 and run.result.usage["output_tokens"] == 10


def test_stream_abandoned_early_still_ends_its_step(telemetry, instrument, fake_api):
    instrument("google_genai")
    fake_api.reply(sse(*STREAM))
    with agent_otel.run("gemini-early") as run:
        stream = client(fake_api).models.generate_content_stream(model=MODEL, contents="x")
        first = next(iter(stream))
        del stream
        gc.collect()
    assert first.text == "Hel"
    spans = ours(telemetry.spans())
    chat = one(spans, f"chat {MODEL}")
    assert chat.end_time is not None
    assert chat.end_time <= one(spans, "invoke_agent gemini-early").end_time
    assert chat.attributes["gen_ai.usage.input_tokens"] == 12
    assert run.result.usage["llm_calls"] == 1


async def test_async_generate_content_and_stream(telemetry, instrument, fake_api):
    instrument("google_genai")
    fake_api.reply(Reply(answer(meta=usage(10, 4))), sse(*STREAM))
    aio = client(fake_api).aio
    async with agent_otel.run("gemini-async") as run:
        response = await aio.models.generate_content(model=MODEL, contents="x")
        chunks = [c.text async for c in await aio.models.generate_content_stream(model=MODEL, contents="y")]
    assert response.text == "hello" and "".join(chunks) == "Hello there"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent gemini-async")
    assert steps(root, spans) == [(1, f"chat {MODEL}"), (2, f"chat {MODEL}")]
    first, second = sorted(by_name(spans, f"chat {MODEL}"), key=lambda s: s.attributes["agent.step_id"])
    assert first.attributes["gen_ai.usage.output_tokens"] == 4
    assert second.attributes["gen_ai.usage.output_tokens"] == 10
    assert second.attributes["gen_ai.request.stream"] is True
    assert run.result.usage["llm_calls"] == 2


async def test_concurrent_async_runs_keep_their_own_steps(telemetry, instrument, fake_api):
    instrument("google_genai")
    fake_api.reply(*(Reply(answer(meta=usage(10, 1))) for _ in range(4)))
    aio = client(fake_api).aio

    async def agent(name: str) -> str:
        async with agent_otel.run(name) as run:
            await aio.models.generate_content(model=MODEL, contents="a")
            await aio.models.generate_content(model=MODEL, contents="b")
        return run.run_id

    ids = await asyncio.gather(agent("gemini-a"), agent("gemini-b"))
    spans = ours(telemetry.spans())
    for run_id in ids:
        mine = [s for s in spans if s.name.startswith("chat") and s.attributes["agent.run_id"] == run_id]
        assert sorted(s.attributes["agent.step_id"] for s in mine) == [1, 2]


# --- automatic function calling -----------------------------------------------------------------------

CALLS: list[str] = []


def get_weather(city: str) -> dict:
    """The weather in a city."""
    CALLS.append(city)
    return {"city": city, "sky": "clear"}


def failing_lookup(city: str) -> str:
    """Always fails."""
    CALLS.append(city)
    raise LookupError(f"no station in {city}")


@pytest.fixture(autouse=True)
def _fresh():
    CALLS.clear()
    yield
    CALLS.clear()
    _CLIENTS.clear()


def test_automatic_function_calling_records_the_function_as_a_tool_step(telemetry, instrument, fake_api):
    instrument("google_genai")
    fake_api.reply(Reply(function_call("get_weather", {"city": "Paris"}, "fc-1")), Reply(answer("Sunny")))
    with agent_otel.run("gemini-afc") as run:
        chat = client(fake_api).chats.create(
            model=MODEL, config=types.GenerateContentConfig(tools=[get_weather])
        )
        response = chat.send_message("Weather in Paris?")
    assert response.text == "Sunny" and CALLS == ["Paris"]
    sent = fake_api.requests[1][1]["contents"][-1]["parts"][0]["functionResponse"]
    assert sent == {"name": "get_weather", "response": {"result": {"city": "Paris", "sky": "clear"}}}
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent gemini-afc")
    assert steps(root, spans) == [(1, f"chat {MODEL}"), (2, "execute_tool get_weather"), (3, f"chat {MODEL}")]
    tool = one(spans, "execute_tool get_weather")
    assert tool.attributes["agent.tool.args_sha"] == sha({"city": "Paris"})
    assert tool.attributes["agent.tool.result_sha"] == sha({"city": "Paris", "sky": "clear"})
    assert tool.attributes["agent.tool.status"] == "ok"
    first_chat = min(by_name(spans, f"chat {MODEL}"), key=lambda s: s.attributes["agent.step_id"])
    assert tuple(first_chat.attributes["gen_ai.response.finish_reasons"]) == ("STOP",)
    assert run.result.usage["tool_calls"] == 1 and run.result.usage["llm_calls"] == 2
    (event,) = telemetry.events("tool_result")
    assert (event["tool"], event["step_id"], event["status"]) == ("get_weather", 2, "ok")


def test_streamed_automatic_function_calling(telemetry, instrument, fake_api):
    instrument("google_genai")
    fake_api.reply(sse(function_call("get_weather", {"city": "Lyon"})), sse(*STREAM))
    with agent_otel.run("gemini-afc-stream") as run:
        stream = client(fake_api).models.generate_content_stream(
            model=MODEL, contents="x", config=types.GenerateContentConfig(tools=[get_weather])
        )
        text = "".join(chunk.text or "" for chunk in stream)
    assert text == "Hello there" and CALLS == ["Lyon"]
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent gemini-afc-stream")
    assert steps(root, spans) == [(1, f"chat {MODEL}"), (2, "execute_tool get_weather"), (3, f"chat {MODEL}")]
    assert run.result.usage["input_tokens"] == 20 + 12


def test_a_failing_function_is_a_failed_tool_step_and_the_model_gets_the_error(
    telemetry, instrument, fake_api
):
    instrument("google_genai")
    fake_api.reply(Reply(function_call("failing_lookup", {"city": "Oslo"})), Reply(answer("Sorry")))
    with agent_otel.run("gemini-afc-error") as run:
        response = client(fake_api).models.generate_content(
            model=MODEL, contents="x", config=types.GenerateContentConfig(tools=[failing_lookup])
        )
    assert response.text == "Sorry"
    error = fake_api.requests[1][1]["contents"][-1]["parts"][0]["functionResponse"]["response"]["error"]
    assert "no station in Oslo" in error  # as without agent-otel: the SDK answers the model with the error
    tool = one(ours(telemetry.spans()), "execute_tool failing_lookup")
    assert tool.attributes["agent.tool.status"] == "error"
    assert tool.attributes["error.type"] == "LookupError"
    assert run.result.stop_reason == "completed"


async def test_async_automatic_function_calling_with_sync_and_async_functions(
    telemetry, instrument, fake_api
):
    instrument("google_genai")

    async def get_time(city: str) -> str:
        """The time in a city."""
        CALLS.append(f"time:{city}")
        return "12:00"

    two_calls = function_call("get_weather", {"city": "Rome"})
    time_call = {"functionCall": {"name": "get_time", "args": {"city": "Rome"}}}
    two_calls["candidates"][0]["content"]["parts"].append(time_call)
    fake_api.reply(Reply(two_calls), Reply(answer("Clear, noon")))
    async with agent_otel.run("gemini-afc-async") as run:
        response = await client(fake_api).aio.models.generate_content(
            model=MODEL, contents="x", config=types.GenerateContentConfig(tools=[get_weather, get_time])
        )
    assert response.text == "Clear, noon" and CALLS == ["Rome", "time:Rome"]
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent gemini-afc-async")
    assert steps(root, spans) == [
        (1, f"chat {MODEL}"),
        (2, "execute_tool get_weather"),
        (3, "execute_tool get_time"),
        (4, f"chat {MODEL}"),
    ]
    assert run.result.usage["tool_calls"] == 2


# --- failures and guards ------------------------------------------------------------------------------


def test_api_error_ends_the_run_with_model_error(telemetry, instrument, fake_api):
    instrument("google_genai")
    fake_api.reply(
        Reply({"error": {"code": 400, "message": "bad request", "status": "INVALID_ARGUMENT"}}, status=400)
    )
    with pytest.raises(errors.ClientError), agent_otel.run("gemini-fail"):
        client(fake_api).models.generate_content(model=MODEL, contents="x")
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent gemini-fail")
    chat = one(spans, f"chat {MODEL}")
    assert root.attributes["agent.stop_reason"] == "model_error"
    assert chat.status.status_code.name == "ERROR"
    assert chat.attributes["error.type"] == "ClientError"
    assert stop_event(root)["agent.stop_reason"] == "model_error"


def test_budget_stops_the_next_request_before_it_is_sent(telemetry, instrument, fake_api):
    instrument("google_genai")
    fake_api.reply(Reply(answer(meta=usage(900, 200))), Reply(answer()))
    gemini = client(fake_api)
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        with agent_otel.run("gemini-budget", budget=agent_otel.Budget(max_tokens=1000)):
            gemini.models.generate_content(model=MODEL, contents="first")
            gemini.models.generate_content(model=MODEL, contents="second")
    assert stopped.value.stop_reason == "budget_exceeded"
    assert len(fake_api.requests) == 1  # the second request never left the process
    spans = ours(telemetry.spans())
    assert one(spans, "invoke_agent gemini-budget").attributes["agent.stop_reason"] == "budget_exceeded"
    assert len(by_name(spans, f"chat {MODEL}")) == 1


def test_kill_switch_stops_a_stream_before_it_is_sent(telemetry, instrument, fake_api, monkeypatch):
    instrument("google_genai")
    monkeypatch.setenv("AGENT_OTEL_KILL_SWITCH", "all")
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        with agent_otel.run("gemini-killed"):
            for _ in client(fake_api).models.generate_content_stream(model=MODEL, contents="x"):
                pass
    assert stopped.value.stop_reason == "kill_switch"
    assert fake_api.requests == []


def test_a_denied_function_stops_the_run_instead_of_answering_the_model(guarded, instrument, fake_api):
    telemetry = guarded({"policy": {"deny": {"*": ["get_weather"]}}})
    instrument("google_genai")
    fake_api.reply(Reply(function_call("get_weather", {"city": "Paris"})), Reply(answer("never sent")))
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        with agent_otel.run("gemini-denied"):
            client(fake_api).models.generate_content(
                model=MODEL, contents="x", config=types.GenerateContentConfig(tools=[get_weather])
            )
    assert stopped.value.stop_reason == "policy_denied"
    assert CALLS == [] and len(fake_api.requests) == 1
    root = one(ours(telemetry.spans()), "invoke_agent gemini-denied")
    assert root.attributes["agent.stop_reason"] == "policy_denied"


# --- providers, passthrough, undo ---------------------------------------------------------------------


def test_vertex_client_is_provider_vertex_ai(telemetry, instrument, fake_api):
    instrument("google_genai")
    fake_api.reply(Reply(answer(meta=usage(5, 5))))
    with agent_otel.run("gemini-vertex"):
        client(fake_api, vertexai=True).models.generate_content(model=MODEL, contents="x")
    assert "/publishers/google/models/" in fake_api.requests[0][0]
    chat = one(ours(telemetry.spans()), f"chat {MODEL}")
    assert chat.attributes["gen_ai.provider.name"] == "gcp.vertex_ai"


def test_outside_a_run_and_non_model_requests_pass_through(telemetry, instrument, fake_api):
    instrument("google_genai")
    fake_api.reply(Reply(answer(meta=usage(5, 5))), Reply({"totalTokens": 3}))
    gemini = client(fake_api)
    assert gemini.models.generate_content(model=MODEL, contents="x").text == "hello"
    with agent_otel.run("gemini-count") as run:
        assert gemini.models.count_tokens(model=MODEL, contents="abc").total_tokens == 3
    assert [s.name for s in ours(telemetry.spans())] == ["invoke_agent gemini-count"]
    assert run.result.usage["llm_calls"] == 0


def test_a_response_agent_otel_cannot_read_still_reaches_the_caller(
    telemetry, instrument, fake_api, monkeypatch
):
    from agent_otel.integrations import google_genai as integration

    def broken(reply, body):
        raise RuntimeError("agent-otel bug")

    monkeypatch.setattr(integration, "read_body", broken)
    instrument("google_genai")
    fake_api.reply(Reply(answer(meta=usage(5, 5))), sse(*STREAM))
    gemini = client(fake_api)
    with agent_otel.run("gemini-robust") as run:
        assert gemini.models.generate_content(model=MODEL, contents="x").text == "hello"
        assert (
            "".join(c.text for c in gemini.models.generate_content_stream(model=MODEL, contents="y"))
            == "Hello there"
        )
    assert run.result.stop_reason == "completed" and run.result.usage["llm_calls"] == 2


def test_uninstrument_restores_the_sdk(instrument):
    from google.genai import _api_client, _extra_utils

    before = (_api_client.BaseApiClient.request, _extra_utils.invoke_function_from_dict_args)
    instrument("google_genai")
    assert _api_client.BaseApiClient.request is not before[0]
    from agent_otel import integrations

    integrations.uninstrument(["google_genai"])
    assert (_api_client.BaseApiClient.request, _extra_utils.invoke_function_from_dict_args) == before


def test_content_capture_records_gemini_messages_redacted(configured, instrument, fake_api):
    telemetry = configured({"logging": {"events": {"capture_content": True}}})
    instrument("google_genai")
    fake_api.reply(
        Reply(function_call("get_weather", {"city": "Paris"}, "fc-9")), Reply(answer("mail bob@example.com"))
    )
    config = types.GenerateContentConfig(tools=[get_weather], system_instruction="be brief")
    with agent_otel.run("gemini-content"):
        client(fake_api).models.generate_content(
            model=MODEL, contents="write to alice@example.com", config=config
        )
    first, second = sorted(
        by_name(ours(telemetry.spans()), f"chat {MODEL}"), key=lambda s: s.attributes["agent.step_id"]
    )
    sent = json.loads(first.attributes["gen_ai.input.messages"])
    assert [m["role"] for m in sent] == ["system", "user"]
    assert sent[0]["parts"] == [{"type": "text", "content": "be brief"}]
    assert "alice@example.com" not in sent[1]["parts"][0]["content"]  # redacted like store_args
    (answered,) = json.loads(first.attributes["gen_ai.output.messages"])
    assert answered["parts"] == [
        {"type": "tool_call", "id": "fc-9", "name": "get_weather", "arguments": {"city": "Paris"}}
    ]
    assert answered["finish_reason"] == "STOP"
    resent = json.loads(second.attributes["gen_ai.input.messages"])
    assert [m["role"] for m in resent] == ["system", "user", "assistant", "user"]
    assert resent[-1]["parts"][0]["type"] == "tool_call_response"
    (final,) = json.loads(second.attributes["gen_ai.output.messages"])
    assert "bob@example.com" not in final["parts"][0]["content"]


def test_content_is_not_captured_by_default(telemetry, instrument, fake_api):
    instrument("google_genai")
    fake_api.reply(Reply(answer()))
    with agent_otel.run("gemini-quiet"):
        client(fake_api).models.generate_content(model=MODEL, contents="hello")
    chat = one(ours(telemetry.spans()), f"chat {MODEL}")
    assert "gen_ai.input.messages" not in chat.attributes and "gen_ai.output.messages" not in chat.attributes


async def test_a_stream_left_unfinished_ends_its_step_with_the_run(telemetry, instrument, fake_api):
    """Kept, neither closed nor read to its end: the step ended only at garbage collection, after the run.
    It ends with the run (with the usage seen so far), and the stream still reads to its end."""
    instrument("google_genai")
    fake_api.reply(sse(*STREAM), sse(*STREAM))
    with agent_otel.run("gemini-kept") as run:
        stream = client(fake_api).models.generate_content_stream(model=MODEL, contents="x")
        assert next(stream).text == "Hel"
    async with agent_otel.run("agemini-kept") as arun:
        astream = await client(fake_api).aio.models.generate_content_stream(model=MODEL, contents="x")
        assert (await anext(astream)).text == "Hel"
    spans = ours(telemetry.spans())
    for name, r in (("gemini-kept", run), ("agemini-kept", arun)):
        (chat,) = [s for s in by_name(spans, f"chat {MODEL}") if s.attributes["agent.run_id"] == r.run_id]
        assert chat.end_time <= one(spans, f"invoke_agent {name}").end_time
        assert chat.attributes["gen_ai.usage.input_tokens"] == 12
        assert r.result.usage["llm_calls"] == 1 and r.result.usage["input_tokens"] == 12
    assert "".join(c.text for c in stream) == "lo there"  # the streams themselves go on
    assert "".join([c.text async for c in astream]) == "lo there"
    assert len(telemetry.events("llm_result")) == 2


@agent_otel.tool(name="weather.get", retry=agent_otel.Retry(max_attempts=3, base_delay_s=0, jitter="none"))
def flaky_weather(city: str) -> dict:
    """The weather in a city, from a station that drops the first request."""
    CALLS.append(city)
    if len(CALLS) < 2:
        raise ConnectionError("reset")
    return {"city": city, "sky": "clear"}


@agent_otel.tool(side_effects=True)
def book_flight(city: str) -> str:
    """Book a flight."""
    CALLS.append(f"booked {city}")
    return "booked"


def test_an_agent_otel_tool_called_automatically_is_one_tool_call_with_the_call_id(
    telemetry, instrument, fake_api
):
    """An ``@agent_otel.tool(name=..., retry=...)`` function in ``tools=``: the SDK calls the wrapper,
    which did not recognise the integration's call under another name (two tool spans, two counted
    calls), and its retry did not apply. One span now, with the model's call id, the retry applied once."""
    instrument("google_genai")
    fake_api.reply(Reply(function_call("flaky_weather", {"city": "Paris"}, "fc-1")), Reply(answer("Sunny")))
    with agent_otel.run("gemini-afc") as run:
        response = client(fake_api).models.generate_content(
            model=MODEL, contents="x", config=types.GenerateContentConfig(tools=[flaky_weather])
        )
    assert response.text == "Sunny" and CALLS == ["Paris", "Paris"]
    (tool,) = [s for s in ours(telemetry.spans()) if s.name.startswith("execute_tool")]
    assert tool.name == "execute_tool flaky_weather"
    assert tool.attributes["gen_ai.tool.call.id"] == "fc-1" and tool.attributes["agent.tool.attempts"] == 2
    assert tool.attributes["agent.tool.result_sha"] == sha({"city": "Paris", "sky": "clear"})
    assert run.result.usage["tool_calls"] == 1


def test_a_write_declared_with_agent_otel_tool_is_blocked_by_the_writes_kill_switch(
    guarded, instrument, fake_api, monkeypatch
):
    """The SDK calls the ``@agent_otel.tool(side_effects=True)`` wrapper, which the integration handed
    over as the function: not the function declared a write, so the write ran under the kill switch."""
    telemetry = guarded({})
    instrument("google_genai")
    monkeypatch.setenv("AGENT_OTEL_KILL_SWITCH", "writes")
    fake_api.reply(Reply(function_call("book_flight", {"city": "Rome"}, "fc-2")), Reply(answer("never")))
    with pytest.raises(agent_otel.AgentStopped) as stopped, agent_otel.run("booker"):
        client(fake_api).models.generate_content(
            model=MODEL, contents="x", config=types.GenerateContentConfig(tools=[book_flight])
        )
    assert stopped.value.stop_reason == "kill_switch" and CALLS == []
    assert not [s for s in ours(telemetry.spans()) if s.name.startswith("execute_tool")]
