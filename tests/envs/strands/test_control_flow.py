"""Strands interrupts under agent-otel (``tool_context.interrupt()``, raised as ``InterruptException``): the
agent pauses and resumes as it does without agent-otel, the tool that asked is ``interrupted`` (not
``error``), an ``agent_otel.Retry`` on its body never asks the human again, and the run is ``interrupted``.
"""

from __future__ import annotations

from typing import Any

import pytest

import agent_otel
from tests.envs.strands.fake_model import FakeModel, text, tool_use

pytest.importorskip("strands")

from opentelemetry.trace import StatusCode
from strands import Agent, ToolContext, tool

MODEL = "claude-3-5-haiku-20241022"


def approval_agent(asked: list[int]) -> Any:
    contexts: list[ToolContext] = []  # (the context holds the agent: not an argument to hash)

    @agent_otel.tool(name="ask_human", retry=agent_otel.Retry(max_attempts=3, base_delay_s=0))
    def ask_human(amount: int) -> str:
        asked.append(amount)
        return contexts[-1].interrupt("approval", reason={"amount": amount})

    @tool(context=True)
    def refund(amount: int, tool_context: ToolContext) -> str:
        """Refund, once a human approved it."""
        contexts.append(tool_context)
        return f"refund {amount}: {ask_human(amount)}"

    model = FakeModel(tool_use("refund", {"amount": 500}, "t1"), text("refunded"), model_id=MODEL)
    return Agent(model=model, tools=[refund], name="refunder", callback_handler=None)


def test_an_interrupt_pauses_the_run_and_the_resume_completes(telemetry, instrument):
    instrument("strands")
    asked: list[int] = []
    agent = approval_agent(asked)
    paused = agent("refund 500")
    assert paused.stop_reason == "interrupt" and asked == [500]
    (interrupt,) = paused.interrupts
    done = agent([{"interruptResponse": {"interruptId": interrupt.id, "response": "approved"}}])
    assert str(done).strip() == "refunded" and asked == [500, 500]

    spans = telemetry.spans()
    runs = sorted([s for s in spans if "agent.stop_reason" in s.attributes], key=lambda s: s.start_time)
    assert [r.attributes["agent.stop_reason"] for r in runs] == ["interrupted", "completed"]
    assert runs[1].attributes["agent.resume_of"] == runs[0].attributes["agent.run_id"]  # agent(): linked too
    # (Strands' own agent span is the run: Strands sets its status, OK for an interrupt; not an error)
    assert runs[0].status.status_code is not StatusCode.ERROR and "error.type" not in runs[0].attributes
    bodies = sorted([s for s in spans if s.name == "execute_tool ask_human"], key=lambda s: s.start_time)
    assert [b.attributes["agent.tool.status"] for b in bodies] == ["interrupted", "ok"]
    assert [b.attributes["agent.tool.attempts"] for b in bodies] == [1, 1]
    assert bodies[0].status.status_code is StatusCode.UNSET and "error.type" not in bodies[0].attributes
    refunds = sorted([s for s in spans if s.name == "execute_tool refund"], key=lambda s: s.start_time)
    assert refunds[0].attributes["agent.tool.status"] == "interrupted"
    assert "error.type" not in refunds[0].attributes


@pytest.mark.parametrize("streamed", [False, True], ids=["call", "stream_async"])
async def test_the_invocation_answering_an_interrupt_links_to_the_paused_run(telemetry, instrument, streamed):
    """Strands has no conversation id: the invocation that answers an interrupt (``interruptResponse``
    blocks) was a run unrelated to the paused one. The interrupt ids it answers link it, as a LangGraph
    resume on the same thread is linked (``agent.resume_of`` and a span link); an invocation after it
    with a new prompt is not a resume."""
    instrument("strands")
    asked: list[int] = []
    agent = approval_agent(asked)

    async def invoke(prompt: Any) -> Any:
        if not streamed:
            return await agent.invoke_async(prompt)
        async for event in agent.stream_async(prompt):
            if "result" in event:
                result = event["result"]
        return result

    paused = await invoke("refund 500")
    (interrupt,) = paused.interrupts
    done = await invoke([{"interruptResponse": {"interruptId": interrupt.id, "response": "approved"}}])
    assert str(done).strip() == "refunded" and asked == [500, 500]
    agent.model.script.append(text("nothing to refund"))  # (a new prompt: not a resume)
    assert str(await invoke("anything else?")).strip() == "nothing to refund"

    runs = sorted(
        [s for s in telemetry.spans() if "agent.stop_reason" in s.attributes], key=lambda s: s.start_time
    )
    assert [r.attributes["agent.stop_reason"] for r in runs] == ["interrupted", "completed", "completed"]
    first, second, third = runs
    assert second.attributes["agent.resume_of"] == first.attributes["agent.run_id"]
    assert [(link.context.span_id, dict(link.attributes)) for link in second.links] == [
        (first.context.span_id, {"agent.run_id": first.attributes["agent.run_id"]})
    ]
    assert "agent.resume_of" not in third.attributes and not third.links
    assert "gen_ai.conversation.id" not in second.attributes  # the key is not a conversation


@tool(context=True)
def approve(amount: int, tool_context: ToolContext) -> str:
    """Needs a human's approval."""
    return f"approved: {tool_context.interrupt('approval', reason={'amount': amount})}"


def paused_multi_agent(kind: str) -> Any:
    """A Swarm (a router handing over to the expert) or a Graph (the expert alone) whose expert asks a
    human before it answers."""
    from strands.multiagent import GraphBuilder, Swarm

    expert = Agent(
        model=FakeModel(tool_use("approve", {"amount": 5}, "t1"), text("done"), model_id=MODEL),
        tools=[approve],
        name="expert",
        callback_handler=None,
    )
    if kind == "graph":
        builder = GraphBuilder()
        builder.add_node(expert, "expert")
        builder.set_max_node_executions(5)
        return builder.build()
    router = Agent(
        model=FakeModel(
            tool_use("handoff_to_agent", {"agent_name": "expert", "message": "yours"}, "h1"),
            text("handed over"),
            model_id=MODEL,
        ),
        tools=[],
        name="router",
        callback_handler=None,
    )
    return Swarm([router, expert], entry_point=router)


@pytest.mark.parametrize("streamed", [False, True], ids=["call", "stream_async"])
@pytest.mark.parametrize("kind", ["swarm", "graph"])
async def test_a_swarm_or_graph_answering_an_interrupt_links_to_the_paused_run(
    telemetry, instrument, kind, streamed
):
    """A Swarm or Graph whose agent interrupted is resumed by invoking it with the ``interruptResponse``
    blocks. Its run (Strands' ``invoke_swarm`` / ``invoke_graph`` span; the agents' spans join it) was
    unrelated to the paused one: only an agent's own run was keyed by the interrupts it paused on. Now
    the interrupt ids link the multi-agent resume too (``agent.resume_of`` and a span link); an
    invocation after it with a new task is not a resume."""
    instrument("strands")
    multi = paused_multi_agent(kind)

    async def invoke(task: Any) -> Any:
        if not streamed:
            return await multi.invoke_async(task)
        async for event in multi.stream_async(task):
            if "result" in event:
                result = event["result"]
        return result

    paused = await invoke("refund 5")
    assert paused.status.value == "interrupted"
    (interrupt,) = paused.interrupts
    done = await invoke([{"interruptResponse": {"interruptId": interrupt.id, "response": "yes"}}])
    assert done.status.value == "completed"

    runs = sorted(
        [s for s in telemetry.spans() if "agent.stop_reason" in s.attributes], key=lambda s: s.start_time
    )
    assert [(r.name, r.attributes["agent.stop_reason"]) for r in runs] == [
        (f"invoke_{kind}", "interrupted"),
        (f"invoke_{kind}", "completed"),
    ]
    first, second = runs
    assert second.attributes["agent.resume_of"] == first.attributes["agent.run_id"]
    assert [(link.context.span_id, dict(link.attributes)) for link in second.links] == [
        (first.context.span_id, {"agent.run_id": first.attributes["agent.run_id"]})
    ]
