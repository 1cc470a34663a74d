"""LlamaIndex agents driven by its MockFunctionCallingLLM test double: workflow runs, tool and LLM steps."""

from __future__ import annotations

from collections.abc import Sequence
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

pytest.importorskip("llama_index.core")

from llama_index.core.agent.workflow import AgentStream, AgentWorkflow, FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, LLMMetadata, ToolCallBlock
from llama_index.core.llms.callbacks import llm_chat_callback
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.tools import FunctionTool
from workflows import Context
from workflows.events import HumanResponseEvent, InputRequiredEvent

CALLS: list[str] = []
USAGE = {"prompt_tokens": 10, "completion_tokens": 5}


class ScriptedLLM(MockFunctionCallingLLM):
    """MockFunctionCallingLLM answering with scripted messages, with usage in ``raw`` as OpenAI reports it.

    Its ``achat`` calls ``chat`` (as the mock's does): one request, two LLM spans of LlamaIndex's.
    """

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(is_function_calling_model=True, is_chat_model=True, model_name="gpt-4o")

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        message = self._get_response_generator()(messages, **kwargs)
        return ChatResponse(
            message=message, delta=message.content or "", raw={"model": "gpt-4o-2024-08-06", "usage": USAGE}
        )

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        message = self._get_response_generator()(messages, **kwargs)

        async def gen() -> Any:
            text = message.content or ""
            yield ChatResponse(message=ChatMessage(role="assistant", content=text[:2]), delta=text[:2])
            yield ChatResponse(
                message=message, delta=text[2:], raw={"usage": {"input_tokens": 7, "output_tokens": 4}}
            )

        return gen()


def script(*messages: ChatMessage | Exception) -> ScriptedLLM:
    queue = list(messages)

    def respond(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return ScriptedLLM(response_generator=respond)


def call(name: str, kwargs: dict, call_id: str) -> ChatMessage:
    return ChatMessage(
        role="assistant", blocks=[ToolCallBlock(tool_call_id=call_id, tool_name=name, tool_kwargs=kwargs)]
    )


def text(content: str) -> ChatMessage:
    return ChatMessage(role="assistant", content=content)


def lookup(q: str) -> str:
    """Look something up."""
    CALLS.append(q)
    return q.upper()


def flaky(n: int) -> str:
    """Fails for n < 2."""
    CALLS.append(f"flaky {n}")
    if n < 2:
        raise ValueError(f"{n} is too small")
    return "fine"


def delete_account(user: str) -> str:
    """Delete an account."""
    CALLS.append(f"deleted {user}")
    return "deleted"


@pytest.fixture(autouse=True)
def _calls():
    CALLS.clear()
    yield
    CALLS.clear()


def agent(llm: ScriptedLLM, *tools: Any, name: str = "li-agent", streaming: bool = False) -> FunctionAgent:
    return FunctionAgent(
        name=name,
        llm=llm,
        tools=[FunctionTool.from_defaults(t) for t in tools or (lookup,)],
        streaming=streaming,
    )


async def test_agent_run_with_a_tool_call(telemetry, instrument):
    instrument("llamaindex")
    result = await agent(script(call("lookup", {"q": "otel"}, "call_1"), text("done"))).run(
        user_msg="find otel"
    )
    assert str(result) == "done"
    assert CALLS == ["otel"]

    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent li-agent")
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
    assert chat.attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert chat.attributes["agent.cost_usd"] == pytest.approx((10 * 2.5 + 5 * 10) / 1e6)
    assert root.attributes["agent.input_sha"] == sha("find otel")
    assert root.attributes["agent.stop_reason"] == "completed"
    assert root.attributes["agent.tool_calls"] == 1
    assert stop_event(root)["agent.stop_reason"] == "completed"

    assert [
        (e["tool"], e["step_id"], e["args_sha"], e["result_sha"], e["status"])
        for e in telemetry.events("tool_result")
    ] == [("lookup", 2, sha({"q": "otel"}), sha("OTEL"), "ok")]
    assert [
        (e["usage"]["input_tokens"], e["usage"]["output_tokens"]) for e in telemetry.events("llm_result")
    ] == [
        (10, 5),
        (10, 5),
    ]
    (stop,) = telemetry.events("stop")
    assert stop["stop_reason"] == "completed" and stop["usage"]["llm_calls"] == 2
    metrics = telemetry.metrics()
    assert [(p[0]["stop_reason"], p[1].value) for p in metrics["agent.stop"] if p[1].value] == [
        ("completed", 1)
    ]
    assert [(p[0]["tool"], p[0]["status"], p[1].value) for p in metrics["agent.tool.invocations"]] == [
        ("lookup", "ok", 1)
    ]


async def test_streamed_agent_run(telemetry, instrument):
    instrument("llamaindex")
    handler = agent(script(call("lookup", {"q": "s"}, "c1"), text("streamed")), streaming=True).run(
        user_msg="go"
    )
    deltas = [ev.delta async for ev in handler.stream_events() if isinstance(ev, AgentStream)]
    assert str(await handler) == "streamed"
    assert "st" in deltas
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent li-agent")
    assert steps(root, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]
    assert chat_usage(root, spans) == [(7, 4), (7, 4)]
    assert root.attributes["agent.stop_reason"] == "completed"


def test_sync_llm_calls_inside_a_user_run(telemetry, instrument):
    instrument("llamaindex")
    llm = script(text("hello"))
    with agent_otel.run("sync-user") as run:
        assert llm.chat([ChatMessage(role="user", content="hi")]).message.content == "hello"
        assert llm.complete("hi").text == "hi"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent sync-user")
    assert steps(root, spans) == [(1, "chat gpt-4o"), (2, "chat gpt-4o")]
    assert run.result.usage["input_tokens"] == 10  # the mock's complete() reports no usage


async def test_a_stream_left_early_is_not_a_failed_llm_call(telemetry, instrument):
    # LlamaIndex drops the LLM span of a stream its consumer stopped reading with GeneratorExit.
    instrument("llamaindex")
    llm = script(text("hello world"))
    async with agent_otel.run("skimmer") as run:
        stream = await llm.astream_chat([ChatMessage(role="user", content="hi")])
        async for _ in stream:
            break
        await stream.aclose()
        for _ in llm.stream_chat([ChatMessage(role="user", content="hi")]):
            break
    chats = [s for s in ours(telemetry.spans()) if s.name == "chat gpt-4o"]
    assert [(s.status.status_code.name, s.attributes.get("error.type")) for s in chats] == [
        ("UNSET", None)
    ] * 2
    assert run.result.stop_reason == "completed" and run.result.usage["llm_calls"] == 2


def test_llm_call_outside_any_run_is_not_recorded(telemetry, instrument):
    instrument("llamaindex")
    script(text("hello")).chat([ChatMessage(role="user", content="hi")])
    assert ours(telemetry.spans()) == []


async def test_tool_error_is_an_error_output_and_the_run_goes_on(telemetry, instrument):
    instrument("llamaindex")
    llm = script(call("flaky", {"n": 1}, "f1"), call("flaky", {"n": 2}, "f2"), text("ok"))
    assert str(await agent(llm, flaky).run(user_msg="go")) == "ok"
    spans = ours(telemetry.spans())
    flaky_spans = sorted([s for s in spans if s.name == "execute_tool flaky"], key=lambda s: s.start_time)
    assert [s.attributes["agent.tool.status"] for s in flaky_spans] == ["error", "ok"]
    assert flaky_spans[0].attributes["error.type"] == "ValueError"
    assert one(spans, "invoke_agent li-agent").attributes["agent.stop_reason"] == "completed"


async def test_a_tool_waiting_for_a_human_is_interrupted_then_runs_not_a_failed_call(telemetry, instrument):
    """Human in the loop: a tool that calls ``ctx.wait_for_event()`` raises the workflow's
    ``WaitingForEvent`` until the event arrives; the step worker waits for it and calls the tool again. The
    first call was recorded as a failed tool call (span ERROR, ``error.type=WaitingForEvent``, an error in
    the tool metrics) though nothing failed; it is ``interrupted`` (as a LangGraph ``interrupt()``), the
    call after the human's answer ``ok``, and the run completes."""
    instrument("llamaindex")

    async def close_account(ctx: Context, user: str) -> str:
        """Close an account once a human confirms."""
        answer = await ctx.wait_for_event(
            HumanResponseEvent, waiter_id=user, waiter_event=InputRequiredEvent(prefix=f"close {user}?")
        )
        CALLS.append(f"{user}: {answer.response}")
        return "closed" if answer.response == "yes" else "kept"

    # LlamaIndex finds the context parameter by its annotation, a string under this module's
    # ``from __future__ import annotations``: the class itself, as in a module without it.
    close_account.__annotations__["ctx"] = Context

    handler = FunctionAgent(
        name="closer",
        llm=script(call("close_account", {"user": "bob"}, "call_1"), text("closed it")),
        tools=[FunctionTool.from_defaults(async_fn=close_account)],
    ).run(user_msg="close bob")
    async for event in handler.stream_events():
        if isinstance(event, InputRequiredEvent):
            handler.ctx.send_event(HumanResponseEvent(response="yes"))
    assert str(await handler) == "closed it"
    assert CALLS == ["bob: yes"]

    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent closer")
    assert root.attributes["agent.stop_reason"] == "completed"
    calls = sorted(
        [s for s in spans if s.name == "execute_tool close_account"],
        key=lambda s: s.attributes["agent.step_id"],
    )
    assert [(t.attributes["agent.tool.status"], t.status.status_code.name) for t in calls] == [
        ("interrupted", "UNSET"),
        ("ok", "UNSET"),
    ]
    assert ["error.type" in t.attributes for t in calls] == [False, False]
    assert [e["status"] for e in telemetry.events("tool_result")] == ["interrupted", "ok"]
    statuses = {p[0]["status"] for p in telemetry.metrics()["agent.tool.invocations"] if p[1].value}
    assert "error" not in statuses


async def test_model_error_stops_with_model_error(telemetry, instrument):
    instrument("llamaindex")
    with pytest.raises(ConnectionError):
        await agent(script(ConnectionError("model down"))).run(user_msg="go")
    spans = ours(telemetry.spans())
    assert one(spans, "chat gpt-4o").attributes["error.type"] == "ConnectionError"
    root = one(spans, "invoke_agent li-agent")
    assert root.attributes["agent.stop_reason"] == "model_error"
    assert root.status.status_code.name == "ERROR"


async def test_max_iterations_stops_with_max_steps(telemetry, instrument):
    from workflows.errors import WorkflowRuntimeError

    instrument("llamaindex")
    with pytest.raises(WorkflowRuntimeError, match="Max iterations"):
        await agent(script(call("lookup", {"q": "again"}, "c"))).run(user_msg="go", max_iterations=2)
    root = one(ours(telemetry.spans()), "invoke_agent li-agent")
    assert root.attributes["agent.stop_reason"] == "max_steps"
    assert root.status.status_code.name == "UNSET"


async def test_denied_tool_never_runs_and_stops_the_run(guarded, instrument):
    telemetry = guarded({"policy": {"deny": {"*": ["delete_*"]}}})
    instrument("llamaindex")
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        await agent(script(call("delete_account", {"user": "bob"}, "d1"), text("never")), delete_account).run(
            user_msg="delete bob"
        )
    assert stopped.value.stop_reason == "policy_denied"
    assert CALLS == []
    spans = ours(telemetry.spans())
    assert one(spans, "invoke_agent li-agent").attributes["agent.stop_reason"] == "policy_denied"
    assert not [s for s in spans if s.name.startswith("execute_tool")]


def team(expert_tools: Any, *expert_script: ChatMessage) -> AgentWorkflow:
    """An ``AgentWorkflow`` whose root agent hands off to an expert (the handoff is a tool call too)."""
    router = FunctionAgent(
        name="router",
        description="routes",
        llm=script(call("handoff", {"to_agent": "expert", "reason": "it knows"}, "h1")),
        can_handoff_to=["expert"],
    )
    expert = FunctionAgent(
        name="expert",
        description="knows",
        llm=script(*expert_script),
        tools=[FunctionTool.from_defaults(t) for t in expert_tools],
    )
    return AgentWorkflow(agents=[router, expert], root_agent="router")


async def test_a_multi_agent_workflow_records_its_tool_calls_and_handoffs(telemetry, instrument):
    """``AgentWorkflow`` calls tools itself (its own ``_call_tool``, not its agents'): the handoff and the
    expert's tool are tool steps of the one run, in order."""
    instrument("llamaindex")
    result = await team([lookup], call("lookup", {"q": "otel"}, "c1"), text("done")).run(user_msg="find")
    assert str(result) == "done"
    assert CALLS == ["otel"]
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent router")
    assert steps(root, spans) == [
        (1, "chat gpt-4o"),
        (2, "execute_tool handoff"),
        (3, "chat gpt-4o"),
        (4, "execute_tool lookup"),
        (5, "chat gpt-4o"),
    ]
    assert one(spans, "execute_tool lookup").attributes["gen_ai.tool.call.id"] == "c1"
    assert one(spans, "execute_tool lookup").attributes["agent.tool.result_sha"] == sha("OTEL")
    assert root.attributes["agent.tool_calls"] == 2
    assert root.attributes["agent.stop_reason"] == "completed"


async def test_a_denied_tool_in_a_multi_agent_workflow_never_runs(guarded, instrument):
    telemetry = guarded({"policy": {"deny": {"*": ["delete_*"]}}})
    instrument("llamaindex")
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        await team([delete_account], call("delete_account", {"user": "bob"}, "d1"), text("never")).run(
            user_msg="delete bob"
        )
    assert stopped.value.stop_reason == "policy_denied"
    assert CALLS == []
    assert (
        one(ours(telemetry.spans()), "invoke_agent router").attributes["agent.stop_reason"] == "policy_denied"
    )


async def test_step_budget_stops_the_agent_after_the_request_it_caught(guarded, instrument):
    telemetry = guarded({"budget": {"max_steps": 2}})
    instrument("llamaindex")
    llm = script(call("lookup", {"q": "a"}, "c1"), call("lookup", {"q": "b"}, "c2"), text("never"))
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        await agent(llm).run(user_msg="go")
    assert stopped.value.stop_reason == "max_steps"
    assert CALLS == ["a"]  # the second tool call never ran
    root = one(ours(telemetry.spans()), "invoke_agent li-agent")
    assert root.attributes["agent.stop_reason"] == "max_steps"
    assert root.attributes["agent.steps"] == 2


async def test_run_inside_a_user_run_joins_it(telemetry, instrument):
    instrument("llamaindex")
    async with agent_otel.run("outer") as run:
        await agent(script(call("lookup", {"q": "a"}, "c1"), text("ok"))).run(user_msg="go")
    spans = ours(telemetry.spans())
    assert not [s for s in spans if s.name == "invoke_agent li-agent"]
    assert steps(one(spans, "invoke_agent outer"), spans) == [
        (1, "chat gpt-4o"),
        (2, "execute_tool lookup"),
        (3, "chat gpt-4o"),
    ]
    assert run.result.usage["tool_calls"] == 1


async def test_agent_called_from_a_tool_is_a_sub_agent(telemetry, instrument):
    instrument("llamaindex")
    researcher = agent(script(call("lookup", {"q": "b"}, "c9"), text("found")), name="researcher")

    async def research(topic: str) -> str:
        """Delegate."""
        return str(await researcher.run(user_msg=topic))

    boss = agent(script(call("research", {"topic": "t"}, "r1"), text("all done")), research, name="boss")
    assert str(await boss.run(user_msg="go")) == "all done"
    spans = ours(telemetry.spans())
    boss_span = one(spans, "invoke_agent boss")
    sub = one(spans, "invoke_agent researcher")
    assert parent_of(sub, spans) is one(spans, "execute_tool research")
    assert sub.attributes["agent.parent_run_id"] == boss_span.attributes["agent.run_id"]
    assert steps(sub, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]


async def test_uninstrument_removes_the_handlers(telemetry, instrument):
    from llama_index.core.agent.workflow.base_agent import BaseWorkflowAgent
    from llama_index.core.instrumentation import get_dispatcher

    dispatcher = get_dispatcher()
    before = (list(dispatcher.span_handlers), list(dispatcher.event_handlers), BaseWorkflowAgent._call_tool)
    instrument("llamaindex")
    assert len(dispatcher.span_handlers) == len(before[0]) + 1
    second = agent_otel.integrations._load("llamaindex")
    second.instrument()  # another instance (a second setup()) adds no second pair of handlers
    assert len(dispatcher.span_handlers) == len(before[0]) + 1
    second.uninstrument()
    await agent(script(call("lookup", {"q": "a"}, "c1"), text("ok"))).run(user_msg="go")
    runs = [s for s in ours(telemetry.spans()) if s.name == "invoke_agent li-agent"]
    assert [r.attributes["agent.stop_reason"] for r in runs] == ["completed"]
    telemetry.exporter.clear()
    agent_otel.integrations.uninstrument(["llamaindex"])
    assert (dispatcher.span_handlers, dispatcher.event_handlers, BaseWorkflowAgent._call_tool) == before
    await agent(script(text("x"))).run(user_msg="go")
    assert ours(telemetry.spans()) == []


def test_a_stream_left_unfinished_ends_its_step_with_the_run(telemetry, instrument):
    """``stream_chat()`` read partly and kept: LlamaIndex reports no end until the stream is read on or
    collected, so the chat step ended after its run. It ends with the run, as done; the stream goes on."""
    instrument("llamaindex")
    llm = script(text("hello world"))
    with agent_otel.run("skimmer") as run:
        stream = llm.stream_chat([ChatMessage(role="user", content="hi")])
        next(stream)
    spans = ours(telemetry.spans())
    (chat,) = [s for s in spans if s.name == "chat gpt-4o"]
    assert chat.end_time <= one(spans, "invoke_agent skimmer").end_time
    assert chat.status.status_code.name == "UNSET"
    assert run.result.usage["llm_calls"] == 1
    list(stream)  # reading on to the end works, and records nothing more
    assert len(telemetry.events("llm_result")) == 1


@agent_otel.tool(name="crm.search", retry=agent_otel.Retry(max_attempts=3, base_delay_s=0, jitter="none"))
async def search(q: str) -> str:
    """Search the CRM."""
    CALLS.append(q)
    if len(CALLS) < 2:
        raise ConnectionError("reset")
    return q.upper()


@agent_otel.tool(side_effects=True)
async def wipe_account(user: str) -> str:
    """Wipe an account."""
    CALLS.append(f"wiped {user}")
    return "wiped"


@agent_otel.tool(name="wipe_account", side_effects=True)
def wipe_account_sync(user: str) -> str:
    """Wipe an account."""
    CALLS.append(f"wiped {user}")
    return "wiped"


async def test_an_agent_otel_tool_renamed_and_async_is_one_call_with_its_retry(telemetry, instrument):
    """An async ``@agent_otel.tool(name=..., retry=...)`` as a ``FunctionTool``: LlamaIndex keeps the
    ``@agent_otel.tool`` wrapper, which the function did not recognise as the call the integration opened
    under another name: two tool spans (one nested, without the call id), two counted tool calls."""
    instrument("llamaindex")
    llm = script(call("search", {"q": "otel"}, "call_1"), text("done"))
    assert str(await agent(llm, search).run(user_msg="find otel")) == "done"
    assert CALLS == ["otel", "otel"]  # the function's retry, applied once
    spans = ours(telemetry.spans())
    (tool_span,) = [s for s in spans if s.name.startswith("execute_tool")]
    assert tool_span.name == "execute_tool search" and tool_span.attributes["gen_ai.tool.call.id"] == "call_1"
    assert tool_span.attributes["agent.tool.attempts"] == 2
    assert tool_span.attributes["agent.tool.result_sha"] == sha("OTEL")
    assert one(spans, "invoke_agent li-agent").attributes["agent.tool_calls"] == 1


@pytest.mark.parametrize("write", [wipe_account, wipe_account_sync], ids=["async", "sync"])
async def test_an_async_write_declared_with_agent_otel_tool_is_blocked_by_the_writes_kill_switch(
    guarded, instrument, monkeypatch, write
):
    """An async ``@agent_otel.tool(side_effects=True)`` function as a ``FunctionTool``: its ``fn`` is
    LlamaIndex's sync wrapper, which the integration handed over, and the write ran under the kill switch."""
    telemetry = guarded({})
    instrument("llamaindex")
    monkeypatch.setenv("AGENT_OTEL_KILL_SWITCH", "writes")
    llm = script(
        call("lookup", {"q": "bob"}, "c1"), call(write.__name__, {"user": "bob"}, "c2"), text("never")
    )
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        await agent(llm, lookup, write).run(user_msg="wipe bob")
    assert stopped.value.stop_reason == "kill_switch"
    assert CALLS == ["bob"]
    assert [s.name for s in ours(telemetry.spans()) if s.name.startswith("execute_tool")] == [
        "execute_tool lookup"
    ]


#: The ``raw`` of each response of :class:`ReportedUsageLLM`, in turn.
RAWS: list[dict[str, Any]] = []


class ReportedUsageLLM(ScriptedLLM):
    """Answers with the ``raw`` of :data:`RAWS` in turn."""

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        message = self._get_response_generator()(messages, **kwargs)
        return ChatResponse(message=message, delta=message.content or "", raw=RAWS.pop(0))


async def test_a_response_without_usage_is_unknown_usage_and_a_reported_0_is_0(telemetry, instrument):
    instrument("llamaindex")
    RAWS[:] = [{"model": "gpt-4o"}, {"usage": {"prompt_tokens": 0, "completion_tokens": 0}}]
    queue = [call("lookup", {"q": "u"}, "c1"), text("done")]
    llm = ReportedUsageLLM(response_generator=lambda messages, **kwargs: queue.pop(0))
    assert str(await agent(llm).run(user_msg="go")) == "done"
    spans = ours(telemetry.spans())
    assert_unknown_then_zero_usage(telemetry, one(spans, "invoke_agent li-agent"), spans)
