"""smolagents driven by a scripted Model subclass: ToolCallingAgent and CodeAgent runs, tools, model steps."""

from __future__ import annotations

import json
from typing import Any

import pytest

import agent_otel
from agent_otel.hashing import sha
from tests.integrations.conftest import (
    assert_unknown_then_zero_usage,
    chat_usage,
    children,
    one,
    ours,
    parent_of,
    steps,
    stop_event,
)

pytest.importorskip("smolagents")

from smolagents import CodeAgent, Tool, ToolCallingAgent, tool
from smolagents.memory import FinalAnswerStep
from smolagents.models import (
    ChatMessage,
    ChatMessageStreamDelta,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    ChatMessageToolCallStreamDelta,
    MessageRole,
    Model,
)
from smolagents.monitoring import LogLevel, TokenUsage

CALLS: list[str] = []


class ScriptedModel(Model):
    """Answers with the scripted messages in order (the last one repeats); counts its calls."""

    def __init__(self, *messages: ChatMessage | Exception, model_id: str = "gpt-4o") -> None:
        super().__init__(model_id=model_id)
        self.script = list(messages)
        self.calls = 0

    def _next(self) -> ChatMessage:
        self.calls += 1
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        return item

    def generate(
        self,
        messages: Any,
        stop_sequences: Any = None,
        response_format: Any = None,
        tools_to_call_from: Any = None,
        **kwargs: Any,
    ) -> ChatMessage:
        return self._next()


class StreamingModel(ScriptedModel):
    def generate_stream(
        self,
        messages: Any,
        stop_sequences: Any = None,
        response_format: Any = None,
        tools_to_call_from: Any = None,
        **kwargs: Any,
    ):
        message = self._next()
        calls = [
            ChatMessageToolCallStreamDelta(
                index=i,
                id=c.id,
                type="function",
                function=ChatMessageToolCallFunction(
                    name=c.function.name, arguments=json.dumps(c.function.arguments)
                ),
            )
            for i, c in enumerate(message.tool_calls or [])
        ]
        yield ChatMessageStreamDelta(content=message.content or "", token_usage=TokenUsage(7, 0))
        yield ChatMessageStreamDelta(tool_calls=calls, token_usage=TokenUsage(0, 4))


def call(name: str, arguments: dict, call_id: str, usage: tuple[int, int] | None = (10, 5)) -> ChatMessage:
    return ChatMessage(
        role=MessageRole.ASSISTANT,
        content="",
        tool_calls=[
            ChatMessageToolCall(
                ChatMessageToolCallFunction(name=name, arguments=arguments), call_id, "function"
            )
        ],
        token_usage=TokenUsage(*usage) if usage is not None else None,
    )


def answer(text: str, usage: tuple[int, int] | None = (20, 3)) -> ChatMessage:
    return call("final_answer", {"answer": text}, "final", usage)


def code(source: str, usage: tuple[int, int] = (30, 8)) -> ChatMessage:
    return ChatMessage(
        role=MessageRole.ASSISTANT,
        content=f"Thought: go\n<code>\n{source}\n</code>",
        token_usage=TokenUsage(*usage),
    )


@tool
def lookup(q: str) -> str:
    """Look something up.

    Args:
        q: what to look up
    """
    CALLS.append(q)
    return q.upper()


@tool
def flaky(n: int) -> str:
    """Fails for n < 2.

    Args:
        n: a number
    """
    CALLS.append(f"flaky {n}")
    if n < 2:
        raise ValueError(f"{n} is too small")
    return "fine"


@tool
def delete_account(user: str) -> str:
    """Delete an account.

    Args:
        user: whom
    """
    CALLS.append(f"deleted {user}")
    return "deleted"


@pytest.fixture(autouse=True)
def _calls():
    CALLS.clear()
    yield
    CALLS.clear()


def agent(
    model: Model, name: str | None = "smol", tools: list | None = None, **kwargs: Any
) -> ToolCallingAgent:
    return ToolCallingAgent(
        tools=tools if tools is not None else [lookup],
        model=model,
        name=name,
        verbosity_level=LogLevel.OFF,
        **kwargs,
    )


def test_tool_calling_agent_run(telemetry, instrument):
    instrument("smolagents")
    model = ScriptedModel(call("lookup", {"q": "otel"}, "call_1"), answer("OTEL it is"))
    assert agent(model).run("find otel") == "OTEL it is"
    assert CALLS == ["otel"]

    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent smol")
    assert root.parent is None
    assert [s.name for s in children(root, spans)] == ["chat gpt-4o", "execute_tool lookup", "chat gpt-4o"]
    assert steps(root, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]
    tool_span = one(spans, "execute_tool lookup")
    assert tool_span.attributes["gen_ai.tool.call.id"] == "call_1"
    assert tool_span.attributes["agent.tool.args_sha"] == sha({"q": "otel"})
    assert tool_span.attributes["agent.tool.result_sha"] == sha("OTEL")
    assert tool_span.attributes["agent.tool.status"] == "ok"
    first_chat = children(root, spans)[0]
    assert first_chat.attributes["gen_ai.usage.input_tokens"] == 10
    assert first_chat.attributes["gen_ai.usage.output_tokens"] == 5
    assert first_chat.attributes["agent.cost_usd"] == pytest.approx((10 * 2.5 + 5 * 10) / 1e6)
    assert root.attributes["gen_ai.request.model"] == "gpt-4o"
    assert root.attributes["agent.input_sha"] == sha("find otel")
    assert root.attributes["agent.stop_reason"] == "completed"
    assert root.attributes["agent.tool_calls"] == 1
    assert stop_event(root)["agent.stop_reason"] == "completed"

    tool_events = telemetry.events("tool_result")
    assert [(e["tool"], e["step_id"], e["args_sha"], e["result_sha"], e["status"]) for e in tool_events] == [
        ("lookup", 2, sha({"q": "otel"}), sha("OTEL"), "ok")
    ]
    llm_events = telemetry.events("llm_result")
    assert [(e["usage"]["input_tokens"], e["usage"]["output_tokens"]) for e in llm_events] == [
        (10, 5),
        (20, 3),
    ]
    (stop,) = telemetry.events("stop")
    assert stop["stop_reason"] == "completed"
    assert stop["usage"]["tool_calls"] == 1 and stop["usage"]["llm_calls"] == 2
    metrics = telemetry.metrics()
    assert [(p[0]["stop_reason"], p[1].value) for p in metrics["agent.stop"] if p[1].value] == [
        ("completed", 1)
    ]
    assert [(p[0]["tool"], p[0]["status"], p[1].value) for p in metrics["agent.tool.invocations"]] == [
        ("lookup", "ok", 1)
    ]


def test_code_agent_calls_tools_from_its_code(telemetry, instrument):
    instrument("smolagents")
    model = ScriptedModel(code('r = lookup(q="code")\nfinal_answer(r + "!")'))
    result = CodeAgent(tools=[lookup], model=model, name="coder", verbosity_level=LogLevel.OFF).run("go")
    assert result == "CODE!"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent coder")
    assert steps(root, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup")]
    assert one(spans, "execute_tool lookup").attributes["agent.tool.args_sha"] == sha({"q": "code"})
    assert root.attributes["agent.stop_reason"] == "completed"


def test_streamed_run_with_a_streaming_model(telemetry, instrument):
    instrument("smolagents")
    model = StreamingModel(call("lookup", {"q": "s"}, "c1"), answer("streamed"))
    events = list(agent(model, stream_outputs=True).run("go", stream=True))
    assert any(isinstance(e, ChatMessageStreamDelta) for e in events)
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent smol")
    assert steps(root, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]
    assert chat_usage(root, spans) == [(7, 4), (7, 4)]
    assert root.attributes["agent.stop_reason"] == "completed"


def test_consumer_leaving_a_stream_cancels_the_run(telemetry, instrument):
    instrument("smolagents")
    stream = agent(ScriptedModel(call("lookup", {"q": "a"}, "c1"), answer("x"))).run("go", stream=True)
    next(stream)
    stream.close()
    root = one(ours(telemetry.spans()), "invoke_agent smol")
    assert root.attributes["agent.stop_reason"] == "cancelled"


@pytest.mark.parametrize(("max_steps", "reason"), [(5, "completed"), (1, "max_steps")])
@pytest.mark.parametrize("stream_outputs", [False, True])
def test_a_consumer_that_stops_at_the_final_answer_has_not_cancelled_the_run(
    telemetry, instrument, max_steps, reason, stream_outputs
):
    """``for step in agent.run(task, stream=True): if isinstance(step, FinalAnswerStep): break``: the
    ``FinalAnswerStep`` is the last item smolagents' loop yields, after the run is over. The run ended
    ``cancelled`` (the consumer closing the generator); it is ``completed`` (``max_steps`` if smolagents
    reached it and asked the model for the answer), a CodeAgent streaming its model's output too."""
    instrument("smolagents")
    model_class = StreamingModel if stream_outputs else ScriptedModel
    model = model_class(code('lookup(q="a")'), code('final_answer(lookup(q="z"))'))
    coder = CodeAgent(
        tools=[lookup],
        model=model,
        name="coder",
        verbosity_level=LogLevel.OFF,
        stream_outputs=stream_outputs,
        max_steps=max_steps,
    )
    answer = None
    for item in coder.run("go", stream=True):
        if isinstance(item, FinalAnswerStep):
            answer = item.output
            break
    # (past max_steps, the answer is what the model says when smolagents asks it for one)
    assert answer == ("Z" if reason == "completed" else model.script[-1].content)
    root = one(ours(telemetry.spans()), "invoke_agent coder")
    assert root.attributes["agent.stop_reason"] == reason
    assert "error.type" not in root.attributes
    assert [e["stop_reason"] for e in telemetry.events("stop")] == [reason]


def test_tool_error_is_an_observation_and_the_run_goes_on(telemetry, instrument):
    instrument("smolagents")
    model = ScriptedModel(call("flaky", {"n": 1}, "f1"), call("flaky", {"n": 2}, "f2"), answer("ok"))
    assert agent(model, tools=[flaky]).run("go") == "ok"
    spans = ours(telemetry.spans())
    flaky_spans = sorted(by_prefix(spans, "execute_tool flaky"), key=lambda s: s.start_time)
    assert [s.attributes["agent.tool.status"] for s in flaky_spans] == ["error", "ok"]
    assert flaky_spans[0].attributes["error.type"] == "ValueError"
    assert flaky_spans[0].status.status_code.name == "ERROR"
    root = one(spans, "invoke_agent smol")
    assert root.attributes["agent.stop_reason"] == "completed"
    assert [(e["status"], e["error"]) for e in telemetry.events("tool_result")] == [
        ("error", "ValueError"),
        ("ok", None),
    ]


def by_prefix(spans, prefix):
    return [s for s in spans if s.name.startswith(prefix)]


def test_model_error_stops_with_model_error(telemetry, instrument):
    from smolagents.utils import AgentGenerationError

    instrument("smolagents")
    with pytest.raises(AgentGenerationError):
        agent(ScriptedModel(ConnectionError("model down"))).run("go")
    spans = ours(telemetry.spans())
    assert one(spans, "chat gpt-4o").attributes["error.type"] == "ConnectionError"
    root = one(spans, "invoke_agent smol")
    assert root.attributes["agent.stop_reason"] == "model_error"
    assert root.status.status_code.name == "ERROR"


def test_max_steps_stops_with_max_steps(telemetry, instrument):
    instrument("smolagents")
    model = ScriptedModel(
        call("lookup", {"q": "a"}, "c1"), call("lookup", {"q": "b"}, "c2"), answer("gave up")
    )
    result = agent(model, max_steps=2).run("go")
    assert result == ""  # smolagents asks for a final answer; the scripted model answers with a tool call
    root = one(ours(telemetry.spans()), "invoke_agent smol")
    assert root.attributes["agent.stop_reason"] == "max_steps"
    assert root.status.status_code.name == "UNSET"
    # two action steps (a model call and a tool each), then the final-answer model call
    assert root.attributes["agent.tool_calls"] == 2 and root.attributes["agent.steps"] == 5


def test_denied_tool_never_runs_and_stops_the_run(guarded, instrument):
    telemetry = guarded({"policy": {"deny": {"*": ["delete_*"]}}})
    instrument("smolagents")
    model = ScriptedModel(call("delete_account", {"user": "bob"}, "d1"), answer("never"))
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        agent(model, tools=[delete_account]).run("delete bob")
    assert stopped.value.stop_reason == "policy_denied"
    assert CALLS == []
    assert model.calls == 1  # the loop ended right after the denied step: no further model call
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent smol")
    assert root.attributes["agent.stop_reason"] == "policy_denied"
    assert not by_prefix(spans, "execute_tool")


def test_denied_tool_in_code_agent_never_runs(guarded, instrument):
    telemetry = guarded({"policy": {"deny": {"*": ["delete_*"]}}})
    instrument("smolagents")
    model = ScriptedModel(code('delete_account(user="bob")\nfinal_answer("done")'))
    with pytest.raises(agent_otel.AgentStopped):
        CodeAgent(tools=[delete_account], model=model, name="coder", verbosity_level=LogLevel.OFF).run("go")
    assert CALLS == [] and model.calls == 1
    assert (
        one(ours(telemetry.spans()), "invoke_agent coder").attributes["agent.stop_reason"] == "policy_denied"
    )


def test_managed_agent_is_a_sub_agent_of_the_manager(telemetry, instrument):
    instrument("smolagents")
    worker = agent(
        ScriptedModel(call("lookup", {"q": "w"}, "w1"), answer("W")), name="worker", description="works"
    )
    boss_model = ScriptedModel(call("worker", {"task": "do it"}, "b1"), answer("all done"))
    boss = ToolCallingAgent(
        tools=[], model=boss_model, managed_agents=[worker], name="boss", verbosity_level=LogLevel.OFF
    )
    assert boss.run("go") == "all done"
    spans = ours(telemetry.spans())
    boss_span = one(spans, "invoke_agent boss")
    sub = one(spans, "invoke_agent worker")
    assert parent_of(sub, spans) is one(spans, "execute_tool worker")
    assert sub.attributes["agent.parent_run_id"] == boss_span.attributes["agent.run_id"]
    assert steps(sub, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]
    assert steps(boss_span, spans) == [(1, "chat gpt-4o"), (2, "execute_tool worker"), (3, "chat gpt-4o")]


def test_run_inside_a_user_run_joins_it(telemetry, instrument):
    instrument("smolagents")
    with agent_otel.run("outer") as run:
        agent(ScriptedModel(call("lookup", {"q": "a"}, "c1"), answer("ok"))).run("go")
    spans = ours(telemetry.spans())
    assert not by_prefix(spans, "invoke_agent smol")
    assert steps(one(spans, "invoke_agent outer"), spans) == [
        (1, "chat gpt-4o"),
        (2, "execute_tool lookup"),
        (3, "chat gpt-4o"),
    ]
    assert run.result.usage["tool_calls"] == 1


def test_tool_called_outside_a_run_is_untraced(telemetry, instrument):
    instrument("smolagents")
    assert lookup(q="plain") == "PLAIN"
    assert ours(telemetry.spans()) == []


def test_uninstrument_restores_smolagents(telemetry, instrument):
    from smolagents import agents, tools

    before = (agents.MultiStepAgent._run_stream, tools.Tool.__call__, ScriptedModel.generate)
    instrument("smolagents")
    agent(ScriptedModel(answer("x"))).run("go")
    assert ScriptedModel.generate is not before[2]
    assert ours(telemetry.spans())
    agent_otel.integrations.uninstrument(["smolagents"])
    assert (agents.MultiStepAgent._run_stream, tools.Tool.__call__, ScriptedModel.generate) == before
    telemetry.exporter.clear()
    agent(ScriptedModel(answer("x"))).run("go")
    assert ours(telemetry.spans()) == []


@tool
@agent_otel.tool(name="wipe_account", side_effects=True)
def wipe_account(user: str) -> str:
    """Wipe an account.

    Args:
        user: whom
    """
    CALLS.append(f"wiped {user}")
    return "wiped"


class Purge(Tool):
    name = "purge"
    description = "Purge a mailbox."
    inputs = {"user": {"type": "string", "description": "whom"}}
    output_type = "string"

    @agent_otel.tool(name="purge", side_effects=True)
    def forward(self, user: str) -> str:
        CALLS.append(f"purged {user}")
        return "purged"


@pytest.mark.parametrize("write", [wipe_account, Purge()], ids=["tool", "subclass"])
def test_a_write_declared_with_agent_otel_tool_is_blocked_by_the_writes_kill_switch(
    guarded, instrument, monkeypatch, write
):
    """A smolagents ``@tool`` over an ``@agent_otel.tool(side_effects=True)`` function, or a ``Tool``
    subclass whose ``forward`` is one: the integration handed over the ``forward`` it found, the
    ``@agent_otel.tool`` wrapper, not the function declared a write, and the write ran under the kill
    switch. A read goes on; the write never runs and the run ends with ``kill_switch`` (one tool span)."""
    telemetry = guarded({})
    instrument("smolagents")
    monkeypatch.setenv("AGENT_OTEL_KILL_SWITCH", "writes")
    model = ScriptedModel(
        call("lookup", {"q": "bob"}, "c1"), call(write.name, {"user": "bob"}, "c2"), answer("never")
    )
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        agent(model, tools=[lookup, write]).run("wipe bob")
    assert stopped.value.stop_reason == "kill_switch"
    assert CALLS == ["bob"]
    assert [s.name for s in ours(telemetry.spans()) if s.name.startswith("execute_tool")] == [
        "execute_tool lookup"
    ]


def test_an_agent_otel_tool_renamed_is_one_tool_call(telemetry, instrument):
    """``@agent_otel.tool(name="crm.get")`` under smolagents' ``@tool`` (named ``get``): the function did
    not recognise smolagents' call as its own (another name, and smolagents wraps the wrapper): two tool
    spans, one nested in the other, two counted tool calls."""
    instrument("smolagents")

    @tool
    @agent_otel.tool(name="crm.get")
    def get(q: str) -> str:
        """Get a record.

        Args:
            q: which
        """
        CALLS.append(q)
        return q.upper()

    agent(ScriptedModel(call("get", {"q": "otel"}, "c1"), answer("done")), tools=[get]).run("get otel")
    assert CALLS == ["otel"]
    spans = ours(telemetry.spans())
    assert [s.name for s in spans if s.name.startswith("execute_tool")] == ["execute_tool get"]
    assert one(spans, "invoke_agent smol").attributes["agent.tool_calls"] == 1


def test_parallel_tool_calls_each_have_their_call_id(telemetry, instrument):
    """Two tool calls in one model message run in parallel threads; each step has the model's call id
    (smolagents hands a tool its arguments only: the steps had none)."""
    instrument("smolagents")
    both = call("lookup", {"q": "a"}, "c1")
    both.tool_calls.append(
        ChatMessageToolCall(
            ChatMessageToolCallFunction(name="lookup", arguments={"q": "b"}), "c2", "function"
        )
    )
    agent(ScriptedModel(both, answer("done"))).run("find a and b")
    assert sorted(CALLS) == ["a", "b"]
    ids = {
        s.attributes["agent.tool.args_sha"]: s.attributes["gen_ai.tool.call.id"]
        for s in ours(telemetry.spans())
        if s.name == "execute_tool lookup"
    }
    assert ids == {sha({"q": "a"}): "c1", sha({"q": "b"}): "c2"}


def test_a_model_reporting_no_usage_is_unknown_usage_and_a_reported_0_is_0(telemetry, instrument):
    instrument("smolagents")
    model = ScriptedModel(call("lookup", {"q": "u"}, "c1", usage=None), answer("done", usage=(0, 0)))
    assert agent(model).run("go") == "done"
    spans = ours(telemetry.spans())
    assert_unknown_then_zero_usage(telemetry, one(spans, "invoke_agent smol"), spans)


class UsagelessStream(ScriptedModel):
    """Streams deltas without ``token_usage`` (smolagents' own server models do when the API sends none)."""

    def generate_stream(self, messages: Any, **kwargs: Any):
        message = self._next()
        if message.token_usage is not None:
            yield ChatMessageStreamDelta(content="", token_usage=message.token_usage)
        yield ChatMessageStreamDelta(
            tool_calls=[
                ChatMessageToolCallStreamDelta(
                    index=0,
                    id=c.id,
                    type="function",
                    function=ChatMessageToolCallFunction(
                        name=c.function.name, arguments=json.dumps(c.function.arguments)
                    ),
                )
                for c in message.tool_calls or []
            ]
        )


def test_a_stream_reporting_no_usage_is_unknown_usage_and_a_reported_0_is_0(telemetry, instrument):
    instrument("smolagents")
    model = UsagelessStream(call("lookup", {"q": "u"}, "c1", usage=None), answer("done", usage=(0, 0)))
    list(agent(model, stream_outputs=True).run("go", stream=True))
    spans = ours(telemetry.spans())
    assert_unknown_then_zero_usage(telemetry, one(spans, "invoke_agent smol"), spans)
