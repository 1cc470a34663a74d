"""Store rows and replay of smolagents, LlamaIndex and Claude Agent SDK runs (CrewAI's: tests/envs/crewai).

Each framework runs with its own test double, the same script when recording and replaying; the tools count
their real executions (``SENT``), which is how the tests prove that a replay never ran them, and what the
framework got back must be what it got when the run was recorded.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import agent_otel
from agent_otel.hashing import sha
from agent_otel.replay import ReplayError
from tests.replay.test_frameworks import SENT, _fresh_counts  # noqa: F401 (an autouse fixture)


def tool_rows(rig, run_id: str) -> list[tuple[Any, ...]]:
    return [
        (e["tool"], e["args_sha"], e["result_sha"], e["status"], e["error"]) for e in rig.tool_events(run_id)
    ]


def assert_served(rp, rig, original: str, tool_calls: int) -> None:
    report = rp.report
    assert report.matched and not report.diverged, str(report)
    assert (report.recorded_tool_calls, report.served) == (tool_calls, tool_calls)
    assert report.stop_reason_then == report.stop_reason_now == "completed"
    assert tool_rows(rig, report.replay_run_id) == tool_rows(rig, original)


# --- smolagents -------------------------------------------------------------------------------------


def _smolagents() -> Callable[[], Any]:
    pytest.importorskip("smolagents")
    from smolagents import ToolCallingAgent, tool
    from smolagents.models import (
        ChatMessage,
        ChatMessageToolCall,
        ChatMessageToolCallFunction,
        MessageRole,
        Model,
    )
    from smolagents.monitoring import LogLevel, TokenUsage

    def call(name: str, arguments: dict, call_id: str) -> ChatMessage:
        function = ChatMessageToolCallFunction(name=name, arguments=arguments)
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            content="",
            tool_calls=[ChatMessageToolCall(function, call_id, "function")],
            token_usage=TokenUsage(10, 5),
        )

    class Scripted(Model):
        def __init__(self) -> None:
            super().__init__(model_id="gpt-4o")
            self.script = [
                call("send_email", {"to": "kim@example.com", "body": "shipped"}, "c1"),
                call("charge", {"amount": 30}, "c2"),
                call("charge", {"amount": 20}, "c3"),
                call("final_answer", {"answer": "done"}, "c4"),
            ]
            self.seen: list[Any] = []

        def generate(self, messages: Any, **kwargs: Any) -> ChatMessage:
            self.seen.append(
                [m.content for m in messages if getattr(m, "role", None) == MessageRole.TOOL_RESPONSE]
            )
            return self.script.pop(0)

    @tool
    def send_email(to: str, body: str) -> str:
        """Send an e-mail.

        Args:
            to: address
            body: text
        """
        SENT["send_email"] += 1
        return f"queued message {SENT['send_email']} to {to}"

    @tool
    def charge(amount: int) -> str:
        """Charge the card.

        Args:
            amount: dollars
        """
        SENT["charge"] += 1
        if amount > 25:
            raise ValueError(f"{amount} is over the limit, try 20")
        return f"charged {amount}"

    def agent() -> Any:
        return ToolCallingAgent(
            tools=[send_email, charge], model=Scripted(), name="smol_support", verbosity_level=LogLevel.OFF
        )

    return agent


def test_smolagents_store_rows_and_replay(rig, instrument):
    agent = _smolagents()
    instrument("smolagents")
    recorded = agent()
    assert recorded.run("ship it") == "done"
    assert SENT == {"send_email": 1, "charge": 2}
    original = rig.last_run_id("smol_support")
    row = rig.run_row(original)
    assert (row["agent"], row["stop_reason"], row["tool_calls"], row["steps"]) == (
        "smol_support",
        "completed",
        3,
        7,
    )
    assert tool_rows(rig, original) == [
        (
            "send_email",
            sha({"to": "kim@example.com", "body": "shipped"}),
            sha("queued message 1 to kim@example.com"),
            "ok",
            None,
        ),
        ("charge", sha({"amount": 30}), None, "error", "ValueError"),
        ("charge", sha({"amount": 20}), sha("charged 20"), "ok", None),
    ]

    with agent_otel.replay(original) as rp:
        replayed = agent()
        assert replayed.run(rp.input) == "done"
    assert SENT == {"send_email": 1, "charge": 2}
    # the model saw the same observations, the recorded error included
    assert [m.observations for m in replayed.memory.steps[1:]] == [
        m.observations for m in recorded.memory.steps[1:]
    ]
    assert_served(rp, rig, original, 3)


# --- LlamaIndex -------------------------------------------------------------------------------------


def _llamaindex() -> Callable[[], Any]:
    pytest.importorskip("llama_index.core")
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.base.llms.types import ChatMessage, ToolCallBlock
    from llama_index.core.llms.mock import MockFunctionCallingLLM
    from llama_index.core.tools import FunctionTool

    def call(name: str, kwargs: dict, call_id: str) -> ChatMessage:
        return ChatMessage(
            role="assistant", blocks=[ToolCallBlock(tool_call_id=call_id, tool_name=name, tool_kwargs=kwargs)]
        )

    def send_email(to: str, body: str) -> str:
        """Send an e-mail."""
        SENT["send_email"] += 1
        return f"queued message {SENT['send_email']} to {to}"

    def charge(amount: int) -> dict:
        """Charge the card."""
        SENT["charge"] += 1
        if amount > 25:
            raise ValueError(f"{amount} is over the limit, try 20")
        return {"charged": amount}

    def agent() -> Any:
        script = [
            call("send_email", {"to": "kim@example.com", "body": "shipped"}, "c1"),
            call("charge", {"amount": 30}, "c2"),
            call("charge", {"amount": 20}, "c3"),
            ChatMessage(role="assistant", content="done"),
        ]
        llm = MockFunctionCallingLLM(response_generator=lambda messages, **kw: script.pop(0))
        tools = [FunctionTool.from_defaults(send_email), FunctionTool.from_defaults(charge)]
        return FunctionAgent(name="li-support", llm=llm, tools=tools, streaming=False)

    return agent


def _tool_results(result: Any) -> list[tuple[Any, ...]]:
    return [(t.tool_id, t.tool_output.content, t.tool_output.is_error) for t in result.tool_calls]


async def test_llamaindex_store_rows_and_replay(rig, instrument):
    agent = _llamaindex()
    instrument("llamaindex")
    recorded = await agent().run(user_msg="ship it")
    assert SENT == {"send_email": 1, "charge": 2}
    original = rig.last_run_id("li-support")
    row = rig.run_row(original)
    assert (row["agent"], row["stop_reason"], row["tool_calls"]) == ("li-support", "completed", 3)
    assert [r[3:] for r in tool_rows(rig, original)] == [("ok", None), ("error", "ValueError"), ("ok", None)]

    with agent_otel.replay(original) as rp:
        replayed = await agent().run(user_msg=rp.input)
    assert SENT == {"send_email": 1, "charge": 2}
    assert str(replayed) == str(recorded) == "done"
    assert _tool_results(replayed) == _tool_results(recorded)
    assert _tool_results(replayed)[1] == ("c2", "30 is over the limit, try 20", True)
    assert_served(rp, rig, original, 3)


# --- Claude Agent SDK -------------------------------------------------------------------------------


def test_claude_agent_sdk_replay_refuses_tool_uses_the_cli_would_run(rig, instrument, tmp_path: Path):
    pytest.importorskip("claude_agent_sdk")
    from claude_agent_sdk import ClaudeAgentOptions, query

    fake = Path(__file__).resolve().parents[1] / "integrations" / "fake_claude_cli.py"
    cli = tmp_path / "claude"
    cli.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fake}" "$@"\n')
    cli.chmod(0o700)
    script = tmp_path / "script.json"
    tool = {"id": "toolu_1", "name": "Bash", "input": {"command": "deploy"}, "result": "deployed"}
    turns = [{"id": "msg_1", "tool": tool}, {"id": "msg_2", "text": "Deployed."}]
    script.write_text(json.dumps({"prompts": [{"turns": turns}, {"turns": turns}]}))
    log = tmp_path / "ran.jsonl"
    options = ClaudeAgentOptions(
        cli_path=str(cli), env={"FAKE_CLAUDE_SCRIPT": str(script), "FAKE_CLAUDE_LOG": str(log)}
    )

    async def run(prompt: str) -> list[Any]:
        return [m async for m in query(prompt=prompt, options=options)]

    instrument("claude_agent_sdk")
    import asyncio

    asyncio.run(run("deploy it"))
    original = rig.last_run_id("claude-agent")
    assert tool_rows(rig, original) == [("Bash", sha({"command": "deploy"}), sha("deployed"), "ok", None)]
    assert len(log.read_text().splitlines()) == 1

    with agent_otel.replay(original) as rp:
        with pytest.raises(ReplayError, match="cannot be served"):
            asyncio.run(run(rp.input))
    assert len(log.read_text().splitlines()) == 1  # the CLI was told not to run it
    assert rp.report.served == 0


# --- a function that is also @agent_otel.tool, as the framework's tool -------------------------------

RAN: list[str] = []


@agent_otel.tool(name="crm.find", retry=agent_otel.Retry(max_attempts=2, base_delay_s=0, jitter="none"))
def find(q: str) -> str:
    """Find a record."""
    RAN.append(q)
    return q.upper()


@agent_otel.tool
async def afind(q: str) -> str:
    """Find a record, asynchronously."""
    RAN.append(q)
    return q.upper()


def _langgraph(fn: Any) -> Callable[[], Any]:
    import asyncio

    from langchain_core.tools import tool as lc_tool

    from tests.integrations.test_langgraph import ai, fake, small_graph

    t = lc_tool(fn)
    calls = [(t.name, {"q": "o"}, "c1")]
    return lambda: asyncio.run(
        small_graph(fake(ai(calls=calls), ai("done")), [t], "agent").ainvoke({"messages": []})
    )


def _openai_agents(fn: Any) -> Callable[[], Any]:
    from agents import Agent, Runner, function_tool

    from tests.integrations.test_openai_agents import Scripted, assistant_message, function_call, step

    t = function_tool(fn)
    script = [step(function_call(t.name, {"q": "o"}, call_id="c1")), step(assistant_message("done"))]
    return lambda: Runner.run_sync(Agent(name="agent", model=Scripted(list(script)), tools=[t]), "x")


def _llamaindex_agent(fn: Any) -> Callable[[], Any]:
    import asyncio

    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.tools import FunctionTool

    from tests.integrations.test_llamaindex import call, script, text

    name = fn.__name__

    async def go() -> Any:
        llm = script(call(name, {"q": "o"}, "c1"), text("done"))
        return await FunctionAgent(name="agent", llm=llm, tools=[FunctionTool.from_defaults(fn)]).run(
            user_msg="x"
        )

    return lambda: asyncio.run(go())


def _pydantic_ai(fn: Any) -> Callable[[], Any]:
    from pydantic_ai import Agent

    from tests.integrations.test_pydantic_ai import script, text, tool_call

    name = fn.__name__
    return lambda: Agent(
        script(tool_call(name, {"q": "o"}, "c1"), text("done")), name="agent", tools=[fn]
    ).run_sync("x")


def _agent_framework(fn: Any) -> Callable[[], Any]:
    """No integration: the framework's own ``execute_tool`` span is the step (the bridge), and the span
    carries no arguments (``enable_sensitive_data`` off)."""
    from agent_framework import Agent, tool

    from tests.integrations.test_agent_framework import FakeClient, text, tool_call

    t = tool(fn)
    return lambda: asyncio.run(
        Agent(client=FakeClient(tool_call(t.name, {"q": "o"}), text("done")), name="agent", tools=[t]).run(
            "x"
        )
    )


#: The integrations each framework needs (the Agent Framework: none, only the span bridge).
INTEGRATIONS = {"langgraph": ("langchain", "langgraph"), "agent_framework": ()}


@pytest.mark.parametrize("fn", [find, afind], ids=["sync-renamed", "async"])
@pytest.mark.parametrize(
    ("framework", "build"),
    [
        ("langgraph", _langgraph),
        ("openai_agents", _openai_agents),
        ("llamaindex", _llamaindex_agent),
        ("pydantic_ai", _pydantic_ai),
        ("agent_framework", _agent_framework),
    ],
)
def test_a_replay_serves_an_agent_otel_tool_the_framework_calls_once(rig, instrument, framework, build, fn):
    """The function claims the framework's step; replayed, the integration serves the recorded result and
    the function never runs, with one tool call recorded and served, as without ``@agent_otel.tool``.
    Where the step is the framework's span alone (Agent Framework), the function's arguments and result
    are the step's: a replay matches and serves it when the function is called."""
    instrument(*INTEGRATIONS.get(framework, (framework,)))
    RAN.clear()
    build(fn)()
    assert RAN == ["o"]
    original = rig.last_run_id("agent")
    with agent_otel.replay(original) as rp:
        build(fn)()
    assert RAN == ["o"]
    assert_served(rp, rig, original, 1)


@agent_otel.tool(name="crm.get")
def get(q: str) -> str:
    """Get a record; there is none for "missing"."""
    RAN.append(q)
    if q == "missing":
        raise LookupError(f"no record {q}")
    return q.upper()


def _agent_framework_run(q: str) -> Any:
    from agent_framework import Agent, tool

    from tests.integrations.test_agent_framework import FakeClient, text, tool_call

    t = tool(get)
    client = FakeClient(tool_call(t.name, {"q": q}), text("done"))
    return asyncio.run(Agent(client=client, name="agent", tools=[t]).run("x"))


def test_agent_framework_replay_diverges_before_an_agent_otel_tool_runs_and_serves_its_error(rig):
    """Agent Framework (the bridge alone): the replay compares the call when the function is called
    (its span has no arguments), so other arguments are a divergence on ``args`` with both hashes, and
    the function does not run; a recorded error is raised again as its own class, to the framework."""
    pytest.importorskip("agent_framework")
    rig.start()
    RAN.clear()
    _agent_framework_run("o")
    original = rig.last_run_id("agent")
    with agent_otel.replay(original) as rp:
        _agent_framework_run("p")
    assert RAN == ["o"]
    report = rp.report
    assert report.diverged and report.divergence is not None and report.divergence.kind == "args"
    assert (report.divergence.recorded.args_sha, report.divergence.now.args_sha) == (
        sha({"q": "o"}),
        sha({"q": "p"}),
    )
    assert (report.divergence.recorded.tool, report.divergence.now.tool) == ("get", "get")
    assert (report.served, report.stop_reason_now) == (0, "policy_denied")

    _agent_framework_run("missing")
    original = rig.last_run_id("agent")
    assert RAN == ["o", "missing"]
    with agent_otel.replay(original) as rp:
        _agent_framework_run("missing")
    assert RAN == ["o", "missing"]
    assert_served(rp, rig, original, 1)
    (event,) = rig.tool_events(rp.report.replay_run_id)
    assert (event["status"], event["error"]) == ("error", "LookupError")


def test_agent_framework_replay_of_a_plain_tool_neither_compares_nor_stops_it(rig):
    """A plain Agent Framework tool's span has no arguments (no ``enable_sensitive_data``): the call is not
    recorded, so the replay cannot compare it. It reported a call past the end of the recording (and
    stopped the run there); it notes the call as not compared, and the framework runs it, as it must."""
    pytest.importorskip("agent_framework")
    from agent_framework import Agent, tool

    from tests.integrations.test_agent_framework import FakeClient, text, tool_call

    @tool
    def lookup(q: str) -> str:
        """Look something up."""
        RAN.append(q)
        return q.upper()

    def go() -> Any:
        client = FakeClient(tool_call("lookup", {"q": "o"}), text("done"))
        return asyncio.run(Agent(client=client, name="agent", tools=[lookup]).run("x"))

    rig.start()
    RAN.clear()
    go()
    original = rig.last_run_id("agent")
    with agent_otel.replay(original) as rp:
        assert go().text == "done"
    assert RAN == ["o", "o"]
    report = rp.report
    assert report.matched and (report.recorded_tool_calls, report.requested_tool_calls) == (0, 0), str(report)
    # The model as the recorded run ended (its snapshot row, written as it started, has none): the same.
    assert (
        report.versions_then
        == report.versions_now
        == {
            "model": "gpt-4o",
            "prompt_version": None,
            "tools_version": None,
        }
    )
    assert report.stop_reason_now == "completed"
    assert report.notes == [
        "step 2 (lookup) was not compared: its arguments are not on the framework's span (nor were they "
        "recorded); the framework ran it"
    ]


def test_smolagents_replay_serves_an_agent_otel_tool_under_its_tool_decorator(rig, instrument):
    """smolagents' ``@tool`` over an ``@agent_otel.tool`` function (which claims smolagents' step): a
    replay serves the recorded result and the function does not run."""
    pytest.importorskip("smolagents")
    from smolagents import tool as smol_tool

    from tests.integrations.test_smolagents import ScriptedModel, agent, answer, call

    @smol_tool
    @agent_otel.tool(name="crm.get")
    def get(q: str) -> str:
        """Get a record.

        Args:
            q: which
        """
        RAN.append(q)
        return q.upper()

    def go() -> Any:
        return agent(ScriptedModel(call("get", {"q": "o"}, "c1"), answer("done")), "agent", [get]).run("x")

    instrument("smolagents")
    RAN.clear()
    assert go() == "done"
    original = rig.last_run_id("agent")
    with agent_otel.replay(original) as rp:
        assert go() == "done"
    assert RAN == ["o"]
    assert_served(rp, rig, original, 1)


def _agent_framework_plain(tool_name: str, q: str, fn: Any) -> Any:
    from agent_framework import Agent, tool

    from tests.integrations.test_agent_framework import FakeClient, text, tool_call

    t = tool(fn, name=tool_name)
    client = FakeClient(tool_call(tool_name, {"q": q}), text("done"))
    return asyncio.run(Agent(client=client, name="agent", tools=[t]).run("x")), client


def test_agent_framework_with_its_integration_a_replay_serves_a_plain_tool_without_running_it(
    rig, instrument
):
    """With the ``agent_framework`` integration a plain function tool's step has its arguments and result,
    so a replay serves it (the function does not run again: no email sent twice), gives the model the
    recorded text, stops before the function at a divergence, and serves a recorded error as it was."""
    pytest.importorskip("agent_framework")
    rig.start()
    instrument("agent_framework")

    def lookup(q: str) -> str:
        """Look something up."""
        RAN.append(q)
        if q == "missing":
            raise LookupError(f"no record {q}")
        return q.upper()

    RAN.clear()
    _, then = _agent_framework_plain("lookup", "o", lookup)
    original = rig.last_run_id("agent")
    with agent_otel.replay(original) as rp:
        _, now = _agent_framework_plain("lookup", "o", lookup)
    assert RAN == ["o"]
    assert_served(rp, rig, original, 1)
    told = [[(part.type, part.result) for part in client.seen[-1][-1].contents] for client in (then, now)]
    assert told[0] == told[1] == [("function_result", "O")], told  # the model got what it got then

    with agent_otel.replay(original) as rp:
        _agent_framework_plain("lookup", "p", lookup)
    assert RAN == ["o"]
    report = rp.report
    assert report.diverged and report.divergence is not None and report.divergence.kind == "args"

    _agent_framework_plain("lookup", "missing", lookup)
    original = rig.last_run_id("agent")
    with agent_otel.replay(original) as rp:
        _agent_framework_plain("lookup", "missing", lookup)
    assert RAN == ["o", "missing"]
    assert_served(rp, rig, original, 1)
    (event,) = rig.tool_events(rp.report.replay_run_id)
    assert (event["status"], event["error"]) == ("error", "LookupError")
