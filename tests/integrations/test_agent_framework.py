"""Microsoft Agent Framework, seen only through its own GenAI spans (the bridge; no agent-otel integration).

The framework's chat client is a fake composed the way its real clients are (function invocation and
telemetry layers over ``BaseChatClient``), answering from a script: no network.
"""

from __future__ import annotations

import gc
import logging
import weakref
from collections import Counter
from typing import Any

import pytest

import agent_otel
from agent_otel.hashing import sha
from tests.integrations import sample_tools
from tests.integrations.conftest import (
    approval,
    approval_events,
    children,
    ours,
    steps,
    stop_event,
)
from tests.integrations.sample_tools import fresh_sent  # noqa: F401 (an autouse fixture)

pytest.importorskip("agent_framework")

from agent_framework import (
    Agent,
    BaseChatClient,
    ChatResponse,
    ChatResponseUpdate,
    Content,
    FunctionInvocationLayer,
    Message,
    tool,
)
from agent_framework.observability import ChatTelemetryLayer
from opentelemetry.trace import StatusCode

SENT: Counter[str] = Counter()


class ProviderDown(Exception):
    pass


class FakeClient(FunctionInvocationLayer, ChatTelemetryLayer, BaseChatClient):  # type: ignore[misc]
    OTEL_PROVIDER_NAME = "openai"

    def __init__(self, *script: Any) -> None:
        super().__init__()
        self.script = list(script)
        self.seen: list[list[Any]] = []

    def _inner_get_response(self, *, messages: Any, stream: bool, options: Any, **kwargs: Any) -> Any:
        self.seen.append(list(messages))  # what the model was sent, request by request
        step = self.script.pop(0)
        if isinstance(step, Exception):

            async def fail() -> Any:
                raise step

            return fail()
        kind, payload, usage = step
        if kind == "tool":
            contents = [Content.from_function_call(call_id=payload[2], name=payload[0], arguments=payload[1])]
        elif kind == "tools":  # parallel calls in one response
            contents = [Content.from_function_call(call_id=c, name=n, arguments=a) for n, a, c in payload]
        else:
            contents = [Content.from_text(payload)]
        details = {
            "input_token_count": usage[0],
            "output_token_count": usage[1],
            "total_token_count": sum(usage),
        }
        if not stream:

            async def respond() -> Any:
                return ChatResponse(
                    messages=[Message(role="assistant", contents=contents)],
                    response_id="r1",
                    model="gpt-4o",
                    usage_details=details,
                )

            return respond()

        async def updates() -> Any:
            yield ChatResponseUpdate(role="assistant", contents=contents, response_id="r1", model="gpt-4o")
            yield ChatResponseUpdate(role="assistant", contents=[Content.from_usage(details)], model="gpt-4o")

        from agent_framework import ResponseStream

        return ResponseStream(updates(), finalizer=ChatResponse.from_updates)


@tool
def lookup(q: str) -> str:
    """Look something up."""
    SENT["lookup"] += 1
    return q.upper()


@tool
def broken(q: str) -> str:
    """Always fails."""
    raise RuntimeError("backend down")


def tool_call(name: str, args: dict[str, Any], call_id: str = "c1") -> tuple[Any, ...]:
    return ("tool", (name, args, call_id), (10, 5))


def tool_calls(*calls: tuple[str, dict[str, Any], str]) -> tuple[Any, ...]:
    return ("tools", calls, (10, 5))


def text(content: str) -> tuple[Any, ...]:
    return ("text", content, (20, 3))


def make_agent(*script: Any) -> Agent:
    SENT.clear()
    return Agent(client=FakeClient(*script), name="helper", tools=[lookup, broken])


def assert_normal_run(telemetry: Any) -> None:
    assert SENT == {"lookup": 1}
    spans = telemetry.spans()
    assert ours(spans) == []
    (root,) = [s for s in spans if s.name == "invoke_agent helper"]
    assert [s.name for s in children(root, spans)] == ["chat gpt-4o", "execute_tool lookup", "chat gpt-4o"]
    assert steps(root, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]
    assert root.attributes["agent.stop_reason"] == "completed"
    assert (root.attributes["agent.usage.input_tokens"], root.attributes["agent.usage.output_tokens"]) == (
        30,
        8,
    )
    assert root.attributes["agent.cost_usd"] > 0  # gpt-4o is in the price table
    assert stop_event(root)["agent.stop_reason"] == "completed"
    assert [s.name for s in spans if "gen_ai.usage.input_tokens" in s.attributes] == ["chat gpt-4o"] * 2
    events = telemetry.events()
    assert [(e["kind"], e["step_id"], e["tool"]) for e in events] == [
        ("llm_result", 1, None),
        ("tool_result", 2, "lookup"),
        ("llm_result", 3, None),
        ("stop", None, None),
    ]
    metrics = telemetry.metrics()
    assert [(a["agent"], a["stop_reason"], p.value) for a, p in metrics["agent.stop"] if p.value] == [
        ("helper", "completed", 1)
    ]
    assert [(a["tool"], a["status"]) for a, _ in metrics["agent.tool.invocations"]] == [("lookup", "ok")]


async def test_a_run_from_the_framework_spans(telemetry):
    result = await make_agent(tool_call("lookup", {"q": "x"}), text("done")).run("hi")
    assert result.text == "done"
    assert_normal_run(telemetry)


async def test_a_streamed_run(telemetry):
    agent = make_agent(tool_call("lookup", {"q": "x"}), text("done"))
    chunks = [update.text async for update in agent.run("hi", stream=True)]
    assert "".join(chunks) == "done"
    assert_normal_run(telemetry)


async def test_tool_error_is_a_failed_step(telemetry):
    result = await make_agent(tool_call("broken", {"q": "x"}), text("sorry")).run("hi")
    assert result.text == "sorry"
    spans = telemetry.spans()
    (span,) = [s for s in spans if s.name == "execute_tool broken"]
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes["agent.tool.status"], span.attributes["error.type"]) == ("error", "RuntimeError")
    (event,) = telemetry.events("tool_result")
    assert (event["status"], event["error"]) == ("error", "RuntimeError")
    (root,) = [s for s in spans if s.name == "invoke_agent helper"]
    assert root.attributes["agent.stop_reason"] == "completed"


async def test_model_error_is_model_error(telemetry):
    with pytest.raises(ProviderDown):
        await make_agent(ProviderDown("unreachable")).run("hi")
    (root,) = [s for s in telemetry.spans() if s.name == "invoke_agent helper"]
    assert root.attributes["agent.stop_reason"] == "model_error"
    assert [(e["kind"], e["status"], e["error"]) for e in telemetry.events("llm_result")] == [
        ("llm_result", "error", "ProviderDown")
    ]


async def test_guards_only_observe_without_a_hook(guarded):
    telemetry = guarded({"policy": {"deny": {"*": ["lookup"]}}})
    await make_agent(tool_call("lookup", {"q": "x"}), text("done")).run("hi")
    assert SENT == {"lookup": 1}  # agent-otel has no hook before this framework's tools: it ran
    (root,) = [s for s in telemetry.spans() if s.name == "invoke_agent helper"]
    assert root.attributes["agent.stop_reason"] == "completed"
    (guard,) = [dict(e.attributes) for e in root.events if e.name == "agent.guard"]
    assert (guard["guard"], guard["enforced"], guard["would_stop"]) == ("policy", False, "policy_denied")
    # Without content capture the framework puts no arguments on its span: no args hash.
    assert [e["args_sha"] for e in telemetry.events("tool_result")] != [sha({"q": "x"})]


search = tool(sample_tools.search)
wipe = tool(sample_tools.wipe)


async def test_an_agent_otel_tool_is_one_tool_call_with_its_retry(telemetry):
    """The framework's ``@tool`` over an ``@agent_otel.tool(retry=...)`` function: its ``execute_tool``
    span is the step, and the function ran bare inside it (no retry: the first failure went back to the
    model). The function claims the step now: one call, retried once inside it."""
    SENT.clear()
    agent = Agent(
        client=FakeClient(tool_call("search", {"q": "x"}), text("done")), name="helper", tools=[search]
    )
    assert (await agent.run("hi")).text == "done"
    assert sample_tools.SENT == {"search": 2}
    spans = telemetry.spans()
    (step,) = [s for s in spans if s.name.startswith("execute_tool")]
    assert step.attributes["gen_ai.tool.call.id"] == "c1" and step.attributes["agent.tool.attempts"] == 2
    assert step.attributes["agent.tool.status"] == "ok"
    (root,) = [s for s in spans if s.name == "invoke_agent helper"]
    assert root.attributes["agent.tool_calls"] == 1


async def test_a_declared_write_is_blocked_by_the_writes_kill_switch_inside_a_run_of_yours(
    guarded, monkeypatch
):
    """Seen through its spans alone, the framework's own runs only observe guards (nothing of agent-otel
    runs before its tools). An ``@agent_otel.tool(side_effects=True)`` function does, and inside a run of
    yours, where guards enforce, the write ran under the kill switch all the same: it is blocked now."""
    telemetry = guarded({})
    monkeypatch.setenv("AGENT_OTEL_KILL_SWITCH", "writes")
    agent = Agent(client=FakeClient(tool_call("wipe", {"q": "x"}), text("done")), name="helper", tools=[wipe])
    async with agent_otel.run("outer") as run:
        await agent.run("hi")
    assert sample_tools.SENT == {} and run.result.stop_reason == "kill_switch"
    (step,) = [s for s in telemetry.spans() if s.name.startswith("execute_tool")]
    assert step.attributes["agent.tool.status"] == "error"

    # The framework's own run, where guards observe: the write runs (README "Guards").
    agent = Agent(client=FakeClient(tool_call("wipe", {"q": "x"}), text("done")), name="helper", tools=[wipe])
    assert (await agent.run("hi")).text == "done" and sample_tools.SENT == {"wipe": 1}


async def test_guards_observe_an_agent_otel_tool_with_the_arguments_it_was_called_with(guarded):
    """The framework's span has no arguments, so the checks of its step wait for them; the claiming
    ``@agent_otel.tool`` function brings them, and the checks run then, before it (here they observe:
    the framework's own run), with its ``args_sha`` for loop detection."""
    telemetry = guarded({"policy": {"deny": {"*": ["search"]}}, "loop": {"max_repeats": 1}})
    script = [tool_call("search", {"q": "x"}, "c1"), tool_call("search", {"q": "x"}, "c2"), text("done")]
    agent = Agent(client=FakeClient(*script), name="helper", tools=[search])
    assert (await agent.run("hi")).text == "done"
    assert sample_tools.SENT == {"search": 3}  # observed only: both calls ran (the first retried once)
    (root,) = [s for s in telemetry.spans() if s.name == "invoke_agent helper"]
    guards = [dict(e.attributes) for e in root.events if e.name == "agent.guard"]
    # Each guard says once what would have stopped the run; the loop needs the arguments' hash.
    assert [(g["guard"], g["would_stop"], g["enforced"]) for g in guards] == [
        ("policy", "policy_denied", False),
        ("loop", "loop_detected", False),
    ]
    assert [e["args_sha"] for e in telemetry.events("tool_result")] == [sha({"q": "x"})] * 2


# --- with the ``agent_framework`` integration: a hook before every function tool -----------------------


async def test_with_the_integration_a_tool_step_has_its_arguments_and_result(telemetry, instrument):
    """The integration begins each tool step before the framework runs the function, with the model's
    arguments, and ends it with the function's return value while the framework's span is open: one span,
    with both hashes (the span alone has neither without ``enable_sensitive_data``), and the run as
    before."""
    instrument("agent_framework")
    agent = make_agent(tool_call("lookup", {"q": "x"}), text("done"))
    assert (await agent.run("hi")).text == "done"
    assert_normal_run(telemetry)
    (step,) = [s for s in telemetry.spans() if s.name.startswith("execute_tool")]
    assert step.attributes["agent.tool.args_sha"] == sha({"q": "x"})
    assert step.attributes["agent.tool.result_sha"] == sha("X")
    assert (step.attributes["agent.tool.status"], step.attributes["gen_ai.tool.call.id"]) == ("ok", "c1")
    (event,) = telemetry.events("tool_result")
    assert (event["args_sha"], event["result_sha"]) == (sha({"q": "x"}), sha("X"))


async def test_with_the_integration_a_failing_tool_is_a_failed_step_and_the_agent_goes_on(
    telemetry, instrument
):
    instrument("agent_framework")
    agent = make_agent(tool_call("broken", {"q": "x"}), text("sorry"))
    assert (await agent.run("hi")).text == "sorry"
    (step,) = [s for s in telemetry.spans() if s.name.startswith("execute_tool")]
    assert (step.attributes["agent.tool.status"], step.attributes["error.type"]) == ("error", "RuntimeError")
    (root,) = [s for s in telemetry.spans() if s.name == "invoke_agent helper"]
    assert root.attributes["agent.stop_reason"] == "completed"


async def test_with_the_integration_a_configured_policy_refuses_the_tool(guarded, instrument):
    """A policy you configured is enforced before the function runs (without the integration it only
    observes): it never runs, and the stop reaches the caller before the next model request."""
    telemetry = guarded({"policy": {"deny": {"*": ["lookup"]}}})
    instrument("agent_framework")
    agent = make_agent(tool_call("lookup", {"q": "x"}), text("done"))
    client = agent.client
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        await agent.run("hi")
    assert stopped.value.stop_reason == "policy_denied"
    assert SENT == {} and client.script == [text("done")]  # the second request was not made
    (root,) = [s for s in telemetry.spans() if s.name == "invoke_agent helper"]
    assert root.attributes["agent.stop_reason"] == "policy_denied"


async def test_with_the_integration_the_default_loop_guard_still_only_observes(telemetry, instrument):
    """A working polling agent is not stopped by a guard nobody configured."""
    instrument("agent_framework")
    script = [tool_call("lookup", {"q": "status"}, f"c{i}") for i in range(5)] + [text("done")]
    agent = make_agent(*script)
    assert (await agent.run("poll")).text == "done" and SENT == {"lookup": 5}
    (root,) = [s for s in telemetry.spans() if s.name == "invoke_agent helper"]
    assert root.attributes["agent.stop_reason"] == "completed"
    guards = [dict(e.attributes) for e in root.events if e.name == "agent.guard"]
    assert [(g["guard"], g["enforced"]) for g in guards] == [("loop", False)]


async def test_with_the_integration_an_agent_otel_tool_is_still_one_call_with_its_retry(
    telemetry, instrument
):
    instrument("agent_framework")
    SENT.clear()
    agent = Agent(
        client=FakeClient(tool_call("search", {"q": "x"}), text("done")), name="helper", tools=[search]
    )
    assert (await agent.run("hi")).text == "done"
    assert sample_tools.SENT == {"search": 2}
    (step,) = [s for s in telemetry.spans() if s.name.startswith("execute_tool")]
    assert step.attributes["agent.tool.attempts"] == 2 and step.attributes["agent.tool.status"] == "ok"


async def test_with_the_integration_a_streamed_run_is_unchanged(telemetry, instrument):
    instrument("agent_framework")
    agent = make_agent(tool_call("lookup", {"q": "x"}), text("done"))
    chunks = [update.text async for update in agent.run("hi", stream=True)]
    assert "".join(chunks) == "done"
    assert_normal_run(telemetry)
    (step,) = [s for s in telemetry.spans() if s.name.startswith("execute_tool")]
    assert step.attributes["agent.tool.result_sha"] == sha("X")


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
async def test_with_the_integration_a_step_budget_stops_before_the_request_over_it(
    guarded, instrument, stream
):
    """``max_steps: 2``: the request, the tool, and the next request would be step 3: it is not sent, and the
    caller gets the stop (without the integration the budget only observes)."""
    telemetry = guarded({"budget": {"max_steps": 2}})
    instrument("agent_framework")
    agent = make_agent(tool_call("lookup", {"q": "x"}), text("done"))
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        if stream:
            [u async for u in agent.run("hi", stream=True)]
        else:
            await agent.run("hi")
    assert stopped.value.stop_reason == "max_steps"
    assert SENT == {"lookup": 1} and agent.client.script == [text("done")]
    (root,) = [s for s in telemetry.spans() if s.name == "invoke_agent helper"]
    assert root.attributes["agent.stop_reason"] == "max_steps"


async def test_with_the_integration_an_engaged_kill_switch_stops_the_first_request(
    guarded, instrument, monkeypatch
):
    """The kill switch engaged: not even the invocation's first model request is sent."""
    telemetry = guarded({})
    instrument("agent_framework")
    monkeypatch.setenv("AGENT_OTEL_KILL_SWITCH", "all")
    agent = make_agent(tool_call("lookup", {"q": "x"}), text("done"))
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        await agent.run("hi")
    assert stopped.value.stop_reason == "kill_switch"
    assert agent.client.seen == [] and SENT == {}
    (root,) = [s for s in telemetry.spans() if s.name == "invoke_agent helper"]
    assert root.attributes["agent.stop_reason"] == "kill_switch"
    guards = [dict(e.attributes) for e in root.events if e.name == "agent.guard"]
    assert [(g["guard"], g["enforced"]) for g in guards] == [("kill_switch", True)], guards


@tool(approval_mode="always_require")
def refund(amount: int) -> str:
    """Refund, once a human approved it."""
    SENT["refund"] += 1
    return f"refunded {amount}"


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
async def test_with_the_integration_a_run_waiting_for_a_tool_approval_is_interrupted(
    telemetry, instrument, stream
):
    """``approval_mode="always_require"``: the framework ends the agent run with the model's call
    unanswered and its approval request in ``user_input_requests``. That run paused for a human; it read
    ``completed`` (with no tool call). Now ``interrupted``, with an ``agent.interrupt`` event naming the
    call; the approved call runs in the next run, which completes."""
    from agent_framework import Message

    instrument("agent_framework")
    agent = Agent(
        client=FakeClient(tool_call("refund", {"amount": 5}), text("done")), name="helper", tools=[refund]
    )
    SENT.clear()
    session = agent.create_session()
    if stream:
        response = await agent.run("refund 5", stream=True, session=session).get_final_response()
    else:
        response = await agent.run("refund 5", session=session)
    (request,) = response.user_input_requests
    assert SENT == {}  # waiting for the human
    answer = Message(role="user", contents=[request.to_function_approval_response(True)])
    approved = await agent.run(answer, session=session)
    assert approved.text == "done" and SENT == {"refund": 1}

    runs = sorted(
        (s for s in telemetry.spans() if s.name == "invoke_agent helper"), key=lambda s: s.start_time
    )
    assert [r.attributes["agent.stop_reason"] for r in runs] == ["interrupted", "completed"]
    paused = runs[0]
    assert paused.status.status_code is StatusCode.UNSET and "error.type" not in paused.attributes
    (interrupt,) = [dict(e.attributes) for e in paused.events if e.name == "agent.interrupt"]
    assert (interrupt["interrupts"], list(interrupt["interrupt_ids"])) == (1, ["c1"])
    assert [(e["stop_reason"], e["status"]) for e in telemetry.events("stop")] == [
        ("interrupted", "pause"),
        ("completed", "success"),
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
async def test_with_the_integration_the_run_given_the_approval_links_to_the_paused_run(
    telemetry, instrument, stream
):
    """The framework's human-in-the-loop pattern answers the approval request in the next ``agent.run``
    on the same session, and a local session has no conversation id: the two runs were unrelated. The
    answered call ids link the run given the approval to the paused run (``agent.resume_of`` and a span
    link), as a LangGraph resume on the same thread is linked; a run after it is not a resume."""
    from agent_framework import Message

    instrument("agent_framework")
    client = FakeClient(tool_call("refund", {"amount": 5}, "call_9"), text("done"), text("anything else"))
    agent = Agent(client=client, name="helper", tools=[refund])
    SENT.clear()
    session = agent.create_session()
    response = await agent.run("refund 5", session=session)
    (request,) = response.user_input_requests
    answer = Message(role="user", contents=[request.to_function_approval_response(True)])
    if stream:
        approved = await agent.run(answer, stream=True, session=session).get_final_response()
    else:
        approved = await agent.run(answer, session=session)
    assert approved.text == "done" and SENT == {"refund": 1}
    assert (await agent.run("what else?", session=session)).text == "anything else"

    runs = sorted(
        (s for s in telemetry.spans() if s.name == "invoke_agent helper"), key=lambda s: s.start_time
    )
    assert [r.attributes["agent.stop_reason"] for r in runs] == ["interrupted", "completed", "completed"]
    paused, resumed, after = runs
    assert resumed.attributes["agent.resume_of"] == paused.attributes["agent.run_id"]
    assert [(link.context.span_id, dict(link.attributes)) for link in resumed.links] == [
        (paused.context.span_id, {"agent.run_id": paused.attributes["agent.run_id"]})
    ]
    assert "agent.resume_of" not in after.attributes and not after.links


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
async def test_with_the_integration_the_run_given_the_answers_records_each_decision(
    telemetry, instrument, stream
):
    """A human approves one waiting call and rejects the other (``to_function_approval_response(False)``).
    The framework never invokes a rejected tool (it answers the model "rejected by user"), so the run given
    the answers showed only the approved call running. Now its span has an ``agent.approval`` event per
    answered call; the rejected call is no tool step and no tool error."""
    from agent_framework import Message

    instrument("agent_framework")
    client = FakeClient(
        tool_calls(("refund", {"amount": 5}, "c_bob"), ("refund", {"amount": 900}, "c_eve")), text("done")
    )
    agent = Agent(client=client, name="helper", tools=[refund])
    SENT.clear()
    session = agent.create_session()
    response = await agent.run("refund bob and eve", session=session)
    bob, eve = response.user_input_requests
    answer = Message(
        role="user",
        contents=[bob.to_function_approval_response(True), eve.to_function_approval_response(False)],
    )
    if stream:
        resumed_response = await agent.run(answer, stream=True, session=session).get_final_response()
    else:
        resumed_response = await agent.run(answer, session=session)
    assert resumed_response.text == "done" and SENT == {"refund": 1}

    spans = telemetry.spans()
    paused, resumed = sorted(
        (s for s in spans if s.name == "invoke_agent helper"), key=lambda s: s.start_time
    )
    assert [r.attributes["agent.stop_reason"] for r in (paused, resumed)] == ["interrupted", "completed"]
    assert approval_events(paused) == []
    assert approval_events(resumed) == [
        approval("c_bob", "refund", "approved"),
        approval("c_eve", "refund", "rejected"),
    ]
    assert [name for _, name in steps(resumed, spans)] == ["execute_tool refund", "chat gpt-4o"]
    invocations = telemetry.metrics()["agent.tool.invocations"]
    assert [(a["tool"], a["status"], p.value) for a, p in invocations] == [("refund", "ok", 1)]


async def test_with_the_integration_answers_given_inside_your_run_are_recorded_on_it(telemetry, instrument):
    """Inside your ``agent_otel.run`` the framework's agent joins your run: the decisions are on its span."""
    from agent_framework import Message

    instrument("agent_framework")
    agent = Agent(
        client=FakeClient(tool_call("refund", {"amount": 5}), text("done")), name="helper", tools=[refund]
    )
    SENT.clear()
    session = agent.create_session()
    async with agent_otel.run("support") as run:
        (request,) = (await agent.run("refund 5", session=session)).user_input_requests
        answer = Message(role="user", contents=[request.to_function_approval_response(False)])
        assert (await agent.run(answer, session=session)).text == "done" and SENT == {}
    assert run.result.stop_reason == "completed"
    (root,) = [s for s in ours(telemetry.spans()) if s.name == "invoke_agent support"]
    assert approval_events(root) == [approval("c1", "refund", "rejected")]


# --- a streamed run its consumer leaves before the end ----------------------------------------------------


def _collect(first: str) -> None:
    """Collect the dropped streams, the framework's weakref finalizers of the ``first`` layer's streams
    (``AgentTelemetryLayer``: the agent's, ``ChatTelemetryLayer``: the request's) first. The collector
    runs them in an order that depends on where the streams sit in its generations; here it is fixed,
    by calling those finalizers first, as the collector would."""
    for finalizer in list(weakref.finalize._registry):  # type: ignore[attr-defined]
        if _closes(finalizer, first):
            finalizer()
    gc.collect()


def _closes(finalizer: weakref.finalize, layer: str) -> bool:
    """Whether ``finalizer`` is one of ``layer``'s (looked at without keeping its stream alive)."""
    found = finalizer.peek()  # (the stream, the function, ...): dropped on return
    return found is not None and found[1].__qualname__.startswith(layer + ".")


@pytest.mark.parametrize("first", ["AgentTelemetryLayer", "ChatTelemetryLayer"], ids=["agent", "request"])
async def test_with_the_integration_a_stream_dropped_after_its_first_update_is_cancelled(
    telemetry, instrument, caplog, first
):
    """The consumer reads the model's tool call and drops the stream: the tool never ran, the agent never
    answered. The framework's finalizers end its spans, its agent span with its status unset; the run
    read ``completed`` (status OK), and when the agent span's finalizer came first agent-otel ended the
    request span the framework still owned, which the framework then ended again (the SDK's "Calling
    end() on an ended span"). Now ``cancelled``, whichever finalizer comes first, and the request span
    is ended once, by the framework, with its step's id."""
    instrument("agent_framework")
    caplog.set_level(logging.WARNING, logger="opentelemetry")

    async def first_update() -> list[str]:
        stream = make_agent(tool_call("lookup", {"q": "x"}), text("done")).run("hi", stream=True)
        async for update in stream:
            return [content.type for content in update.contents]
        return []

    assert await first_update() == ["function_call"]
    _collect(first)
    assert "Calling end() on an ended span" not in caplog.text
    assert SENT == {}
    spans = telemetry.spans()
    (root,) = [s for s in spans if s.name == "invoke_agent helper"]
    assert root.attributes["agent.stop_reason"] == "cancelled"
    assert root.status.status_code is StatusCode.UNSET and "error.type" not in root.attributes
    assert stop_event(root)["agent.stop_reason"] == "cancelled"
    (request,) = [s for s in spans if s.attributes.get("gen_ai.operation.name") == "chat"]
    assert request.attributes["agent.step_id"] == 1
    assert [(e["kind"], e["step_id"]) for e in telemetry.events()] == [("llm_result", 1), ("stop", None)]
    assert [(e["stop_reason"], e["status"]) for e in telemetry.events("stop")] == [("cancelled", "limit")]
    metrics = telemetry.metrics()
    assert [(a["stop_reason"], p.value) for a, p in metrics["agent.stop"] if p.value] == [("cancelled", 1)]


@pytest.mark.parametrize("read", [1, 4, None], ids=["tool_call", "answer", "to_the_end"])
async def test_with_the_integration_a_stream_closed_before_its_end_is_cancelled(telemetry, instrument, read):
    """``async with agent.run(stream=True) as stream`` left by a ``break``: the framework's cleanup builds
    a response from the updates read so far and ends its agent span normally, which read ``completed``
    though the agent was cut short (after the model's tool call, the tool never ran; or in its answer,
    before the stream's end). Read to its end, the same block completes."""
    instrument("agent_framework")
    agent = make_agent(tool_call("lookup", {"q": "x"}), text("done"))
    seen = 0
    async with agent.run("hi", stream=True) as stream:
        async for _ in stream:
            seen += 1
            if seen == read:
                break
    (root,) = [s for s in telemetry.spans() if s.name == "invoke_agent helper"]
    if read is None:
        assert_normal_run(telemetry)
        return
    assert dict(SENT) == ({} if read == 1 else {"lookup": 1})
    assert root.attributes["agent.stop_reason"] == "cancelled"
    assert root.status.status_code is StatusCode.UNSET
    assert [(e["stop_reason"], e["status"]) for e in telemetry.events("stop")] == [("cancelled", "limit")]


async def test_with_the_integration_a_run_whose_task_is_cancelled_is_cancelled(telemetry, instrument):
    """``agent.run()`` (not streamed) whose task is cancelled while a tool runs: the framework ends its
    agent span without the error (``CancelledError`` is no ``Exception`` to it) and without a response,
    which read ``completed`` (status OK). Now ``cancelled``: the agent never answered."""
    import asyncio

    called, release = asyncio.Event(), asyncio.Event()

    @tool
    async def slow(q: str) -> str:
        """Waits for a backend."""
        called.set()
        await release.wait()
        return q

    agent = Agent(client=FakeClient(tool_call("slow", {"q": "x"}), text("done")), name="helper", tools=[slow])
    instrument("agent_framework")
    task = asyncio.create_task(agent.run("hi"))
    await asyncio.wait_for(called.wait(), 5)  # the model asked for the tool, which now waits
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (root,) = [s for s in telemetry.spans() if s.name == "invoke_agent helper"]
    assert root.attributes["agent.stop_reason"] == "cancelled"
    assert root.status.status_code is StatusCode.UNSET
    (step,) = [s for s in telemetry.spans() if s.name == "execute_tool slow"]
    assert (step.attributes["agent.tool.status"], step.attributes["error.type"]) == (
        "cancelled",
        "CancelledError",
    )
