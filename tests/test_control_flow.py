"""Control flow is not failure: the registry (agent_otel.stop.CONTROL_FLOW) and what it changes, without
any framework. Frameworks raise exceptions to pause for a human, hand over, or send a tool's answer back
to the model; a tool or run left by one must not read ``error``, and ``Retry`` must never run it again.
The same behaviour with the real frameworks is in tests/integrations/test_control_flow.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

import agent_otel
from agent_otel import conventions as c
from agent_otel import stop
from agent_otel.guards import ToolDenied
from agent_otel.replay import ReplayError
from agent_otel.steps import is_cancellation
from agent_otel.stop import AgentStopped, Flow, StopReason, StopResult, control_flow, register_control_flow


class AskHuman(Exception):
    """A framework's "wait for a human" exception."""


class AskHumanLater(AskHuman):
    pass


class GoToParent(Exception):
    """A framework's handoff: the command it carries goes to the parent."""


class TryAgain(Exception):
    """A framework's "tell the model to retry"."""


@pytest.fixture
def flows() -> Iterator[None]:
    before = dict(stop.CONTROL_FLOW)
    register_control_flow(AskHuman, Flow.PAUSE)
    register_control_flow(f"{__name__}.GoToParent", Flow.HANDOFF)  # by name: nothing imported
    register_control_flow(TryAgain, Flow.TO_MODEL)
    yield
    stop.CONTROL_FLOW.clear()
    stop.CONTROL_FLOW.update(before)
    stop._flows.clear()


def test_the_registry_knows_classes_by_name_and_their_subclasses(flows):
    assert control_flow(AskHuman()) is Flow.PAUSE
    assert control_flow(AskHumanLater()) is Flow.PAUSE  # a subclass inherits its base's flow
    assert control_flow(GoToParent()) is Flow.HANDOFF
    assert control_flow(TryAgain("use 2")) is Flow.TO_MODEL
    assert control_flow(ValueError()) is None and control_flow(None) is None
    # The frameworks' own are known by name, none of them imported to know it.
    assert stop.CONTROL_FLOW["langgraph.errors.GraphInterrupt"] is Flow.PAUSE
    assert stop.CONTROL_FLOW["langgraph.errors.ParentCommand"] is Flow.HANDOFF
    assert stop.CONTROL_FLOW["pydantic_ai.exceptions.ApprovalRequired"] is Flow.PAUSE
    assert stop.CONTROL_FLOW["pydantic_ai.exceptions.ModelRetry"] is Flow.TO_MODEL
    with pytest.raises(TypeError):
        register_control_flow(AskHuman, "pause")  # type: ignore[arg-type]


def test_registering_after_a_lookup_takes_effect(flows):
    class Late(Exception):
        pass

    assert control_flow(Late()) is None
    register_control_flow(Late, Flow.PAUSE)
    assert control_flow(Late()) is Flow.PAUSE


def tool_spans(telemetry):
    return telemetry.spans_named("execute_tool")


def run_span(telemetry, name):
    (span,) = [s for s in telemetry.spans_named("invoke_agent") if s.name == f"invoke_agent {name}"]
    return span


def test_a_tool_that_pauses_for_a_human_is_interrupted_and_so_is_its_run(telemetry, flows):
    @agent_otel.tool(name="approve")
    def approve(amount: int) -> str:
        raise AskHumanLater({"question": f"refund {amount}?"})

    with pytest.raises(AskHumanLater), agent_otel.run("refunds", conversation_id="t-1") as run:
        approve(30)
    assert run.result.stop_reason is StopReason.INTERRUPTED
    (tool,) = tool_spans(telemetry)
    assert tool.attributes[c.TOOL_STATUS] == "interrupted"
    assert tool.status.status_code.name == "UNSET" and c.ERROR_TYPE not in tool.attributes
    root = run_span(telemetry, "refunds")
    assert root.attributes[c.STOP_REASON] == "interrupted"
    assert root.status.status_code.name == "UNSET" and c.ERROR_TYPE not in root.attributes
    (stop_event,) = telemetry.events("stop")
    assert stop_event["stop_reason"] == "interrupted" and stop_event["error"] is None
    assert [a["stop_reason"] for a, p in telemetry.metrics()["agent.stop"] if p.value] == ["interrupted"]
    # Its resume (the next run of the conversation) links to it, as a framework's pause does.
    with agent_otel.run("refunds", conversation_id="t-1") as resumed:
        pass
    assert resumed.result.stop_reason is StopReason.COMPLETED
    second = next(s for s in telemetry.spans_named("invoke_agent") if s is not root)
    assert second.attributes[c.RESUME_OF] == run.run_id


def test_a_handoff_ends_the_tool_ok_and_the_run_completed(telemetry, flows):
    @agent_otel.tool(name="transfer")
    def transfer() -> None:
        raise GoToParent({"goto": "billing"})

    with pytest.raises(GoToParent), agent_otel.run("triage") as run:
        transfer()
    assert run.result.stop_reason is StopReason.COMPLETED
    (tool,) = tool_spans(telemetry)
    assert tool.attributes[c.TOOL_STATUS] == "ok" and tool.status.status_code.name != "ERROR"
    assert tool.attributes[c.TOOL_RESULT_SHA] == agent_otel.hashing.sha({"goto": "billing"})
    root = run_span(telemetry, "triage")
    assert root.status.status_code.name == "OK" and c.ERROR_TYPE not in root.attributes


def test_a_request_to_the_model_fails_the_call_not_the_run(telemetry, flows):
    """The tool did not answer (its span is ``error``), but the model gets the message and goes on: the
    run does not become ``tool_error`` because of it."""

    @agent_otel.tool(name="pick")
    def pick(n: int) -> int:
        if n != 2:
            raise TryAgain("use 2")
        return n

    with agent_otel.run("picker") as run:
        with pytest.raises(TryAgain):
            pick(1)
        # The agent (the framework) sends it to the model, whose next turn fails for another reason.
        with pytest.raises(RuntimeError):
            raise RuntimeError("unrelated")
        pick(2)
    assert run.result.stop_reason is StopReason.COMPLETED
    failed, ok = tool_spans(telemetry)
    assert failed.attributes[c.TOOL_STATUS] == "error" and failed.attributes[c.ERROR_TYPE] == "TryAgain"
    assert ok.attributes[c.TOOL_STATUS] == "ok"
    # Left unanswered out of a run (a sub-agent inside a tool): the run handed its feedback on.
    with pytest.raises(TryAgain), agent_otel.run("sub") as sub:
        pick(3)
    assert sub.result.stop_reason is StopReason.COMPLETED


def _counting(exc: BaseException) -> tuple[list[int], object]:
    calls: list[int] = []

    @agent_otel.tool(name="flaky", retry=agent_otel.Retry(max_attempts=3, base_delay_s=0))
    def flaky() -> None:
        calls.append(1)
        raise exc

    return calls, flaky


@pytest.mark.parametrize(
    "exc",
    [
        AskHuman("approve?"),
        GoToParent("parent"),
        TryAgain("use 2"),
        ToolDenied("send_email", "policy", "denied"),
        ReplayError("not executing it during a replay"),
        AgentStopped(StopResult(StopReason.LOOP_DETECTED, "r-1")),
    ],
    ids=lambda e: type(e).__name__,
)
def test_retry_never_runs_control_flow_or_a_refusal_again(telemetry, flows, exc):
    """Retrying an interrupt would run again a tool that asked a human; retrying a guard's refusal would
    run what it refused. ``retry_on=(Exception,)`` (the default) must not reach them."""
    calls, flaky = _counting(exc)
    with pytest.raises(type(exc)), agent_otel.run("retrying"):
        flaky()
    assert len(calls) == 1
    (tool,) = tool_spans(telemetry)
    assert tool.attributes[c.TOOL_ATTEMPTS] == 1
    assert [p.value for _, p in telemetry.metrics().get("agent.tool.retries", [])] in ([], [0])
    assert not agent_otel.Retry(retry_on=lambda e: True).should_retry(exc, 1)


def test_retry_still_retries_a_failure(telemetry, flows):
    calls, flaky = _counting(ConnectionError("503"))
    with pytest.raises(ConnectionError), agent_otel.run("retrying"):
        flaky()
    assert len(calls) == 3


def test_async_retry_never_runs_an_interrupt_again(telemetry, flows):
    calls: list[int] = []

    @agent_otel.tool(name="approve", retry=agent_otel.Retry(max_attempts=3, base_delay_s=0))
    async def approve() -> None:
        calls.append(1)
        raise AskHuman("approve?")

    async def agent() -> None:
        async with agent_otel.run("async-approver"):
            await approve()

    with pytest.raises(AskHuman):
        asyncio.run(agent())
    assert len(calls) == 1
    (tool,) = tool_spans(telemetry)
    assert tool.attributes[c.TOOL_STATUS] == "interrupted"


def test_a_generator_closed_early_is_cancelled_not_an_error(telemetry):
    """A streaming agent whose consumer goes away (``close()``/``aclose()``, or the generator collected):
    the run inside it is ``cancelled``; so is a step ended by GeneratorExit."""

    def stream():
        with agent_otel.run("streamer"):
            yield 1
            yield 2

    async def astream():
        async with agent_otel.run("astreamer"):
            yield 1
            yield 2

    async def consume() -> None:
        gen = astream()
        await anext(gen)
        await gen.aclose()

    gen = stream()
    next(gen)
    gen.close()
    asyncio.run(consume())
    for name in ("streamer", "astreamer"):
        root = run_span(telemetry, name)
        assert root.attributes[c.STOP_REASON] == "cancelled"
        assert root.status.status_code.name == "UNSET"
    assert is_cancellation(GeneratorExit()) and is_cancellation("GeneratorExit")

    with agent_otel.run("steps") as run:
        call = agent_otel.tools.begin(run, agent_otel.tools.tool_options("pages", False, None, None), {})
        call.fail(GeneratorExit())
    assert run.result.stop_reason is StopReason.COMPLETED
    (tool,) = tool_spans(telemetry)
    assert tool.attributes[c.TOOL_STATUS] == "cancelled" and tool.status.status_code.name == "UNSET"


def test_agent_stopped_stays_an_exception_that_application_error_handling_catches(telemetry):
    """Users and frameworks catch it with ``except Exception`` (README: why it is not a BaseException)."""

    @agent_otel.tool(name="loop")
    def loop() -> None:
        agent_otel.current_run().stop("loop_detected")  # the next step is refused with AgentStopped

    caught = None
    try:
        with agent_otel.run("stoppable"):
            loop()
            loop()
    except Exception as exc:  # an application's generic handler
        caught = exc
    assert isinstance(caught, AgentStopped) and caught.stop_reason is StopReason.LOOP_DETECTED
