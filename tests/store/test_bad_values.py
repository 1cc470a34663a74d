"""Values real tools return that a database driver cannot encode: each costs at most its own record.

A lone surrogate (``os.fsdecode`` of a file name that is not UTF-8), an int beyond 64 bits or beyond
Python's 4,300-digit limit, an enum as a dict key: before, one of them switched the store off for the
rest of the process, or lost a whole batch of the JSON-lines sink.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import sqlite3

import pytest

import agent_otel
from agent_otel import sdk
from agent_otel.events import JsonLinesSink
from agent_otel.store import StoreSink, Target, open_store
from agent_otel.store.summaries import log_key
from tests.store import seed
from tests.store.conftest import one_run
from tests.store.test_store import rows, store_warnings

NOT_UTF8 = os.fsdecode(b"v\xff")  # 'v\udcff': what Python makes of a file name that is not UTF-8


def test_undecodable_text_and_huge_ints_are_stored_escaped_and_the_store_stays_on(
    setup_agent, tmp_path, caplog
):
    setup_agent(config={"logging": {"events": {"store_args": True}}})

    @agent_otel.tool(name="ls")
    def ls(path: str) -> list:
        return [os.fsdecode(b"report-\xe9.txt"), 2**70, 10**5000]

    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        with agent_otel.run("fs-agent", prompt_version=NOT_UTF8, input={"n": 2**70}) as run:
            ls(path=NOT_UTF8)
            run.record_llm(model="gpt-4o", input_tokens=2**63, output_tokens=1)
        later = one_run(1)
        assert sdk.flush(5)
    assert store_warnings(caplog) == []
    db = str(tmp_path / "home" / "agent-otel.db")
    stored = {r["run_id"]: r for r in rows(db, "SELECT * FROM agent_runs")}
    assert set(stored) == {run.run_id, later}  # the store is still on for the next run
    weird = stored[run.run_id]
    assert (weird["status"], weird["prompt_version"]) == ("success", "v\\udcff")
    # beyond 64 bits: bound as its digits; SQLite's INTEGER affinity keeps that as the nearest REAL
    assert float(weird["input_tokens"]) == float(2**63)
    (event,) = rows(db, "SELECT args, result FROM agent_events WHERE tool = 'ls'")
    assert json.loads(event["args"]) == {"path": "v\\udcff"}
    name, big, giant = json.loads(event["result"])
    # the surrogate made this value take the safe copy, which writes ints beyond 64 bits as text
    assert name == "report-\\udce9.txt" and big == str(2**70)
    # as its hex digits, cut to the store_args limit (redaction.max_chars) like any long value
    assert giant["$int"].startswith(hex(10**5000)[:1000]) and giant["$int"].endswith(" chars]")


def test_a_record_the_database_refuses_is_dropped_alone_and_counted(tmp_path, caplog):
    path = str(tmp_path / "refuses.db")
    sink = StoreSink(Target("sqlite", path))
    sink.write(seed.run_records(seed.now_ms()))  # opens the store
    # SQLite refuses a value longer than its length limit ("string or blob too big"): lower the limit so
    # that a 200 kB stop detail is such a value, as a multi-GB one would be with the default limit.
    sink._store.conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 100_000)
    good = [seed.run_records(seed.now_ms()) for _ in range(5)]
    bad = seed.run_records(seed.now_ms())
    bad[-1][1]["detail"] = "x" * 200_000  # the end record of this run is too big
    batch = [rec for records in (*good[:3], bad, *good[3:]) for rec in records]
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        sink.write(batch)
        sink.write(seed.run_records(seed.now_ms()))
    sink.close()
    assert (sink.rejected, sink.dropped) == (1, 1)
    assert sink.written == (len(batch) - 1) + 2 * len(good[0])
    warnings = store_warnings(caplog)
    assert len(warnings) == 1 and "refused a run record" in warnings[0] and "too big" in warnings[0]
    store = open_store(Target("sqlite", path), create=False)
    try:
        runs = store.runs()
        events = list(store.iter_events())
    finally:
        store.close()
    assert len(runs) == 8
    assert sum(r["status"] == "success" for r in runs) == 7  # the bad run's start record is in
    assert len(events) == 8 * (len(good[0]) - 2)  # every event of every run


class Color(enum.Enum):
    RED = "red"


def test_the_json_lines_sink_loses_no_line_to_a_value_orjson_refuses(tmp_path):
    path = tmp_path / "events.jsonl"
    sink = JsonLinesSink(str(path), ["run_id", "tool", "usage", "error"])
    event = {"run_id": "r", "kind": "tool_result", "ts_ms": 1, "agent": "a", "trace_id": "t", "span_id": "s"}
    batch = [
        ("event", dict(event, tool="ok-before")),
        ("event", dict(event, tool="big", usage={"n": 2**64 + 1})),
        ("event", dict(event, tool="enum-key", usage={Color.RED: 1})),
        ("event", dict(event, tool=NOT_UTF8)),
        ("event", dict(event, tool="giant", usage={"n": 10**5000})),
        ("event", dict(event, tool="ok-after")),
    ]
    sink.write(batch)
    sink.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["tool"] for line in lines] == [
        "ok-before",
        "big",
        "enum-key",
        "v\\udcff",
        "giant",
        "ok-after",
    ]
    assert lines[1]["usage"] == {"n": str(2**64 + 1)}
    assert lines[2]["usage"] == {"Color.RED": 1}
    assert lines[4]["usage"] == {"n": {"$int": hex(10**5000)}}


def test_records_waiting_for_a_down_store_are_bounded_in_bytes_and_drops_counted(setup_agent, tmp_path):
    pytest.importorskip("psycopg")
    # PostgreSQL down: every record waits for it. Each tool result is a distinct 768 kB snapshot blob.
    setup_agent(store="postgresql://agent@127.0.0.1:1/agent_otel")
    sink = next(s for s in sdk.installation().pipeline.sinks() if isinstance(s, StoreSink))
    sink.max_pending_bytes = 8 << 20  # the default is 32 MiB; a smaller bound keeps the test quick

    @agent_otel.tool(name="fetch")
    def fetch(i: int) -> str:
        return f"{i:06d}" + "x" * 768_000

    with agent_otel.run("big-results") as run:
        for i in range(40):
            fetch(i)
            assert sdk.flush(10)
    assert sdk.flush(10)
    kept = [rec[1] for rec in sink._pending if rec[0] == "snapshot" and rec[1].get("blob") is not None]
    held = sum(len(p["blob"].plain) for p in kept)
    assert held <= sink.max_pending_bytes
    assert len(kept) >= 8  # the newest ones are kept, the oldest dropped
    assert sink.dropped >= 40 - len(kept)
    assert run.result.stop_reason.value == "completed"


@pytest.mark.parametrize(
    "value",
    [
        {"model": "gpt-4o", "input_tokens": 800, "output_tokens": 60, "cost_usd": 0.0026},
        ['caf\u00e9 \u2028 "quoted" \\ \t', None, True, 1.5e-7, -0.0, 2**70],
        {1: "int key", 2.5: "float key", None: "null key", False: "bool key"},
        {"nested": [{"deep": [[{"x": 1}]]}], "set": {1}, "enum": Color.RED},
        "plain text",
    ],
)
def test_json_columns_hold_what_json_dumps_writes(tmp_path, value):
    """The store's JSON text (events' args, result and usage) is ``json.dumps(value, ensure_ascii=False,
    default=str)``, byte for byte, for every value the encoder takes as it is."""
    store = open_store(Target("sqlite", str(tmp_path / "s.db")), create=True, writer=True)
    try:
        expected = json.dumps(value, ensure_ascii=False, allow_nan=False, default=str)
        assert store.json_text(value) == expected
        # and the same twice: the encoder keeps no state from one value to the next
        assert store.json_text(value) == expected
    finally:
        store.close()


def test_json_text_of_a_cycle_or_nan_is_the_safe_copy(tmp_path):
    store = open_store(Target("sqlite", str(tmp_path / "s.db")), create=True, writer=True)
    try:
        cycle: dict = {"n": 1}
        cycle["self"] = cycle
        assert json.loads(store.json_text(cycle)) == {"n": 1, "self": "$cycle"}
        assert json.loads(store.json_text({"x": float("nan")})) == {"x": "nan"}
        # a value after a failed one is encoded as usual
        assert store.json_text({"a": [1, 2]}) == '{"a": [1, 2]}'
    finally:
        store.close()


def test_a_batch_the_locked_store_could_not_take_is_stored_later_whole_and_in_its_order(tmp_path):
    """The first batch fails on a locked store (nothing waits before it, so it was tried straight from the
    pipeline's batch); it is kept with the batches after it and written once the lock is gone: every
    record, the events in the order they were emitted."""
    path = str(tmp_path / "locked.db")
    open_store(Target("sqlite", path), create=True).close()
    sink = StoreSink(Target("sqlite", path), busy_timeout_s=0.05)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        batches = [[rec for _ in range(3) for rec in seed.run_records(seed.now_ms())] for _ in range(2)]
        for batch in batches:
            sink.write([("metric", {}), *batch])  # a type the store does not keep, as the pipeline hands it
        assert sink.written == 0 and sink.dropped == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    sink.close()  # its last try writes what was kept
    records = [rec for batch in batches for rec in batch]
    assert (sink.written, sink.dropped) == (len(records), 0)
    emitted = [(p["run_id"], p["step_id"], p["kind"]) for t, p in records if t == "event"]
    stored = rows(path, "SELECT run_id, step_id, kind FROM agent_events ORDER BY id")
    assert [(r["run_id"], r["step_id"], r["kind"]) for r in stored] == emitted
    ended = {p["run_id"] for t, p in records if t == "run" and p["status"] != "running"}
    stored_ended = rows(path, "SELECT run_id FROM agent_runs WHERE status <> 'running'")
    assert {r["run_id"] for r in stored_ended} == ended


def test_a_nan_spend_token_count_or_duration_from_the_agent_neither_raises_nor_loses_the_run(
    setup_agent, tmp_path, caplog
):
    """Numbers the agent computes itself can be NaN (0/0 in its price arithmetic) or infinite. Before,
    a NaN or infinite ``cost_usd`` made the run's spend NaN and the store refused the run's end: the run
    read ``abandoned`` for ever, its stop reason, counts and usage lost; a NaN token count or
    ``duration_ms`` raised ValueError out of ``record_llm`` into the agent. Such a value is unknown: a
    spend is then computed from the prices, as when none is given."""
    setup_agent()
    nan, inf = float("nan"), float("inf")
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        with agent_otel.run("pricing-agent", model="gpt-4o") as odd:
            odd.record_llm(model="gpt-4o", input_tokens=800, output_tokens=90, cost_usd=nan)
            odd.record_llm(model="gpt-4o", input_tokens=800, output_tokens=90, cost_usd=inf)
            odd.record_llm(model="gpt-4o", input_tokens=nan, output_tokens=90, duration_ms=nan)
            odd.record_llm(model="gpt-4o", input_tokens=inf, output_tokens=90, duration_ms=inf)
        with agent_otel.run("pricing-agent", model="gpt-4o") as plain:
            plain.record_llm(model="gpt-4o", input_tokens=800, output_tokens=90)
            plain.record_llm(model="gpt-4o", input_tokens=800, output_tokens=90)
            plain.record_llm(model="gpt-4o", output_tokens=90)
            plain.record_llm(model="gpt-4o", output_tokens=90)
        assert sdk.flush(5)
    assert store_warnings(caplog) == []
    db = str(tmp_path / "home" / "agent-otel.db")
    stored = {r["run_id"]: r for r in rows(db, "SELECT * FROM agent_runs")}
    got, want = stored[odd.run_id], stored[plain.run_id]
    assert (got["status"], got["stop_reason"], got["llm_calls"]) == ("success", "completed", 4)
    assert (got["input_tokens"], got["output_tokens"]) == (1600, 360)
    assert want["cost_usd"] > 0 and got["cost_usd"] == pytest.approx(want["cost_usd"])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_spend_or_duration_reaching_the_store_by_another_path_keeps_the_run_end(
    tmp_path, caplog, bad
):
    """``record_llm`` cleans NaN and infinities, but an end record can be built from a framework's usage
    dict: before, the summaries' histogram key of a NaN or infinite ``cost_usd`` raised, the store refused
    the run's end, and the run read ``abandoned`` for ever with its stop reason and counts lost. Such a
    number is unknown: stored as NULL, counted as no spend in the figures."""
    path = str(tmp_path / "store.db")
    odd = seed.run_records(seed.now_ms() - 60_000, cost_usd=0.02)
    odd[-1][1].update(cost_usd=bad, duration_ms=bad)  # the end record
    odd[-2][1]["usage"].update(cost_usd=bad)  # and the stop event's usage
    plain = seed.run_records(seed.now_ms() - 30_000, cost_usd=0.02)
    sink = StoreSink(Target("sqlite", path))
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        sink.write(odd + plain)
        sink.close()
    assert store_warnings(caplog) == [] and (sink.rejected, sink.dropped) == (0, 0)
    stored = {r["run_id"]: r for r in rows(path, "SELECT * FROM agent_runs")}
    got = stored[odd[0][1]["run_id"]]
    assert (got["status"], got["stop_reason"], got["tool_calls"]) == ("success", "completed", 4)
    assert (got["cost_usd"], got["duration_ms"]) == (None, None)
    want = _hour_figures(path)
    assert (want["n"], want["usd"], want["usdh"]) == (2, pytest.approx(0.02), {"z": 1, log_key(0.02): 1})
    assert sum(want["dur"].values()) == 1  # the plain run's duration; the odd one's is unknown

    # A row holding an infinity (SQLite keeps one as REAL; PostgreSQL keeps NaN too), as a writer that
    # did not clean it left it: rebuilding the summaries from the rows counts it as unknown, not raise.
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE agent_runs SET cost_usd = 9e999, retries = 9e999 WHERE cost_usd IS NULL")
    store = open_store(Target("sqlite", path), create=False)
    try:
        store.rebuild_summaries()
    finally:
        store.close()
    assert _hour_figures(path) == want


def _hour_figures(path: str) -> dict:
    """The hourly summary of the store's one hour of runs (the figures `stats` reads for long periods)."""
    found = rows(path, "SELECT data FROM agent_run_summaries WHERE span_ms = 3600000")
    assert len(found) == 1, found
    return json.loads(found[0]["data"])
