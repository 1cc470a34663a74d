"""Replaying runs that call model clients (google-genai, LiteLLM, Bedrock through boto3): the model calls
run live again (against the same fake provider on 127.0.0.1), the tools are served from the recording and
never run, and the provider receives exactly the requests it received when the run was recorded."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest

import agent_otel
from tests.integrations.conftest import Reply

RAN: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    RAN.clear()
    yield
    RAN.clear()


def tool_rows(rig, run_id: str) -> list[tuple]:
    return [
        (e["tool"], e["args_sha"], e["result_sha"], e["status"], e["error"]) for e in rig.tool_events(run_id)
    ]


def assert_replayed(rig, rp, original: str, tool_calls: int) -> None:
    report = rp.report
    assert report.matched and not report.diverged, str(report)
    assert (report.recorded_tool_calls, report.served) == (tool_calls, tool_calls)
    assert report.stop_reason_then == report.stop_reason_now == "completed"
    assert tool_rows(rig, report.replay_run_id) == tool_rows(rig, original)
    llm = rig.rows(
        "SELECT COUNT(*) AS n FROM agent_events WHERE run_id = ? AND kind = 'llm_result'",
        (report.replay_run_id,),
    )
    assert llm[0]["n"] > 0  # the model calls were made (live) and recorded in the replay run too


@pytest.mark.parametrize("claimed", [False, True], ids=["functions", "agent_otel_tools"])
def test_google_genai_replay_calls_gemini_live_and_serves_the_functions(rig, instrument, fake_api, claimed):
    """Also when the functions are ``@agent_otel.tool`` functions (each claims the step of its automatic
    call: one step, served once, the function not run)."""
    genai = pytest.importorskip("google.genai")
    from google.genai import types

    instrument("google_genai")
    wrap = agent_otel.tool if claimed else (lambda fn: fn)

    @wrap
    def get_weather(city: str) -> dict:
        """The weather in a city."""
        RAN["get_weather"] += 1
        return {"city": city, "sky": "clear"}

    @wrap
    def get_alerts(city: str) -> str:
        """Weather alerts."""
        RAN["get_alerts"] += 1
        raise LookupError(f"no alert feed for {city}")

    def script() -> None:
        calls = {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                            {"functionCall": {"name": "get_alerts", "args": {"city": "Paris"}}},
                        ],
                    },
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 6, "totalTokenCount": 26},
        }
        final = {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "Clear."}]}, "finishReason": "STOP"}
            ],
            "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 2, "totalTokenCount": 42},
        }
        fake_api.reply(Reply(calls), Reply(final))

    options = types.HttpOptions(base_url=fake_api.base_url, retry_options=types.HttpRetryOptions(attempts=1))
    client = genai.Client(api_key="k", http_options=options)

    def agent(question: str) -> str:
        with agent_otel.run("gemini-weather", input=question):
            chat = client.chats.create(
                model="gemini-2.5-flash", config=types.GenerateContentConfig(tools=[get_weather, get_alerts])
            )
            return chat.send_message(question).text

    script()
    assert agent("Weather in Paris?") == "Clear."
    recorded_requests = [body for _, body in fake_api.requests]
    original = rig.last_run_id("gemini-weather")
    assert RAN == {"get_weather": 1, "get_alerts": 1}

    fake_api.requests.clear()
    script()
    with agent_otel.replay(original) as rp:
        assert agent(rp.input) == "Clear."
    assert RAN == {"get_weather": 1, "get_alerts": 1}  # no function ran during the replay
    # Gemini got the same requests: the served results and the served error, as the SDK phrased them.
    assert [body for _, body in fake_api.requests] == recorded_requests
    assert_replayed(rig, rp, original, 2)
    assert [r[3:] for r in tool_rows(rig, original)] == [("ok", None), ("error", "LookupError")]


def test_litellm_and_bedrock_replay_run_the_models_live_and_serve_the_tool(rig, instrument, fake_api):
    litellm = pytest.importorskip("litellm")
    boto3 = pytest.importorskip("boto3")
    instrument("litellm", "bedrock")

    @agent_otel.tool(name="refund", side_effects=True)
    def refund(order: str) -> str:
        RAN["refund"] += 1
        return f"refunded {order}"

    bedrock = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret",
        endpoint_url=fake_api.base_url,
    )

    def script() -> None:
        completion = {
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "A-7"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
        }
        converse = {
            "output": {"message": {"role": "assistant", "content": [{"text": "done"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 12, "outputTokens": 1, "totalTokens": 13},
            "metrics": {"latencyMs": 1},
        }
        fake_api.reply(Reply(completion), Reply(converse))

    def agent(ticket: str) -> str:
        with agent_otel.run("refund-agent", input=ticket):
            order = (
                litellm.completion(
                    model="openai/gpt-4o-mini",
                    messages=[{"role": "user", "content": ticket}],
                    api_base=fake_api.base_url,
                    api_key="k",
                )
                .choices[0]
                .message.content
            )
            outcome = refund(order)
            answer = bedrock.converse(
                modelId="amazon.nova-lite-v1:0", messages=[{"role": "user", "content": [{"text": outcome}]}]
            )
            return answer["output"]["message"]["content"][0]["text"]

    script()
    assert agent("refund my order") == "done"
    recorded_requests = [json.dumps(body, sort_keys=True) for _, body in fake_api.requests]
    original = rig.last_run_id("refund-agent")
    row = rig.run_row(original)
    assert (row["llm_calls"], row["tool_calls"], row["stop_reason"]) == (2, 1, "completed")
    assert (row["input_tokens"], row["output_tokens"]) == (21, 3)
    # gpt-4o-mini 9 in / 2 out at 0.15 / 0.60, Nova Lite 12 in / 1 out at 0.06 / 0.24, USD per 1M tokens.
    assert row["cost_usd"] == pytest.approx((9 * 0.15 + 2 * 0.60 + 12 * 0.06 + 1 * 0.24) / 1e6)
    llm_rows = rig.rows(
        "SELECT step_id, status, usage FROM agent_events"
        " WHERE run_id = ? AND kind = 'llm_result' ORDER BY step_id",
        (original,),
    )
    assert [(r["step_id"], r["status"], json.loads(r["usage"])["model"]) for r in llm_rows] == [
        (1, "ok", "gpt-4o-mini"),
        (3, "ok", "amazon.nova-lite-v1:0"),
    ]

    fake_api.requests.clear()
    script()
    with agent_otel.replay(original) as rp:
        assert agent(rp.input) == "done"
    assert RAN == {"refund": 1}
    assert [json.dumps(body, sort_keys=True) for _, body in fake_api.requests] == recorded_requests
    assert_replayed(rig, rp, original, 1)
