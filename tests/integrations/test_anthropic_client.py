"""The Anthropic Python client against a fake Messages API on 127.0.0.1."""

from __future__ import annotations

import gc

import pytest

import agent_otel
from tests.integrations.conftest import Reply, children, one, ours

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


def client(api) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=api.base_url, api_key="test-key", max_retries=0)


def test_message_is_an_llm_step_and_cached_input_counts_as_input_at_cache_prices(
    telemetry, instrument, fake_api
):
    instrument("anthropic")
    fake_api.reply(Reply(message(50, 25, cache_read=40, cache_write=10)))
    with agent_otel.run("claude-agent") as run:
        msg = client(fake_api).messages.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        )
    assert msg.content[0].text == "hello"
    assert fake_api.requests[0][0] == "/v1/messages"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent claude-agent")
    chat = one(spans, f"chat {MODEL}")
    assert children(root, spans) == [chat]
    assert chat.attributes["agent.step_id"] == 1
    assert chat.attributes["agent.run_id"] == run.run_id
    # Input tokens mean all input (OTel GenAI): 50 uncached + 40 read from and 10 written to the cache.
    assert chat.attributes["gen_ai.usage.input_tokens"] == 100
    assert chat.attributes["gen_ai.usage.cache_read.input_tokens"] == 40
    assert chat.attributes["gen_ai.usage.cache_creation.input_tokens"] == 10
    assert chat.attributes["gen_ai.usage.output_tokens"] == 25
    # 50 * 3.00 + 40 * 0.30 + 10 * 3.75 + 25 * 15.00 = 574.5 USD per 1M tokens; not 100 * 3.00 + ...
    expected = 574.5 / 1e6
    assert expected == pytest.approx(
        (50 * PRICE[0] + 40 * CACHE_READ + 10 * CACHE_WRITE + 25 * PRICE[1]) / 1e6
    )
    assert chat.attributes["agent.cost_usd"] == pytest.approx(expected)
    assert root.attributes["agent.cost_usd"] == pytest.approx(expected)
    assert root.attributes["gen_ai.usage.input_tokens"] == 100
    assert run.result.usage["llm_calls"] == 1
    (event,) = telemetry.events("llm_result")
    assert event["usage"]["input_tokens"] == 100
    assert event["usage"]["cached_input_tokens"] == 40 and event["usage"]["cache_write_tokens"] == 10


def test_uncached_message_has_no_cache_attributes(telemetry, instrument, fake_api):
    instrument("anthropic")
    fake_api.reply(Reply(message(50, 25)))
    with agent_otel.run("claude-plain"):
        client(fake_api).messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    chat = one(ours(telemetry.spans()), f"chat {MODEL}")
    assert "gen_ai.usage.cache_read.input_tokens" not in chat.attributes
    assert "gen_ai.usage.cache_creation.input_tokens" not in chat.attributes
    assert chat.attributes["agent.cost_usd"] == pytest.approx((50 * 3.00 + 25 * 15.00) / 1e6)


def test_streamed_message_counts_usage_from_start_and_delta_events(telemetry, instrument, fake_api):
    instrument("anthropic")
    fake_api.reply(Reply(stream=stream_events(42, 17)))
    with agent_otel.run("claude-stream") as run:
        stream = client(fake_api).messages.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        kinds = [event.type for event in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    chat = one(ours(telemetry.spans()), f"chat {MODEL}")
    assert chat.attributes["gen_ai.usage.input_tokens"] == 42
    assert chat.attributes["gen_ai.usage.output_tokens"] == 17
    assert run.result.usage["output_tokens"] == 17


def test_streamed_message_prices_cache_reads_from_message_start(telemetry, instrument, fake_api):
    instrument("anthropic")
    fake_api.reply(Reply(stream=stream_events(10, 20, cache_read=1000)))
    with agent_otel.run("claude-stream-cached") as run:
        stream = client(fake_api).messages.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        for _ in stream:
            pass
    chat = one(ours(telemetry.spans()), f"chat {MODEL}")
    assert chat.attributes["gen_ai.usage.input_tokens"] == 1010
    assert chat.attributes["gen_ai.usage.cache_read.input_tokens"] == 1000
    # 10 * 3.00 + 1000 * 0.30 + 20 * 15.00 = 630 USD per 1M tokens (1010 * 3.00 + ... would be 3330).
    assert chat.attributes["agent.cost_usd"] == pytest.approx(630 / 1e6)
    assert run.cost_usd == pytest.approx(630 / 1e6)


async def test_async_stream_helper(telemetry, instrument, fake_api):
    instrument("anthropic")
    fake_api.reply(Reply(stream=stream_events(8, 3)))
    aclient = anthropic.AsyncAnthropic(base_url=fake_api.base_url, api_key="k", max_retries=0)
    async with (
        agent_otel.run("claude-async") as run,
        aclient.messages.stream(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        text = await stream.get_final_text()
    assert text == "Hi there"
    chat = one(ours(telemetry.spans()), f"chat {MODEL}")
    assert chat.attributes["gen_ai.usage.input_tokens"] == 8
    assert chat.attributes["gen_ai.usage.output_tokens"] == 3
    assert run.result.stop_reason == "completed"


def test_stream_closed_early_still_ends_the_step(telemetry, instrument, fake_api):
    instrument("anthropic")
    fake_api.reply(Reply(stream=stream_events(5, 9)))
    with agent_otel.run("claude-early") as run:
        stream = client(fake_api).messages.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        first = next(iter(stream))
        stream.close()
    assert first.type == "message_start"
    chat = one(ours(telemetry.spans()), f"chat {MODEL}")
    assert chat.end_time is not None
    assert chat.attributes["gen_ai.usage.input_tokens"] == 5
    assert run.result.usage["llm_calls"] == 1


def test_error_ends_the_run_with_model_error(telemetry, instrument, fake_api):
    instrument("anthropic")
    fake_api.reply(
        Reply({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, status=529)
    )
    with pytest.raises(anthropic.APIStatusError), agent_otel.run("claude-fail"):
        client(fake_api).messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    spans = ours(telemetry.spans())
    assert one(spans, "invoke_agent claude-fail").attributes["agent.stop_reason"] == "model_error"
    assert one(spans, f"chat {MODEL}").status.status_code.name == "ERROR"


def test_stream_dropped_unread_still_ends_the_step(telemetry, instrument, fake_api):
    instrument("anthropic")
    fake_api.reply(Reply(stream=stream_events(5, 9)))
    with agent_otel.run("claude-dropped") as run:
        stream = client(fake_api).messages.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        del stream
        gc.collect()
    chat = one(ours(telemetry.spans()), f"chat {MODEL}")
    assert chat.end_time is not None
    assert chat.attributes["gen_ai.usage.input_tokens"] == 0
    assert run.result.usage["llm_calls"] == 1


def test_beta_messages_api(telemetry, instrument, fake_api):
    instrument("anthropic")
    fake_api.reply(Reply(message(7, 2)))
    with agent_otel.run("claude-beta") as run:
        client(fake_api).beta.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert fake_api.requests[0][0] == "/v1/messages"  # the beta API uses the same path (and a header)
    chat = one(ours(telemetry.spans()), f"chat {MODEL}")
    assert chat.attributes["gen_ai.usage.input_tokens"] == 7
    assert run.result.usage["llm_calls"] == 1
