"""OpenAI Agents SDK driven by its own ScriptedModel (agents.testing): runs, tools, model steps, stops."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import agent_otel
from agent_otel.hashing import sha
from agent_otel.tools import ToolTimeout
from tests.integrations.conftest import (
    anywhere,
    approval,
    approval_events,
    assert_unknown_then_zero_usage,
    by_name,
    chat_tokens,
    children,
    one,
    ours,
    parent_of,
    steps,
    stop_event,
)

pytest.importorskip("agents")

from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    MaxTurnsExceeded,
    ModelBehaviorError,
    ModelRefusalError,
    ModelSettings,
    ModelTimeoutError,
    OutputGuardrailTripwireTriggered,
    Runner,
    ToolGuardrailFunctionOutput,
    ToolInputGuardrailTripwireTriggered,
    ToolOutputGuardrailTripwireTriggered,
    ToolTimeoutError,
    UserError,
    function_tool,
    handoff,
    input_guardrail,
    output_guardrail,
    set_trace_processors,
    tool_input_guardrail,
    tool_output_guardrail,
)
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from agents.tool import default_tool_error_function
from agents.tracing import TracingProcessor
from agents.usage import Usage
from openai.types.responses import ResponseOutputMessage, ResponseOutputRefusal
from openai.types.responses.response_usage import InputTokensDetails


class Collector(TracingProcessor):
    """Keeps the SDK's own trace spans in memory (and keeps its default exporter off the network)."""

    def __init__(self) -> None:
        self.spans: list[Any] = []

    def on_trace_start(self, trace: Any) -> None:
        pass

    def on_trace_end(self, trace: Any) -> None:
        pass

    def on_span_start(self, span: Any) -> None:
        pass

    def on_span_end(self, span: Any) -> None:
        self.spans.append(span)

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


@pytest.fixture(autouse=True)
def sdk_traces() -> Iterator[Collector]:
    collector = Collector()
    set_trace_processors([collector])
    yield collector
    set_trace_processors([])


class Scripted(ScriptedModel):
    """The SDK's ScriptedModel with a model name, as its OpenAI models have (``.model``)."""

    model = "gpt-4o"


def step(*output: Any, usage: tuple[int, int] = (10, 5)) -> ModelStep:
    return ModelStep(
        output=list(output),
        usage=Usage(requests=1, input_tokens=usage[0], output_tokens=usage[1], total_tokens=sum(usage)),
    )


@function_tool
def lookup(q: str) -> str:
    """Look something up."""
    return q.upper()


@function_tool
def delete_account(user: str) -> str:
    """Delete an account."""
    return "deleted " + user


def test_run_with_a_tool_call(telemetry, instrument, sdk_traces):
    instrument("openai_agents")
    model = Scripted(
        [
            step(function_call("lookup", {"q": "otel"}, call_id="call_1"), usage=(10, 5)),
            step(assistant_message("done"), usage=(20, 3)),
        ]
    )
    agent = Agent(name="assistant", model=model, tools=[lookup])
    result = Runner.run_sync(agent, "find otel")
    assert result.final_output == "done"

    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent assistant")
    assert root.parent is None
    assert [s.name for s in children(root, spans)] == ["chat gpt-4o", "execute_tool lookup", "chat gpt-4o"]
    assert steps(root, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]
    tool_span = one(spans, "execute_tool lookup")
    assert tool_span.attributes["gen_ai.tool.name"] == "lookup"
    assert tool_span.attributes["gen_ai.tool.call.id"] == "call_1"
    assert tool_span.attributes["agent.tool.args_sha"] == sha({"q": "otel"})
    assert tool_span.attributes["agent.tool.result_sha"] == sha("OTEL")
    assert tool_span.attributes["agent.tool.status"] == "ok"
    assert tool_span.attributes["agent.run_id"] == root.attributes["agent.run_id"]
    first = children(root, spans)[0]
    assert first.attributes["gen_ai.usage.input_tokens"] == 10
    assert first.attributes["gen_ai.usage.output_tokens"] == 5
    assert first.attributes["agent.cost_usd"] == pytest.approx((10 * 2.5 + 5 * 10) / 1e6)
    assert root.attributes["agent.usage.input_tokens"] == 30
    assert root.attributes["agent.usage.output_tokens"] == 8
    assert root.attributes["agent.input_sha"] == sha("find otel")
    assert root.attributes["agent.stop_reason"] == "completed"
    assert stop_event(root)["agent.stop_reason"] == "completed"
    (stop,) = telemetry.events("stop")
    assert stop["stop_reason"] == "completed" and stop["usage"]["tool_calls"] == 1
    # The SDK's own tracing still works: its processor saw the agent, generation and function spans.
    kinds = {type(s.span_data).__name__ for s in sdk_traces.spans}
    assert {"AgentSpanData", "FunctionSpanData"} <= kinds


async def test_async_run_inside_a_user_run_joins_it(telemetry, instrument):
    instrument("openai_agents")
    model = Scripted([step(function_call("lookup", {"q": "a"}, call_id="c1")), step(assistant_message("ok"))])
    agent = Agent(name="inner", model=model, tools=[lookup])
    async with agent_otel.run("outer") as run:
        await Runner.run(agent, "go")
    spans = ours(telemetry.spans())
    assert not [s for s in spans if s.name == "invoke_agent inner"]
    root = one(spans, "invoke_agent outer")
    assert steps(root, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]
    assert run.result.usage["tool_calls"] == 1


def test_max_turns_stops_with_max_steps(telemetry, instrument):
    instrument("openai_agents")
    model = Scripted([step(function_call("lookup", {"q": f"v{i}"}, call_id=f"c{i}")) for i in range(5)])
    agent = Agent(name="turns", model=model, tools=[lookup])
    with pytest.raises(MaxTurnsExceeded):
        Runner.run_sync(agent, "go", max_turns=2)
    root = one(ours(telemetry.spans()), "invoke_agent turns")
    assert root.attributes["agent.stop_reason"] == "max_steps"
    assert root.attributes["error.type"] == "MaxTurnsExceeded"
    assert root.status.status_code.name == "UNSET"


def test_input_guardrail_tripwire_stops_with_policy_denied(telemetry, instrument):
    instrument("openai_agents")

    @input_guardrail
    def no_secrets(ctx: Any, agent: Any, input: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info="secret", tripwire_triggered="secret" in str(input))

    agent = Agent(
        name="guarded",
        model=Scripted([step(assistant_message("x"))]),
        input_guardrails=[no_secrets],
    )
    with pytest.raises(InputGuardrailTripwireTriggered):
        Runner.run_sync(agent, "tell me the secret")
    root = one(ours(telemetry.spans()), "invoke_agent guarded")
    assert root.attributes["agent.stop_reason"] == "policy_denied"


def test_output_guardrail_tripwire_stops_with_policy_denied(telemetry, instrument):
    instrument("openai_agents")

    @output_guardrail
    def no_leaks(ctx: Any, agent: Any, output: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info="leak", tripwire_triggered="password" in str(output))

    agent = Agent(
        name="output-guarded",
        model=Scripted([step(assistant_message("the password is hunter2"), usage=(12, 6))]),
        output_guardrails=[no_leaks],
    )
    with pytest.raises(OutputGuardrailTripwireTriggered):
        Runner.run_sync(agent, "what is the password?")
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent output-guarded")
    # The model answered (one chat step, its usage counted); the guardrail then rejected the answer.
    assert [s.name for s in children(root, spans)] == ["chat gpt-4o"]
    assert one(spans, "chat gpt-4o").status.status_code.name == "UNSET"
    assert root.attributes["agent.usage.input_tokens"] == 12
    assert root.attributes["agent.stop_reason"] == "policy_denied"
    assert root.attributes["error.type"] == "OutputGuardrailTripwireTriggered"
    assert root.status.status_code.name == "UNSET"  # a limit, not a failure
    assert stop_event(root)["agent.stop_reason"] == "policy_denied"
    (stop,) = telemetry.events("stop")
    assert stop["stop_reason"] == "policy_denied"


def test_tool_input_guardrail_tripwire_stops_with_policy_denied(telemetry, instrument):
    instrument("openai_agents")
    ran: list[str] = []

    @tool_input_guardrail
    def no_admin(data: Any) -> ToolGuardrailFunctionOutput:
        if "admin" in str(data.context.tool_arguments):
            return ToolGuardrailFunctionOutput.raise_exception(output_info="admin account")
        return ToolGuardrailFunctionOutput.allow()

    @function_tool(tool_input_guardrails=[no_admin])
    def wipe(user: str) -> str:
        """Wipe a user's data."""
        ran.append(user)
        return "wiped " + user

    model = Scripted([step(function_call("wipe", {"user": "admin"}, call_id="w1"))])
    with pytest.raises(ToolInputGuardrailTripwireTriggered):
        Runner.run_sync(Agent(name="tool-in-guarded", model=model, tools=[wipe]), "go")
    assert ran == []  # the guardrail ran before the tool, which never executed
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent tool-in-guarded")
    # Like a call agent-otel's own policy denies: the tool never started, so there is no tool span.
    assert [s.name for s in children(root, spans)] == ["chat gpt-4o"]
    assert root.attributes["agent.stop_reason"] == "policy_denied"
    assert root.attributes["error.type"] == "ToolInputGuardrailTripwireTriggered"
    assert root.status.status_code.name == "UNSET"
    assert stop_event(root)["agent.stop_reason"] == "policy_denied"


def test_tool_output_guardrail_tripwire_stops_with_policy_denied(telemetry, instrument):
    instrument("openai_agents")

    @tool_output_guardrail
    def no_ssn(data: Any) -> ToolGuardrailFunctionOutput:
        if "ssn" in str(data.output):
            return ToolGuardrailFunctionOutput.raise_exception(output_info="ssn in output")
        return ToolGuardrailFunctionOutput.allow()

    @function_tool(tool_output_guardrails=[no_ssn])
    def profile(user: str) -> str:
        """A user's profile."""
        return f"{user}: ssn 000-00-0000"

    model = Scripted([step(function_call("profile", {"user": "bob"}, call_id="p1"))])
    with pytest.raises(ToolOutputGuardrailTripwireTriggered):
        Runner.run_sync(Agent(name="tool-out-guarded", model=model, tools=[profile]), "go")
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent tool-out-guarded")
    assert [s.name for s in children(root, spans)] == ["chat gpt-4o", "execute_tool profile"]
    tool_span = one(spans, "execute_tool profile")
    assert tool_span.attributes["agent.tool.args_sha"] == sha({"user": "bob"})
    # The tool itself succeeded (its span says so, with the hash of what it returned); the guardrail
    # then rejected that output, which is what ended the run.
    assert tool_span.attributes["agent.tool.status"] == "ok"
    assert tool_span.attributes["agent.tool.result_sha"] == sha("bob: ssn 000-00-0000")
    assert root.attributes["agent.stop_reason"] == "policy_denied"
    assert root.attributes["error.type"] == "ToolOutputGuardrailTripwireTriggered"
    assert root.status.status_code.name == "UNSET"
    assert stop_event(root)["agent.stop_reason"] == "policy_denied"


def test_model_timeout_stops_with_model_error(telemetry, instrument):
    """ModelSettings(timeout=) makes the SDK raise ModelTimeoutError from the model call we wrap, so the
    failed chat step already marks the run model_error; _classify's mapping is the fallback for a
    timeout raised outside a recorded model call, which these tests found no public way to provoke."""
    instrument("openai_agents")

    async def too_slow(call: Any) -> ModelStep:
        await asyncio.sleep(5)
        return step(assistant_message("late"))

    agent = Agent(
        name="impatient",
        model=Scripted([ModelStep.respond(too_slow)]),
        model_settings=ModelSettings(timeout=0.05),
    )
    with pytest.raises(ModelTimeoutError):
        Runner.run_sync(agent, "go")
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent impatient")
    chat = one(spans, "chat gpt-4o")
    assert children(root, spans) == [chat]
    assert chat.attributes["error.type"] == "ModelTimeoutError"
    assert chat.status.status_code.name == "ERROR"
    assert root.attributes["agent.stop_reason"] == "model_error"
    assert root.attributes["error.type"] == "ModelTimeoutError"
    assert root.status.status_code.name == "ERROR"
    assert root.status.description == "model_error"
    assert stop_event(root)["agent.stop_reason"] == "model_error"


def test_tool_timeout_raised_stops_with_tool_timeout(telemetry, instrument):
    instrument("openai_agents")

    @function_tool(timeout=0.05, timeout_behavior="raise_exception")
    async def slow(x: int) -> str:
        """Slow."""
        await asyncio.sleep(2)
        return "late"

    agent = Agent(
        name="slowpoke", model=Scripted([step(function_call("slow", {"x": 1}, call_id="s1"))]), tools=[slow]
    )
    with pytest.raises(ToolTimeoutError):
        Runner.run_sync(agent, "go")
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent slowpoke")
    assert root.attributes["agent.stop_reason"] == "tool_timeout"
    assert root.status.status_code.name == "ERROR"
    assert one(spans, "execute_tool slow").attributes["error.type"] == "ToolTimeoutError"


def test_tool_timeout_as_message_marks_the_tool_span_and_the_run_goes_on(telemetry, instrument):
    instrument("openai_agents")

    @function_tool(timeout=0.05)
    async def slow(x: int) -> str:
        """Slow."""
        await asyncio.sleep(2)
        return "late"

    model = Scripted(
        [step(function_call("slow", {"x": 1}, call_id="s1")), step(assistant_message("gave up"))]
    )
    result = Runner.run_sync(Agent(name="patient", model=model, tools=[slow]), "go")
    assert result.final_output == "gave up"
    spans = ours(telemetry.spans())
    tool_span = one(spans, "execute_tool slow")
    assert tool_span.attributes["agent.tool.status"] == "error"
    assert tool_span.attributes["error.type"] == "ToolTimeoutError"
    assert one(spans, "invoke_agent patient").attributes["agent.stop_reason"] == "completed"


def test_tool_error_handled_by_the_sdk_marks_the_span(telemetry, instrument):
    instrument("openai_agents")

    @function_tool
    def broken(x: int) -> str:
        """Raises."""
        raise ValueError("bad input")

    model = Scripted(
        [step(function_call("broken", {"x": 1}, call_id="b1")), step(assistant_message("sorry"))]
    )
    Runner.run_sync(Agent(name="handled", model=model, tools=[broken]), "go")
    spans = ours(telemetry.spans())
    tool_span = one(spans, "execute_tool broken")
    assert tool_span.attributes["agent.tool.status"] == "error"
    assert tool_span.attributes["error.type"] == "ValueError"
    assert one(spans, "invoke_agent handled").attributes["agent.stop_reason"] == "completed"


def test_model_refusal_stops_with_model_error(telemetry, instrument):
    instrument("openai_agents")
    refusal = ResponseOutputMessage(
        id="m1",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputRefusal(refusal="I can't help with that", type="refusal")],
    )
    with pytest.raises(ModelRefusalError):
        Runner.run_sync(Agent(name="refused", model=Scripted([step(refusal)])), "go")
    root = one(ours(telemetry.spans()), "invoke_agent refused")
    assert root.attributes["agent.stop_reason"] == "model_error"
    assert root.status.status_code.name == "ERROR"


def test_model_calling_an_unknown_tool_stops_with_model_error(telemetry, instrument):
    instrument("openai_agents")
    model = Scripted([step(function_call("no_such_tool", {}, call_id="x1"))])
    with pytest.raises(ModelBehaviorError):
        Runner.run_sync(Agent(name="confused", model=model, tools=[lookup]), "go")
    assert (
        one(ours(telemetry.spans()), "invoke_agent confused").attributes["agent.stop_reason"] == "model_error"
    )


def test_failing_model_call_stops_with_model_error(telemetry, instrument):
    instrument("openai_agents")
    model = Scripted([ModelStep.raise_error(ConnectionError("model endpoint down"))])
    with pytest.raises(ConnectionError):
        Runner.run_sync(Agent(name="offline", model=model), "go")
    spans = ours(telemetry.spans())
    assert one(spans, "chat gpt-4o").attributes["error.type"] == "ConnectionError"
    assert one(spans, "invoke_agent offline").attributes["agent.stop_reason"] == "model_error"


def test_manual_tool_decorator_on_the_same_function_gives_one_span(telemetry, instrument):
    instrument("openai_agents")

    @function_tool
    @agent_otel.tool
    def weather(city: str) -> str:
        """Weather."""
        return "sunny in " + city

    model = Scripted(
        [step(function_call("weather", {"city": "Oslo"}, call_id="w1")), step(assistant_message("ok"))]
    )
    Runner.run_sync(Agent(name="one-span", model=model, tools=[weather]), "go")
    spans = ours(telemetry.spans())
    assert [s.name for s in spans if s.name.startswith("execute_tool")] == ["execute_tool weather"]


def test_agent_as_tool_is_a_sub_agent(telemetry, instrument):
    instrument("openai_agents")
    researcher = Agent(
        name="researcher",
        model=Scripted(
            [step(function_call("lookup", {"q": "b"}, call_id="c9")), step(assistant_message("found"))]
        ),
        tools=[lookup],
    )
    boss = Agent(
        name="boss",
        model=Scripted(
            [
                step(function_call("research", {"input": "t"}, call_id="r1")),
                step(assistant_message("all done")),
            ]
        ),
        tools=[researcher.as_tool(tool_name="research", tool_description="Research a topic.")],
    )
    assert Runner.run_sync(boss, "go").final_output == "all done"
    spans = ours(telemetry.spans())
    boss_span = one(spans, "invoke_agent boss")
    sub = one(spans, "invoke_agent researcher")
    assert parent_of(sub, spans) is one(spans, "execute_tool research")
    assert sub.attributes["agent.parent_run_id"] == boss_span.attributes["agent.run_id"]
    assert steps(sub, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]
    assert steps(boss_span, spans) == [(1, "chat gpt-4o"), (2, "execute_tool research"), (3, "chat gpt-4o")]


def test_a_budget_of_the_users_run_bounds_an_as_tool_sub_agent(telemetry, instrument):
    """The user's run with a step budget of 6 runs an Agents SDK agent whose ``as_tool()`` sub-agent
    would look something up eight times: the sub-agent's steps count toward the user's budget, so it is
    stopped at the tree's 6th step (the boss's model call and its ``research`` tool call, then four of
    the sub-agent's), and the SDK cannot hide that stop: the boss's next model call is refused too."""
    instrument("openai_agents")
    looked_up: list[str] = []

    @function_tool
    def find(q: str) -> str:
        """Look something up."""
        looked_up.append(q)
        return q.upper()

    researcher = Agent(
        name="researcher",
        model=Scripted(
            [step(function_call("find", {"q": f"q{i}"}, call_id=f"c{i}")) for i in range(8)]
            + [step(assistant_message("found"))]
        ),
        tools=[find],
    )
    boss = Agent(
        name="boss",
        model=Scripted(
            [step(function_call("research", {"input": "t"}, call_id="r1")), step(assistant_message("done"))]
        ),
        tools=[researcher.as_tool(tool_name="research", tool_description="Research a topic.")],
    )
    with (
        pytest.raises(agent_otel.AgentStopped),
        agent_otel.run("support", budget=agent_otel.Budget(max_steps=6)) as run,
    ):
        Runner.run_sync(boss, "go")
    assert looked_up == ["q0", "q1"]  # the sub-agent's steps: chat, find, chat, find; its next chat stops
    assert run.result.stop_reason == "max_steps" and run.steps == 2
    spans = ours(telemetry.spans())
    sub = one(spans, "invoke_agent researcher")
    assert sub.attributes["agent.stop_reason"] == "max_steps"
    assert sub.attributes["agent.steps"] == 4
    guards = [e.attributes["guard"] for s in spans for e in s.events if e.name == "agent.guard"]
    assert guards == ["max_steps"]


def test_streamed_run(telemetry, instrument):
    instrument("openai_agents")
    model = Scripted(
        [
            step(function_call("lookup", {"q": "s"}, call_id="c1"), usage=(4, 2)),
            step(assistant_message("fin"), usage=(6, 1)),
        ]
    )

    async def main() -> Any:
        result = Runner.run_streamed(Agent(name="streamer", model=model, tools=[lookup]), "go")
        async for _ in result.stream_events():
            pass
        return result

    result = asyncio.run(main())
    assert result.final_output == "fin"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent streamer")
    assert steps(root, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]
    assert root.attributes["agent.usage.input_tokens"] == 10
    assert root.attributes["agent.usage.output_tokens"] == 3
    assert root.attributes["agent.stop_reason"] == "completed"


def test_streamed_run_past_max_turns(telemetry, instrument):
    instrument("openai_agents")
    model = Scripted([step(function_call("lookup", {"q": f"v{i}"}, call_id=f"c{i}")) for i in range(5)])

    async def main() -> None:
        result = Runner.run_streamed(
            Agent(name="stream-turns", model=model, tools=[lookup]), "go", max_turns=1
        )
        async for _ in result.stream_events():
            pass

    with pytest.raises(MaxTurnsExceeded):
        asyncio.run(main())
    assert (
        one(ours(telemetry.spans()), "invoke_agent stream-turns").attributes["agent.stop_reason"]
        == "max_steps"
    )


@pytest.mark.parametrize("mode", ["immediate", "after_turn"])
def test_a_streamed_run_the_caller_cancels_ends_cancelled(telemetry, instrument, mode):
    """``result.cancel()``: "immediate" cancels the SDK's task; "after_turn" lets the turn finish and the
    SDK's loop returns normally with no final output. Either way the caller stopped the run."""
    instrument("openai_agents")
    model = Scripted(
        [
            step(function_call("lookup", {"q": "s"}, call_id="c1"), usage=(4, 2)),
            step(assistant_message("fin"), usage=(6, 1)),
        ]
    )

    async def main() -> Any:
        result = Runner.run_streamed(Agent(name="cancelled", model=model, tools=[lookup]), "go")
        async for event in result.stream_events():
            if getattr(event, "name", None) == "tool_output":
                result.cancel(mode=mode)
        return result

    result = asyncio.run(main())
    assert result.final_output is None
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent cancelled")
    assert steps(root, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup")]
    assert root.attributes["agent.stop_reason"] == "cancelled"
    assert root.status.status_code.name == "UNSET"
    assert stop_event(root)["stop_class"] == "limit"


def test_denied_tool_stops_the_run_with_policy_denied(guarded, instrument):
    telemetry = guarded({"policy": {"deny": {"*": ["delete_*"]}}})
    instrument("openai_agents")
    model = Scripted(
        [
            step(function_call("delete_account", {"user": "bob"}, call_id="d1")),
            step(assistant_message("never")),
        ]
    )
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        Runner.run_sync(Agent(name="deleter", model=model, tools=[delete_account]), "delete bob")
    assert stopped.value.stop_reason == "policy_denied"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent deleter")
    assert root.attributes["agent.stop_reason"] == "policy_denied"
    assert not [s for s in spans if s.name.startswith("execute_tool")]
    assert [e.attributes["guard"] for e in root.events if e.name == "agent.guard"] == ["policy"]


def test_a_tool_denied_with_on_deny_raise_never_runs_and_the_model_is_told(guarded, instrument):
    """``on_deny: raise`` refuses the tool without ending the run: the SDK's tool-error path
    (``failure_error_function``) tells the model, as for any tool error. It ended the run with the SDK's
    ``UserError("Error running tool ...")`` instead, neither the ToolDenied nor a message to the model."""
    telemetry = guarded({"policy": {"deny": {"*": ["delete_*"]}, "on_deny": "raise"}})
    instrument("openai_agents")
    ran = []

    @function_tool
    def delete_user(user: str) -> str:
        """Delete an account."""
        ran.append(user)
        return "deleted " + user

    model = Scripted(
        [
            step(function_call("delete_user", {"user": "bob"}, call_id="d1")),
            step(assistant_message("I may not delete accounts.")),
        ]
    )
    result = Runner.run_sync(Agent(name="deleter", model=model, tools=[delete_user]), "delete bob")
    assert result.final_output == "I may not delete accounts." and ran == []
    (told,) = [item.output for item in result.new_items if type(item).__name__ == "ToolCallOutputItem"]
    assert told == default_tool_error_function(None, ValueError())  # the SDK's message for any tool error
    root = one(ours(telemetry.spans()), "invoke_agent deleter")
    assert root.attributes["agent.stop_reason"] == "completed"
    assert [e.attributes["guard"] for e in root.events if e.name == "agent.guard"] == ["policy"]

    @function_tool(failure_error_function=lambda ctx, error: f"refused: {error}")
    def delete_team(team: str) -> str:
        """Delete a team."""
        ran.append(team)
        return "deleted"

    model = Scripted(
        [step(function_call("delete_team", {"team": "t"}, call_id="d3")), step(assistant_message("no"))]
    )
    result = Runner.run_sync(Agent(name="teams", model=model, tools=[delete_team]), "delete t")
    (told,) = [item.output for item in result.new_items if type(item).__name__ == "ToolCallOutputItem"]
    assert told == "refused: tool 'delete_team' blocked by policy: matches deny pattern 'delete_*' for *"

    @function_tool(failure_error_function=None)  # the user asked for tool errors to be raised
    def delete_all(user: str) -> str:
        """Delete every account."""
        ran.append(user)
        return "deleted"

    model = Scripted([step(function_call("delete_all", {"user": "bob"}, call_id="d2"))])
    with pytest.raises(UserError) as raised:
        Runner.run_sync(Agent(name="strict", model=model, tools=[delete_all]), "delete all")
    assert isinstance(raised.value.__cause__, agent_otel.ToolDenied) and ran == []


def test_a_write_declared_with_agent_otel_tool_is_blocked_by_the_writes_kill_switch(
    guarded, instrument, monkeypatch
):
    """A function declared ``@agent_otel.tool(side_effects=True)`` and given to the SDK as its tool: the
    SDK opens the step without knowing it writes. Under the ``writes`` kill switch it ran all the same."""
    telemetry = guarded({})
    instrument("openai_agents")
    monkeypatch.setenv("AGENT_OTEL_KILL_SWITCH", "writes")
    ran = []

    @function_tool
    @agent_otel.tool(name="delete_user", side_effects=True)
    def delete_user(user: str) -> str:
        """Delete an account."""
        ran.append(user)
        return "deleted " + user

    @function_tool
    @agent_otel.tool(name="find_user")
    def find_user(user: str) -> str:
        """Find an account."""
        ran.append("find " + user)
        return user

    model = Scripted(
        [
            step(function_call("find_user", {"user": "bob"}, call_id="f1")),
            step(function_call("delete_user", {"user": "bob"}, call_id="d1")),
            step(assistant_message("never")),
        ]
    )
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        Runner.run_sync(Agent(name="deleter", model=model, tools=[find_user, delete_user]), "delete bob")
    assert stopped.value.stop_reason == "kill_switch" and ran == ["find bob"]  # reads go on
    root = one(ours(telemetry.spans()), "invoke_agent deleter")
    assert root.attributes["agent.stop_reason"] == "kill_switch"
    (event,) = [e.attributes for e in root.events if e.name == "agent.guard"]
    assert event["tool"] == "delete_user" and event["limit"] == "writes"


def test_looping_tool_calls_stop_the_run_with_loop_detected(guarded, instrument):
    telemetry = guarded({"loop": {"max_repeats": 2}})
    instrument("openai_agents")
    model = Scripted([step(function_call("lookup", {"q": "same"}, call_id=f"c{i}")) for i in range(6)])
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        Runner.run_sync(Agent(name="stuck", model=model, tools=[lookup]), "go", max_turns=10)
    assert stopped.value.stop_reason == "loop_detected"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent stuck")
    assert root.attributes["agent.stop_reason"] == "loop_detected"
    assert len([s for s in spans if s.name == "execute_tool lookup"]) == 2


def test_uninstrument_restores_the_sdk(telemetry, instrument):
    from agents import tool as tool_module
    from agents.run import AgentRunner
    from agents.run_internal import run_loop, tool_execution

    before = (
        AgentRunner.run,
        tool_module._invoke_function_tool_with_metadata,
        tool_execution._invoke_function_tool_with_metadata,
        run_loop.get_response_with_retry,
    )
    instrument("openai_agents")
    assert AgentRunner.run is not before[0]
    agent_otel.integrations.uninstrument(["openai_agents"])
    after = (
        AgentRunner.run,
        tool_module._invoke_function_tool_with_metadata,
        tool_execution._invoke_function_tool_with_metadata,
        run_loop.get_response_with_retry,
    )
    assert after == before
    model = Scripted([step(assistant_message("plain"))])
    assert Runner.run_sync(Agent(name="plain", model=model), "go").final_output == "plain"
    assert ours(telemetry.spans()) == []


def responses_body(response_id: str, *output: dict[str, Any]) -> dict[str, Any]:
    """A Responses API answer (gpt-4o, 11 input and 4 output tokens) with ``output`` items."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": 1700000000,
        "model": "gpt-4o-2024-08-06",
        "status": "completed",
        "output": list(output),
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 11,
            "output_tokens": 4,
            "total_tokens": 15,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def triage_and_specialist(**specialist: Any) -> Agent:
    """A triage agent that hands off to a specialist, which calls ``lookup`` once and answers "ok"."""
    expert = Agent(
        name="specialist",
        model=Scripted(
            [step(function_call("lookup", {"q": "x"}, call_id="c2")), step(assistant_message("ok"))]
        ),
        tools=[lookup],
        **specialist,
    )
    return Agent(
        name="triage",
        model=Scripted([step(function_call("transfer_to_specialist", {}, call_id="h1"))]),
        handoffs=[handoff(expert)],
    )


def test_real_openai_model_with_the_client_integration_counts_each_request_once(
    telemetry, instrument, fake_api
):
    from agents import OpenAIResponsesModel
    from openai import AsyncOpenAI

    from tests.integrations.conftest import Reply

    instrument("openai_agents", "openai")
    fake_api.reply(
        Reply(
            responses_body(
                "resp_1",
                {
                    "type": "message",
                    "id": "msg_1",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "hi there", "annotations": []}],
                },
            )
        )
    )
    client = AsyncOpenAI(base_url=fake_api.base_url + "/v1", api_key="test-key", max_retries=0)
    agent = Agent(name="real-model", model=OpenAIResponsesModel(model="gpt-4o", openai_client=client))
    assert Runner.run_sync(agent, "hello").final_output == "hi there"
    assert fake_api.requests[0][0] == "/v1/responses"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent real-model")
    chat = one(spans, "chat gpt-4o")
    assert chat.attributes["gen_ai.usage.input_tokens"] == 11
    assert chat.attributes["gen_ai.usage.output_tokens"] == 4
    assert root.attributes["agent.steps"] == 1
    assert root.attributes["gen_ai.request.model"] == "gpt-4o"


def test_guard_tool_timeout_applies_to_framework_tools(guarded, instrument):
    telemetry = guarded({"tool_timeout_s": 0.05})
    instrument("openai_agents")

    @function_tool
    async def hang(x: int) -> str:
        """Hangs."""
        await asyncio.sleep(2)
        return "late"

    model = Scripted([step(function_call("hang", {"x": 1}, call_id="h1")), step(assistant_message("never"))])
    # The SDK re-raises tool exceptions as UserError("Error running tool ...") from the original.
    with pytest.raises(UserError) as raised:
        Runner.run_sync(Agent(name="hanging", model=model, tools=[hang]), "go")
    assert isinstance(raised.value.__cause__, ToolTimeout)
    spans = ours(telemetry.spans())
    assert one(spans, "execute_tool hang").attributes["error.type"] == "ToolTimeout"
    assert one(spans, "invoke_agent hanging").attributes["agent.stop_reason"] == "tool_timeout"


def test_cached_input_tokens_are_priced_at_the_cached_price(telemetry, instrument):
    instrument("openai_agents")
    usage = Usage(
        requests=1,
        input_tokens=1000,
        output_tokens=50,
        total_tokens=1050,
        input_tokens_details=InputTokensDetails.model_construct(cached_tokens=800),
    )
    Runner.run_sync(
        Agent(name="cached", model=Scripted([ModelStep(output=[assistant_message("ok")], usage=usage)])), "go"
    )
    chat = one(ours(telemetry.spans()), "chat gpt-4o")
    assert chat.attributes["gen_ai.usage.input_tokens"] == 1000  # the SDK's input_tokens include cached
    assert chat.attributes["gen_ai.usage.cache_read.input_tokens"] == 800
    # gpt-4o: 200 * 2.50 + 800 * 1.25 (cached) + 50 * 10.00 = 2000 USD per 1M tokens
    assert chat.attributes["agent.cost_usd"] == pytest.approx(2000 / 1e6)


def test_with_the_sdks_own_tracing_on_each_request_has_its_usage_on_one_span(
    telemetry, instrument, sdk_traces
):
    """The SDK's tracing (its trace processors; here a collector in place of its exporter) is not
    OpenTelemetry: its spans never reach an OpenTelemetry backend, so agent-otel's chat span is the only
    span with each request's usage there, and the SDK's own tracing still sees the run as before."""
    instrument("openai_agents")
    model = Scripted(
        [
            step(function_call("lookup", {"q": "otel"}, call_id="call_1"), usage=(10, 5)),
            step(assistant_message("done")),
        ]
    )
    Runner.run_sync(Agent(name="traced", model=model, tools=[lookup]), "go")
    spans = telemetry.spans()
    chats = [s for s in spans if s.name.startswith("chat ")]
    with_usage = [s for s in spans if "gen_ai.usage.input_tokens" in (s.attributes or {})]
    assert len(chats) == 2 and sorted(s.context.span_id for s in with_usage) == sorted(
        s.context.span_id for s in chats
    )
    kinds = [type(span.span_data).__name__ for span in sdk_traces.spans]
    assert sorted(kinds) == [
        "AgentSpanData",
        "FunctionSpanData",
        "TaskSpanData",
        "TurnSpanData",
        "TurnSpanData",
    ]


APPROVED: list[str] = []


@function_tool(needs_approval=True)
def close_account(user: str) -> str:
    """Close an account (a human approves it first)."""
    APPROVED.append(user)
    return "closed " + user


def approval_script() -> Scripted:
    return Scripted(
        [
            step(function_call("close_account", {"user": "bob"}, call_id="call_a")),
            step(assistant_message("done")),
        ]
    )


def approve_all(result: Any) -> Any:
    state = result.to_state()
    for item in result.interruptions:
        state.approve(item)
    return state


async def test_a_run_waiting_for_tool_approval_is_interrupted_and_its_resume_links_to_it(
    telemetry, instrument
):
    from agents import SQLiteSession

    instrument("openai_agents")
    APPROVED.clear()
    agent = Agent(name="admin", model=approval_script(), tools=[close_account])
    session = SQLiteSession("conv-approve")
    paused = await Runner.run(agent, "close bob's account", session=session)
    assert paused.interruptions and APPROVED == []
    resumed = await Runner.run(agent, approve_all(paused), session=session)
    assert resumed.final_output == "done" and APPROVED == ["bob"]

    spans = ours(telemetry.spans())
    first, second = sorted(by_name(spans, "invoke_agent admin"), key=lambda s: s.start_time)
    assert first.attributes["agent.stop_reason"] == "interrupted"
    assert first.status.status_code.name == "UNSET"
    (event,) = [e for e in first.events if e.name == "agent.interrupt"]
    assert dict(event.attributes) == {"interrupts": 1, "interrupt_ids": ("call_a",)}
    assert second.attributes["agent.stop_reason"] == "completed"
    assert second.attributes["agent.resume_of"] == first.attributes["agent.run_id"]
    assert steps(second, spans) == [(1, "execute_tool close_account"), (2, "chat gpt-4o")]


def test_a_streamed_run_waiting_for_approval_is_interrupted(telemetry, instrument):
    instrument("openai_agents")
    agent = Agent(name="admin", model=approval_script(), tools=[close_account])

    async def drain() -> Any:
        result = Runner.run_streamed(agent, "close bob's account")
        async for _ in result.stream_events():
            pass
        return result

    assert asyncio.run(drain()).interruptions
    root = one(ours(telemetry.spans()), "invoke_agent admin")
    assert root.attributes["agent.stop_reason"] == "interrupted"


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_sub_agent_waiting_for_approval_leaves_its_tool_call_interrupted_not_ok(
    telemetry, instrument, streamed
):
    """An ``as_tool()`` agent whose tool needs approval pauses, and the SDK pauses the calling run with the
    sub-agent's approval item; on resume it invokes the tool again. The tool call that ran the sub-agent
    was recorded ``ok`` (a result that was not one: the SDK's placeholder ``None``); it is ``interrupted``,
    as a LangGraph tool that calls ``interrupt()``, and the resume's call of it is ``ok``."""
    instrument("openai_agents")
    APPROVED.clear()
    sub = Agent(name="closer", model=approval_script(), tools=[close_account])
    top = Agent(
        name="support",
        model=Scripted(
            [
                step(function_call("closer", {"input": "close bob"}, call_id="t1")),
                step(assistant_message("ok")),
            ]
        ),
        tools=[sub.as_tool("closer", "Closes accounts.")],
    )

    async def go(input: Any) -> Any:
        if not streamed:
            return await Runner.run(top, input)
        result = Runner.run_streamed(top, input)
        async for _ in result.stream_events():
            pass
        return result

    paused = await go("close bob's account")
    assert [i.raw_item.call_id for i in paused.interruptions] == ["call_a"] and APPROVED == []
    resumed = await go(approve_all(paused))
    assert resumed.final_output == "ok" and APPROVED == ["bob"]

    spans = ours(telemetry.spans())
    first, second = sorted(by_name(spans, "invoke_agent support"), key=lambda s: s.start_time)
    assert first.attributes["agent.stop_reason"] == "interrupted"
    calls = sorted(by_name(spans, "execute_tool closer"), key=lambda s: s.start_time)
    assert [parent_of(t, spans) for t in calls] == [first, second]
    assert [t.attributes["agent.tool.status"] for t in calls] == ["interrupted", "ok"]
    assert calls[0].status.status_code.name == "UNSET" and "agent.tool.result_sha" not in calls[0].attributes
    assert [e["status"] for e in telemetry.events("tool_result") if e["tool"] == "closer"] == [
        "interrupted",
        "ok",
    ]


@pytest.mark.parametrize("session", [False, True], ids=["no_session", "session"])
@pytest.mark.parametrize("streamed", [False, True])
async def test_a_sub_agents_resume_links_to_the_paused_sub_agent(telemetry, instrument, streamed, session):
    """On resume the SDK runs the ``as_tool()`` agent again from its own ``RunState``, inside the resumed
    tool call. Its run had no ``agent.resume_of`` (the calling run's resume took the link, both having
    paused on the same approval call ids, or in the same conversation: a sub-agent's is the caller's);
    each is now linked to its own paused run."""
    from agents import SQLiteSession

    instrument("openai_agents")
    APPROVED.clear()
    sub = Agent(name="closer", model=approval_script(), tools=[close_account])
    top = Agent(
        name="support",
        model=Scripted(
            [
                step(function_call("closer", {"input": "close bob"}, call_id="t1")),
                step(assistant_message("ok")),
            ]
        ),
        tools=[sub.as_tool("closer", "Closes accounts.")],
    )
    kwargs = {"session": SQLiteSession("conv-sub")} if session else {}

    async def go(input: Any) -> Any:
        if not streamed:
            return await Runner.run(top, input, **kwargs)
        result = Runner.run_streamed(top, input, **kwargs)
        async for _ in result.stream_events():
            pass
        return result

    paused = await go("close bob's account")
    assert (await go(approve_all(paused))).final_output == "ok" and APPROVED == ["bob"]

    spans = ours(telemetry.spans())
    for name in ("support", "closer"):
        first, second = sorted(by_name(spans, f"invoke_agent {name}"), key=lambda s: s.start_time)
        assert (first.attributes["agent.stop_reason"], second.attributes["agent.stop_reason"]) == (
            "interrupted",
            "completed",
        )
        assert second.attributes["agent.resume_of"] == first.attributes["agent.run_id"], name
        assert [link.context.span_id for link in second.links] == [first.context.span_id], name


async def drained(agent: Any, input: Any) -> Any:
    result = Runner.run_streamed(agent, input)
    async for _ in result.stream_events():
        pass
    return result


@pytest.mark.parametrize("streamed", [False, True])
async def test_approval_given_inside_your_own_run_completes_it(telemetry, instrument, streamed):
    """A streamed resume hands the SDK's loop the state's original input and the ``RunState`` apart: it
    was not seen as a resume, and your run ended ``interrupted`` though the agent had finished."""
    instrument("openai_agents")
    agent = Agent(name="admin", model=approval_script(), tools=[close_account])
    go = drained if streamed else Runner.run
    async with agent_otel.run("support") as run:
        paused = await go(agent, "close bob's account")
        assert (await go(agent, approve_all(paused))).final_output == "done"
    assert run.result.stop_reason == "completed"
    # the decision is on the run the agent went on in: yours
    root = one(ours(telemetry.spans()), "invoke_agent support")
    assert approval_events(root) == [approval("call_a", "close_account", "approved")]


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_resume_from_the_run_state_without_a_session_links_to_the_paused_run(
    telemetry, instrument, streamed
):
    """The SDK's own human-in-the-loop pattern has no session: ``result.to_state()``, approve,
    ``Runner.run(agent, state)``. Nothing linked the resume to the paused run (two unrelated runs, one
    ``interrupted``); the approval call ids the state carries do, as a session does."""
    instrument("openai_agents")
    agent = Agent(name="admin", model=approval_script(), tools=[close_account])
    go = drained if streamed else Runner.run
    paused = await go(agent, "close bob's account")
    assert (await go(agent, approve_all(paused))).final_output == "done"

    spans = ours(telemetry.spans())
    first, second = sorted(by_name(spans, "invoke_agent admin"), key=lambda s: s.start_time)
    assert first.attributes["agent.stop_reason"] == "interrupted"
    assert second.attributes["agent.stop_reason"] == "completed"
    assert second.attributes["agent.resume_of"] == first.attributes["agent.run_id"]
    assert [link.context.span_id for link in second.links] == [first.context.span_id]
    assert "gen_ai.conversation.id" not in second.attributes  # the key is not a conversation


@pytest.mark.parametrize("serialized", [False, True], ids=["state", "from_string"])
@pytest.mark.parametrize("streamed", [False, True])
async def test_the_resumed_run_records_what_the_human_decided_about_each_call(
    telemetry, instrument, streamed, serialized
):
    """A human approves one waiting call and rejects the other (``state.reject``, with a message for the
    model). The resumed run showed only the approved call running, and nothing of the rejection: it is
    not a tool call the SDK makes. Now its span has an ``agent.approval`` event per decision, in the
    order the calls waited; the rejected call is no tool step and no tool error, and the human's
    message is nowhere in the telemetry. The same when the decided state was stored and read back
    (``to_string`` / ``RunState.from_string``: the human answers in another process)."""
    from agents import RunState

    instrument("openai_agents")
    APPROVED.clear()
    model = Scripted(
        [
            step(
                function_call("close_account", {"user": "bob"}, call_id="call_a"),
                function_call("close_account", {"user": "eve"}, call_id="call_b"),
            ),
            step(assistant_message("done")),
        ]
    )
    agent = Agent(name="admin", model=model, tools=[close_account])
    go = drained if streamed else Runner.run
    paused = await go(agent, "close bob's and eve's accounts")
    state = paused.to_state()
    bob, eve = paused.interruptions
    state.approve(bob)
    state.reject(eve, rejection_message="eve is a key account, call +1 555 0100 first")
    if serialized:
        state = await RunState.from_string(agent, state.to_string())
    assert (await go(agent, state)).final_output == "done" and APPROVED == ["bob"]

    spans = ours(telemetry.spans())
    first, second = sorted(by_name(spans, "invoke_agent admin"), key=lambda s: s.start_time)
    assert first.attributes["agent.stop_reason"] == "interrupted" and approval_events(first) == []
    assert second.attributes["agent.stop_reason"] == "completed"
    assert approval_events(second) == [
        approval("call_a", "close_account", "approved"),
        approval("call_b", "close_account", "rejected"),
    ]
    assert steps(second, spans) == [(1, "execute_tool close_account"), (2, "chat gpt-4o")]
    invocations = telemetry.metrics()["agent.tool.invocations"]
    assert [(a["tool"], a["status"], p.value) for a, p in invocations] == [("close_account", "ok", 1)]
    assert not anywhere(spans, "key account")


async def test_a_sub_agents_rejected_call_is_recorded_on_the_sub_agents_resumed_run(telemetry, instrument):
    """An ``as_tool()`` agent's waiting call is decided in the sub-agent's own ``RunState``: its resumed
    run (which the SDK runs again inside the resumed tool call) records the decision, the calling run
    does not claim it."""
    instrument("openai_agents")
    APPROVED.clear()
    sub = Agent(name="closer", model=approval_script(), tools=[close_account])
    top = Agent(
        name="support",
        model=Scripted(
            [
                step(function_call("closer", {"input": "close bob"}, call_id="t1")),
                step(assistant_message("ok")),
            ]
        ),
        tools=[sub.as_tool("closer", "Closes accounts.")],
    )
    paused = await Runner.run(top, "close bob's account")
    state = paused.to_state()
    (item,) = paused.interruptions
    state.reject(item)
    assert (await Runner.run(top, state)).final_output == "ok" and APPROVED == []

    spans = ours(telemetry.spans())
    closer = sorted(by_name(spans, "invoke_agent closer"), key=lambda s: s.start_time)
    support = sorted(by_name(spans, "invoke_agent support"), key=lambda s: s.start_time)
    assert [approval_events(s) for s in closer] == [[], [approval("call_a", "close_account", "rejected")]]
    assert [approval_events(s) for s in support] == [[], []]
    assert not by_name(spans, "execute_tool close_account")


def test_an_async_agent_otel_tool_keeps_its_retry_and_timeout_under_the_sdk(telemetry, instrument):
    """``function_tool`` over an async ``@agent_otel.tool(retry=..., timeout_s=...)``: the function
    claims the SDK's call (one span with the call id) and then ran bare: no retry (the model got the
    error), no deadline (the tool hung on). Both apply once, inside the one step; the SDK's
    ``failure_error_function`` still turns the last error into the model's message."""
    instrument("openai_agents")
    attempts: list[str] = []

    @function_tool(failure_error_function=lambda ctx, error: f"failed: {type(error).__name__}")
    @agent_otel.tool(name="crm.find", retry=agent_otel.Retry(max_attempts=3, base_delay_s=0, jitter="none"))
    async def find(q: str) -> str:
        """Find a record."""
        attempts.append(q)
        if len(attempts) < 2:
            raise ConnectionError("reset")
        return q.upper()

    @function_tool(failure_error_function=lambda ctx, error: f"failed: {type(error).__name__}")
    @agent_otel.tool(timeout_s=0.2)
    async def slow(q: str) -> str:
        """Never answers in time."""
        await asyncio.sleep(30)
        return q

    model = Scripted(
        [
            step(function_call("find", {"q": "bob"}, call_id="f1")),
            step(function_call("slow", {"q": "bob"}, call_id="s1")),
            step(assistant_message("done")),
        ]
    )
    result = Runner.run_sync(Agent(name="finder", model=model, tools=[find, slow]), "find bob")
    assert result.final_output == "done" and attempts == ["bob", "bob"]
    spans = ours(telemetry.spans())
    tools = {s.name: s.attributes for s in spans if s.name.startswith("execute_tool")}
    assert set(tools) == {"execute_tool find", "execute_tool slow"}
    assert tools["execute_tool find"]["gen_ai.tool.call.id"] == "f1"
    assert tools["execute_tool find"]["agent.tool.attempts"] == 2
    assert tools["execute_tool find"]["agent.tool.result_sha"] == sha("BOB")
    assert tools["execute_tool slow"]["gen_ai.tool.call.id"] == "s1"
    assert tools["execute_tool slow"]["error.type"] == "ToolTimeout"
    assert one(spans, "invoke_agent finder").attributes["agent.tool_calls"] == 2


@pytest.mark.parametrize("stream", [False, True], ids=["response", "stream"])
def test_a_response_without_usage_is_unknown_usage_and_a_reported_0_is_0(
    telemetry, instrument, fake_api, stream
):
    """The SDK makes a Chat Completion without usage ``Usage(requests=1)``, 0 tokens; the OpenAI client
    integration saw the response and tells it from a reported 0."""
    from agents import OpenAIChatCompletionsModel
    from openai import AsyncOpenAI

    from tests.integrations.conftest import Reply
    from tests.integrations.test_openai_client import chunk, completion

    instrument("openai_agents", "openai")
    tool_call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "u"}'}}
    if stream:
        indexed = {**tool_call, "index": 0}
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        zero = {**chunk({}), "choices": [], "usage": usage}
        fake_api.reply(
            Reply(stream=[(None, chunk({"role": "assistant", "tool_calls": [indexed]})), (None, "[DONE]")]),
            Reply(
                stream=[
                    (None, chunk({"role": "assistant", "content": "done"})),
                    (None, zero),
                    (None, "[DONE]"),
                ]
            ),
        )
    else:
        unmetered = completion()
        del unmetered["usage"]
        unmetered["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [tool_call]}
        fake_api.reply(Reply(unmetered), Reply(completion(0, 0, content="done")))
    client = AsyncOpenAI(base_url=fake_api.base_url + "/v1", api_key="test-key", max_retries=0)
    model = OpenAIChatCompletionsModel(model="gpt-4o", openai_client=client)
    agent = Agent(name="metered", model=model, tools=[lookup])
    if stream:

        async def consume() -> Any:
            result = Runner.run_streamed(agent, "go")
            async for _ in result.stream_events():
                pass
            return result

        assert asyncio.run(consume()).final_output == "done"
    else:
        assert Runner.run_sync(agent, "go").final_output == "done"
    spans = ours(telemetry.spans())
    assert_unknown_then_zero_usage(telemetry, one(spans, "invoke_agent metered"), spans)


@pytest.mark.parametrize("missing", [Usage(requests=1), Usage()], ids=["requests-1", "empty"])
def test_a_non_openai_models_response_without_usage_is_unknown_usage(telemetry, instrument, missing):
    """A model other than the SDK's OpenAI ones (``LitellmModel``, ``AnyLLMModel``, a custom ``Model``)
    makes a response that reported no usage ``Usage(requests=1)`` (or a bare ``Usage()``): 0 tokens, which
    was recorded as 0, a free request, where the other integrations record unknown usage. No request has
    no input, so a usage of 0 input and 0 output tokens that no client integration saw reported is
    unknown; the run's totals add only the request that reported its usage."""
    instrument("openai_agents")
    model = Scripted(
        [
            ModelStep(output=[function_call("lookup", {"q": "u"}, call_id="c1")], usage=missing),
            step(assistant_message("done"), usage=(20, 3)),
        ]
    )
    assert Runner.run_sync(Agent(name="unmetered", model=model, tools=[lookup]), "go").final_output == "done"
    spans = ours(telemetry.spans())
    run_span = one(spans, "invoke_agent unmetered")
    assert chat_tokens(run_span, spans) == [(None, None), (20, 3)]
    usages = [e["usage"] for e in telemetry.events("llm_result")]
    assert [(u.get("input_tokens"), u.get("output_tokens")) for u in usages] == [(None, None), (20, 3)]
    (stop,) = telemetry.events("stop")
    assert (stop["usage"]["llm_calls"], stop["usage"]["input_tokens"], stop["usage"]["output_tokens"]) == (
        2,
        20,
        3,
    )


def test_parallel_tool_calls_in_one_turn_are_each_a_step_of_the_run(telemetry, instrument):
    """Three calls of one turn run concurrently (one fails: the SDK tells the model): each its own step
    with its call id, a child of the run, none lost; the failed one ``error``, the run ``completed``."""

    @function_tool
    async def fetch(q: str) -> str:
        """Fetch."""
        await asyncio.sleep(0.02)
        if q == "bad":
            raise ValueError("bad")
        return q.upper()

    instrument("openai_agents")
    calls = [function_call("fetch", {"q": q}, call_id=f"c{i}") for i, q in enumerate(("a", "b", "bad"))]
    model = Scripted([step(*calls), step(assistant_message("done"))])
    assert Runner.run_sync(Agent(name="fan-out", model=model, tools=[fetch]), "go").final_output == "done"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent fan-out")
    tools = sorted(by_name(spans, "execute_tool fetch"), key=lambda s: s.attributes["gen_ai.tool.call.id"])
    assert [(s.attributes["gen_ai.tool.call.id"], s.attributes["agent.tool.status"]) for s in tools] == [
        ("c0", "ok"),
        ("c1", "ok"),
        ("c2", "error"),
    ]
    assert all(parent_of(s, spans) is root for s in tools)
    assert sorted(s.attributes["agent.step_id"] for s in tools) == [2, 3, 4]
    assert root.attributes["agent.stop_reason"] == "completed" and root.attributes["agent.tool_calls"] == 3
