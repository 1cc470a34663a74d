"""An ``@agent_otel.tool`` function that takes a framework's context: the real classes of each framework.

The context is the framework's, not the model's: it is left out of the call's arguments (``args_sha``, the
raw arguments with ``store_args``, what guards compare), and still reaches the function. Without it, two
calls with the same arguments in two turns hashed apart (the loop guard never saw a repeat, a replay
matched nothing) and ``store_args`` stored the context's dependencies. Strands, Google ADK and AutoGen
are checked in their own environments (tests/envs).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest

import agent_otel
from agent_otel import conventions as c
from agent_otel.hashing import sha

pydantic_ai = pytest.importorskip("pydantic_ai")

from agent_framework import FunctionInvocationContext  # noqa: E402
from agents import RunContextWrapper  # noqa: E402
from agents.tool_context import ToolContext  # noqa: E402
from langchain.tools import ToolRuntime  # noqa: E402
from langchain_core.callbacks import CallbackManagerForToolRun  # noqa: E402
from langchain_core.runnables import RunnableConfig  # noqa: E402
from langchain_core.tools import InjectedToolCallId  # noqa: E402
from langgraph.prebuilt import InjectedState  # noqa: E402
from llama_index.core.workflow import Context as WorkflowContext  # noqa: E402
from mcp.server.mcpserver import Context as MCPContext  # noqa: E402
from pydantic_ai import Agent, RunContext  # noqa: E402
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart  # noqa: E402
from pydantic_ai.models.function import AgentInfo, FunctionModel  # noqa: E402

from agent_otel.stop import AgentStopped  # noqa: E402
from tests.integrations.conftest import assert_context_left_out  # noqa: E402

# One tool per framework, its context parameter annotated as that framework's documentation shows.


@agent_otel.tool(name="pydantic_ai")
def with_run_context(ctx: RunContext[dict], q: str) -> str:
    return f"{q}:{ctx.n}"


@agent_otel.tool(name="openai_agents")
async def with_wrapper(wrapper: RunContextWrapper[Any], q: str) -> str:
    return f"{q}:{wrapper.n}"


@agent_otel.tool(name="openai_agents_tool_context")
def with_agents_tool_context(ctx: ToolContext[Any], q: str) -> str:
    return f"{q}:{ctx.n}"


@agent_otel.tool(name="langchain_runtime")
def with_runtime(q: str, runtime: ToolRuntime) -> str:
    return f"{q}:{runtime.n}"


@agent_otel.tool(name="langchain_injected")
def with_injected(
    q: str, call_id: Annotated[str, InjectedToolCallId], state: Annotated[dict, InjectedState]
) -> str:
    assert call_id is state
    return f"{q}:{state.n}"


@agent_otel.tool(name="langchain_config")
def with_config(q: str, config: RunnableConfig, run_manager: CallbackManagerForToolRun | None = None) -> str:
    return f"{q}:{config.n}"


@agent_otel.tool(name="llamaindex")
async def with_workflow_context(ctx: WorkflowContext, q: str) -> str:
    return f"{q}:{ctx.n}"


@agent_otel.tool(name="mcp_server")
async def with_mcp_context(q: str, ctx: MCPContext) -> str:
    return f"{q}:{ctx.n}"


@agent_otel.tool(name="agent_framework")
def with_invocation_context(q: str, context: FunctionInvocationContext) -> str:
    return f"{q}:{context.n}"


# How each framework calls its tool: the context first, or by keyword after the model's arguments.
TOOLS = [
    (with_run_context, lambda s: with_run_context(s, "x")),
    (with_wrapper, lambda s: with_wrapper(s, "x")),
    (with_agents_tool_context, lambda s: with_agents_tool_context(s, "x")),
    (with_runtime, lambda s: with_runtime(q="x", runtime=s)),
    (with_injected, lambda s: with_injected("x", s, state=s)),
    (with_config, lambda s: with_config(q="x", config=s)),
    (with_workflow_context, lambda s: with_workflow_context(s, "x")),
    (with_mcp_context, lambda s: with_mcp_context(q="x", ctx=s)),
    (with_invocation_context, lambda s: with_invocation_context(q="x", context=s)),
]


@pytest.mark.parametrize(("tool", "call"), TOOLS, ids=[t.__agent_otel_tool__.name for t, _ in TOOLS])
def test_a_frameworks_context_is_not_one_of_the_tools_arguments(telemetry, tool, call):
    assert_context_left_out(telemetry, call)


def _looping_agent(calls: int) -> tuple[Agent, list[str]]:
    """A PydanticAI agent whose model asks for the same lookup ``calls`` times, then answers."""
    answers = [
        ModelResponse(parts=[ToolCallPart("lookup", {"q": "order 42"}, f"c{i}")]) for i in range(calls)
    ]
    answers.append(ModelResponse(parts=[TextPart("done")]))

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return answers.pop(0)

    agent = Agent(FunctionModel(model), deps_type=dict)
    ran: list[str] = []

    @agent.tool
    @agent_otel.tool(name="lookup")
    def lookup(ctx: RunContext[dict], q: str) -> str:
        """Look an order up."""
        ran.append(q)
        return f"{q}: shipped ({len(ctx.messages)} messages so far)"

    return agent, ran


def test_a_pydantic_ai_tool_called_again_with_the_same_arguments_is_a_repeat_for_the_loop_guard(telemetry):
    """Each turn's RunContext holds more messages: hashed as an argument, no call ever repeated another,
    and the default loop guard let a run that asks for the same lookup forever go on."""
    agent, ran = _looping_agent(calls=6)
    with pytest.raises(AgentStopped) as stopped, agent_otel.run("support"):
        agent.run_sync("where is order 42?", deps={"api_key": "k"})
    assert stopped.value.stop_reason.value == "loop_detected"
    assert ran == ["order 42"] * 3  # the fourth identical call was stopped before it ran
    events = telemetry.events("tool_result")
    assert {e["args_sha"] for e in events} == {sha({"q": "order 42"})}


def test_store_args_records_the_models_arguments_not_the_contexts_dependencies(configured):
    telemetry = configured(
        {"logging": {"events": {"store_args": True}}, "guards": {"loop": {"enabled": False}}}
    )
    agent, ran = _looping_agent(calls=2)
    secret = "hunter2-not-a-key-pattern"
    with agent_otel.run("support"):
        agent.run_sync(
            "where is order 42?", deps={"password_hint": secret, "api": "sk-live-0123456789abcdef"}
        )
    assert ran == ["order 42"] * 2
    events = telemetry.events("tool_result") or telemetry.events("tool_call")
    assert events and all(e["args"] == {"q": "order 42"} for e in events), events
    dumped = json.dumps(telemetry.sink.records, default=str)
    assert secret not in dumped and "alice@example.com" not in dumped and "RunContext" not in dumped


@agent_otel.agent(name="node")
def graph_node(state: dict, config: RunnableConfig) -> dict:
    return {"seen": config["configurable"]["thread_id"]}


def test_an_agent_functions_input_leaves_the_frameworks_context_out(telemetry):
    """``@agent_otel.agent`` on a LangGraph node: the run's input is the state, not the node's config
    (whose thread id and callbacks differ per call)."""
    assert graph_node({"q": 1}, {"configurable": {"thread_id": "t1"}}) == {"seen": "t1"}
    assert graph_node(state={"q": 1}, config={"configurable": {"thread_id": "t2"}}) == {"seen": "t2"}
    runs = [s for s in telemetry.spans() if s.name == "invoke_agent node"]
    assert [s.attributes[c.INPUT_SHA] for s in runs] == [sha({"q": 1})] * 2
