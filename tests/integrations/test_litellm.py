"""LiteLLM against fake providers on 127.0.0.1: OpenAI-compatible, Mistral, Ollama (JSON lines), Gemini
and Bedrock (with fake AWS credentials, the AWS event stream for streaming)."""

from __future__ import annotations

import gc
import json
import time
import weakref

import pytest
from opentelemetry.trace import StatusCode

import agent_otel
from tests.integrations import aws_eventstream as es
from tests.integrations.conftest import Reply, by_name, children, one, ours, steps, stop_event

litellm = pytest.importorskip("litellm")

MESSAGES = [{"role": "user", "content": "hi"}]
# List prices, USD per 1M tokens (README, Prices), written out so the tests check the table.
GPT_4O_MINI = (0.15, 0.60, 0.075)
MISTRAL_LARGE = (0.50, 1.50)
SONNET = (3.00, 15.00, 0.30, 3.75)


def chat_completion(model: str, prompt: int, completion: int, cached: int = 0, tool_call: str | None = None):
    message: dict = {"role": "assistant", "content": None if tool_call else "hello"}
    if tool_call:
        message["tool_calls"] = [
            {"id": tool_call, "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}
        ]
    usage: dict = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return {
        "id": "chatcmpl-42",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_call else "stop"}],
        "usage": usage,
    }


def chunks(model: str, prompt: int, completion: int) -> Reply:
    def chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> dict:
        body: dict = {
            "id": "chatcmpl-s",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if usage is None else [],
        }
        if usage is not None:
            body["usage"] = usage
        return body

    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    events = [
        chunk({"role": "assistant", "content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({}, "stop"),
        chunk({}, usage=usage),
    ]
    return Reply(stream=[(None, e) for e in events] + [(None, "[DONE]")])


def test_openai_route_is_one_step_even_with_the_openai_client_instrumented(telemetry, instrument, fake_api):
    instrument("litellm", "openai")
    fake_api.reply(Reply(chat_completion("gpt-4o-mini-2024-07-18", 1000, 50, cached=600)))
    with agent_otel.run("litellm-agent") as run:
        response = litellm.completion(
            model="openai/gpt-4o-mini",
            messages=MESSAGES,
            api_base=fake_api.base_url,
            api_key="test-key",
            temperature=0.1,
            max_tokens=99,
        )
    assert response.choices[0].message.content == "hello"
    assert fake_api.requests[0][1]["temperature"] == 0.1
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent litellm-agent")
    chat = one(spans, "chat gpt-4o-mini")  # one step: the OpenAI client underneath adds none
    assert children(root, spans) == [chat]
    assert chat.kind.name == "CLIENT"
    a = chat.attributes
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert a["gen_ai.response.id"] == "chatcmpl-42"
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)
    assert (a["gen_ai.request.temperature"], a["gen_ai.request.max_tokens"]) == (0.1, 99)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (1000, 50)
    assert a["gen_ai.usage.cache_read.input_tokens"] == 600
    expected = (400 * GPT_4O_MINI[0] + 600 * GPT_4O_MINI[2] + 50 * GPT_4O_MINI[1]) / 1e6
    assert a["agent.cost_usd"] == pytest.approx(expected)
    assert run.result.usage["llm_calls"] == 1 and run.result.usage["input_tokens"] == 1000
    (event,) = telemetry.events("llm_result")
    assert event["usage"]["input_tokens"] == 1000 and event["step_id"] == 1


def test_a_model_the_price_table_lacks_gets_litellms_own_cost(telemetry, instrument, fake_api):
    from agent_otel.pricing import PriceTable

    assert PriceTable().price("gpt-3.5-turbo") is None  # not in agent-otel's table; LiteLLM prices it
    instrument("litellm")
    fake_api.reply(Reply(chat_completion("gpt-3.5-turbo", 1000, 100)))
    with agent_otel.run("litellm-cost") as run:
        response = litellm.completion(
            model="openai/gpt-3.5-turbo", messages=MESSAGES, api_base=fake_api.base_url, api_key="k"
        )
    litellms = response._hidden_params["response_cost"]
    assert litellms > 0
    chat = one(ours(telemetry.spans()), "chat gpt-3.5-turbo")
    assert chat.attributes["agent.cost_usd"] == pytest.approx(litellms)
    assert run.cost_usd == pytest.approx(litellms)


def test_a_configured_price_wins_over_litellms_cost(configured, instrument, fake_api):
    telemetry = configured({"prices": {"gpt-3.5-turbo": {"input": 10.0, "output": 20.0}}})
    instrument("litellm")
    fake_api.reply(Reply(chat_completion("gpt-3.5-turbo", 1000, 100)))
    with agent_otel.run("litellm-priced"):
        litellm.completion(
            model="openai/gpt-3.5-turbo", messages=MESSAGES, api_base=fake_api.base_url, api_key="k"
        )
    chat = one(ours(telemetry.spans()), "chat gpt-3.5-turbo")
    assert chat.attributes["agent.cost_usd"] == pytest.approx((1000 * 10.0 + 100 * 20.0) / 1e6)


def test_mistral_route(telemetry, instrument, fake_api):
    instrument("litellm")
    fake_api.reply(Reply(chat_completion("mistral-large-2512", 200, 40, tool_call="call_m1")))
    with agent_otel.run("litellm-mistral"):
        litellm.completion(
            model="mistral/mistral-large-latest", messages=MESSAGES, api_base=fake_api.base_url, api_key="k"
        )
    assert fake_api.requests[0][0] == "/v1/chat/completions"
    chat = one(ours(telemetry.spans()), "chat mistral-large-latest")
    a = chat.attributes
    assert a["gen_ai.provider.name"] == "mistral_ai"
    assert (a["server.address"], a["server.port"]) == ("127.0.0.1", int(fake_api.base_url.rsplit(":", 1)[1]))
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("tool_calls",)
    assert a["agent.cost_usd"] == pytest.approx((200 * MISTRAL_LARGE[0] + 40 * MISTRAL_LARGE[1]) / 1e6)


def ollama_answer(prompt: int, out: int) -> dict:
    return {
        "model": "llama3.1",
        "created_at": "2026-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": "hey"},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": prompt,
        "eval_count": out,
    }


def test_ollama_route_and_its_json_lines_stream(telemetry, instrument, fake_api):
    instrument("litellm")
    lines = [
        {
            "model": "llama3.1",
            "created_at": "t",
            "message": {"role": "assistant", "content": "he"},
            "done": False,
        },
        {
            "model": "llama3.1",
            "created_at": "t",
            "message": {"role": "assistant", "content": "y"},
            "done": False,
        },
        {**ollama_answer(21, 6), "message": {"role": "assistant", "content": ""}},
    ]
    ndjson = "".join(json.dumps(line) + "\n" for line in lines).encode()
    fake_api.reply(Reply(ollama_answer(11, 4)), Reply(raw=ndjson, content_type="application/x-ndjson"))
    with agent_otel.run("litellm-ollama") as run:
        litellm.completion(model="ollama_chat/llama3.1", messages=MESSAGES, api_base=fake_api.base_url)
        stream = litellm.completion(
            model="ollama_chat/llama3.1", messages=MESSAGES, api_base=fake_api.base_url, stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream)
    assert text == "hey"
    assert [r[0] for r in fake_api.requests] == ["/api/chat", "/api/chat"]
    spans = ours(telemetry.spans())
    first, second = sorted(by_name(spans, "chat llama3.1"), key=lambda s: s.attributes["agent.step_id"])
    assert first.attributes["gen_ai.provider.name"] == "ollama"
    assert (
        first.attributes["gen_ai.usage.input_tokens"],
        first.attributes["gen_ai.usage.output_tokens"],
    ) == (
        11,
        4,
    )
    # No stream_options: the usage Ollama reported on its last line, kept by LiteLLM.
    assert (
        second.attributes["gen_ai.usage.input_tokens"],
        second.attributes["gen_ai.usage.output_tokens"],
    ) == (
        21,
        6,
    )
    assert second.attributes["gen_ai.request.stream"] is True
    assert run.result.usage["input_tokens"] == 32
    # A local model has no list price; LiteLLM's own figure (none for Ollama) is not made up either.
    assert "agent.cost_usd" not in first.attributes or first.attributes["agent.cost_usd"] == 0


def test_bedrock_route_with_fake_aws_credentials(telemetry, instrument, fake_api):
    instrument("litellm", "bedrock")
    converse = {
        "output": {"message": {"role": "assistant", "content": [{"text": "yo"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 70, "outputTokens": 20, "totalTokens": 390, "cacheReadInputTokens": 300},
        "metrics": {"latencyMs": 1},
    }
    events = es.stream(
        es.event("messageStart", {"role": "assistant"}),
        es.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "yo"}}),
        es.event("messageStop", {"stopReason": "end_turn"}),
        es.event(
            "metadata", {"usage": {"inputTokens": 9, "outputTokens": 3, "totalTokens": 12}, "metrics": {}}
        ),
    )
    fake_api.reply(Reply(converse), Reply(raw=events, content_type="application/vnd.amazon.eventstream"))
    aws = {
        "aws_access_key_id": "AKIDTEST",
        "aws_secret_access_key": "test-secret",
        "aws_region_name": "us-east-1",
        "aws_bedrock_runtime_endpoint": fake_api.base_url,
    }
    model = "bedrock/anthropic.claude-sonnet-4-20250514-v1:0"
    with agent_otel.run("litellm-bedrock") as run:
        litellm.completion(model=model, messages=MESSAGES, **aws)
        text = "".join(
            c.choices[0].delta.content or ""
            for c in litellm.completion(model=model, messages=MESSAGES, stream=True, **aws)
        )
    assert text == "yo"
    assert fake_api.requests[0][0].endswith("/converse") and fake_api.requests[1][0].endswith(
        "/converse-stream"
    )
    spans = ours(telemetry.spans())
    chats = sorted(
        by_name(spans, "chat anthropic.claude-sonnet-4-20250514-v1:0"),
        key=lambda s: s.attributes["agent.step_id"],
    )
    assert len(chats) == 2  # LiteLLM signs and sends with its own HTTP client: boto3's wrapper adds nothing
    first, second = chats
    assert first.attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert (
        first.attributes["gen_ai.usage.input_tokens"],
        first.attributes["gen_ai.usage.cache_read.input_tokens"],
    ) == (370, 300)
    expected = (70 * SONNET[0] + 300 * SONNET[2] + 20 * SONNET[1]) / 1e6
    assert first.attributes["agent.cost_usd"] == pytest.approx(expected)
    assert (
        second.attributes["gen_ai.usage.input_tokens"],
        second.attributes["gen_ai.usage.output_tokens"],
    ) == (9, 3)
    assert run.result.usage["llm_calls"] == 2


def test_gemini_route(telemetry, instrument, fake_api):
    instrument("litellm")
    body = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 3, "totalTokenCount": 15},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "g-1",
    }
    fake_api.reply(Reply(body))
    with agent_otel.run("litellm-gemini"):
        litellm.completion(
            model="gemini/gemini-2.5-flash", messages=MESSAGES, api_key="k", api_base=fake_api.base_url
        )
    chat = one(ours(telemetry.spans()), "chat gemini-2.5-flash")
    assert chat.attributes["gen_ai.provider.name"] == "gcp.gemini"
    assert chat.attributes["gen_ai.usage.input_tokens"] == 12
    assert chat.attributes["agent.cost_usd"] == pytest.approx((12 * 0.30 + 3 * 2.50) / 1e6)


async def test_acompletion_and_async_stream_with_usage_chunk(telemetry, instrument, fake_api):
    instrument("litellm", "openai")
    fake_api.reply(Reply(chat_completion("gpt-4o-mini", 10, 2)), chunks("gpt-4o-mini", 30, 7))
    async with agent_otel.run("litellm-async") as run:
        await litellm.acompletion(
            model="openai/gpt-4o-mini", messages=MESSAGES, api_base=fake_api.base_url, api_key="k"
        )
        stream = await litellm.acompletion(
            model="openai/gpt-4o-mini",
            messages=MESSAGES,
            api_base=fake_api.base_url,
            api_key="k",
            stream=True,
            stream_options={"include_usage": True},
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hello"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent litellm-async")
    assert steps(root, spans) == [(1, "chat gpt-4o-mini"), (2, "chat gpt-4o-mini")]
    second = max(by_name(spans, "chat gpt-4o-mini"), key=lambda s: s.attributes["agent.step_id"])
    assert (
        second.attributes["gen_ai.usage.input_tokens"],
        second.attributes["gen_ai.usage.output_tokens"],
    ) == (30, 7)
    assert run.result.usage["llm_calls"] == 2


def mini_stream_request(api) -> dict:
    """The arguments of a streamed gpt-4o-mini completion from the fake API."""
    return {
        "model": "openai/gpt-4o-mini",
        "messages": MESSAGES,
        "api_base": api.base_url,
        "api_key": "k",
        "stream": True,
    }


def mini_stream(api):
    """A streamed gpt-4o-mini completion from the fake API (its reply queued by the caller)."""
    return litellm.completion(**mini_stream_request(api))


def test_sync_stream_abandoned_early_still_ends_its_step(telemetry, instrument, fake_api):
    instrument("litellm")
    fake_api.reply(chunks("gpt-4o-mini", 5, 2))
    with agent_otel.run("litellm-early") as run:
        stream = mini_stream(fake_api)
        next(stream)
        gone = weakref.ref(stream)
        del stream
        # LiteLLM's background logging holds the stream until its task ran: wait for that, bounded.
        deadline = time.monotonic() + 10
        while gone() is not None and time.monotonic() < deadline:
            gc.collect()
            time.sleep(0.02)
        assert gone() is None
    chat = one(ours(telemetry.spans()), "chat gpt-4o-mini")
    assert chat.end_time is not None and chat.attributes["gen_ai.request.stream"] is True
    assert run.result.usage["llm_calls"] == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_stream_that_breaks_off_is_a_failed_step_and_the_run_a_model_error(
    telemetry, instrument, fake_api, mode
):
    """The connection drops after two chunks: LiteLLM closes its stream and raises its
    ``MidStreamFallbackError``, which reaches the caller unchanged; the step failed (it was recorded ``ok``,
    as a stream the consumer closed early) and the run ends ``model_error``, with one ``chat`` span."""
    instrument("litellm")
    reply = chunks("gpt-4o-mini", 5, 2)
    reply.cut_after = 2
    fake_api.reply(reply)
    with pytest.raises(litellm.exceptions.MidStreamFallbackError):
        async with agent_otel.run("litellm-cut") as run:
            if mode == "sync":
                for _ in mini_stream(fake_api):
                    pass
            else:
                async for _ in await litellm.acompletion(**mini_stream_request(fake_api)):
                    pass
    (chat,) = by_name(ours(telemetry.spans()), "chat gpt-4o-mini")
    assert chat.status.status_code is StatusCode.ERROR
    assert chat.attributes["error.type"] == "MidStreamFallbackError"
    assert [e["status"] for e in telemetry.events("llm_result")] == ["error"]
    assert run.result.stop_reason == "model_error"


async def test_router_calls_are_steps_of_the_deployment_they_route_to(telemetry, instrument, fake_api):
    instrument("litellm")
    fake_api.reply(Reply(chat_completion("gpt-4o-mini", 10, 3)), Reply(chat_completion("gpt-4o-mini", 20, 4)))
    deployment = {"model": "openai/gpt-4o-mini", "api_base": fake_api.base_url, "api_key": "k"}
    router = litellm.Router(model_list=[{"model_name": "fast", "litellm_params": deployment}])
    async with agent_otel.run("litellm-router") as run:
        router.completion(model="fast", messages=MESSAGES)
        await router.acompletion(model="fast", messages=MESSAGES)
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent litellm-router")
    assert steps(root, spans) == [(1, "chat gpt-4o-mini"), (2, "chat gpt-4o-mini")]
    assert run.result.usage["input_tokens"] == 30


def test_provider_error_ends_the_run_with_model_error(telemetry, instrument, fake_api):
    instrument("litellm")
    fake_api.reply(Reply({"error": {"message": "bad model", "type": "invalid_request_error"}}, status=400))
    with pytest.raises(litellm.BadRequestError), agent_otel.run("litellm-fail"):
        litellm.completion(
            model="openai/gpt-4o-mini",
            messages=MESSAGES,
            api_base=fake_api.base_url,
            api_key="k",
            num_retries=0,
        )
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent litellm-fail")
    assert root.attributes["agent.stop_reason"] == "model_error"
    assert stop_event(root)["agent.stop_reason"] == "model_error"
    chat = one(spans, "chat gpt-4o-mini")
    assert chat.status.status_code.name == "ERROR" and chat.attributes["error.type"] == "BadRequestError"


def test_budget_stops_the_next_request_before_litellm_sees_it(telemetry, instrument, fake_api):
    instrument("litellm")
    fake_api.reply(Reply(chat_completion("gpt-4o-mini", 100000, 10)))
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        with agent_otel.run("litellm-budget", budget=agent_otel.Budget(max_cost_usd=0.01)):
            for _ in range(2):
                litellm.completion(
                    model="openai/gpt-4o-mini", messages=MESSAGES, api_base=fake_api.base_url, api_key="k"
                )
    assert stopped.value.stop_reason == "budget_exceeded"
    assert len(fake_api.requests) == 1


def test_outside_a_run_nothing_is_recorded(telemetry, instrument, fake_api):
    instrument("litellm")
    fake_api.reply(Reply(chat_completion("gpt-4o-mini", 1, 1)))
    litellm.completion(model="openai/gpt-4o-mini", messages=MESSAGES, api_base=fake_api.base_url, api_key="k")
    assert ours(telemetry.spans()) == []


def test_uninstrument_restores_litellm(instrument):
    from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper

    before = (litellm.completion, litellm.acompletion, CustomStreamWrapper.__next__)
    instrument("litellm")
    assert litellm.completion is not before[0]
    from agent_otel import integrations

    integrations.uninstrument(["litellm"])
    assert (litellm.completion, litellm.acompletion, CustomStreamWrapper.__next__) == before


def test_content_capture_records_the_messages_once(configured, instrument, fake_api):
    telemetry = configured({"logging": {"events": {"capture_content": True}}})
    instrument("litellm", "openai")
    fake_api.reply(Reply(chat_completion("gpt-4o-mini", 10, 3)))
    with agent_otel.run("litellm-content"):
        litellm.completion(
            model="openai/gpt-4o-mini",
            messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            api_base=fake_api.base_url,
            api_key="k",
        )
    chat = one(ours(telemetry.spans()), "chat gpt-4o-mini")
    assert [m["role"] for m in json.loads(chat.attributes["gen_ai.input.messages"])] == ["system", "user"]
    (answer,) = json.loads(chat.attributes["gen_ai.output.messages"])
    assert answer == {
        "role": "assistant",
        "parts": [{"type": "text", "content": "hello"}],
        "finish_reason": "stop",
    }


async def test_a_stream_left_unfinished_ends_its_step_with_the_run(telemetry, instrument, fake_api):
    """Kept, neither closed nor read to its end: the step ended only at garbage collection, after the run.
    It ends with the run, and the stream still reads to its end (``completion`` and ``acompletion``)."""
    instrument("litellm")
    fake_api.reply(chunks("gpt-4o-mini", 5, 2), chunks("gpt-4o-mini", 5, 2))
    with agent_otel.run("litellm-kept") as run:
        stream = mini_stream(fake_api)
        next(stream)
    async with agent_otel.run("litellm-akept") as arun:
        astream = await litellm.acompletion(
            model="openai/gpt-4o-mini",
            messages=MESSAGES,
            api_base=fake_api.base_url,
            api_key="k",
            stream=True,
        )
        await anext(aiter(astream))
    spans = ours(telemetry.spans())
    for name, r in (("litellm-kept", run), ("litellm-akept", arun)):
        (chat,) = [s for s in by_name(spans, "chat gpt-4o-mini") if s.attributes["agent.run_id"] == r.run_id]
        assert chat.end_time <= one(spans, f"invoke_agent {name}").end_time
        assert r.result.usage["llm_calls"] == 1
    assert len(list(stream)) >= 1  # the streams themselves go on
    assert len([c async for c in astream]) >= 1
    assert len(telemetry.events("llm_result")) == 2
