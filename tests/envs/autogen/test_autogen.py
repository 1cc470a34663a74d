"""AutoGen (autogen-agentchat) through the GenAI span bridge (and the ``autogen`` integration for sync
``@agent_otel.tool`` functions), its model client the real OpenAI SDK against
a fake OpenAI API on 127.0.0.1: AutoGen's own ``invoke_agent`` / ``execute_tool`` spans become the run and
its tool steps, the ``openai`` integration makes each request a ``chat`` step with usage. Without the
``autogen`` integration guards only observe the tools and a replay runs them live; with it (its hook before
every tool, ``BaseTool.run_json``) the steps have arguments and results, configured guards enforce and a
replay serves the recorded outcome instead of running the tool."""

from __future__ import annotations

from typing import Any

import pytest

import agent_otel
from tests.integrations import sample_tools
from tests.integrations.conftest import Reply, assert_context_left_out, children, ours, steps, stop_event
from tests.integrations.openai_replies import answer, tool_call
from tests.integrations.sample_tools import SENT, broken, fresh_sent, lookup  # noqa: F401
from tests.replay.conftest import rig  # noqa: F401

pytest.importorskip("autogen_agentchat")

from autogen_agentchat.agents import AssistantAgent
from autogen_core import CancellationToken
from autogen_ext.models.openai import OpenAIChatCompletionClient
from opentelemetry.trace import StatusCode


def make_agent(fake_api: Any, name: str = "helper", tools: Any = (lookup, broken)) -> AssistantAgent:
    client = OpenAIChatCompletionClient(
        model="gpt-4o", base_url=fake_api.base_url + "/v1", api_key="test", max_retries=0
    )
    return AssistantAgent(name, model_client=client, tools=list(tools), reflect_on_tool_use=True)


def autogen_spans(spans: list[Any], name: str) -> list[Any]:
    return [s for s in spans if s.name == name and s.instrumentation_scope.name == "autogen-core"]


async def test_a_run_with_a_tool_call(telemetry, instrument, fake_api):
    instrument("openai")
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    result = await make_agent(fake_api).run(task="hi")
    assert result.messages[-1].to_text() == "done" and SENT == {"lookup": 1}
    spans = telemetry.spans()
    (root,) = autogen_spans(spans, "invoke_agent helper")  # AutoGen's span is the run: no second one
    assert [s.name for s in ours(spans)] == ["chat gpt-4o", "chat gpt-4o"]
    assert [s.name for s in children(root, spans)] == ["chat gpt-4o", "execute_tool lookup", "chat gpt-4o"]
    assert steps(root, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]
    tool = children(root, spans)[1]
    assert tool.attributes["agent.tool.status"] == "ok"
    assert tool.attributes["gen_ai.tool.call.id"] == "call_1"
    # AutoGen does not put a tool's arguments or result on its span: no hashes (README says so).
    assert "agent.tool.args_sha" not in tool.attributes
    assert root.attributes["agent.stop_reason"] == "completed"
    usage = (root.attributes["agent.usage.input_tokens"], root.attributes["agent.usage.output_tokens"])
    assert usage == (51, 11)
    assert root.attributes["agent.cost_usd"] > 0
    assert "gen_ai.usage.input_tokens" not in root.attributes  # usage once, on each request's span
    assert stop_event(root)["agent.stop_reason"] == "completed"
    assert [(e["kind"], e["step_id"], e["tool"]) for e in telemetry.events()] == [
        ("llm_result", 1, None),
        ("tool_result", 2, "lookup"),
        ("llm_result", 3, None),
        ("stop", None, None),
    ]
    metrics = telemetry.metrics()
    assert [(a["agent"], a["stop_reason"], p.value) for a, p in metrics["agent.stop"] if p.value] == [
        ("helper", "completed", 1)
    ]
    assert [(a["tool"], a["status"], p.value) for a, p in metrics["agent.tool.invocations"]] == [
        ("lookup", "ok", 1)
    ]


async def test_a_tool_error_is_a_failed_step_and_the_agent_goes_on(telemetry, instrument, fake_api):
    instrument("openai")
    fake_api.reply(tool_call("broken", {"q": "x"}), answer("sorry"))
    result = await make_agent(fake_api).run(task="hi")
    assert result.messages[-1].to_text() == "sorry" and SENT == {"broken": 1}
    spans = telemetry.spans()
    (root,) = autogen_spans(spans, "invoke_agent helper")
    (tool,) = autogen_spans(spans, "execute_tool broken")
    assert tool.attributes["agent.tool.status"] == "error"
    assert tool.attributes["error.type"] == "RuntimeError"
    assert root.attributes["agent.stop_reason"] == "completed"  # AutoGen told the model; the run went on
    (event,) = telemetry.events("tool_result")
    assert (event["status"], event["error"]) == ("error", "RuntimeError")


async def test_a_model_error_ends_the_run_with_model_error(telemetry, instrument, fake_api):
    instrument("openai")
    fake_api.reply(Reply({"error": {"message": "overloaded", "type": "server_error"}}, status=500))
    with pytest.raises(Exception) as raised:
        await make_agent(fake_api).run(task="hi")
    assert type(raised.value).__name__ == "InternalServerError"  # the application's own error, unchanged
    spans = telemetry.spans()
    (root,) = autogen_spans(spans, "invoke_agent helper")
    assert root.attributes["agent.stop_reason"] == "model_error"
    assert root.status.status_code is StatusCode.ERROR
    (stop,) = telemetry.events("stop")
    assert (stop["stop_reason"], stop["status"]) == ("model_error", "failure")


async def test_a_tool_guard_only_observes(guarded, instrument, fake_api):
    """AutoGen has no hook before a tool: a policy that denies it is recorded, and the tool runs."""
    telemetry = guarded({"policy": {"deny": {"*": ["lookup"]}}})
    instrument("openai")
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    result = await make_agent(fake_api).run(task="hi")
    assert result.messages[-1].to_text() == "done" and SENT == {"lookup": 1}
    (root,) = autogen_spans(telemetry.spans(), "invoke_agent helper")
    assert root.attributes["agent.stop_reason"] == "completed"
    (guard,) = [dict(e.attributes) for e in root.events if e.name == "agent.guard"]
    assert (guard["guard"], guard["enforced"], guard["would_stop"]) == ("policy", False, "policy_denied")


async def test_a_step_budget_only_observes_even_over_an_instrumented_client(guarded, instrument, fake_api):
    """A bridged run whose framework does not hook in observes every guard, model calls included (the
    OpenAI client's step could raise, but AutoGen never asked agent-otel to stop it): the budget's
    trigger is recorded with what it would have done, and every request is sent."""
    telemetry = guarded({"budget": {"max_steps": 2}})
    instrument("openai")
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    result = await make_agent(fake_api).run(task="hi")
    assert result.messages[-1].to_text() == "done" and len(fake_api.requests) == 2
    (root,) = autogen_spans(telemetry.spans(), "invoke_agent helper")
    assert root.attributes["agent.stop_reason"] == "completed"
    (guard,) = [dict(e.attributes) for e in root.events if e.name == "agent.guard"]
    assert (guard["guard"], guard["enforced"], guard["would_stop"]) == ("max_steps", False, "max_steps")


async def test_an_agent_inside_a_user_run_is_part_of_it(telemetry, instrument, fake_api):
    instrument("openai")
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    with agent_otel.run("outer") as run:
        await make_agent(fake_api).run(task="hi")
    spans = telemetry.spans()
    (outer,) = [s for s in ours(spans) if s.name == "invoke_agent outer"]
    assert run.result.usage["tool_calls"] == 1 and run.result.usage["llm_calls"] == 2
    assert {s.attributes.get("agent.run_id") for s in autogen_spans(spans, "execute_tool lookup")} == {
        outer.attributes["agent.run_id"]
    }


async def test_a_run_stream_closed_before_its_task_result_is_cancelled(telemetry, instrument, fake_api):
    """``run_stream`` left by its consumer at the model's tool call request (a client that went away):
    AutoGen ends its span normally, which read ``completed`` though the tool never ran and the agent never
    answered. Now ``cancelled``. A consumer that reads up to the TaskResult (the last item) and stops
    there completes."""
    from autogen_agentchat.base import TaskResult

    instrument("openai", "autogen")
    fake_api.reply(tool_call("lookup", {"q": "otel"}))
    stream = make_agent(fake_api).run_stream(task="hi")
    async for message in stream:
        if type(message).__name__ == "ToolCallRequestEvent":
            break
    await stream.aclose()
    assert SENT == {}  # the tool never ran: AutoGen stopped there (so it does without agent-otel)

    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    stream = make_agent(fake_api, "second").run_stream(task="hi")
    async for message in stream:
        if isinstance(message, TaskResult):
            break
    await stream.aclose()
    assert message.messages[-1].to_text() == "done" and SENT == {"lookup": 1}

    spans = telemetry.spans()
    (cut,) = autogen_spans(spans, "invoke_agent helper")
    assert cut.attributes["agent.stop_reason"] == "cancelled"
    assert steps(cut, spans) == [(1, "chat gpt-4o")]
    (done,) = autogen_spans(spans, "invoke_agent second")
    assert done.attributes["agent.stop_reason"] == "completed"
    assert [(e["agent"], e["stop_reason"]) for e in telemetry.events("stop")] == [
        ("helper", "cancelled"),
        ("second", "completed"),
    ]


async def test_a_team_is_a_run_per_turn_or_one_run_inside_a_user_run(telemetry, instrument, fake_api):
    """AutoGen traces each agent's turn in a team, not the team: each turn is a run of its own, unless the
    team runs inside a run of the user's, which every turn then joins."""
    from autogen_agentchat.teams import RoundRobinGroupChat

    instrument("openai")
    fake_api.reply(answer("first"), answer("second"))
    team = RoundRobinGroupChat([make_agent(fake_api, "writer"), make_agent(fake_api, "critic")], max_turns=2)
    await team.run(task="draft")
    runs = [
        s
        for s in telemetry.spans()
        if s.name.startswith("invoke_agent") and "agent.stop_reason" in s.attributes
    ]
    assert sorted(s.name for s in runs) == ["invoke_agent critic", "invoke_agent writer"]
    assert len({s.attributes["agent.run_id"] for s in runs}) == 2

    fake_api.reply(answer("first"), answer("second"))
    team = RoundRobinGroupChat([make_agent(fake_api, "writer"), make_agent(fake_api, "critic")], max_turns=2)
    with agent_otel.run("review-team") as run:
        await team.run(task="draft")
    assert run.result.usage["llm_calls"] == 2 and run.result.stop_reason == "completed"


async def test_a_team_stream_closed_early_leaves_each_turn_as_autogen_ends_it(
    telemetry, instrument, fake_api
):
    """A team's ``run_stream`` closed by its consumer at the first agent's tool call request: unlike an
    agent's ``run_stream``, closing it does not cut the turns short. The team's embedded runtime runs until
    idle as the stream closes (AutoGen's ``stop_when_idle``, so it does without agent-otel): the tool runs,
    the writer answers, the critic takes its turn. AutoGen traces no span of the team, so there is no team
    run to cancel, and each turn's run ends as it did, ``completed``: not ``cancelled``, which would say
    the agents did not finish."""
    from autogen_agentchat.teams import RoundRobinGroupChat

    instrument("openai", "autogen")
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("drafted"), answer("fine"))
    team = RoundRobinGroupChat([make_agent(fake_api, "writer"), make_agent(fake_api, "critic")], max_turns=2)
    stream = team.run_stream(task="draft")
    async for message in stream:
        if type(message).__name__ == "ToolCallRequestEvent":
            break
    await stream.aclose()
    assert SENT == {"lookup": 1} and len(fake_api.requests) == 3  # AutoGen ran the turns to their end
    spans = telemetry.spans()
    (writer,) = autogen_spans(spans, "invoke_agent writer")
    assert steps(writer, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]
    assert [(e["agent"], e["stop_reason"]) for e in telemetry.events("stop")] == [
        ("writer", "completed"),
        ("critic", "completed"),
    ]


def agent_with(fake_api: Any, tool: Any) -> AssistantAgent:
    client = OpenAIChatCompletionClient(
        model="gpt-4o", base_url=fake_api.base_url + "/v1", api_key="test", max_retries=0
    )
    return AssistantAgent("helper", model_client=client, tools=[tool])


@pytest.mark.parametrize("tool", [sample_tools.asearch, sample_tools.search], ids=["async", "sync"])
async def test_an_agent_otel_tool_is_one_tool_call_with_its_retry(telemetry, instrument, fake_api, tool):
    """An ``@agent_otel.tool(retry=...)`` function as an AutoGen tool: AutoGen's ``execute_tool`` span is
    the step, and the function claims it: one call, the retry applied once. A sync one too, which AutoGen
    runs with ``loop.run_in_executor`` on a thread without the caller's context: the ``autogen``
    integration carries it there (before, the function ran in no run: no retry, the first failure went to
    the model)."""
    instrument("openai", "autogen")
    fake_api.reply(tool_call(tool.__name__, {"q": "otel"}), answer("done"))
    await agent_with(fake_api, tool).run(task="hi")
    assert SENT == {"search": 2}
    spans = telemetry.spans()
    (step,) = [s for s in spans if s.name.startswith("execute_tool")]
    assert step.attributes["gen_ai.tool.call.id"] == "call_1" and step.attributes["agent.tool.attempts"] == 2
    assert step.attributes["agent.tool.status"] == "ok"
    (root,) = autogen_spans(spans, "invoke_agent helper")
    assert root.attributes["agent.tool_calls"] == 1


@pytest.mark.parametrize("tool", [sample_tools.awipe, sample_tools.wipe], ids=["async", "sync"])
async def test_a_declared_write_is_blocked_by_the_writes_kill_switch_inside_a_run_of_yours(
    guarded, instrument, fake_api, monkeypatch, tool
):
    """AutoGen's own runs only observe guards (nothing of agent-otel runs before its tools); inside a run of
    yours an ``@agent_otel.tool(side_effects=True)`` function claims AutoGen's step as a write and is
    blocked (it never ran), a sync one on AutoGen's executor thread as well as an async one."""
    telemetry = guarded({})
    instrument("openai", "autogen")
    monkeypatch.setenv("AGENT_OTEL_KILL_SWITCH", "writes")
    fake_api.reply(tool_call(tool.__name__, {"q": "bob"}))  # the stop keeps the next request from being sent
    async with agent_otel.run("outer") as run:
        await agent_with(fake_api, tool).run(task="hi")
    assert SENT == {} and run.result.stop_reason == "kill_switch"
    (step,) = [s for s in telemetry.spans() if s.name.startswith("execute_tool")]
    assert step.attributes["agent.tool.status"] == "error"


def test_other_sync_functions_run_as_autogen_runs_them(telemetry, instrument, fake_api):
    """Only ``@agent_otel.tool`` functions get the caller's context on AutoGen's thread: a plain one sees
    none of it, as without agent-otel (no context variable of yours shows up there)."""
    import asyncio
    import contextvars

    seen = contextvars.ContextVar("seen", default="unset")

    def peek(q: str) -> str:
        """Peek."""
        return seen.get()

    instrument("openai", "autogen")
    fake_api.reply(tool_call("peek", {"q": "x"}), answer("done"))

    async def main() -> Any:
        seen.set("caller")
        return await agent_with(fake_api, peek).run(task="hi")

    result = asyncio.run(main())
    (executed,) = [m for m in result.messages if type(m).__name__ == "ToolCallExecutionEvent"]
    assert executed.content[0].content == "unset"


def test_uninstrument_restores_function_tool(instrument):
    from autogen_core.tools import FunctionTool

    original = FunctionTool.run
    instrument("autogen")
    assert FunctionTool.run is not original
    agent_otel.integrations.uninstrument(["autogen"])
    assert FunctionTool.run is original


@pytest.fixture
def recording(rig: Any) -> Any:  # noqa: F811
    """The replay rig (a real SQLite store), with the ``openai`` integration for AutoGen's model client."""
    from agent_otel import integrations

    rig.start()
    integrations.instrument(["openai"])
    yield rig
    integrations.uninstrument(["openai"])


async def turn(fake_api: Any, tool: Any, args: dict[str, Any]) -> None:
    """One turn of an agent with ``tool`` that the model asks to call with ``args``, then answers."""
    fake_api.reply(tool_call(tool.__name__, args), answer("done"))
    await make_agent(fake_api, tools=[tool]).run(task="hi")


async def test_a_replay_serves_an_async_agent_otel_tool_and_runs_a_plain_one_live(recording, fake_api):
    """Replay through AutoGen's spans alone: an async ``@agent_otel.tool`` function claims AutoGen's step,
    which then has the function's arguments and result (AutoGen's span has neither), so a replay matches
    it when AutoGen calls it and serves the recorded result; it does not run. A plain function runs live
    (AutoGen has no hook before a tool): neither recorded nor compared, since its span has no arguments.
    It was reported as a call past the end of the recording, and the stop that followed left the replay
    block as an AgentStopped."""
    from tests.replay.test_agent_frameworks import assert_served

    await turn(fake_api, sample_tools.asearch, {"q": "otel"})
    assert SENT == {"search": 2}
    original = recording.last_run_id("helper")
    with agent_otel.replay(original) as rp:
        await turn(fake_api, sample_tools.asearch, {"q": "otel"})
    assert SENT == {"search": 2}  # served: the function did not run again
    assert_served(rp, recording, original, 1)
    told = fake_api.requests[-1][1]["messages"][-1]
    assert told["role"] == "tool" and told["content"] == "OTEL"  # what the model got when recorded

    await turn(fake_api, lookup, {"q": "otel"})
    with agent_otel.replay(recording.last_run_id("helper")) as rp:
        await turn(fake_api, lookup, {"q": "otel"})
    assert SENT["lookup"] == 2  # AutoGen ran it: nothing of agent-otel runs before its tools
    report = rp.report
    assert report.matched and (report.recorded_tool_calls, report.served) == (0, 0), str(report)
    assert report.notes == [
        "step 2 (lookup) was not compared: its arguments are not on the framework's span (nor were they "
        "recorded); the framework ran it"
    ]


async def test_a_replay_that_diverges_at_an_agent_otel_tool_stops_there_and_reports_it(recording, fake_api):
    """Other arguments than recorded: the strict replay stops the run when AutoGen calls the function
    (which does not run). AutoGen hands the refusal to the model as the tool's error, and the run's next
    request raised the stop as an ``AgentStopped`` out of the replay block; the block absorbs it, as it
    does the ``ReplayDivergence``, and the report names the divergence."""
    await turn(fake_api, sample_tools.asearch, {"q": "otel"})
    with agent_otel.replay(recording.last_run_id("helper")) as rp:
        await turn(fake_api, sample_tools.asearch, {"q": "other"})
    assert SENT == {"search": 2}
    report = rp.report
    assert report.diverged and report.divergence is not None and report.divergence.kind == "args"
    assert (report.stop_reason_now, report.error) == ("policy_denied", None)


# --- with the ``autogen`` integration: a hook before every tool ------------------------------------------


async def test_with_the_integration_a_tool_step_has_its_arguments_and_result(telemetry, instrument, fake_api):
    """The ``autogen`` integration begins each tool step before AutoGen runs the tool, with the model's
    arguments, and ends it with the tool's return value while AutoGen's span is open: the step has its
    hashes (AutoGen's span has neither), on that one span, and what AutoGen did is unchanged."""
    from agent_otel.hashing import sha

    instrument("openai", "autogen")
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    result = await make_agent(fake_api).run(task="hi")
    assert result.messages[-1].to_text() == "done" and SENT == {"lookup": 1}
    spans = telemetry.spans()
    (root,) = autogen_spans(spans, "invoke_agent helper")
    (tool,) = [s for s in spans if s.name.startswith("execute_tool")]  # one span: AutoGen's
    assert tool.instrumentation_scope.name == "autogen-core" and tool.parent.span_id == root.context.span_id
    assert tool.attributes["agent.tool.args_sha"] == sha({"q": "otel"})
    assert tool.attributes["agent.tool.result_sha"] == sha("OTEL")
    assert (tool.attributes["agent.tool.status"], tool.attributes["gen_ai.tool.call.id"]) == ("ok", "call_1")
    (event,) = telemetry.events("tool_result")
    assert (event["args_sha"], event["result_sha"]) == (sha({"q": "otel"}), sha("OTEL"))
    told = fake_api.requests[-1][1]["messages"][-1]
    assert told["role"] == "tool" and told["content"] == "OTEL"


async def test_with_the_integration_a_failing_tool_is_a_failed_step_and_the_agent_goes_on(
    telemetry, instrument, fake_api
):
    instrument("openai", "autogen")
    fake_api.reply(tool_call("broken", {"q": "x"}), answer("sorry"))
    result = await make_agent(fake_api).run(task="hi")
    assert result.messages[-1].to_text() == "sorry" and SENT == {"broken": 1}
    (tool,) = [s for s in telemetry.spans() if s.name.startswith("execute_tool")]
    assert (tool.attributes["agent.tool.status"], tool.attributes["error.type"]) == ("error", "RuntimeError")
    told = fake_api.requests[-1][1]["messages"][-1]
    assert told["role"] == "tool" and "backend down" in told["content"]


async def test_with_the_integration_a_configured_policy_refuses_the_tool(guarded, instrument, fake_api):
    """A policy you configured is enforced before the tool runs (without the integration it only
    observes): the tool never runs, AutoGen tells the model, and the stop reaches the caller from the
    next request, which is not sent."""
    telemetry = guarded({"policy": {"deny": {"*": ["lookup"]}}})
    instrument("openai", "autogen")
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        await make_agent(fake_api).run(task="hi")
    assert stopped.value.stop_reason == "policy_denied"
    assert SENT == {} and len(fake_api.requests) == 1
    (root,) = autogen_spans(telemetry.spans(), "invoke_agent helper")
    assert root.attributes["agent.stop_reason"] == "policy_denied"


async def test_with_the_integration_the_default_loop_guard_still_only_observes(
    telemetry, instrument, fake_api
):
    """A working polling agent is not stopped by a guard nobody configured: the same call five times runs
    five times, the loop guard's trigger is recorded with what it would have done."""
    instrument("openai", "autogen")
    fake_api.reply(*[tool_call("lookup", {"q": "status"}) for _ in range(5)], answer("done"))
    agent = make_agent(fake_api, tools=[lookup])
    agent._max_tool_iterations = 5  # AutoGen's loop: one model request per tool call
    result = await agent.run(task="poll")
    assert result.messages[-1].to_text() == "done" and SENT == {"lookup": 5}
    (root,) = autogen_spans(telemetry.spans(), "invoke_agent helper")
    assert root.attributes["agent.stop_reason"] == "completed"
    guards = [dict(e.attributes) for e in root.events if e.name == "agent.guard"]
    assert [(g["guard"], g["enforced"]) for g in guards] == [("loop", False)]


@pytest.fixture
def hooked(recording: Any) -> Any:
    """The replay rig with the ``autogen`` integration too."""
    from agent_otel import integrations

    integrations.instrument(["autogen"])
    yield recording
    integrations.uninstrument(["autogen"])


async def test_with_the_integration_a_replay_serves_a_plain_tool_without_running_it(hooked, fake_api):
    """Before, a replay let AutoGen run every plain tool again (an email sent twice): now the recorded
    result is returned instead and the model gets what it got then."""
    from tests.replay.test_agent_frameworks import assert_served

    await turn(fake_api, lookup, {"q": "otel"})
    assert SENT == {"lookup": 1}
    original = hooked.last_run_id("helper")
    with agent_otel.replay(original) as rp:
        await turn(fake_api, lookup, {"q": "otel"})
    assert SENT == {"lookup": 1}  # served: the tool did not run again
    assert_served(rp, hooked, original, 1)
    told = fake_api.requests[-1][1]["messages"][-1]
    assert told["role"] == "tool" and told["content"] == "OTEL"


async def test_with_the_integration_a_replay_serves_a_recorded_error_as_autogen_told_the_model(
    hooked, fake_api
):
    await turn(fake_api, broken, {"q": "x"})
    then = fake_api.requests[-1][1]["messages"][-1]
    original = hooked.last_run_id("helper")
    with agent_otel.replay(original) as rp:
        await turn(fake_api, broken, {"q": "x"})
    assert SENT == {"broken": 1}
    assert rp.report.matched and rp.report.served == 1, str(rp.report)
    assert fake_api.requests[-1][1]["messages"][-1] == then  # the same error text, the tool not run


async def test_with_the_integration_a_replay_with_other_arguments_stops_before_the_tool(hooked, fake_api):
    await turn(fake_api, lookup, {"q": "otel"})
    with agent_otel.replay(hooked.last_run_id("helper")) as rp:
        await turn(fake_api, lookup, {"q": "other"})
    assert SENT == {"lookup": 1}
    report = rp.report
    assert report.diverged and report.divergence is not None and report.divergence.kind == "args"


async def test_with_the_integration_a_call_past_the_recording_is_refused_not_run(hooked, fake_api):
    """The recording had no tool call; the replayed model asks for one: the tool is not run."""
    fake_api.reply(answer("done"))
    await make_agent(fake_api, tools=[lookup]).run(task="hi")
    with agent_otel.replay(hooked.last_run_id("helper")) as rp:
        await turn(fake_api, lookup, {"q": "otel"})
    assert SENT == {}
    assert rp.report.diverged, str(rp.report)


def parallel_calls(*calls: tuple[str, dict[str, Any]]) -> Reply:
    """The model asks for several tool calls at once (AutoGen runs them concurrently)."""
    import json

    from tests.integrations.openai_replies import completion

    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
            for i, (n, a) in enumerate(calls, 1)
        ],
    }
    return completion(message, usage=(30, 7), finish="tool_calls")


async def test_with_the_integration_parallel_calls_are_steps_of_their_own_and_replay_served(hooked, fake_api):
    """AutoGen runs one response's tool calls concurrently, each in a task of its own: each is its own step
    on its own AutoGen span, with its call id, and a replay serves each."""
    from tests.replay.test_agent_frameworks import assert_served

    calls = (("lookup", {"q": "a"}), ("lookup", {"q": "b"}), ("broken", {"q": "c"}))
    fake_api.reply(parallel_calls(*calls), answer("done"))
    await make_agent(fake_api).run(task="hi")
    assert SENT == {"lookup": 2, "broken": 1}
    then = fake_api.requests[-1][1]["messages"][-3:]
    hooked.flush()
    tools = [s for s in hooked.exporter.get_finished_spans() if s.name.startswith("execute_tool")]
    assert sorted(s.attributes["gen_ai.tool.call.id"] for s in tools) == ["call_1", "call_2", "call_3"]
    assert {s.instrumentation_scope.name for s in tools} == {"autogen-core"}
    assert all("agent.tool.args_sha" in s.attributes for s in tools)
    original = hooked.last_run_id("helper")
    fake_api.reply(parallel_calls(*calls), answer("done"))
    with agent_otel.replay(original) as rp:
        await make_agent(fake_api).run(task="hi")
    assert SENT == {"lookup": 2, "broken": 1}
    assert rp.report.served == 3 and rp.report.matched, str(rp.report)
    assert fake_api.requests[-1][1]["messages"][-3:] == then
    assert_served(rp, hooked, original, 3)


async def test_a_run_recorded_without_the_integration_is_not_run_again_by_a_replay_with_it(
    recording, fake_api
):
    """A recording made without the integration (an agent-otel before it) has no snapshot of AutoGen's tool
    steps (their spans had no arguments): replayed with it, the first tool call is past the end of the
    recording, so the replay stops there, before the tool runs (it used to run it again, unserved)."""
    from agent_otel import integrations

    await turn(fake_api, lookup, {"q": "otel"})
    integrations.instrument(["autogen"])
    try:
        with agent_otel.replay(recording.last_run_id("helper")) as rp:
            await turn(fake_api, lookup, {"q": "otel"})
    finally:
        integrations.uninstrument(["autogen"])
    assert SENT == {"lookup": 1}
    report = rp.report
    assert report.diverged and report.recorded_tool_calls == 0, str(report)


async def test_with_the_integration_an_engaged_kill_switch_stops_the_first_request(
    guarded, instrument, fake_api, monkeypatch
):
    """AutoGen's runs follow the integration's hook from their start: with the kill switch engaged not
    even the first model request is sent (through the ``openai`` integration)."""
    telemetry = guarded({})
    instrument("openai", "autogen")
    monkeypatch.setenv("AGENT_OTEL_KILL_SWITCH", "all")
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        await make_agent(fake_api).run(task="hi")
    assert stopped.value.stop_reason == "kill_switch"
    assert fake_api.requests == [] and SENT == {}
    (root,) = autogen_spans(telemetry.spans(), "invoke_agent helper")
    assert root.attributes["agent.stop_reason"] == "kill_switch"


@agent_otel.tool(name="slow_lookup")
async def lookup_with_token(q: str, cancellation_token: CancellationToken) -> str:
    return f"{q}:{cancellation_token.n}"


def test_a_cancellation_token_is_not_one_of_the_tools_arguments(telemetry):
    """AutoGen hands a function tool that asks for one its CancellationToken: not an argument of the call
    (tests/integrations/test_tool_context.py has the other frameworks)."""
    assert_context_left_out(telemetry, lambda s: lookup_with_token(q="x", cancellation_token=s))
