"""Frameworks' control flow under agent-otel, with the real frameworks and fake models.

LangGraph's ``interrupt()`` (GraphInterrupt) and ``Command(graph=Command.PARENT)`` (ParentCommand),
PydanticAI's ``ApprovalRequired`` / ``CallDeferred`` / ``ModelRetry`` are exceptions that are not errors.
With ``agent_otel.setup()`` an agent using them must do exactly what it does without: the same answers,
each tool body run as many times (an ``agent_otel.Retry`` never runs an interrupted tool again), and the
runs recorded with the right stop: ``interrupted`` for a pause, ``completed`` for a handoff.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

import pytest

import agent_otel
from tests.integrations.conftest import one, ours

try:  # the tools' annotations are resolved in this module's globals
    import pydantic_ai as pai
except ImportError:  # (the PydanticAI tests then skip, or fail with CI=true)
    pai = None

NO_WAIT = agent_otel.Retry(max_attempts=3, base_delay_s=0)


def spans_named(telemetry: Any, name: str) -> list[Any]:
    return sorted([s for s in ours(telemetry.spans()) if s.name == name], key=lambda s: s.start_time)


# --- LangGraph -----------------------------------------------------------------------------------------


class State(TypedDict, total=False):
    request: str
    answer: str
    route: str


def _langgraph() -> Any:
    pytest.importorskip("langgraph")
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Command, interrupt

    return InMemorySaver, StateGraph, START, END, Command, interrupt


def approval_graph(asked: list[str]) -> Any:
    """A node that asks a human through an ``@agent_otel.tool`` with a retry policy."""
    InMemorySaver, StateGraph, START, END, _, interrupt = _langgraph()

    @agent_otel.tool(name="ask_human", retry=NO_WAIT)
    def ask_human(question: str) -> str:
        asked.append(question)
        return interrupt({"question": question})

    def ask(state: State) -> State:
        return {"answer": ask_human(f"refund {state['request']}?")}

    g = StateGraph(State)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    g.add_edge("ask", END)
    return g.compile(checkpointer=InMemorySaver(), name="refunds")


def config(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def test_langgraph_interrupt_in_a_retried_tool_pauses_once_and_resumes(telemetry, instrument):
    """LangGraph runs the node again on resume (that is how ``interrupt()`` returns the answer); a retry
    of agent-otel's on top asked the human three times before the graph could even pause."""
    _, _, _, _, Command, _ = _langgraph()
    instrument("langgraph", "langchain")
    asked: list[str] = []
    graph = approval_graph(asked)
    paused = graph.invoke({"request": "r-7"}, config("t-1"))
    assert [i.value for i in paused["__interrupt__"]] == [{"question": "refund r-7?"}]
    assert asked == ["refund r-7?"]
    done = graph.invoke(Command(resume="yes"), config("t-1"))
    assert done["answer"] == "yes" and asked == ["refund r-7?"] * 2

    first, second = spans_named(telemetry, "invoke_agent refunds")
    assert first.attributes["agent.stop_reason"] == "interrupted"
    assert first.status.status_code.name == "UNSET" and "error.type" not in first.attributes
    assert second.attributes["agent.stop_reason"] == "completed"
    assert second.attributes["agent.resume_of"] == first.attributes["agent.run_id"]
    paused_tool, answered_tool = spans_named(telemetry, "execute_tool ask_human")
    assert paused_tool.attributes["agent.tool.status"] == "interrupted"
    assert paused_tool.attributes["agent.tool.attempts"] == 1
    assert paused_tool.status.status_code.name == "UNSET" and "error.type" not in paused_tool.attributes
    assert answered_tool.attributes["agent.tool.status"] == "ok"


def test_langgraph_a_run_of_yours_inside_a_node_that_interrupts_is_interrupted(telemetry, instrument):
    InMemorySaver, StateGraph, START, END, Command, interrupt = _langgraph()
    instrument("langgraph", "langchain")
    runs: list[agent_otel.Run] = []

    def review(state: State) -> State:
        with agent_otel.run("reviewer") as run:
            runs.append(run)
            return {"answer": interrupt("ok?")}

    g = StateGraph(State)
    g.add_node("review", review)
    g.add_edge(START, "review")
    g.add_edge("review", END)
    graph = g.compile(checkpointer=InMemorySaver(), name="reviews")
    graph.invoke({"request": "x"}, config("t-2"))
    assert graph.invoke(Command(resume="fine"), config("t-2"))["answer"] == "fine"
    assert [r.result.stop_reason for r in runs] == ["interrupted", "completed"]
    paused = spans_named(telemetry, "invoke_agent reviewer")[0]
    assert paused.status.status_code.name == "UNSET" and "error.type" not in paused.attributes


def handoff_graph(entered: list[str]) -> Any:
    """A parent graph whose triage node runs a subgraph through a retried ``@agent_otel.tool``; the
    subgraph hands over to the parent's ``billing`` node with ``Command(graph=Command.PARENT)``."""
    _, StateGraph, START, END, Command, _ = _langgraph()

    def decide(state: State) -> Command:
        entered.append("decide")
        return Command(graph=Command.PARENT, goto="billing", update={"route": "billing"})

    sub = StateGraph(State)
    sub.add_node("decide", decide)
    sub.add_edge(START, "decide")
    subgraph = sub.compile(name="triage-sub")

    @agent_otel.tool(name="triage", retry=NO_WAIT)
    def triage(request: str) -> Any:
        return subgraph.invoke({"request": request})

    def front(state: State) -> State:
        return triage(state["request"])

    def billing(state: State) -> State:
        entered.append("billing")
        return {"answer": f"billing handles {state['request']} ({state.get('route')})"}

    g = StateGraph(State)
    g.add_node("front", front, destinations=("billing",))
    g.add_node("billing", billing)
    g.add_edge(START, "front")
    g.add_edge("billing", END)
    return g.compile(name="desk")


def test_langgraph_parent_command_handoff_is_not_an_error_nor_retried(telemetry, instrument):
    instrument("langgraph", "langchain")
    entered: list[str] = []
    graph = handoff_graph(entered)
    result = graph.invoke({"request": "invoice 12"})
    assert result["answer"] == "billing handles invoice 12 (billing)"
    assert entered == ["decide", "billing"]

    desk = one(ours(telemetry.spans()), "invoke_agent desk")
    assert desk.attributes["agent.stop_reason"] == "completed" and desk.status.status_code.name == "OK"
    tool = one(ours(telemetry.spans()), "execute_tool triage")
    assert tool.attributes["agent.tool.status"] == "ok" and tool.attributes["agent.tool.attempts"] == 1
    assert tool.status.status_code.name != "ERROR" and "error.type" not in tool.attributes
    sub = one(ours(telemetry.spans()), "invoke_agent triage-sub")  # a sub-agent of the tool call
    assert sub.attributes["agent.stop_reason"] == "completed" and "error.type" not in sub.attributes


def test_langgraph_handoff_without_agent_otel_does_the_same(instrument):
    """The reference: what the graph does with nothing of agent-otel set up."""
    entered: list[str] = []
    assert handoff_graph(entered).invoke({"request": "invoice 12"})["route"] == "billing"
    assert entered == ["decide", "billing"]


# --- PydanticAI ----------------------------------------------------------------------------------------


def _pydantic_ai() -> Any:
    return pytest.importorskip("pydantic_ai")


def refund_agent(paid: list[int]) -> Any:
    """Refunds over 100 need a human's approval, asked for by the tool itself (ApprovalRequired)."""
    _pydantic_ai()
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import FunctionModel

    def model(messages: list[Any], info: Any) -> ModelResponse:
        returned = [p for m in messages for p in getattr(m, "parts", ()) if isinstance(p, ToolReturnPart)]
        if returned:
            return ModelResponse(parts=[TextPart(f"done: {returned[-1].content}")])
        return ModelResponse(parts=[ToolCallPart("refund", {"amount": 500}, tool_call_id="c1")])

    agent = pai.Agent(FunctionModel(model), name="refunder", output_type=[str, pai.DeferredToolRequests])

    @agent.tool
    def refund(ctx: pai.RunContext[None], amount: int) -> str:
        if amount > 100 and not ctx.tool_call_approved:
            raise pai.ApprovalRequired(metadata={"amount": amount})
        paid.append(amount)
        return f"refunded {amount}"

    return agent


def test_pydantic_ai_a_tool_asking_for_approval_is_interrupted_not_failed(telemetry, instrument):
    _pydantic_ai()
    instrument("pydantic_ai")
    paid: list[int] = []
    agent = refund_agent(paid)
    paused = agent.run_sync("refund 500")
    assert isinstance(paused.output, pai.DeferredToolRequests) and paid == []
    (call,) = paused.output.approvals
    approvals = pai.DeferredToolResults(approvals={call.tool_call_id: True})
    resumed = agent.run_sync(message_history=paused.all_messages(), deferred_tool_results=approvals)
    assert resumed.output == "done: refunded 500" and paid == [500]

    first, second = spans_named(telemetry, "invoke_agent refunder")
    assert first.attributes["agent.stop_reason"] == "interrupted"
    assert first.status.status_code.name == "UNSET" and "error.type" not in first.attributes
    assert second.attributes["agent.stop_reason"] == "completed"
    asked, done = spans_named(telemetry, "execute_tool refund")
    assert asked.attributes["agent.tool.status"] == "interrupted"
    assert asked.status.status_code.name == "UNSET" and "error.type" not in asked.attributes
    assert done.attributes["agent.tool.status"] == "ok"


def test_pydantic_ai_a_deferred_call_is_interrupted_not_failed(telemetry, instrument):
    _pydantic_ai()
    from pydantic_ai.models.test import TestModel

    instrument("pydantic_ai")
    agent = pai.Agent(TestModel(), name="dispatcher", output_type=[str, pai.DeferredToolRequests])

    @agent.tool_plain
    def start_job(job: str) -> str:
        raise pai.CallDeferred(metadata={"queue": "batch"})

    result = agent.run_sync("run the job")
    assert isinstance(result.output, pai.DeferredToolRequests) and len(result.output.calls) == 1
    root = one(ours(telemetry.spans()), "invoke_agent dispatcher")
    assert root.attributes["agent.stop_reason"] == "interrupted"
    tool = one(ours(telemetry.spans()), "execute_tool start_job")
    assert tool.attributes["agent.tool.status"] == "interrupted" and "error.type" not in tool.attributes


def test_pydantic_ai_model_retry_goes_to_the_model_and_is_never_retried_by_agent_otel(telemetry, instrument):
    """``ModelRetry`` asks the model to call again with better arguments: PydanticAI does that; an
    ``agent_otel.Retry`` on the tool function must not call it again with the same arguments."""
    _pydantic_ai()
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import FunctionModel

    answers = [
        ModelResponse(parts=[ToolCallPart("pick", {"n": 1}, tool_call_id="c1")]),
        ModelResponse(parts=[ToolCallPart("pick", {"n": 2}, tool_call_id="c2")]),
        ModelResponse(parts=[TextPart("picked 2")]),
    ]
    instrument("pydantic_ai")
    seen: list[int] = []

    @agent_otel.tool(name="pick_body", retry=NO_WAIT)
    def pick_body(n: int) -> int:
        seen.append(n)
        if n != 2:
            raise pai.ModelRetry("pick 2")
        return n

    agent = pai.Agent(FunctionModel(lambda messages, info: answers.pop(0)), name="picker")
    agent.tool_plain(pick_body, name="pick")
    assert agent.run_sync("pick").output == "picked 2"
    assert seen == [1, 2]

    root = one(ours(telemetry.spans()), "invoke_agent picker")
    assert root.attributes["agent.stop_reason"] == "completed" and root.status.status_code.name == "OK"
    # The function's step is its own span, or the framework's when it claimed that (one span, not two:
    # the case once any integration made a call claimable in the process); either way, one attempt each.
    for name in ("execute_tool pick", "execute_tool pick_body"):
        bodies = spans_named(telemetry, name)
        assert [b.attributes["agent.tool.status"] for b in bodies] in ([], ["error", "ok"])
        assert all(b.attributes["agent.tool.attempts"] == 1 for b in bodies)


def test_pydantic_ai_async_approval_with_a_retried_tool_body(telemetry, instrument):
    _pydantic_ai()
    from pydantic_ai.models.test import TestModel

    instrument("pydantic_ai")
    asked: list[str] = []

    @agent_otel.tool(name="guarded_delete", retry=NO_WAIT)
    async def guarded_delete(path: str) -> str:
        asked.append(path)
        raise pai.ApprovalRequired()

    agent = pai.Agent(TestModel(), name="janitor", output_type=[str, pai.DeferredToolRequests])
    agent.tool_plain(guarded_delete, name="delete")
    result = asyncio.run(agent.run("clean up"))
    assert isinstance(result.output, pai.DeferredToolRequests) and len(asked) == 1
    steps = [s for s in ours(telemetry.spans()) if s.name.startswith("execute_tool")]
    assert steps and {s.attributes["agent.tool.status"] for s in steps} == {"interrupted"}
    assert (
        one(ours(telemetry.spans()), "invoke_agent janitor").attributes["agent.stop_reason"] == "interrupted"
    )


def test_langgraph_a_drained_graph_is_cancelled_not_completed(telemetry, instrument):
    """``RunControl.request_drain()`` (a worker shutting down) stops the graph at the next step boundary
    with ``GraphDrained``: the run was cancelled, it did not finish."""
    InMemorySaver, StateGraph, START, END, _, _ = _langgraph()
    from langgraph.errors import GraphDrained
    from langgraph.runtime import RunControl

    instrument("langgraph", "langchain")
    control = RunControl()
    ran: list[str] = []

    def first(state: State) -> State:
        ran.append("first")
        control.request_drain("sigterm")
        return {"answer": "half"}

    def second(state: State) -> State:
        ran.append("second")
        return {"answer": "all"}

    g = StateGraph(State)
    g.add_node("first", first)
    g.add_node("second", second)
    g.add_edge(START, "first")
    g.add_edge("first", "second")
    g.add_edge("second", END)
    graph = g.compile(checkpointer=InMemorySaver(), name="drained")
    with pytest.raises(GraphDrained):
        graph.invoke({"request": "x"}, config("d-1"), control=control)
    assert ran == ["first"]
    root = one(ours(telemetry.spans()), "invoke_agent drained")
    assert root.attributes["agent.stop_reason"] == "cancelled"
    assert root.status.status_code.name == "UNSET"


# --- Microsoft Agent Framework -------------------------------------------------------------------------


def test_agent_framework_user_input_required_is_a_pause_never_retried(telemetry):
    """``UserInputRequiredException`` (a tool, e.g. an ``Agent.as_tool()`` sub-agent, that needs the user's
    input) is Agent Framework's pause: an ``@agent_otel.tool`` raising it is not retried and is
    ``interrupted``, and so is the run it leaves."""
    pytest.importorskip("agent_framework")
    from agent_framework.exceptions import UserInputRequiredException

    asked: list[int] = []

    @agent_otel.tool(name="delegate", retry=NO_WAIT)
    def delegate() -> None:
        asked.append(1)
        raise UserInputRequiredException(contents=[], message="needs the user's approval")

    with pytest.raises(UserInputRequiredException), agent_otel.run("front-desk") as run:
        delegate()
    assert asked == [1] and run.result.stop_reason == "interrupted"
    tool = one(ours(telemetry.spans()), "execute_tool delegate")
    assert tool.attributes["agent.tool.status"] == "interrupted"
