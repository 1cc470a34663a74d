"""The Anthropic Python client against a fake Messages API on 127.0.0.1.

anthropic 2.x traces every API call itself (an ``anthropic.messages.create`` CLIENT span with
``gen_ai.usage.*``). Each test runs twice: with the client's own tracing on (its default), where that span
is the step's span and agent-otel adds none, and with it off (``open_telemetry=False``), where the step's
span is agent-otel's ``chat`` span. Either way a request's usage is on exactly one span.
"""

from __future__ import annotations

import gc
from typing import Any

import pytest

import agent_otel
from tests.integrations.conftest import Reply, children, one, ours, request_span, usage_spans

anthropic = pytest.importorskip("anthropic")

MODEL = "claude-sonnet-4-20250514"
# claude-sonnet-4 list prices, USD per 1M tokens: input, output, cache read (0.1x), 5-minute cache
# write (1.25x). Written out rather than read from agent_otel.pricing so that the test checks the table.
PRICE = (3.00, 15.00)
CACHE_READ, CACHE_WRITE = 0.30, 3.75


def message(input_tokens: int, output_tokens: int, cache_read: int = 0, cache_write: int = 0) -> dict:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": "hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_input_tokens": cache_read,
            "cache_creation_input_tokens": cache_write,
        },
    }


def stream_events(
    input_tokens: int, output_tokens: int, cache_read: int = 0, cache_write: int = 0
) -> list[tuple[str, dict]]:
    start = message(input_tokens, 1, cache_read, cache_write)
    start["content"] = []
    start["stop_reason"] = None
    return [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi there"}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


NATIVE_SPAN = "anthropic.messages.create"


@pytest.fixture(params=["native", "off"])
def tracing(request) -> str:
    """The client's own tracing: on (anthropic's default) or off."""
    return request.param


@pytest.fixture
def client(tracing):
    def make(api, cls=anthropic.Anthropic):
        options = {} if tracing == "native" else {"open_telemetry": False}
        return cls(base_url=api.base_url, api_key="test-key", max_retries=0, **options)

    return make


def chat_span(telemetry, tracing, run_id: str):
    """The request's one span (the client's own, or agent-otel's), and that no other span has its usage."""
    spans = telemetry.spans()
    span = request_span(spans, run_id)
    assert span.name == (NATIVE_SPAN if tracing == "native" else f"chat {MODEL}")
    assert usage_spans(spans) == [span]
    return span


def test_message_is_an_llm_step_and_cached_input_counts_as_input_at_cache_prices(
    telemetry, instrument, fake_api, client, tracing
):
    instrument("anthropic")
    fake_api.reply(Reply(message(50, 25, cache_read=40, cache_write=10)))
    with agent_otel.run("claude-agent") as run:
        msg = client(fake_api).messages.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        )
    assert msg.content[0].text == "hello"
    assert fake_api.requests[0][0] == "/v1/messages"
    spans = telemetry.spans()
    root = one(ours(spans), "invoke_agent claude-agent")
    chat = chat_span(telemetry, tracing, run.run_id)
    assert children(root, spans) == [chat]
    assert chat.kind.name == "CLIENT"
    assert chat.attributes["gen_ai.provider.name"] == "anthropic"
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.request.max_tokens"] == 100
    assert chat.attributes["gen_ai.response.id"] == "msg_1"
    assert chat.attributes["gen_ai.response.model"] == MODEL
    assert chat.attributes["gen_ai.agent.name"] == "claude-agent"
    assert chat.attributes["agent.step_id"] == 1
    assert chat.attributes["agent.run_id"] == run.run_id
    # Input tokens mean all input (OTel GenAI): 50 uncached + 40 read from and 10 written to the cache.
    assert chat.attributes["gen_ai.usage.input_tokens"] == 100
    assert chat.attributes["gen_ai.usage.cache_read.input_tokens"] == 40
    if tracing == "off":  # anthropic names cache writes gen_ai.usage.cache_write.input_tokens
        assert chat.attributes["gen_ai.usage.cache_creation.input_tokens"] == 10
        assert chat.attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert chat.attributes["gen_ai.usage.output_tokens"] == 25
    # 50 * 3.00 + 40 * 0.30 + 10 * 3.75 + 25 * 15.00 = 574.5 USD per 1M tokens; not 100 * 3.00 + ...
    expected = 574.5 / 1e6
    assert expected == pytest.approx(
        (50 * PRICE[0] + 40 * CACHE_READ + 10 * CACHE_WRITE + 25 * PRICE[1]) / 1e6
    )
    if tracing == "off":  # the client's span ended before the response reached agent-otel
        assert chat.attributes["agent.cost_usd"] == pytest.approx(expected)
    assert root.attributes["agent.cost_usd"] == pytest.approx(expected)
    # The run's totals are agent.usage.*: gen_ai.usage.* is on the request's span only.
    assert root.attributes["agent.usage.input_tokens"] == 100
    assert root.attributes["agent.usage.output_tokens"] == 25
    assert "gen_ai.usage.input_tokens" not in root.attributes
    assert root.attributes["gen_ai.provider.name"] == "anthropic"
    assert run.result.usage["llm_calls"] == 1
    (event,) = telemetry.events("llm_result")
    assert event["span_id"] == format(chat.context.span_id, "016x")
    assert event["usage"]["cost_usd"] == pytest.approx(expected)
    assert event["usage"]["input_tokens"] == 100
    assert event["usage"]["cached_input_tokens"] == 40 and event["usage"]["cache_write_tokens"] == 10


def test_uncached_message_has_no_cache_attributes(telemetry, instrument, fake_api, client, tracing):
    instrument("anthropic")
    fake_api.reply(Reply(message(50, 25)))
    with agent_otel.run("claude-plain") as run:
        client(fake_api).messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    chat = chat_span(telemetry, tracing, run.run_id)
    if tracing == "off":  # anthropic sets its cache counts even when they are zero
        assert "gen_ai.usage.cache_read.input_tokens" not in chat.attributes
        assert "gen_ai.usage.cache_creation.input_tokens" not in chat.attributes
    assert run.cost_usd == pytest.approx((50 * 3.00 + 25 * 15.00) / 1e6)


def test_streamed_message_counts_usage_from_start_and_delta_events(
    telemetry, instrument, fake_api, client, tracing
):
    instrument("anthropic")
    fake_api.reply(Reply(stream=stream_events(42, 17)))
    with agent_otel.run("claude-stream") as run:
        stream = client(fake_api).messages.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        kinds = [event.type for event in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    chat = chat_span(telemetry, tracing, run.run_id)
    assert chat.attributes["gen_ai.request.stream"] is True
    assert chat.attributes["gen_ai.usage.input_tokens"] == 42
    assert chat.attributes["gen_ai.usage.output_tokens"] == 17
    assert run.result.usage["output_tokens"] == 17


def test_streamed_message_prices_cache_reads_from_message_start(
    telemetry, instrument, fake_api, client, tracing
):
    instrument("anthropic")
    fake_api.reply(Reply(stream=stream_events(10, 20, cache_read=1000)))
    with agent_otel.run("claude-stream-cached") as run:
        stream = client(fake_api).messages.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        for _ in stream:
            pass
    chat = chat_span(telemetry, tracing, run.run_id)
    assert chat.attributes["gen_ai.usage.input_tokens"] == 1010
    assert chat.attributes["gen_ai.usage.cache_read.input_tokens"] == 1000
    assert chat.attributes["gen_ai.response.id"] == "msg_1"
    # 10 * 3.00 + 1000 * 0.30 + 20 * 15.00 = 630 USD per 1M tokens (1010 * 3.00 + ... would be 3330).
    if tracing == "off":
        assert chat.attributes["agent.cost_usd"] == pytest.approx(630 / 1e6)
        assert chat.attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert run.cost_usd == pytest.approx(630 / 1e6)


async def test_async_stream_helper(telemetry, instrument, fake_api, client, tracing):
    instrument("anthropic")
    fake_api.reply(Reply(stream=stream_events(8, 3)))
    aclient = client(fake_api, anthropic.AsyncAnthropic)
    async with (
        agent_otel.run("claude-async") as run,
        aclient.messages.stream(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        text = await stream.get_final_text()
    assert text == "Hi there"
    chat = chat_span(telemetry, tracing, run.run_id)
    assert chat.attributes["gen_ai.usage.input_tokens"] == 8
    assert chat.attributes["gen_ai.usage.output_tokens"] == 3
    assert run.result.stop_reason == "completed"


def test_stream_closed_early_still_ends_the_step(telemetry, instrument, fake_api, client, tracing):
    instrument("anthropic")
    fake_api.reply(Reply(stream=stream_events(5, 9)))
    with agent_otel.run("claude-early") as run:
        stream = client(fake_api).messages.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        first = next(iter(stream))
        stream.close()
    assert first.type == "message_start"
    chat = chat_span(telemetry, tracing, run.run_id)
    assert chat.end_time is not None
    assert chat.attributes["gen_ai.usage.input_tokens"] == 5
    assert run.result.usage["llm_calls"] == 1


def test_error_ends_the_run_with_model_error(telemetry, instrument, fake_api, client, tracing):
    instrument("anthropic")
    fake_api.reply(
        Reply({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, status=529)
    )
    with pytest.raises(anthropic.APIStatusError), agent_otel.run("claude-fail") as run:
        client(fake_api).messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    spans = telemetry.spans()
    assert one(ours(spans), "invoke_agent claude-fail").attributes["agent.stop_reason"] == "model_error"
    chat = request_span(spans, run.run_id)
    assert chat.status.status_code.name == "ERROR"
    assert chat.attributes["error.type"]


def test_stream_dropped_unread_still_ends_the_step(telemetry, instrument, fake_api, client, tracing):
    instrument("anthropic")
    fake_api.reply(Reply(stream=stream_events(5, 9)))
    with agent_otel.run("claude-dropped") as run:
        stream = client(fake_api).messages.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        del stream
        gc.collect()
    spans = telemetry.spans()
    chat = request_span(spans, run.run_id)
    assert chat.end_time is not None
    assert run.result.usage["llm_calls"] == 1 and run.result.usage["input_tokens"] == 0


def test_beta_messages_api(telemetry, instrument, fake_api, client, tracing):
    instrument("anthropic")
    fake_api.reply(Reply(message(7, 2)))
    with agent_otel.run("claude-beta") as run:
        client(fake_api).beta.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert fake_api.requests[0][0] == "/v1/messages"  # the beta API uses the same path (and a header)
    chat = request_span(telemetry.spans(), run.run_id)
    assert chat.attributes["gen_ai.usage.input_tokens"] == 7
    assert run.result.usage["llm_calls"] == 1


def test_stream_helper_left_early_ends_the_step_when_its_block_ends(
    telemetry, instrument, fake_api, client, tracing
):
    # messages.stream()'s `with` closes the HTTP response, not the stream it reads: the step still ends
    # there, inside the run, with the usage message_start reported.
    instrument("anthropic")
    fake_api.reply(Reply(stream=stream_events(5, 9)))
    with agent_otel.run("claude-skim") as run:
        with client(fake_api).messages.stream(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            first = next(iter(stream))
    assert first.type == "message_start"
    chat = chat_span(telemetry, tracing, run.run_id)
    root = one(ours(telemetry.spans()), "invoke_agent claude-skim")
    assert chat.end_time <= root.end_time
    assert chat.attributes["gen_ai.usage.input_tokens"] == 5
    assert run.result.usage["llm_calls"] == 1 and run.result.usage["input_tokens"] == 5
    assert stream is not None  # still referenced: nothing was garbage collected


def test_a_stream_left_unfinished_ends_its_step_with_the_run(
    telemetry, instrument, fake_api, client, tracing
):
    """Kept, neither closed nor read to its end: the step ended only at garbage collection, after the run.
    It ends with the run (with the usage seen so far), and the stream still reads to its end."""
    instrument("anthropic")
    fake_api.reply(Reply(stream=stream_events(5, 9)))
    with agent_otel.run("claude-kept") as run:
        stream = client(fake_api).messages.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert next(iter(stream)).type == "message_start"
    assert run.result.usage["llm_calls"] == 1 and run.result.usage["input_tokens"] == 5
    assert len(telemetry.events("llm_result")) == 1
    if tracing != "native":  # the client's own span is the client's to end: when the stream ends (below)
        chat = chat_span(telemetry, tracing, run.run_id)
        assert chat.end_time <= one(ours(telemetry.spans()), "invoke_agent claude-kept").end_time
    assert [event.type for event in stream][-1] == "message_stop"  # the stream itself goes on
    chat = chat_span(telemetry, tracing, run.run_id)
    assert chat.attributes["gen_ai.usage.input_tokens"] == 5
    assert len(telemetry.events("llm_result")) == 1


def tool_runner_reply(content: list[dict], stop_reason: str, msg_id: str) -> dict:
    body = message(30, 7)
    body.update(id=msg_id, content=content, stop_reason=stop_reason)
    return body


def test_a_tool_runner_function_is_a_tool_step_and_a_guard_stops_it_before_it_runs(
    guarded, instrument, fake_api, client, tracing
):
    """The tool runner runs ``@beta_tool`` functions itself: each call is a tool step begun before the
    function runs, so a denied one does not run and the stop leaves the runner (nothing more is sent)."""
    from anthropic import beta_tool

    ran: list[str] = []

    @beta_tool
    def lookup(city: str) -> str:
        """Look a city up.

        Args:
            city: the city's name
        """
        ran.append(city)
        return f"found {city}"

    @beta_tool
    def delete_city(city: str) -> str:
        """Delete a city.

        Args:
            city: the city's name
        """
        ran.append(f"deleted {city}")
        return "deleted"

    telemetry = guarded({"policy": {"deny": {"*": ["delete_city"]}}})
    instrument("anthropic")

    def use(name: str, tool_id: str) -> Reply:
        block = {"type": "tool_use", "id": tool_id, "name": name, "input": {"city": "Paris"}}
        return Reply(tool_runner_reply([block], "tool_use", f"msg_{tool_id}"))

    fake_api.reply(use("lookup", "toolu_1"), use("delete_city", "toolu_2"))
    with pytest.raises(agent_otel.AgentStopped) as stopped, agent_otel.run("claude-tools") as run:
        runner = client(fake_api).beta.messages.tool_runner(
            model=MODEL,
            max_tokens=100,
            messages=[{"role": "user", "content": "Paris"}],
            tools=[lookup, delete_city],
        )
        runner.until_done()
    assert stopped.value.stop_reason == "policy_denied"
    assert ran == ["Paris"]  # the denied function never ran
    assert len(fake_api.requests) == 2  # nothing was sent after the stop
    (event,) = telemetry.events("tool_result")
    assert (event["tool"], event["status"], event["step_id"]) == ("lookup", "ok", 2)
    assert event["args_sha"] is not None and event["result_sha"] is not None
    spans = telemetry.spans()
    tool_spans = [s for s in spans if s.attributes.get("agent.step_id") == 2]
    assert len(tool_spans) == 1  # one span for the call: the client's own when its tracing is on
    assert tool_spans[0].attributes["gen_ai.tool.call.id"] == "toolu_1"
    assert run.result.usage["tool_calls"] == 1


def test_a_tool_runner_closed_before_its_last_answer_is_cancelled(telemetry, instrument, fake_api):
    """Outside a run of yours the runner's own span is the run. The SDK ends it unset when the runner is
    closed (``close()``, or collected after its consumer left the loop), which read ``completed`` though
    the model's tool call never ran; now ``cancelled``. A consumer that stops at the final answer (the
    runner closed after it) completes."""
    from anthropic import beta_tool

    ran: list[str] = []

    @beta_tool
    def lookup(city: str) -> str:
        """Look a city up.

        Args:
            city: the city's name
        """
        ran.append(city)
        return f"found {city}"

    def use(tool_id: str) -> Reply:
        block = {"type": "tool_use", "id": tool_id, "name": "lookup", "input": {"city": "Paris"}}
        return Reply(tool_runner_reply([block], "tool_use", f"msg_{tool_id}"))

    final = Reply(tool_runner_reply([{"type": "text", "text": "done"}], "end_turn", "msg_final"))
    instrument("anthropic")
    api = anthropic.Anthropic(base_url=fake_api.base_url, api_key="test-key", max_retries=0)

    def runner() -> Any:
        return api.beta.messages.tool_runner(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Paris"}], tools=[lookup]
        )

    fake_api.reply(use("toolu_1"))
    closed = runner()
    assert next(iter(closed)).stop_reason == "tool_use"
    closed.close()

    fake_api.reply(use("toolu_2"))
    left = runner()
    for _ in left:
        break  # the consumer leaves the loop and drops the runner
    del left
    gc.collect()

    fake_api.reply(use("toolu_3"), final)
    finished = runner()
    for message in finished:
        if message.stop_reason == "end_turn":
            break
    finished.close()
    assert ran == ["Paris"]  # only the finished runner's call ran

    runs = sorted(
        (s for s in telemetry.spans() if s.name == "anthropic.messages.tool_runner"),
        key=lambda s: s.start_time,
    )
    assert [r.attributes["agent.stop_reason"] for r in runs] == ["cancelled", "cancelled", "completed"]
    assert [e["stop_reason"] for e in telemetry.events("stop")] == ["cancelled", "cancelled", "completed"]


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_streamed_tool_runner_closed_at_its_final_answer_completed(
    telemetry, instrument, fake_api, flavour
):
    """``tool_runner(stream=True)`` hands out each reply as a stream. A consumer that reads the final
    reply to its end and stops there (the runner closed after it) read ``cancelled``, as if the agent had
    not answered: the runner's item, a stream, has no stop reason of its own. Now its answer is what the
    consumer read of the stream: ``completed`` there, ``cancelled`` for a runner closed in the middle of a
    reply (its stop reason not read yet, here the model's tool call: the tool never ran)."""
    import asyncio

    from anthropic import beta_async_tool, beta_tool

    from tests.replay.test_local_functions import claude_stream

    ran: list[str] = []

    @beta_tool
    def lookup(city: str) -> str:
        """Look a city up.

        Args:
            city: the city's name
        """
        ran.append(city)
        return f"found {city}"

    @beta_async_tool(name="lookup")
    async def alookup(city: str) -> str:
        """Look a city up.

        Args:
            city: the city's name
        """
        ran.append(city)
        return f"found {city}"

    def use(tool_id: str) -> Reply:
        block = {"type": "tool_use", "id": tool_id, "name": "lookup", "input": {"city": "Paris"}}
        return claude_stream(Reply(tool_runner_reply([block], "tool_use", f"msg_{tool_id}")))

    final = claude_stream(Reply(tool_runner_reply([{"type": "text", "text": "done"}], "end_turn", "msg_2")))
    instrument("anthropic")
    params: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Paris"}],
        "stream": True,
    }
    if flavour == "sync":
        api = anthropic.Anthropic(base_url=fake_api.base_url, api_key="test-key", max_retries=0)
        fake_api.reply(use("toolu_1"), final)
        finished = api.beta.messages.tool_runner(tools=[lookup], **params)
        for reply in finished:
            if reply.get_final_message().stop_reason == "end_turn":
                break
        finished.close()
        fake_api.reply(use("toolu_2"))
        cut = api.beta.messages.tool_runner(tools=[lookup], **params)
        for reply in cut:
            next(iter(reply))  # message_start only: the reply has no stop reason yet
            break
        cut.close()
    else:

        async def consume() -> None:
            api = anthropic.AsyncAnthropic(base_url=fake_api.base_url, api_key="test-key", max_retries=0)
            fake_api.reply(use("toolu_1"), final)
            finished = api.beta.messages.tool_runner(tools=[alookup], **params)
            async for reply in finished:
                if (await reply.get_final_message()).stop_reason == "end_turn":
                    break
            await finished.close()
            fake_api.reply(use("toolu_2"))
            cut = api.beta.messages.tool_runner(tools=[alookup], **params)
            async for reply in cut:
                await reply.__aiter__().__anext__()
                break
            await cut.close()

        asyncio.run(consume())
    assert ran == ["Paris"]  # the finished runner's call; the cut one's never ran
    runs = sorted(
        (s for s in telemetry.spans() if s.name == "anthropic.messages.tool_runner"),
        key=lambda s: s.start_time,
    )
    assert [r.attributes["agent.stop_reason"] for r in runs] == ["completed", "cancelled"]
    assert [e["stop_reason"] for e in telemetry.events("stop")] == ["completed", "cancelled"]
