"""Recording: what a run leaves in the local store for replay, and where it never goes."""

from __future__ import annotations

import json
import logging
import os
import pickle
import stat
from typing import Any

import agent_otel
from agent_otel import runtime, snapshots
from agent_otel.hashing import canonical_json, sha
from tests.replay import support_agent
from tests.replay.conftest import load_json_lines

WRONG, RIGHT = support_agent.CUSTOMERS[0]["email"], support_agent.CUSTOMERS[1]["email"]


class KeepAll:
    """A custom event sink of the application's: it sees every record of the pipeline."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict]] = []

    def write(self, batch):
        self.records.extend(batch)

    def close(self):
        pass


def test_a_run_records_input_versions_and_every_tool_outcome(rig, recorded):
    run_id = recorded()
    assert support_agent.OUTBOX[0]["to"] == WRONG  # the bug this suite is about

    [run] = rig.rows("SELECT * FROM agent_snapshot_runs WHERE run_id = ?", (run_id,))
    assert (run["agent"], run["model"], run["prompt_version"], run["tools_version"]) == (
        "support-agent",
        "gpt-4o",
        "v12",
        "3",
    )
    assert run["input_sha"] == sha(support_agent.TICKET) == rig.run_row(run_id)["input_sha"]

    snaps, data = rig.snapshots_and_data(run_id)
    events = rig.tool_events(run_id)
    assert [(s["step_id"], s["tool"], s["args_sha"], s["result_sha"]) for s in snaps] == [
        (e["step_id"], e["tool"], e["args_sha"], e["result_sha"]) for e in events
    ]
    assert [s["tool"] for s in snaps] == ["crm.search", "orders.get", "send_email"]
    assert {s["outcome"] for s in snaps} == {"ok"}

    # The stored data is the canonical JSON the result_sha was computed over; results and inputs this
    # small are stored with their snapshots (in the clear: no key), not in the blob table: the calls of
    # the run in packs (a row per run and write, schema 8), the input in the run's row.
    send = snaps[2]
    assert send["blob_sha"] == send["result_sha"]
    receipt = {"message_id": "M-1", "accepted": [WRONG]}
    assert (
        data[send["blob_sha"]] == ("json", "", canonical_json(receipt)) and sha(receipt) == send["result_sha"]
    )
    packs = rig.rows("SELECT * FROM agent_snapshot_packs WHERE run_id = ? ORDER BY id", (run_id,))
    assert sum(p["calls"] for p in packs) == sum(p["items"] for p in packs) == 3
    assert {p["key_id"] for p in packs} == {""} and packs[0]["created_at_ms"] == snaps[0]["created_at_ms"]
    assert canonical_json(receipt) in b"".join(bytes(p["data"]) for p in packs)
    assert run["input_key_id"] == "" and json.loads(run["input_data"]) == support_agent.TICKET
    for table in ("agent_snapshot_blobs", "agent_snapshot_data", "agent_tool_snapshots"):
        assert rig.rows(f"SELECT * FROM {table}") == [], table


def test_raw_results_stay_in_the_store_never_in_spans_events_or_other_sinks(rig, recorded):
    keep_all = KeepAll()
    exporter = rig.start(sinks=(keep_all,))
    run_id = recorded()
    spans = exporter.get_finished_spans()
    assert len(spans) == 5  # run, three tools, one LLM call
    for span in spans:
        dumped = json.dumps(
            {"attributes": dict(span.attributes), "events": [dict(e.attributes) for e in span.events]},
            default=str,
        )
        assert WRONG not in dumped and "Kim Tanaka" not in dumped, span.name
    lines = load_json_lines(rig.events)
    assert {line["run_id"] for line in lines} == {run_id} and len(lines) == 5
    assert WRONG not in rig.events.read_text() and "Kim Tanaka" not in rig.events.read_text()

    # An application's own sink receives snapshot records too, but a blob prints as its size only.
    snaps = [p for t, p in keep_all.records if t == "snapshot"]
    assert len(snaps) == 4  # the run (its input) and three tool calls
    text = json.dumps(keep_all.records, default=str) + repr(keep_all.records)
    assert WRONG not in text and "Kim Tanaka" not in text
    assert "bytes>" in repr(snaps[-1]["blob"])
    assert pickle.loads(pickle.dumps(snaps[-1])) == {**snaps[-1], "blob": repr(snaps[-1]["blob"])}

    assert stat.S_IMODE(os.stat(rig.db).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(rig.home).st_mode) == 0o700


def test_large_results_are_stored_once(rig):
    rig.start()
    big = {"rows": ["x" * 100 for _ in range(20_000)]}  # about 2 MB as JSON

    @agent_otel.tool(name="warehouse.dump")
    def dump(part: int) -> dict:
        return big

    for i in range(2):
        with agent_otel.run("exporter", input={"i": i}):
            for part in range(3):
                dump(part)
    runs = rig.rows("SELECT run_id FROM agent_runs WHERE agent = 'exporter'")
    snaps = [s for r in runs for s in rig.snapshots(r["run_id"]) if s["tool"] == "warehouse.dump"]
    assert len(snaps) == 6 and len({s["args_sha"] for s in snaps}) == 3
    assert {s["blob_sha"] for s in snaps} == {sha(big)}
    [blob] = rig.rows("SELECT size, length(data) AS n FROM agent_snapshot_blobs WHERE sha = ?", (sha(big),))
    assert blob["size"] == blob["n"] == len(canonical_json(big)) > 2_000_000
    assert rig.rows("SELECT id FROM agent_snapshot_packs WHERE length(data) > 1000") == []


def test_results_up_to_the_inline_size_get_their_own_row_larger_ones_are_stored_once_by_hash(rig):
    from agent_otel.store.snapshots import INLINE_MAX_BYTES

    rig.start()
    # Canonical JSON of {"t": "x" * n} is n + 8 bytes.
    at, over = {"t": "x" * (INLINE_MAX_BYTES - 8)}, {"t": "y" * (INLINE_MAX_BYTES - 7)}
    assert len(canonical_json(at)) == INLINE_MAX_BYTES == len(canonical_json(over)) - 1

    @agent_otel.tool(name="fetch")
    def fetch(which: str) -> dict:
        return at if which == "at" else over

    with agent_otel.run("sizes") as run:
        for which in ("at", "over", "over", "at"):
            fetch(which)
    snaps = rig.snapshots(run.run_id)
    assert [s["blob_sha"] for s in snaps] == [sha(at), sha(over), sha(over), sha(at)]
    # A small result repeated is stored with each call (each goes with its own snapshot, in the run's pack);
    # the large one is stored once.
    packs = rig.rows("SELECT calls, items, data FROM agent_snapshot_packs WHERE run_id = ?", (run.run_id,))
    assert sum(p["calls"] for p in packs) == 4 and sum(p["items"] for p in packs) == 2
    assert b"".join(bytes(p["data"]) for p in packs) == canonical_json(at) * 2
    [blob] = rig.rows("SELECT sha, data FROM agent_snapshot_blobs")
    assert (blob["sha"], bytes(blob["data"])) == (sha(over), canonical_json(over))
    with agent_otel.replay(run.run_id) as rp, agent_otel.run("sizes"):
        assert [fetch(w) for w in ("at", "over", "over", "at")] == [at, over, over, at]
    assert rp.report.matched


def test_recording_can_be_switched_off_globally_and_per_tool(rig, recorded):
    off = recorded(replay={"record": False})
    assert rig.snapshots(off) == []
    assert rig.rows("SELECT * FROM agent_snapshot_runs WHERE run_id = ?", (off,)) == []
    assert rig.run_row(off)["stop_reason"] == "completed"  # the run itself is stored as always

    partial = recorded(replay={"exclude": ["send_*"]})
    snaps = rig.snapshots(partial)
    assert [(s["tool"], s["outcome"], s["blob_sha"] is None) for s in snaps] == [
        ("crm.search", "ok", False),
        ("orders.get", "ok", False),
        ("send_email", "excluded", True),
    ]

    agent_otel.shutdown()
    agent_otel.setup("no-store", store=False, instrument=False, config={"exporter.probe_local": False})
    assert not any(isinstance(p, snapshots.Recorder) for p in runtime.current().policies)


def test_results_over_the_size_limit_are_not_recorded_and_say_so(rig, recorded, caplog):
    caplog.set_level(logging.WARNING, "agent_otel")
    run_id = recorded(replay={"max_result_mb": 0.0001})  # ~100 bytes: the CRM answer is larger
    outcomes = rig.snapshots(run_id)
    assert [o["outcome"] for o in outcomes] == ["too_large", "ok", "ok"]
    warnings = [r.getMessage() for r in caplog.records if "replay.max_result_mb" in r.getMessage()]
    assert len(warnings) == 1 and "'crm.search'" in warnings[0]


def test_a_failing_snapshot_write_is_warned_once_and_never_reaches_the_agent(
    rig, recorded, monkeypatch, caplog
):
    caplog.set_level(logging.WARNING, "agent_otel")

    def broken(self):
        raise OSError("disk full")

    monkeypatch.setattr(snapshots.Blob, "sealed", broken)
    before = snapshots.counters["seal"]
    first = recorded()
    second = recorded(support_agent.handle_fixed)
    assert [m["to"] for m in support_agent.OUTBOX] == [WRONG, RIGHT]  # both runs did their work
    for run_id in (first, second):
        assert rig.run_row(run_id)["stop_reason"] == "completed"
        assert len(rig.tool_events(run_id)) == 3  # runs and events are stored as usual
        outcomes = rig.snapshots(run_id)
        assert [o["outcome"] for o in outcomes] == ["write_failed"] * 3
    assert snapshots.counters["seal"] - before == 8  # 2 inputs + 6 results
    messages = [
        r.getMessage() for r in caplog.records if "sealing a replay snapshot failed" in r.getMessage()
    ]
    assert len(messages) == 1 and "disk full" in messages[0]


def test_snapshots_the_store_refuses_are_dropped_and_the_batchs_runs_and_events_kept(rig, recorded, caplog):
    """The store refuses the snapshots for a reason of its own (here their table dropped by hand under the
    running agent; in PostgreSQL a role without privileges on them): the batch is written again without
    them, so its runs and events are stored, and the drop is counted and warned about once."""
    caplog.set_level(logging.WARNING, "agent_otel")
    first = recorded()
    assert len(rig.snapshots(first)) == 3
    rig.execute("DROP TABLE agent_snapshot_packs")
    before = snapshots.counters["write"]
    second = recorded(support_agent.handle_fixed)
    third = recorded(support_agent.handle_fixed)
    for run_id in (second, third):
        assert rig.run_row(run_id)["stop_reason"] == "completed"
        assert len(rig.tool_events(run_id)) == 3
        assert rig.rows("SELECT * FROM agent_snapshot_runs WHERE run_id = ?", (run_id,)) == []
    assert snapshots.counters["write"] - before >= 2  # a batch or more of each run
    messages = [r.getMessage() for r in caplog.records if "writing replay snapshots" in r.getMessage()]
    assert len(messages) == 1 and "no such table: agent_snapshot_packs" in messages[0], messages


class _CrmError(Exception):
    """An exception whose message fails to render, quoting the data it was rendering (a real class of bug:
    a ``__str__`` over a response body)."""

    def __init__(self, body: dict) -> None:
        super().__init__()
        self.body = body

    def __str__(self) -> str:
        raise ValueError(f"cannot render the CRM error for {self.body['email']} (key {self.body['key']})")


def test_a_snapshot_that_cannot_be_recorded_is_warned_about_with_the_failure_redacted(rig, caplog):
    """The recorder's warning quoted the failure as it was: here the e-mail and API key the tool's error
    held, on stderr and in any log shipper, by default (``replay.record`` is on with the local store)."""
    email, key = "carol.customer@example.com", "sk-proj-AbCdEfGhIjKlMnOpQrStUv"
    caplog.set_level(logging.WARNING, "agent_otel")
    rig.start()

    @agent_otel.tool(name="crm.update")
    def update() -> None:
        raise _CrmError({"email": email, "key": key})

    try:
        with agent_otel.run("crm-agent"):
            update()
    except _CrmError:
        pass
    rig.flush()
    (message,) = [r.getMessage() for r in caplog.records if "for replay failed" in r.getMessage()]
    assert "ValueError: cannot render the CRM error for [EMAIL] (key [API_KEY])" in message
    assert email not in caplog.text and key not in caplog.text


def test_tool_snapshots_and_events_keep_one_shape_and_the_result_as_the_tool_returned_it(rig):
    """A tool step's event and snapshot have the same keys in the same order whichever way the snapshot
    is made (a result recorded whole, a nested call naming its enclosing step), and hold the values as they
    were when the tool returned: a result the agent mutates afterwards is recorded as returned, under the
    hash its span carries. (Guards any move of this work off the agent's thread or into a faster path.)"""
    sink = KeepAll()
    exporter = rig.start(sinks=(sink,))

    @agent_otel.tool(name="lookup")
    def lookup(q: str) -> dict:
        return {"q": q, "hits": [1, 2], "score": 0.5}

    @agent_otel.tool(name="outer")
    def outer(q: str) -> str:
        return lookup(q + "!")["q"]  # nested: its snapshot names the enclosing step

    with agent_otel.run("warm"):  # the first call of a tool looks up whether it is excluded
        outer("w")
    with agent_otel.run("shape") as run:
        result = lookup("a")
        returned = canonical_json(result)
        result["hits"].append(3)  # the agent changes what the tool returned, after the call
        result["q"] = "changed"
        assert outer("b") == "b!"
    rig.flush()

    mine = [(t, p) for t, p in sink.records if p["run_id"] == run.run_id]
    snaps = [p for t, p in mine if t == "snapshot" and p["kind"] == "tool"]
    events = [p for t, p in mine if t == "event"]
    assert [(s["tool"], s["step_id"], s["parent_step"]) for s in snaps] == [
        ("lookup", 1, None),
        ("lookup", 3, 2),  # inside outer (step 2), which ends after it
        ("outer", 2, None),
    ]
    assert len({tuple(s) for s in snaps}) == 1  # the same keys in the same order
    assert len({tuple(e) for e in events}) == 1  # the tool events and the stop event
    first = snaps[0]
    assert first["blob"].plain == returned and first["blob"].sha == sha(json.loads(returned))
    assert (first["outcome"], first["result_sha"], first["error_type"], first["result_type"]) == (
        "ok",
        None,
        None,
        None,
    )
    [event] = [e for e in events if e["step_id"] == 1]
    [span] = [
        s
        for s in exporter.get_finished_spans()
        if s.attributes.get("agent.run_id") == run.run_id and s.attributes.get("agent.step_id") == 1
    ]
    assert event["result_sha"] == span.attributes["agent.tool.result_sha"] == first["blob"].sha
    assert event["span_id"] == format(span.context.span_id, "016x") and event["trace_id"] == run.trace_id
    assert event["args_sha"] == first["args_sha"] == sha({"q": "a"})
    rows, data = rig.snapshots_and_data(run.run_id)
    [row] = [r for r in rows if r["step_id"] == 1]
    assert data[row["blob_sha"]] == ("json", "", returned)  # a small result: with its snapshot, in the clear


def test_a_batch_packs_each_runs_calls_in_their_order_whatever_runs_interleave():
    """The pack builder keeps the pack of the run of the call before (most batches: a run's calls one after
    another); calls of runs interleaved, and of one run sealed with two keys, still go one pack per run
    and key, in their order, with the earliest call's time, as the rows they were written as before."""
    from agent_otel.snapshots import Blob
    from agent_otel.store import snapshots as store_snapshots

    class Sealer:
        key_id = "k2"

        def seal(self, plain: bytes) -> bytes:
            return b"sealed:" + plain

    def call(run: str, step: int, at: int, data: bytes | None, sealer: Any = None) -> dict[str, Any]:
        blob = Blob(None, data, sealer) if data is not None else None
        return {"kind": "tool", "run_id": run, "step_id": step, "tool": "t", "args_sha": f"a{step}",
                "outcome": "ok" if blob else "error", "error_type": None if blob else "E",
                "created_at_ms": at, "blob": blob}  # fmt: skip

    records = [
        call("r1", 1, 30, b"one"),
        call("r2", 1, 20, b"two"),
        call("r1", 2, 10, None),
        call("r1", 3, 40, b"three", Sealer()),
        call("r1", 4, 50, b"four"),
    ]
    packs = store_snapshots.prepare(records).packs
    width = len(store_snapshots.PACK_COLUMNS)
    rows = [
        dict(zip(store_snapshots.PACK_COLUMNS, packs[i : i + width], strict=True))
        for i in range(0, len(packs), width)
    ]
    got = [
        (r["run_id"], r["key_id"], r["created_at_ms"], [c[0] for c in json.loads(r["steps"])], r["data"])
        for r in rows
    ]
    assert got == [
        ("r1", "", 10, [1, 2, 4], b"onefour"),
        ("r2", "", 20, [1], b"two"),
        ("r1", "k2", 40, [3], b"sealed:three"),
    ]
    steps = {(r["run_id"], r["key_id"]): json.loads(r["steps"]) for r in rows}
    assert [c[store_snapshots.PACK_FIELDS.index("size")] for c in steps[("r1", "")]] == [3, None, 4]
