"""Two frameworks in one process: an agent of one running inside a tool of the other (a sub-agent of the
run, either way round), and one ``@agent_otel.tool`` function given to both (one span per call)."""

from __future__ import annotations

import warnings

import pytest

import agent_otel
from tests.integrations.conftest import one, ours, parent_of, steps

pytest.importorskip("langgraph")
pytest.importorskip("pydantic_ai")

from langchain_core.tools import tool as lc_tool
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel

from tests.integrations.test_langgraph import ai, fake

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from langgraph.prebuilt import create_react_agent


def react(name: str, tool: object, call: tuple[str, dict, str], answer: str) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_react_agent(fake(ai(calls=[call]), ai(answer)), [tool], name=name)


def test_pydantic_ai_agent_in_a_langgraph_tool_is_a_sub_agent(telemetry, instrument):
    instrument("langchain", "langgraph", "pydantic_ai")
    expert = Agent(TestModel(custom_output_text="42"), name="expert")

    @lc_tool
    def ask_expert(q: str) -> str:
        """Ask the expert."""
        return expert.run_sync(q).output

    react("boss", ask_expert, ("ask_expert", {"q": "x"}, "c1"), "done").invoke({"messages": [("user", "hi")]})
    spans = ours(telemetry.spans())
    boss, sub = one(spans, "invoke_agent boss"), one(spans, "invoke_agent expert")
    assert sub.attributes["agent.parent_run_id"] == boss.attributes["agent.run_id"]
    assert parent_of(sub, spans) is one(spans, "execute_tool ask_expert")
    assert steps(boss, spans) == [
        (1, "chat gpt-4o-mini"),
        (2, "execute_tool ask_expert"),
        (3, "chat gpt-4o-mini"),
    ]
    assert steps(sub, spans) == [(1, "chat test")]


async def test_langgraph_graph_in_a_pydantic_ai_tool_is_a_sub_agent(telemetry, instrument):
    instrument("langchain", "langgraph", "pydantic_ai")

    @lc_tool
    def lookup(q: str) -> str:
        """Look up."""
        return q.upper()

    graph = react("searcher", lookup, ("lookup", {"q": "x"}, "c1"), "found")
    boss = Agent(TestModel(), name="planner")

    @boss.tool_plain
    async def search(q: str) -> str:
        out = await graph.ainvoke({"messages": [("user", q)]})
        return out["messages"][-1].content

    await boss.run("hi")
    spans = ours(telemetry.spans())
    planner, sub = one(spans, "invoke_agent planner"), one(spans, "invoke_agent searcher")
    assert sub.attributes["agent.parent_run_id"] == planner.attributes["agent.run_id"]
    assert steps(sub, spans) == [(1, "chat gpt-4o-mini"), (2, "execute_tool lookup"), (3, "chat gpt-4o-mini")]
    assert [name for _, name in steps(planner, spans)] == ["chat test", "execute_tool search", "chat test"]


def test_one_decorated_tool_given_to_two_frameworks_records_one_span_per_call(telemetry, instrument):
    instrument("langchain", "langgraph", "pydantic_ai")

    @agent_otel.tool
    def weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    react("g", lc_tool(weather), ("weather", {"city": "Oslo"}, "c1"), "done").invoke(
        {"messages": [("user", "x")]}
    )
    assert Agent(TestModel(), name="p", tools=[weather]).run_sync("x").output == '{"weather":"sunny in a"}'
    spans = ours(telemetry.spans())
    calls = [s for s in spans if s.name == "execute_tool weather"]
    assert len(calls) == 2
    assert {s.attributes["agent.run_id"] for s in calls} == {
        one(spans, "invoke_agent g").attributes["agent.run_id"],
        one(spans, "invoke_agent p").attributes["agent.run_id"],
    }
    assert "c1" in {s.attributes.get("gen_ai.tool.call.id") for s in calls}  # LangGraph's call id
