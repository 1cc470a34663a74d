"""Google ADK driven by a scripted model (ADK's own BaseLlm interface, no network): its spans become
agent-otel runs through the bridge, its plugin hooks let guards stop a tool and a replay serve it."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

import agent_otel
from agent_otel.hashing import sha
from agent_otel.replay import ReplayError
from tests.envs.adk.fake_model import FakeModel, call, text
from tests.integrations.conftest import assert_context_left_out, children, ours, steps, stop_event

pytest.importorskip("google.adk")

from google.adk.agents import LlmAgent
from google.adk.agents.invocation_context import LlmCallsLimitExceededError
from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import InMemoryRunner
from google.adk.tools import ToolContext
from google.genai import types
from opentelemetry.trace import StatusCode

MODEL = "gemini-2.0-flash"
SENT: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    SENT.clear()
    yield
    SENT.clear()


def lookup(q: str) -> dict[str, Any]:
    """Look something up."""
    SENT["lookup"] += 1
    return {"answer": q.upper()}


def broken(q: str) -> dict[str, Any]:
    """Always fails."""
    SENT["broken"] += 1
    raise RuntimeError("backend down")


def delete_all() -> dict[str, Any]:
    """Delete everything."""
    SENT["delete_all"] += 1
    return {"deleted": True}


def make_runner(*script: Any, name: str = "helper") -> InMemoryRunner:
    model = FakeModel(model=MODEL, script=list(script))
    agent = LlmAgent(name=name, model=model, tools=[lookup, broken, delete_all], instruction="help")
    return InMemoryRunner(agent=agent, app_name="app")


def one_tool_script() -> tuple[Any, ...]:
    return (call("lookup", {"q": "otel"}, "c1", (10, 5)), text("done", (20, 3)))


def message(content: str = "hi") -> types.Content:
    return types.Content(role="user", parts=[types.Part(text=content)])


async def run_async(runner: InMemoryRunner, config: RunConfig | None = None) -> list[Any]:
    session = await runner.session_service.create_session(app_name="app", user_id="u", session_id="s1")
    return [
        event
        async for event in runner.run_async(
            user_id="u", session_id=session.id, new_message=message(), run_config=config
        )
    ]


def final_text(events: list[Any]) -> str:
    return "".join(p.text or "" for e in events if e.content and not e.partial for p in e.content.parts or ())


def assert_normal_run(telemetry: Any, events: list[Any]) -> None:
    assert final_text(events).endswith("done")
    assert SENT == {"lookup": 1}
    spans = telemetry.spans()
    assert ours(spans) == []  # ADK's spans are the run: agent-otel opens none of its own
    # The run is ADK's workflow invocation (one Runner call); the agents it invokes are part of it.
    (root,) = [s for s in spans if s.name == "invoke_workflow helper"]
    (agent,) = [s for s in spans if s.name == "invoke_agent helper"]
    assert agent.parent.span_id == root.context.span_id
    assert agent.attributes["agent.run_id"] == root.attributes["agent.run_id"]
    assert "agent.stop_reason" not in agent.attributes
    assert [s.name for s in children(agent, spans)] == [
        f"generate_content {MODEL}",
        "execute_tool lookup",
        f"generate_content {MODEL}",
    ]
    assert steps(root, spans) == [
        (1, f"generate_content {MODEL}"),
        (2, "execute_tool lookup"),
        (3, f"generate_content {MODEL}"),
    ]
    tool = children(agent, spans)[1]
    assert tool.attributes["agent.tool.args_sha"] == sha({"q": "otel"})
    assert tool.attributes["agent.tool.result_sha"] == sha({"answer": "OTEL"})
    assert tool.attributes["gen_ai.tool.call.id"] == "c1"
    assert root.attributes["agent.stop_reason"] == "completed"
    assert root.attributes["gen_ai.conversation.id"] == "s1"
    assert root.attributes["agent.usage.input_tokens"] == 30
    assert root.attributes["agent.usage.output_tokens"] == 8
    assert stop_event(root)["agent.stop_reason"] == "completed"
    assert [s.name for s in spans if "gen_ai.usage.input_tokens" in s.attributes] == [
        f"generate_content {MODEL}"
    ] * 2
    events_ = telemetry.events()
    assert [(e["kind"], e["step_id"], e["tool"]) for e in events_] == [
        ("llm_result", 1, None),
        ("tool_result", 2, "lookup"),
        ("llm_result", 3, None),
        ("stop", None, None),
    ]
    assert events_[1]["result_sha"] == sha({"answer": "OTEL"})
    metrics = telemetry.metrics()
    assert [(a["agent"], a["stop_reason"], p.value) for a, p in metrics["agent.stop"] if p.value] == [
        ("helper", "completed", 1)
    ]
    assert [(a["tool"], a["status"], p.value) for a, p in metrics["agent.tool.invocations"]] == [
        ("lookup", "ok", 1)
    ]
    # ADK records the GenAI client metrics for its model calls itself; agent-otel does not again.
    assert [
        a
        for a, _ in metrics.get("gen_ai.client.token.usage", [])
        if a.get("gen_ai.agent.name") == "helper" and "agent" in a
    ] == []


def test_sync_run(telemetry, instrument):
    instrument("google_adk")
    runner = make_runner(*one_tool_script())
    session = asyncio.run(runner.session_service.create_session(app_name="app", user_id="u", session_id="s1"))
    events = list(runner.run(user_id="u", session_id=session.id, new_message=message()))
    assert_normal_run(telemetry, events)


async def test_async_run(telemetry, instrument):
    instrument("google_adk")
    assert_normal_run(telemetry, await run_async(make_runner(*one_tool_script())))


async def test_streamed_run(telemetry, instrument):
    instrument("google_adk")
    partial = LlmResponse(content=types.Content(role="model", parts=[types.Part(text="do")]), partial=True)
    runner = make_runner(call("lookup", {"q": "otel"}, "c1", (10, 5)), partial, text("done", (20, 3)))
    model = runner.agent.model
    script = model.script

    async def streamed(llm_request: Any, stream: bool = False) -> Any:  # the partial chunk, then the answer
        step = script.pop(0)
        if step is partial:
            yield step
            step = script.pop(0)
        yield step

    object.__setattr__(model, "generate_content_async", streamed)
    events = await run_async(runner, RunConfig(streaming_mode=StreamingMode.SSE))
    assert any(e.partial for e in events)
    assert_normal_run(telemetry, events)


async def test_a_consumer_closing_the_event_stream_early_cancels_the_run(telemetry, instrument):
    # ADK ends its spans normally when its event stream is closed early, which alone would read
    # "completed" although the agent never finished (here: its tool never ran).
    instrument("google_adk")
    runner = make_runner(*one_tool_script())
    session = await runner.session_service.create_session(app_name="app", user_id="u", session_id="s1")
    events = runner.run_async(user_id="u", session_id=session.id, new_message=message())
    async for _ in events:
        break
    await events.aclose()
    for _ in range(500):  # ADK cancels its node task and ends its spans on a later turn of the loop
        roots = [s for s in telemetry.spans() if s.name == "invoke_workflow helper"]
        if roots:
            break
        await asyncio.sleep(0.01)
    assert SENT == {}
    (root,) = roots
    assert root.attributes["agent.stop_reason"] == "cancelled"
    assert stop_event(root)["agent.stop_reason"] == "cancelled"
    assert root.status.status_code is StatusCode.UNSET  # ADK's span; cancellation is not a failure

    # the same runner and session go on, and a run read to its end completes
    again = [e async for e in runner.run_async(user_id="u", session_id=session.id, new_message=message("go"))]
    assert final_text(again) == "done"
    (_, second) = sorted(
        (s for s in telemetry.spans() if s.name == "invoke_workflow helper"), key=lambda s: s.start_time
    )
    assert second.attributes["agent.stop_reason"] == "completed"


async def read_to_final(runner: InMemoryRunner, content: types.Content | None = None) -> Any:
    """ADK's own samples: read the events up to the final response, and stop there (``break``)."""
    if await runner.session_service.get_session(app_name="app", user_id="u", session_id="s1") is None:
        await runner.session_service.create_session(app_name="app", user_id="u", session_id="s1")
    final = None
    async for event in runner.run_async(user_id="u", session_id="s1", new_message=content or message()):
        if event.is_final_response():
            final = event
            break
    return final


async def invocations(telemetry: Any, name: str, count: int) -> list[Any]:
    for _ in range(500):  # ADK cancels its node task and ends its spans on a later turn of the loop
        roots = [s for s in telemetry.spans() if s.name == name]
        if len(roots) >= count:
            break
        await asyncio.sleep(0.01)
    return sorted(roots, key=lambda s: s.start_time)


async def test_a_consumer_that_stops_at_the_final_response_does_not_cancel_the_run(telemetry, instrument):
    """``if event.is_final_response(): ...; break``, as ADK's own samples read a run: the invocation is
    over, yet the consumer closing the stream made the run ``cancelled``. Now it is the run it was:
    completed, or, when the final event is a long-running tool call waiting for its answer,
    interrupted. Where a workflow agent would run another agent after the one that answered, stopping
    there still cancels."""
    from google.adk.agents import SequentialAgent
    from google.adk.tools import LongRunningFunctionTool

    instrument("google_adk")
    final = await read_to_final(make_runner(*one_tool_script()))
    assert final.content.parts[0].text == "done" and SENT == {"lookup": 1}
    (root,) = await invocations(telemetry, "invoke_workflow helper", 1)
    assert root.attributes["agent.stop_reason"] == "completed"
    assert root.attributes["agent.usage.input_tokens"] == 30

    model = FakeModel(model=MODEL, script=[call("ask_approval", {"amount": 5}, "c1")])
    waiting = LlmAgent(name="approver", model=model, tools=[LongRunningFunctionTool(func=ask_approval)])
    final = await read_to_final(InMemoryRunner(agent=waiting, app_name="app"))
    assert final.long_running_tool_ids == {"c1"}
    (paused,) = await invocations(telemetry, "invoke_workflow approver", 1)
    assert paused.attributes["agent.stop_reason"] == "interrupted"
    (interrupt,) = [dict(e.attributes) for e in paused.events if e.name == "agent.interrupt"]
    assert list(interrupt["interrupt_ids"]) == ["c1"]

    first = LlmAgent(name="first", model=FakeModel(model=MODEL, script=[text("one")]))
    second = LlmAgent(name="second", model=FakeModel(model=MODEL, script=[text("two")]))
    pipeline = SequentialAgent(name="pipeline", sub_agents=[first, second])
    final = await read_to_final(InMemoryRunner(agent=pipeline, app_name="app"))
    assert final.author == "first"  # the second agent never ran
    (cut,) = await invocations(telemetry, "invoke_workflow pipeline", 1)
    assert cut.attributes["agent.stop_reason"] == "cancelled"
    assert [e["stop_reason"] for e in telemetry.events("stop")] == ["completed", "interrupted", "cancelled"]


def test_a_sync_consumer_leaving_early_cancels_the_run(telemetry, instrument):
    """``Runner.run`` (sync: ``run_async`` in a thread of its own) left while its tool is running: ADK
    cancels its thread's task and ends the invocation normally, which read ``completed`` though the agent
    never answered. Now ``cancelled`` (without stopping the run at once, which would refuse a step ADK's
    thread still takes, as it does without agent-otel). One that stops at the final response completes."""

    async def slow_lookup(q: str) -> dict[str, Any]:
        """Look something up, slowly."""
        SENT["slow_lookup"] += 1
        await asyncio.sleep(5)
        SENT["slow_lookup done"] += 1
        return {"answer": q}

    instrument("google_adk")
    model = FakeModel(model=MODEL, script=[call("slow_lookup", {"q": "otel"}, "c1"), text("done")])
    runner = InMemoryRunner(agent=LlmAgent(name="helper", model=model, tools=[slow_lookup]), app_name="app")
    asyncio.run(runner.session_service.create_session(app_name="app", user_id="u", session_id="s1"))
    for _ in runner.run(user_id="u", session_id="s1", new_message=message()):
        break
    assert SENT["slow_lookup done"] == 0  # (it was cancelled, by ADK)
    (root,) = [s for s in telemetry.spans() if s.name == "invoke_workflow helper"]
    assert root.attributes["agent.stop_reason"] == "cancelled"
    assert root.status.status_code is StatusCode.UNSET
    assert [e["stop_reason"] for e in telemetry.events("stop")] == ["cancelled"]

    runner = make_runner(*one_tool_script())
    asyncio.run(runner.session_service.create_session(app_name="app", user_id="u", session_id="s1"))
    for event in runner.run(user_id="u", session_id="s1", new_message=message()):
        if event.is_final_response():
            break
    assert event.content.parts[0].text == "done"
    assert [e["stop_reason"] for e in telemetry.events("stop")] == ["cancelled", "completed"]


def test_the_spans_alone_make_the_run_without_the_integration(telemetry):
    asyncio.run(run_async(make_runner(*one_tool_script())))
    spans = telemetry.spans()
    (root,) = [s for s in spans if s.name == "invoke_workflow helper"]
    assert [n for _, n in steps(root, spans)] == [
        f"generate_content {MODEL}",
        "execute_tool lookup",
        f"generate_content {MODEL}",
    ]
    (tool,) = [s for s in spans if s.name == "execute_tool lookup"]
    assert "agent.tool.args_sha" not in tool.attributes  # ADK's content capture is off by default
    assert root.attributes["agent.stop_reason"] == "completed"


_SAMPLED_SCRIPT = """
import asyncio, json, sqlite3, sys
import agent_otel
from tests.envs.adk.test_google_adk import make_runner, one_tool_script, run_async

agent_otel.setup("svc", store=sys.argv[1], instrument=sys.argv[2] == "hooks")
for _ in range(3):
    asyncio.run(run_async(make_runner(*one_tool_script())))
agent_otel.shutdown()
db = sqlite3.connect(sys.argv[1])
runs = db.execute("SELECT agent, model, conversation_id, steps, stop_reason FROM agent_runs").fetchall()
tools = db.execute("SELECT tool FROM agent_events WHERE kind = 'tool_result'").fetchall()
print(json.dumps({"runs": runs, "tools": tools}))
"""


@pytest.mark.parametrize("hooks", ["hooks", "spans"])
@pytest.mark.parametrize("sampler", ["always_on", "always_off"])
def test_the_applications_sampler_changes_nothing_the_store_keeps_of_a_run(tmp_path, hooks, sampler):
    """``OTEL_TRACES_SAMPLER=always_off`` (or a ratio's dropped traces): ADK's session id, which it gives
    its spans as they start, was lost from the run in a dropped trace (conversation None), with the
    spans alone and with the integration's hooks."""
    import json
    import os
    import subprocess
    import sys

    from tests.helpers import script_env

    env = script_env(tmp_path, OTEL_TRACES_SAMPLER=sampler, AGENT_OTEL_PROBE_LOCAL="false")
    store = str(tmp_path / "runs.db")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    done = subprocess.run(
        [sys.executable, "-c", _SAMPLED_SCRIPT, store, hooks],
        capture_output=True, text=True, env=env, cwd=root, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert [tuple(r) for r in got["runs"]] == [("helper", MODEL, "s1", 3, "completed")] * 3
    assert got["tools"] == [["lookup"]] * 3


async def test_a_transfer_to_a_sub_agent_stays_in_the_one_run(telemetry, instrument):
    """``transfer_to_agent``: the root agent's span ends and the sub-agent's starts, both inside ADK's
    workflow span. The caller made one call: one run, its steps in order across both agents."""
    instrument("google_adk")
    sub = LlmAgent(
        name="specialist",
        model=FakeModel(model=MODEL, script=[call("lookup", {"q": "otel"}, "c2"), text("done", (20, 3))]),
        tools=[lookup],
        instruction="answer",
        description="answers questions",
    )
    root_agent = LlmAgent(
        name="helper",
        model=FakeModel(model=MODEL, script=[call("transfer_to_agent", {"agent_name": "specialist"}, "c1")]),
        sub_agents=[sub],
        instruction="route",
    )
    events = await run_async(InMemoryRunner(agent=root_agent, app_name="app"))
    assert final_text(events) == "done"
    assert SENT == {"lookup": 1}
    spans = telemetry.spans()
    runs = [s for s in spans if "agent.stop_reason" in s.attributes]
    assert [s.name for s in runs] == ["invoke_workflow helper"]
    (root,) = runs
    assert steps(root, spans) == [
        (1, f"generate_content {MODEL}"),
        (2, "execute_tool transfer_to_agent"),
        (3, f"generate_content {MODEL}"),
        (4, "execute_tool lookup"),
        (5, f"generate_content {MODEL}"),
    ]
    assert root.attributes["agent.stop_reason"] == "completed"
    assert root.attributes["agent.tool_calls"] == 2
    assert root.attributes["agent.usage.input_tokens"] == 40
    metrics = telemetry.metrics()
    assert [(a["agent"], a["stop_reason"], p.value) for a, p in metrics["agent.stop"] if p.value] == [
        ("helper", "completed", 1)
    ]


def ask_approval(amount: int) -> None:
    """Ask a manager to approve; the answer comes later (a long-running tool: None means pending)."""
    SENT["ask_approval"] += 1


async def test_a_long_running_tool_pauses_the_run_and_its_resume_links_to_it(telemetry, instrument):
    """ADK's human in the loop: a ``LongRunningFunctionTool`` that returns None pauses the invocation;
    the client sends the tool's response later, in a new ``run_async`` of the same session."""
    from google.adk.tools import LongRunningFunctionTool

    instrument("google_adk")
    model = FakeModel(model=MODEL, script=[call("ask_approval", {"amount": 5}, "c1"), text("approved")])
    agent = LlmAgent(name="helper", model=model, tools=[LongRunningFunctionTool(func=ask_approval)])
    runner = InMemoryRunner(agent=agent, app_name="app")
    first = await run_async(runner)
    assert [e.long_running_tool_ids for e in first] == [{"c1"}]  # ADK paused after the call
    answer = types.Content(
        role="user",
        parts=[
            types.Part(
                function_response=types.FunctionResponse(
                    id="c1", name="ask_approval", response={"status": "approved"}
                )
            )
        ],
    )
    second = [e async for e in runner.run_async(user_id="u", session_id="s1", new_message=answer)]
    assert final_text(second) == "approved"
    assert SENT == {"ask_approval": 1}
    spans = telemetry.spans()
    paused, resumed = sorted(
        (s for s in spans if s.name == "invoke_workflow helper"), key=lambda s: s.start_time
    )
    assert paused.attributes["agent.stop_reason"] == "interrupted"
    assert paused.status.status_code is StatusCode.UNSET
    (interrupt,) = [dict(e.attributes) for e in paused.events if e.name == "agent.interrupt"]
    assert interrupt["interrupts"] == 1 and list(interrupt["interrupt_ids"]) == ["c1"]
    assert resumed.attributes["agent.stop_reason"] == "completed"
    assert resumed.attributes["agent.resume_of"] == paused.attributes["agent.run_id"]
    assert [link.context.span_id for link in resumed.links] == [paused.context.span_id]


async def test_tool_error_ends_the_run_with_tool_error(telemetry, instrument):
    instrument("google_adk")
    with pytest.raises(RuntimeError, match="backend down"):  # ADK raises a tool's exception to the caller
        await run_async(make_runner(call("broken", {"q": "x"}, "c1"), text("sorry")))
    spans = telemetry.spans()
    (tool,) = [s for s in spans if s.name == "execute_tool broken"]
    assert tool.status.status_code is StatusCode.ERROR
    assert tool.attributes["agent.tool.status"] == "error" and tool.attributes["error.type"] == "RuntimeError"
    assert tool.attributes["gen_ai.tool.call.id"] == "c1"  # not ADK's "<not specified>" of a tool that raised
    (root,) = [s for s in spans if s.name == "invoke_workflow helper"]
    assert root.attributes["agent.stop_reason"] == "tool_error"
    (event,) = telemetry.events("tool_result")
    assert (event["status"], event["error"], event["args_sha"]) == ("error", "RuntimeError", sha({"q": "x"}))
    assert [(e["stop_reason"], e["status"]) for e in telemetry.events("stop")] == [("tool_error", "failure")]


async def test_model_error_ends_the_run_with_model_error(telemetry, instrument):
    instrument("google_adk")
    with pytest.raises(ConnectionError):
        await run_async(make_runner(ConnectionError("provider unreachable")))
    spans = telemetry.spans()
    (root,) = [s for s in spans if s.name == "invoke_workflow helper"]
    assert root.attributes["agent.stop_reason"] == "model_error"
    assert root.status.status_code is StatusCode.ERROR
    (llm,) = telemetry.events("llm_result")
    assert (llm["status"], llm["error"], llm["step_id"]) == ("error", "ConnectionError", 1)


async def test_max_llm_calls_is_max_steps(telemetry, instrument):
    instrument("google_adk")
    with pytest.raises(LlmCallsLimitExceededError):
        await run_async(make_runner(*one_tool_script()), RunConfig(max_llm_calls=1))
    (root,) = [s for s in telemetry.spans() if s.name == "invoke_workflow helper"]
    assert root.attributes["agent.stop_reason"] == "max_steps"


async def test_a_configured_guard_stops_before_the_tool_runs(guarded, instrument):
    telemetry = guarded({"policy": {"deny": {"*": ["delete_*"]}}})
    instrument("google_adk")
    with pytest.raises(agent_otel.AgentStopped) as stopped:  # as itself, not ADK's RuntimeError
        await run_async(make_runner(call("delete_all", {}, "c1"), text("done")))
    assert stopped.value.result.stop_reason.value == "policy_denied"
    assert SENT == {}
    spans = telemetry.spans()
    (root,) = [s for s in spans if s.name == "invoke_workflow helper"]
    assert root.attributes["agent.stop_reason"] == "policy_denied"
    (guard,) = [dict(e.attributes) for e in root.events if e.name == "agent.guard"]
    assert (guard["guard"], guard["enforced"], guard["tool"]) == ("policy", True, "delete_all")
    assert [(e["kind"], e["stop_reason"]) for e in telemetry.events()] == [
        ("llm_result", None),
        ("stop", "policy_denied"),
    ]


async def test_a_tool_denied_with_on_deny_raise_never_runs_and_the_model_is_told(guarded, instrument):
    """``on_deny: raise`` refuses the tool without ending the run: ADK gets the refusal as the tool's
    result (the plugin's before-tool answer), the model carries on, and the function never runs."""
    telemetry = guarded({"policy": {"deny": {"*": ["delete_*"]}, "on_deny": "raise"}})
    instrument("google_adk")
    events = await run_async(make_runner(call("delete_all", {}, "c1"), text("done")))
    assert final_text(events).endswith("done")
    assert SENT == {}  # never ran
    responses = [
        p.function_response.response
        for e in events
        if e.content
        for p in e.content.parts or ()
        if p.function_response
    ]
    assert len(responses) == 1 and "blocked by policy" in responses[0]["error"]
    (root,) = [s for s in telemetry.spans() if s.name == "invoke_workflow helper"]
    assert root.attributes["agent.stop_reason"] == "completed"
    (guard,) = [dict(e.attributes) for e in root.events if e.name == "agent.guard"]
    assert (guard["guard"], guard["enforced"], guard["tool"]) == ("policy", True, "delete_all")


async def test_the_default_loop_guard_only_observes(telemetry, instrument):
    instrument("google_adk")
    script = [call("lookup", {"q": "same"}, f"c{i}") for i in range(4)]
    events = await run_async(make_runner(*script, text("done")))
    assert final_text(events).endswith("done") and SENT == {"lookup": 4}
    (root,) = [s for s in telemetry.spans() if s.name == "invoke_workflow helper"]
    assert root.attributes["agent.stop_reason"] == "completed"
    (guard,) = [dict(e.attributes) for e in root.events if e.name == "agent.guard"]
    assert (guard["guard"], guard["enforced"], guard["would_stop"]) == ("loop", False, "loop_detected")


async def test_store_rows_and_replay_serve_the_tool(rig, instrument):
    rig.start()
    instrument("google_adk")
    recorded_events = await run_async(make_runner(*one_tool_script()))
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
    assert (row["input_tokens"], row["output_tokens"], row["model"], row["conversation_id"]) == (
        30,
        8,
        MODEL,
        "s1",
    )
    recorded = [(e["tool"], e["args_sha"], e["result_sha"], e["status"]) for e in rig.tool_events(original)]
    assert recorded == [("lookup", sha({"q": "otel"}), sha({"answer": "OTEL"}), "ok")]

    with agent_otel.replay(original) as rp:
        events = await run_async(make_runner(*one_tool_script()))
    assert SENT == {"lookup": 1}  # served from the recording
    assert final_text(events) == final_text(recorded_events)
    responses = [
        p.function_response.response for e in events for p in e.content.parts or () if p.function_response
    ]
    assert responses == [{"answer": "OTEL"}]  # the model got what it got when the run was recorded
    report = rp.report
    assert report.matched and not report.diverged and report.served == 1, str(report)
    replayed = [
        (e["tool"], e["args_sha"], e["result_sha"], e["status"])
        for e in rig.tool_events(report.replay_run_id)
    ]
    assert replayed == recorded


async def test_replay_refuses_a_recorded_tool_error(rig, instrument):
    rig.start()
    instrument("google_adk")
    with pytest.raises(RuntimeError):
        await run_async(make_runner(call("broken", {"q": "x"}, "c1"), text("sorry")))
    original = rig.last_run_id("helper")
    with pytest.raises(ReplayError, match="raised an error when recorded"), agent_otel.replay(original):
        await run_async(make_runner(call("broken", {"q": "x"}, "c1"), text("sorry")))
    assert SENT == {"broken": 1}


@agent_otel.tool(name="crm.search", retry=agent_otel.Retry(max_attempts=3, base_delay_s=0, jitter="none"))
def search(q: str) -> dict[str, Any]:
    """Search; the first attempt fails."""
    SENT["search"] += 1
    if SENT["search"] < 2:
        raise ConnectionError("reset")
    return {"answer": q.upper()}


@agent_otel.tool(side_effects=True)
def wipe(q: str) -> dict[str, Any]:
    """Wipe an account."""
    SENT["wipe"] += 1
    return {"wiped": True}


def runner_with(tool: Any, *script: Any) -> InMemoryRunner:
    agent = LlmAgent(name="helper", model=FakeModel(model=MODEL, script=list(script)), tools=[tool])
    return InMemoryRunner(agent=agent, app_name="app")


async def test_an_agent_otel_tool_is_one_tool_call_with_its_retry(telemetry, instrument):
    """An ``@agent_otel.tool(retry=...)`` function as an ADK tool: ADK's ``execute_tool`` span is the step
    (begun by the hook, not current), and the function ran bare inside it: no retry, the run failed
    with the first error. One step now, the retry applied once inside it."""
    instrument("google_adk")
    events = await run_async(
        runner_with(search, call("search", {"q": "otel"}, "c1", (10, 5)), text("done", (20, 3)))
    )
    assert final_text(events) == "done" and SENT == {"search": 2}
    (step,) = [s for s in telemetry.spans() if s.name.startswith("execute_tool")]
    assert step.attributes["gen_ai.tool.call.id"] == "c1" and step.attributes["agent.tool.attempts"] == 2
    assert step.attributes["agent.tool.status"] == "ok"
    assert step.attributes["agent.tool.result_sha"] == sha({"answer": "OTEL"})


async def test_a_write_declared_with_agent_otel_tool_is_blocked_by_the_writes_kill_switch(
    guarded, instrument, monkeypatch
):
    """The hook began the step as a read (it sees ADK's ``FunctionTool``), and the write ran under the
    kill switch. The function claims the step as a write now: blocked, the run ends with ``kill_switch``."""
    telemetry = guarded({})
    instrument("google_adk")
    monkeypatch.setenv("AGENT_OTEL_KILL_SWITCH", "writes")
    runner = runner_with(wipe, call("wipe", {"q": "bob"}, "c1", (10, 5)), text("never", (20, 3)))
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        await run_async(runner)
    assert stopped.value.result.stop_reason == "kill_switch" and SENT == {}
    (step,) = [s for s in telemetry.spans() if s.name.startswith("execute_tool")]
    assert step.attributes["agent.tool.status"] == "error"
    # ADK's span of a tool that raised has the call id its hook gave the step, not "<not specified>".
    assert step.attributes["gen_ai.tool.call.id"] == "c1"


@agent_otel.tool
async def find(q: str) -> dict[str, Any]:
    """Find a record."""
    SENT["find"] += 1
    return {"answer": q.upper()}


async def test_a_replay_serves_an_agent_otel_tool_once(rig, instrument):
    """An ``@agent_otel.tool`` function as an ADK tool, replayed: the plugin serves the recorded result,
    the function does not run, one call recorded and served."""
    rig.start()
    instrument("google_adk")
    script = (call("find", {"q": "otel"}, "c1", (10, 5)), text("done", (20, 3)))
    await run_async(runner_with(find, *script))
    original = rig.last_run_id("helper")
    with agent_otel.replay(original) as rp:
        await run_async(runner_with(find, *script))
    assert SENT == {"find": 1}
    assert rp.report.matched and not rp.report.diverged and rp.report.served == 1, str(rp.report)


@agent_otel.tool(name="remember")
def remember_with_context(q: str, tool_context: ToolContext) -> str:
    return f"{q}:{tool_context.n}"


def test_an_adk_tool_context_is_not_one_of_the_tools_arguments(telemetry):
    """ADK hands a function tool its ToolContext by the parameter's name: not an argument of the call
    (tests/integrations/test_tool_context.py has the other frameworks)."""
    assert_context_left_out(telemetry, lambda s: remember_with_context(q="x", tool_context=s))
