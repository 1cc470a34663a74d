"""The GenAI span bridge, tested with a fake library that traces its agent through the OpenTelemetry API.

``FakeLib`` emits what Strands, Google ADK or PydanticAI emit: ``invoke_agent {agent}``, ``chat``
(CLIENT) and ``execute_tool {tool}`` spans through the global TracerProvider, with its attributes set
after the span started (as Strands and ADK do) or at its start, tool arguments and results on the span
only when its "content capture" is on. agent-otel knows nothing of it: every run, step, event, metric
and store row below comes from the spans alone.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

import agent_otel
from agent_otel.hashing import sha
from tests.integrations.conftest import by_name, children, ours, steps, stop_event
from tests.replay.conftest import rig  # noqa: F401


class ProviderDown(Exception):
    """The fake library's model error."""


class LoopFailed(Exception):
    """The fake library's wrapper of an error that ended its agent loop (Strands' EventLoopException)."""


class FakeLib:
    """An agent library with its own GenAI tracing, which agent-otel does not instrument."""

    def __init__(self, *, capture: bool = True, late: bool = True, scope: str = "fakelib") -> None:
        self.capture = capture  # tool arguments and results on the spans (the library's content capture)
        self.late = late  # attributes set after the span starts (Strands, ADK), else at its start
        self.tracer = trace.get_tracer(scope)

    @contextmanager
    def span(
        self, name: str, attributes: dict[str, Any], kind: SpanKind = SpanKind.INTERNAL
    ) -> Iterator[Any]:
        span = self.tracer.start_span(name, kind=kind, attributes=None if self.late else attributes)
        if self.late:
            span.set_attributes(attributes)
        with trace.use_span(span, end_on_exit=True):
            try:
                yield span
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                raise

    def agent(self, name: str, **attributes: Any) -> Any:
        return self.span(
            f"invoke_agent {name}",
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name, **attributes},
        )

    def chat(self, model: str = "gpt-4o", usage: tuple[int, int] = (10, 5), fail: bool = False) -> None:
        with self.span(
            "chat", {"gen_ai.operation.name": "chat", "gen_ai.request.model": model}, SpanKind.CLIENT
        ) as s:
            if fail:
                raise ProviderDown("model unavailable")
            s.set_attributes(
                {
                    "gen_ai.usage.input_tokens": usage[0],
                    "gen_ai.usage.output_tokens": usage[1],
                    "gen_ai.response.model": model,
                    "gen_ai.response.finish_reasons": ["stop"],
                }
            )

    def tool(self, name: str, args: dict[str, Any], fn: Any, call_id: str = "call-1") -> Any:
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.id": call_id,
        }
        if self.capture:
            attributes["gen_ai.tool.call.arguments"] = json.dumps(args)
        with self.span(f"execute_tool {name}", attributes) as s:
            result = fn(**args)
            if self.capture:
                s.set_attribute("gen_ai.tool.call.result", json.dumps(result))
            return result


def lookup(q: str) -> dict[str, Any]:
    return {"answer": q.upper()}


def broken(q: str) -> Any:
    raise ValueError("no such thing")


def run_span(spans: list[Any], agent: str) -> Any:
    (span,) = [
        s for s in spans if s.name == f"invoke_agent {agent}" and s.instrumentation_scope.name == "fakelib"
    ]
    return span


def stops(telemetry: Any) -> dict[tuple[str, str], int]:
    """The stops counted (an agent's first run also creates its other stop series at 0)."""
    points = telemetry.metrics()["agent.stop"]
    return {(p["agent"], p["stop_reason"]): point.value for p, point in points if point.value}


def test_a_library_agent_is_a_run_with_steps_events_and_metrics(telemetry):
    lib = FakeLib()
    with lib.agent("researcher", **{"gen_ai.conversation.id": "conv-7"}):
        lib.chat(usage=(12, 4))
        lib.tool("lookup", {"q": "otel"}, lookup)
        lib.chat(usage=(30, 8))
    spans = telemetry.spans()
    assert ours(spans) == []  # not one span of agent-otel's own: the library's spans are the run
    root = run_span(spans, "researcher")
    run_id = root.attributes["agent.run_id"]
    assert root.parent is None
    assert [s.name for s in children(root, spans)] == ["chat", "execute_tool lookup", "chat"]
    assert steps(root, spans) == [(1, "chat"), (2, "execute_tool lookup"), (3, "chat")]
    assert all(s.attributes["agent.run_id"] == run_id for s in spans)
    # The run's stop and totals are on the library's span; its usage only on the request spans.
    assert root.attributes["agent.stop_reason"] == "completed"
    assert root.attributes["agent.steps"] == 3 and root.attributes["agent.tool_calls"] == 1
    assert root.attributes["agent.usage.input_tokens"] == 42
    assert root.attributes["agent.usage.output_tokens"] == 12
    assert root.attributes["gen_ai.request.model"] == "gpt-4o"
    assert root.status.status_code is StatusCode.OK
    assert stop_event(root)["agent.stop_reason"] == "completed"
    assert [s.name for s in spans if "gen_ai.usage.input_tokens" in s.attributes] == ["chat", "chat"]
    tool = by_name(spans, "execute_tool lookup")[0]
    assert tool.attributes["agent.tool.args_sha"] == sha({"q": "otel"})
    assert tool.attributes["agent.tool.result_sha"] == sha({"answer": "OTEL"})
    assert tool.attributes["agent.tool.status"] == "ok"
    # Unified events, as for any run.
    events = telemetry.events()
    assert [(e["kind"], e["step_id"]) for e in events] == [
        ("llm_result", 1),
        ("tool_result", 2),
        ("llm_result", 3),
        ("stop", None),
    ]
    tool_event = events[1]
    assert (tool_event["tool"], tool_event["args_sha"], tool_event["result_sha"], tool_event["status"]) == (
        "lookup",
        sha({"q": "otel"}),
        sha({"answer": "OTEL"}),
        "ok",
    )
    assert events[0]["usage"]["input_tokens"] == 12 and events[0]["usage"]["model"] == "gpt-4o"
    stop = events[-1]
    assert stop["stop_reason"] == "completed" and stop["usage"]["llm_calls"] == 2
    assert all(e["run_id"] == run_id and e["agent"] == "researcher" for e in events)
    # The run record the store gets: started, then ended with the conversation the span named.
    records = [r for r in telemetry.sink.runs() if r["run_id"] == run_id]
    assert [r["status"] for r in records] == ["running", "success"]
    assert records[-1]["conversation_id"] == "conv-7" and records[-1]["model"] == "gpt-4o"
    assert records[-1]["steps"] == 3 and records[-1]["input_tokens"] == 42
    # Every agent_* series.
    metrics = telemetry.metrics()
    assert stops(telemetry) == {("researcher", "completed"): 1}
    (calls,) = [p for a, p in metrics["agent.tool_calls"] if a["agent"] == "researcher"]
    assert (calls.count, calls.sum) == (1, 1)
    (tokens,) = [p for a, p in metrics["agent.tokens_per_request"] if a["agent"] == "researcher"]
    assert (tokens.count, tokens.sum) == (2, 54)
    assert [a["status"] for a, _ in metrics["agent.tool.invocations"]] == ["ok"]
    assert [p.count for a, p in metrics["agent.run.latency_ms"] if a["agent"] == "researcher"] == [1]


def test_attributes_at_start_and_no_content_capture(telemetry):
    """Without the arguments and result on the span, the tool step has neither hash (and no loop check)."""
    lib = FakeLib(capture=False, late=False)
    with lib.agent("quiet"):
        for _ in range(5):
            lib.tool("lookup", {"q": "same"}, lookup)
    spans = telemetry.spans()
    root = run_span(spans, "quiet")
    tools = by_name(spans, "execute_tool lookup")
    assert [s.attributes["agent.step_id"] for s in tools] == [1, 2, 3, 4, 5]
    assert all("agent.tool.args_sha" not in s.attributes for s in tools)
    assert all("agent.tool.result_sha" not in s.attributes for s in tools)
    assert [e["args_sha"] for e in telemetry.events("tool_result")] == [None] * 5
    assert not [e for e in root.events if e.name == "agent.guard"]  # nothing to compare: no loop seen
    assert root.attributes["agent.stop_reason"] == "completed"


def test_tool_error_is_a_failed_step_and_the_run_goes_on(telemetry):
    lib = FakeLib()
    with lib.agent("careful"):
        lib.chat()
        try:
            lib.tool("broken", {"q": "x"}, broken)
        except ValueError:
            pass  # the library hands the error to the model
        lib.chat()
    spans = telemetry.spans()
    root = run_span(spans, "careful")
    tool = by_name(spans, "execute_tool broken")[0]
    assert tool.attributes["agent.tool.status"] == "error"
    assert tool.attributes["error.type"] == "ValueError"
    assert tool.status.status_code is StatusCode.ERROR
    (event,) = telemetry.events("tool_result")
    assert (event["status"], event["error"], event["args_sha"], event["result_sha"]) == (
        "error",
        "ValueError",
        sha({"q": "x"}),
        None,
    )
    assert root.attributes["agent.stop_reason"] == "completed"
    points = telemetry.metrics()["agent.tool.invocations"]
    assert [(a["status"], a["error_type"]) for a, _ in points] == [("error", "ValueError")]


def test_a_model_error_that_ends_the_agent_is_model_error(telemetry):
    lib = FakeLib()
    with pytest.raises(LoopFailed), lib.agent("fragile"):
        lib.chat()
        try:
            lib.chat(fail=True)
        except ProviderDown as exc:
            raise LoopFailed("the loop failed") from exc
    spans = telemetry.spans()
    root = run_span(spans, "fragile")
    assert root.attributes["agent.stop_reason"] == "model_error"
    assert root.attributes["error.type"] == "LoopFailed"
    assert root.status.status_code is StatusCode.ERROR
    failed = [s for s in by_name(spans, "chat") if s.status.status_code is StatusCode.ERROR]
    assert [s.attributes["agent.step_id"] for s in failed] == [2]
    llm = telemetry.events("llm_result")
    assert [(e["status"], e["error"]) for e in llm] == [("ok", None), ("error", "ProviderDown")]
    (stop,) = telemetry.events("stop")
    assert (stop["stop_reason"], stop["error"], stop["status"]) == ("model_error", "LoopFailed", "failure")
    assert stops(telemetry) == {("fragile", "model_error"): 1}


def test_an_error_after_the_last_step_is_error(telemetry):
    lib = FakeLib()
    with pytest.raises(RuntimeError), lib.agent("buggy"):
        lib.chat()
        raise RuntimeError("bug in the agent")
    root = run_span(telemetry.spans(), "buggy")
    assert root.attributes["agent.stop_reason"] == "error"
    assert root.attributes["error.type"] == "RuntimeError"


def test_nested_agents_join_the_run_and_an_agent_run_by_a_tool_is_a_sub_agent(telemetry):
    lib = FakeLib()

    def ask_expert(question: str) -> str:
        with lib.agent("expert"):
            lib.chat(usage=(3, 1))
            lib.tool("lookup", {"q": question}, lookup, call_id="inner")
        return "expert says hi"

    with lib.agent("planner"):
        with lib.agent("planner-handoff"):  # an agent inside the agent (a handoff): the same run
            lib.chat()
        lib.tool("ask_expert", {"question": "why"}, ask_expert)
    spans = telemetry.spans()
    planner = run_span(spans, "planner")
    expert = run_span(spans, "expert")
    handoff = run_span(spans, "planner-handoff")
    planner_id, expert_id = planner.attributes["agent.run_id"], expert.attributes["agent.run_id"]
    assert planner_id != expert_id
    assert handoff.attributes["agent.run_id"] == planner_id and "agent.stop_reason" not in handoff.attributes
    assert expert.attributes["agent.parent_run_id"] == planner_id
    assert steps(planner, spans) == [(1, "chat"), (2, "execute_tool ask_expert")]
    assert steps(expert, spans) == [(1, "chat"), (2, "execute_tool lookup")]
    assert planner.attributes["agent.tool_calls"] == 1 and expert.attributes["agent.tool_calls"] == 1
    records = {r["run_id"]: r for r in telemetry.sink.runs() if r["status"] != "running"}
    assert records[expert_id]["parent_run_id"] == planner_id
    assert stops(telemetry) == {("planner", "completed"): 1, ("expert", "completed"): 1}


def test_a_library_agent_inside_a_user_run_is_part_of_it(telemetry):
    lib = FakeLib()
    with agent_otel.run("my-app") as run:
        with lib.agent("helper"):
            lib.chat()
            lib.tool("lookup", {"q": "a"}, lookup)
        run.record_llm(model="gpt-4o", input_tokens=1, output_tokens=1)
    spans = telemetry.spans()
    root = by_name(ours(spans), "invoke_agent my-app")[0]
    assert steps(root, spans) == [(1, "chat"), (2, "execute_tool lookup"), (3, "chat gpt-4o")]
    helper = run_span(spans, "helper")
    assert helper.attributes["agent.run_id"] == run.run_id
    assert run.result.usage["steps"] == 3 and run.result.usage["tool_calls"] == 1
    assert stops(telemetry) == {("my-app", "completed"): 1}


def test_a_span_labelled_a_request_or_tool_only_after_it_started_is_a_step(telemetry):
    """Mistral's SDK starts its span named after the API operation and says it is a ``chat`` (usage and
    all) only later: recognised when it ends, with the span's duration, its steps observe only."""
    tracer = trace.get_tracer("late-labeller")
    with agent_otel.run("my-app") as run:
        with tracer.start_as_current_span("chat_completion_v1_chat_completions_post") as request:
            request.update_name("chat mistral-large-latest")
            request.set_attributes(
                {"gen_ai.operation.name": "chat", "gen_ai.request.model": "mistral-large-latest"}
            )
            request.set_attributes({"gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 3})
        with tracer.start_as_current_span("tools_call") as call:
            call.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"})
        with tracer.start_as_current_span("http GET"):  # any other span is left as it is
            pass
    spans = telemetry.spans()
    root = by_name(ours(spans), "invoke_agent my-app")[0]
    assert steps(root, spans) == [(1, "chat mistral-large-latest"), (2, "tools_call")]
    assert "agent.step_id" not in by_name(spans, "http GET")[0].attributes
    assert run.result.usage["llm_calls"] == 1 and run.result.usage["tool_calls"] == 1
    assert (run.result.usage["input_tokens"], run.result.usage["output_tokens"]) == (12, 3)
    (llm,) = telemetry.events("llm_result")
    assert llm["usage"]["model"] == "mistral-large-latest" and llm["duration_ms"] > 0


def test_another_librarys_span_inside_a_bridged_step_does_not_end_that_step(telemetry):
    """An HTTP client's span (httpx's instrumentation) under a library's tool or chat span is a span of
    that step; its end is not the step's end (it once ended the step with the HTTP span's outcome: no
    result, no usage, the HTTP call's duration)."""
    lib = FakeLib()
    http = trace.get_tracer("opentelemetry.instrumentation.httpx")

    def fetch(q: str) -> dict[str, Any]:
        with http.start_as_current_span("GET"):
            pass
        return lookup(q)

    with lib.agent("fetcher"):
        lib.tool("fetch", {"q": "x"}, fetch)
        with lib.span("chat", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}) as chat:
            with http.start_as_current_span("POST"):
                pass
            chat.set_attributes({"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5})
    (tool,) = telemetry.events("tool_result")
    assert tool["result_sha"] == sha({"answer": "X"})
    (llm,) = telemetry.events("llm_result")
    assert (llm["usage"]["input_tokens"], llm["usage"]["output_tokens"]) == (10, 5)
    (stop,) = telemetry.events("stop")
    assert (stop["usage"]["input_tokens"], stop["usage"]["output_tokens"]) == (10, 5)


def test_spans_from_another_thread_belong_to_the_run_of_their_context(telemetry):
    lib = FakeLib()
    with lib.agent("threaded"):
        ctx = otel_context.get_current()

        def worker() -> None:
            token = otel_context.attach(ctx)  # the library hands its context to its worker thread
            try:
                lib.tool("lookup", {"q": "t"}, lookup)
                assert agent_otel.current_run() is not None  # the bridged run, seen from the thread
            finally:
                otel_context.detach(token)

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        lib.chat()
    spans = telemetry.spans()
    root = run_span(spans, "threaded")
    assert steps(root, spans) == [(1, "execute_tool lookup"), (2, "chat")]
    assert [e["kind"] for e in telemetry.events()] == ["tool_result", "llm_result", "stop"]


def test_a_decorated_tool_the_library_calls_is_one_step(telemetry):
    lib = FakeLib()

    @agent_otel.tool
    def lookup(q: str) -> dict[str, Any]:
        assert agent_otel.current_run() is not None
        return {"answer": q}

    with lib.agent("decorated"):
        lib.tool("lookup", {"q": "d"}, lookup)
    spans = telemetry.spans()
    root = run_span(spans, "decorated")
    assert steps(root, spans) == [(1, "execute_tool lookup")]  # the @tool claimed the library's step
    assert len(telemetry.events("tool_result")) == 1


def test_spans_ended_out_of_order(telemetry):
    """The library ends its agent span before a tool span, and two tool spans out of their start order."""
    tracer = trace.get_tracer("fakelib")
    agent = tracer.start_span("invoke_agent racer", attributes={"gen_ai.operation.name": "invoke_agent"})
    ctx = trace.set_span_in_context(agent)
    first = tracer.start_span(
        "execute_tool one", context=ctx, attributes={"gen_ai.tool.call.arguments": "{}"}
    )
    second = tracer.start_span(
        "execute_tool two", context=ctx, attributes={"gen_ai.tool.call.arguments": "{}"}
    )
    second.end()
    agent.end()  # before its first tool ended
    first.end()
    spans = telemetry.spans()
    root = run_span(spans, "racer")
    assert steps(root, spans) == [(1, "execute_tool one"), (2, "execute_tool two")]
    assert root.attributes["agent.tool_calls"] == 2
    assert [(e["kind"], e["step_id"]) for e in telemetry.events()] == [
        ("tool_result", 2),
        ("stop", None),
        ("tool_result", 1),  # still recorded, after the run's stop
    ]
    assert stops(telemetry) == {("racer", "completed"): 1}


def test_a_span_never_ended_leaves_the_run_running_and_its_siblings_recorded(telemetry):
    tracer = trace.get_tracer("fakelib")
    agent = tracer.start_span("invoke_agent forgetful", attributes={"gen_ai.operation.name": "invoke_agent"})
    ctx = trace.set_span_in_context(agent)
    tracer.start_span("execute_tool hung", context=ctx)  # never ended
    tracer.start_span("chat", context=ctx, kind=SpanKind.CLIENT).end()
    telemetry.flush()
    run_id = agent.attributes["agent.run_id"]
    assert [r["status"] for r in telemetry.sink.runs() if r["run_id"] == run_id] == ["running"]
    assert [(e["kind"], e["step_id"]) for e in telemetry.events()] == [("llm_result", 2)]
    assert agent_otel.current_run() is None  # nothing of the open run leaks into this context
    agent.end()
    assert stops(telemetry) == {("forgetful", "completed"): 1}
    assert [
        r["steps"] for r in telemetry.sink.runs() if r["run_id"] == run_id and r["status"] != "running"
    ] == [2]


def test_guards_observe_only_where_nothing_can_stop_a_step(configured):
    """A denied tool and a loop in a run seen only through its spans: the guards say what they would have
    stopped, the run goes on (the library offers no hook where agent-otel could stop a step)."""
    telemetry = configured(
        {"guards": {"policy": {"deny": {"*": ["delete_*"]}}, "loop": {"max_repeats": 2, "window": 10}}}
    )
    lib = FakeLib()
    with lib.agent("stubborn"):
        lib.tool("delete_all", {}, lambda: "gone")
        for _ in range(3):
            lib.tool("lookup", {"q": "again"}, lookup)
    spans = telemetry.spans()
    root = run_span(spans, "stubborn")
    assert root.attributes["agent.stop_reason"] == "completed"
    guards = [dict(e.attributes) for e in root.events if e.name == "agent.guard"]
    assert [(g["guard"], g["enforced"], g["would_stop"]) for g in guards] == [
        ("policy", False, "policy_denied"),
        ("loop", False, "loop_detected"),
    ]
    assert len(telemetry.events("tool_result")) == 4


def test_a_tool_step_without_its_arguments_on_the_span_is_stored_without_a_snapshot(rig, caplog):  # noqa: F811
    """A library without content capture puts no arguments on its tool span: the step has no args_sha, so
    no replay can match it, and no snapshot is recorded for it. Before, one was queued anyway and the
    store refused every one of them (NOT NULL args_sha): a warning and drops counted for nothing lost."""
    rig.start()
    lib = FakeLib(capture=False)
    with lib.agent("quiet"):
        lib.tool("lookup", {"q": "s"}, lookup)
    run_id = rig.last_run_id("quiet")
    assert rig.run_row(run_id)["tool_calls"] == 1
    assert [e["args_sha"] for e in rig.tool_events(run_id)] == [None]
    assert rig.snapshots(run_id) == []
    agent_otel.shutdown()
    assert "refused" not in caplog.text and "dropped" not in caplog.text


def test_the_run_store_and_cli_see_a_bridged_run(rig):  # noqa: F811
    from tests.replay.conftest import load_json_lines

    rig.start()
    lib = FakeLib()
    with lib.agent("stored"):
        lib.chat(usage=(7, 3))
        lib.tool("lookup", {"q": "s"}, lookup)
    run_id = rig.last_run_id("stored")
    row = rig.run_row(run_id)
    assert (row["status"], row["stop_reason"], row["steps"], row["tool_calls"]) == (
        "success",
        "completed",
        2,
        1,
    )
    assert (row["input_tokens"], row["output_tokens"]) == (7, 3)
    assert [(e["tool"], e["args_sha"], e["result_sha"]) for e in rig.tool_events(run_id)] == [
        ("lookup", sha({"q": "s"}), sha({"answer": "S"}))
    ]
    assert [e["kind"] for e in load_json_lines(rig.events)] == ["llm_result", "tool_result", "stop"]
    shown = rig.cli("show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert "lookup" in shown.stdout and "completed" in shown.stdout
    listed = rig.cli("runs", "--agent", "stored")
    assert listed.returncode == 0 and run_id[:8] in listed.stdout
    stats = rig.cli("stats", "--json")
    assert stats.returncode == 0, stats.stderr
    summary = json.loads(stats.stdout)
    assert (summary["runs"], summary["tool_calls_per_run"]["mean"]) == (1, 1.0)
    assert summary["tokens_per_request"]["mean"] == 10.0
    assert [(r["stop_reason"], r["runs"]) for r in summary["stop_reasons"]] == [("completed", 1)]
    drift = rig.cli("drift", "--json")
    assert drift.returncode == 0 and json.loads(drift.stdout)["window"]["runs"] == 1


def test_shutdown_leaves_library_spans_alone(telemetry):
    agent_otel.shutdown()
    lib = FakeLib()
    with lib.agent("after"):
        lib.chat()
    spans = telemetry.exporter.get_finished_spans()
    assert all("agent.run_id" not in s.attributes for s in spans)


def test_a_library_tool_call_cancelled_is_cancelled_not_a_tool_error(telemetry):
    """A library's tool span that reports a cancellation (``error.type`` CancelledError, as libraries
    that record BaseExceptions set it): the step is ``cancelled``, not a tool ``error``, as a tool
    agent-otel wraps itself; the span's own status stays the library's."""
    import asyncio

    lib = FakeLib()
    attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "slow",
        "gen_ai.tool.call.id": "c",
    }
    with pytest.raises(asyncio.CancelledError), lib.agent("cancelled-tool"):
        lib.chat()
        with lib.span("execute_tool slow", attributes) as s:
            s.set_attribute("error.type", "CancelledError")
            s.set_status(Status(StatusCode.ERROR, "cancelled"))
            raise asyncio.CancelledError
    spans = telemetry.spans()
    tool = by_name(spans, "execute_tool slow")[0]
    assert tool.attributes["agent.tool.status"] == "cancelled"
    (event,) = telemetry.events("tool_result")
    assert (event["status"], event["error"]) == ("cancelled", "CancelledError")
    assert [(a["status"], a["error_type"]) for a, _ in telemetry.metrics()["agent.tool.invocations"]] == [
        ("cancelled", "CancelledError")
    ]
