"""Adding setup() never changes what a working agent does: default guards observe in framework runs.

A polling agent calls ``job_status(job_id="j1")`` until the job is done, here five times. With agent-otel
0.x and only ``setup()``, the default loop guard raised ``AgentStopped(loop_detected)`` out of
``graph.invoke`` / ``Runner.run`` at the fourth call. In a run agent-otel starts around a framework, a
guard the user did not configure only observes: the ``agent.guard`` event (``enforced=false``,
``would_stop``) and ``agent_guard_triggers_total`` say what would have stopped, and the agent completes.
A loop guard the user configured (config file, ``setup(config=...)``) still stops the agent, and in the
user's own ``agent_otel.run`` every guard enforces, defaults included.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

import agent_otel
from tests.integrations.conftest import one, ours

POLLS = 5  # the job is done at the fifth status call


def job_status_impl(calls: list[int]) -> str:
    calls.append(1)
    return "done" if len(calls) >= POLLS else "running"


def assert_observed(telemetry: Any, agent: str, calls: list[int]) -> None:
    assert len(calls) == POLLS  # every poll ran: nothing stopped the agent
    spans = ours(telemetry.spans())
    root = one(spans, f"invoke_agent {agent}")
    assert root.attributes["agent.stop_reason"] == "completed"
    assert root.attributes["agent.tool_calls"] == POLLS
    guard_events = [dict(e.attributes) for e in root.events if e.name == "agent.guard"]
    assert len(guard_events) == 1  # once per cause, not once per further repeat
    (event,) = guard_events
    assert event["guard"] == "loop" and event["tool"] == "job_status"
    assert event["enforced"] is False and event["would_stop"] == "loop_detected"
    assert event["observed"] == 4 and event["limit"] == 3
    triggers = {
        (p["agent"], p["guard"]): point.value
        for p, point in telemetry.metrics().get("agent.guard.triggers", [])
    }
    assert triggers == {(agent, "loop"): 1}


# --- LangGraph -------------------------------------------------------------------------------------------


def langgraph_poller(calls: list[int], name: str) -> Any:
    pytest.importorskip("langgraph")
    from langchain_core.tools import tool as lc_tool

    from tests.integrations.test_langgraph import ToolCallingFake, ai

    @lc_tool
    def job_status(job_id: str) -> str:
        """Status of a background job."""
        return job_status_impl(calls)

    replies = [ai(calls=[("job_status", {"job_id": "j1"}, f"call_{i}")], usage=(3, 1)) for i in range(POLLS)]
    model = ToolCallingFake(messages=iter([*replies, ai("the job is done", usage=(3, 2))]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langgraph.prebuilt import create_react_agent

        return create_react_agent(model, [job_status], name=name)


def test_langgraph_polling_agent_completes_under_setup_alone(telemetry, instrument):
    instrument("langchain", "langgraph")
    calls: list[int] = []
    result = langgraph_poller(calls, "poller").invoke({"messages": [("user", "wait for j1")]})
    assert result["messages"][-1].content == "the job is done"
    assert_observed(telemetry, "poller", calls)


def test_langgraph_polling_agent_is_stopped_by_a_configured_loop_guard(guarded, instrument):
    telemetry = guarded({"loop": {"max_repeats": 3}})
    instrument("langchain", "langgraph")
    calls: list[int] = []
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        langgraph_poller(calls, "poller").invoke({"messages": [("user", "wait for j1")]})
    assert stopped.value.stop_reason == "loop_detected"
    assert len(calls) == 3
    root = one(ours(telemetry.spans()), "invoke_agent poller")
    assert root.attributes["agent.stop_reason"] == "loop_detected"
    (event,) = [e for e in root.events if e.name == "agent.guard"]
    assert event.attributes["enforced"] is True


def test_langgraph_polling_agent_in_the_users_own_run_is_stopped_by_the_default_guard(telemetry, instrument):
    instrument("langchain", "langgraph")
    calls: list[int] = []
    with pytest.raises(agent_otel.AgentStopped) as stopped, agent_otel.run("my-agent"):
        langgraph_poller(calls, "poller").invoke({"messages": [("user", "wait for j1")]})
    assert stopped.value.stop_reason == "loop_detected"
    assert len(calls) == 3


# --- OpenAI Agents SDK -----------------------------------------------------------------------------------


def agents_poller(calls: list[int], name: str) -> Any:
    pytest.importorskip("agents")
    from agents import Agent, function_tool
    from agents.testing import ModelStep, assistant_message, function_call
    from agents.usage import Usage

    from tests.integrations.test_openai_agents import Scripted

    @function_tool
    def job_status(job_id: str) -> str:
        """Status of a background job."""
        return job_status_impl(calls)

    usage = Usage(requests=1, input_tokens=3, output_tokens=1, total_tokens=4)
    steps = [
        ModelStep(output=[function_call("job_status", {"job_id": "j1"}, call_id=f"c{i}")], usage=usage)
        for i in range(POLLS)
    ]
    steps.append(ModelStep(output=[assistant_message("the job is done")], usage=usage))
    return Agent(name=name, model=Scripted(steps), tools=[job_status])


@pytest.fixture
def no_sdk_traces() -> Any:
    pytest.importorskip("agents")
    from agents import set_trace_processors

    set_trace_processors([])  # keep the SDK's default exporter off the network
    yield


def test_agents_sdk_polling_agent_completes_under_setup_alone(telemetry, instrument, no_sdk_traces):
    from agents import Runner

    instrument("openai_agents")
    calls: list[int] = []
    result = Runner.run_sync(agents_poller(calls, "sdk-poller"), "wait for j1", max_turns=20)
    assert result.final_output == "the job is done"
    assert_observed(telemetry, "sdk-poller", calls)


async def test_agents_sdk_polling_agent_is_stopped_by_a_configured_loop_guard(
    guarded, instrument, no_sdk_traces
):
    from agents import Runner

    telemetry = guarded({"loop": {"max_repeats": 3}})
    instrument("openai_agents")
    calls: list[int] = []
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        await Runner.run(agents_poller(calls, "sdk-poller"), "wait for j1", max_turns=20)
    assert stopped.value.stop_reason == "loop_detected"
    assert len(calls) == 3
    assert one(ours(telemetry.spans()), "invoke_agent sdk-poller").attributes["agent.stop_reason"] == (
        "loop_detected"
    )


def test_a_loop_guard_configured_in_the_config_file_enforces(
    tmp_path, monkeypatch, instrument, no_sdk_traces
):
    """``guards.loop`` set in the YAML file (AGENT_OTEL_CONFIG) counts as configured, not only setup()."""
    from agents import Runner

    config = tmp_path / "agent-otel.yaml"
    config.write_text("guards:\n  loop:\n    enabled: true\n")
    monkeypatch.setenv("AGENT_OTEL_CONFIG", str(config))
    monkeypatch.setenv("AGENT_OTEL_HOME", str(tmp_path / "home"))
    agent_otel.shutdown()
    agent_otel.setup("t", store=False, instrument=False, config={"exporter": {"probe_local": False}})
    try:
        instrument("openai_agents")
        calls: list[int] = []
        with pytest.raises(agent_otel.AgentStopped):
            Runner.run_sync(agents_poller(calls, "file-poller"), "wait", max_turns=20)
        assert len(calls) == 3
    finally:
        agent_otel.shutdown()


def test_budgets_and_policy_still_enforce_in_framework_runs(guarded, instrument, no_sdk_traces):
    """Only default-on guards observe: a budget the user set stops a framework run as before."""
    from agents import Runner

    telemetry = guarded({"budget": {"max_tool_calls": 2}})
    instrument("openai_agents")
    calls: list[int] = []
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        Runner.run_sync(agents_poller(calls, "budgeted"), "wait", max_turns=20)
    assert stopped.value.stop_reason == "budget_exceeded"
    assert len(calls) == 2
    root = one(ours(telemetry.spans()), "invoke_agent budgeted")
    # The loop guard (default) never got to trigger; the budget (configured) enforced.
    assert [e.attributes["guard"] for e in root.events if e.name == "agent.guard"] == ["max_tool_calls"]


# --- smolagents, LlamaIndex, Claude Agent SDK (issue 13) ---------------------------------------------------


def test_smolagents_polling_agent_completes_under_setup_alone(telemetry, instrument):
    pytest.importorskip("smolagents")
    from smolagents import tool

    from tests.integrations.test_smolagents import ScriptedModel, agent, answer, call

    calls: list[int] = []

    @tool
    def job_status(job_id: str) -> str:
        """Status of a background job.

        Args:
            job_id: the job
        """
        return job_status_impl(calls)

    model = ScriptedModel(
        *[call("job_status", {"job_id": "j1"}, f"c{i}") for i in range(POLLS)], answer("done")
    )
    instrument("smolagents")
    assert agent(model, name="smol_poller", tools=[job_status]).run("wait for j1") == "done"
    assert_observed(telemetry, "smol_poller", calls)


async def test_llamaindex_polling_agent_completes_under_setup_alone(telemetry, instrument):
    pytest.importorskip("llama_index.core")
    from tests.integrations.test_llamaindex import agent, call, script, text

    calls: list[int] = []

    def job_status(job_id: str) -> str:
        """Status of a background job."""
        return job_status_impl(calls)

    llm = script(*[call("job_status", {"job_id": "j1"}, f"c{i}") for i in range(POLLS)], text("done"))
    instrument("llamaindex")
    assert str(await agent(llm, job_status, name="li-poller").run(user_msg="wait for j1")) == "done"
    assert_observed(telemetry, "li-poller", calls)


async def test_claude_polling_agent_completes_under_setup_alone(telemetry, instrument, tmp_path):
    pytest.importorskip("claude_agent_sdk")
    from claude_agent_sdk import query

    from tests.integrations.test_claude_agent_sdk import CLI, final_turn

    turns = [
        {
            "id": f"msg_{i}",
            "tool": {"id": f"t{i}", "name": "job_status", "input": {"job_id": "j1"}, "result": "ok"},
        }
        for i in range(POLLS)
    ]
    cli = CLI(tmp_path)
    instrument("claude_agent_sdk")
    async for _ in query(
        prompt="wait for j1", options=cli.options({"turns": [*turns, final_turn("done", "msg_z")]})
    ):
        pass
    calls = [1 for _ in cli.ran()]  # what the CLI ran: every poll
    assert_observed(telemetry, "claude-agent", calls)
