"""Amazon Bedrock through boto3: botocore's own Stubber for Converse and InvokeModel, and a fake
bedrock-runtime on 127.0.0.1 speaking the AWS event stream encoding for the two streaming operations
(the Stubber cannot return an event stream)."""

from __future__ import annotations

import gc
import io
import json

import pytest

import agent_otel
from tests.integrations import aws_eventstream as es
from tests.integrations.conftest import Reply, by_name, children, one, ours, steps, stop_event

boto3 = pytest.importorskip("boto3")
from botocore.exceptions import ClientError, EventStreamError  # noqa: E402
from botocore.response import StreamingBody  # noqa: E402
from botocore.stub import Stubber  # noqa: E402

CLAUDE = "anthropic.claude-sonnet-4-20250514-v1:0"
NOVA = "amazon.nova-lite-v1:0"
LLAMA = "meta.llama3-3-70b-instruct-v1:0"
# On-demand list prices on Bedrock, USD per 1M tokens (README, Prices), written out so the test checks the
# table: Claude Sonnet 4 input, output, cache read (0.1x), cache write (1.25x); Nova Lite; Llama 3.3 70B.
SONNET = (3.00, 15.00, 0.30, 3.75)
NOVA_LITE = (0.06, 0.24)
LLAMA_70B = (0.72, 0.72)
MESSAGES = [{"role": "user", "content": [{"text": "hi"}]}]


def bedrock(endpoint: str | None = None):
    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="test-secret",
        endpoint_url=endpoint,
        config=boto3.session.Config(retries={"max_attempts": 1}),
    )


def converse_response(
    inp: int, out: int, cache_read: int = 0, cache_write: int = 0, stop: str = "end_turn", content=None
):
    usage = {"inputTokens": inp, "outputTokens": out, "totalTokens": inp + out + cache_read + cache_write}
    if cache_read or cache_write:
        usage.update(cacheReadInputTokens=cache_read, cacheWriteInputTokens=cache_write)
    return {
        "output": {"message": {"role": "assistant", "content": content or [{"text": "hello"}]}},
        "stopReason": stop,
        "usage": usage,
        "metrics": {"latencyMs": 12},
        "ResponseMetadata": {"RequestId": "req-converse-1", "HTTPStatusCode": 200, "HTTPHeaders": {}},
    }


def invoke_response(body: dict, headers: dict | None = None, request_id: str = "req-invoke-1"):
    data = json.dumps(body).encode()
    return {
        "body": StreamingBody(io.BytesIO(data), len(data)),
        "contentType": "application/json",
        "ResponseMetadata": {"RequestId": request_id, "HTTPStatusCode": 200, "HTTPHeaders": headers or {}},
    }


def test_converse_is_a_chat_step_with_cache_priced_usage(telemetry, instrument):
    instrument("bedrock")
    client = bedrock()
    with Stubber(client) as stub:
        stub.add_response("converse", converse_response(100, 40, cache_read=800, cache_write=100))
        with agent_otel.run("bedrock-agent") as run:
            response = client.converse(
                modelId=CLAUDE,
                messages=MESSAGES,
                inferenceConfig={"maxTokens": 512, "temperature": 0.3, "topP": 0.8, "stopSequences": ["END"]},
            )
        stub.assert_no_pending_responses()
    assert response["output"]["message"]["content"][0]["text"] == "hello"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent bedrock-agent")
    chat = one(spans, f"chat {CLAUDE}")
    assert children(root, spans) == [chat]
    assert chat.kind.name == "CLIENT"
    a = chat.attributes
    assert a["gen_ai.provider.name"] == "aws.bedrock"
    assert (a["server.address"], a["server.port"]) == ("bedrock-runtime.us-east-1.amazonaws.com", 443)
    assert a["gen_ai.request.model"] == CLAUDE
    assert (a["gen_ai.request.max_tokens"], a["gen_ai.request.temperature"], a["gen_ai.request.top_p"]) == (
        512,
        0.3,
        0.8,
    )
    assert tuple(a["gen_ai.request.stop_sequences"]) == ("END",)
    assert a["gen_ai.response.id"] == "req-converse-1"
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("end_turn",)
    # Converse's inputTokens exclude the cache: all input is 100 + 800 read + 100 written.
    assert a["gen_ai.usage.input_tokens"] == 1000
    assert a["gen_ai.usage.cache_read.input_tokens"] == 800
    assert a["gen_ai.usage.cache_creation.input_tokens"] == 100
    assert a["gen_ai.usage.output_tokens"] == 40
    expected = (100 * SONNET[0] + 800 * SONNET[2] + 100 * SONNET[3] + 40 * SONNET[1]) / 1e6
    assert a["agent.cost_usd"] == pytest.approx(expected)
    assert run.result.usage["input_tokens"] == 1000 and run.cost_usd == pytest.approx(expected)
    (event,) = telemetry.events("llm_result")
    assert event["usage"]["cached_input_tokens"] == 800 and event["usage"]["cache_write_tokens"] == 100
    durations = telemetry.metrics()["gen_ai.client.operation.duration"]
    assert [
        (p["gen_ai.provider.name"], p["gen_ai.request.model"], point.count) for p, point in durations
    ] == [("aws.bedrock", CLAUDE, 1)]


def test_converse_tool_use_and_the_tool_step_that_follows(telemetry, instrument):
    instrument("bedrock")
    client = bedrock()
    tool_use = [{"toolUse": {"toolUseId": "tu-1", "name": "lookup", "input": {"q": "x"}}}]

    @agent_otel.tool(name="lookup")
    def lookup(q: str) -> str:
        return f"found {q}"

    with Stubber(client) as stub:
        stub.add_response("converse", converse_response(20, 5, stop="tool_use", content=tool_use))
        stub.add_response("converse", converse_response(30, 6))
        with agent_otel.run("bedrock-tools") as run:
            first = client.converse(modelId=NOVA, messages=MESSAGES)
            use = first["output"]["message"]["content"][0]["toolUse"]
            lookup(**use["input"])
            client.converse(modelId=NOVA, messages=MESSAGES)
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent bedrock-tools")
    assert steps(root, spans) == [(1, f"chat {NOVA}"), (2, "execute_tool lookup"), (3, f"chat {NOVA}")]
    first_chat = min(by_name(spans, f"chat {NOVA}"), key=lambda s: s.attributes["agent.step_id"])
    assert tuple(first_chat.attributes["gen_ai.response.finish_reasons"]) == ("tool_use",)
    assert run.cost_usd == pytest.approx((50 * NOVA_LITE[0] + 11 * NOVA_LITE[1]) / 1e6)


def test_invoke_model_reads_anthropic_usage_and_the_caller_still_reads_the_body(telemetry, instrument):
    instrument("bedrock")
    client = bedrock()
    body = {
        "id": "msg_bdrk_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-20250514",
        "content": [{"type": "text", "text": "hi there"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 7, "cache_read_input_tokens": 90},
    }
    with Stubber(client) as stub:
        stub.add_response("invoke_model", invoke_response(body))
        with agent_otel.run("bedrock-invoke"):
            request = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "temperature": 0.5}
            response = client.invoke_model(modelId=CLAUDE, body=json.dumps({**request, "messages": []}))
            answer = json.loads(response["body"].read())
    assert answer["content"][0]["text"] == "hi there"
    chat = one(ours(telemetry.spans()), f"chat {CLAUDE}")
    a = chat.attributes
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.cache_read.input_tokens"]) == (100, 90)
    assert a["gen_ai.usage.output_tokens"] == 7
    assert a["gen_ai.response.id"] == "msg_bdrk_1"  # the body's id, more specific than the request id
    assert a["gen_ai.response.model"] == "claude-sonnet-4-20250514"
    assert (a["gen_ai.request.max_tokens"], a["gen_ai.request.temperature"]) == (64, 0.5)
    assert a["agent.cost_usd"] == pytest.approx((10 * SONNET[0] + 90 * SONNET[2] + 7 * SONNET[1]) / 1e6)


def test_invoke_model_of_a_family_without_usage_in_the_body_uses_bedrocks_headers(telemetry, instrument):
    instrument("bedrock")
    client = bedrock()
    headers = {"x-amzn-bedrock-input-token-count": "31", "x-amzn-bedrock-output-token-count": "12"}
    with Stubber(client) as stub:
        stub.add_response(
            "invoke_model", invoke_response({"outputs": [{"text": "ok", "stop_reason": "stop"}]}, headers)
        )
        stub.add_response(
            "invoke_model",
            invoke_response(
                {
                    "generation": "ok",
                    "prompt_token_count": 8,
                    "generation_token_count": 3,
                    "stop_reason": "stop",
                }
            ),
        )
        with agent_otel.run("bedrock-headers"):
            client.invoke_model(modelId="mistral.mistral-large-2407-v1:0", body=b'{"prompt": "x"}')
            client.invoke_model(modelId=LLAMA, body=json.dumps({"prompt": "x", "max_gen_len": 32}))
    spans = ours(telemetry.spans())
    mistral = one(spans, "chat mistral.mistral-large-2407-v1:0")
    assert (
        mistral.attributes["gen_ai.usage.input_tokens"],
        mistral.attributes["gen_ai.usage.output_tokens"],
    ) == (31, 12)
    assert tuple(mistral.attributes["gen_ai.response.finish_reasons"]) == ("stop",)
    llama = one(spans, f"chat {LLAMA}")
    assert (
        llama.attributes["gen_ai.usage.input_tokens"],
        llama.attributes["gen_ai.usage.output_tokens"],
    ) == (8, 3)
    assert llama.attributes["gen_ai.request.max_tokens"] == 32
    assert llama.attributes["agent.cost_usd"] == pytest.approx((8 * LLAMA_70B[0] + 3 * LLAMA_70B[1]) / 1e6)


def test_a_body_that_breaks_off_fails_the_step_and_the_caller_reads_the_same_error(telemetry, instrument):
    from botocore.exceptions import ReadTimeoutError

    class Broken:  # a urllib3 response that times out while the body is read
        def read(self, amt=None) -> bytes:
            raise ReadTimeoutError(endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com")

    instrument("bedrock")
    client = bedrock()
    response = invoke_response({})
    response["body"] = StreamingBody(Broken(), None)
    with Stubber(client) as stub:
        stub.add_response("invoke_model", response)
        with pytest.raises(ReadTimeoutError), agent_otel.run("bedrock-cut"):
            client.invoke_model(modelId=LLAMA, body=b"{}")["body"].read()
    spans = ours(telemetry.spans())
    assert one(spans, f"chat {LLAMA}").attributes["error.type"] == "ReadTimeoutError"
    assert one(spans, "invoke_agent bedrock-cut").attributes["agent.stop_reason"] == "model_error"


def test_a_service_error_ends_the_run_with_model_error(telemetry, instrument):
    instrument("bedrock")
    client = bedrock()
    with Stubber(client) as stub:
        stub.add_client_error("converse", "ThrottlingException", "Too many requests", 429)
        with pytest.raises(ClientError), agent_otel.run("bedrock-throttled"):
            client.converse(modelId=CLAUDE, messages=MESSAGES)
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent bedrock-throttled")
    chat = one(spans, f"chat {CLAUDE}")
    assert root.attributes["agent.stop_reason"] == "model_error"
    assert stop_event(root)["agent.stop_reason"] == "model_error"
    assert chat.status.status_code.name == "ERROR"
    assert chat.attributes["error.type"] == "ThrottlingException"  # botocore's ClientError subclass


def test_a_guard_stops_the_request_before_botocore_sees_it(telemetry, instrument):
    instrument("bedrock")
    client = bedrock()
    with Stubber(client) as stub:
        stub.add_response("converse", converse_response(10, 5))
        with pytest.raises(agent_otel.AgentStopped) as stopped:
            with agent_otel.run("bedrock-steps", budget=agent_otel.Budget(max_steps=1)):
                client.converse(modelId=NOVA, messages=MESSAGES)
                client.converse(modelId=NOVA, messages=MESSAGES)
        stub.assert_no_pending_responses()  # the first request took its answer; no second one was made
    assert stopped.value.stop_reason == "max_steps"
    assert len(by_name(ours(telemetry.spans()), f"chat {NOVA}")) == 1


def test_malformed_parameters_get_botocores_own_error(telemetry, instrument, fake_api):
    from botocore.exceptions import ParamValidationError

    instrument("bedrock")
    client = bedrock(fake_api.base_url)
    with pytest.raises(ParamValidationError), agent_otel.run("bedrock-malformed"):
        client.converse(modelId=NOVA, messages=MESSAGES, inferenceConfig="fast please")
    assert fake_api.requests == []
    chat = one(ours(telemetry.spans()), f"chat {NOVA}")
    assert chat.attributes["error.type"] == "ParamValidationError"


def test_other_services_and_operations_pass_through(telemetry, instrument):
    instrument("bedrock")
    client = bedrock()
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    with Stubber(client) as stub, Stubber(s3) as s3_stub:
        stub.add_response("list_async_invokes", {"asyncInvokeSummaries": []})
        s3_stub.add_response("list_buckets", {"Buckets": []})
        with agent_otel.run("bedrock-other") as run:
            client.list_async_invokes()
            s3.list_buckets()
    assert run.result.usage["llm_calls"] == 0
    assert [s.name for s in ours(telemetry.spans())] == ["invoke_agent bedrock-other"]


# --- streams, against a fake bedrock-runtime speaking the AWS event stream encoding -------------------

EVENTSTREAM = "application/vnd.amazon.eventstream"


def converse_stream(inp: int, out: int, cache_read: int = 0, text: str = "Hi there") -> Reply:
    usage = {"inputTokens": inp, "outputTokens": out, "totalTokens": inp + out + cache_read}
    if cache_read:
        usage["cacheReadInputTokens"] = cache_read
    events = es.stream(
        es.event("messageStart", {"role": "assistant"}),
        es.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text[:3]}}),
        es.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text[3:]}}),
        es.event("contentBlockStop", {"contentBlockIndex": 0}),
        es.event("messageStop", {"stopReason": "end_turn"}),
        es.event("metadata", {"usage": usage, "metrics": {"latencyMs": 20}}),
    )
    return Reply(raw=events, content_type=EVENTSTREAM, headers={"x-amzn-requestid": "req-stream-1"})


def test_converse_stream_counts_usage_from_the_metadata_event(telemetry, instrument, fake_api):
    instrument("bedrock")
    fake_api.reply(converse_stream(50, 9, cache_read=200))
    client = bedrock(fake_api.base_url)
    with agent_otel.run("bedrock-stream") as run:
        response = client.converse_stream(modelId=CLAUDE, messages=MESSAGES)
        text = "".join(
            e["contentBlockDelta"]["delta"]["text"] for e in response["stream"] if "contentBlockDelta" in e
        )
    assert text == "Hi there"
    assert fake_api.requests[0][0] == f"/model/{CLAUDE.replace(':', '%3A')}/converse-stream"
    chat = one(ours(telemetry.spans()), f"chat {CLAUDE}")
    a = chat.attributes
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.cache_read.input_tokens"]) == (250, 200)
    assert a["gen_ai.usage.output_tokens"] == 9
    assert a["gen_ai.request.stream"] is True
    assert (a["server.address"], a["server.port"]) == ("127.0.0.1", int(fake_api.base_url.rsplit(":", 1)[1]))
    assert a["gen_ai.response.id"] == "req-stream-1"
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("end_turn",)
    assert run.result.usage["output_tokens"] == 9


def test_converse_stream_closed_or_dropped_early_ends_its_step(telemetry, instrument, fake_api):
    instrument("bedrock")
    fake_api.reply(converse_stream(5, 1), converse_stream(6, 2))
    client = bedrock(fake_api.base_url)
    with agent_otel.run("bedrock-early") as run:
        stream = client.converse_stream(modelId=NOVA, messages=MESSAGES)["stream"]
        assert "messageStart" in next(iter(stream))
        stream.close()
        dropped = client.converse_stream(modelId=NOVA, messages=MESSAGES)
        del dropped
        gc.collect()
    chats = by_name(ours(telemetry.spans()), f"chat {NOVA}")
    assert len(chats) == 2 and all(s.end_time is not None for s in chats)
    assert run.result.usage["llm_calls"] == 2


def test_an_error_event_in_the_stream_fails_the_step(telemetry, instrument, fake_api):
    instrument("bedrock")
    events = es.stream(
        es.event("messageStart", {"role": "assistant"}),
        es.exception("modelStreamErrorException", "the model broke off"),
    )
    fake_api.reply(Reply(raw=events, content_type=EVENTSTREAM))
    client = bedrock(fake_api.base_url)
    with pytest.raises(EventStreamError), agent_otel.run("bedrock-broken"):
        for _ in client.converse_stream(modelId=NOVA, messages=MESSAGES)["stream"]:
            pass
    spans = ours(telemetry.spans())
    assert one(spans, f"chat {NOVA}").status.status_code.name == "ERROR"
    assert one(spans, "invoke_agent bedrock-broken").attributes["agent.stop_reason"] == "model_error"


def test_invoke_model_with_response_stream_uses_bedrocks_invocation_metrics(telemetry, instrument, fake_api):
    instrument("bedrock")
    chunks = es.stream(
        es.chunk(
            {
                "type": "message_start",
                "message": {
                    "id": "msg_s1",
                    "model": "claude-sonnet-4-20250514",
                    "usage": {"input_tokens": 11, "cache_read_input_tokens": 100, "output_tokens": 1},
                },
            }
        ),
        es.chunk({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ok"}}),
        es.chunk(
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 4}}
        ),
        es.chunk(
            {
                "type": "message_stop",
                "amazon-bedrock-invocationMetrics": {
                    "inputTokenCount": 11,
                    "cacheReadInputTokenCount": 100,
                    "outputTokenCount": 4,
                    "invocationLatency": 90,
                    "firstByteLatency": 30,
                },
            }
        ),
    )
    fake_api.reply(Reply(raw=chunks, content_type=EVENTSTREAM))
    client = bedrock(fake_api.base_url)
    with agent_otel.run("bedrock-invoke-stream"):
        response = client.invoke_model_with_response_stream(
            modelId=CLAUDE, body=json.dumps({"max_tokens": 16, "messages": []})
        )
        kinds = [json.loads(e["chunk"]["bytes"])["type"] for e in response["body"]]
    assert kinds == ["message_start", "content_block_delta", "message_delta", "message_stop"]
    a = one(ours(telemetry.spans()), f"chat {CLAUDE}").attributes
    # Bedrock's metrics leave the cache out of inputTokenCount, as Converse does: all input is 111.
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (111, 4)
    assert a["gen_ai.usage.cache_read.input_tokens"] == 100
    assert a["gen_ai.response.id"] == "msg_s1"
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("end_turn",)
    assert a["agent.cost_usd"] == pytest.approx((11 * SONNET[0] + 100 * SONNET[2] + 4 * SONNET[1]) / 1e6)


def test_uninstrument_restores_botocore(instrument):
    from botocore.client import BaseClient
    from botocore.eventstream import EventStream

    before = (BaseClient._make_api_call, EventStream.__iter__, EventStream.close)
    instrument("bedrock")
    assert BaseClient._make_api_call is not before[0]
    from agent_otel import integrations

    integrations.uninstrument(["bedrock"])
    assert (BaseClient._make_api_call, EventStream.__iter__, EventStream.close) == before


def test_content_capture_records_converse_messages(configured, instrument):
    telemetry = configured({"logging": {"events": {"capture_content": True}}})
    instrument("bedrock")
    client = bedrock()
    tool_use = [
        {"text": "checking"},
        {"toolUse": {"toolUseId": "tu-7", "name": "lookup", "input": {"q": "x"}}},
    ]
    with Stubber(client) as stub:
        stub.add_response("converse", converse_response(5, 2, stop="tool_use", content=tool_use))
        with agent_otel.run("bedrock-content"):
            client.converse(modelId=NOVA, system=[{"text": "be brief"}], messages=MESSAGES)
    chat = one(ours(telemetry.spans()), f"chat {NOVA}")
    assert json.loads(chat.attributes["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]},
    ]
    assert json.loads(chat.attributes["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "checking"},
                {"type": "tool_call", "id": "tu-7", "name": "lookup", "arguments": {"q": "x"}},
            ],
            "finish_reason": "tool_use",
        }
    ]


def test_converse_stream_left_unfinished_ends_its_step_with_the_run(telemetry, instrument, fake_api):
    """Kept, neither closed nor read to its end: the step ended only at garbage collection, after the run.
    It ends with the run, and the stream still reads to its end."""
    instrument("bedrock")
    fake_api.reply(converse_stream(5, 1))
    client = bedrock(fake_api.base_url)
    with agent_otel.run("bedrock-kept") as run:
        stream = client.converse_stream(modelId=NOVA, messages=MESSAGES)["stream"]
        events = iter(stream)
        assert "messageStart" in next(events)
    spans = ours(telemetry.spans())
    chat = one(spans, f"chat {NOVA}")
    assert chat.end_time <= one(spans, "invoke_agent bedrock-kept").end_time
    assert chat.attributes["gen_ai.response.id"] == "req-stream-1"
    assert run.result.usage["llm_calls"] == 1
    assert "metadata" in list(events)[-1]  # the stream itself goes on
    assert len(telemetry.events("llm_result")) == 1
