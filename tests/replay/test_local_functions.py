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


# --- the Anthropic SDK's tool runner ------------------------------------------------------------------

CLAUDE = "claude-sonnet-4-20250514"


def claude_message(content: list[dict[str, Any]], stop_reason: str, msg_id: str) -> Reply:
    return Reply(
        {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": CLAUDE,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 30, "output_tokens": 7},
        }
    )


def claude_tool_use(city: str, name: str = "get_weather", tool_id: str = "toolu_1") -> Reply:
    block = {"type": "tool_use", "id": tool_id, "name": name, "input": {"city": city}}
    return claude_message([block], "tool_use", "msg_1")


def claude_answer(text: str = "Sunny.") -> Reply:
    return claude_message([{"type": "text", "text": text}], "end_turn", "msg_2")


def claude_stream(reply: Reply) -> Reply:
    """The same message as server-sent events (what ``tool_runner(stream=True)`` reads)."""
    body = dict(reply.body)
    content = body.pop("content")
    start = {**body, "content": [], "stop_reason": None}
    events: list[tuple[str | None, Any]] = [("message_start", {"type": "message_start", "message": start})]
    for i, block in enumerate(content):
        if block["type"] == "text":
            events += [
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": i,
                        "content_block": {"type": "text", "text": ""},
                    },
                ),
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {"type": "text_delta", "text": block["text"]},
                    },
                ),
            ]
        else:
            events += [
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": i, "content_block": {**block, "input": {}}},
                ),
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])},
                    },
                ),
            ]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    events += [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": body["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": 7},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return Reply(stream=events)


@pytest.fixture(params=["native", "off"])
def claude_tracing(request: pytest.FixtureRequest) -> str:
    """The Anthropic client's own tracing (its ``anthropic.custom_tool_use`` spans): on, or off."""
    return str(request.param)


@pytest.fixture
def claude_agent(fake_api: Any, claude_tracing: str) -> Any:
    anthropic = pytest.importorskip("anthropic")
    from anthropic import beta_async_tool, beta_tool

    def weather(city: str) -> str:
        RAN["get_weather"] += 1
        if city == "Atlantis":
            raise LookupError(f"no station in {city}")
        return f"sunny in {city}"

    @beta_tool
    def get_weather(city: str) -> str:
        """The weather in a city.

        Args:
            city: the city's name
        """
        return weather(city)

    @beta_async_tool(name="get_weather")
    async def get_weather_async(city: str) -> str:
        """The weather in a city.

        Args:
            city: the city's name
        """
        return weather(city)

    options = {} if claude_tracing == "native" else {"open_telemetry": False}

    def agent(question: str, flavour: str = "sync") -> str:
        messages = [{"role": "user", "content": question}]
        with agent_otel.run("claude-weather", input=question):
            if flavour == "async":

                async def ask() -> Any:
                    client = anthropic.AsyncAnthropic(
                        base_url=fake_api.base_url, api_key="k", max_retries=0, **options
                    )
                    runner = client.beta.messages.tool_runner(
                        model=CLAUDE, max_tokens=100, messages=messages, tools=[get_weather_async]
                    )
                    return await runner.until_done()

                final = asyncio.run(ask())
            else:
                client = anthropic.Anthropic(
                    base_url=fake_api.base_url, api_key="k", max_retries=0, **options
                )
                runner = client.beta.messages.tool_runner(
                    model=CLAUDE,
                    max_tokens=100,
                    messages=messages,
                    tools=[get_weather],
                    **({"stream": True} if flavour.startswith("stream") else {}),
                    **({"run_tools_eagerly": True} if flavour == "stream-eager" else {}),
                )
                final = runner.until_done()
            return str(final.content[0].text)

    return agent


@pytest.mark.parametrize("flavour", ["sync", "async", "stream", "stream-eager"])
def test_anthropic_tool_runner_functions_are_recorded_and_served_never_run(
    rig, instrument, fake_api, claude_agent, flavour
):
    instrument("anthropic")
    wrap = claude_stream if flavour.startswith("stream") else (lambda r: r)

    def script(city: str = "Paris") -> None:
        fake_api.reply(wrap(claude_tool_use(city)), wrap(claude_answer()))

    script()
    assert claude_agent("Weather in Paris?", flavour) == "Sunny."
    original = rig.last_run_id("claude-weather")
    assert RAN["get_weather"] == 1
    ((tool, _, result_sha, status, _),) = tool_rows(rig, original)
    assert (tool, status) == ("get_weather", "ok") and result_sha
    row = rig.run_row(original)
    assert (row["llm_calls"], row["tool_calls"]) == (2, 1)
    recorded = bodies(fake_api)
    assert "sunny in Paris" in recorded[1]

    fake_api.requests.clear()
    script()
    with agent_otel.replay(original) as rp:
        assert claude_agent(rp.input, flavour) == "Sunny."
    assert RAN["get_weather"] == 1  # not run again
    assert bodies(fake_api) == recorded  # the model got the recorded result
    assert_replayed(rig, rp, original, 1)


def test_anthropic_tool_runner_a_recorded_error_is_the_same_tool_error_without_running(
    rig, instrument, fake_api, claude_agent
):
    instrument("anthropic")

    def script() -> None:
        fake_api.reply(claude_tool_use("Atlantis"), claude_answer("No."))

    script()
    assert claude_agent("Weather in Atlantis?") == "No."
    original = rig.last_run_id("claude-weather")
    assert [r[3:] for r in tool_rows(rig, original)] == [("error", "LookupError")]
    recorded = bodies(fake_api)
    assert "LookupError" in recorded[1]  # the runner's error text for the model

    fake_api.requests.clear()
    script()
    with agent_otel.replay(original) as rp:
        assert claude_agent(rp.input) == "No."
    assert RAN["get_weather"] == 1
    assert bodies(fake_api) == recorded
    assert rp.report.matched, str(rp.report)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_anthropic_tool_runner_a_call_the_recording_lacks_is_refused_and_never_run(
    rig, instrument, fake_api, claude_agent, flavour
):
    instrument("anthropic")
    fake_api.reply(claude_tool_use("Paris"), claude_answer())
    claude_agent("Weather in Paris?", flavour)
    original = rig.last_run_id("claude-weather")

    fake_api.reply(claude_tool_use("Lyon"))
    with pytest.raises(UnrecordedToolCall), agent_otel.replay(original, mode="lenient"):
        claude_agent("Weather in Lyon?", flavour)
    assert RAN["get_weather"] == 1  # refused as itself: not run, not sent to the model as a tool error
    assert len(fake_api.requests) == 3


def claude_navigate() -> Reply:
    """The model's call of the browser toolset's ``navigate`` member."""
    block = {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "navigate",
        "input": {"url": "https://example.com"},
        "toolset_name": "browser",
    }
    return claude_message([block], "tool_use", "msg_1")


def browser_toolset() -> Any:
    """A toolset (the SDK's class) of one member, ``navigate``, whose calls RAN counts."""
    from anthropic.lib.tools._toolsets._runnable import BetaRunnableToolset

    class Browser(BetaRunnableToolset):
        toolset_name = "browser"  # type: ignore[assignment]

        def to_dict(self) -> Any:
            return {"type": "browser_toolset_20260801"}

        def call(self, context: Any, name: str, input: Any) -> str:
            RAN[name] += 1
            return f"opened {input['url']}"

    return Browser()


def test_anthropic_tool_runner_toolset_members_are_recorded_and_served_never_run(
    rig, instrument, fake_api, claude_tracing
):
    anthropic = pytest.importorskip("anthropic")
    instrument("anthropic")
    options = {} if claude_tracing == "native" else {"open_telemetry": False}

    def agent(question: str) -> str:
        with agent_otel.run("claude-browser", input=question):
            client = anthropic.Anthropic(base_url=fake_api.base_url, api_key="k", max_retries=0, **options)
            runner = client.beta.messages.tool_runner(
                model=CLAUDE,
                max_tokens=100,
                messages=[{"role": "user", "content": question}],
                tools=[browser_toolset()],
            )
            return str(runner.until_done().content[0].text)

    def script() -> None:
        fake_api.reply(claude_navigate(), claude_answer("Opened."))

    script()
    assert agent("Open example.com") == "Opened."
    original = rig.last_run_id("claude-browser")
    assert RAN["navigate"] == 1
    ((tool, _, result_sha, status, _),) = tool_rows(rig, original)
    assert (tool, status) == ("navigate", "ok") and result_sha
    recorded = bodies(fake_api)
    assert "opened https://example.com" in recorded[1]

    fake_api.requests.clear()
    script()
    with agent_otel.replay(original) as rp:
        assert agent(rp.input) == "Opened."
    assert RAN["navigate"] == 1
    assert bodies(fake_api) == recorded
    assert_replayed(rig, rp, original, 1)


# --- the Claude Agent SDK's in-process MCP tools --------------------------------------------------------


@pytest.fixture
def claude_sdk_agent(tmp_path: Any) -> Any:
    pytest.importorskip("claude_agent_sdk")
    from claude_agent_sdk import create_sdk_mcp_server, query, tool

    from tests.integrations.test_claude_agent_sdk import CLI, final_turn, tool_turn

    @tool("get_weather", "The weather in a city", {"city": str})
    async def get_weather(args: dict[str, Any]) -> dict[str, Any]:
        RAN["get_weather"] += 1
        city = args["city"]
        if city == "Atlantis":
            return {"content": [{"type": "text", "text": f"no station in {city}"}], "is_error": True}
        return {"content": [{"type": "text", "text": f"sunny in {city}"}]}

    server = create_sdk_mcp_server("weather", tools=[get_weather])
    cli = CLI(tmp_path)

    def agent(prompt: str, city: str = "Paris", **tool: Any) -> list[Any]:
        use = tool_turn("mcp__weather__get_weather", {"city": city}, "", sdk="weather", **tool)
        options = cli.options({"turns": [use, final_turn()]}, mcp_servers={"weather": server})

        async def ask() -> list[Any]:
            return [message async for message in query(prompt=prompt, options=options)]

        with agent_otel.run("claude-sdk-weather", input=prompt):
            return asyncio.run(ask())

    agent.cli = cli  # type: ignore[attr-defined]
    return agent


def sdk_tool_rows(rig: Any, run_id: str) -> list[tuple[Any, ...]]:
    """The run's Claude tool uses. (The MCP server's own ``tools/call`` span, which the bridge makes a
    step without arguments of, is left out: it has no snapshot, and a replay does not call the server.)"""
    return [row for row in tool_rows(rig, run_id) if row[0].startswith("mcp__")]


def tool_results(messages: list[Any]) -> list[tuple[Any, Any]]:
    """(content, is_error) of each tool result the CLI handed back to the model."""
    return [
        (block.content, block.is_error)
        for message in messages
        if type(message).__name__ == "UserMessage" and isinstance(message.content, list)
        for block in message.content
        if type(block).__name__ == "ToolResultBlock"
    ]


@pytest.mark.parametrize("city", ["Paris", "Atlantis"])
def test_claude_sdk_mcp_tools_are_recorded_and_served_never_run(rig, instrument, claude_sdk_agent, city):
    instrument("claude_agent_sdk")
    messages = claude_sdk_agent(f"Weather in {city}?", city)
    original = rig.last_run_id("claude-sdk-weather")
    assert RAN["get_weather"] == 1
    then = tool_results(messages)
    assert then == [
        (
            [{"type": "text", "text": f"{'no station' if city == 'Atlantis' else 'sunny'} in {city}"}],
            city == "Atlantis",
        )
    ]
    ((tool, _, _, status, _),) = sdk_tool_rows(rig, original)
    assert (tool, status) == ("mcp__weather__get_weather", "error" if city == "Atlantis" else "ok")

    with agent_otel.replay(original) as rp:
        messages = claude_sdk_agent(rp.input, city)
    assert RAN["get_weather"] == 1  # the in-process tool did not run again
    assert tool_results(messages) == then  # the CLI got the recorded MCP result
    report = rp.report
    assert report.matched and report.served == 1, str(report)
    assert sdk_tool_rows(rig, report.replay_run_id) == sdk_tool_rows(rig, original)


def test_claude_sdk_mcp_tool_recorded_without_its_mcp_result_is_refused(
    rig, instrument, claude_sdk_agent, monkeypatch
):
    """A recording made before the MCP result was kept (here: the hook that keeps it left out)."""
    from claude_agent_sdk._internal.query import Query

    instrument("claude_agent_sdk")
    hooked = Query._handle_sdk_mcp_request
    with monkeypatch.context() as patch:
        patch.setattr(Query, "_handle_sdk_mcp_request", hooked.__agent_otel_original__)
        claude_sdk_agent("Weather in Paris?")
    original = rig.last_run_id("claude-sdk-weather")
    assert RAN["get_weather"] == 1

    with pytest.raises(ReplayError, match="did not keep the MCP result"), agent_otel.replay(original):
        claude_sdk_agent("Weather in Paris?")
    assert RAN["get_weather"] == 1


def test_claude_sdk_mcp_tool_call_the_recording_lacks_is_refused_and_never_run(
    rig, instrument, claude_sdk_agent
):
    instrument("claude_agent_sdk")
    claude_sdk_agent("Weather in Paris?")
    original = rig.last_run_id("claude-sdk-weather")

    with pytest.raises(UnrecordedToolCall), agent_otel.replay(original, mode="lenient"):
        claude_sdk_agent("Weather in Lyon?", "Lyon")
    assert RAN["get_weather"] == 1


# --- google-genai's automatic function calling (already served: the async path, and a refusal) ------------


def gemini_reply(parts: list[dict[str, Any]]) -> Reply:
    return Reply(
        {
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 6, "totalTokenCount": 26},
        }
    )


@pytest.fixture
def gemini_agent(fake_api: Any) -> Any:
    genai = pytest.importorskip("google.genai")
    from google.genai import types

    def get_weather(city: str) -> dict:
        """The weather in a city."""
        RAN["get_weather"] += 1
        return {"city": city, "sky": "clear"}

    options = types.HttpOptions(base_url=fake_api.base_url, retry_options=types.HttpRetryOptions(attempts=1))

    def agent(question: str) -> str:
        async def ask() -> str:
            client = genai.Client(api_key="k", http_options=options)
            config = types.GenerateContentConfig(tools=[get_weather])
            response = await client.aio.models.generate_content(
                model="gemini-2.5-flash", contents=question, config=config
            )
            return str(response.text)

        with agent_otel.run("gemini-weather", input=question):
            return asyncio.run(ask())

    return agent


def gemini_call(city: str) -> Reply:
    return gemini_reply([{"functionCall": {"name": "get_weather", "args": {"city": city}}}])


def test_google_genai_async_automatic_function_calls_are_served_never_run(
    rig, instrument, fake_api, gemini_agent
):
    instrument("google_genai")

    def script() -> None:
        fake_api.reply(gemini_call("Paris"), gemini_reply([{"text": "Clear."}]))

    script()
    assert gemini_agent("Weather in Paris?") == "Clear."
    original = rig.last_run_id("gemini-weather")
    assert RAN["get_weather"] == 1
    recorded = bodies(fake_api)

    fake_api.requests.clear()
    script()
    with agent_otel.replay(original) as rp:
        assert gemini_agent(rp.input) == "Clear."
    assert RAN["get_weather"] == 1
    assert bodies(fake_api) == recorded
    assert_replayed(rig, rp, original, 1)


def test_google_genai_a_call_the_recording_lacks_is_refused_and_never_run(
    rig, instrument, fake_api, gemini_agent
):
    instrument("google_genai")
    fake_api.reply(gemini_call("Paris"), gemini_reply([{"text": "Clear."}]))
    gemini_agent("Weather in Paris?")
    original = rig.last_run_id("gemini-weather")

    fake_api.reply(gemini_call("Lyon"))
    with pytest.raises(UnrecordedToolCall), agent_otel.replay(original, mode="lenient"):
        gemini_agent("Weather in Lyon?")
    assert RAN["get_weather"] == 1
    assert len(fake_api.requests) == 3


def test_claude_sdk_mcp_tool_call_of_no_tool_use_agent_otel_saw_is_refused_in_a_replay(
    rig, instrument, claude_sdk_agent
):
    """A ``tools/call`` during a replay that matches no tool use agent-otel began (here the CLI asked no
    ``PreToolUse`` hook first) is answered with an error, not by the server."""
    instrument("claude_agent_sdk")
    claude_sdk_agent("Weather in Paris?")
    original = rig.last_run_id("claude-sdk-weather")

    with (
        pytest.raises(ReplayError, match="matches no tool use of the recording"),
        agent_otel.replay(original),
    ):
        claude_sdk_agent("Weather in Paris?", no_hooks=True)
    assert RAN["get_weather"] == 1


def test_anthropic_tool_runner_outside_a_run_is_a_run_whose_functions_a_replay_serves(
    rig, instrument, fake_api
):
    """With the client's tracing on, a tool runner loop outside any run is a run (its
    ``anthropic.messages.tool_runner`` span, through the bridge); its functions are steps of it."""
    anthropic = pytest.importorskip("anthropic")
    from anthropic import beta_tool

    @beta_tool
    def get_weather(city: str) -> str:
        """The weather in a city.

        Args:
            city: the city's name
        """
        RAN["get_weather"] += 1
        return f"sunny in {city}"

    instrument("anthropic")

    def agent(question: str) -> str:
        client = anthropic.Anthropic(base_url=fake_api.base_url, api_key="k", max_retries=0)
        runner = client.beta.messages.tool_runner(
            model=CLAUDE,
            max_tokens=100,
            messages=[{"role": "user", "content": question}],
            tools=[get_weather],
        )
        return str(runner.until_done().content[0].text)

    fake_api.reply(claude_tool_use("Paris"), claude_answer())
    assert agent("Weather in Paris?") == "Sunny."
    original = rig.last_run_id()
    assert RAN["get_weather"] == 1
    ((tool, _, result_sha, status, _),) = tool_rows(rig, original)
    assert (tool, status) == ("get_weather", "ok") and result_sha
    recorded = bodies(fake_api)

    fake_api.requests.clear()
    fake_api.reply(claude_tool_use("Paris"), claude_answer())
    with agent_otel.replay(original) as rp:
        assert agent("Weather in Paris?") == "Sunny."
    assert RAN["get_weather"] == 1
    assert bodies(fake_api) == recorded
    assert rp.report.served == 1 and not rp.report.divergence, str(rp.report)


# --- a policy refusal under on_deny: raise, in the runners that call functions themselves ---------------
# ToolDenied is for the agent to carry on from: it takes the runner's own error path, as a tool that raised
# it would (the model is told), where a guard's stop and a replay's refusal are raised as themselves.

DENY_WEATHER = {"policy": {"deny": {"*": ["get_weather", "navigate"]}, "on_deny": "raise"}}


class Denials:
    """The policy triggers counted while a test runs (agent-otel's counters live as long as the process)."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.before = self.counts()

    def counts(self) -> dict[tuple[str, str], int]:
        from tests.helpers import metric_points

        points = metric_points(self.reader).get("agent.guard.triggers", [])
        return {(a["agent"], a["guard"]): p.value for a, p in points}

    def new(self) -> dict[tuple[str, str], int]:
        now = self.counts()
        return {k: v - self.before.get(k, 0) for k, v in now.items() if v != self.before.get(k, 0)}


@pytest.fixture
def denying(rig: Any) -> Iterator[Any]:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from agent_otel import integrations

    def start(*names: str) -> Denials:
        reader = InMemoryMetricReader()
        rig.start(readers=(reader,), guards=DENY_WEATHER)
        integrations.instrument(list(names))
        started.extend(names)
        return Denials(reader)

    started: list[str] = []
    yield start
    integrations.uninstrument(started)


def assert_denied_once(rig: Any, denials: Denials, agent: str) -> None:
    """The agent carried on (its run completed), the refusal counted once, and no step of the refused call
    (as the manual API records it: the function did not run)."""
    from agent_otel import sdk

    assert sdk.flush(5.0)
    run_id = rig.last_run_id(agent)
    assert rig.run_row(run_id)["stop_reason"] == "completed"
    assert denials.new() == {(agent, "policy"): 1}
    assert rig.tool_events(run_id) == []


def test_mistral_a_function_refused_under_on_deny_raise_is_the_functions_error_never_run(
    rig, denying, fake_api, mistral_agent
):
    reader = denying("mistral")
    fake_api.reply(
        mistral_turn([mistral_call("Paris")], (50, 5)), mistral_turn([mistral_answer("No weather.")], (80, 9))
    )
    assert mistral_agent("Weather in Paris?", continue_on_fn_error=True) == "No weather."
    assert RAN["get_weather"] == 0
    told = bodies(fake_api)[1]
    assert "Error while executing get_weather" in told and "blocked by policy" in told
    assert_denied_once(rig, reader, "mistral-weather")


def test_mistral_a_function_refused_under_on_deny_raise_without_continue_is_the_sdks_run_error(
    rig, denying, fake_api, mistral_agent
):
    from mistralai.extra.exceptions import RunException

    denying("mistral")
    fake_api.reply(mistral_turn([mistral_call("Paris")], (50, 5)))
    with pytest.raises(RunException) as raised:
        mistral_agent("Weather in Paris?")
    assert isinstance(raised.value.__cause__, agent_otel.ToolDenied)  # as for a function that raised it
    assert RAN["get_weather"] == 0 and len(fake_api.requests) == 1


@pytest.mark.parametrize("flavour", ["sync", "async", "stream"])
def test_anthropic_tool_runner_a_function_refused_under_on_deny_raise_is_its_error_result_never_run(
    rig, denying, fake_api, claude_agent, flavour
):
    reader = denying("anthropic")
    wrap = claude_stream if flavour.startswith("stream") else (lambda r: r)
    fake_api.reply(wrap(claude_tool_use("Paris")), wrap(claude_answer("No weather.")))
    assert claude_agent("Weather in Paris?", flavour) == "No weather."
    assert RAN["get_weather"] == 0
    (result,) = [m for m in json.loads(bodies(fake_api)[1])["messages"] if m["role"] == "user"][-1]["content"]
    assert result["is_error"] is True and "blocked by policy" in result["content"]
    assert_denied_once(rig, reader, "claude-weather")


def test_anthropic_toolset_member_refused_under_on_deny_raise_is_its_error_result_never_run(
    rig, denying, fake_api
):
    anthropic = pytest.importorskip("anthropic")
    reader = denying("anthropic")
    fake_api.reply(claude_navigate(), claude_answer("Could not open it."))
    with agent_otel.run("claude-browser", input="Open example.com"):
        client = anthropic.Anthropic(base_url=fake_api.base_url, api_key="k", max_retries=0)
        runner = client.beta.messages.tool_runner(
            model=CLAUDE,
            max_tokens=100,
            messages=[{"role": "user", "content": "Open"}],
            tools=[browser_toolset()],
        )
        assert runner.until_done().content[0].text == "Could not open it."
    assert RAN["navigate"] == 0
    told = bodies(fake_api)[1]
    assert '"is_error": true' in told and "blocked by policy" in told
    assert_denied_once(rig, reader, "claude-browser")
