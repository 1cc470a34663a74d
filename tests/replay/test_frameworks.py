"""Replaying framework agents: tools the frameworks execute themselves are served from the recording.

Each framework is driven by its own fake model with the same script when recording and when replaying.
The tools are side-effecting Python functions that count their real executions (``SENT``), which is how
the tests prove a replay never ran them; what the framework received (its final answer, the tool
message) must be the same as when the run was recorded.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypedDict

import pytest

import agent_otel
from agent_otel.hashing import sha
from agent_otel.replay import ReplayError

SENT: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _fresh_counts() -> Iterator[None]:
    SENT.clear()
    yield
    SENT.clear()


@dataclasses.dataclass
class Receipt:  # a tool result that is an object, not a JSON value
    charged: int


RECEIPT_REFUSED = re.escape(
    f"returned a {__name__}.Receipt when recorded; the recording keeps only its JSON form"
)


def tool_events(rig, run_id: str) -> list[tuple[Any, ...]]:
    events = rig.tool_events(run_id)
    return [(e["tool"], e["args_sha"], e["result_sha"], e["status"], e["error"]) for e in events]


def assert_same_path(rig, rp, original: str, tool_calls: int) -> None:
    report = rp.report
    assert report.matched and not report.diverged, str(report)
    assert (report.recorded_tool_calls, report.steps_matched, report.served) == (
        tool_calls,
        tool_calls,
        tool_calls,
    )
    assert report.stop_reason_then == report.stop_reason_now == "completed"
    # The replay's tool calls have the recording's hashes and outcomes: the framework got the same result.
    assert tool_events(rig, report.replay_run_id) == tool_events(rig, original)


# --- LangChain / LangGraph --------------------------------------------------------------------------


def _langgraph() -> Any:
    pytest.importorskip("langgraph")
    pytest.importorskip("langchain_core")
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.tools import ToolException
    from langchain_core.tools import tool as lc_tool

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langgraph.prebuilt import create_react_agent

    class ToolCallingFake(GenericFakeChatModel):
        model: str = "gpt-4o-mini"

        def bind_tools(self, tools: Any, **kwargs: Any) -> ToolCallingFake:
            return self

    def ai(text: str = "", calls: tuple = ()) -> AIMessage:
        return AIMessage(
            content=text,
            tool_calls=[{"name": n, "args": a, "id": i, "type": "tool_call"} for n, a, i in calls],
            usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
        )

    @lc_tool
    def send_email(to: str, body: str) -> str:
        """Send an e-mail."""
        SENT["send_email"] += 1
        return f"queued message {SENT['send_email']} to {to}"

    @lc_tool
    def charge(amount: int) -> str:
        """Charge the card."""
        SENT["charge"] += 1
        raise ToolException(f"card declined for {amount}")

    charge.handle_tool_error = True

    def agent(*script: AIMessage) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return create_react_agent(
                ToolCallingFake(messages=iter(script)), [send_email, charge], name="lc-support"
            )

    return agent, ai


def _lc_script(ai: Callable[..., Any], to: str = "kim@example.com") -> list[Any]:
    return [
        ai(calls=[("send_email", {"to": to, "body": "shipped"}, "call_1")]),
        ai(calls=[("charge", {"amount": 30}, "call_2")]),
        ai("done"),
    ]


def _tool_messages(result: dict[str, Any]) -> list[tuple[str, Any, str, str]]:
    return [(m.name, m.content, m.tool_call_id, m.status) for m in result["messages"] if m.type == "tool"]


def test_langgraph_replay_serves_tools_and_never_runs_them(rig, instrument):
    agent, ai = _langgraph()
    instrument("langchain", "langgraph")
    recorded_result = agent(*_lc_script(ai)).invoke({"messages": [("user", "ship it")]})
    assert SENT == {"send_email": 1, "charge": 1}
    original = rig.last_run_id("lc-support")

    with agent_otel.replay(original) as rp:
        result = agent(*_lc_script(ai)).invoke(rp.input)

    assert SENT == {"send_email": 1, "charge": 1}  # no tool body ran during the replay
    assert result["messages"][-1].content == "done"
    messages = _tool_messages(result)
    assert messages == _tool_messages(recorded_result)
    assert messages == [
        ("send_email", "queued message 1 to kim@example.com", "call_1", "success"),
        ("charge", "card declined for 30", "call_2", "error"),  # LangChain's handle_tool_error
    ]
    assert_same_path(rig, rp, original, 2)
    assert [e[3:] for e in tool_events(rig, original)] == [("ok", None), ("error", "ToolException")]


async def test_langgraph_async_replay_serves_tools(rig, instrument):
    agent, ai = _langgraph()
    instrument("langchain", "langgraph")
    recorded_result = await agent(*_lc_script(ai)).ainvoke({"messages": [("user", "ship it")]})
    original = rig.last_run_id("lc-support")

    async with agent_otel.replay(original) as rp:
        result = await agent(*_lc_script(ai)).ainvoke(rp.input)

    assert SENT == {"send_email": 1, "charge": 1}
    assert _tool_messages(result) == _tool_messages(recorded_result)
    assert result["messages"][-1].content == "done"
    assert_same_path(rig, rp, original, 2)


def test_langgraph_replay_diverging_args_stops_before_the_tool(rig, instrument):
    from agent_otel.hashing import sha

    agent, ai = _langgraph()
    instrument("langchain", "langgraph")
    agent(*_lc_script(ai)).invoke({"messages": [("user", "ship it")]})
    original = rig.last_run_id("lc-support")

    with agent_otel.replay(original) as rp:  # the model now e-mails someone else: ReplayDivergence, absorbed
        agent(*_lc_script(ai, to="sam@example.com")).invoke(rp.input)

    assert SENT == {"send_email": 1, "charge": 1}
    report = rp.report
    d = report.divergence
    assert report.diverged and (d.index, d.kind, report.steps_matched) == (1, "args", 0)
    assert (d.recorded.tool, d.recorded.step_id, d.recorded.args_sha) == (
        "send_email",
        2,
        sha({"to": "kim@example.com", "body": "shipped"}),
    )
    assert (d.now.tool, d.now.step_id, d.now.args_sha) == (
        "send_email",
        2,
        sha({"to": "sam@example.com", "body": "shipped"}),
    )
    assert (report.stop_reason_then, report.stop_reason_now) == ("completed", "policy_denied")


def test_langgraph_lenient_replay_refuses_an_unrecorded_call(rig, instrument):
    from agent_otel.replay import UnrecordedToolCall

    agent, ai = _langgraph()
    instrument("langchain", "langgraph")
    agent(*_lc_script(ai)).invoke({"messages": [("user", "ship it")]})
    original = rig.last_run_id("lc-support")

    with agent_otel.replay(original, mode="lenient") as rp:
        with pytest.raises(UnrecordedToolCall, match="was not called in the recorded run"):
            agent(*_lc_script(ai, to="sam@example.com")).invoke(rp.input)

    assert SENT == {"send_email": 1, "charge": 1}  # the unknown call never reached the tool
    assert [(c.step_id, c.tool) for c in rp.report.unrecorded_calls] == [(2, "send_email")]


def test_langchain_refuses_what_it_cannot_rebuild_and_tools_outside_a_run(rig, instrument):
    pytest.importorskip("langchain_core")
    from langchain_core.messages import ToolMessage
    from langchain_core.tools import tool as lc_tool

    from agent_otel.replay import UnrecordedToolCall

    @lc_tool(response_format="content_and_artifact")
    def export(rows: int) -> tuple[str, list[int]]:
        """Export rows."""
        SENT["export"] += 1
        return f"{rows} rows", list(range(rows))

    instrument("langchain")
    with agent_otel.run("lc-export"):
        message = export.invoke({"name": "export", "args": {"rows": 2}, "id": "e1", "type": "tool_call"})
    assert isinstance(message, ToolMessage) and message.artifact == [0, 1]
    original = rig.last_run_id("lc-export")

    with agent_otel.replay(original) as rp:
        with pytest.raises(UnrecordedToolCall, match="outside any agent_otel run"):
            export.invoke({"rows": 2})
        with pytest.raises(ReplayError, match="response_format='content_and_artifact'"):
            with agent_otel.run("lc-export"):
                export.invoke({"name": "export", "args": {"rows": 2}, "id": "e1", "type": "tool_call"})
    assert SENT == {"export": 1}
    assert rp.report.served == 0 and "artifact is not recorded" in str(rp.report)


# --- OpenAI Agents SDK ------------------------------------------------------------------------------


def _agents_sdk() -> Any:
    pytest.importorskip("agents")
    import asyncio

    from agents import Agent, function_tool, set_trace_processors
    from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
    from agents.usage import Usage

    set_trace_processors([])  # the SDK's own exporter stays off the network

    class Scripted(ScriptedModel):
        model = "gpt-4o"

    def step(*output: Any) -> ModelStep:
        usage = Usage(requests=1, input_tokens=10, output_tokens=5, total_tokens=15)
        return ModelStep(output=list(output), usage=usage)

    @function_tool
    def send_email(to: str, body: str) -> str:
        """Send an e-mail."""
        SENT["send_email"] += 1
        return f"queued message {SENT['send_email']} to {to}"

    def failed(ctx: Any, error: Exception) -> str:  # the SDK turns the tool's error into this message
        return f"{type(error).__name__}: {error}"

    @function_tool(failure_error_function=failed)
    def charge(amount: int) -> str:
        """Charge the card."""
        SENT["charge"] += 1
        raise ValueError(f"card declined for {amount}")

    @function_tool(timeout=0.05)
    async def refund(amount: int) -> str:
        """Refund, slowly."""
        SENT["refund"] += 1
        await asyncio.sleep(2)
        return "refunded"

    def agent(to: str = "kim@example.com") -> Any:
        model = Scripted(
            [
                step(function_call("send_email", {"to": to, "body": "shipped"}, call_id="c1")),
                step(function_call("charge", {"amount": 30}, call_id="c2")),
                step(function_call("refund", {"amount": 30}, call_id="c3")),
                step(assistant_message("done")),
            ]
        )
        return Agent(name="sdk-support", model=model, tools=[send_email, charge, refund])

    return agent


def _tool_outputs(result: Any) -> list[tuple[str, Any]]:
    return [
        (item["call_id"], item["output"])
        for item in result.to_input_list()
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]


def test_openai_agents_replay_serves_tools_and_never_runs_them(rig, instrument):
    from agents import Runner

    agent = _agents_sdk()
    instrument("openai_agents")
    recorded_result = Runner.run_sync(agent(), "ship it")
    assert SENT == {"send_email": 1, "charge": 1, "refund": 1}
    original = rig.last_run_id("sdk-support")

    with agent_otel.replay(original) as rp:
        result = Runner.run_sync(agent(), rp.input)

    assert SENT == {"send_email": 1, "charge": 1, "refund": 1}
    assert result.final_output == recorded_result.final_output == "done"
    outputs = _tool_outputs(result)
    assert outputs == _tool_outputs(recorded_result)
    assert outputs[0] == ("c1", "queued message 1 to kim@example.com")
    assert outputs[1] == ("c2", "ValueError: card declined for 30")
    assert outputs[2] == ("c3", "Tool 'refund' timed out after 0.05 seconds.")
    assert_same_path(rig, rp, original, 3)
    assert [e[3:] for e in tool_events(rig, original)] == [
        ("ok", None),
        ("error", "ValueError"),
        ("error", "ToolTimeoutError"),
    ]


def test_openai_agents_replay_asking_for_another_tool_stops_there(rig, instrument):
    from agents import Agent, Runner
    from agents.testing import ModelStep, assistant_message, function_call

    agent = _agents_sdk()
    instrument("openai_agents")
    Runner.run_sync(agent(), "ship it")
    original = rig.last_run_id("sdk-support")
    tools = agent().tools
    model = type(agent().model)(
        [
            ModelStep(output=[function_call("charge", {"amount": 30}, call_id="c1")]),
            ModelStep(output=[assistant_message("done")]),
        ]
    )

    with agent_otel.replay(original) as rp:
        with pytest.raises(agent_otel.AgentStopped):
            Runner.run_sync(Agent(name="sdk-support", model=model, tools=tools), rp.input)

    assert SENT == {"send_email": 1, "charge": 1, "refund": 1}
    d = rp.report.divergence
    assert (d.index, d.kind, d.recorded.tool, d.now.tool) == (1, "tool", "send_email", "charge")
    assert rp.report.stop_reason_now == "policy_denied"


def test_openai_agents_refuses_an_output_that_was_an_object(rig, instrument):
    from agents import Agent, Runner, function_tool
    from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call

    _agents_sdk()  # skips without the SDK; keeps its trace exporter off the network

    @function_tool
    def charge(amount: int) -> Receipt:
        """Charge the card."""
        SENT["charge"] += 1
        return Receipt(charged=amount)

    def agent() -> Any:
        script = [
            ModelStep(output=[function_call("charge", {"amount": 30}, call_id="c1")]),
            ModelStep(output=[assistant_message("done")]),
        ]
        return Agent(name="sdk-receipt", model=ScriptedModel(script), tools=[charge])

    instrument("openai_agents")
    Runner.run_sync(agent(), "charge")
    original = rig.last_run_id("sdk-receipt")

    with agent_otel.replay(original) as rp:
        with pytest.raises(ReplayError, match=RECEIPT_REFUSED):
            Runner.run_sync(agent(), rp.input)
    assert SENT == {"charge": 1}
    notes = rp.report.notes
    assert rp.report.served == 0 and not any("serves its JSON form" in n for n in notes)
    assert any("(charge) matched the recording but was not served" in n for n in notes)


# --- PydanticAI -------------------------------------------------------------------------------------


def _pydantic_ai() -> Any:
    pytest.importorskip("pydantic_ai")
    from pydantic_ai import Agent, ModelRetry
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel
    from pydantic_ai.usage import RequestUsage

    def respond_with(*responses: ModelResponse) -> FunctionModel:
        queue = list(responses)

        def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            return queue.pop(0)

        return FunctionModel(respond, model_name="gpt-4o")

    def call(name: str, args: dict, call_id: str) -> ModelResponse:
        return ModelResponse(
            parts=[ToolCallPart(tool_name=name, args=args, tool_call_id=call_id)],
            usage=RequestUsage(input_tokens=10, output_tokens=5),
        )

    def agent(to: str = "kim@example.com") -> Any:
        model = respond_with(
            call("send_email", {"to": to, "body": "shipped"}, "c1"),
            call("charge", {"amount": 30}, "c2"),
            call("charge", {"amount": 20}, "c3"),
            ModelResponse(parts=[TextPart("done")], usage=RequestUsage(input_tokens=20, output_tokens=3)),
        )
        pyd = Agent(model, name="pyd-support")

        @pyd.tool_plain
        def send_email(to: str, body: str) -> str:
            """Send an e-mail."""
            SENT["send_email"] += 1
            return f"queued message {SENT['send_email']} to {to}"

        @pyd.tool_plain
        def charge(amount: int) -> dict:
            """Charge the card."""
            SENT["charge"] += 1
            if amount > 25:
                raise ModelRetry(f"{amount} is over the limit, try 20")
            return {"charged": amount, "receipt": f"R-{SENT['charge']}"}

        return pyd

    return agent


def _tool_returns(result: Any) -> list[tuple[Any, ...]]:
    return [
        (part.tool_name, part.content, part.tool_call_id, part.outcome, part.retry and part.retry.attempt)
        for message in result.all_messages()
        for part in getattr(message, "parts", ())
        if part.part_kind == "tool-return"
    ]


def test_pydantic_ai_replay_serves_tools_and_never_runs_them(rig, instrument):
    agent = _pydantic_ai()
    instrument("pydantic_ai")
    recorded_result = agent().run_sync("ship it")
    assert SENT == {"send_email": 1, "charge": 2}
    original = rig.last_run_id("pyd-support")

    with agent_otel.replay(original) as rp:
        result = agent().run_sync(rp.input)

    assert SENT == {"send_email": 1, "charge": 2}
    assert result.output == recorded_result.output == "done"
    returns = _tool_returns(result)
    assert returns == _tool_returns(recorded_result)
    assert returns == [
        ("send_email", "queued message 1 to kim@example.com", "c1", "success", None),
        ("charge", "30 is over the limit, try 20", "c2", "retried", 1),  # a retry charged to the tool
        ("charge", {"charged": 20, "receipt": "R-2"}, "c3", "success", None),
    ]
    assert result.usage.tool_calls == recorded_result.usage.tool_calls == 2
    assert_same_path(rig, rp, original, 3)
    assert [e[3:] for e in tool_events(rig, original)] == [
        ("ok", None),
        ("error", "ToolRetryError"),
        ("ok", None),
    ]


def test_pydantic_ai_refuses_a_result_that_was_an_object(rig, instrument):
    pytest.importorskip("pydantic_ai")
    from pydantic_ai.models.test import TestModel

    def agent() -> Any:
        from pydantic_ai import Agent

        pyd = Agent(TestModel(), name="pyd-receipt")

        @pyd.tool_plain
        def charge(amount: int) -> Receipt:
            """Charge the card."""
            SENT["charge"] += 1
            return Receipt(charged=amount)

        return pyd

    instrument("pydantic_ai")
    agent().run_sync("charge")
    original = rig.last_run_id("pyd-receipt")

    with agent_otel.replay(original) as rp:
        with pytest.raises(ReplayError, match=RECEIPT_REFUSED):
            agent().run_sync(rp.input)
    assert SENT == {"charge": 1}
    assert rp.report.served == 0 and rp.report.stop_reason_now == "tool_error"


# --- MCP client -------------------------------------------------------------------------------------


class Balance(TypedDict):
    account: str
    balance: int


def _mcp_server() -> Any:
    pytest.importorskip("mcp")
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("shop")

    @server.tool(structured_output=False)
    def send_email(to: str, body: str) -> str:
        """Send an e-mail."""
        SENT["send_email"] += 1
        return f"queued message {SENT['send_email']} to {to}"

    @server.tool(structured_output=False)
    def charge(amount: int) -> str:
        """Charge the card."""
        SENT["charge"] += 1
        raise ValueError(f"card declined for {amount}")

    @server.tool()
    def balance(account: str) -> Balance:
        """Structured content."""
        SENT["balance"] += 1
        return {"account": account, "balance": 12}

    return server


async def _mcp_session(server: Any, input: Any, *calls: tuple[str, dict]) -> list[Any]:
    from mcp import Client

    async with Client(server) as client, agent_otel.run("mcp-support", input=input):
        return [await client.call_tool(name, args) for name, args in calls]


async def test_mcp_replay_serves_tool_results_and_never_calls_the_server(rig, instrument):
    server = _mcp_server()
    instrument("mcp")
    calls = [("send_email", {"to": "kim@example.com", "body": "shipped"}), ("charge", {"amount": 30})]
    recorded_results = await _mcp_session(server, {"ticket": "T-1"}, *calls)
    assert SENT == {"send_email": 1, "charge": 1}
    assert recorded_results[1].is_error and not recorded_results[0].is_error
    original = rig.last_run_id("mcp-support")

    async with agent_otel.replay(original) as rp:
        results = await _mcp_session(server, rp.input, *calls)

    assert SENT == {"send_email": 1, "charge": 1}  # nothing reached the server
    # What the tool answered comes back as it was; a result's _meta (server info) is not recorded.
    assert [r.model_dump(exclude={"meta"}) for r in results] == [
        r.model_dump(exclude={"meta"}) for r in recorded_results
    ]
    assert results[0].meta is None and recorded_results[0].meta is not None
    assert results[1] == recorded_results[1]  # an is_error answer is recorded whole
    assert results[0].content[0].text == "queued message 1 to kim@example.com"
    assert results[1].is_error and results[1].content[0].text == "Error executing tool charge"
    assert_same_path(rig, rp, original, 2)
    assert [e[3:] for e in tool_events(rig, original)] == [("ok", None), ("error", "MCPToolError")]


async def test_mcp_structured_results_are_served_whole_and_older_recordings_refused(
    rig, instrument, monkeypatch
):
    """A tool with a return type answers with ``structured_content`` and content blocks (MCPServer's
    default: a ``-> str`` tool too). Only the structured content was recorded, so every such call was
    refused under replay; the result is recorded whole now (still hashed over its structured content)
    and served as the server answered it, without calling the server. A recording an earlier agent-otel
    made is still refused, not executed."""
    server = _mcp_server()
    instrument("mcp")
    (recorded_result,) = await _mcp_session(server, None, ("balance", {"account": "A-1"}))
    original = rig.last_run_id("mcp-support")
    (event,) = rig.tool_events(original)
    assert event["result_sha"] == sha({"account": "A-1", "balance": 12})  # the structured content's

    async with agent_otel.replay(original) as rp:
        (served,) = await _mcp_session(server, rp.input, ("balance", {"account": "A-1"}))
    assert SENT == {"balance": 1}
    assert served.model_dump(exclude={"meta"}) == recorded_result.model_dump(exclude={"meta"})
    assert served.structured_content == {"account": "A-1", "balance": 12} and served.content
    assert_same_path(rig, rp, original, 1)

    from agent_otel.integrations import mcp_client

    monkeypatch.setattr(mcp_client, "_record_whole", lambda call, result: None)  # as agent-otel recorded it
    await _mcp_session(server, None, ("balance", {"account": "A-1"}))
    older = rig.last_run_id("mcp-support")
    from mcp import Client

    async with agent_otel.replay(older) as rp, Client(server) as client:
        with pytest.raises(ReplayError, match="returned structured_content when recorded, by an agent-otel"):
            async with agent_otel.run("mcp-support", input=rp.input):
                await client.call_tool("balance", {"account": "A-1"})
    assert SENT == {"balance": 2}
    report = rp.report
    assert (report.divergence, report.steps_matched, report.served) == (None, 1, 0)
    assert report.diverged and report.stop_reason_then == "completed"
    assert report.stop_reason_now == "tool_error"
    assert "step 1 (balance) matched the recording but was not served" in str(report)
    (event,) = rig.tool_events(report.replay_run_id)
    assert (event["tool"], event["status"], event["error"]) == ("balance", "error", "ReplayError")


@pytest.mark.parametrize("structured", [False, None], ids=["content", "structured-by-default"])
async def test_mcp_replay_serves_an_in_process_agent_otel_tool_without_calling_it(
    rig, instrument, structured
):
    """An MCP server served in this process whose tool is also an ``@agent_otel.tool`` function (it claims
    the client's call: one step): a replay serves the client's call from the recording, so the server,
    and the function, are never called."""
    pytest.importorskip("mcp")
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("decorated")

    @server.tool(structured_output=structured)
    @agent_otel.tool(name="crm.lookup")
    def lookup(q: str) -> str:
        """Look up."""
        SENT["lookup"] += 1
        return q.upper()

    instrument("mcp")
    calls = [("lookup", {"q": "otel"})]
    recorded_results = await _mcp_session(server, None, *calls)
    original = rig.last_run_id("mcp-support")
    assert SENT == {"lookup": 1}
    async with agent_otel.replay(original) as rp:
        results = await _mcp_session(server, rp.input, *calls)
    assert SENT == {"lookup": 1}
    assert results[0].content == recorded_results[0].content and results[0].content[0].text == "OTEL"
    assert results[0].structured_content == recorded_results[0].structured_content
    assert_same_path(rig, rp, original, 1)
