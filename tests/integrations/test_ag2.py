"""AG2 (PyPI ``ag2``, ``import ag2``) through the GenAI span bridge, with AG2's own tracing on the way AG2
documents it (``TelemetryMiddleware`` in the agent's middleware) and its model client the real OpenAI SDK
(``OpenAIConfig``) against a fake OpenAI API on 127.0.0.1: AG2's ``invoke_agent`` span is the run, its
``execute_tool`` spans the tool steps and its ``chat`` spans the LLM steps (with the ``openai`` integration
on too, each request is still one step with its usage once). The tests that instrument only ``openai`` (or
nothing) are the bridge alone, as with ``setup(instrument=[...])`` leaving ``ag2`` out: there guards
observe. The last part instruments ``ag2`` (on by default under ``setup()``): agent-otel's middleware in
every AG2 turn, so guards stop a tool before it runs and a request before it is sent, and a replay serves
AG2's tools."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

import agent_otel
from agent_otel.hashing import sha
from agent_otel.pricing import PriceTable
from tests.integrations import sample_tools
from tests.integrations.conftest import Reply, ours, steps, stop_event
from tests.integrations.openai_replies import (
    answer,
    completion,
    streamed_answer,
    streamed_tool_call,
    tool_call,
)
from tests.integrations.sample_tools import SENT, broken, fresh_sent, lookup  # noqa: F401
from tests.replay.conftest import rig  # noqa: F401
from tests.replay.test_agent_frameworks import assert_served

pytest.importorskip("ag2")

from ag2 import Agent
from ag2.config import OpenAIConfig
from ag2.middleware import TelemetryMiddleware
from opentelemetry.trace import StatusCode

SCOPE = "opentelemetry.instrumentation.ag2"  # AG2's tracer


@pytest.fixture(autouse=True)
async def _http() -> Any:
    """One HTTP client for the test's OpenAI clients, closed while its event loop runs (AG2 makes an
    ``AsyncOpenAI`` per turn and leaves it to the garbage collector, which would close its own client
    after pytest closed the loop: an asyncio error logged in the next test)."""
    HTTP.append(httpx2.AsyncClient())
    yield
    await HTTP.pop().aclose()


HTTP: list[Any] = []


def config(fake_api: Any) -> OpenAIConfig:
    return OpenAIConfig(
        model="gpt-4o",
        base_url=fake_api.base_url + "/v1",
        api_key="test",
        max_retries=0,
        http_client=HTTP[-1],
    )


def make_agent(fake_api: Any, name: str = "helper", tools: Any = (lookup, broken), **kwargs: Any) -> Agent:
    return Agent(
        name,
        config=config(fake_api),
        tools=list(tools),
        middleware=[TelemetryMiddleware(agent_name=name, model_name="gpt-4o")],
        **kwargs,
    )


def ag2_spans(spans: list[Any], prefix: str) -> list[Any]:
    return [s for s in spans if s.name.startswith(prefix) and s.instrumentation_scope.name == SCOPE]


def runs(spans: list[Any]) -> list[Any]:
    return [s for s in spans if "agent.stop_reason" in (s.attributes or {})]


@pytest.mark.parametrize("client", ["openai", None])
async def test_a_run_with_a_tool_call(telemetry, instrument, fake_api, client):
    """One run per ``ask``, a step per request and per tool; usage once, with or without the ``openai``
    integration (which then records the request on AG2's ``chat`` span instead of a second one)."""
    if client:
        instrument(client)
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    reply = await make_agent(fake_api).ask("hi")
    assert reply.body == "done" and SENT == {"lookup": 1}
    spans = telemetry.spans()
    (root,) = ag2_spans(spans, "invoke_agent helper")  # AG2's span is the run: no second one
    assert ours(spans) == []  # agent-otel opened no span of its own
    assert steps(root, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]
    tool = ag2_spans(spans, "execute_tool lookup")[0]
    assert tool.attributes["agent.tool.status"] == "ok"
    assert tool.attributes["gen_ai.tool.call.id"] == "call_1"
    # AG2's TelemetryMiddleware captures content by default: the arguments and result are on its span,
    # so the step has their hashes (and loop detection can compare calls).
    assert tool.attributes["agent.tool.args_sha"] == sha({"q": "otel"})
    assert tool.attributes["agent.tool.result_sha"] == sha("OTEL")
    assert root.attributes["agent.stop_reason"] == "completed"
    assert root.status.status_code is StatusCode.OK
    usage = (root.attributes["agent.usage.input_tokens"], root.attributes["agent.usage.output_tokens"])
    assert usage == (51, 11)  # 30+21 in, 7+4 out: each request once
    assert root.attributes["agent.cost_usd"] > 0
    chats = ag2_spans(spans, "chat")
    assert [(s.attributes["gen_ai.usage.input_tokens"], s.attributes["agent.step_id"]) for s in chats] == [
        (30, 1),
        (21, 3),
    ]
    assert stop_event(root)["agent.stop_reason"] == "completed"
    assert [(e["kind"], e["step_id"], e["tool"]) for e in telemetry.events()] == [
        ("llm_result", 1, None),
        ("tool_result", 2, "lookup"),
        ("llm_result", 3, None),
        ("stop", None, None),
    ]
    # AG2 also records each request's usage on a `record_usage model_call` span of its own (its eval reads
    # them back): left as AG2 made it, not a step, not counted again.
    accounting = ag2_spans(spans, "record_usage model_call")
    assert [s.attributes["gen_ai.usage.input_tokens"] for s in accounting] == [30, 21]
    assert all("agent.step_id" not in s.attributes for s in accounting)
    metrics = telemetry.metrics()
    assert [(a["agent"], a["stop_reason"], p.value) for a, p in metrics["agent.stop"] if p.value] == [
        ("helper", "completed", 1)
    ]
    assert [(a["tool"], a["status"], p.value) for a, p in metrics["agent.tool.invocations"]] == [
        ("lookup", "ok", 1)
    ]


@pytest.mark.parametrize("integration", [False, True], ids=["bridge-only", "ag2"])
async def test_without_content_capture_a_tool_step_has_hashes_only_with_the_integration(
    telemetry, instrument, fake_api, integration
):
    """AG2's span has no arguments or result without its content capture: the bridge alone then has
    nothing to hash; the ``ag2`` integration's middleware sees both, whatever AG2 captures."""
    if integration:
        instrument("ag2")
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    agent = Agent(
        "helper",
        config=config(fake_api),
        tools=[lookup],
        middleware=[TelemetryMiddleware(agent_name="helper", capture_content=False)],
    )
    assert (await agent.ask("hi")).body == "done"
    (tool,) = ag2_spans(telemetry.spans(), "execute_tool lookup")
    assert "gen_ai.tool.call.arguments" not in tool.attributes  # AG2 captured nothing
    assert tool.attributes["agent.tool.status"] == "ok"
    (event,) = telemetry.events("tool_result")
    hashes = (sha({"q": "otel"}), sha("OTEL")) if integration else (None, None)
    assert (event["args_sha"], event["result_sha"]) == hashes
    assert (
        tool.attributes.get("agent.tool.args_sha"),
        tool.attributes.get("agent.tool.result_sha"),
    ) == hashes


async def test_a_tool_error_is_a_failed_step_and_the_agent_goes_on(telemetry, instrument, fake_api):
    instrument("openai")
    fake_api.reply(tool_call("broken", {"q": "x"}), answer("sorry"))
    reply = await make_agent(fake_api).ask("hi")
    assert reply.body == "sorry" and SENT == {"broken": 1}  # AG2 told the model, which answered
    spans = telemetry.spans()
    (root,) = ag2_spans(spans, "invoke_agent helper")
    (tool,) = ag2_spans(spans, "execute_tool broken")
    assert tool.status.status_code is StatusCode.ERROR
    assert (tool.attributes["agent.tool.status"], tool.attributes["error.type"]) == ("error", "RuntimeError")
    assert "agent.tool.result_sha" not in tool.attributes
    assert root.attributes["agent.stop_reason"] == "completed"
    (event,) = telemetry.events("tool_result")
    assert (event["status"], event["error"]) == ("error", "RuntimeError")
    metrics = telemetry.metrics()
    assert [(a["tool"], a["status"], p.value) for a, p in metrics["agent.tool.invocations"]] == [
        ("broken", "error", 1)
    ]


@pytest.mark.parametrize("client", ["openai", None])
async def test_a_model_error_ends_the_run_with_model_error(telemetry, instrument, fake_api, client):
    if client:
        instrument(client)
    fake_api.reply(Reply({"error": {"message": "overloaded", "type": "server_error"}}, status=500))
    with pytest.raises(Exception) as raised:
        await make_agent(fake_api).ask("hi")
    assert type(raised.value).__name__ == "InternalServerError"  # the OpenAI SDK's own error, unchanged
    assert type(raised.value).__module__.startswith("openai")
    spans = telemetry.spans()
    (root,) = ag2_spans(spans, "invoke_agent helper")
    (chat,) = ag2_spans(spans, "chat")
    assert chat.attributes["agent.step_id"] == 1 and chat.status.status_code is StatusCode.ERROR
    assert root.attributes["agent.stop_reason"] == "model_error"
    assert root.attributes["error.type"] == "InternalServerError"
    assert root.status.status_code is StatusCode.ERROR
    (llm,) = telemetry.events("llm_result")
    assert (llm["status"], llm["error"]) == ("error", "InternalServerError")
    (stop,) = telemetry.events("stop")
    assert (stop["stop_reason"], stop["status"]) == ("model_error", "failure")


async def test_a_tool_guard_only_observes(guarded, instrument, fake_api):
    """The bridge alone (no ``ag2`` integration) has no hook before a tool: a policy that denies it is
    recorded, and the tool runs."""
    telemetry = guarded({"policy": {"deny": {"*": ["lookup"]}}})
    instrument("openai")
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    reply = await make_agent(fake_api).ask("hi")
    assert reply.body == "done" and SENT == {"lookup": 1}
    (root,) = ag2_spans(telemetry.spans(), "invoke_agent helper")
    assert root.attributes["agent.stop_reason"] == "completed"
    (guard,) = [dict(e.attributes) for e in root.events if e.name == "agent.guard"]
    assert (guard["guard"], guard["enforced"], guard["would_stop"]) == ("policy", False, "policy_denied")
    assert guard["tool"] == "lookup"


async def test_a_step_budget_only_observes_even_over_an_instrumented_client(guarded, instrument, fake_api):
    telemetry = guarded({"budget": {"max_steps": 2}})
    instrument("openai")
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    reply = await make_agent(fake_api).ask("hi")
    assert reply.body == "done" and len(fake_api.requests) == 2
    (root,) = ag2_spans(telemetry.spans(), "invoke_agent helper")
    assert root.attributes["agent.stop_reason"] == "completed"
    (guard,) = [dict(e.attributes) for e in root.events if e.name == "agent.guard"]
    assert (guard["guard"], guard["enforced"], guard["would_stop"]) == ("max_steps", False, "max_steps")


async def test_an_agent_inside_a_user_run_is_part_of_it(telemetry, instrument, fake_api):
    instrument("openai")
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    with agent_otel.run("outer") as run:
        reply = await make_agent(fake_api).ask("hi")
    assert reply.body == "done"
    spans = telemetry.spans()
    (outer,) = ours(spans)
    assert outer.name == "invoke_agent outer" and len(runs(spans)) == 1
    (inner,) = ag2_spans(spans, "invoke_agent helper")
    assert inner.parent.span_id == outer.context.span_id
    assert steps(outer, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]
    assert run.result.stop_reason == "completed"
    assert run.result.usage["tool_calls"] == 1 and run.result.usage["llm_calls"] == 2
    assert (run.result.usage["input_tokens"], run.result.usage["output_tokens"]) == (51, 11)


async def test_in_a_user_run_a_denied_tool_stops_the_run_at_the_next_request(guarded, instrument, fake_api):
    """The bridge alone: in your own run guards enforce, but AG2 runs a tool once its span started: the run
    stops there (policy_denied) and the stop reaches your code from the next OpenAI request, not sent."""
    telemetry = guarded({"policy": {"deny": {"*": ["lookup"]}}})
    instrument("openai")
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        with agent_otel.run("outer"):
            await make_agent(fake_api).ask("hi")
    assert stopped.value.result.stop_reason == "policy_denied"
    assert SENT == {"lookup": 1} and len(fake_api.requests) == 1
    (outer,) = ours(telemetry.spans())
    (guard,) = [dict(e.attributes) for e in outer.events if e.name == "agent.guard"]
    assert (guard["guard"], guard["enforced"]) == ("policy", True)


async def test_in_a_user_run_without_a_client_integration_nothing_can_stop_ag2(guarded, fake_api):
    """The bridge alone, without the ``openai`` integration, no step of AG2's can raise: the run ends
    ``policy_denied`` at the denied tool, and AG2 finishes its turn and returns its reply as it would
    without agent-otel (its second request is made, and is not a step of the stopped run)."""
    telemetry = guarded({"policy": {"deny": {"*": ["lookup"]}}})
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    with agent_otel.run("outer") as run:
        reply = await make_agent(fake_api).ask("hi")
    assert reply.body == "done" and SENT == {"lookup": 1} and len(fake_api.requests) == 2
    assert run.result.stop_reason == "policy_denied"
    (outer,) = ours(telemetry.spans())
    assert outer.attributes["agent.stop_reason"] == "policy_denied"


async def test_an_agent_used_as_a_tool_is_a_sub_agent(telemetry, instrument, fake_api):
    """``Agent.as_tool()``: AG2 runs the worker inside the coordinator's ``execute_tool`` span; the worker's
    run is a sub-agent of the coordinator's (``agent.parent_run_id``), each run counting its own requests."""
    instrument("openai")
    worker = make_agent(fake_api, "worker", tools=[lookup])
    boss = make_agent(fake_api, "boss", tools=[worker.as_tool(description="Delegate a task")])
    fake_api.reply(
        tool_call("task_worker", {"objective": "find otel"}, "call_boss"),
        tool_call("lookup", {"q": "otel"}, "call_worker"),
        answer("OTEL found"),
        answer("done"),
    )
    reply = await boss.ask("hi")
    assert reply.body == "done" and SENT == {"lookup": 1}
    spans = telemetry.spans()
    (boss_run,) = ag2_spans(spans, "invoke_agent boss")
    (worker_run,) = ag2_spans(spans, "invoke_agent worker")
    (delegation,) = ag2_spans(spans, "execute_tool task_worker")
    assert worker_run.parent.span_id == delegation.context.span_id
    assert worker_run.attributes["agent.parent_run_id"] == boss_run.attributes["agent.run_id"]
    assert worker_run.attributes["agent.run_id"] != boss_run.attributes["agent.run_id"]
    assert steps(boss_run, spans) == [(1, "chat gpt-4o"), (2, "execute_tool task_worker"), (3, "chat gpt-4o")]
    assert steps(worker_run, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]
    assert delegation.attributes["agent.tool.result_sha"] == sha("OTEL found")
    totals = {
        s.attributes["gen_ai.agent.name"]: (
            s.attributes["agent.usage.input_tokens"],
            s.attributes["agent.steps"],
        )
        for s in (boss_run, worker_run)
    }
    assert totals == {"boss": (51, 3), "worker": (51, 3)}  # 4 requests, each counted once, in its own run
    assert [(s["agent"], s["stop_reason"]) for s in telemetry.events("stop")] == [
        ("worker", "completed"),
        ("boss", "completed"),
    ]


async def test_two_agents_taking_turns_are_a_run_each_or_one_user_run(telemetry, instrument, fake_api):
    """Two agents talking (the application passes each reply to the other): AG2 traces each ``ask`` as an
    agent turn, so each is a run of its own, unless the conversation runs inside a run of yours."""
    instrument("openai")
    writer, critic = make_agent(fake_api, "writer", tools=()), make_agent(fake_api, "critic", tools=())
    fake_api.reply(answer("draft"), answer("too short"), answer("longer draft"))

    async def converse() -> str:
        draft = (await writer.ask("write")).body
        review = (await critic.ask(draft)).body
        return (await writer.ask(review)).body

    assert await converse() == "longer draft"
    spans = telemetry.spans()
    assert [s.name for s in runs(spans)] == [
        "invoke_agent writer",
        "invoke_agent critic",
        "invoke_agent writer",
    ]
    assert len({s.attributes["agent.run_id"] for s in runs(spans)}) == 3

    telemetry.exporter.clear()
    fake_api.reply(answer("draft"), answer("too short"), answer("longer draft"))
    with agent_otel.run("review") as run:
        assert await converse() == "longer draft"
    spans = telemetry.spans()
    assert [s.name for s in runs(spans)] == ["invoke_agent review"]
    assert run.result.usage["llm_calls"] == 3 and run.result.stop_reason == "completed"
    turns = ag2_spans(spans, "invoke_agent")
    assert [s.attributes["agent.run_id"] for s in turns] == [run.result.run_id] * 3


async def test_setup_does_not_change_what_the_program_returns(fresh, fake_api):
    """The same AG2 program (a tool call, a failing tool, an answer) without agent-otel and with
    ``setup()`` (every integration it finds, the ``openai`` one included): the same reply, the same
    conversation, the same usage report, the same requests sent."""

    async def program() -> tuple[Any, ...]:
        SENT.clear()
        fake_api.requests.clear()
        fake_api.reply(tool_call("lookup", {"q": "otel"}), tool_call("broken", {"q": "x"}), answer("done"))
        agent = make_agent(fake_api)
        reply = await agent.ask("hi")
        history = [
            (type(e).__name__, str(getattr(e, "content", "")), str(getattr(e, "result", "")))
            for e in await reply.history.get_events()
        ]
        usage = await reply.usage()
        middleware = [d.description for d in agent.middleware]  # agent-otel's is not the agent's
        return reply.body, history, usage.total, dict(SENT), list(fake_api.requests), middleware

    without = await program()
    agent_otel.setup("test-service", store=False, config={"exporter": {"probe_local": False}})
    assert {"openai", "ag2"} <= set(agent_otel.integrations.active())  # AG2 turns run through its middleware
    with_setup = await program()
    assert with_setup == without
    assert without[0] == "done" and without[3] == {"lookup": 1, "broken": 1}


async def test_on_a_network_each_dispatched_turn_is_a_run_of_its_own(telemetry, instrument, fake_api):
    """AG2's Network: an agent consults another through the hub (its ``delegate`` tool). The hub hands the
    envelope to the other agent in a task of its own and, with the hub's tracing on, in the envelope's own
    trace (AG2 links it to the sender instead of parenting it): the consulted agent's turn is a run of its
    own, also inside a run of yours, and the delegating run's ``delegate`` step covers the wait."""
    from ag2.knowledge import MemoryKnowledgeStore
    from ag2.network import Hub, HubClient
    from ag2.network.transport.local import LocalLink
    from opentelemetry import trace

    instrument("openai")
    hub = await Hub.open(
        MemoryKnowledgeStore(), expectation_sweep_interval=0, tracer_provider=trace.get_tracer_provider()
    )
    hub_client = HubClient(LocalLink(hub))
    try:
        boss, expert = make_agent(fake_api, "boss", tools=()), make_agent(fake_api, "expert", tools=())
        await hub_client.register(boss)
        await hub_client.register(expert)
        fake_api.reply(
            tool_call("delegate", {"target": "expert", "prompt": "what is otel?"}),
            answer("telemetry"),
            answer("done"),
        )
        with agent_otel.run("team") as run:
            reply = await boss.ask("hi")
    finally:
        await hub_client.close()
        await hub.close()
    assert reply.body == "done" and len(fake_api.requests) == 3
    spans = telemetry.spans()
    (team,) = ours(spans)
    (expert_run,) = ag2_spans(spans, "invoke_agent expert")
    (envelope,) = [
        s for s in ag2_spans(spans, "network.envelope") if s.context.span_id == expert_run.parent.span_id
    ]
    assert envelope.parent is None and envelope.context.trace_id != team.context.trace_id
    assert [s.name for s in runs(spans)] == ["invoke_agent expert", "invoke_agent team"]
    assert "agent.parent_run_id" not in expert_run.attributes
    assert steps(team, spans) == [(1, "chat gpt-4o"), (2, "execute_tool delegate"), (3, "chat gpt-4o")]
    assert steps(expert_run, spans) == [(1, "chat gpt-4o")]
    assert run.result.usage["llm_calls"] == 2 and expert_run.attributes["agent.steps"] == 1


def cached_answer(text: str) -> Reply:
    """An answer whose prompt was mostly read from OpenAI's prompt cache (1000 in, 800 of them cached)."""
    reply = answer(text)
    reply.body["usage"] = {
        "prompt_tokens": 1000,
        "completion_tokens": 50,
        "total_tokens": 1050,
        "prompt_tokens_details": {"cached_tokens": 800},
    }
    return reply


@pytest.mark.parametrize("client", ["openai", None])
async def test_cached_input_is_read_from_ag2s_span_as_from_the_client(
    telemetry, instrument, fake_api, client
):
    """AG2 names the cache counts ``gen_ai.usage.cache_read_input_tokens`` (not the convention's
    ``cache_read.input_tokens``): the step prices them at the cached price, with or without the ``openai``
    integration, so the cost does not depend on which of the two recorded the request."""
    if client:
        instrument(client)
    fake_api.reply(cached_answer("done"))
    assert (await make_agent(fake_api).ask("hi")).body == "done"
    (chat,) = ag2_spans(telemetry.spans(), "chat")
    assert chat.attributes["gen_ai.usage.cache_read_input_tokens"] == 800  # AG2's own attribute
    (llm,) = telemetry.events("llm_result")
    assert (llm["usage"]["input_tokens"], llm["usage"].get("cached_input_tokens")) == (1000, 800)
    uncached = PriceTable().cost("gpt-4o-2024-08-06", 1000, 50)
    assert 0 < llm["usage"]["cost_usd"] < uncached


async def test_without_ag2s_tracing_only_its_openai_requests_in_a_user_run_are_seen(
    telemetry, instrument, fake_api
):
    """An agent without ``TelemetryMiddleware`` emits no spans: outside a run agent-otel sees nothing of
    it; inside a run of yours its OpenAI requests are LLM steps (the ``openai`` integration), its tools
    are not."""
    instrument("openai")
    untraced = Agent("helper", config=config(fake_api), tools=[lookup])
    fake_api.reply(answer("alone"), tool_call("lookup", {"q": "otel"}), answer("done"))
    assert (await untraced.ask("hi")).body == "alone"
    assert telemetry.spans() == []
    with agent_otel.run("outer") as run:
        assert (await untraced.ask("hi")).body == "done"
    spans = telemetry.spans()
    assert [s.name for s in ours(spans)] == ["chat gpt-4o", "chat gpt-4o", "invoke_agent outer"]
    assert steps(ours(spans)[-1], spans) == [(1, "chat gpt-4o"), (2, "chat gpt-4o")]
    assert (run.result.usage["llm_calls"], run.result.usage["tool_calls"]) == (2, 0)


async def test_the_run_store_and_cli_show_an_ag2_run(rig, fake_api):  # noqa: F811
    rig.start()
    fake_api.reply(
        tool_call("lookup", {"q": "otel"}), tool_call("broken", {"q": "x"}, "call_2"), answer("ok")
    )
    assert (await make_agent(fake_api, "stored").ask("hi")).body == "ok"
    run_id = rig.last_run_id("stored")
    row = rig.run_row(run_id)
    assert (row["status"], row["stop_reason"], row["steps"], row["tool_calls"]) == (
        "success",
        "completed",
        5,
        2,
    )
    assert (row["input_tokens"], row["output_tokens"]) == (81, 18)  # 30+30+21 in, 7+7+4 out
    assert [(e["tool"], e["status"], e["error"]) for e in rig.tool_events(run_id)] == [
        ("lookup", "ok", None),
        ("broken", "error", "RuntimeError"),
    ]
    shown = rig.cli("show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert all(word in shown.stdout for word in ("lookup", "broken", "RuntimeError", "completed"))


# --- the ``ag2`` integration: agent-otel's middleware in every AG2 turn ------------------------------------


def untraced_agent(fake_api: Any, name: str = "helper") -> Agent:
    """An agent without AG2's ``TelemetryMiddleware``: no spans of AG2's."""
    return Agent(name, config=config(fake_api), tools=[lookup, broken])


@pytest.mark.parametrize("traced", [True, False])
async def test_in_a_user_run_a_denied_tool_never_runs_and_nothing_more_is_sent(
    guarded, instrument, fake_api, traced
):
    """The ``ag2`` integration checks the guards before AG2 runs the tool: the tool never runs, AG2 hands
    the refusal to its loop as the tool's error, and the stop reaches your code before the next request
    is sent. With or without AG2's own tracing."""
    telemetry = guarded({"policy": {"deny": {"*": ["lookup"]}}})
    instrument("ag2", "openai")
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    agent = make_agent(fake_api) if traced else untraced_agent(fake_api)
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        with agent_otel.run("outer"):
            await agent.ask("hi")
    result = stopped.value.result
    assert result.stop_reason == "policy_denied"
    assert SENT == {} and len(fake_api.requests) == 1
    assert (result.usage["llm_calls"], result.usage["tool_calls"], result.usage["input_tokens"]) == (1, 0, 30)
    spans = telemetry.spans()
    (outer,) = ours(spans) if traced else [s for s in ours(spans) if s.name == "invoke_agent outer"]
    assert steps(outer, spans) == [(1, "chat gpt-4o")]  # the refused tool and the unsent request: no steps
    (guard,) = [dict(e.attributes) for e in outer.events if e.name == "agent.guard"]
    assert (guard["guard"], guard["enforced"], guard["tool"]) == ("policy", True, "lookup")
    assert [(e["kind"], e["step_id"]) for e in telemetry.events()] == [("llm_result", 1), ("stop", None)]


@pytest.mark.parametrize("traced", [True, False])
async def test_a_token_budget_a_response_crosses_stops_the_run_before_the_next_tool_and_request(
    telemetry, instrument, fake_api, traced
):
    """A budget crossed by a response's usage stops the run at its next step: here AG2's tool call, which
    does not run, and no request is made after the stop (none goes unrecorded either)."""
    instrument("ag2", "openai")
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    agent = make_agent(fake_api) if traced else untraced_agent(fake_api)
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        with agent_otel.run("outer", budget=agent_otel.Budget(max_tokens=30)):
            await agent.ask("hi")
    result = stopped.value.result
    assert result.stop_reason == "budget_exceeded"
    assert SENT == {} and len(fake_api.requests) == 1
    assert (result.usage["input_tokens"], result.usage["output_tokens"]) == (30, 7)


async def test_a_retrying_middleware_retries_a_stopped_request_without_sending_it(
    guarded, instrument, fake_api
):
    """AG2's ``RetryMiddleware`` retries on any ``Exception``, ``AgentStopped`` included: each attempt is
    stopped again before it is sent, and the stop reaches your code once the attempts run out."""
    from ag2.middleware import RetryMiddleware

    guarded({"policy": {"deny": {"*": ["lookup"]}}})
    instrument("ag2")
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    agent = make_agent(fake_api)
    agent.add_middleware(RetryMiddleware(max_retries=3))
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        with agent_otel.run("outer"):
            await agent.ask("hi")
    assert stopped.value.result.stop_reason == "policy_denied"
    assert SENT == {} and len(fake_api.requests) == 1


async def test_a_guard_you_configured_stops_a_run_made_of_ag2s_spans(guarded, instrument, fake_api):
    """With the middleware AG2's runs have a hook before their steps: a guard you configured enforces in a
    run AG2's ``invoke_agent`` span makes (README "Guards"), and the stop reaches the caller of ``ask``."""
    telemetry = guarded({"policy": {"deny": {"*": ["lookup"]}}})
    instrument("ag2")
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        await make_agent(fake_api).ask("hi")
    assert stopped.value.result.stop_reason == "policy_denied"
    assert SENT == {} and len(fake_api.requests) == 1
    spans = telemetry.spans()
    (root,) = ag2_spans(spans, "invoke_agent helper")
    assert ours(spans) == []  # still AG2's spans only
    assert root.attributes["agent.stop_reason"] == "policy_denied"
    assert steps(root, spans) == [(1, "chat gpt-4o")]
    (guard,) = [dict(e.attributes) for e in root.events if e.name == "agent.guard"]
    assert (guard["guard"], guard["enforced"]) == ("policy", True)


async def test_the_default_loop_guard_only_observes_in_a_run_made_of_ag2s_spans(
    telemetry, instrument, fake_api
):
    """A guard on by default that you did not configure observes in AG2's own runs, hook or not: the
    same call four times runs four times and the turn completes."""
    instrument("ag2")
    fake_api.reply(*[tool_call("lookup", {"q": "otel"}, f"call_{i}") for i in range(4)], answer("done"))
    assert (await make_agent(fake_api).ask("hi")).body == "done"
    assert SENT == {"lookup": 4}
    (root,) = ag2_spans(telemetry.spans(), "invoke_agent helper")
    assert root.attributes["agent.stop_reason"] == "completed"
    (guard,) = [dict(e.attributes) for e in root.events if e.name == "agent.guard"]
    assert (guard["guard"], guard["enforced"], guard["would_stop"]) == ("loop", False, "loop_detected")


async def test_with_on_deny_raise_ag2_hands_the_refusal_to_the_model(guarded, instrument, fake_api):
    telemetry = guarded({"policy": {"deny": {"*": ["lookup"]}, "on_deny": "raise"}})
    instrument("ag2")
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("not allowed, sorry"))
    with agent_otel.run("outer") as run:
        reply = await make_agent(fake_api).ask("hi")
    assert reply.body == "not allowed, sorry" and SENT == {}
    told = fake_api.requests[1][1]["messages"][-1]
    assert told["role"] == "tool" and "ToolDenied" in told["content"]
    assert run.result.stop_reason == "completed"
    (guard,) = [dict(e.attributes) for e in ours(telemetry.spans())[0].events if e.name == "agent.guard"]
    assert (guard["guard"], guard["enforced"]) == ("policy", True)


async def test_an_untraced_agents_tools_are_steps_of_a_user_run(telemetry, instrument, fake_api):
    """Without AG2's tracing, inside a run of yours: its requests through the ``openai`` integration and
    now its tools through the middleware (a span of agent-otel's own, with the error of a failing one)."""
    instrument("ag2", "openai")
    fake_api.reply(
        tool_call("lookup", {"q": "otel"}), tool_call("broken", {"q": "x"}, "call_2"), answer("ok")
    )
    with agent_otel.run("outer") as run:
        assert (await untraced_agent(fake_api).ask("hi")).body == "ok"
    spans = telemetry.spans()
    (outer,) = [s for s in ours(spans) if s.name == "invoke_agent outer"]
    assert steps(outer, spans) == [
        (1, "chat gpt-4o"),
        (2, "execute_tool lookup"),
        (3, "chat gpt-4o"),
        (4, "execute_tool broken"),
        (5, "chat gpt-4o"),
    ]
    assert [
        (e["tool"], e["status"], e["error"], e["result_sha"]) for e in telemetry.events("tool_result")
    ] == [
        ("lookup", "ok", None, sha("OTEL")),
        ("broken", "error", "RuntimeError", None),
    ]
    assert run.result.stop_reason == "completed" and run.result.usage["tool_calls"] == 2


@pytest.mark.parametrize("client", ["openai", None])
async def test_a_streamed_turn_has_the_same_steps_and_usage(telemetry, instrument, fake_api, client):
    """``OpenAIConfig(streaming=True)``: the streamed request is one step with the usage of its last
    chunk, with or without the ``openai`` integration."""
    instrument("ag2", *([client] if client else []))
    fake_api.reply(streamed_tool_call("lookup", {"q": "otel"}), streamed_answer("done"))
    agent = make_agent(fake_api)
    agent_config = config(fake_api)
    agent_config.streaming = True
    reply = await agent.ask("hi", config=agent_config)
    assert reply.body == "done" and SENT == {"lookup": 1}
    assert fake_api.requests[0][1]["stream"] is True
    spans = telemetry.spans()
    (root,) = ag2_spans(spans, "invoke_agent helper")
    assert steps(root, spans) == [(1, "chat gpt-4o"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]
    usage = (root.attributes["agent.usage.input_tokens"], root.attributes["agent.usage.output_tokens"])
    assert usage == (51, 11) and root.attributes["agent.stop_reason"] == "completed"
    assert [e["usage"]["input_tokens"] for e in telemetry.events("llm_result")] == [30, 21]


@pytest.mark.parametrize("denied", [False, True], ids=["allowed", "denied"])
async def test_an_observed_turn_streams_its_events_through_the_middleware(
    guarded, instrument, fake_api, denied
):
    """``Agent.run()``: the turn's events reach a subscriber of its stream as they happen, the same steps
    as ``ask``; a guard's stop comes out of ``result()`` with nothing sent after it (AG2 stops dispatching
    the events in flight, as for any exception of its model call)."""
    telemetry = guarded({"policy": {"deny": {"*": ["lookup"] if denied else []}}})
    instrument("ag2")
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    seen: list[str] = []

    async def outcome() -> Any:
        async with make_agent(fake_api).run("hi") as turn:
            turn.stream.subscribe(lambda event: seen.append(type(event).__name__), sync_to_thread=False)
            return (await turn.result()).body

    with agent_otel.run("outer") as run:
        if denied:
            with pytest.raises(agent_otel.AgentStopped):
                await outcome()
        else:
            assert await outcome() == "done"
    if denied:
        assert (SENT, len(fake_api.requests), run.result.stop_reason) == ({}, 1, "policy_denied")
    else:
        assert (SENT, run.result.stop_reason) == ({"lookup": 1}, "completed")
        assert {"ToolCallEvent", "ToolResultEvent"} <= set(seen)
        (outer,) = ours(telemetry.spans())
        assert steps(outer, telemetry.spans()) == [
            (1, "chat gpt-4o"),
            (2, "execute_tool lookup"),
            (3, "chat gpt-4o"),
        ]


async def recorded_turn(rig: Any, fake_api: Any, tool: str, body: str) -> str:  # noqa: F811
    """The run id of one recorded turn of the ``stored`` agent: a call of ``tool``, then ``body``."""
    fake_api.reply(tool_call(tool, {"q": "otel"}), answer(body))
    assert (await make_agent(fake_api, "stored").ask("hi")).body == body
    fake_api.reply(tool_call(tool, {"q": "otel"}), answer(body))  # what the replayed turn gets
    return rig.last_run_id("stored")


async def test_replay_serves_the_tool_and_never_runs_it(rig, fake_api, instrument):  # noqa: F811
    rig.start()
    instrument("ag2")
    original = await recorded_turn(rig, fake_api, "lookup", "done")
    recorded_events = [
        (e["tool"], e["args_sha"], e["result_sha"], e["status"]) for e in rig.tool_events(original)
    ]
    assert recorded_events == [("lookup", sha({"q": "otel"}), sha("OTEL"), "ok")]
    SENT.clear()
    with agent_otel.replay(original) as rp:
        reply = await make_agent(fake_api, "stored").ask("hi")
    assert reply.body == "done" and SENT == {}  # served from the recording: the tool did not run again
    results = [e for e in await reply.history.get_events() if type(e).__name__ == "ToolResultEvent"]
    assert [[p.content for p in e.result.parts] for e in results] == [["OTEL"]]  # what the model got then
    assert_served(rp, rig, original, 1)


async def test_replay_refuses_a_recorded_tool_error_and_does_not_run_the_tool(rig, fake_api, instrument):  # noqa: F811
    rig.start()
    instrument("ag2")
    original = await recorded_turn(rig, fake_api, "broken", "sorry")
    with agent_otel.replay(original) as rp:
        await make_agent(fake_api, "stored").ask("hi")
    assert SENT == {"broken": 1}  # the recording's call only
    told = fake_api.requests[-1][1]["messages"][-1]
    assert "ReplayError" in told["content"]  # AG2 hands the refusal to the model as the tool's error
    assert rp.report.served == 0 and "not served" in str(rp.report)


async def test_without_the_integration_a_replay_matches_the_tool_call_but_cannot_keep_it_from_running(
    rig,  # noqa: F811
    fake_api,
):
    """The bridge alone: AG2 sets a tool's arguments on its span only after starting it, so the replay
    compares the call when its span ends (it compared it at the start, without them, and reported a
    divergence); AG2 runs the tool live, which the report notes."""
    rig.start()
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    assert (await make_agent(fake_api, "stored").ask("hi")).body == "done"
    original = rig.last_run_id("stored")
    SENT.clear()
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    with agent_otel.replay(original) as rp:
        assert (await make_agent(fake_api, "stored").ask("hi")).body == "done"
    assert SENT == {"lookup": 1}
    report = rp.report
    assert report.matched and (report.steps_matched, report.served) == (1, 0), str(report)
    assert "step 2 (lookup) matched the recording but was not served: the framework ran it" in str(report)


def test_the_replay_command_replays_an_ag2_agent(rig, fake_api, instrument, monkeypatch):  # noqa: F811
    """``agent-otel replay RUN_ID --call tests.integrations.ag2_agent:handle``, in a subprocess: the
    recorded tool call is served, the report says so, exit status 0."""
    import asyncio

    from tests.integrations import ag2_agent

    monkeypatch.setenv(ag2_agent.BASE_URL, fake_api.base_url + "/v1")
    rig.start()
    instrument("ag2")
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    assert asyncio.run(ag2_agent.handle()) == "done"
    original = rig.last_run_id(ag2_agent.NAME)
    agent_otel.shutdown()
    fake_api.reply(tool_call("lookup", {"q": "otel"}), answer("done"))
    replayed = rig.cli(
        "replay",
        original,
        "--call",
        "tests.integrations.ag2_agent:handle",
        env={ag2_agent.BASE_URL: fake_api.base_url + "/v1"},
    )
    assert replayed.returncode == 0, (replayed.stdout, replayed.stderr)
    assert "matched in order 1   served from snapshots 1" in replayed.stdout
    assert "then completed   now completed" in replayed.stdout
    assert SENT == {"lookup": 1} and len(fake_api.requests) == 4  # the recording's tool call only


@pytest.mark.parametrize(
    "order", [("lookup", "broken"), ("broken", "lookup")], ids=["denied-first", "denied-second"]
)
async def test_parallel_tool_calls_around_a_stop(guarded, instrument, fake_api, order):
    """One response asking for two tools, which AG2 runs as concurrent tasks: the denied one never runs,
    nor does the next request; the other runs only if it began before the stop (AG2's scheduling)."""
    guarded({"policy": {"deny": {"*": ["lookup"]}}})
    instrument("ag2")
    calls = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps({"q": "x"})},
        }
        for i, name in enumerate(order)
    ]
    message = {"role": "assistant", "content": None, "tool_calls": calls}
    fake_api.reply(completion(message, finish="tool_calls"), answer("done"))
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        with agent_otel.run("outer"):
            await make_agent(fake_api).ask("hi")
    assert stopped.value.result.stop_reason == "policy_denied" and len(fake_api.requests) == 1
    assert SENT["lookup"] == 0 and SENT["broken"] <= 1


async def test_an_agent_otel_tool_is_one_tool_call_with_its_retry(telemetry, instrument, fake_api):
    """A function that is also ``@agent_otel.tool(retry=...)`` as an AG2 tool: AG2's ``execute_tool`` span
    is the step, which the function did not find (the step's span is current, the step is not): a
    second tool span nested in AG2's, two counted tool calls. One step now, with the retry applied once."""
    instrument("openai", "ag2")
    fake_api.reply(tool_call("search", {"q": "otel"}), answer("done"))
    reply = await make_agent(fake_api, tools=[sample_tools.search]).ask("hi")
    assert reply.body == "done" and SENT == {"search": 2}
    spans = telemetry.spans()
    assert [s.name for s in spans if s.name.startswith("execute_tool")] == ["execute_tool search"]
    (tool,) = ag2_spans(spans, "execute_tool search")
    assert tool.attributes["gen_ai.tool.call.id"] == "call_1" and tool.attributes["agent.tool.attempts"] == 2
    assert tool.attributes["agent.tool.result_sha"] == sha("OTEL")
    (root,) = runs(spans)
    assert root.attributes["agent.tool_calls"] == 1


async def test_a_write_declared_with_agent_otel_tool_is_blocked_by_the_writes_kill_switch(
    guarded, instrument, fake_api, monkeypatch
):
    """AG2's step of an ``@agent_otel.tool(side_effects=True)`` function is a write: the kill switch blocks
    it before it runs (the function claims AG2's step, as a write), and the stop reaches the caller."""
    telemetry = guarded({})
    instrument("openai", "ag2")
    monkeypatch.setenv("AGENT_OTEL_KILL_SWITCH", "writes")
    fake_api.reply(tool_call("wipe", {"q": "bob"}), answer("never"))
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        await make_agent(fake_api, tools=[sample_tools.wipe]).ask("hi")
    assert stopped.value.result.stop_reason == "kill_switch" and SENT == {}
    assert [s.name for s in telemetry.spans() if s.name.startswith("execute_tool")] == ["execute_tool wipe"]


@pytest.mark.parametrize("integrated", [True, False], ids=["ag2", "bridge-alone"])
async def test_replay_serves_an_agent_otel_tool_and_never_runs_it(rig, fake_api, instrument, integrated):  # noqa: F811
    """An ``@agent_otel.tool`` function as an AG2 tool, with the ``ag2`` integration (its middleware begins
    the step) and without it (AG2's span, whose arguments come only after it started, is the step): the
    function claims the step; a replay serves the recorded result once and the function does not run."""
    rig.start()
    if integrated:
        instrument("ag2")
    fake_api.reply(tool_call("search", {"q": "otel"}), answer("done"))
    assert (await make_agent(fake_api, "stored", tools=[sample_tools.search]).ask("hi")).body == "done"
    assert SENT == {"search": 2}
    original = rig.last_run_id("stored")
    fake_api.reply(tool_call("search", {"q": "otel"}), answer("done"))
    with agent_otel.replay(original) as rp:
        reply = await make_agent(fake_api, "stored", tools=[sample_tools.search]).ask("hi")
    assert reply.body == "done" and SENT == {"search": 2}
    told = fake_api.requests[-1][1]["messages"][-1]
    assert told["content"] == "OTEL"  # what the model got when the run was recorded
    assert_served(rp, rig, original, 1)
