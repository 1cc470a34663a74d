"""CrewAI with its real OpenAI provider against a fake OpenAI API on 127.0.0.1: kickoffs, tools, LLM calls."""

from __future__ import annotations

import json
from typing import Any

import pytest

import agent_otel
from agent_otel import integrations
from agent_otel.hashing import sha
from tests.helpers import IN_CI
from tests.integrations.conftest import (
    Reply,
    assert_unknown_then_zero_usage,
    chat_usage,
    children,
    one,
    ours,
    steps,
    stop_event,
)
from tests.integrations.openai_replies import answer, completion, tool_call
from tests.integrations.test_semconv import check, collect

try:
    import crewai  # noqa: F401
except ImportError:  # this directory runs in .venvs/crewai (make test); a missing crewai is a broken CI
    message = (
        "crewai is missing; install it with: make install-envs (or pip install -e '.[dev,frameworks-crewai]')"
    )
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)

from crewai import LLM, Agent, Crew, Task
from crewai.tools import tool

CALLS: list[str] = []


@pytest.fixture(autouse=True)
def _calls():
    CALLS.clear()
    yield
    CALLS.clear()


@tool("lookup")
def lookup(q: str) -> str:
    """Look something up."""
    CALLS.append(q)
    return q.upper()


@tool("flaky")
def flaky(n: int) -> str:
    """Fails for n < 2."""
    CALLS.append(f"flaky {n}")
    if n < 2:
        raise ValueError(f"{n} is too small")
    return "fine"


@tool("delete_account")
def delete_account(user: str) -> str:
    """Delete an account."""
    CALLS.append(f"deleted {user}")
    return "deleted"


def crew(api, *tools: Any, name: str = "research-crew", **agent_kwargs: Any) -> Crew:
    llm = LLM(model="gpt-4o", base_url=api.base_url + "/v1", api_key="test-key", max_retries=0)
    agent = Agent(
        role="Researcher",
        goal="Find things",
        backstory="Knows where to look.",
        llm=llm,
        tools=list(tools or (lookup,)),
        verbose=False,
        **agent_kwargs,
    )
    task = Task(description="Find {topic}.", expected_output="an answer", agent=agent, name="research")
    return Crew(agents=[agent], tasks=[task], name=name)


def test_kickoff_inputs_interpolated_into_a_task_or_a_role_do_not_leave_the_process(
    telemetry, instrument, fake_api
):
    """CrewAI writes the kickoff inputs into each task's description and each agent's role ("Answer
    {email}" becomes "Answer alice@..."); the run's input is only hashed (agent.input_sha), but the task's
    description (a task without a name) and the role were put on spans and span events as they were then.
    They are labelled by their templates, as the developer wrote them."""
    instrument("crewai")
    email = "carol.customer@example.com"
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("OTEL"))
    llm = LLM(model="gpt-4o", base_url=fake_api.base_url + "/v1", api_key="test-key", max_retries=0)
    agent = Agent(
        role="Support for {email}",
        goal="Answer {email}",
        backstory="Helps.",
        llm=llm,
        tools=[lookup],
        verbose=False,
    )
    task = Task(description="Answer {email} about {topic}.", expected_output="an answer", agent=agent)
    support = Crew(agents=[agent], tasks=[task], name="support")
    result = support.kickoff(inputs={"email": email, "topic": "otel"})
    assert result.raw == "OTEL"
    assert email in task.description and email in agent.role  # CrewAI's own objects, as CrewAI made them

    spans = telemetry.spans()
    root = one(ours(spans), "invoke_agent support")
    task_events = [dict(e.attributes) for e in root.events if e.name.startswith("crewai.task.")]
    assert task_events[0] == {
        "crewai.task.name": "Answer {email} about {topic}.",
        "crewai.agent.role": "Support for {email}",
    }
    assert one(ours(spans), "execute_tool lookup").attributes["crewai.agent.role"] == "Support for {email}"
    everything = json.dumps([json.loads(s.to_json()) for s in spans]) + json.dumps(telemetry.events())
    assert email not in everything


def test_kickoff_with_a_tool_call(telemetry, instrument, fake_api):
    # The openai client CrewAI's provider uses is instrumented too: each request is still counted once.
    assert instrument("crewai", "openai") == ["crewai", "openai"]
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("OTEL"))
    result = crew(fake_api).kickoff(inputs={"topic": "otel"})
    assert result.raw == "OTEL"
    assert CALLS == ["otel"]
    assert len(fake_api.requests) == 2

    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent research-crew")
    assert root.parent is None
    assert [s.name for s in children(root, spans)] == ["chat gpt-4o", "execute_tool lookup", "chat gpt-4o"]
    assert steps(root, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]
    tool_span = one(spans, "execute_tool lookup")
    assert tool_span.attributes["agent.tool.args_sha"] == sha({"q": "otel"})
    assert tool_span.attributes["agent.tool.result_sha"] == sha("OTEL")
    assert tool_span.attributes["agent.tool.status"] == "ok"
    assert tool_span.attributes["crewai.agent.role"] == "Researcher"
    assert tool_span.attributes["crewai.task.name"] == "research"
    first_chat = children(root, spans)[0]
    # each request once: CrewAI's own usage for it, on one span
    assert first_chat.attributes["gen_ai.usage.input_tokens"] == 30
    assert first_chat.attributes["gen_ai.usage.output_tokens"] == 7
    assert root.attributes["agent.usage.input_tokens"] == 51
    assert root.attributes["agent.input_sha"] == sha({"topic": "otel"})
    assert root.attributes["agent.stop_reason"] == "completed"
    assert stop_event(root)["agent.stop_reason"] == "completed"
    task_events = [(e.name, dict(e.attributes)) for e in root.events if e.name.startswith("crewai.")]
    assert task_events == [
        ("crewai.task.started", {"crewai.task.name": "research", "crewai.agent.role": "Researcher"}),
        ("crewai.task.completed", {"crewai.task.name": "research", "crewai.agent.role": "Researcher"}),
    ]

    assert [
        (e["tool"], e["step_id"], e["args_sha"], e["status"]) for e in telemetry.events("tool_result")
    ] == [("lookup", 2, sha({"q": "otel"}), "ok")]
    assert [
        (e["usage"]["input_tokens"], e["usage"]["output_tokens"]) for e in telemetry.events("llm_result")
    ] == [
        (30, 7),
        (21, 4),
    ]
    metrics = telemetry.metrics()
    assert [(p[0]["stop_reason"], p[1].value) for p in metrics["agent.stop"] if p[1].value] == [
        ("completed", 1)
    ]
    assert [(p[0]["tool"], p[0]["status"], p[1].value) for p in metrics["agent.tool.invocations"]] == [
        ("lookup", "ok", 1)
    ]
    assert first_chat.attributes["gen_ai.provider.name"] == "openai"
    assert first_chat.attributes["gen_ai.response.id"] == "chatcmpl-1"  # told by the openai integration
    check(collect(telemetry))  # every gen_ai key in the GenAI registry, the Required ones present


async def test_async_kickoffs(telemetry, instrument, fake_api):
    instrument("crewai")
    fake_api.reply(tool_call("lookup", {"q": "a"}), answer("A"), tool_call("lookup", {"q": "b"}), answer("B"))
    first = await crew(fake_api, name="native-async").akickoff(inputs={"topic": "a"})
    second = await crew(fake_api, name="threaded-async").kickoff_async(inputs={"topic": "b"})
    assert (first.raw, second.raw) == ("A", "B")
    spans = ours(telemetry.spans())
    for name in ("native-async", "threaded-async"):
        root = one(spans, f"invoke_agent {name}")
        assert steps(root, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]
        assert root.attributes["agent.stop_reason"] == "completed"


def stream(*chunks: dict[str, Any], usage: tuple[int, int] = (30, 7)) -> Reply:
    """A streamed Chat Completion: the deltas, then a last chunk with the usage."""
    base = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o"}
    events: list[tuple[str | None, Any]] = [(None, {**base, "choices": [chunk]}) for chunk in chunks]
    usage_body = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    events.append((None, {**base, "choices": [], "usage": usage_body}))
    events.append((None, "[DONE]"))
    return Reply(stream=events)


def test_streamed_kickoff(telemetry, instrument, fake_api):
    instrument("crewai")
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup", "arguments": json.dumps({"q": "s"})},
    }
    fake_api.reply(
        stream(
            {
                "index": 0,
                "delta": {"role": "assistant", "tool_calls": [{"index": 0, **call}]},
                "finish_reason": None,
            },
            {"index": 0, "delta": {}, "finish_reason": "tool_calls"},
        ),
        stream(
            {"index": 0, "delta": {"role": "assistant", "content": "STRE"}, "finish_reason": None},
            {"index": 0, "delta": {"content": "AMED"}, "finish_reason": "stop"},
            usage=(40, 2),
        ),
    )
    streamed = crew(fake_api)
    streamed.stream = True
    output = streamed.kickoff(inputs={"topic": "s"})
    chunks = [chunk.content for chunk in output]
    assert "STRE" in chunks
    assert output.result.raw == "STREAMED"
    assert CALLS == ["s"]
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent research-crew")  # one run: the crew CrewAI runs behind the stream
    assert steps(root, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]
    assert chat_usage(root, spans) == [(30, 7), (40, 2)]
    assert root.attributes["agent.stop_reason"] == "completed"


def test_tool_error_marks_the_step_and_the_crew_goes_on(telemetry, instrument, fake_api):
    instrument("crewai")
    fake_api.reply(tool_call("flaky", {"n": 1}), tool_call("flaky", {"n": 2}, "call_2"), answer("ok"))
    assert crew(fake_api, flaky).kickoff(inputs={"topic": "x"}).raw == "ok"
    spans = ours(telemetry.spans())
    flaky_spans = sorted([s for s in spans if s.name == "execute_tool flaky"], key=lambda s: s.start_time)
    assert [s.attributes["agent.tool.status"] for s in flaky_spans] == ["error", "ok"]
    assert flaky_spans[0].status.status_code.name == "ERROR"
    assert one(spans, "invoke_agent research-crew").attributes["agent.stop_reason"] == "completed"


def test_failing_model_stops_with_model_error(telemetry, instrument, fake_api):
    instrument("crewai")
    down = Reply({"error": {"message": "overloaded", "type": "server_error"}}, status=500)
    fake_api.reply(*[down] * 6)
    with pytest.raises(Exception) as raised:
        crew(fake_api, max_retry_limit=0).kickoff(inputs={"topic": "x"})
    assert not isinstance(raised.value, agent_otel.AgentStopped)
    spans = ours(telemetry.spans())
    chats = [s for s in spans if s.name == "chat gpt-4o"]
    assert chats and all(c.attributes["error.type"] == "LLMCallFailed" for c in chats)
    root = one(spans, "invoke_agent research-crew")
    assert root.attributes["agent.stop_reason"] == "model_error"
    assert root.status.status_code.name == "ERROR"


def test_denied_tool_never_runs_and_stops_the_crew(guarded, instrument, fake_api):
    telemetry = guarded({"policy": {"deny": {"*": ["delete_*"]}}})
    instrument("crewai")
    fake_api.reply(tool_call("delete_account", {"user": "bob"}), answer("never"))
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        crew(fake_api, delete_account).kickoff(inputs={"topic": "x"})
    assert stopped.value.stop_reason == "policy_denied"
    assert CALLS == []
    assert len(fake_api.requests) == 1  # the LLM call after the denied tool was never sent
    spans = ours(telemetry.spans())
    assert one(spans, "invoke_agent research-crew").attributes["agent.stop_reason"] == "policy_denied"
    assert not [s for s in spans if s.name.startswith("execute_tool")]


def test_a_tool_denied_with_on_deny_raise_never_runs_and_the_crew_goes_on(guarded, instrument, fake_api):
    """``on_deny: raise``: the tool is blocked (CrewAI tells the agent), the run is not stopped."""
    telemetry = guarded({"policy": {"deny": {"*": ["delete_*"]}, "on_deny": "raise"}})
    instrument("crewai")
    fake_api.reply(tool_call("delete_account", {"user": "bob"}), answer("could not delete bob"))
    result = crew(fake_api, delete_account).kickoff(inputs={"topic": "x"})
    assert "could not delete bob" in str(result)
    assert CALLS == []
    assert len(fake_api.requests) == 2  # the agent carried on after the refusal
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent research-crew")
    assert root.attributes["agent.stop_reason"] == "completed"
    assert not [s for s in spans if s.name.startswith("execute_tool")]
    assert [e.attributes["guard"] for e in root.events if e.name == "agent.guard"] == ["policy"]


def test_a_write_declared_with_agent_otel_tool_is_blocked_by_the_writes_kill_switch(
    guarded, instrument, fake_api, monkeypatch
):
    """A CrewAI ``@tool`` over an ``@agent_otel.tool(side_effects=True)`` function: the hook saw only the
    tool's name, so under the ``writes`` kill switch the write ran all the same."""
    telemetry = guarded({})
    instrument("crewai")
    monkeypatch.setenv("AGENT_OTEL_KILL_SWITCH", "writes")

    @tool("wipe_account")
    @agent_otel.tool(name="wipe_account", side_effects=True)
    def wipe_account(user: str) -> str:
        """Wipe an account."""
        CALLS.append(f"wiped {user}")
        return "wiped"

    fake_api.reply(tool_call("wipe_account", {"user": "bob"}))  # a second request gets a 500
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        crew(fake_api, wipe_account).kickoff(inputs={"topic": "x"})
    assert stopped.value.stop_reason == "kill_switch"
    assert CALLS == []
    assert len(fake_api.requests) == 1
    spans = ours(telemetry.spans())
    assert one(spans, "invoke_agent research-crew").attributes["agent.stop_reason"] == "kill_switch"

    # A read declared with agent-otel still runs under `writes`, as one tool call.
    @tool("find_account")
    @agent_otel.tool(name="find_account")
    def find_account(user: str) -> str:
        """Find an account."""
        CALLS.append(f"found {user}")
        return "found"

    telemetry.flush()
    telemetry.exporter.clear()
    fake_api.reply(tool_call("find_account", {"user": "bob"}), answer("it is there"))
    assert "it is there" in str(crew(fake_api, find_account).kickoff(inputs={"topic": "x"}))
    assert CALLS == ["found bob"]
    tool_spans = [s for s in ours(telemetry.spans()) if s.name.startswith("execute_tool")]
    assert [s.name for s in tool_spans] == ["execute_tool find_account"]


def test_kickoff_inside_a_user_run_joins_it(telemetry, instrument, fake_api):
    instrument("crewai")
    fake_api.reply(tool_call("lookup", {"q": "a"}), answer("A"))
    with agent_otel.run("outer") as run:
        crew(fake_api).kickoff(inputs={"topic": "a"})
    spans = ours(telemetry.spans())
    assert not [s for s in spans if s.name == "invoke_agent research-crew"]
    assert steps(one(spans, "invoke_agent outer"), spans) == [
        (1, "chat gpt-4o"),
        (2, "execute_tool lookup"),
        (3, "chat gpt-4o"),
    ]
    assert run.result.usage["tool_calls"] == 1


def test_replay_serves_the_recorded_tool_text_and_never_runs_the_tool(rig, fake_api):
    rig.start()
    integrations.instrument(["crewai"])
    try:
        fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("OTEL"))
        crew(fake_api).kickoff(inputs={"topic": "otel"})
        original = rig.last_run_id("research-crew")
        assert CALLS == ["otel"]
        recorded = rig.tool_events(original)
        assert [(e["tool"], e["args_sha"], e["result_sha"], e["status"]) for e in recorded] == [
            ("lookup", sha({"q": "otel"}), sha("OTEL"), "ok")
        ]
        run_row = rig.run_row(original)
        assert (run_row["agent"], run_row["stop_reason"], run_row["tool_calls"]) == (
            "research-crew",
            "completed",
            1,
        )

        fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("OTEL"))
        with agent_otel.replay(original) as rp:
            result = crew(fake_api).kickoff(inputs=rp.input)
        assert result.raw == "OTEL"
        assert CALLS == ["otel"]  # served, not run
        report = rp.report
        assert report.matched and report.served == 1 and report.stop_reason_now == "completed"
        tool_messages = [m for m in fake_api.requests[-1][1]["messages"] if m.get("role") == "tool"]
        assert [m["content"] for m in tool_messages] == ["OTEL"]  # the model got the recorded text
        replayed = rig.tool_events(report.replay_run_id)
        assert [(e["args_sha"], e["result_sha"]) for e in replayed] == [(sha({"q": "otel"}), sha("OTEL"))]
    finally:
        integrations.uninstrument(["crewai"])


def test_uninstrument_removes_hooks_and_patches(telemetry, instrument, fake_api):
    from crewai import hooks
    from crewai.crew import Crew as CrewClass

    before = (CrewClass.kickoff, len(hooks.get_before_tool_call_hooks()))
    instrument("crewai")
    assert len(hooks.get_before_tool_call_hooks()) == before[1] + 1
    second = integrations._load("crewai")
    second.instrument()  # another instance (a second setup()) registers no second hook
    assert len(hooks.get_before_tool_call_hooks()) == before[1] + 1
    second.uninstrument()
    integrations.uninstrument(["crewai"])
    assert (CrewClass.kickoff, len(hooks.get_before_tool_call_hooks())) == before
    fake_api.reply(answer("x"))
    crew(fake_api).kickoff(inputs={"topic": "x"})
    assert ours(telemetry.spans()) == []


def test_a_response_without_usage_is_unknown_usage_and_a_reported_0_is_0(telemetry, instrument, fake_api):
    instrument("crewai", "openai")
    unmetered = tool_call("lookup", {"q": "u"})
    del unmetered.body["usage"]
    fake_api.reply(unmetered, completion({"role": "assistant", "content": "U"}, usage=(0, 0)))
    assert crew(fake_api).kickoff(inputs={"topic": "u"}).raw == "U"
    spans = ours(telemetry.spans())
    assert_unknown_then_zero_usage(telemetry, one(spans, "invoke_agent research-crew"), spans)


def test_delegation_to_a_coworker_is_steps_of_the_same_run(telemetry, instrument, fake_api):
    """An agent with ``allow_delegation`` hands work to a coworker of its crew through CrewAI's delegate
    tool: the coworker's model requests and tool calls are steps of the kickoff's run (one crew, one run),
    after the delegate tool's step, as a handoff is elsewhere; not a sub-agent run."""
    instrument("crewai", "openai")
    llm = LLM(model="gpt-4o", base_url=fake_api.base_url + "/v1", api_key="test-key", max_retries=0)
    boss = Agent(role="Boss", goal="Delegate", backstory="Manages.", llm=llm, allow_delegation=True)
    worker = Agent(role="Worker", goal="Find things", backstory="Looks.", llm=llm, tools=[lookup])
    task = Task(description="Find otel.", expected_output="an answer", agent=boss, name="main")
    delegate = {"task": "find otel", "context": "none", "coworker": "Worker"}
    fake_api.reply(
        tool_call("delegate_work_to_coworker", delegate, "d1"),
        tool_call("lookup", {"q": "otel"}, "l1"),
        answer("OTEL"),
        answer("done"),
    )
    assert Crew(agents=[boss, worker], tasks=[task], name="team").kickoff().raw == "done"
    assert CALLS == ["otel"]
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent team")
    assert steps(root, spans) == [
        (1, "chat gpt-4o"),
        (2, "execute_tool delegate_work_to_coworker"),
        (3, "chat gpt-4o"),
        (4, "execute_tool lookup"),
        (5, "chat gpt-4o"),
        (6, "chat gpt-4o"),
    ]
    assert {s.attributes["agent.run_id"] for s in spans} == {root.attributes["agent.run_id"]}
    assert one(spans, "execute_tool lookup").attributes["crewai.agent.role"] == "Worker"


def test_replay_serves_an_agent_otel_tool_under_crewais_tool_and_never_runs_it(rig, fake_api):
    """A CrewAI ``@tool`` over an ``@agent_otel.tool`` function (which claims the step CrewAI's hook
    began): recorded once, and a replay serves it once; the function does not run."""

    @tool("find_account")
    @agent_otel.tool(name="crm.find_account")
    def find_account(user: str) -> str:
        """Find an account."""
        CALLS.append(f"found {user}")
        return f"account of {user}"

    rig.start()
    integrations.instrument(["crewai"])
    try:
        fake_api.reply(tool_call("find_account", {"user": "bob"}), answer("found"))
        crew(fake_api, find_account).kickoff(inputs={"topic": "bob"})
        original = rig.last_run_id("research-crew")
        assert CALLS == ["found bob"]
        fake_api.reply(tool_call("find_account", {"user": "bob"}), answer("found"))
        with agent_otel.replay(original) as rp:
            crew(fake_api, find_account).kickoff(inputs=rp.input)
        assert CALLS == ["found bob"]  # served, not run
        report = rp.report
        assert report.matched and (report.recorded_tool_calls, report.served) == (1, 1), str(report)
        tool_messages = [m for m in fake_api.requests[-1][1]["messages"] if m.get("role") == "tool"]
        assert [m["content"] for m in tool_messages] == ["account of bob"]
        replayed = rig.tool_events(report.replay_run_id)
        assert [(e["tool"], e["result_sha"]) for e in replayed] == [("find_account", sha("account of bob"))]
    finally:
        integrations.uninstrument(["crewai"])
