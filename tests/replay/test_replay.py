"""Replaying the support agent that e-mailed the wrong customer: unchanged, fixed, strict, lenient, async."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import agent_otel
from agent_otel import conventions as c
from agent_otel import tools
from agent_otel.guards import Budget
from agent_otel.hashing import sha
from agent_otel.replay import (
    RecordedToolError,
    ReplayDivergence,
    ReplayError,
    SnapshotUnavailable,
    UnrecordedToolCall,
    is_replayed,
)
from tests.helpers import metric_points
from tests.replay import support_agent
from tests.replay.support_agent import CUSTOMERS, TICKET

WRONG, RIGHT = CUSTOMERS[0]["email"], CUSTOMERS[1]["email"]


def email_args(to: str) -> dict:
    return {"to": to, "subject": f"Re: {TICKET['ticket_id']}", "body": "Your order O-1001 is shipped (DHL)."}


def test_an_unchanged_replay_takes_the_same_path_and_sends_nothing(rig, recorded):
    original = recorded()
    assert support_agent.CALLS["send_email"] == 1 and len(support_agent.LLM_CALLS) == 1
    exporter = rig.exporter
    exporter.clear()

    with agent_otel.replay(original) as rp:
        assert rp.input == TICKET
        result = support_agent.handle(rp.input)

    assert result == {"message_id": "M-1", "accepted": [WRONG]}  # what the recorded send_email returned
    assert support_agent.CALLS == {"send_email": 1, "crm.search": 1, "orders.get": 1}  # no tool body ran
    assert [m["to"] for m in support_agent.OUTBOX] == [WRONG]  # nothing was sent twice
    assert len(support_agent.LLM_CALLS) == 2  # the LLM is live

    report = rp.report
    assert report.matched and not report.diverged and report.divergence is None
    assert (report.recorded_tool_calls, report.requested_tool_calls, report.steps_matched, report.served) == (
        3,
        3,
        3,
        3,
    )
    assert (report.stop_reason_then, report.stop_reason_now) == ("completed", "completed")
    assert "MATCH" in str(report)

    # The replay is a new run pointing at the original, with the same hashes step by step.
    replay_id = report.replay_run_id
    assert replay_id != original
    row = rig.run_row(replay_id)
    assert (row["replay_of"], row["stop_reason"], row["tool_calls"]) == (original, "completed", 3)
    recorded_steps = [(e["tool"], e["args_sha"], e["result_sha"]) for e in rig.tool_events(original)]
    assert [(e["tool"], e["args_sha"], e["result_sha"]) for e in rig.tool_events(replay_id)] == recorded_steps
    run_span = next(s for s in exporter.get_finished_spans() if s.name == "invoke_agent support-agent")
    assert run_span.attributes[c.REPLAY_OF] == original
    # A replay is not recorded again.
    assert rig.snapshots(replay_id) == []


def test_the_fixed_agent_diverges_at_send_email_strict_stops_there(rig, recorded):
    original = recorded()
    recorded_send = rig.tool_events(original)[2]
    assert recorded_send["tool"] == "send_email"

    with agent_otel.replay(original) as rp:
        support_agent.handle_fixed(rp.input)  # ReplayDivergence: absorbed by the replay block

    assert [m["to"] for m in support_agent.OUTBOX] == [WRONG]  # the fixed e-mail was not sent either
    report = rp.report
    assert report.diverged and report.steps_matched == 2
    d = report.divergence
    assert (d.index, d.kind, d.run_id) == (3, "args", original)
    assert (d.recorded.tool, d.recorded.step_id, d.recorded.args_sha) == (
        "send_email",
        4,
        recorded_send["args_sha"],
    )
    assert recorded_send["args_sha"] == sha(email_args(WRONG))
    assert (d.now.tool, d.now.step_id, d.now.args_sha) == ("send_email", 4, sha(email_args(RIGHT)))
    assert (report.stop_reason_then, report.stop_reason_now) == ("completed", "policy_denied")
    assert report.versions_then["prompt_version"] == "v12" and report.versions_now["prompt_version"] == "v13"
    text = str(report)
    assert "DIVERGED at tool call 3" in text
    assert sha(email_args(WRONG)) in text and sha(email_args(RIGHT)) in text

    row = rig.run_row(report.replay_run_id)
    assert (row["stop_reason"], row["status"], row["tool_calls"]) == ("policy_denied", "limit", 2)
    assert "diverged" in row["detail"] and sha(email_args(RIGHT)) in row["detail"]
    event = next(
        e
        for s in rig.exporter.get_finished_spans()
        if s.attributes.get(c.REPLAY_OF)
        for e in s.events
        if e.name == "agent.replay.divergence"
    )
    assert event.attributes["recorded.args_sha"] == sha(email_args(WRONG))
    assert event.attributes["now.args_sha"] == sha(email_args(RIGHT))


def test_replays_are_not_traffic_for_metrics_stats_or_drift(rig):
    """Replaying a fix again and again must not look like drift on the dashboards or in the CLI."""
    reader = InMemoryMetricReader()
    rig.start(readers=(reader,))

    def counts() -> tuple[dict, float, int]:
        # The process's meter provider outlives each test's setup(): compare before and after.
        points = metric_points(reader)
        stops = {
            a["stop_reason"]: p.value
            for a, p in points.get(c.M_STOP.name, [])
            if a["agent"] == "support-agent"
        }
        calls = sum(
            p.value for a, p in points.get(c.M_TOOL_INVOCATIONS.name, []) if a["agent"] == "support-agent"
        )
        runs = sum(p.count for a, p in points.get(c.M_TOOL_CALLS.name, []) if a["agent"] == "support-agent")
        return stops, calls, runs

    rig.flush()
    stops0, calls0, runs0 = counts()
    support_agent.handle(dict(TICKET))
    rig.flush()
    original = rig.last_run_id()
    for _ in range(3):
        with agent_otel.replay(original):
            support_agent.handle_fixed(dict(TICKET))  # diverges: policy_denied, a guard-like stop
    rig.flush()
    assert len(rig.rows("SELECT run_id FROM agent_runs WHERE replay_of = ?", (original,))) == 3

    stops, calls, runs = counts()
    assert {k: v - stops0.get(k, 0) for k, v in stops.items() if v != stops0.get(k, 0)} == {"completed": 1}
    assert calls - calls0 == 3  # the original's three tool calls; the replays' served calls are not counted
    assert runs - runs0 == 1

    stats = json.loads(rig.cli("stats", "--json").stdout)
    assert stats["runs"] == 1 and [m["stop_reason"] for m in stats["stop_reasons"]] == ["completed"]
    listed = json.loads(rig.cli("runs", "--json").stdout)
    assert len(listed) == 4 and sum(1 for r in listed if r["replay_of"] == original) == 3


def test_strict_divergence_reaches_the_agent_as_agent_stopped(rig, recorded):
    original = recorded()
    with agent_otel.replay(original) as rp:
        with pytest.raises(agent_otel.AgentStopped) as caught:
            support_agent.handle_fixed(rp.input)
    assert isinstance(caught.value, ReplayDivergence)
    assert caught.value.stop_reason is agent_otel.StopReason.POLICY_DENIED
    assert caught.value.divergence == rp.report.divergence


def test_lenient_serves_recorded_calls_in_any_order_and_refuses_unknown_ones(rig, recorded):
    original = recorded()

    @agent_otel.agent(name="support-agent")
    def reordered(ticket):  # orders first, then the CRM: the same calls, another order
        order = support_agent.orders_get(order_id=ticket["order_id"])
        hits = support_agent.crm_search(name=ticket["name"])
        customer = support_agent.choose(hits, order, fixed=False)
        return support_agent.send_email(
            to=customer["email"], subject=f"Re: {ticket['ticket_id']}", body=support_agent.draft_reply(order)
        )

    with agent_otel.replay(original, mode="lenient") as rp:
        assert reordered(rp.input)["accepted"] == [WRONG]
    report = rp.report
    assert report.served == 3 and report.steps_matched == 0
    assert (report.divergence.index, report.divergence.recorded.tool, report.divergence.now.tool) == (
        1,
        "crm.search",
        "orders.get",
    )
    assert report.stop_reason_now == "completed" and report.diverged

    with agent_otel.replay(original, mode="strict") as strict:
        reordered(strict.input)
    assert strict.report.served == 0 and strict.report.stop_reason_now == "policy_denied"

    with agent_otel.replay(original, mode="lenient") as rp:
        with pytest.raises(UnrecordedToolCall, match="send_email") as caught:
            support_agent.handle_fixed(rp.input)
    assert "was not called in the recorded run" in str(caught.value)
    assert [m["to"] for m in support_agent.OUTBOX] == [WRONG]  # the unknown call never reached the tool
    report = rp.report
    assert (report.divergence.index, report.served, report.stop_reason_now) == (3, 2, "error")
    assert [(u.tool, u.args_sha) for u in report.unrecorded_calls] == [("send_email", sha(email_args(RIGHT)))]
    assert support_agent.CALLS["send_email"] == 1


def test_a_replay_that_stops_early_or_goes_further_diverges(rig, recorded):
    original = recorded()

    @agent_otel.agent(name="support-agent")
    def gives_up(ticket):
        support_agent.crm_search(name=ticket["name"])
        return None

    with agent_otel.replay(original) as rp:
        gives_up(rp.input)
    d = rp.report.divergence
    assert (d.index, d.kind, d.recorded.tool, d.now) == (2, "missing", "orders.get", None)
    assert rp.report.stop_reason_now == "completed" and rp.report.diverged

    @agent_otel.agent(name="support-agent")
    def double_checks(ticket):
        support_agent.handle.__wrapped__(ticket)
        support_agent.orders_get(order_id=ticket["order_id"])

    with agent_otel.replay(original) as rp:
        double_checks(rp.input)
    d = rp.report.divergence
    assert (d.index, d.kind, d.recorded, d.now.tool) == (4, "extra", None, "orders.get")

    with agent_otel.replay(original, mode="lenient") as rp:
        double_checks(rp.input)  # lenient serves the repeated lookup from the recorded one
    assert rp.report.served == 4 and rp.report.stop_reason_now == "completed"


def test_recorded_errors_are_raised_again(rig):
    rig.start()
    with pytest.raises(LookupError):
        support_agent.handle(dict(TICKET, order_id="O-404"))
    original = rig.last_run_id()
    assert rig.run_row(original)["stop_reason"] == "tool_error"
    with pytest.raises(LookupError, match="no order O-404") as caught:
        with agent_otel.replay(original) as rp:
            support_agent.handle(rp.input)
    assert type(caught.value) is LookupError
    assert support_agent.CALLS["orders.get"] == 1
    report = rp.report
    assert report.matched and (report.stop_reason_then, report.stop_reason_now) == (
        "tool_error",
        "tool_error",
    )
    assert report.error == "LookupError: no order O-404"
    [event] = [e for e in rig.tool_events(report.replay_run_id) if e["tool"] == "orders.get"]
    assert (event["status"], event["error"]) == ("error", "LookupError")


def test_errors_keep_their_class_attributes_and_timeouts(rig):
    rig.start()

    class QuotaExceeded(Exception):
        def __init__(self, retry_after: int) -> None:
            super().__init__(f"quota exceeded, retry after {retry_after}s")
            self.retry_after = retry_after

    calls = []

    @agent_otel.tool(name="geo.lookup", timeout_s=0.05)
    def slow(city: str) -> str:
        calls.append(city)
        import time

        time.sleep(0.5)
        return city

    def local_error():
        raise QuotaExceeded(30)

    @agent_otel.agent(name="geo")
    def agent(city):
        try:
            agent_otel.current_run().call_tool("quota", local_error)
        except Exception as exc:
            seen.append(exc)
        slow(city)

    seen: list[BaseException] = []
    with pytest.raises(tools.ToolTimeout):
        agent("Oslo")
    original = rig.last_run_id()
    with agent_otel.replay(original) as rp, pytest.raises(tools.ToolTimeout) as caught:
        agent(rp.input)
    assert caught.value.tool == "geo.lookup" and caught.value.timeout_s == 0.05
    assert str(caught.value) == "tool 'geo.lookup' timed out after 0.05s"
    assert calls == ["Oslo"]
    # QuotaExceeded is a local class (not importable by name): it comes back as a RecordedToolError.
    original_error, replayed_error = seen
    assert isinstance(original_error, QuotaExceeded) and isinstance(replayed_error, RecordedToolError)
    assert "QuotaExceeded: quota exceeded, retry after 30s" in str(replayed_error)
    assert rp.report.matched and rp.report.stop_reason_now == "tool_timeout"


def test_json_results_come_back_equal_other_types_as_their_json_form(rig):
    rig.start()

    @dataclasses.dataclass
    class Forecast:
        city: str
        temps: tuple

    @agent_otel.tool(name="weather")
    def weather(city: str) -> Forecast:
        return Forecast(city, (3.5, 4.0))

    @agent_otel.agent(name="weather-agent")
    def agent(city):
        return weather(city)

    with agent_otel.run("weather-agent", input="Oslo") as run:
        assert weather("Oslo") == Forecast("Oslo", (3.5, 4.0))
    with agent_otel.replay(run.run_id) as rp:  # right away: what is still queued is stored first
        served = agent(rp.input)
    assert served == {"city": "Oslo", "temps": [3.5, 4.0]}
    assert rp.report.matched
    assert any("Forecast" in note and "JSON form (dict)" in note for note in rp.report.notes)


def test_results_without_a_json_form_are_served_as_the_form_they_were_hashed_as(rig):
    """What README "Replaying" says of them: an object with no JSON form comes back as its type, and a
    generator a plain function returns (not consumed when recorded) as its repr; the report notes both."""
    rig.start()

    class Handle:
        pass

    @agent_otel.tool(name="handle")
    def handle() -> Handle:
        return Handle()

    @agent_otel.tool(name="hits")
    def hits(n: int):
        return (i for i in range(n))

    @agent_otel.agent(name="odd-results")
    def agent(n):
        return handle(), hits(n)

    agent(2)
    with agent_otel.replay(rig.last_run_id("odd-results")) as rp:
        obj, gen = agent(rp.input)
    assert obj == {"$type": Handle.__qualname__}
    assert gen["$repr"].startswith("<generator object ")
    assert rp.report.matched and rp.report.served == 2
    notes = " ".join(rp.report.notes)
    assert "Handle when recorded" in notes and "builtins.generator when recorded" in notes


def test_a_streaming_tool_is_served_its_recorded_items_without_running(rig):
    """A generator tool's result is the items it yielded: a replay yields them again, its body does not
    run (before: the replay served a dict, the generator's repr, in place of the stream)."""
    rig.start()
    fetched: list[int] = []

    @agent_otel.tool(name="pages")
    def pages(n: int):
        for i in range(n):
            fetched.append(i)
            yield {"page": i}

    @agent_otel.tool(name="apages")
    async def apages(n: int):
        for i in range(n):
            fetched.append(i)
            yield {"page": i}

    async def take_all(n: int) -> list:
        return [item async for item in apages(n)]

    @agent_otel.agent(name="pager")
    def agent(n):
        return [p["page"] for p in pages(n)] + [p["page"] for p in asyncio.run(take_all(n))]

    assert agent(3) == [0, 1, 2, 0, 1, 2]
    recorded = rig.last_run_id("pager")
    fetched.clear()
    with agent_otel.replay(recorded) as rp:
        assert agent(rp.input) == [0, 1, 2, 0, 1, 2]
    assert fetched == []  # served, not fetched again
    assert rp.report.matched and rp.report.served == 2, rp.report


def test_an_input_that_was_not_a_json_value_comes_back_as_its_json_form_with_a_note(rig):
    rig.start()

    @dataclasses.dataclass
    class Ticket:
        ticket_id: str
        opened: datetime.datetime

    @agent_otel.tool(name="lookup")
    def lookup(ticket_id: str) -> str:
        return f"status of {ticket_id}"

    @agent_otel.agent(name="ticket-agent")
    def agent(ticket):
        ticket_id = ticket["ticket_id"] if isinstance(ticket, dict) else ticket.ticket_id
        return lookup(ticket_id)

    agent(Ticket("T-1", datetime.datetime(2026, 1, 2, 3, 4, 5)))
    original = rig.last_run_id("ticket-agent")
    with agent_otel.replay(original) as rp:
        assert isinstance(rp.input, dict) and rp.input["ticket_id"] == "T-1"
        agent(rp.input)
    assert rp.report.matched
    ticket_class = f"{__name__}.{Ticket.__qualname__}"
    note = f"the run input was a {ticket_class} when recorded; rp.input is its JSON form (dict)"
    assert note in rp.report.notes and f"note: {note}" in rp.report.render()

    # A JSON input (the support agent's dict) comes back equal, without a note.
    plain = support_agent.handle(dict(TICKET))
    assert plain
    with agent_otel.replay(rig.last_run_id("support-agent")) as rp:
        support_agent.handle(rp.input)
    assert rp.report.matched and not rp.report.notes


async def test_async_agents_record_and_replay(rig):
    rig.start()
    await support_agent.handle_async(dict(TICKET))
    original = rig.last_run_id("support-agent-async")
    assert support_agent.CALLS == {"crm.search": 1, "orders.get": 1, "send_email": 1}

    async with agent_otel.replay(original) as rp:
        result = await support_agent.handle_async(rp.input)
    assert result["accepted"] == [WRONG] and rp.report.matched and rp.report.served == 3
    assert support_agent.CALLS == {"crm.search": 1, "orders.get": 1, "send_email": 1}

    async with agent_otel.replay(original) as rp:
        await support_agent.handle_async_fixed(rp.input)
    d = rp.report.divergence
    assert (d.index, d.now.tool, d.now.args_sha) == (3, "send_email", sha(email_args(RIGHT)))
    assert rp.report.stop_reason_now == "policy_denied" and len(support_agent.OUTBOX) == 1

    # A plain `with` around an event loop works the same way.
    with agent_otel.replay(original) as rp:
        await asyncio.gather(support_agent.handle_async(rp.input))
    assert rp.report.matched and len(support_agent.OUTBOX) == 1


def test_sub_agents_and_nested_tool_calls(rig):
    rig.start()
    runs_of_triage = []

    @agent_otel.tool(name="kb.search")
    def kb_search(q: str) -> list:
        runs_of_triage.append(q)
        return [f"article about {q}"]

    @agent_otel.tool(name="kb.answer")
    def kb_answer(q: str) -> str:  # a tool that calls another tool: the nested call is in its result
        return kb_search(q)[0].upper()

    @agent_otel.agent(name="triage")
    def triage(q):
        return kb_search(q)

    @agent_otel.agent(name="router")
    def router(q):
        found = triage(q)  # a sub-agent run, started directly by the router
        return kb_answer(q), found

    assert router("refund") == ("ARTICLE ABOUT REFUND", ["article about refund"])
    assert runs_of_triage == ["refund", "refund"]
    original = rig.last_run_id("router")
    with agent_otel.replay(original) as rp:
        assert router(rp.input) == ("ARTICLE ABOUT REFUND", ["article about refund"])
    assert runs_of_triage == ["refund", "refund"]  # neither the sub-agent's call nor the nested one ran
    report = rp.report
    assert report.matched and report.recorded_tool_calls == 2 and report.served == 2
    child = rig.rows("SELECT * FROM agent_runs WHERE parent_run_id = ?", (report.replay_run_id,))[0]
    recorded_child = rig.rows("SELECT run_id FROM agent_runs WHERE parent_run_id = ?", (original,))[0]
    assert child["replay_of"] == recorded_child["run_id"] and child["agent"] == "triage"


def test_tools_outside_a_run_and_runs_the_recording_lacks_are_never_executed(rig, recorded):
    original = recorded()
    with agent_otel.replay(original) as rp:
        with pytest.raises(UnrecordedToolCall, match="outside any agent_otel run"):
            support_agent.send_email(to=RIGHT, subject="s", body="b")
        support_agent.handle(rp.input)
        support_agent.handle(rp.input)  # a second run in the block: nothing recorded for it
    assert support_agent.CALLS["send_email"] == 1 and len(support_agent.OUTBOX) == 1
    report = rp.report
    assert report.steps_matched == 3 and report.served == 3  # the first run replayed the recording
    assert [(u.step_id, u.tool) for u in report.unrecorded_calls] == [(None, "send_email")]
    # The second run has no recording: its first call is where the block left the recording.
    d = report.divergence
    assert report.diverged and (d.index, d.run_id, d.recorded, d.now.tool) == (1, None, None, "crm.search")
    assert any("also started in the block" in note for note in report.notes)
    runs = rig.rows("SELECT stop_reason, replay_of FROM agent_runs ORDER BY created_at")
    assert [r["stop_reason"] for r in runs] == ["completed", "completed", "policy_denied"]


def test_an_integration_can_serve_a_call_it_opened(rig, recorded):
    """The framework-integration path: tools.begin() then the framework runs the tool itself."""
    original = recorded()
    options = tools.ToolOptions(name="send_email", side_effects=True)

    with agent_otel.replay(original) as rp:

        @agent_otel.agent(name="support-agent")
        def framework_agent(ticket):
            run = agent_otel.current_run()
            hits = support_agent.crm_search(name=ticket["name"])
            order = support_agent.orders_get(order_id=ticket["order_id"])
            support_agent.draft_reply(order)
            args = email_args(hits[0]["email"])
            call = tools.begin(run, options, args, claimable=True)
            assert is_replayed(call)
            # A framework that cannot skip execution calls the @tool function: it is served, not run.
            result = support_agent.send_email(**args)
            call.ok(result)  # what the integration does afterwards: ignored, the call is finished
            return result

        assert framework_agent(rp.input)["accepted"] == [WRONG]
    assert rp.report.matched and support_agent.CALLS["send_email"] == 1


def test_unknown_expired_and_unservable_recordings_are_clear_errors(rig, recorded):
    with pytest.raises(ReplayError, match="no run store at"):
        agent_otel.replay("abc").__enter__()
    original = recorded()
    with pytest.raises(ReplayError, match="no run matches 'nope'"):
        with agent_otel.replay("nope"):
            pass
    with pytest.raises(ValueError, match="strict, lenient"):
        agent_otel.replay(original, mode="fast")
    unrecorded = recorded(replay={"record": False})
    with pytest.raises(ReplayError, match=f"run {unrecorded} has no tool-result snapshots"):
        with agent_otel.replay(unrecorded):
            pass

    excluded = recorded(replay={"exclude": ["send_email"]})
    with agent_otel.replay(excluded) as rp:
        with pytest.raises(SnapshotUnavailable, match=r"excluded from recording \(replay.exclude\)"):
            support_agent.handle(rp.input)
    assert support_agent.CALLS["send_email"] == 3  # three recordings, no replayed send


def test_interrupted_calls_are_matched_but_never_served_or_executed(rig):
    rig.start()
    calls = []

    @agent_otel.tool(name="long.job")
    def long_job(n: int) -> int:
        calls.append(n)
        raise asyncio.CancelledError()  # the caller gave up while the tool ran

    @agent_otel.agent(name="batch")
    def batch(n):
        return long_job(n)

    with pytest.raises(asyncio.CancelledError):
        batch(3)
    original = rig.last_run_id()
    assert rig.run_row(original)["stop_reason"] == "cancelled"
    [snap] = rig.snapshots(original)
    assert (snap["outcome"], snap["error_type"]) == ("interrupted", "CancelledError")
    with agent_otel.replay(original) as rp:
        with pytest.raises(
            SnapshotUnavailable, match=r"interrupted \(CancelledError\); the tool is not executed"
        ):
            batch(rp.input)
    assert calls == [3] and rp.report.steps_matched == 1 and rp.report.served == 0


def test_the_replay_honours_guards_and_budgets_like_the_original(rig):
    rig.start()

    @agent_otel.agent(name="support-agent", budget=Budget(max_tool_calls=2))
    def limited(ticket):
        return support_agent.handle.__wrapped__(ticket)

    with pytest.raises(agent_otel.AgentStopped):
        limited(dict(TICKET))
    original = rig.last_run_id()
    with agent_otel.replay(original) as rp, pytest.raises(agent_otel.AgentStopped):
        limited(rp.input)
    assert rp.report.matched and rp.report.stop_reason_now == "budget_exceeded"
    assert support_agent.CALLS["send_email"] == 0


def test_a_tool_call_that_outlives_the_replayed_run_is_not_executed(rig, recorded):
    """Work a run starts may outlive its block (a task awaited later) and then runs untraced, as it
    would without agent-otel. Under a replay that meant the real tool ran: an e-mail sent again by a
    replay. A tool that outlives the replayed run's block is refused, as one called outside any run."""
    sent: list[str] = []

    @agent_otel.tool(name="notify")
    async def notify(to: str) -> str:
        sent.append(to)
        return "sent"

    async def agent() -> asyncio.Task:
        async with agent_otel.run("notifier"):
            await notify("ops@example.com")
            later = asyncio.create_task(asyncio.sleep(0))
            await later
            return asyncio.create_task(notify("customer@example.com"))  # awaited after the block

    async def main() -> None:
        task = await agent()
        await task

    rig.start()
    asyncio.run(main())
    rig.flush()
    original = rig.last_run_id("notifier")
    assert sent == ["ops@example.com", "customer@example.com"]  # recording: both calls ran

    with agent_otel.replay(original, mode="lenient"):
        with pytest.raises(UnrecordedToolCall):
            asyncio.run(main())
    assert sent == ["ops@example.com", "customer@example.com"]  # the replay sent nothing


class SkipAhead(Exception):
    """Thrown into a streaming tool, which answers it with its next item."""


def test_a_streaming_tool_under_replay_answers_send_and_throw_with_its_recorded_items(rig):
    """A consumer that sends into a generator tool, or throws into it (the generator handles it), then
    closes it early: the replay served the recorded items through a list iterator, so ``send`` raised
    AttributeError and ``throw`` reached the agent, where the recorded run went on. The replay answers
    both with the next recorded item, as the generator did, and runs nothing."""
    rig.start()
    ran: list[int] = []

    @agent_otel.tool(name="pages")
    def pages():
        got = None
        for i in range(4):
            ran.append(i)
            try:
                got = yield [i, got]
            except SkipAhead:
                yield "skipped"

    @agent_otel.tool(name="apages")
    async def apages():
        got = None
        for i in range(4):
            ran.append(i)
            try:
                got = yield [i, got]
            except SkipAhead:
                yield "skipped"

    async def adrive():
        g = apages()
        out = [await anext(g), await g.asend("x"), await g.athrow(SkipAhead())]
        await g.aclose()
        return out

    @agent_otel.agent(name="pager")
    def agent(n):
        g = pages()
        out = [next(g), g.send("x"), g.throw(SkipAhead())]
        g.close()
        return out + asyncio.run(adrive())

    first = agent(1)
    recorded = rig.last_run_id("pager")
    ran.clear()
    with agent_otel.replay(recorded) as rp:
        again = agent(rp.input)
    assert again == first, (again, first)
    assert ran == []
    assert rp.report.matched, rp.report


def test_a_replayed_generator_tool_returns_its_recorded_return_value(rig):
    """A generator tool's ``return`` value is what ``yield from`` gives the agent: a replay yielded the
    recorded items and returned None. The result of a generator that returns a value is now
    ``{"$items": [...], "$return": value}`` (its items alone, as before, when it returns None), recorded
    and returned again; the body does not run."""
    rig.start()
    ran: list[int] = []

    @agent_otel.tool(name="pages")
    def pages(n: int):
        for i in range(n):
            ran.append(i)
            yield {"page": i}
        return {"total": n}

    @agent_otel.tool(name="nothing_back")
    def nothing_back():
        ran.append(-1)
        yield "only"

    def read_all(n: int):
        total = yield from pages(n)
        yield total
        yield (yield from nothing_back())

    @agent_otel.agent(name="pager")
    def agent(n):
        return list(read_all(n))

    first = agent(2)
    assert first == [{"page": 0}, {"page": 1}, {"total": 2}, "only", None]
    recorded = rig.last_run_id("pager")
    assert [e["result_sha"] for e in rig.tool_events(recorded)] == [
        sha({"$items": [{"page": 0}, {"page": 1}], "$return": {"total": 2}}),
        sha(["only"]),
    ]
    ran.clear()
    with agent_otel.replay(recorded) as rp:
        again = agent(rp.input)
    assert ran == []
    assert again == first
    assert rp.report.matched and rp.report.served == 2, rp.report


def test_a_call_that_cannot_be_served_is_named_in_the_report_when_the_agent_goes_on(rig):
    """A matched call whose result was not recorded (over ``replay.max_result_mb``) raises
    SnapshotUnavailable; an agent that catches it goes on, and the report said MATCH with nothing on why
    the call was not served. Its notes say so now, as for calls an integration could not serve."""
    rig.start(replay={"max_result_mb": 0.001})
    ran: list[int] = []

    @agent_otel.tool(name="export")
    def export(n: int) -> str:
        ran.append(n)
        return "x" * n

    @agent_otel.agent(name="exporter")
    def agent(n):
        try:
            return len(export(n))
        except SnapshotUnavailable:
            return "export unavailable"

    assert agent(5000) == 5000
    with agent_otel.replay(rig.last_run_id("exporter")) as rp:
        assert agent(rp.input) == "export unavailable"
    assert ran == [5000]
    report = rp.report
    assert (report.steps_matched, report.served) == (1, 0)
    assert report.notes == [
        "step 1 (export) matched the recording but was not served: its result was larger than "
        "replay.max_result_mb"
    ]
    assert "not served: its result was larger than replay.max_result_mb" in str(report)
