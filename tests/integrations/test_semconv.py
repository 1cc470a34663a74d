"""Every ``gen_ai.*`` key agent-otel emits is in the GenAI registry, and Required ones are always there.

Each scenario runs one integration for real (its framework with its own test model, or a client against a
fake API on 127.0.0.1) and collects what agent-otel produced: the attributes of its spans (and of the
library spans it adopted as request spans), its span events and its metric points. Then:

* every ``gen_ai.*`` key among them is defined in the registry (tests/data/semconv, a copy of
  semantic-conventions-genai) and not deprecated;
* every span has the attributes ``spans.yaml`` makes Required for its kind (``chat`` ->
  ``gen_ai.inference.client``, ``invoke_agent`` -> ``gen_ai.invoke_agent.internal``, ``execute_tool`` ->
  ``gen_ai.execute_tool.internal``), and the Conditionally Required ones whose condition the scenario
  meets (a conversation id, a model, an error);
* the GenAI client metrics have their Required attributes.
"""

from __future__ import annotations

import asyncio
import filecmp
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

import agent_otel
from tests import semconv
from tests.integrations.conftest import Reply

SPAN_TYPES = {
    "chat": "gen_ai.inference.client",
    "invoke_agent": "gen_ai.invoke_agent.internal",
    "execute_tool": "gen_ai.execute_tool.internal",
}


@dataclass
class Emitted:
    """What one scenario made agent-otel emit; ``where`` says where each gen_ai key was seen."""

    spans: list[Any] = field(default_factory=list)
    where: dict[str, set[str]] = field(default_factory=dict)

    def saw(self, key: str, where: str) -> None:
        if key.startswith("gen_ai."):
            self.where.setdefault(key, set()).add(where)


def collect(telemetry: Any) -> Emitted:
    out = Emitted()
    for span in telemetry.spans():
        scope = span.instrumentation_scope.name if span.instrumentation_scope else ""
        attributes = span.attributes or {}
        if scope == "agent_otel":
            out.spans.append(span)
            for key in attributes:
                out.saw(key, f"span {span.name}")
            for event in span.events:
                for key in event.attributes or {}:
                    out.saw(key, f"event {event.name}")
        elif "agent.step_id" in attributes or "agent.run_id" in attributes:
            # A library's own span agent-otel adopted: the keys agent-otel added to it are its own.
            out.spans.append(span)
            for key in ("gen_ai.agent.name", "gen_ai.conversation.id"):
                if key in attributes:
                    out.saw(key, f"adopted span {span.name}")
    for name, points in telemetry.metrics().items():
        for attributes, _ in points:
            for key in attributes:
                out.saw(key, f"metric {name}")
        if name.startswith("gen_ai."):
            spec = semconv.metric(name)
            must = {k for k, level in spec["levels"].items() if level == "required"}
            for attributes, _ in points:
                if (
                    name == "gen_ai.client.operation.duration"
                    and attributes.get("gen_ai.operation.name") == "execute_tool"
                ):
                    must = must - {"gen_ai.provider.name"}  # required only for calls to a provider
                assert must <= set(attributes), (name, must - set(attributes))
    return out


def check(emitted: Emitted, *, conversation: str | None = None, errors: bool = False) -> None:
    assert emitted.spans, "the scenario emitted nothing"
    for key, where in sorted(emitted.where.items()):
        assert key in semconv.registry(), f"{key} (on {sorted(where)}) is not in the GenAI registry"
        assert not semconv.deprecated(key), f"{key} is deprecated"
    kinds: set[str] = set()
    for span in emitted.spans:
        attributes = span.attributes or {}
        operation = attributes.get("gen_ai.operation.name")
        span_type = SPAN_TYPES.get(operation)
        if span_type is None:
            continue
        kinds.add(operation)
        missing = semconv.required(span_type) - set(attributes)
        assert not missing, f"{span.name}: Required {sorted(missing)} missing"
        conditional = semconv.conditionally_required(span_type)
        if conversation is not None and "gen_ai.conversation.id" in conditional:
            assert attributes.get("gen_ai.conversation.id") == conversation, span.name
        if "gen_ai.request.model" in conditional and operation == "chat":
            assert attributes.get("gen_ai.request.model"), span.name
        if operation == "invoke_agent":
            assert attributes.get("gen_ai.agent.name") and attributes.get("gen_ai.request.model"), span.name
        if span.status.status_code.name == "ERROR":
            assert attributes.get("error.type"), f"{span.name}: error without error.type"
        if span.instrumentation_scope.name != "agent_otel":
            continue  # an adopted library span: its kind is the library's (an MCP server span is SERVER)
        if operation == "chat":
            assert span.kind.name == "CLIENT", span.name
        else:
            assert span.kind.name == "INTERNAL", span.name
    assert kinds == set(SPAN_TYPES), f"the scenario should produce every span kind, got {kinds}"
    if errors:
        assert any(s.status.status_code.name == "ERROR" for s in emitted.spans)


# --- scenarios -------------------------------------------------------------------------------------------


def manual(telemetry: Any, instrument: Callable[..., Any], fake_api: Any) -> dict[str, Any]:
    @agent_otel.tool
    def lookup(q: str) -> str:
        """Look something up."""
        return q.upper()

    @agent_otel.tool
    def broken() -> None:
        raise ValueError("no")

    with agent_otel.run("manual", conversation_id="conv-m") as run:
        run.record_llm(model="gpt-4o", input_tokens=10, output_tokens=2)
        lookup("x")
        with pytest.raises(ValueError):
            broken()
    return {"conversation": "conv-m", "errors": True}


def openai_client(telemetry: Any, instrument: Callable[..., Any], fake_api: Any) -> dict[str, Any]:
    import openai

    from tests.integrations.test_openai_client import completion

    instrument("openai")
    fake_api.reply(Reply(completion(10, 2)))
    fake_api.reply(Reply({"error": {"message": "busy", "type": "server_error"}}, status=500))
    oai = openai.OpenAI(base_url=fake_api.base_url + "/v1", api_key="k", max_retries=0)

    @agent_otel.tool
    def lookup(q: str) -> str:
        return q

    with pytest.raises(openai.InternalServerError), agent_otel.run("oai", conversation_id="conv-o"):
        oai.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], temperature=0.2, seed=7
        )
        lookup("x")
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "again"}])
    return {"conversation": "conv-o", "errors": True}


def anthropic_client(native: bool) -> Callable[..., dict[str, Any]]:
    def scenario(telemetry: Any, instrument: Callable[..., Any], fake_api: Any) -> dict[str, Any]:
        import anthropic

        from tests.integrations.test_anthropic_client import MODEL, message

        instrument("anthropic")
        fake_api.reply(Reply(message(10, 5)))
        options = {} if native else {"open_telemetry": False}
        client = anthropic.Anthropic(base_url=fake_api.base_url, api_key="k", max_retries=0, **options)

        @agent_otel.tool
        def lookup(q: str) -> str:
            return q

        with agent_otel.run("claude", conversation_id="conv-a"):
            client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}])
            lookup("q")
        return {"conversation": "conv-a"}

    return scenario


def langgraph(telemetry: Any, instrument: Callable[..., Any], fake_api: Any) -> dict[str, Any]:
    from langgraph.checkpoint.memory import InMemorySaver

    from tests.integrations.test_langgraph import ai, fake, lookup

    instrument("langchain", "langgraph")
    model = fake(ai(calls=[("lookup", {"q": "otel"}, "call_1")]), ai("done"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langgraph.prebuilt import create_react_agent

        agent = create_react_agent(model, [lookup], checkpointer=InMemorySaver(), name="graph")
    agent.invoke({"messages": [("user", "find")]}, {"configurable": {"thread_id": "conv-g"}})
    return {"conversation": "conv-g"}


def agents_sdk(telemetry: Any, instrument: Callable[..., Any], fake_api: Any) -> dict[str, Any]:
    from agents import Runner, SQLiteSession, set_trace_processors

    from tests.integrations.test_openai_agents import triage_and_specialist

    set_trace_processors([])
    instrument("openai_agents")
    Runner.run_sync(triage_and_specialist(), "help", session=SQLiteSession("conv-s"))
    return {"conversation": "conv-s"}


def pydantic_ai(telemetry: Any, instrument: Callable[..., Any], fake_api: Any) -> dict[str, Any]:
    from tests.integrations.test_pydantic_ai import agent_with_lookup, script, text, tool_call

    instrument("pydantic_ai")
    agent = agent_with_lookup(script(tool_call("lookup", {"q": "x"}, "c1"), text("done")), "pyd")
    agent.run_sync("go", conversation_id="conv-p")
    return {"conversation": "conv-p"}


def mcp(telemetry: Any, instrument: Callable[..., Any], fake_api: Any) -> dict[str, Any]:
    from mcp import Client

    from tests.integrations.test_mcp import make_server

    instrument("mcp")

    async def main() -> None:
        async with (
            Client(make_server()) as client,
            agent_otel.run("mcp-agent", conversation_id="conv-c") as run,
        ):
            run.record_llm(model="claude-sonnet-4-20250514", input_tokens=3, output_tokens=1)
            await client.call_tool("search", {"query": "q"})
            await client.call_tool("explode", {"reason": "r"})

    asyncio.run(main())
    return {"conversation": "conv-c", "errors": True}


def google_genai(telemetry: Any, instrument: Callable[..., Any], fake_api: Any) -> dict[str, Any]:
    from google.genai import errors, types

    from tests.integrations.test_google_genai import MODEL, answer, client, function_call, get_weather, usage

    instrument("google_genai")
    fake_api.reply(
        Reply(function_call("get_weather", {"city": "Paris"}, "fc-1")),
        Reply(answer(meta=usage(30, 5, cached=10, thoughts=2))),
        Reply({"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}, status=400),
    )
    gemini = client(fake_api)
    config = types.GenerateContentConfig(tools=[get_weather], temperature=0.1, max_output_tokens=64)
    with pytest.raises(errors.ClientError), agent_otel.run("gemini", conversation_id="conv-gg"):
        gemini.models.generate_content(model=MODEL, contents="weather?", config=config)
        gemini.models.generate_content(model=MODEL, contents="again")
    return {"conversation": "conv-gg", "errors": True}


def litellm_scenario(telemetry: Any, instrument: Callable[..., Any], fake_api: Any) -> dict[str, Any]:
    import litellm

    from tests.integrations.test_litellm import chat_completion

    instrument("litellm", "openai")
    fake_api.reply(Reply(chat_completion("gpt-4o-mini", 10, 3, cached=4, tool_call="call_1")))

    @agent_otel.tool
    def lookup(q: str) -> str:
        return q

    with agent_otel.run("lite", conversation_id="conv-l"):
        litellm.completion(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": "x"}],
            api_base=fake_api.base_url,
            api_key="k",
            temperature=0.3,
        )
        lookup("x")
    return {"conversation": "conv-l"}


def bedrock_scenario(telemetry: Any, instrument: Callable[..., Any], fake_api: Any) -> dict[str, Any]:
    from botocore.stub import Stubber

    from tests.integrations.test_bedrock import MESSAGES, NOVA, bedrock, converse_response

    instrument("bedrock")
    client = bedrock()

    @agent_otel.tool
    def lookup(q: str) -> str:
        return q

    with Stubber(client) as stub, agent_otel.run("nova", conversation_id="conv-b"):
        stub.add_response("converse", converse_response(10, 2, cache_read=5))
        client.converse(modelId=NOVA, messages=MESSAGES, inferenceConfig={"maxTokens": 32})
        lookup("x")
    return {"conversation": "conv-b"}


def smolagents(telemetry: Any, instrument: Callable[..., Any], fake_api: Any) -> dict[str, Any]:
    from tests.integrations.test_smolagents import ScriptedModel, agent, answer, call

    instrument("smolagents")
    agent(ScriptedModel(call("lookup", {"q": "x"}, "c1"), answer("done"))).run("go")
    return {}


def llamaindex(telemetry: Any, instrument: Callable[..., Any], fake_api: Any) -> dict[str, Any]:
    from tests.integrations.test_llamaindex import agent, call, script, text

    instrument("llamaindex")

    async def main() -> None:
        await agent(script(call("lookup", {"q": "x"}, "c1"), text("done"))).run(user_msg="go")

    asyncio.run(main())
    return {}


def claude_agent_sdk(telemetry: Any, instrument: Callable[..., Any], fake_api: Any) -> dict[str, Any]:
    import tempfile
    from pathlib import Path

    from claude_agent_sdk import query

    from tests.integrations.test_claude_agent_sdk import CLI, final_turn, tool_turn

    instrument("claude_agent_sdk")
    with tempfile.TemporaryDirectory() as tmp:
        options = CLI(Path(tmp)).options({"turns": [tool_turn("Bash", {"command": "ls"}, "a"), final_turn()]})

        async def main() -> None:
            async for _ in query(prompt="go", options=options):
                pass

        asyncio.run(main())
    return {"conversation": "session-1"}


SCENARIOS = {
    "manual": manual,
    "openai": openai_client,
    "anthropic-native": anthropic_client(native=True),
    "anthropic-off": anthropic_client(native=False),
    "langgraph": langgraph,
    "openai_agents": agents_sdk,
    "pydantic_ai": pydantic_ai,
    "mcp": mcp,
    "google_genai": google_genai,
    "litellm": litellm_scenario,
    "bedrock": bedrock_scenario,
    "smolagents": smolagents,
    "llamaindex": llamaindex,
    "claude_agent_sdk": claude_agent_sdk,
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_gen_ai_key_is_in_the_registry_and_required_ones_are_present(
    name, telemetry, instrument, fake_api
):
    expectations = SCENARIOS[name](telemetry, instrument, fake_api)
    check(collect(telemetry), **expectations)


def test_the_test_copy_of_the_registry_is_the_shared_one():
    if not semconv.SHARED.is_dir():
        pytest.skip(f"{semconv.SHARED} is not next to this repository; the copy in tests/data is used")
    for name in ("registry.yaml", "spans.yaml", "metrics.yaml"):
        assert filecmp.cmp(semconv.DATA / "gen-ai" / name, semconv.SHARED / "gen-ai" / name, shallow=False)


def test_conventions_define_no_deprecated_or_unknown_gen_ai_name():
    from agent_otel import conventions as c

    names = [v for k, v in vars(c).items() if k.startswith("GEN_AI_") and isinstance(v, str)]
    assert len(names) > 20
    for name in names:
        assert name in semconv.registry() and not semconv.deprecated(name), name
    for spec in (c.M_GEN_AI_TOKEN_USAGE, c.M_GEN_AI_OPERATION_DURATION):
        defined = semconv.metric(spec.name)
        assert (defined["unit"], defined["instrument"]) == (spec.unit, spec.kind)
