"""Strands Agents driven by a scripted model (Strands' own Model interface, no network): its spans become
agent-otel runs through the bridge, its hooks let guards stop a tool and a replay serve it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

import agent_otel
from agent_otel.hashing import sha
from agent_otel.replay import ReplayError
from tests.envs.strands.fake_model import FakeModel, text, tool_use, tool_uses
from tests.integrations import sample_tools
from tests.integrations.conftest import assert_context_left_out, children, ours, steps, stop_event
from tests.integrations.sample_tools import fresh_sent  # noqa: F401 (an autouse fixture)

pytest.importorskip("strands")

from opentelemetry.trace import StatusCode
from strands import Agent, ToolContext, tool

MODEL = "claude-3-5-haiku-20241022"
SENT: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    SENT.clear()
    yield
    SENT.clear()


@tool
def lookup(q: str) -> str:
    """Look something up."""
    SENT["lookup"] += 1
    return q.upper()


@tool
def broken(q: str) -> str:
    """Always fails."""
    SENT["broken"] += 1
    raise RuntimeError("backend down")


@tool
def delete_all() -> str:
    """Delete everything."""
    SENT["delete_all"] += 1
    return "deleted"


def make_agent(*script: Any, name: str = "helper", tools: list[Any] | None = None) -> Agent:
    return Agent(
        model=FakeModel(*script, model_id=MODEL),
        tools=tools if tools is not None else [lookup, broken, delete_all],
        name=name,
        callback_handler=None,
    )


def one_tool_script() -> tuple[Any, ...]:
    return (tool_use("lookup", {"q": "otel"}, "t1", (10, 5)), text("done", (20, 3)))


def strands_spans(spans: list[Any]) -> list[Any]:
    return [s for s in spans if s.instrumentation_scope.name == "strands.telemetry.tracer"]


def assert_normal_run(telemetry: Any, result: Any) -> str:
    """One run, its span tree exactly as Strands emits it, agent-otel's ids and totals on it."""
    assert str(result).strip() == "done"
    assert SENT == {"lookup": 1}
    spans = telemetry.spans()
    assert ours(spans) == []  # Strands' spans are the run: agent-otel opens none of its own
    (root,) = [s for s in spans if s.name == "invoke_agent helper"]
    run_id = root.attributes["agent.run_id"]
    cycles = children(root, spans)
    assert [s.name for s in cycles] == ["execute_event_loop_cycle", "execute_event_loop_cycle"]
    assert [s.name for s in children(cycles[0], spans)] == ["chat", "execute_tool lookup"]
    assert [s.name for s in children(cycles[1], spans)] == ["chat"]
    assert steps(root, spans) == [(1, "chat"), (2, "execute_tool lookup"), (3, "chat")]
    tool_span = children(cycles[0], spans)[1]
    assert tool_span.attributes["agent.tool.args_sha"] == sha({"q": "otel"})
    assert tool_span.attributes["agent.tool.result_sha"] == sha([{"text": "OTEL"}])
    assert tool_span.attributes["agent.tool.status"] == "ok"
    assert tool_span.attributes["gen_ai.tool.call.id"] == "t1"
    assert root.attributes["agent.stop_reason"] == "completed"
    assert root.attributes["agent.usage.input_tokens"] == 30
    assert root.attributes["agent.usage.output_tokens"] == 8
    assert root.attributes["agent.cost_usd"] > 0
    # Strands' own run totals (gen_ai.usage.* on its agent span) are moved off it: usage once per request.
    assert [s.name for s in spans if "gen_ai.usage.input_tokens" in s.attributes] == ["chat", "chat"]
    assert stop_event(root)["agent.stop_reason"] == "completed"
    events = telemetry.events()
    assert [(e["kind"], e["step_id"], e["tool"]) for e in events] == [
        ("llm_result", 1, None),
        ("tool_result", 2, "lookup"),
        ("llm_result", 3, None),
        ("stop", None, None),
    ]
    assert events[1]["args_sha"] == sha({"q": "otel"}) and events[1]["result_sha"] == sha([{"text": "OTEL"}])
    assert events[0]["usage"]["model"] == MODEL
    metrics = telemetry.metrics()
    assert [(a["agent"], a["stop_reason"], p.value) for a, p in metrics["agent.stop"] if p.value] == [
        ("helper", "completed", 1)
    ]
    assert [(a["tool"], a["status"], p.value) for a, p in metrics["agent.tool.invocations"]] == [
        ("lookup", "ok", 1)
    ]
    (calls,) = [p for a, p in metrics["agent.tool_calls"] if a["agent"] == "helper"]
    assert (calls.count, calls.sum) == (1, 1)
    return run_id


def test_sync_run(telemetry, instrument):
    instrument("strands")
    assert_normal_run(telemetry, make_agent(*one_tool_script())("hi"))


async def test_async_run(telemetry, instrument):
    instrument("strands")
    assert_normal_run(telemetry, await make_agent(*one_tool_script()).invoke_async("hi"))


async def test_streamed_run(telemetry, instrument):
    instrument("strands")
    agent = make_agent(*one_tool_script())
    result = None
    async for event in agent.stream_async("hi"):
        result = event.get("result", result)
    assert_normal_run(telemetry, result)


def test_the_spans_alone_make_the_run_without_the_integration(telemetry):
    """Without the hooks (instrument=False), the bridge still makes the run, without tool hashes."""
    make_agent(*one_tool_script())("hi")
    spans = telemetry.spans()
    (root,) = [s for s in spans if s.name == "invoke_agent helper"]
    assert steps(root, spans) == [(1, "chat"), (2, "execute_tool lookup"), (3, "chat")]
    (tool_span,) = [s for s in spans if s.name == "execute_tool lookup"]
    assert "agent.tool.args_sha" not in tool_span.attributes  # Strands puts no arguments on the span
    assert root.attributes["agent.stop_reason"] == "completed"


def test_tool_error_is_a_failed_step_and_the_agent_goes_on(telemetry, instrument):
    instrument("strands")
    agent = make_agent(tool_use("broken", {"q": "x"}, "t1"), text("sorry"))
    assert str(agent("hi")).strip() == "sorry"
    spans = telemetry.spans()
    (tool_span,) = [s for s in spans if s.name == "execute_tool broken"]
    assert tool_span.status.status_code is StatusCode.ERROR
    assert tool_span.attributes["agent.tool.status"] == "error"
    assert tool_span.attributes["error.type"] == "RuntimeError"
    (event,) = telemetry.events("tool_result")
    assert (event["status"], event["error"], event["args_sha"]) == ("error", "RuntimeError", sha({"q": "x"}))
    (root,) = [s for s in spans if s.name == "invoke_agent helper"]
    assert root.attributes["agent.stop_reason"] == "completed"


def test_model_error_ends_the_run_with_model_error(telemetry, instrument):
    instrument("strands")
    agent = make_agent(ConnectionError("provider unreachable"))
    with pytest.raises(ConnectionError):  # what Strands raises without agent-otel too
        agent("hi")
    spans = telemetry.spans()
    (root,) = [s for s in spans if s.name == "invoke_agent helper"]
    assert root.attributes["agent.stop_reason"] == "model_error"
    assert root.status.status_code is StatusCode.ERROR
    (chat,) = [s for s in spans if s.name == "chat"]
    assert chat.attributes["agent.step_id"] == 1
    (llm,) = telemetry.events("llm_result")
    assert (llm["status"], llm["error"]) == ("error", "ConnectionError")
    (stop,) = telemetry.events("stop")
    assert (stop["stop_reason"], stop["status"]) == ("model_error", "failure")


def test_a_configured_guard_stops_before_the_tool_runs(guarded, instrument):
    telemetry = guarded({"policy": {"deny": {"*": ["delete_*"]}}})
    instrument("strands")
    agent = make_agent(tool_use("delete_all", {}, "t1"), text("done"))
    with pytest.raises(agent_otel.AgentStopped) as stopped:  # as itself, not in an EventLoopException
        agent("clean up")
    assert stopped.value.result.stop_reason.value == "policy_denied"
    assert SENT == {}  # the tool never ran
    spans = telemetry.spans()
    (root,) = [s for s in spans if s.name == "invoke_agent helper"]
    assert root.attributes["agent.stop_reason"] == "policy_denied"
    assert [s.name for s in spans if s.name.startswith("execute_tool")] == []
    (guard,) = [dict(e.attributes) for e in root.events if e.name == "agent.guard"]
    assert (guard["guard"], guard["enforced"], guard["tool"]) == ("policy", True, "delete_all")
    assert [(e["kind"], e["stop_reason"]) for e in telemetry.events()] == [
        ("llm_result", None),
        ("stop", "policy_denied"),
    ]


def test_a_tool_denied_with_on_deny_raise_never_runs_and_the_model_is_told(guarded, instrument):
    """``on_deny: raise`` refuses the tool without ending the run: Strands cancels the tool call with the
    refusal as its message, the model carries on, and the function never runs."""
    telemetry = guarded({"policy": {"deny": {"*": ["delete_*"]}, "on_deny": "raise"}})
    instrument("strands")
    agent = make_agent(tool_use("delete_all", {}, "t1"), text("done"))
    assert str(agent("clean up")).strip() == "done"
    assert SENT == {}  # never ran
    results = [
        block["toolResult"]
        for m in agent.messages
        for block in m.get("content", [])
        if isinstance(block, dict) and "toolResult" in block
    ]
    assert len(results) == 1 and results[0]["status"] == "error"
    assert "blocked by policy" in str(results[0]["content"])
    (root,) = [s for s in telemetry.spans() if s.name == "invoke_agent helper"]
    assert root.attributes["agent.stop_reason"] == "completed"
    (guard,) = [dict(e.attributes) for e in root.events if e.name == "agent.guard"]
    assert (guard["guard"], guard["enforced"], guard["tool"]) == ("policy", True, "delete_all")


def test_the_default_loop_guard_only_observes(telemetry, instrument):
    instrument("strands")
    script = [tool_use("lookup", {"q": "same"}, f"t{i}") for i in range(4)]
    agent = make_agent(*script, text("done"))
    assert str(agent("poll")).strip() == "done"
    assert SENT == {"lookup": 4}
    (root,) = [s for s in telemetry.spans() if s.name == "invoke_agent helper"]
    assert root.attributes["agent.stop_reason"] == "completed"
    (guard,) = [dict(e.attributes) for e in root.events if e.name == "agent.guard"]
    assert (guard["guard"], guard["enforced"], guard["would_stop"]) == ("loop", False, "loop_detected")


def test_strands_turn_limit_is_max_steps(telemetry, instrument):
    instrument("strands")
    agent = make_agent(tool_use("lookup", {"q": "a"}, "t1"), tool_use("lookup", {"q": "b"}, "t2"), text("x"))
    result = agent("hi", limits={"turns": 1})
    assert result.stop_reason == "limit_turns"
    (root,) = [s for s in telemetry.spans() if s.name == "invoke_agent helper"]
    assert root.attributes["agent.stop_reason"] == "max_steps"


def test_an_agent_in_a_user_run_is_part_of_it(telemetry, instrument):
    instrument("strands")
    with agent_otel.run("my-app") as run:
        make_agent(*one_tool_script())("hi")
    spans = telemetry.spans()
    (root,) = [s for s in ours(spans) if s.name == "invoke_agent my-app"]
    assert steps(root, spans) == [(1, "chat"), (2, "execute_tool lookup"), (3, "chat")]
    assert run.result.usage["tool_calls"] == 1 and run.result.usage["llm_calls"] == 2
    (agent_span,) = [s for s in spans if s.name == "invoke_agent helper"]
    assert agent_span.attributes["agent.run_id"] == run.run_id
    # Strands' own totals on its agent span would count each request twice in a backend summing usage
    assert [s.name for s in spans if "gen_ai.usage.input_tokens" in s.attributes] == ["chat", "chat"]


def handing_over_to(agent_name: str) -> Agent:
    """A swarm's entry agent that hands the task over to ``agent_name`` at once."""
    return make_agent(
        tool_use("handoff_to_agent", {"agent_name": agent_name, "message": "yours"}, "h1"),
        text("handed over"),
        name="router",
        tools=[],
    )


def test_a_swarm_is_one_run_across_its_handoffs(telemetry, instrument):
    """``Swarm``: the agents run one after another (``handoff_to_agent``), each in its own span inside
    Strands' ``invoke_swarm`` span. The caller made one call: one run, its steps in order."""
    from strands.multiagent import Swarm

    instrument("strands")
    router = handing_over_to("expert")
    expert = make_agent(*one_tool_script(), name="expert")
    result = Swarm([router, expert], entry_point=router)("hi")
    assert result.status.value == "completed"
    assert SENT == {"lookup": 1}
    spans = telemetry.spans()
    runs = [s for s in spans if "agent.stop_reason" in s.attributes]
    assert [s.name for s in runs] == ["invoke_swarm"]
    (root,) = runs
    assert [name for _, name in steps(root, spans)] == [
        "chat",
        "execute_tool handoff_to_agent",
        "chat",
        "chat",
        "execute_tool lookup",
        "chat",
    ]
    assert root.attributes["gen_ai.agent.name"] == "swarm"
    assert root.attributes["agent.stop_reason"] == "completed"
    assert root.attributes["agent.tool_calls"] == 2
    assert [s.name for s in spans if "gen_ai.usage.input_tokens" in s.attributes] == ["chat"] * 4


def test_a_swarm_whose_agent_asks_for_approval_is_interrupted(telemetry, instrument):
    """An agent of a swarm interrupts for human input (``tool_context.interrupt``): the swarm pauses, and
    so does its one run (Strands says so on the agent's span, which is not the run's)."""
    from strands.multiagent import Swarm

    @tool(context=True)
    def approve(amount: int, tool_context: ToolContext) -> str:
        """Needs a human's approval."""
        return f"approved: {tool_context.interrupt('approval', reason={'amount': amount})}"

    instrument("strands")
    router = handing_over_to("expert")
    expert = make_agent(
        tool_use("approve", {"amount": 5}, "t1"), text("done"), name="expert", tools=[approve]
    )
    result = Swarm([router, expert], entry_point=router)("hi")
    assert result.status.value == "interrupted"
    (root,) = [s for s in telemetry.spans() if "agent.stop_reason" in s.attributes]
    assert root.name == "invoke_swarm"
    assert root.attributes["agent.stop_reason"] == "interrupted"
    assert root.status.status_code is StatusCode.UNSET


def test_store_rows_and_replay_serve_the_tool(rig, instrument):
    rig.start()
    instrument("strands")
    recorded_result = make_agent(*one_tool_script())("hi")
    assert SENT == {"lookup": 1}
    original = rig.last_run_id("helper")
    row = rig.run_row(original)
    assert (row["status"], row["stop_reason"], row["steps"], row["tool_calls"], row["llm_calls"]) == (
        "success",
        "completed",
        3,
        1,
        2,
    )
    assert (row["input_tokens"], row["output_tokens"], row["model"]) == (30, 8, MODEL)
    recorded_events = [
        (e["tool"], e["args_sha"], e["result_sha"], e["status"]) for e in rig.tool_events(original)
    ]
    assert recorded_events == [("lookup", sha({"q": "otel"}), sha([{"text": "OTEL"}]), "ok")]

    agent = make_agent(*one_tool_script())
    with agent_otel.replay(original) as rp:
        result = agent("hi")
    assert SENT == {"lookup": 1}  # served from the recording: the tool did not run again
    assert str(result) == str(recorded_result)
    # What the model got back is what it got when the run was recorded.
    assert agent.messages[2]["content"][0]["toolResult"]["content"] == [{"text": "OTEL"}]
    report = rp.report
    assert report.matched and not report.diverged and report.served == 1, str(report)
    replayed = [
        (e["tool"], e["args_sha"], e["result_sha"], e["status"])
        for e in rig.tool_events(report.replay_run_id)
    ]
    assert replayed == recorded_events
    spans = rig.exporter.get_finished_spans()
    served = [
        s
        for s in spans
        if s.name == "execute_tool lookup" and s.attributes["agent.run_id"] == report.replay_run_id
    ]
    assert [s.instrumentation_scope.name for s in served] == ["agent_otel"]  # Strands opened no span


def test_replay_refuses_a_recorded_tool_error(rig, instrument):
    rig.start()
    instrument("strands")
    make_agent(tool_use("broken", {"q": "x"}, "t1"), text("sorry"))("hi")
    original = rig.last_run_id("helper")
    with (
        pytest.raises(ReplayError, match="raised an error when recorded"),
        agent_otel.replay(original),
    ):
        make_agent(tool_use("broken", {"q": "x"}, "t1"), text("sorry"))("hi")
    assert SENT == {"broken": 1}


def test_an_agent_created_before_instrumenting_is_seen_through_its_spans(guarded, instrument):
    """No hooks on it: one step per span, no hashes, and a configured guard only observes."""
    telemetry = guarded({"policy": {"deny": {"*": ["delete_*"]}}})
    agent = make_agent(tool_use("delete_all", {}, "t1"), text("done"))
    instrument("strands")
    assert str(agent("clean up")).strip() == "done"
    assert SENT == {"delete_all": 1}
    spans = telemetry.spans()
    (root,) = [s for s in spans if s.name == "invoke_agent helper"]
    assert steps(root, spans) == [(1, "chat"), (2, "execute_tool delete_all"), (3, "chat")]
    assert root.attributes["agent.stop_reason"] == "completed"
    (guard,) = [dict(e.attributes) for e in root.events if e.name == "agent.guard"]
    assert (guard["guard"], guard["enforced"], guard["would_stop"]) == ("policy", False, "policy_denied")


async def test_a_stream_closed_early_ends_the_run_and_its_request_step(telemetry, instrument):
    """The caller closes ``stream_async`` in the middle of the model's answer (a client that went away).
    agent-otel's wrapper of the stream did not close Strands' own generator, so Strands ended none of its
    spans until the garbage collector finalized it: no run, no stop, no step. Now the run ends
    ``cancelled`` at once, and the request step's span (Strands never ends it) ends with the run, before
    the run's span. Strands' ``execute_event_loop_cycle`` span stays open: it is not a step."""
    instrument("strands")
    agent = make_agent(*one_tool_script())
    stream = agent.stream_async("hi")
    seen = 0
    async for event in stream:
        seen += 1
        if "event" in event and seen >= 5:  # the model's answer is streaming
            break
    await stream.aclose()
    spans = strands_spans(telemetry.spans())
    (root,) = [s for s in spans if s.name == "invoke_agent helper"]
    assert root.attributes["agent.stop_reason"] == "cancelled"
    (chat,) = [s for s in spans if s.name == "chat"]
    assert chat.attributes["agent.step_id"] == 1 and chat.end_time <= root.end_time
    (stop,) = telemetry.events("stop")
    assert stop["stop_reason"] == "cancelled" and stop["usage"]["llm_calls"] == 1
    assert [e["step_id"] for e in telemetry.events("llm_result")] == [1]


async def test_a_stream_consumer_that_stops_at_the_result_does_not_cancel_the_run(telemetry, instrument):
    """The caller reads ``stream_async`` up to its ``result`` event (the invocation is over) and stops
    there (``break``, then the stream is closed). Strands ends its agent span as cancelled then
    (``strands.cancellation.type``: the ``GeneratorExit`` of the closed stream), and the run ended
    ``cancelled`` though the agent finished: now its stop is the result's (``completed``; ``interrupted``
    for an invocation that paused for a human)."""

    @tool(context=True)
    def approve(amount: int, tool_context: ToolContext) -> str:
        """Needs a human's approval."""
        return f"approved: {tool_context.interrupt('approval', reason={'amount': amount})}"

    async def read_to_result(agent: Agent, prompt: Any) -> Any:
        stream = agent.stream_async(prompt)
        async for event in stream:
            if "result" in event:
                result = event["result"]
                break
        await stream.aclose()
        return result

    instrument("strands")
    done = await read_to_result(make_agent(*one_tool_script()), "hi")
    assert str(done).strip() == "done" and done.stop_reason == "end_turn"
    paused = await read_to_result(
        make_agent(tool_use("approve", {"amount": 5}, "t1"), name="approver", tools=[approve]), "refund"
    )
    assert paused.stop_reason == "interrupt"
    spans = strands_spans(telemetry.spans())
    (root,) = [s for s in spans if s.name == "invoke_agent helper"]
    assert root.attributes["agent.stop_reason"] == "completed"
    assert root.attributes["agent.usage.input_tokens"] == 30  # its usage as a finished run's
    (paused_root,) = [s for s in spans if s.name == "invoke_agent approver"]
    assert paused_root.attributes["agent.stop_reason"] == "interrupted"
    assert [(e["agent"], e["stop_reason"]) for e in telemetry.events("stop")] == [
        ("helper", "completed"),
        ("approver", "interrupted"),
    ]
    stops = telemetry.metrics()["agent.stop"]
    assert sorted((a["agent"], a["stop_reason"]) for a, p in stops if p.value) == [
        ("approver", "interrupted"),
        ("helper", "completed"),
    ]


search = tool(sample_tools.search)
wipe = tool(sample_tools.wipe)


def test_an_agent_otel_tool_is_one_tool_call_with_its_retry(telemetry, instrument):
    """``@strands.tool`` over ``@agent_otel.tool(retry=...)``: Strands' ``execute_tool`` span is the step
    (begun by the hook, not current), and the function ran bare inside it: no retry, the first failure
    went to the model. One step, the retry applied once inside it."""
    instrument("strands")
    agent = make_agent(
        tool_use("search", {"q": "otel"}, "t1", (10, 5)), text("done", (20, 3)), tools=[search]
    )
    assert str(agent("hi")).strip() == "done" and sample_tools.SENT == {"search": 2}
    spans = telemetry.spans()
    (step,) = [s for s in spans if s.name.startswith("execute_tool")]
    assert step.attributes["gen_ai.tool.call.id"] == "t1" and step.attributes["agent.tool.attempts"] == 2
    assert step.attributes["agent.tool.status"] == "ok"
    (root,) = [s for s in strands_spans(spans) if s.name == "invoke_agent helper"]
    assert root.attributes["agent.tool_calls"] == 1


def test_a_write_declared_with_agent_otel_tool_is_blocked_by_the_writes_kill_switch(
    guarded, instrument, monkeypatch
):
    """The hook began the step as a read (it sees Strands' tool, not the function declared a write), and
    the write ran under the kill switch. The function claims the step as a write now: blocked."""
    telemetry = guarded({})
    instrument("strands")
    monkeypatch.setenv("AGENT_OTEL_KILL_SWITCH", "writes")
    agent = make_agent(tool_use("wipe", {"q": "bob"}, "t1", (10, 5)), text("never", (20, 3)), tools=[wipe])
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        agent("wipe bob")
    assert stopped.value.result.stop_reason == "kill_switch" and sample_tools.SENT == {}
    (step,) = [s for s in telemetry.spans() if s.name.startswith("execute_tool")]
    assert step.attributes["agent.tool.status"] == "error"


@tool
@agent_otel.tool
async def find(q: str) -> str:
    """Find a record."""
    SENT["find"] += 1
    return q.upper()


def test_a_replay_serves_an_agent_otel_tool_once(rig, instrument):
    """An ``@agent_otel.tool`` function as a Strands tool, replayed: the hook serves the recorded result,
    the function does not run, one call recorded and served."""
    rig.start()
    instrument("strands")
    script = (tool_use("find", {"q": "otel"}, "t1", (10, 5)), text("done", (20, 3)))
    make_agent(*script, tools=[find])("hi")
    original = rig.last_run_id("helper")
    with agent_otel.replay(original) as rp:
        make_agent(*script, tools=[find])("hi")
    assert SENT == {"find": 1}
    assert rp.report.matched and not rp.report.diverged and rp.report.served == 1, str(rp.report)


def test_parallel_tool_calls_in_one_response_are_each_a_step_of_the_run(telemetry, instrument):
    """Strands runs the tool calls of one response concurrently (one fails; Strands tells the model): each
    its own step with its call id, none lost."""
    instrument("strands")
    calls = [("lookup", {"q": "a"}, "t1"), ("broken", {"q": "b"}, "t2"), ("lookup", {"q": "c"}, "t3")]
    make_agent(tool_uses(*calls), text("done"))("go")
    spans = telemetry.spans()
    (root,) = [s for s in spans if s.name == "invoke_agent helper"]
    tools = sorted(
        (s for s in spans if s.name.startswith("execute_tool")),
        key=lambda s: s.attributes["gen_ai.tool.call.id"],
    )
    assert [(s.attributes["gen_ai.tool.call.id"], s.attributes["agent.tool.status"]) for s in tools] == [
        ("t1", "ok"),
        ("t2", "error"),
        ("t3", "ok"),
    ]
    # Under Strands' own span of the event loop cycle whose request asked for them, as its chat step is.
    (asked,) = [s for s in spans if s.attributes.get("agent.step_id") == 1]
    assert {s.parent.span_id for s in tools} == {asked.parent.span_id}
    assert sorted(s.attributes["agent.step_id"] for s in tools) == [2, 3, 4]
    assert root.attributes["agent.tool_calls"] == 3 and root.attributes["agent.stop_reason"] == "completed"


@agent_otel.tool(name="ask_human")
def ask_with_context(q: str, tool_context: ToolContext) -> str:
    return f"{q}:{tool_context.n}"


def test_a_strands_tool_context_is_not_one_of_the_tools_arguments(telemetry):
    """``@tool(context=True)`` hands the function Strands' ToolContext: not an argument of the call
    (tests/integrations/test_tool_context.py has the other frameworks)."""
    assert_context_left_out(telemetry, lambda s: ask_with_context(q="x", tool_context=s))
