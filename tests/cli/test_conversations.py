"""Conversations and pauses outside any framework: ``run(conversation_id=)``, ``interrupted``, the link
from a resume to its paused run, the run store's ``conversation_id`` (schema migration 5) and the CLI
(``runs --conversation``, ``stats``, ``drift``)."""

from __future__ import annotations

import json
import sqlite3

import pytest
from opentelemetry.trace import StatusCode

import agent_otel
from agent_otel.store import Target, open_store
from agent_otel.store import schema as store_schema
from tests.cli.conftest import CLI
from tests.store import seed

HOUR, DAY = seed.HOUR_MS, seed.DAY_MS


def test_interrupted_is_a_pause_and_the_next_run_of_the_conversation_links_to_it(telemetry):
    assert agent_otel.StopReason.INTERRUPTED.stop_class == "pause"
    with agent_otel.run("approver", conversation_id="ticket-7") as first:
        first.record_llm(model="gpt-4o", input_tokens=5, output_tokens=1)
        result = first.stop("interrupted", "waiting for a human to approve the refund")
    assert dict(result)["stop_reason"] == "interrupted"
    with agent_otel.run("approver", conversation_id="ticket-7") as second:
        pass
    with agent_otel.run("approver", conversation_id="ticket-7") as third:
        pass
    spans = {s.attributes["agent.run_id"]: s for s in telemetry.spans_named("invoke_agent")}
    paused, resumed, later = spans[first.run_id], spans[second.run_id], spans[third.run_id]
    assert paused.status.status_code is StatusCode.UNSET
    (stop,) = [e for e in paused.events if e.name == "agent.stop"]
    assert stop.attributes["stop_class"] == "pause"
    assert resumed.attributes["agent.resume_of"] == first.run_id
    assert [link.context.span_id for link in resumed.links] == [paused.context.span_id]
    assert "agent.resume_of" not in later.attributes and not later.links  # only the pause's next run
    for span in (paused, resumed, later):
        assert span.attributes["gen_ai.conversation.id"] == "ticket-7"
    llm = next(s for s in telemetry.spans() if s.name == "chat gpt-4o")
    assert llm.attributes["gen_ai.conversation.id"] == "ticket-7"
    (event,) = [e for e in telemetry.events("stop") if e["run_id"] == first.run_id]
    assert (event["stop_reason"], event["status"]) == ("interrupted", "pause")


def test_a_sub_agent_works_on_its_parents_conversation(telemetry):
    with agent_otel.run("parent", conversation_id="c-1"), agent_otel.run("child") as child:
        pass
    assert child.conversation_id == "c-1"


def test_conversation_id_is_stored_and_filterable(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENT_OTEL_HOME", str(tmp_path / "home"))
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "AGENT_OTEL_CONFIG", "AGENT_OTEL_EVENTS"):
        monkeypatch.delenv(var, raising=False)
    db = str(tmp_path / "home" / "agent-otel.db")
    agent_otel.shutdown()
    agent_otel.setup("t", store=db, instrument=False, config={"exporter": {"probe_local": False}})
    try:
        with agent_otel.run("a", conversation_id="conv-1") as paused:
            paused.stop("interrupted")
        with agent_otel.run("a", conversation_id="conv-1") as resumed:
            pass
        with agent_otel.run("a", conversation_id="conv-2"):
            pass
        with agent_otel.run("a"):
            pass
    finally:
        agent_otel.shutdown()
    store = open_store(Target("sqlite", db))
    try:
        rows = store.runs(conversation="conv-1")
        assert {(r["run_id"], r["stop_reason"], r["status"]) for r in rows} == {
            (paused.run_id, "interrupted", "pause"),
            (resumed.run_id, "completed", "success"),
        }
        assert all(r["conversation_id"] == "conv-1" for r in rows)
    finally:
        store.close()
    cli = CLI(tmp_path / "home")
    proc = cli("runs", "--conversation", "conv-1", "--json")
    assert proc.returncode == 0, proc.stderr
    assert {r["run_id"] for r in json.loads(proc.stdout)} == {resumed.run_id, paused.run_id}
    text = cli("runs", "--conversation", "conv-1").stdout
    assert "interrupted" in text and "completed" in text
    assert "no runs match" in cli("runs", "--conversation", "nope").stdout
    assert "conv-1" in cli("show", paused.run_id[:12]).stdout


def test_migration_5_adds_the_conversation_to_an_existing_store(tmp_path, monkeypatch):
    path = str(tmp_path / "old.db")
    older = [m for m in store_schema.MIGRATIONS["sqlite"] if m[0] < 5]  # a store of schema 4
    with monkeypatch.context() as m:
        m.setitem(store_schema.MIGRATIONS, "sqlite", older)
        m.setattr(
            store_schema, "RUN_COLUMNS", tuple(c for c in store_schema.RUN_COLUMNS if c != "conversation_id")
        )
        old = seed.run_records(seed.now_ms() - HOUR)
        for _, record in old:
            record.pop("conversation_id", None)
        seed.write(path, old)
    columns = {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(agent_runs)")}
    assert "conversation_id" not in columns
    seed.write(path, seed.run_records(seed.now_ms(), conversation_id="after"))
    store = open_store(Target("sqlite", path))
    try:
        assert store.schema_version() == store_schema.LATEST_VERSION
        runs = store.runs(newest_first=False)
        assert [r["conversation_id"] for r in runs] == [None, "after"]
        assert [r["run_id"] for r in store.runs(conversation="after")] == [runs[1]["run_id"]]
    finally:
        store.close()
    indexes = {r[1] for r in sqlite3.connect(path).execute("PRAGMA index_list(agent_runs)")}
    assert "agent_runs_conversation" in indexes


def _pause_store(cli: CLI, window_paused: int, window_loops: int, window_settled: int = 10) -> None:
    now = seed.now_ms()
    records = []
    for i in range(20):  # baseline: 20 runs, 2 of them loop_detected (10 %), no pauses
        reason = "loop_detected" if i < 2 else "completed"
        records += seed.run_records(now - DAY - (i + 1) * 7 * HOUR, stop_reason=reason)
    for i in range(window_settled):
        reason = "loop_detected" if i < window_loops else "completed"
        records += seed.run_records(now - (i + 1) * HOUR, stop_reason=reason)
    for i in range(window_paused):
        records += seed.run_records(
            now - (i + 1) * HOUR - 60_000, stop_reason="interrupted", conversation_id=f"c{i}"
        )
    seed.write(cli.db, records)


def test_pauses_are_not_drift_and_do_not_hide_a_drift_of_failures(cli, make_cli):
    # Ten human approvals in the window: a pause is not a failure, and the failures' share is taken over
    # the runs that did not pause (1 in 10, as in the baseline), so there is no drift.
    _pause_store(cli, window_paused=10, window_loops=1)
    proc = cli("drift", "--json")
    assert proc.returncode == 0, proc.stdout
    signals = {s["signal"]: s for s in json.loads(proc.stdout)["signals"]}
    assert "stop_reason:interrupted" not in signals
    assert signals["stop_reason:loop_detected"]["window"] == pytest.approx(0.1)
    assert signals["stop_reason:loop_detected"]["drift"] is False

    # Four loops in ten settled runs is a drift, however many runs paused beside them (over all 20
    # runs of the window it would have read 20 %).
    drifting = make_cli("drifting")
    _pause_store(drifting, window_paused=10, window_loops=4)
    proc = drifting("drift", "--json")
    assert proc.returncode == 1, proc.stdout
    loops = next(s for s in json.loads(proc.stdout)["signals"] if s["signal"] == "stop_reason:loop_detected")
    assert loops["window"] == pytest.approx(0.4) and loops["drift"] is True

    stats = json.loads(cli("stats", "--since", "24h", "--json").stdout)
    mix = {m["stop_reason"]: (m["class"], m["runs"]) for m in stats["stop_reasons"]}
    assert mix["interrupted"] == ("pause", 10)
