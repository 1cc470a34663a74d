"""LangChain + LangGraph driven by LangChain's own fake chat model: runs, tool steps, LLM steps, stops."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from typing import Any

import pytest

import agent_otel
from agent_otel.hashing import sha
from agent_otel.tools import ToolTimeout
from tests.integrations.conftest import children, one, ours, parent_of, steps, stop_event

pytest.importorskip("langgraph")
pytest.importorskip("langchain_core")

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.tools import ToolException
from langchain_core.tools import tool as lc_tool
from langgraph.errors import GraphRecursionError
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from langgraph.prebuilt import create_react_agent


class ToolCallingFake(GenericFakeChatModel):
    """LangChain's GenericFakeChatModel, plus the bind_tools a ReAct agent needs (the fake ignores tools)
    and a model name, as real chat models have (LangChain reports it as ``ls_model_name``)."""

    model: str = "gpt-4o-mini"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ToolCallingFake:
        return self


def ai(
    text: str = "", calls: Iterable[tuple[str, dict, str]] = (), usage: tuple[int, int] = (10, 5)
) -> AIMessage:
    return AIMessage(
        content=text,
        tool_calls=[{"name": n, "args": a, "id": i, "type": "tool_call"} for n, a, i in calls],
        usage_metadata={"input_tokens": usage[0], "output_tokens": usage[1], "total_tokens": sum(usage)},
        response_metadata={"model_name": "gpt-4o-mini"},
    )


def fake(*messages: AIMessage) -> ToolCallingFake:
    return ToolCallingFake(messages=iter(messages))


def forever(name: str, args: dict) -> ToolCallingFake:
    def gen():
        i = 0
        while True:
            i += 1
            yield ai(calls=[(name, args, f"call_{i}")], usage=(1, 1))

    return ToolCallingFake(messages=gen())


def varying(name: str) -> ToolCallingFake:
    def gen():
        i = 0
        while True:
            i += 1
            yield ai(calls=[(name, {"q": f"v{i}"}, f"call_{i}")], usage=(1, 1))

    return ToolCallingFake(messages=gen())


@lc_tool
def lookup(q: str) -> str:
    """Look something up."""
    return q.upper()


@lc_tool
def delete_account(user: str) -> str:
    """Delete an account."""
    return "deleted " + user


def react(model: Any, tools: list, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_react_agent(model, tools, **kwargs)


def test_react_agent_run_tool_and_model_steps(telemetry, instrument):
    instrument("langchain", "langgraph")
    agent = react(
        fake(ai(calls=[("lookup", {"q": "otel"}, "call_1")], usage=(10, 5)), ai("done", usage=(20, 3))),
        [lookup],
        name="react-agent",
    )
    result = agent.invoke({"messages": [("user", "find otel")]})
    assert result["messages"][-1].content == "done"

    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent react-agent")
    assert root.parent is None
    run_id = root.attributes["agent.run_id"]
    assert [s.name for s in children(root, spans)] == [
        "chat gpt-4o-mini",
        "execute_tool lookup",
        "chat gpt-4o-mini",
    ]
    assert steps(root, spans) == [
        (1, "chat gpt-4o-mini"),
        (2, "execute_tool lookup"),
        (3, "chat gpt-4o-mini"),
    ]
    tool_span = one(spans, "execute_tool lookup")
    assert tool_span.attributes["gen_ai.tool.name"] == "lookup"
    assert tool_span.attributes["gen_ai.tool.call.id"] == "call_1"
    assert tool_span.attributes["agent.run_id"] == run_id
    assert tool_span.attributes["agent.tool.args_sha"] == sha({"q": "otel"})
    assert tool_span.attributes["agent.tool.result_sha"] == sha("OTEL")
    assert tool_span.attributes["agent.tool.status"] == "ok"
    first_chat = children(root, spans)[0]
    assert first_chat.attributes["gen_ai.usage.input_tokens"] == 10
    assert first_chat.attributes["gen_ai.usage.output_tokens"] == 5
    assert first_chat.attributes["gen_ai.response.model"] == "gpt-4o-mini"
    assert root.attributes["agent.usage.input_tokens"] == 30
    assert root.attributes["agent.usage.output_tokens"] == 8
    assert root.attributes["agent.tool_calls"] == 1 and root.attributes["agent.steps"] == 3
    assert root.attributes["agent.stop_reason"] == "completed"
    assert root.attributes["agent.input_sha"] == sha({"messages": [("user", "find otel")]})
    assert stop_event(root)["agent.stop_reason"] == "completed"
    (event,) = telemetry.events("tool_result")
    assert (event["tool"], event["step_id"], event["args_sha"]) == ("lookup", 2, sha({"q": "otel"}))
    (stop,) = telemetry.events("stop")
    assert stop["stop_reason"] == "completed" and stop["usage"]["tool_calls"] == 1
    stops = [p.value for a, p in telemetry.metrics()["agent.stop"] if a["agent"] == "react-agent" and p.value]
    assert stops == [1]  # (the other stop reasons' series are at 0)


async def test_async_graph_run(telemetry, instrument):
    instrument("langchain", "langgraph")
    agent = react(fake(ai(calls=[("lookup", {"q": "a"}, "c1")]), ai("ok")), [lookup], name="async-react")
    await agent.ainvoke({"messages": [("user", "go")]})
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent async-react")
    assert steps(root, spans) == [
        (1, "chat gpt-4o-mini"),
        (2, "execute_tool lookup"),
        (3, "chat gpt-4o-mini"),
    ]
    assert root.attributes["agent.stop_reason"] == "completed"


def small_graph(model: Any, tools: list, name: str) -> Any:
    """A hand-built agent graph (model node + ToolNode), without the ReAct agent's remaining-steps guard."""

    def call_model(state: MessagesState) -> dict:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", call_model)
    # Errors propagate (the default of langgraph 1.x; 0.x turned every error into a message).
    builder.add_node("tools", ToolNode(tools, handle_tool_errors=False))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", tools_condition)
    builder.add_edge("tools", "model")
    return builder.compile(name=name)


def test_small_graph_counts_steps_in_order(telemetry, instrument):
    instrument("langchain", "langgraph")
    graph = small_graph(fake(ai(calls=[("lookup", {"q": "z"}, "z1")]), ai("fin")), [lookup], "small")
    assert graph.invoke({"messages": [("user", "x")]})["messages"][-1].content == "fin"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent small")
    assert steps(root, spans) == [
        (1, "chat gpt-4o-mini"),
        (2, "execute_tool lookup"),
        (3, "chat gpt-4o-mini"),
    ]


def test_recursion_limit_stops_with_max_steps(telemetry, instrument):
    instrument("langchain", "langgraph")
    # Different args each time, so loop detection does not stop it first.
    graph = small_graph(varying("lookup"), [lookup], "looper")
    with pytest.raises(GraphRecursionError):
        graph.invoke({"messages": [("user", "x")]}, {"recursion_limit": 4})
    root = one(ours(telemetry.spans()), "invoke_agent looper")
    assert root.attributes["agent.stop_reason"] == "max_steps"
    assert root.attributes["error.type"] == "GraphRecursionError"
    assert root.status.status_code.name == "UNSET"  # a limit, not a failure
    assert stop_event(root)["agent.stop_reason"] == "max_steps"


def test_manual_tool_decorator_on_the_same_function_gives_one_span(telemetry, instrument):
    instrument("langchain", "langgraph")

    @lc_tool
    @agent_otel.tool
    def weather(city: str) -> str:
        """Weather for a city."""
        return "sunny in " + city

    agent = react(
        fake(ai(calls=[("weather", {"city": "Oslo"}, "w1")]), ai("fine")), [weather], name="one-span"
    )
    agent.invoke({"messages": [("user", "weather?")]})
    spans = ours(telemetry.spans())
    tool_spans = [s for s in spans if s.name.startswith("execute_tool")]
    assert [s.name for s in tool_spans] == ["execute_tool weather"]
    assert tool_spans[0].attributes["gen_ai.tool.call.id"] == "w1"
    assert one(spans, "invoke_agent one-span").attributes["agent.tool_calls"] == 1


def test_graph_inside_a_user_run_joins_it(telemetry, instrument):
    instrument("langchain", "langgraph")
    agent = react(fake(ai(calls=[("lookup", {"q": "a"}, "c1")]), ai("ok")), [lookup], name="inner")
    with agent_otel.run("outer-agent") as run:
        agent.invoke({"messages": [("user", "go")]})
    spans = ours(telemetry.spans())
    assert not [s for s in spans if s.name == "invoke_agent inner"]
    root = one(spans, "invoke_agent outer-agent")
    assert steps(root, spans) == [
        (1, "chat gpt-4o-mini"),
        (2, "execute_tool lookup"),
        (3, "chat gpt-4o-mini"),
    ]
    assert run.result.usage["tool_calls"] == 1


def test_graph_called_from_a_tool_is_a_sub_agent(telemetry, instrument):
    instrument("langchain", "langgraph")
    inner = react(
        fake(ai(calls=[("lookup", {"q": "b"}, "c9")]), ai("inner done")), [lookup], name="researcher"
    )

    @lc_tool
    def research(topic: str) -> str:
        """Ask the research agent."""
        return inner.invoke({"messages": [("user", topic)]})["messages"][-1].content

    outer = react(
        fake(ai(calls=[("research", {"topic": "t"}, "r1")]), ai("all done")), [research], name="boss"
    )
    outer.invoke({"messages": [("user", "go")]})
    spans = ours(telemetry.spans())
    boss = one(spans, "invoke_agent boss")
    sub = one(spans, "invoke_agent researcher")
    research_span = one(spans, "execute_tool research")
    assert parent_of(sub, spans) is research_span
    assert sub.attributes["agent.parent_run_id"] == boss.attributes["agent.run_id"]
    assert steps(sub, spans) == [(1, "chat gpt-4o-mini"), (2, "execute_tool lookup"), (3, "chat gpt-4o-mini")]
    assert steps(boss, spans) == [
        (1, "chat gpt-4o-mini"),
        (2, "execute_tool research"),
        (3, "chat gpt-4o-mini"),
    ]
    assert sub.attributes["agent.stop_reason"] == "completed"


def test_handled_tool_error_marks_the_span_error_and_the_run_goes_on(telemetry, instrument):
    instrument("langchain", "langgraph")

    @lc_tool
    def flaky(x: int) -> str:
        """Fails."""
        raise ToolException("backend down")

    flaky.handle_tool_error = True

    agent = react(fake(ai(calls=[("flaky", {"x": 1}, "f1")]), ai("sorry")), [flaky], name="flaky-agent")
    out = agent.invoke({"messages": [("user", "go")]})
    assert out["messages"][-1].content == "sorry"
    spans = ours(telemetry.spans())
    tool_span = one(spans, "execute_tool flaky")
    assert tool_span.attributes["agent.tool.status"] == "error"
    assert tool_span.attributes["error.type"] == "ToolException"
    assert one(spans, "invoke_agent flaky-agent").attributes["agent.stop_reason"] == "completed"


def test_unhandled_tool_error_ends_the_run_with_tool_error(telemetry, instrument):
    instrument("langchain", "langgraph")

    @lc_tool
    def broken(x: int) -> str:
        """Raises."""
        raise RuntimeError("bug")

    agent = react(
        fake(ai(calls=[("broken", {"x": 1}, "b1")])),
        ToolNode([broken], handle_tool_errors=False),
        name="broken-agent",
    )
    with pytest.raises(RuntimeError, match="bug"):
        agent.invoke({"messages": [("user", "go")]})
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent broken-agent")
    assert root.attributes["agent.stop_reason"] == "tool_error"
    assert root.status.status_code.name == "ERROR"


@pytest.mark.parametrize("handle_tool_errors", [False, True])
def test_denied_tool_stops_the_graph_with_policy_denied(guarded, instrument, handle_tool_errors):
    telemetry = guarded({"policy": {"deny": {"*": ["delete_*"]}}})
    instrument("langchain", "langgraph")
    model = fake(ai(calls=[("delete_account", {"user": "bob"}, "d1")]), ai("should not get here"))
    agent = react(model, ToolNode([delete_account], handle_tool_errors=handle_tool_errors), name="deleter")
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        agent.invoke({"messages": [("user", "delete bob")]})
    assert stopped.value.stop_reason == "policy_denied"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent deleter")
    assert root.attributes["agent.stop_reason"] == "policy_denied"
    assert not [s for s in spans if s.name == "execute_tool delete_account"]  # never ran
    guard_events = [e for e in root.events if e.name == "agent.guard"]
    assert guard_events and guard_events[0].attributes["guard"] == "policy"
    assert steps(root, spans) == [(1, "chat gpt-4o-mini")]


@pytest.mark.parametrize("handle_tool_errors", [False, True])
def test_a_tool_denied_with_on_deny_raise_never_runs(guarded, instrument, handle_tool_errors):
    """``guards.policy.on_deny: raise`` raises ToolDenied into the framework instead of stopping the run;
    the denied tool must still never run (the shared framework-tool helper once swallowed ToolDenied as
    a telemetry failure and ran the tool untraced)."""
    telemetry = guarded({"policy": {"deny": {"*": ["wipe"]}, "on_deny": "raise"}})
    instrument("langchain", "langgraph")
    ran: list[str] = []

    @lc_tool
    def wipe(user: str) -> str:
        """Wipe an account."""
        ran.append(user)
        return "wiped " + user

    model = fake(ai(calls=[("wipe", {"user": "bob"}, "w1")]), ai("could not wipe bob"))
    agent = react(model, ToolNode([wipe], handle_tool_errors=handle_tool_errors), name="wiper")
    if handle_tool_errors:  # LangGraph tells the model the call failed, and the agent carries on
        result = agent.invoke({"messages": [("user", "wipe bob")]})
        assert "blocked by policy" in result["messages"][-2].content
        reason = "completed"
    else:
        with pytest.raises(agent_otel.ToolDenied):
            agent.invoke({"messages": [("user", "wipe bob")]})
        reason = "policy_denied"
    assert ran == []  # never ran
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent wiper")
    assert root.attributes["agent.stop_reason"] == reason
    assert not [s for s in spans if s.name == "execute_tool wipe"]
    assert [e.attributes["guard"] for e in root.events if e.name == "agent.guard"] == ["policy"]


def test_looping_tool_call_stops_the_graph_with_loop_detected(guarded, instrument):
    telemetry = guarded({"loop": {"max_repeats": 2}})
    instrument("langchain", "langgraph")
    agent = react(forever("lookup", {"q": "same"}), [lookup], name="stuck")
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        agent.invoke({"messages": [("user", "x")]}, {"recursion_limit": 50})
    assert stopped.value.stop_reason == "loop_detected"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent stuck")
    assert root.attributes["agent.stop_reason"] == "loop_detected"
    assert root.attributes["agent.tool_calls"] == 2  # the third identical call was refused
    assert len([s for s in spans if s.name == "execute_tool lookup"]) == 2


def test_budget_of_a_user_run_stops_the_model_call(telemetry, instrument):
    instrument("langchain", "langgraph")
    agent = react(forever("lookup", {"q": "n"}), [lookup], name="budgeted")
    with (
        pytest.raises(agent_otel.AgentStopped),
        agent_otel.run("wrapper", budget=agent_otel.Budget(max_steps=3)) as run,
    ):
        agent.invoke({"messages": [("user", "x")]})
    assert run.result.stop_reason == "max_steps"
    assert run.result.usage["steps"] == 3


def test_langchain_create_agent(telemetry, instrument):
    agents = pytest.importorskip("langchain.agents")
    instrument("langchain", "langgraph")
    agent = agents.create_agent(
        fake(ai(calls=[("lookup", {"q": "lc"}, "l1")], usage=(7, 2)), ai("done", usage=(9, 1))),
        [lookup],
        name="lc-agent",
    )
    agent.invoke({"messages": [("user", "go")]})
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent lc-agent")
    assert steps(root, spans) == [
        (1, "chat gpt-4o-mini"),
        (2, "execute_tool lookup"),
        (3, "chat gpt-4o-mini"),
    ]
    assert root.attributes["agent.usage.input_tokens"] == 16
    assert root.attributes["agent.stop_reason"] == "completed"


def test_guard_tool_timeout_applies_to_framework_tools(guarded, instrument):
    telemetry = guarded({"tool_timeout_s": 0.05})
    instrument("langchain", "langgraph")

    @lc_tool
    def hang(x: int) -> str:
        """Hangs."""
        time.sleep(0.5)
        return "late"

    graph = small_graph(fake(ai(calls=[("hang", {"x": 1}, "h1")]), ai("never")), [hang], "hanging")
    with pytest.raises(ToolTimeout):
        graph.invoke({"messages": [("user", "x")]})
    spans = ours(telemetry.spans())
    assert one(spans, "execute_tool hang").attributes["error.type"] == "ToolTimeout"
    root = one(spans, "invoke_agent hanging")
    assert root.attributes["agent.stop_reason"] == "tool_timeout"
    assert root.status.status_code.name == "ERROR"


def test_stopping_a_stream_early_ends_the_run_cancelled(telemetry, instrument):
    instrument("langchain", "langgraph")
    graph = small_graph(varying("lookup"), [lookup], "streamed")
    stream = graph.stream({"messages": [("user", "x")]}, {"recursion_limit": 50}, stream_mode="updates")
    first = next(stream)
    assert "model" in first
    assert agent_otel.current_run() is not None  # the graph's run, while the caller iterates
    stream.close()
    assert agent_otel.current_run() is None
    root = one(ours(telemetry.spans()), "invoke_agent streamed")
    assert root.attributes["agent.stop_reason"] == "cancelled"


class StreamingWithUsage(ToolCallingFake):
    """The fake's token stream plus a final usage-only chunk, as OpenAI sends with include_usage."""

    def _stream(self, *args: Any, **kwargs: Any) -> Any:
        yield from super()._stream(*args, **kwargs)
        usage = {"input_tokens": 12, "output_tokens": 4, "total_tokens": 16}
        yield ChatGenerationChunk(message=AIMessageChunk(content="", usage_metadata=usage))


async def test_chat_model_streaming_inside_a_user_run(telemetry, instrument):
    instrument("langchain")
    model = StreamingWithUsage(messages=iter([AIMessage(content="streamed reply")]))
    async with agent_otel.run("streaming-user") as run:
        chunks = [chunk async for chunk in model.astream("hi")]
    assert "".join(c.content for c in chunks) == "streamed reply"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent streaming-user")
    chat = one(spans, "chat gpt-4o-mini")
    assert children(root, spans) == [chat]
    assert chat.attributes["gen_ai.usage.input_tokens"] == 12
    assert chat.attributes["gen_ai.usage.output_tokens"] == 4
    assert run.result.usage["llm_calls"] == 1


def test_chat_model_cache_reads_are_priced_at_the_cached_price(telemetry, instrument):
    instrument("langchain")
    message = ai("ok", usage=(1000, 50))
    message.usage_metadata["input_token_details"] = {"cache_read": 800}
    with agent_otel.run("lc-cached") as run:
        fake(message).invoke("hi")
    chat = one(ours(telemetry.spans()), "chat gpt-4o-mini")
    assert chat.attributes["gen_ai.usage.input_tokens"] == 1000  # LangChain's input_tokens include the cache
    assert chat.attributes["gen_ai.usage.cache_read.input_tokens"] == 800
    # gpt-4o-mini: 200 * 0.15 + 800 * 0.075 (cached) + 50 * 0.60 = 120 USD per 1M tokens
    assert chat.attributes["agent.cost_usd"] == pytest.approx(120 / 1e6)
    assert run.cost_usd == pytest.approx(120 / 1e6)


def test_parallel_tool_calls_through_a_tool_node_are_each_a_step_of_the_run(telemetry, instrument):
    """ToolNode runs the calls of one AI message on threads (one fails and ToolNode tells the model; one
    is an ``@agent_otel.tool`` function, which claims its call): each its own step with its call id, a
    child of the run, none lost."""

    @lc_tool
    def fetch(q: str) -> str:
        """Fetch."""
        time.sleep(0.02)
        if q == "bad":
            raise ValueError("bad")
        return q.upper()

    @agent_otel.tool(name="decorated")
    def stamp(q: str) -> str:
        """Stamp."""
        time.sleep(0.02)
        return q

    instrument("langchain", "langgraph")
    calls = [("fetch", {"q": "a"}, "c1"), ("fetch", {"q": "bad"}, "c2"), ("stamp", {"q": "d"}, "c3")]
    node = ToolNode([fetch, lc_tool(stamp)], handle_tool_errors=True)
    agent = react(fake(ai(calls=calls), ai("done")), node, name="fan-out")
    assert agent.invoke({"messages": [("user", "go")]})["messages"][-1].content == "done"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent fan-out")
    tools = sorted(
        (s for s in spans if s.name.startswith("execute_tool")),
        key=lambda s: s.attributes["gen_ai.tool.call.id"],
    )
    assert [
        (s.name, s.attributes["gen_ai.tool.call.id"], s.attributes["agent.tool.status"]) for s in tools
    ] == [
        ("execute_tool fetch", "c1", "ok"),
        ("execute_tool fetch", "c2", "error"),
        ("execute_tool stamp", "c3", "ok"),
    ]
    assert all(parent_of(s, spans) is root for s in tools)
    assert root.attributes["agent.tool_calls"] == 3 and root.attributes["agent.stop_reason"] == "completed"
