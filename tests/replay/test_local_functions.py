"""Replaying runs whose model client runs the application's own functions (a tool runner): the functions
are tool steps when recorded, and in a replay they never run. The model calls run live (against the same
fake provider on 127.0.0.1); the client gets each function's recorded result, so the provider receives
exactly the requests it received when the run was recorded; a call the recording cannot serve is refused
with ``ReplayError``, which reaches the caller as itself, and the function does not run either.

Covered: ``mistralai.extra.run`` (``RunContext.register_func``), the Anthropic SDK's
``client.beta.messages.tool_runner`` with ``@beta_tool`` functions, the Claude Agent SDK's in-process MCP
tools (``create_sdk_mcp_server``), google-genai's automatic function calling."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

import agent_otel
from agent_otel.replay import ReplayError, UnrecordedToolCall
from tests.integrations.conftest import Reply

RAN: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    RAN.clear()
    yield
    RAN.clear()


def tool_rows(rig: Any, run_id: str) -> list[tuple[Any, ...]]:
    return [
        (e["tool"], e["args_sha"], e["result_sha"], e["status"], e["error"]) for e in rig.tool_events(run_id)
    ]


def bodies(fake_api: Any) -> list[str]:
    return [json.dumps(body, sort_keys=True) for _, body in fake_api.requests]


def assert_replayed(rig: Any, rp: Any, original: str, tool_calls: int) -> None:
    report = rp.report
    assert report.matched and not report.diverged, str(report)
    assert (report.recorded_tool_calls, report.served) == (tool_calls, tool_calls)
    assert report.stop_reason_then == report.stop_reason_now == "completed"
    assert tool_rows(rig, report.replay_run_id) == tool_rows(rig, original)


# --- mistralai.extra.run ------------------------------------------------------------------------------

MISTRAL_MODEL = "mistral-large-2512"


def mistral_turn(outputs: list[dict[str, Any]], usage: tuple[int, int]) -> Reply:
    return Reply(
        {
            "object": "conversation.response",
            "conversation_id": "conv_1",
            "outputs": outputs,
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
        }
    )


def mistral_call(city: str, call_id: str = "call_1") -> dict[str, Any]:
    return {
        "type": "function.call",
        "object": "entry",
        "tool_call_id": call_id,
        "name": "get_weather",
        "arguments": json.dumps({"city": city}),
        "id": f"fc_{call_id}",
    }


def mistral_answer(text: str) -> dict[str, Any]:
    return {
        "type": "message.output",
        "object": "entry",
        "role": "assistant",
        "content": text,
        "model": MISTRAL_MODEL,
        "id": "msg_1",
    }


@pytest.fixture
def mistral_agent(fake_api: Any) -> Any:
    pytest.importorskip("mistralai")
    from mistralai.client import Mistral
    from mistralai.extra.run.context import RunContext

    def get_weather(city: str) -> dict:
        """The weather in a city.

        Args:
            city: the city's name
        """
        RAN["get_weather"] += 1
        if city == "Atlantis":
            raise LookupError(f"no station in {city}")
        return {"city": city, "sky": "sunny"}

    def agent(question: str, continue_on_fn_error: bool = False) -> str:
        async def ask() -> Any:
            async with RunContext(model=MISTRAL_MODEL, continue_on_fn_error=continue_on_fn_error) as ctx:
                ctx.register_func(get_weather)
                client = Mistral(api_key="test", server_url=fake_api.base_url)
                return await client.beta.conversations.run_async(run_ctx=ctx, inputs=question)

        with agent_otel.run("mistral-weather", input=question):
            return str(asyncio.run(ask()).output_as_text)

    return agent


def test_mistral_local_functions_are_recorded_and_served_never_run(rig, instrument, fake_api, mistral_agent):
    instrument("mistral")

    def script() -> None:
        fake_api.reply(
            mistral_turn([mistral_call("Paris")], (50, 5)), mistral_turn([mistral_answer("Sunny.")], (80, 9))
        )

    script()
    assert mistral_agent("Weather in Paris?") == "Sunny."
    original = rig.last_run_id("mistral-weather")
    assert RAN["get_weather"] == 1
    ((tool, _, result_sha, status, _),) = tool_rows(rig, original)
    assert (tool, status) == ("get_weather", "ok") and result_sha
    recorded = bodies(fake_api)

    fake_api.requests.clear()
    script()
    with agent_otel.replay(original) as rp:
        assert mistral_agent(rp.input) == "Sunny."
    assert RAN["get_weather"] == 1  # the function did not run again
    assert bodies(fake_api) == recorded  # the model got the recorded result, as the SDK sent it then
    assert_replayed(rig, rp, original, 1)


def test_mistral_a_recorded_function_error_is_raised_again_without_running(
    rig, instrument, fake_api, mistral_agent
):
    instrument("mistral")

    def script() -> None:
        fake_api.reply(
            mistral_turn([mistral_call("Atlantis")], (50, 5)), mistral_turn([mistral_answer("No.")], (80, 9))
        )

    script()
    assert mistral_agent("Weather in Atlantis?", continue_on_fn_error=True) == "No."
    original = rig.last_run_id("mistral-weather")
    assert [r[3:] for r in tool_rows(rig, original)] == [("error", "LookupError")]
    recorded = bodies(fake_api)

    fake_api.requests.clear()
    script()
    with agent_otel.replay(original) as rp:
        assert mistral_agent(rp.input, continue_on_fn_error=True) == "No."
    assert RAN["get_weather"] == 1
    assert bodies(fake_api) == recorded  # "Error while executing get_weather: no station in Atlantis"
    assert rp.report.matched, str(rp.report)


@pytest.mark.parametrize("continue_on_fn_error", [False, True])
def test_mistral_a_call_the_recording_lacks_is_refused_and_never_run(
    rig, instrument, fake_api, mistral_agent, continue_on_fn_error
):
    instrument("mistral")
    fake_api.reply(
        mistral_turn([mistral_call("Paris")], (50, 5)), mistral_turn([mistral_answer("Sunny.")], (80, 9))
    )
    mistral_agent("Weather in Paris?")
    original = rig.last_run_id("mistral-weather")

    fake_api.reply(mistral_turn([mistral_call("Lyon")], (50, 5)))  # the model now asks for another city
    with pytest.raises(UnrecordedToolCall), agent_otel.replay(original, mode="lenient"):
        mistral_agent("Weather in Lyon?", continue_on_fn_error=continue_on_fn_error)
    assert RAN["get_weather"] == 1  # refused as itself, not run, not handed to the model as an error
    assert len(fake_api.requests) == 3  # no request after the refusal
