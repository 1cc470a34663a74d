"""LangChain runnables at their edges, inside an agent-otel run: streams read partly, retries, fallbacks,
batches with errors. Driven by LangChain's GenericFakeChatModel and a chat model that fails on demand."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import agent_otel
from tests.integrations.conftest import one, ours

pytest.importorskip("langchain_core")

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool as lc_tool


class Flaky(BaseChatModel):
    """Fails its first ``fails`` calls with ConnectionError, then answers (3 tokens in, 1 out)."""

    fails: int = 1
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "flaky"

    def _generate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        self.calls += 1
        if self.calls <= self.fails:
            raise ConnectionError("upstream reset")
        usage = {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4}
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="ok", usage_metadata=usage))])


def chats(telemetry) -> list[tuple[str, str | None]]:
    """(status, error.type) of each chat span, in step order."""
    found = [s for s in ours(telemetry.spans()) if s.attributes.get("gen_ai.operation.name") == "chat"]
    found.sort(key=lambda s: s.attributes["agent.step_id"])
    return [(s.status.status_code.name, s.attributes.get("error.type")) for s in found]


def test_stream_left_early_is_not_a_failed_model_call(telemetry, instrument):
    # LangChain reports a stream its consumer stopped reading (GeneratorExit) through on_llm_error.
    instrument("langchain")
    model = GenericFakeChatModel(messages=iter([AIMessage(content="one two three four")]))
    with agent_otel.run("skimmer") as run:
        for _ in model.stream("hi"):
            break
    assert chats(telemetry) == [("UNSET", None)]
    assert run.result.stop_reason == "completed" and run.result.usage["llm_calls"] == 1


async def test_async_stream_closed_early_is_not_a_failed_model_call(telemetry, instrument):
    instrument("langchain")
    model = GenericFakeChatModel(messages=iter([AIMessage(content="one two three four")]))
    async with agent_otel.run("skimmer") as run:
        stream = model.astream("hi")
        await anext(stream)
        await stream.aclose()
    assert chats(telemetry) == [("UNSET", None)]
    assert run.result.stop_reason == "completed"


def test_with_retry_records_each_attempt_and_the_run_completes(telemetry, instrument):
    instrument("langchain")
    model = Flaky(fails=2).with_retry(stop_after_attempt=3, wait_exponential_jitter=False)
    with agent_otel.run("persistent") as run:
        assert model.invoke("hi").content == "ok"
    assert chats(telemetry) == [("ERROR", "ConnectionError"), ("ERROR", "ConnectionError"), ("UNSET", None)]
    assert run.result.stop_reason == "completed"
    assert run.result.usage["llm_calls"] == 3 and run.result.usage["input_tokens"] == 3


def test_fallbacks_and_batch_errors_returned_leave_the_run_completed(telemetry, instrument):
    instrument("langchain")
    fallback = GenericFakeChatModel(messages=iter([AIMessage(content="plan b")]))
    with agent_otel.run("resilient") as run:
        assert Flaky(fails=5).with_fallbacks([fallback]).invoke("hi").content == "plan b"
        out = Flaky(fails=1).batch(["a", "b"], return_exceptions=True, config={"max_concurrency": 1})
    assert isinstance(out[0], ConnectionError) and out[1].content == "ok"
    assert chats(telemetry) == [
        ("ERROR", "ConnectionError"),
        ("UNSET", None),
        ("ERROR", "ConnectionError"),
        ("UNSET", None),
    ]
    assert run.result.stop_reason == "completed"


def test_retries_outside_agent_otel_are_retries_not_loop_repeats(telemetry, instrument):
    # A failing tool retried by LangChain with the same arguments is called again each time: a call made
    # again after it failed is a retry, not a repeat, so every attempt runs (the loop guard stopped the
    # 4th) and the last error ends the run. agent-otel's own retry (`retry=`) is one step with retry
    # events.
    instrument("langchain")
    attempts: list[str] = []

    @lc_tool
    def fetch(url: str) -> str:
        """Fetch a page."""
        attempts.append(url)
        raise ConnectionError("reset")

    retried = fetch.with_retry(stop_after_attempt=5, wait_exponential_jitter=False)
    with pytest.raises(ConnectionError), agent_otel.run("fetcher") as run:
        retried.invoke({"url": "http://a"})
    assert len(attempts) == 5 and run.result.stop_reason == "tool_error"

    calls = {"n": 0}

    @agent_otel.tool(retry=agent_otel.Retry(max_attempts=5, base_delay_s=0, jitter="none"))
    def fetch_with_retry(url: str) -> str:
        calls["n"] += 1
        if calls["n"] < 5:
            raise ConnectionError("reset")
        return "page"

    with agent_otel.run("fetcher") as run:
        assert fetch_with_retry("http://a") == "page"
    assert calls["n"] == 5 and run.result.stop_reason == "completed"


def test_a_stream_left_unfinished_ends_its_step_with_the_run(telemetry, instrument):
    """``model.stream()`` read partly and kept: LangChain reports neither end nor error until the stream
    is read on or collected, so the chat step ended after its run (a child span ending after its
    parent). It ends with the run, as done; the stream still reads to its end."""
    instrument("langchain")
    model = GenericFakeChatModel(messages=iter([AIMessage(content="one two three four")]))
    with agent_otel.run("skimmer") as run:
        stream = model.stream("hi")
        assert next(stream).content == "one"
    spans = ours(telemetry.spans())
    (chat,) = [s for s in spans if s.attributes.get("gen_ai.operation.name") == "chat"]
    assert chat.end_time <= one(spans, "invoke_agent skimmer").end_time
    assert chat.status.status_code.name == "UNSET"
    assert run.result.usage["llm_calls"] == 1
    assert "".join(chunk.content for chunk in stream) == " two three four"  # the stream goes on
    assert len(telemetry.events("llm_result")) == 1


def test_a_write_declared_with_agent_otel_tool_is_blocked_by_the_writes_kill_switch(
    guarded, instrument, monkeypatch
):
    """A LangChain tool made from an ``@agent_otel.tool(side_effects=True)`` function: the integration
    opens the step without knowing it writes. Under the ``writes`` kill switch it ran all the same."""
    telemetry = guarded({})
    instrument("langchain")
    monkeypatch.setenv("AGENT_OTEL_KILL_SWITCH", "writes")
    ran = []

    @agent_otel.tool(name="delete_user", side_effects=True)
    def delete_user(user: str) -> str:
        """Delete an account."""
        ran.append(user)
        return "deleted"

    @agent_otel.tool(name="find_user")
    def find_user(user: str) -> str:
        """Find an account."""
        ran.append("find " + user)
        return user

    with pytest.raises(agent_otel.AgentStopped), agent_otel.run("support") as run:
        lc_tool(find_user).invoke({"user": "bob"})
        lc_tool(delete_user).invoke({"user": "bob"})
    assert ran == ["find bob"] and run.result.stop_reason == "kill_switch"
    (tool_span,) = [s for s in ours(telemetry.spans()) if s.name == "execute_tool find_user"]
    assert tool_span.attributes.get("agent.tool.side_effects") is None


def test_a_tool_whose_function_cannot_be_hashed_is_traced_once_a_write_is_declared(telemetry, instrument):
    """A dataclass with ``__call__`` (``eq=True`` makes it unhashable) as a LangChain tool's function:
    once any ``side_effects=True`` tool was declared, looking it up among the writes raised TypeError,
    and the call ran untraced (reported as an agent-otel internal error)."""
    from dataclasses import dataclass

    from langchain_core.tools import StructuredTool
    from pydantic import BaseModel

    instrument("langchain")

    @agent_otel.tool(name="send", side_effects=True)  # a write is declared somewhere
    def send(to: str) -> str:
        return to

    @dataclass
    class Lookup:
        prefix: str

        def __call__(self, q: str) -> str:
            return self.prefix + q

    class Args(BaseModel):
        q: str

    lookup = StructuredTool(name="lookup", description="Look up.", args_schema=Args, func=Lookup("doc:"))
    with agent_otel.run("support"):
        assert lookup.invoke({"q": "x"}) == "doc:x"
        send("a")
    assert [s.name for s in ours(telemetry.spans()) if s.name.startswith("execute_tool")] == [
        "execute_tool lookup",
        "execute_tool send",
    ]


def test_retry_and_timeout_of_an_agent_otel_tool_apply_once_when_langchain_calls_it(telemetry, instrument):
    """A LangChain tool made from ``@agent_otel.tool(retry=..., timeout_s=...)`` (renamed or not): the
    integration opens the call, the function claims it (one span), and ran bare: no retry (one attempt,
    the run ended with ``tool_error``) and no deadline. Both apply once, inside the one step, as they do
    without LangChain."""
    instrument("langchain")
    attempts: list[str] = []

    @agent_otel.tool(name="web.fetch", retry=agent_otel.Retry(max_attempts=5, base_delay_s=0, jitter="none"))
    def fetch(url: str) -> str:
        """Fetch a page."""
        attempts.append(url)
        if len(attempts) < 3:
            raise ConnectionError("reset")
        return "page"

    call = {"type": "tool_call", "id": "call_1", "name": "fetch", "args": {"url": "http://a"}}
    with agent_otel.run("fetcher") as run:
        assert lc_tool(fetch).invoke(call).content == "page"
    assert len(attempts) == 3 and run.result.stop_reason == "completed"
    assert run.result.usage["tool_calls"] == 1
    (span,) = [s for s in ours(telemetry.spans()) if s.name == "execute_tool fetch"]
    assert span.attributes["gen_ai.tool.call.id"] == "call_1" and span.attributes["agent.tool.attempts"] == 3
    assert [e.name for e in span.events].count("agent.tool.retry") == 2

    release = threading.Event()

    @agent_otel.tool(name="hang", timeout_s=0.2)
    def hang(q: str) -> str:
        """Never answers in time."""
        release.wait(10)
        return q

    try:
        with pytest.raises(agent_otel.ToolTimeout), agent_otel.run("hanger") as run:
            lc_tool(hang).invoke({**call, "name": "hang", "args": {"q": "x"}})
    finally:
        release.set()
    assert run.result.stop_reason == "tool_timeout"
    assert len([s for s in ours(telemetry.spans()) if s.name == "execute_tool hang"]) == 1


def test_the_readme_recipe_keeps_with_retry_from_retrying_agent_stopped(guarded):
    """README "Guards" > "Retry libraries": ``with_retry(retry_if_exception_type=<predicate>)`` lets
    AgentStopped through on its first raise (by default it retries every Exception, waiting between)."""
    import time

    from langchain_core.runnables import RunnableLambda

    from tests.test_guards import Tools, assert_one_stop, retried_agent

    t, tools = guarded({}), Tools()

    def decorate(fn: Any) -> Any:
        runnable = RunnableLambda(lambda a: fn(*a)).with_retry(
            retry_if_exception_type=lambda e: not isinstance(e, agent_otel.AgentStopped),
            stop_after_attempt=4,
            exponential_jitter_params={"initial": 5},
        )
        return lambda *a: runnable.invoke(a)

    started = time.monotonic()
    run, entered, raised = retried_agent(t, tools, decorate)
    assert time.monotonic() - started < 4  # no wait of 5 s: nothing was retried
    assert entered == ["a", "b"] and isinstance(raised, agent_otel.AgentStopped)
    assert_one_stop(t, run, tools)


def test_a_client_request_after_a_stream_left_unfinished_is_a_step_of_its_own(
    telemetry, instrument, fake_api
):
    """LangChain's chat model call marks the caller's context as "in a framework's LLM call", so that the
    client request underneath is not a second step; a stream read partly and kept never said its end, so
    the mark stayed in the caller's context: the agent's next request with the OpenAI client, in the same
    run, was taken for the stream's and recorded nowhere (no step, no usage, no spend)."""
    from tests.integrations.conftest import Reply
    from tests.integrations.test_openai_client import client, completion

    instrument("langchain", "openai")
    fake_api.reply(Reply(completion(100, 20)))
    model = GenericFakeChatModel(messages=iter([AIMessage(content="one two three four")]))
    with agent_otel.run("skimmer") as run:
        stream = model.stream("hi")
        assert next(stream).content == "one"
        client(fake_api).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert (run.result.usage["llm_calls"], run.result.usage["input_tokens"]) == (2, 100)
    chats = [s for s in ours(telemetry.spans()) if s.attributes.get("gen_ai.operation.name") == "chat"]
    assert sorted(
        s.attributes.get("gen_ai.usage.input_tokens") for s in chats if s.name == "chat gpt-4o"
    ) == [100]
    assert len(telemetry.events("llm_result")) == 2
