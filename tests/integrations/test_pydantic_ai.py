"""PydanticAI driven by its own FunctionModel / TestModel: runs, tool and model steps, usage limits."""

from __future__ import annotations

import asyncio
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
    children,
    one,
    ours,
    parent_of,
    steps,
    stop_event,
)

pytest.importorskip("pydantic_ai")

from pydantic_ai import (
    Agent,
    ModelRetry,
    RunContext,
    Tool,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
    UsageLimits,
)
from pydantic_ai.exceptions import RunTimedOut
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.output import ToolOutput
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.usage import RequestUsage


def script(*responses: ModelResponse, name: str = "gpt-4o") -> FunctionModel:
    """A FunctionModel answering with ``responses`` in order (the last one repeats)."""
    queue = list(responses)

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return FunctionModel(respond, model_name=name)


def tool_call(name: str, args: dict, call_id: str, usage: tuple[int, int] = (10, 5)) -> ModelResponse:
    return ModelResponse(
        parts=[ToolCallPart(tool_name=name, args=args, tool_call_id=call_id)],
        usage=RequestUsage(input_tokens=usage[0], output_tokens=usage[1]),
        model_name="gpt-4o-2024-08-06",
    )


def text(content: str, usage: tuple[int, int] = (20, 3)) -> ModelResponse:
    return ModelResponse(
        parts=[TextPart(content)],
        usage=RequestUsage(input_tokens=usage[0], output_tokens=usage[1]),
        model_name="gpt-4o-2024-08-06",
    )


def agent_with_lookup(model: Any, name: str) -> Agent:
    agent = Agent(model, name=name)

    @agent.tool_plain
    def lookup(q: str) -> str:
        """Look something up."""
        return q.upper()

    return agent


def test_run_with_a_tool_call(telemetry, instrument):
    instrument("pydantic_ai")
    agent = agent_with_lookup(script(tool_call("lookup", {"q": "otel"}, "call_1"), text("done")), "pyd-agent")
    result = agent.run_sync("find otel")
    assert result.output == "done"

    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent pyd-agent")
    assert root.parent is None
    assert [s.name for s in children(root, spans)] == ["chat gpt-4o", "execute_tool lookup", "chat gpt-4o"]
    assert steps(root, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]
    tool_span = one(spans, "execute_tool lookup")
    assert tool_span.attributes["gen_ai.tool.call.id"] == "call_1"
    assert tool_span.attributes["agent.tool.args_sha"] == sha({"q": "otel"})
    assert tool_span.attributes["agent.tool.result_sha"] == sha("OTEL")
    assert tool_span.attributes["agent.tool.status"] == "ok"
    chat = children(root, spans)[0]
    assert chat.attributes["gen_ai.usage.input_tokens"] == 10
    assert chat.attributes["gen_ai.usage.output_tokens"] == 5
    assert chat.attributes["gen_ai.response.model"] == "gpt-4o"  # FunctionModel reports its own name
    assert chat.attributes["agent.cost_usd"] == pytest.approx((10 * 2.5 + 5 * 10) / 1e6)
    assert root.attributes["agent.usage.input_tokens"] == 30
    assert root.attributes["agent.usage.output_tokens"] == 8
    assert root.attributes["gen_ai.request.model"] == "gpt-4o"
    assert root.attributes["agent.input_sha"] == sha("find otel")
    assert root.attributes["agent.stop_reason"] == "completed"
    assert stop_event(root)["agent.stop_reason"] == "completed"
    (stop,) = telemetry.events("stop")
    assert stop["usage"]["tool_calls"] == 1 and stop["usage"]["llm_calls"] == 2


async def test_async_run_with_test_model(telemetry, instrument):
    instrument("pydantic_ai")
    agent = agent_with_lookup(TestModel(), "test-model-agent")
    result = await agent.run("go")
    assert "lookup" in result.output
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent test-model-agent")
    assert steps(root, spans) == [(1, "chat test"), (2, "execute_tool lookup"), (3, "chat test")]
    usage = result.usage
    assert root.attributes["agent.usage.input_tokens"] == usage.input_tokens
    assert root.attributes["agent.usage.output_tokens"] == usage.output_tokens


async def test_streamed_run(telemetry, instrument):
    instrument("pydantic_ai")
    agent = Agent(TestModel(custom_output_text="streamed answer"), name="streamer")
    async with agent.run_stream("go") as result:
        output = await result.get_output()
    assert output == "streamed answer"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent streamer")
    assert steps(root, spans) == [(1, "chat test")]
    assert root.attributes["agent.stop_reason"] == "completed"
    assert root.attributes["agent.usage.output_tokens"] > 0


def test_usage_limit_stops_with_budget_exceeded(telemetry, instrument):
    instrument("pydantic_ai")
    agent = agent_with_lookup(script(tool_call("lookup", {"q": "again"}, "c")), "limited")
    with pytest.raises(UsageLimitExceeded):
        agent.run_sync("go", usage_limits=UsageLimits(request_limit=2))
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent limited")
    assert root.attributes["agent.stop_reason"] == "budget_exceeded"
    assert root.attributes["error.type"] == "UsageLimitExceeded"
    assert root.status.status_code.name == "UNSET"
    assert stop_event(root)["agent.stop_reason"] == "budget_exceeded"


def test_tool_retry_marks_the_span_and_the_run_goes_on(telemetry, instrument):
    instrument("pydantic_ai")
    agent = Agent(
        script(tool_call("picky", {"n": 1}, "p1"), tool_call("picky", {"n": 2}, "p2"), text("ok")),
        name="retrier",
    )

    @agent.tool_plain
    def picky(n: int) -> str:
        """Wants 2."""
        if n != 2:
            raise ModelRetry("use 2")
        return "fine"

    assert agent.run_sync("go").output == "ok"
    spans = ours(telemetry.spans())
    picky_spans = sorted([s for s in spans if s.name == "execute_tool picky"], key=lambda s: s.start_time)
    assert [s.attributes["agent.tool.status"] for s in picky_spans] == ["error", "ok"]
    assert picky_spans[0].attributes["error.type"] == "ToolRetryError"  # PydanticAI wraps ModelRetry
    assert one(spans, "invoke_agent retrier").attributes["agent.stop_reason"] == "completed"


def test_failing_model_stops_with_model_error(telemetry, instrument):
    instrument("pydantic_ai")

    def broken(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise ConnectionError("model down")

    with pytest.raises(ConnectionError):
        Agent(FunctionModel(broken, model_name="gpt-4o"), name="offline").run_sync("go")
    spans = ours(telemetry.spans())
    assert one(spans, "chat gpt-4o").attributes["error.type"] == "ConnectionError"
    assert one(spans, "invoke_agent offline").attributes["agent.stop_reason"] == "model_error"


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("output_validator", "model_error"),
        ("output_function", "model_error"),
        ("run_stream", "model_error"),
        ("tool", "tool_error"),
    ],
)
def test_a_model_that_keeps_failing_validation_stops_with_model_error(telemetry, instrument, where, reason):
    """PydanticAI ends a run whose model keeps answering what an output validator or output function
    rejects (``ModelRetry``) past its retries with ``UnexpectedModelBehavior``; so does ``run_stream`` for
    an output that fails validation. The model ended the run: ``model_error``, as the Agents SDK's
    ``ModelBehaviorError`` (it read ``error``, a bug in the agent's own code). A function tool that kept
    refusing the model's arguments failed its steps: ``tool_error``, as before. The caller's exception is
    unchanged."""
    instrument("pydantic_ai")
    if where == "tool":
        agent = Agent(script(tool_call("picky", {"n": 1}, "p")), name="stubborn", retries=1)

        @agent.tool_plain
        def picky(n: int) -> str:
            """Wants 2."""
            raise ModelRetry("use 2")

    elif where == "output_function":

        def finish(value: int) -> int:
            """The final answer."""
            raise ModelRetry("positive please")

        agent = Agent(
            script(tool_call("finish", {"value": -1}, "f")),
            name="stubborn",
            retries=1,
            output_type=ToolOutput(finish, name="finish"),
        )

    else:

        async def stream_bad(messages: list[ModelMessage], info: AgentInfo) -> Any:
            yield "bad"

        model = FunctionModel(lambda m, i: text("bad"), stream_function=stream_bad, model_name="gpt-4o")
        agent = Agent(model, name="stubborn", retries=1)

        @agent.output_validator
        def never(output: str) -> str:
            raise ModelRetry("not good enough")

    async def streamed() -> None:
        async with agent.run_stream("go") as result:
            await result.get_output()

    with pytest.raises(UnexpectedModelBehavior):
        asyncio.run(streamed()) if where == "run_stream" else agent.run_sync("go")
    root = one(ours(telemetry.spans()), "invoke_agent stubborn")
    assert root.attributes["agent.stop_reason"] == reason
    assert root.attributes["error.type"] == "UnexpectedModelBehavior"
    assert [e["stop_reason"] for e in telemetry.events("stop")] == [reason]


def test_a_streamed_answer_its_validator_rejects_keeps_the_requests_usage(telemetry, instrument):
    """``run_stream`` cannot retry an output its validator rejects: the consumer raises and PydanticAI
    cancels the request's task, after the model answered and PydanticAI counted the usage. The step had
    no tokens (the run's usage and cost 0, PydanticAI's 50 + 2); it has what PydanticAI counted."""
    instrument("pydantic_ai")

    async def answer(messages: list[ModelMessage], info: AgentInfo) -> Any:
        yield "bad "
        yield "answer"

    agent = Agent(FunctionModel(stream_function=answer, model_name="gpt-4o"), name="validated")

    @agent.output_validator
    def never(output: str) -> str:
        raise ModelRetry("not good enough")

    async def main() -> Any:
        async with agent.run_stream("go") as result:
            await result.get_output()

    with pytest.raises(UnexpectedModelBehavior):
        asyncio.run(main())
    spans = ours(telemetry.spans())
    chat, root = one(spans, "chat gpt-4o"), one(spans, "invoke_agent validated")
    billed = (chat.attributes["gen_ai.usage.input_tokens"], chat.attributes["gen_ai.usage.output_tokens"])
    assert billed == (50, 2)  # FunctionModel's estimate, as PydanticAI's run usage says
    assert (
        root.attributes["agent.usage.input_tokens"],
        root.attributes["agent.usage.output_tokens"],
    ) == billed
    assert root.attributes["agent.cost_usd"] > 0
    assert chat.attributes["error.type"] == "CancelledError"  # the request was cut, not failed by the API
    assert root.attributes["agent.stop_reason"] == "model_error"


def test_run_inside_a_user_run_joins_it(telemetry, instrument):
    instrument("pydantic_ai")
    agent = agent_with_lookup(script(tool_call("lookup", {"q": "a"}, "c1"), text("ok")), "inner")
    with agent_otel.run("outer") as run:
        agent.run_sync("go")
    spans = ours(telemetry.spans())
    assert not [s for s in spans if s.name == "invoke_agent inner"]
    root = one(spans, "invoke_agent outer")
    assert steps(root, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]
    assert run.result.usage["tool_calls"] == 1


async def test_agent_delegating_from_a_tool_is_a_sub_agent(telemetry, instrument):
    instrument("pydantic_ai")
    researcher = agent_with_lookup(script(tool_call("lookup", {"q": "b"}, "c9"), text("found")), "researcher")
    boss = Agent(script(tool_call("research", {"topic": "t"}, "r1"), text("all done")), name="boss")

    @boss.tool_plain
    async def research(topic: str) -> str:
        """Delegate."""
        return (await researcher.run(topic)).output

    assert (await boss.run("go")).output == "all done"
    spans = ours(telemetry.spans())
    boss_span = one(spans, "invoke_agent boss")
    sub = one(spans, "invoke_agent researcher")
    assert parent_of(sub, spans) is one(spans, "execute_tool research")
    assert sub.attributes["agent.parent_run_id"] == boss_span.attributes["agent.run_id"]
    assert steps(sub, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]


def test_manual_tool_decorator_on_the_same_function_gives_one_span(telemetry, instrument):
    instrument("pydantic_ai")
    agent = Agent(script(tool_call("weather", {"city": "Oslo"}, "w1"), text("ok")), name="one-span")

    @agent.tool_plain
    @agent_otel.tool
    def weather(city: str) -> str:
        """Weather."""
        return "sunny in " + city

    agent.run_sync("go")
    spans = ours(telemetry.spans())
    assert [s.name for s in spans if s.name.startswith("execute_tool")] == ["execute_tool weather"]


def test_denied_tool_stops_the_run_with_policy_denied(guarded, instrument):
    telemetry = guarded({"policy": {"deny": {"*": ["delete_*"]}}})
    instrument("pydantic_ai")
    agent = Agent(script(tool_call("delete_account", {"user": "bob"}, "d1"), text("never")), name="deleter")
    deleted: list[str] = []

    @agent.tool_plain
    def delete_account(user: str) -> str:
        """Delete."""
        deleted.append(user)
        return "deleted"

    with pytest.raises(agent_otel.AgentStopped) as stopped:
        agent.run_sync("delete bob")
    assert stopped.value.stop_reason == "policy_denied"
    assert deleted == []
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent deleter")
    assert root.attributes["agent.stop_reason"] == "policy_denied"
    assert not [s for s in spans if s.name.startswith("execute_tool")]


def test_looping_tool_calls_stop_the_run_with_loop_detected(guarded, instrument):
    telemetry = guarded({"loop": {"max_repeats": 2}})
    instrument("pydantic_ai")
    agent = agent_with_lookup(script(tool_call("lookup", {"q": "same"}, "c")), "stuck")
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        agent.run_sync("go")
    assert stopped.value.stop_reason == "loop_detected"
    spans = ours(telemetry.spans())
    assert one(spans, "invoke_agent stuck").attributes["agent.stop_reason"] == "loop_detected"
    assert len([s for s in spans if s.name == "execute_tool lookup"]) == 2


def test_uninstrument_restores_pydantic_ai(telemetry, instrument):
    from pydantic_ai import agent as agent_module

    before = agent_module.Agent._resolve_run_capabilities
    instrument("pydantic_ai")
    assert agent_module.Agent._resolve_run_capabilities is not before
    agent_otel.integrations.uninstrument(["pydantic_ai"])
    assert agent_module.Agent._resolve_run_capabilities is before
    Agent(TestModel(), name="plain").run_sync("go")
    assert ours(telemetry.spans()) == []


def test_tool_return_is_what_pydantic_ai_sends_back(telemetry, instrument):
    """The result hash is over the tool's return value, the content of PydanticAI's ToolReturnPart."""
    instrument("pydantic_ai")
    agent = Agent(script(tool_call("data", {}, "x1"), text("ok")), name="returns")

    @agent.tool_plain
    def data() -> dict:
        """Structured."""
        return {"b": 2, "a": [1, 2]}

    result = agent.run_sync("go")
    returns = [
        p for m in result.all_messages() for p in getattr(m, "parts", []) if isinstance(p, ToolReturnPart)
    ]
    assert returns[0].content == {"b": 2, "a": [1, 2]}
    tool_span = one(ours(telemetry.spans()), "execute_tool data")
    assert tool_span.attributes["agent.tool.result_sha"] == sha({"a": [1, 2], "b": 2})


def test_guard_tool_timeout_applies_to_framework_tools(guarded, instrument):
    telemetry = guarded({"tool_timeout_s": 0.05})
    instrument("pydantic_ai")
    agent = Agent(script(tool_call("hang", {}, "h1"), text("never")), name="hanging")

    @agent.tool_plain
    async def hang() -> str:
        """Hangs."""
        await asyncio.sleep(2)
        return "late"

    with pytest.raises(ToolTimeout):
        agent.run_sync("go")
    spans = ours(telemetry.spans())
    assert one(spans, "execute_tool hang").attributes["error.type"] == "ToolTimeout"
    assert one(spans, "invoke_agent hanging").attributes["agent.stop_reason"] == "tool_timeout"


def test_run_timeout_stops_with_timeout(telemetry, instrument):
    instrument("pydantic_ai")
    agent = Agent(script(tool_call("slow", {}, "s1"), text("never")), name="deadline")

    @agent.tool_plain
    async def slow() -> str:
        """Slow."""
        await asyncio.sleep(2)
        return "late"

    with pytest.raises(RunTimedOut):
        agent.run_sync("go", timeout=0.1)
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent deadline")
    assert root.attributes["agent.stop_reason"] == "timeout"
    assert root.status.status_code.name == "UNSET"
    # The run's deadline cut the tool short: cancelled, not a tool error (README, Stop reasons).
    assert one(spans, "execute_tool slow").attributes["agent.tool.status"] == "cancelled"


def test_run_timeout_inside_a_user_run_stops_it_with_timeout(telemetry, instrument):
    instrument("pydantic_ai")
    agent = Agent(script(tool_call("slow", {}, "s1"), text("never")), name="deadline-inner")

    @agent.tool_plain
    async def slow() -> str:
        """Slow."""
        await asyncio.sleep(2)
        return "late"

    with pytest.raises(RunTimedOut), agent_otel.run("outer") as run:
        agent.run_sync("go", timeout=0.1)
    assert run.result.stop_reason == "timeout"


def test_real_openai_model_with_the_client_integration_counts_each_request_once(
    telemetry, instrument, fake_api
):
    from openai import AsyncOpenAI
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    from tests.integrations.conftest import Reply

    instrument("pydantic_ai", "openai")
    fake_api.reply(
        Reply(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1700000000,
                "model": "gpt-4o-2024-08-06",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hello"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 21, "completion_tokens": 4, "total_tokens": 25},
            }
        )
    )
    client = AsyncOpenAI(base_url=fake_api.base_url + "/v1", api_key="test-key", max_retries=0)
    model = OpenAIChatModel("gpt-4o", provider=OpenAIProvider(openai_client=client))
    assert Agent(model, name="real-model").run_sync("hi").output == "hello"
    assert fake_api.requests[0][0] == "/v1/chat/completions"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent real-model")
    chat = one(spans, "chat gpt-4o")
    assert chat.attributes["gen_ai.usage.input_tokens"] == 21
    assert chat.attributes["gen_ai.usage.output_tokens"] == 4
    assert chat.attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert root.attributes["agent.steps"] == 1


def test_cache_reads_and_writes_are_priced_at_the_cache_prices(telemetry, instrument):
    instrument("pydantic_ai")
    response = ModelResponse(
        parts=[TextPart("ok")],
        usage=RequestUsage(
            input_tokens=1000, output_tokens=50, cache_read_tokens=800, cache_write_tokens=100
        ),
        model_name="claude-sonnet-4-20250514",
    )
    Agent(script(response, name="claude-sonnet-4"), name="pyd-cached").run_sync("go")
    chat = one(ours(telemetry.spans()), "chat claude-sonnet-4")
    assert chat.attributes["gen_ai.usage.input_tokens"] == 1000  # PydanticAI's input_tokens include the cache
    assert chat.attributes["gen_ai.usage.cache_read.input_tokens"] == 800
    assert chat.attributes["gen_ai.usage.cache_creation.input_tokens"] == 100
    # claude-sonnet-4: 100 * 3.00 + 800 * 0.30 + 100 * 3.75 + 50 * 15.00 = 1665 USD per 1M tokens
    assert chat.attributes["agent.cost_usd"] == pytest.approx(1665 / 1e6)


def approval_agent(closed: list[str]) -> Agent:
    from pydantic_ai import DeferredToolRequests

    agent = Agent(TestModel(), name="admin", output_type=[str, DeferredToolRequests])

    @agent.tool_plain(requires_approval=True)
    def close_account(user: str) -> str:
        closed.append(user)
        return "closed " + user

    return agent


def approve(paused: Any) -> Any:
    from pydantic_ai import DeferredToolResults

    return DeferredToolResults(approvals={call.tool_call_id: True for call in paused.output.approvals})


def test_a_run_deferring_a_tool_for_approval_is_interrupted_and_its_resume_links_to_it(telemetry, instrument):
    instrument("pydantic_ai")
    closed: list[str] = []
    agent = approval_agent(closed)
    paused = agent.run_sync("close bob's account")
    assert type(paused.output).__name__ == "DeferredToolRequests" and closed == []
    resumed = agent.run_sync(message_history=paused.all_messages(), deferred_tool_results=approve(paused))
    assert resumed.output == '{"close_account":"closed a"}' and closed == ["a"]

    spans = ours(telemetry.spans())
    first, second = sorted([s for s in spans if s.name == "invoke_agent admin"], key=lambda s: s.start_time)
    assert first.attributes["agent.stop_reason"] == "interrupted"
    (event,) = [e for e in first.events if e.name == "agent.interrupt"]
    assert dict(event.attributes) == {
        "interrupts": 1,
        "interrupt_ids": ("pyd_ai_tool_call_id__close_account",),
    }
    assert second.attributes["agent.stop_reason"] == "completed"
    assert second.attributes["agent.resume_of"] == first.attributes["agent.run_id"]
    assert [name for _, name in steps(second, spans)] == ["execute_tool close_account", "chat test"]


@pytest.mark.parametrize("mode", ["run", "iter"])
def test_the_resumed_run_records_what_the_human_decided_about_each_call(telemetry, instrument, mode):
    """A human approves one deferred call and denies the other (``ToolDenied``, with a message for the
    model). The resumed run showed only the approved call running: a denied call never runs. Now its
    span has an ``agent.approval`` event per decision, in the order the model asked for the calls; the
    denied call is no tool step and no tool error, and the human's message is nowhere in the telemetry."""
    from pydantic_ai import DeferredToolRequests, DeferredToolResults, ToolDenied

    instrument("pydantic_ai")
    closed: list[str] = []
    both = ModelResponse(
        parts=[
            ToolCallPart(tool_name="close_account", args={"user": "bob"}, tool_call_id="c_bob"),
            ToolCallPart(tool_name="close_account", args={"user": "eve"}, tool_call_id="c_eve"),
        ],
        usage=RequestUsage(input_tokens=10, output_tokens=5),
    )
    agent = Agent(script(both, text("done")), name="admin", output_type=[str, DeferredToolRequests])

    @agent.tool_plain(requires_approval=True)
    def close_account(user: str) -> str:
        closed.append(user)
        return "closed " + user

    paused = agent.run_sync("close bob's and eve's accounts")
    assert [c.tool_call_id for c in paused.output.approvals] == ["c_bob", "c_eve"]
    answers = DeferredToolResults(
        approvals={"c_eve": ToolDenied("eve is a key account, call +1 555 0100 first"), "c_bob": True}
    )
    resume = {"message_history": paused.all_messages(), "deferred_tool_results": answers}
    if mode == "run":
        assert agent.run_sync(**resume).output == "done"
    else:

        async def iterated() -> str:
            async with agent.iter(**resume) as agent_run:
                async for _ in agent_run:
                    pass
            assert agent_run.result is not None
            return agent_run.result.output

        assert asyncio.run(iterated()) == "done"
    assert closed == ["bob"]

    spans = ours(telemetry.spans())
    first, second = sorted([s for s in spans if s.name == "invoke_agent admin"], key=lambda s: s.start_time)
    assert first.attributes["agent.stop_reason"] == "interrupted" and approval_events(first) == []
    assert second.attributes["agent.stop_reason"] == "completed"
    assert approval_events(second) == [
        approval("c_bob", "close_account", "approved"),
        approval("c_eve", "close_account", "rejected"),
    ]
    assert [name for _, name in steps(second, spans)] == ["execute_tool close_account", "chat gpt-4o"]
    invocations = telemetry.metrics()["agent.tool.invocations"]
    assert [(a["tool"], a["status"], p.value) for a, p in invocations] == [("close_account", "ok", 1)]
    assert not anywhere(spans, "key account")


def test_approval_given_inside_your_own_run_completes_it(telemetry, instrument):
    instrument("pydantic_ai")
    agent = approval_agent([])
    with agent_otel.run("support") as run:
        paused = agent.run_sync("close bob's account")
        agent.run_sync(message_history=paused.all_messages(), deferred_tool_results=approve(paused))
    assert run.result.stop_reason == "completed"
    # the decision is on the run the agent went on in: yours
    root = one(ours(telemetry.spans()), "invoke_agent support")
    assert approval_events(root) == [
        approval("pyd_ai_tool_call_id__close_account", "close_account", "approved")
    ]


def test_a_write_declared_with_agent_otel_tool_is_blocked_by_the_writes_kill_switch(
    guarded, instrument, monkeypatch
):
    """PydanticAI hands its tool hook only the tool's definition, so an
    ``@agent_otel.tool(side_effects=True)`` function it called was a read: under the ``writes`` kill
    switch it sent its e-mail all the same. Plain tools, tools taking the RunContext and tools a
    ``prepare`` function renamed are all found."""
    telemetry = guarded({})
    instrument("pydantic_ai")
    monkeypatch.setenv("AGENT_OTEL_KILL_SWITCH", "writes")
    ran: list[str] = []

    @agent_otel.tool(name="send_email", side_effects=True)
    def send_email(to: str) -> str:
        """Send an e-mail."""
        ran.append("send " + to)
        return "sent"

    @agent_otel.tool(name="refund", side_effects=True)
    def refund(ctx: RunContext[None], order: str) -> str:
        """Refund an order."""
        ran.append("refund " + order)
        return "refunded"

    @agent_otel.tool(name="find_user")
    def find_user(user: str) -> str:
        """Find an account."""
        ran.append("find " + user)
        return user

    async def renamed(ctx: RunContext[None], tool_def: ToolDefinition) -> ToolDefinition:
        return tool_def.__class__(**{**tool_def.__dict__, "name": "notify"})

    cases = [
        (
            "send_email",
            Agent(script(tool_call("send_email", {"to": "bob"}, "c1"), text("done")), tools=[send_email]),
        ),
        (
            "refund",
            Agent(script(tool_call("refund", {"order": "o1"}, "c1"), text("done")), tools=[Tool(refund)]),
        ),
        (
            "notify",
            Agent(
                script(tool_call("notify", {"to": "bob"}, "c1"), text("done")),
                tools=[Tool(send_email, prepare=renamed)],
            ),
        ),
    ]
    for tool_name, agent in cases:
        with pytest.raises(agent_otel.AgentStopped) as stopped:
            agent.run_sync("go")
        assert stopped.value.result.stop_reason == "kill_switch", tool_name
        assert tool_name in stopped.value.result.detail
    assert ran == []

    # A read still runs under `writes`.
    reader = Agent(script(tool_call("find_user", {"user": "bob"}, "c1"), text("done")), tools=[find_user])
    assert reader.run_sync("go").output == "done"
    assert ran == ["find bob"]
    (span,) = [s for s in ours(telemetry.spans()) if s.name == "execute_tool find_user"]
    assert span.attributes.get("agent.tool.side_effects") is None


def test_an_agent_otel_tool_renamed_keeps_its_retry_and_timeout_in_one_step(telemetry, instrument):
    """``@agent.tool_plain`` over ``@agent_otel.tool(name=..., retry=..., timeout_s=...)``: one step with
    PydanticAI's call id, the function's retry applied once inside it (each failed attempt a retry event)."""
    instrument("pydantic_ai")
    agent = Agent(script(tool_call("weather", {"city": "Oslo"}, "w1"), text("ok")), name="one-span")
    attempts: list[str] = []

    @agent.tool_plain
    @agent_otel.tool(
        name="meteo.weather",
        timeout_s=5,
        retry=agent_otel.Retry(max_attempts=3, base_delay_s=0, jitter="none"),
    )
    def weather(city: str) -> str:
        """Weather; the first attempt fails."""
        attempts.append(city)
        if len(attempts) < 2:
            raise ConnectionError("reset")
        return "sunny in " + city

    assert agent.run_sync("go").output == "ok" and attempts == ["Oslo", "Oslo"]
    spans = ours(telemetry.spans())
    (step,) = [s for s in spans if s.name.startswith("execute_tool")]
    assert step.name == "execute_tool weather" and step.attributes["gen_ai.tool.call.id"] == "w1"
    assert step.attributes["agent.tool.attempts"] == 2
    assert [e.name for e in step.events].count("agent.tool.retry") == 1
    assert one(spans, "invoke_agent one-span").attributes["agent.tool_calls"] == 1


def test_a_response_without_usage_is_unknown_usage_and_a_reported_0_is_0(telemetry, instrument, fake_api):
    """PydanticAI makes a response without usage a RequestUsage of 0 tokens with ``unmeasured_requests``."""
    from openai import AsyncOpenAI
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    from tests.integrations.conftest import Reply
    from tests.integrations.test_openai_client import completion

    instrument("pydantic_ai", "openai")
    unmetered = completion()
    del unmetered["usage"]
    unmetered["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "u"}'}}
        ],
    }
    unmetered["choices"][0]["finish_reason"] = "tool_calls"
    fake_api.reply(Reply(unmetered), Reply(completion(0, 0, content="done")))
    client = AsyncOpenAI(base_url=fake_api.base_url + "/v1", api_key="test-key", max_retries=0)
    model = OpenAIChatModel("gpt-4o", provider=OpenAIProvider(openai_client=client))
    assert agent_with_lookup(model, "metered").run_sync("go").output == "done"
    spans = ours(telemetry.spans())
    assert_unknown_then_zero_usage(telemetry, one(spans, "invoke_agent metered"), spans)


def _streamed_openai_agent(fake_api: Any, reply: Any) -> Agent:
    from openai import AsyncOpenAI
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    fake_api.reply(reply)
    client = AsyncOpenAI(base_url=fake_api.base_url + "/v1", api_key="test-key", max_retries=0)
    return Agent(OpenAIChatModel("gpt-4o", provider=OpenAIProvider(openai_client=client)), name="streamer")


def _stream_events() -> list[tuple[str | None, Any]]:
    from tests.integrations.test_openai_client import chunk

    usage_body = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    return [
        (None, chunk({"role": "assistant", "content": "he"})),
        (None, chunk({"content": "llo"})),
        (None, chunk({}, "stop")),
        (None, chunk({}, usage=usage_body, choices=False)),
        (None, "[DONE]"),
    ]


async def _read_stream(agent: Agent) -> str:
    async with agent.run_stream("hi") as result:
        return "".join([text async for text in result.stream_text(delta=True)])


def test_a_streamed_request_with_the_client_integration_is_counted_once(telemetry, instrument, fake_api):
    """``run_stream`` sends the request from the task that consumes the stream, not the one running
    ``wrap_model_request``: the client integration still sees the request is PydanticAI's (it recorded a
    second ``chat`` step, its usage counted twice)."""
    from tests.integrations.conftest import Reply

    instrument("pydantic_ai", "openai")
    assert (
        asyncio.run(_read_stream(_streamed_openai_agent(fake_api, Reply(stream=_stream_events())))) == "hello"
    )
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent streamer")
    (chat,) = [s for s in spans if s.name == "chat gpt-4o"]
    assert (chat.attributes["gen_ai.usage.input_tokens"], chat.attributes["gen_ai.usage.output_tokens"]) == (
        3,
        2,
    )
    assert chat.attributes["gen_ai.response.id"] == "chatcmpl-2"  # what the client saw of the API's answer
    assert root.attributes["agent.usage.input_tokens"] == 3 and root.attributes["agent.steps"] == 1


def test_a_streamed_request_that_breaks_off_is_one_failed_step_and_a_model_error(
    telemetry, instrument, fake_api
):
    """The connection drops mid-stream: one ``chat`` step, failed with the client's error (it was a step
    ``cancelled`` by PydanticAI's task plus a second one of the client's), and the run ends ``model_error``
    (it ended ``error``) with PydanticAI's ``ModelConnectionError`` passing through unchanged."""
    from pydantic_ai.exceptions import ModelConnectionError

    from tests.integrations.conftest import Reply

    instrument("pydantic_ai", "openai")
    agent = _streamed_openai_agent(fake_api, Reply(stream=_stream_events(), cut_after=2))
    with pytest.raises(ModelConnectionError):
        asyncio.run(_read_stream(agent))
    spans = ours(telemetry.spans())
    (chat,) = [s for s in spans if s.name == "chat gpt-4o"]
    assert chat.attributes["error.type"] == "APIConnectionError"
    assert [e["status"] for e in telemetry.events("llm_result")] == ["error"]
    assert one(spans, "invoke_agent streamer").attributes["agent.stop_reason"] == "model_error"


def test_parallel_tool_calls_in_one_response_are_each_a_step_of_the_run(telemetry, instrument):
    """PydanticAI runs the calls of one response concurrently: each its own step with its call id, a
    child of the run, none lost."""
    calls = [
        ToolCallPart(tool_name="fetch", args={"q": q}, tool_call_id=f"c{i}") for i, q in enumerate("abc")
    ]
    agent = Agent(script(ModelResponse(parts=calls), text("done")), name="fan-out")

    @agent.tool_plain
    async def fetch(q: str) -> str:
        """Fetch."""
        await asyncio.sleep(0.02)
        return q.upper()

    instrument("pydantic_ai")
    assert agent.run_sync("go").output == "done"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent fan-out")
    tools = sorted(
        (s for s in spans if s.name == "execute_tool fetch"),
        key=lambda s: s.attributes["gen_ai.tool.call.id"],
    )
    assert [s.attributes["gen_ai.tool.call.id"] for s in tools] == ["c0", "c1", "c2"]
    assert all(parent_of(s, spans) is root for s in tools)
    assert root.attributes["agent.tool_calls"] == 3 and root.attributes["agent.stop_reason"] == "completed"
