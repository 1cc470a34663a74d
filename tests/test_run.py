"""Runs: root spans, sub-agents, the single stop and its reason, and what the caller receives."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import agent_otel
from agent_otel import conventions as c
from agent_otel.hashing import sha
from tests.store.conftest import run_python


def by_name(spans, prefix):
    return [s for s in spans if s.name.startswith(prefix)]


def test_a_run_answers_the_five_questions_in_its_spans(telemetry):
    def fetch(url):
        return {"status": 200, "body": "ok"}

    ticket = {"id": 42, "text": "refund please"}
    with agent_otel.run(
        "support-agent", model="gpt-4o", prompt_version="v12", tools_version="3", input=ticket
    ) as run:
        run.call_tool("http.get", fetch, {"url": "https://example.com"}, call_id="call_1")
        run.record_llm(model="gpt-4o", input_tokens=812, output_tokens=96)
        run.call_tool("crm.lookup", lambda customer_id: {"email": "x"}, {"customer_id": 7})

    spans = telemetry.spans()
    (root,) = by_name(spans, "invoke_agent")
    tools = by_name(spans, "execute_tool")
    (llm,) = by_name(spans, "chat")
    assert root.name == "invoke_agent support-agent" and root.parent is None
    a = root.attributes
    assert a[c.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert a[c.GEN_AI_AGENT_NAME] == "support-agent"
    assert a[c.RUN_ID] == run.run_id
    assert (
        a[c.GEN_AI_REQUEST_MODEL] == "gpt-4o" and a[c.PROMPT_VERSION] == "v12" and a[c.TOOLS_VERSION] == "3"
    )
    assert a[c.INPUT_SHA] == sha(ticket)
    assert a[c.STOP_REASON] == "completed" and a[c.TOOL_CALLS] == 2 and a[c.STEPS] == 3
    # The run's totals are agent.usage.*; gen_ai.usage.* is only on the request's own span.
    assert a[c.USAGE_INPUT_TOKENS] == 812 and a[c.USAGE_OUTPUT_TOKENS] == 96
    assert c.GEN_AI_USAGE_INPUT_TOKENS not in a
    assert a[c.GEN_AI_PROVIDER_NAME] == "openai"  # inferred from the model name
    assert a[c.COST_USD] == pytest.approx((812 * 2.5 + 96 * 10) / 1e6)
    assert root.status.status_code is StatusCode.OK
    stop_events = [e for e in root.events if e.name == "agent.stop"]
    assert len(stop_events) == 1 and stop_events[0].attributes["agent.stop_reason"] == "completed"

    # Which tools, in which order, with which args and results.
    assert [t.name for t in sorted(tools, key=lambda s: s.attributes[c.STEP_ID])] == [
        "execute_tool http.get",
        "execute_tool crm.lookup",
    ]
    first = tools[0] if tools[0].attributes[c.STEP_ID] == 1 else tools[1]
    t = first.attributes
    assert t[c.GEN_AI_OPERATION_NAME] == "execute_tool" and t[c.GEN_AI_TOOL_NAME] == "http.get"
    assert t[c.GEN_AI_TOOL_CALL_ID] == "call_1"
    assert t[c.RUN_ID] == run.run_id and t[c.STEP_ID] == 1
    assert t[c.TOOL_ARGS_SHA] == sha({"url": "https://example.com"})
    assert t[c.TOOL_RESULT_SHA] == sha({"status": 200, "body": "ok"})
    assert t[c.TOOL_STATUS] == "ok" and t[c.TOOL_ATTEMPTS] == 1
    assert c.GEN_AI_TOOL_CALL_ARGUMENTS not in t  # raw args never leave without opt-in
    assert llm.attributes[c.STEP_ID] == 2 and llm.attributes[c.RUN_ID] == run.run_id
    for child in (*tools, llm):
        assert child.parent.span_id == root.context.span_id
        assert child.context.trace_id == root.context.trace_id


def test_every_run_is_a_new_trace_and_an_ambient_span_becomes_a_link(telemetry):
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("http request") as ambient:
        with agent_otel.run("a") as first:
            pass
    with agent_otel.run("a") as second:
        pass
    assert first.trace_id != second.trace_id
    assert first.trace_id != format(ambient.get_span_context().trace_id, "032x")
    (root,) = [s for s in telemetry.spans() if s.attributes.get(c.RUN_ID) == first.run_id]
    assert root.parent is None
    assert [link.context.span_id for link in root.links] == [ambient.get_span_context().span_id]


def test_a_run_inside_a_run_is_a_sub_agent(telemetry):
    with agent_otel.run("planner") as parent:

        def delegate(task):
            with agent_otel.run("researcher") as child:
                child.call_tool("search", lambda q: [q], {"q": task})
            return child.run_id

        child_id = parent.call_tool("delegate", delegate, {"task": "x"})
    spans = telemetry.spans()
    (child_root,) = [s for s in spans if s.name == "invoke_agent researcher"]
    (delegate_span,) = [s for s in spans if s.name == "execute_tool delegate"]
    assert child_root.attributes[c.RUN_ID] == child_id != parent.run_id
    assert child_root.attributes[c.PARENT_RUN_ID] == parent.run_id
    assert child_root.parent.span_id == delegate_span.context.span_id
    (search,) = [s for s in spans if s.name == "execute_tool search"]
    assert search.attributes[c.RUN_ID] == child_id and search.attributes[c.STEP_ID] == 1
    assert parent.steps == 1  # the sub-agent's steps are its own


def test_tool_errors_pass_through_unchanged_and_name_the_stop(telemetry):
    original = KeyError("customer 7")

    def lookup(customer_id):
        raise original

    with pytest.raises(KeyError) as caught, agent_otel.run("a") as run:
        run.call_tool("crm.lookup", lookup, {"customer_id": 7})
    assert caught.value is original
    assert run.result.stop_reason == "tool_error"
    spans = telemetry.spans()
    (tool,) = by_name(spans, "execute_tool")
    (root,) = by_name(spans, "invoke_agent")
    assert tool.attributes[c.TOOL_STATUS] == "error" and tool.attributes[c.ERROR_TYPE] == "KeyError"
    assert tool.status.status_code is StatusCode.ERROR
    assert root.attributes[c.STOP_REASON] == "tool_error" and root.attributes[c.ERROR_TYPE] == "KeyError"
    assert root.status.status_code is StatusCode.ERROR and root.status.description == "tool_error"


def test_an_error_wrapping_a_tool_error_is_still_a_tool_error(telemetry):
    class AgentFailed(Exception):
        pass

    def boom():
        raise ConnectionError("503")

    with pytest.raises(AgentFailed), agent_otel.run("a") as run:
        try:
            run.call_tool("http.get", boom)
        except ConnectionError as exc:
            raise AgentFailed("gave up") from exc
    assert run.result.stop_reason == "tool_error"


def test_a_caught_tool_error_does_not_decide_the_stop(telemetry):
    with agent_otel.run("a") as run:
        with pytest.raises(ZeroDivisionError):
            run.call_tool("div", lambda: 1 / 0)
    assert run.result.stop_reason == "completed"


def test_a_tool_error_inside_a_task_group_is_still_a_tool_error(telemetry):
    """A TaskGroup raises what its tasks raised as an ExceptionGroup: when that leaves the run, the
    failed tool calls in it name the stop (it read ``error``). ``except*`` still sees the errors."""

    @agent_otel.tool
    async def fetch(url):
        await asyncio.sleep(0)
        raise ConnectionError(f"{url} refused")

    async def agent():
        async with agent_otel.run("fanout") as run:
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(fetch("a"))
            except* ConnectionError as caught:  # handled: the run goes on
                assert len(caught.exceptions) == 1
            async with asyncio.TaskGroup() as group:
                group.create_task(fetch("b"))
                group.create_task(fetch("c"))
        return run

    with pytest.raises(ExceptionGroup) as raised:
        asyncio.run(agent())
    assert sorted(str(e) for e in raised.value.exceptions) == ["b refused", "c refused"]
    (root,) = telemetry.spans_named("invoke_agent fanout")
    assert root.attributes[c.STOP_REASON] == "tool_error"
    assert [e["stop_reason"] for e in telemetry.events("stop")] == ["tool_error"]


def test_other_exceptions_stop_with_error(telemetry):
    with pytest.raises(RuntimeError), agent_otel.run("a") as run:
        raise RuntimeError("agent bug")
    assert run.result.stop_reason == "error"
    (root,) = telemetry.spans()
    assert root.attributes[c.ERROR_TYPE] == "RuntimeError"
    assert any(e.name == "exception" for e in root.events)


def test_model_errors_stop_with_model_error(telemetry):
    failure = TimeoutError("upstream model timed out")
    with pytest.raises(TimeoutError), agent_otel.run("a") as run:
        run.record_llm(model="gpt-4o", error=failure)
        raise failure
    assert run.result.stop_reason == "model_error"
    (llm,) = telemetry.spans_named("chat")
    assert llm.attributes[c.ERROR_TYPE] == "TimeoutError" and llm.status.status_code is StatusCode.ERROR


def test_keyboard_interrupt_and_asyncio_cancellation_stop_with_cancelled(telemetry):
    with pytest.raises(KeyboardInterrupt), agent_otel.run("a") as run:
        raise KeyboardInterrupt
    assert run.result.stop_reason == "cancelled"

    holder = {}

    async def agent_task():
        async with agent_otel.run("b") as r:
            holder["run"] = r
            await asyncio.sleep(10)

    async def main():
        task = asyncio.create_task(agent_task())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert holder["run"].result.stop_reason == "cancelled"
    (root_b,) = [s for s in telemetry.spans() if s.name == "invoke_agent b"]
    assert root_b.status.status_code is StatusCode.UNSET  # a limit, not a failure


def test_a_tool_cut_short_by_the_agents_own_asyncio_deadline_ends_the_run_tool_timeout(telemetry):
    """``asyncio.timeout`` / ``wait_for`` around a tool cancels it; the TimeoutError that leaves the run is
    raised from that cancellation. A tool that took too long is tool_timeout (it read tool_error); the
    same tool's task cancelled outright is still cancelled."""

    @agent_otel.tool(name="slow_lookup")
    async def slow_lookup() -> None:
        await asyncio.sleep(10)

    async def with_timeout() -> Any:
        with pytest.raises(TimeoutError):
            async with agent_otel.run("deadline") as run:
                async with asyncio.timeout(0.05):
                    await slow_lookup()
        return run

    async def with_wait_for() -> Any:
        with pytest.raises(TimeoutError):
            async with agent_otel.run("wait-for") as run:
                await asyncio.wait_for(slow_lookup(), 0.05)
        return run

    async def cancelled() -> Any:
        holder: dict[str, Any] = {}

        async def agent() -> None:
            async with agent_otel.run("cancelled") as run:
                holder["run"] = run
                await slow_lookup()

        task = asyncio.create_task(agent())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return holder["run"]

    assert asyncio.run(with_timeout()).result.stop_reason == "tool_timeout"
    assert asyncio.run(with_wait_for()).result.stop_reason == "tool_timeout"
    assert asyncio.run(cancelled()).result.stop_reason == "cancelled"
    tools = telemetry.spans_named("execute_tool")
    assert len(tools) == 3 and {s.attributes[c.ERROR_TYPE] for s in tools} == {"CancelledError"}


def test_agent_stopped_gives_its_reason_and_propagates(telemetry):
    with pytest.raises(agent_otel.AgentStopped) as caught, agent_otel.run("a") as run:
        raise agent_otel.AgentStopped(agent_otel.StopResult(agent_otel.StopReason.KILL_SWITCH, run.run_id))
    assert caught.value.stop_reason == "kill_switch"
    assert run.result.stop_reason == "kill_switch"


def test_stop_is_recorded_exactly_once_and_returns_the_result(telemetry):
    with agent_otel.run("a") as run:
        result = run.stop("max_steps", detail="planner gave up")
        assert run.stop("completed") is result
        with pytest.raises(agent_otel.AgentStopped):
            run.call_tool("late", lambda: 1)  # no steps after the stop
    assert result.stop_reason is agent_otel.StopReason.MAX_STEPS
    assert dict(result) == {
        "status": "stopped",
        "stop_reason": "max_steps",
        "run_id": run.run_id,
        "usage": result.usage,
        "detail": "planner gave up",
    }
    json.dumps(dict(result))
    assert result.usage["steps"] == 0 and result.usage["tool_calls"] == 0
    assert len(telemetry.events("stop")) == 1
    (root,) = telemetry.spans_named("invoke_agent")
    assert [e.name for e in root.events].count("agent.stop") == 1
    assert root.status.status_code is StatusCode.UNSET
    stops = telemetry.metrics()["agent.stop"]
    # one stop; the agent's other stop reasons have their series at 0 (created by its first run)
    assert [(attrs, p.value) for attrs, p in stops if p.value] == [
        ({"agent": "a", "stop_reason": "max_steps"}, 1)
    ]


def test_work_that_outlives_its_run_block_runs_as_without_agent_otel(telemetry):
    """A task spawned in the run, a generator tool consumed after the block, ``record_llm`` after it:
    without agent-otel they work, so the ended run neither refuses them (AgentStopped) nor gains steps."""

    @agent_otel.tool
    async def fetch(x):
        await asyncio.sleep(0.01)
        return x

    @agent_otel.tool
    def pages(n):
        yield from range(n)

    async def agent():
        async with agent_otel.run("bg") as run:
            task = asyncio.create_task(fetch(5))  # fire and forget, awaited later
            lines = pages(3)
        return run, await task, list(lines)

    run, fetched, lines = asyncio.run(agent())
    assert (fetched, lines) == (5, [0, 1, 2])
    assert run.call_tool("late", lambda: 7) == 7
    run.record_llm(model="gpt-4o", input_tokens=10, output_tokens=5)  # not recorded, not raised
    assert run.result.stop_reason == "completed" and run.steps == 0 and run.result.usage["steps"] == 0
    assert [s.name for s in telemetry.spans()] == ["invoke_agent bg"]
    # A run stopped before its block was left still refuses every later step, wherever it comes from.
    with agent_otel.run("stopped") as stopped:
        stopped.stop("kill_switch")
    with pytest.raises(agent_otel.AgentStopped):
        stopped.call_tool("late", lambda: 7)
    with pytest.raises(agent_otel.AgentStopped):
        stopped.record_llm(model="gpt-4o", input_tokens=1)


def test_unknown_stop_reason_is_a_value_error_listing_the_valid_ones(telemetry):
    with agent_otel.run("a") as run:
        with pytest.raises(ValueError, match="valid reasons: completed, max_steps, budget_exceeded"):
            run.stop("finished")
    assert run.result.stop_reason == "completed"


def test_current_run_follows_the_context(telemetry):
    assert agent_otel.current_run() is None
    with agent_otel.run("a") as outer:
        assert agent_otel.current_run() is outer
        with agent_otel.run("b") as inner:
            assert agent_otel.current_run() is inner
        assert agent_otel.current_run() is outer
    assert agent_otel.current_run() is None


def test_agent_decorator_sync_and_async(telemetry):
    @agent_otel.agent(name="triage", model="gpt-4o-mini")
    def triage(ticket, priority="low"):
        return agent_otel.current_run()

    @agent_otel.agent
    async def summarize(text):
        return agent_otel.current_run()

    run_a = triage({"id": 1}, priority="high")
    run_b = asyncio.run(summarize("hello"))
    assert run_a.agent == "triage" and run_a.result.stop_reason == "completed"
    assert run_a.input_sha == sha({"ticket": {"id": 1}, "priority": "high"})
    assert run_b.agent == "summarize" and run_b.input_sha == sha("hello")
    assert {s.name for s in telemetry.spans()} == {"invoke_agent triage", "invoke_agent summarize"}


def test_a_streaming_agent_is_one_run_from_its_first_item_to_its_last(telemetry):
    """``@agent`` on a generator (a streaming agent behind a StreamingResponse) was a 0 ms run with no
    steps, its tools untraced: the run ended when the generator was created. Now its body is the run;
    the consumer's code between items is not in it; a consumer that stops early cancels it."""

    @agent_otel.tool
    def lookup(i):
        return f"chunk {i}"

    @agent_otel.agent
    def answer(question):
        for i in range(3):
            yield lookup(i)

    @agent_otel.agent
    async def aanswer(question):
        for i in range(3):
            await asyncio.sleep(0)
            yield lookup(i)

    async def consume_async():
        items = [(item, agent_otel.current_run()) async for item in aanswer("refund?")]
        stream = aanswer("stop early")
        await anext(stream)
        await stream.aclose()
        return items

    assert inspect.isgeneratorfunction(answer) and inspect.isasyncgenfunction(aanswer)
    items = [(item, agent_otel.current_run()) for item in answer("refund?")]
    early = answer("stop early")
    next(early)
    early.close()
    expected = [(f"chunk {i}", None) for i in range(3)]  # no run in the consumer's code
    assert items == expected and asyncio.run(consume_async()) == expected
    runs = telemetry.spans_named("invoke_agent")
    assert [r.attributes[c.STOP_REASON] for r in runs] == ["completed", "cancelled"] * 2
    for root in runs:
        tools = [s for s in telemetry.spans_named("execute_tool") if s.parent.span_id == root.context.span_id]
        assert (
            len(tools)
            == root.attributes[c.TOOL_CALLS]
            == (3 if root.attributes[c.STOP_REASON] == "completed" else 1)
        )
    assert runs[0].attributes[c.INPUT_SHA] == sha("refund?")


def test_a_run_left_in_another_context_than_it_was_entered_logs_nothing(telemetry, caplog):
    """An async fixture enters a run in its setup task and leaves it in its teardown task; a run object
    handed to a callback: OpenTelemetry logged "Failed to detach context" with a traceback."""
    run = agent_otel.run("fixture")
    contextvars.copy_context().run(run.__enter__)
    with caplog.at_level(logging.DEBUG):
        contextvars.copy_context().run(run.__exit__, None, None, None)
    assert "Failed to detach context" not in caplog.text
    assert run.result.stop_reason == "completed" and agent_otel.current_run() is None
    assert [s.name for s in telemetry.spans()] == ["invoke_agent fixture"]


def test_a_run_object_cannot_be_entered_twice(telemetry):
    r = agent_otel.run("a")
    with r:
        pass
    with pytest.raises(RuntimeError, match="already started"), r:
        pass


def test_runs_without_setup_are_cheap_no_ops():
    agent_otel.shutdown()
    with agent_otel.run("a") as run:
        assert run.call_tool("t", lambda: 5) == 5
    assert run.result.stop_reason == "completed"


def test_run_ids_are_uuid4_and_stay_unique_across_random_seed_and_fork() -> None:
    """Run ids key the store: an application seeding ``random`` or forking workers must not repeat them."""
    import os
    import random
    import uuid

    def run_id() -> str:
        return agent_otel.run("ids").run_id

    ids = {run_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(uuid.UUID(i).version == 4 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
    random.seed(7)
    first = run_id()
    random.seed(7)
    assert run_id() != first  # not the random module's shared generator
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child's first id: a generator not reseeded would give the parent's next one
        os.write(write, run_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = pipe.read()
    assert len(child) == 32 and child != run_id()


_CYCLES = """
import gc, json
import agent_otel
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

class Sink:
    def __init__(self):
        self.records = []
    def write(self, batch):
        self.records.extend(batch)
    def close(self):
        pass

exporter = InMemorySpanExporter()
agent_otel.setup("t", span_exporters=[exporter], event_sinks=[Sink()], store=False, instrument=False,
                 meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
                 config={"exporter": {"probe_local": False}})

@agent_otel.tool
def lookup(query: str) -> dict:
    return {"hits": [query]}

def one_run(i):
    with agent_otel.run("support-agent", model="gpt-4o", input={"ticket": i}) as run:
        run.record_llm(model="gpt-4o", input_tokens=10, output_tokens=5)
        lookup(query=f"q{i}")
        lookup(query=f"r{i}")
        run.record_llm(model="gpt-4o", input_tokens=20, output_tokens=5)

one_run(0)  # first-use work (metric series, caches) is not a run's
while gc.collect():
    pass
gc.disable()
gc.set_debug(gc.DEBUG_SAVEALL)
for i in range(1, 4):
    one_run(i)
unreachable = gc.collect()
found = sorted({f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage})
gc.set_debug(0)
gc.garbage.clear()
gc.enable()
agent_otel.shutdown(5)
spans = sum(s.name.startswith("invoke_agent") for s in exporter.get_finished_spans())
print(json.dumps({"unreachable": unreachable, "types": found, "runs": spans}))
"""


def test_a_finished_run_is_freed_without_the_cyclic_collector():
    """A finished run leaves no reference cycle (run, its guards' state, its span and the span's binding):
    what a cycle holds waits for the cyclic garbage collector, which then walks and frees it on the agent's
    thread, at every run. Counted in a process of its own: in the test process another test's server
    thread, ending meanwhile, left cyclic garbage of its own (its handler class) in the count."""
    proc = run_python(_CYCLES)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["unreachable"] == 0, out["types"]
    assert out["runs"] == 4


def test_run_used_as_a_decorator_says_to_use_agent(telemetry):
    """``@agent_otel.run("x")`` over a (generator) function failed with "'Run' object is not callable";
    a run is one invocation, the decorator form is ``@agent_otel.agent``."""
    with pytest.raises(TypeError, match=r"@agent_otel\.agent\('support', \.\.\.\)"):

        @agent_otel.run("support")
        def handle(ticket):
            yield ticket


def test_an_agent_name_is_one_agent_whatever_its_unicode_normalisation(telemetry):
    """ "café" typed on one host (NFC, one code point for é) and read from a macOS file name or another
    library on the next (NFD, e + a combining accent) look the same everywhere a user sees them, yet were
    two agents: two series of every metric, two rows in ``stats``, a policy or kill switch naming one
    missing the other. A run's agent name is now NFC, as it is stored, exported and counted."""
    import unicodedata

    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    for name in (nfc, nfd):
        with agent_otel.run(name) as run:
            run.call_tool("search", lambda: 1)
        assert run.agent == nfc
    stops = telemetry.metrics()["agent.stop"]
    assert [(a["agent"], p.value) for a, p in stops if p.value] == [(nfc, 2)]
    assert {e["agent"] for e in telemetry.events()} == {nfc}
    assert {s.attributes[c.GEN_AI_AGENT_NAME] for s in by_name(telemetry.spans(), "invoke_agent")} == {nfc}
