"""LangGraph human in the loop under agent-otel: interrupt(), resume, Command(resume=...), streaming.

Without agent-otel these graphs pause and resume; with it they must do exactly the same (agent-otel 0.x
raised ``AttributeError: ... 'on_interrupt'`` out of ``invoke``), and the pause is recorded as a pause:
stop reason ``interrupted`` (class ``pause``, span status UNSET), and the resume is a new run of the same
conversation (``gen_ai.conversation.id`` = ``thread_id``) that links to the paused run.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any, TypedDict

import pytest
from opentelemetry.trace import StatusCode

import agent_otel
from tests.integrations.conftest import one, ours, stop_event

pytest.importorskip("langgraph")

from langchain_core.messages import AIMessage
from langchain_core.tools import tool as lc_tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from tests.integrations.test_langgraph import ToolCallingFake, ai

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from langgraph.prebuilt import create_react_agent


class State(TypedDict, total=False):
    request: str
    answer: str


def approval_graph(name: str = "approver") -> Any:
    def prepare(state: State) -> State:
        return {"request": state["request"] + "!"}

    def ask(state: State) -> State:
        return {"answer": interrupt({"question": f"approve {state['request']}?"})}

    g = StateGraph(State)
    g.add_node("prepare", prepare)
    g.add_node("ask", ask)
    g.add_edge(START, "prepare")
    g.add_edge("prepare", "ask")
    g.add_edge("ask", END)
    return g.compile(checkpointer=InMemorySaver(), name=name)


def config(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def runs_of(telemetry, name: str) -> list[Any]:
    return sorted(
        [s for s in ours(telemetry.spans()) if s.name == f"invoke_agent {name}"], key=lambda s: s.start_time
    )


def assert_paused_then_resumed(telemetry, name: str, thread: str) -> None:
    """Two runs of the thread: the first paused (not failed), the second its resume, linked to it."""
    paused, resumed = runs_of(telemetry, name)
    assert paused.attributes["agent.stop_reason"] == "interrupted"
    assert paused.status.status_code is StatusCode.UNSET  # a pause is not an error
    assert stop_event(paused)["stop_class"] == "pause"
    assert "error.type" not in paused.attributes
    (interrupt_event,) = [e for e in paused.events if e.name == "agent.interrupt"]
    assert interrupt_event.attributes["interrupts"] == 1
    assert len(interrupt_event.attributes["interrupt_ids"]) == 1
    assert paused.attributes["gen_ai.conversation.id"] == thread
    assert resumed.attributes["gen_ai.conversation.id"] == thread
    assert resumed.attributes["agent.stop_reason"] == "completed"
    assert resumed.attributes["agent.resume_of"] == paused.attributes["agent.run_id"]
    assert resumed.context.trace_id != paused.context.trace_id  # each run is its own trace
    (link,) = resumed.links
    assert link.context.span_id == paused.context.span_id
    assert link.attributes["agent.run_id"] == paused.attributes["agent.run_id"]
    records = {r["run_id"]: r for r in telemetry.sink.runs() if r["status"] != "running"}
    first = records[paused.attributes["agent.run_id"]]
    assert (first["status"], first["stop_reason"], first["conversation_id"]) == (
        "pause",
        "interrupted",
        thread,
    )
    assert records[resumed.attributes["agent.run_id"]]["conversation_id"] == thread
    stops = {(p["agent"], p["stop_reason"]) for p, _ in telemetry.metrics()["agent.stop"]}
    assert (name, "interrupted") in stops and (name, "completed") in stops


def test_interrupt_pauses_and_command_resume_is_a_new_linked_run(telemetry, instrument):
    instrument("langchain", "langgraph")
    graph = approval_graph()
    first = graph.invoke({"request": "refund"}, config("t-1"))
    (pending,) = first["__interrupt__"]
    assert pending.value == {"question": "approve refund!?"}
    second = graph.invoke(Command(resume="yes"), config("t-1"))
    assert second == {"request": "refund!", "answer": "yes"}
    assert_paused_then_resumed(telemetry, "approver", "t-1")


async def test_async_interrupt_and_resume(telemetry, instrument):
    instrument("langchain", "langgraph")
    graph = approval_graph("async-approver")
    first = await graph.ainvoke({"request": "refund"}, config("t-2"))
    assert first["__interrupt__"]
    second = await graph.ainvoke(Command(resume="no"), config("t-2"))
    assert second["answer"] == "no"
    assert_paused_then_resumed(telemetry, "async-approver", "t-2")


MODES = ["values", "updates", "messages", "custom", "debug", "tasks", ["updates", "messages", "custom"]]


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_stream_with_interrupt_in_every_stream_mode(telemetry, instrument, mode):
    instrument("langchain", "langgraph")
    graph = approval_graph("streamer")
    thread = f"s-{mode}"
    list(graph.stream({"request": "r"}, config(thread), stream_mode=mode))
    list(graph.stream(Command(resume="ok"), config(thread), stream_mode=mode))
    assert graph.get_state(config(thread)).values["answer"] == "ok"
    assert_paused_then_resumed(telemetry, "streamer", thread)


@pytest.mark.parametrize("mode", MODES, ids=str)
async def test_astream_with_interrupt_in_every_stream_mode(telemetry, instrument, mode):
    instrument("langchain", "langgraph")
    graph = approval_graph("astreamer")
    thread = f"as-{mode}"
    async for _ in graph.astream({"request": "r"}, config(thread), stream_mode=mode):
        pass
    async for _ in graph.astream(Command(resume="ok"), config(thread), stream_mode=mode):
        pass
    assert (await graph.aget_state(config(thread))).values["answer"] == "ok"
    assert_paused_then_resumed(telemetry, "astreamer", thread)


def test_a_consumer_that_stops_at_the_interrupt_has_paused_not_cancelled(telemetry, instrument):
    instrument("langchain", "langgraph")
    graph = approval_graph("breaker")
    for chunk in graph.stream({"request": "r"}, config("b-1"), stream_mode="updates"):
        if "__interrupt__" in chunk:
            break
    graph.invoke(Command(resume="ok"), config("b-1"))
    assert_paused_then_resumed(telemetry, "breaker", "b-1")


def test_a_consumer_that_stops_before_any_interrupt_cancelled_the_run(telemetry, instrument):
    instrument("langchain", "langgraph")
    graph = approval_graph("quitter")
    for _ in graph.stream({"request": "r"}, config("q-1"), stream_mode="updates"):
        break
    (run,) = runs_of(telemetry, "quitter")
    assert run.attributes["agent.stop_reason"] == "cancelled"


def test_resume_inside_the_users_own_run_completes_that_run(telemetry, instrument):
    """In the user's agent_otel.run the graph's steps join the run; a resume within it un-pauses it."""
    instrument("langchain", "langgraph")
    graph = approval_graph("inner")
    with agent_otel.run("operator", conversation_id="t-own") as run:
        graph.invoke({"request": "r"}, config("t-own"))
        graph.invoke(Command(resume="ok"), config("t-own"))
    assert run.result.stop_reason == "completed"
    with agent_otel.run("operator") as paused:
        graph.invoke({"request": "again"}, config("t-own2"))
    assert paused.result.stop_reason == "interrupted"
    assert paused.conversation_id == "t-own2"  # the run the user started took the graph's thread


@lc_tool
def refund(order: str) -> str:
    """Refund an order once a human approved it."""
    decision = interrupt({"approve_refund": order})
    return f"refund {order}: {decision}"


def test_a_tool_that_asks_for_approval_is_interrupted_not_failed(telemetry, instrument):
    instrument("langchain", "langgraph")
    model = ToolCallingFake(
        messages=iter(
            [
                ai(calls=[("refund", {"order": "o-7"}, "call_1")], usage=(10, 5)),
                ai("refunded", usage=(12, 2)),
            ]
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agent = create_react_agent(model, [refund], checkpointer=InMemorySaver(), name="refunder")
    first = agent.invoke({"messages": [("user", "refund o-7")]}, config("r-1"))
    assert first["__interrupt__"][0].value == {"approve_refund": "o-7"}
    final = agent.invoke(Command(resume="approved"), config("r-1"))
    assert isinstance(final["messages"][-1], AIMessage) and final["messages"][-1].content == "refunded"
    assert_paused_then_resumed(telemetry, "refunder", "r-1")
    paused, resumed = runs_of(telemetry, "refunder")
    tools = sorted(
        [s for s in ours(telemetry.spans()) if s.name == "execute_tool refund"], key=lambda s: s.start_time
    )
    assert [t.attributes["agent.run_id"] for t in tools] == [
        paused.attributes["agent.run_id"],
        resumed.attributes["agent.run_id"],
    ]
    assert tools[0].attributes["agent.tool.status"] == "interrupted"
    assert tools[0].status.status_code is StatusCode.UNSET and "error.type" not in tools[0].attributes
    assert tools[1].attributes["agent.tool.status"] == "ok"
    statuses = [e["status"] for e in telemetry.events("tool_result")]
    assert statuses == ["interrupted", "ok"]


def test_the_lifecycle_handler_is_not_added_outside_a_run(telemetry, instrument):
    """Graphs run outside any agent-otel run (instrumentation off for them) get no lifecycle handler."""
    instrument("langchain", "langgraph")
    from langgraph.pregel import main

    manager = main.get_sync_graph_callback_manager_for_config({})
    assert manager.handlers == []
    with agent_otel.run("x"):
        assert len(main.get_sync_graph_callback_manager_for_config({}).handlers) == 1


def test_concurrent_threads_each_pause_and_resume_their_own_run(telemetry, instrument):
    instrument("langchain", "langgraph")
    graph = approval_graph("many")

    async def conversation(i: int) -> None:
        await graph.ainvoke({"request": f"r{i}"}, config(f"c-{i}"))
        await graph.ainvoke(Command(resume=f"ok{i}"), config(f"c-{i}"))

    async def main() -> None:
        await asyncio.gather(*(conversation(i) for i in range(5)))

    asyncio.run(main())
    spans = runs_of(telemetry, "many")
    by_thread: dict[str, list[Any]] = {}
    for span in spans:
        by_thread.setdefault(span.attributes["gen_ai.conversation.id"], []).append(span)
    assert sorted(by_thread) == [f"c-{i}" for i in range(5)]
    for runs in by_thread.values():
        paused, resumed = runs
        assert paused.attributes["agent.stop_reason"] == "interrupted"
        assert resumed.attributes["agent.resume_of"] == paused.attributes["agent.run_id"]


def test_without_a_checkpointer_the_graph_answers_as_it_does_without_agent_otel(telemetry, instrument):
    def ask(state: State) -> State:
        return {"answer": interrupt("?")}

    g = StateGraph(State)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    graph = g.compile(name="no-checkpointer")
    plain = graph.invoke({"request": "r"})
    instrument("langchain", "langgraph")
    traced = graph.invoke({"request": "r"})
    assert [i.value for i in traced.pop("__interrupt__")] == [i.value for i in plain.pop("__interrupt__")]
    assert traced == plain
    run = one(ours(telemetry.spans()), "invoke_agent no-checkpointer")
    assert run.attributes["agent.stop_reason"] == "interrupted"
    assert "gen_ai.conversation.id" not in run.attributes  # no thread, no conversation


# --- no exception of agent-otel's own reaches the graph --------------------------------------------------


def test_an_event_the_handler_does_not_know_is_ignored(telemetry, instrument):
    from langchain_core.callbacks.manager import handle_event

    from agent_otel.integrations import _active

    instrument("langchain")
    handler = _active["langchain"]._handler
    handle_event([handler], "on_something_a_newer_langchain_sends", None, object())  # must not raise


def test_failures_inside_the_callback_handler_never_reach_the_graph(
    telemetry, instrument, monkeypatch, caplog
):
    from agent_otel import llm
    from tests.integrations.test_langgraph import ai, fake, lookup, react

    instrument("langchain", "langgraph")

    def broken_begin(*args, **kwargs):
        raise RuntimeError("agent-otel bug")

    monkeypatch.setattr(llm, "begin", broken_begin)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agent = react(fake(ai(calls=[("lookup", {"q": "x"}, "call_1")]), ai("done")), [lookup], name="robust")
    assert agent.invoke({"messages": [("user", "x")]})["messages"][-1].content == "done"
    assert "agent-otel: error while starting a LangChain model step" in caplog.text


def test_a_raising_span_processor_does_not_break_interrupt_and_resume(telemetry, instrument):
    from opentelemetry import trace

    class Raising:
        def on_start(self, span, parent_context=None):
            raise ValueError("application processor bug")

        def _on_ending(self, span):
            raise ValueError("application processor bug")

        def on_end(self, span):
            raise ValueError("application processor bug")

        def shutdown(self):
            pass

        def force_flush(self, timeout_millis=0):
            return True

    provider = trace.get_tracer_provider()
    processors = provider._active_span_processor._span_processors
    provider._active_span_processor._span_processors = (Raising(), *processors)
    try:
        instrument("langchain", "langgraph")
        graph = approval_graph("sturdy")
        assert graph.invoke({"request": "x"}, config("r-x"))["__interrupt__"]
        assert graph.invoke(Command(resume="ok"), config("r-x"))["answer"] == "ok"
    finally:
        provider._active_span_processor._span_processors = processors
