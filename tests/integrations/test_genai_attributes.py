"""The GenAI attributes each integration records where the data exists: provider, request parameters,
response id / model / finish reasons, the tool calls the model asked for, the conversation, the active
agent and handoffs, tool descriptions and types."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pytest

import agent_otel
from tests.integrations.conftest import Reply, by_name, one, ours, request_span

# --- OpenAI client ---------------------------------------------------------------------------------------


def test_openai_chat_completion_request_and_response_attributes(telemetry, instrument, fake_api):
    openai = pytest.importorskip("openai")
    from tests.integrations.test_openai_client import completion

    instrument("openai")
    body = completion(30, 7)
    body["choices"][0]["message"]["tool_calls"] = [
        {"id": "call_a", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}
    ]
    body["choices"][0]["finish_reason"] = "tool_calls"
    fake_api.reply(Reply(body))
    client = openai.OpenAI(base_url=fake_api.base_url + "/v1", api_key="k", max_retries=0)
    with agent_otel.run("oai-agent", conversation_id="conv-1") as run:
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            temperature=0.3,
            max_tokens=50,
            top_p=0.9,
            seed=4,
            stop=["END"],
            response_format={"type": "json_object"},
        )
    chat = request_span(telemetry.spans(), run.run_id)
    a = chat.attributes
    assert chat.kind.name == "CLIENT" and chat.name == "chat gpt-4o"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.temperature"] == 0.3 and a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.request.top_p"] == 0.9 and a["gen_ai.request.seed"] == 4
    assert a["gen_ai.request.stop_sequences"] == ("END",)
    assert a["gen_ai.output.type"] == "json"
    assert a["gen_ai.response.id"] == "chatcmpl-1"
    assert a["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert a["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert a["agent.llm.tool_call_ids"] == ("call_a",)
    assert a["gen_ai.conversation.id"] == "conv-1"
    assert a["gen_ai.agent.name"] == "oai-agent"
    assert a["server.address"] == "127.0.0.1" and isinstance(a["server.port"], int)
    assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a  # content is opt-in


def test_openai_streamed_chat_completion_has_its_response_details(telemetry, instrument, fake_api):
    openai = pytest.importorskip("openai")
    from tests.integrations.test_openai_client import chunk

    instrument("openai")
    fake_api.reply(
        Reply(
            stream=[
                (None, chunk({"role": "assistant", "content": ""})),
                (None, chunk({"tool_calls": [{"index": 0, "id": "call_s", "function": {"name": "f"}}]})),
                (None, chunk({}, finish="tool_calls")),
                (None, chunk({}, usage={"prompt_tokens": 9, "completion_tokens": 3}, choices=False)),
                (None, "[DONE]"),
            ]
        )
    )
    client = openai.OpenAI(base_url=fake_api.base_url + "/v1", api_key="k", max_retries=0)
    with agent_otel.run("streamer") as run:
        stream = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        list(stream)
    a = request_span(telemetry.spans(), run.run_id).attributes
    assert a["gen_ai.request.stream"] is True
    assert a["gen_ai.response.id"] == "chatcmpl-2"
    assert a["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert a["agent.llm.tool_call_ids"] == ("call_s",)
    assert a["gen_ai.usage.input_tokens"] == 9


# --- LangChain / LangGraph -------------------------------------------------------------------------------


def test_langchain_chat_model_provider_parameters_and_response(telemetry, instrument):
    pytest.importorskip("langgraph")
    from langchain_core.messages import AIMessage

    from tests.integrations.test_langgraph import ToolCallingFake

    class FakeOpenAI(ToolCallingFake):
        """Says it is an OpenAI chat model, as ChatOpenAI does (ls_provider)."""

        temperature: float = 0.1
        max_tokens: int = 64

        def _get_ls_params(self, stop: Any = None, **kwargs: Any) -> Any:
            params = super()._get_ls_params(stop=stop, **kwargs)
            params["ls_provider"] = "openai"
            return params

        @property
        def _identifying_params(self) -> dict[str, Any]:
            return {"model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens}

    reply = AIMessage(
        content="",
        tool_calls=[{"name": "lookup", "args": {"q": "x"}, "id": "call_lc", "type": "tool_call"}],
        usage_metadata={"input_tokens": 5, "output_tokens": 2, "total_tokens": 7},
        response_metadata={
            "model_name": "gpt-4o-mini-2024-07-18",
            "id": "chatcmpl-lc",
            "finish_reason": "tool_calls",
        },
    )
    model = FakeOpenAI(messages=iter([reply]))
    with agent_otel.run("lc", conversation_id="t-9") as run:
        instrument("langchain")
        model.invoke("hello")
    a = request_span(telemetry.spans(), run.run_id).attributes
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.temperature"] == 0.1 and a["gen_ai.request.max_tokens"] == 64
    assert a["gen_ai.response.id"] == "chatcmpl-lc"
    assert a["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert a["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert a["agent.llm.tool_call_ids"] == ("call_lc",)
    assert a["gen_ai.conversation.id"] == "t-9"


def test_langgraph_thread_is_the_conversation_and_tools_have_description_and_type(telemetry, instrument):
    pytest.importorskip("langgraph")
    from langgraph.checkpoint.memory import InMemorySaver

    from tests.integrations.test_langgraph import ai, fake, lookup, react

    instrument("langchain", "langgraph")
    agent = react(
        fake(ai(calls=[("lookup", {"q": "x"}, "call_1")]), ai("done")),
        [lookup],
        name="threaded",
        checkpointer=InMemorySaver(),
    )
    agent.invoke({"messages": [("user", "x")]}, {"configurable": {"thread_id": "thread-42"}})
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent threaded")
    assert root.attributes["gen_ai.conversation.id"] == "thread-42"
    tool = one(spans, "execute_tool lookup")
    assert tool.attributes["gen_ai.tool.description"] == "Look something up."
    assert tool.attributes["gen_ai.tool.type"] == "function"
    assert tool.attributes["gen_ai.tool.call.id"] == "call_1"
    for span in spans:
        assert span.attributes.get("gen_ai.conversation.id") in ("thread-42", None)
    assert all(
        s.attributes["gen_ai.conversation.id"] == "thread-42" for s in spans if s.name.startswith("chat")
    )


# --- OpenAI Agents SDK -----------------------------------------------------------------------------------


@pytest.fixture
def agents_sdk():
    pytest.importorskip("agents")
    from agents import set_trace_processors

    set_trace_processors([])
    yield


def test_agents_sdk_handoff_event_and_the_active_agent_on_its_chat_spans(telemetry, instrument, agents_sdk):
    from agents import ModelSettings, Runner

    from tests.integrations.test_openai_agents import triage_and_specialist

    instrument("openai_agents")
    triage = triage_and_specialist(model_settings=ModelSettings(temperature=0.0, max_tokens=128, top_p=0.5))
    assert Runner.run_sync(triage, "help", conversation_id="conv_abc").final_output == "ok"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent triage")
    assert root.attributes["gen_ai.conversation.id"] == "conv_abc"
    (event,) = [e for e in root.events if e.name == "agent.handoff"]
    assert dict(event.attributes) == {
        "from_agent": "triage",
        "to_agent": "specialist",
        "gen_ai.tool.call.id": "h1",
    }
    chats = sorted(
        [s for s in spans if s.name.startswith("chat ")], key=lambda s: s.attributes["agent.step_id"]
    )
    assert [s.attributes["gen_ai.agent.name"] for s in chats] == ["triage", "specialist", "specialist"]
    first, second, _ = (s.attributes for s in chats)
    assert first["agent.llm.tool_call_ids"] == ("h1",) and first["gen_ai.response.finish_reasons"] == (
        "tool_calls",
    )
    assert "gen_ai.request.temperature" not in first
    assert second["gen_ai.request.temperature"] == 0.0 and second["gen_ai.request.max_tokens"] == 128
    assert second["gen_ai.request.top_p"] == 0.5
    assert all(s.attributes["gen_ai.provider.name"] == "openai" for s in chats)
    tool = one(spans, "execute_tool lookup")
    assert tool.attributes["gen_ai.tool.description"] == "Look something up."
    assert tool.attributes["gen_ai.tool.type"] == "function"


def test_agents_sdk_session_is_the_conversation(telemetry, instrument, agents_sdk):
    from agents import Agent, Runner, SQLiteSession
    from agents.testing import assistant_message

    from tests.integrations.test_openai_agents import Scripted, step

    instrument("openai_agents")
    session = SQLiteSession("session-7")
    agent = Agent(
        name="remembers", model=Scripted([step(assistant_message("a")), step(assistant_message("b"))])
    )

    async def two_turns() -> None:
        await Runner.run(agent, "first", session=session)
        result = Runner.run_streamed(agent, "second", session=session)
        async for _ in result.stream_events():
            pass

    asyncio.run(two_turns())
    runs = [s for s in ours(telemetry.spans()) if s.name == "invoke_agent remembers"]
    assert [s.attributes["gen_ai.conversation.id"] for s in runs] == ["session-7", "session-7"]


def test_agents_sdk_real_openai_model_gets_the_responding_model_and_response_id(
    telemetry, instrument, fake_api, agents_sdk
):
    from agents import Agent, OpenAIResponsesModel, Runner
    from openai import AsyncOpenAI

    from tests.integrations.test_openai_agents import lookup, responses_body

    instrument("openai_agents", "openai")
    call = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_9",
        "name": "lookup",
        "arguments": '{"q": "x"}',
        "status": "completed",
    }
    fake_api.reply(Reply(responses_body("resp_9", call)))
    fake_api.reply(Reply({"error": {"message": "stop here", "type": "server_error"}}, status=500))
    client = AsyncOpenAI(base_url=fake_api.base_url + "/v1", api_key="k", max_retries=0)
    agent = Agent(
        name="real", model=OpenAIResponsesModel(model="gpt-4o", openai_client=client), tools=[lookup]
    )
    from openai import InternalServerError

    with pytest.raises(InternalServerError):  # the second model call fails: this test reads the first
        Runner.run_sync(agent, "hello")
    chats = sorted(
        [s for s in ours(telemetry.spans()) if s.name == "chat gpt-4o"],
        key=lambda s: s.attributes["agent.step_id"],
    )
    a = chats[0].attributes
    assert a["gen_ai.response.model"] == "gpt-4o-2024-08-06"  # from the API's answer, via the openai client
    assert a["gen_ai.response.id"] == "resp_9"
    assert a["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert a["agent.llm.tool_call_ids"] == ("call_9",)
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.usage.input_tokens"] == 11  # counted once: the client request added no second span
    with_usage = [s for s in telemetry.spans() if "gen_ai.usage.input_tokens" in s.attributes]
    # The failed second request reported no usage: unknown, so no gen_ai.usage.* (not 0 tokens).
    assert len(chats) == 2 and "gen_ai.usage.input_tokens" not in chats[1].attributes
    assert [s.context.span_id for s in with_usage] == [chats[0].context.span_id]


# --- PydanticAI ------------------------------------------------------------------------------------------


def test_pydantic_ai_conversation_provider_settings_and_response(telemetry, instrument):
    pytest.importorskip("pydantic_ai")
    from tests.integrations.test_pydantic_ai import agent_with_lookup, script, text, tool_call

    instrument("pydantic_ai")
    agent = agent_with_lookup(script(tool_call("lookup", {"q": "x"}, "call_p"), text("done")), "pyd")
    first = agent.run_sync(
        "go", conversation_id="conv-p", model_settings={"temperature": 0.7, "max_tokens": 99}
    )
    agent.run_sync("again", message_history=first.all_messages())
    spans = ours(telemetry.spans())
    runs = sorted([s for s in spans if s.name == "invoke_agent pyd"], key=lambda s: s.start_time)
    # The second run continues the conversation its message history carries.
    assert [r.attributes["gen_ai.conversation.id"] for r in runs] == ["conv-p", "conv-p"]
    chat = next(s for s in spans if s.name == "chat gpt-4o" and s.attributes["agent.step_id"] == 1)
    a = chat.attributes
    assert a["gen_ai.provider.name"] == "function"  # FunctionModel.system: PydanticAI's own test double
    assert a["gen_ai.request.temperature"] == 0.7 and a["gen_ai.request.max_tokens"] == 99
    assert a["agent.llm.tool_call_ids"] == ("call_p",)
    tool = one(spans, "execute_tool lookup")
    assert tool.attributes["gen_ai.tool.description"] == "Look something up."


def test_pydantic_ai_instrumented_counts_each_request_once(telemetry, instrument):
    """With PydanticAI's own instrumentation on, its agent span is the run's span and its chat span the
    request's span (agent_otel.bridge): one run, usage once."""
    pytest.importorskip("pydantic_ai")
    from pydantic_ai import Agent

    from tests.integrations.test_pydantic_ai import script, text, tool_call

    instrument("pydantic_ai")
    agent = Agent(script(tool_call("lookup", {"q": "x"}, "c1"), text("done")), name="instrumented")
    agent.instrument = True

    @agent.tool_plain
    def lookup(q: str) -> str:
        """Look something up."""
        return q

    agent.run_sync("go")
    spans = telemetry.spans()
    assert by_name(ours(spans), "invoke_agent instrumented") == []  # no second run span
    root = one(spans, "invoke_agent instrumented")
    assert root.instrumentation_scope.name == "pydantic-ai"
    run_id = root.attributes["agent.run_id"]
    assert root.attributes["agent.stop_reason"] == "completed"
    # One tool step: agent-otel's tool span (the integration's hook) under PydanticAI's, one step id.
    tools = [s for s in spans if s.name == "execute_tool lookup"]
    assert {s.attributes["agent.step_id"] for s in tools} == {2} and len(tools) == 2
    requests = [
        s
        for s in spans
        if s.attributes.get("agent.run_id") == run_id and s.attributes.get("gen_ai.operation.name") == "chat"
    ]
    assert len(requests) == 2
    assert all(s.instrumentation_scope.name == "pydantic-ai" for s in requests)  # PydanticAI's, adopted
    assert sorted(s.attributes["agent.step_id"] for s in requests) == [1, 3]
    with_usage = [s for s in spans if "gen_ai.usage.input_tokens" in (s.attributes or {})]
    assert sorted(s.context.span_id for s in with_usage) == sorted(s.context.span_id for s in requests)
    assert root.attributes["agent.usage.input_tokens"] == 30  # the run's totals are still agent-otel's
    # PydanticAI records the GenAI client metrics for the requests it traces; agent-otel does not again.
    ours_metrics = [
        p
        for p, _ in telemetry.metrics().get("gen_ai.client.token.usage", [])
        if p.get("gen_ai.agent.name") == "instrumented"
    ]
    assert ours_metrics == []


# --- MCP -------------------------------------------------------------------------------------------------


async def test_mcp_tools_are_extensions_and_the_in_process_server_span_joins_the_step(telemetry, instrument):
    pytest.importorskip("mcp")
    from mcp import Client

    from tests.integrations.test_mcp import make_server

    instrument("mcp")
    async with Client(make_server()) as client, agent_otel.run("mcp-agent", conversation_id="c-m") as run:
        await client.call_tool("search", {"query": "q"})
    spans = telemetry.spans()
    tool = one(ours(spans), "execute_tool search")
    assert tool.attributes["gen_ai.tool.type"] == "extension"
    # The MCP server's own execute_tool span (same process) carries the step it belongs to.
    (server,) = [s for s in spans if s.name == "tools/call search"]
    assert server.attributes["agent.run_id"] == run.run_id
    assert server.attributes["agent.step_id"] == tool.attributes["agent.step_id"]
    assert server.attributes["gen_ai.conversation.id"] == "c-m"


def test_a_graph_used_in_a_manual_run_gets_its_conversation(telemetry, instrument):
    pytest.importorskip("langgraph")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
    from tests.integrations.test_langgraph_interrupt import approval_graph, config

    instrument("langchain", "langgraph")
    graph = approval_graph("g")
    with agent_otel.run("app", conversation_id="mine") as run:
        graph.invoke({"request": "x"}, config("theirs"))
    assert run.conversation_id == "mine"  # the user's own id wins over the graph's thread
