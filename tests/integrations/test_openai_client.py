"""The OpenAI Python client against a fake API on 127.0.0.1: each request is an LLM step of the run."""

from __future__ import annotations

import asyncio

import pytest

import agent_otel
from agent_otel import integrations
from tests.integrations.conftest import Reply, by_name, children, one, ours, steps, stop_event

openai = pytest.importorskip("openai")

# gpt-4o list prices, USD per 1M tokens: input, output, cached input. Written out rather than read from
# agent_otel.pricing so that the tests check the table.
PRICE_GPT4O = (2.50, 10.00)
CACHED_GPT4O = 1.25


def cost(input_tokens: int, output_tokens: int, cached: int = 0) -> float:
    """``input_tokens`` includes ``cached``, as OpenAI's ``prompt_tokens`` does."""
    uncached = input_tokens - cached
    return (uncached * PRICE_GPT4O[0] + cached * CACHED_GPT4O + output_tokens * PRICE_GPT4O[1]) / 1_000_000


def completion(
    prompt_tokens: int = 100, completion_tokens: int = 20, content: str = "hi", cached: int | None = None
) -> dict:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    if cached is not None:
        body["usage"]["prompt_tokens_details"] = {"cached_tokens": cached, "audio_tokens": 0}
    return body


def chunk(delta: dict, finish: str | None = None, usage: dict | None = None, choices: bool = True) -> dict:
    return {
        "id": "chatcmpl-2",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else [],
        "usage": usage,
    }


def stream_chat(api, content: str) -> openai.Stream:
    """A streamed chat completion that asks for its usage."""
    return client(api).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": content}],
        stream=True,
        stream_options={"include_usage": True},
    )


def client(api) -> openai.OpenAI:
    return openai.OpenAI(base_url=api.base_url + "/v1", api_key="test-key", max_retries=0)


def test_chat_completion_is_an_llm_step_with_usage_and_cost(telemetry, instrument, fake_api):
    instrument("openai")
    fake_api.reply(Reply(completion(100, 20)))
    with agent_otel.run("support-agent", model="gpt-4o") as run:
        resp = client(fake_api).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hello"}]
        )
    assert resp.choices[0].message.content == "hi"  # the caller gets the SDK's own object
    assert fake_api.requests[0][0] == "/v1/chat/completions"

    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent support-agent")
    chat = one(spans, "chat gpt-4o")
    assert children(root, spans) == [chat]
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.request.model"] == "gpt-4o"
    assert chat.attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert chat.attributes["agent.run_id"] == run.run_id
    assert chat.attributes["agent.step_id"] == 1
    assert chat.attributes["gen_ai.usage.input_tokens"] == 100
    assert chat.attributes["gen_ai.usage.output_tokens"] == 20
    assert chat.attributes["agent.cost_usd"] == pytest.approx(cost(100, 20))
    assert root.attributes["agent.usage.input_tokens"] == 100
    assert root.attributes["agent.usage.output_tokens"] == 20
    assert root.attributes["agent.cost_usd"] == pytest.approx(cost(100, 20))
    assert root.attributes["agent.steps"] == 1
    assert root.attributes["agent.stop_reason"] == "completed"
    assert run.result.usage["llm_calls"] == 1

    (event,) = telemetry.events("llm_result")
    assert event["run_id"] == run.run_id and event["step_id"] == 1
    assert event["usage"]["input_tokens"] == 100 and event["usage"]["output_tokens"] == 20
    points = telemetry.metrics()["agent.tokens_per_request"]
    assert [(attrs["model"], p.sum) for attrs, p in points] == [("gpt-4o-2024-08-06", 120)]


def test_cached_prompt_tokens_count_as_input_and_cost_the_cached_price(telemetry, instrument, fake_api):
    instrument("openai")
    fake_api.reply(Reply(completion(1000, 50, cached=800)))
    with agent_otel.run("cached-agent") as run:
        resp = client(fake_api).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hello again"}]
        )
    assert resp.usage.prompt_tokens_details.cached_tokens == 800
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent cached-agent")
    chat = one(spans, "chat gpt-4o")
    # prompt_tokens already include the cached ones: input stays 1000, not 1800.
    assert chat.attributes["gen_ai.usage.input_tokens"] == 1000
    assert chat.attributes["gen_ai.usage.cache_read.input_tokens"] == 800
    assert "gen_ai.usage.cache_creation.input_tokens" not in chat.attributes
    # 200 * 2.50 + 800 * 1.25 + 50 * 10.00 = 2000 USD per 1M tokens (all at 2.50 it would be 3000).
    expected = 2000 / 1e6
    assert expected == pytest.approx(cost(1000, 50, cached=800))
    assert chat.attributes["agent.cost_usd"] == pytest.approx(expected)
    assert root.attributes["agent.cost_usd"] == pytest.approx(expected)
    assert root.attributes["agent.usage.input_tokens"] == 1000
    assert run.result.usage["input_tokens"] == 1000
    (event,) = telemetry.events("llm_result")
    assert event["usage"]["input_tokens"] == 1000 and event["usage"]["cached_input_tokens"] == 800
    points = telemetry.metrics()["agent.tokens_per_request"]
    assert [p.sum for _, p in points] == [1050]


def test_streamed_chat_completion_counts_usage_from_the_last_chunk(telemetry, instrument, fake_api):
    instrument("openai")
    fake_api.reply(
        Reply(
            stream=[
                (None, chunk({"role": "assistant", "content": "Hel"})),
                (None, chunk({"content": "lo"}, finish="stop")),
                (
                    None,
                    chunk(
                        {},
                        usage={
                            "prompt_tokens": 12,
                            "completion_tokens": 5,
                            "total_tokens": 17,
                            "prompt_tokens_details": {"cached_tokens": 8},
                        },
                        choices=False,
                    ),
                ),
                (None, "[DONE]"),
            ]
        )
    )
    with agent_otel.run("streamer") as run:
        stream = stream_chat(fake_api, "hello")
        assert isinstance(stream, openai.Stream)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello"
    spans = ours(telemetry.spans())
    chat = one(spans, "chat gpt-4o")
    assert chat.attributes["gen_ai.usage.input_tokens"] == 12
    assert chat.attributes["gen_ai.usage.output_tokens"] == 5
    assert chat.attributes["gen_ai.usage.cache_read.input_tokens"] == 8
    # 4 * 2.50 + 8 * 1.25 + 5 * 10.00 = 70 USD per 1M tokens.
    assert chat.attributes["agent.cost_usd"] == pytest.approx(70 / 1e6)
    assert run.result.usage["input_tokens"] == 12 and run.result.usage["output_tokens"] == 5


def test_responses_api_stream_helper_counts_usage_from_response_completed(telemetry, instrument, fake_api):
    instrument("openai")
    response = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1700000000,
        "model": "gpt-4o-2024-08-06",
        "status": "completed",
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "ok", "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 30,
            "output_tokens": 7,
            "total_tokens": 37,
            "input_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 5},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }
    created = dict(response, status="in_progress", output=[], usage=None)
    fake_api.reply(
        Reply(
            stream=[
                ("response.created", {"type": "response.created", "sequence_number": 0, "response": created}),
                (
                    "response.output_item.added",
                    {
                        "type": "response.output_item.added",
                        "sequence_number": 1,
                        "output_index": 0,
                        "item": dict(response["output"][0], status="in_progress", content=[]),
                    },
                ),
                (
                    "response.output_item.done",
                    {
                        "type": "response.output_item.done",
                        "sequence_number": 2,
                        "output_index": 0,
                        "item": response["output"][0],
                    },
                ),
                (
                    "response.completed",
                    {"type": "response.completed", "sequence_number": 3, "response": response},
                ),
            ]
        )
    )
    with (
        agent_otel.run("responder") as run,
        client(fake_api).responses.stream(model="gpt-4o", input="hello") as stream,
    ):
        final = stream.get_final_response()
    assert final.output_text == "ok"
    chat = one(ours(telemetry.spans()), "chat gpt-4o")
    assert chat.attributes["gen_ai.usage.input_tokens"] == 30
    assert chat.attributes["gen_ai.usage.output_tokens"] == 7
    assert chat.attributes["gen_ai.usage.cache_read.input_tokens"] == 20
    assert chat.attributes["gen_ai.usage.cache_creation.input_tokens"] == 5
    # Responses API: input_tokens_details. 5 * 2.50 + 20 * 1.25 + 5 * 2.50 (write: no fee for gpt-4o)
    # + 7 * 10.00 = 120.
    assert chat.attributes["agent.cost_usd"] == pytest.approx(120 / 1e6)
    assert run.result.usage["llm_calls"] == 1


async def test_async_client_and_step_order_with_a_tool(telemetry, instrument, fake_api):
    instrument("openai")
    fake_api.reply(Reply(completion(10, 2)), Reply(completion(20, 4)))
    aclient = openai.AsyncOpenAI(base_url=fake_api.base_url + "/v1", api_key="k", max_retries=0)

    @agent_otel.tool
    def lookup(q: str) -> str:
        return q.upper()

    async with agent_otel.run("async-agent") as run:
        await aclient.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "a"}]
        )
        lookup("x")
        await aclient.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "b"}]
        )
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent async-agent")
    assert steps(root, spans) == [
        (1, "chat gpt-4o-mini"),
        (2, "execute_tool lookup"),
        (3, "chat gpt-4o-mini"),
    ]
    assert run.result.usage["input_tokens"] == 30 and run.result.usage["output_tokens"] == 6


def test_api_error_fails_the_step_and_ends_the_run_with_model_error(telemetry, instrument, fake_api):
    instrument("openai")
    fake_api.reply(Reply({"error": {"message": "overloaded", "type": "server_error"}}, status=500))
    with pytest.raises(openai.InternalServerError), agent_otel.run("fragile"):
        client(fake_api).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    spans = ours(telemetry.spans())
    chat = one(spans, "chat gpt-4o")
    assert chat.attributes["error.type"] == "InternalServerError"
    assert chat.status.status_code.name == "ERROR"
    root = one(spans, "invoke_agent fragile")
    assert root.attributes["agent.stop_reason"] == "model_error"
    assert stop_event(root)["agent.stop_reason"] == "model_error"


def test_a_rate_limited_request_the_sdk_retries_is_one_step_with_its_usage_once(
    telemetry, instrument, fake_api
):
    """HTTP 429, then the SDK's own retry (``max_retries``) succeeds: the caller made one call."""
    instrument("openai")
    fake_api.reply(
        Reply(
            {"error": {"message": "slow down", "type": "rate_limit"}},
            status=429,
            headers={"retry-after-ms": "10"},
        ),
        Reply(completion(100, 20)),
    )
    retrying = openai.OpenAI(base_url=fake_api.base_url + "/v1", api_key="test-key", max_retries=2)
    with agent_otel.run("rate-limited") as run:
        retrying.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert len(fake_api.requests) == 2
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent rate-limited")
    assert steps(root, spans) == [(1, "chat gpt-4o")]
    assert one(spans, "chat gpt-4o").status.status_code.name == "UNSET"
    assert (run.result.usage["input_tokens"], run.result.usage["llm_calls"]) == (100, 1)
    assert root.attributes["agent.stop_reason"] == "completed"


def test_only_model_requests_inside_a_run_are_recorded(telemetry, instrument, fake_api):
    instrument("openai")
    embedding = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }
    fake_api.reply(Reply(completion()), Reply(embedding))
    # Outside any run: the request passes through untouched.
    client(fake_api).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    with agent_otel.run("embedder") as run:
        client(fake_api).embeddings.create(model="text-embedding-3-small", input="x")
    spans = ours(telemetry.spans())
    assert [s.name for s in spans] == ["invoke_agent embedder"]
    assert run.result.usage["llm_calls"] == 0


def test_instrumenting_twice_counts_once_and_uninstrument_restores(telemetry, instrument, fake_api):
    from openai import _base_client

    original = _base_client.SyncAPIClient.request
    instrument("openai")
    patched = _base_client.SyncAPIClient.request
    assert patched is not original
    instrument("openai")
    integrations.instrument(["openai"])
    assert _base_client.SyncAPIClient.request is patched
    fake_api.reply(Reply(completion()), Reply(completion()))
    with agent_otel.run("twice") as run:
        client(fake_api).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert run.result.usage["llm_calls"] == 1
    integrations.uninstrument(["openai"])
    assert _base_client.SyncAPIClient.request is original
    assert _base_client.AsyncAPIClient.request is _base_client.AsyncAPIClient.__dict__["request"]
    with agent_otel.run("after") as run:
        client(fake_api).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert run.result.usage["llm_calls"] == 0


def test_parse_helper_and_raw_response_are_steps_with_usage(telemetry, instrument, fake_api):
    from pydantic import BaseModel

    class Answer(BaseModel):
        answer: str

    instrument("openai")
    fake_api.reply(Reply(completion(15, 6, content='{"answer": "42"}')), Reply(completion(9, 3)))
    with agent_otel.run("parser") as run:
        parsed = client(fake_api).chat.completions.parse(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}], response_format=Answer
        )
        raw = client(fake_api).chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "y"}]
        )
    assert parsed.choices[0].message.parsed == Answer(answer="42")
    assert raw.parse().choices[0].message.content == "hi"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent parser")
    chats = sorted(children(root, spans), key=lambda s: s.attributes["agent.step_id"])
    assert [
        (s.attributes["gen_ai.usage.input_tokens"], s.attributes["gen_ai.usage.output_tokens"]) for s in chats
    ] == [
        (15, 6),
        (9, 3),
    ]
    assert run.result.usage["input_tokens"] == 24


def streamed_words(count: int = 4) -> Reply:
    """A streamed Chat Completion of ``count`` words, then its usage (12 in, 5 out)."""
    events = [(None, chunk({"role": "assistant", "content": "a"}))]
    events += [(None, chunk({"content": f" w{i}"})) for i in range(count)]
    events.append((None, chunk({}, finish="stop")))
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    events += [(None, chunk({}, usage=usage, choices=False)), (None, "[DONE]")]
    return Reply(stream=events)


def test_stream_helper_left_early_ends_the_step_when_its_block_ends(telemetry, instrument, fake_api):
    # The helper's `with` closes the HTTP response, not the stream it reads: the step must still end
    # there, inside the run, although the helper object is still referenced.
    instrument("openai")
    fake_api.reply(streamed_words())
    with agent_otel.run("skimmer") as run:
        with client(fake_api).chat.completions.stream(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}]
        ) as stream:
            first = next(iter(stream))
        assert first.type == "chunk"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent skimmer")
    chat = one(spans, "chat gpt-4o")
    assert chat.end_time <= root.end_time
    assert chat.attributes["gen_ai.response.id"] == "chatcmpl-2"
    assert run.result.usage["llm_calls"] == 1
    assert stream is not None  # still referenced: nothing was garbage collected


async def test_async_stream_helper_cancelled_mid_stream_ends_the_step(telemetry, instrument, fake_api):
    instrument("openai")
    fake_api.reply(streamed_words())
    aclient = openai.AsyncOpenAI(base_url=fake_api.base_url + "/v1", api_key="k", max_retries=0)
    reading = asyncio.Event()
    held: list[object] = []

    async def agent() -> None:
        async with (
            agent_otel.run("impatient"),
            aclient.chat.completions.stream(model="gpt-4o", messages=[{"role": "user", "content": "x"}]) as s,
        ):
            held.append(s)
            async for _ in s:
                reading.set()
                await asyncio.sleep(30)

    task = asyncio.create_task(agent())
    await asyncio.wait_for(reading.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent impatient")
    assert root.attributes["agent.stop_reason"] == "cancelled"
    chat = one(spans, "chat gpt-4o")
    assert chat.end_time <= root.end_time
    assert chat.attributes["gen_ai.response.id"] == "chatcmpl-2"


def test_error_event_mid_stream_fails_the_step(telemetry, instrument, fake_api):
    instrument("openai")
    events = [(None, chunk({"role": "assistant", "content": "a"}))]
    events.append((None, {"error": {"message": "overloaded", "type": "server_error"}}))
    fake_api.reply(Reply(stream=events))
    with pytest.raises(openai.APIError), agent_otel.run("interrupted-stream"):
        with client(fake_api).chat.completions.stream(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}]
        ) as stream:
            for _ in stream:
                pass
    spans = ours(telemetry.spans())
    chat = one(spans, "chat gpt-4o")
    assert chat.status.status_code.name == "ERROR"
    assert chat.attributes["error.type"] == "APIError"
    assert one(spans, "invoke_agent interrupted-stream").attributes["agent.stop_reason"] == "model_error"


def failed_response_stream() -> Reply:
    """A Responses API stream that fails in the service: ``response.failed`` with its usage and error."""
    created = {
        "id": "resp_9",
        "object": "response",
        "created_at": 1700000000,
        "model": "gpt-4o-2024-08-06",
        "status": "in_progress",
        "output": [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }
    usage = {"input_tokens": 30, "output_tokens": 2, "total_tokens": 32}
    error = {"code": "server_error", "message": "The model failed to generate a response."}
    failed = dict(created, status="failed", error=error, usage=usage)
    return Reply(
        stream=[
            ("response.created", {"type": "response.created", "sequence_number": 0, "response": created}),
            ("response.failed", {"type": "response.failed", "sequence_number": 1, "response": failed}),
        ]
    )


def test_responses_stream_that_fails_in_the_service_is_a_failed_step(telemetry, instrument, fake_api):
    # The SDK yields `response.failed` as an event and raises nothing: the step still fails, with the
    # error's code and the usage the failed response reports.
    instrument("openai")
    fake_api.reply(failed_response_stream())
    with agent_otel.run("responder") as run:
        stream = client(fake_api).responses.create(model="gpt-4o", input="x", stream=True)
        assert [event.type for event in stream] == ["response.created", "response.failed"]
    chat = one(ours(telemetry.spans()), "chat gpt-4o")
    assert chat.status.status_code.name == "ERROR"
    assert chat.attributes["error.type"] == "server_error"
    assert chat.attributes["gen_ai.usage.input_tokens"] == 30
    assert run.result.stop_reason == "completed"  # the caller read the failure and went on
    assert [(e["status"], e["error"]) for e in telemetry.events("llm_result")] == [("error", "server_error")]


def test_stream_helper_raising_for_a_failed_response_ends_the_run_with_model_error(
    telemetry, instrument, fake_api
):
    instrument("openai")
    fake_api.reply(failed_response_stream())
    with pytest.raises(RuntimeError), agent_otel.run("responder") as run:
        with client(fake_api).responses.stream(model="gpt-4o", input="x") as stream:
            stream.get_final_response()  # the SDK: "Didn't receive a `response.completed` event."
    assert one(ours(telemetry.spans()), "chat gpt-4o").attributes["error.type"] == "server_error"
    assert run.result.stop_reason == "model_error"


async def test_a_stream_left_unfinished_ends_its_step_with_the_run_and_still_works(
    telemetry, instrument, fake_api
):
    """``create(stream=True)`` read partly, kept but neither closed nor in a ``with``: the step ended only
    when the garbage collector took the stream, after the run's span and stop (a child span ending after
    its parent, a request missing from the run's numbers). It ends with the run now, with the usage seen
    so far, and the stream still reads to its end for the user."""
    instrument("openai")
    fake_api.reply(streamed_words())
    fake_api.reply(streamed_words())
    kwargs = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "stream": True}
    with agent_otel.run("skimmer") as run:
        stream = client(fake_api).chat.completions.create(**kwargs, stream_options={"include_usage": True})
        assert next(iter(stream)).choices[0].delta.content == "a"
    aclient = openai.AsyncOpenAI(base_url=fake_api.base_url + "/v1", api_key="k", max_retries=0)
    async with agent_otel.run("askimmer") as arun:
        astream = await aclient.chat.completions.create(**kwargs)
        assert (await anext(aiter(astream))).choices[0].delta.content == "a"
    spans = ours(telemetry.spans())
    for root, r in ((one(spans, "invoke_agent skimmer"), run), (one(spans, "invoke_agent askimmer"), arun)):
        (chat,) = [s for s in by_name(spans, "chat gpt-4o") if s.attributes["agent.run_id"] == r.run_id]
        assert chat.end_time <= root.end_time
        assert chat.status.status_code.name == "UNSET"
        assert chat.attributes["gen_ai.response.id"] == "chatcmpl-2"
        assert r.result.usage["llm_calls"] == 1
    rest = [c.choices[0].delta.content for c in stream if c.choices]  # the stream itself goes on
    arest = [c.choices[0].delta.content async for c in astream if c.choices]
    assert rest == arest == [" w0", " w1", " w2", " w3", None]
    assert len(telemetry.events("llm_result")) == 2  # one per step: reading on records nothing more


class PeerWrapper:
    """What wrapt's FunctionWrapper does (another instrumentation's patch of ``OpenAI.request``): the
    instance is known only through ``__get__``; ``call(original, instance, args, kwargs)`` is its body."""

    def __init__(self, original, call, instance=None):
        self.original, self.call, self.instance = original, call, instance

    def __get__(self, instance, owner=None):
        return PeerWrapper(self.original, self.call, instance)

    def __call__(self, *args, **kwargs):
        return self.call(self.original, self.instance, args, kwargs)


def test_a_request_method_another_instrumentation_patched_on_the_client_class_is_still_a_step(
    telemetry, instrument, fake_api
):
    """OpenInference's and Logfire's OpenAI instrumentations patch ``OpenAI.request`` (and
    ``AsyncOpenAI.request``) on the client classes, wrapping the base class's function. Made before
    setup(), that patch shadowed agent-otel's wrapper of the base class: no step, no usage, a run of 0
    tokens. Their wrapper still runs, once, with the client as its instance (a wrapt wrapper learns it
    when bound), and the request is one step."""
    calls: list[str] = []

    def peer(original, instance, args, kwargs):
        if instance is None:  # OpenInference passes such a call through, without its span
            return original(*args, **kwargs)
        calls.append(type(instance).__name__)
        return original(instance, *args, **kwargs)

    def peer_patch(cls, original):
        cls.request = PeerWrapper(original, peer)

    base = openai._base_client
    peer_patch(openai.OpenAI, base.SyncAPIClient.request)
    peer_patch(openai.AsyncOpenAI, base.AsyncAPIClient.request)
    try:
        instrument("openai")
        fake_api.reply(Reply(completion(100, 20)), Reply(completion(10, 2)))
        with agent_otel.run("a") as run:
            client(fake_api).chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "x"}]
            )
            aclient = openai.AsyncOpenAI(base_url=fake_api.base_url + "/v1", api_key="k", max_retries=0)
            asyncio.run(
                aclient.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "y"}])
            )
        assert calls == ["OpenAI", "AsyncOpenAI"]
        assert (run.usage["llm_calls"], run.usage["input_tokens"], run.usage["output_tokens"]) == (2, 110, 22)
        assert [s.name for s in ours(telemetry.spans())].count("chat gpt-4o") == 2
    finally:
        integrations.uninstrument(["openai"])
        del openai.OpenAI.request, openai.AsyncOpenAI.request


def test_a_request_span_another_instrumentation_opens_inside_agent_otels_carries_the_usage_once(
    telemetry, instrument, fake_api
):
    """Logfire's OpenAI instrumentation, patched before setup(), opens its own request span with
    ``gen_ai.usage.*`` inside agent-otel's ``chat`` span: a backend that sums usage over every span (a
    TraceQL sum, Langfuse, Phoenix) counted the request twice. The usage is now on the library's span only;
    agent-otel's span, step, event and the run's totals keep it (one step, its usage once)."""
    from opentelemetry import trace

    tracer = trace.get_tracer("logfire")

    def traced(original, instance, args, kwargs):
        """Logfire's wrapper of ``OpenAI.request``: the request traced with the usage it returns."""
        with tracer.start_as_current_span(
            "chat gpt-4o", attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}
        ) as span:
            response = original(instance, *args, **kwargs)
            usage = getattr(response, "usage", None)
            if usage is not None:
                span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
                span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
            return response

    openai.OpenAI.request = PeerWrapper(openai._base_client.SyncAPIClient.request, traced)
    try:
        instrument("openai")
        fake_api.reply(Reply(completion(100, 20)))
        with agent_otel.run("a") as run:
            client(fake_api).chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "x"}]
            )
        spans = telemetry.spans()
        chats = by_name(spans, "chat gpt-4o")
        assert len(chats) == 2  # agent-otel's and the library's, one step
        assert sum(s.attributes.get("gen_ai.usage.input_tokens", 0) for s in chats) == 100
        assert sum(s.attributes.get("gen_ai.usage.output_tokens", 0) for s in chats) == 20
        assert {s.attributes["agent.step_id"] for s in chats} == {1}
        (own,) = ours(chats)
        assert own.attributes["agent.cost_usd"] == pytest.approx(cost(100, 20))
        assert (run.usage["llm_calls"], run.usage["input_tokens"], run.usage["output_tokens"]) == (1, 100, 20)
        (event,) = telemetry.events("llm_result")
        assert (event["usage"]["input_tokens"], event["usage"]["output_tokens"]) == (100, 20)
    finally:
        integrations.uninstrument(["openai"])
        del openai.OpenAI.request


@pytest.mark.parametrize("reports", [True, False], ids=["library-reports-usage", "library-does-not"])
def test_a_streamed_request_span_another_instrumentation_ends_after_agent_otels_carries_the_usage_once(
    telemetry, instrument, fake_api, reports
):
    """The same as above for a stream: the library's wrapper reads the stream agent-otel observes, so
    agent-otel's step ends first (the stream's last event), with the library's span still open; the library
    then sets the usage on its span as it ends. Both spans carried the usage (a backend summing usage over
    spans counted the request twice). Now agent-otel's span waits for the library's to end, and keeps the
    usage only if the library's span did not report it; the step, its event and the run's totals keep it."""
    from opentelemetry import trace

    tracer = trace.get_tracer("logfire")

    class PeerStream:
        """A Logfire-like stream wrapper (a wrapt proxy: attributes are the wrapped stream's): its span
        ends when the stream it wraps is read to its end."""

        def __init__(self, stream, span):
            object.__setattr__(self, "stream", stream)
            object.__setattr__(self, "span", span)

        def __setattr__(self, name, value):
            setattr(self.stream, name, value)

        def __iter__(self):
            usage = None
            try:
                for event in self.stream:
                    usage = event.usage or usage
                    yield event
            finally:
                if usage is not None and reports:
                    self.span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
                    self.span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
                self.span.end()

        def __getattr__(self, name):
            return getattr(self.stream, name)

    class PeerWrapper:
        def __init__(self, original, instance=None):
            self.original, self.instance = original, instance

        def __get__(self, instance, owner=None):
            return PeerWrapper(self.original, instance)

        def __call__(self, *args, **kwargs):
            span = tracer.start_span(
                "chat gpt-4o", attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}
            )
            return PeerStream(self.original(self.instance, *args, **kwargs), span)

    openai.OpenAI.request = PeerWrapper(openai._base_client.SyncAPIClient.request)
    try:
        instrument("openai")
        usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
        fake_api.reply(
            Reply(
                stream=[
                    (None, chunk({"role": "assistant", "content": "Hi"})),
                    (None, chunk({}, finish="stop")),
                    (None, chunk({}, usage=usage, choices=False)),
                    (None, "[DONE]"),
                ]
            )
        )
        with agent_otel.run("a") as run:
            stream = stream_chat(fake_api, "x")
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hi"
        chats = by_name(telemetry.spans(), "chat gpt-4o")
        assert len(chats) == 2  # agent-otel's and the library's, one step
        assert sum(s.attributes.get("gen_ai.usage.input_tokens", 0) for s in chats) == 12
        assert sum(s.attributes.get("gen_ai.usage.output_tokens", 0) for s in chats) == 5
        (own,) = ours(chats)
        (library,) = [s for s in chats if s is not own]
        assert ("gen_ai.usage.input_tokens" in own.attributes) is not reports  # on one span, whichever says
        assert own.attributes["agent.cost_usd"] == pytest.approx(cost(12, 5))
        assert own.start_time <= library.start_time and own.end_time <= library.end_time  # the step's end
        assert (run.usage["llm_calls"], run.usage["input_tokens"], run.usage["output_tokens"]) == (1, 12, 5)
        (event,) = telemetry.events("llm_result")
        assert (event["usage"]["input_tokens"], event["usage"]["output_tokens"]) == (12, 5)
    finally:
        integrations.uninstrument(["openai"])
        del openai.OpenAI.request
